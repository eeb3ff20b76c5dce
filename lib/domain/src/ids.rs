//! Identifiers and bounded values, parsed once at the edge.
//!
//! Every type here can only be built through `parse` (or serde, which calls it), so a
//! value inside the domain is valid by construction and nothing downstream re-checks it.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a raw value could not become one of the domain's types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The value was empty.
    #[error("{field} must not be empty")]
    Empty {
        /// The field that was empty.
        field: &'static str,
    },
    /// The value was longer than allowed.
    #[error("{field} must be at most {max} characters")]
    TooLong {
        /// The field that was too long.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// The value held characters outside the allowed set.
    #[error("{field} may only contain {allowed}")]
    InvalidCharacters {
        /// The offending field.
        field: &'static str,
        /// The allowed set, in words.
        allowed: &'static str,
    },
    /// The value was not a UUID.
    #[error("{field} must be a UUID")]
    NotAUuid {
        /// The offending field.
        field: &'static str,
    },
    /// A quantity outside `1..=1000`.
    #[error("quantity must be between {min} and {max}, got {got}")]
    QuantityOutOfRange {
        /// Smallest allowed.
        min: u32,
        /// Largest allowed.
        max: u32,
        /// What was given.
        got: u64,
    },
}

/// Checks length and character set of a textual identifier.
fn check_text(
    field: &'static str,
    value: &str,
    max: usize,
    allowed: &'static str,
    is_allowed: impl Fn(char) -> bool,
) -> Result<(), ParseError> {
    if value.is_empty() {
        return Err(ParseError::Empty { field });
    }
    if value.chars().count() > max {
        return Err(ParseError::TooLong { field, max });
    }
    if !value.chars().all(is_allowed) {
        return Err(ParseError::InvalidCharacters { field, allowed });
    }
    Ok(())
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
}

/// Declares a string newtype whose only constructor is a checking `parse`.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:literal, $allowed:literal, $pred:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses a raw value.
            ///
            /// # Errors
            /// [`ParseError`] when the value is empty, too long or has a character
            /// outside the allowed set.
            pub fn parse(value: impl Into<String>) -> Result<Self, ParseError> {
                let value = value.into();
                check_text($field, &value, $max, $allowed, $pred)?;
                Ok(Self(value))
            }

            /// The value as text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// A customer, as the identity provider names them.
    CustomerId,
    "customerId",
    128,
    "letters, digits and - _ . :",
    is_id_char
);

text_id!(
    /// A stock-keeping unit of the catalog.
    Sku,
    "sku",
    64,
    "letters, digits and - _ . :",
    is_id_char
);

text_id!(
    /// A client-chosen key that makes a command safe to retry.
    IdempotencyKey,
    "Idempotency-Key",
    255,
    "printable ASCII",
    |c: char| c.is_ascii_graphic()
);

/// An order's identity: a UUID (the API mints v7, so ids sort by creation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(Uuid);

crate::text::serde_via_text!(OrderId, "an order id (a UUID)", OrderId::parse);

impl OrderId {
    /// Wraps an id minted by the caller (the domain mints nothing itself).
    #[must_use]
    pub const fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// Parses the textual form.
    ///
    /// # Errors
    /// [`ParseError::NotAUuid`] when the text is not a UUID.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        Uuid::try_parse(value)
            .map(Self)
            .map_err(|_| ParseError::NotAUuid { field: "orderId" })
    }

    /// The underlying UUID.
    #[must_use]
    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl TryFrom<String> for OrderId {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<OrderId> for String {
    fn from(value: OrderId) -> Self {
        value.0.to_string()
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// How many units of one SKU a line orders: `1..=1000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "Whole", into = "u32")]
pub struct Quantity(u32);

/// A count as it is written: `2` or `2.0` ([`crate::whole`]).
#[derive(Deserialize)]
struct Whole(#[serde(deserialize_with = "crate::whole::u64")] u64);

impl TryFrom<Whole> for Quantity {
    type Error = ParseError;
    fn try_from(value: Whole) -> Result<Self, Self::Error> {
        Self::parse(value.0)
    }
}

impl Quantity {
    /// The smallest quantity a line may order.
    pub const MIN: u32 = 1;
    /// The largest quantity a line may order.
    pub const MAX: u32 = 1000;

    /// Parses a raw count.
    ///
    /// # Errors
    /// [`ParseError::QuantityOutOfRange`] outside `1..=1000`.
    pub fn parse(value: u64) -> Result<Self, ParseError> {
        match u32::try_from(value) {
            Ok(v) if (Self::MIN..=Self::MAX).contains(&v) => Ok(Self(v)),
            _ => Err(ParseError::QuantityOutOfRange {
                min: Self::MIN,
                max: Self::MAX,
                got: value,
            }),
        }
    }

    /// The count.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u64> for Quantity {
    type Error = ParseError;
    fn try_from(value: u64) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Quantity> for u32 {
    fn from(value: Quantity) -> Self {
        value.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_bounds() {
        assert_eq!(Quantity::parse(7).unwrap().to_string(), "7");
        let id = "0192f0a0-7c1e-7a3b-9c2d-1e2f3a4b5c6d";
        assert_eq!(String::from(OrderId::parse(id).unwrap()), id);
        let longest = "S".repeat(64);
        assert!(
            Sku::parse(longest.clone()).is_ok(),
            "64 characters is the limit, and in it"
        );
        assert!(Sku::parse(format!("{longest}S")).is_err());

        assert!(Quantity::parse(0).is_err());
        assert_eq!(Quantity::parse(1).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::parse(1000).map(Quantity::get), Ok(1000));
        assert!(Quantity::parse(1001).is_err());
        assert!(Quantity::parse(u64::MAX).is_err());
    }

    #[test]
    fn quantity_deserializes_through_parse() {
        assert!(serde_json::from_str::<Quantity>("0").is_err());
        assert!(serde_json::from_str::<Quantity>("-3").is_err());
        assert_eq!(
            serde_json::from_str::<Quantity>("7").ok(),
            Quantity::parse(7).ok()
        );
    }

    #[test]
    fn text_ids_reject_bad_values() {
        assert_eq!(Sku::parse(""), Err(ParseError::Empty { field: "sku" }));
        assert!(matches!(
            Sku::parse("SKU 1"),
            Err(ParseError::InvalidCharacters { .. })
        ));
        assert!(matches!(
            Sku::parse("x".repeat(65)),
            Err(ParseError::TooLong { .. })
        ));
        assert_eq!(Sku::parse("SKU-1").map(|s| s.to_string()), Ok("SKU-1".to_owned()));
        assert!(serde_json::from_str::<CustomerId>("\"c/1\"").is_err());
        assert!(IdempotencyKey::parse("key with space").is_err());
        assert!(IdempotencyKey::parse("3f1c-aa_01").is_ok());
    }

    #[test]
    fn order_id_round_trips() {
        let id = OrderId::parse("0192f0a0-7c1e-7a3b-9c2d-1e2f3a4b5c6d").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"0192f0a0-7c1e-7a3b-9c2d-1e2f3a4b5c6d\"");
        assert_eq!(serde_json::from_str::<OrderId>(&json).unwrap(), id);
        assert!(OrderId::parse("not-a-uuid").is_err());
    }
}
