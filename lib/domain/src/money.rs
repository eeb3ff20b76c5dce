//! Money as integer minor units with an ISO 4217 currency; never floating point.
//!
//! Arithmetic is checked: an overflow or a sum across currencies is an error, not a
//! wrapped or silently converted number.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::Quantity;

/// What can go wrong with money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The currency is not three upper-case ASCII letters.
    #[error("currency must be three upper-case letters (ISO 4217), got {0:?}")]
    InvalidCurrency(String),
    /// Two amounts in different currencies were combined.
    #[error("cannot combine {left} with {right}")]
    CurrencyMismatch {
        /// The currency of the running total.
        left: Currency,
        /// The currency that did not match.
        right: Currency,
    },
    /// The result does not fit in the amount type.
    #[error("amount overflows")]
    Overflow,
}

/// An ISO 4217 currency code such as `USD`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

crate::text::serde_via_text!(Currency, "an ISO 4217 currency code", Currency::parse);

impl Currency {
    /// Parses a code.
    ///
    /// # Errors
    /// [`MoneyError::InvalidCurrency`] unless the code is three upper-case ASCII letters.
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err(MoneyError::InvalidCurrency(code.to_owned())),
        }
    }

    /// The code as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored, so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

/// An amount of money: non-negative minor units (cents for USD) and a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Money {
    /// Minor units; negative amounts do not exist in this domain (refunds are events).
    pub amount: u64,
    /// The currency of `amount`.
    pub currency: Currency,
}

impl Money {
    /// An amount in a currency.
    #[must_use]
    pub const fn new(amount: u64, currency: Currency) -> Self {
        Self { amount, currency }
    }

    /// Nothing, in a currency.
    #[must_use]
    pub const fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    /// `self + other`.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] across currencies, [`MoneyError::Overflow`].
    pub fn checked_add(self, other: Self) -> Result<Self, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            });
        }
        self.amount
            .checked_add(other.amount)
            .map(|amount| Self::new(amount, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    /// `self × quantity`.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`].
    pub fn checked_times(self, quantity: Quantity) -> Result<Self, MoneyError> {
        self.amount
            .checked_mul(u64::from(quantity.get()))
            .map(|amount| Self::new(amount, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    /// The sum of `amounts`, which must all be in `currency`.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`], [`MoneyError::Overflow`].
    pub fn sum(currency: Currency, amounts: impl IntoIterator<Item = Self>) -> Result<Self, MoneyError> {
        amounts
            .into_iter()
            .try_fold(Self::zero(currency), Self::checked_add)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(amount: u64) -> Money {
        Money::new(amount, Currency::parse("USD").unwrap())
    }

    #[test]
    fn currency_must_be_iso_shaped() {
        let usd = Currency::parse("USD").unwrap();
        assert_eq!(String::from(usd), "USD");
        assert_eq!(format!("{usd:?}"), "Currency(USD)");
        assert_eq!(Money::new(1299, usd).to_string(), "1299 USD");

        assert!(Currency::parse("USD").is_ok());
        for bad in ["usd", "US", "USDD", "U$D", ""] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sums_are_checked() {
        assert_eq!(usd(1).checked_add(usd(2)), Ok(usd(3)));
        assert_eq!(usd(u64::MAX).checked_add(usd(1)), Err(MoneyError::Overflow));
        let eur = Money::new(1, Currency::parse("EUR").unwrap());
        assert!(matches!(
            usd(1).checked_add(eur),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        let q = Quantity::parse(1000).unwrap();
        assert_eq!(usd(1299).checked_times(q), Ok(usd(1_299_000)));
        assert_eq!(usd(u64::MAX / 2).checked_times(q), Err(MoneyError::Overflow));
    }

    #[test]
    fn json_shape_is_amount_and_currency() {
        let json = serde_json::to_string(&usd(1299)).unwrap();
        assert_eq!(json, r#"{"amount":1299,"currency":"USD"}"#);
        assert!(serde_json::from_str::<Money>(r#"{"amount":12.5,"currency":"USD"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount":-1,"currency":"USD"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount":1,"currency":"usd"}"#).is_err());
    }
}
