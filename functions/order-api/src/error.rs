//! Every failure the API can answer with, and the one place each internal error maps
//! to an HTTP status. Clients get `{"error": {"code", "message", "field"}}` (`field`, the
//! JSON path of the offending member of the body, or the parameter or header, when one
//! is to blame); internal detail (SDK errors, store names) goes to the log, never to the
//! client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use orderflow_app::placement::PlaceError;
use orderflow_app::{CommandError, IdempotencyError, IdempotentError, LoadError, StoreError};
use orderflow_domain::order::OrderError;
use serde_json::json;

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// Human-readable message, safe to show.
    pub message: String,
    /// Seconds after which a retry can succeed (`Retry-After`), for 429s.
    pub retry_after: Option<u64>,
    /// What is to blame: the JSON path of a body member (`shippingAddress.name`,
    /// `items[1].quantity`), or the name of a path or query parameter or header.
    pub field: Option<String>,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            field: None,
        }
    }

    /// A 400 blaming `field`: the message says `<field>: <problem>`.
    pub fn invalid_field(
        code: &'static str,
        field: impl Into<String>,
        problem: impl std::fmt::Display,
    ) -> Self {
        let field = field.into();
        Self {
            field: Some(field.clone()),
            ..Self::invalid(code, format!("{field}: {problem}"))
        }
    }

    /// A 429: too many requests; retry after `seconds`.
    #[must_use]
    pub fn too_many_requests(message: impl Into<String>, seconds: u64) -> Self {
        Self {
            retry_after: Some(seconds),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
        }
    }

    /// A 400.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A 404 for an order.
    #[must_use]
    pub fn order_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "order_not_found", "no such order")
    }

    /// A 503 for anything internal; the detail is logged here, not returned.
    pub fn unavailable(detail: &dyn std::error::Error) -> Self {
        tracing::error!(error = %error_chain(detail), "request failed on an internal error");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service is temporarily unavailable; retry with the same Idempotency-Key",
        )
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(field) = self.field {
            error["field"] = json!(field);
        }
        let body = json!({ "error": error });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}

impl From<OrderError> for ApiError {
    fn from(error: OrderError) -> Self {
        let (status, code) = match &error {
            OrderError::NotPlaced => return Self::order_not_found(),
            OrderError::AlreadyPlaced => (StatusCode::CONFLICT, "order_exists"),
            OrderError::InvalidTransition { .. } => (StatusCode::CONFLICT, "invalid_transition"),
            OrderError::ShipmentMissing => (StatusCode::CONFLICT, "shipment_missing"),
            OrderError::AmountMismatch { .. } => (StatusCode::CONFLICT, "amount_mismatch"),
            OrderError::NoLines
            | OrderError::TooManyLines(_)
            | OrderError::DuplicateSku(_)
            | OrderError::Money(_) => return Self::invalid_field("invalid_order", "items", error),
        };
        Self::new(status, code, error.to_string())
    }
}

impl From<CommandError<OrderError>> for ApiError {
    fn from(error: CommandError<OrderError>) -> Self {
        match error {
            CommandError::Domain(e) => e.into(),
            CommandError::VersionMismatch { expected, actual } => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "version_mismatch",
                format!("If-Match was {expected} but the order is at version {actual}"),
            ),
            CommandError::Contention { .. } => Self::new(
                StatusCode::CONFLICT,
                "concurrent_change",
                "the order kept changing concurrently; retry",
            ),
            CommandError::Rejected(e) => Self::invalid("invalid_order", e.to_string()),
            CommandError::Load(e) => Self::from(e),
            CommandError::Store(e) => Self::unavailable(&e),
        }
    }
}

impl From<PlaceError> for ApiError {
    fn from(error: PlaceError) -> Self {
        match error {
            PlaceError::UnknownSku(sku) => {
                Self::invalid("unknown_sku", format!("{sku} is not in the catalog"))
            }
            PlaceError::KeyReused => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request",
            ),
            PlaceError::Command(e) => e.into(),
            PlaceError::Load(e) => e.into(),
            PlaceError::Store(e) => e.into(),
        }
    }
}

impl From<LoadError> for ApiError {
    fn from(error: LoadError) -> Self {
        Self::unavailable(&error)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self::unavailable(&error)
    }
}

impl From<IdempotentError<Self>> for ApiError {
    fn from(error: IdempotentError<Self>) -> Self {
        match error {
            IdempotentError::Work(e) => e,
            IdempotentError::Key(IdempotencyError::KeyReused) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request",
            ),
            IdempotentError::Key(IdempotencyError::InProgress | IdempotencyError::ClaimLost) => Self::new(
                StatusCode::CONFLICT,
                "request_in_progress",
                "a request with this Idempotency-Key is being processed; retry shortly",
            ),
            IdempotentError::Key(IdempotencyError::Store(e)) => Self::unavailable(&e),
            IdempotentError::StoredResponse(e) => Self::unavailable(&e),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for ApiError {}
