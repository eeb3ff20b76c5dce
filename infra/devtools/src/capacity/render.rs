//! What `orderflow-dev capacity` prints: the summary table, the ladder of rates and where
//! each limit binds, and one sizing in detail.

use std::fmt::Write as _;

use serde::Serialize;

use super::*;

pub(crate) fn thousands(v: f64) -> String {
    let rounded = if v >= 100.0 {
        v.round()
    } else {
        (v * 10.0).round() / 10.0
    };
    if rounded < 1_000.0 {
        return format!("{rounded}");
    }
    let digits = format!("{}", rounded as u64);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The summary: each rate, what binds first, how many limits it is over, and the cost.
#[must_use]
pub fn summary(sizings: &[Sizing]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| orders/s | binds first | demand ÷ limit | limits over | a month | a million orders |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for s in sizings {
        let (binds, ratio) = s
            .binds
            .as_ref()
            .map_or(("nothing".to_owned(), "-".to_owned()), |l| {
                (l.name.clone(), format!("{:.2}×", l.utilisation))
            });
        let over = s.limits.iter().filter(|l| l.utilisation >= 1.0).count();
        let _ = writeln!(
            out,
            "| {} | {binds} | {ratio} | {over} | ${} | ${:.2} |",
            thousands(s.orders_per_second),
            thousands(s.cost.total),
            s.cost.total / (s.orders_per_second * MONTH_SECONDS) * 1e6
        );
    }
    out
}

/// Where a limit is reached as the rate rises.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// The limit.
    pub name: String,
    /// The orders/s at which it is reached.
    pub orders_per_second: f64,
    /// What to do then.
    pub answer: &'static str,
}

/// Every limit in the order it binds as orders/s rise (up to 10 million/s), each found
/// by bisection on the model itself, so the parts that are not linear in the rate (the
/// relay's batches, the queues' fill) are honoured.
#[must_use]
pub fn ladder(per_order: &PerOrder, shape: &Shape, limits: &Limits) -> Vec<Step> {
    const TOP: f64 = 1e7;
    let use_at = |n: f64, name: &str| {
        size(n, per_order, shape, limits)
            .limits
            .into_iter()
            .find(|l| l.name == name)
            .map_or(0.0, |l| l.utilisation)
    };
    let mut steps: Vec<Step> = size(TOP, per_order, shape, limits)
        .limits
        .into_iter()
        .filter(|l| l.utilisation >= 1.0)
        .map(|l| {
            let (mut low, mut high) = (0.01_f64, TOP);
            // 60 halvings of a log-scale interval: far below a rounding step.
            for _ in 0..60 {
                let mid = (low * high).sqrt();
                if use_at(mid, &l.name) >= 1.0 {
                    high = mid;
                } else {
                    low = mid;
                }
            }
            Step {
                name: l.name,
                orders_per_second: high,
                answer: l.answer,
            }
        })
        .collect();
    steps.sort_by(|a, b| a.orders_per_second.total_cmp(&b.orders_per_second));
    steps
}

/// The ladder as a table.
#[must_use]
pub fn render_ladder(steps: &[Step]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| binds at orders/s | limit | the answer |");
    let _ = writeln!(out, "|---|---|---|");
    for step in steps {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            thousands(step.orders_per_second),
            step.name,
            step.answer
        );
    }
    out
}

/// One rate in full.
#[must_use]
pub fn detail(s: &Sizing) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} orders/s: {} events/s, {} API requests/s, {} PutEvents/s, {} deliveries/s, {} SQS requests/s",
        thousands(s.orders_per_second),
        thousands(s.events_per_second),
        thousands(s.api_requests),
        thousands(s.put_events),
        thousands(s.deliveries),
        thousands(s.sqs_requests)
    );
    let _ = writeln!(
        out,
        "  stream: {} shards, relay {} at once",
        thousands(s.stream_shards),
        thousands(s.relay_concurrency)
    );
    let _ = writeln!(
        out,
        "  {:<26} {:>14} {:>14}",
        "table", "write units/s", "read units/s"
    );
    for t in &s.tables {
        let _ = writeln!(
            out,
            "  {:<26} {:>14} {:>14}",
            t.table,
            thousands(t.write_units),
            thousands(t.read_units)
        );
    }
    let _ = writeln!(
        out,
        "  {:<16} {:>10} {:>14} {:>12} {:>10}",
        "function", "calls/s", "invocations/s", "concurrency", "ramp"
    );
    for f in &s.functions {
        let _ = writeln!(
            out,
            "  {:<16} {:>10} {:>14} {:>12} {:>9}s",
            f.function,
            thousands(f.calls),
            thousands(f.invocations),
            thousands(f.concurrency),
            f.ramp_seconds
        );
    }
    let _ = writeln!(
        out,
        "  {:<72} {:>10} {:>10} {:>7}",
        "limit", "demand", "limit", "use"
    );
    for l in &s.limits {
        let _ = writeln!(
            out,
            "  {:<72} {:>10} {:>10} {:>6.0}%",
            l.name,
            thousands(l.demand),
            thousands(l.limit),
            l.utilisation * 100.0
        );
    }
    match &s.binds {
        Some(l) => {
            let _ = writeln!(
                out,
                "  binds first: {} ({:.2}×): {}",
                l.name, l.utilisation, l.answer
            );
        }
        None => {
            let _ = writeln!(out, "  nothing binds");
        }
    }
    let c = &s.cost;
    let _ = writeln!(
        out,
        "  a month: ${} (DynamoDB ${}, storage added ${}, EventBridge ${}, SQS ${}, Lambda ${}, API ${})",
        thousands(c.total),
        thousands(c.dynamodb),
        thousands(c.storage_added),
        thousands(c.eventbridge),
        thousands(c.sqs),
        thousands(c.lambda),
        thousands(c.api)
    );
    out
}
