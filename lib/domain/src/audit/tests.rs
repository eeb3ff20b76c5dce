//! The audit's rules, each shown on a history that breaks it and one that keeps it.

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
