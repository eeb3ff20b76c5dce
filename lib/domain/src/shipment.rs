//! Shipping's shipment for one order, as a decider (stream `shipment#<orderId>`).
//!
//! Created once when the order is confirmed; cancelled when the order is cancelled
//! after that; and a cancellation seen first leaves a tombstone so a late
//! `OrderConfirmed` ships nothing.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::Aggregate;
use crate::envelope::{DecodeError, DomainEvent, decode_data};
use crate::ids::OrderId;

/// A shipment was created with a carrier tracking number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentCreated {
    /// The order.
    pub order_id: OrderId,
    /// The shipment.
    pub shipment_id: String,
    /// The carrier's tracking number.
    pub tracking_number: String,
}

/// The shipment was cancelled because the order was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentCancelled {
    /// The order.
    pub order_id: OrderId,
    /// The shipment.
    pub shipment_id: String,
}

/// The order was cancelled before any shipment: the tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentVoided {
    /// The order.
    pub order_id: OrderId,
}

/// Every shipment event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ShipmentEvent {
    /// See [`ShipmentCreated`].
    Created(ShipmentCreated),
    /// See [`ShipmentCancelled`].
    Cancelled(ShipmentCancelled),
    /// See [`ShipmentVoided`].
    Voided(ShipmentVoided),
}

/// Wire names.
pub mod names {
    /// `ShipmentCreated`
    pub const CREATED: &str = "ShipmentCreated";
    /// `ShipmentCancelled`
    pub const CANCELLED: &str = "ShipmentCancelled";
    /// `ShipmentVoided`
    pub const VOIDED: &str = "ShipmentVoided";
}

impl DomainEvent for ShipmentEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Created(_) => names::CREATED,
            Self::Cancelled(_) => names::CANCELLED,
            Self::Voided(_) => names::VOIDED,
        }
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn decode(event_type: &str, version: u32, data: &RawValue) -> Result<Self, DecodeError> {
        use names::*;
        Ok(match event_type {
            CREATED => Self::Created(decode_data(CREATED, version, 1, data, &[])?),
            CANCELLED => Self::Cancelled(decode_data(CANCELLED, version, 1, data, &[])?),
            VOIDED => Self::Voided(decode_data(VOIDED, version, 1, data, &[])?),
            other => return Err(DecodeError::UnknownType(other.to_owned())),
        })
    }
}

/// Where one order's shipment stands.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum ShipmentState {
    /// Nothing yet.
    #[default]
    None,
    /// Created and live.
    #[serde(rename_all = "camelCase")]
    Created {
        /// The shipment.
        shipment_id: String,
    },
    /// Created, then cancelled.
    Cancelled,
    /// Cancelled before creation: nothing will ship.
    Voided,
}

/// What shipping is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShipmentCommand {
    /// The order was confirmed: ship it.
    Create(ShipmentCreated),
    /// The order was cancelled.
    Cancel {
        /// The order.
        order_id: OrderId,
    },
}

/// Shipping refuses nothing: a command applies or is a duplicate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreachable")]
pub enum ShipmentError {}

/// The shipment aggregate.
#[derive(Debug, Clone, Copy)]
pub struct Shipment;

impl Aggregate for Shipment {
    const TYPE: &'static str = "shipment";
    const STATE_SCHEMA: u32 = 1;
    type State = ShipmentState;
    type Command = ShipmentCommand;
    type Event = ShipmentEvent;
    type Error = ShipmentError;

    fn decide(state: &ShipmentState, command: ShipmentCommand) -> Result<Vec<ShipmentEvent>, ShipmentError> {
        Ok(match (state, command) {
            (ShipmentState::None, ShipmentCommand::Create(created)) => vec![ShipmentEvent::Created(created)],
            (ShipmentState::None, ShipmentCommand::Cancel { order_id }) => {
                vec![ShipmentEvent::Voided(ShipmentVoided { order_id })]
            }
            (ShipmentState::Created { shipment_id }, ShipmentCommand::Cancel { order_id }) => {
                vec![ShipmentEvent::Cancelled(ShipmentCancelled {
                    order_id,
                    shipment_id: shipment_id.clone(),
                })]
            }
            _ => vec![],
        })
    }

    fn evolve(state: ShipmentState, event: &ShipmentEvent) -> ShipmentState {
        match (state, event) {
            (ShipmentState::None, ShipmentEvent::Created(e)) => ShipmentState::Created {
                shipment_id: e.shipment_id.clone(),
            },
            (ShipmentState::None, ShipmentEvent::Voided(_)) => ShipmentState::Voided,
            (ShipmentState::Created { .. }, ShipmentEvent::Cancelled(_)) => ShipmentState::Cancelled,
            (state, _) => state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> OrderId {
        OrderId::parse("0192f0a0-7c1e-7a3b-9c2d-1e2f3a4b5c6d").unwrap()
    }
    fn create() -> ShipmentCommand {
        ShipmentCommand::Create(ShipmentCreated {
            order_id: order(),
            shipment_id: "shp-1".into(),
            tracking_number: "OF1".into(),
        })
    }
    fn cancel() -> ShipmentCommand {
        ShipmentCommand::Cancel { order_id: order() }
    }
    fn run(commands: &[ShipmentCommand]) -> (ShipmentState, Vec<&'static str>) {
        let mut state = ShipmentState::default();
        let mut types = Vec::new();
        for command in commands {
            for event in Shipment::decide(&state, command.clone()).unwrap() {
                types.push(event.event_type());
                state = Shipment::evolve(state, &event);
            }
        }
        (state, types)
    }

    #[test]
    fn created_once_then_cancelled_once() {
        let (state, types) = run(&[create(), create(), cancel(), cancel()]);
        assert_eq!(types, [names::CREATED, names::CANCELLED]);
        assert_eq!(state, ShipmentState::Cancelled);
    }

    #[test]
    fn a_cancel_first_means_nothing_ships() {
        let (state, types) = run(&[cancel(), create()]);
        assert_eq!(types, [names::VOIDED]);
        assert_eq!(state, ShipmentState::Voided);
    }
}
