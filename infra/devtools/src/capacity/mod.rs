//! `orderflow-dev capacity`: what N orders/s needs and costs on AWS, and which limit binds
//! first.
//!
//! The model starts from what an order costs, measured or designed:
//!
//! - **Calls per order by function**: the designed floor (`load::FLOOR`, 46 calls), or
//!   an `orderflow-dev load --report` file's measured calls (`--measured`).
//! - **Events per order** (8 for an ordinary order) and where each goes: 11 deliveries
//!   through the bus to the functions' queues, as the template's rules route them.
//! - **Request units per order, by table**, from the same steps and the items' sizes
//!   (`--lines`, `--event-kb`, `--placed-kb`, `--view-kb`): a transactional write costs
//!   two write units a KB, every read here is strongly consistent (one read unit per
//!   4 KB), and each index the item lands in is written too.
//!
//! From those and the rate it derives request units per table, the event store's stream
//! shards and the relay's concurrency, `PutEvents` requests and target invocations, SQS
//! requests, each function's invocations, concurrency (calls × a typical in-region
//! latency per call) and ramp from idle, and a month's cost at us-east-1's on-demand
//! prices. Then it sets each demand against its limit (a template parameter, an AWS
//! quota or a partition's throughput), names the one that binds first, and the design
//! answer to it.
//!
//! Every figure is a model: docs/performance.md's "Capacity on AWS" says what it leaves out.

#![allow(
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a sizing model: rates, units and dollars, positive and rounded on purpose"
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::load::{FLOOR, percent, positive};

mod model;
mod render;

#[cfg(test)]
use model::DELIVERIES;
use model::MONTH_SECONDS;
pub use model::{Cost, FunctionLoad, Limit, Sizing, TableLoad, size};
pub use render::{Step, detail, ladder, render_ladder, summary};

/// Options of `orderflow-dev capacity`.
#[derive(Debug, Clone, clap::Args)]
pub struct CapacityArgs {
    /// Orders per second to size for; comma-separated for several.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000,10000", value_parser = positive)]
    pub orders_per_second: Vec<f64>,
    /// An `orderflow-dev load --report` file: its measured calls and events per order
    /// replace the designed floor's.
    #[arg(long)]
    pub measured: Option<PathBuf>,
    /// Print every rate's full breakdown, not only the summary.
    #[arg(long)]
    pub detail: bool,
    /// Also write the answer as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// What an order looks like.
    #[command(flatten)]
    pub shape: Shape,
    /// The limits it is held to.
    #[command(flatten)]
    pub limits: Limits,
}

/// What an order looks like, and how it is read.
#[derive(Debug, Clone, Copy, clap::Args, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Shape {
    /// Lines an order has.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub lines: u32,
    /// Size of a stored event item other than `OrderPlaced`, in KB.
    #[arg(long, default_value_t = 0.8, value_parser = positive)]
    pub event_kb: f64,
    /// Size of a stored `OrderPlaced` item (it carries the lines), in KB.
    #[arg(long, default_value_t = 1.8, value_parser = positive)]
    pub placed_kb: f64,
    /// Size of an order's view in the read model, in KB.
    #[arg(long, default_value_t = 2.5, value_parser = positive)]
    pub view_kb: f64,
    /// `GET /orders/{id}` requests a customer makes per order.
    #[arg(long, default_value_t = 1.0, value_parser = non_negative)]
    pub gets_per_order: f64,
    /// Share of orders that hold the best-selling SKU, in percent.
    #[arg(long, default_value_t = 2.0, value_parser = percent)]
    pub hot_sku_percent: f64,
    /// Function memory in MB (the template's `MemorySize`).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(128..=10240))]
    pub memory_mb: u32,
}

/// The limits demand is set against: template parameters, AWS quotas (us-east-1
/// defaults) and the design's own partitioning. Raise one to see what binds next.
#[derive(Debug, Clone, Copy, clap::Args, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// The template's `ApiThrottleRate`: requests/s the API stage takes, every route.
    #[arg(long, default_value_t = 500.0, value_parser = positive)]
    pub api_rate: f64,
    /// The template's `PlaceOrderThrottleRate`: `POST /orders` requests/s.
    #[arg(long, default_value_t = 100.0, value_parser = positive)]
    pub place_rate: f64,
    /// API Gateway's account throttle in the Region, requests/s (adjustable).
    #[arg(long, default_value_t = 10_000.0, value_parser = positive)]
    pub api_account_rate: f64,
    /// Lambda concurrent executions in the account (adjustable).
    #[arg(long, default_value_t = 1_000.0, value_parser = positive)]
    pub lambda_concurrency: f64,
    /// Concurrent batches one SQS event source mapping runs at most.
    #[arg(long, default_value_t = 1_000.0, value_parser = positive)]
    pub mapping_concurrency: f64,
    /// EventBridge `PutEvents` requests/s in the Region (adjustable).
    #[arg(long, default_value_t = 10_000.0, value_parser = positive)]
    pub put_events_rate: f64,
    /// EventBridge target invocations/s in the Region (adjustable).
    #[arg(long, default_value_t = 18_750.0, value_parser = positive)]
    pub invocations_rate: f64,
    /// Write request units/s one on-demand table takes at most (adjustable).
    #[arg(long, default_value_t = 40_000.0, value_parser = positive)]
    pub table_write_units: f64,
    /// Read request units/s one on-demand table takes at most (adjustable).
    #[arg(long, default_value_t = 40_000.0, value_parser = positive)]
    pub table_read_units: f64,
    /// Write units/s a new on-demand table serves at once, before it has scaled (its
    /// warm throughput; set `WarmThroughput` to start higher).
    #[arg(long, default_value_t = 4_000.0, value_parser = positive)]
    pub warm_write_units: f64,
    /// Partition keys the event store's `by-time` and `pending` indexes spread a day over.
    #[arg(long, default_value_t = orderflow_adapters::event_store::dynamodb::TIME_SHARDS, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub time_shards: u32,
    /// Items one SKU's stock is spread over.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub stock_shards: u32,
    /// The relay mapping's `ParallelizationFactor`: batches per stream shard at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub parallelization_factor: u32,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            lines: 3,
            event_kb: 0.8,
            placed_kb: 1.8,
            view_kb: 2.5,
            gets_per_order: 1.0,
            hot_sku_percent: 2.0,
            memory_mb: 256,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            api_rate: 500.0,
            place_rate: 100.0,
            api_account_rate: 10_000.0,
            lambda_concurrency: 1_000.0,
            mapping_concurrency: 1_000.0,
            put_events_rate: 10_000.0,
            invocations_rate: 18_750.0,
            table_write_units: 40_000.0,
            table_read_units: 40_000.0,
            warm_write_units: 4_000.0,
            time_shards: orderflow_adapters::event_store::dynamodb::TIME_SHARDS,
            stock_shards: 1,
            parallelization_factor: 1,
        }
    }
}

/// Per order: calls by function and operation, and events.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PerOrder {
    /// Where the figures come from.
    pub source: String,
    /// Calls per order, by `function` then `Service.Operation`.
    pub calls: BTreeMap<String, BTreeMap<String, f64>>,
    /// Events appended per order.
    pub events: f64,
}

impl PerOrder {
    /// The designed floor of an ordinary order (`load::FLOOR`), with its 8 events.
    #[must_use]
    pub fn floor() -> Self {
        let mut calls: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
        for line in FLOOR {
            *calls
                .entry(line.function.to_owned())
                .or_default()
                .entry(line.operation.to_owned())
                .or_default() += f64::from(line.calls);
        }
        Self {
            source: "the designed floor of an ordinary order".into(),
            calls,
            events: 8.0,
        }
    }

    /// What an `orderflow-dev load --report` measured.
    ///
    /// # Errors
    /// When the file is not such a report, or holds no call tally.
    pub fn measured(report: &str, name: &str) -> anyhow::Result<Self> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Calls {
            by_operation: BTreeMap<String, f64>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Report {
            calls: Option<Calls>,
            events_per_order: f64,
        }
        let report: Report = serde_json::from_str(report)
            .with_context(|| format!("{name} is not an `orderflow-dev load --report` file"))?;
        let by_operation = report
            .calls
            .with_context(|| format!("{name} holds no AWS call tally (the run could not read one)"))?
            .by_operation;
        let mut calls: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
        for (key, per_order) in by_operation {
            let (function, operation) = key
                .split_once(' ')
                .with_context(|| format!("{name}: {key:?} is not `function Service.Operation`"))?;
            *calls
                .entry(function.to_owned())
                .or_default()
                .entry(operation.to_owned())
                .or_default() += per_order;
        }
        anyhow::ensure!(!calls.is_empty(), "{name} counted no calls");
        anyhow::ensure!(
            report.events_per_order.is_finite() && report.events_per_order > 0.0,
            "{name} counted no events"
        );
        Ok(Self {
            source: format!("measured by `orderflow-dev load` ({name})"),
            calls,
            events: report.events_per_order,
        })
    }

    fn total(&self) -> f64 {
        self.calls.values().flat_map(BTreeMap::values).sum()
    }
}

/// `orderflow-dev capacity`.
///
/// # Errors
/// When `--measured` cannot be read, or the JSON cannot be written.
pub fn run(args: &CapacityArgs) -> anyhow::Result<Vec<Sizing>> {
    let per_order = match &args.measured {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            PerOrder::measured(&text, &path.display().to_string())?
        }
        None => PerOrder::floor(),
    };
    let sizings: Vec<Sizing> = args
        .orders_per_second
        .iter()
        .map(|&n| size(n, &per_order, &args.shape, &args.limits))
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "per order: {:.1} calls, {:.1} events ({})\n",
        per_order.total(),
        per_order.events,
        per_order.source
    );
    out.push_str(&summary(&sizings));
    let steps = ladder(&per_order, &args.shape, &args.limits);
    out.push_str("\nEach limit in the order the rate reaches it:\n\n");
    out.push_str(&render_ladder(&steps));
    for s in sizings.iter().filter(|_| args.detail) {
        out.push('\n');
        out.push_str(&detail(s));
    }
    std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes())?;
    if let Some(path) = &args.json {
        let body = serde_json::json!({
            "perOrder": per_order,
            "shape": args.shape,
            "limits": args.limits,
            "sizings": sizings,
            "ladder": steps,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&body)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(sizings)
}

fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{text:?} is not a number ≥ 0")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

    use super::*;

    fn at(n: f64, limits: &Limits) -> Sizing {
        size(n, &PerOrder::floor(), &Shape::default(), limits)
    }

    fn limit<'a>(s: &'a Sizing, starts: &str) -> &'a Limit {
        s.limits.iter().find(|l| l.name.starts_with(starts)).unwrap()
    }

    #[test]
    fn the_floor_is_forty_six_calls_eight_events_and_eleven_deliveries() {
        let floor = PerOrder::floor();
        assert!((floor.total() - 46.0).abs() < 1e-9);
        assert!((floor.events - 8.0).abs() < 1e-9);
        assert!((DELIVERIES.iter().map(|(_, d)| d).sum::<f64>() - 11.0).abs() < 1e-9);
    }

    #[test]
    fn request_units_grow_with_the_rate_and_transactions_cost_double() {
        let one = at(100.0, &Limits::default());
        let two = at(200.0, &Limits::default());
        for (a, b) in one.tables.iter().zip(&two.tables) {
            assert!((b.write_units - 2.0 * a.write_units).abs() < 1e-6, "{}", a.table);
            assert!((b.read_units - 2.0 * a.read_units).abs() < 1e-6, "{}", a.table);
        }
        // 1.8 KB OrderPlaced (2 units) and seven 0.8 KB events (1 each), all appended in
        // transactions (×2), plus OrderPlaced updated out of the pending index: 20 a order.
        let store = one.tables.iter().find(|t| t.table == "EventStoreTable").unwrap();
        assert!((store.write_units - 100.0 * 20.0).abs() < 1e-6);
        let bigger = size(
            100.0,
            &PerOrder::floor(),
            &Shape {
                event_kb: 1.5,
                ..Shape::default()
            },
            &Limits::default(),
        );
        let store = bigger
            .tables
            .iter()
            .find(|t| t.table == "EventStoreTable")
            .unwrap();
        assert!((store.write_units - 100.0 * (2.0 * (2.0 + 14.0) + 2.0)).abs() < 1e-6);
    }

    #[test]
    fn the_template_s_own_throttles_bind_first_and_raising_them_shows_the_next_limit() {
        let quiet = at(10.0, &Limits::default());
        assert!(quiet.binds.is_none(), "{:?}", quiet.binds);
        let hundred = at(150.0, &Limits::default());
        assert!(
            hundred
                .binds
                .as_ref()
                .unwrap()
                .name
                .starts_with("POST /orders route throttle")
        );
        let raised = Limits {
            place_rate: 20_000.0,
            api_rate: 40_000.0,
            ..Limits::default()
        };
        let thousand = at(1_000.0, &raised);
        let binds = thousand
            .binds
            .as_ref()
            .expect("something binds at 1,000/s with AWS's defaults");
        assert!(!binds.name.contains("Throttle"), "{}", binds.name);
        // The limits come out most used first.
        assert!(
            thousand
                .limits
                .windows(2)
                .all(|w| w[0].utilisation >= w[1].utilisation)
        );
    }

    #[test]
    fn sharding_a_hot_sku_divides_its_item_s_writes() {
        let one = at(10_000.0, &Limits::default());
        let eight = at(
            10_000.0,
            &Limits {
                stock_shards: 8,
                ..Limits::default()
            },
        );
        let hot_one = limit(&one, "one SKU's stock item");
        let hot_eight = limit(&eight, "one SKU's stock item");
        // 2 % of 10,000 orders, two stock changes each, two units a change: 800 units.
        assert!((hot_one.demand - 800.0).abs() < 1e-6);
        assert!((hot_eight.demand - 100.0).abs() < 1e-6);
    }

    #[test]
    fn with_every_answer_applied_ten_thousand_orders_a_second_fit() {
        let s = at(10_000.0, &ANSWERED);
        assert!(s.binds.is_none(), "{:?}", s.binds);
        // And the same limits still bind somewhere: the model is not saying "nothing
        // binds" for every input.
        assert!(at(40_000.0, &ANSWERED).binds.is_some());
    }

    #[test]
    fn more_time_shards_and_parallelization_lift_their_limits() {
        let base = at(10_000.0, &Limits::default());
        let lifted = at(
            10_000.0,
            &Limits {
                time_shards: 64,
                parallelization_factor: 2,
                ..Limits::default()
            },
        );
        let idx = |s: &Sizing| limit(s, "by-time index").utilisation;
        assert!((idx(&base) / idx(&lifted) - 4.0).abs() < 1e-9);
        let relay = |s: &Sizing| limit(s, "relay:").utilisation;
        assert!((relay(&base) / relay(&lifted) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_load_report_s_measurements_replace_the_floor() {
        let report = r#"{"calls": {"byOperation": {
            "order-api DynamoDB.PutItem": 3.0, "relay EventBridge.PutEvents": 7.0,
            "inventory DynamoDB.Query": 1.5}}, "eventsPerOrder": 9.5}"#;
        let measured = PerOrder::measured(report, "run.json").unwrap();
        assert!((measured.total() - 11.5).abs() < 1e-9);
        assert!((measured.events - 9.5).abs() < 1e-9);
        let s = size(100.0, &measured, &Shape::default(), &Limits::default());
        assert!((s.events_per_second - 950.0).abs() < 1e-9);
        let inventory = s.functions.iter().find(|f| f.function == "inventory").unwrap();
        assert!((inventory.calls - 150.0).abs() < 1e-9);

        let none = PerOrder::measured(r#"{"calls": null, "eventsPerOrder": 8}"#, "run.json").unwrap_err();
        assert!(format!("{none:#}").contains("no AWS call tally"), "{none:#}");
        let bad = PerOrder::measured("[]", "run.json").unwrap_err();
        assert!(format!("{bad:#}").contains("not an `orderflow-dev load --report` file"));
    }

    #[test]
    fn the_capacity_document_shows_what_the_calculator_answers() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/capacity.md")).unwrap();
        let rates = |limits: &Limits| -> Vec<Sizing> {
            [10.0, 100.0, 1_000.0, 10_000.0]
                .into_iter()
                .map(|n| at(n, limits))
                .collect()
        };
        let blocks = [
            ("defaults", summary(&rates(&Limits::default()))),
            (
                "ladder",
                render_ladder(&ladder(&PerOrder::floor(), &Shape::default(), &Limits::default())),
            ),
            ("answered", summary(&rates(&ANSWERED))),
        ];
        for (marker, expected) in blocks {
            let begin = format!("<!-- capacity:{marker} -->\n");
            let start = doc.find(&begin).unwrap_or_else(|| panic!("no {begin}")) + begin.len();
            let end = start + doc[start..].find("<!-- /capacity -->").unwrap();
            assert_eq!(
                doc[start..end],
                expected,
                "docs/capacity.md's {marker} table is not what `orderflow-dev capacity` answers: rerun it"
            );
        }
    }

    /// The limits with every design answer of docs/capacity.md applied.
    const ANSWERED: Limits = Limits {
        api_rate: 25_000.0,
        place_rate: 12_000.0,
        api_account_rate: 25_000.0,
        lambda_concurrency: 5_000.0,
        mapping_concurrency: 1_000.0,
        put_events_rate: 20_000.0,
        invocations_rate: 150_000.0,
        table_write_units: 300_000.0,
        table_read_units: 150_000.0,
        warm_write_units: 300_000.0,
        time_shards: 128,
        stock_shards: 8,
        parallelization_factor: 2,
    };
}
