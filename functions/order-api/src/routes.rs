//! The routes: each handler authorizes, runs its use case and answers with the
//! order's version as its `ETag`.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::header::{ETAG, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use orderflow_adapters::read_model::CustomerCursor;
use orderflow_app::placement::NewOrder;
use orderflow_app::{Admission, Clock, OrderViews, RateLimiter, fingerprint, scoped_key};
use orderflow_domain::order::view::OrderView;
use orderflow_domain::order::{FulfilmentStep, Order, OrderCommand, OrderError, OrderState};
use orderflow_domain::{CustomerId, IdempotencyKey, Metadata, OrderId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::extract::{
    CancelRequest, JsonBody, PlaceOrderRequest, StatusRequest, ValidOrder, if_match, order_id,
    request_metadata,
};
use crate::paging::{self, DEFAULT_PAGE, MAX_PAGE, Params, cursor, limit, list};
use crate::{Action, Api, ApiError, Decision, Principal, Stores, authorize, products};

/// The router, with every route of the API.
pub fn router<P: Stores>(api: Arc<Api<P>>) -> Router {
    Router::new()
        .route("/orders", post(place_order::<P>))
        .route("/orders/{id}", get(get_order::<P>))
        .route("/orders/{id}/events", get(get_events::<P>))
        .route("/orders/{id}/cancel", post(cancel_order::<P>))
        .route("/orders/{id}/status", post(advance_order::<P>))
        .route("/customers/{id}/orders", get(list_customer_orders::<P>))
        .route("/products", get(products::list_products::<P>))
        .route(
            "/products/{sku}",
            get(products::get_product::<P>).put(products::put_product::<P>),
        )
        .route("/products/{sku}/stock", post(products::adjust_stock::<P>))
        .route("/products/{sku}/events", get(products::get_product_events::<P>))
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

/// What `POST /orders` answers, stored whole for idempotent replays.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Placed {
    order: OrderView,
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

/// The request's `Idempotency-Key`: required, so that `why` holds.
pub(crate) fn idempotency_key(headers: &HeaderMap, why: &str) -> Result<IdempotencyKey, ApiError> {
    headers
        .get("idempotency-key")
        .ok_or_else(|| {
            ApiError::invalid(
                "missing_idempotency_key",
                format!("Idempotency-Key: required, so that {why}"),
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
        })
}

async fn place_order<P: Stores>(
    State(api): State<Arc<Api<P>>>,
    principal: Principal,
    headers: HeaderMap,
    body: JsonBody<PlaceOrderRequest>,
) -> Result<Response, ApiError> {
    // Without a key a client cannot retry safely, so there is no placement without one.
    let key = idempotency_key(&headers, "a retry places no second order")?;
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

impl<P: Stores> Api<P> {
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

async fn get_order<P: Stores>(
    State(api): State<Arc<Api<P>>>,
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

async fn get_events<P: Stores>(
    State(api): State<Arc<Api<P>>>,
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

async fn list_customer_orders<P: Stores>(
    State(api): State<Arc<Api<P>>>,
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
async fn order_command<P: Stores>(
    api: &Api<P>,
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

async fn cancel_order<P: Stores>(
    State(api): State<Arc<Api<P>>>,
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

async fn advance_order<P: Stores>(
    State(api): State<Arc<Api<P>>>,
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
