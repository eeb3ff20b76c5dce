//! EventBridge: the relay's publisher, and reading bus events back out of SQS.
//!
//! Events are published with `source` = `orderflow.<aggregateType>`, `detail-type` =
//! the event type and `detail` = the envelope exactly as stored. `PutEvents` takes 10
//! entries a call and may refuse some of them (`FailedEntryCount`): refused entries are
//! retried with backoff, and only what still fails is reported, so the relay can fail
//! exactly those stream records.

use std::time::Duration;

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use orderflow_app::{EventPublisher, EventRecord};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Entries per `PutEvents` call (the service's limit).
pub const PUT_EVENTS_CHUNK: usize = 10;

/// The prefix of every `source` this system publishes.
pub const SOURCE_PREFIX: &str = "orderflow.";

/// Attempts per chunk: the first call and the retries of refused entries.
const ATTEMPTS: u32 = 4;

/// Publishes to one EventBridge bus.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: Client,
    bus_name: String,
}

impl EventBridgePublisher {
    /// A publisher to `bus_name`.
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
        }
    }

    fn entry(&self, event: &EventRecord) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(format!("{SOURCE_PREFIX}{}", event.stream.aggregate_type))
            .detail_type(&event.event_type)
            .detail(&event.body)
            .resources(format!("orderflow:{}", event.stream))
            .build()
    }

    /// Publishes one chunk; returns the indexes (within the chunk) still unpublished.
    async fn publish_chunk(&self, chunk: &[EventRecord]) -> Vec<usize> {
        let mut pending: Vec<usize> = (0..chunk.len()).collect();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 * 2u64.pow(attempt))).await;
            }
            let entries = pending.iter().map(|&i| self.entry(&chunk[i])).collect();
            match self.client.put_events().set_entries(Some(entries)).send().await {
                Ok(output) if output.failed_entry_count == 0 => return Vec::new(),
                Ok(output) => {
                    // Result entries line up with request entries; a failed one has an
                    // error code and no event id.
                    let results = output.entries.unwrap_or_default();
                    let refused: Vec<usize> = pending
                        .iter()
                        .enumerate()
                        .filter(|(position, _)| results.get(*position).is_none_or(|r| r.error_code.is_some()))
                        .map(|(_, &index)| index)
                        .collect();
                    tracing::warn!(
                        refused = refused.len(),
                        attempt,
                        code = results
                            .iter()
                            .find_map(|r| r.error_code.clone())
                            .unwrap_or_default(),
                        "PutEvents refused entries; retrying those"
                    );
                    pending = refused;
                }
                Err(error) => {
                    tracing::warn!(error = %aws_sdk_eventbridge::error::DisplayErrorContext(&error), attempt, "PutEvents failed");
                }
            }
        }
        pending
    }
}

impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[EventRecord]) -> Vec<usize> {
        let mut failed = Vec::new();
        for (chunk_index, chunk) in events.chunks(PUT_EVENTS_CHUNK).enumerate() {
            let offset = chunk_index * PUT_EVENTS_CHUNK;
            failed.extend(self.publish_chunk(chunk).await.into_iter().map(|i| offset + i));
        }
        failed
    }
}

/// An EventBridge event as an SQS target delivers it: only what consumers read.
#[derive(Debug, Deserialize)]
pub struct BusEvent<'a> {
    /// `orderflow.<aggregate>`.
    #[serde(borrow)]
    pub source: std::borrow::Cow<'a, str>,
    /// The event type.
    #[serde(rename = "detail-type", borrow)]
    pub detail_type: std::borrow::Cow<'a, str>,
    /// The envelope.
    #[serde(borrow)]
    pub detail: &'a RawValue,
}

impl<'a> BusEvent<'a> {
    /// Parses an SQS message body.
    ///
    /// # Errors
    /// The parser's error when the body is not an EventBridge event.
    pub fn parse(body: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }
}
