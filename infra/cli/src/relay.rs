//! `orderflow relay recover`: puts back on the bus the events of stream records the
//! relay gave up on; `orderflow relay quarantine`: the records it set aside because
//! they can never be published.
//!
//! When the relay's event source mapping gives up on a batch (the stream's retention
//! ran out while the bus refused it), Lambda sends only the batch's metadata to the
//! on-failure queue (`RelayFailureQueue`): shard, sequence numbers and the approximate
//! arrival times of its first and last record, never the events. This command reads
//! those messages, loads the events appended in that window (with `--slack` on each
//! side, from the event store's time index), and republishes them on the live bus, as
//! events, not as replays: every consumer is idempotent, so an event that did reach
//! them once changes nothing the second time, and one that did not is handled now. A
//! failure message is deleted only once every event of its window is on the bus. An
//! item in the window that can never be published (`relay::unpublishable`) is left
//! out and counted: the relay quarantined it when it first saw it.

use std::io::Write;

use anyhow::Context;
use jiff::SignedDuration;
use orderflow_adapters::EventBridgePublisher;
use orderflow_app::{EventPublisher, EventStore};
use orderflow_domain::Timestamp;
use serde::Deserialize;

/// Options of `orderflow relay`.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// Where.
    #[command(flatten)]
    pub target: crate::target::Target,
    /// What.
    #[command(subcommand)]
    pub command: RelayCommand,
}

/// The relay commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum RelayCommand {
    /// Republish the events of every batch in the relay's on-failure queue.
    Recover {
        /// Seconds added on each side of a batch's arrival window (arrival times are
        /// approximate and whole seconds; an event republished twice changes nothing).
        #[arg(long, default_value_t = 60)]
        slack: u32,
        /// Handle at most this many failure messages.
        #[arg(long, default_value_t = 1_000)]
        max: usize,
    },
    /// List the stream records the relay set aside (items that are not events), with
    /// their keys and the reason, from `RelayQuarantineQueue`; nothing is removed.
    Quarantine {
        /// List at most this many.
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
}

/// A stream record the relay set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The record's sequence number on its shard.
    pub sequence: String,
    /// The item's keys, as the stream gave them.
    pub keys: String,
    /// Why it can never be published.
    pub reason: String,
}

/// The records in the relay's quarantine, at most `max`, read without removing them.
///
/// # Errors
/// When the template has no quarantine queue or it cannot be read.
pub async fn quarantined(
    stack: &orderflow_provision::local::Stack,
    sqs: &aws_sdk_sqs::Client,
    max: usize,
) -> anyhow::Result<Vec<Quarantined>> {
    let queue = stack
        .queue("RelayQuarantineQueue")
        .context("the template has no RelayQuarantineQueue")?;
    let messages = crate::dlq::receive(sqs, queue, max, std::time::Duration::ZERO).await?;
    Ok(messages
        .iter()
        .map(|message| {
            let body: serde_json::Value = message
                .body()
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or_default();
            let detail = &body["detail"];
            Quarantined {
                sequence: detail["sequenceNumber"].as_str().unwrap_or_default().to_owned(),
                keys: detail["keys"].to_string(),
                reason: detail["reason"]
                    .as_str()
                    .unwrap_or("not a quarantine notice")
                    .to_owned(),
            }
        })
        .collect())
}

/// What Lambda sends to a stream mapping's on-failure destination.
#[derive(Debug, Deserialize)]
struct FailureRecord {
    #[serde(rename = "DDBStreamBatchInfo")]
    batch: BatchInfo,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchInfo {
    approximate_arrival_of_first_record: String,
    approximate_arrival_of_last_record: String,
    #[serde(default)]
    batch_size: u64,
}

/// What a recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Failure messages whose events are all on the bus again (and were deleted).
    pub batches: usize,
    /// Events republished.
    pub events: usize,
    /// Failure messages left in the queue: unreadable, or not every event published.
    pub left: usize,
    /// Items in the windows that can never be published (see `relay quarantine`).
    pub quarantined: usize,
}

/// Recovers every batch in the relay's on-failure queue.
///
/// # Errors
/// When the stack cannot be resolved or a store or the queue fails.
pub async fn recover(target: &crate::target::Target, slack: u32, max: usize) -> anyhow::Result<Recovered> {
    let resolved = crate::target::resolve(target).await?;
    let queue = resolved
        .stack
        .queue("RelayFailureQueue")
        .context("the template has no RelayFailureQueue")?
        .url
        .clone();
    let store = crate::target::event_store(&resolved.stack, &resolved.dynamodb)?;
    let publisher = EventBridgePublisher::new(resolved.events.clone(), resolved.stack.bus());
    let slack = SignedDuration::from_secs(i64::from(slack));
    let mut recovered = Recovered::default();
    let mut seen = 0;
    while seen < max {
        let received = resolved
            .sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(60)
            .send()
            .await
            .context("reading the relay's failure queue")?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            seen += 1;
            let window = message
                .body()
                .and_then(|b| serde_json::from_str::<FailureRecord>(b).ok())
                .and_then(|r| {
                    let first = Timestamp::parse(&r.batch.approximate_arrival_of_first_record).ok()?;
                    let last = Timestamp::parse(&r.batch.approximate_arrival_of_last_record).ok()?;
                    Some((first.plus(-slack), last.plus(slack), r.batch.batch_size))
                });
            let Some((from, until, size)) = window else {
                tracing::error!(
                    message_id = message.message_id(),
                    "not a stream batch's failure record; left in the queue"
                );
                recovered.left += 1;
                continue;
            };
            let mut events = store.read_time_range(from, until).await?;
            events.retain(|event| match relay::unpublishable(event) {
                None => true,
                Some(reason) => {
                    tracing::warn!(stream = %event.stream, version = event.version, %reason, "never publishable; the relay quarantined it");
                    recovered.quarantined += 1;
                    false
                }
            });
            let unpublished = publisher.publish(&events).await;
            if !unpublished.is_empty() {
                tracing::error!(
                    message_id = message.message_id(),
                    unpublished = unpublished.len(),
                    "the bus refused some events; the failure record stays for the next run"
                );
                recovered.left += 1;
                continue;
            }
            tracing::info!(%from, %until, batch_size = size, republished = events.len(), "batch recovered");
            recovered.events += events.len();
            recovered.batches += 1;
            if let Some(handle) = message.receipt_handle() {
                resolved
                    .sqs
                    .delete_message()
                    .queue_url(&queue)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .context("deleting a recovered failure record")?;
            }
        }
    }
    Ok(recovered)
}

/// Runs `orderflow relay`.
///
/// # Errors
/// As [`recover`].
pub async fn run(args: &RelayArgs) -> anyhow::Result<()> {
    match &args.command {
        RelayCommand::Recover { slack, max } => {
            let recovered = recover(&args.target, *slack, *max).await?;
            writeln!(
                std::io::stdout().lock(),
                "recovered {} batch(es): {} event(s) republished on the live bus; {} left in the failure queue",
                recovered.batches,
                recovered.events,
                recovered.left
            )?;
            if recovered.quarantined > 0 {
                writeln!(
                    std::io::stdout().lock(),
                    "{} item(s) in those windows are not events and were left out; `orderflow relay quarantine` lists them",
                    recovered.quarantined
                )?;
            }
            anyhow::ensure!(
                recovered.left == 0,
                "{} failure record(s) could not be recovered",
                recovered.left
            );
            Ok(())
        }
        RelayCommand::Quarantine { max } => {
            let resolved = crate::target::resolve(&args.target).await?;
            let records = quarantined(&resolved.stack, &resolved.sqs, *max).await?;
            let mut out = std::io::stdout().lock();
            if records.is_empty() {
                writeln!(out, "no stream record is quarantined")?;
            }
            for record in &records {
                writeln!(
                    out,
                    "{}  keys {}  {}",
                    record.sequence, record.keys, record.reason
                )?;
            }
            Ok(())
        }
    }
}
