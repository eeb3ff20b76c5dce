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
        orderflow_adapters::personal::MemoryCustomerKeys::new(),
        Access {
            claims: PrincipalClaims::default(),
            cursors: CursorKey::new(*b"a cursor key for the API tests").unwrap().into(),
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

impl App {
    async fn put_product(&self, uri: impl AsRef<str>, body: Value) -> Reply {
        self.call(OPERATOR, "PUT", uri.as_ref(), None, Some(body)).await
    }

    async fn adjust(&self, sku: &str, key: &str, body: Value) -> Reply {
        self.call(
            OPERATOR,
            "POST",
            &format!("/products/{sku}/stock"),
            Some(key),
            Some(body),
        )
        .await
    }
}

fn product(name: &str, amount: u64) -> Value {
    json!({"name": name, "price": {"amount": amount, "currency": "USD"}})
}

fn stock(delta: Value, reason: Option<&str>) -> Value {
    let mut body = json!({"delta": delta});
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    body
}

#[tokio::test]
async fn operators_list_reprice_and_stock_a_product_and_every_change_is_on_its_trail() {
    let app = app(60).await;
    let listed = app.put_product("/products/SKU-K", product("Kettle", 2500)).await;
    assert_eq!(listed.status, StatusCode::CREATED, "{}", listed.body);
    assert_eq!(listed.headers["location"], "/products/SKU-K");
    assert_eq!(
        listed.body,
        json!({"sku": "SKU-K", "name": "Kettle", "price": {"amount": 2500, "currency": "USD"},
               "available": 0, "reserved": 0, "sold": 0})
    );
    let same = app.put_product("/products/SKU-K", product("Kettle", 2500)).await;
    assert_eq!(same.status, StatusCode::OK);
    let received = app
        .adjust("SKU-K", "s-1", stock(json!(5), Some("received PO-1")))
        .await;
    assert_eq!(received.status, StatusCode::OK, "{}", received.body);
    assert_eq!(received.body["available"], 5);
    // The same key again: the same answer, no second receipt.
    let again = app
        .adjust("SKU-K", "s-1", stock(json!(5), Some("received PO-1")))
        .await;
    assert_eq!(
        (again.status, &again.body["available"]),
        (StatusCode::OK, &json!(5))
    );
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let reused = app
        .adjust("SKU-K", "s-1", stock(json!(6), Some("received PO-1")))
        .await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reused.body);
    // An order placed now takes the new price; a repricing later does not change it.
    let placed = app
        .call(C1, "POST", "/orders", Some("o-1"), Some(order("SKU-K", 2)))
        .await;
    assert_eq!(placed.body["total"]["amount"], 5000, "{}", placed.body);
    let repriced = app
        .put_product("/products/SKU-K", product("Kettle, steel", 2700))
        .await;
    assert_eq!(
        (repriced.status, &repriced.body["price"]["amount"]),
        (StatusCode::OK, &json!(2700))
    );
    let id = placed.body["orderId"].as_str().unwrap();
    let kept = app
        .call(C1, "GET", &format!("/orders/{id}?consistent=true"), None, None)
        .await;
    assert_eq!(kept.body["total"]["amount"], 5000, "the order keeps its price");
    let later = app
        .call(C1, "POST", "/orders", Some("o-2"), Some(order("SKU-K", 1)))
        .await;
    assert_eq!(later.body["total"]["amount"], 2700);
    let written_off = app
        .adjust("SKU-K", "s-2", stock(json!(-2), Some("dropped")))
        .await;
    assert_eq!(written_off.body["available"], 3, "{}", written_off.body);
    let too_many = app.adjust("SKU-K", "s-3", stock(json!(-4), Some("lost"))).await;
    assert_eq!(too_many.status, StatusCode::CONFLICT, "{}", too_many.body);
    assert_eq!(too_many.body["error"]["code"], "insufficient_stock");

    // The trail, two events a page, names each change, its actor and its reason.
    let mut types = Vec::new();
    let mut uri = "/products/SKU-K/events?limit=2".to_owned();
    loop {
        let page = app.call(OPERATOR, "GET", &uri, None, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for event in page.body["events"].as_array().unwrap() {
            assert_eq!(event["actor"], "operator:ops-1");
            types.push(event["eventType"].as_str().unwrap().to_owned());
        }
        match page.body["nextCursor"].as_str() {
            Some(cursor) => uri = format!("/products/SKU-K/events?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        types,
        [
            "ProductListed",
            "StockReceived",
            "ProductRepriced",
            "StockWrittenOff"
        ]
    );
    let product = app.call(OPERATOR, "GET", "/products/SKU-K", None, None).await;
    assert_eq!(product.body["name"], "Kettle, steel");
    assert_eq!(product.body["available"], 3);
}

#[tokio::test]
async fn bad_catalog_requests_are_400s_naming_the_field_and_unknown_skus_404s() {
    let app = app(60).await;
    app.put_product("/products/SKU-K", product("Kettle", 2500)).await;
    let cases = [
        (
            "PUT",
            "/products/SKU-K",
            json!({"price": {"amount": 1, "currency": "USD"}}),
            "invalid_name",
        ),
        ("PUT", "/products/SKU-K", json!({"name": "K"}), "invalid_price"),
        ("PUT", "/products/SKU-K", product("K", 0), "invalid_price"),
        (
            "PUT",
            "/products/SKU-K",
            json!({"name": "K", "price": {"amount": 1, "currency": "usd!"}}),
            "invalid_price",
        ),
        ("PUT", "/products/bad%20sku", product("K", 1), "invalid_sku"),
        (
            "POST",
            "/products/SKU-K/stock",
            stock(json!(0), Some("r")),
            "invalid_delta",
        ),
        (
            "POST",
            "/products/SKU-K/stock",
            stock(json!(1.5), Some("r")),
            "invalid_delta",
        ),
        (
            "POST",
            "/products/SKU-K/stock",
            stock(json!("5"), Some("r")),
            "invalid_delta",
        ),
        (
            "POST",
            "/products/SKU-K/stock",
            stock(json!(2_000_000), Some("r")),
            "invalid_delta",
        ),
        (
            "POST",
            "/products/SKU-K/stock",
            stock(json!(5), None),
            "invalid_reason",
        ),
        (
            "POST",
            "/products/SKU-K/stock",
            stock(json!(5), Some("  ")),
            "invalid_reason",
        ),
    ];
    for (n, (method, uri, body, code)) in cases.into_iter().enumerate() {
        let reply = app
            .call(
                OPERATOR,
                method,
                uri,
                Some(&format!("bad-{n}")),
                Some(body.clone()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], code, "{body}");
    }
    let no_key = app
        .call(
            OPERATOR,
            "POST",
            "/products/SKU-K/stock",
            None,
            Some(stock(json!(5), Some("r"))),
        )
        .await;
    assert_eq!(no_key.body["error"]["code"], "missing_idempotency_key");
    for (method, uri) in [
        ("GET", "/products/SKU-9"),
        ("GET", "/products/SKU-9/events"),
        ("POST", "/products/SKU-9/stock"),
    ] {
        let reply = app
            .call(
                OPERATOR,
                method,
                uri,
                Some("k-404"),
                Some(stock(json!(5), Some("r"))),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{method} {uri}: {}",
            reply.body
        );
        assert_eq!(reply.body["error"]["code"], "product_not_found");
    }
    let product = app.call(OPERATOR, "GET", "/products/SKU-K", None, None).await;
    assert_eq!(product.body["available"], 0, "nothing moved: {}", product.body);
}

/// Free text that would read other than it is written (a line break, an escape
/// sequence, a right-to-left override) is refused, with the field named, and nothing
/// is written: cancel reasons, stock reasons, product names and descriptions, and the
/// shipping address.
#[tokio::test]
async fn free_text_with_control_or_bidi_characters_is_a_400_naming_the_field() {
    let app = app(60).await;
    app.put_product("/products/SKU-K", product("Kettle", 2500)).await;
    let placed = app
        .call(C1, "POST", "/orders", Some("k-1"), Some(order("SKU-2", 1)))
        .await;
    let cancel = format!("/orders/{}/cancel", placed.body["orderId"].as_str().unwrap());
    let mut address = order("SKU-2", 1);
    address["shippingAddress"]["line1"] = json!("1 Main St \u{202E}");
    let cases = [
        (
            C1,
            "POST",
            cancel.as_str(),
            json!({"reason": "refund to \u{202E}gnp.exe"}),
            "reason",
        ),
        (
            C1,
            "POST",
            cancel.as_str(),
            json!({"reason": "two\nlines"}),
            "reason",
        ),
        (
            OPERATOR,
            "PUT",
            "/products/SKU-K",
            product("Kettle \u{2066}x\u{2069}", 1),
            "name",
        ),
        (
            OPERATOR,
            "PUT",
            "/products/SKU-K",
            json!({"name": "K", "price": {"amount": 1, "currency": "USD"}, "description": "a\u{1b}[31m"}),
            "description",
        ),
        (
            OPERATOR,
            "POST",
            "/products/SKU-K/stock",
            stock(json!(5), Some("PO\u{200F}-1")),
            "reason",
        ),
        (C1, "POST", "/orders", address, "shippingAddress.line1"),
    ];
    for (n, (who, method, uri, body, field)) in cases.into_iter().enumerate() {
        let reply = app
            .call(who, method, uri, Some(&format!("text-{n}")), Some(body.clone()))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {}", reply.body);
        assert_eq!(reply.body["error"]["field"], field, "{body}: {}", reply.body);
    }
    assert_eq!(
        app.events(),
        2,
        "the listing and the first order only: {}",
        app.events()
    );
    let kettle = app.call(OPERATOR, "GET", "/products/SKU-K", None, None).await;
    assert_eq!(
        (kettle.body["name"].as_str(), &kettle.body["available"]),
        (Some("Kettle"), &json!(0))
    );
}

/// A cursor is no key: every later page is authorized against the caller, so one
/// customer's cursor in another's hands opens nothing the first page would not.
#[tokio::test]
async fn a_later_page_is_authorized_against_the_caller_not_the_cursor() {
    let app = app(60).await;
    let first = app
        .call(C1, "POST", "/orders", Some("k-1"), Some(order("SKU-2", 1)))
        .await;
    let events = format!("/orders/{}/events", first.body["orderId"].as_str().unwrap());
    let cancel = json!({"reason": "two pages of events"});
    let cancelled = app
        .call(
            C1,
            "POST",
            &format!("/orders/{}/cancel", first.body["orderId"].as_str().unwrap()),
            None,
            Some(cancel),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);

    let page = app
        .call(C1, "GET", &format!("{events}?limit=1"), None, None)
        .await;
    let cursor = page.body["nextCursor"].as_str().unwrap().to_owned();
    let next = format!("{events}?limit=1&cursor={cursor}");
    assert_eq!(
        app.call(C1, "GET", &next, None, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.call(OPERATOR, "GET", &next, None, None).await.status,
        StatusCode::OK
    );
    let theirs = app.call(C2, "GET", &next, None, None).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{}", theirs.body);
    assert_eq!(theirs.body["error"]["code"], "order_not_found");
    assert_eq!(
        app.call(Who::Nobody, "GET", &next, None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_catalog_is_paged_for_everyone_and_every_product_comes_once() {
    let app = app(60).await;
    for n in 0..7 {
        let reply = app
            .put_product(&format!("/products/P-{n}"), product("P", 100))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut uri = "/products?limit=3".to_owned();
    loop {
        let page = app.call(C1, "GET", &uri, None, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let products = page.body["products"].as_array().unwrap();
        assert!(products.len() <= 3);
        for p in products {
            assert!(
                p.get("reserved").is_none(),
                "customers see no counters but available"
            );
            seen.push(p["sku"].as_str().unwrap().to_owned());
        }
        match page.body["nextCursor"].as_str() {
            Some(cursor) => uri = format!("/products?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    seen.sort();
    let mut want: Vec<String> = (0..7).map(|n| format!("P-{n}")).collect();
    want.extend(["SKU-1".to_owned(), "SKU-2".to_owned()]);
    assert_eq!(seen, want);
    let forged = app.call(C1, "GET", "/products?cursor=abc.def", None, None).await;
    assert_eq!(forged.body["error"]["code"], "invalid_cursor");
}

#[tokio::test]
async fn a_quantity_written_with_a_zero_fraction_is_the_whole_number_json_schema_says_it_is() {
    let app = app(60).await;
    let mut whole = order("SKU-1", 1);
    whole["items"][0]["quantity"] = json!(2.0);
    let reply = app
        .call(C1, "POST", "/orders", Some("k-whole"), Some(whole))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["items"][0]["quantity"], 2, "{}", reply.body);
    let placed = app
        .call(
            C1,
            "GET",
            &format!(
                "/orders/{}?consistent=true",
                reply.body["orderId"].as_str().unwrap()
            ),
            None,
            None,
        )
        .await;
    assert_eq!(placed.body["items"][0]["quantity"], 2, "{}", placed.body);
}

#[tokio::test]
async fn a_bad_body_names_the_json_path_of_the_member_at_fault() {
    let app = app(60).await;
    let with = |pointer: &str, value: Option<Value>| {
        let mut body = order("SKU-1", 1);
        body["items"] = json!([{"sku": "SKU-1", "quantity": 1}, {"sku": "SKU-2", "quantity": 1}]);
        let (parent, member) = pointer.rsplit_once('/').unwrap();
        let parent = body.pointer_mut(parent).unwrap().as_object_mut().unwrap();
        match value {
            Some(value) => parent.insert(member.to_owned(), value),
            None => parent.remove(member),
        };
        body
    };
    let cases = [
        (
            "/shippingAddress/name",
            None,
            "invalid_order",
            "shippingAddress.name",
        ),
        (
            "/shippingAddress/name",
            Some(json!(5)),
            "invalid_order",
            "shippingAddress.name",
        ),
        (
            "/shippingAddress/name",
            Some(json!("  ")),
            "invalid_order",
            "shippingAddress.name",
        ),
        (
            "/shippingAddress/country",
            Some(json!("USA")),
            "invalid_order",
            "shippingAddress.country",
        ),
        (
            "/shippingAddress",
            Some(json!("1 Main St")),
            "malformed_request",
            "shippingAddress",
        ),
        (
            "/items/1/quantity",
            Some(json!("two")),
            "malformed_request",
            "items[1].quantity",
        ),
        (
            "/items/1/quantity",
            Some(json!(0)),
            "invalid_order",
            "items[1].quantity",
        ),
        (
            "/items/1/quantity",
            Some(json!(1.5)),
            "malformed_request",
            "items[1].quantity",
        ),
        (
            "/items/1/quantity",
            None,
            "malformed_request",
            "items[1].quantity",
        ),
        (
            "/items/0/sku",
            Some(json!("SKU 1")),
            "invalid_order",
            "items[0].sku",
        ),
        ("/items", None, "malformed_request", "items"),
        ("/items", Some(json!([])), "invalid_order", "items"),
        (
            "/paymentToken",
            Some(json!("4242424242424242")),
            "invalid_order",
            "paymentToken",
        ),
        (
            "/customerId",
            Some(json!("c 1")),
            "invalid_customer_id",
            "customerId",
        ),
    ];
    for (i, (pointer, value, code, field)) in cases.into_iter().enumerate() {
        let body = with(pointer, value.clone());
        let reply = app
            .call(C1, "POST", "/orders", Some(&format!("k-{i}")), Some(body))
            .await;
        let case = format!("{pointer} = {value:?}: {}", reply.body);
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{case}");
        assert_eq!(reply.body["error"]["code"], code, "{case}");
        assert_eq!(reply.body["error"]["field"], field, "{case}");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("{field}: ")), "{case}");
    }
    // Not JSON at all: nothing to point at.
    for text in [
        "{\"items\": ".to_owned(),
        format!("{} trailing", order("SKU-1", 1)),
    ] {
        let mut request = Request::builder()
            .method("POST")
            .uri("/orders")
            .header("idempotency-key", "k-x");
        request = request.header("content-type", "application/json");
        let mut request = request.body(Body::from(text)).unwrap();
        request.extensions_mut().insert(context(C1).unwrap());
        let reply = common::send(&app.router, request).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.body["error"]["code"], "malformed_request");
        assert!(reply.body["error"].get("field").is_none(), "{}", reply.body);
    }
    // Parameters and headers are named the same way.
    let limit = app
        .call(C1, "GET", "/customers/c-1/orders?limit=0", None, None)
        .await;
    assert_eq!(limit.body["error"]["field"], "limit");
    let key = app
        .call(C1, "POST", "/orders", None, Some(order("SKU-1", 1)))
        .await;
    assert_eq!(key.body["error"]["field"], "Idempotency-Key");
    let price = app
        .put_product(
            "/products/SKU-9",
            json!({"name": "Nine", "price": {"amount": "x", "currency": "USD"}}),
        )
        .await;
    assert_eq!(price.body["error"]["field"], "price", "{}", price.body);
    let delta = app
        .adjust("SKU-1", "s-1", json!({"delta": 0, "reason": "count"}))
        .await;
    assert_eq!(delta.body["error"]["field"], "delta", "{}", delta.body);
    assert_eq!(app.events(), 0, "nothing was written");
}

/// One request of a session: who, method, URI, the route it is, key, body.
type Step = (
    Who,
    &'static str,
    String,
    &'static str,
    Option<&'static str>,
    Option<Value>,
);

/// Checks `reply` against what the OpenAPI description says `method template` answers
/// with its status.
fn conforms(document: &Value, method: &str, template: &str, reply: &Reply) {
    let what = format!("{method} {template} → {}", reply.status.as_u16());
    let response = document["paths"][template][method.to_lowercase()]["responses"]
        .get(reply.status.as_u16().to_string())
        .unwrap_or_else(|| panic!("{what}: the status is not described ({})", reply.body));
    let schema = &response["content"]["application/json"]["schema"];
    assert!(!schema.is_null(), "{what}: no body is described");
    let wrapper = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": document["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&wrapper)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&reply.body)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}\n{}", reply.body);
    for header in response["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, _)| name)
    {
        let always = ["ETag", "Location", "orderflow-source"].contains(&header.as_str());
        assert!(
            !always || reply.headers.contains_key(header.as_str()),
            "{what}: {header} is described but missing"
        );
    }
}

#[tokio::test]
async fn every_answer_of_every_route_is_what_the_openapi_description_says() {
    let document = order_api::openapi_document();
    let app = app(60).await;
    let placed = app
        .call(C1, "POST", "/orders", Some("c-1"), Some(order("SKU-1", 1)))
        .await;
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let other = OrderId::from_uuid(uuid::Uuid::now_v7()).to_string();
    let mut seen = std::collections::BTreeSet::new();
    let session: Vec<Step> = vec![
        (
            C1,
            "POST",
            "/orders".into(),
            "/orders",
            Some("c-2"),
            Some(order("SKU-2", 1)),
        ),
        (
            C1,
            "POST",
            "/orders".into(),
            "/orders",
            Some("c-1"),
            Some(order("SKU-1", 1)),
        ),
        (
            C1,
            "POST",
            "/orders".into(),
            "/orders",
            Some("c-1"),
            Some(order("SKU-2", 1)),
        ),
        (
            C1,
            "POST",
            "/orders".into(),
            "/orders",
            Some("c-3"),
            Some(json!({"items": 1})),
        ),
        (
            C1,
            "POST",
            "/orders".into(),
            "/orders",
            None,
            Some(order("SKU-1", 1)),
        ),
        (
            Who::Nobody,
            "POST",
            "/orders".into(),
            "/orders",
            Some("c-4"),
            Some(order("SKU-1", 1)),
        ),
        (
            OPERATOR,
            "POST",
            "/orders".into(),
            "/orders",
            Some("o-1"),
            Some(order("SKU-1", 1)),
        ),
        (C1, "GET", format!("/orders/{id}"), "/orders/{id}", None, None),
        (
            C1,
            "GET",
            format!("/orders/{id}?consistent=true"),
            "/orders/{id}",
            None,
            None,
        ),
        (
            C1,
            "GET",
            format!("/orders/{id}?at=2020-01-01T00:00:00Z"),
            "/orders/{id}",
            None,
            None,
        ),
        (C2, "GET", format!("/orders/{id}"), "/orders/{id}", None, None),
        (C1, "GET", "/orders/nope".into(), "/orders/{id}", None, None),
        (
            C1,
            "GET",
            format!("/orders/{id}/events?limit=1"),
            "/orders/{id}/events",
            None,
            None,
        ),
        (
            C1,
            "GET",
            format!("/orders/{other}/events"),
            "/orders/{id}/events",
            None,
            None,
        ),
        (
            C1,
            "GET",
            format!("/orders/{id}/events?cursor=forged"),
            "/orders/{id}/events",
            None,
            None,
        ),
        (
            C1,
            "GET",
            "/customers/c-1/orders?limit=1".into(),
            "/customers/{id}/orders",
            None,
            None,
        ),
        (
            C1,
            "GET",
            "/customers/c-2/orders".into(),
            "/customers/{id}/orders",
            None,
            None,
        ),
        (
            OPERATOR,
            "POST",
            format!("/orders/{id}/status"),
            "/orders/{id}/status",
            None,
            Some(json!({"status": "SHIPPED"})),
        ),
        (
            C1,
            "POST",
            format!("/orders/{id}/status"),
            "/orders/{id}/status",
            None,
            Some(json!({"status": "PREPARING"})),
        ),
        (
            OPERATOR,
            "POST",
            format!("/orders/{id}/status"),
            "/orders/{id}/status",
            None,
            Some(json!({"status": "PREPARING"})),
        ),
        (
            C1,
            "POST",
            format!("/orders/{id}/cancel"),
            "/orders/{id}/cancel",
            None,
            Some(json!({"reason": ""})),
        ),
        (
            C1,
            "POST",
            format!("/orders/{id}/cancel"),
            "/orders/{id}/cancel",
            None,
            Some(json!({"reason": "changed my mind"})),
        ),
        (
            C1,
            "POST",
            format!("/orders/{id}/cancel"),
            "/orders/{id}/cancel",
            None,
            Some(json!({"reason": "again"})),
        ),
        (C1, "GET", "/products?limit=1".into(), "/products", None, None),
        (C1, "GET", "/products?limit=1000".into(), "/products", None, None),
        (
            OPERATOR,
            "GET",
            "/products/SKU-1".into(),
            "/products/{sku}",
            None,
            None,
        ),
        (C1, "GET", "/products/SKU-1".into(), "/products/{sku}", None, None),
        (
            OPERATOR,
            "GET",
            "/products/SKU-404".into(),
            "/products/{sku}",
            None,
            None,
        ),
        (
            OPERATOR,
            "PUT",
            "/products/SKU-9".into(),
            "/products/{sku}",
            None,
            Some(product("Nine", 900)),
        ),
        (
            OPERATOR,
            "PUT",
            "/products/SKU-9".into(),
            "/products/{sku}",
            None,
            Some(product("Nine", 950)),
        ),
        (
            OPERATOR,
            "PUT",
            "/products/SKU-9".into(),
            "/products/{sku}",
            None,
            Some(json!({"name": "Nine"})),
        ),
        (
            OPERATOR,
            "POST",
            "/products/SKU-9/stock".into(),
            "/products/{sku}/stock",
            Some("s-1"),
            Some(json!({"delta": 5, "reason": "delivery"})),
        ),
        (
            OPERATOR,
            "POST",
            "/products/SKU-9/stock".into(),
            "/products/{sku}/stock",
            Some("s-1"),
            Some(json!({"delta": 5, "reason": "delivery"})),
        ),
        (
            OPERATOR,
            "POST",
            "/products/SKU-9/stock".into(),
            "/products/{sku}/stock",
            Some("s-1"),
            Some(json!({"delta": 6, "reason": "delivery"})),
        ),
        (
            OPERATOR,
            "POST",
            "/products/SKU-9/stock".into(),
            "/products/{sku}/stock",
            Some("s-2"),
            Some(json!({"delta": -50, "reason": "broken"})),
        ),
        (
            OPERATOR,
            "POST",
            "/products/SKU-404/stock".into(),
            "/products/{sku}/stock",
            Some("s-3"),
            Some(json!({"delta": 1, "reason": "found"})),
        ),
        (
            OPERATOR,
            "GET",
            "/products/SKU-9/events?limit=1".into(),
            "/products/{sku}/events",
            None,
            None,
        ),
        (
            OPERATOR,
            "GET",
            "/products/SKU-404/events".into(),
            "/products/{sku}/events",
            None,
            None,
        ),
    ];
    for (who, method, uri, template, key, body) in session {
        let reply = app.call(who, method, &uri, key, body).await;
        conforms(&document, method, template, &reply);
        seen.insert((method, template, reply.status.as_u16()));
    }
    let routes: std::collections::BTreeSet<_> = seen.iter().map(|(m, t, _)| (*m, *t)).collect();
    assert_eq!(routes.len(), 11, "every route was exercised: {routes:?}");
    for status in [200, 201, 400, 401, 403, 404, 409, 422] {
        assert!(
            seen.iter().any(|(_, _, s)| *s == status),
            "{status} was never answered: {seen:?}"
        );
    }
    // A path axum cannot decode is refused in the error shape, not as plain text.
    let undecodable = app.call(C1, "GET", "/orders/%FF", None, None).await;
    assert_eq!(undecodable.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        undecodable.body["error"]["code"], "invalid_path",
        "{}",
        undecodable.body
    );
    // What no route describes has the same error shape.
    for (method, uri, status) in [("GET", "/nowhere", 404), ("DELETE", "/orders", 405)] {
        let reply = app.call(C1, method, uri, None, None).await;
        assert_eq!(reply.status.as_u16(), status);
        assert!(reply.body["error"]["code"].is_string(), "{}", reply.body);
    }
}

/// An API Gateway event from `events/`, with `edit` applied to its JSON.
fn gateway_event(
    file: &str,
    edit: impl FnOnce(&mut Value),
) -> lambda_http::LambdaEvent<lambda_http::request::LambdaRequest> {
    let path = format!("{}/../../events/api/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut event);
    lambda_http::LambdaEvent::new(
        serde_json::from_value(event).unwrap(),
        lambda_http::Context::default(),
    )
}

#[tokio::test]
async fn in_lambda_an_http_api_event_goes_through_the_router_and_comes_back_as_its_response() {
    use lambda_http::Service;
    let app = app(60).await;
    let mut lambda = order_api::gateway::HttpApi::new(app.router.clone());

    let placed = lambda
        .call(gateway_event("place-order.json", |_| {}))
        .await
        .unwrap();
    assert_eq!(placed.status_code, 201);
    assert!(!placed.is_base64_encoded, "JSON goes back as text");
    let Some(lambda_http::Body::Text(text)) = &placed.body else {
        panic!("{:?}", placed.body)
    };
    let order: Value = serde_json::from_str(text).unwrap();
    let id = order["orderId"].as_str().unwrap();
    assert_eq!(order["total"]["amount"], 3098, "{order}");
    assert_eq!(placed.headers["location"], format!("/orders/{id}").as_str());
    assert_eq!(placed.headers["content-type"], "application/json");
    // What Lambda sends API Gateway: the payload 2.0 response.
    let wire = serde_json::to_value(&placed).unwrap();
    assert_eq!(wire["statusCode"], 201);
    assert_eq!(wire["isBase64Encoded"], false);
    assert_eq!(
        serde_json::from_str::<Value>(wire["body"].as_str().unwrap()).unwrap(),
        order
    );

    // The principal comes from the authorizer's claims in the request context.
    let read = lambda
        .call(gateway_event("get-order.json", |event| {
            event["rawPath"] = json!(format!("/orders/{id}"));
            event["requestContext"]["http"]["path"] = json!(format!("/orders/{id}"));
            event["pathParameters"]["id"] = json!(id);
        }))
        .await
        .unwrap();
    assert_eq!(read.status_code, 200, "{:?}", read.body);
    let other = lambda
        .call(gateway_event("get-order.json", |event| {
            event["rawPath"] = json!(format!("/orders/{id}"));
            event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!("c-2");
        }))
        .await
        .unwrap();
    assert_eq!(
        other.status_code, 404,
        "another customer's order does not exist for them"
    );
    // A body API Gateway sent in base64 is decoded.
    let encoded = lambda
        .call(gateway_event("place-order.json", |event| {
            let body = event["body"].as_str().unwrap().to_owned();
            event["body"] = json!(base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                body
            ));
            event["isBase64Encoded"] = json!(true);
            event["headers"]["idempotency-key"] = json!(uuid::Uuid::now_v7().to_string());
        }))
        .await
        .unwrap();
    assert_eq!(encoded.status_code, 201, "{:?}", encoded.body);

    // An error is the API's JSON error, as from the router.
    let bad = lambda
        .call(gateway_event("place-order.json", |event| {
            event["body"] = json!("{\"items\": 7}");
            event["headers"]["idempotency-key"] = json!(uuid::Uuid::now_v7().to_string());
        }))
        .await
        .unwrap();
    assert_eq!(bad.status_code, 400);
    let Some(lambda_http::Body::Text(text)) = &bad.body else {
        panic!("{:?}", bad.body)
    };
    let error: Value = serde_json::from_str(text).unwrap();
    assert_eq!(error["error"]["field"], "items", "{error}");
}

#[tokio::test]
async fn a_customer_or_an_operator_erases_personal_data_and_every_read_shows_the_marker() {
    let app = app(60).await;
    let placed = app
        .call(C1, "POST", "/orders", Some("e-1"), Some(order("SKU-1", 1)))
        .await;
    assert_eq!(placed.body["shippingAddress"]["name"], "A", "{}", placed.body);
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let held = app
        .call(C1, "GET", "/customers/c-1/personal-data", None, None)
        .await;
    assert_eq!(held.status, StatusCode::OK, "{}", held.body);
    assert_eq!(held.body["keyHeld"], true);

    let other = app
        .call(C2, "DELETE", "/customers/c-1/personal-data?reason=x", None, None)
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let no_reason = app
        .call(C1, "DELETE", "/customers/c-1/personal-data", None, None)
        .await;
    assert_eq!(
        (no_reason.status, no_reason.body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("reason"))
    );
    let erased = app
        .call(
            C1,
            "DELETE",
            "/customers/c-1/personal-data?reason=asked",
            None,
            None,
        )
        .await;
    assert_eq!(erased.status, StatusCode::ACCEPTED, "{}", erased.body);
    assert_eq!(erased.body["keyDeleted"], true);
    assert!(erased.body["erasureId"].is_string());

    let read = app.call(C1, "GET", &format!("/orders/{id}"), None, None).await;
    assert_eq!(read.body["shippingAddress"]["name"], "[erased]", "{}", read.body);
    assert_eq!(read.body["total"], placed.body["total"]);
    // The stored answer of the placement kept the address sealed: replayed, it is erased too.
    let replayed = app
        .call(C1, "POST", "/orders", Some("e-1"), Some(order("SKU-1", 1)))
        .await;
    assert_eq!(replayed.headers["idempotent-replayed"], "true");
    assert_eq!(replayed.body["shippingAddress"]["name"], "[erased]");

    let nothing_held = app
        .call(
            OPERATOR,
            "DELETE",
            "/customers/c-2/personal-data?reason=asked",
            None,
            None,
        )
        .await;
    assert_eq!(nothing_held.status, StatusCode::ACCEPTED, "{}", nothing_held.body);
    assert_eq!(nothing_held.body["keyDeleted"], false);
    let audit = app
        .call(OPERATOR, "GET", "/customers/c-1/personal-data", None, None)
        .await;
    assert_eq!(audit.body["keyHeld"], false);
    assert!(
        audit.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["eventType"] == "PersonalDataErased" && e["actor"] == "customer:c-1"),
        "{}",
        audit.body
    );
}
