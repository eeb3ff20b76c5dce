//! Serde for values whose wire form is text, without a `String` in between.
//!
//! `#[serde(try_from = "String", into = "String")]` allocates on every read and every
//! write. A handler reads an order's whole history for each message, so the ids, times
//! and currencies of every event cost an allocation each, twice. These impls parse from
//! whatever string the deserializer holds (borrowed or transient) and write through
//! `Display`.

/// Implements `Serialize` (through `Display`) and `Deserialize` (through `parse`, whose
/// error becomes the deserializer's) for a type with a textual wire form.
macro_rules! serde_via_text {
    ($ty:ty, $expecting:literal, $parse:path) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Text;
                impl serde::de::Visitor<'_> for Text {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<$ty, E> {
                        $parse(text).map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(Text)
            }
        }
    };
}

pub(crate) use serde_via_text;
