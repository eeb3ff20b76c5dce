//! Shipping over the in-memory event store: any delivery of an order's confirmation and
//! cancellation (duplicated, reordered, the cancellation first) creates at most one
//! shipment, and none survives a cancelled order.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use orderflow_adapters::MemoryEventStore;
use orderflow_app::{EventRecord, EventStore, Repository, StreamId, SystemClock};
use orderflow_domain::order::{OrderCommand, OrderEvent};
use orderflow_domain::{CustomerId, OrderId};
use orderflow_lambda::Consumer;
use orderflow_testkit::{at, decided, metadata, place, usd};
use proptest::prelude::*;
use shipping::ShippingService;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_delivery_ships_once_at_most_and_never_a_cancelled_order(
        cancelled in any::<bool>(),
        picks in prop::collection::vec(0usize..8, 0..12),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let order_id = OrderId::from_uuid(uuid::Uuid::now_v7());
            let customer = CustomerId::parse("c-1").unwrap();
            let mut commands = vec![
                place(order_id, &customer, 2, 500, at(0)),
                OrderCommand::RecordStockReserved { reservation_id: "r".into() },
                OrderCommand::RecordPaymentCaptured { payment_id: "p".into(), amount: usd(1000) },
            ];
            if cancelled {
                commands.push(OrderCommand::Cancel { detail: None });
            }
            let history = decided(order_id, commands.into_iter().zip((1..).map(at)));
            let store = MemoryEventStore::new();
            let records: Vec<EventRecord> = history.iter().map(EventRecord::from_envelope).collect();
            store.append(&StreamId::new("order", order_id.to_string()), 0, &records).await.unwrap();
            let service = ShippingService::new(Repository::new(store.clone(), 0), SystemClock);

            // Shipping reads the confirmation and the cancellation.
            let read: Vec<_> = history
                .iter()
                .filter(|e| matches!(e.data, OrderEvent::Confirmed(_) | OrderEvent::Cancelled(_)))
                .collect();
            prop_assert_eq!(read.len(), 1 + usize::from(cancelled));
            let deliveries = picks.iter().map(|i| read[i % read.len()]).chain(read.iter().copied());
            for envelope in deliveries {
                let outcome = service.on(envelope.clone(), metadata()).await;
                prop_assert!(outcome.is_ok(), "{:?}", outcome.err());
            }

            let shipment: Vec<String> = store
                .committed_since(0)
                .unwrap()
                .into_iter()
                .filter(|r| r.stream.aggregate_type == "shipment")
                .map(|r| r.event_type)
                .collect();
            prop_assert!(shipment.iter().filter(|t| *t == "ShipmentCreated").count() <= 1, "{:?}", shipment);
            if cancelled {
                prop_assert!(
                    shipment.last().is_none_or(|t| t == "ShipmentCancelled" || t == "ShipmentVoided"),
                    "a cancelled order keeps no shipment: {:?}", shipment
                );
            } else {
                prop_assert_eq!(&shipment, &["ShipmentCreated"]);
            }
            Ok(())
        })?;
    }
}
