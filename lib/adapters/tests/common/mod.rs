//! Helpers shared by the adapter suites: stores over fresh DynamoDB Local tables
//! created from `template.yaml`, and event records to append.

#![allow(
    dead_code,
    unreachable_pub,
    unused_macros,
    reason = "each test binary uses a different subset"
)]

use orderflow_adapters::{DynamoEventStore, DynamoIdempotencyStore};
use orderflow_app::{EventRecord, StreamId};
use orderflow_domain::Timestamp;
use orderflow_provision::local;
use uuid::Uuid;

/// An event store over fresh tables.
pub async fn dynamo_event_store() -> DynamoEventStore {
    let client = local::dynamodb_client().await.unwrap();
    let tables = local::fresh_tables(&client, &["EventStoreTable", "SnapshotTable"])
        .await
        .expect("DynamoDB Local is reachable (start it with `make emulators`) and the template's tables are valid");
    DynamoEventStore::new(client, &tables["EventStoreTable"], &tables["SnapshotTable"])
}

/// The event table's name behind a fresh store, with the client.
pub async fn dynamo_event_store_with_names() -> (DynamoEventStore, aws_sdk_dynamodb::Client, String) {
    let client = local::dynamodb_client().await.unwrap();
    let tables = local::fresh_tables(&client, &["EventStoreTable", "SnapshotTable"])
        .await
        .expect("DynamoDB Local is reachable");
    let store = DynamoEventStore::new(
        client.clone(),
        &tables["EventStoreTable"],
        &tables["SnapshotTable"],
    );
    (store, client, tables["EventStoreTable"].clone())
}

/// An idempotency store over a fresh table, with its name.
pub async fn dynamo_idempotency_store() -> (DynamoIdempotencyStore, aws_sdk_dynamodb::Client, String) {
    let client = local::dynamodb_client().await.unwrap();
    let tables = local::fresh_tables(&client, &["IdempotencyTable"])
        .await
        .expect("DynamoDB Local is reachable");
    let name = tables["IdempotencyTable"].clone();
    (DynamoIdempotencyStore::new(client.clone(), &name), client, name)
}

pub fn ts(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

/// A stream no other test uses.
pub fn fresh_stream() -> StreamId {
    StreamId::new("test", Uuid::now_v7().to_string())
}

/// A record with an opaque body (the store never parses bodies).
pub fn record(stream: &StreamId, version: u64, at: Timestamp, body: &str) -> EventRecord {
    EventRecord {
        stream: stream.clone(),
        version,
        event_id: Uuid::now_v7(),
        event_type: "TestHappened".into(),
        occurred_at: at,
        body: body.to_owned(),
    }
}

/// Records for versions `first..first+count` at one instant.
pub fn records(stream: &StreamId, first: u64, count: u64) -> Vec<EventRecord> {
    (first..first + count)
        .map(|v| record(stream, v, ts("2026-11-21T06:30:00Z"), &format!("{{\"n\":{v}}}")))
        .collect()
}

/// Generates one `#[tokio::test]` per suite function for each adapter: the same
/// contract, checked against the in-memory twin and against DynamoDB Local.
macro_rules! against_both {
    (memory: $memory:expr, dynamodb: $dynamo:expr, tests: [$($name:ident),* $(,)?]) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::suite::$name($memory).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::suite::$name($dynamo).await;
                }
            )*
        }
    };
}
