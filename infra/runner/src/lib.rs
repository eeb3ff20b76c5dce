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
use orderflow_adapters::calls::{CallCounter, Counted as _, EVENT_SOURCE_MAPPING};
use orderflow_adapters::config::Config;
use orderflow_adapters::payment::{DynamoVault, SimulatedGateway};
use orderflow_adapters::read_model::DynamoOrderViews;
use orderflow_adapters::{DynamoEventStore, EventBridgePublisher};
use orderflow_app::{Clock, SystemClock};
use orderflow_lambda::{Consumer as _, FromConfig, Service};
use orderflow_provision::create::Queue;
use orderflow_provision::local::{self, Stack};
use orderflow_provision::{SqsMapping, Template};
use pending_timeout::{PendingTimeout, Swept};
use tokio::sync::Mutex;

/// How long the stream loop rests after a poll that found nothing. Lambda polls each
/// shard four times a second; locally a hop should not wait on the poll, and an idle
/// `GetRecords` on DynamoDB Local costs about a millisecond.
pub const STREAM_IDLE_POLL: Duration = Duration::from_millis(25);

/// How often the stream's shards are listed again (and at once when one closes).
pub const DESCRIBE_EVERY: Duration = Duration::from_secs(5);

/// A function's batch handler, as the runner calls it.
pub type BatchHandler =
    Arc<dyn Fn(SqsEvent) -> Pin<Box<dyn Future<Output = SqsBatchResponse> + Send>> + Send + Sync>;

/// Where invocations go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invoke {
    /// Call the handlers' library functions in this process.
    InProcess,
    /// POST each invocation to the Lambda Runtime invoke API of `cargo lambda watch`
    /// (`<url>/2015-03-31/functions/<binary>/invocations`).
    LambdaWatch {
        /// Where `cargo lambda watch` listens, e.g. `http://127.0.0.1:9000`.
        url: String,
    },
}

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
    /// Visibility timeout asked for on each receive; `None` keeps the queue's own, as
    /// Lambda does (tests and crash drills shorten it).
    pub receive_visibility: Option<Duration>,
    /// Where the stream positions are saved after every relayed batch, so a restarted
    /// runner resumes where it stopped.
    pub checkpoint: Option<std::path::PathBuf>,
    /// Print one line per order event as it passes the relay.
    pub summaries: bool,
    /// In-process handlers, or `cargo lambda watch`.
    pub invoke: Invoke,
    /// How often the pending-order timeout sweeps, as its schedule does in AWS
    /// (`None`: never; tests sweep by hand).
    pub sweep_every: Option<Duration>,
    /// Batches in flight at once per queue in [`Runner::run`] (Lambda starts an SQS
    /// mapping with five, and scales on a backlog); a mapping's
    /// `ScalingConfig.MaximumConcurrency` caps it. Locally one is the faster: every
    /// receive costs moto a scan of the queue, and concurrent pollers split what would
    /// have been one full batch into several small ones.
    pub queue_pollers: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            failed_visibility: None,
            duplicate_deliveries: false,
            receive_wait: Duration::from_secs(1),
            snapshot_every: 50,
            receive_visibility: None,
            checkpoint: None,
            summaries: false,
            invoke: Invoke::InProcess,
            sweep_every: None,
            queue_pollers: 1,
        }
    }
}

/// One function reading one queue.
pub struct Consumer {
    /// The template's mapping.
    pub mapping: SqsMapping,
    /// The queue.
    pub queue: Queue,
    /// The function's timeout: each batch must be answered for within it, as in Lambda.
    pub timeout: Duration,
    handler: BatchHandler,
}

/// What is saved between runs: the last relayed sequence number of every shard.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    stream_arn: String,
    shards: HashMap<String, String>,
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
    http: reqwest::Client,
    stream_arn: String,
    shards: Mutex<HashMap<String, ShardPosition>>,
    /// The stream's shard ids and when they were read: described again every
    /// [`DESCRIBE_EVERY`], or at once when a shard closes, not on every poll.
    described: Mutex<Option<(tokio::time::Instant, Vec<String>)>>,
    consumers: Vec<Consumer>,
    sweeper: PendingTimeout<SystemClock>,
    lag: std::sync::Mutex<Lag>,
}

/// How far behind the mappings were when they last took work: what `IteratorAge` and
/// `ApproximateAgeOfOldestMessage` say in AWS, as the local mappings see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lag {
    /// The relay: the age of the oldest stream record of its last batch.
    pub stream: Option<Seen>,
    /// Each queue, by name: the age of the oldest message of its consumer's last batch.
    pub queues: std::collections::BTreeMap<String, Seen>,
}

/// An age, and when it was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Seen {
    /// How old the oldest item was, in milliseconds.
    pub age_ms: u64,
    /// When, in milliseconds since the epoch.
    pub at_ms: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The name of table `logical_id` in `stack`.
///
/// # Errors
/// When the stack has no such table.
pub fn table<'a>(stack: &'a Stack, logical_id: &str) -> anyhow::Result<&'a str> {
    stack
        .table(logical_id)
        .with_context(|| format!("the template has no table {logical_id}"))
}

/// The stack's event store (events and snapshots).
///
/// # Errors
/// When the stack lacks either table.
pub fn event_store(stack: &Stack, dynamodb: &aws_sdk_dynamodb::Client) -> anyhow::Result<DynamoEventStore> {
    Ok(DynamoEventStore::new(
        dynamodb.clone(),
        table(stack, "EventStoreTable")?,
        table(stack, "SnapshotTable")?,
    ))
}

/// The order read model the template's functions use (`ORDER_VIEW_TABLE`).
///
/// # Errors
/// When the template sets no `ORDER_VIEW_TABLE`.
pub fn order_views(stack: &Stack, dynamodb: &aws_sdk_dynamodb::Client) -> anyhow::Result<DynamoOrderViews> {
    let table = stack
        .env("ORDER_VIEW_TABLE")
        .context("the template sets no ORDER_VIEW_TABLE for its functions")?;
    Ok(DynamoOrderViews::new(dynamodb.clone(), table))
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

/// A handler that forwards each batch to `cargo lambda watch`, which runs the
/// function's own binary; a failed invocation fails the whole batch, as in Lambda.
#[must_use]
pub fn forwarding_handler(http: reqwest::Client, url: &str, binary: &str) -> BatchHandler {
    let endpoint = format!(
        "{}/2015-03-31/functions/{binary}/invocations",
        url.trim_end_matches('/')
    );
    Arc::new(move |event: SqsEvent| {
        let (http, endpoint) = (http.clone(), endpoint.clone());
        Box::pin(async move {
            let ids: Vec<String> = event
                .records
                .iter()
                .filter_map(|m| m.message_id.clone())
                .collect();
            let all_failed = || {
                let mut response = SqsBatchResponse::default();
                response.batch_item_failures = ids
                    .iter()
                    .map(|id| {
                        let mut failure = aws_lambda_events::event::sqs::BatchItemFailure::default();
                        failure.item_identifier = id.clone();
                        failure
                    })
                    .collect();
                response
            };
            match http.post(&endpoint).json(&event).send().await {
                Ok(reply) if reply.status().is_success() => reply.json().await.unwrap_or_else(|error| {
                    tracing::error!(%endpoint, %error, "unreadable function response; failing the batch");
                    all_failed()
                }),
                Ok(reply) => {
                    tracing::error!(%endpoint, status = %reply.status(), "function invocation failed; failing the batch");
                    all_failed()
                }
                Err(error) => {
                    tracing::error!(%endpoint, %error, "cargo lambda watch unreachable; failing the batch");
                    all_failed()
                }
            }
        })
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
    handler_with(binary, stack, dynamodb, None, snapshot_every)
}

/// [`handler_for`], with the SQS client a handler that manages its messages' visibility
/// (payment's backoff) needs, as the runner builds them.
///
/// # Errors
/// As [`handler_for`].
pub fn handler_with(
    binary: &str,
    stack: &Stack,
    dynamodb: &aws_sdk_dynamodb::Client,
    sqs: Option<&aws_sdk_sqs::Client>,
    snapshot_every: u64,
) -> anyhow::Result<BatchHandler> {
    registry(binary, &stack_config(stack, dynamodb, sqs, snapshot_every))
}

/// The functions' configuration on a local stack: the template's environment resolved
/// to the stack's names, the snapshot interval the runner was given.
#[must_use]
pub fn stack_config(
    stack: &Stack,
    dynamodb: &aws_sdk_dynamodb::Client,
    sqs: Option<&aws_sdk_sqs::Client>,
    snapshot_every: u64,
) -> Config {
    let environment = stack.environment.clone();
    Config::new(
        move |name| match name {
            "SNAPSHOT_EVERY" => Some(snapshot_every.to_string()),
            name => environment.get(name).cloned(),
        },
        dynamodb.clone(),
        sqs.cloned(),
    )
}

/// Every queue consumer by its binary's name, built from `config` exactly as its
/// `main.rs` builds it in Lambda ([`orderflow_lambda::serve`]).
///
/// # Errors
/// When the binary is unknown or the configuration lacks what it needs.
pub fn registry(binary: &str, config: &Config) -> anyhow::Result<BatchHandler> {
    // The consumers as deployed: each over the adapters its `FromConfig` builds.
    type Inventory = inventory::InventoryService<SystemClock>;
    type Payment = payment::PaymentService<SimulatedGateway, DynamoVault, SystemClock>;
    type Shipping = shipping::ShippingService<SystemClock>;
    type OrderSaga = order_saga::OrderSaga<SystemClock>;
    type Projector = projector::Projector;
    fn service<C: FromConfig>(config: &Config) -> anyhow::Result<BatchHandler> {
        let service = Service::<C>::from_config(config)?;
        Ok(boxed(service, |s, e| async move { s.handle(e).await }))
    }
    match binary {
        Inventory::NAME => service::<Inventory>(config),
        Payment::NAME => service::<Payment>(config),
        Shipping::NAME => service::<Shipping>(config),
        OrderSaga::NAME => service::<OrderSaga>(config),
        Projector::NAME => service::<Projector>(config),
        other => anyhow::bail!("no in-process handler for function binary {other:?}"),
    }
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
        let streams = aws_sdk_dynamodbstreams::Client::from_conf(
            streams
                .config()
                .to_builder()
                .interceptor(CallCounter::default().of(EVENT_SOURCE_MAPPING))
                .build(),
        );
        // The handlers' clients are counted as each function's; the runner's own as
        // the event source mappings' (so one call is never counted twice).
        let sqs_base = local::sqs_client().await?;
        let sqs = sqs_base.counted_as(EVENT_SOURCE_MAPPING);
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
        // The handlers' calls are counted (`orderflow_adapters::calls`) as their
        // functions count them in AWS; the runner's own polling, which stands in for
        // Lambda's event source mappings, under EVENT_SOURCE_MAPPING.
        let mut consumers = Vec::new();
        for mapping in template.sqs_mappings()? {
            let (handler_dynamodb, handler_sqs) = (
                dynamodb.counted_as(&mapping.binary),
                sqs_base.counted_as(&mapping.binary),
            );
            let queue = stack
                .queue(&mapping.queue)
                .with_context(|| format!("queue {} was not provisioned", mapping.queue))?
                .clone();
            let handler = match &options.invoke {
                Invoke::InProcess => handler_with(
                    &mapping.binary,
                    &stack,
                    &handler_dynamodb,
                    Some(&handler_sqs),
                    options.snapshot_every,
                )?,
                Invoke::LambdaWatch { url } => {
                    forwarding_handler(reqwest::Client::new(), url, &mapping.binary)
                }
            };
            consumers.push(Consumer {
                timeout: Duration::from_secs(template.function_timeout(&mapping.function)),
                mapping,
                queue,
                handler,
            });
        }
        let shards = load_checkpoint(options.checkpoint.as_deref(), &stream_arn);
        let sweeper = PendingTimeout::from_config(&stack_config(
            &stack,
            &dynamodb.counted_as("pending-timeout"),
            None,
            options.snapshot_every,
        ))?;
        Ok(Self {
            sweeper,
            lag: std::sync::Mutex::default(),
            publisher: EventBridgePublisher::new(events.counted_as("relay"), stack.bus()),
            http: reqwest::Client::new(),
            stack,
            options,
            streams,
            sqs,
            stream_arn,
            shards: Mutex::new(shards),
            described: Mutex::new(None),
            consumers,
        })
    }

    /// The stack it runs.
    #[must_use]
    pub const fn stack(&self) -> &Stack {
        &self.stack
    }

    /// How far behind each mapping was when it last took work.
    #[must_use]
    pub fn lag(&self) -> Lag {
        self.lag.lock().map(|l| l.clone()).unwrap_or_default()
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
        let shard_ids = self.shard_ids().await?;
        let mut shards = self.shards.lock().await;
        let mut read = 0;
        for shard_id in shard_ids {
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
                // An expired iterator, or one DynamoDB Local took on an empty shard and
                // dropped when records arrived (that error arrives untyped: match the
                // code): take a new one after the last relayed record, or at the trim
                // horizon. Nothing is lost.
                Err(error)
                    if matches!(
                        aws_sdk_dynamodbstreams::error::ProvideErrorMetadata::code(&error),
                        Some("ExpiredIteratorException" | "TrimmedDataAccessException")
                    ) =>
                {
                    tracing::debug!(shard = %shard_id, "shard iterator no longer valid; taking a new one");
                    position.iterator = Some(
                        self.iterator(&shard_id, position.last_sequence.as_deref())
                            .await?,
                    );
                    continue;
                }
                Err(error) => {
                    let code =
                        aws_sdk_dynamodbstreams::error::ProvideErrorMetadata::code(&error).map(str::to_owned);
                    return Err(error)
                        .with_context(|| format!("reading shard {shard_id} of the stream (code {code:?})"));
                }
            };
            let records = page.records.unwrap_or_default();
            read += records.len();
            if records.is_empty() {
                position.iterator = page.next_shard_iterator;
                position.closed = position.iterator.is_none();
                if position.closed {
                    // Its child shards are read from the next poll on.
                    *self.described.lock().await = None;
                }
                continue;
            }
            // The events' own times: the stream's ApproximateCreationDateTime is
            // rounded down to the second (to the minute on some emulators).
            let oldest = records
                .iter()
                .filter_map(
                    |r| match r.dynamodb.as_ref()?.new_image.as_ref()?.get("occurredAt")? {
                        aws_sdk_dynamodbstreams::types::AttributeValue::S(at) => {
                            orderflow_domain::Timestamp::parse(at).ok()
                        }
                        _ => None,
                    },
                )
                .map(|t| u64::try_from(t.as_micros() / 1_000).unwrap_or(0))
                .min();
            if let (Some(created), Ok(mut lag)) = (oldest, self.lag.lock()) {
                let at_ms = now_ms();
                lag.stream = Some(Seen {
                    age_ms: at_ms.saturating_sub(created),
                    at_ms,
                });
            }
            let batch = to_stream_event(records)?;
            let sequences: Vec<_> = batch
                .records
                .iter()
                .map(|r| r.change.sequence_number.clone().unwrap_or_default())
                .collect();
            let summaries = if self.options.summaries {
                order_summaries(&batch)
            } else {
                Vec::new()
            };
            let response = self.invoke_relay(batch).await;
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
                    print_summaries(&summaries);
                    self.save_checkpoint(&shards).await;
                }
            }
        }
        Ok(read)
    }

    /// The stream's shard ids, described again when older than [`DESCRIBE_EVERY`].
    async fn shard_ids(&self) -> anyhow::Result<Vec<String>> {
        let mut described = self.described.lock().await;
        if let Some((at, ids)) = described.as_ref()
            && at.elapsed() < DESCRIBE_EVERY
        {
            return Ok(ids.clone());
        }
        let description = self
            .streams
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .context("describing the stream")?
            .stream_description
            .context("stream description")?;
        let ids: Vec<String> = description
            .shards
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| s.shard_id)
            .collect();
        *described = Some((tokio::time::Instant::now(), ids.clone()));
        Ok(ids)
    }

    async fn invoke_relay(
        &self,
        batch: StreamEvent,
    ) -> aws_lambda_events::event::streams::DynamoDbEventResponse {
        match &self.options.invoke {
            Invoke::InProcess => relay::relay(&self.publisher, batch).await,
            Invoke::LambdaWatch { url } => {
                let endpoint = format!(
                    "{}/2015-03-31/functions/relay/invocations",
                    url.trim_end_matches('/')
                );
                let sequences: Vec<_> = batch
                    .records
                    .iter()
                    .filter_map(|r| r.change.sequence_number.clone())
                    .collect();
                let reply = self.http.post(&endpoint).json(&batch).send().await;
                let parsed = match reply {
                    Ok(reply) if reply.status().is_success() => reply.json().await.ok(),
                    _ => None,
                };
                parsed.unwrap_or_else(|| {
                    tracing::error!(%endpoint, "relay invocation failed; the batch will be read again");
                    let mut response = aws_lambda_events::event::streams::DynamoDbEventResponse::default();
                    response.batch_item_failures = sequences
                        .into_iter()
                        .map(|s| {
                            let mut failure =
                                aws_lambda_events::event::streams::DynamoDbBatchItemFailure::default();
                            failure.item_identifier = Some(s);
                            failure
                        })
                        .collect();
                    response
                })
            }
        }
    }

    async fn save_checkpoint(&self, shards: &HashMap<String, ShardPosition>) {
        let Some(path) = &self.options.checkpoint else {
            return;
        };
        let checkpoint = Checkpoint {
            stream_arn: self.stream_arn.clone(),
            shards: shards
                .iter()
                .filter_map(|(id, p)| p.last_sequence.clone().map(|s| (id.clone(), s)))
                .collect(),
        };
        // Write beside, then rename: a crash leaves the old checkpoint or the new one,
        // never half of one.
        let tmp = path.with_extension("tmp");
        let written = match serde_json::to_vec(&checkpoint) {
            Ok(bytes) => tokio::fs::write(&tmp, bytes)
                .await
                .and(tokio::fs::rename(&tmp, path).await),
            Err(error) => Err(std::io::Error::other(error)),
        };
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), %error, "stream checkpoint not saved; a restart re-relays (duplicates are harmless)");
        }
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

    async fn receive(
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

impl Runner {
    /// Runs every mapping continuously until `shutdown` turns true: the stream polled
    /// every [`STREAM_IDLE_POLL`] when idle (at once again after a batch), each queue
    /// long-polled (SQS answers a long poll as soon as a message arrives) by
    /// [`Options::queue_pollers`] loops, each with a batch in flight at most. A batch in
    /// flight is finished before its loop stops.
    ///
    /// # Errors
    /// Never for an emulator hiccup (logged and retried after a pause).
    pub async fn run(&self, shutdown: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<()> {
        let stream = async {
            let mut shutdown = shutdown.clone();
            while !*shutdown.borrow() {
                match self.pump_stream().await {
                    Ok(0) => {}
                    Ok(_) => continue,
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), "stream poll failed; retrying")
                    }
                }
                tokio::select! {
                    _ = shutdown.changed() => {}
                    () = tokio::time::sleep(STREAM_IDLE_POLL) => {}
                }
            }
        };
        let pollers = self.consumers.iter().flat_map(|consumer| {
            let count = consumer
                .mapping
                .maximum_concurrency
                .map_or(self.options.queue_pollers, |cap| {
                    cap.min(self.options.queue_pollers)
                })
                .max(1);
            (0..count).map(move |_| consumer)
        });
        let queues = pollers.map(|consumer| {
            let mut shutdown = shutdown.clone();
            async move {
                while !*shutdown.borrow() {
                    if let Err(error) = self.pump_queue(consumer).await {
                        tracing::warn!(queue = %consumer.queue.name, error = format!("{error:#}"), "queue poll failed; retrying");
                        tokio::select! {
                            _ = shutdown.changed() => {}
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            }
        });
        let sweeps = async {
            let Some(every) = self.options.sweep_every else {
                return;
            };
            let mut shutdown = shutdown.clone();
            while !*shutdown.borrow() {
                tokio::select! {
                    _ = shutdown.changed() => {}
                    () = tokio::time::sleep(every) => {
                        if let Err(error) = self.sweep_pending(SystemClock.now()).await {
                            tracing::warn!(error = format!("{error:#}"), "pending-order sweep failed; the next one retries");
                        }
                    }
                }
            }
        };
        tokio::join!(stream, futures::future::join_all(queues), sweeps);
        Ok(())
    }

    /// Runs the pending-order timeout once, as its schedule would at `now`.
    ///
    /// # Errors
    /// When the event store's pending index cannot be read.
    pub async fn sweep_pending(&self, now: orderflow_domain::Timestamp) -> anyhow::Result<Swept> {
        let swept = self.sweeper.sweep(now).await?;
        if !swept.expired.is_empty() || swept.failed > 0 {
            tracing::info!(
                examined = swept.examined,
                expired = swept.expired.len(),
                failed = swept.failed,
                "pending orders swept"
            );
        }
        Ok(swept)
    }
}

fn load_checkpoint(path: Option<&std::path::Path>, stream_arn: &str) -> HashMap<String, ShardPosition> {
    let Some(path) = path else { return HashMap::new() };
    let Ok(bytes) = std::fs::read(path) else {
        return HashMap::new();
    };
    match serde_json::from_slice::<Checkpoint>(&bytes) {
        Ok(checkpoint) if checkpoint.stream_arn == stream_arn => {
            tracing::info!(
                shards = checkpoint.shards.len(),
                "resuming the stream from the checkpoint"
            );
            checkpoint
                .shards
                .into_iter()
                .map(|(shard, sequence)| {
                    (
                        shard,
                        ShardPosition {
                            iterator: None,
                            last_sequence: Some(sequence),
                            closed: false,
                        },
                    )
                })
                .collect()
        }
        Ok(_) => {
            tracing::info!(
                "checkpoint is for another stream (the emulator restarted); reading from the start"
            );
            HashMap::new()
        }
        Err(error) => {
            tracing::warn!(%error, "unreadable checkpoint ignored; reading from the start");
            HashMap::new()
        }
    }
}

/// One line per order event in a stream batch.
fn order_summaries(batch: &StreamEvent) -> Vec<String> {
    use orderflow_domain::order::OrderEvent;
    batch
        .records
        .iter()
        .filter_map(|record| {
            let event =
                orderflow_adapters::event_store::dynamodb::record_from_item(record.change.new_image.clone())
                    .ok()?;
            if event.stream.aggregate_type != "order" {
                return None;
            }
            let envelope = orderflow_domain::Envelope::<OrderEvent>::decode(&event.body).ok()?;
            let status = match &envelope.data {
                OrderEvent::Placed(_) => "PENDING".to_owned(),
                OrderEvent::Confirmed(_) => "CONFIRMED".to_owned(),
                OrderEvent::Cancelled(c) => {
                    format!("CANCELLED ({})", serde_json::to_value(c.reason).ok()?.as_str()?)
                }
                OrderEvent::FulfilmentAdvanced(a) => a.step.status().as_str().to_owned(),
                other => format!("recorded {}", orderflow_domain::DomainEvent::event_type(other)),
            };
            Some(format!(
                "order {}  v{:<2} {:<34} correlation {}",
                envelope.aggregate_id, envelope.version, status, envelope.metadata.correlation_id
            ))
        })
        .collect()
}

fn print_summaries(lines: &[String]) {
    use std::io::Write;
    if lines.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    for line in lines {
        // A closed stdout (piped to a pager that quit) must not stop the runner.
        let _ = writeln!(out, "{line}");
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
