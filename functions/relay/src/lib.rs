//! The relay: publishes every event appended to the event store, read from the table's
//! stream (`NEW_IMAGE`), to the EventBridge bus.
//!
//! This is what makes publishing reliable: handlers only ever write to the event store,
//! and an event is on the bus once its stream record is processed. A record that cannot
//! be decoded or published fails its batch item, so Lambda retries from it (bisecting)
//! until it is published, within the stream's retention; what still runs out goes to
//! the on-failure queue, whose batches `orderflow relay recover` republishes: nothing
//! is skipped silently.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use orderflow_adapters::event_store::dynamodb::record_from_item;
use orderflow_app::EventPublisher;

/// Publishes the inserted events of a stream batch; reports the records that failed.
pub async fn relay(publisher: &impl EventPublisher, batch: Event) -> DynamoDbEventResponse {
    let mut events = Vec::with_capacity(batch.records.len());
    let mut failed_sequences = Vec::new();
    for record in batch.records {
        let sequence = record.change.sequence_number.clone().unwrap_or_default();
        // Events are immutable: only inserts carry news (a MODIFY or REMOVE would be an
        // operator's doing and is not re-published).
        if record.event_name != "INSERT" {
            tracing::info!(sequence, event_name = %record.event_name, "stream record is not an insert; skipped");
            continue;
        }
        match record_from_item(record.change.new_image) {
            Ok(event) => events.push((sequence, event)),
            Err(error) => {
                tracing::error!(sequence, %error, "stream record is not an event; failing it");
                failed_sequences.push(sequence);
            }
        }
    }
    let records: Vec<_> = events.iter().map(|(_, e)| e.clone()).collect();
    let unpublished = publisher.publish(&records).await;
    for index in &unpublished {
        let (sequence, event) = &events[*index];
        tracing::error!(sequence, event_id = %event.event_id, stream = %event.stream, "event not published; failing its record");
        failed_sequences.push(sequence.clone());
    }
    orderflow_adapters::metrics::events_relayed(records.len() - unpublished.len());
    tracing::info!(
        published = records.len() - unpublished.len(),
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
