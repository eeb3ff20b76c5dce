//! The load's clients: tokens, the API as a customer and an operator (retrying
//! throttles with the same idempotency key), the tables its settling reads, the stock
//! top-up and the wait for quiet queues.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Deserialize;
use serde_json::{Value, json};

use orderflow_adapters::DynamoEventStore;
use orderflow_adapters::read_model::DynamoOrderViews;
use orderflow_app::{EventStore as _, StreamId};
use orderflow_domain::OrderId;
use orderflow_domain::order::OrderStatus;

use super::*;
use orderflow_cli::keys::{LocalKeys, Subject};

/// Tokens of the run's principals.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Tokens {
    pub(super) operator: String,
    pub(super) customers: Vec<String>,
}

pub(super) fn tokens(args: &LoadArgs) -> anyhow::Result<Tokens> {
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
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Value,
    pub(super) retry_after: Option<u64>,
    pub(super) took: Duration,
}

#[derive(Clone)]
pub(super) struct Api {
    pub(super) http: reqwest::Client,
    pub(super) base: Arc<str>,
}

impl Api {
    pub(super) async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Answer> {
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

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends what `build` makes until it is not a 429 or a 5xx (at most 8 tries),
    /// waiting `Retry-After` (or a growing pause) in between.
    pub(super) async fn retried(
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
pub(super) struct Tally {
    pub(super) latencies: std::sync::Mutex<Vec<Duration>>,
    pub(super) throttled: std::sync::atomic::AtomicU64,
    pub(super) errors: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    pub(super) fn latency(&self, took: Duration) {
        if let Ok(mut l) = self.latencies.lock() {
            l.push(took);
        }
    }

    pub(super) fn throttled(&self) {
        self.throttled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn error(&self, what: String) {
        if let Ok(mut e) = self.errors.lock()
            && e.len() < 20
        {
            e.push(what);
        }
    }
}

/// An order the API accepted.
#[derive(Debug, Clone)]
pub(super) struct Placed {
    pub(super) id: String,
    pub(super) kind: Kind,
    pub(super) cancel_refused: bool,
}

/// What the order's events say.
#[derive(Debug, Clone, Default)]
pub(super) struct Settled {
    pub(super) outcome: Option<String>,
    pub(super) to_terminal: Option<Duration>,
    pub(super) to_shipped: Option<Duration>,
    pub(super) placed_at: Option<jiff::Timestamp>,
    pub(super) terminal_at: Option<jiff::Timestamp>,
    pub(super) shipped_at: Option<jiff::Timestamp>,
}

pub(super) fn order_body(kind: Kind, args: &LoadArgs) -> Value {
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

pub(super) async fn place(
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
pub(super) async fn cancel(
    api: &Api,
    tally: &Tally,
    token: &str,
    id: &str,
    mut version: Option<u64>,
) -> bool {
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
pub(super) const SETTLE_POLL: Duration = Duration::from_millis(250);

/// Whether the saga is done with an order: cancelled, or confirmed (or moved on) with
/// its shipment recorded.
pub(super) const fn settled(status: OrderStatus, shipped: bool) -> bool {
    match status {
        OrderStatus::Cancelled => true,
        OrderStatus::Pending => false,
        _ => shipped,
    }
}

pub(super) fn between(from: Option<jiff::Timestamp>, to: Option<jiff::Timestamp>) -> Option<Duration> {
    let span = to?.duration_since(from?);
    Duration::try_from(span).ok()
}

/// The stack's own tables, read with a client of the load's (its reads are not the
/// system's work, and do not go through the API they would slow down and count in).
pub(super) struct Tables {
    pub(super) views: DynamoOrderViews,
    pub(super) store: DynamoEventStore,
}

/// Reads the order's view until it settles (or `deadline`), then its events for the
/// times.
pub(super) async fn settle(tables: &Tables, tally: &Tally, placed: &Placed, deadline: Instant) -> Settled {
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
pub(super) async fn stock_up(
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
                    .json(&json!({"delta": delta, "reason": format!("orderflow-dev load: stock for {needed} orders")}))
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

/// Reads the tally of AWS calls `orderflow-dev up` serves.
pub(super) async fn calls(http: &reqwest::Client, url: &str) -> Option<BTreeMap<String, u64>> {
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
pub(super) async fn quiet(
    resolved: &orderflow_cli::target::Resolved,
    deadline: Instant,
) -> anyhow::Result<bool> {
    let dlqs: Vec<String> = orderflow_cli::dlq::dead_letter_queues(&resolved.stack)
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

pub(super) fn progress(quiet: bool, total: u64, what: &'static str) -> indicatif::ProgressBar {
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
