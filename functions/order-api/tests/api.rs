//! The order API through its router, against DynamoDB Local tables created from
//! `template.yaml`: shapes, idempotency, the principal (from the request context API
//! Gateway's JWT authorizer hands Lambda), rate limits, signed cursors, and every bad
//! input answered with the right 4xx JSON error and nothing written.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use jiff::SignedDuration;
use order_api::paging::{CursorKey, Cursors};
use order_api::{Access, Api, router};
use orderflow_adapters::calls::{CallCounter, Calls};
use orderflow_adapters::catalog::DynamoCatalog;
use orderflow_adapters::config::{Roots, https_connector};
use orderflow_adapters::payment::DynamoVault;
use orderflow_adapters::secrets::SecretsManager;
use orderflow_adapters::{DynamoEventStore, DynamoIdempotencyStore};
use orderflow_app::{CommandService, Repository, SystemClock};
use orderflow_provision::faults::{Faults, dynamodb_client_with};
use orderflow_provision::local;
use serde_json::{Value, json};

mod common;

use common::{Reply, Who, context};

const C1: Who = Who::Customer("c-1");

struct App {
    router: Router,
    dynamodb: aws_sdk_dynamodb::Client,
    events_table: String,
    vault_table: String,
}

async fn app() -> App {
    app_limited(60).await
}

async fn app_limited(orders_per_minute: u64) -> App {
    let dynamodb = local::dynamodb_client().await.unwrap();
    app_with(
        orders_per_minute,
        dynamodb.clone(),
        dynamodb,
        SignedDuration::from_secs(30),
    )
    .await
}

/// The API with its event store and idempotency records reached through clients of
/// their own (to inject faults into one), and a lease of `lease`.
async fn app_with(
    orders_per_minute: u64,
    store_client: aws_sdk_dynamodb::Client,
    idempotency_client: aws_sdk_dynamodb::Client,
    lease: SignedDuration,
) -> App {
    let key = CursorKey::new(*b"a cursor key for the API tests").unwrap();
    app_over(
        orders_per_minute,
        store_client,
        idempotency_client,
        lease,
        key.into(),
    )
    .await
}

/// [`app_with`], its cursors signed with what `cursors` holds or reads.
async fn app_over(
    orders_per_minute: u64,
    store_client: aws_sdk_dynamodb::Client,
    idempotency_client: aws_sdk_dynamodb::Client,
    lease: SignedDuration,
    cursors: Cursors,
) -> App {
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
            "RateLimitTable",
            "CustomerKeyTable",
        ],
    )
    .await
    .unwrap();
    let catalog = DynamoCatalog::new(dynamodb.clone(), &tables["CatalogTable"]);
    common::stock(&catalog).await;
    let store = DynamoEventStore::new(store_client, &tables["EventStoreTable"], &tables["SnapshotTable"]);
    let api = Api::<order_api::Dynamo>::new(
        CommandService::new(Repository::new(store, 50), SystemClock, 5),
        orderflow_app::Idempotency::new(
            DynamoIdempotencyStore::new(idempotency_client, &tables["IdempotencyTable"]),
            SystemClock,
            lease,
            SignedDuration::from_hours(24),
        ),
        catalog,
        DynamoVault::new(dynamodb.clone(), &tables["PaymentVaultTable"]),
        orderflow_adapters::read_model::DynamoOrderViews::new(dynamodb.clone(), &tables["OrderViewTable"]),
        orderflow_adapters::personal::DynamoCustomerKeys::new(
            dynamodb.clone(),
            &tables["CustomerKeyTable"],
            orderflow_adapters::personal::KeyWrapping::Local(
                orderflow_adapters::personal::LocalKeyWrap::new(
                    orderflow_app::personal::DataKey::generate().unwrap(),
                ),
            ),
        ),
        Access::from_variables(
            |name| match name {
                "RATE_LIMIT_TABLE" => Some(tables["RateLimitTable"].clone()),
                "ORDERS_PER_MINUTE" => Some(orders_per_minute.to_string()),
                _ => None,
            },
            dynamodb.clone(),
            cursors,
        )
        .unwrap(),
    );
    App {
        router: router(Arc::new(api)),
        dynamodb,
        events_table: tables["EventStoreTable"].clone(),
        vault_table: tables["PaymentVaultTable"].clone(),
    }
}

impl App {
    async fn send(&self, request: Request<Body>) -> Reply {
        common::send(&self.router, request).await
    }

    /// A request from customer c-1.
    async fn call(&self, method: &str, uri: &str, headers: &[(&str, &str)], body: Option<String>) -> Reply {
        self.call_as(C1, method, uri, headers, body).await
    }

    async fn call_as(
        &self,
        who: Who,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        // Placements need a key; a test that is not about keys gets a fresh one.
        if (method, uri) == ("POST", "/orders") && !headers.iter().any(|(n, _)| *n == "idempotency-key") {
            request = request.header("idempotency-key", uuid::Uuid::now_v7().to_string());
        }
        let mut request = request.body(body.map_or_else(Body::empty, Body::from)).unwrap();
        if let Some(context) = context(who) {
            request.extensions_mut().insert(context);
        }
        self.send(request).await
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

    /// Customer c-1 cancels order `id` for `reason`.
    async fn cancel(&self, id: &str, reason: &str) -> Reply {
        self.call(
            "POST",
            &format!("/orders/{id}/cancel"),
            &[],
            Some(json!({ "reason": reason }).to_string()),
        )
        .await
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
    let app = app().await;
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
    assert_eq!(events[0]["actor"], "customer:c-1");
    assert_eq!(events[0]["correlationId"], "corr-42");
    assert_eq!(events[0]["data"]["payment"], "tok_****");
}

#[tokio::test]
async fn the_same_key_and_body_replays_and_another_body_is_refused() {
    let app = app().await;
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
    let app = app().await;
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
            "invalid_customer_id",
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
    let app = app().await;
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
        .call_as(
            Who::Operator("ops-1"),
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
        .call_as(
            Who::Operator("ops-1"),
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
    let bad_reason = app.cancel(&id, "").await;
    assert_eq!(bad_reason.status, StatusCode::BAD_REQUEST);
    let route = app.call("GET", "/nope", &[], None).await;
    assert_eq!(route.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn products_list_the_catalog() {
    let app = app().await;
    let reply = app.call("GET", "/products", &[], None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body["products"][0],
        json!({"sku": "SKU-1", "name": "Product SKU-1", "price": {"amount": 1299, "currency": "USD"}, "available": 10})
    );
}

#[tokio::test]
async fn the_principal_comes_from_the_authorizer_and_is_on_record() {
    let app = app().await;
    let anonymous = app
        .call_as(
            Who::Nobody,
            "POST",
            "/orders",
            &[],
            Some(order_body().to_string()),
        )
        .await;
    assert_eq!(
        (anonymous.status, anonymous.body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    // A customer may leave customerId out: the order is theirs.
    let mut mine = order_body();
    mine.as_object_mut().unwrap().remove("customerId");
    let placed = app
        .call_as(
            Who::Customer("c-7"),
            "POST",
            "/orders",
            &[],
            Some(mine.to_string()),
        )
        .await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
    assert_eq!(placed.body["customerId"], "c-7");
    // An operator places for the customer they name, and must name one.
    let for_c1 = app
        .call_as(
            Who::Operator("ops-7"),
            "POST",
            "/orders",
            &[],
            Some(order_body().to_string()),
        )
        .await;
    assert_eq!(for_c1.status, StatusCode::CREATED, "{}", for_c1.body);
    assert_eq!(for_c1.body["customerId"], "c-1");
    let unnamed = app
        .call_as(
            Who::Operator("ops-7"),
            "POST",
            "/orders",
            &[],
            Some(mine.to_string()),
        )
        .await;
    assert_eq!(
        (unnamed.status, unnamed.body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("missing_customer_id"))
    );
    let id = for_c1.body["orderId"].as_str().unwrap();
    let trail = app.call("GET", &format!("/orders/{id}/events"), &[], None).await;
    assert_eq!(trail.body["events"][0]["actor"], "operator:ops-7");
}

#[tokio::test]
async fn one_idempotency_key_used_by_two_customers_makes_two_orders() {
    let app = app().await;
    let mut body = order_body();
    body.as_object_mut().unwrap().remove("customerId");
    let key = [("idempotency-key", "shared-key")];
    let first = app
        .call_as(
            Who::Customer("c-1"),
            "POST",
            "/orders",
            &key,
            Some(body.to_string()),
        )
        .await;
    let second = app
        .call_as(
            Who::Customer("c-2"),
            "POST",
            "/orders",
            &key,
            Some(body.to_string()),
        )
        .await;
    assert_eq!(
        (first.status, second.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_ne!(first.body["orderId"], second.body["orderId"]);
    assert_eq!(second.body["customerId"], "c-2", "each their own");
    assert!(second.headers.get("idempotent-replayed").is_none());
    assert_eq!(app.count(&app.events_table).await, 2);
}

#[tokio::test]
async fn placements_over_the_principals_rate_get_a_429_with_retry_after() {
    let app = app_limited(3).await;
    let key = |i: usize| format!("rate-{i}");
    for i in 0..3 {
        let placed = app.place(&order_body(), &[("idempotency-key", &key(i))]).await;
        assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
    }
    let over = app.place(&order_body(), &[("idempotency-key", &key(3))]).await;
    assert_eq!(
        (over.status, over.body["error"]["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_requests"))
    );
    let retry_after: u64 = over.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // A replay of an earlier request costs nothing and still answers.
    let replay = app.place(&order_body(), &[("idempotency-key", &key(0))]).await;
    assert_eq!(replay.status, StatusCode::CREATED);
    // The limit is per principal: another customer is not held back.
    let other = app
        .call_as(
            Who::Customer("c-2"),
            "POST",
            "/orders",
            &[],
            Some({
                let mut b = order_body();
                b["customerId"] = json!("c-2");
                b.to_string()
            }),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
    assert_eq!(
        app.count(&app.events_table).await,
        4,
        "the refused order was not placed"
    );
}

#[tokio::test]
async fn a_tampered_or_made_up_cursor_is_a_400() {
    let app = app().await;
    for i in 0..3 {
        let placed = app
            .place(&order_body(), &[("idempotency-key", &format!("p-{i}"))])
            .await;
        assert_eq!(placed.status, StatusCode::CREATED);
    }
    let id = app.place(&order_body(), &[]).await.body["orderId"]
        .as_str()
        .unwrap()
        .to_owned();
    let cursor = cancel_and_page_through_events(&app, &id).await;
    // A cursor made up from a plausible position, unsigned: what a client could forge.
    let (position, _) = cursor.split_once('.').unwrap();
    let forged = [
        position.to_owned(),
        format!("{position}.AAAA"),
        // Another position (its first character changed) under the genuine tag.
        format!("f{}.{}", &position[1..], cursor.split_once('.').unwrap().1),
        "%00%ff".to_owned(),
    ];
    for bad in forged {
        for uri in [
            format!("/orders/{id}/events?cursor={bad}"),
            format!("/customers/c-1/orders?cursor={bad}"),
        ] {
            let reply = app.call("GET", &uri, &[], None).await;
            assert_eq!(
                (reply.status, reply.body["error"]["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_cursor")),
                "{uri}"
            );
        }
    }
}

/// A cursor key as the template generates it (a long random string).
const SECRET: &str = "a generated key of sixty-four characters or so, as the template has";

/// The API's reader of secrets, against the emulator.
async fn secrets_manager() -> SecretsManager {
    SecretsManager::from_sdk_config(&local::sdk_config().await, https_connector(Roots::System)).unwrap()
}

async fn create_secret(secrets: &aws_sdk_secretsmanager::Client, name: &str, value: &str) {
    secrets
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_cursor_key_is_read_from_its_secret_and_a_weak_or_missing_one_is_refused() {
    let secrets = aws_sdk_secretsmanager::Client::new(&local::sdk_config().await);
    let reader = secrets_manager().await;
    let name = local::unique_name("cursor-key");
    create_secret(&secrets, &name, SECRET).await;
    let key = order_api::cursor_key_from_secret(&reader, &name).await.unwrap();
    let sealed = key.seal(&7_u64);
    assert_eq!(key.open::<u64>(&sealed), Some(7));
    let other = CursorKey::new(*b"another key entirely, 32 bytes!").unwrap();
    assert_eq!(other.open::<u64>(&sealed), None, "the secret is the key");

    // Rotated as docs/operations.md says (a new value; Secrets Manager labels the old
    // one AWSPREVIOUS): cursors sealed before still open, new ones are sealed anew.
    secrets
        .put_secret_value()
        .secret_id(&name)
        .secret_string("the rotated key, as long and as random as the first one was")
        .send()
        .await
        .unwrap();
    let rotated = order_api::cursor_key_from_secret(&reader, &name).await.unwrap();
    assert_eq!(
        rotated.open::<u64>(&sealed),
        Some(7),
        "a cursor sealed before the rotation"
    );
    let resealed = rotated.seal(&8_u64);
    assert_eq!(key.open::<u64>(&resealed), None, "sealed with the new key");
    assert_eq!(rotated.open::<u64>(&resealed), Some(8));

    let weak = local::unique_name("cursor-key-weak");
    create_secret(&secrets, &weak, "short").await;
    assert!(matches!(
        order_api::cursor_key_from_secret(&reader, &weak).await,
        Err(order_api::AccessConfigError::WeakKey { .. })
    ));
    assert!(matches!(
        order_api::cursor_key_from_secret(&reader, &local::unique_name("no-such-secret")).await,
        Err(order_api::AccessConfigError::Secret { .. })
    ));
}

#[tokio::test]
async fn the_cursor_key_is_read_when_a_list_first_needs_it_and_a_failed_read_is_a_503_read_again_next_time() {
    let secrets = aws_sdk_secretsmanager::Client::new(&local::sdk_config().await);
    let name = local::unique_name("cursor-key-deferred");
    let calls = Arc::new(Calls::default());
    let reads = {
        let calls = calls.clone();
        move || calls.total()
    };
    let cursors = order_api::cursors_from_secret(
        secrets_manager()
            .await
            .counted_by(CallCounter::into(calls.clone())),
        name.clone(),
    );
    let dynamodb = local::dynamodb_client().await.unwrap();
    let app = app_over(
        60,
        dynamodb.clone(),
        dynamodb,
        SignedDuration::from_secs(30),
        cursors.clone(),
    )
    .await;

    // The secret does not exist yet: what lists nothing neither reads nor needs it.
    let placed = app.place(&order_body(), &[]).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let read = app.call("GET", &format!("/orders/{id}"), &[], None).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(reads(), 0, "nothing asked for the key");
    assert!(!cursors.is_read());

    // A list needs it: unreadable, the request is a 503 that names nothing internal.
    let list = app.call("GET", "/customers/c-1/orders?limit=1", &[], None).await;
    assert_eq!(list.status, StatusCode::SERVICE_UNAVAILABLE, "{}", list.body);
    assert_eq!(list.body["error"]["code"], "unavailable");
    let text = list.body.to_string();
    assert!(
        !text.contains(&name) && !text.contains("ResourceNotFound") && !text.contains("Secrets"),
        "{text}"
    );
    assert_eq!(reads(), 1, "a missing secret is not retried");

    // Once the secret is there, the next list reads it, and no list after that does.
    create_secret(&secrets, &name, SECRET).await;
    let cursor = cancel_and_page_through_events(&app, &id).await;
    let list = app.call("GET", "/customers/c-1/orders", &[], None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert!(cursors.is_read());
    let again = app.call("GET", "/customers/c-1/orders", &[], None).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(
        reads(),
        3,
        "read once more (its current and previous versions), then kept"
    );
    assert_eq!(
        calls.snapshot().into_iter().collect::<Vec<_>>(),
        [(("Secrets Manager".to_owned(), "GetSecretValue".to_owned()), 3)]
    );

    // The key it read is the secret.
    let key =
        CursorKey::new(*b"a generated key of sixty-four characters or so, as the template has").unwrap();
    assert!(key.open::<Value>(&cursor).is_some());
}

/// Cancels order `id`, then reads its two events a page of one at a time: the cursor
/// the first page returned.
async fn cancel_and_page_through_events(app: &App, id: &str) -> String {
    let cancelled = app.cancel(id, "changed my mind").await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    let first = app
        .call("GET", &format!("/orders/{id}/events?limit=1"), &[], None)
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let cursor = first.body["nextCursor"].as_str().unwrap().to_owned();
    let second = app
        .call(
            "GET",
            &format!("/orders/{id}/events?limit=1&cursor={cursor}"),
            &[],
            None,
        )
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.body["events"][0]["version"], 2);
    cursor
}

/// The events of every order placed so far, by order id.
async fn orders_in_store(app: &App) -> std::collections::BTreeMap<String, u32> {
    let items = app
        .dynamodb
        .scan()
        .table_name(&app.events_table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let mut orders = std::collections::BTreeMap::new();
    for item in items {
        let pk = item["pk"].as_s().unwrap().clone();
        *orders.entry(pk).or_insert(0) += 1;
    }
    orders
}

#[tokio::test]
async fn a_placement_without_an_idempotency_key_is_refused() {
    let app = app().await;
    let mut request = Request::builder()
        .method("POST")
        .uri("/orders")
        .body(Body::from(order_body().to_string()))
        .unwrap();
    request.extensions_mut().insert(context(C1).unwrap());
    let reply = app.send(request).await;
    assert_eq!(
        (reply.status, reply.body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("missing_idempotency_key"))
    );
    assert!(orders_in_store(&app).await.is_empty());
}

#[tokio::test]
async fn a_placement_whose_completion_failed_answers_its_retry_with_the_same_order() {
    // The order is appended, then recording the answer fails (the function died, or
    // the write failed): the key stays leased; once the lease is over, the client's
    // retry runs the placement again, and lands on the same order.
    let faults = Faults::fail("UpdateItem", 1);
    let app = app_with(
        60,
        local::dynamodb_client().await.unwrap(),
        dynamodb_client_with(faults.clone()).await.unwrap(),
        // Long enough that the immediate retry below meets it, on a loaded machine too.
        SignedDuration::from_secs(5),
    )
    .await;
    let key = [("idempotency-key", "crash-after-append")];
    let first = app.place(&order_body(), &key).await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE, "{}", first.body);
    assert_eq!(faults.injected(), 1);
    let early = app.place(&order_body(), &key).await;
    assert_eq!(early.body["error"]["code"], "request_in_progress");
    tokio::time::sleep(std::time::Duration::from_millis(5_200)).await;
    let retry = app.place(&order_body(), &key).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
    let orders = orders_in_store(&app).await;
    assert_eq!(orders.len(), 1, "one order: {orders:?}");
    assert_eq!(orders.values().sum::<u32>(), 1, "placed once");
    assert_eq!(
        orders.keys().next().unwrap(),
        &format!("order#{}", retry.body["orderId"].as_str().unwrap())
    );
    // The retry's answer is the placement's answer, and later retries replay it.
    assert_eq!(retry.body["version"], 1);
    assert_eq!(retry.body["status"], "PENDING");
    let again = app.place(&order_body(), &key).await;
    assert_eq!((again.status, &again.body), (StatusCode::CREATED, &retry.body));
    assert_eq!(again.headers["idempotent-replayed"], "true");
    // The same key with other items is still another request.
    let mut other = order_body();
    other["items"][0]["quantity"] = json!(5);
    let reused = app.place(&other, &key).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_placement_whose_append_answer_was_lost_places_one_order() {
    // Every answer of the append is lost, the SDK's retries included: the caller sees
    // a failure although the order is stored. The client retries with its key.
    let faults = Faults::lose_responses("TransactWriteItems", 4);
    let app = app_with(
        60,
        dynamodb_client_with(faults.clone()).await.unwrap(),
        local::dynamodb_client().await.unwrap(),
        SignedDuration::from_secs(30),
    )
    .await;
    let key = [("idempotency-key", "lost-answer")];
    let first = app.place(&order_body(), &key).await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE, "{}", first.body);
    assert!(faults.injected() >= 1);
    let retry = app.place(&order_body(), &key).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
    let orders = orders_in_store(&app).await;
    assert_eq!(orders.len(), 1, "one order: {orders:?}");
    assert_eq!(orders.values().sum::<u32>(), 1, "placed once");
    assert_eq!(retry.body["version"], 1);
}

/// `PUT /products/SKU-K` as an operator: a product with a stream of its own.
async fn list_kettle(app: &App) {
    let listed = app
        .call_as(
            Who::Operator("ops-1"),
            "PUT",
            "/products/SKU-K",
            &[],
            Some(json!({"name": "Kettle", "price": {"amount": 2500, "currency": "USD"}}).to_string()),
        )
        .await;
    assert_eq!(listed.status, StatusCode::CREATED, "{}", listed.body);
}

/// `POST /products/SKU-K/stock` as an operator under `key`.
async fn receive_ten(app: &App, key: &str) -> Reply {
    app.call_as(
        Who::Operator("ops-1"),
        "POST",
        "/products/SKU-K/stock",
        &[("idempotency-key", key)],
        Some(json!({"delta": 10, "reason": "received PO-9"}).to_string()),
    )
    .await
}

/// SKU-K's `available`, and how many receipts its trail holds.
async fn available_and_receipts(app: &App) -> (u64, usize) {
    let ops = Who::Operator("ops-1");
    let product = app.call_as(ops, "GET", "/products/SKU-K", &[], None).await;
    let events = app
        .call_as(ops, "GET", "/products/SKU-K/events?limit=100", &[], None)
        .await;
    let receipts = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["eventType"] == "StockReceived")
        .count();
    (product.body["available"].as_u64().unwrap(), receipts)
}

#[tokio::test]
async fn a_stock_change_whose_append_answer_was_lost_lands_once() {
    // Every answer of the change's transaction is lost, the SDK's retries included: the
    // operator sees a failure although the units were received. They retry with the key.
    let faults = Faults::lose_responses("TransactWriteItems", 0);
    let app = app_with(
        60,
        dynamodb_client_with(faults.clone()).await.unwrap(),
        local::dynamodb_client().await.unwrap(),
        SignedDuration::from_secs(30),
    )
    .await;
    list_kettle(&app).await;
    faults.arm(4);
    let (before, receipts) = available_and_receipts(&app).await;
    let first = receive_ten(&app, "po-9-lost").await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE, "{}", first.body);
    assert!(faults.injected() >= 1);
    let retry = receive_ten(&app, "po-9-lost").await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);
    assert_eq!(
        available_and_receipts(&app).await,
        (before + 10, receipts + 1),
        "received once"
    );
    assert_eq!(retry.body["available"], before + 10);
}

#[tokio::test]
async fn a_stock_change_whose_completion_failed_lands_once_when_its_lease_is_taken_over() {
    // The units are received, then recording the answer fails: the key stays leased;
    // once the lease is over, the retry runs the change again and must move nothing.
    let faults = Faults::fail("UpdateItem", 0);
    let app = app_with(
        60,
        local::dynamodb_client().await.unwrap(),
        dynamodb_client_with(faults.clone()).await.unwrap(),
        SignedDuration::from_secs(1),
    )
    .await;
    list_kettle(&app).await;
    faults.arm(1);
    let (before, receipts) = available_and_receipts(&app).await;
    let first = receive_ten(&app, "po-9-crash").await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE, "{}", first.body);
    assert_eq!(faults.injected(), 1);
    // Retried until the lease is over (however slow the machine), then taken over.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let retry = loop {
        let retry = receive_ten(&app, "po-9-crash").await;
        if retry.body["error"]["code"] != "request_in_progress" {
            break retry;
        }
        assert!(std::time::Instant::now() < deadline, "the lease never ended");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);
    assert_eq!(
        available_and_receipts(&app).await,
        (before + 10, receipts + 1),
        "received once"
    );
    let again = receive_ten(&app, "po-9-crash").await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(available_and_receipts(&app).await, (before + 10, receipts + 1));
}

#[tokio::test]
async fn one_key_one_order_id_whoever_sends_it_how_often() {
    let app = app().await;
    let key = [("idempotency-key", "same-key")];
    let c1 = app
        .call_as(C1, "POST", "/orders", &key, Some(order_body().to_string()))
        .await;
    let mut theirs = order_body();
    theirs["customerId"] = json!("c-2");
    let c2 = app
        .call_as(
            Who::Customer("c-2"),
            "POST",
            "/orders",
            &key,
            Some(theirs.to_string()),
        )
        .await;
    let ops = app
        .call_as(
            Who::Operator("ops-1"),
            "POST",
            "/orders",
            &key,
            Some(order_body().to_string()),
        )
        .await;
    let ids = [&c1, &c2, &ops].map(|r| r.body["orderId"].as_str().unwrap().to_owned());
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    let again = app
        .call_as(C1, "POST", "/orders", &key, Some(order_body().to_string()))
        .await;
    assert_eq!(again.body["orderId"], c1.body["orderId"]);
}
