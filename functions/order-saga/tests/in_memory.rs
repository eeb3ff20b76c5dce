//! The saga over the in-memory event store: the participants' answers and
//! compensations, duplicated and in any order, end in one order history the
//! consistency checker's rules accept, with every compensation shown on the order.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use order_saga::{Answer, OrderSaga};
use orderflow_adapters::MemoryEventStore;
use orderflow_app::{EventRecord, EventStore, Repository, StreamId, SystemClock};
use orderflow_domain::audit::check_transitions;
use orderflow_domain::inventory::{InventoryEvent, StockLine, StockReleased, StockReserved};
use orderflow_domain::order::view::OrderView;
use orderflow_domain::order::{
    Order, OrderCommand, OrderState, OrderStatus, PaymentToken, PlaceOrder, PricedLine,
};
use orderflow_domain::payment::{PaymentCaptured, PaymentEvent, PaymentRefunded};
use orderflow_domain::{
    Aggregate, Currency, CustomerId, Envelope, Metadata, Money, OrderId, Quantity, Sku, Timestamp,
};
use proptest::prelude::*;

fn metadata() -> Metadata {
    Metadata {
        correlation_id: "c".into(),
        causation_id: "c".into(),
        actor: "test".into(),
    }
}

fn at(second: i64) -> Timestamp {
    Timestamp::from_micros(1_800_000_000_000_000 + second * 1_000_000).unwrap()
}

fn usd(amount: u64) -> Money {
    Money::new(amount, Currency::parse("USD").unwrap())
}

fn envelope<E>(aggregate_type: &str, order_id: OrderId, version: u64, second: i64, data: E) -> Envelope<E> {
    Envelope {
        event_id: uuid::Uuid::now_v7(),
        aggregate_type: aggregate_type.into(),
        aggregate_id: order_id.to_string(),
        version,
        occurred_at: at(second),
        metadata: metadata(),
        replay: None,
        data,
    }
}

/// The order in the store: placed, and cancelled at once if `cancelled`.
async fn order_in(store: &MemoryEventStore, order_id: OrderId, cancelled: bool) {
    let mut commands = vec![OrderCommand::Place(PlaceOrder {
        order_id,
        customer_id: CustomerId::parse("c-1").unwrap(),
        lines: vec![PricedLine {
            sku: Sku::parse("SKU-1").unwrap(),
            quantity: Quantity::parse(2).unwrap(),
            unit_price: usd(500),
        }],
        payment: PaymentToken::parse("tok_visa").unwrap().masked(),
        shipping_address: serde_json::from_str(
            r#"{"name":"A","line1":"1 St","city":"C","postalCode":"1","country":"US"}"#,
        )
        .unwrap(),
        placed_at: at(0),
    })];
    if cancelled {
        commands.push(OrderCommand::Cancel { detail: None });
    }
    let mut state = OrderState::default();
    let mut records = Vec::new();
    for command in commands {
        for data in Order::decide(&state, command).unwrap() {
            state = Order::evolve(state, &data);
            let version = records.len() as u64 + 1;
            records.push(EventRecord::from_envelope(&envelope(
                "order", order_id, version, 0, data,
            )));
        }
    }
    store
        .append(&StreamId::new("order", order_id.to_string()), 0, &records)
        .await
        .unwrap();
}

/// What inventory and payment say about the order: reserved and captured, then (when
/// it was cancelled) released and refunded.
fn answers(order_id: OrderId, cancelled: bool) -> Vec<Envelope<Answer>> {
    let lines = vec![StockLine {
        sku: Sku::parse("SKU-1").unwrap(),
        quantity: Quantity::parse(2).unwrap(),
    }];
    let mut answers = vec![
        envelope(
            "inventory",
            order_id,
            1,
            1,
            Answer::Inventory(InventoryEvent::Reserved(StockReserved {
                order_id,
                lines: lines.clone(),
            })),
        ),
        envelope(
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
        answers.push(envelope(
            "inventory",
            order_id,
            2,
            3,
            Answer::Inventory(InventoryEvent::Released(StockReleased { order_id, lines })),
        ));
        answers.push(envelope(
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
