//! Personal data: what the design counts as personal, and how it is kept.
//!
//! Personal fields are stored sealed: encrypted with a data key of the customer's own
//! (AES-256-GCM, the customer's id as associated data), so erasing a customer is
//! forgetting one key. [`PERSONAL_FIELDS`] is the one list of them; `Sealed` is what an
//! event or a message carries in their place; [`ERASED`] is what a read shows once the
//! key is gone. The sealing itself and the key store are `orderflow_app::personal`'s.

use serde::{Deserialize, Serialize};

/// Every personal field the system holds, as a JSON path into the document that holds
/// it. Anything added here is sealed; nothing else is personal.
pub const PERSONAL_FIELDS: &[&str] = &[
    "OrderPlaced.shippingAddress.name",
    "OrderPlaced.shippingAddress.line1",
    "OrderPlaced.shippingAddress.line2",
    "OrderPlaced.shippingAddress.city",
    "OrderPlaced.shippingAddress.postalCode",
    "OrderPlaced.shippingAddress.country",
];

/// What a read shows in place of a personal field whose customer was erased.
pub const ERASED: &str = "[erased]";

/// The scheme [`Sealed`] values are written with (AES-256-GCM, a 96-bit random nonce,
/// the customer's id as associated data).
pub const SEALED_VERSION: u32 = 1;

/// A personal value sealed with its customer's data key: all an event, a message, a
/// log or a snapshot ever carries of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Sealed {
    /// The scheme ([`SEALED_VERSION`]).
    #[serde(rename = "v")]
    pub version: u32,
    /// The nonce, base64 (standard, padded).
    #[serde(rename = "n")]
    pub nonce: String,
    /// The ciphertext with its tag, base64 (standard, padded).
    #[serde(rename = "c")]
    pub ciphertext: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn a_sealed_value_is_three_short_members() {
        let sealed = Sealed {
            version: SEALED_VERSION,
            nonce: "bm9uY2U=".into(),
            ciphertext: "Y2lwaGVy".into(),
        };
        let json = serde_json::to_value(&sealed).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"v": 1, "n": "bm9uY2U=", "c": "Y2lwaGVy"})
        );
        assert_eq!(serde_json::from_value::<Sealed>(json).unwrap(), sealed);
    }

    #[test]
    fn an_address_reads_as_sealed_clear_or_erased_by_its_shape() {
        use crate::order::{ErasedAddress, PersonalAddress};
        let read = |json: serde_json::Value| serde_json::from_value::<PersonalAddress>(json).unwrap();
        assert!(matches!(
            read(serde_json::json!({"v": 1, "n": "bm9uY2U=", "c": "Y2lwaGVy"})),
            PersonalAddress::Sealed(_)
        ));
        let clear = read(serde_json::json!({
            "name": "Ada", "line1": "1 Main St", "city": "Springfield", "postalCode": "1", "country": "US"
        }));
        assert!(clear.is_clear());
        let erased = serde_json::to_value(PersonalAddress::Erased(ErasedAddress)).unwrap();
        assert_eq!(
            erased,
            serde_json::json!({
                "name": ERASED, "line1": ERASED, "city": ERASED, "postalCode": ERASED, "country": ERASED
            })
        );
        assert_eq!(read(erased), PersonalAddress::Erased(ErasedAddress));
        // Half erased is neither an address nor the marker.
        assert!(
            serde_json::from_value::<PersonalAddress>(serde_json::json!({
                "name": ERASED, "line1": "1 Main St", "city": ERASED, "postalCode": ERASED, "country": ERASED
            }))
            .is_err()
        );
    }
}
