//! The routes table: every route with its handler and its description in the contract,
//! from which both the router and the OpenAPI description are built.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::Method;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter, on};
use orderflow_domain::order::view::OrderView;
use orderflow_domain::{CustomerId, OrderId};

use crate::extract::{CancelRequest, PlaceOrderRequest, StatusRequest};
use crate::openapi::{self, Answer, Describe, Operation, Param};
use crate::orders::{advance_order, cancel_order, get_events, get_order, list_customer_orders, place_order};
use crate::{Api, ApiError, Stores, products};

/// The router, with every route of the API: [`operations`], each with its handler.
pub fn router<P: Stores>(api: Arc<Api<P>>) -> Router {
    operations::<P, openapi::Routed>()
        .into_iter()
        .fold(Router::new(), |router, (operation, handler)| {
            router.route(operation.path, handler)
        })
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take this method",
            )
        })
        .layer(axum::middleware::from_fn(timed))
        .with_state(api)
}

/// The API's OpenAPI description: the same table as the router's.
#[must_use]
pub fn openapi() -> serde_json::Value {
    let operations: Vec<Operation<openapi::Documented>> =
        operations::<crate::InMemory, openapi::Documented>()
            .into_iter()
            .map(|(o, _)| o)
            .collect();
    openapi::document(&operations)
}

type Handler<P> = MethodRouter<Arc<Api<P>>>;

/// An operation with its handler, routed for the operation's method only.
fn at<P: Stores, D: Describe, H: axum::handler::Handler<T, Arc<Api<P>>>, T: 'static>(
    operation: Operation<D>,
    handler: H,
) -> (Operation<D>, Handler<P>) {
    let filter = match operation.method {
        Method::POST => MethodFilter::POST,
        Method::PUT => MethodFilter::PUT,
        Method::DELETE => MethodFilter::DELETE,
        _ => MethodFilter::GET,
    };
    (operation, on(filter, handler))
}

const ORDER_ID: &str = "The order (a UUID).";

/// Where a placed order leads.
const ORDER_LINKS: &[(&str, &str, &str, &str)] = &[
    ("GetOrder", "getOrder", "id", "$response.body#/orderId"),
    (
        "GetOrderEvents",
        "getOrderEvents",
        "id",
        "$response.body#/orderId",
    ),
    ("CancelOrder", "cancelOrder", "id", "$response.body#/orderId"),
    ("AdvanceOrder", "advanceOrder", "id", "$response.body#/orderId"),
    (
        "ListCustomerOrders",
        "listCustomerOrders",
        "id",
        "$response.body#/customerId",
    ),
];

/// Where a listed product leads.
const PRODUCT_LINKS: &[(&str, &str, &str, &str)] = &[
    ("GetProduct", "getProduct", "sku", "$response.body#/sku"),
    ("AdjustStock", "adjustStock", "sku", "$response.body#/sku"),
    (
        "GetProductEvents",
        "getProductEvents",
        "sku",
        "$response.body#/sku",
    ),
];
const CURSOR: &str = "`nextCursor` of the previous page; absent for the first.";
const REQUEST_IDS: &str = "Echoed into the events' metadata; printable ASCII, at most 128 characters.";

fn paging<D: Describe>(limit: &'static str) -> [Param<D>; 2] {
    [
        openapi::query::<D, openapi::PageLimit>("limit", limit),
        openapi::query::<D, openapi::PageCursor>("cursor", CURSOR),
    ]
}

fn tracing_headers<D: Describe>() -> [Param<D>; 2] {
    [
        openapi::header::<D, String>("X-Request-Id", false, REQUEST_IDS),
        openapi::header::<D, String>("X-Correlation-Id", false, REQUEST_IDS),
    ]
}

fn if_match_param<D: Describe>() -> Param<D> {
    Param {
        schema: D::written(
            |_| schemars::json_schema!({"type": "string", "pattern": "^(W/)?\"?[0-9]{1,19}\"?$", "examples": ["\"3\""]}),
        ),
        ..openapi::header::<D, String>(
            "If-Match",
            false,
            "The order's version (its ETag); the change is refused with 412 when the order has moved on.",
        )
    }
}

/// Every operation of the API with its handler: the router and the OpenAPI description
/// are both built from this.
#[allow(clippy::too_many_lines, reason = "one table, one entry per route")]
pub fn operations<P: Stores, D: Describe>() -> Vec<(Operation<D>, Handler<P>)> {
    use crate::openapi::{Audience::*, answer, header, path, query};
    use crate::openapi::{CatalogPage, EventPage, OrderPage};
    let order_id = || path::<D, OrderId>("id", ORDER_ID);
    let sku = || path::<D, orderflow_domain::Sku>("sku", "The product's SKU.");
    let order_answer = |status, description| answer::<D, OrderView>(status, description, &["ETag"]);
    vec![
        at(
            Operation {
                method: Method::POST,
                path: "/orders",
                id: "placeOrder",
                summary: "Place an order, priced from the catalog; the same Idempotency-Key and body again answer the same order.",
                audience: Everyone,
                params: [
                    vec![header::<D, orderflow_domain::IdempotencyKey>(
                        "Idempotency-Key",
                        true,
                        "Makes the request safe to retry: one key, one order.",
                    )],
                    tracing_headers().to_vec(),
                ]
                .concat(),
                body: Some(D::schema::<PlaceOrderRequest>()),
                example: Some(D::example(|| {
                    serde_json::json!({
                        "items": [{"sku": "SKU-1", "quantity": 2}, {"sku": "SKU-2", "quantity": 1}],
                        "paymentToken": "tok_visa",
                        "shippingAddress": {"name": "Ada Lovelace", "line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"},
                    })
                })),
                answers: vec![Answer {
                    links: ORDER_LINKS,
                    ..answer::<D, OrderView>(
                        201,
                        "Placed (or, with Idempotent-Replayed, placed by an earlier request with this key).",
                        &["ETag", "Location", "Idempotent-Replayed"],
                    )
                }],
                errors: &[400, 403, 409, 413, 422],
            },
            place_order::<P>,
        ),
        at(
            Operation {
                method: Method::GET,
                path: "/orders/{id}",
                id: "getOrder",
                summary: "An order: from the read model, or folded from its events now (`consistent`) or as it stood at a time (`at`).",
                audience: Everyone,
                params: vec![
                    order_id(),
                    query::<D, bool>("consistent", "`true`: fold the order from the event store now."),
                    query::<D, orderflow_domain::Timestamp>(
                        "at",
                        "The order as it stood at this RFC 3339 time.",
                    ),
                ],
                body: None,
                example: None,
                answers: vec![answer::<D, OrderView>(
                    200,
                    "The order.",
                    &["ETag", "orderflow-source"],
                )],
                errors: &[400, 404],
            },
            get_order::<P>,
        ),
        at(
            Operation {
                method: Method::GET,
                path: "/orders/{id}/events",
                id: "getOrderEvents",
                summary: "An order's audit trail: every event in order, in envelopes, a page at a time.",
                audience: Everyone,
                params: [
                    vec![order_id()],
                    paging("Events per page: 1 to 100 (default 100).").to_vec(),
                ]
                .concat(),
                body: None,
                example: None,
                answers: vec![answer::<D, EventPage>(200, "A page of events.", &[])],
                errors: &[400, 404],
            },
            get_events::<P>,
        ),
        at(
            Operation {
                method: Method::POST,
                path: "/orders/{id}/cancel",
                id: "cancelOrder",
                summary: "Cancel an order with a reason; stock, payment and shipment are compensated.",
                audience: Everyone,
                params: [vec![order_id(), if_match_param()], tracing_headers().to_vec()].concat(),
                body: Some(D::schema::<CancelRequest>()),
                example: Some(D::example(
                    || serde_json::json!({"reason": "ordered the wrong size"}),
                )),
                answers: vec![order_answer(200, "Cancelled.")],
                errors: &[400, 404, 409, 412, 413],
            },
            cancel_order::<P>,
        ),
        at(
            Operation {
                method: Method::POST,
                path: "/orders/{id}/status",
                id: "advanceOrder",
                summary: "Move a confirmed order one fulfilment step on.",
                audience: Operators,
                params: [vec![order_id(), if_match_param()], tracing_headers().to_vec()].concat(),
                body: Some(D::schema::<StatusRequest>()),
                example: Some(D::example(|| serde_json::json!({"status": "PREPARING"}))),
                answers: vec![order_answer(200, "Advanced.")],
                errors: &[400, 404, 409, 412, 413],
            },
            advance_order::<P>,
        ),
        at(
            Operation {
                method: Method::GET,
                path: "/customers/{id}/orders",
                id: "listCustomerOrders",
                summary: "A customer's orders, newest first, a page at a time.",
                audience: Everyone,
                params: [
                    vec![path::<D, CustomerId>("id", "The customer.")],
                    paging("Orders per page: 1 to 100 (default 20).").to_vec(),
                ]
                .concat(),
                body: None,
                example: None,
                answers: vec![answer::<D, OrderPage>(
                    200,
                    "A page of orders.",
                    &["orderflow-source"],
                )],
                errors: &[400, 403],
            },
            list_customer_orders::<P>,
        ),
        at(
            Operation {
                method: Method::GET,
                path: "/customers/{id}/personal-data",
                id: "getPersonalData",
                summary: "Everything held about a customer: their orders with the personal fields opened, and the events that name them (the customer themselves, or an operator).",
                audience: Everyone,
                params: vec![path::<D, CustomerId>("id", "The customer.")],
                body: None,
                example: None,
                answers: vec![answer::<D, crate::personal::PersonalDataBody>(
                    200,
                    "What is held.",
                    &[],
                )],
                errors: &[400, 403],
            },
            crate::personal::get_personal_data::<P>,
        ),
        at(
            Operation {
                method: Method::DELETE,
                path: "/customers/{id}/personal-data",
                id: "erasePersonalData",
                summary: "Erase a customer's personal data by deleting their data key: every personal field of their orders reads `[erased]` from then on; totals, statuses and the audit trail stay. Refused with 409 while an order is neither delivered nor cancelled.",
                audience: Everyone,
                params: [
                    vec![
                        path::<D, CustomerId>("id", "The customer."),
                        Param {
                            required: true,
                            schema: D::written(|_| {
                                schemars::json_schema!({"type": "string", "minLength": 1, "maxLength": 500, "pattern": orderflow_domain::PLAIN_TEXT})
                            }),
                            ..query::<D, String>(
                                "reason",
                                "Why (1 to 500 characters, recorded in the audit trail: no personal data).",
                            )
                        },
                    ],
                    tracing_headers().to_vec(),
                ]
                .concat(),
                body: None,
                example: None,
                answers: vec![answer::<D, crate::personal::ErasureBody>(
                    202,
                    "Erased: the key is deleted and the erasure recorded.",
                    &[],
                )],
                errors: &[400, 403, 409],
            },
            crate::personal::erase_personal_data::<P>,
        ),
        at(
            Operation {
                method: Method::GET,
                path: "/products",
                id: "listProducts",
                summary: "The catalog, a page at a time.",
                audience: Everyone,
                params: paging("Products per page: 1 to 100 (default 100).").to_vec(),
                body: None,
                example: None,
                answers: vec![answer::<D, CatalogPage>(200, "A page of products.", &[])],
                errors: &[400],
            },
            products::list_products::<P>,
        ),
        at(
            Operation {
                method: Method::GET,
                path: "/products/{sku}",
                id: "getProduct",
                summary: "A product with its stock counters.",
                audience: Operators,
                params: vec![sku()],
                body: None,
                example: None,
                answers: vec![answer::<D, products::ProductBody>(200, "The product.", &[])],
                errors: &[400, 404],
            },
            products::get_product::<P>,
        ),
        at(
            Operation {
                method: Method::PUT,
                path: "/products/{sku}",
                id: "putProduct",
                summary: "List a product, or change its name, price or description (prices apply to orders placed afterwards).",
                audience: Operators,
                params: [vec![sku()], tracing_headers().to_vec()].concat(),
                body: Some(D::schema::<products::DescribeRequest>()),
                example: Some(D::example(
                    || serde_json::json!({"name": "Milk jug, 600 ml", "price": {"amount": 1850, "currency": "USD"}, "description": "Stainless steel"}),
                )),
                answers: vec![
                    Answer {
                        links: PRODUCT_LINKS,
                        ..answer::<D, products::ProductBody>(200, "Updated (or already so).", &[])
                    },
                    Answer {
                        links: PRODUCT_LINKS,
                        ..answer::<D, products::ProductBody>(201, "Listed.", &["Location"])
                    },
                ],
                errors: &[400, 409, 413],
            },
            products::put_product::<P>,
        ),
        at(
            Operation {
                method: Method::POST,
                path: "/products/{sku}/stock",
                id: "adjustStock",
                summary: "Receive stock (a positive delta) or write it off (a negative one), with a reason.",
                audience: Operators,
                params: [
                    vec![
                        sku(),
                        header::<D, orderflow_domain::IdempotencyKey>(
                            "Idempotency-Key",
                            true,
                            "Makes the request safe to retry: one key, one stock change.",
                        ),
                    ],
                    tracing_headers().to_vec(),
                ]
                .concat(),
                body: Some(D::schema::<products::StockRequest>()),
                example: Some(D::example(
                    || serde_json::json!({"delta": 24, "reason": "received PO-1042"}),
                )),
                answers: vec![answer::<D, products::ProductBody>(
                    200,
                    "Adjusted (or, with Idempotent-Replayed, adjusted by an earlier request with this key).",
                    &["Idempotent-Replayed"],
                )],
                errors: &[400, 404, 409, 413, 422],
            },
            products::adjust_stock::<P>,
        ),
        at(
            Operation {
                method: Method::GET,
                path: "/products/{sku}/events",
                id: "getProductEvents",
                summary: "A product's audit trail: listings, repricings, receipts and write-offs with their actors.",
                audience: Operators,
                params: [
                    vec![sku()],
                    paging("Events per page: 1 to 100 (default 100).").to_vec(),
                ]
                .concat(),
                body: None,
                example: None,
                answers: vec![answer::<D, EventPage>(200, "A page of events.", &[])],
                errors: &[400, 404],
            },
            products::get_product_events::<P>,
        ),
    ]
}

/// Every request's duration, as a metric.
async fn timed(request: Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    orderflow_lambda::metrics::handler_duration(started.elapsed());
    response
}
