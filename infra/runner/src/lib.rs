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
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use orderflow_adapters::EventBridgePublisher;
use orderflow_adapters::calls::{CallCounter, Counted as _, EVENT_SOURCE_MAPPING};
use orderflow_app::{Clock, SystemClock};
use orderflow_provision::create::Queue;
use orderflow_provision::local::{self, Stack};
use orderflow_provision::{SqsMapping, Template};
use pending_timeout::{PendingTimeout, Swept};
use tokio::sync::Mutex;

mod handlers;
mod queues;
mod stream;

pub use handlers::{forwarding_handler, handler_for, handler_with, registry, stack_config};
use stream::{ShardPosition, load_checkpoint};

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
            .table_name(
                stack
                    .table("EventStoreTable")
                    .context("the template has no table EventStoreTable")?,
            )
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
