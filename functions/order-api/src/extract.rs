//! What a request brings: its JSON body (bounded, with its raw bytes), the bodies of
//! each route parsed into domain types, path ids, `If-Match` and the metadata every
//! command records (request, correlation and causation ids, actor).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use orderflow_domain::order::{PaymentToken, ShippingAddress};
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
pub(crate) struct ValidOrder {
    pub(crate) customer_id: Option<CustomerId>,
    pub(crate) items: Vec<(Sku, Quantity)>,
    pub(crate) token: PaymentToken,
    pub(crate) address: ShippingAddress,
}

impl PlaceOrderRequest {
    pub(crate) fn parse(self) -> Result<ValidOrder, ApiError> {
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
    OrderId::parse(raw).map_err(|_| ApiError::invalid("invalid_order_id", "order ids are UUIDs"))
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
            ApiError::invalid(
                "invalid_if_match",
                "If-Match must be an order version, e.g. \"3\"",
            )
        })
}

#[derive(Debug, Deserialize)]
pub(crate) struct CancelRequest {
    pub(crate) reason: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct StatusRequest {
    pub(crate) status: String,
}
