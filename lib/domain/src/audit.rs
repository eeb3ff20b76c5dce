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

    fn envelope<E>(aggregate_type: &str, version: u64, second: i64, data: E) -> Envelope<E> {
        Envelope {
            event_id: uuid::Uuid::from_u128(u128::from(version) + 1000),
            aggregate_type: aggregate_type.into(),
            aggregate_id: "0192f0a0-7c1e-7a3b-9c2d-1e2f3a4b5c6d".into(),
            version,
            occurred_at: Timestamp::from_micros(1_800_000_000_000_000 + second * 1_000_000).unwrap(),
            metadata: crate::Metadata {
                correlation_id: "c".into(),
                causation_id: "c".into(),
                actor: "test".into(),
            },
            replay: None,
            data,
        }
    }

    /// An order confirmed, shipped, cancelled and compensated, with its participants'
    /// streams; the order records the outcomes at `recorded` (seconds).
    #[allow(clippy::type_complexity, reason = "four streams")]
    fn compensated(
        recorded: [i64; 3],
    ) -> (
        Vec<Envelope<OrderEvent>>,
        Vec<Envelope<InventoryEvent>>,
        Vec<Envelope<PaymentEvent>>,
        Vec<Envelope<ShipmentEvent>>,
    ) {
        use crate::inventory::{StockReleased, StockReserved};
        use crate::order::events::{
            OrderCancelled, OrderPaymentRefunded, OrderShipmentCancelled, OrderStockReleased,
        };
        use crate::payment::PaymentRefunded;
        use crate::shipment::{ShipmentCancelled, ShipmentCreated};
        let mut order = sample_history(5);
        let OrderEvent::Placed(placed) = order[0].data.clone() else {
            unreachable!()
        };
        let id = placed.order_id;
        let at = |s: i64| Timestamp::from_micros(1_800_000_000_000_000 + s * 1_000_000).unwrap();
        for data in [
            OrderEvent::Cancelled(OrderCancelled {
                reason: crate::order::CancellationReason::Requested,
                detail: None,
            }),
            OrderEvent::PaymentRefunded(OrderPaymentRefunded {
                payment_id: "pay-1".into(),
                amount: placed.total,
                refunded_at: at(recorded[0]),
            }),
            OrderEvent::StockReleased(OrderStockReleased {
                released_at: at(recorded[1]),
            }),
            OrderEvent::ShipmentCancelled(OrderShipmentCancelled {
                shipment_id: "shp-1".into(),
                cancelled_at: at(recorded[2]),
            }),
        ] {
            let version = order.len() as u64 + 1;
            order.push(envelope("order", version, 10, data));
        }
        let lines: Vec<StockLine> = placed
            .lines
            .iter()
            .map(|l| StockLine {
                sku: l.sku.clone(),
                quantity: l.quantity,
            })
            .collect();
        let inventory = vec![
            envelope(
                "inventory",
                1,
                0,
                InventoryEvent::Reserved(StockReserved {
                    order_id: id,
                    lines: lines.clone(),
                }),
            ),
            envelope(
                "inventory",
                2,
                2,
                InventoryEvent::Released(StockReleased { order_id: id, lines }),
            ),
        ];
        let mut payment = captured(&order, placed.total.amount);
        payment.push(envelope(
            "payment",
            2,
            1,
            PaymentEvent::Refunded(PaymentRefunded {
                order_id: id,
                payment_id: "pay-1".into(),
                amount: placed.total,
            }),
        ));
        let shipment = vec![
            envelope(
                "shipment",
                1,
                0,
                ShipmentEvent::Created(ShipmentCreated {
                    order_id: id,
                    shipment_id: "shp-1".into(),
                    tracking_number: "TRK1".into(),
                }),
            ),
            envelope(
                "shipment",
                2,
                3,
                ShipmentEvent::Cancelled(ShipmentCancelled {
                    order_id: id,
                    shipment_id: "shp-1".into(),
                }),
            ),
        ];
        (order, inventory, payment, shipment)
    }

    #[test]
    fn recorded_outcomes_are_checked_against_the_participants_streams() {
        let (order, inventory, payment, shipment) = compensated([1, 2, 3]);
        let streams = OrderStreams {
            order: &order,
            inventory: &inventory,
            payment: &payment,
            shipment: &shipment,
        };
        assert_eq!(audit_order(streams), []);
        assert_eq!(unrecorded_outcomes(streams), []);

        // The order says the stock came back at another time than inventory says.
        let (order, ..) = compensated([1, 5, 3]);
        let findings = audit_order(OrderStreams {
            order: &order,
            ..streams
        });
        assert!(
            matches!(
                findings.as_slice(),
                [Finding::OutcomeUnfounded {
                    outcome: "stock release",
                    happened: Some(_),
                    ..
                }]
            ),
            "{findings:?}"
        );

        // The order records a refund the payment stream does not hold (and the
        // provider's charge stands).
        let findings = audit_order(OrderStreams {
            payment: &payment[..1],
            ..streams
        });
        assert!(findings.contains(&Finding::CancelledButCharged), "{findings:?}");
        assert!(
            findings.iter().any(|f| matches!(
                f,
                Finding::OutcomeUnfounded {
                    outcome: "refund",
                    happened: None,
                    ..
                }
            )),
            "{findings:?}"
        );
    }

    #[test]
    fn what_a_participant_did_and_the_order_lacks_is_unrecorded() {
        let (order, inventory, payment, shipment) = compensated([1, 2, 3]);
        // The order's stream without its three outcome events.
        let streams = OrderStreams {
            order: &order[..order.len() - 3],
            inventory: &inventory,
            payment: &payment,
            shipment: &shipment,
        };
        let at = |s: i64| Timestamp::from_micros(1_800_000_000_000_000 + s * 1_000_000).unwrap();
        assert_eq!(
            unrecorded_outcomes(streams),
            [
                ("refund", at(1)),
                ("stock release", at(2)),
                ("shipment cancellation", at(3))
            ]
        );
        // An outcome out of place in the order's own stream is an impossible transition.
        let mut early = order[..5].to_vec();
        let mut refund = order[6].clone();
        refund.version = 6;
        early.push(refund);
        assert!(
            check_transitions(&early).iter().any(|f| matches!(
                f,
                Finding::ImpossibleTransition {
                    event: "OrderPaymentRefunded",
                    ..
                }
            )),
            "a refund on a confirmed order"
        );
    }

    #[test]
    fn every_event_recorded_twice_in_a_row_is_an_impossible_transition() {
        use crate::order::given_when_then::compensated_history;
        for history in [sample_history(9), compensated_history()] {
            assert_eq!(check_transitions(&history), [], "the history itself is sound");
            for twice in 0..history.len() {
                let mut doubled = history[..=twice].to_vec();
                let mut again = history[twice].clone();
                again.version += 1;
                doubled.push(again.clone());
                let findings = check_transitions(&doubled);
                assert!(
                    findings.iter().any(|f| matches!(
                        f,
                        Finding::ImpossibleTransition { version, .. } if *version == again.version
                    )),
                    "{} recorded twice: {findings:?}",
                    again.data.event_type()
                );
            }
        }
    }

    #[test]
    fn a_finding_reads_as_what_is_wrong() {
        assert_eq!(
            Finding::Gap {
                expected: 3,
                found: 5
            }
            .to_string(),
            "version 5 where 3 was due"
        );
        assert_eq!(
            Finding::ImpossibleTransition {
                version: 4,
                event: "OrderConfirmed",
                from: None,
                to: Some(OrderStatus::Cancelled),
            }
            .to_string(),
            "impossible transition at v4: OrderConfirmed took nothing to CANCELLED"
        );
    }

    #[test]
    fn held_stock_is_what_was_reserved_until_released_or_sold_and_sold_stock_what_left() {
        use crate::inventory::{StockLine, StockReleased, StockReserved, StockSold};
        let order_id = crate::OrderId::parse("0192f0a0-7c1e-7a3b-9c2d-1e2f3a4b5c6d").unwrap();
        let lines = vec![StockLine {
            sku: crate::Sku::parse("SKU-1").unwrap(),
            quantity: crate::Quantity::parse(2).unwrap(),
        }];
        let reserved = envelope(
            "inventory",
            1,
            1,
            InventoryEvent::Reserved(StockReserved {
                order_id,
                lines: lines.clone(),
            }),
        );
        let released = envelope(
            "inventory",
            2,
            2,
            InventoryEvent::Released(StockReleased {
                order_id,
                lines: lines.clone(),
            }),
        );
        let sold = envelope(
            "inventory",
            2,
            2,
            InventoryEvent::Sold(StockSold {
                order_id,
                lines: lines.clone(),
            }),
        );
        assert_eq!(held_stock(std::slice::from_ref(&reserved)), lines);
        assert_eq!(sold_stock(std::slice::from_ref(&reserved)), []);
        assert_eq!(held_stock(&[reserved.clone(), released]), []);
        assert_eq!(held_stock(&[reserved.clone(), sold.clone()]), []);
        assert_eq!(sold_stock(&[reserved, sold]), lines);
    }
}
