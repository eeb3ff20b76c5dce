//! The failure log's contract, against DynamoDB Local and in memory: what a consumer
//! records is what `orderflow dlq show` reads, the last failure of a message wins, and
//! the recorder stamps each failure by its clock with the whole cause chain.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use orderflow_adapters::failure_log::{DynamoFailureLog, FailureRecorder, MemoryFailureLog};
use orderflow_app::Failure;
use orderflow_app::{Clock, FailureLog, RecordedFailure, StoreError};
use orderflow_domain::Timestamp;
use orderflow_provision::local;
use uuid::Uuid;

/// A clock stopped at one instant.
#[derive(Clone, Copy)]
struct Stopped(Timestamp);

impl Clock for Stopped {
    fn now(&self) -> Timestamp {
        self.0
    }
}

fn at() -> Timestamp {
    Timestamp::from_micros(1_795_761_000_000_000).unwrap()
}

async fn contract(log: impl FailureLog + Clone + 'static) {
    let message = Uuid::now_v7().to_string();
    assert_eq!(log.get(&message).await.unwrap(), None, "nothing recorded yet");

    let recorder = FailureRecorder::new(log.clone(), "service:payment", Stopped(at()));
    let store = StoreError::new("capture", std::io::Error::other("connection reset by peer"));
    recorder.record(&message, "1", &Failure::retry(store)).await;
    let first = log.get(&message).await.unwrap().expect("recorded");
    assert_eq!(first.message_id, message);
    assert_eq!(first.consumer, "service:payment");
    assert_eq!(first.kind, "retry");
    assert_eq!(first.receive_count, "1");
    assert_eq!(
        first.causes,
        ["event store: capture failed", "connection reset by peer"]
    );
    assert_eq!(
        first.reason,
        "event store: capture failed: connection reset by peer"
    );
    assert_eq!(first.failed_at, at().to_string());
    assert_eq!(
        first.expiration,
        at().as_jiff().as_second() + orderflow_app::failures::FAILURE_RETENTION.as_secs()
    );

    recorder
        .record(&message, "5", &Failure::poison("not an event"))
        .await;
    let last = log.get(&message).await.unwrap().expect("recorded");
    assert_eq!((last.kind.as_str(), last.receive_count.as_str()), ("poison", "5"));
    assert_eq!(last.reason, "not an event");

    let other = RecordedFailure {
        message_id: Uuid::now_v7().to_string(),
        ..last.clone()
    };
    log.record(&other).await.unwrap();
    assert_eq!(log.get(&other.message_id).await.unwrap(), Some(other));
    assert_eq!(
        log.get(&message).await.unwrap(),
        Some(last),
        "another message's failure changes nothing"
    );
}

#[tokio::test]
async fn in_memory() {
    contract(MemoryFailureLog::new()).await;
}

#[tokio::test]
async fn in_dynamodb() {
    let client = local::dynamodb_client().await.unwrap();
    let tables = local::fresh_tables(&client, &["FailureLogTable"])
        .await
        .expect("DynamoDB Local is reachable");
    contract(DynamoFailureLog::new(client, tables["FailureLogTable"].clone())).await;
}
