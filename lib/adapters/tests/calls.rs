//! Every AWS call is counted by service and operation, retries included, against
//! DynamoDB Local.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::sync::Arc;

use orderflow_adapters::calls::{CallCounter, Calls, Counted};

#[tokio::test]
async fn every_call_a_counted_client_sends_is_counted_by_service_and_operation() {
    let client = orderflow_provision::local::dynamodb_client().await.unwrap();
    let calls = Arc::new(Calls::default());
    let counted = client.counted_by(CallCounter::into(calls.clone()));
    counted.list_tables().limit(1).send().await.unwrap();
    counted.list_tables().limit(1).send().await.unwrap();
    // A call that fails is still a call.
    assert!(
        counted
            .describe_table()
            .table_name("orderflow-no-such-table")
            .send()
            .await
            .is_err()
    );
    // The client it was made from counts nothing.
    client.list_tables().limit(1).send().await.unwrap();
    let snapshot = calls.snapshot();
    let by_operation: Vec<(&str, u64)> = snapshot.iter().map(|((_, op), n)| (op.as_str(), *n)).collect();
    assert_eq!(
        by_operation,
        vec![("DescribeTable", 1), ("ListTables", 2)],
        "{snapshot:?}"
    );
    assert!(
        snapshot
            .keys()
            .all(|(service, _)| service.eq_ignore_ascii_case("dynamodb")),
        "{snapshot:?}"
    );
    assert_eq!(calls.total(), 3);

    // A client counted as a function's (as `orderflow-dev up` runs several in one process)
    // adds to the same tally, under that function.
    let inventory = client.counted_by(CallCounter::into(calls.clone()).of("inventory"));
    inventory.list_tables().limit(1).send().await.unwrap();
    let by_function: Vec<(String, String, u64)> = calls
        .by_function()
        .into_iter()
        .map(|(call, n)| (call.function, call.operation, n))
        .collect();
    assert_eq!(
        by_function,
        vec![
            (String::new(), "DescribeTable".to_owned(), 1),
            (String::new(), "ListTables".to_owned(), 2),
            ("inventory".to_owned(), "ListTables".to_owned(), 1),
        ]
    );
    assert_eq!(
        calls
            .snapshot()
            .get(&("DynamoDB".to_owned(), "ListTables".to_owned())),
        Some(&3)
    );
    assert_eq!(calls.total(), 4);
}

#[tokio::test]
async fn a_client_built_counted_counts_into_the_process_wide_tally() {
    // Each test runs in its own process: the global tally holds this test's calls alone.
    let config = orderflow_provision::local::sdk_config().await;
    let client = <aws_sdk_dynamodb::Client as Counted>::counted_from(&config);
    client.list_tables().limit(1).send().await.unwrap();
    // The configuration's own clients count nothing.
    aws_sdk_dynamodb::Client::new(&config)
        .list_tables()
        .limit(1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        Calls::global().snapshot().into_iter().collect::<Vec<_>>(),
        [(("DynamoDB".to_owned(), "ListTables".to_owned()), 1)]
    );
}

#[tokio::test]
async fn a_retry_is_another_call() {
    // The first ListTables is answered, then its response is lost: the SDK sends it again.
    let faults = orderflow_provision::faults::Faults::lose_responses("ListTables", 1);
    let client = orderflow_provision::faults::dynamodb_client_with(faults.clone())
        .await
        .unwrap();
    let calls = Arc::new(Calls::default());
    let counted = client.counted_by(CallCounter::into(calls.clone()));
    counted.list_tables().limit(1).send().await.unwrap();
    assert_eq!(faults.injected(), 1);
    assert_eq!(calls.total(), 2, "{:?}", calls.snapshot());
}

/// A stream of `events` events of one order (placed, then stock answers recorded over
/// and over), appended straight to `store`.
async fn order_stream(store: &orderflow_adapters::DynamoEventStore, events: u64) -> String {
    use orderflow_app::{EventRecord, EventStore, StreamId};
    use orderflow_domain::order::OrderEvent;
    use orderflow_domain::{Envelope, Timestamp};
    let sample = |name: &str| -> serde_json::Value {
        let path = format!("{}/../../events/order/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let id = uuid::Uuid::now_v7().to_string();
    let stream = StreamId::new("order", &id);
    let (placed, reserved) = (sample("OrderPlaced.json"), sample("OrderStockReserved.json"));
    let at = Timestamp::parse("2026-11-21T06:30:00Z").unwrap();
    let records: Vec<EventRecord> = (1..=events)
        .map(|version| {
            let mut body = if version == 1 {
                placed.clone()
            } else {
                reserved.clone()
            };
            body["aggregateId"] = id.clone().into();
            body["version"] = version.into();
            let envelope: Envelope<OrderEvent> = Envelope::decode(&body.to_string()).unwrap();
            EventRecord {
                stream: stream.clone(),
                version,
                event_id: uuid::Uuid::now_v7(),
                event_type: envelope.event_type().to_owned(),
                occurred_at: at,
                body: body.to_string(),
            }
        })
        .collect();
    for (i, chunk) in records.chunks(orderflow_app::MAX_EVENTS_PER_APPEND).enumerate() {
        let after = (i * orderflow_app::MAX_EVENTS_PER_APPEND) as u64;
        store.append(&stream, after, chunk).await.unwrap();
    }
    id
}

/// The floor of a load: an order's stream (a dozen events) is one `Query`, with no
/// snapshot read; only a stream as long as the snapshot interval reads its snapshot.
#[tokio::test]
async fn a_short_stream_loads_in_one_call_and_a_long_one_from_its_snapshot() {
    use orderflow_app::{EventStore, Repository, SnapshotRecord, StreamId};
    use orderflow_domain::Aggregate;
    use orderflow_domain::order::Order;
    let client = orderflow_provision::local::dynamodb_client().await.unwrap();
    let tables = orderflow_provision::local::fresh_tables(&client, &["EventStoreTable", "SnapshotTable"])
        .await
        .unwrap();
    let calls = Arc::new(Calls::default());
    let counted = client.counted_by(CallCounter::into(calls.clone()));
    let store = orderflow_adapters::DynamoEventStore::new(
        counted.clone(),
        &tables["EventStoreTable"],
        &tables["SnapshotTable"],
    );
    let repository = Repository::new(store.clone(), 10);

    let short = order_stream(&store, 9).await;
    let before = calls.snapshot();
    let loaded = repository.load::<Order>(&short).await.unwrap();
    assert_eq!((loaded.version, loaded.from_snapshot), (9, None));
    let after = calls.snapshot();
    let query = ("DynamoDB".to_owned(), "Query".to_owned());
    let made = |before: &std::collections::BTreeMap<(String, String), u64>,
                after: &std::collections::BTreeMap<(String, String), u64>| {
        after.values().sum::<u64>() - before.values().sum::<u64>()
    };
    assert_eq!(made(&before, &after), 1, "{after:?}");
    assert_eq!(after[&query] - before.get(&query).copied().unwrap_or(0), 1);

    // 25 events with a snapshot at 20: the first page (10) is full, so the snapshot is
    // read and used, then the 5 events after it: three calls, 15 events not decoded.
    let long = order_stream(&store, 25).await;
    let state = repository.load_without_snapshot::<Order>(&long).await.unwrap();
    // Every event after the first records the same answer, so the state at 20 is the
    // state at 25.
    let at_twenty = state.state.clone();
    store
        .save_snapshot(&SnapshotRecord {
            stream: StreamId::new("order", &long),
            version: 20,
            schema: Order::STATE_SCHEMA,
            body: serde_json::to_string(&at_twenty).unwrap(),
        })
        .await
        .unwrap();
    let before = calls.snapshot();
    let loaded = repository.load::<Order>(&long).await.unwrap();
    assert_eq!((loaded.version, loaded.from_snapshot), (25, Some(20)));
    assert_eq!(loaded.state, state.state);
    assert_eq!(made(&before, &calls.snapshot()), 3, "{:?}", calls.snapshot());
}
