//! The order API through its router, against DynamoDB Local tables created from
//! `template.yaml`: shapes, idempotency, the principal, and every bad input answered
//! with the right 4xx JSON error and nothing written.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use order_api::{Api, AuthMode, router};
use orderflow_adapters::catalog::{DynamoCatalog, Product};
use orderflow_adapters::payment::DynamoVault;
use orderflow_adapters::{DynamoEventStore, DynamoIdempotencyStore};
use orderflow_app::{CommandService, Repository, SystemClock};
use orderflow_domain::{Currency, Sku};
use orderflow_provision::local;
use serde_json::{Value, json};
use tower::ServiceExt;

struct App {
    router: Router,
    dynamodb: aws_sdk_dynamodb::Client,
    events_table: String,
    vault_table: String,
}

async fn app(auth: AuthMode) -> App {
    let dynamodb = local::dynamodb_client().await.unwrap();
    let tables = local::fresh_tables(
        &dynamodb,
        &[
            "EventStoreTable",
            "SnapshotTable",
            "IdempotencyTable",
            "CatalogTable",
            "PaymentVaultTable",
            "OrderViewTable",
        ],
    )
    .await
    .unwrap();
    let catalog = DynamoCatalog::new(dynamodb.clone(), &tables["CatalogTable"]);
    for (sku, price, stock) in [("SKU-1", 1299, 10), ("SKU-2", 500, 3)] {
        catalog
            .put(&Product {
                sku: Sku::parse(sku).unwrap(),
                name: format!("Product {sku}"),
                price_amount: price,
                currency: Currency::parse("USD").unwrap(),
                available: stock,
                reserved: 0,
                sold: 0,
            })
            .await
            .unwrap();
    }
    let store = DynamoEventStore::new(
        dynamodb.clone(),
        &tables["EventStoreTable"],
        &tables["SnapshotTable"],
    );
    let api = Api::new(
        CommandService::new(Repository::new(store, 50), SystemClock, 5),
        Api::idempotency(DynamoIdempotencyStore::new(
            dynamodb.clone(),
            &tables["IdempotencyTable"],
        )),
        catalog,
        DynamoVault::new(dynamodb.clone(), &tables["PaymentVaultTable"]),
        orderflow_adapters::read_model::DynamoOrderViews::new(dynamodb.clone(), &tables["OrderViewTable"]),
        auth,
    );
    App {
        router: router(Arc::new(api)),
        dynamodb,
        events_table: tables["EventStoreTable"].clone(),
        vault_table: tables["PaymentVaultTable"].clone(),
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl App {
    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {bytes:?}"));
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn call(&self, method: &str, uri: &str, headers: &[(&str, &str)], body: Option<String>) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("x-orderflow-actor", "tester");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = body.map_or_else(Body::empty, Body::from);
        self.send(request.body(body).unwrap()).await
    }

    async fn count(&self, table: &str) -> i32 {
        self.dynamodb
            .scan()
            .table_name(table)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .send()
            .await
            .unwrap()
            .count
    }

    async fn place(&self, body: &Value, headers: &[(&str, &str)]) -> Reply {
        self.call("POST", "/orders", headers, Some(body.to_string()))
            .await
    }
}

fn order_body() -> Value {
    json!({
        "customerId": "c-1",
        "items": [{"sku": "SKU-1", "quantity": 2, "unitPrice": 1}, {"sku": "SKU-2", "quantity": 1}],
        "paymentToken": "tok_visa",
        "shippingAddress": {"name": "Ada", "line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"}
    })
}

#[tokio::test]
async fn placing_an_order_prices_it_from_the_catalog_and_records_the_actor() {
    let app = app(AuthMode::Local).await;
    let placed = app.place(&order_body(), &[("x-correlation-id", "corr-42")]).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
    let order = &placed.body;
    let id = order["orderId"].as_str().unwrap();
    assert_eq!(placed.headers["location"], format!("/orders/{id}").as_str());
    assert_eq!(placed.headers["etag"], "\"1\"");
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["version"], 1);
    assert_eq!(
        order["items"][0]["unitPrice"],
        json!({"amount": 1299, "currency": "USD"}),
        "the client's price is ignored"
    );
    assert_eq!(
        order["items"][0]["lineTotal"],
        json!({"amount": 2598, "currency": "USD"})
    );
    assert_eq!(order["total"], json!({"amount": 3098, "currency": "USD"}));
    assert_eq!(order["payment"], Value::Null, "no answer from payment yet");
    assert!(order["placedAt"].is_string() && order["updatedAt"].is_string());
    assert!(
        !order.to_string().contains("tok_visa"),
        "the token is never returned"
    );

    let read = app.call("GET", &format!("/orders/{id}"), &[], None).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, placed.body);

    let trail = app.call("GET", &format!("/orders/{id}/events"), &[], None).await;
    let events = trail.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["eventType"], "OrderPlaced");
    assert_eq!(events[0]["actor"], "local:tester");
    assert_eq!(events[0]["correlationId"], "corr-42");
    assert_eq!(events[0]["data"]["payment"], "tok_****visa");
}

#[tokio::test]
async fn the_same_key_and_body_replays_and_another_body_is_refused() {
    let app = app(AuthMode::Local).await;
    let first = app.place(&order_body(), &[("idempotency-key", "k-1")]).await;
    assert_eq!(first.status, StatusCode::CREATED);
    // The same request again, with its keys in another order: the first response.
    let reordered: Value = serde_json::from_str(&order_body().to_string()).unwrap();
    let again = app.place(&reordered, &[("idempotency-key", "k-1")]).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body["orderId"], first.body["orderId"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");

    let mut other = order_body();
    other["items"][0]["quantity"] = json!(3);
    let reused = app.place(&other, &[("idempotency-key", "k-1")]).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.body["error"]["code"], "idempotency_key_reused");
    assert_eq!(app.count(&app.events_table).await, 1, "one order was placed");
}

#[tokio::test]
async fn bad_input_is_a_json_4xx_and_writes_nothing() {
    let app = app(AuthMode::Local).await;
    let with = |path: &str, value: Value| {
        let mut body = order_body();
        let mut target = &mut body;
        let parts: Vec<_> = path.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            target = match part.parse::<usize>() {
                Ok(i) => &mut target[i],
                Err(_) => &mut target[*part],
            };
        }
        target[*parts.last().unwrap()] = value;
        body.to_string()
    };
    let many_lines = {
        let mut body = order_body();
        body["items"] = (0..100)
            .map(|i| json!({"sku": format!("SKU-{i}"), "quantity": 1}))
            .collect();
        body.to_string()
    };
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            "malformed JSON",
            "{\"customerId\": ".into(),
            StatusCode::BAD_REQUEST,
            "malformed_request",
        ),
        (
            "missing items",
            json!({"customerId": "c-1"}).to_string(),
            StatusCode::BAD_REQUEST,
            "malformed_request",
        ),
        (
            "unknown SKU",
            with("items.0.sku", json!("SKU-NOPE")),
            StatusCode::BAD_REQUEST,
            "unknown_sku",
        ),
        (
            "zero quantity",
            with("items.0.quantity", json!(0)),
            StatusCode::BAD_REQUEST,
            "invalid_order",
        ),
        (
            "huge quantity",
            with("items.0.quantity", json!(1001)),
            StatusCode::BAD_REQUEST,
            "invalid_order",
        ),
        (
            "negative quantity",
            with("items.0.quantity", json!(-1)),
            StatusCode::BAD_REQUEST,
            "malformed_request",
        ),
        (
            "fractional quantity",
            with("items.0.quantity", json!(1.5)),
            StatusCode::BAD_REQUEST,
            "malformed_request",
        ),
        (
            "no lines",
            with("items", json!([])),
            StatusCode::BAD_REQUEST,
            "invalid_order",
        ),
        ("100 lines", many_lines, StatusCode::BAD_REQUEST, "invalid_order"),
        (
            "duplicate SKU",
            with("items.1.sku", json!("SKU-1")),
            StatusCode::BAD_REQUEST,
            "invalid_order",
        ),
        (
            "card number as token",
            with("paymentToken", json!("4242424242424242")),
            StatusCode::BAD_REQUEST,
            "invalid_order",
        ),
        (
            "bad country",
            with("shippingAddress.country", json!("USA")),
            StatusCode::BAD_REQUEST,
            "invalid_order",
        ),
        (
            "bad customer",
            with("customerId", json!("c 1")),
            StatusCode::BAD_REQUEST,
            "invalid_order",
        ),
        (
            "oversized body",
            format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (name, body, status, code) in cases {
        let reply = app.call("POST", "/orders", &[], Some(body)).await;
        assert_eq!(reply.status, status, "{name}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], code, "{name}");
        assert!(reply.body["error"]["message"].is_string(), "{name}");
    }
    let bad_key = app.place(&order_body(), &[("idempotency-key", "")]).await;
    assert_eq!(bad_key.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_key.body["error"]["code"], "invalid_idempotency_key");
    assert_eq!(app.count(&app.events_table).await, 0, "no event was written");
    assert_eq!(app.count(&app.vault_table).await, 0, "no token was kept");
}

#[tokio::test]
async fn unknown_orders_invalid_transitions_and_stale_versions() {
    let app = app(AuthMode::Local).await;
    let missing = app
        .call("GET", "/orders/0192f0a0-7c1e-7a3b-9c2d-1e2f3a4b5c6d", &[], None)
        .await;
    assert_eq!(
        (missing.status, missing.body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("order_not_found"))
    );
    let malformed = app.call("GET", "/orders/not-a-uuid", &[], None).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    let cancel_missing = app
        .call(
            "POST",
            "/orders/0192f0a0-7c1e-7a3b-9c2d-1e2f3a4b5c6d/cancel",
            &[],
            Some(json!({"reason": "x"}).to_string()),
        )
        .await;
    assert_eq!(cancel_missing.status, StatusCode::NOT_FOUND);

    let id = app.place(&order_body(), &[]).await.body["orderId"]
        .as_str()
        .unwrap()
        .to_owned();
    let skip = app
        .call(
            "POST",
            &format!("/orders/{id}/status"),
            &[],
            Some(json!({"status": "READY"}).to_string()),
        )
        .await;
    assert_eq!(
        (skip.status, skip.body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_transition"))
    );
    let nonsense = app
        .call(
            "POST",
            &format!("/orders/{id}/status"),
            &[],
            Some(json!({"status": "SHIPPED"}).to_string()),
        )
        .await;
    assert_eq!(nonsense.status, StatusCode::BAD_REQUEST);

    let cancel = |if_match: &'static str| {
        let uri = format!("/orders/{id}/cancel");
        let app = &app;
        async move {
            app.call(
                "POST",
                &uri,
                &[("if-match", if_match)],
                Some(json!({"reason": "changed my mind"}).to_string()),
            )
            .await
        }
    };
    let stale = cancel("\"5\"").await;
    assert_eq!(
        (stale.status, stale.body["error"]["code"].as_str()),
        (StatusCode::PRECONDITION_FAILED, Some("version_mismatch"))
    );
    let done = cancel("\"1\"").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body["status"], "CANCELLED");
    assert_eq!(done.body["cancellationReason"], "requested");
    assert_eq!(done.body["version"], 2);
    let twice = cancel("\"2\"").await;
    assert_eq!(
        (twice.status, twice.body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_transition"))
    );
    let bad_reason = app
        .call(
            "POST",
            &format!("/orders/{id}/cancel"),
            &[],
            Some(json!({"reason": ""}).to_string()),
        )
        .await;
    assert_eq!(bad_reason.status, StatusCode::BAD_REQUEST);
    let route = app.call("GET", "/nope", &[], None).await;
    assert_eq!(route.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn products_list_the_catalog() {
    let app = app(AuthMode::Local).await;
    let reply = app.call("GET", "/products", &[], None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body["products"][0],
        json!({"sku": "SKU-1", "name": "Product SKU-1", "price": {"amount": 1299, "currency": "USD"}, "available": 10})
    );
}

#[tokio::test]
async fn outside_local_mode_the_actor_is_the_jwt_subject_and_is_required() {
    let app = app(AuthMode::Jwt).await;
    let anonymous = app.place(&order_body(), &[]).await;
    assert_eq!(
        (anonymous.status, anonymous.body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
    );

    let context: aws_lambda_events::event::apigw::ApiGatewayV2httpRequestContext = serde_json::from_value(json!({
        "routeKey": "POST /orders", "accountId": "123", "stage": "$default", "requestId": "r-1",
        "apiId": "api", "domainName": "x", "domainPrefix": "x", "time": "t", "timeEpoch": 0,
        "http": {"method": "POST", "path": "/orders", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
        "authorizer": {"jwt": {"claims": {"sub": "user-7"}, "scopes": null}}
    }))
    .unwrap();
    let mut request = Request::builder()
        .method("POST")
        .uri("/orders")
        .body(Body::from(order_body().to_string()))
        .unwrap();
    request
        .extensions_mut()
        .insert(lambda_http::request::RequestContext::ApiGatewayV2(context));
    let placed = app.send(request).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
    let id = placed.body["orderId"].as_str().unwrap();
    let mut read = Request::builder()
        .uri(format!("/orders/{id}/events"))
        .body(Body::empty())
        .unwrap();
    read.extensions_mut()
        .insert(lambda_http::request::RequestContext::ApiGatewayV2(
            serde_json::from_value(
                json!({"authorizer": {"jwt": {"claims": {"sub": "user-7"}}}, "http": {"method": "GET"}}),
            )
            .unwrap(),
        ));
    let trail = app.send(read).await;
    assert_eq!(trail.body["events"][0]["actor"], "user-7");
}
