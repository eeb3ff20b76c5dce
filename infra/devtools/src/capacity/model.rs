//! The sizing model: from what an order costs and a rate, the request units per table,
//! the deliveries, invocations and concurrency per function, each demand against its
//! limit, and a month's cost.

use serde::Serialize;

use super::*;

/// Seconds in the month the costs are for (730 hours, as AWS prices a month).
pub(crate) const MONTH_SECONDS: f64 = 730.0 * 3600.0;

/// Deliveries through the bus per ordinary order, by the function whose queue gets
/// them (the template's rules): `OrderPlaced` to inventory, payment and the projector;
/// the order's four other events to the projector, `OrderConfirmed` to shipping too;
/// the inventory's, payment's and shipment's answers to the saga.
pub(crate) const DELIVERIES: &[(&str, f64)] = &[
    ("inventory", 1.0),
    ("payment", 1.0),
    ("shipping", 1.0),
    ("order-saga", 3.0),
    ("projector", 5.0),
];

/// A typical in-region latency of one call, in ms: what a function waits per call.
pub(crate) fn call_ms(operation: &str) -> f64 {
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
pub(crate) const INVOCATION_MS: f64 = 3.0;

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

pub(crate) fn units(kb: f64) -> f64 {
    kb.ceil().max(1.0)
}

pub(crate) fn read_units(kb: f64) -> f64 {
    (kb / 4.0).ceil().max(1.0)
}

/// Request units per ordinary order, by table and index.
pub(crate) fn tables_per_order(shape: &Shape) -> Vec<TableLoad> {
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
pub(crate) fn limits_for(
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
pub(crate) fn cost(
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
