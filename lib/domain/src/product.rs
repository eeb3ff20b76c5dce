//! A product of the catalog, as a decider (stream `product#<sku>`): its listing, its
//! price, and every unit that entered or left the stock through an operator.
//!
//! The counters (`available`, `reserved`, `sold`) live in the catalog table and move
//! in the same transaction that appends these events, so each receipt and write-off
//! and its record cannot part. What the stream adds is the audit trail (who, when,
//! why) and the conservation law `orderflow check` verifies: for every SKU, received −
//! written off = available + reserved + sold.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::Aggregate;
use crate::envelope::{DecodeError, DomainEvent, decode_data};
use crate::ids::Sku;
use crate::money::Money;

/// Most units one receipt or write-off moves.
pub const MAX_STOCK_DELTA: u64 = 1_000_000;
/// Longest name, description or reason, in characters.
pub const MAX_TEXT: usize = 500;

/// What a product is called and costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductDetails {
    /// Display name.
    pub name: String,
    /// Unit price for orders placed from now on.
    pub price: Money,
    /// Longer text, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The product entered the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductListed {
    /// Its SKU.
    pub sku: Sku,
    /// Its name, price and description.
    #[serde(flatten)]
    pub details: ProductDetails,
}

/// The product's name, price or description changed; orders placed before keep the
/// prices they were placed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductRepriced {
    /// Its SKU.
    pub sku: Sku,
    /// The new details.
    #[serde(flatten)]
    pub details: ProductDetails,
    /// The price before.
    pub previous_price: Money,
}

/// Units entered the stock (a delivery, a return to shelf, the initial count).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockReceived {
    /// Its SKU.
    pub sku: Sku,
    /// How many.
    pub quantity: u64,
    /// Why, in the operator's words (`received PO-123`).
    pub reason: String,
}

/// Units left the stock other than by sale (damaged, lost, a recount).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockWrittenOff {
    /// Its SKU.
    pub sku: Sku,
    /// How many.
    pub quantity: u64,
    /// Why.
    pub reason: String,
}

/// Every product event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ProductEvent {
    /// See [`ProductListed`].
    Listed(ProductListed),
    /// See [`ProductRepriced`].
    Repriced(ProductRepriced),
    /// See [`StockReceived`].
    Received(StockReceived),
    /// See [`StockWrittenOff`].
    WrittenOff(StockWrittenOff),
}

/// Wire names.
pub mod names {
    /// `ProductListed`
    pub const LISTED: &str = "ProductListed";
    /// `ProductRepriced`
    pub const REPRICED: &str = "ProductRepriced";
    /// `StockReceived`
    pub const RECEIVED: &str = "StockReceived";
    /// `StockWrittenOff`
    pub const WRITTEN_OFF: &str = "StockWrittenOff";
}

impl DomainEvent for ProductEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Listed(_) => names::LISTED,
            Self::Repriced(_) => names::REPRICED,
            Self::Received(_) => names::RECEIVED,
            Self::WrittenOff(_) => names::WRITTEN_OFF,
        }
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn decode(event_type: &str, version: u32, data: &RawValue) -> Result<Self, DecodeError> {
        use names::*;
        Ok(match event_type {
            LISTED => Self::Listed(decode_data(LISTED, version, 1, data, &[])?),
            REPRICED => Self::Repriced(decode_data(REPRICED, version, 1, data, &[])?),
            RECEIVED => Self::Received(decode_data(RECEIVED, version, 1, data, &[])?),
            WRITTEN_OFF => Self::WrittenOff(decode_data(WRITTEN_OFF, version, 1, data, &[])?),
            other => return Err(DecodeError::UnknownType(other.to_owned())),
        })
    }
}

/// A product as its stream knows it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum ProductState {
    /// Never listed.
    #[default]
    Unlisted,
    /// In the catalog.
    Listed {
        /// Its details now.
        details: ProductDetails,
        /// Units ever received.
        received: u64,
        /// Units ever written off.
        written_off: u64,
    },
}

impl ProductState {
    /// Units received less units written off: what the counters must add up to.
    #[must_use]
    pub const fn net_stock(&self) -> Option<u64> {
        match self {
            Self::Unlisted => None,
            Self::Listed {
                received,
                written_off,
                ..
            } => Some(received.saturating_sub(*written_off)),
        }
    }
}

/// What an operator asks of a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductCommand {
    /// List the product with these details, or change them; `initial_stock` units are
    /// received with the listing (and ignored if it is listed already).
    Describe {
        /// The SKU.
        sku: Sku,
        /// Its details.
        details: ProductDetails,
        /// Units on hand when it is first listed.
        initial_stock: u64,
        /// Why the initial stock is there.
        reason: String,
    },
    /// Units in (positive) or out (negative).
    Adjust {
        /// The SKU.
        sku: Sku,
        /// Units; never zero.
        delta: i64,
        /// Why.
        reason: String,
    },
}

/// Why a product command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    /// Stock moves need a listed product.
    #[error("no such product")]
    NotListed,
    /// A delta of zero, or beyond [`MAX_STOCK_DELTA`].
    #[error("delta: a non-zero whole number of units, at most {MAX_STOCK_DELTA} either way")]
    InvalidDelta,
}

/// The product aggregate.
#[derive(Debug, Clone, Copy)]
pub struct Product;

impl Aggregate for Product {
    const TYPE: &'static str = "product";
    const STATE_SCHEMA: u32 = 1;
    type State = ProductState;
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = ProductError;

    fn decide(state: &ProductState, command: ProductCommand) -> Result<Vec<ProductEvent>, ProductError> {
        match (state, command) {
            (
                ProductState::Unlisted,
                ProductCommand::Describe {
                    sku,
                    details,
                    initial_stock,
                    reason,
                },
            ) => {
                let mut events = vec![ProductEvent::Listed(ProductListed {
                    sku: sku.clone(),
                    details,
                })];
                if initial_stock > 0 {
                    events.push(ProductEvent::Received(StockReceived {
                        sku,
                        quantity: initial_stock,
                        reason,
                    }));
                }
                Ok(events)
            }
            (ProductState::Listed { details: now, .. }, ProductCommand::Describe { sku, details, .. }) => {
                if *now == details {
                    return Ok(vec![]);
                }
                Ok(vec![ProductEvent::Repriced(ProductRepriced {
                    sku,
                    previous_price: now.price,
                    details,
                })])
            }
            (ProductState::Unlisted, ProductCommand::Adjust { .. }) => Err(ProductError::NotListed),
            (ProductState::Listed { .. }, ProductCommand::Adjust { sku, delta, reason }) => {
                let quantity = delta.unsigned_abs();
                if quantity == 0 || quantity > MAX_STOCK_DELTA {
                    return Err(ProductError::InvalidDelta);
                }
                Ok(vec![if delta > 0 {
                    ProductEvent::Received(StockReceived {
                        sku,
                        quantity,
                        reason,
                    })
                } else {
                    ProductEvent::WrittenOff(StockWrittenOff {
                        sku,
                        quantity,
                        reason,
                    })
                }])
            }
        }
    }

    fn evolve(state: ProductState, event: &ProductEvent) -> ProductState {
        match (state, event) {
            (ProductState::Unlisted, ProductEvent::Listed(e)) => ProductState::Listed {
                details: e.details.clone(),
                received: 0,
                written_off: 0,
            },
            (
                ProductState::Listed {
                    received,
                    written_off,
                    ..
                },
                ProductEvent::Repriced(e),
            ) => ProductState::Listed {
                details: e.details.clone(),
                received,
                written_off,
            },
            (
                ProductState::Listed {
                    details,
                    received,
                    written_off,
                },
                ProductEvent::Received(e),
            ) => ProductState::Listed {
                details,
                received: received + e.quantity,
                written_off,
            },
            (
                ProductState::Listed {
                    details,
                    received,
                    written_off,
                },
                ProductEvent::WrittenOff(e),
            ) => ProductState::Listed {
                details,
                received,
                written_off: written_off + e.quantity,
            },
            (state, _) => state,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;
    use crate::Currency;

    fn sku() -> Sku {
        Sku::parse("SKU-1").unwrap()
    }
    fn details(amount: u64) -> ProductDetails {
        ProductDetails {
            name: "Espresso beans".into(),
            price: Money::new(amount, Currency::parse("USD").unwrap()),
            description: None,
        }
    }
    fn describe(amount: u64, initial_stock: u64) -> ProductCommand {
        ProductCommand::Describe {
            sku: sku(),
            details: details(amount),
            initial_stock,
            reason: "initial count".into(),
        }
    }
    fn adjust(delta: i64) -> ProductCommand {
        ProductCommand::Adjust {
            sku: sku(),
            delta,
            reason: "PO-1".into(),
        }
    }
    fn run(commands: &[ProductCommand]) -> (ProductState, Vec<&'static str>) {
        let mut state = ProductState::default();
        let mut types = Vec::new();
        for command in commands {
            for event in Product::decide(&state, command.clone()).unwrap() {
                types.push(event.event_type());
                state = Product::evolve(state, &event);
            }
        }
        (state, types)
    }

    #[test]
    fn listing_with_stock_then_the_same_listing_again_changes_nothing() {
        let (state, _) = run(&[describe(1299, 0), adjust(1_000_000), adjust(-1_000_000)]);
        assert_eq!(
            state.net_stock(),
            Some(0),
            "a delta of MAX_STOCK_DELTA either way is taken"
        );
        let listed = run(&[describe(1299, 0)]).0;
        for beyond in [1_000_001, -1_000_001, 0] {
            assert!(Product::decide(&listed, adjust(beyond)).is_err(), "{beyond}");
        }

        let (state, types) = run(&[describe(1299, 50), describe(1299, 50), describe(1299, 0)]);
        assert_eq!(types, [names::LISTED, names::RECEIVED]);
        assert_eq!(state.net_stock(), Some(50));
    }

    #[test]
    fn a_new_price_is_a_repricing_that_keeps_the_stock() {
        let (state, types) = run(&[describe(1299, 10), describe(1499, 999)]);
        assert_eq!(types, [names::LISTED, names::RECEIVED, names::REPRICED]);
        assert_eq!(
            state.net_stock(),
            Some(10),
            "initial stock only counts at listing"
        );
        let ProductState::Listed { details: now, .. } = state else {
            panic!("listed")
        };
        assert_eq!(now.price.amount, 1499);
    }

    #[test]
    fn receipts_and_write_offs_add_up() {
        let (state, types) = run(&[describe(1299, 0), adjust(50), adjust(-8), adjust(3)]);
        assert_eq!(
            types,
            [
                names::LISTED,
                names::RECEIVED,
                names::WRITTEN_OFF,
                names::RECEIVED
            ]
        );
        assert_eq!(state.net_stock(), Some(45));
    }

    #[test]
    fn stock_needs_a_listing_and_a_real_delta() {
        assert_eq!(
            Product::decide(&ProductState::Unlisted, adjust(5)),
            Err(ProductError::NotListed)
        );
        let (listed, _) = run(&[describe(1299, 0)]);
        for delta in [0, 1_000_001, -1_000_001, i64::MIN] {
            assert_eq!(
                Product::decide(&listed, adjust(delta)),
                Err(ProductError::InvalidDelta),
                "{delta}"
            );
        }
    }

    #[test]
    fn events_round_trip_through_their_wire_form() {
        let (_, _) = run(&[]);
        let events = Product::decide(&ProductState::Unlisted, describe(1299, 7)).unwrap();
        for event in events {
            let json = serde_json::to_string(&event).unwrap();
            let raw = RawValue::from_string(json).unwrap();
            assert_eq!(ProductEvent::decode(event.event_type(), 1, &raw).unwrap(), event);
        }
    }
}
