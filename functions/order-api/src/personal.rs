//! A customer's personal data: everything held about them (`GET`), and its erasure by
//! crypto-shredding (`DELETE`), for the customer themselves or an operator.
//!
//! Erasure deletes the customer's data key, replaces the read model's copies of their
//! personal fields with the erased marker and records `PersonalDataErased` (who, when,
//! why; no personal data). It is refused with 409, naming the orders, while any of
//! their orders is neither delivered nor cancelled: shipping needs the address until
//! then. `docs/decisions/personal-data.md` says why.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use orderflow_app::personal::EraseError;
use orderflow_domain::CustomerId;
use orderflow_domain::order::view::OrderView;
use serde::Serialize;

use crate::extract::{Path, request_metadata};
use crate::paging::Params;
use crate::{Action, Api, ApiError, Principal, Stores, authorize};

/// Everything held about a customer.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonalDataBody {
    /// Whose.
    pub customer_id: CustomerId,
    /// Whether a data key is held for them: false once erased (their sealed fields
    /// then read `[erased]`).
    pub key_held: bool,
    /// Every field the system counts as personal, as paths into the documents that
    /// hold them.
    pub personal_fields: Vec<String>,
    /// Their orders, newest first, the personal fields opened.
    pub orders: Vec<OrderView>,
    /// The events that name them: each order's `OrderPlaced` (its address opened) and
    /// their erasures, in envelopes.
    pub events: Vec<serde_json::Value>,
}

/// What an erasure did.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureBody {
    /// The erasure, as `PersonalDataErased` records it.
    pub erasure_id: String,
    /// Whose.
    pub customer_id: CustomerId,
    /// `ERASED`.
    pub status: String,
    /// The orders whose personal fields now read `[erased]`.
    pub orders: Vec<String>,
    /// Whether a key was there to delete (false when an earlier erasure had).
    pub key_deleted: bool,
}

fn customer_of(id: &str) -> Result<CustomerId, ApiError> {
    CustomerId::parse(id).map_err(|e| ApiError::invalid_field("invalid_customer_id", "id", e))
}

impl From<EraseError> for ApiError {
    fn from(error: EraseError) -> Self {
        match error {
            EraseError::InFlight(orders) => Self::new(
                StatusCode::CONFLICT,
                "orders_in_flight",
                format!(
                    "orders not yet delivered or cancelled need their addresses; erase once they are: {}",
                    orders
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            EraseError::Refused(refused) => Self::invalid_field("invalid_reason", "reason", refused),
            EraseError::Store(e) => Self::from(e),
            EraseError::Load(e) => Self::from(e),
        }
    }
}

/// `GET /customers/{id}/personal-data`.
pub async fn get_personal_data<P: Stores>(
    State(api): State<Arc<Api<P>>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let customer = customer_of(&id)?;
    authorize(&principal, Action::PersonalData { of: &customer }).into_result()?;
    let held = api.personal.held(&api.views, &api.commands, &customer).await?;
    tracing::info!(customer_id = %customer, actor = %principal.actor(), "personal data read");
    Ok(Json(PersonalDataBody {
        customer_id: held.customer_id,
        key_held: held.key_held,
        personal_fields: held.personal_fields.iter().map(|f| (*f).to_owned()).collect(),
        orders: held.orders,
        events: held.events,
    })
    .into_response())
}

/// `DELETE /customers/{id}/personal-data?reason=…`.
pub async fn erase_personal_data<P: Stores>(
    State(api): State<Arc<Api<P>>>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let customer = customer_of(&id)?;
    authorize(&principal, Action::PersonalData { of: &customer }).into_result()?;
    let reason = params
        .get("reason")
        .map(|r| r.trim().to_owned())
        .ok_or_else(|| ApiError::invalid_field("missing_reason", "reason", "required"))?;
    let metadata = request_metadata(&headers, &principal);
    let erased = api
        .personal
        .erase(&api.views, &api.commands, &customer, &reason, &metadata)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ErasureBody {
            erasure_id: erased.erasure_id,
            customer_id: customer,
            status: "ERASED".into(),
            orders: erased.orders.iter().map(ToString::to_string).collect(),
            key_deleted: erased.key_deleted,
        }),
    )
        .into_response())
}
