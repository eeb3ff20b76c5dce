//! A command that does not fit the order's state, in the domain's words.

use std::fmt;

use super::*;
use crate::ids::Sku;
use crate::money::{Money, MoneyError};

/// A command that does not fit the order's state, in the domain's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// The order was never placed.
    #[error("the order does not exist")]
    NotPlaced,
    /// `Place` on an existing order.
    #[error("the order already exists")]
    AlreadyPlaced,
    /// The command is not allowed in the order's current status.
    #[error("cannot {action} an order that is {state}")]
    InvalidTransition {
        /// The status the order is in.
        state: OrderStatus,
        /// What was attempted.
        action: Action,
    },
    /// An order without lines.
    #[error("an order needs at least one line")]
    NoLines,
    /// More than [`MAX_LINES`] lines.
    #[error("an order has at most {MAX_LINES} lines, got {0}")]
    TooManyLines(usize),
    /// The same SKU on two lines.
    #[error("SKU {0} appears on more than one line")]
    DuplicateSku(Sku),
    /// Prices in different currencies, or a total that overflows.
    #[error("cannot total the order: {0}")]
    Money(#[from] MoneyError),
    /// Payment captured something other than the total.
    #[error("captured {captured} but the order total is {total}")]
    AmountMismatch {
        /// What payment reported.
        captured: Money,
        /// What the order costs.
        total: Money,
    },
    /// OUT_FOR_DELIVERY before shipping created a shipment, or a shipment's
    /// cancellation before its creation was recorded on the order.
    #[error("no shipment has been created for the order yet")]
    ShipmentMissing,
}

/// What a rejected command tried to do, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Record a shipment.
    RecordShipment,
    /// Move on to a fulfilment step.
    Advance(FulfilmentStep),
    /// Cancel.
    Cancel,
    /// Record a compensation (refund, release, shipment cancellation).
    Compensate(&'static str),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RecordShipment => f.write_str("record a shipment for"),
            Self::Advance(step) => write!(f, "move to {}", step.status()),
            Self::Cancel => f.write_str("cancel"),
            Self::Compensate(what) => write!(f, "record the {what} of"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_transition_says_what_was_tried_on_what() {
        let refused = |action| {
            OrderError::InvalidTransition {
                state: OrderStatus::Cancelled,
                action,
            }
            .to_string()
        };
        assert_eq!(
            refused(Action::RecordShipment),
            "cannot record a shipment for an order that is CANCELLED"
        );
        assert_eq!(
            refused(Action::Advance(FulfilmentStep::Ready)),
            "cannot move to READY an order that is CANCELLED"
        );
        assert_eq!(
            refused(Action::Cancel),
            "cannot cancel an order that is CANCELLED"
        );
        assert_eq!(
            refused(Action::Compensate("refund")),
            "cannot record the refund of an order that is CANCELLED"
        );
    }
}
