//! The relay: publishes every event appended to the event store, read from the table's
//! stream (`NEW_IMAGE`), to the EventBridge bus.
//!
//! This is what makes publishing reliable: handlers only ever write to the event store,
//! and an event is on the bus once its stream record is processed. The relay tells two
//! kinds of failure apart:
//! - **transient** (the bus throttles, answers 5xx, times out): the record fails its
//!   batch item and Lambda retries from it until it is published, within the stream's
//!   retention; what still runs out goes to the on-failure queue, whose batches
//!   `orderflow relay recover` republishes;
//! - **permanent** (a record that is not an event: an item on the table that is no
//!   envelope, or an envelope over EventBridge's entry size): retrying it would block
//!   its shard, and every later order on it, for the stream's 24 hours. It is set
//!   aside instead: a `StreamRecordQuarantined` notice (its keys, sequence number and
//!   reason; never the item itself) goes onto the bus, whose quarantine rule parks it
//!   in `RelayQuarantineQueue`, and the shard moves on. The queue's alarm names it;
//!   `orderflow relay quarantine` lists it and `orderflow check` reports it.
//!
//! Nothing is skipped silently: a record is published, quarantined, or failed.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use orderflow_adapters::event_store::dynamodb::record_from_item;
use orderflow_app::{Clock, EventPublisher, EventRecord, StreamId, SystemClock};
use orderflow_domain::{RawEnvelope, Timestamp};

/// The aggregate type under which quarantine notices are published (`source`
/// `orderflow.relay`).
pub const QUARANTINE_SOURCE: &str = "relay";

/// The `detail-type` of a quarantine notice.
pub const QUARANTINED: &str = "StreamRecordQuarantined";

/// EventBridge's limit on one entry (source, detail type, detail and resources), less
/// what the relay adds around the detail.
pub const MAX_DETAIL_BYTES: usize = 256 * 1024 - 1024;

/// Why a stream record can never be published (`None`: it can).
#[must_use]
pub fn unpublishable(event: &EventRecord) -> Option<String> {
    if event.body.len() > MAX_DETAIL_BYTES {
        return Some(format!(
            "the envelope is {} bytes, over EventBridge's entry size ({MAX_DETAIL_BYTES})",
            event.body.len()
        ));
    }
    match RawEnvelope::parse(&event.body) {
        Err(error) => Some(format!("the item's body is not an envelope: {error}")),
        Ok(raw) if raw.event_type != event.event_type || raw.version != event.version => Some(format!(
            "the body ({} at version {}) disagrees with its item ({} at version {})",
            raw.event_type, raw.version, event.event_type, event.version
        )),
        Ok(_) => None,
    }
}

/// The notice that sets a record aside: what an operator needs to find the item, not
/// the item (which may hold anything).
fn notice(sequence: &str, keys: &serde_json::Value, reason: &str, now: Timestamp) -> EventRecord {
    let body = serde_json::json!({
        "sequenceNumber": sequence,
        "keys": keys,
        "reason": reason,
        "quarantinedAt": now.to_string(),
    });
    EventRecord {
        stream: StreamId::new(QUARANTINE_SOURCE, "quarantine"),
        version: 0,
        event_id: uuid::Uuid::now_v7(),
        event_type: QUARANTINED.to_owned(),
        occurred_at: now,
        body: body.to_string(),
    }
}

/// Publishes the inserted events of a stream batch and quarantines the records that can
/// never be published; reports the records that failed for a reason a retry may fix.
pub async fn relay(publisher: &impl EventPublisher, batch: Event) -> DynamoDbEventResponse {
    let now = SystemClock.now();
    let mut events = Vec::with_capacity(batch.records.len());
    let mut notices = Vec::new();
    for record in batch.records {
        let sequence = record.change.sequence_number.clone().unwrap_or_default();
        // Events are immutable: only inserts carry news (a MODIFY or REMOVE would be an
        // operator's doing and is not re-published).
        if record.event_name != "INSERT" {
            tracing::info!(sequence, event_name = %record.event_name, "stream record is not an insert; skipped");
            continue;
        }
        let keys = serde_json::to_value(&record.change.keys).unwrap_or_default();
        let reason = match record_from_item(record.change.new_image) {
            Ok(event) => match unpublishable(&event) {
                None => {
                    events.push((sequence, event));
                    continue;
                }
                Some(reason) => reason,
            },
            Err(error) => format!(
                "the item is not an event: {}",
                orderflow_app::cause_chain(&error).join(": ")
            ),
        };
        tracing::error!(sequence, %keys, %reason, "stream record can never be published; quarantining it");
        let notice = notice(&sequence, &keys, &reason, now);
        notices.push((sequence, notice));
    }
    // Events and notices go out together: a notice that does not reach the bus fails
    // its record like an event, and the next attempt sets it aside again.
    let (event_count, notice_count) = (events.len(), notices.len());
    let (sequences, records): (Vec<String>, Vec<EventRecord>) = events.into_iter().chain(notices).unzip();
    let unpublished = publisher.publish(&records).await;
    let mut failed_sequences = Vec::with_capacity(unpublished.len());
    for index in &unpublished {
        let (sequence, record) = (&sequences[*index], &records[*index]);
        tracing::error!(sequence, event_type = %record.event_type, stream = %record.stream, "not published; failing its record");
        failed_sequences.push(sequence.clone());
    }
    let events_failed = unpublished.iter().filter(|i| **i < event_count).count();
    let notices_failed = unpublished.len() - events_failed;
    orderflow_lambda::metrics::events_relayed(event_count - events_failed);
    tracing::info!(
        published = event_count - events_failed,
        quarantined = notice_count - notices_failed,
        failed = failed_sequences.len(),
        "relayed"
    );
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failed_sequences
        .into_iter()
        .map(|sequence| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence);
            failure
        })
        .collect();
    response
}

/// The function's whole `main` on Lambda: telemetry, the publisher to the bus the
/// environment names, and the runtime loop with its metrics.
///
/// # Errors
/// When the configuration is incomplete or the runtime fails.
pub async fn lambda_main() -> Result<(), lambda_runtime::Error> {
    use orderflow_adapters::calls::Counted as _;
    orderflow_lambda::telemetry::init();
    let publisher = orderflow_adapters::EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::counted_from(&orderflow_adapters::config::lambda_sdk_config()),
        orderflow_adapters::config::required("EVENT_BUS_NAME")?,
    );
    orderflow_lambda::run(
        "relay",
        lambda_runtime::Runtime::new(lambda_runtime::service_fn(
            |event: lambda_runtime::LambdaEvent<Event>| {
                let publisher = &publisher;
                async move { Ok::<_, lambda_runtime::Error>(relay(publisher, event.payload).await) }
            },
        )),
    )
    .await
}
