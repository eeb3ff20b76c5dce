//! What only the DynamoDB adapter can show: reads page through aggregates larger than
//! one Query response (1 MB), and the table's stream carries every appended event as a
//! NEW_IMAGE for the relay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

mod common;

use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use common::*;
use orderflow_app::{EventStore, MAX_EVENTS_PER_APPEND};
use orderflow_provision::local;

#[tokio::test]
async fn an_aggregate_larger_than_one_megabyte_loads_whole() {
    let store = dynamo_event_store().await;
    let stream = fresh_stream();
    let padding = "x".repeat(6_000);
    let events: Vec<_> = (1..=300)
        .map(|v| {
            record(
                &stream,
                v,
                ts("2026-11-21T06:30:00Z"),
                &format!("{{\"v\":{v},\"pad\":\"{padding}\"}}"),
            )
        })
        .collect();
    let total_bytes: usize = events.iter().map(|e| e.body.len()).sum();
    assert!(
        total_bytes > 1_700_000,
        "the stream is well over 1 MB ({total_bytes} bytes)"
    );
    let mut version = 0;
    for chunk in events.chunks(MAX_EVENTS_PER_APPEND) {
        store.append(&stream, version, chunk).await.unwrap();
        version += chunk.len() as u64;
    }
    let loaded = store.load(&stream, 0).await.unwrap();
    assert_eq!(loaded, events, "every page read, in order");
    let tail = store.load(&stream, 150).await.unwrap();
    assert_eq!(tail, events[150..]);
}

#[tokio::test]
async fn appended_events_reach_the_stream_as_new_images() {
    let (store, client, table) = dynamo_event_store_with_names().await;
    let described = client.describe_table().table_name(&table).send().await.unwrap();
    let description = described.table.unwrap();
    let spec = description.stream_specification.unwrap();
    assert!(spec.stream_enabled);
    assert_eq!(spec.stream_view_type.unwrap().as_str(), "NEW_IMAGE");
    let stream_arn = description.latest_stream_arn.unwrap();

    let stream = fresh_stream();
    let batch = records(&stream, 1, 3);
    store.append(&stream, 0, &batch).await.unwrap();

    let streams = local::dynamodb_streams_client().await.unwrap();
    let shards = streams
        .describe_stream()
        .stream_arn(&stream_arn)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap()
        .shards
        .unwrap_or_default();
    let mut bodies = Vec::new();
    for shard in shards {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&stream_arn)
            .shard_id(shard.shard_id.unwrap())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        // An open shard always hands back a next iterator; stop once a read is empty.
        while let Some(current) = iterator {
            let page = streams
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .unwrap();
            let records = page.records.unwrap_or_default();
            if records.is_empty() {
                break;
            }
            for record in records {
                let image = record.dynamodb.unwrap().new_image.unwrap();
                let Some(AttributeValue::S(body)) = image.get("body") else {
                    panic!("NEW_IMAGE carries the envelope body: {image:?}")
                };
                bodies.push(body.clone());
            }
            iterator = page.next_shard_iterator;
        }
    }
    let expected: Vec<_> = batch.iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies, expected);
}

#[tokio::test]
async fn an_append_whose_response_was_lost_is_retried_and_recognised_by_its_token() {
    // DynamoDB applies the transaction, the response never arrives, the SDK sends the
    // same call again with the same client request token, and DynamoDB answers it as
    // the success it was, instead of a conflict with our own events. (A repeat of the
    // whole append, beyond the SDK's retries, is the conformance suite's
    // `the_same_append_retried_is_applied_once`: that needs the token derived from the
    // append, not the SDK's per-call one.)
    let faults = orderflow_provision::faults::Faults::lose_responses("TransactWriteItems", 1);
    let client = orderflow_provision::faults::dynamodb_client_with(faults.clone())
        .await
        .unwrap();
    let tables = local::fresh_tables(&client, &["EventStoreTable", "SnapshotTable"])
        .await
        .unwrap();
    let store = orderflow_adapters::DynamoEventStore::new(
        client,
        &tables["EventStoreTable"],
        &tables["SnapshotTable"],
    );
    let stream = fresh_stream();
    let batch = records(&stream, 1, 2);
    store.append(&stream, 0, &batch).await.unwrap();
    assert_eq!(faults.injected(), 1, "the first response was lost");
    assert_eq!(store.load(&stream, 0).await.unwrap(), batch, "applied once");
}

#[tokio::test]
async fn a_call_to_an_endpoint_that_never_answers_fails_within_the_sdk_timeouts() {
    // A server that accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let config = aws_sdk_dynamodb::config::Builder::from(&local::sdk_config().await)
        .endpoint_url(format!("http://{address}"))
        .timeout_config(orderflow_adapters::config::sdk_timeouts())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let started = std::time::Instant::now();
    let result = client.list_tables().send().await;
    let took = started.elapsed();
    assert!(result.is_err());
    let limit = orderflow_adapters::config::sdk_timeouts()
        .operation_timeout()
        .unwrap();
    assert!(
        took <= limit + std::time::Duration::from_millis(500),
        "gave up after {took:?}, within the function's 10 s"
    );
}
