//! Authorization, route by route, through the local stack's API exactly as `orderflow
//! dev` serves it: the local JWT authorizer (tokens of the stack's own key, the
//! template's scopes and throttles) in front of the router, against DynamoDB Local and
//! moto. Every route is walked with no token, a bad token, the owner, another customer
//! and an operator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use orderflow_cli::keys::{LocalKeys, Subject};
use orderflow_devtools::dev;
use orderflow_domain::OrderId;
use orderflow_domain::order::OrderStatus;
use orderflow_provision::Template;
use serde_json::{Value, json};
use support::Fixture;
use tower::ServiceExt;

/// Who calls: the columns of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    NoToken,
    BadToken,
    Owner,
    OtherCustomer,
    Operator,
}

const CALLERS: [Caller; 5] = [
    Caller::NoToken,
    Caller::BadToken,
    Caller::Owner,
    Caller::OtherCustomer,
    Caller::Operator,
];

struct Stack {
    router: axum::Router,
    keys: LocalKeys,
    /// Another stack's keys: their tokens are well-formed and signed, by the wrong key.
    foreign: LocalKeys,
}

fn state_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(orderflow_provision::local::unique_name("orderflow-access"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The local API over the fixture's stack, as `orderflow-dev up` serves it; the fixture
/// seals addresses with the stack's wrapping key from then on, as the API does.
fn stack(f: &mut Fixture, template: &Template) -> Stack {
    let dir = state_dir();
    let keys = dev::local_keys(template, &dir, &f.stack.prefix).unwrap();
    f.use_key_wrapping(keys.key_wrapping().unwrap());
    let foreign = dev::local_keys(template, &dir, "another-stack").unwrap();
    let router = dev::api_router(&f.stack, template, &f.dynamodb, keys.clone()).unwrap();
    Stack {
        router,
        keys,
        foreign,
    }
}

impl Stack {
    fn token(&self, caller: Caller) -> Option<String> {
        let hour = Duration::from_secs(3600);
        match caller {
            Caller::NoToken => None,
            Caller::BadToken => Some(self.foreign.mint(&Subject::Customer("c-1".into()), hour).unwrap()),
            Caller::Owner => Some(self.keys.mint(&Subject::Customer("c-1".into()), hour).unwrap()),
            Caller::OtherCustomer => Some(self.keys.mint(&Subject::Customer("c-2".into()), hour).unwrap()),
            Caller::Operator => Some(self.keys.mint(&Subject::Operator("ops-7".into()), hour).unwrap()),
        }
    }

    async fn call(&self, caller: Caller, method: &str, uri: &str, body: Option<&Value>) -> (u16, Value) {
        self.call_with(self.token(caller), method, uri, body).await
    }

    async fn call_with(
        &self,
        token: Option<String>,
        method: &str,
        uri: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if method == "POST" && (uri == "/orders" || uri.ends_with("/stock")) {
            request = request.header("idempotency-key", uuid::Uuid::now_v7().to_string());
        }
        let request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

/// One row: a route, how to call it as each caller, and what each must get.
struct Row {
    route: &'static str,
    method: &'static str,
    /// The URI for a caller (mutating routes act on an order of their own column).
    uri: Box<dyn Fn(Caller) -> String>,
    body: Option<Value>,
    /// Status and error code for: no token, bad token, owner, other customer, operator.
    expect: [(u16, Option<&'static str>); 5],
}

const UNAUTHORIZED: (u16, Option<&str>) = (401, Some("unauthorized"));
const NOT_FOUND: (u16, Option<&str>) = (404, Some("order_not_found"));
const FORBIDDEN: (u16, Option<&str>) = (403, Some("forbidden"));

fn order_body(customer: Option<&str>) -> Value {
    let mut body = json!({
        "items": [{"sku": "SKU-1", "quantity": 1}],
        "paymentToken": "tok_visa",
        "shippingAddress": {"name": "Ada", "line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"},
    });
    if let Some(customer) = customer {
        body["customerId"] = json!(customer);
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_for_no_token_a_bad_token_the_owner_another_customer_and_an_operator() {
    let mut f = Fixture::new(false).await;
    let template = Template::load(&Template::default_path()).unwrap();
    let stack = stack(&mut f, &template);
    // c-1's orders: one confirmed (reads, status), one for each canceller.
    let confirmed = OrderId::from_uuid(uuid::Uuid::now_v7());
    f.place_for(confirmed, "c-1", &[("SKU-1", 1)], "tok_visa").await;
    let by_owner = OrderId::from_uuid(uuid::Uuid::now_v7());
    f.place_for(by_owner, "c-1", &[("SKU-1", 1)], "tok_visa").await;
    let by_operator = OrderId::from_uuid(uuid::Uuid::now_v7());
    f.place_for(by_operator, "c-1", &[("SKU-1", 1)], "tok_visa").await;
    f.settle().await;
    assert_eq!(f.status(confirmed).await, OrderStatus::Confirmed);
    let ok = |status| (status, None);
    let read = |path: &'static str| -> Box<dyn Fn(Caller) -> String> {
        Box::new(move |_| path.replace("{id}", &confirmed.to_string()))
    };
    let rows = vec![
        Row {
            route: "POST /orders (for c-1)",
            method: "POST",
            uri: Box::new(|_| "/orders".into()),
            body: Some(order_body(Some("c-1"))),
            expect: [UNAUTHORIZED, UNAUTHORIZED, ok(201), FORBIDDEN, ok(201)],
        },
        Row {
            route: "POST /orders (no customerId)",
            method: "POST",
            uri: Box::new(|_| "/orders".into()),
            body: Some(order_body(None)),
            expect: [
                UNAUTHORIZED,
                UNAUTHORIZED,
                ok(201),
                ok(201),
                (400, Some("missing_customer_id")),
            ],
        },
        Row {
            route: "GET /orders/{id}",
            method: "GET",
            uri: read("/orders/{id}"),
            body: None,
            expect: [UNAUTHORIZED, UNAUTHORIZED, ok(200), NOT_FOUND, ok(200)],
        },
        Row {
            route: "GET /orders/{id}?consistent=true",
            method: "GET",
            uri: read("/orders/{id}?consistent=true"),
            body: None,
            expect: [UNAUTHORIZED, UNAUTHORIZED, ok(200), NOT_FOUND, ok(200)],
        },
        Row {
            route: "GET /orders/{id}?at=",
            method: "GET",
            uri: read("/orders/{id}?at=2099-01-01T00:00:00Z"),
            body: None,
            expect: [UNAUTHORIZED, UNAUTHORIZED, ok(200), NOT_FOUND, ok(200)],
        },
        Row {
            route: "GET /orders/{id}/events",
            method: "GET",
            uri: read("/orders/{id}/events"),
            body: None,
            expect: [UNAUTHORIZED, UNAUTHORIZED, ok(200), NOT_FOUND, ok(200)],
        },
        Row {
            route: "POST /orders/{id}/cancel",
            method: "POST",
            // Everyone tries the owner's order; the operator cancels another of c-1's.
            uri: Box::new(move |caller| {
                let id = if caller == Caller::Operator {
                    by_operator
                } else {
                    by_owner
                };
                format!("/orders/{id}/cancel")
            }),
            body: Some(json!({"reason": "changed my mind"})),
            expect: [UNAUTHORIZED, UNAUTHORIZED, ok(200), NOT_FOUND, ok(200)],
        },
        Row {
            route: "POST /orders/{id}/status",
            method: "POST",
            uri: read("/orders/{id}/status"),
            body: Some(json!({"status": "PREPARING"})),
            expect: [UNAUTHORIZED, UNAUTHORIZED, FORBIDDEN, FORBIDDEN, ok(200)],
        },
        Row {
            route: "GET /customers/c-1/orders",
            method: "GET",
            uri: Box::new(|_| "/customers/c-1/orders".into()),
            body: None,
            expect: [UNAUTHORIZED, UNAUTHORIZED, ok(200), FORBIDDEN, ok(200)],
        },
        Row {
            route: "GET /customers/c-1/personal-data",
            method: "GET",
            uri: Box::new(|_| "/customers/c-1/personal-data".into()),
            body: None,
            expect: [UNAUTHORIZED, UNAUTHORIZED, ok(200), FORBIDDEN, ok(200)],
        },
        Row {
            // c-1's orders are in flight: the owner and an operator are refused with
            // 409 (the erasure itself is tested in tests/personal.rs).
            route: "DELETE /customers/c-1/personal-data",
            method: "DELETE",
            uri: Box::new(|_| "/customers/c-1/personal-data?reason=asked".into()),
            body: None,
            expect: [
                UNAUTHORIZED,
                UNAUTHORIZED,
                (409, Some("orders_in_flight")),
                FORBIDDEN,
                (409, Some("orders_in_flight")),
            ],
        },
        Row {
            route: "GET /products",
            method: "GET",
            uri: Box::new(|_| "/products".into()),
            body: None,
            expect: [UNAUTHORIZED, UNAUTHORIZED, ok(200), ok(200), ok(200)],
        },
        Row {
            route: "GET /products/{sku}",
            method: "GET",
            uri: Box::new(|_| "/products/SKU-1".into()),
            body: None,
            expect: [UNAUTHORIZED, UNAUTHORIZED, FORBIDDEN, FORBIDDEN, ok(200)],
        },
        Row {
            route: "GET /products/{sku}/events",
            method: "GET",
            uri: Box::new(|_| "/products/SKU-1/events".into()),
            body: None,
            expect: [UNAUTHORIZED, UNAUTHORIZED, FORBIDDEN, FORBIDDEN, ok(200)],
        },
        Row {
            route: "PUT /products/{sku}",
            method: "PUT",
            uri: Box::new(|_| "/products/SKU-NEW".into()),
            body: Some(json!({"name": "Kettle", "price": {"amount": 2500, "currency": "USD"}})),
            expect: [UNAUTHORIZED, UNAUTHORIZED, FORBIDDEN, FORBIDDEN, ok(201)],
        },
        Row {
            route: "POST /products/{sku}/stock",
            method: "POST",
            uri: Box::new(|_| "/products/SKU-1/stock".into()),
            body: Some(json!({"delta": 5, "reason": "received PO-7"})),
            expect: [UNAUTHORIZED, UNAUTHORIZED, FORBIDDEN, FORBIDDEN, ok(200)],
        },
    ];
    // Another customer's order answers what no order answers, byte for byte.
    let (_, nowhere) = stack
        .call(
            Caller::OtherCustomer,
            "GET",
            &format!("/orders/{}", uuid::Uuid::now_v7()),
            None,
        )
        .await;
    let mut failures = Vec::new();
    // The other customer goes before the owner, so a mutation by the wrong caller
    // would show in the owner's answer.
    let order = [
        Caller::NoToken,
        Caller::BadToken,
        Caller::OtherCustomer,
        Caller::Owner,
        Caller::Operator,
    ];
    for row in &rows {
        for caller in order {
            let column = CALLERS.iter().position(|c| *c == caller).unwrap();
            let (status, body) = stack
                .call(caller, row.method, &(row.uri)(caller), row.body.as_ref())
                .await;
            let got = (status, body["error"]["code"].as_str().map(str::to_owned));
            let want = row.expect[column];
            if (got.0, got.1.as_deref()) != want {
                failures.push(format!(
                    "{} as {caller:?}: got {got:?}, want {want:?}: {body}",
                    row.route
                ));
            }
            if want == NOT_FOUND && body != nowhere {
                failures.push(format!(
                    "{} as {caller:?}: {body} differs from {nowhere}",
                    row.route
                ));
            }
            if want.0 >= 400 && !body["error"]["message"].is_string() {
                failures.push(format!("{} as {caller:?}: no JSON error: {body}", row.route));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // What the owner and the operator did is on record as theirs.
    let (_, trail) = stack
        .call(
            Caller::Operator,
            "GET",
            &format!("/orders/{by_owner}/events"),
            None,
        )
        .await;
    assert_eq!(
        trail["events"].as_array().unwrap().last().unwrap()["actor"],
        "customer:c-1"
    );
    let (_, trail) = stack
        .call(Caller::Owner, "GET", &format!("/orders/{confirmed}/events"), None)
        .await;
    assert_eq!(
        trail["events"].as_array().unwrap().last().unwrap()["actor"],
        "operator:ops-7"
    );
    // Only the operator changed the catalog: one receipt of SKU-1, one new product.
    let (_, trail) = stack
        .call(Caller::Operator, "GET", "/products/SKU-1/events", None)
        .await;
    let types: Vec<&str> = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["ProductListed", "StockReceived", "StockReceived"]);
    let receipt = trail["events"].as_array().unwrap().last().unwrap();
    assert_eq!(receipt["actor"], "operator:ops-7");
    assert_eq!(receipt["data"]["reason"], "received PO-7");
    let (status, listed) = stack
        .call(Caller::Operator, "GET", "/products/SKU-NEW", None)
        .await;
    assert_eq!((status, listed["available"].as_u64()), (200, Some(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_the_authorizer_refuses_are_401s_and_a_missing_scope_a_403() {
    let mut f = Fixture::new(false).await;
    let template = Template::load(&Template::default_path()).unwrap();
    let stack = stack(&mut f, &template);
    let now = jiff::Timestamp::now().as_second();
    let claims = stack
        .keys
        .claims(&Subject::Customer("c-1".into()), Duration::from_secs(600));
    let with = |name: &str, value: Value| {
        let mut claims = claims.clone();
        claims[name] = value;
        stack.keys.sign(&claims).unwrap()
    };
    let cases = [
        ("expired", with("exp", json!(now - 300)), 401),
        ("wrong audience", with("aud", json!("not-orderflow")), 401),
        (
            "wrong issuer",
            with("iss", json!("https://elsewhere.example/")),
            401,
        ),
        ("not a JWT", "abc.def.ghi".to_owned(), 401),
        (
            "a customer on an operator route",
            stack.keys.sign(&claims).unwrap(),
            403,
        ),
    ];
    for (name, token, status) in cases {
        let request = Request::builder()
            .method("POST")
            .uri(format!("/orders/{}/status", uuid::Uuid::now_v7()))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(json!({"status": "PREPARING"}).to_string()))
            .unwrap();
        let response = stack.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{name}");
        if status == 401 {
            assert_eq!(response.headers()["www-authenticate"], "Bearer", "{name}");
        }
        let body: Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert!(body["error"]["code"].is_string(), "{name}: {body}");
    }
    // A client cannot bring its own claims: a forged request context is replaced by
    // what the authorizer verified (here: nothing, so a 401).
    let forged = support::as_principal(
        Request::builder().uri("/products").body(Body::empty()).unwrap(),
        json!({"sub": "ops", "scope": "orderflow/operator"}),
    );
    let response = stack.router.clone().oneshot(forged).await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

/// A customer who asked the customers' app client for the operator scope (as anyone can
/// where scopes are granted per client) holds a valid token with the scope, which gets
/// it past API Gateway's route scopes; without the operators' group the API still reads
/// a customer, and every operator action is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_who_grants_themselves_the_operator_scope_is_no_operator() {
    let mut f = Fixture::new(false).await;
    let template = Template::load(&Template::default_path()).unwrap();
    let stack = stack(&mut f, &template);
    let order = OrderId::from_uuid(uuid::Uuid::now_v7());
    f.place_for(order, "c-1", &[("SKU-1", 1)], "tok_visa").await;
    f.settle().await;
    let hour = Duration::from_secs(3600);
    let mut claims = stack.keys.claims(&Subject::Customer("c-2".into()), hour);
    claims["scope"] = json!("openid orderflow/operator");
    let self_granted = Some(stack.keys.sign(&claims).unwrap());
    // A group claim that names some other group is no better.
    claims["cognito:groups"] = json!(["customers", "orderflow-operators-trial"]);
    let other_group = Some(stack.keys.sign(&claims).unwrap());
    let status = json!({"status": "PREPARING"});
    let product = json!({"name": "Mine now", "price": {"amount": 1, "currency": "USD"}});
    let stock = json!({"delta": 1000, "reason": "free stock"});
    let order_path = format!("/orders/{order}");
    let status_path = format!("/orders/{order}/status");
    let tries: [(&str, &str, Option<&Value>, u16); 7] = [
        ("POST", status_path.as_str(), Some(&status), 403),
        ("PUT", "/products/SKU-1", Some(&product), 403),
        ("POST", "/products/SKU-1/stock", Some(&stock), 403),
        ("GET", "/products/SKU-1/events", None, 403),
        ("GET", order_path.as_str(), None, 404),
        ("GET", "/customers/c-1/orders", None, 403),
        ("GET", "/customers/c-2/orders", None, 200),
    ];
    for token in [&self_granted, &other_group] {
        for (method, uri, body, expected) in tries {
            let (got, body) = stack.call_with(token.clone(), method, uri, body).await;
            assert_eq!(got, expected, "{method} {uri}: {body}");
        }
    }
    // Nothing moved: the order is where it was, the product unchanged.
    assert_eq!(f.status(order).await, OrderStatus::Confirmed);
    let (_, product) = stack.call(Caller::Operator, "GET", "/products/SKU-1", None).await;
    assert_ne!(product["name"], "Mine now");
    // The operators' client's token to a member of the group is an operator.
    let (got, body) = stack
        .call(Caller::Operator, "POST", &status_path, Some(&status))
        .await;
    assert_eq!(got, 200, "{body}");
    assert_eq!(body["status"], "PREPARING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_throttle_of_the_template_holds_locally() {
    let mut f = Fixture::new(false).await;
    let template = Template::load(&Template::default_path())
        .unwrap()
        .with_parameters(["PlaceOrderThrottleBurst=2", "PlaceOrderThrottleRate=1"])
        .unwrap();
    let stack = stack(&mut f, &template);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, body) = stack
            .call(Caller::Owner, "POST", "/orders", Some(&order_body(None)))
            .await;
        statuses.push((status, body["error"]["code"].as_str().map(str::to_owned)));
    }
    assert_eq!(&statuses[..2], &[(201, None), (201, None)]);
    assert!(
        statuses[2..]
            .iter()
            .all(|s| *s == (429, Some("too_many_requests".into()))),
        "{statuses:?}"
    );
    // Other routes have their own bucket.
    let (status, _) = stack.call(Caller::Owner, "GET", "/products", None).await;
    assert_eq!(status, 200);
}
