//! The catalog's routes. Browsing (`GET /products`) is for everyone signed in; the
//! rest is for operators: a product with its counters, its audit trail, listing and
//! repricing, receiving and writing off stock. Every change is an event on the
//! product's stream, committed with the counters it moves.

use std::sync::Arc;

use crate::extract::Path;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use orderflow_app::stock::Applied;
use orderflow_app::{Catalog, CommandError, Product, fingerprint, scoped_key};
use orderflow_domain::product::{MAX_STOCK_DELTA, MAX_TEXT, ProductDetails, ProductError, ProductEvent};
use orderflow_domain::{Currency, Money, Sku};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::extract::{JsonBody, request_metadata};
use crate::paging::{self, MAX_PAGE, Params, limit, list};
use crate::{Action, Api, ApiError, Principal, Stores, authorize};

/// A product as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "Product")]
pub struct ProductBody {
    /// Its SKU.
    sku: Sku,
    /// Its name.
    name: String,
    /// Its price now.
    price: Money,
    /// What it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// Units that can be reserved.
    available: u64,
    /// Units reserved by orders not yet out for delivery.
    reserved: u64,
    /// Units gone out for delivery.
    sold: u64,
}

/// A product as everyone signed in sees it in the catalog.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogItem {
    /// Its SKU.
    sku: Sku,
    /// Its name.
    name: String,
    /// Its price now.
    price: Money,
    /// Units that can be ordered now.
    available: u64,
}

impl From<Product> for ProductBody {
    fn from(p: Product) -> Self {
        Self {
            price: p.price(),
            sku: p.sku,
            name: p.name,
            description: p.description,
            available: p.available,
            reserved: p.reserved,
            sold: p.sold,
        }
    }
}

/// `PUT /products/{sku}` body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DescribeRequest {
    /// 1 to 200 characters.
    #[schemars(with = "String", required, length(min = 1, max = 200), regex(pattern = orderflow_domain::PLAIN_TEXT))]
    name: Option<String>,
    /// The price of one unit, for orders placed from now on.
    #[schemars(with = "PriceRequest", required)]
    price: Option<serde_json::Value>,
    /// At most 500 characters; blank or absent for none.
    #[serde(default)]
    #[schemars(length(max = 500), regex(pattern = orderflow_domain::PLAIN_TEXT_OR_BLANK))]
    description: Option<String>,
}

/// A price.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(rename = "Price")]
struct PriceRequest {
    /// Minor units (cents), above 0.
    #[schemars(range(min = 1, max = u64::MAX))]
    #[serde(deserialize_with = "orderflow_domain::whole::u64")]
    amount: u64,
    /// An ISO 4217 code.
    #[schemars(with = "orderflow_domain::Currency")]
    currency: String,
}

fn text(
    field: &'static str,
    code: &'static str,
    value: Option<String>,
    max: usize,
) -> Result<String, ApiError> {
    let value = value.map(|v| v.trim().to_owned()).unwrap_or_default();
    if value.is_empty() || value.chars().count() > max || !orderflow_domain::is_plain_text(&value) {
        return Err(ApiError::invalid_field(
            code,
            field,
            format!("1 to {max} characters, without control or bidirectional-override characters"),
        ));
    }
    Ok(value)
}

impl DescribeRequest {
    fn parse(self) -> Result<ProductDetails, ApiError> {
        let name = text("name", "invalid_name", self.name, 200)?;
        let bad_price = || {
            ApiError::invalid_field(
                "invalid_price",
                "price",
                "{\"amount\": a whole number of minor units above 0, \"currency\": an ISO 4217 code}",
            )
        };
        let price: PriceRequest =
            serde_json::from_value(self.price.ok_or_else(bad_price)?).map_err(|_| bad_price())?;
        let currency = Currency::parse(&price.currency).map_err(|_| bad_price())?;
        if price.amount == 0 {
            return Err(bad_price());
        }
        let description = match self.description {
            None => None,
            Some(d) if d.trim().is_empty() => None,
            Some(d) => Some(text("description", "invalid_description", Some(d), MAX_TEXT)?),
        };
        Ok(ProductDetails {
            name,
            price: Money::new(price.amount, currency),
            description,
        })
    }
}

/// `POST /products/{sku}/stock` body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct StockRequest {
    /// Units: positive receives, negative writes off; never 0.
    #[schemars(with = "i64", required, range(min = -1_000_000, max = 1_000_000), extend("not" = {"const": 0}))]
    delta: Option<serde_json::Value>,
    /// Why, for the audit trail: 1 to 500 characters.
    #[schemars(with = "String", required, length(min = 1, max = 500), regex(pattern = orderflow_domain::PLAIN_TEXT))]
    reason: Option<String>,
}

impl StockRequest {
    fn parse(self) -> Result<(i64, String), ApiError> {
        let delta = self
            .delta
            .as_ref()
            .and_then(orderflow_domain::whole::as_i64)
            .filter(|d| *d != 0 && d.unsigned_abs() <= MAX_STOCK_DELTA)
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "invalid_delta",
                    "delta",
                    format!(
                        "a non-zero whole number of units, at most {MAX_STOCK_DELTA} either way (positive receives, negative writes off)"
                    ),
                )
            })?;
        Ok((delta, text("reason", "invalid_reason", self.reason, MAX_TEXT)?))
    }
}

fn sku(raw: &str) -> Result<Sku, ApiError> {
    Sku::parse(raw).map_err(|e| ApiError::invalid_field("invalid_sku", "sku", e))
}

fn product_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "product_not_found", "no such product")
}

impl From<CommandError<ProductError>> for ApiError {
    fn from(error: CommandError<ProductError>) -> Self {
        match error {
            CommandError::Domain(ProductError::NotListed) => product_not_found(),
            CommandError::Domain(e @ ProductError::InvalidDelta) => {
                Self::invalid("invalid_delta", e.to_string())
            }
            CommandError::VersionMismatch { .. } | CommandError::Contention { .. } => Self::new(
                StatusCode::CONFLICT,
                "concurrent_change",
                "the product kept changing concurrently; retry",
            ),
            CommandError::Rejected(e) => Self::invalid("invalid_product", e.to_string()),
            CommandError::Load(e) => Self::from(e),
            CommandError::Store(e) => Self::unavailable(&e),
        }
    }
}

impl<P: Stores> Api<P> {
    /// The product now (strongly consistent), or a 404.
    async fn product(&self, sku: &Sku) -> Result<ProductBody, ApiError> {
        self.catalog
            .products(std::slice::from_ref(sku))
            .await?
            .remove(sku)
            .map(ProductBody::from)
            .ok_or_else(product_not_found)
    }
}

pub(crate) async fn get_product<P: Stores>(
    State(api): State<Arc<Api<P>>>,
    principal: Principal,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&principal, Action::Operate).into_result()?;
    Ok(Json(api.product(&sku(&raw)?).await?).into_response())
}

pub(crate) async fn put_product<P: Stores>(
    State(api): State<Arc<Api<P>>>,
    principal: Principal,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: JsonBody<DescribeRequest>,
) -> Result<Response, ApiError> {
    authorize(&principal, Action::Operate).into_result()?;
    let sku = sku(&raw)?;
    let details = body.value.parse()?;
    let metadata = request_metadata(&headers, &principal);
    let applied = api
        .catalog_changes
        .describe(&sku, details, 0, "", &metadata)
        .await?;
    let listed = match applied {
        Applied::Done(events) => {
            let listed = events.iter().any(|e| matches!(e.data, ProductEvent::Listed(_)));
            if !events.is_empty() {
                tracing::info!(%sku, actor = %metadata.actor, listed, "product described");
            }
            listed
        }
        // A listing moves no counter that can be short.
        Applied::Refused { .. } => return Err(product_not_found()),
    };
    let status = if listed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = (status, Json(api.product(&sku).await?)).into_response();
    if listed && let Ok(location) = HeaderValue::from_str(&format!("/products/{sku}")) {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, location);
    }
    Ok(response)
}

/// What `POST /products/{sku}/stock` answers, stored whole for idempotent replays.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stocked {
    product: ProductBody,
}

pub(crate) async fn adjust_stock<P: Stores>(
    State(api): State<Arc<Api<P>>>,
    principal: Principal,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: JsonBody<StockRequest>,
) -> Result<Response, ApiError> {
    authorize(&principal, Action::Operate).into_result()?;
    let key = crate::extract::idempotency_key(&headers, "a retry moves no stock twice")?;
    let sku = sku(&raw)?;
    let (delta, reason) = body.value.parse()?;
    let metadata = request_metadata(&headers, &principal);
    // Keys of stock changes live apart from the same principal's order keys.
    let scoped = scoped_key(&format!("{}/stock", principal.actor()), key.as_str());
    let request = json!({"sku": sku, "delta": delta, "reason": reason}).to_string();
    // The key is claimed with the change itself: a run after the change committed (its
    // answer lost, its lease taken over, its key released) moves nothing again.
    let once = api.idempotency.once(&scoped);
    let outcome = api
        .idempotency
        .run(&scoped, &fingerprint(request.as_bytes()), || async {
            match api
                .catalog_changes
                .adjust(&sku, delta, &reason, &metadata, Some(&once))
                .await?
            {
                Applied::Done(_) => {
                    tracing::info!(%sku, delta, actor = %metadata.actor, "stock adjusted");
                    Ok(Stocked {
                        product: api.product(&sku).await?,
                    })
                }
                Applied::Refused { unknown: true, .. } => Err(product_not_found()),
                Applied::Refused { unknown: false, .. } => {
                    let available = api.product(&sku).await.map(|p| p.available).unwrap_or(0);
                    Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "insufficient_stock",
                        format!(
                            "delta: writing off {} would take available ({available}) below zero",
                            delta.unsigned_abs()
                        ),
                    ))
                }
            }
        })
        .await?;
    let mut response = Json(outcome.response.product).into_response();
    if outcome.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Where a product's audit trail continues.
#[derive(Debug, Serialize, Deserialize)]
struct ProductEventsCursor {
    #[serde(rename = "s")]
    sku: Sku,
    #[serde(rename = "v")]
    after_version: u64,
}

pub(crate) async fn get_product_events<P: Stores>(
    State(api): State<Arc<Api<P>>>,
    principal: Principal,
    Path(raw): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    authorize(&principal, Action::Operate).into_result()?;
    let sku = sku(&raw)?;
    let limit = limit(&params, MAX_PAGE)?;
    let (cursors, position) = api.access.cursors.open::<ProductEventsCursor>(&params).await?;
    let after = match position {
        Some(c) if c.sku == sku => c.after_version,
        Some(_) => return Err(paging::foreign_cursor()),
        None => 0,
    };
    let mut events = api
        .catalog_changes
        .repository()
        .history_page::<orderflow_domain::product::Product>(sku.as_str(), after, usize::from(limit) + 1)
        .await?;
    if after == 0 && events.is_empty() {
        return Err(product_not_found());
    }
    let more = events.len() > usize::from(limit);
    events.truncate(usize::from(limit));
    let next = events.last().filter(|_| more).map(|last| {
        cursors.seal(&ProductEventsCursor {
            sku: sku.clone(),
            after_version: last.version,
        })
    });
    Ok(Json(list("events", json!(events), next)).into_response())
}

/// Where the catalog continues.
#[derive(Debug, Serialize, Deserialize)]
struct ProductsCursor {
    #[serde(rename = "a")]
    after: Sku,
}

pub(crate) async fn list_products<P: Stores>(
    State(api): State<Arc<Api<P>>>,
    principal: Principal,
    params: Params,
) -> Result<Response, ApiError> {
    authorize(&principal, Action::BrowseCatalog).into_result()?;
    let limit = limit(&params, MAX_PAGE)?;
    let (cursors, after) = api.access.cursors.open::<ProductsCursor>(&params).await?;
    let (page, next) = api
        .catalog
        .page(usize::from(limit), after.as_ref().map(|c| &c.after))
        .await?;
    let products: Vec<_> = page
        .into_iter()
        .map(|p| CatalogItem {
            price: p.price(),
            sku: p.sku,
            name: p.name,
            available: p.available,
        })
        .collect();
    let next = next.map(|after| cursors.seal(&ProductsCursor { after }));
    Ok(Json(list("products", json!(products), next)).into_response())
}
