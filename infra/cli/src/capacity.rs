//! `orderflow capacity`: what N orders/s needs and costs on AWS, and which limit binds
//! first.
//!
//! The model starts from what an order costs, measured or designed:
//!
//! - **Calls per order by function**: the designed floor (`load::FLOOR`, 46 calls), or
//!   an `orderflow load --report` file's measured calls (`--measured`).
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

/// Seconds in the month the costs are for (730 hours, as AWS prices a month).
const MONTH_SECONDS: f64 = 730.0 * 3600.0;

/// Options of `orderflow capacity`.
#[derive(Debug, Clone, clap::Args)]
pub struct CapacityArgs {
    /// Orders per second to size for; comma-separated for several.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000,10000", value_parser = positive)]
    pub orders_per_second: Vec<f64>,
    /// An `orderflow load --report` file: its measured calls and events per order
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

    /// What an `orderflow load --report` measured.
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
            .with_context(|| format!("{name} is not an `orderflow load --report` file"))?;
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
            source: format!("measured by `orderflow load` ({name})"),
            calls,
            events: report.events_per_order,
        })
    }

    fn total(&self) -> f64 {
        self.calls.values().flat_map(BTreeMap::values).sum()
    }
}

/// Deliveries through the bus per ordinary order, by the function whose queue gets
/// them (the template's rules): `OrderPlaced` to inventory, payment and the projector;
/// the order's four other events to the projector, `OrderConfirmed` to shipping too;
/// the inventory's, payment's and shipment's answers to the saga.
const DELIVERIES: &[(&str, f64)] = &[
    ("inventory", 1.0),
    ("payment", 1.0),
    ("shipping", 1.0),
    ("order-saga", 3.0),
    ("projector", 5.0),
];

/// A typical in-region latency of one call, in ms: what a function waits per call.
fn call_ms(operation: &str) -> f64 {
    match operation {
        "DynamoDB.TransactWriteItems" => 12.0,
        "DynamoDB.Query" | "DynamoDB.BatchGetItem" => 7.0,
        op if op.starts_with("DynamoDB.") => 5.0,
        "EventBridge.PutEvents" => 15.0,
        op if op.starts_with("SQS.") => 8.0,
        _ => 10.0,
    }
}

/// A function's own time per invocation beyond its calls (decode, fold, encode), ms.
const INVOCATION_MS: f64 = 3.0;

/// Prices in us-east-1, on demand, in dollars.
mod price {
    pub(super) const WRITE_UNIT: f64 = 0.625 / 1e6;
    pub(super) const READ_UNIT: f64 = 0.125 / 1e6;
    pub(super) const STORAGE_GB_MONTH: f64 = 0.25;
    pub(super) const EVENT: f64 = 1.0 / 1e6;
    pub(super) const SQS_REQUEST: f64 = 0.40 / 1e6;
    pub(super) const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    pub(super) const LAMBDA_GB_SECOND: f64 = 0.000_016_666_7;
    pub(super) const API_REQUEST: f64 = 1.0 / 1e6;
}

/// One table's request units per second.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableLoad {
    /// The template's logical name (an index as `Table/index`).
    pub table: &'static str,
    /// Write request units/s.
    pub write_units: f64,
    /// Read request units/s.
    pub read_units: f64,
    /// What they are.
    pub what: &'static str,
}

/// One function's load.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionLoad {
    /// The function.
    pub function: String,
    /// AWS calls/s.
    pub calls: f64,
    /// Invocations/s.
    pub invocations: f64,
    /// Executions at once: the time its calls and invocations take each second.
    pub concurrency: f64,
    /// From idle to that concurrency: an SQS mapping starts at 5 and adds up to 300 a
    /// minute; the API and the stream scale at once (1,000 per 10 s).
    pub ramp_seconds: f64,
}

/// One demand against its limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limit {
    /// What is limited.
    pub name: String,
    /// The demand, per second (or at once, for concurrency).
    pub demand: f64,
    /// The limit.
    pub limit: f64,
    /// demand ÷ limit.
    pub utilisation: f64,
    /// What to do when it binds.
    pub answer: &'static str,
}

/// A month's cost, in dollars.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cost {
    /// DynamoDB request units (tables and indexes).
    pub dynamodb: f64,
    /// DynamoDB storage the month adds (it accumulates: events are kept).
    pub storage_added: f64,
    /// EventBridge events published.
    pub eventbridge: f64,
    /// SQS requests (sends by the bus, receives and deletes by Lambda).
    pub sqs: f64,
    /// Lambda requests and GB-seconds.
    pub lambda: f64,
    /// API Gateway HTTP API requests.
    pub api: f64,
    /// All of the above.
    pub total: f64,
}

/// What a rate needs, costs, and runs into.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sizing {
    /// Orders/s.
    pub orders_per_second: f64,
    /// Events appended/s.
    pub events_per_second: f64,
    /// API requests/s.
    pub api_requests: f64,
    /// Request units by table and index.
    pub tables: Vec<TableLoad>,
    /// The event store's partitions, so its stream's shards.
    pub stream_shards: f64,
    /// Relay invocations at once: shards × parallelization factor.
    pub relay_concurrency: f64,
    /// `PutEvents` requests/s.
    pub put_events: f64,
    /// Events delivered to queues/s (target invocations).
    pub deliveries: f64,
    /// SQS requests/s.
    pub sqs_requests: f64,
    /// Every function's load.
    pub functions: Vec<FunctionLoad>,
    /// Every demand against its limit, the most used first.
    pub limits: Vec<Limit>,
    /// The first limit reached, if one is.
    pub binds: Option<Limit>,
    /// A month at this rate.
    pub cost: Cost,
}

fn units(kb: f64) -> f64 {
    kb.ceil().max(1.0)
}

fn read_units(kb: f64) -> f64 {
    (kb / 4.0).ceil().max(1.0)
}

/// Request units per ordinary order, by table and index.
fn tables_per_order(shape: &Shape) -> Vec<TableLoad> {
    let lines = f64::from(shape.lines);
    let (event, placed, view) = (
        units(shape.event_kb),
        units(shape.placed_kb),
        units(shape.view_kb),
    );
    // The 7 stream loads (inventory 1, payment 2, the saga 3, shipping 1) each read
    // at most the order's first events: one page, a read unit per 4 KB.
    let stream = read_units(shape.placed_kb + 4.0 * shape.event_kb);
    vec![
        TableLoad {
            table: "EventStoreTable",
            write_units: 2.0 * (placed + 7.0 * event) + placed,
            read_units: 7.0 * stream,
            what: "8 events in 7 transactions (2 units a KB); OrderPlaced leaves the pending index (an update); 7 stream loads",
        },
        TableLoad {
            table: "EventStoreTable/by-time",
            write_units: placed + 7.0 * event,
            read_units: 0.0,
            what: "every event, projected whole",
        },
        TableLoad {
            table: "EventStoreTable/pending",
            write_units: 2.0,
            read_units: 0.0,
            what: "OrderPlaced in, then out (keys only)",
        },
        TableLoad {
            table: "CatalogTable",
            write_units: 2.0 * lines,
            read_units: lines,
            what: "each line's price read; each line's stock counters in the reservation's transaction",
        },
        TableLoad {
            table: "OrderViewTable",
            write_units: 5.0 * view,
            read_units: 5.0 * read_units(shape.view_kb) + shape.gets_per_order * read_units(shape.view_kb),
            what: "the projector reads and writes the view for each of the order's 5 events; the customer's reads",
        },
        TableLoad {
            table: "IdempotencyTable",
            write_units: 2.0,
            read_units: 0.0,
            what: "the key claimed, then completed with the answer",
        },
        TableLoad {
            table: "RateLimitTable",
            write_units: 1.0,
            read_units: 0.0,
            what: "the principal's count this minute",
        },
        TableLoad {
            table: "PaymentVaultTable",
            write_units: 2.0,
            read_units: 1.0,
            what: "the card token written, read, deleted",
        },
        TableLoad {
            table: "PaymentProviderTable",
            write_units: 2.0,
            read_units: 1.0,
            what: "the simulated provider (a real one is an HTTPS call)",
        },
    ]
}

/// What `orders_per_second` needs, costs and runs into.
#[must_use]
pub fn size(orders_per_second: f64, per_order: &PerOrder, shape: &Shape, limits: &Limits) -> Sizing {
    let n = orders_per_second;
    let events_per_second = n * per_order.events;
    let api_requests = n * (1.0 + shape.gets_per_order);
    let tables: Vec<TableLoad> = tables_per_order(shape)
        .into_iter()
        .map(|t| TableLoad {
            write_units: t.write_units * n,
            read_units: t.read_units * n,
            ..t
        })
        .collect();
    let table = |name: &str| {
        tables
            .iter()
            .find(|t| t.table == name)
            .map_or((0.0, 0.0), |t| (t.write_units, t.read_units))
    };

    // The stream has a shard per partition of the event store; a partition takes 1,000
    // write and 3,000 read units a second.
    let (store_writes, store_reads) = table("EventStoreTable");
    let stream_shards = (store_writes / 1_000.0)
        .max(store_reads / 3_000.0)
        .ceil()
        .max(1.0);
    let relay_concurrency = stream_shards * f64::from(limits.parallelization_factor);
    // Lambda reads a shard about 4 times a second: a batch holds a quarter second of
    // its records (at most the mapping's 100), sent 10 entries to a `PutEvents`.
    let per_shard = events_per_second / stream_shards;
    let relay_batch = (per_shard / 4.0).clamp(1.0, 100.0);
    let put_events = events_per_second / relay_batch.min(10.0);
    let relay_invocations = events_per_second / relay_batch;

    let deliveries_per_order: f64 = DELIVERIES.iter().map(|(_, d)| d).sum();
    let deliveries = n * deliveries_per_order;

    let mut functions = Vec::new();
    let mut sqs_requests = deliveries; // the bus's sends
    for (function, calls) in &per_order.calls {
        let (calls_per_second, busy_ms) = calls.iter().fold((0.0, 0.0), |(c, ms), (op, per)| {
            let per_second = if function == "relay" && op == "EventBridge.PutEvents" {
                put_events
            } else {
                per * n
            };
            (c + per_second, ms + per_second * call_ms(op))
        });
        let invocations = match function.as_str() {
            "order-api" => api_requests,
            "relay" => relay_invocations,
            other => {
                let messages = DELIVERIES
                    .iter()
                    .find(|(f, _)| *f == other)
                    .map_or(0.0, |(_, d)| d * n);
                // A batch fills as the queue does: one message a receive when it is
                // quiet, the mapping's 10 from 1,000 messages/s.
                let fill = (messages / 100.0).clamp(1.0, 10.0);
                sqs_requests += 2.0 * messages / fill; // receive and delete
                messages / fill
            }
        };
        let concurrency = (busy_ms + invocations * INVOCATION_MS) / 1_000.0;
        let ramp_seconds = match function.as_str() {
            "order-api" | "relay" => (concurrency / 1_000.0).floor() * 10.0,
            _ => ((concurrency - 5.0).max(0.0) / 300.0).ceil() * 60.0,
        };
        functions.push(FunctionLoad {
            function: function.clone(),
            calls: calls_per_second,
            invocations,
            concurrency,
            ramp_seconds,
        });
    }

    let limits_list = limits_for(
        n, &tables, &functions, put_events, deliveries, per_shard, shape, limits,
    );
    let binds = limits_list.iter().find(|l| l.utilisation >= 1.0).cloned();
    let cost = cost(
        n,
        &tables,
        &functions,
        events_per_second,
        sqs_requests,
        api_requests,
        shape,
    );
    Sizing {
        orders_per_second: n,
        events_per_second,
        api_requests,
        tables,
        stream_shards,
        relay_concurrency,
        put_events,
        deliveries,
        sqs_requests,
        functions,
        limits: limits_list,
        binds,
        cost,
    }
}

#[allow(clippy::too_many_arguments, reason = "the model's parts, each named")]
fn limits_for(
    n: f64,
    tables: &[TableLoad],
    functions: &[FunctionLoad],
    put_events: f64,
    deliveries: f64,
    per_shard: f64,
    shape: &Shape,
    limits: &Limits,
) -> Vec<Limit> {
    let mut out = Vec::new();
    let mut push = |name: String, demand: f64, limit: f64, answer: &'static str| {
        out.push(Limit {
            name,
            demand,
            limit,
            utilisation: demand / limit,
            answer,
        });
    };
    let api = n * (1.0 + shape.gets_per_order);
    push(
        "POST /orders route throttle (PlaceOrderThrottleRate)".into(),
        n,
        limits.place_rate,
        "raise the template's PlaceOrderThrottleRate: it is set to protect the account, not by the design",
    );
    push(
        "API stage throttle (ApiThrottleRate)".into(),
        api,
        limits.api_rate,
        "raise the template's ApiThrottleRate (and its burst)",
    );
    push(
        "API Gateway requests in the Region".into(),
        api,
        limits.api_account_rate,
        "a Service Quotas increase (adjustable)",
    );
    let concurrency: f64 = functions.iter().map(|f| f.concurrency).sum();
    push(
        "Lambda concurrent executions in the account".into(),
        concurrency,
        limits.lambda_concurrency,
        "a Service Quotas increase, with reserved concurrency for order-api so the handlers cannot starve it",
    );
    if let Some(busiest) = functions
        .iter()
        .filter(|f| DELIVERIES.iter().any(|(d, _)| *d == f.function))
        .max_by(|a, b| a.concurrency.total_cmp(&b.concurrency))
    {
        push(
            format!("concurrent batches of one SQS mapping ({})", busiest.function),
            busiest.concurrency,
            limits.mapping_concurrency,
            "fewer calls a message (handle a batch's messages of one order together: one load, one append) or the mapping's provisioned mode",
        );
    }
    push(
        "EventBridge PutEvents requests".into(),
        put_events,
        limits.put_events_rate,
        "a Service Quotas increase (the relay already sends 10 entries a request under load)",
    );
    push(
        "EventBridge target invocations".into(),
        deliveries,
        limits.invocations_rate,
        "a Service Quotas increase; or the projector reads the event store's stream instead of the bus (5 of the 11 deliveries an order)",
    );
    for t in tables.iter().filter(|t| !t.table.contains('/')) {
        push(
            format!("{} write units", t.table),
            t.write_units,
            limits.table_write_units,
            "a table quota increase (adjustable); at a steady rate, provisioned capacity with auto scaling costs less",
        );
        if t.read_units > 0.0 {
            push(
                format!("{} read units", t.table),
                t.read_units,
                limits.table_read_units,
                "a table quota increase (adjustable)",
            );
        }
    }
    let (store_writes, _) = tables
        .iter()
        .find(|t| t.table == "EventStoreTable")
        .map_or((0.0, 0.0), |t| (t.write_units, t.read_units));
    push(
        "EventStoreTable writes a new on-demand table serves at once".into(),
        store_writes,
        limits.warm_write_units,
        "set WarmThroughput on the event store before launch (on demand only doubles its peak as traffic grows)",
    );
    let shards = f64::from(limits.time_shards);
    if let Some(by_time) = tables.iter().find(|t| t.table == "EventStoreTable/by-time") {
        push(
            format!(
                "by-time index: {} partition keys a day, 1,000 write units each",
                limits.time_shards
            ),
            by_time.write_units,
            shards * 1_000.0,
            "more time shards (TIME_SHARDS; a time-range read queries each): a throttled index write throttles the append itself",
        );
    }
    if let Some(pending) = tables.iter().find(|t| t.table == "EventStoreTable/pending") {
        push(
            format!(
                "pending index: {} partition keys, 1,000 write units each",
                limits.time_shards
            ),
            pending.write_units,
            shards * 1_000.0,
            "more pending shards (the sweep queries each)",
        );
    }
    // Each order with the hot SKU changes its stock twice (reserved, then sold or
    // released), each a transactional update of a stock item under 1 KB: 2 units.
    let hot_writes = n * shape.hot_sku_percent / 100.0 * 2.0 * 2.0 / f64::from(limits.stock_shards);
    push(
        format!(
            "one SKU's stock item ({} % of orders, {} item{})",
            shape.hot_sku_percent,
            limits.stock_shards,
            if limits.stock_shards == 1 { "" } else { "s" }
        ),
        hot_writes,
        1_000.0,
        "orderflow stock shard <sku> --shards N (here --stock-shards N)",
    );
    // A relay invocation publishes its batch 10 entries a PutEvents, one after another.
    let batch = (per_shard / 4.0).clamp(1.0, 100.0);
    let per_invocation_s =
        ((batch / 10.0).ceil() * call_ms("EventBridge.PutEvents") + INVOCATION_MS) / 1_000.0;
    push(
        format!(
            "relay: one stream shard's events (ParallelizationFactor {})",
            limits.parallelization_factor
        ),
        per_shard,
        batch / per_invocation_s * f64::from(limits.parallelization_factor),
        "raise the relay mapping's ParallelizationFactor (up to 10 batches a shard, in order per order)",
    );
    out.sort_by(|a, b| b.utilisation.total_cmp(&a.utilisation));
    out
}

#[allow(clippy::too_many_arguments, reason = "the model's parts, each named")]
fn cost(
    n: f64,
    tables: &[TableLoad],
    functions: &[FunctionLoad],
    events_per_second: f64,
    sqs_requests: f64,
    api_requests: f64,
    shape: &Shape,
) -> Cost {
    let writes: f64 = tables.iter().map(|t| t.write_units).sum();
    let reads: f64 = tables.iter().map(|t| t.read_units).sum();
    let dynamodb = (writes * price::WRITE_UNIT + reads * price::READ_UNIT) * MONTH_SECONDS;
    // Every event is kept, in the table and whole in the by-time index.
    let event_kb = shape.placed_kb + (events_per_second / n - 1.0) * shape.event_kb;
    let storage_gb = n * event_kb * 2.0 * MONTH_SECONDS / 1e6;
    let storage_added = storage_gb * price::STORAGE_GB_MONTH;
    let eventbridge = events_per_second * price::EVENT * MONTH_SECONDS;
    let sqs = sqs_requests * price::SQS_REQUEST * MONTH_SECONDS;
    let invocations: f64 = functions.iter().map(|f| f.invocations).sum();
    let gb_seconds: f64 =
        functions.iter().map(|f| f.concurrency).sum::<f64>() * f64::from(shape.memory_mb) / 1024.0;
    let lambda = (invocations * price::LAMBDA_REQUEST + gb_seconds * price::LAMBDA_GB_SECOND) * MONTH_SECONDS;
    let api = api_requests * price::API_REQUEST * MONTH_SECONDS;
    Cost {
        dynamodb,
        storage_added,
        eventbridge,
        sqs,
        lambda,
        api,
        total: dynamodb + storage_added + eventbridge + sqs + lambda + api,
    }
}

fn thousands(v: f64) -> String {
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

/// `orderflow capacity`.
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
        assert!(format!("{bad:#}").contains("not an `orderflow load --report` file"));
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
                "docs/capacity.md's {marker} table is not what `orderflow capacity` answers: rerun it"
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
