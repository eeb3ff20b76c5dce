//! What a handler spends on events, each measured beside its baseline in one run.
//!
//! - `handler_cpu`: decode an order's stored events, fold, decide a command and encode
//!   the new event, against `serde_json` parsing and re-serialising the same bytes into
//!   a `Value` (the least any JSON handler does). Target: ≤ 1.5×.
//!   `handler_cpu_v1_upcast` does the same with `OrderPlaced` stored at schema v1, so
//!   the upcaster runs too.
//! - `load_10k`: load a 10,000-event order from DynamoDB Local by folding every event,
//!   against loading the same order from its latest snapshot. Target: ≥ 50× faster.
//!
//! Run with `make bench` (it starts the emulators); criterion's report is in
//! `target/criterion/`.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark harness"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use orderflow_adapters::DynamoEventStore;
use orderflow_app::command::fold_records;
use orderflow_app::{EventRecord, EventStore, Repository, SnapshotRecord, StreamId};
use orderflow_domain::order::{FulfilmentStep, Order, OrderCommand, OrderEvent, OrderState};
use orderflow_domain::{Aggregate, Envelope, RawEnvelope, Timestamp};
use orderflow_provision::local;
use orderflow_testkit::metadata;
use uuid::Uuid;

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/order/");

fn sample(name: &str) -> String {
    std::fs::read_to_string(format!("{SAMPLES}{name}")).unwrap()
}

/// A confirmed, shipped order's history as stored, padded to 20 lines to weigh like a
/// real basket: with `OrderPlaced` at schema v1 (`old`), so the upcaster runs, or at
/// the current version, as every order placed by this build is stored.
fn stored_history(old: bool) -> Vec<String> {
    let lines: Vec<_> = (0..20u64)
        .map(|i| (format!("SKU-{i}"), 1 + i % 3, 100 + i))
        .collect();
    let total: u64 = lines.iter().map(|(_, q, p)| q * p).sum();
    let mut placed: serde_json::Value = if old {
        let mut placed: serde_json::Value = serde_json::from_str(&sample("OrderPlaced.v1.json")).unwrap();
        placed["data"]["lines"] = lines
            .iter()
            .map(|(sku, q, p)| serde_json::json!({"sku": sku, "quantity": q, "unitPriceMinor": p}))
            .collect::<Vec<_>>()
            .into();
        placed["data"]["totalMinor"] = total.into();
        placed
    } else {
        let mut placed: serde_json::Value = serde_json::from_str(&sample("OrderPlaced.json")).unwrap();
        let currency = placed["data"]["total"]["currency"].clone();
        placed["data"]["lines"] = lines
            .iter()
            .map(|(sku, q, p)| {
                serde_json::json!({
                    "sku": sku,
                    "quantity": q,
                    "unitPrice": {"amount": p, "currency": currency},
                    "lineTotal": {"amount": q * p, "currency": currency},
                })
            })
            .collect::<Vec<_>>()
            .into();
        placed["data"]["total"]["amount"] = total.into();
        placed
    };
    placed["version"] = 1.into();
    let mut captured: serde_json::Value = serde_json::from_str(&sample("OrderPaymentCaptured.json")).unwrap();
    captured["data"]["amount"]["amount"] = total.into();
    vec![
        placed.to_string(),
        sample("OrderStockReserved.json"),
        captured.to_string(),
        sample("OrderConfirmed.json"),
        sample("OrderShipmentRecorded.json"),
    ]
}

/// The records a load hands the fold: what the store adapter makes of its items.
fn records(history: &[String]) -> Vec<EventRecord> {
    history
        .iter()
        .map(|body| {
            let raw = RawEnvelope::parse(body).unwrap();
            EventRecord {
                stream: StreamId::new(Order::TYPE, &*raw.aggregate_id),
                version: raw.version,
                event_id: raw.event_id,
                event_type: raw.event_type.to_string(),
                occurred_at: raw.occurred_at,
                body: body.clone(),
            }
        })
        .collect()
}

/// The work of a command handler between the store and the store: the repository's
/// fold over the stored records, the decision, the new event encoded.
fn decide_on(records: &[EventRecord], at: Timestamp) -> String {
    let stream = &records[0].stream;
    let (state, version) = fold_records::<Order>(stream, OrderState::default(), 0, records).unwrap();
    let events = Order::decide(&state, OrderCommand::Advance(FulfilmentStep::Preparing)).unwrap();
    let mut out = String::new();
    for (i, data) in events.into_iter().enumerate() {
        let envelope = Envelope {
            event_id: Uuid::nil(),
            aggregate_type: Order::TYPE.to_owned(),
            aggregate_id: "o".to_owned(),
            version: version + 1 + i as u64,
            occurred_at: at,
            metadata: metadata(),
            replay: None,
            data,
        };
        out.push_str(&envelope.to_json());
    }
    out
}

/// The baseline: parse every stored byte into a `Value` and write it back out.
fn serde_roundtrip(history: &[String]) -> usize {
    history
        .iter()
        .map(|body| {
            let value: serde_json::Value = serde_json::from_str(body).unwrap();
            serde_json::to_string(&value).unwrap().len()
        })
        .sum()
}

fn handler_cpu(c: &mut Criterion) {
    let at = Timestamp::parse("2026-11-21T07:00:00Z").unwrap();
    for (name, old) in [("handler_cpu", false), ("handler_cpu_v1_upcast", true)] {
        let history = stored_history(old);
        let records = records(&history);
        assert!(!decide_on(&records, at).is_empty());
        let mut group = c.benchmark_group(name);
        group.bench_function("orderflow_decode_fold_decide_encode", |b| {
            b.iter(|| decide_on(black_box(&records), at));
        });
        group.bench_function("serde_json_parse_serialize_same_bytes", |b| {
            b.iter(|| serde_roundtrip(black_box(&history)));
        });
        group.finish();
    }
}

const EVENTS: u64 = 10_000;

/// A 10,000-event order in fresh DynamoDB Local tables: `OrderPlaced`, then answers
/// recorded over and over (valid events that the fold applies one by one).
async fn ten_thousand_event_order() -> (Repository<DynamoEventStore>, String) {
    let client = local::dynamodb_client().await.unwrap();
    let tables = local::fresh_tables(&client, &["EventStoreTable", "SnapshotTable"])
        .await
        .expect("DynamoDB Local is reachable: run `make bench`, which starts it");
    let store = DynamoEventStore::new(client, &tables["EventStoreTable"], &tables["SnapshotTable"]);
    let id = Uuid::now_v7().to_string();
    let stream = StreamId::new(Order::TYPE, &id);
    let mut placed: serde_json::Value = serde_json::from_str(&sample("OrderPlaced.json")).unwrap();
    placed["aggregateId"] = id.clone().into();
    let reserved: serde_json::Value = serde_json::from_str(&sample("OrderStockReserved.json")).unwrap();
    let at = Timestamp::parse("2026-11-21T06:30:00Z").unwrap();
    let mut state = OrderState::default();
    let mut batch = Vec::new();
    for version in 1..=EVENTS {
        let mut body = if version == 1 {
            placed.clone()
        } else {
            reserved.clone()
        };
        body["aggregateId"] = id.clone().into();
        body["version"] = version.into();
        let envelope: Envelope<OrderEvent> = Envelope::decode(&body.to_string()).unwrap();
        state = Order::evolve(state, &envelope.data);
        batch.push(EventRecord {
            stream: stream.clone(),
            version,
            event_id: Uuid::now_v7(),
            event_type: envelope.event_type().to_owned(),
            occurred_at: at,
            body: body.to_string(),
        });
        if batch.len() == orderflow_app::MAX_EVENTS_PER_APPEND || version == EVENTS {
            store
                .append(&stream, version - batch.len() as u64, &batch)
                .await
                .unwrap();
            batch.clear();
        }
    }
    store
        .save_snapshot(&SnapshotRecord {
            stream,
            version: EVENTS,
            schema: Order::STATE_SCHEMA,
            body: serde_json::to_string(&state).unwrap(),
        })
        .await
        .unwrap();
    (Repository::new(store, 0), id)
}

fn load_10k(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (repository, id) = runtime.block_on(ten_thousand_event_order());
    let full = runtime
        .block_on(repository.load_without_snapshot::<Order>(&id))
        .unwrap();
    let snap = runtime.block_on(repository.load::<Order>(&id)).unwrap();
    assert_eq!(
        (full.version, snap.version, snap.from_snapshot),
        (EVENTS, EVENTS, Some(EVENTS))
    );
    assert_eq!(full.state, snap.state);

    let mut group = c.benchmark_group("load_10k");
    group.sample_size(10);
    group.bench_function("full_replay", |b| {
        b.to_async(&runtime).iter(|| async {
            repository
                .load_without_snapshot::<Order>(&id)
                .await
                .unwrap()
                .version
        });
    });
    group.bench_function("from_snapshot", |b| {
        b.to_async(&runtime)
            .iter(|| async { repository.load::<Order>(&id).await.unwrap().version });
    });
    group.finish();
}

criterion_group!(benches, handler_cpu, load_10k);
criterion_main!(benches);
