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

/// Whether `value` reads as it is written: no control characters (line breaks, escape
/// sequences, NUL) and no bidirectional controls (the marks, embeddings, overrides and
/// isolates of Unicode's bidi algorithm, which make a reason or a product name display
/// other than what it holds, as in "Trojan Source"). Free text a person types into the
/// audit trail or the catalog must be plain.
#[must_use]
pub fn is_plain_text(value: &str) -> bool {
    !value.chars().any(|c| c.is_control() || is_bidi_control(c))
}

const fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// The characters [`is_plain_text`] refuses, as a character class body of a JSON
/// Schema (ECMA-262) pattern: Unicode's controls (C0, DEL, C1) and the bidi controls.
macro_rules! not_plain {
    () => {
        r"\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
    };
}

/// What the contract says of free text the server checks with [`is_plain_text`] and
/// finds not blank: plain characters only, and one of them besides white space.
pub const PLAIN_TEXT: &str = concat!(
    "^[^",
    not_plain!(),
    r"]*[^\s",
    not_plain!(),
    "][^",
    not_plain!(),
    "]*$"
);

/// What the contract says of optional free text the server treats as absent when
/// blank: blank, or plain characters only.
pub const PLAIN_TEXT_OR_BLANK: &str = concat!(r"^(\s*|[^", not_plain!(), "]*)$");

#[cfg(test)]
mod tests {
    use super::{PLAIN_TEXT, is_plain_text};

    /// The ranges of the pattern's character class, read back from its text.
    fn refused_by_pattern() -> Vec<(u32, u32)> {
        let class = &PLAIN_TEXT[3..PLAIN_TEXT.find(']').unwrap_or_default()];
        let code = |hex: &str| u32::from_str_radix(hex, 16).unwrap_or(u32::MAX);
        class.split("\\u").filter(|part| !part.is_empty()).fold(
            Vec::new(),
            |mut ranges: Vec<(u32, u32)>, part| {
                if let Some(start) = part.strip_suffix('-') {
                    ranges.push((code(start), u32::MAX));
                } else if let Some(last) = ranges.last_mut().filter(|r| r.1 == u32::MAX) {
                    last.1 = code(part);
                } else {
                    ranges.push((code(part), code(part)));
                }
                ranges
            },
        )
    }

    #[test]
    fn the_contract_s_pattern_refuses_exactly_what_is_not_plain_text() {
        let ranges = refused_by_pattern();
        assert!(ranges.len() >= 7, "{ranges:?}");
        for c in (0..=0x3000).filter_map(char::from_u32) {
            let refused = ranges
                .iter()
                .any(|&(from, to)| (from..=to).contains(&u32::from(c)));
            assert_eq!(
                refused,
                !is_plain_text(&c.to_string()),
                "{c:?} U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn control_and_bidi_characters_are_not_plain_text() {
        for plain in ["received PO-123", "Crème brûlée, 2×", "注文の取消", "שלום", ""] {
            assert!(is_plain_text(plain), "{plain:?}");
        }
        for hidden in [
            "line\nbreak",
            "tab\there",
            "nul\0",
            "escape \u{1b}[31m",
            "del\u{7f}",
            "invoice \u{202E}fdp.exe",
            "isolate \u{2066}x\u{2069}",
            "mark \u{200F}",
            "arabic mark \u{061C}",
            "c1 \u{85}",
        ] {
            assert!(!is_plain_text(hidden), "{hidden:?}");
        }
    }
}
