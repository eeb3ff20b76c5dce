//! Each mapped queue to its function, as Lambda's SQS event source mapping delivers
//! it: batches of the template's size, only what succeeded deleted.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};

use crate::{Consumer, Runner, Seen, now_ms};

pub(crate) fn to_sqs_message(
    message: &aws_sdk_sqs::types::Message,
    queue_arn: &str,
) -> anyhow::Result<SqsMessage> {
    let attributes: HashMap<String, String> = message
        .attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let json = serde_json::json!({
        "messageId": message.message_id(),
        "receiptHandle": message.receipt_handle(),
        "body": message.body(),
        "md5OfBody": message.md5_of_body(),
        "attributes": attributes,
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": std::env::var("AWS_REGION").unwrap_or_default(),
    });
    serde_json::from_value(json).context("shaping an SQS message")
}

impl Runner {
    /// Receives one batch from a consumer's queue and hands it to the handler.
    /// Returns how many messages were received.
    ///
    /// # Errors
    /// When SQS fails.
    pub async fn pump_queue(&self, consumer: &Consumer) -> anyhow::Result<usize> {
        let batch_size = usize::try_from(consumer.mapping.batch_size.max(1)).unwrap_or(10);
        let wait = i32::try_from(self.options.receive_wait.as_secs()).unwrap_or(1);
        let mut received = self.receive(consumer, batch_size, wait).await?;
        if received.is_empty() {
            return Ok(0);
        }
        // As Lambda's batching window: keep gathering until the batch is full or the
        // window since the first message has passed (never in tests, whose wait is 0).
        let window = Duration::from_secs(u64::from(consumer.mapping.batching_window_seconds));
        let started = tokio::time::Instant::now();
        while wait > 0 && received.len() < batch_size && started.elapsed() < window {
            let more = self.receive(consumer, batch_size - received.len(), 0).await?;
            if more.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            received.extend(more);
        }
        let sent = received
            .iter()
            .filter_map(|m| {
                m.attributes()?
                    .get(&MessageSystemAttributeName::SentTimestamp)?
                    .parse::<u64>()
                    .ok()
            })
            .min();
        if let (Some(sent), Ok(mut lag)) = (sent, self.lag.lock()) {
            let at_ms = now_ms();
            lag.queues.insert(
                consumer.queue.name.clone(),
                Seen {
                    age_ms: at_ms.saturating_sub(sent),
                    at_ms,
                },
            );
        }
        let count = received.len();
        let messages: Vec<SqsMessage> = received
            .iter()
            .map(|m| to_sqs_message(m, &consumer.queue.arn))
            .collect::<Result<_, _>>()?;
        let mut failed: Vec<String> = Vec::new();
        let mut deliveries = vec![messages.clone()];
        if self.options.duplicate_deliveries {
            deliveries.push(messages.into_iter().rev().collect());
        }
        for records in deliveries {
            let mut event = SqsEvent::default();
            event.records = records;
            let deadline = std::time::SystemTime::now() + consumer.timeout;
            let response = orderflow_lambda::batch::within(deadline, (consumer.handler)(event)).await;
            failed.extend(
                response
                    .batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier),
            );
        }
        let mut deletes = Vec::new();
        for message in &received {
            let (Some(id), Some(handle)) = (message.message_id(), message.receipt_handle()) else {
                continue;
            };
            if failed.iter().any(|f| f == id) {
                if let Some(visibility) = self.options.failed_visibility {
                    self.sqs
                        .change_message_visibility()
                        .queue_url(&consumer.queue.url)
                        .receipt_handle(handle)
                        .visibility_timeout(i32::try_from(visibility.as_secs()).unwrap_or(0))
                        .send()
                        .await
                        .context("making a failed message visible again")?;
                }
            } else {
                deletes.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(id)
                        .receipt_handle(handle)
                        .build()
                        .context("delete entry")?,
                );
            }
        }
        if !deletes.is_empty() {
            self.sqs
                .delete_message_batch()
                .queue_url(&consumer.queue.url)
                .set_entries(Some(deletes))
                .send()
                .await
                .context("deleting handled messages")?;
        }
        Ok(count)
    }

    pub(crate) async fn receive(
        &self,
        consumer: &Consumer,
        up_to: usize,
        wait_seconds: i32,
    ) -> anyhow::Result<Vec<aws_sdk_sqs::types::Message>> {
        Ok(self
            .sqs
            .receive_message()
            .queue_url(&consumer.queue.url)
            .max_number_of_messages(i32::try_from(up_to.clamp(1, 10)).unwrap_or(10))
            .wait_time_seconds(wait_seconds)
            .set_visibility_timeout(
                self.options
                    .receive_visibility
                    .and_then(|v| i32::try_from(v.as_secs()).ok()),
            )
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .with_context(|| format!("receiving from {}", consumer.queue.name))?
            .messages
            .unwrap_or_default())
    }
}
