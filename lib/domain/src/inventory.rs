//! Inventory's reservation for one order, as a decider (stream `inventory#<orderId>`).
//!
//! The stock counters themselves live in the catalog table; they move in the same
//! DynamoDB transaction that appends these events, so a reservation and its record
//! cannot part. The decider only says what may happen: reserve once, release once,
//! and a cancellation that arrives before the reservation leaves a tombstone
//! (`ReservationVoided`) so the late `OrderPlaced` reserves nothing.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::Aggregate;
use crate::envelope::{DecodeError, DomainEvent, decode_data};
use crate::ids::{OrderId, Quantity, Sku};

/// One reserved line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockLine {
    /// What.
    pub sku: Sku,
    /// How many.
    pub quantity: Quantity,
}

/// Why a reservation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShortageReason {
    /// Fewer available than ordered.
    InsufficientStock,
    /// Not in the catalog.
    UnknownSku,
}

impl ShortageReason {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InsufficientStock => "insufficient_stock",
            Self::UnknownSku => "unknown_sku",
        }
    }
}

/// Every line was reserved, all or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockReserved {
    /// The order.
    pub order_id: OrderId,
    /// What was reserved.
    pub lines: Vec<StockLine>,
}

/// Nothing was reserved: a line was short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockReservationFailed {
    /// The order.
    pub order_id: OrderId,
    /// The short SKU.
    pub sku: Option<Sku>,
    /// Why.
    pub reason: ShortageReason,
}

/// A reservation was given back after the order was cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockReleased {
    /// The order.
    pub order_id: OrderId,
    /// What was released.
    pub lines: Vec<StockLine>,
}

/// The reserved units left with the order when it went out for delivery: they move
/// from reserved to sold, and the order can no longer be cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockSold {
    /// The order.
    pub order_id: OrderId,
    /// What was sold.
    pub lines: Vec<StockLine>,
}

/// The order was cancelled before anything was reserved: the tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationVoided {
    /// The order.
    pub order_id: OrderId,
}

/// Every event of a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum InventoryEvent {
    /// See [`StockReserved`].
    Reserved(StockReserved),
    /// See [`StockReservationFailed`].
    ReservationFailed(StockReservationFailed),
    /// See [`StockReleased`].
    Released(StockReleased),
    /// See [`ReservationVoided`].
    Voided(ReservationVoided),
    /// See [`StockSold`].
    Sold(StockSold),
}

/// Wire names.
pub mod names {
    /// `StockReserved`
    pub const RESERVED: &str = "StockReserved";
    /// `StockReservationFailed`
    pub const RESERVATION_FAILED: &str = "StockReservationFailed";
    /// `StockReleased`
    pub const RELEASED: &str = "StockReleased";
    /// `ReservationVoided`
    pub const VOIDED: &str = "ReservationVoided";
    /// `StockSold`
    pub const SOLD: &str = "StockSold";
}

impl DomainEvent for InventoryEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Reserved(_) => names::RESERVED,
            Self::ReservationFailed(_) => names::RESERVATION_FAILED,
            Self::Released(_) => names::RELEASED,
            Self::Voided(_) => names::VOIDED,
            Self::Sold(_) => names::SOLD,
        }
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn decode(event_type: &str, version: u32, data: &RawValue) -> Result<Self, DecodeError> {
        use names::*;
        Ok(match event_type {
            RESERVED => Self::Reserved(decode_data(RESERVED, version, 1, data, &[])?),
            RESERVATION_FAILED => {
                Self::ReservationFailed(decode_data(RESERVATION_FAILED, version, 1, data, &[])?)
            }
            RELEASED => Self::Released(decode_data(RELEASED, version, 1, data, &[])?),
            VOIDED => Self::Voided(decode_data(VOIDED, version, 1, data, &[])?),
            SOLD => Self::Sold(decode_data(SOLD, version, 1, data, &[])?),
            other => return Err(DecodeError::UnknownType(other.to_owned())),
        })
    }
}

/// Where one order's reservation stands.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum Reservation {
    /// Nothing yet.
    #[default]
    Open,
    /// Stock is held for the order.
    Held {
        /// What is held.
        lines: Vec<StockLine>,
    },
    /// The reservation failed; nothing is held.
    Failed,
    /// Held, then given back.
    Released,
    /// Cancelled before anything was held: nothing ever will be.
    Voided,
    /// Held, then gone out with the order.
    Sold {
        /// What was sold.
        lines: Vec<StockLine>,
    },
}

/// What inventory is asked to do for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryCommand {
    /// Hold `lines` (the caller's transaction checks and moves the counters).
    Reserve {
        /// The order.
        order_id: OrderId,
        /// Its lines.
        lines: Vec<StockLine>,
    },
    /// Record that the hold failed.
    RecordShortage {
        /// The order.
        order_id: OrderId,
        /// The short SKU.
        sku: Option<Sku>,
        /// Why.
        reason: ShortageReason,
    },
    /// The order was cancelled: give back whatever is held, or leave a tombstone.
    Release {
        /// The order.
        order_id: OrderId,
    },
    /// The order went out for delivery: what is held is sold.
    Sell {
        /// The order.
        order_id: OrderId,
    },
}

/// Inventory refuses nothing: every command either applies or is a duplicate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreachable")]
pub enum InventoryError {}

/// The reservation aggregate.
#[derive(Debug, Clone, Copy)]
pub struct Inventory;

impl Aggregate for Inventory {
    const TYPE: &'static str = "inventory";
    const STATE_SCHEMA: u32 = 1;
    type State = Reservation;
    type Command = InventoryCommand;
    type Event = InventoryEvent;
    type Error = InventoryError;

    fn decide(state: &Reservation, command: InventoryCommand) -> Result<Vec<InventoryEvent>, InventoryError> {
        Ok(match (state, command) {
            (Reservation::Open, InventoryCommand::Reserve { order_id, lines }) => {
                vec![InventoryEvent::Reserved(StockReserved { order_id, lines })]
            }
            (
                Reservation::Open,
                InventoryCommand::RecordShortage {
                    order_id,
                    sku,
                    reason,
                },
            ) => {
                vec![InventoryEvent::ReservationFailed(StockReservationFailed {
                    order_id,
                    sku,
                    reason,
                })]
            }
            (Reservation::Open, InventoryCommand::Release { order_id }) => {
                vec![InventoryEvent::Voided(ReservationVoided { order_id })]
            }
            (Reservation::Held { lines }, InventoryCommand::Release { order_id }) => {
                vec![InventoryEvent::Released(StockReleased {
                    order_id,
                    lines: lines.clone(),
                })]
            }
            (Reservation::Held { lines }, InventoryCommand::Sell { order_id }) => {
                vec![InventoryEvent::Sold(StockSold {
                    order_id,
                    lines: lines.clone(),
                })]
            }
            // Duplicates, reservations after a tombstone, a sale of nothing held:
            // nothing happens.
            _ => vec![],
        })
    }

    fn evolve(state: Reservation, event: &InventoryEvent) -> Reservation {
        match (state, event) {
            (Reservation::Open, InventoryEvent::Reserved(e)) => Reservation::Held {
                lines: e.lines.clone(),
            },
            (Reservation::Open, InventoryEvent::ReservationFailed(_)) => Reservation::Failed,
            (Reservation::Open, InventoryEvent::Voided(_)) => Reservation::Voided,
            (Reservation::Held { .. }, InventoryEvent::Released(_)) => Reservation::Released,
            (Reservation::Held { .. }, InventoryEvent::Sold(e)) => Reservation::Sold {
                lines: e.lines.clone(),
            },
            (state, _) => state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shortage_reason_has_its_wire_name() {
        for reason in [ShortageReason::InsufficientStock, ShortageReason::UnknownSku] {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        }
        assert_eq!(ShortageReason::UnknownSku.as_str(), "unknown_sku");
    }

    fn order() -> OrderId {
        OrderId::parse("0192f0a0-7c1e-7a3b-9c2d-1e2f3a4b5c6d").unwrap()
    }
    fn lines() -> Vec<StockLine> {
        vec![StockLine {
            sku: Sku::parse("SKU-1").unwrap(),
            quantity: Quantity::parse(2).unwrap(),
        }]
    }
    fn reserve() -> InventoryCommand {
        InventoryCommand::Reserve {
            order_id: order(),
            lines: lines(),
        }
    }
    fn release() -> InventoryCommand {
        InventoryCommand::Release { order_id: order() }
    }
    fn run(commands: &[InventoryCommand]) -> (Reservation, Vec<&'static str>) {
        let mut state = Reservation::default();
        let mut types = Vec::new();
        for command in commands {
            for event in Inventory::decide(&state, command.clone()).unwrap() {
                types.push(event.event_type());
                state = Inventory::evolve(state, &event);
            }
        }
        (state, types)
    }

    #[test]
    fn reserve_then_release() {
        let (state, types) = run(&[reserve(), reserve(), release(), release()]);
        assert_eq!(
            types,
            [names::RESERVED, names::RELEASED],
            "duplicates decide nothing"
        );
        assert_eq!(state, Reservation::Released);
    }

    #[test]
    fn what_is_held_is_sold_once_and_then_cannot_be_released() {
        let sell = InventoryCommand::Sell { order_id: order() };
        let (state, types) = run(&[reserve(), sell.clone(), sell.clone(), release()]);
        assert_eq!(types, [names::RESERVED, names::SOLD]);
        assert_eq!(state, Reservation::Sold { lines: lines() });
        let (state, types) = run(&[sell, reserve()]);
        assert_eq!(types, [names::RESERVED], "nothing held, nothing sold");
        assert!(matches!(state, Reservation::Held { .. }));
    }

    #[test]
    fn a_cancel_before_the_reservation_leaves_a_tombstone() {
        let (state, types) = run(&[release(), reserve(), release()]);
        assert_eq!(types, [names::VOIDED], "the late reservation is never made");
        assert_eq!(state, Reservation::Voided);
    }

    #[test]
    fn a_failed_reservation_has_nothing_to_release() {
        let shortage = InventoryCommand::RecordShortage {
            order_id: order(),
            sku: Some(Sku::parse("SKU-1").unwrap()),
            reason: ShortageReason::InsufficientStock,
        };
        let (state, types) = run(&[shortage.clone(), reserve(), release(), shortage]);
        assert_eq!(types, [names::RESERVATION_FAILED]);
        assert_eq!(state, Reservation::Failed);
    }
}
