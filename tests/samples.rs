//! Every sample trigger in `events/` (the files `cargo lambda invoke --data-file`
//! takes) deserializes into its Lambda event type and runs through its handler
//! in-process, against DynamoDB Local and moto.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

mod support;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use axum::body::Body;
use http_body_util::BodyExt;
use orderflow_adapters::EventBridgePublisher;
use orderflow_domain::OrderId;
use orderflow_domain::inventory::Inventory;
use orderflow_domain::order::OrderStatus;
use orderflow_domain::payment::Payment;
use orderflow_provision::local;
use orderflow_runner::handler_for;
use support::Fixture;
use tower::ServiceExt;

const SAMPLE_ORDER: &str = "0192f0a0-7c1e-7a3b-9c2d-1e2f3a4b5c6d";

fn sample(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../events/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn sample_order() -> OrderId {
    OrderId::parse(SAMPLE_ORDER).unwrap()
}

async fn invoke_api(f: &Fixture, path: &str) -> (u16, serde_json::Value) {
    let request = lambda_http::request::from_str(&sample(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let request = request.map(|body| Body::from(body.to_vec()));
    let response = f.api().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn invoke_sqs(f: &Fixture, binary: &str, path: &str) -> Vec<String> {
    let event: SqsEvent = serde_json::from_str(&sample(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    invoke(f, binary, event).await
}

/// The sample `path` with each message's event moved to `version` of its stream: where
/// the store holds that event in this run (consumers act on the store's event, never
/// on a message's word, so a sample whose event the store does not hold is parked).
async fn invoke_sqs_at(f: &Fixture, binary: &str, path: &str, version: u64) -> Vec<String> {
    let mut event: SqsEvent = serde_json::from_str(&sample(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    for message in &mut event.records {
        let mut body: serde_json::Value = serde_json::from_str(message.body.as_deref().unwrap()).unwrap();
        body["detail"]["version"] = serde_json::json!(version);
        message.body = Some(body.to_string());
    }
    invoke(f, binary, event).await
}

/// Inventory's and payment's placement samples, each handled without a failure.
async fn answer_placement(f: &Fixture) {
    for (binary, path) in [
        ("inventory", "sqs/inventory-order-placed.json"),
        ("payment", "sqs/payment-order-placed.json"),
    ] {
        assert!(invoke_sqs(f, binary, path).await.is_empty(), "{path}");
    }
}

async fn invoke(f: &Fixture, binary: &str, event: SqsEvent) -> Vec<String> {
    let handler = handler_for(binary, f.runner.stack(), &f.dynamodb, 50).unwrap();
    handler(event)
        .await
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_gateway_samples_run_through_the_router() {
    let f = Fixture::new(false).await;
    let (status, body) = invoke_api(&f, "api/place-order.json").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["total"]["amount"], 3098);
    let events = f
        .stream::<orderflow_domain::order::Order>(OrderId::parse(body["orderId"].as_str().unwrap()).unwrap())
        .await;
    assert_eq!(events, ["OrderPlaced"]);

    f.place_with_id(sample_order(), &[("SKU-1", 2), ("SKU-2", 1)], "tok_visa")
        .await;
    let (status, body) = invoke_api(&f, "api/get-order.json").await;
    assert_eq!((status, body["orderId"].as_str()), (200, Some(SAMPLE_ORDER)));
    let (status, body) = invoke_api(&f, "api/get-order-at.json").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("PENDING")));
    f.settle().await;
    let (status, body) = invoke_api(&f, "api/list-customer-orders.json").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["orders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["orderId"] == SAMPLE_ORDER)
    );
    let (status, body) = invoke_api(&f, "api/get-order-events.json").await;
    assert_eq!(
        (status, body["events"][0]["actor"].as_str()),
        (200, Some("user-1"))
    );
    // The sample asks for PREPARING at version 4; the order is at 1 and PENDING.
    let (status, body) = invoke_api(&f, "api/advance-order.json").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (412, Some("version_mismatch"))
    );
    let (status, body) = invoke_api(&f, "api/cancel-order.json").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CANCELLED")));
    let (status, body) = invoke_api(&f, "api/list-products.json").await;
    assert_eq!(status, 200);
    assert_eq!(body["products"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_samples_run_through_their_consumers() {
    let f = Fixture::new(false).await;
    let id = sample_order();
    f.place_with_id(id, &[("SKU-1", 2), ("SKU-2", 1)], "tok_visa")
        .await;

    answer_placement(&f).await;
    assert_eq!(f.stream::<Inventory>(id).await, ["StockReserved"]);
    assert_eq!(f.stream::<Payment>(id).await, ["PaymentCaptured"]);
    assert!(
        invoke_sqs(&f, "projector", "sqs/projector-order-placed.json")
            .await
            .is_empty()
    );
    assert_eq!(f.views.get(id).await.unwrap().unwrap().view.version, 1);

    assert!(
        invoke_sqs(&f, "order-saga", "sqs/order-saga-answers.json")
            .await
            .is_empty()
    );
    assert_eq!(f.status(id).await, OrderStatus::Confirmed);
    assert!(
        invoke_sqs(&f, "shipping", "sqs/shipping-order-confirmed.json")
            .await
            .is_empty()
    );
    assert!(
        invoke_sqs(&f, "order-saga", "sqs/order-saga-shipment.json")
            .await
            .is_empty()
    );
    assert!(f.order(id).await.shipment.is_some());

    // The customer cancels: the cancellation samples, at the version the store holds
    // it, compensate.
    f.cancel(id).await.unwrap();
    let cancelled = u64::try_from(f.order_history(id).await.len()).unwrap();
    for (binary, path) in [
        ("inventory", "sqs/inventory-order-cancelled.json"),
        ("payment", "sqs/payment-order-cancelled.json"),
        ("shipping", "sqs/shipping-order-cancelled.json"),
    ] {
        assert!(
            invoke_sqs_at(&f, binary, path, cancelled).await.is_empty(),
            "{path}"
        );
    }
    f.assert_compensated(id).await;

    // The participants' compensations, recorded on the (now cancelled) order at the
    // times the participants made them.
    assert!(
        invoke_sqs(&f, "order-saga", "sqs/order-saga-compensations.json")
            .await
            .is_empty()
    );
    let view = f.folded_view(id).await;
    let refunded_at = f.history::<Payment>(id).await[1].occurred_at;
    let released_at = f.history::<Inventory>(id).await[1].occurred_at;
    let payment = view.payment.unwrap();
    assert_eq!(
        (payment.status.as_str(), payment.refunded_at),
        ("REFUNDED", Some(refunded_at))
    );
    assert_eq!(
        (view.stock.as_str(), view.stock_released_at),
        ("RELEASED", Some(released_at))
    );
    let shipment = view.shipment.unwrap();
    assert_eq!(shipment.status.as_str(), "CANCELLED");
    assert!(shipment.cancelled_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saga_failure_sample_cancels_the_order() {
    let f = Fixture::new(false).await;
    let id = sample_order();
    // Every unit of SKU-1 goes to one order, so the sample order finds none; its card
    // is declined: the store then holds the failures the sample carries.
    let first = f.place(&[("SKU-1", 100)], "tok_visa").await;
    f.settle().await;
    assert_eq!(f.status(first).await, OrderStatus::Confirmed);
    f.place_with_id(id, &[("SKU-1", 2), ("SKU-2", 1)], "tok_decline")
        .await;
    answer_placement(&f).await;
    assert_eq!(f.stream::<Inventory>(id).await, ["StockReservationFailed"]);
    assert_eq!(f.stream::<Payment>(id).await, ["PaymentDeclined"]);
    assert!(
        invoke_sqs(&f, "order-saga", "sqs/order-saga-failures.json")
            .await
            .is_empty()
    );
    let order = f.order(id).await;
    assert_eq!(order.status, OrderStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sample_is_relayed_to_the_routed_queues() {
    let f = Fixture::new(false).await;
    let event: StreamEvent = serde_json::from_str(&sample("relay/stream-batch.json")).unwrap();
    let publisher =
        EventBridgePublisher::new(local::eventbridge_client().await.unwrap(), f.runner.stack().bus());
    let response = relay::relay(&publisher, event).await;
    assert!(response.batch_item_failures.is_empty());
    let sqs = local::sqs_client().await.unwrap();
    let received = |queue: &'static str| {
        let (sqs, url) = (sqs.clone(), f.runner.stack().queue(queue).unwrap().url.clone());
        async move {
            let messages = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            let mut types: Vec<String> = messages
                .iter()
                .map(|m| {
                    let body: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
                    assert_eq!(
                        body["detail"]["aggregateId"], SAMPLE_ORDER,
                        "detail is the stored envelope"
                    );
                    body["detail-type"].as_str().unwrap().to_owned()
                })
                .collect();
            types.sort();
            types
        }
    };
    assert_eq!(received("InventoryQueue").await, ["OrderPlaced"]);
    assert_eq!(received("PaymentQueue").await, ["OrderPlaced"]);
    assert_eq!(
        received("OrderSagaQueue").await,
        ["PaymentCaptured", "StockReserved"]
    );
    assert!(received("ShippingQueue").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_the_bus_refuses_fail_their_batch_items_and_nothing_is_skipped() {
    let event: StreamEvent = serde_json::from_str(&sample("relay/stream-batch.json")).unwrap();
    let sequences: Vec<_> = event
        .records
        .iter()
        .map(|r| r.change.sequence_number.clone())
        .collect();
    let publisher = EventBridgePublisher::new(local::eventbridge_client().await.unwrap(), "no-such-bus");
    let response = relay::relay(&publisher, event).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect();
    assert_eq!(
        failed, sequences,
        "every unpublished record is failed, so Lambda retries it"
    );
}
