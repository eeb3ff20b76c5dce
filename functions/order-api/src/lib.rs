//! The order API: an axum [`Router`] that runs in Lambda through `lambda_http` (HTTP
//! API, payload 2.0) and, unchanged, on localhost under the dev runner.
//!
//! | route | does |
//! |---|---|
//! | `POST /orders` | place an order (`Idempotency-Key`), 201 + `Location` |
//! | `GET /orders/{id}` | the order from the read model; `?consistent=true` folded from the store now; `?at=<RFC 3339>` as it stood then |
//! | `GET /orders/{id}/events` | its audit trail, paginated (`limit`, `cursor`) |
//! | `POST /orders/{id}/cancel` | cancel with a reason (`If-Match` optional) |
//! | `POST /orders/{id}/status` | operator transition (`If-Match` optional) |
//! | `GET /customers/{id}/orders` | a customer's orders, newest first, paginated |
//! | `GET /products` | the catalog |
//!
//! Prices come from the catalog, never from the client. The actor of every command is
//! the JWT authorizer's `sub` (in local mode: a dev principal, logged as such), and it
//! is recorded in the events' metadata.

pub mod error;

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::header::{ETAG, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jiff::SignedDuration;
use orderflow_adapters::catalog::DynamoCatalog;
use orderflow_adapters::payment::DynamoVault;
use orderflow_adapters::read_model::{CustomerCursor, DynamoOrderViews, decode_cursor, encode_cursor};
use orderflow_adapters::{DynamoEventStore, DynamoIdempotencyStore};
use orderflow_app::{Clock, CommandService, Idempotency, PaymentVault, SystemClock, fingerprint};
use orderflow_domain::order::view::OrderView;
use orderflow_domain::order::{
    FulfilmentStep, Order, OrderCommand, PaymentToken, PlaceOrder, PricedLine, ShippingAddress,
};
use orderflow_domain::{CustomerId, IdempotencyKey, Metadata, OrderId, Quantity, Sku, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

pub use error::ApiError;

/// The largest request body accepted; larger ones get a 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long a payment token waits in the vault for the payment service.
const TOKEN_RETENTION: SignedDuration = SignedDuration::from_hours(24);

/// Where the actor of a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// The API Gateway JWT authorizer's `sub` claim; no principal, no service.
    Jwt,
    /// Local runs: the `X-Orderflow-Actor` header, or `local-dev`.
    Local,
}

/// What the API needs.
#[derive(Debug, Clone)]
pub struct Api {
    commands: CommandService<DynamoEventStore, SystemClock>,
    idempotency: Idempotency<DynamoIdempotencyStore, SystemClock>,
    catalog: DynamoCatalog,
    vault: DynamoVault,
    views: DynamoOrderViews,
    auth: AuthMode,
}

impl Api {
    /// The API over its stores.
    #[must_use]
    pub const fn new(
        commands: CommandService<DynamoEventStore, SystemClock>,
        idempotency: Idempotency<DynamoIdempotencyStore, SystemClock>,
        catalog: DynamoCatalog,
        vault: DynamoVault,
        views: DynamoOrderViews,
        auth: AuthMode,
    ) -> Self {
        Self {
            commands,
            idempotency,
            catalog,
            vault,
            views,
            auth,
        }
    }

    /// The idempotency lease and retention the API uses: longer than a request, a day
    /// of retries.
    #[must_use]
    pub fn idempotency(store: DynamoIdempotencyStore) -> Idempotency<DynamoIdempotencyStore, SystemClock> {
        Idempotency::new(
            store,
            SystemClock,
            SignedDuration::from_secs(30),
            SignedDuration::from_hours(24),
        )
    }
}

/// The router, with every route of the API.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/orders", post(place_order))
        .route("/orders/{id}", get(get_order))
        .route("/orders/{id}/events", get(get_events))
        .route("/orders/{id}/cancel", post(cancel_order))
        .route("/orders/{id}/status", post(advance_order))
        .route("/customers/{id}/orders", get(list_customer_orders))
        .route("/products", get(list_products))
        .fallback(|| async {
            ApiError {
                status: StatusCode::NOT_FOUND,
                code: "route_not_found",
                message: "no such route".into(),
            }
        })
        .layer(axum::middleware::from_fn(timed))
        .with_state(api)
}

/// Every request's duration, as a metric.
async fn timed(request: Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    orderflow_adapters::metrics::handler_duration(started.elapsed());
    response
}

/// The principal behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl FromRequestParts<Arc<Api>> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Self, Self::Rejection> {
        let from_jwt = parts
            .extensions
            .get::<lambda_http::request::RequestContext>()
            .and_then(|context| match context {
                lambda_http::request::RequestContext::ApiGatewayV2(v2) => v2
                    .authorizer
                    .as_ref()
                    .and_then(|a| a.jwt.as_ref())
                    .and_then(|jwt| jwt.claims.get("sub").cloned()),
                _ => None,
            });
        match (from_jwt, api.auth) {
            (Some(sub), _) => Ok(Self(sub)),
            (None, AuthMode::Local) => {
                let actor = parts
                    .headers
                    .get("x-orderflow-actor")
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty() && v.len() <= 128)
                    .unwrap_or("local-dev");
                Ok(Self(format!("local:{actor}")))
            }
            (None, AuthMode::Jwt) => Err(ApiError {
                status: StatusCode::UNAUTHORIZED,
                code: "unauthenticated",
                message: "no authenticated principal".into(),
            }),
        }
    }
}

/// A JSON body of at most [`MAX_BODY_BYTES`], with its raw bytes (for fingerprints).
#[derive(Debug)]
pub struct JsonBody<T> {
    value: T,
    raw: Bytes,
}

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        let raw = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| ApiError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "payload_too_large",
                message: format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
            })?;
        let value = serde_json::from_slice(&raw)
            .map_err(|e| ApiError::invalid("malformed_request", e.to_string()))?;
        Ok(Self { value, raw })
    }
}

/// `POST /orders` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaceOrderRequest {
    customer_id: String,
    items: Vec<ItemRequest>,
    payment_token: String,
    shipping_address: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct ItemRequest {
    sku: String,
    quantity: u64,
}

/// The request, parsed into domain types.
struct ValidOrder {
    customer_id: CustomerId,
    items: Vec<(Sku, Quantity)>,
    token: PaymentToken,
    address: ShippingAddress,
}

impl PlaceOrderRequest {
    fn parse(self) -> Result<ValidOrder, ApiError> {
        let invalid = |e: &dyn std::fmt::Display| ApiError::invalid("invalid_order", e.to_string());
        if self.items.len() > orderflow_domain::order::MAX_LINES {
            return Err(ApiError::invalid(
                "invalid_order",
                format!(
                    "an order has at most {} lines",
                    orderflow_domain::order::MAX_LINES
                ),
            ));
        }
        let items = self
            .items
            .into_iter()
            .map(|item| {
                Ok((
                    Sku::parse(item.sku).map_err(|e| invalid(&e))?,
                    Quantity::parse(item.quantity).map_err(|e| invalid(&e))?,
                ))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(ValidOrder {
            customer_id: CustomerId::parse(self.customer_id).map_err(|e| invalid(&e))?,
            items,
            token: PaymentToken::parse(self.payment_token).map_err(|e| invalid(&e))?,
            address: serde_json::from_value(self.shipping_address).map_err(|e| invalid(&e))?,
        })
    }
}

/// What `POST /orders` answers, stored whole for idempotent replays.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Placed {
    order: OrderView,
}

fn request_metadata(headers: &HeaderMap, actor: &Actor) -> Metadata {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
            .map(str::to_owned)
    };
    let request_id = header("x-request-id").unwrap_or_else(|| Uuid::now_v7().to_string());
    Metadata {
        correlation_id: header("x-correlation-id").unwrap_or_else(|| request_id.clone()),
        causation_id: format!("request:{request_id}"),
        actor: actor.0.clone(),
    }
}

fn order_id(raw: &str) -> Result<OrderId, ApiError> {
    OrderId::parse(raw).map_err(|_| ApiError::invalid("invalid_order_id", "order ids are UUIDs"))
}

fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("if-match") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid(
                "invalid_if_match",
                "If-Match must be an order version, e.g. \"3\"",
            )
        })
}

fn with_order(status: StatusCode, view: &OrderView, headers: &mut HeaderMap) -> Result<(), ApiError> {
    let etag = HeaderValue::from_str(&format!("\"{}\"", view.version))
        .map_err(|e| ApiError::invalid("invalid_order", e.to_string()))?;
    headers.insert(ETAG, etag);
    if status == StatusCode::CREATED {
        let location = HeaderValue::from_str(&format!("/orders/{}", view.order_id))
            .map_err(|e| ApiError::invalid("invalid_order", e.to_string()))?;
        headers.insert(LOCATION, location);
    }
    Ok(())
}

fn order_response(status: StatusCode, view: OrderView) -> Result<Response, ApiError> {
    let mut headers = HeaderMap::new();
    with_order(status, &view, &mut headers)?;
    Ok((status, headers, Json(view)).into_response())
}

async fn place_order(
    State(api): State<Arc<Api>>,
    actor: Actor,
    headers: HeaderMap,
    body: JsonBody<PlaceOrderRequest>,
) -> Result<Response, ApiError> {
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|k| IdempotencyKey::parse(k).ok())
                .ok_or_else(|| {
                    ApiError::invalid(
                        "invalid_idempotency_key",
                        "Idempotency-Key: 1 to 255 printable ASCII characters",
                    )
                })
        })
        .transpose()?;
    let order = body.value.parse()?;
    let metadata = request_metadata(&headers, &actor);
    let work = || api.place(order, metadata);
    let (placed, replayed) = match key {
        Some(key) => {
            // The same body in another key order or spacing is the same request.
            let canonical = serde_json::from_slice::<serde_json::Value>(&body.raw)
                .map(|v| v.to_string())
                .unwrap_or_default();
            let outcome = api
                .idempotency
                .run(
                    &format!("{}#{}", actor.0, key.as_str()),
                    &fingerprint(canonical.as_bytes()),
                    work,
                )
                .await?;
            (outcome.response, outcome.replayed)
        }
        None => (work().await?, false),
    };
    let mut response = order_response(StatusCode::CREATED, placed.order)?;
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

impl Api {
    async fn place(&self, order: ValidOrder, metadata: Metadata) -> Result<Placed, ApiError> {
        let mut seen = HashSet::new();
        let skus: Vec<Sku> = order
            .items
            .iter()
            .map(|(s, _)| s.clone())
            .filter(|s| seen.insert(s.clone()))
            .collect();
        let products = self.catalog.products(&skus).await?;
        let lines = order
            .items
            .into_iter()
            .map(|(sku, quantity)| {
                let product = products.get(&sku).ok_or_else(|| {
                    ApiError::invalid("unknown_sku", format!("{sku} is not in the catalog"))
                })?;
                Ok(PricedLine {
                    unit_price: product.price(),
                    sku,
                    quantity,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let order_id = OrderId::from_uuid(Uuid::now_v7());
        let now = self.commands.clock().now();
        let command = OrderCommand::Place(PlaceOrder {
            order_id,
            customer_id: order.customer_id,
            lines,
            payment: order.token.masked(),
            shipping_address: order.address,
            placed_at: now,
        });
        // Decide first, so an invalid order stores no token.
        <Order as orderflow_domain::Aggregate>::decide(
            &orderflow_domain::order::OrderState::NotPlaced,
            command.clone(),
        )
        .map_err(ApiError::from)?;
        self.vault
            .keep(order_id, &order.token, now.plus(TOKEN_RETENTION))
            .await?;
        let executed = self
            .commands
            .execute::<Order>(&order_id.to_string(), command, &metadata, None)
            .await?;
        tracing::info!(order_id = %order_id, correlation_id = %metadata.correlation_id, actor = %metadata.actor, "order placed");
        orderflow_adapters::metrics::order_events(&executed.events);
        let order = OrderView::fold(&executed.events).ok_or_else(ApiError::order_not_found)?;
        Ok(Placed { order })
    }

    /// The order folded from the store now.
    async fn view(&self, id: OrderId) -> Result<OrderView, ApiError> {
        let history = self
            .commands
            .repository()
            .history::<Order>(&id.to_string())
            .await?;
        OrderView::fold(&history).ok_or_else(ApiError::order_not_found)
    }

    /// The order as it stood at `at`: the projection of the events that had happened
    /// by then (a snapshot holds the state but not when each step happened, so the
    /// events are read either way).
    async fn view_at(&self, id: OrderId, at: Timestamp) -> Result<OrderView, ApiError> {
        let history = self
            .commands
            .repository()
            .history::<Order>(&id.to_string())
            .await?;
        let happened = history.iter().take_while(|e| e.occurred_at <= at).count();
        OrderView::fold(&history[..happened]).ok_or_else(ApiError::order_not_found)
    }
}

/// Where an answer came from: `read-model`, or `event-store` when folded.
const SOURCE: &str = "orderflow-source";

/// The default and the largest page of a list.
const DEFAULT_PAGE: u16 = 20;
const MAX_PAGE: u16 = 100;

/// The query string, checked by hand so every malformed parameter gets its own 400.
type Params = Query<std::collections::HashMap<String, String>>;

fn limit(params: &Params, default: u16) -> Result<u16, ApiError> {
    params.get("limit").map_or(Ok(default), |raw| {
        raw.parse()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::invalid("invalid_limit", format!("limit: 1 to {MAX_PAGE}")))
    })
}

fn cursor<T: serde::de::DeserializeOwned>(params: &Params) -> Result<Option<T>, ApiError> {
    params
        .get("cursor")
        .map(|raw| {
            decode_cursor(raw).ok_or_else(|| {
                ApiError::invalid(
                    "invalid_cursor",
                    "cursor: pass back a nextCursor this list returned",
                )
            })
        })
        .transpose()
}

async fn get_order(
    State(api): State<Arc<Api>>,
    _actor: Actor,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let id = order_id(&id)?;
    let consistent = match params.get("consistent").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_consistent",
                "consistent: true or false",
            ));
        }
    };
    let (view, source) = if let Some(raw) = params.get("at") {
        let at = Timestamp::parse(raw).map_err(|_| {
            ApiError::invalid("invalid_time", "at: an RFC 3339 time, e.g. 2026-11-21T09:30:00Z")
        })?;
        (api.view_at(id, at).await?, "event-store")
    } else if consistent {
        (api.view(id).await?, "event-store")
    } else {
        match api.views.get(id).await? {
            Some(stored) => (stored.view, "read-model"),
            // Placed a moment ago, not projected yet: its creator can read it anyway.
            None => (api.view(id).await?, "event-store"),
        }
    };
    let mut response = order_response(StatusCode::OK, view)?;
    response
        .headers_mut()
        .insert(SOURCE, HeaderValue::from_static(source));
    Ok(response)
}

/// A page: `{"<name>": [...], "nextCursor"?}`.
fn list(name: &str, items: serde_json::Value, next: Option<String>) -> serde_json::Value {
    let mut page = serde_json::Map::from_iter([(name.to_owned(), items)]);
    if let Some(next) = next {
        page.insert("nextCursor".into(), next.into());
    }
    page.into()
}

#[derive(Debug, Serialize, Deserialize)]
struct EventsCursor {
    #[serde(rename = "o")]
    order_id: OrderId,
    #[serde(rename = "v")]
    after_version: u64,
}

async fn get_events(
    State(api): State<Arc<Api>>,
    _actor: Actor,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let id = order_id(&id)?;
    let limit = limit(&params, MAX_PAGE)?;
    let after = match cursor::<EventsCursor>(&params)? {
        Some(c) if c.order_id == id => c.after_version,
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_cursor",
                "this cursor belongs to another order",
            ));
        }
        None => 0,
    };
    // One more than asked: whether there is a next page, without an empty one.
    let mut events = api
        .commands
        .repository()
        .history_page::<Order>(&id.to_string(), after, usize::from(limit) + 1)
        .await?;
    if events.is_empty() && after == 0 {
        return Err(ApiError::order_not_found());
    }
    let more = events.len() > usize::from(limit);
    events.truncate(usize::from(limit));
    let next = events.last().filter(|_| more).map(|last| {
        encode_cursor(&EventsCursor {
            order_id: id,
            after_version: last.version,
        })
    });
    Ok(Json(list("events", json!(events), next)).into_response())
}

async fn list_customer_orders(
    State(api): State<Arc<Api>>,
    _actor: Actor,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let customer =
        CustomerId::parse(id).map_err(|e| ApiError::invalid("invalid_customer_id", e.to_string()))?;
    let limit = limit(&params, DEFAULT_PAGE)?;
    let after = cursor::<CustomerCursor>(&params)?;
    if after
        .as_ref()
        .is_some_and(|c| c.customer_id != customer.to_string())
    {
        return Err(ApiError::invalid(
            "invalid_cursor",
            "this cursor belongs to another customer",
        ));
    }
    let page = api.views.by_customer(&customer, limit, after.as_ref()).await?;
    let next = page.next.as_ref().map(encode_cursor);
    let mut response = Json(list("orders", json!(page.orders), next)).into_response();
    response
        .headers_mut()
        .insert(SOURCE, HeaderValue::from_static("read-model"));
    Ok(response)
}

/// Runs an operator or customer command on an order and answers with the order.
async fn order_command(
    api: &Api,
    actor: &Actor,
    id: OrderId,
    headers: &HeaderMap,
    command: OrderCommand,
) -> Result<Response, ApiError> {
    let expected = if_match(headers)?;
    let metadata = request_metadata(headers, actor);
    let executed = api
        .commands
        .execute::<Order>(&id.to_string(), command, &metadata, expected)
        .await?;
    orderflow_adapters::metrics::order_events(&executed.events);
    tracing::info!(order_id = %id, actor = %actor.0, "order command applied");
    order_response(StatusCode::OK, api.view(id).await?)
}

#[derive(Debug, Deserialize)]
struct CancelRequest {
    reason: String,
}

async fn cancel_order(
    State(api): State<Arc<Api>>,
    actor: Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<CancelRequest>,
) -> Result<Response, ApiError> {
    let id = order_id(&id)?;
    let reason = body.value.reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::invalid("invalid_reason", "reason: 1 to 500 characters"));
    }
    order_command(
        &api,
        &actor,
        id,
        &headers,
        OrderCommand::Cancel { detail: Some(reason) },
    )
    .await
}

#[derive(Debug, Deserialize)]
struct StatusRequest {
    status: String,
}

async fn advance_order(
    State(api): State<Arc<Api>>,
    actor: Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<StatusRequest>,
) -> Result<Response, ApiError> {
    let id = order_id(&id)?;
    let step = FulfilmentStep::parse(&body.value.status).ok_or_else(|| {
        ApiError::invalid(
            "invalid_status",
            "status: PREPARING, READY, OUT_FOR_DELIVERY or DELIVERED",
        )
    })?;
    order_command(&api, &actor, id, &headers, OrderCommand::Advance(step)).await
}

async fn list_products(State(api): State<Arc<Api>>, _actor: Actor) -> Result<Response, ApiError> {
    let products: Vec<_> = api
        .catalog
        .all()
        .await?
        .into_iter()
        .map(|p| json!({"sku": p.sku, "name": p.name, "price": p.price(), "available": p.available}))
        .collect();
    Ok(Json(json!({ "products": products })).into_response())
}
