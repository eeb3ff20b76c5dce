//! `orderflow load`: orders through the public API of a local or deployed stack, as
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
//!    made are read from `orderflow dev`'s tally (`--calls`; in AWS, the `AwsCalls`
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

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use orderflow_adapters::DynamoEventStore;
use orderflow_adapters::read_model::DynamoOrderViews;
use orderflow_app::{EventStore as _, StreamId};
use orderflow_domain::order::OrderStatus;
use orderflow_domain::{OrderId, Timestamp};

use crate::authorizer::{LocalKeys, Subject};
use crate::target::Target;

/// Options of `orderflow load`.
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
    /// The AWS-call tally of `orderflow dev` (its operations port); `none` to skip.
    #[arg(long, default_value = "http://127.0.0.1:3001/calls")]
    pub calls: String,
    /// Tokens for a deployed stack: `{"operator": "…", "customers": ["…", …]}`.
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// Where the local stack keeps its signing key (as `orderflow dev --state-dir`).
    #[arg(long, default_value = ".local/run")]
    pub state_dir: PathBuf,
    /// Write the report here as JSON too.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// No progress bar (it goes to stderr, and only to a terminal anyway).
    #[arg(long)]
    pub quiet: bool,
    /// Then measure the emulators' ceiling for the run's call mix (`orderflow dev`
    /// locally only), for this many seconds, and set the end-to-end rate against it.
    #[arg(long, value_name = "SECONDS")]
    pub ceiling: Option<u64>,
    /// Calls in flight at once while measuring the ceiling.
    #[arg(long, default_value_t = 32)]
    pub ceiling_concurrency: usize,
}

/// One line of the designed floor: the fewest calls a step of an ordinary order needs.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// The step of the saga.
    pub step: &'static str,
    /// The function that takes it.
    pub function: &'static str,
    /// `Service.Operation`.
    pub operation: &'static str,
    /// Calls.
    pub calls: u32,
    /// What each call is for.
    pub why: &'static str,
}

const fn floor(
    step: &'static str,
    function: &'static str,
    operation: &'static str,
    calls: u32,
    why: &'static str,
) -> Floor {
    Floor {
        step,
        function,
        operation,
        calls,
        why,
    }
}

/// The designed floor of an ordinary order (placed, reserved, captured, confirmed,
/// shipped), by step: 46 calls, at low traffic (a stream batch and a queue batch per
/// event; under load the relay and the projector batch below it). docs/performance.md's
/// "Calls per order" says what each would take to remove.
pub const FLOOR: &[Floor] = &[
    floor(
        "place",
        "order-api",
        "DynamoDB.UpdateItem",
        1,
        "the principal's orders this minute (the rate limit)",
    ),
    floor(
        "place",
        "order-api",
        "DynamoDB.PutItem",
        1,
        "the idempotency key claimed",
    ),
    floor(
        "place",
        "order-api",
        "DynamoDB.BatchGetItem",
        1,
        "every line's price, one read",
    ),
    floor(
        "place",
        "order-api",
        "DynamoDB.PutItem",
        1,
        "the card token into the vault",
    ),
    floor(
        "place",
        "order-api",
        "DynamoDB.TransactWriteItems",
        1,
        "OrderPlaced appended (a new stream: nothing read)",
    ),
    floor(
        "place",
        "order-api",
        "DynamoDB.UpdateItem",
        1,
        "the idempotency record completed with the answer",
    ),
    floor(
        "publish",
        "relay",
        "EventBridge.PutEvents",
        7,
        "one per write that appended events (7 writes, 8 events)",
    ),
    floor(
        "reserve",
        "inventory",
        "DynamoDB.Query",
        2,
        "OrderPlaced read back from the store (never a message's word); the reservation's stream",
    ),
    floor(
        "reserve",
        "inventory",
        "DynamoDB.TransactWriteItems",
        1,
        "StockReserved with the SKUs' counters",
    ),
    floor(
        "capture",
        "payment",
        "DynamoDB.Query",
        3,
        "OrderPlaced read back from the store; the payment's stream; the order's total from the order's stream",
    ),
    floor(
        "capture",
        "payment",
        "DynamoDB.GetItem",
        2,
        "the token from the vault; the (simulated) provider's availability",
    ),
    floor(
        "capture",
        "payment",
        "DynamoDB.TransactWriteItems",
        2,
        "the (simulated) provider's capture; PaymentCaptured",
    ),
    floor(
        "capture",
        "payment",
        "DynamoDB.DeleteItem",
        1,
        "the token forgotten once the capture is recorded",
    ),
    floor(
        "confirm",
        "order-saga",
        "DynamoDB.Query",
        4,
        "each answer read back from its participant's stream; the order's stream, for each answer",
    ),
    floor(
        "confirm",
        "order-saga",
        "DynamoDB.TransactWriteItems",
        2,
        "OrderStockReserved; OrderPaymentCaptured with OrderConfirmed",
    ),
    floor(
        "ship",
        "shipping",
        "DynamoDB.Query",
        2,
        "OrderConfirmed read back from the store; the shipment's stream",
    ),
    floor(
        "ship",
        "shipping",
        "DynamoDB.TransactWriteItems",
        1,
        "ShipmentCreated",
    ),
    floor(
        "record shipment",
        "order-saga",
        "DynamoDB.Query",
        2,
        "ShipmentCreated read back from the store; the order's stream",
    ),
    floor(
        "record shipment",
        "order-saga",
        "DynamoDB.TransactWriteItems",
        1,
        "OrderShipmentRecorded",
    ),
    floor(
        "project",
        "projector",
        "DynamoDB.GetItem",
        5,
        "the view, for each of the order's 5 events",
    ),
    floor(
        "project",
        "projector",
        "DynamoDB.PutItem",
        5,
        "the view written, for each of them",
    ),
];

/// The floor's calls by `function Service.Operation`.
#[must_use]
pub fn floor_by_operation() -> BTreeMap<String, u32> {
    let mut by = BTreeMap::new();
    for line in FLOOR {
        *by.entry(format!("{} {}", line.function, line.operation))
            .or_default() += line.calls;
    }
    by
}

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
    /// The calls of `orderflow dev`'s stand-in for Lambda's event source mappings
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

/// Tokens of the run's principals.
#[derive(Debug, Clone, Deserialize)]
struct Tokens {
    operator: String,
    customers: Vec<String>,
}

fn tokens(args: &LoadArgs) -> anyhow::Result<Tokens> {
    if let Some(path) = &args.tokens {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let tokens: Tokens = serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: expected {{\"operator\": \"…\", \"customers\": [\"…\"]}}",
                path.display()
            )
        })?;
        anyhow::ensure!(
            !tokens.customers.is_empty(),
            "{}: no customer tokens",
            path.display()
        );
        return Ok(tokens);
    }
    anyhow::ensure!(
        args.on.stack.is_none(),
        "a deployed stack's tokens come from its identity provider: pass them with --tokens <file>"
    );
    let keys = LocalKeys::load(&args.state_dir, &args.on.prefix)?;
    let ttl = Duration::from_secs(6 * 3600);
    Ok(Tokens {
        operator: keys.mint(&Subject::Operator("load-operator".into()), ttl)?,
        customers: (1..=args.customers)
            .map(|n| keys.mint(&Subject::Customer(format!("load-c-{n}")), ttl))
            .collect::<Result<_, _>>()?,
    })
}

/// One answer of the API, with how long it took.
struct Answer {
    status: u16,
    body: Value,
    retry_after: Option<u64>,
    took: Duration,
}

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: Arc<str>,
}

impl Api {
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Answer> {
        let started = Instant::now();
        let response = request.send().await.context("the API did not answer")?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let bytes = response.bytes().await.context("reading the API's answer")?;
        let took = started.elapsed();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            body,
            retry_after,
            took,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends what `build` makes until it is not a 429 or a 5xx (at most 8 tries),
    /// waiting `Retry-After` (or a growing pause) in between.
    async fn retried(
        &self,
        tally: &Tally,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> anyhow::Result<Answer> {
        let mut pause = Duration::from_millis(200);
        for attempt in 1..=8 {
            let answer = match self.send(build()).await {
                Ok(answer) => answer,
                Err(error) if attempt < 8 => {
                    tally.error(format!("{error:#}; retried"));
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                    continue;
                }
                Err(error) => return Err(error),
            };
            tally.latency(answer.took);
            if answer.status == 429 {
                tally.throttled();
            }
            if (answer.status == 429 || answer.status >= 500) && attempt < 8 {
                let wait = answer.retry_after.map_or(pause, Duration::from_secs);
                tokio::time::sleep(wait).await;
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
            return Ok(answer);
        }
        anyhow::bail!("no answer after 8 tries")
    }
}

/// What the concurrent clients add up.
#[derive(Default)]
struct Tally {
    latencies: std::sync::Mutex<Vec<Duration>>,
    throttled: std::sync::atomic::AtomicU64,
    errors: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn latency(&self, took: Duration) {
        if let Ok(mut l) = self.latencies.lock() {
            l.push(took);
        }
    }

    fn throttled(&self) {
        self.throttled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn error(&self, what: String) {
        if let Ok(mut e) = self.errors.lock()
            && e.len() < 20
        {
            e.push(what);
        }
    }
}

/// An order the API accepted.
#[derive(Debug, Clone)]
struct Placed {
    id: String,
    kind: Kind,
    cancel_refused: bool,
}

/// What the order's events say.
#[derive(Debug, Clone, Default)]
struct Settled {
    outcome: Option<String>,
    to_terminal: Option<Duration>,
    to_shipped: Option<Duration>,
    placed_at: Option<jiff::Timestamp>,
    terminal_at: Option<jiff::Timestamp>,
    shipped_at: Option<jiff::Timestamp>,
}

fn order_body(kind: Kind, args: &LoadArgs) -> Value {
    let items: Vec<Value> = if kind == Kind::OutOfStock {
        vec![json!({"sku": args.out_of_stock_sku, "quantity": 1000})]
    } else {
        args.skus
            .iter()
            .map(|sku| json!({"sku": sku, "quantity": 1}))
            .collect()
    };
    json!({
        "items": items,
        "paymentToken": if kind == Kind::Declined { "tok_decline" } else { "tok_visa" },
        "shippingAddress": {
            "name": "Load Test", "line1": "1 Main St", "city": "Springfield",
            "postalCode": "12345", "country": "US"
        }
    })
}

async fn place(
    api: &Api,
    tally: &Tally,
    tokens: &Tokens,
    args: &LoadArgs,
    n: usize,
    kind: Kind,
) -> Option<Placed> {
    let customer = n % tokens.customers.len();
    let token = tokens.customers.get(customer)?;
    let key = uuid::Uuid::now_v7().to_string();
    let body = order_body(kind, args);
    let answer = api
        .retried(tally, || {
            api.http
                .post(api.url("/orders"))
                .bearer_auth(token)
                .header("Idempotency-Key", &key)
                .json(&body)
        })
        .await;
    let answer = match answer {
        Ok(a) if a.status == 201 => a,
        Ok(a) => {
            tally.error(format!("POST /orders answered {}: {}", a.status, a.body));
            return None;
        }
        Err(error) => {
            tally.error(format!("POST /orders: {error:#}"));
            return None;
        }
    };
    let id = answer.body["orderId"].as_str()?.to_owned();
    let mut placed = Placed {
        id,
        kind,
        cancel_refused: false,
    };
    if kind == Kind::Cancelled {
        placed.cancel_refused = !cancel(api, tally, token, &placed.id, answer.body["version"].as_u64()).await;
    }
    Some(placed)
}

/// Cancels with `If-Match`; on a 412 (the saga moved the order on meanwhile), reads it
/// and tries once more. Whether it was cancelled.
async fn cancel(api: &Api, tally: &Tally, token: &str, id: &str, mut version: Option<u64>) -> bool {
    for _ in 0..3 {
        let path = api.url(&format!("/orders/{id}/cancel"));
        let answer = api
            .retried(tally, || {
                let request = api
                    .http
                    .post(&path)
                    .bearer_auth(token)
                    .json(&json!({"reason": "load: changed my mind"}));
                match version {
                    Some(v) => request.header("If-Match", format!("\"{v}\"")),
                    None => request,
                }
            })
            .await;
        match answer {
            Ok(a) if a.status == 200 => return true,
            Ok(a) if a.status == 412 => {
                let current = api
                    .retried(tally, || {
                        // From the store: the read model may not have the new version yet.
                        api.http
                            .get(api.url(&format!("/orders/{id}?consistent=true")))
                            .bearer_auth(token)
                    })
                    .await;
                version = current.ok().and_then(|c| c.body["version"].as_u64());
            }
            Ok(a) => {
                tally.error(format!("cancelling {id} answered {}: {}", a.status, a.body));
                return false;
            }
            Err(error) => {
                tally.error(format!("cancelling {id}: {error:#}"));
                return false;
            }
        }
    }
    false
}

/// How often each order's view is read while it settles.
const SETTLE_POLL: Duration = Duration::from_millis(250);

/// Whether the saga is done with an order: cancelled, or confirmed (or moved on) with
/// its shipment recorded.
const fn settled(status: OrderStatus, shipped: bool) -> bool {
    match status {
        OrderStatus::Cancelled => true,
        OrderStatus::Pending => false,
        _ => shipped,
    }
}

fn between(from: Option<jiff::Timestamp>, to: Option<jiff::Timestamp>) -> Option<Duration> {
    let span = to?.duration_since(from?);
    Duration::try_from(span).ok()
}

/// The stack's own tables, read with a client of the load's (its reads are not the
/// system's work, and do not go through the API they would slow down and count in).
struct Tables {
    views: DynamoOrderViews,
    store: DynamoEventStore,
}

/// Reads the order's view until it settles (or `deadline`), then its events for the
/// times.
async fn settle(tables: &Tables, tally: &Tally, placed: &Placed, deadline: Instant) -> Settled {
    let Ok(order_id) = OrderId::parse(&placed.id) else {
        tally.error(format!(
            "the API answered an order id that is not one: {}",
            placed.id
        ));
        return Settled::default();
    };
    let view = loop {
        match tables.views.get(order_id).await {
            Ok(Some(stored)) if settled(stored.view.status, stored.view.shipment.is_some()) => {
                break Some(stored.view);
            }
            Ok(_) => {}
            Err(error) => tally.error(format!("reading the view of {order_id}: {error}")),
        }
        if Instant::now() >= deadline {
            break None;
        }
        // The times come from the events, not from when this read sees them: a slow
        // poll costs no accuracy, and a fast one would load the store it measures.
        tokio::time::sleep(SETTLE_POLL).await;
    };
    let Some(view) = view else {
        return Settled::default();
    };
    let outcome = match (view.status, view.cancellation_reason) {
        (OrderStatus::Cancelled, Some(reason)) => format!(
            "CANCELLED/{}",
            serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ),
        (OrderStatus::Cancelled, None) => "CANCELLED".to_owned(),
        // Confirmed, or already moved on by an operator: it was confirmed.
        _ => "CONFIRMED".to_owned(),
    };
    let stream = StreamId {
        aggregate_type: "order".to_owned(),
        aggregate_id: order_id.to_string(),
    };
    let events = match tables.store.load(&stream, 0).await {
        Ok(events) => events,
        Err(error) => {
            tally.error(format!("reading the events of {order_id}: {error}"));
            Vec::new()
        }
    };
    let first = |types: &[&str]| -> Option<jiff::Timestamp> {
        let event = events.iter().find(|e| types.contains(&e.event_type.as_str()))?;
        event.occurred_at.to_string().parse().ok()
    };
    let placed_at = first(&["OrderPlaced"]);
    let terminal_at = first(&["OrderConfirmed", "OrderCancelled"]);
    let shipped_at = first(&["OrderShipmentRecorded"]);
    Settled {
        outcome: Some(outcome),
        to_terminal: between(placed_at, terminal_at),
        to_shipped: between(placed_at, shipped_at),
        placed_at,
        terminal_at,
        shipped_at,
    }
}

/// Makes sure each ordinary SKU has what the run takes, and that the out-of-stock SKU
/// cannot serve 1000.
async fn stock_up(
    api: &Api,
    tally: &Tally,
    tokens: &Tokens,
    args: &LoadArgs,
    kinds: &[Kind],
) -> anyhow::Result<Vec<String>> {
    let mut notes = Vec::new();
    let needed = kinds.iter().filter(|k| **k != Kind::OutOfStock).count() as i64;
    let available = |sku: String| async move {
        let answer = api
            .retried(tally, || {
                api.http
                    .get(api.url(&format!("/products/{sku}")))
                    .bearer_auth(&tokens.operator)
            })
            .await?;
        anyhow::ensure!(
            answer.status == 200,
            "GET /products/{sku} answered {}: {}",
            answer.status,
            answer.body
        );
        answer.body["available"]
            .as_i64()
            .with_context(|| format!("GET /products/{sku}: no available count"))
    };
    for sku in &args.skus {
        let has = available(sku.clone()).await?;
        if has >= needed {
            continue;
        }
        let delta = needed - has;
        let key = uuid::Uuid::now_v7().to_string();
        let answer = api
            .retried(tally, || {
                api.http
                    .post(api.url(&format!("/products/{sku}/stock")))
                    .bearer_auth(&tokens.operator)
                    .header("Idempotency-Key", &key)
                    .json(&json!({"delta": delta, "reason": format!("orderflow load: stock for {needed} orders")}))
            })
            .await?;
        anyhow::ensure!(
            answer.status == 200,
            "receiving {delta} of {sku} answered {}: {}",
            answer.status,
            answer.body
        );
        notes.push(format!(
            "received {delta} × {sku} so that {needed} orders can have one"
        ));
    }
    if kinds.contains(&Kind::OutOfStock) {
        let has = available(args.out_of_stock_sku.clone()).await?;
        anyhow::ensure!(
            has < 1000,
            "{} has {has} available, so an order for 1000 would be served: name a scarcer SKU with --out-of-stock-sku",
            args.out_of_stock_sku
        );
    }
    Ok(notes)
}

/// Reads the tally of AWS calls `orderflow dev` serves.
async fn calls(http: &reqwest::Client, url: &str) -> Option<BTreeMap<String, u64>> {
    if url == "none" {
        return None;
    }
    let body: Value = http.get(url).send().await.ok()?.json().await.ok()?;
    Some(
        body["calls"]
            .as_array()?
            .iter()
            .filter_map(|c| {
                Some((
                    format!(
                        "{} {}.{}",
                        c["function"].as_str().unwrap_or_default(),
                        c["service"].as_str()?,
                        c["operation"].as_str()?
                    ),
                    c["count"].as_u64()?,
                ))
            })
            .collect(),
    )
}

/// Waits until every queue that is not a DLQ has nothing visible or in flight, twice in
/// a row a second apart. Whether it did before `deadline`.
async fn quiet(resolved: &crate::target::Resolved, deadline: Instant) -> anyhow::Result<bool> {
    let dlqs: Vec<String> = crate::dlq::dead_letter_queues(&resolved.stack)
        .into_iter()
        .map(|d| d.queue.url)
        .collect();
    let mut calm = 0;
    while Instant::now() < deadline {
        let mut busy = 0u64;
        for queue in resolved.stack.messaging.queues.values() {
            if dlqs.contains(&queue.url) {
                continue;
            }
            let attributes = resolved
                .sqs
                .get_queue_attributes()
                .queue_url(&queue.url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                )
                .send()
                .await
                .with_context(|| format!("reading the depth of {}", queue.name))?
                .attributes
                .unwrap_or_default();
            busy += attributes
                .values()
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>();
        }
        calm = if busy == 0 { calm + 1 } else { 0 };
        if calm >= 2 {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(false)
}

fn progress(quiet: bool, total: u64, what: &'static str) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>9} [{bar:40}] {pos}/{len} {per_sec} {elapsed_precise}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(what);
    bar
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
    let resolved = crate::target::resolve(&args.on).await?;
    let tables = Tables {
        views: crate::runner::order_views(&resolved.stack, &resolved.dynamodb)?,
        store: crate::runner::event_store(&resolved.stack, &resolved.dynamodb)?,
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
    for depth in crate::dlq::list(&args.on).await? {
        report.dlq_depths.insert(depth.logical_id, depth.messages);
    }
    let check = crate::check::run(&crate::check::CheckArgs {
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
            "--ceiling measures the emulators of a local stack, with the calls `orderflow dev` counted"
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

/// The calls between two readings of the tally, per order.
fn calls_report(
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
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
