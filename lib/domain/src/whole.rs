//! Whole numbers as JSON Schema counts them: `2` and `2.0` alike (a number whose
//! fraction is zero is an integer there), never `2.5`. serde's integers refuse `2.0`,
//! which a client's JSON library may well write for a count or an amount the contract
//! calls an integer.

use serde::Deserializer;
use serde::de::{Error, Visitor};

/// The whole number `value` holds, if it is one and fits an `i64`.
#[must_use]
pub fn as_i64(value: &serde_json::Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (-9.223_372_036_854_775e18..9.223_372_036_854_775e18).contains(f))
            .map(|f| {
                #[allow(
                    clippy::cast_possible_truncation,
                    reason = "whole and within range, checked above"
                )]
                let whole = f as i64;
                whole
            })
    })
}

/// Deserializes a `u64` written as a whole number, `2` or `2.0`.
///
/// # Errors
/// A negative, fractional or non-numeric value, or one beyond `u64`.
pub fn u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct Whole;
    impl Visitor<'_> for Whole {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number, 0 or more")
        }
        fn visit_u64<E: Error>(self, value: u64) -> Result<u64, E> {
            Ok(value)
        }
        fn visit_i64<E: Error>(self, value: i64) -> Result<u64, E> {
            u64::try_from(value).map_err(|_| E::custom(format!("{value} is below 0")))
        }
        fn visit_f64<E: Error>(self, value: f64) -> Result<u64, E> {
            if value.fract() == 0.0 && (0.0..1.844_674_407_370_955e19).contains(&value) {
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "whole and within range, checked above"
                )]
                return Ok(value as u64);
            }
            Err(E::custom(format!("{value} is not a whole number of 0 or more")))
        }
    }
    deserializer.deserialize_any(Whole)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use serde_json::json;

    #[derive(Debug, serde::Deserialize)]
    struct Count(#[serde(deserialize_with = "super::u64")] u64);

    #[test]
    fn an_integer_is_whole_with_or_without_a_zero_fraction() {
        for (written, whole) in [(json!(2), 2), (json!(2.0), 2), (json!(0), 0), (json!(1e3), 1000)] {
            assert_eq!(serde_json::from_value::<Count>(written).unwrap().0, whole);
        }
        for refused in [
            json!(2.5),
            json!(-1),
            json!(-1.0),
            json!("2"),
            json!(null),
            json!(1e20),
        ] {
            assert!(
                serde_json::from_value::<Count>(refused.clone()).is_err(),
                "{refused}"
            );
        }
        // What the client is told (the API's 400 carries it, naming the field).
        let refused = serde_json::from_value::<Count>(json!("2"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            refused,
            "invalid type: string \"2\", expected a whole number, 0 or more"
        );
        assert_eq!(super::as_i64(&json!(-3.0)), Some(-3));
        assert_eq!(super::as_i64(&json!(-3)), Some(-3));
        assert_eq!(super::as_i64(&json!(0.5)), None);
        assert_eq!(super::as_i64(&json!(1e19)), None);
        assert_eq!(super::as_i64(&json!("4")), None);
    }
}
