//! What a load run measured: latencies, calls beside the floor, DLQs and the check;
//! printed for reading and written as JSON.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::floor::{FLOOR, floor_by_operation};
use super::*;

/// Percentiles of a sample, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    /// How many.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Latency {
    /// Nearest-rank percentiles of `sample`.
    #[must_use]
    pub fn of(sample: &[Duration]) -> Self {
        let mut sorted = sample.to_vec();
        sorted.sort_unstable();
        let at = |p: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
            let index = rank.clamp(1, sorted.len()) - 1;
            sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        Self {
            count: sorted.len(),
            p50_ms: at(50.0),
            p90_ms: at(90.0),
            p99_ms: at(99.0),
            max_ms: at(100.0),
        }
    }
}

/// The AWS calls made during the run.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallsReport {
    /// The functions' calls.
    pub total: u64,
    /// The functions' calls per order placed.
    pub per_order: f64,
    /// The functions' calls per order, by `function Service.Operation`.
    pub by_operation: BTreeMap<String, f64>,
    /// The calls of `orderflow-dev up`'s stand-in for Lambda's event source mappings
    /// (polling, deletes, shard reads: Lambda's in AWS), per order.
    pub event_source_mapping_per_order: f64,
    /// Every call per order, by `Service.Operation`: the mix the emulators served.
    pub emulator_mix: BTreeMap<String, f64>,
    /// The designed floor of an ordinary order, when every order of the run was one.
    pub floor: Option<u32>,
    /// Measured per order ÷ the floor.
    pub of_floor: Option<f64>,
}

/// What the run measured.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Orders asked for.
    pub orders: u64,
    /// Of each kind.
    pub mix: BTreeMap<String, u64>,
    /// Accepted by the API (201).
    pub placed: u64,
    /// Refused by the API other than by a 429 (first reasons in `errors`).
    pub rejected: u64,
    /// 429s answered (each retried).
    pub throttled: u64,
    /// Cancellations the API refused (the order had moved past `PREPARING`).
    pub cancel_refused: u64,
    /// Seconds from the first placement to the last acceptance.
    pub placing_seconds: f64,
    /// Orders accepted per second.
    pub accepted_per_second: f64,
    /// Every API request that answered, in milliseconds.
    pub api_latency: Latency,
    /// Placed → `CONFIRMED` or `CANCELLED`, from the events' times.
    pub time_to_terminal: Latency,
    /// Placed → shipment recorded on the order, for shipped orders.
    pub time_to_shipped: Latency,
    /// Orders that reached their terminal state, by outcome (`CONFIRMED`,
    /// `CANCELLED/out_of_stock`, …).
    pub outcomes: BTreeMap<String, u64>,
    /// Orders whose outcome is not the one their kind asked for.
    pub unexpected: u64,
    /// Orders that had not settled when `--settle-timeout` ran out.
    pub unsettled: u64,
    /// Seconds from the first order's placement to the last one's terminal state.
    pub end_to_end_seconds: f64,
    /// Orders that reached a terminal state per second, over that span.
    pub end_to_end_per_second: f64,
    /// Orders that were shipped per second, from the first placement to the last
    /// shipment.
    pub shipped_per_second: f64,
    /// AWS calls, when a tally was reachable.
    pub calls: Option<CallsReport>,
    /// Messages in each DLQ at the end.
    pub dlq_depths: BTreeMap<String, u64>,
    /// `orderflow check` on the run's orders: the findings.
    pub check_findings: Vec<String>,
    /// The first few refusals and errors.
    pub errors: Vec<String>,
    /// Stock received before the run, so that it could not run out by accident.
    pub stocked: Vec<String>,
    /// Events appended during the run, per order placed.
    pub events_per_order: f64,
    /// The emulators' ceiling for the run's call mix (`--ceiling`).
    pub ceiling: Option<crate::ceiling::Ceiling>,
    /// End-to-end orders/s ÷ the ceiling's orders/s.
    pub of_ceiling: Option<f64>,
}

/// The calls between two readings of the tally, per order.
pub(super) fn calls_report(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    orders: f64,
    kinds: &[Kind],
) -> CallsReport {
    let made: BTreeMap<&String, u64> = after
        .iter()
        .map(|(key, n)| (key, n.saturating_sub(before.get(key).copied().unwrap_or(0))))
        .filter(|(_, n)| *n > 0)
        .collect();
    let mut report = CallsReport::default();
    for (key, n) in made {
        let (function, operation) = key.split_once(' ').unwrap_or(("", key));
        *report.emulator_mix.entry(operation.to_owned()).or_default() += n as f64 / orders;
        if function == orderflow_adapters::calls::EVENT_SOURCE_MAPPING {
            report.event_source_mapping_per_order += n as f64 / orders;
        } else {
            report.total += n;
            report.by_operation.insert(key.clone(), n as f64 / orders);
        }
    }
    report.per_order = report.total as f64 / orders;
    if kinds.iter().all(|k| *k == Kind::Ordinary) {
        let floor: u32 = FLOOR.iter().map(|f| f.calls).sum();
        report.floor = Some(floor);
        report.of_floor = Some(report.per_order / f64::from(floor));
    }
    report
}

/// Whether the run met what a clean run is: every order placed and settled as its kind
/// asked, no DLQ message, no finding.
#[must_use]
pub fn clean(report: &Report) -> bool {
    report.rejected == 0
        && report.unsettled == 0
        && report.unexpected == 0
        && report.dlq_depths.values().all(|n| *n == 0)
        && report.check_findings.is_empty()
}

/// Prints the report for people, and writes it as JSON to `path` if given.
///
/// # Errors
/// When stdout or the file cannot be written.
pub fn print(report: &Report, path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let mix: Vec<String> = report.mix.iter().map(|(k, n)| format!("{k} {n}")).collect();
    writeln!(out, "orders          {} ({})", report.orders, mix.join(", "))?;
    for stocked in &report.stocked {
        writeln!(out, "stock           {stocked}")?;
    }
    writeln!(
        out,
        "placed          {} in {:.1} s: {:.1}/s accepted; {} rejected, {} throttled (retried), {} cancellations refused",
        report.placed,
        report.placing_seconds,
        report.accepted_per_second,
        report.rejected,
        report.throttled,
        report.cancel_refused
    )?;
    let line = |name: &str, l: &Latency| {
        format!(
            "{name:15} p50 {:>8.1} ms  p90 {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms  (n={})",
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.count
        )
    };
    writeln!(out, "{}", line("API latency", &report.api_latency))?;
    writeln!(out, "{}", line("to terminal", &report.time_to_terminal))?;
    writeln!(out, "{}", line("to shipped", &report.time_to_shipped))?;
    writeln!(
        out,
        "end to end      {:.1} orders/s terminal ({:.1} s from first placed to last terminal), {:.1} orders/s shipped",
        report.end_to_end_per_second, report.end_to_end_seconds, report.shipped_per_second
    )?;
    let outcomes: Vec<String> = report.outcomes.iter().map(|(k, n)| format!("{k} {n}")).collect();
    writeln!(
        out,
        "outcomes        {}; {} not as asked, {} unsettled",
        outcomes.join(", "),
        report.unexpected,
        report.unsettled
    )?;
    writeln!(out, "events          {:.2} per order", report.events_per_order)?;
    match &report.calls {
        Some(calls) => {
            let floor = match (calls.floor, calls.of_floor) {
                (Some(floor), Some(ratio)) => format!("; the designed floor of an ordinary order is {floor}: {ratio:.2}×"),
                _ => "; the designed floor is for ordinary orders (run with --declines 0 --out-of-stock 0 --cancellations 0)".to_owned(),
            };
            writeln!(
                out,
                "AWS calls       {} by the functions, {:.2} per order{floor}",
                calls.total, calls.per_order
            )?;
            let floor = floor_by_operation();
            for (operation, per_order) in &calls.by_operation {
                match floor.get(operation) {
                    Some(f) => writeln!(out, "  {operation:48} {per_order:>6.2}  (floor {f})")?,
                    None => writeln!(out, "  {operation:48} {per_order:>6.2}")?,
                }
            }
            writeln!(
                out,
                "                and {:.2} per order by the local event source mappings (Lambda's in AWS)",
                calls.event_source_mapping_per_order
            )?;
        }
        None => writeln!(
            out,
            "AWS calls       not counted (no tally at the --calls address)"
        )?,
    }
    if let (Some(ceiling), Some(ratio)) = (&report.ceiling, report.of_ceiling) {
        writeln!(
            out,
            "ceiling         the emulators answer {:.0} calls/s of this mix ({:.1} a order, {} at once, {:.0} s): {:.1} orders/s",
            ceiling.calls_per_second,
            ceiling.calls_per_order,
            ceiling.concurrency,
            ceiling.seconds,
            ceiling.orders_per_second
        )?;
        writeln!(
            out,
            "                end to end {:.1} orders/s is {:.2} × the ceiling{}",
            report.end_to_end_per_second,
            ratio,
            if ceiling.left_out.is_empty() {
                String::new()
            } else {
                format!(" (not issued: {:?})", ceiling.left_out.keys().collect::<Vec<_>>())
            }
        )?;
    }
    let dlqs: Vec<String> = report
        .dlq_depths
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    writeln!(out, "DLQs            {}", dlqs.join(", "))?;
    writeln!(out, "check           {} finding(s)", report.check_findings.len())?;
    for finding in report.check_findings.iter().take(20) {
        writeln!(out, "  {finding}")?;
    }
    for error in &report.errors {
        writeln!(out, "  error: {error}")?;
    }
    if let Some(path) = path {
        let json = serde_json::to_vec_pretty(report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
