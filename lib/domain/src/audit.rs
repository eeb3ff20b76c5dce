//! The consistency checker's rules, pure: everything the brief promises about one
//! order, read from its four streams (order, inventory, payment, shipment).
//!
//! - the order's stream starts with `OrderPlaced` at version 1, has no gap, and every
//!   event is a transition the order's life allows (each answer recorded once,
//!   confirmation only from pending with stock reserved and payment captured,
//!   fulfilment one step at a time, cancellation only where it may happen, nothing
//!   but a late answer after a final status);
//! - money: at most one capture; a confirmed (or later) order captured once for its
//!   total and not refunded; a cancelled order not left charged;
//! - stock: a cancelled order holds no reservation;
//! - nothing shipped unpaid;
//! - every compensation the order records (refund, stock release, shipment
//!   cancellation) is in its participant's stream at the time recorded; what a
//!   participant did and the order does not record yet is [`unrecorded_outcomes`], a
//!   finding once it is older than the lag objective.

use std::fmt;

use crate::Aggregate;
use crate::envelope::{DomainEvent, Envelope};
use crate::inventory::{InventoryEvent, StockLine};
use crate::order::{
    Compensation, Order, OrderEvent, OrderState, OrderStatus, PaymentAnswer, PlacedOrder, StockAnswer,
};
use crate::payment::PaymentEvent;
use crate::shipment::ShipmentEvent;
use crate::time::Timestamp;

/// One order's streams.
#[derive(Debug, Clone, Copy)]
pub struct OrderStreams<'a> {
    /// `order#<id>`.
    pub order: &'a [Envelope<OrderEvent>],
    /// `inventory#<id>`.
    pub inventory: &'a [Envelope<InventoryEvent>],
    /// `payment#<id>`.
    pub payment: &'a [Envelope<PaymentEvent>],
    /// `shipment#<id>`.
    pub shipment: &'a [Envelope<ShipmentEvent>],
}

/// A broken promise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The order's versions are not 1, 2, 3, …
    Gap {
        /// The version expected.
        expected: u64,
        /// The version found.
        found: u64,
    },
    /// An event the order's life does not allow where it stands.
    ImpossibleTransition {
        /// The event's version.
        version: u64,
        /// Its type.
        event: &'static str,
        /// The status it was applied to.
        from: Option<OrderStatus>,
        /// The status it led to.
        to: Option<OrderStatus>,
    },
    /// More than one capture.
    CapturedTwice {
        /// How many.
        captures: usize,
    },
    /// Confirmed or later, but not captured (or refunded).
    ConfirmedUnpaid {
        /// The status.
        status: OrderStatus,
    },
    /// Captured an amount other than the order's total.
    WrongAmount {
        /// Captured, minor units.
        captured: u64,
        /// The total, minor units.
        total: u64,
    },
    /// Cancelled, still charged.
    CancelledButCharged,
    /// Cancelled, still holding stock.
    CancelledButReserved,
    /// A shipment exists (or the order is with the carrier) without a payment.
    ShippedUnpaid,
    /// The order records a compensation its participant's stream does not hold, or
    /// holds at another time.
    OutcomeUnfounded {
        /// `refund`, `stock release` or `shipment cancellation`.
        outcome: &'static str,
        /// When the order says it happened.
        recorded: Timestamp,
        /// When the participant's stream says it did, if at all.
        happened: Option<Timestamp>,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = |s: &Option<OrderStatus>| s.map_or("nothing", OrderStatus::as_str);
        match self {
            Self::Gap { expected, found } => write!(f, "version {found} where {expected} was due"),
            Self::ImpossibleTransition {
                version,
                event,
                from,
                to,
            } => write!(
                f,
                "impossible transition at v{version}: {event} took {} to {}",
                status(from),
                status(to)
            ),
            Self::CapturedTwice { captures } => write!(f, "captured {captures} times"),
            Self::ConfirmedUnpaid { status } => write!(f, "{status} but not paid"),
            Self::WrongAmount { captured, total } => write!(f, "captured {captured}, total {total}"),
            Self::CancelledButCharged => f.write_str("cancelled but still charged"),
            Self::CancelledButReserved => f.write_str("cancelled but still holding stock"),
            Self::ShippedUnpaid => f.write_str("shipped without a payment"),
            Self::OutcomeUnfounded {
                outcome,
                recorded,
                happened: Some(happened),
            } => write!(
                f,
                "the order records the {outcome} at {recorded}, its participant's stream at {happened}"
            ),
            Self::OutcomeUnfounded {
                outcome, recorded, ..
            } => write!(
                f,
                "the order records the {outcome} at {recorded}, its participant's stream holds none"
            ),
        }
    }
}

fn rank(status: OrderStatus) -> u8 {
    match status {
        OrderStatus::Pending => 0,
        OrderStatus::Confirmed => 1,
        OrderStatus::Preparing => 2,
        OrderStatus::Ready => 3,
        OrderStatus::OutForDelivery => 4,
        OrderStatus::Delivered => 5,
        OrderStatus::Cancelled => 6,
    }
}

/// Whether `event` may take an order from `from` to `to`.
///
/// Answers (stock, payment, shipment) are recorded once per kind whatever the status,
/// a late answer on a cancelled order being a fact compensation needs, and never move
/// the status themselves; every other event follows the order's life.
fn allowed(from: Option<&OrderState>, to: &OrderState, event: &OrderEvent) -> bool {
    let from = from.and_then(OrderState::placed);
    let Some(to) = to.placed() else {
        return false;
    };
    let Some(from) = from else {
        return matches!(event, OrderEvent::Placed(_)) && to.status == OrderStatus::Pending;
    };
    let unchanged = to.status == from.status;
    match event {
        OrderEvent::Placed(_) => false,
        OrderEvent::StockReserved(_) | OrderEvent::StockReservationFailed(_) => {
            unchanged && from.stock == StockAnswer::Awaiting
        }
        OrderEvent::PaymentCaptured(_) | OrderEvent::PaymentDeclined(_) => {
            unchanged && from.payment == PaymentAnswer::Awaiting
        }
        OrderEvent::ShipmentRecorded(_) => {
            unchanged
                && from.shipment.is_none()
                && from.status != OrderStatus::Pending
                && matches!(from.stock, StockAnswer::Reserved { .. })
                && matches!(from.payment, PaymentAnswer::Captured { .. })
        }
        OrderEvent::Confirmed(_) => {
            from.status == OrderStatus::Pending
                && to.status == OrderStatus::Confirmed
                && matches!(to.stock, StockAnswer::Reserved { .. })
                && matches!(to.payment, PaymentAnswer::Captured { .. })
        }
        OrderEvent::Cancelled(_) => from.status.is_cancellable() && to.status == OrderStatus::Cancelled,
        // Compensation outcomes: once each, on a cancelled order, after the answer
        // they undo.
        OrderEvent::PaymentRefunded(_) => {
            compensating(from, to)
                && from.compensation.refunded_at.is_none()
                && matches!(from.payment, PaymentAnswer::Captured { .. })
        }
        OrderEvent::StockReleased(_) => {
            compensating(from, to)
                && from.compensation.stock_released_at.is_none()
                && matches!(from.stock, StockAnswer::Reserved { .. })
        }
        OrderEvent::ShipmentCancelled(_) => {
            compensating(from, to)
                && from.compensation.shipment_cancelled_at.is_none()
                && from.shipment.is_some()
        }
        // Fulfilment moves one step at a time, from confirmed to delivered.
        OrderEvent::FulfilmentAdvanced(_) => {
            rank(from.status) >= rank(OrderStatus::Confirmed)
                && rank(to.status) == rank(from.status) + 1
                && rank(to.status) <= rank(OrderStatus::Delivered)
        }
    }
}

fn compensating(from: &PlacedOrder, to: &PlacedOrder) -> bool {
    from.status == OrderStatus::Cancelled && to.status == OrderStatus::Cancelled
}

/// The order stream's own findings: gaps and impossible transitions.
#[must_use]
pub fn check_transitions(order: &[Envelope<OrderEvent>]) -> Vec<Finding> {
    let mut findings = Vec::new();
    transitions(order, &mut findings);
    findings
}

fn transitions(order: &[Envelope<OrderEvent>], findings: &mut Vec<Finding>) -> OrderState {
    let mut state: Option<OrderState> = None;
    for (expected, envelope) in (1u64..).zip(order) {
        if envelope.version != expected {
            findings.push(Finding::Gap {
                expected,
                found: envelope.version,
            });
        }
        let before = state.clone();
        let after = Order::evolve(before.clone().unwrap_or_default(), &envelope.data);
        if !allowed(before.as_ref(), &after, &envelope.data) {
            findings.push(Finding::ImpossibleTransition {
                version: envelope.version,
                event: envelope.data.event_type(),
                from: before.as_ref().and_then(OrderState::placed).map(|o| o.status),
                to: after.placed().map(|o| o.status),
            });
        }
        state = Some(after);
    }
    state.unwrap_or_default()
}

/// What the payment stream says: (captures, captured amount, refunded).
fn payments(payment: &[Envelope<PaymentEvent>]) -> (usize, u64, bool) {
    payment
        .iter()
        .fold((0, 0, false), |(n, amount, refunded), e| match &e.data {
            PaymentEvent::Captured(c) => (n + 1, amount + c.amount.amount, refunded),
            PaymentEvent::Refunded(_) => (n, amount, true),
            _ => (n, amount, refunded),
        })
}

/// The stock an order's inventory stream holds now: reserved, and neither released
/// nor sold.
#[must_use]
pub fn held_stock(inventory: &[Envelope<InventoryEvent>]) -> Vec<StockLine> {
    let mut held = Vec::new();
    for event in inventory {
        match &event.data {
            InventoryEvent::Reserved(r) => held.clone_from(&r.lines),
            InventoryEvent::Released(_) | InventoryEvent::Sold(_) => held.clear(),
            _ => {}
        }
    }
    held
}

/// The stock an order's inventory stream sold: gone out for delivery with the order.
#[must_use]
pub fn sold_stock(inventory: &[Envelope<InventoryEvent>]) -> Vec<StockLine> {
    inventory
        .iter()
        .find_map(|e| match &e.data {
            InventoryEvent::Sold(s) => Some(s.lines.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Everything wrong with one order.
#[must_use]
pub fn audit_order(streams: OrderStreams<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let state = transitions(streams.order, &mut findings);
    let Some(order) = state.placed() else {
        return findings;
    };
    let (captures, captured, refunded) = payments(streams.payment);
    let charged = captures > 0 && !refunded;
    if captures > 1 {
        findings.push(Finding::CapturedTwice { captures });
    }
    match order.status {
        OrderStatus::Cancelled => {
            if charged {
                findings.push(Finding::CancelledButCharged);
            }
            if !held_stock(streams.inventory).is_empty() {
                findings.push(Finding::CancelledButReserved);
            }
        }
        OrderStatus::Pending => {}
        status => {
            if !charged {
                findings.push(Finding::ConfirmedUnpaid { status });
            } else if captured != order.total.amount {
                findings.push(Finding::WrongAmount {
                    captured,
                    total: order.total.amount,
                });
            }
        }
    }
    let shipment_live = streams.shipment.iter().fold(false, |live, e| match e.data {
        ShipmentEvent::Created(_) => true,
        ShipmentEvent::Cancelled(_) => false,
        ShipmentEvent::Voided(_) => live,
    });
    let with_carrier = matches!(order.status, OrderStatus::OutForDelivery | OrderStatus::Delivered);
    if (shipment_live || with_carrier) && !charged {
        findings.push(Finding::ShippedUnpaid);
    }
    let happened = outcomes(streams);
    for (outcome, recorded, happened) in [
        ("refund", order.compensation.refunded_at, happened.refunded_at),
        (
            "stock release",
            order.compensation.stock_released_at,
            happened.stock_released_at,
        ),
        (
            "shipment cancellation",
            order.compensation.shipment_cancelled_at,
            happened.shipment_cancelled_at,
        ),
    ] {
        if let Some(recorded) = recorded
            && happened != Some(recorded)
        {
            findings.push(Finding::OutcomeUnfounded {
                outcome,
                recorded,
                happened,
            });
        }
    }
    findings
}

/// The compensations the participants' streams hold, each at the time its event
/// happened: what the order should record.
#[must_use]
pub fn outcomes(streams: OrderStreams<'_>) -> Compensation {
    Compensation {
        refunded_at: streams
            .payment
            .iter()
            .find(|e| matches!(e.data, PaymentEvent::Refunded(_)))
            .map(|e| e.occurred_at),
        stock_released_at: streams
            .inventory
            .iter()
            .find(|e| matches!(e.data, InventoryEvent::Released(_)))
            .map(|e| e.occurred_at),
        shipment_cancelled_at: streams
            .shipment
            .iter()
            .find(|e| matches!(e.data, ShipmentEvent::Cancelled(_)))
            .map(|e| e.occurred_at),
    }
}

/// The compensations a participant made that the order does not record yet, each
/// with the time it happened: expected only while the saga is on its way.
#[must_use]
pub fn unrecorded_outcomes(streams: OrderStreams<'_>) -> Vec<(&'static str, Timestamp)> {
    let recorded = transitions(streams.order, &mut Vec::new())
        .placed()
        .map(|o| o.compensation)
        .unwrap_or_default();
    let happened = outcomes(streams);
    [
        ("refund", happened.refunded_at, recorded.refunded_at),
        (
            "stock release",
            happened.stock_released_at,
            recorded.stock_released_at,
        ),
        (
            "shipment cancellation",
            happened.shipment_cancelled_at,
            recorded.shipment_cancelled_at,
        ),
    ]
    .into_iter()
    .filter_map(|(what, happened, recorded)| match (happened, recorded) {
        (Some(at), None) => Some((what, at)),
        _ => None,
    })
    .collect()
}

#[cfg(test)]
mod tests;
