//! `orderflow-dev load`: orders through the public API of a local or deployed stack, as
//! customers place them, with a mix of declined cards, out-of-stock lines and
//! cancellations; then how long the saga took, what it cost in AWS calls, and whether
//! the system is still consistent.
//!
//! 1. **Principals.** Each order is placed by one of `--customers` customers, with that
//!    customer's token; stock is topped up and products read with an operator's token.
//!    Locally the tokens are minted with the stack's key (as `orderflow token`); for a
//!    deployed stack they come from `--tokens <file>` (`{"operator": "…", "customers":
//!    ["…", …]}`), issued by its identity provider.
//! 2. **Stock first.** The ordinary SKUs are topped up (`POST /products/{sku}/stock`,
//!    one audited receipt) so that the run cannot run out by accident: every
//!    out-of-stock cancellation is one the mix asked for, on `--out-of-stock-sku` with a
//!    quantity over what it has.
//! 3. **Placing.** `--orders` orders from `--concurrency` clients, as fast as they go or
//!    at `--rate` orders/s. A 429 or a 5xx is retried after `Retry-After` with the same
//!    `Idempotency-Key`, as a client should (no order is placed twice). A cancellation
//!    follows its placement at once, with `If-Match`.
//! 4. **Settling.** Each order's view is read from the stack's read model until the saga
//!    is done with it: `CANCELLED`, or confirmed with its shipment recorded. Its events,
//!    from the event store, then give the times (the store's `occurredAt`, not the
//!    polling's): placed → terminal (`CONFIRMED` or `CANCELLED`) → shipment recorded.
//!    These reads go to the tables with the load's own client, not through the API:
//!    they are not the system's work, and are neither counted nor slow the API down.
//! 5. **Quiet, then checked.** Once every queue is empty, the AWS calls the functions
//!    made are read from `orderflow-dev up`'s tally (`--calls`; in AWS, the `AwsCalls`
//!    metric), the DLQ depths are listed and `orderflow check` runs on the orders
//!    placed.
//!
//! The report is printed, and written as JSON with `--report <file>`.

#![allow(
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "rates and percentiles of a measurement report: small, positive, rounded on purpose"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use serde::Serialize;

use orderflow_app::EventStore as _;
use orderflow_domain::Timestamp;

use orderflow_cli::target::Target;

/// Options of `orderflow-dev load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The stack the API belongs to: its queues and DLQs are read at the end, and
    /// `orderflow check` runs on it.
    #[command(flatten)]
    pub on: Target,
    /// The order API.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub api: String,
    /// How many orders.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub orders: u64,
    /// Orders per second to place at (default: as fast as `--concurrency` clients go).
    #[arg(long, value_parser = positive)]
    pub rate: Option<f64>,
    /// Clients placing at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Customers the orders are spread over (each has the API's per-principal rate).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub customers: u32,
    /// Percent of orders paid with a declining card (`tok_decline`).
    #[arg(long, default_value_t = 5.0, value_parser = percent)]
    pub declines: f64,
    /// Percent of orders for more than `--out-of-stock-sku` has.
    #[arg(long, default_value_t = 5.0, value_parser = percent)]
    pub out_of_stock: f64,
    /// Percent of orders their customer cancels right after placing them.
    #[arg(long, default_value_t = 10.0, value_parser = percent)]
    pub cancellations: f64,
    /// The SKUs ordinary orders buy, one unit of each (topped up before the run).
    #[arg(long, value_delimiter = ',', default_value = "SKU-1,SKU-2")]
    pub skus: Vec<String>,
    /// A SKU with fewer than 1000 units, ordered 1000 at a time by the out-of-stock share.
    #[arg(long, default_value = "SKU-RARE")]
    pub out_of_stock_sku: String,
    /// Seed of the mix: the same seed places the same kinds in the same order.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seconds to wait for the orders to settle and the queues to drain.
    #[arg(long, default_value_t = 600)]
    pub settle_timeout: u64,
    /// The AWS-call tally of `orderflow-dev up` (its operations port); `none` to skip.
    #[arg(long, default_value = "http://127.0.0.1:3001/calls")]
    pub calls: String,
    /// Tokens for a deployed stack: `{"operator": "…", "customers": ["…", …]}`.
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// Where the local stack keeps its signing key (as `orderflow-dev up --state-dir`).
    #[arg(long, default_value = ".local/run")]
    pub state_dir: PathBuf,
    /// Write the report here as JSON too.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// No progress bar (it goes to stderr, and only to a terminal anyway).
    #[arg(long)]
    pub quiet: bool,
    /// Then measure the emulators' ceiling for the run's call mix (`orderflow-dev up`
    /// locally only), for this many seconds, and set the end-to-end rate against it.
    #[arg(long, value_name = "SECONDS")]
    pub ceiling: Option<u64>,
    /// Calls in flight at once while measuring the ceiling.
    #[arg(long, default_value_t = 32)]
    pub ceiling_concurrency: usize,
}

mod client;
mod floor;
mod report;

use client::*;
pub use floor::{FLOOR, Floor, floor_by_operation};
use report::calls_report;
pub use report::{CallsReport, Latency, Report, clean, print};

pub(crate) fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

pub(crate) fn percent(text: &str) -> Result<f64, String> {
    match text.trim_end_matches('%').parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a percentage from 0 to 100")),
    }
}

/// What an order of the run is meant to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// Paid, in stock: confirmed and shipped.
    Ordinary,
    /// A declining card: cancelled, `payment_declined`.
    Declined,
    /// More than there is: cancelled, `out_of_stock`.
    OutOfStock,
    /// Cancelled by its customer right after placing it.
    Cancelled,
}

impl Kind {
    /// The outcome the saga should reach: a status and, if cancelled, its reason.
    const fn expected(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::Ordinary => ("CONFIRMED", None),
            Self::Declined => ("CANCELLED", Some("payment_declined")),
            Self::OutOfStock => ("CANCELLED", Some("out_of_stock")),
            Self::Cancelled => ("CANCELLED", Some("requested")),
        }
    }
}

/// The kinds of `orders` orders, in placing order: a seeded draw with the given shares.
#[must_use]
pub fn plan(orders: u64, declines: f64, out_of_stock: f64, cancellations: f64, seed: u64) -> Vec<Kind> {
    let mut state = seed;
    (0..orders)
        .map(|_| {
            // splitmix64: a fixed, portable sequence per seed.
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let draw = (z >> 11) as f64 / (1u64 << 53) as f64 * 100.0;
            if draw < declines {
                Kind::Declined
            } else if draw < declines + out_of_stock {
                Kind::OutOfStock
            } else if draw < declines + out_of_stock + cancellations {
                Kind::Cancelled
            } else {
                Kind::Ordinary
            }
        })
        .collect()
}

/// Runs the load and measures it.
///
/// # Errors
/// When the API or the stack cannot be reached, the tokens cannot be had, or stock
/// cannot be topped up.
pub async fn run(args: &LoadArgs) -> anyhow::Result<Report> {
    let tokens = Arc::new(tokens(args)?);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::from(args.concurrency))
        .timeout(Duration::from_secs(30))
        .build()
        .context("an HTTP client")?;
    let api = Api {
        http: http.clone(),
        base: args.api.trim_end_matches('/').into(),
    };
    let tally = Arc::new(Tally::default());
    let kinds = plan(
        args.orders,
        args.declines,
        args.out_of_stock,
        args.cancellations,
        args.seed,
    );
    let mut report = Report {
        orders: args.orders,
        ..Report::default()
    };
    for kind in &kinds {
        let name = serde_json::to_value(kind)?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        *report.mix.entry(name).or_default() += 1;
    }
    report.stocked = stock_up(&api, &tally, &tokens, args, &kinds).await?;
    let calls_before = calls(&http, &args.calls).await;
    let from = jiff::Timestamp::now();

    // Placing.
    let bar = progress(args.quiet, args.orders, "placing");
    let started = Instant::now();
    let rate = args.rate;
    let placed: Vec<Placed> = futures::stream::iter(kinds.iter().copied().enumerate())
        .map(|(n, kind)| {
            let (api, tally, tokens, bar) = (api.clone(), tally.clone(), tokens.clone(), bar.clone());
            async move {
                if let Some(rate) = rate {
                    tokio::time::sleep_until((started + Duration::from_secs_f64(n as f64 / rate)).into())
                        .await;
                }
                let placed = place(&api, &tally, &tokens, args, n, kind).await;
                bar.inc(1);
                placed
            }
        })
        .buffer_unordered(usize::from(args.concurrency))
        .filter_map(|p| async move { p })
        .collect()
        .await;
    bar.finish_and_clear();
    report.placing_seconds = started.elapsed().as_secs_f64();
    report.placed = placed.len() as u64;
    report.rejected = args.orders - report.placed;
    report.cancel_refused = placed.iter().filter(|p| p.cancel_refused).count() as u64;
    report.accepted_per_second = report.placed as f64 / report.placing_seconds.max(f64::EPSILON);

    // Settling.
    let deadline = Instant::now() + Duration::from_secs(args.settle_timeout);
    let resolved = orderflow_cli::target::resolve(&args.on).await?;
    let tables = Tables {
        views: orderflow_cli::target::order_views(&resolved.stack, &resolved.dynamodb)?,
        store: orderflow_cli::target::event_store(&resolved.stack, &resolved.dynamodb)?,
    };
    let bar = progress(args.quiet, report.placed, "settling");
    let settled: Vec<(Placed, Settled)> = futures::stream::iter(placed)
        .map(|p| {
            let (tables, tally, bar) = (&tables, tally.clone(), bar.clone());
            async move {
                let s = settle(tables, &tally, &p, deadline).await;
                bar.inc(1);
                (p, s)
            }
        })
        .buffer_unordered(usize::from(args.concurrency))
        .collect()
        .await;
    bar.finish_and_clear();
    let mut to_terminal = Vec::new();
    let mut to_shipped = Vec::new();
    for (placed, s) in &settled {
        let Some(outcome) = &s.outcome else {
            report.unsettled += 1;
            continue;
        };
        *report.outcomes.entry(outcome.clone()).or_default() += 1;
        let expected = match placed.kind.expected() {
            // A cancellation the API refused leaves the order to the saga.
            _ if placed.cancel_refused => "CONFIRMED".to_owned(),
            (status, None) => status.to_owned(),
            (status, Some(reason)) => format!("{status}/{reason}"),
        };
        if *outcome != expected {
            report.unexpected += 1;
            tally.error(format!(
                "order {} ({:?}) ended {outcome}, not {expected}",
                placed.id, placed.kind
            ));
        }
        to_terminal.extend(s.to_terminal);
        to_shipped.extend(s.to_shipped);
    }
    report.time_to_terminal = Latency::of(&to_terminal);
    report.time_to_shipped = Latency::of(&to_shipped);
    let first_placed = settled.iter().filter_map(|(_, s)| s.placed_at).min();
    let span = |last: Option<jiff::Timestamp>| between(first_placed, last).map(|d| d.as_secs_f64());
    if let Some(seconds) = span(settled.iter().filter_map(|(_, s)| s.terminal_at).max()) {
        report.end_to_end_seconds = seconds;
        report.end_to_end_per_second = to_terminal.len() as f64 / seconds.max(f64::EPSILON);
    }
    if let Some(seconds) = span(settled.iter().filter_map(|(_, s)| s.shipped_at).max()) {
        report.shipped_per_second = to_shipped.len() as f64 / seconds.max(f64::EPSILON);
    }

    // Quiet, then what it cost and whether it is consistent.
    if !quiet(&resolved, deadline).await? {
        tally.error("the queues had not drained when --settle-timeout ran out".to_owned());
    }
    let orders = report.placed.max(1) as f64;
    if let Ok(events) = tables
        .store
        .read_time_range(
            Timestamp::from_jiff(from),
            Timestamp::from_jiff(jiff::Timestamp::now()),
        )
        .await
    {
        report.events_per_order = events.len() as f64 / orders;
    }
    if let (Some(before), Some(after)) = (calls_before, calls(&http, &args.calls).await) {
        report.calls = Some(calls_report(&before, &after, orders, &kinds));
    }
    for depth in orderflow_cli::dlq::list(&args.on).await? {
        report.dlq_depths.insert(depth.logical_id, depth.messages);
    }
    let check = orderflow_cli::check::run(&orderflow_cli::check::CheckArgs {
        on: args.on.clone(),
        from: Some(from.to_string()),
        until: None,
        grace: 0,
    })
    .await?;
    report.check_findings = check
        .findings
        .iter()
        .map(|f| match &f.order_id {
            Some(id) => format!("{id}: {}", f.what),
            None => f.what.clone(),
        })
        .collect();
    if let Some(seconds) = args.ceiling {
        let mix = report
            .calls
            .as_ref()
            .map(|c| c.emulator_mix.clone())
            .unwrap_or_default();
        anyhow::ensure!(
            args.on.stack.is_none() && !mix.is_empty(),
            "--ceiling measures the emulators of a local stack, with the calls `orderflow-dev up` counted"
        );
        let put_events = mix.get("EventBridge.PutEvents").copied().unwrap_or(1.0);
        let entries = (report.events_per_order / put_events.max(f64::EPSILON)).round() as usize;
        let template = orderflow_provision::Template::load(&args.on.template)?;
        let ceiling = crate::ceiling::measure(
            &template,
            &args.on.prefix,
            &mix,
            entries,
            Duration::from_secs(seconds),
            args.ceiling_concurrency,
        )
        .await?;
        report.of_ceiling = Some(report.end_to_end_per_second / ceiling.orders_per_second.max(f64::EPSILON));
        report.ceiling = Some(ceiling);
    }
    report.throttled = tally.throttled.load(std::sync::atomic::Ordering::Relaxed);
    report.api_latency = Latency::of(&tally.latencies.lock().map(|l| l.clone()).unwrap_or_default());
    report.errors = tally.errors.lock().map(|e| e.clone()).unwrap_or_default();
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use orderflow_domain::order::OrderStatus;

    use super::*;

    #[test]
    fn the_plan_draws_each_share_and_is_the_same_for_a_seed() {
        let kinds = plan(10_000, 5.0, 5.0, 10.0, 7);
        let count = |k: Kind| kinds.iter().filter(|x| **x == k).count();
        // Within 1.5 points of the asked share, on 10,000 draws.
        assert!(
            (350..=650).contains(&count(Kind::Declined)),
            "{}",
            count(Kind::Declined)
        );
        assert!(
            (350..=650).contains(&count(Kind::OutOfStock)),
            "{}",
            count(Kind::OutOfStock)
        );
        assert!(
            (850..=1150).contains(&count(Kind::Cancelled)),
            "{}",
            count(Kind::Cancelled)
        );
        assert_eq!(kinds, plan(10_000, 5.0, 5.0, 10.0, 7));
        assert_ne!(kinds, plan(10_000, 5.0, 5.0, 10.0, 8));
        assert!(plan(100, 0.0, 0.0, 0.0, 1).iter().all(|k| *k == Kind::Ordinary));
        assert!(plan(100, 100.0, 0.0, 0.0, 1).iter().all(|k| *k == Kind::Declined));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sample: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let l = Latency::of(&sample);
        assert_eq!(
            (l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Latency::of(&[]), Latency::default());
        let one = Latency::of(&[Duration::from_millis(7)]);
        assert_eq!((one.p50_ms, one.max_ms), (7.0, 7.0));
    }

    #[test]
    fn an_order_is_settled_when_cancelled_or_shipped() {
        assert!(!settled(OrderStatus::Pending, false));
        assert!(!settled(OrderStatus::Confirmed, false));
        assert!(settled(OrderStatus::Confirmed, true));
        assert!(settled(OrderStatus::Delivered, true));
        assert!(settled(OrderStatus::Cancelled, false));
    }

    #[test]
    fn shares_and_rates_are_checked_on_the_command_line() {
        assert_eq!(percent("5%"), Ok(5.0));
        assert!(percent("101").is_err());
        assert!(percent("-1").is_err());
        assert!(positive("0").is_err());
        assert!(positive("NaN").is_err());
        assert_eq!(positive("2.5"), Ok(2.5));
    }
}
