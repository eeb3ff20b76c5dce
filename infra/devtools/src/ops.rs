//! The operations page of `orderflow-dev up` (`--ops-listen`, `http://127.0.0.1:3001/`):
//! where orders are in the saga, the latest orders with their timelines, one order's
//! four streams on one timeline, each queue's depth and lag, what sits in each DLQ and
//! why, and the relay's lag. The page (`ops/index.html`, `ops/ops.js`, `ops/ops.css`)
//! is compiled in and fetches nothing from elsewhere; it reads the JSON below every
//! two seconds.
//!
//! - `GET /api/overview`: orders by status and by cancellation reason, the latest
//!   orders, queues, DLQs with their parked messages, the relay's lag;
//! - `GET /api/orders/{id}`: the order's view and every event of its order, inventory,
//!   payment and shipment streams, in time order;
//! - `GET /calls`: the AWS calls the functions made ([`calls`]).
//!
//! Who may read it ([`guard`]): on a loopback address, only requests whose `Host` is a
//! loopback name (`localhost`, `127.0.0.1`, `[::1]`), so a web page elsewhere cannot
//! reach it through a DNS name rebound to 127.0.0.1; under `--allow-remote`, only
//! requests with an operator's token of the local issuer (`orderflow token
//! --operator`) in `Authorization: Bearer`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use orderflow_adapters::DynamoEventStore;
use orderflow_adapters::read_model::DynamoOrderViews;
use orderflow_app::{EventStore as _, StreamId};
use orderflow_domain::OrderId;
use orderflow_domain::order::view::OrderView;
use orderflow_provision::local::Stack;
use orderflow_runner::Runner;
use serde::Serialize;
use serde_json::{Value, json};

/// How many of the latest orders the page lists.
const LATEST: usize = 25;

/// How many parked messages of each DLQ the page shows.
const PARKED: usize = 10;

/// The streams of one order, as the saga names them.
const STREAMS: [&str; 4] = ["order", "inventory", "payment", "shipment"];

const INDEX: &str = include_str!("ops/index.html");
const SCRIPT: &str = include_str!("ops/ops.js");
const STYLE: &str = include_str!("ops/ops.css");

/// What the page reads: the local stack and its running mappings.
pub struct Ops {
    stack: Stack,
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    views: DynamoOrderViews,
    store: DynamoEventStore,
    runner: Arc<Runner>,
    lag_objective: Option<u64>,
}

impl Ops {
    /// Over `stack`, whose mappings `runner` runs, against the template's lag
    /// objective (`LagSloSeconds`).
    ///
    /// # Errors
    /// When the stack lacks a table the page reads.
    pub fn new(
        stack: Stack,
        template: &orderflow_provision::Template,
        dynamodb: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        runner: Arc<Runner>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            lag_objective: template.parameter("LagSloSeconds").and_then(|s| s.parse().ok()),
            views: orderflow_cli::target::order_views(&stack, &dynamodb)?,
            store: orderflow_cli::target::event_store(&stack, &dynamodb)?,
            stack,
            dynamodb,
            sqs,
            runner,
        })
    }
}

/// The page and its JSON, beside `GET /calls`.
pub fn router(ops: Arc<Ops>) -> axum::Router {
    let asset = |kind: &'static str, body: &'static str| {
        axum::routing::get(move || async move {
            (
                [(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")],
                body,
            )
        })
    };
    axum::Router::new()
        .route("/", asset("text/html; charset=utf-8", INDEX))
        .route("/ops.js", asset("text/javascript; charset=utf-8", SCRIPT))
        .route("/ops.css", asset("text/css; charset=utf-8", STYLE))
        .route("/api/overview", axum::routing::get(overview))
        .route("/api/orders/{id}", axum::routing::get(order))
        .with_state(ops)
        .merge(calls())
}

/// Who may read the page, as `orderflow-dev up` was started.
#[derive(Debug, Clone)]
pub enum Access {
    /// Listening on loopback: requests must name a loopback host.
    Loopback,
    /// `--allow-remote`: requests must carry an operator's token of these keys.
    Operators(Box<orderflow_cli::keys::LocalKeys>),
}

/// `router` behind `access`.
pub fn guard(router: axum::Router, access: Access) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(Arc::new(access), admit))
}

async fn admit(
    State(access): State<Arc<Access>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let refused = |status: StatusCode, code: &str, message: &str| {
        (
            status,
            axum::Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    };
    match access.as_ref() {
        Access::Loopback => {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            if !is_loopback_host(host) {
                return refused(
                    StatusCode::FORBIDDEN,
                    "host_not_allowed",
                    "the operations page answers loopback hosts only (localhost, 127.0.0.1, [::1])",
                );
            }
        }
        Access::Operators(keys) => {
            let token = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            if token.and_then(|t| keys.operator(t)).is_none() {
                return refused(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "under --allow-remote the operations page needs an operator's token: Authorization: Bearer $(orderflow token --operator <name>)",
                );
            }
        }
    }
    next.run(request).await
}

/// Whether a `Host` header names this machine: `localhost`, an address in 127.0.0.0/8
/// or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(inside, _)| inside),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// An error the page shows: what failed, without the SDK's dump.
fn failed(what: &str, error: &anyhow::Error) -> axum::response::Response {
    tracing::warn!(error = format!("{error:#}"), "{what}");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"error": format!("{what}: are the emulators running?")})),
    )
        .into_response()
}

/// One order in the list.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    order_id: String,
    customer_id: String,
    status: &'static str,
    placed_at: String,
    total: String,
    cancellation_reason: Option<Value>,
    /// Milliseconds from placement to each status it entered.
    timeline: BTreeMap<&'static str, i64>,
}

impl From<&OrderView> for Listed {
    fn from(view: &OrderView) -> Self {
        let placed = view.placed_at.as_micros();
        Self {
            order_id: view.order_id.to_string(),
            customer_id: view.customer_id.to_string(),
            status: view.status.as_str(),
            placed_at: view.placed_at.to_string(),
            total: format!("{} {}", view.total.amount, view.total.currency.as_str()),
            cancellation_reason: view
                .cancellation_reason
                .and_then(|r| serde_json::to_value(r).ok()),
            timeline: view
                .timeline
                .iter()
                .map(|(status, at)| (status.as_str(), (at.as_micros() - placed) / 1_000))
                .collect(),
        }
    }
}

async fn overview(State(ops): State<Arc<Ops>>) -> axum::response::Response {
    match read_overview(&ops).await {
        Ok(body) => axum::Json(body).into_response(),
        Err(error) => failed("reading the stack", &error),
    }
}

async fn read_overview(ops: &Ops) -> anyhow::Result<Value> {
    let views = ops.views.all().await?;
    let mut by_status: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut reached: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut cancelled_by: BTreeMap<String, usize> = BTreeMap::new();
    for view in views.values() {
        *by_status.entry(view.status.as_str()).or_default() += 1;
        for status in view.timeline.keys() {
            *reached.entry(status.as_str()).or_default() += 1;
        }
        if let Some(reason) = view
            .cancellation_reason
            .and_then(|r| serde_json::to_value(r).ok())
        {
            let reason = reason.as_str().unwrap_or("UNKNOWN").to_owned();
            *cancelled_by.entry(reason).or_default() += 1;
        }
    }
    let mut latest: Vec<&OrderView> = views.values().collect();
    latest.sort_by(|a, b| b.placed_at.cmp(&a.placed_at).then(b.order_id.cmp(&a.order_id)));
    let latest: Vec<Listed> = latest.into_iter().take(LATEST).map(Listed::from).collect();

    let lag = ops.runner.lag();
    let dead = orderflow_cli::dlq::dead_letter_queues(&ops.stack);
    let mut queues = Vec::new();
    for (logical_id, queue) in &ops.stack.messaging.queues {
        let attributes = ops
            .sqs
            .get_queue_attributes()
            .queue_url(&queue.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?
            .attributes
            .unwrap_or_default();
        let count = |name: QueueAttributeName| -> u64 {
            attributes.get(&name).and_then(|n| n.parse().ok()).unwrap_or(0)
        };
        let is_dlq = dead.iter().any(|d| &d.logical_id == logical_id);
        queues.push(json!({
            "logicalId": logical_id,
            "name": queue.name,
            "kind": if is_dlq { "dlq" } else { "queue" },
            "visible": count(QueueAttributeName::ApproximateNumberOfMessages),
            "inFlight": count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            "lastBatch": lag.queues.get(&queue.name),
        }));
    }
    let mut dlqs = Vec::new();
    for dlq in &dead {
        let parked = orderflow_cli::dlq::show_in(
            &ops.stack,
            &ops.sqs,
            &ops.dynamodb,
            &dlq.logical_id,
            PARKED,
            Duration::ZERO,
        )
        .await?;
        dlqs.push(json!({
            "logicalId": dlq.logical_id,
            "source": dlq.source.name,
            "parked": parked.iter().map(|p| json!({
                "messageId": p.message_id,
                "eventType": p.event_type,
                "orderId": p.order_id,
                "receiveCount": p.receive_count,
                "lastError": p.last_error,
            })).collect::<Vec<_>>(),
        }));
    }
    Ok(json!({
        "orders": views.len(),
        "byStatus": by_status,
        "reached": reached,
        "cancelledBy": cancelled_by,
        "latest": latest,
        "queues": queues,
        "dlqs": dlqs,
        "relay": lag.stream,
        "lagObjectiveSeconds": ops.lag_objective,
        "calls": orderflow_adapters::calls::Calls::global().by_function().values().sum::<u64>(),
    }))
}

async fn order(State(ops): State<Arc<Ops>>, Path(id): Path<String>) -> axum::response::Response {
    let Ok(order_id) = OrderId::parse(&id) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "not an order id (a UUID)", "field": "id"})),
        )
            .into_response();
    };
    match read_order(&ops, order_id).await {
        Ok(Some(body)) => axum::Json(body).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!("no order {order_id}")})),
        )
            .into_response(),
        Err(error) => failed("reading the order", &error),
    }
}

async fn read_order(ops: &Ops, order_id: OrderId) -> anyhow::Result<Option<Value>> {
    let id = order_id.to_string();
    let mut events = Vec::new();
    for stream in STREAMS {
        for record in ops.store.load(&StreamId::new(stream, id.clone()), 0).await? {
            let body: Value = serde_json::from_str(&record.body).unwrap_or_default();
            events.push((
                record.time_order(),
                json!({
                    "stream": stream,
                    "version": record.version,
                    "eventId": record.event_id.to_string(),
                    "eventType": record.event_type,
                    "occurredAt": record.occurred_at.to_string(),
                    "actor": body["actor"],
                    "correlationId": body["correlationId"],
                    "causationId": body["causationId"],
                    "data": body["data"],
                }),
            ));
        }
    }
    if events.is_empty() {
        return Ok(None);
    }
    events.sort_by_key(|(order, _)| *order);
    let view = ops.views.get(order_id).await?.map(|stored| stored.view);
    Ok(Some(json!({
        "orderId": id,
        "view": view,
        "events": events.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
    })))
}

/// `GET /calls`: every AWS call the functions made since `orderflow-dev up` started, as
/// the `AwsCalls` metric counts them in AWS (the API and the handlers; not the
/// polling that stands in for Lambda's event source mappings), by function:
/// `{"total": n, "calls": [{"function", "service", "operation", "count"}]}`.
pub fn calls() -> axum::Router {
    axum::Router::new().route(
        "/calls",
        axum::routing::get(|| async {
            let calls = orderflow_adapters::calls::Calls::global().by_function();
            let total: u64 = calls.values().sum();
            let calls: Vec<serde_json::Value> = calls
                .into_iter()
                .map(|(call, count)| {
                    serde_json::json!({
                        "function": call.function,
                        "service": call.service,
                        "operation": call.operation,
                        "count": count,
                    })
                })
                .collect();
            axum::Json(serde_json::json!({"total": total, "calls": calls}))
        }),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use std::time::Duration;

    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;
    use orderflow_cli::keys::{Identity, LocalKeys, Subject};

    async fn status(access: &Access, host: Option<&str>, token: Option<&str>) -> u16 {
        let router = guard(
            axum::Router::new().route("/api/overview", axum::routing::get(|| async { "ok" })),
            access.clone(),
        );
        let mut request = axum::http::Request::builder().uri("/api/overview");
        if let Some(host) = host {
            request = request.header(header::HOST, host);
        }
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = router
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        response.status().as_u16()
    }

    #[tokio::test]
    async fn on_loopback_only_loopback_hosts_are_answered() {
        let access = Access::Loopback;
        for host in [
            "localhost:3001",
            "LOCALHOST",
            "127.0.0.1:3001",
            "127.3.4.5",
            "[::1]:3001",
            "[::1]",
        ] {
            assert_eq!(status(&access, Some(host), None).await, 200, "{host}");
        }
        // A DNS name rebound to 127.0.0.1 arrives with its own name.
        for host in [
            "evil.example",
            "evil.example:3001",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "10.0.0.1:3001",
            "",
        ] {
            assert_eq!(status(&access, Some(host), None).await, 403, "{host}");
        }
        assert_eq!(status(&access, None, None).await, 403);
    }

    #[tokio::test]
    async fn under_allow_remote_only_an_operator_s_token_is_answered() {
        let dir = std::env::temp_dir().join(format!("orderflow-ops-{}", uuid::Uuid::now_v7()));
        let keys = LocalKeys::load_or_create(&dir, "t", &Identity::default()).unwrap();
        let foreign = LocalKeys::load_or_create(&dir, "other", &Identity::default()).unwrap();
        let hour = Duration::from_secs(3600);
        let operator = keys.mint(&Subject::Operator("ops-1".into()), hour).unwrap();
        let customer = keys.mint(&Subject::Customer("c-1".into()), hour).unwrap();
        let mut claims = keys.claims(&Subject::Customer("c-2".into()), hour);
        claims["scope"] = json!(order_api::access::OPERATOR_SCOPE);
        let self_scoped = keys.sign(&claims).unwrap();
        let elsewhere = foreign.mint(&Subject::Operator("ops-1".into()), hour).unwrap();
        let access = Access::Operators(Box::new(keys));
        let host = Some("ops.example:3001");
        assert_eq!(status(&access, host, Some(&operator)).await, 200);
        for (who, token) in [
            ("nobody", None),
            ("a customer", Some(customer.as_str())),
            ("a customer with the scope", Some(self_scoped.as_str())),
            ("another stack's operator", Some(elsewhere.as_str())),
            ("garbage", Some("not-a-jwt")),
        ] {
            assert_eq!(status(&access, host, token).await, 401, "{who}");
        }
    }
}
