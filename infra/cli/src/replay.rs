//! `orderflow replay`: governed replay of stored events.
//!
//! - **Scope**, always bounded: a time range (read from the event store's time
//!   index), optionally narrowed to aggregate ids and event types.
//! - **Target**: `replay-bus` (the template's `ReplayBus`, whose queue no live
//!   consumer reads: for inspection and canaries; the default), `read-model` (the
//!   projector's fold into a read-model side, by default the one not served), or
//!   `live-bus`, only with `--allow-live`.
//! - **Governance**: `--owner` and `--reason` are required; `--rate` caps events per
//!   second (default 50, to leave the capacity to live traffic); `--dry-run` counts what
//!   would be replayed and records nothing.
//! - **Record**: every replay is a `ReplayTable` item (owner, reason, scope, target,
//!   rate, start, end, counts, outcome) kept current as it goes; each replayed event
//!   carries `replay: {id, reason}` in its envelope, so consumers tell it from live
//!   traffic (payment makes no payment for a replayed event unless told to).
//! - **Resume**: an interrupted replay (Ctrl-C, a crash, a failed target) continues
//!   from its record with `--resume <id>`, after the last event it sent.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use crate::target::Resolved;
use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use indicatif::{ProgressBar, ProgressStyle};
use orderflow_adapters::EventBridgePublisher;
use orderflow_adapters::read_model::DynamoOrderViews;
use orderflow_app::{EventPublisher, EventRecord, EventStore, Repository};
use orderflow_domain::order::OrderEvent;
use orderflow_domain::{Envelope, Timestamp};
use serde::{Deserialize, Serialize};

/// Events sent per step (EventBridge takes ten per `PutEvents`).
const CHUNK: usize = 10;

/// Options of `orderflow replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// The stack.
    #[command(flatten)]
    pub on: crate::target::Target,
    /// Who is replaying (a person or a team).
    #[arg(long, required_unless_present = "resume")]
    pub owner: Option<String>,
    /// Why (kept in the record and in every replayed event).
    #[arg(long, required_unless_present = "resume")]
    pub reason: Option<String>,
    /// Events that occurred at or after this time (RFC 3339).
    #[arg(long, required_unless_present = "resume")]
    pub from: Option<String>,
    /// Events that occurred before this time (RFC 3339).
    #[arg(long, required_unless_present = "resume")]
    pub until: Option<String>,
    /// Only these aggregates (repeatable).
    #[arg(long = "aggregate-id")]
    pub aggregate_ids: Vec<String>,
    /// Only these event types (repeatable), e.g. OrderPlaced.
    #[arg(long = "event-type")]
    pub event_types: Vec<String>,
    /// `replay-bus`, `read-model` or `live-bus`.
    #[arg(long, default_value = "replay-bus")]
    pub target: String,
    /// For `read-model`: the side (`primary` or `shadow`); default the one not served.
    #[arg(long)]
    pub into: Option<String>,
    /// Required for `live-bus`: the live consumers will see the events (marked).
    #[arg(long)]
    pub allow_live: bool,
    /// Events per second at most.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rate: u32,
    /// Count what would be replayed; send and record nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Continue the replay with this id from where it stopped.
    #[arg(long)]
    pub resume: Option<String>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// What a replay covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    /// From (inclusive).
    pub from: String,
    /// Until (exclusive).
    pub until: String,
    /// Aggregate ids, if narrowed.
    #[serde(default)]
    pub aggregate_ids: Vec<String>,
    /// Event types, if narrowed.
    #[serde(default)]
    pub event_types: Vec<String>,
}

/// A replay's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayRecord {
    /// Its id (also in every replayed event).
    pub replay_id: String,
    /// Who.
    pub owner: String,
    /// Why.
    pub reason: String,
    /// What.
    pub scope: Scope,
    /// Where to: `replay-bus`, `read-model:<table>`, `live-bus`.
    pub target: String,
    /// Events per second at most.
    pub rate: u32,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it last stopped (RFC 3339).
    #[serde(default)]
    pub ended_at: Option<String>,
    /// Events in scope.
    pub matched: u64,
    /// Events sent so far.
    pub sent: u64,
    /// Events in scope the target does not take (e.g. non-order events to a read model).
    #[serde(default)]
    pub skipped: u64,
    /// `running`, `completed`, `interrupted` or `failed: <why>`.
    pub outcome: String,
    /// The last event sent, as `<occurredAt>#<eventId>`: where a resume continues.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// What `replay` did.
#[derive(Debug, Clone)]
pub enum Replayed {
    /// A dry run: event counts by type.
    DryRun {
        /// Events in scope.
        matched: usize,
        /// By event type.
        by_type: BTreeMap<String, usize>,
    },
    /// A real one, as recorded.
    Done(Box<ReplayRecord>),
}

/// The replay records table.
#[derive(Debug, Clone)]
pub struct Records {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl Records {
    /// The records in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Writes a record (each progress step overwrites it).
    ///
    /// # Errors
    /// When DynamoDB fails.
    pub async fn put(&self, record: &ReplayRecord) -> anyhow::Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(record)?))
            .send()
            .await
            .context("recording the replay")?;
        Ok(())
    }

    /// A record by id.
    ///
    /// # Errors
    /// When DynamoDB fails or the record does not decode.
    pub async fn get(&self, replay_id: &str) -> anyhow::Result<Option<ReplayRecord>> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("replayId", AttributeValue::S(replay_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .context("reading the replay record")?
            .item;
        item.map(|i| serde_dynamo::from_item(i).context("decoding the replay record"))
            .transpose()
    }

    /// Every record.
    ///
    /// # Errors
    /// When DynamoDB fails.
    pub async fn all(&self) -> anyhow::Result<Vec<ReplayRecord>> {
        let items = self
            .client
            .scan()
            .table_name(&self.table)
            .send()
            .await
            .context("listing replays")?
            .items
            .unwrap_or_default();
        items
            .into_iter()
            .map(|i| serde_dynamo::from_item(i).context("decoding a replay record"))
            .collect()
    }
}

fn time_key(record: &EventRecord) -> String {
    format!("{}#{}", record.occurred_at, record.event_id)
}

fn now() -> String {
    Timestamp::from_jiff(jiff::Timestamp::now()).to_string()
}

/// The event's stored JSON with `replay: {id, reason}` added.
fn marked(record: &EventRecord, replay_id: &str, reason: &str) -> anyhow::Result<EventRecord> {
    let mut body: serde_json::Value =
        serde_json::from_str(&record.body).context("a stored event is not JSON")?;
    body["replay"] = serde_json::json!({ "id": replay_id, "reason": reason });
    Ok(EventRecord {
        body: body.to_string(),
        ..record.clone()
    })
}

enum Sink {
    Bus(EventBridgePublisher),
    ReadModel(projector::Projector),
}

impl Sink {
    /// Sends a chunk; how many of it (from the start) went through.
    async fn send(&self, chunk: &[EventRecord]) -> (usize, u64, Option<String>) {
        match self {
            Self::Bus(publisher) => {
                let failed = publisher.publish(chunk).await;
                let through = failed.iter().min().copied().unwrap_or(chunk.len());
                let error = failed.first().map(|_| "the bus refused events".to_owned());
                (through, 0, error)
            }
            Self::ReadModel(projector) => {
                let mut skipped = 0;
                for (i, record) in chunk.iter().enumerate() {
                    let Ok(envelope) = Envelope::<OrderEvent>::decode(&record.body) else {
                        skipped += 1;
                        continue;
                    };
                    if let Err(error) = projector.project(&envelope).await {
                        return (i, skipped, Some(error.to_string()));
                    }
                }
                (chunk.len(), skipped, None)
            }
        }
    }
}

async fn sink(args: &ReplayArgs, resolved: &Resolved, target: &str) -> anyhow::Result<(Sink, String)> {
    let stack = &resolved.stack;
    Ok(match target {
        "replay-bus" | "live-bus" => {
            let logical = if target == "live-bus" {
                "EventBus"
            } else {
                "ReplayBus"
            };
            let bus = stack
                .messaging
                .buses
                .get(logical)
                .with_context(|| format!("the template has no {logical}"))?;
            (
                Sink::Bus(EventBridgePublisher::new(resolved.events.clone(), bus)),
                target.to_owned(),
            )
        }
        "read-model" => {
            let (into, _) = crate::rebuild::read_model_side(stack, args.into.as_deref())?;
            read_model_sink(resolved, into)?
        }
        // A recorded read-model replay names its table: a resume goes on into it.
        recorded if recorded.starts_with("read-model:") => {
            let table = &recorded["read-model:".len()..];
            anyhow::ensure!(
                ["OrderViewTable", "OrderViewShadowTable"]
                    .iter()
                    .any(|id| stack.table(id) == Some(table)),
                "the recorded target {recorded:?} is no read-model table of this stack"
            );
            read_model_sink(resolved, table)?
        }
        other => anyhow::bail!("--target: replay-bus, read-model or live-bus, not {other:?}"),
    })
}

/// Replays into the read-model table `into`, through the projector's fold.
fn read_model_sink(resolved: &Resolved, into: &str) -> anyhow::Result<(Sink, String)> {
    let dynamodb = resolved.dynamodb.clone();
    let store = crate::target::event_store(&resolved.stack, &dynamodb)?;
    let projector =
        projector::Projector::new(Repository::new(store, 0), DynamoOrderViews::new(dynamodb, into));
    Ok((Sink::ReadModel(projector), format!("read-model:{into}")))
}

fn progress(quiet: bool, total: u64, done: u64) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total).with_position(done);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} replaying [{bar:30}] {pos}/{len} events  {per_sec}  eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// Runs a replay (or a dry run) until it is done or `shutdown` turns true.
///
/// # Errors
/// When the scope is malformed, the target refused, or a store fails; a target that
/// fails mid-way is recorded as `failed` with where it stopped, and returned as an
/// error.
pub async fn run(
    args: &ReplayArgs,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Replayed> {
    let resolved = crate::target::resolve(&args.on).await?;
    let (stack, dynamodb) = (&resolved.stack, resolved.dynamodb.clone());
    let records = Records::new(
        dynamodb.clone(),
        stack
            .table("ReplayTable")
            .context("the template has no ReplayTable")?,
    );

    let mut record = match &args.resume {
        Some(id) => {
            let record = records
                .get(id)
                .await?
                .with_context(|| format!("no replay {id}"))?;
            anyhow::ensure!(record.outcome != "completed", "replay {id} is already completed");
            // Resuming is replaying: reaching the live consumers needs saying again.
            anyhow::ensure!(
                record.target != "live-bus" || args.allow_live,
                "replay {id} goes to the live bus, which reaches the live consumers: pass --allow-live to resume it"
            );
            record
        }
        None => {
            let required = |value: &Option<String>, flag: &str| {
                value
                    .clone()
                    .filter(|v| !v.trim().is_empty())
                    .with_context(|| format!("--{flag} is required"))
            };
            let scope = Scope {
                from: required(&args.from, "from")?,
                until: required(&args.until, "until")?,
                aggregate_ids: args.aggregate_ids.clone(),
                event_types: args.event_types.clone(),
            };
            anyhow::ensure!(
                args.target != "live-bus" || args.allow_live,
                "--target live-bus reaches the live consumers: pass --allow-live to mean it"
            );
            ReplayRecord {
                replay_id: format!("rpl_{}", uuid::Uuid::now_v7().simple()),
                owner: required(&args.owner, "owner")?,
                reason: required(&args.reason, "reason")?,
                scope,
                target: args.target.clone(),
                rate: args.rate,
                started_at: now(),
                ended_at: None,
                matched: 0,
                sent: 0,
                skipped: 0,
                outcome: "running".into(),
                cursor: None,
            }
        }
    };
    let from = Timestamp::parse(&record.scope.from).context("--from: an RFC 3339 time")?;
    let until = Timestamp::parse(&record.scope.until).context("--until: an RFC 3339 time")?;
    anyhow::ensure!(from < until, "--from must be before --until");
    anyhow::ensure!(
        until.as_micros() - from.as_micros() <= 366 * 24 * 3_600 * 1_000_000,
        "a replay covers at most a year; split it"
    );

    let store = crate::target::event_store(stack, &dynamodb)?;
    let mut events: Vec<EventRecord> = store
        .read_time_range(from, until)
        .await?
        .into_iter()
        .filter(|e| {
            record.scope.aggregate_ids.is_empty()
                || record.scope.aggregate_ids.contains(&e.stream.aggregate_id)
        })
        .filter(|e| record.scope.event_types.is_empty() || record.scope.event_types.contains(&e.event_type))
        .collect();
    events.sort_by_key(EventRecord::time_order);

    // What is left: after the recorded cursor when resuming.
    let events: Vec<EventRecord> = match (&args.resume, &record.cursor) {
        (Some(_), Some(cursor)) => events.into_iter().filter(|e| time_key(e) > *cursor).collect(),
        _ => events,
    };
    // A dry run, fresh or resumed, counts what would be sent and sends and records
    // nothing.
    if args.dry_run {
        let mut by_type = BTreeMap::new();
        for event in &events {
            *by_type.entry(event.event_type.clone()).or_insert(0) += 1;
        }
        return Ok(Replayed::DryRun {
            matched: events.len(),
            by_type,
        });
    }

    let (sink, target) = sink(args, &resolved, &record.target).await?;
    if args.resume.is_none() {
        record.target = target;
        record.matched = events.len() as u64;
    }
    let remaining = events;
    record.outcome = "running".into();
    record.ended_at = None;
    records.put(&record).await?;
    tracing::info!(replay_id = %record.replay_id, owner = %record.owner, target = %record.target, matched = record.matched, remaining = remaining.len(), rate = record.rate, "replay started");

    let bar = progress(args.quiet, record.matched, record.sent + record.skipped);
    let interval = Duration::from_secs(1) / record.rate.max(1);
    let started = Instant::now();
    let mut paced: u32 = 0;
    let mut failure = None;
    // Never more at once than a second's worth.
    let chunk_size = CHUNK.min(usize::try_from(record.rate).unwrap_or(CHUNK)).max(1);
    for chunk in remaining.chunks(chunk_size) {
        if *shutdown.borrow() {
            record.outcome = "interrupted".into();
            break;
        }
        let marked = chunk
            .iter()
            .map(|e| marked(e, &record.replay_id, &record.reason))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // Paced per event: event n is sent no earlier than n / rate seconds in.
        tokio::time::sleep_until((started + interval * paced).into()).await;
        paced = paced.saturating_add(u32::try_from(chunk.len()).unwrap_or(u32::MAX));
        let (through, skipped, error) = sink.send(&marked).await;
        if let Some(last) = through.checked_sub(1).map(|i| &chunk[i]) {
            record.cursor = Some(time_key(last));
        }
        record.skipped += skipped;
        record.sent += through as u64 - skipped;
        bar.inc(through as u64);
        if let Some(error) = error {
            record.outcome = format!("failed: {error}");
            failure = Some(error);
            break;
        }
        records.put(&record).await?;
    }
    bar.finish_and_clear();
    if record.outcome == "running" {
        record.outcome = "completed".into();
    }
    record.ended_at = Some(now());
    records.put(&record).await?;
    tracing::info!(replay_id = %record.replay_id, outcome = %record.outcome, sent = record.sent, skipped = record.skipped, "replay stopped");
    if let Some(error) = failure {
        anyhow::bail!(
            "replay {} stopped: {error}; resume with --resume {}",
            record.replay_id,
            record.replay_id
        );
    }
    Ok(Replayed::Done(Box::new(record)))
}

/// Prints what a replay did.
///
/// # Errors
/// When stdout is closed.
pub fn report(replayed: &Replayed) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match replayed {
        Replayed::DryRun { matched, by_type } => {
            writeln!(out, "dry run: {matched} event(s) would be replayed")?;
            for (event_type, n) in by_type {
                writeln!(out, "  {event_type:28} {n}")?;
            }
        }
        Replayed::Done(record) => {
            writeln!(
                out,
                "replay {} {}: {} of {} event(s) sent to {} ({} skipped) at most {}/s",
                record.replay_id,
                record.outcome,
                record.sent,
                record.matched,
                record.target,
                record.skipped,
                record.rate
            )?;
            writeln!(out, "  owner {}  reason {:?}", record.owner, record.reason)?;
            if record.outcome == "interrupted" {
                writeln!(
                    out,
                    "  resume with: orderflow replay --resume {}",
                    record.replay_id
                )?;
            }
        }
    }
    Ok(())
}
