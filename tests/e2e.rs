//! End to end through `orderflow-dev up` itself, as a user runs it: a real process
//! serving the API on a local port and delivering the stream and the queues to the
//! handlers, against DynamoDB Local and moto. Nothing here calls a handler by hand.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use orderflow_adapters::read_model::DynamoOrderViews;
use orderflow_domain::OrderId;
use orderflow_domain::order::OrderStatus;
use orderflow_provision::Template;
use orderflow_provision::local::{self, unique_name};
use serde_json::{Value, json};
use support::Inspector;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Binary `bin` of the workspace, built in the selection `make test` builds before the
/// run (Makefile, `BUILD_DEBUG`), so a no-op there: another selection would unify
/// features differently and compile the SDK and everything above it again.
fn built(bin: &str) -> PathBuf {
    let mut cargo = Command::new(env!("CARGO"));
    // What cargo sets for this test binary (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, …)
    // is not the environment `make test` built in; a build script that watches one of
    // them (ring's does) would be rebuilt here, and everything after it.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_",
            "CARGO_TARGET_TMPDIR",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        {
            cargo.env_remove(name.as_ref());
        }
    }
    let output = cargo
        .args(["build", "--locked", "--message-format=json"])
        .args(["--workspace", "--bins", "--tests"])
        .current_dir(workspace())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "building {bin} failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["target"]["name"] == bin && m["profile"]["test"] == false)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported the {bin} executable"))
}

/// The operator's `orderflow` binary, built once per test process.
fn binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| built("orderflow"))
}

/// The developer's `orderflow-dev` binary, built once per test process.
fn dev_tools() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| built("orderflow-dev"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `orderflow-dev up`.
struct Dev {
    child: Child,
    url: String,
    prefix: String,
    state_dir: PathBuf,
    /// Its stderr (the JSON logs) and stdout (the summaries).
    outputs: [PathBuf; 2],
}

impl Dev {
    async fn start(prefix: &str, state_dir: &std::path::Path, extra: &[&str]) -> Self {
        Self::start_with(prefix, state_dir, extra, &[]).await
    }

    async fn start_with(
        prefix: &str,
        state_dir: &std::path::Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let outputs = [
            state_dir.join(format!("dev-{port}.log")),
            state_dir.join(format!("dev-{port}.out")),
        ];
        let log = std::fs::File::create(&outputs[0]).unwrap();
        let out = std::fs::File::create(&outputs[1]).unwrap();
        let child = Command::new(dev_tools())
            .current_dir(workspace())
            .args([
                "up",
                "--prefix",
                prefix,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--ops-listen",
                "127.0.0.1:0",
            ])
            .args(["--state-dir", state_dir.to_str().unwrap()])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(out)
            .stderr(log)
            .spawn()
            .unwrap();
        let dev = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            prefix: prefix.to_owned(),
            state_dir: state_dir.to_owned(),
            outputs,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while reqwest::get(format!("{}/products", dev.url)).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "orderflow-dev up did not serve the API within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        dev
    }

    /// A token from `orderflow token`, as a user mints one: `["--customer", "c-1"]` or
    /// `["--operator", "ops-1"]`.
    fn token(&self, who: &[&str]) -> String {
        let output = Command::new(binary())
            .current_dir(workspace())
            .args(["token", "--prefix", &self.prefix])
            .args(["--state-dir", self.state_dir.to_str().unwrap()])
            .args(who)
            .output()
            .unwrap();
        assert!(output.status.success(), "orderflow token: {output:?}");
        let token = String::from_utf8(output.stdout).unwrap();
        assert_eq!(token.lines().count(), 1, "the token and nothing else: {token}");
        token.trim().to_owned()
    }

    /// An HTTP client that sends `who`'s token with every request.
    fn client(&self, who: &[&str]) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", self.token(who)).parse().unwrap(),
        );
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap()
    }

    /// A client for each customer `order_request` places for.
    fn customer_clients(&self) -> Vec<reqwest::Client> {
        (0..CUSTOMERS)
            .map(|c| self.client(&["--customer", &format!("c-{c}")]))
            .collect()
    }

    /// SIGKILL: no cleanup, no flush, as a crash.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn state_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name("orderflow-e2e"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn inspector(prefix: &str) -> Inspector {
    let template = Template::load(&Template::default_path()).unwrap();
    // Provisioning is idempotent: this only reads back what `orderflow-dev up` created.
    Inspector::new(local::provision_stack(&template, prefix).await.unwrap()).await
}

fn catalog_stock() -> HashMap<String, u64> {
    let text = std::fs::read_to_string(workspace().join("infra/local/catalog.json")).unwrap();
    serde_json::from_str::<Vec<Value>>(&text)
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["sku"].as_str().unwrap().to_owned(),
                p["available"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// How many customers `order_request` spreads orders over: `c-0` …
const CUSTOMERS: usize = 7;

fn order_request(i: usize) -> Value {
    let tokens = [
        "tok_visa",
        "tok_visa",
        "tok_decline",
        "tok_flaky",
        "tok_insufficient_funds",
        "tok_mastercard",
    ];
    let items = match i % 4 {
        0 => json!([{"sku": "SKU-1", "quantity": 2}, {"sku": "SKU-2", "quantity": 1}]),
        1 => json!([{"sku": "SKU-RARE", "quantity": 1}]),
        2 => json!([{"sku": "SKU-3", "quantity": 1 + i % 3}]),
        _ => json!([{"sku": "SKU-2", "quantity": 3}, {"sku": "SKU-3", "quantity": 1}]),
    };
    json!({
        "customerId": format!("c-{}", i % CUSTOMERS),
        "items": items,
        "paymentToken": tokens[i % tokens.len()],
        "shippingAddress": {"name": "Ada", "line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"},
    })
}

/// Places orders `range` through the API, eight at a time, each with its customer's
/// token; some are cancelled at once by their customer.
async fn place_orders(dev: &Dev, range: std::ops::Range<usize>) -> Vec<OrderId> {
    let clients = dev.customer_clients();
    let mut placed = Vec::new();
    let indexes: Vec<_> = range.collect();
    for chunk in indexes.chunks(8) {
        let replies = futures::future::join_all(chunk.iter().map(|&i| {
            let client = clients[i % CUSTOMERS].clone();
            let url = dev.url.clone();
            async move {
                let reply = client
                    .post(format!("{url}/orders"))
                    .header("idempotency-key", format!("e2e-{i}"))
                    .json(&order_request(i))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(reply.status(), 201);
                let order: Value = reply.json().await.unwrap();
                let id = OrderId::parse(order["orderId"].as_str().unwrap()).unwrap();
                if i % 9 == 4 {
                    // The customer changes their mind at once, racing the saga.
                    let _ = client
                        .post(format!("{url}/orders/{id}/cancel"))
                        .json(&json!({"reason": "changed my mind"}))
                        .send()
                        .await;
                }
                id
            }
        }))
        .await;
        placed.extend(replies);
    }
    placed
}

/// A customer with no orders tries every other customer's: each read, audit trail and
/// cancellation answers exactly what an order that does not exist answers, and every
/// other customer's list is refused; then their own token, without the operator
/// scope, moves nothing on.
async fn a_stranger_reaches_none_of_them(dev: &Dev, orders: &[OrderId]) {
    let stranger = dev.client(&["--customer", "c-stranger"]);
    let url = &dev.url;
    let get = |path: String| {
        let stranger = stranger.clone();
        async move {
            let reply = stranger.get(format!("{url}{path}")).send().await.unwrap();
            (reply.status().as_u16(), reply.json::<Value>().await.unwrap())
        }
    };
    let nowhere = get(format!("/orders/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(nowhere.0, 404);
    for id in orders {
        for path in [
            format!("/orders/{id}"),
            format!("/orders/{id}?consistent=true"),
            format!("/orders/{id}?at=2099-01-01T00:00:00Z"),
            format!("/orders/{id}/events"),
        ] {
            assert_eq!(get(path.clone()).await, nowhere, "{path}");
        }
        for (path, body) in [
            ("cancel", json!({"reason": "not mine"})),
            ("status", json!({"status": "PREPARING"})),
        ] {
            let reply = stranger
                .post(format!("{url}/orders/{id}/{path}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            let expected = if path == "cancel" { 404 } else { 403 };
            assert_eq!(reply.status().as_u16(), expected, "{path} of {id}");
        }
    }
    for c in 0..CUSTOMERS {
        assert_eq!(get(format!("/customers/c-{c}/orders")).await.0, 403);
    }
    let own = get("/customers/c-stranger/orders".to_owned()).await;
    assert_eq!((own.0, own.1["orders"].as_array().map(Vec::len)), (200, Some(0)));
}

/// Waits until every order is out of PENDING and every queue is empty, twice in a row.
async fn quiesce(inspector: &Inspector, orders: &[OrderId], within: Duration) {
    let deadline = Instant::now() + within;
    let mut quiet = 0;
    while quiet < 2 {
        assert!(
            Instant::now() < deadline,
            "the system did not settle within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let busy_queues = inspector
            .queue_depths()
            .await
            .into_iter()
            .any(|(id, depth)| !id.contains("DeadLetter") && !id.contains("Failure") && depth > 0);
        let mut pending = false;
        for id in orders {
            if inspector.status(*id).await == OrderStatus::Pending {
                pending = true;
                break;
            }
        }
        quiet = if busy_queues || pending { 0 } else { quiet + 1 };
    }
}

/// An operator cancels every fourth confirmed order through the API (compensation
/// after the fact).
async fn cancel_some_confirmed(dev: &Dev, inspector: &Inspector, orders: &[OrderId]) {
    let client = dev.client(&["--operator", "ops-e2e"]);
    let url = &dev.url;
    for id in orders.iter().step_by(4) {
        if inspector.status(*id).await == OrderStatus::Confirmed {
            let reply = client
                .post(format!("{url}/orders/{id}/cancel"))
                .json(&json!({"reason": "no longer needed"}))
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 200);
        }
    }
}

/// Runs `orderflow check` on a local stack, as an operator does: its exit code and report.
fn orderflow_check(prefix: &str) -> (Option<i32>, String) {
    let check = Command::new(binary())
        .args(["check", "--prefix", prefix, "--grace", "0"])
        .current_dir(workspace())
        .output()
        .unwrap();
    (
        check.status.code(),
        String::from_utf8_lossy(&check.stdout).into_owned(),
    )
}

/// Projects the same orders' events again into the (empty) shadow table, delivered as
/// badly as a queue could: shuffled across orders, some twice, a third never (gaps the
/// projector fills from the store). The result is the fold of the store again.
async fn project_adversarially(inspector: &Inspector, orders: &[OrderId]) {
    let shadow = DynamoOrderViews::new(
        inspector.dynamodb.clone(),
        inspector.stack.table("OrderViewShadowTable").unwrap(),
    );
    let projector = orderflow_lambda::Service::new(projector::Projector::new(
        inspector.commands.repository().clone(),
        shadow.clone(),
    ));
    let messages = support::adversarial_deliveries(inspector, orders, 0x5eed_0f0d_e5e5).await;
    for chunk in messages.chunks(10) {
        let response = projector.handle(support::batch(chunk.to_vec())).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "{:?}",
            response.batch_item_failures
        );
    }
    inspector.assert_read_models(&shadow, orders).await;
}

/// `GET url` with `client`'s token: the JSON answer.
async fn get_json(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// Customer `c-3` asks to be forgotten: refused (409, naming the orders) while any of
/// their orders is in flight; an operator cancels those; then the erasure is accepted
/// (202), every order of theirs reads `[erased]` where the address was, with its total
/// and status as they were, and what is held about them says their key is gone.
async fn erase_a_customer(dev: &Dev, inspector: &Inspector, orders: &[OrderId]) {
    let customer = dev.client(&["--customer", "c-3"]);
    let operator = dev.client(&["--operator", "ops-e2e"]);
    let url = &dev.url;
    let theirs: Vec<OrderId> = orders
        .iter()
        .enumerate()
        .filter(|(i, _)| i % CUSTOMERS == 3)
        .map(|(_, id)| *id)
        .collect();
    let erase = || async {
        let reply = customer
            .delete(format!(
                "{url}/customers/c-3/personal-data?reason=asked%20to%20be%20forgotten"
            ))
            .send()
            .await
            .unwrap();
        (reply.status().as_u16(), reply.json::<Value>().await.unwrap())
    };
    let mut in_flight = Vec::new();
    for id in &theirs {
        if !inspector.status(*id).await.is_final() {
            in_flight.push(*id);
        }
    }
    if let Some(first) = in_flight.first() {
        let (status, body) = erase().await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error"]["code"], "orders_in_flight");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&first.to_string())
        );
        for id in &in_flight {
            let reply = operator
                .post(format!("{url}/orders/{id}/cancel"))
                .json(&json!({"reason": "the customer asked to be forgotten"}))
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 200);
        }
        quiesce(inspector, orders, Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        quiesce(inspector, orders, Duration::from_secs(60)).await;
    }
    let before = customer
        .get(format!("{url}/orders/{}", theirs[0]))
        .send()
        .await
        .unwrap();
    let before: Value = before.json().await.unwrap();
    assert_eq!(before["shippingAddress"]["name"], "Ada", "{before}");
    // What is held about them: every order and its OrderPlaced, the address opened.
    let held = get_json(&customer, format!("{url}/customers/c-3/personal-data")).await;
    assert_eq!(held["keyHeld"], true, "{held}");
    assert_eq!(held["orders"].as_array().unwrap().len(), theirs.len());
    let events = held["events"].as_array().unwrap();
    assert_eq!(events.len(), theirs.len(), "one OrderPlaced each");
    assert!(
        events
            .iter()
            .all(|e| e["data"]["shippingAddress"]["name"] == "Ada"),
        "{held}"
    );
    let (status, body) = erase().await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["keyDeleted"], true);
    assert_eq!(body["orders"].as_array().unwrap().len(), theirs.len(), "{body}");
    for id in &theirs {
        for consistent in ["", "?consistent=true"] {
            let reply = customer
                .get(format!("{url}/orders/{id}{consistent}"))
                .send()
                .await
                .unwrap();
            let order: Value = reply.json().await.unwrap();
            assert_eq!(order["shippingAddress"]["name"], "[erased]", "{order}");
            assert_eq!(order["shippingAddress"]["line1"], "[erased]");
        }
    }
    let after: Value = get_json(&customer, format!("{url}/orders/{}", theirs[0])).await;
    assert_eq!(
        (&after["total"], &after["status"], &after["version"]),
        (&before["total"], &before["status"], &before["version"])
    );
    let forgotten = get_json(&operator, format!("{url}/customers/c-3/personal-data")).await;
    assert_eq!(forgotten["keyHeld"], false, "{forgotten}");
    let events = forgotten["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["eventType"] == "PersonalDataErased" && e["actor"] == "customer:c-3"),
        "{forgotten}"
    );
    assert!(
        events
            .iter()
            .filter(|e| e["eventType"] == "OrderPlaced")
            .all(|e| e["data"]["shippingAddress"]["name"] == "[erased]"),
        "{forgotten}"
    );
    // Everyone else's addresses still read.
    let other: Value = get_json(&operator, format!("{url}/orders/{}", orders[0])).await;
    assert_eq!(other["shippingAddress"]["name"], "Ada", "{other}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_orders_with_every_message_duplicated_settle_with_the_invariants() {
    let prefix = unique_name("e2e");
    let dir = state_dir();
    let dev = Dev::start(
        &prefix,
        &dir,
        &["--duplicate-deliveries", "--visibility-timeout", "2"],
    )
    .await;
    let inspector = inspector(&prefix).await;
    // The contract is served as committed, to anyone, token or not.
    let description = reqwest::get(format!("{}/openapi.json", dev.url)).await.unwrap();
    assert_eq!(description.status().as_u16(), 200);
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("functions/order-api/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(description.json::<Value>().await.unwrap(), committed);
    let orders = place_orders(&dev, 0..200).await;
    quiesce(&inspector, &orders, Duration::from_secs(240)).await;
    a_stranger_reaches_none_of_them(&dev, &orders).await;
    cancel_some_confirmed(&dev, &inspector, &orders).await;
    quiesce(&inspector, &orders, Duration::from_secs(120)).await;
    // Let compensation finish (the order is CANCELLED before release and refund land).
    tokio::time::sleep(Duration::from_secs(3)).await;
    quiesce(&inspector, &orders, Duration::from_secs(60)).await;
    // Midway, a customer asks to be forgotten.
    erase_a_customer(&dev, &inspector, &orders).await;

    inspector.assert_invariants(&orders, &catalog_stock()).await;
    // The projector saw every message twice, in the queue's order: its views are the
    // fold of the store.
    inspector.assert_read_models(&inspector.views, &orders).await;
    project_adversarially(&inspector, &orders).await;
    // The consistency checker, as an operator runs it: nothing to report.
    let (code, report) = orderflow_check(&prefix);
    assert_eq!(code, Some(0), "orderflow check: {report}");
    assert!(
        report.contains("checked 200 orders") && report.contains(": 0 finding(s)"),
        "{report}"
    );
    // A view corrupted on purpose: the checker says which, and exits 1.
    inspector
        .dynamodb
        .update_item()
        .table_name(inspector.views.table())
        .key(
            "orderId",
            aws_sdk_dynamodb::types::AttributeValue::S(orders[0].to_string()),
        )
        .update_expression("SET #s = :s")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":s", aws_sdk_dynamodb::types::AttributeValue::S("READY".into()))
        .send()
        .await
        .unwrap();
    let (code, report) = orderflow_check(&prefix);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains(&format!("order {}: the view", orders[0])) && report.contains(": 1 finding(s)"),
        "{report}"
    );
    let mut statuses = HashMap::new();
    for id in &orders {
        *statuses
            .entry(format!("{:?}", inspector.status(*id).await))
            .or_insert(0) += 1;
    }
    assert!(
        statuses.contains_key("Confirmed") && statuses.contains_key("Cancelled"),
        "{statuses:?}"
    );
    assert_eq!(dev.prefix, prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_message_in_each_queue_ends_in_that_queues_dlq_and_nowhere_else() {
    let prefix = unique_name("e2e");
    let dir = state_dir();
    let _dev = Dev::start(&prefix, &dir, &["--visibility-timeout", "1"]).await;
    let inspector = inspector(&prefix).await;
    let sources = [
        "InventoryQueue",
        "PaymentQueue",
        "ShippingQueue",
        "OrderSagaQueue",
    ];
    for queue in sources {
        inspector
            .sqs
            .send_message()
            .queue_url(&inspector.stack.queue(queue).unwrap().url)
            .message_body(format!("poison for {queue}"))
            .send()
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let depths = inspector.queue_depths().await;
        let parked = sources
            .iter()
            .all(|q| depths[&q.replace("Queue", "DeadLetterQueue")] == 1 && depths[*q] == 0);
        if parked {
            break;
        }
        assert!(Instant::now() < deadline, "poison not parked in time: {depths:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for queue in sources {
        let dlq = &inspector
            .stack
            .queue(&queue.replace("Queue", "DeadLetterQueue"))
            .unwrap()
            .url;
        let messages = inspector
            .sqs
            .receive_message()
            .queue_url(dlq)
            .max_number_of_messages(10)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        let bodies: Vec<_> = messages.iter().filter_map(|m| m.body()).collect();
        assert_eq!(
            bodies,
            [format!("poison for {queue}")],
            "each DLQ holds its own queue's poison only"
        );
    }
    assert_eq!(inspector.queue_depths().await["RelayFailureQueue"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_mid_run_and_restarted_the_runner_loses_and_doubles_nothing() {
    let prefix = unique_name("e2e");
    let dir = state_dir();
    let mut dev = Dev::start(&prefix, &dir, &["--visibility-timeout", "3"]).await;
    let inspector = inspector(&prefix).await;
    let mut orders = place_orders(&dev, 0..60).await;
    // Kill it as soon as it has relayed a first batch (so the restart resumes from a
    // checkpoint) while most of the work is still in flight: stream records unrelayed,
    // messages received and unfinished.
    let checkpoint = dir.join(format!("{prefix}-stream-checkpoint.json"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !checkpoint.exists() {
        assert!(
            Instant::now() < deadline,
            "the runner relayed nothing within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dev.kill();
    let mut busy = false;
    for id in &orders {
        busy |= inspector.status(*id).await == OrderStatus::Pending;
    }
    assert!(busy, "the crash came mid-run: some orders were still pending");

    let dev = Dev::start(&prefix, &dir, &["--visibility-timeout", "3"]).await;
    orders.extend(place_orders(&dev, 60..100).await);
    quiesce(&inspector, &orders, Duration::from_secs(180)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    quiesce(&inspector, &orders, Duration::from_secs(60)).await;
    inspector.assert_invariants(&orders, &catalog_stock()).await;
    // Nothing double-applied: every participant's stream has at most one of each step.
    for id in &orders {
        for (stream, kind) in [
            (
                inspector
                    .stream::<orderflow_domain::inventory::Inventory>(*id)
                    .await,
                "inventory",
            ),
            (
                inspector.stream::<orderflow_domain::payment::Payment>(*id).await,
                "payment",
            ),
            (
                inspector
                    .stream::<orderflow_domain::shipment::Shipment>(*id)
                    .await,
                "shipment",
            ),
        ] {
            let unique: BTreeSet<_> = stream.iter().collect();
            assert_eq!(unique.len(), stream.len(), "{kind} of {id}: {stream:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_provisions_exactly_what_the_template_declares() {
    let prefix = unique_name("e2e");
    let output = Command::new(dev_tools())
        .current_dir(workspace())
        .args(["up", "--prefix", &prefix, "--provision-only"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let template = Template::load(&Template::default_path()).unwrap();
    let expected = |kind: &str| -> BTreeSet<String> {
        template
            .logical_ids(kind)
            .into_iter()
            .map(|id| format!("{prefix}-{id}"))
            .collect()
    };

    let dynamodb = local::dynamodb_client().await.unwrap();
    let mut tables = BTreeSet::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .list_tables()
            .set_exclusive_start_table_name(start)
            .send()
            .await
            .unwrap();
        tables.extend(
            page.table_names()
                .iter()
                .filter(|n| n.starts_with(&format!("{prefix}-")))
                .cloned(),
        );
        start = page.last_evaluated_table_name;
        if start.is_none() {
            break;
        }
    }
    assert_eq!(tables, expected("AWS::DynamoDB::Table"));

    let sqs = local::sqs_client().await.unwrap();
    let urls = sqs
        .list_queues()
        .queue_name_prefix(&prefix)
        .send()
        .await
        .unwrap()
        .queue_urls
        .unwrap_or_default();
    let queues: BTreeSet<_> = urls
        .iter()
        .filter_map(|u| u.rsplit('/').next().map(str::to_owned))
        .collect();
    assert_eq!(queues, expected("AWS::SQS::Queue"));
    for url in &urls {
        let name = url.rsplit('/').next().unwrap();
        let logical = name.trim_start_matches(&format!("{prefix}-"));
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        let declared = template.properties(logical);
        let visibility = declared
            .get("VisibilityTimeout")
            .and_then(serde_norway::Value::as_u64)
            .unwrap_or(30);
        assert_eq!(
            attributes[&aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout],
            visibility.to_string(),
            "{logical}"
        );
        let redrive = attributes.get(&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy);
        assert_eq!(
            redrive.is_some(),
            declared.get("RedrivePolicy").is_some(),
            "{logical}: redrive as declared"
        );
        if let Some(policy) = redrive {
            let policy: Value = serde_json::from_str(policy).unwrap();
            let declared_receives = declared
                .get("RedrivePolicy")
                .and_then(|r| r.get("maxReceiveCount"))
                .and_then(serde_norway::Value::as_u64);
            assert_eq!(policy["maxReceiveCount"].as_u64(), declared_receives, "{logical}");
            let dlq = format!("{prefix}-{}", logical.replace("Queue", "DeadLetterQueue"));
            assert!(
                policy["deadLetterTargetArn"].as_str().unwrap().ends_with(&dlq),
                "{logical} -> {dlq}"
            );
        }
    }

    let events = local::eventbridge_client().await.unwrap();
    let buses: BTreeSet<_> = events
        .list_event_buses()
        .name_prefix(&prefix)
        .send()
        .await
        .unwrap()
        .event_buses
        .unwrap_or_default()
        .into_iter()
        .filter_map(|b| b.name)
        .collect();
    assert_eq!(buses, expected("AWS::Events::EventBus"));
    let mut rules = Vec::new();
    for bus in &buses {
        let on_bus = events
            .list_rules()
            .event_bus_name(bus)
            .send()
            .await
            .unwrap()
            .rules
            .unwrap_or_default();
        rules.extend(on_bus.into_iter().map(|rule| (bus.clone(), rule)));
    }
    let rule_names: BTreeSet<_> = rules.iter().filter_map(|(_, r)| r.name.clone()).collect();
    assert_eq!(rule_names, expected("AWS::Events::Rule"));
    for (bus, rule) in &rules {
        let name = rule.name.as_deref().unwrap();
        let logical = name.trim_start_matches(&format!("{prefix}-"));
        let declared_bus = serde_json::to_value(&template.properties(logical)["EventBusName"]).unwrap();
        let declared_bus = declared_bus["!Ref"].as_str().unwrap();
        assert_eq!(
            bus,
            &format!("{prefix}-{declared_bus}"),
            "{logical} is on the bus it declares"
        );
        let declared: Value = serde_json::to_value(&template.properties(logical)["EventPattern"]).unwrap();
        let actual: Value = serde_json::from_str(rule.event_pattern.as_deref().unwrap()).unwrap();
        assert_eq!(actual, declared, "{logical}: the pattern is the template's");
        let targets = events
            .list_targets_by_rule()
            .rule(name)
            .event_bus_name(bus)
            .send()
            .await
            .unwrap();
        let arns: Vec<_> = targets
            .targets
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.arn)
            .collect();
        // The template names its target `!GetAtt <Queue>.Arn`.
        let queue = match &template.properties(logical)["Targets"][0]["Arn"] {
            serde_norway::Value::Tagged(tagged) => {
                tagged.value.as_str().unwrap().trim_end_matches(".Arn").to_owned()
            }
            other => panic!("{logical}: a target that is not a !GetAtt: {other:?}"),
        };
        assert_eq!(arns.len(), 1);
        assert!(
            arns[0].ends_with(&format!("{prefix}-{queue}")),
            "{logical} targets {queue}"
        );
    }

    let stream = dynamodb
        .describe_table()
        .table_name(format!("{prefix}-EventStoreTable"))
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(
        stream
            .stream_specification
            .unwrap()
            .stream_view_type
            .unwrap()
            .as_str(),
        "NEW_IMAGE"
    );
    let mut indexes: Vec<String> = stream
        .global_secondary_indexes
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.index_name.clone())
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["by-time", "pending"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_payment_token_address_or_name_reaches_any_log_line_table_or_queue_and_erasure_shreds_them() {
    const TOKEN: &str = "tok_canary7f3a9c2e";
    const SECRETS: &[&str] = &[
        "canary7f3a",
        "Canary-Name-4b1d",
        "Canary-Street-4b1d",
        "Canaryville-4b1d",
    ];
    let prefix = unique_name("e2e-pii");
    let dir = state_dir();
    // Production's level (info), and debug for every orderflow crate on top.
    let level = "info,orderflow=debug,orderflow_cli=debug,orderflow_runner=debug,orderflow_adapters=debug,orderflow_app=debug,\
                 order_api=debug,inventory=debug,payment=debug,shipping=debug,order_saga=debug,projector=debug,\
                 relay=debug,pending_timeout=debug";
    let mut dev = Dev::start_with(
        &prefix,
        &dir,
        &["--visibility-timeout", "2"],
        &[("RUST_LOG", level)],
    )
    .await;
    let inspector = inspector(&prefix).await;
    let clients = dev.customer_clients();
    let mut orders = Vec::new();
    for (i, token) in [
        TOKEN,
        TOKEN,
        "tok_decline",
        "tok_flaky",
        TOKEN,
        "tok_insufficient_funds",
    ]
    .iter()
    .enumerate()
    {
        let mut request = order_request(i);
        request["paymentToken"] = json!(token);
        request["shippingAddress"] = json!({
            "name": "Zed Canary-Name-4b1d", "line1": "99 Canary-Street-4b1d",
            "city": "Canaryville-4b1d", "postalCode": "40401", "country": "US",
        });
        let reply = clients[i % CUSTOMERS]
            .post(format!("{}/orders", dev.url))
            .header("idempotency-key", format!("pii-{i}"))
            .json(&request)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 201);
        let order: Value = reply.json().await.unwrap();
        orders.push(OrderId::parse(order["orderId"].as_str().unwrap()).unwrap());
    }
    // Bad input carrying the same values is refused, and not logged either.
    let bad = clients[1]
        .post(format!("{}/orders", dev.url))
        .header("idempotency-key", "pii-bad")
        .json(&json!({"customerId": "c-1", "items": [], "paymentToken": TOKEN,
                       "shippingAddress": {"name": "Zed Canary-Name-4b1d"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    quiesce(&inspector, &orders, Duration::from_secs(120)).await;
    let cancel = clients[0]
        .post(format!("{}/orders/{}/cancel", dev.url, orders[0]))
        .json(&json!({"reason": "no longer needed"}))
        .send()
        .await
        .unwrap();
    assert!(cancel.status().is_success() || cancel.status() == 409);
    quiesce(&inspector, &orders, Duration::from_secs(60)).await;

    // Kept only sealed: no table item, snapshot, view, idempotency answer, queue or
    // DLQ body holds a canary in clear; the events hold the address as ciphertext.
    let stored = inspector.stored_text().await;
    for secret in SECRETS {
        assert!(!stored.contains(secret), "{secret} is stored in clear");
    }
    assert!(
        stored.contains(&orders[0].to_string()),
        "the scan reads the orders"
    );
    assert!(
        stored.contains(r#"\"shippingAddress\":{\"v\":1,"#),
        "the sealed address is kept"
    );
    // The owner reads it opened.
    let order: Value = get_json(&clients[2], format!("{}/orders/{}", dev.url, orders[2])).await;
    assert_eq!(order["shippingAddress"]["name"], "Zed Canary-Name-4b1d");
    // c-2 (their order declined, so over) is erased; c-1's order is still in flight.
    let refused = clients[1]
        .delete(format!(
            "{}/customers/c-1/personal-data?reason=erase%20me",
            dev.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let erased = clients[2]
        .delete(format!(
            "{}/customers/c-2/personal-data?reason=erase%20me",
            dev.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), 202);
    let order: Value = get_json(&clients[2], format!("{}/orders/{}", dev.url, orders[2])).await;
    assert_eq!(order["shippingAddress"]["name"], "[erased]", "{order}");
    let stored = inspector.stored_text().await;
    for secret in SECRETS {
        assert!(
            !stored.contains(secret),
            "{secret} is stored in clear after erasure"
        );
    }
    let (code, report) = orderflow_check(&prefix);
    assert_eq!(code, Some(0), "orderflow check after an erasure: {report}");
    dev.kill();

    let logs: String = dev
        .outputs
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    // The capture works: every order and the masked token are there.
    for id in &orders {
        assert!(logs.contains(&id.to_string()), "{id} is not in the logs");
    }
    assert!(
        logs.lines().count() > 50,
        "too little was logged to prove anything"
    );
    for secret in SECRETS {
        let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(secret)).take(3).collect();
        assert!(leaks.is_empty(), "{secret} reached the logs: {leaks:#?}");
    }
}

/// Where a running `orderflow-dev up` serves its operations page, from what it printed
/// (`http://127.0.0.1:<port>`, no trailing slash).
fn ops_url(dev: &Dev) -> String {
    let out = std::fs::read_to_string(&dev.outputs[1]).unwrap();
    out.lines()
        .find_map(|l| l.trim().strip_prefix("operations: "))
        .and_then(|l| l.split_whitespace().next())
        .expect("orderflow-dev up printed its operations address")
        .trim_end_matches('/')
        .to_owned()
}

/// `orderflow-dev load` against `dev`, with `args`: its exit code, stdout and JSON report.
fn load(dev: &Dev, args: &[&str]) -> (Option<i32>, String, Value) {
    let report = dev.state_dir.join(format!("load-{}.json", uuid::Uuid::now_v7()));
    let output = Command::new(dev_tools())
        .current_dir(workspace())
        .args([
            "load",
            "--prefix",
            &dev.prefix,
            "--api",
            &dev.url,
            "--calls",
            &format!("{}/calls", ops_url(dev)),
        ])
        .args(["--state-dir", dev.state_dir.to_str().unwrap(), "--quiet"])
        .args(["--report", report.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let json = std::fs::read_to_string(&report)
        .map(|r| serde_json::from_str(&r).unwrap())
        .unwrap_or_else(|_| panic!("no report: {output:?}"));
    (output.status.code(), stdout, json)
}

#[tokio::test]
async fn orderflow_load_places_a_mix_and_reports_latency_calls_dlqs_and_check() {
    let prefix = unique_name("load");
    let dir = state_dir();
    let dev = Dev::start(&prefix, &dir, &[]).await;

    // Each kind of the mix, against the running stack.
    let (code, stdout, report) = load(
        &dev,
        &[
            "--orders",
            "16",
            "--concurrency",
            "4",
            "--declines",
            "25",
            "--out-of-stock",
            "25",
            "--cancellations",
            "25",
            "--seed",
            "3",
        ],
    );
    assert_eq!(code, Some(0), "{stdout}\n{report:#}");
    assert_eq!(
        (report["placed"].as_u64(), report["rejected"].as_u64()),
        (Some(16), Some(0))
    );
    assert_eq!(
        (report["unexpected"].as_u64(), report["unsettled"].as_u64()),
        (Some(0), Some(0))
    );
    let mix: BTreeSet<&str> = report["mix"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        mix,
        BTreeSet::from(["cancelled", "declined", "ordinary", "outOfStock"]),
        "{report:#}"
    );
    let outcomes = report["outcomes"].as_object().unwrap();
    for outcome in [
        "CONFIRMED",
        "CANCELLED/payment_declined",
        "CANCELLED/out_of_stock",
        "CANCELLED/requested",
    ] {
        assert!(outcomes.contains_key(outcome), "{outcome} missing: {report:#}");
    }
    assert_eq!(outcomes.values().filter_map(Value::as_u64).sum::<u64>(), 16);
    assert_eq!(report["timeToTerminal"]["count"].as_u64(), Some(16));
    assert!(report["apiLatency"]["count"].as_u64().unwrap() >= 16);
    assert!(report["endToEndPerSecond"].as_f64().unwrap() > 0.0);
    assert!(report["eventsPerOrder"].as_f64().unwrap() >= 5.0, "{report:#}");
    let calls = &report["calls"];
    assert!(
        calls["byOperation"]["order-api DynamoDB.TransactWriteItems"]
            .as_f64()
            .unwrap()
            >= 1.0,
        "{calls:#}"
    );
    assert!(
        calls["byOperation"]["relay EventBridge.PutEvents"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{calls:#}"
    );
    assert!(
        calls["eventSourceMappingPerOrder"].as_f64().unwrap() > 0.0,
        "{calls:#}"
    );
    assert!(
        calls["floor"].is_null(),
        "the floor is an ordinary order's: {calls:#}"
    );
    assert!(
        report["dlqDepths"].as_object().unwrap().values().all(|d| d == 0),
        "{report:#}"
    );
    assert_eq!(report["checkFindings"], json!([]));
    assert!(stdout.contains("check           0 finding(s)"), "{stdout}");

    // Ordinary orders one at a time: what they cost against the designed floor (46
    // calls), and the emulators' ceiling for the same mix, side by side.
    let (code, stdout, report) = load(
        &dev,
        &[
            "--orders",
            "4",
            "--concurrency",
            "1",
            "--declines",
            "0",
            "--out-of-stock",
            "0",
            "--cancellations",
            "0",
            "--ceiling",
            "2",
        ],
    );
    assert_eq!(code, Some(0), "{stdout}");
    let calls = &report["calls"];
    assert_eq!(calls["floor"], json!(46));
    let of_floor = calls["ofFloor"].as_f64().unwrap();
    assert!((0.5..=1.1).contains(&of_floor), "{of_floor}: {calls:#}");
    assert!(
        report["ceiling"]["callsPerSecond"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );
    assert!(report["ofCeiling"].as_f64().unwrap() > 0.0);
    assert!(stdout.contains("× the ceiling"), "{stdout}");

    // The capacity model priced from what this run measured, not from the floor.
    let measured = dev.state_dir.join("measured.json");
    std::fs::write(&measured, report.to_string()).unwrap();
    let sized = dev.state_dir.join("capacity.json");
    let output = Command::new(dev_tools())
        .args(["capacity", "--orders-per-second", "50,5000", "--measured"])
        .arg(&measured)
        .arg("--json")
        .arg(&sized)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let sized: Value = serde_json::from_str(&std::fs::read_to_string(&sized).unwrap()).unwrap();
    assert!(
        sized["perOrder"]["source"]
            .as_str()
            .unwrap()
            .starts_with("measured"),
        "{sized:#}"
    );
    assert_eq!(sized["perOrder"]["events"], report["eventsPerOrder"]);
    let at_5000 = &sized["sizings"][1];
    assert_eq!(at_5000["ordersPerSecond"], json!(5000.0));
    assert!(at_5000["binds"]["name"].is_string(), "{at_5000:#}");
    assert!(stdout.contains("| 5,000 |"), "{stdout}");
}

#[test]
fn dev_refuses_a_non_loopback_address_unless_told_it_is_meant() {
    let refused = Command::new(dev_tools())
        .current_dir(workspace())
        .args(["up", "--prefix", &unique_name("remote"), "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--allow-remote"), "{stderr}");
    // Nothing was provisioned for it: the refusal comes first.
    let token = Command::new(binary())
        .current_dir(workspace())
        .args(["token", "--customer", "c-1", "--prefix", "never-started-remote"])
        .output()
        .unwrap();
    assert_eq!(token.status.code(), Some(1));
    assert!(token.stdout.is_empty(), "no token on stdout when there is no key");
    assert!(String::from_utf8_lossy(&token.stderr).contains("make dev"));
    // The operations endpoints likewise.
    let refused = Command::new(dev_tools())
        .current_dir(workspace())
        .args([
            "up",
            "--prefix",
            &unique_name("remote"),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--ops-listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--ops-listen 0.0.0.0:0") && stderr.contains("--allow-remote"),
        "{stderr}"
    );
}

#[test]
fn footprint_sets_each_binary_beside_the_baseline_and_names_what_is_over() {
    let hello = built("hello-lambda");
    let inventory = built("inventory");
    // The order API reads its cursor key from Secrets Manager at init: the stand-in
    // Runtime API answers that call too.
    let api = built("order-api");
    let json = state_dir().join("footprint.json");
    let footprint = |budget: &[&str], binaries: &[&PathBuf]| {
        Command::new(dev_tools())
            .current_dir(workspace())
            .args(["footprint", "--runs", "3", "--baseline"])
            .arg(&hello)
            .args(budget)
            .args(binaries)
            .arg("--json")
            .arg(&json)
            .output()
            .unwrap()
    };
    let roomy = footprint(
        &["--max-bytes", "2000000000", "--max-init-ratio", "1000"],
        &[&inventory, &api],
    );
    let stdout = String::from_utf8_lossy(&roomy.stdout);
    assert_eq!(
        roomy.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&roomy.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["baseline"]["name"], "hello-lambda");
    let names: Vec<&str> = report["binaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["inventory", "order-api"]);
    for (measured, path) in report["binaries"]
        .as_array()
        .unwrap()
        .iter()
        .zip([&inventory, &api])
    {
        assert_eq!(measured["bytes"], json!(std::fs::metadata(path).unwrap().len()));
        assert!(measured["initP50Us"].as_u64().unwrap() > 0, "{measured}");
        assert!(
            measured["initP90Us"].as_u64() >= measured["initP50Us"].as_u64(),
            "{measured}"
        );
        assert!(measured["initRatio"].as_f64().unwrap() > 0.0, "{measured}");
    }
    for name in ["hello-lambda", "inventory", "order-api", "init p50"] {
        assert!(stdout.contains(name), "{name} missing from\n{stdout}");
    }

    // Below the baseline's own size, both are over, and each is named.
    let tight = footprint(&["--max-bytes", "1000"], &[&inventory, &api]);
    assert_eq!(tight.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&tight.stderr);
    assert!(
        stderr.contains("inventory weighs") && stderr.contains("order-api weighs"),
        "{stderr}"
    );

    // A binary that never asks for an invocation is a failure that names it.
    let quits = PathBuf::from("/bin/true");
    let failed = footprint(&[], &[&quits]);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("true exited"), "{stderr}");
}

/// The operations page in Debian's Chromium, driven by Playwright
/// (`tests/ui/ops-page.mjs`): orders placed through the API appear and confirm, an
/// order's timeline opens, and a poison message appears under its DLQ with its error
/// and its order. `make test` installs the browser and Playwright first
/// (`infra/local/browser.sh`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operations_page_shows_orders_confirming_a_timeline_and_a_parked_poison_message_in_chromium() {
    let script = workspace().join("tests/ui/ops-page.mjs");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        std::path::Path::new(&chromium).exists()
            && workspace().join("tests/ui/node_modules/playwright-core").exists(),
        "no {chromium} or Playwright: `make test` installs both (infra/local/browser.sh install)"
    );
    let prefix = unique_name("ui");
    let dir = state_dir();
    let dev = Dev::start(&prefix, &dir, &["--visibility-timeout", "1"]).await;
    let inspector = inspector(&prefix).await;
    let customer = dev.client(&["--customer", "c-ui"]);
    let reply = customer
        .post(format!("{}/orders", dev.url))
        .header("idempotency-key", "ui-poisoned")
        .json(&json!({
            "customerId": "c-ui",
            "items": [{"sku": "SKU-2", "quantity": 1}],
            "paymentToken": "tok_visa",
            "shippingAddress": {"name": "Ada", "line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);
    let poisoned = reply.json::<Value>().await.unwrap()["orderId"]
        .as_str()
        .unwrap()
        .to_owned();
    // An OrderPlaced for that order that no version of the contract reads.
    let poison = json!({
        "version": "0", "id": uuid::Uuid::now_v7().to_string(), "source": "orderflow.order",
        "detail-type": "OrderPlaced", "account": "000000000000", "time": "2026-12-03T10:00:00Z",
        "region": "us-east-1", "resources": [],
        "detail": {"eventType": "OrderPlaced", "schemaVersion": 99, "aggregateType": "order", "aggregateId": poisoned},
    });
    inspector
        .sqs
        .send_message()
        .queue_url(&inspector.stack.queue("InventoryQueue").unwrap().url)
        .message_body(poison.to_string())
        .send()
        .await
        .unwrap();
    // The page's JSON names what is wrong with an order id, and an order it lacks.
    let ops = ops_url(&dev);
    let bad = reqwest::get(format!("{ops}/api/orders/not-an-id")).await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["field"], "id");
    let missing = reqwest::get(format!("{ops}/api/orders/{}", uuid::Uuid::now_v7()))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let shots = workspace().join("target/ui");
    let output = Command::new("node")
        .arg(&script)
        .current_dir(workspace())
        .env("API_URL", &dev.url)
        .env("TOKEN", dev.token(&["--customer", "c-ui"]))
        .env("CUSTOMER", "c-ui")
        .env("OPS_URL", &ops)
        .env("POISON_ORDER", &poisoned)
        .env("DLQ", "InventoryDeadLetterQueue")
        .env("SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(seen["ok"], true, "{seen}");
    assert_eq!(seen["confirmed"].as_array().unwrap().len(), 3, "{seen}");
    assert!(
        seen["parkedError"].as_str().unwrap().contains("inventory"),
        "the consumer's recorded error: {seen}"
    );
    for shot in ["ops-page.png", "ops-order.png"] {
        let bytes = std::fs::read(shots.join(shot)).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
            "{shot}: {} bytes",
            bytes.len()
        );
    }
}

/// `orderflow <args>` against `prefix`: exit code, stdout, stderr.
fn orderflow(prefix: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let (global, command): (Vec<&str>, Vec<&str>) = args
        .iter()
        .partition(|a| a.starts_with("-v") || **a == "--log-format" || **a == "json");
    let output = Command::new(binary())
        .current_dir(workspace())
        .args(&global)
        .args(&command)
        .args(["--prefix", prefix])
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every operator command on a real run: its result on stdout, readable, and nothing
/// on stderr (warnings only, and there are none); `-v` and `--log-format json` add logs
/// on stderr and never on stdout; a failure is one line on stderr and exit code 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_operator_command_prints_its_result_and_no_logs_and_fails_in_one_line() {
    let prefix = unique_name("cli");
    let dir = state_dir();
    let dev = Dev::start(&prefix, &dir, &["--visibility-timeout", "1"]).await;
    let inspector = inspector(&prefix).await;
    let orders = place_orders(&dev, 0..4).await;
    quiesce(&inspector, &orders, Duration::from_secs(120)).await;
    inspector
        .sqs
        .send_message()
        .queue_url(&inspector.stack.queue("PaymentQueue").unwrap().url)
        .message_body("not an event")
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while inspector.queue_depths().await["PaymentDeadLetterQueue"] == 0 {
        assert!(Instant::now() < deadline, "the poison was not parked");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ok = |args: &[&str], expect: &[&str]| {
        let (code, out, err) = orderflow(&prefix, args);
        assert_eq!(code, Some(0), "{args:?}: {out}\n{err}");
        assert!(err.is_empty(), "{args:?} logged on stderr by default: {err}");
        assert!(
            !out.contains("\"timestamp\""),
            "{args:?}: a log line on stdout: {out}"
        );
        for line in expect {
            assert!(out.contains(line), "{args:?}: {line:?} not in\n{out}");
        }
        out
    };
    let listed = ok(&["dlq", "list"], &["dlq ", "messages", "oldest", "source"]);
    let row = listed
        .lines()
        .find(|l| l.starts_with("PaymentDeadLetterQueue"))
        .unwrap();
    assert_eq!(row.split_whitespace().nth(1), Some("1"), "{listed}");
    ok(
        &["dlq", "show", "PaymentDeadLetterQueue"],
        &[
            "1 message(s) in PaymentDeadLetterQueue",
            "(not an event)",
            "last error: ",
        ],
    );
    ok(
        &["dlq", "redrive", "PaymentDeadLetterQueue"],
        &["moved 1 message(s) from PaymentDeadLetterQueue back to its queue"],
    );
    ok(&["rebuild"], &["rebuilt ", "same", "missing", "differing"]);
    ok(&["check", "--grace", "0"], &["0 finding(s)"]);
    ok(
        &["stock", "receive", "SKU-1", "3", "--reason", "e2e"],
        &["SKU-1: received 3 (e2e); available "],
    );
    ok(
        &["stock", "shard", "SKU-2", "--shards", "2"],
        &["SKU-2: stock over 2 items; available "],
    );
    ok(
        &["catalog", "export", "--format", "csv"],
        &["sku,name,priceAmount,currency,available,reserved,sold"],
    );
    // In a second terminal: none of the endpoint variables, and the CLI finds the
    // local stack from what `orderflow-dev up` recorded in its state directory; with
    // nothing recorded it says what to do.
    let second_terminal = |state_dir: &std::path::Path| {
        let mut command = Command::new(binary());
        command.current_dir(workspace());
        for (name, _) in std::env::vars() {
            if name.starts_with("AWS_ENDPOINT_URL") || name == "AWS_REGION" {
                command.env_remove(name);
            }
        }
        let output = command
            .env("ORDERFLOW_STATE_DIR", state_dir)
            .args(["check", "--grace", "0", "--prefix", &prefix])
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, out, err) = second_terminal(&dir);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("0 finding(s)"), "{out}");
    let nothing_recorded = dir.join("nothing-recorded");
    std::fs::create_dir_all(&nothing_recorded).unwrap();
    let (code, _, err) = second_terminal(&nothing_recorded);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("no emulator endpoint") && err.contains("make dev") && err.lines().count() == 1,
        "{err}"
    );
    ok(&["relay", "recover"], &["recovered 0 batch(es)"]);
    ok(&["relay", "quarantine"], &["no stream record is quarantined"]);
    let now = jiff::Timestamp::now();
    let (from, until) = (
        (now - jiff::SignedDuration::from_hours(1)).to_string(),
        (now + jiff::SignedDuration::from_hours(1)).to_string(),
    );
    let replay: Vec<&str> = vec![
        "replay", "--owner", "ops-e2e", "--reason", "output", "--from", &from, "--until", &until,
    ];
    ok(
        &[&replay[..], &["--dry-run"]].concat(),
        &["dry run: ", "OrderPlaced"],
    );
    let one_order = orders[0].to_string();
    ok(
        &[
            &replay[..],
            &["--aggregate-id", &one_order, "--rate", "1000", "--quiet"],
        ]
        .concat(),
        &[
            "replay ",
            " completed: ",
            " sent to replay-bus (0 skipped)",
            "owner ops-e2e",
        ],
    );
    let file = dir.join("catalog.csv");
    std::fs::write(
        &file,
        "sku,name,priceAmount,currency,available\nSKU-CLI,Mug,900,USD,4\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    ok(
        &["catalog", "import", file, "--dry-run"],
        &[
            "would list SKU-CLI (Mug, 900 USD) with 4 units",
            "dry run (nothing written): 1 listed",
        ],
    );
    ok(
        &["catalog", "import", file],
        &["listed SKU-CLI", "imported: 1 listed, 0 repriced, 0 unchanged"],
    );
    ok(
        &["stock", "write-off", "SKU-CLI", "1", "--reason", "chipped"],
        &["SKU-CLI: wrote off 1 (chipped); available 3, reserved 0, sold 0"],
    );
    let capacity = Command::new(dev_tools())
        .current_dir(workspace())
        .args(["capacity", "--orders-per-second", "100"])
        .output()
        .unwrap();
    assert!(
        capacity.status.success() && capacity.stderr.is_empty(),
        "{capacity:?}"
    );
    assert!(
        String::from_utf8_lossy(&capacity.stdout).contains("100"),
        "{capacity:?}"
    );

    // More logs when asked, on stderr only: readable, or JSON lines.
    let (code, out, err) = orderflow(&prefix, &["-v", "rebuild"]);
    assert_eq!(code, Some(0));
    assert!(
        err.contains("rebuilding the order read model") && !err.contains("{\""),
        "{err}"
    );
    assert!(!out.contains("rebuilding the order read model"), "{out}");
    let (_, _, err) = orderflow(&prefix, &["-v", "--log-format", "json", "rebuild"]);
    let lines: Vec<&str> = err.lines().collect();
    assert!(!lines.is_empty());
    for line in lines {
        let log: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(log["level"].is_string(), "{line}");
    }

    // A failure: one line, what failed and what to do; the causes only with -v.
    let (code, out, err) = orderflow(&prefix, &["dlq", "show", "Nope"]);
    assert_eq!(code, Some(1));
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: no DLQ \"Nope\"; the template has "),
        "{err}"
    );
    let (code, _, err) = orderflow(&unique_name("nosuch"), &["check"]);
    assert_eq!(code, Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no local stack") && err.contains("run `orderflow-dev up --prefix"),
        "{err}"
    );
    let (code, _, err) = orderflow(&prefix, &["stock", "shard", "SKU-2", "--shards", "0"]);
    assert_eq!((code, err.trim()), (Some(1), "error: --shards: 1 to 32"));
}
