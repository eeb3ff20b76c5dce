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
//! Prices come from the catalog, never from the client. Who may do what is decided in
//! [`access`]; the actor of every command (`customer:<id>` or `operator:<sub>`) is
//! recorded in the events' metadata.

pub mod access;
pub mod error;
pub mod paging;

use orderflow_adapters::config::Config;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::header::{ETAG, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jiff::SignedDuration;
use orderflow_adapters::catalog::DynamoCatalog;
use orderflow_adapters::payment::DynamoVault;
use orderflow_adapters::rate_limit::{Admission, DynamoRateLimiter};
use orderflow_adapters::read_model::{CustomerCursor, DynamoOrderViews};
use orderflow_adapters::{DynamoEventStore, DynamoIdempotencyStore};
use orderflow_app::placement::{NewOrder, Placement};
use orderflow_app::{Catalog, Clock, CommandService, Idempotency, SystemClock, fingerprint, scoped_key};
use orderflow_domain::order::view::OrderView;
use orderflow_domain::order::{
    FulfilmentStep, Order, OrderCommand, OrderError, OrderState, PaymentToken, ShippingAddress,
};
use orderflow_domain::{CustomerId, IdempotencyKey, Metadata, OrderId, Quantity, Sku, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use access::HasPrincipalClaims;
pub use access::{Action, Decision, Principal, PrincipalClaims, authorize};
pub use error::ApiError;
use paging::{CursorKey, DEFAULT_PAGE, MAX_PAGE, Params, cursor, limit, list};

/// The largest request body accepted; larger ones get a 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How the API authorizes and pages: everything it needs besides its stores.
#[derive(Debug, Clone)]
pub struct Access {
    /// Which claim holds a customer's id.
    pub claims: PrincipalClaims,
    /// The key cursors are signed with.
    pub cursors: CursorKey,
    /// Orders per minute per principal.
    pub placements: DynamoRateLimiter,
}

/// What the API needs.
#[derive(Debug, Clone)]
pub struct Api {
    commands: CommandService<DynamoEventStore, SystemClock>,
    idempotency: Idempotency<DynamoIdempotencyStore, SystemClock>,
    catalog: DynamoCatalog,
    placement: Placement<DynamoEventStore, SystemClock, DynamoCatalog, DynamoVault>,
    views: DynamoOrderViews,
    access: Access,
}

impl Api {
    /// The API over its stores.
    #[must_use]
    pub fn new(
        commands: CommandService<DynamoEventStore, SystemClock>,
        idempotency: Idempotency<DynamoIdempotencyStore, SystemClock>,
        catalog: DynamoCatalog,
        vault: DynamoVault,
        views: DynamoOrderViews,
        access: Access,
    ) -> Self {
        Self {
            placement: Placement::new(commands.clone(), catalog.clone(), vault),
            commands,
            idempotency,
            catalog,
            views,
            access,
        }
    }

    /// The API as its function's variables describe it (`EVENT_STORE_TABLE`,
    /// `SNAPSHOT_TABLE`, `SNAPSHOT_EVERY`, `IDEMPOTENCY_TABLE`, `CATALOG_TABLE`,
    /// `PAYMENT_VAULT_TABLE`, `ORDER_VIEW_TABLE` and [`Access::from_variables`]'s), with
    /// `cursors` signing its pages: Lambda and `orderflow dev` build it here alike.
    ///
    /// # Errors
    /// [`AccessConfigError::Config`] naming a missing or malformed variable.
    pub fn from_config(config: &Config, cursors: CursorKey) -> Result<Self, AccessConfigError> {
        let dynamodb = &config.dynamodb;
        Ok(Self::new(
            CommandService::new(
                config.repository()?,
                SystemClock,
                orderflow_app::command::DEFAULT_MAX_ATTEMPTS,
            ),
            Self::idempotency(DynamoIdempotencyStore::new(
                dynamodb.clone(),
                config.required("IDEMPOTENCY_TABLE")?,
            )),
            DynamoCatalog::new(dynamodb.clone(), config.required("CATALOG_TABLE")?),
            DynamoVault::new(dynamodb.clone(), config.required("PAYMENT_VAULT_TABLE")?),
            DynamoOrderViews::new(dynamodb.clone(), config.required("ORDER_VIEW_TABLE")?),
            Access::from_variables(|name| config.var(name), dynamodb.clone(), cursors)?,
        ))
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

impl HasPrincipalClaims for Api {
    fn principal_claims(&self) -> &PrincipalClaims {
        &self.access.claims
    }
}

/// The rate-limit scope of placements in the rate-limit table.
pub const PLACEMENT_SCOPE: &str = "place-order";

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
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route") })
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
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
                )
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
    #[serde(default)]
    customer_id: Option<String>,
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
    customer_id: Option<CustomerId>,
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
            customer_id: self
                .customer_id
                .map(|id| {
                    CustomerId::parse(id).map_err(|e| ApiError::invalid("invalid_customer_id", e.to_string()))
                })
                .transpose()?,
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

fn request_metadata(headers: &HeaderMap, principal: &Principal) -> Metadata {
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
        actor: principal.actor(),
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
    principal: Principal,
    headers: HeaderMap,
    body: JsonBody<PlaceOrderRequest>,
) -> Result<Response, ApiError> {
    // Without a key a client cannot retry safely, so there is no placement without one.
    let key = headers
        .get("idempotency-key")
        .ok_or_else(|| {
            ApiError::invalid(
                "missing_idempotency_key",
                "Idempotency-Key: required, so that a retry places no second order",
            )
        })?
        .to_str()
        .ok()
        .and_then(|k| IdempotencyKey::parse(k).ok())
        .ok_or_else(|| {
            ApiError::invalid(
                "invalid_idempotency_key",
                "Idempotency-Key: 1 to 255 printable ASCII characters",
            )
        })?;
    let order = body.value.parse()?;
    let customer = authorize(
        &principal,
        Action::PlaceOrder {
            for_customer: order.customer_id.as_ref(),
        },
    )
    .into_result()?
    .ok_or_else(|| ApiError::invalid("missing_customer_id", "customerId: required"))?;
    let metadata = request_metadata(&headers, &principal);
    let scoped = scoped_key(&principal.actor(), key.as_str());
    // One (principal, key), one order id: however often the placement runs (a retry
    // after a crash, a lost response, an expired record), it lands on one stream.
    let order_id = orderflow_app::placement::order_id_for(&scoped);
    // The same body in another key order or spacing is the same request.
    let canonical = serde_json::from_slice::<serde_json::Value>(&body.raw)
        .map(|v| v.to_string())
        .unwrap_or_default();
    let outcome = api
        .idempotency
        .run(&scoped, &fingerprint(canonical.as_bytes()), || {
            api.place(&principal, order_id, customer, order, metadata)
        })
        .await?;
    let mut response = order_response(StatusCode::CREATED, outcome.response.order)?;
    if outcome.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

impl Api {
    /// Places `order` for `customer`: within the principal's rate, priced from the
    /// catalog, decided, the token kept, the event appended. A replayed idempotent
    /// request never gets here, so it costs no rate.
    async fn place(
        &self,
        principal: &Principal,
        order_id: OrderId,
        customer: CustomerId,
        order: ValidOrder,
        metadata: Metadata,
    ) -> Result<Placed, ApiError> {
        let now = self.commands.clock().now();
        if let Admission::Limited { retry_after } =
            self.access.placements.take(&principal.actor(), now).await?
        {
            return Err(ApiError::too_many_requests(
                format!(
                    "at most {} orders a minute; retry in {retry_after} s",
                    self.access.placements.per_minute()
                ),
                retry_after,
            ));
        }
        let placed = self
            .placement
            .place(
                NewOrder {
                    order_id,
                    customer_id: customer,
                    items: order.items,
                    token: order.token,
                    address: order.address,
                },
                &metadata,
            )
            .await?;
        if !placed.events.is_empty() {
            tracing::info!(order_id = %order_id, correlation_id = %metadata.correlation_id, actor = %metadata.actor, "order placed");
            orderflow_adapters::metrics::order_events(&placed.events);
        }
        Ok(Placed { order: placed.order })
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

/// The order for `principal`: an order that is not theirs is, to them, no order.
fn owned_by(principal: &Principal, view: OrderView) -> Result<OrderView, ApiError> {
    authorize(
        principal,
        Action::ReadOrder {
            owner: &view.customer_id,
        },
    )
    .into_result()?;
    Ok(view)
}

async fn get_order(
    State(api): State<Arc<Api>>,
    principal: Principal,
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
        (owned_by(&principal, api.view_at(id, at).await?)?, "event-store")
    } else if consistent {
        (owned_by(&principal, api.view(id).await?)?, "event-store")
    } else {
        match api
            .views
            .get(id)
            .await?
            .map(|stored| owned_by(&principal, stored.view))
        {
            Some(Ok(view)) => (view, "read-model"),
            // Placed a moment ago, not projected yet: its creator can read it anyway.
            // Another's order takes the same path, so that it answers the same 404
            // after the same reads as an order that does not exist.
            None | Some(Err(_)) => (owned_by(&principal, api.view(id).await?)?, "event-store"),
        }
    };
    let mut response = order_response(StatusCode::OK, view)?;
    response
        .headers_mut()
        .insert(SOURCE, HeaderValue::from_static(source));
    Ok(response)
}

/// Where an order's audit trail continues. It names the order's owner, checked when
/// the first page was served, so later pages are authorized without another read.
#[derive(Debug, Serialize, Deserialize)]
struct EventsCursor {
    #[serde(rename = "o")]
    order_id: OrderId,
    #[serde(rename = "c")]
    owner: CustomerId,
    #[serde(rename = "v")]
    after_version: u64,
}

async fn get_events(
    State(api): State<Arc<Api>>,
    principal: Principal,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let id = order_id(&id)?;
    let limit = limit(&params, MAX_PAGE)?;
    let (after, owner) = match cursor::<EventsCursor>(&api.access.cursors, &params)? {
        Some(c) if c.order_id == id => (c.after_version, Some(c.owner)),
        Some(_) => return Err(paging::foreign_cursor()),
        None => (0, None),
    };
    // One more than asked: whether there is a next page, without an empty one.
    let mut events = api
        .commands
        .repository()
        .history_page::<Order>(&id.to_string(), after, usize::from(limit) + 1)
        .await?;
    let owner = match (owner, events.first().map(|e| &e.data)) {
        (Some(owner), _) => owner,
        (None, Some(orderflow_domain::order::OrderEvent::Placed(placed))) => placed.customer_id.clone(),
        (None, _) => return Err(ApiError::order_not_found()),
    };
    authorize(&principal, Action::ReadOrder { owner: &owner }).into_result()?;
    let more = events.len() > usize::from(limit);
    events.truncate(usize::from(limit));
    let next = events.last().filter(|_| more).map(|last| {
        api.access.cursors.seal(&EventsCursor {
            order_id: id,
            owner: owner.clone(),
            after_version: last.version,
        })
    });
    Ok(Json(list("events", json!(events), next)).into_response())
}

async fn list_customer_orders(
    State(api): State<Arc<Api>>,
    principal: Principal,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let customer =
        CustomerId::parse(id).map_err(|e| ApiError::invalid("invalid_customer_id", e.to_string()))?;
    authorize(&principal, Action::ListOrders { of: &customer }).into_result()?;
    let limit = limit(&params, DEFAULT_PAGE)?;
    let after = cursor::<CustomerCursor>(&api.access.cursors, &params)?;
    if after
        .as_ref()
        .is_some_and(|c| c.customer_id != customer.to_string())
    {
        return Err(paging::foreign_cursor());
    }
    let page = api.views.by_customer(&customer, limit, after.as_ref()).await?;
    let next = page.next.as_ref().map(|c| api.access.cursors.seal(c));
    let mut response = Json(list("orders", json!(page.orders), next)).into_response();
    response
        .headers_mut()
        .insert(SOURCE, HeaderValue::from_static("read-model"));
    Ok(response)
}

/// Runs a command on an order the principal may act on (`action` of its owner), and
/// answers with the order. One that is not theirs is refused before anything is
/// decided, as the same 404 as an order that does not exist.
async fn order_command(
    api: &Api,
    principal: &Principal,
    id: OrderId,
    headers: &HeaderMap,
    command: OrderCommand,
    action: fn(&CustomerId) -> Action<'_>,
) -> Result<Response, ApiError> {
    let expected = if_match(headers)?;
    let metadata = request_metadata(headers, principal);
    let executed = api
        .commands
        .execute_guarded::<Order>(
            &id.to_string(),
            command,
            &metadata,
            expected,
            |state| match state {
                OrderState::Placed(order)
                    if matches!(
                        authorize(principal, action(&order.customer_id)),
                        Decision::Allow { .. }
                    ) =>
                {
                    Ok(())
                }
                _ => Err(OrderError::NotPlaced),
            },
        )
        .await?;
    orderflow_adapters::metrics::order_events(&executed.events);
    tracing::info!(order_id = %id, actor = %metadata.actor, "order command applied");
    order_response(StatusCode::OK, api.view(id).await?)
}

#[derive(Debug, Deserialize)]
struct CancelRequest {
    reason: String,
}

async fn cancel_order(
    State(api): State<Arc<Api>>,
    principal: Principal,
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
        &principal,
        id,
        &headers,
        OrderCommand::Cancel { detail: Some(reason) },
        |owner| Action::CancelOrder { owner },
    )
    .await
}

#[derive(Debug, Deserialize)]
struct StatusRequest {
    status: String,
}

async fn advance_order(
    State(api): State<Arc<Api>>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<StatusRequest>,
) -> Result<Response, ApiError> {
    authorize(&principal, Action::Operate).into_result()?;
    let id = order_id(&id)?;
    let step = FulfilmentStep::parse(&body.value.status).ok_or_else(|| {
        ApiError::invalid(
            "invalid_status",
            "status: PREPARING, READY, OUT_FOR_DELIVERY or DELIVERED",
        )
    })?;
    order_command(
        &api,
        &principal,
        id,
        &headers,
        OrderCommand::Advance(step),
        |_| Action::Operate,
    )
    .await
}

async fn list_products(State(api): State<Arc<Api>>, principal: Principal) -> Result<Response, ApiError> {
    authorize(&principal, Action::BrowseCatalog).into_result()?;
    let products: Vec<_> = api
        .catalog
        .all()
        .await?
        .into_iter()
        .map(|p| json!({"sku": p.sku, "name": p.name, "price": p.price(), "available": p.available}))
        .collect();
    Ok(Json(json!({ "products": products })).into_response())
}

/// Why the API's access settings could not be read at start-up.
#[derive(Debug, thiserror::Error)]
pub enum AccessConfigError {
    /// A variable is missing or malformed.
    #[error(transparent)]
    Config(#[from] orderflow_adapters::ConfigError),
    /// The cursor key's secret could not be read.
    #[error("reading the cursor key secret {secret_id} failed")]
    Secret {
        /// The secret's id or ARN.
        secret_id: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The secret is not a usable key.
    #[error("the cursor key secret {secret_id}: {reason}")]
    WeakKey {
        /// The secret's id or ARN.
        secret_id: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Access {
    /// The settings from the function's variables (`CUSTOMER_ID_CLAIM`,
    /// `RATE_LIMIT_TABLE`, `ORDERS_PER_MINUTE`), read through `variable` so that the
    /// dev runner can hand over the template's values as Lambda gets them.
    ///
    /// # Errors
    /// [`AccessConfigError::Config`] for a missing table or a malformed number.
    pub fn from_variables(
        variable: impl Fn(&str) -> Option<String>,
        dynamodb: aws_sdk_dynamodb::Client,
        cursors: CursorKey,
    ) -> Result<Self, AccessConfigError> {
        use orderflow_adapters::ConfigError;
        let present = |name: &'static str| variable(name).filter(|v| !v.trim().is_empty());
        let per_minute = match present("ORDERS_PER_MINUTE") {
            None => DEFAULT_ORDERS_PER_MINUTE,
            Some(raw) => {
                raw.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ConfigError::Invalid {
                        name: "ORDERS_PER_MINUTE",
                        reason: format!("{raw:?} is not a positive whole number"),
                    })?
            }
        };
        Ok(Self {
            claims: PrincipalClaims {
                customer_id_claim: present("CUSTOMER_ID_CLAIM")
                    .unwrap_or_else(|| access::DEFAULT_CUSTOMER_ID_CLAIM.to_owned()),
            },
            cursors,
            placements: DynamoRateLimiter::new(
                dynamodb,
                present("RATE_LIMIT_TABLE").ok_or(ConfigError::Missing("RATE_LIMIT_TABLE"))?,
                PLACEMENT_SCOPE,
                per_minute,
            ),
        })
    }
}

/// Orders a principal may place per minute unless `ORDERS_PER_MINUTE` says otherwise.
pub const DEFAULT_ORDERS_PER_MINUTE: u64 = 60;

/// The cursor key from a Secrets Manager secret (its `SecretString`).
///
/// # Errors
/// [`AccessConfigError::Secret`] when it cannot be read, [`AccessConfigError::WeakKey`]
/// when it is too short to be a key.
pub async fn cursor_key_from_secret(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<CursorKey, AccessConfigError> {
    let secret = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| AccessConfigError::Secret {
            secret_id: secret_id.to_owned(),
            source: Box::new(e),
        })?;
    let text = secret.secret_string().unwrap_or_default();
    CursorKey::new(text.as_bytes()).map_err(|reason| AccessConfigError::WeakKey {
        secret_id: secret_id.to_owned(),
        reason,
    })
}
