//! The order routes: placement, reading an order and its audit trail, a customer's
//! orders, cancellation and fulfilment. Each handler authorizes, runs its use case and
//! answers with the order's version as its `ETag`.

use std::sync::Arc;

use crate::extract::Path;
use axum::Json;
use axum::extract::State;
use axum::http::header::{ETAG, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use orderflow_adapters::read_model::CustomerCursor;
use orderflow_app::placement::NewOrder;
use orderflow_app::{Admission, Clock, OrderViews, RateLimiter, fingerprint, scoped_key};
use orderflow_domain::order::view::OrderView;
use orderflow_domain::order::{FulfilmentStep, Order, OrderCommand, OrderError, OrderState, PersonalAddress};
use orderflow_domain::{CustomerId, Metadata, OrderId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::extract::idempotency_key;
use crate::extract::{
    CancelRequest, JsonBody, PlaceOrderRequest, StatusRequest, ValidOrder, if_match, order_id,
    request_metadata,
};
use crate::paging::{self, DEFAULT_PAGE, MAX_PAGE, Params, limit, list};
use crate::{Action, Api, ApiError, Decision, Principal, Stores, authorize};

/// What `POST /orders` answers, stored whole for idempotent replays.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Placed {
    /// The order, its address sealed: what the idempotency record keeps.
    order: OrderView,
    /// The address as this request gave it, when the order holds what this request
    /// sealed: shown without reading the key again. Never stored, so a replayed
    /// answer is opened with the customer's key.
    #[serde(skip)]
    opened: Option<orderflow_domain::order::ShippingAddress>,
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

pub(crate) async fn place_order<P: Stores>(
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
    .ok_or_else(|| ApiError::invalid_field("missing_customer_id", "customerId", "required"))?;
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
    let Placed { mut order, opened } = outcome.response;
    let order = match opened {
        Some(address) => {
            order.shipping_address = Some(PersonalAddress::Clear(address));
            order
        }
        None => api.shown(order).await?,
    };
    let mut response = order_response(StatusCode::CREATED, order)?;
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
        let address = self.personal.seal_address(&customer, &order.address).await?;
        let sealed = address.clone();
        let placed = self
            .placement
            .place(
                NewOrder {
                    order_id,
                    customer_id: customer,
                    items: order.items,
                    token: order.token,
                    address,
                },
                &metadata,
            )
            .await?;
        if !placed.events.is_empty() {
            tracing::info!(order_id = %order_id, correlation_id = %metadata.correlation_id, actor = %metadata.actor, "order placed");
            orderflow_lambda::metrics::order_events(&placed.events);
        }
        let opened = matches!(
            &placed.order.shipping_address,
            Some(PersonalAddress::Sealed(stored)) if *stored == sealed
        )
        .then_some(order.address);
        Ok(Placed {
            order: placed.order,
            opened,
        })
    }

    /// The order folded from the store now.
    /// `view` as its reader sees it: the address opened with its customer's key, or
    /// erased.
    async fn shown(&self, view: OrderView) -> Result<OrderView, ApiError> {
        Ok(self.personal.show_one(view).await?)
    }

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

pub(crate) async fn get_order<P: Stores>(
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
            return Err(ApiError::invalid_field(
                "invalid_consistent",
                "consistent",
                "true or false",
            ));
        }
    };
    let (view, source) = if let Some(raw) = params.get("at") {
        let at = Timestamp::parse(raw).map_err(|_| {
            ApiError::invalid_field(
                "invalid_time",
                "at",
                "an RFC 3339 time, e.g. 2026-11-21T09:30:00Z",
            )
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
    let mut response = order_response(StatusCode::OK, api.shown(view).await?)?;
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

pub(crate) async fn get_events<P: Stores>(
    State(api): State<Arc<Api<P>>>,
    principal: Principal,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let id = order_id(&id)?;
    let limit = limit(&params, MAX_PAGE)?;
    let (cursors, position) = api.access.cursors.open::<EventsCursor>(&params).await?;
    let (after, owner) = match position {
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
        cursors.seal(&EventsCursor {
            order_id: id,
            owner: owner.clone(),
            after_version: last.version,
        })
    });
    Ok(Json(list("events", json!(events), next)).into_response())
}

pub(crate) async fn list_customer_orders<P: Stores>(
    State(api): State<Arc<Api<P>>>,
    principal: Principal,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let customer =
        CustomerId::parse(id).map_err(|e| ApiError::invalid_field("invalid_customer_id", "id", e))?;
    authorize(&principal, Action::ListOrders { of: &customer }).into_result()?;
    let limit = limit(&params, DEFAULT_PAGE)?;
    let (cursors, after) = api.access.cursors.open::<CustomerCursor>(&params).await?;
    if after
        .as_ref()
        .is_some_and(|c| c.customer_id != customer.to_string())
    {
        return Err(paging::foreign_cursor());
    }
    let page = api.views.by_customer(&customer, limit, after.as_ref()).await?;
    let next = page.next.as_ref().map(|c| cursors.seal(c));
    let orders = api.personal.show(page.orders).await?;
    let mut response = Json(list("orders", json!(orders), next)).into_response();
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
    orderflow_lambda::metrics::order_events(&executed.events);
    tracing::info!(order_id = %id, actor = %metadata.actor, "order command applied");
    order_response(StatusCode::OK, api.shown(api.view(id).await?).await?)
}

pub(crate) async fn cancel_order<P: Stores>(
    State(api): State<Arc<Api<P>>>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<CancelRequest>,
) -> Result<Response, ApiError> {
    let id = order_id(&id)?;
    let reason = body.value.reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 500 || !orderflow_domain::is_plain_text(&reason) {
        return Err(ApiError::invalid_field(
            "invalid_reason",
            "reason",
            "1 to 500 characters, without control or bidirectional-override characters",
        ));
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

pub(crate) async fn advance_order<P: Stores>(
    State(api): State<Arc<Api<P>>>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<StatusRequest>,
) -> Result<Response, ApiError> {
    authorize(&principal, Action::Operate).into_result()?;
    let id = order_id(&id)?;
    let step = FulfilmentStep::parse(&body.value.status).ok_or_else(|| {
        ApiError::invalid_field(
            "invalid_status",
            "status",
            "PREPARING, READY, OUT_FOR_DELIVERY or DELIVERED",
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
