//! The order API over its in-memory stores (`Api<InMemory>`): the same router and use
//! cases as in Lambda, run in milliseconds without DynamoDB. The emulator suite
//! (`api.rs`) keeps the DynamoDB-specific behaviour (faults in the store's client, the
//! stored items themselves).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Reply, Who, context};
use order_api::paging::CursorKey;
use order_api::{Access, Api, InMemory, PrincipalClaims, router};
use orderflow_adapters::catalog::MemoryCatalog;
use orderflow_adapters::payment::MemoryVault;
use orderflow_adapters::rate_limit::MemoryRateLimiter;
use orderflow_adapters::{MemoryEventStore, MemoryIdempotencyStore, MemoryOrderViews};
use orderflow_app::{CommandService, PaymentVault, Repository, SystemClock};
use orderflow_domain::OrderId;
use serde_json::{Value, json};

struct App {
    router: Router,
    store: MemoryEventStore,
    vault: MemoryVault,
}

async fn app(orders_per_minute: u64) -> App {
    let catalog = MemoryCatalog::new();
    common::stock(&catalog).await;
    let store = MemoryEventStore::new();
    let vault = MemoryVault::new();
    let api = Api::<InMemory>::new(
        CommandService::new(Repository::new(store.clone(), 50), SystemClock, 5),
        Api::<InMemory>::idempotency_over(MemoryIdempotencyStore::new(), SystemClock),
        catalog,
        vault.clone(),
        MemoryOrderViews::new(),
        Access {
            claims: PrincipalClaims {
                customer_id_claim: order_api::access::DEFAULT_CUSTOMER_ID_CLAIM.to_owned(),
            },
            cursors: CursorKey::new(*b"a cursor key for the API tests").unwrap(),
            placements: MemoryRateLimiter::new(orders_per_minute),
        },
    );
    App {
        router: router(Arc::new(api)),
        store,
        vault,
    }
}

impl App {
    async fn call(&self, who: Who, method: &str, uri: &str, key: Option<&str>, body: Option<Value>) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let mut request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        if let Some(context) = context(who) {
            request.extensions_mut().insert(context);
        }
        common::send(&self.router, request).await
    }

    fn events(&self) -> usize {
        self.store.committed_since(0).unwrap().len()
    }
}

fn order(sku: &str, quantity: u64) -> Value {
    json!({
        "items": [{"sku": sku, "quantity": quantity}],
        "paymentToken": "tok_visa",
        "shippingAddress": {"name": "A", "line1": "1 St", "city": "C", "postalCode": "1", "country": "US"}
    })
}

const C1: Who = Who::Customer("c-1");
const C2: Who = Who::Customer("c-2");
const OPERATOR: Who = Who::Operator("ops-1");

#[tokio::test]
async fn a_placement_is_priced_from_the_catalog_answered_once_and_replayed_under_its_key() {
    let app = app(60).await;
    let placed = app
        .call(C1, "POST", "/orders", Some("k-1"), Some(order("SKU-1", 2)))
        .await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    assert_eq!(placed.body["total"], json!({"amount": 2598, "currency": "USD"}));
    assert_eq!(placed.headers["location"], format!("/orders/{id}").as_str());
    assert_eq!(placed.headers["etag"], "\"1\"");
    assert_eq!(app.events(), 1);
    let order_id = OrderId::parse(&id).unwrap();
    assert!(
        app.vault.token(order_id).await.unwrap().is_some(),
        "the token is kept for payment"
    );

    let again = app
        .call(C1, "POST", "/orders", Some("k-1"), Some(order("SKU-1", 2)))
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body["orderId"], id.as_str());
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(app.events(), 1, "a replay appends nothing");

    let reused = app
        .call(C1, "POST", "/orders", Some("k-1"), Some(order("SKU-2", 1)))
        .await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reused.body);
    let other = app
        .call(C2, "POST", "/orders", Some("k-1"), Some(order("SKU-1", 2)))
        .await;
    assert_eq!(
        other.status,
        StatusCode::CREATED,
        "keys are scoped to their principal"
    );
    assert_ne!(other.body["orderId"], id.as_str());

    let unknown = app
        .call(C1, "POST", "/orders", Some("k-2"), Some(order("SKU-9", 1)))
        .await;
    assert_eq!(unknown.status.as_u16() / 100, 4, "{}", unknown.body);
    assert_eq!(app.events(), 2, "nothing written for an unknown SKU");
}

#[tokio::test]
async fn an_order_is_read_and_cancelled_by_its_owner_or_an_operator_and_no_one_else() {
    let app = app(60).await;
    let placed = app
        .call(C1, "POST", "/orders", Some("k-1"), Some(order("SKU-2", 1)))
        .await;
    let uri = format!("/orders/{}", placed.body["orderId"].as_str().unwrap());
    let consistent = format!("{uri}?consistent=true");

    assert_eq!(
        app.call(Who::Nobody, "GET", &consistent, None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.call(C2, "GET", &consistent, None, None).await.status,
        StatusCode::NOT_FOUND
    );
    let mine = app.call(C1, "GET", &consistent, None, None).await;
    assert_eq!(
        (mine.status, mine.body["status"].as_str()),
        (StatusCode::OK, Some("PENDING"))
    );
    assert_eq!(
        app.call(OPERATOR, "GET", &consistent, None, None).await.status,
        StatusCode::OK
    );

    let cancel = json!({"reason": "changed my mind"});
    let theirs = app
        .call(C2, "POST", &format!("{uri}/cancel"), None, Some(cancel.clone()))
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(app.events(), 1, "another customer changes nothing");
    let cancelled = app
        .call(C1, "POST", &format!("{uri}/cancel"), None, Some(cancel))
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "CANCELLED");

    let advance = json!({"status": "PREPARING"});
    let by_customer = app
        .call(C1, "POST", &format!("{uri}/status"), None, Some(advance))
        .await;
    assert_eq!(by_customer.status, StatusCode::FORBIDDEN);
    let events = app.call(C1, "GET", &format!("{uri}/events"), None, None).await;
    assert_eq!(
        events.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["eventType"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["OrderPlaced", "OrderCancelled"]
    );
}

#[tokio::test]
async fn placements_past_the_rate_are_refused_with_retry_after_and_write_nothing() {
    let app = app(2).await;
    for key in ["k-1", "k-2"] {
        let placed = app
            .call(C1, "POST", "/orders", Some(key), Some(order("SKU-1", 1)))
            .await;
        assert_eq!(placed.status, StatusCode::CREATED);
    }
    let limited = app
        .call(C1, "POST", "/orders", Some("k-3"), Some(order("SKU-1", 1)))
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{}", limited.body);
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(app.events(), 2);
    let replay = app
        .call(C1, "POST", "/orders", Some("k-1"), Some(order("SKU-1", 1)))
        .await;
    assert_eq!(
        replay.status,
        StatusCode::CREATED,
        "a replayed answer costs no rate"
    );
    let other = app
        .call(C2, "POST", "/orders", Some("k-3"), Some(order("SKU-1", 1)))
        .await;
    assert_eq!(
        other.status,
        StatusCode::CREATED,
        "each principal has its own rate"
    );
}

#[tokio::test]
async fn the_catalog_is_listed_to_customers_and_refused_to_nobody() {
    let app = app(60).await;
    let listed = app.call(C1, "GET", "/products", None, None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["products"].as_array().unwrap().len(), 2);
    assert_eq!(
        app.call(Who::Nobody, "GET", "/products", None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
}
