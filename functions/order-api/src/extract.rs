//! What a request brings: its JSON body (bounded, with its raw bytes), the bodies of
//! each route parsed into domain types, path ids, `If-Match` and the metadata every
//! command records (request, correlation and causation ids, actor).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use orderflow_domain::order::{FulfilmentStep, PaymentToken, ShippingAddress};
use orderflow_domain::{CustomerId, Metadata, OrderId, Quantity, Sku};
use serde::Deserialize;
use uuid::Uuid;

use crate::{ApiError, Principal};

/// The largest request body accepted; larger ones get a 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body of at most [`MAX_BODY_BYTES`], with its raw bytes (for fingerprints).
#[derive(Debug)]
pub struct JsonBody<T> {
    pub(crate) value: T,
    pub(crate) raw: Bytes,
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
        let mut json = serde_json::Deserializer::from_slice(&raw);
        let value = serde_path_to_error::deserialize(&mut json).map_err(body_error)?;
        json.end().map_err(|e| not_json(&e))?;
        Ok(Self { value, raw })
    }
}

fn not_json(error: &serde_json::Error) -> ApiError {
    ApiError::invalid("malformed_request", format!("the body is not JSON: {error}"))
}

/// A body that is not JSON, or not the route's shape: a 400 `malformed_request` naming
/// the JSON path of the member at fault (`shippingAddress.name`, `items[1].quantity`).
fn body_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    // serde_json's message ends with where in the text it failed; the path says better.
    if !inner.is_data() {
        return not_json(&inner);
    }
    let text = inner.to_string();
    let problem = text.split(" at line ").next().unwrap_or(&text);
    // A missing member is reported at its parent: name the member itself.
    let missing = problem
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'));
    let field = match (path.as_str(), missing) {
        (".", Some(member)) => member.to_owned(),
        (_, Some(member)) => format!("{path}.{member}"),
        (".", None) => {
            return ApiError::invalid("malformed_request", format!("the body: {problem}"));
        }
        (_, None) => path,
    };
    let problem = if missing.is_some() { "required" } else { problem };
    ApiError::invalid_field("malformed_request", field, problem)
}

/// `POST /orders` body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlaceOrderRequest {
    /// Whom the order is for: a customer's own id (or absent: their token says it);
    /// operators must name the customer.
    #[serde(default)]
    #[schemars(with = "Option<CustomerId>")]
    customer_id: Option<String>,
    /// What to order: 1 to 99 lines, each SKU once. Prices come from the catalog.
    #[schemars(length(min = 1, max = 99))]
    items: Vec<ItemRequest>,
    /// The payment method's token (`tok_` and 1 to 64 letters, digits or `_`); never
    /// a card number.
    #[schemars(regex(pattern = "^tok_[A-Za-z0-9_]{1,64}$"))]
    payment_token: String,
    /// Where the order goes.
    #[schemars(with = "ShippingAddress")]
    shipping_address: serde_json::Map<String, serde_json::Value>,
}

/// One line of `POST /orders`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(rename = "OrderItem")]
struct ItemRequest {
    /// What.
    #[schemars(with = "Sku")]
    sku: String,
    /// How many.
    #[schemars(with = "Quantity")]
    #[serde(deserialize_with = "orderflow_domain::whole::u64")]
    quantity: u64,
}

/// The request, parsed into domain types.
pub(crate) struct ValidOrder {
    pub(crate) customer_id: Option<CustomerId>,
    pub(crate) items: Vec<(Sku, Quantity)>,
    pub(crate) token: PaymentToken,
    pub(crate) address: ShippingAddress,
}

impl PlaceOrderRequest {
    pub(crate) fn parse(self) -> Result<ValidOrder, ApiError> {
        let invalid =
            |field: String, e: &dyn std::fmt::Display| ApiError::invalid_field("invalid_order", field, e);
        if self.items.len() > orderflow_domain::order::MAX_LINES {
            return Err(invalid(
                "items".into(),
                &format!(
                    "an order has at most {} lines",
                    orderflow_domain::order::MAX_LINES
                ),
            ));
        }
        let items = self
            .items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                Ok((
                    Sku::parse(item.sku).map_err(|e| invalid(format!("items[{i}].sku"), &e))?,
                    Quantity::parse(item.quantity)
                        .map_err(|e| invalid(format!("items[{i}].quantity"), &e))?,
                ))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(ValidOrder {
            customer_id: self
                .customer_id
                .map(|id| {
                    CustomerId::parse(id)
                        .map_err(|e| ApiError::invalid_field("invalid_customer_id", "customerId", e))
                })
                .transpose()?,
            items,
            token: PaymentToken::parse(self.payment_token).map_err(|e| invalid("paymentToken".into(), &e))?,
            address: ShippingAddress::from_json(&self.shipping_address)
                .map_err(|e| invalid(format!("shippingAddress.{}", e.field), &e.problem))?,
        })
    }
}

pub(crate) fn request_metadata(headers: &HeaderMap, principal: &Principal) -> Metadata {
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

pub(crate) fn order_id(raw: &str) -> Result<OrderId, ApiError> {
    OrderId::parse(raw).map_err(|_| ApiError::invalid_field("invalid_order_id", "id", "order ids are UUIDs"))
}

pub(crate) fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
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
            ApiError::invalid_field("invalid_if_match", "If-Match", "an order version, e.g. \"3\"")
        })
}

/// `POST /orders/{id}/cancel` body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct CancelRequest {
    /// Why, in the customer's or operator's words: 1 to 500 characters. Kept in
    /// clear in the order's audit trail, so not a place for personal data.
    #[schemars(length(min = 1, max = 500), regex(pattern = orderflow_domain::PLAIN_TEXT))]
    pub(crate) reason: String,
}

/// `POST /orders/{id}/status` body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct StatusRequest {
    /// The next fulfilment step.
    #[schemars(with = "FulfilmentStep")]
    pub(crate) status: String,
}

/// A path parameter, as axum's `Path`, but refused in the API's error shape (a
/// percent-encoding that is not UTF-8, say) rather than as plain text.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|e| ApiError::invalid("invalid_path", format!("the path: {}", e.body_text())))
    }
}

/// The query string's parameters, refused in the API's error shape when the query
/// string cannot be read.
#[derive(Debug, Default)]
pub struct Params(pub(crate) std::collections::HashMap<String, String>);

impl std::ops::Deref for Params {
    type Target = std::collections::HashMap<String, String>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(params)| Self(params))
            .map_err(|e| ApiError::invalid("invalid_query", format!("the query string: {}", e.body_text())))
    }
}

/// The request's `Idempotency-Key`: required, so that `why` holds.
pub(crate) fn idempotency_key(
    headers: &HeaderMap,
    why: &str,
) -> Result<orderflow_domain::IdempotencyKey, ApiError> {
    headers
        .get("idempotency-key")
        .ok_or_else(|| {
            ApiError::invalid_field(
                "missing_idempotency_key",
                "Idempotency-Key",
                format!("required, so that {why}"),
            )
        })?
        .to_str()
        .ok()
        .and_then(|k| orderflow_domain::IdempotencyKey::parse(k).ok())
        .ok_or_else(|| {
            ApiError::invalid_field(
                "invalid_idempotency_key",
                "Idempotency-Key",
                "1 to 255 printable ASCII characters",
            )
        })
}
