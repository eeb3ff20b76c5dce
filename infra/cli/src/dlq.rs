//! `orderflow dlq`: the dead-letter queues, looked at and drained.
//!
//! - `list`: every DLQ of the template with its depth, the age of its oldest message
//!   (from a sample of up to ten) and the queue it serves.
//! - `show <queue>`: its messages, each with the event type, the order id, the receive
//!   count and the last error its consumer recorded (the failure log).
//! - `redrive <queue> --rate N`: moves the messages back to the source queue at most N
//!   a second, with SQS `StartMessageMoveTask` where the endpoint has it, otherwise by
//!   receive, send, delete: sent before it is deleted, so a crash in between can
//!   duplicate a message (which every consumer tolerates) and never lose one.
//!
//! A queue is named by its logical id (`InventoryDeadLetterQueue`), its source's
//! (`InventoryQueue`), or its name. `--stack` acts on a deployed stack, `--prefix` on a
//! local one ([`crate::target`]).

use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use orderflow_adapters::failure_log::DynamoFailureLog;
use orderflow_app::FailureLog as _;
use orderflow_provision::create::Queue;
use orderflow_provision::local::Stack;

pub use crate::target::Target;

/// `orderflow dlq …`.
#[derive(Debug, Clone, clap::Args)]
pub struct DlqArgs {
    /// Where.
    #[command(flatten)]
    pub target: Target,
    /// What.
    #[command(subcommand)]
    pub command: DlqCommand,
}

/// The DLQ commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DlqCommand {
    /// Every DLQ: depth, oldest message, source queue.
    List,
    /// A DLQ's messages with the last error recorded for each.
    Show {
        /// The DLQ (logical id, its source's logical id, or name).
        queue: String,
        /// At most this many messages.
        #[arg(long, default_value_t = 50)]
        max: usize,
    },
    /// Move a DLQ's messages back to the queue they came from.
    Redrive {
        /// The DLQ (logical id, its source's logical id, or name).
        queue: String,
        /// Messages per second at most.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=500))]
        rate: u32,
        /// `auto` (a move task where supported), `move-task`, or `receive-send`.
        #[arg(long, default_value = "auto")]
        method: String,
    },
}

/// A DLQ and the queue it serves.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    /// The DLQ's logical id.
    pub logical_id: String,
    /// The DLQ.
    pub queue: Queue,
    /// The queue whose redrive policy points here.
    pub source: Queue,
}

/// One line of `dlq list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Depth {
    /// The DLQ's logical id.
    pub logical_id: String,
    /// Messages in it.
    pub messages: u64,
    /// Age of the oldest message seen (a sample of up to ten).
    pub oldest: Option<Duration>,
    /// The queue it serves.
    pub source: String,
}

/// One message of `dlq show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    /// The SQS message id.
    pub message_id: String,
    /// The EventBridge detail-type.
    pub event_type: Option<String>,
    /// The order (the event's aggregate id).
    pub order_id: Option<String>,
    /// How often it was received.
    pub receive_count: Option<String>,
    /// The last failure its consumer recorded.
    pub last_error: Option<String>,
}

/// What a redrive moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redriven {
    /// Messages moved.
    pub moved: usize,
    /// How: `move-task` or `receive-send`.
    pub method: &'static str,
}

/// The stack's DLQs, from the template's redrive policies.
#[must_use]
pub fn dead_letter_queues(stack: &Stack) -> Vec<DeadLetters> {
    stack
        .messaging
        .queues
        .values()
        .filter_map(|source| {
            let (dlq, _) = source.redrive.as_ref()?;
            Some(DeadLetters {
                logical_id: dlq.clone(),
                queue: stack.queue(dlq)?.clone(),
                source: source.clone(),
            })
        })
        .collect()
}

fn find(stack: &Stack, name: &str) -> anyhow::Result<DeadLetters> {
    let all = dead_letter_queues(stack);
    all.iter()
        .find(|d| {
            d.logical_id == name
                || d.queue.name == name
                || d.source.name == name
                || stack.queue(name).is_some_and(|q| q.name == d.source.name)
        })
        .cloned()
        .with_context(|| {
            let known: Vec<&str> = all.iter().map(|d| d.logical_id.as_str()).collect();
            format!("no DLQ {name:?}; the template has {}", known.join(", "))
        })
}

pub(crate) async fn depth(sqs: &aws_sdk_sqs::Client, queue: &Queue) -> anyhow::Result<u64> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&queue.url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .with_context(|| format!("reading {}", queue.name))?
        .attributes
        .unwrap_or_default();
    Ok(attributes
        .get(&QueueAttributeName::ApproximateNumberOfMessages)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

/// Receives up to `max` messages, leaving each invisible for `hide` (zero: a peek).
pub(crate) async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue: &Queue,
    max: usize,
    hide: Duration,
) -> anyhow::Result<Vec<aws_sdk_sqs::types::Message>> {
    let mut messages = Vec::new();
    let mut seen = HashSet::new();
    while messages.len() < max {
        let batch = sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(i32::try_from((max - messages.len()).min(10)).unwrap_or(10))
            .visibility_timeout(i32::try_from(hide.as_secs()).unwrap_or(30))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .with_context(|| format!("receiving from {}", queue.name))?
            .messages
            .unwrap_or_default();
        let fresh: Vec<_> = batch
            .into_iter()
            .filter(|m| m.message_id.as_ref().is_some_and(|id| seen.insert(id.clone())))
            .collect();
        if fresh.is_empty() {
            break;
        }
        messages.extend(fresh);
    }
    Ok(messages)
}

fn attribute(message: &aws_sdk_sqs::types::Message, name: MessageSystemAttributeName) -> Option<String> {
    message.attributes.as_ref()?.get(&name).cloned()
}

/// `dlq list`.
///
/// # Errors
/// When the stack or a queue cannot be read.
pub async fn list(target: &Target) -> anyhow::Result<Vec<Depth>> {
    let resolved = crate::target::resolve(target).await?;
    list_in(&resolved.stack, &resolved.sqs).await
}

/// `dlq list` of a resolved stack.
///
/// # Errors
/// When a queue cannot be read.
pub async fn list_in(stack: &Stack, sqs: &aws_sdk_sqs::Client) -> anyhow::Result<Vec<Depth>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut depths = Vec::new();
    for dlq in dead_letter_queues(stack) {
        let messages = depth(sqs, &dlq.queue).await?;
        let oldest = receive(sqs, &dlq.queue, 10, Duration::ZERO)
            .await?
            .iter()
            .filter_map(|m| {
                attribute(m, MessageSystemAttributeName::SentTimestamp)?
                    .parse::<u64>()
                    .ok()
            })
            .min()
            .map(|sent| now.saturating_sub(Duration::from_millis(sent)));
        depths.push(Depth {
            logical_id: dlq.logical_id,
            messages,
            oldest,
            source: dlq.source.name,
        });
    }
    Ok(depths)
}

/// `dlq show`: the messages stay in the DLQ (they are hidden for a few seconds while
/// read, then made visible again).
///
/// # Errors
/// When the stack or the queue cannot be read.
pub async fn show(target: &Target, queue: &str, max: usize) -> anyhow::Result<Vec<Parked>> {
    let resolved = crate::target::resolve(target).await?;
    show_in(
        &resolved.stack,
        &resolved.sqs,
        &resolved.dynamodb,
        queue,
        max,
        Duration::from_secs(30),
    )
    .await
}

/// `dlq show` of a resolved stack, each message hidden for `hide` while read (zero:
/// a peek, for a page that reads them again and again).
///
/// # Errors
/// When the queue is unknown or cannot be read.
pub async fn show_in(
    stack: &Stack,
    sqs: &aws_sdk_sqs::Client,
    dynamodb: &aws_sdk_dynamodb::Client,
    queue: &str,
    max: usize,
    hide: Duration,
) -> anyhow::Result<Vec<Parked>> {
    let dlq = find(stack, queue)?;
    let failures = DynamoFailureLog::new(
        dynamodb.clone(),
        stack
            .table("FailureLogTable")
            .context("the template has no FailureLogTable")?,
    );
    let messages = receive(sqs, &dlq.queue, max, hide).await?;
    let mut parked = Vec::new();
    for message in &messages {
        let body: serde_json::Value = message
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or_default();
        let message_id = message.message_id.clone().unwrap_or_default();
        let last_error = failures.get(&message_id).await?.map(|f| {
            format!(
                "{} ({}, {}, receive {})",
                f.reason, f.kind, f.consumer, f.receive_count
            )
        });
        parked.push(Parked {
            event_type: body["detail-type"].as_str().map(str::to_owned),
            order_id: body["detail"]["aggregateId"].as_str().map(str::to_owned),
            receive_count: attribute(message, MessageSystemAttributeName::ApproximateReceiveCount),
            last_error,
            message_id,
        });
    }
    for message in messages.iter().filter(|_| !hide.is_zero()) {
        if let Some(handle) = &message.receipt_handle {
            sqs.change_message_visibility()
                .queue_url(&dlq.queue.url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await
                .with_context(|| format!("releasing a message of {}", dlq.queue.name))?;
        }
    }
    Ok(parked)
}

/// `dlq redrive`.
///
/// # Errors
/// When the queue is unknown, the method unsupported, or SQS fails (what was moved
/// stays moved; run it again for the rest).
pub async fn redrive(target: &Target, queue: &str, rate: u32, method: &str) -> anyhow::Result<Redriven> {
    let resolved = crate::target::resolve(target).await?;
    let (stack, sqs) = (&resolved.stack, &resolved.sqs);
    let dlq = find(stack, queue)?;
    let before = depth(sqs, &dlq.queue).await?;
    if method != "receive-send" {
        let task = sqs
            .start_message_move_task()
            .source_arn(&dlq.queue.arn)
            .destination_arn(&dlq.source.arn)
            .max_number_of_messages_per_second(i32::try_from(rate).unwrap_or(500))
            .send()
            .await;
        match task {
            Ok(_) => {
                wait_until_empty(sqs, &dlq.queue, before, rate).await?;
                return Ok(Redriven {
                    moved: usize::try_from(before).unwrap_or(usize::MAX),
                    method: "move-task",
                });
            }
            Err(error) if method == "auto" => {
                // The code says why (moto answers a 500 page); the dump is for -vv.
                let code = aws_sdk_sqs::error::ProvideErrorMetadata::code(&error).unwrap_or("no code");
                tracing::info!(code, "no message move task here; moving by receive, send, delete");
                tracing::debug!(error = %aws_sdk_sqs::error::DisplayErrorContext(&error), "StartMessageMoveTask");
            }
            Err(error) => {
                return Err(error).context("starting a message move task (try --method receive-send)");
            }
        }
    }
    let moved = receive_send_delete(sqs, &dlq, rate).await?;
    Ok(Redriven {
        moved,
        method: "receive-send",
    })
}

async fn wait_until_empty(
    sqs: &aws_sdk_sqs::Client,
    queue: &Queue,
    messages: u64,
    rate: u32,
) -> anyhow::Result<()> {
    // Twice the time the rate allows, and ten seconds of slack.
    let deadline = Instant::now() + Duration::from_secs(messages * 2 / u64::from(rate.max(1)) + 10);
    while depth(sqs, queue).await? > 0 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the move task has not emptied {} yet; `dlq list` shows where it stands",
            queue.name
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

async fn receive_send_delete(
    sqs: &aws_sdk_sqs::Client,
    dlq: &DeadLetters,
    rate: u32,
) -> anyhow::Result<usize> {
    let interval = Duration::from_secs(1) / rate.max(1);
    let started = Instant::now();
    let mut moved: u32 = 0;
    loop {
        let batch = receive(sqs, &dlq.queue, 10, Duration::from_secs(60)).await?;
        if batch.is_empty() {
            return Ok(usize::try_from(moved).unwrap_or(usize::MAX));
        }
        for message in batch {
            tokio::time::sleep_until((started + interval * moved).into()).await;
            let mut send = sqs
                .send_message()
                .queue_url(&dlq.source.url)
                .set_message_body(message.body.clone());
            if let Some(attributes) = message.message_attributes.clone() {
                send = send.set_message_attributes(Some(attributes));
            }
            send.send()
                .await
                .with_context(|| format!("sending back to {}", dlq.source.name))?;
            // Deleted only once it is back in its queue: at least once, never lost.
            if let Some(handle) = &message.receipt_handle {
                sqs.delete_message()
                    .queue_url(&dlq.queue.url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .with_context(|| format!("deleting from {}", dlq.queue.name))?;
            }
            moved += 1;
        }
    }
}

/// Runs a `dlq` command and prints what it found.
///
/// # Errors
/// As the command.
pub async fn run(args: &DlqArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match &args.command {
        DlqCommand::List => {
            let depths = list(&args.target).await?;
            writeln!(out, "{:34} {:>8} {:>10}  source", "dlq", "messages", "oldest")?;
            for d in depths {
                let oldest = d
                    .oldest
                    .map_or_else(|| "-".to_owned(), |o| format!("{}s", o.as_secs()));
                writeln!(
                    out,
                    "{:34} {:>8} {:>10}  {}",
                    d.logical_id, d.messages, oldest, d.source
                )?;
            }
        }
        DlqCommand::Show { queue, max } => {
            let parked = show(&args.target, queue, *max).await?;
            writeln!(out, "{} message(s) in {queue}", parked.len())?;
            for p in parked {
                writeln!(
                    out,
                    "  {}  {}  order {}  received {}\n    last error: {}",
                    p.message_id,
                    p.event_type.as_deref().unwrap_or("(not an event)"),
                    p.order_id.as_deref().unwrap_or("-"),
                    p.receive_count.as_deref().unwrap_or("?"),
                    p.last_error.as_deref().unwrap_or("(none recorded)")
                )?;
            }
        }
        DlqCommand::Redrive { queue, rate, method } => {
            anyhow::ensure!(
                ["auto", "move-task", "receive-send"].contains(&method.as_str()),
                "--method: auto, move-task or receive-send"
            );
            let redriven = redrive(&args.target, queue, *rate, method).await?;
            writeln!(
                out,
                "moved {} message(s) from {queue} back to its queue ({})",
                redriven.moved, redriven.method
            )?;
        }
    }
    Ok(())
}
