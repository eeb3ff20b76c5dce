//! Command handling on a real store: load (snapshot + events, upcast on read), decide,
//! append at the expected version, re-decide on a lost race. Run against both adapters.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

#[macro_use]
mod common;

use std::sync::Arc;

use common::*;
use orderflow_app::{
    CommandError, CommandService, EventRecord, EventStore, LoadError, Repository, SnapshotRecord, StreamId,
    SystemClock,
};
use orderflow_domain::order::{
    Order, OrderCommand, OrderError, OrderEvent, OrderState, OrderStatus, PaymentToken, PlaceOrder,
    PricedLine,
};
use orderflow_domain::{Aggregate, Currency, CustomerId, Money, OrderId, Quantity, Sku};
use orderflow_testkit::metadata;
use uuid::Uuid;

fn usd(amount: u64) -> Money {
    Money::new(amount, Currency::parse("USD").unwrap())
}

fn place(order_id: OrderId) -> OrderCommand {
    OrderCommand::Place(PlaceOrder {
        order_id,
        customer_id: CustomerId::parse("c-1").unwrap(),
        lines: vec![PricedLine {
            sku: Sku::parse("SKU-1").unwrap(),
            quantity: Quantity::parse(2).unwrap(),
            unit_price: usd(1299),
        }],
        payment: PaymentToken::parse("tok_visa").unwrap().masked(),
        shipping_address: orderflow_testkit::sealed_address(&CustomerId::parse("c-1").unwrap()),
        placed_at: ts("2026-11-21T06:30:00Z"),
    })
}

fn reserved() -> OrderCommand {
    OrderCommand::RecordStockReserved {
        reservation_id: "res-1".into(),
    }
}

fn captured() -> OrderCommand {
    OrderCommand::RecordPaymentCaptured {
        payment_id: "pay-1".into(),
        amount: usd(2598),
    }
}

fn service<S: EventStore>(store: S, snapshot_every: u64) -> CommandService<S, SystemClock> {
    CommandService::new(Repository::new(store, snapshot_every), SystemClock, 5)
}

fn new_order() -> (OrderId, String) {
    let id = OrderId::from_uuid(Uuid::now_v7());
    (id, id.to_string())
}

fn status(state: &OrderState) -> OrderStatus {
    state.placed().unwrap().status
}

/// A clock that reads `skew` off the real one (a writer whose clock is wrong).
#[derive(Debug, Clone, Copy)]
struct SkewedClock {
    skew: jiff::SignedDuration,
}

impl orderflow_app::Clock for SkewedClock {
    fn now(&self) -> orderflow_domain::Timestamp {
        SystemClock.now().plus(self.skew)
    }
}

mod suite {
    use super::*;

    pub(crate) async fn events_never_go_back_in_time_whatever_a_writers_clock_says(
        store: impl EventStore + Clone,
    ) {
        // One writer runs an hour fast, the next one an hour slow (and then a snapshot
        // covers the head, so the last time must be read back, not folded).
        let (id, key) = new_order();
        let fast = CommandService::new(
            Repository::new(store.clone(), 2),
            SkewedClock {
                skew: jiff::SignedDuration::from_hours(1),
            },
            5,
        );
        let slow = CommandService::new(
            Repository::new(store, 2),
            SkewedClock {
                skew: jiff::SignedDuration::from_hours(-1),
            },
            5,
        );
        let placed = fast
            .execute::<Order>(&key, place(id), &metadata(), None)
            .await
            .unwrap();
        fast.execute::<Order>(&key, reserved(), &metadata(), None)
            .await
            .unwrap();
        let captured = slow
            .execute::<Order>(&key, captured(), &metadata(), None)
            .await
            .unwrap();
        assert!(
            captured
                .events
                .iter()
                .all(|e| e.occurred_at >= placed.events[0].occurred_at),
            "stamped no earlier than its predecessors"
        );
        let history = slow.repository().history::<Order>(&key).await.unwrap();
        let times: Vec<_> = history.iter().map(|e| e.occurred_at).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        // The order as of its last event's time holds every event: none was skipped.
        let last = *times.last().unwrap();
        assert_eq!(
            history.iter().take_while(|e| e.occurred_at <= last).count(),
            history.len()
        );
    }

    pub(crate) async fn commands_append_events_with_envelopes(store: impl EventStore) {
        let service = service(store, 0);
        let (id, key) = new_order();
        let placed = service
            .execute::<Order>(&key, place(id), &metadata(), None)
            .await
            .unwrap();
        assert_eq!(placed.version, 1);
        let envelope = &placed.events[0];
        assert_eq!(
            (envelope.aggregate_type.as_str(), envelope.aggregate_id.as_str()),
            ("order", key.as_str())
        );
        assert_eq!(envelope.metadata, metadata());
        assert_eq!(envelope.event_id.get_version_num(), 7, "event ids are UUID v7");

        service
            .execute::<Order>(&key, reserved(), &metadata(), None)
            .await
            .unwrap();
        let confirmed = service
            .execute::<Order>(&key, captured(), &metadata(), None)
            .await
            .unwrap();
        assert_eq!(confirmed.version, 4, "capture after reservation also confirms");
        assert_eq!(status(&confirmed.state), OrderStatus::Confirmed);

        let duplicate = service
            .execute::<Order>(&key, reserved(), &metadata(), None)
            .await
            .unwrap();
        assert!(duplicate.events.is_empty(), "a duplicate answer appends nothing");
        assert_eq!(duplicate.version, 4);

        let history = service.repository().history::<Order>(&key).await.unwrap();
        let types: Vec<_> = history.iter().map(|e| e.event_type()).collect();
        assert_eq!(
            types,
            [
                "OrderPlaced",
                "OrderStockReserved",
                "OrderPaymentCaptured",
                "OrderConfirmed"
            ]
        );
    }

    pub(crate) async fn refused_commands_write_nothing(store: impl EventStore) {
        let service = service(store, 0);
        let (_, key) = new_order();
        let error = service
            .execute::<Order>(&key, OrderCommand::Cancel { detail: None }, &metadata(), None)
            .await
            .unwrap_err();
        assert!(
            matches!(error, CommandError::Domain(OrderError::NotPlaced)),
            "{error:?}"
        );
        let stream = StreamId::new("order", &key);
        assert!(
            service
                .repository()
                .store()
                .load(&stream, 0)
                .await
                .unwrap()
                .is_empty()
        );
    }

    pub(crate) async fn if_match_is_checked_against_the_stored_version(store: impl EventStore) {
        let service = service(store, 0);
        let (id, key) = new_order();
        service
            .execute::<Order>(&key, place(id), &metadata(), None)
            .await
            .unwrap();
        let error = service
            .execute::<Order>(&key, OrderCommand::Cancel { detail: None }, &metadata(), Some(5))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                CommandError::VersionMismatch {
                    expected: 5,
                    actual: 1
                }
            ),
            "{error:?}"
        );
        let ok = service
            .execute::<Order>(&key, OrderCommand::Cancel { detail: None }, &metadata(), Some(1))
            .await
            .unwrap();
        assert_eq!(status(&ok.state), OrderStatus::Cancelled);
    }

    pub(crate) async fn concurrent_answers_are_re_decided_not_lost_or_doubled(
        store: impl EventStore + 'static,
    ) {
        let service = Arc::new(service(store, 0));
        let (id, key) = new_order();
        service
            .execute::<Order>(&key, place(id), &metadata(), None)
            .await
            .unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (service, key) = (service.clone(), key.clone());
                tokio::spawn(async move {
                    let command = if i % 2 == 0 { reserved() } else { captured() };
                    service.execute::<Order>(&key, command, &metadata(), None).await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let history = service.repository().history::<Order>(&key).await.unwrap();
        let types: Vec<_> = history.iter().map(|e| e.event_type()).collect();
        assert_eq!(types.len(), 4, "{types:?}");
        assert_eq!(types.iter().filter(|t| **t == "OrderStockReserved").count(), 1);
        assert_eq!(types.iter().filter(|t| **t == "OrderPaymentCaptured").count(), 1);
        assert_eq!(types.last(), Some(&"OrderConfirmed"));
    }

    pub(crate) async fn a_stream_reads_in_bounded_pages(store: impl EventStore) {
        let service = service(store, 0);
        let (id, key) = new_order();
        for command in [place(id), reserved(), captured()] {
            service
                .execute::<Order>(&key, command, &metadata(), None)
                .await
                .unwrap();
        }
        let repository = service.repository();
        let page = |after, limit| repository.history_page::<Order>(&key, after, limit);
        let versions = |events: Vec<orderflow_domain::Envelope<OrderEvent>>| {
            events.iter().map(|e| e.version).collect::<Vec<_>>()
        };
        assert_eq!(versions(page(0, 3).await.unwrap()), [1, 2, 3]);
        assert_eq!(versions(page(3, 3).await.unwrap()), [4]);
        assert_eq!(versions(page(1, 2).await.unwrap()), [2, 3]);
        assert!(page(4, 3).await.unwrap().is_empty());
    }

    pub(crate) async fn snapshots_are_taken_every_n_events_and_used(store: impl EventStore) {
        let service = service(store, 2);
        let (id, key) = new_order();
        service
            .execute::<Order>(&key, place(id), &metadata(), None)
            .await
            .unwrap();
        service
            .execute::<Order>(&key, reserved(), &metadata(), None)
            .await
            .unwrap();
        service
            .execute::<Order>(&key, captured(), &metadata(), None)
            .await
            .unwrap();
        let stream = StreamId::new("order", &key);
        let snapshot = service
            .repository()
            .store()
            .latest_snapshot(&stream)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            snapshot.version, 4,
            "the append that reached 4 crossed a multiple of 2"
        );
        let loaded = service.repository().load::<Order>(&key).await.unwrap();
        assert_eq!(loaded.from_snapshot, Some(4));
        let replayed = service
            .repository()
            .load_without_snapshot::<Order>(&key)
            .await
            .unwrap();
        assert_eq!(loaded.state, replayed.state);
        assert_eq!(loaded.version, replayed.version);
        // Events after the snapshot are folded on top of it.
        service
            .execute::<Order>(&key, OrderCommand::Cancel { detail: None }, &metadata(), None)
            .await
            .unwrap();
        let loaded = service.repository().load::<Order>(&key).await.unwrap();
        assert_eq!((loaded.from_snapshot, loaded.version), (Some(4), 5));
        assert_eq!(status(&loaded.state), OrderStatus::Cancelled);
    }

    pub(crate) async fn unusable_snapshots_are_ignored(store: impl EventStore + Clone) {
        let service = service(store.clone(), 0);
        // A stream as long as the snapshot interval reads its latest snapshot.
        let reader = Repository::new(store, 1);
        let (id, key) = new_order();
        service
            .execute::<Order>(&key, place(id), &metadata(), None)
            .await
            .unwrap();
        service
            .execute::<Order>(&key, reserved(), &metadata(), None)
            .await
            .unwrap();
        let stream = StreamId::new("order", &key);
        let store = service.repository().store();
        store
            .save_snapshot(&SnapshotRecord {
                stream: stream.clone(),
                version: 1,
                schema: Order::STATE_SCHEMA,
                body: "{not json".into(),
            })
            .await
            .unwrap();
        let loaded = reader.load::<Order>(&key).await.unwrap();
        assert_eq!(
            (loaded.from_snapshot, loaded.version),
            (None, 2),
            "unreadable snapshot ignored"
        );
        store
            .save_snapshot(&SnapshotRecord {
                stream,
                version: 2,
                schema: Order::STATE_SCHEMA + 1,
                body: serde_json::to_string(&loaded.state).unwrap(),
            })
            .await
            .unwrap();
        let again = reader.load::<Order>(&key).await.unwrap();
        assert_eq!(
            again.from_snapshot, None,
            "a snapshot of another state schema is ignored"
        );
        assert_eq!(again.state, loaded.state);
    }

    pub(crate) async fn old_schema_versions_are_upcast_on_load(store: impl EventStore) {
        let (id, key) = new_order();
        let sample = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/order/OrderPlaced.v1.json"
        ))
        .unwrap();
        let mut v1: serde_json::Value = serde_json::from_str(&sample).unwrap();
        v1["aggregateId"] = key.clone().into();
        v1["data"]["orderId"] = key.clone().into();
        let stream = StreamId::new("order", &key);
        let record = EventRecord {
            stream: stream.clone(),
            version: 1,
            event_id: Uuid::now_v7(),
            event_type: "OrderPlaced".into(),
            occurred_at: ts("2026-11-21T06:30:01Z"),
            body: v1.to_string(),
        };
        store.append(&stream, 0, &[record]).await.unwrap();
        let repository = Repository::new(store, 0);
        let loaded = repository.load::<Order>(&key).await.unwrap();
        let order = loaded.state.placed().unwrap();
        assert_eq!(order.order_id, id);
        assert_eq!(order.total, usd(3098));
        assert_eq!(order.lines[0].line_total, usd(2598));
        assert_eq!(order.shipping_address, None);
        let history = repository.history::<Order>(&key).await.unwrap();
        assert!(matches!(&history[0].data, OrderEvent::Placed(p) if p.total == usd(3098)));
    }

    pub(crate) async fn a_corrupt_event_is_a_typed_load_error(store: impl EventStore) {
        let (_, key) = new_order();
        let stream = StreamId::new("order", &key);
        store
            .append(
                &stream,
                0,
                &[record(
                    &stream,
                    1,
                    ts("2026-11-21T06:30:00Z"),
                    "{\"eventType\":1}",
                )],
            )
            .await
            .unwrap();
        let error = Repository::new(store, 0).load::<Order>(&key).await.unwrap_err();
        assert!(
            matches!(error, LoadError::Corrupt { version: 1, .. }),
            "{error:?}"
        );
    }

    pub(crate) async fn a_stale_preloaded_state_costs_a_retry_not_a_wrong_decision(store: impl EventStore) {
        let service = service(store, 0);
        let (id, key) = new_order();
        let placed = service
            .execute::<Order>(&key, place(id), &metadata(), None)
            .await
            .unwrap();
        let stale = placed.into_loaded();
        assert_eq!(stale.version, 1);
        // Another writer moves the order on after the caller loaded it.
        service
            .execute::<Order>(&key, reserved(), &metadata(), None)
            .await
            .unwrap();
        // Decided on the stale state, the answer would be recorded again at version 2;
        // the append conflicts, and it is decided again on what the stream holds.
        let again = service
            .execute_loaded::<Order>(&key, stale, reserved(), &metadata())
            .await
            .unwrap();
        assert!(
            again.events.is_empty(),
            "a duplicate answer is a no-op: {:?}",
            again.events
        );
        assert_eq!(again.version, 2);
        // A fresh preloaded state is used as it is: the next command appends at once.
        let next = service
            .execute_loaded::<Order>(&key, again.into_loaded(), captured(), &metadata())
            .await
            .unwrap();
        assert_eq!(next.version, 4, "payment recorded and the order confirmed");
        assert_eq!(status(&next.state), OrderStatus::Confirmed);
        let reloaded = service.repository().load::<Order>(&key).await.unwrap();
        assert_eq!((reloaded.version, reloaded.state), (next.version, next.state));
    }
}

against_both!(
    memory: orderflow_adapters::MemoryEventStore::new(),
    dynamodb: crate::common::dynamo_event_store().await,
    tests: [
        events_never_go_back_in_time_whatever_a_writers_clock_says,
        commands_append_events_with_envelopes,
        refused_commands_write_nothing,
        if_match_is_checked_against_the_stored_version,
        concurrent_answers_are_re_decided_not_lost_or_doubled,
        snapshots_are_taken_every_n_events_and_used,
        a_stream_reads_in_bounded_pages,
        unusable_snapshots_are_ignored,
        old_schema_versions_are_upcast_on_load,
        a_corrupt_event_is_a_typed_load_error,
        a_stale_preloaded_state_costs_a_retry_not_a_wrong_decision,
    ]
);
