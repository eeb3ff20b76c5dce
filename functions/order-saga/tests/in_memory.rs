//! The saga over the in-memory event store: the participants' answers and
//! compensations, duplicated and in any order, end in one order history the
//! consistency checker's rules accept, with every compensation shown on the order.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use order_saga::{Answer, OrderSaga};
use orderflow_adapters::MemoryEventStore;
use orderflow_app::{Repository, SystemClock};
use orderflow_domain::audit::check_transitions;
use orderflow_domain::inventory::{InventoryEvent, StockLine, StockReleased, StockReserved};
use orderflow_domain::order::view::OrderView;
use orderflow_domain::order::{Order, OrderStatus};
use orderflow_domain::payment::{PaymentCaptured, PaymentEvent, PaymentRefunded};
use orderflow_domain::{Envelope, OrderId, Quantity, Sku};
use orderflow_testkit::{at, envelope, metadata, placed_order, store_order, usd};
use proptest::prelude::*;

fn participant<E>(
    aggregate_type: &str,
    order_id: OrderId,
    version: u64,
    second: i64,
    data: E,
) -> Envelope<E> {
    envelope(aggregate_type, &order_id.to_string(), version, at(second), data)
}

/// The order in the store: placed, and cancelled at once if `cancelled`.
async fn order_in(store: &MemoryEventStore, order_id: OrderId, cancelled: bool) {
    store_order(store, &placed_order(order_id, 2, 500, at(0), cancelled)).await;
}

/// What inventory and payment say about the order: reserved and captured, then (when
/// it was cancelled) released and refunded.
fn answers(order_id: OrderId, cancelled: bool) -> Vec<Envelope<Answer>> {
    let lines = vec![StockLine {
        sku: Sku::parse("SKU-1").unwrap(),
        quantity: Quantity::parse(2).unwrap(),
    }];
    let mut answers = vec![
        participant(
            "inventory",
            order_id,
            1,
            1,
            Answer::Inventory(InventoryEvent::Reserved(StockReserved {
                order_id,
                lines: lines.clone(),
            })),
        ),
        participant(
            "payment",
            order_id,
            1,
            2,
            Answer::Payment(PaymentEvent::Captured(PaymentCaptured {
                order_id,
                payment_id: "pay-1".into(),
                amount: usd(1000),
            })),
        ),
    ];
    if cancelled {
        answers.push(participant(
            "inventory",
            order_id,
            2,
            3,
            Answer::Inventory(InventoryEvent::Released(StockReleased { order_id, lines })),
        ));
        answers.push(participant(
            "payment",
            order_id,
            2,
            4,
            Answer::Payment(PaymentEvent::Refunded(PaymentRefunded {
                order_id,
                payment_id: "pay-1".into(),
                amount: usd(1000),
            })),
        ));
    }
    answers
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn answers_in_any_order_and_number_settle_the_order_once(
        cancelled in any::<bool>(),
        picks in prop::collection::vec(0usize..16, 0..12),
        order in Just((0..4).collect::<Vec<usize>>()).prop_shuffle(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let order_id = OrderId::from_uuid(uuid::Uuid::now_v7());
            let store = MemoryEventStore::new();
            order_in(&store, order_id, cancelled).await;
            let saga = OrderSaga::new(Repository::new(store.clone(), 0), SystemClock);
            let answers = answers(order_id, cancelled);
            // Copies in any order, then each once more in a shuffled order.
            let mut deliveries: Vec<&Envelope<Answer>> = picks.iter().map(|i| &answers[i % answers.len()]).collect();
            deliveries.extend(order.iter().filter_map(|i| answers.get(*i)));
            for answer in deliveries {
                saga.record(answer, &metadata()).await.unwrap();
            }
            let history = Repository::new(store, 0).history::<Order>(&order_id.to_string()).await.unwrap();
            prop_assert_eq!(check_transitions(&history), vec![]);
            let view = OrderView::fold(&history).unwrap();
            if cancelled {
                prop_assert_eq!(view.status, OrderStatus::Cancelled);
                let payment = view.payment.unwrap();
                prop_assert_eq!((payment.status.as_str(), payment.refunded_at), ("REFUNDED", Some(at(4))));
                prop_assert_eq!((view.stock.as_str(), view.stock_released_at), ("RELEASED", Some(at(3))));
            } else {
                prop_assert_eq!(view.status, OrderStatus::Confirmed);
                prop_assert_eq!(view.payment.unwrap().status, "CAPTURED");
                prop_assert_eq!(view.stock, "RESERVED");
            }
            // Each answer and each compensation recorded once.
            prop_assert_eq!(history.len(), if cancelled { 6 } else { 4 });
            Ok(())
        })?;
    }
}

/// What the saga is sent reads back as written: each answer carries its participant's
/// own schema version, so a body the saga re-sends (a replay, a DLQ redrive) decodes.
#[test]
fn an_answer_reads_back_as_written() {
    let order_id = OrderId::from_uuid(uuid::Uuid::now_v7());
    for answer in answers(order_id, true) {
        let json = answer.to_json();
        let again = Envelope::<Answer>::decode(&json).unwrap();
        assert_eq!(again.to_json(), json);
    }
}
