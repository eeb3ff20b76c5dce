//! The order's values: lines, prices, the payment reference, the address, statuses
//! and reasons.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{Quantity, Sku};
use crate::money::Money;

/// The most lines one order may have: inventory reserves every line and records the
/// reservation in one DynamoDB transaction, and 99 stock updates plus the event fill
/// its 100 actions (a sharded SKU's units are gathered on one shard first, so each
/// line is one update). All-or-nothing reservation is worth more than a hundredth line.
pub const MAX_LINES: usize = 99;

/// One priced line of a placed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    /// What.
    pub sku: Sku,
    /// How many.
    pub quantity: Quantity,
    /// The catalog price when the order was placed.
    pub unit_price: Money,
    /// `unit_price × quantity`.
    pub line_total: Money,
}

/// A line as the command carries it: the price comes from the catalog, never the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    /// What.
    pub sku: Sku,
    /// How many.
    pub quantity: Quantity,
    /// The catalog's unit price.
    pub unit_price: Money,
}

/// A payment token as the client sends it. Secret: it has no `Serialize`, and its
/// `Debug` hides it, so it cannot reach an event or a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct PaymentToken(String);

impl PaymentToken {
    /// Parses a token: `tok_` and 1 to 64 letters, digits or `_`.
    ///
    /// # Errors
    /// [`crate::ParseError::InvalidCharacters`] on anything else.
    pub fn parse(value: impl Into<String>) -> Result<Self, crate::ParseError> {
        let value = value.into();
        let ok = value.strip_prefix("tok_").is_some_and(|rest| {
            (1..=64).contains(&rest.len()) && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if ok {
            Ok(Self(value))
        } else {
            Err(crate::ParseError::InvalidCharacters {
                field: "paymentToken",
                allowed: "tok_ followed by 1 to 64 letters, digits or _",
            })
        }
    }

    /// The secret itself, for the payment provider only.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// A reference safe to store and show: `tok_****` and the last four characters,
    /// only when at least eight more stay hidden (a card's last four of sixteen). A
    /// shorter token (`tok_visa`) shows none of itself: four characters would be all of
    /// it, or most.
    #[must_use]
    pub fn masked(&self) -> PaymentRef {
        let secret = self.0.strip_prefix("tok_").unwrap_or(&self.0);
        if secret.len() < MASK_SHOWN + MASK_HIDDEN_AT_LEAST {
            return PaymentRef("tok_****".to_owned());
        }
        // The token is ASCII (see `parse`), so bytes are characters.
        PaymentRef(format!("tok_****{}", &secret[secret.len() - MASK_SHOWN..]))
    }
}

/// Characters of a token a masked reference shows.
const MASK_SHOWN: usize = 4;

/// Characters of a token a masked reference hides, at the least, before it shows any.
const MASK_HIDDEN_AT_LEAST: usize = 8;

impl fmt::Debug for PaymentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PaymentToken(****)")
    }
}

/// A masked reference to a payment method, safe in events and logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaymentRef(String);

impl PaymentRef {
    /// The masked text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where an order is delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", try_from = "RawAddress")]
pub struct ShippingAddress {
    /// Recipient.
    pub name: String,
    /// Street and number.
    pub line1: String,
    /// Anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
}

/// Where an order goes, as a client writes it.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ShippingAddress")]
struct RawAddress {
    /// Recipient.
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::PLAIN_TEXT))]
    name: String,
    /// Street and number.
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::PLAIN_TEXT))]
    line1: String,
    /// Anything else.
    #[serde(default)]
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::PLAIN_TEXT))]
    line2: Option<String>,
    /// City.
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::PLAIN_TEXT))]
    city: String,
    /// Postal code.
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::PLAIN_TEXT))]
    postal_code: String,
    /// ISO 3166-1 alpha-2 country code.
    #[schemars(regex(pattern = r"^[A-Z]{2}$"))]
    country: String,
}

/// An address field that is missing, too long or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shippingAddress.{field}: {problem}")]
pub struct AddressError {
    /// The field.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl ShippingAddress {
    /// The address in a JSON object as a client wrote it, or the first member that is
    /// missing, not a string, empty, too long or malformed.
    ///
    /// # Errors
    /// [`AddressError`] naming the member.
    pub fn from_json(object: &serde_json::Map<String, serde_json::Value>) -> Result<Self, AddressError> {
        let member = |field: &'static str| match object.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(AddressError {
                field,
                problem: "must be a string",
            }),
        };
        let required = |field: &'static str| {
            member(field)?.ok_or(AddressError {
                field,
                problem: "required",
            })
        };
        Self::try_from(RawAddress {
            name: required("name")?,
            line1: required("line1")?,
            line2: member("line2")?,
            city: required("city")?,
            postal_code: required("postalCode")?,
            country: required("country")?,
        })
    }
}

impl TryFrom<RawAddress> for ShippingAddress {
    type Error = AddressError;
    fn try_from(raw: RawAddress) -> Result<Self, Self::Error> {
        let text = |field: &'static str, value: &str| {
            if value.trim().is_empty() {
                Err(AddressError {
                    field,
                    problem: "must not be empty",
                })
            } else if value.chars().count() > 200 || !crate::is_plain_text(value) {
                Err(AddressError {
                    field,
                    problem: "must be at most 200 printable characters, without bidirectional overrides",
                })
            } else {
                Ok(())
            }
        };
        text("name", &raw.name)?;
        text("line1", &raw.line1)?;
        if let Some(line2) = &raw.line2 {
            text("line2", line2)?;
        }
        text("city", &raw.city)?;
        text("postalCode", &raw.postal_code)?;
        if raw.country.len() != 2 || !raw.country.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(AddressError {
                field: "country",
                problem: "must be an ISO 3166-1 alpha-2 code",
            });
        }
        Ok(Self {
            name: raw.name,
            line1: raw.line1,
            line2: raw.line2,
            city: raw.city,
            postal_code: raw.postal_code,
            country: raw.country,
        })
    }
}

/// A shipping address as the system holds it: sealed with the customer's data key in
/// every event, view and stored answer written since addresses were sealed
/// (`OrderPlaced` v3); in clear only in events written before (v2), until
/// `orderflow customers encrypt-history` seals them; erased once the customer's key is
/// gone. A read shows its owner the address in clear, or every field as
/// [`crate::personal::ERASED`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum PersonalAddress {
    /// Sealed with the customer's data key (`orderflow_domain::personal::Sealed`).
    Sealed(crate::personal::Sealed),
    /// In clear: as a read shows it, or as an event from before sealing holds it.
    Clear(ShippingAddress),
    /// The customer was erased: every field reads `[erased]`.
    Erased(ErasedAddress),
}

/// Every member any shape of [`PersonalAddress`] has, read in one pass: the shape is
/// told from which are present (an untagged enum would buffer the input and try each
/// shape in turn, in code repeated for every deserializer that reads one).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnyAddress {
    v: Option<u32>,
    n: Option<String>,
    c: Option<String>,
    name: Option<String>,
    line1: Option<String>,
    line2: Option<String>,
    city: Option<String>,
    postal_code: Option<String>,
    country: Option<String>,
}

impl<'de> Deserialize<'de> for PersonalAddress {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let any = AnyAddress::deserialize(deserializer)?;
        if let (Some(version), Some(nonce), Some(ciphertext)) = (any.v, any.n.clone(), any.c.clone()) {
            return Ok(Self::Sealed(crate::personal::Sealed {
                version,
                nonce,
                ciphertext,
            }));
        }
        let erased = crate::personal::ERASED;
        let fields = [&any.name, &any.line1, &any.city, &any.postal_code, &any.country];
        if fields.iter().all(|f| f.as_deref() == Some(erased)) && any.line2.is_none() {
            return Ok(Self::Erased(ErasedAddress));
        }
        let required = |field: Option<String>, name: &'static str| {
            field.ok_or_else(|| D::Error::custom(format_args!("an address without {name}, not sealed")))
        };
        ShippingAddress::try_from(RawAddress {
            name: required(any.name, "name")?,
            line1: required(any.line1, "line1")?,
            line2: any.line2,
            city: required(any.city, "city")?,
            postal_code: required(any.postal_code, "postalCode")?,
            country: required(any.country, "country")?,
        })
        .map(Self::Clear)
        .map_err(D::Error::custom)
    }
}

impl PersonalAddress {
    /// Whether it holds the address in clear.
    #[must_use]
    pub const fn is_clear(&self) -> bool {
        matches!(self, Self::Clear(_))
    }
}

/// The address of an erased customer as a read shows it: every field
/// [`crate::personal::ERASED`], in the shape of a [`ShippingAddress`] so that a client
/// that shows addresses shows the marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ErasedAddress;

/// A shipping address whose customer was erased: every field reads `[erased]`.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ErasedAddress")]
struct ErasedFields {
    /// `[erased]`
    #[schemars(extend("const" = "[erased]"))]
    name: String,
    /// `[erased]`
    #[schemars(extend("const" = "[erased]"))]
    line1: String,
    /// `[erased]`
    #[schemars(extend("const" = "[erased]"))]
    city: String,
    /// `[erased]`
    #[schemars(extend("const" = "[erased]"))]
    postal_code: String,
    /// `[erased]`
    #[schemars(extend("const" = "[erased]"))]
    country: String,
}

impl Serialize for ErasedAddress {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let erased = || crate::personal::ERASED.to_owned();
        ErasedFields {
            name: erased(),
            line1: erased(),
            city: erased(),
            postal_code: erased(),
            country: erased(),
        }
        .serialize(serializer)
    }
}

impl schemars::JsonSchema for ErasedAddress {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ErasedAddress".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        ErasedFields::json_schema(generator)
    }
}

/// Where an order is in its life (ordered as the life goes).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Placed; waiting for stock and payment.
    Pending,
    /// Stock reserved and payment captured.
    Confirmed,
    /// Being prepared.
    Preparing,
    /// Ready for pick-up by the carrier.
    Ready,
    /// With the carrier.
    OutForDelivery,
    /// Delivered: final.
    Delivered,
    /// Cancelled: final.
    Cancelled,
}

impl OrderStatus {
    /// The wire name (`OUT_FOR_DELIVERY`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Preparing => "PREPARING",
            Self::Ready => "READY",
            Self::OutForDelivery => "OUT_FOR_DELIVERY",
            Self::Delivered => "DELIVERED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Whether the order's life is over (delivered or cancelled): nothing needs its
    /// address any more.
    #[must_use]
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::Cancelled)
    }

    /// Whether a customer or operator may still cancel.
    #[must_use]
    pub const fn is_cancellable(self) -> bool {
        matches!(self, Self::Pending | Self::Confirmed | Self::Preparing)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operator-driven steps after confirmation, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FulfilmentStep {
    /// CONFIRMED → PREPARING.
    Preparing,
    /// PREPARING → READY.
    Ready,
    /// READY → OUT_FOR_DELIVERY (needs a shipment).
    OutForDelivery,
    /// OUT_FOR_DELIVERY → DELIVERED.
    Delivered,
}

impl FulfilmentStep {
    /// The status the order has after this step.
    #[must_use]
    pub const fn status(self) -> OrderStatus {
        match self {
            Self::Preparing => OrderStatus::Preparing,
            Self::Ready => OrderStatus::Ready,
            Self::OutForDelivery => OrderStatus::OutForDelivery,
            Self::Delivered => OrderStatus::Delivered,
        }
    }

    /// The only status this step may start from.
    #[must_use]
    pub const fn from_status(self) -> OrderStatus {
        match self {
            Self::Preparing => OrderStatus::Confirmed,
            Self::Ready => OrderStatus::Preparing,
            Self::OutForDelivery => OrderStatus::Ready,
            Self::Delivered => OrderStatus::OutForDelivery,
        }
    }

    /// Parses a wire name (`PREPARING`, `READY`, `OUT_FOR_DELIVERY`, `DELIVERED`).
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Preparing,
            Self::Ready,
            Self::OutForDelivery,
            Self::Delivered,
        ]
        .into_iter()
        .find(|s| s.status().as_str() == text)
    }
}

/// Why an order was cancelled, machine-readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancellationReason {
    /// A customer or an operator asked.
    Requested,
    /// Inventory could not reserve every line.
    OutOfStock,
    /// Payment was declined.
    PaymentDeclined,
    /// Still pending past the deadline.
    Timeout,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(
        change: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
    ) -> Result<ShippingAddress, AddressError> {
        let mut object = serde_json::json!({
            "name": "Ada Lovelace",
            "line1": "12 St James's Square",
            "city": "London",
            "postalCode": "SW1Y 4JH",
            "country": "GB",
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        change(&mut object);
        ShippingAddress::from_json(&object)
    }

    #[test]
    fn the_provider_gets_the_token_as_sent() {
        let token = PaymentToken::parse("tok_visa").unwrap();
        assert_eq!(token.expose_secret(), "tok_visa");
    }

    #[test]
    fn an_address_line_holds_200_printable_characters_and_no_more() {
        assert!(address(|_| ()).is_ok());
        assert!(address(|a| drop(a.insert("line1".into(), "é".repeat(200).into()))).is_ok());
        let refused = address(|a| drop(a.insert("line1".into(), "é".repeat(201).into()))).unwrap_err();
        assert_eq!(refused.field, "line1");
        let refused = address(|a| drop(a.insert("city".into(), "Lon\u{7}don".into()))).unwrap_err();
        assert_eq!(refused.field, "city");
    }

    #[test]
    fn a_country_is_two_capital_letters() {
        assert!(address(|a| drop(a.insert("country".into(), "US".into()))).is_ok());
        for country in ["us", "Us", "USA", "U", "U1"] {
            let refused = address(|a| drop(a.insert("country".into(), country.into()))).unwrap_err();
            assert_eq!(refused.field, "country", "{country}");
        }
    }

    #[test]
    fn only_an_address_in_clear_is_clear() {
        let clear = PersonalAddress::Clear(address(|_| ()).unwrap());
        let sealed = PersonalAddress::Sealed(crate::personal::Sealed {
            version: 1,
            nonce: "n".into(),
            ciphertext: "c".into(),
        });
        assert!(clear.is_clear());
        assert!(!sealed.is_clear());
        assert!(!PersonalAddress::Erased(ErasedAddress).is_clear());
    }

    #[test]
    fn an_erased_address_is_described_by_its_marker() {
        let schema = serde_json::to_value(schemars::schema_for!(ErasedAddress)).unwrap();
        for field in ["name", "line1", "city", "postalCode", "country"] {
            assert_eq!(
                schema["properties"][field]["const"],
                crate::personal::ERASED,
                "{field}"
            );
        }
    }

    #[test]
    fn statuses_have_wire_names_and_two_are_final() {
        let all = [
            (OrderStatus::Pending, "PENDING", false),
            (OrderStatus::Confirmed, "CONFIRMED", false),
            (OrderStatus::Preparing, "PREPARING", false),
            (OrderStatus::Ready, "READY", false),
            (OrderStatus::OutForDelivery, "OUT_FOR_DELIVERY", false),
            (OrderStatus::Delivered, "DELIVERED", true),
            (OrderStatus::Cancelled, "CANCELLED", true),
        ];
        for (status, name, last) in all {
            assert_eq!(status.as_str(), name);
            assert_eq!(status.to_string(), name);
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                name,
                "the wire name is the serde one"
            );
            assert_eq!(status.is_final(), last, "{name}");
        }
    }

    #[test]
    fn a_fulfilment_step_is_parsed_from_its_status() {
        for step in [
            FulfilmentStep::Preparing,
            FulfilmentStep::Ready,
            FulfilmentStep::OutForDelivery,
            FulfilmentStep::Delivered,
        ] {
            assert_eq!(FulfilmentStep::parse(step.status().as_str()), Some(step));
        }
        assert_eq!(FulfilmentStep::parse("CONFIRMED"), None);
        assert_eq!(FulfilmentStep::parse("preparing"), None);
    }
}
