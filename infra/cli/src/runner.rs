//! Delivers work to the handlers as AWS would, in-process.
//!
//! - The event store's stream (DynamoDB Local Streams, every shard) goes to the relay
//!   in batches, with the Lambda stream event shape; a failed record is read again
//!   from its sequence number.
//! - For every function the template maps to an SQS queue: receive up to the batch
//!   size, hand the `SqsEvent` to the handler, delete only what succeeded. Failed
//!   messages stay invisible for the queue's visibility timeout (or a shorter time in
//!   tests), so the queue's redrive policy moves poison to its DLQ.
//! - Routing from the bus to the queues is the emulator's, by the template's rules.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord as StreamEventRecord};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use orderflow_adapters::catalog::DynamoCatalog;
use orderflow_adapters::payment::{DynamoVault, SimulatedGateway};
use orderflow_adapters::{DynamoEventStore, EventBridgePublisher};
use orderflow_app::{Repository, SystemClock};
use orderflow_provision::local::{self, Stack};
use orderflow_provision::messaging::Queue;
use orderflow_provision::{SqsMapping, Template};
use tokio::sync::Mutex;

/// A function's batch handler, as the runner calls it.
pub type BatchHandler =
    Arc<dyn Fn(SqsEvent) -> Pin<Box<dyn Future<Output = SqsBatchResponse> + Send>> + Send + Sync>;

/// How the runner treats deliveries.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long a failed message stays invisible: `None` leaves it to the queue's
    /// visibility timeout, as Lambda does; tests shorten it.
    pub failed_visibility: Option<Duration>,
    /// Hand every batch to its handler twice, the second time in reverse order: the
    /// at-least-once, any-order delivery the handlers must survive.
    pub duplicate_deliveries: bool,
    /// Long-poll wait per receive.
    pub receive_wait: Duration,
    /// Snapshot interval of the handlers' repositories.
    pub snapshot_every: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            failed_visibility: None,
            duplicate_deliveries: false,
            receive_wait: Duration::from_secs(1),
            snapshot_every: 50,
        }
    }
}

/// One function reading one queue.
pub struct Consumer {
    /// The template's mapping.
    pub mapping: SqsMapping,
    /// The queue.
    pub queue: Queue,
    handler: BatchHandler,
}

#[derive(Debug, Default)]
struct ShardPosition {
    iterator: Option<String>,
    last_sequence: Option<String>,
    closed: bool,
}

/// The local event source mappings of one provisioned stack.
pub struct Runner {
    stack: Stack,
    options: Options,
    streams: aws_sdk_dynamodbstreams::Client,
    sqs: aws_sdk_sqs::Client,
    publisher: EventBridgePublisher,
    stream_arn: String,
    shards: Mutex<HashMap<String, ShardPosition>>,
    consumers: Vec<Consumer>,
}

fn table<'a>(stack: &'a Stack, logical_id: &str) -> anyhow::Result<&'a str> {
    stack
        .table(logical_id)
        .with_context(|| format!("the template has no table {logical_id}"))
}

fn boxed<S, F, Fut>(service: S, call: F) -> BatchHandler
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, SqsEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = SqsBatchResponse> + Send + 'static,
{
    let service = Arc::new(service);
    let call = Arc::new(call);
    Arc::new(move |event| {
        let (service, call) = (service.clone(), call.clone());
        Box::pin(async move { call(service, event).await })
    })
}

/// The in-process handler of a function binary, wired to the stack's resources.
///
/// # Errors
/// When the binary is unknown or the stack lacks a table it needs.
pub fn handler_for(
    binary: &str,
    stack: &Stack,
    dynamodb: &aws_sdk_dynamodb::Client,
    snapshot_every: u64,
) -> anyhow::Result<BatchHandler> {
    let repository = || -> anyhow::Result<Repository<DynamoEventStore>> {
        Ok(Repository::new(
            DynamoEventStore::new(
                dynamodb.clone(),
                table(stack, "EventStoreTable")?,
                table(stack, "SnapshotTable")?,
            ),
            snapshot_every,
        ))
    };
    Ok(match binary {
        "inventory" => boxed(
            inventory::InventoryService::new(
                repository()?,
                SystemClock,
                DynamoCatalog::new(dynamodb.clone(), table(stack, "CatalogTable")?),
            ),
            |s, e| async move { s.handle(e).await },
        ),
        "payment" => boxed(
            payment::PaymentService::new(
                repository()?,
                SystemClock,
                SimulatedGateway::new(dynamodb.clone(), table(stack, "PaymentProviderTable")?),
                DynamoVault::new(dynamodb.clone(), table(stack, "PaymentVaultTable")?),
            ),
            |s, e| async move { s.handle(e).await },
        ),
        "shipping" => boxed(
            shipping::ShippingService::new(repository()?, SystemClock),
            |s, e| async move { s.handle(e).await },
        ),
        "order-saga" => boxed(
            order_saga::OrderSaga::new(repository()?, SystemClock),
            |s, e| async move { s.handle(e).await },
        ),
        other => anyhow::bail!("no in-process handler for function binary {other:?}"),
    })
}

impl Runner {
    /// Wires every SQS mapping of `template` to its in-process handler, and the event
    /// store's stream to the relay.
    ///
    /// # Errors
    /// When the stack is incomplete or an emulator does not answer.
    pub async fn new(stack: Stack, template: &Template, options: Options) -> anyhow::Result<Self> {
        let dynamodb = local::dynamodb_client().await?;
        let streams = local::dynamodb_streams_client().await?;
        let sqs = local::sqs_client().await?;
        let events = local::eventbridge_client().await?;
        let stream_arn = dynamodb
            .describe_table()
            .table_name(table(&stack, "EventStoreTable")?)
            .send()
            .await
            .context("describing the event store table")?
            .table
            .and_then(|t| t.latest_stream_arn)
            .context("the event store table has no stream")?;
        let mut consumers = Vec::new();
        for mapping in template.sqs_mappings()? {
            let queue = stack
                .queue(&mapping.queue)
                .with_context(|| format!("queue {} was not provisioned", mapping.queue))?
                .clone();
            let handler = handler_for(&mapping.binary, &stack, &dynamodb, options.snapshot_every)?;
            consumers.push(Consumer {
                mapping,
                queue,
                handler,
            });
        }
        Ok(Self {
            publisher: EventBridgePublisher::new(events, stack.bus()),
            stack,
            options,
            streams,
            sqs,
            stream_arn,
            shards: Mutex::new(HashMap::new()),
            consumers,
        })
    }

    /// The stack it runs.
    #[must_use]
    pub const fn stack(&self) -> &Stack {
        &self.stack
    }

    /// The consumers, one per SQS mapping.
    #[must_use]
    pub fn consumers(&self) -> &[Consumer] {
        &self.consumers
    }

    /// Reads what is new on every shard of the stream and relays it. Returns how many
    /// records were read.
    ///
    /// # Errors
    /// When DynamoDB Streams fails.
    pub async fn pump_stream(&self) -> anyhow::Result<usize> {
        let description = self
            .streams
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .context("describing the stream")?
            .stream_description
            .context("stream description")?;
        let mut shards = self.shards.lock().await;
        let mut read = 0;
        for shard in description.shards.unwrap_or_default() {
            let Some(shard_id) = shard.shard_id else { continue };
            let position = shards.entry(shard_id.clone()).or_default();
            if position.closed {
                continue;
            }
            if position.iterator.is_none() {
                position.iterator = Some(
                    self.iterator(&shard_id, position.last_sequence.as_deref())
                        .await?,
                );
            }
            let Some(iterator) = position.iterator.clone() else {
                continue;
            };
            let page = match self
                .streams
                .get_records()
                .shard_iterator(iterator)
                .limit(100)
                .send()
                .await
            {
                Ok(page) => page,
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_expired_iterator_exception()) =>
                {
                    position.iterator = None;
                    continue;
                }
                Err(error) => return Err(error).context("reading the stream"),
            };
            let records = page.records.unwrap_or_default();
            read += records.len();
            if records.is_empty() {
                position.iterator = page.next_shard_iterator;
                position.closed = position.iterator.is_none();
                continue;
            }
            let batch = to_stream_event(records)?;
            let sequences: Vec<_> = batch
                .records
                .iter()
                .map(|r| r.change.sequence_number.clone().unwrap_or_default())
                .collect();
            let response = relay::relay(&self.publisher, batch).await;
            let first_failed = response
                .batch_item_failures
                .iter()
                .filter_map(|f| f.item_identifier.clone())
                .min_by_key(|s| s.parse::<u128>().unwrap_or(u128::MAX));
            match first_failed {
                // As Lambda does: retry from the first failed record on.
                Some(sequence) => {
                    tracing::warn!(shard = %shard_id, sequence, "relay failed a record; reading again from it");
                    let iterator = self
                        .streams
                        .get_shard_iterator()
                        .stream_arn(&self.stream_arn)
                        .shard_id(&shard_id)
                        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                        .sequence_number(sequence)
                        .send()
                        .await
                        .context("repositioning on the failed record")?
                        .shard_iterator;
                    position.iterator = iterator;
                }
                None => {
                    position.last_sequence = sequences.last().cloned();
                    position.iterator = page.next_shard_iterator;
                    position.closed = position.iterator.is_none();
                }
            }
        }
        Ok(read)
    }

    async fn iterator(&self, shard_id: &str, after: Option<&str>) -> anyhow::Result<String> {
        let request = self
            .streams
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard_id);
        let request = match after {
            Some(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(sequence),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        request
            .send()
            .await
            .context("getting a shard iterator")?
            .shard_iterator
            .context("no shard iterator")
    }

    /// Receives one batch from a consumer's queue and hands it to the handler.
    /// Returns how many messages were received.
    ///
    /// # Errors
    /// When SQS fails.
    pub async fn pump_queue(&self, consumer: &Consumer) -> anyhow::Result<usize> {
        let wait = i32::try_from(self.options.receive_wait.as_secs()).unwrap_or(1);
        let received = self
            .sqs
            .receive_message()
            .queue_url(&consumer.queue.url)
            .max_number_of_messages(i32::try_from(consumer.mapping.batch_size.clamp(1, 10)).unwrap_or(10))
            .wait_time_seconds(wait)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .with_context(|| format!("receiving from {}", consumer.queue.name))?
            .messages
            .unwrap_or_default();
        if received.is_empty() {
            return Ok(0);
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
            let response = (consumer.handler)(event).await;
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

    /// One round: the stream, then one batch from every queue. Returns how much work
    /// was seen.
    ///
    /// # Errors
    /// When an emulator fails.
    pub async fn pump(&self) -> anyhow::Result<usize> {
        let mut work = self.pump_stream().await?;
        let rounds = futures::future::try_join_all(self.consumers.iter().map(|c| self.pump_queue(c))).await?;
        work += rounds.iter().sum::<usize>();
        Ok(work)
    }

    /// Pumps until `quiet_rounds` rounds in a row find nothing to do (or `max_rounds`).
    ///
    /// # Errors
    /// When an emulator fails, or the system is still busy after `max_rounds`.
    pub async fn run_until_quiet(&self, quiet_rounds: u32, max_rounds: u32) -> anyhow::Result<()> {
        let mut quiet = 0;
        for _ in 0..max_rounds {
            if self.pump().await? == 0 {
                quiet += 1;
                if quiet >= quiet_rounds {
                    return Ok(());
                }
            } else {
                quiet = 0;
            }
        }
        anyhow::bail!("still busy after {max_rounds} rounds")
    }
}

fn to_stream_event(records: Vec<aws_sdk_dynamodbstreams::types::Record>) -> anyhow::Result<StreamEvent> {
    let mut converted = Vec::with_capacity(records.len());
    for record in records {
        let change = record.dynamodb.context("stream record without its change")?;
        let new_image: serde_dynamo::Item = change.new_image.unwrap_or_default().into();
        let keys: serde_dynamo::Item = change.keys.unwrap_or_default().into();
        let json = serde_json::json!({
            "awsRegion": record.aws_region.unwrap_or_default(),
            "eventID": record.event_id.unwrap_or_default(),
            "eventName": record.event_name.map(|n| n.as_str().to_owned()).unwrap_or_default(),
            "eventSource": "aws:dynamodb",
            "dynamodb": {
                "Keys": keys,
                "NewImage": new_image,
                "SequenceNumber": change.sequence_number,
                "SizeBytes": change.size_bytes.unwrap_or_default(),
                "StreamViewType": "NEW_IMAGE",
            },
        });
        let record: StreamEventRecord = serde_json::from_value(json).context("shaping a stream record")?;
        converted.push(record);
    }
    let mut event = StreamEvent::default();
    event.records = converted;
    Ok(event)
}

fn to_sqs_message(message: &aws_sdk_sqs::types::Message, queue_arn: &str) -> anyhow::Result<SqsMessage> {
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
