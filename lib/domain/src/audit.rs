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
//! - nothing shipped unpaid.

use std::fmt;

use crate::Aggregate;
use crate::envelope::{DomainEvent, Envelope};
use crate::inventory::{InventoryEvent, StockLine};
use crate::order::{Order, OrderEvent, OrderState, OrderStatus, PaymentAnswer, StockAnswer};
use crate::payment::PaymentEvent;
use crate::shipment::ShipmentEvent;

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
        // Fulfilment moves one step at a time, from confirmed to delivered.
        OrderEvent::FulfilmentAdvanced(_) => {
            rank(from.status) >= rank(OrderStatus::Confirmed)
                && rank(to.status) == rank(from.status) + 1
                && rank(to.status) <= rank(OrderStatus::Delivered)
        }
    }
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

/// The stock an order's inventory stream holds now: reserved and not released.
#[must_use]
pub fn held_stock(inventory: &[Envelope<InventoryEvent>]) -> Vec<StockLine> {
    let mut held = Vec::new();
    for event in inventory {
        match &event.data {
            InventoryEvent::Reserved(r) => held.clone_from(&r.lines),
            InventoryEvent::Released(_) => held.clear(),
            _ => {}
        }
    }
    held
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
    findings
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;
    use crate::order::given_when_then::sample_history;
    use crate::payment::PaymentCaptured;

    fn captured(order: &[Envelope<OrderEvent>], amount: u64) -> Vec<Envelope<PaymentEvent>> {
        let placed = &order[0];
        let OrderEvent::Placed(p) = &placed.data else {
            unreachable!()
        };
        vec![Envelope {
            event_id: uuid::Uuid::from_u128(99),
            aggregate_type: "payment".into(),
            aggregate_id: placed.aggregate_id.clone(),
            version: 1,
            occurred_at: placed.occurred_at,
            metadata: placed.metadata.clone(),
            replay: None,
            data: PaymentEvent::Captured(PaymentCaptured {
                order_id: p.order_id,
                payment_id: "pay-1".into(),
                amount: crate::Money::new(amount, p.total.currency),
            }),
        }]
    }

    fn audit(order: &[Envelope<OrderEvent>], payment: &[Envelope<PaymentEvent>]) -> Vec<Finding> {
        audit_order(OrderStreams {
            order,
            inventory: &[],
            payment,
            shipment: &[],
        })
    }

    fn total(order: &[Envelope<OrderEvent>]) -> u64 {
        match &order[0].data {
            OrderEvent::Placed(p) => p.total.amount,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_delivered_and_paid_order_has_no_finding() {
        let order = sample_history(9);
        assert_eq!(audit(&order, &captured(&order, total(&order))), []);
    }

    #[test]
    fn skipping_confirmation_is_an_impossible_transition() {
        let mut order = sample_history(9);
        order.remove(3); // OrderConfirmed
        for (version, e) in (1u64..).zip(order.iter_mut()) {
            e.version = version;
        }
        let findings = audit(&order, &captured(&order, total(&order)));
        assert!(
            findings.iter().any(|f| matches!(
                f,
                Finding::ImpossibleTransition {
                    from: Some(OrderStatus::Pending),
                    to: Some(OrderStatus::Preparing),
                    ..
                }
            )),
            "{findings:?}"
        );
    }

    #[test]
    fn a_missing_version_is_a_gap_and_anything_after_delivery_is_impossible() {
        let mut order = sample_history(9);
        order.remove(1);
        assert!(
            audit(&order, &captured(&order, total(&order))).contains(&Finding::Gap {
                expected: 2,
                found: 3
            })
        );

        let mut order = sample_history(9);
        let mut again = order[8].clone();
        again.version = 10;
        order.push(again);
        let findings = audit(&order, &captured(&order, total(&order)));
        assert!(
            matches!(
                findings.as_slice(),
                [Finding::ImpossibleTransition { version: 10, .. }]
            ),
            "{findings:?}"
        );
    }

    #[test]
    fn unpaid_or_short_paid_delivery_is_found() {
        let order = sample_history(9);
        assert_eq!(
            audit(&order, &[]),
            [
                Finding::ConfirmedUnpaid {
                    status: OrderStatus::Delivered
                },
                Finding::ShippedUnpaid
            ]
        );
        let short = audit(&order, &captured(&order, total(&order) - 1));
        assert_eq!(
            short,
            [Finding::WrongAmount {
                captured: total(&order) - 1,
                total: total(&order)
            }]
        );
        let mut twice = captured(&order, total(&order));
        twice.extend(captured(&order, total(&order)));
        assert!(audit(&order, &twice).contains(&Finding::CapturedTwice { captures: 2 }));
    }
}
