//! The projector over the in-memory event store and read model: every delivery order
//! of an order's events, duplicated and shuffled, ends at the fold of the store. In
//! milliseconds, so it runs hundreds of cases where the emulator suites run a few.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use orderflow_adapters::{MemoryEventStore, MemoryOrderViews};
use orderflow_app::{EventRecord, EventStore, OrderViews, Repository, StreamId};
use orderflow_domain::order::view::OrderView;
use orderflow_domain::order::{FulfilmentStep, OrderCommand, OrderEvent};
use orderflow_domain::{CustomerId, Envelope, OrderId};
use orderflow_testkit::{at, decided, place, usd};
use projector::{Outcome, Projector};
use proptest::prelude::*;

/// An order placed, confirmed, shipped, moved on, cancelled and compensated.
fn history(order_id: OrderId) -> Vec<Envelope<OrderEvent>> {
    let customer = CustomerId::parse("c-1").unwrap();
    decided(
        order_id,
        [
            place(order_id, &customer, 2, 500, at(0)),
            OrderCommand::RecordStockReserved {
                reservation_id: "r".into(),
            },
            OrderCommand::RecordPaymentCaptured {
                payment_id: "p".into(),
                amount: usd(1000),
            },
            OrderCommand::RecordShipment {
                shipment_id: "s".into(),
                tracking_number: "t".into(),
            },
            OrderCommand::Advance(FulfilmentStep::Preparing),
            OrderCommand::Cancel { detail: None },
            OrderCommand::RecordPaymentRefunded {
                payment_id: "p".into(),
                amount: usd(1000),
                at: at(20),
            },
            OrderCommand::RecordStockReleased {
                reservation_id: "r".into(),
                at: at(21),
            },
            OrderCommand::RecordShipmentCancelled {
                shipment_id: "s".into(),
                at: at(22),
            },
        ]
        .into_iter()
        .zip((1..).map(at)),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_delivery_of_an_orders_events_ends_at_the_fold_of_the_store(
        picks in prop::collection::vec(0usize..64, 1..30),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let order_id = OrderId::from_uuid(uuid::Uuid::now_v7());
            let history = history(order_id);
            let store = MemoryEventStore::new();
            let records: Vec<EventRecord> = history.iter().map(EventRecord::from_envelope).collect();
            store
                .append(&StreamId::new("order", order_id.to_string()), 0, &records)
                .await
                .unwrap();
            let views = MemoryOrderViews::new();
            let projector = Projector::new(Repository::new(store, 0), views.clone());
            // Random copies in a random order, then every event once (the queue's
            // redeliveries end with each message delivered).
            let mut deliveries: Vec<&Envelope<OrderEvent>> =
                picks.iter().map(|i| &history[i % history.len()]).collect();
            deliveries.extend(history.iter());
            for envelope in deliveries {
                let before = views.get(order_id).await.unwrap().map(|s| s.view.version);
                let outcome = projector.project(envelope).await.unwrap();
                let after = views.get(order_id).await.unwrap().map(|s| s.view.version);
                prop_assert!(after >= before, "a view never moves backward");
                if outcome == Outcome::Duplicate {
                    prop_assert_eq!(after, before);
                }
            }
            let stored = views.get(order_id).await.unwrap().unwrap().view;
            prop_assert_eq!(Some(stored), OrderView::fold(&history));
            Ok(())
        })?;
    }
}
