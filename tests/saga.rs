//! The saga end to end, in-process, against DynamoDB Local and moto: the relay reads
//! the event store's stream and publishes to the bus; the template's rules route to the
//! queues; the runner hands batches to the handlers as Lambda's event source mappings
//! would. Each test provisions its own stack from `template.yaml`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

mod support;

use orderflow_domain::inventory::Inventory;
use orderflow_domain::order::{CancellationReason, Order, OrderStatus, PaymentAnswer};
use orderflow_domain::payment::Payment;
use orderflow_runner::handler_for;
use support::{Fixture, batch, delivery};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_and_reserved_order_is_confirmed_and_shipped() {
    let f = Fixture::new(false).await;
    let id = f.place(&[("SKU-1", 2), ("SKU-2", 1)], "tok_visa").await;
    f.settle().await;

    let order = f.order(id).await;
    assert_eq!(order.status, OrderStatus::Confirmed);
    assert!(
        matches!(order.payment, PaymentAnswer::Captured { amount, .. } if amount.amount == 2 * 1299 + 500)
    );
    let shipment = order.shipment.expect("shipping created a shipment");
    assert!(shipment.tracking_number.starts_with("OF"));

    let stock = f.stock().await;
    assert_eq!((stock["SKU-1"].available, stock["SKU-1"].reserved), (98, 2));
    assert_eq!((stock["SKU-2"].available, stock["SKU-2"].reserved), (99, 1));
    let ledger = f.ledger().await;
    assert_eq!(ledger[&id.to_string()].amount, 3098);
    assert!(!ledger[&id.to_string()].refunded);
    assert!(
        f.vault_token_gone(id).await,
        "the token is forgotten after the capture"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_payment_cancels_and_releases_the_stock() {
    let f = Fixture::new(false).await;
    let id = f.place(&[("SKU-1", 3)], "tok_decline").await;
    f.settle().await;

    let order = f.order(id).await;
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert_eq!(
        order.cancellation.unwrap().reason,
        CancellationReason::PaymentDeclined
    );
    let stock = f.stock().await;
    assert_eq!(
        (stock["SKU-1"].available, stock["SKU-1"].reserved),
        (100, 0),
        "released"
    );
    assert!(f.ledger().await.is_empty(), "nothing was captured");
    let inventory = f.stream::<Inventory>(id).await;
    assert!(
        inventory == ["StockReserved", "StockReleased"] || inventory == ["ReservationVoided"],
        "{inventory:?}"
    );
    if inventory == ["StockReserved", "StockReleased"] {
        f.assert_outcomes_recorded(id).await;
        assert_eq!(f.folded_view(id).await.stock, "RELEASED");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_funds_cancels_with_its_own_reason() {
    let f = Fixture::new(false).await;
    let id = f.place(&[("SKU-2", 1)], "tok_insufficient_funds").await;
    f.settle().await;
    let order = f.order(id).await;
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert!(matches!(&order.payment, PaymentAnswer::Declined { reason } if reason == "insufficient_funds"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_stock_cancels_and_refunds_the_capture() {
    let f = Fixture::new(false).await;
    let id = f.place(&[("SKU-1", 1), ("SKU-RARE", 3)], "tok_visa").await;
    f.settle().await;

    let order = f.order(id).await;
    assert_eq!(order.status, OrderStatus::Cancelled);
    let cancellation = order.cancellation.unwrap();
    assert_eq!(cancellation.reason, CancellationReason::OutOfStock);
    assert!(
        cancellation.detail.unwrap().contains("SKU-RARE"),
        "names the short SKU"
    );
    let stock = f.stock().await;
    assert_eq!(
        (stock["SKU-1"].available, stock["SKU-1"].reserved),
        (100, 0),
        "nothing partially reserved"
    );
    assert_eq!(stock["SKU-RARE"].available, 2);
    // Payment may have captured before the cancellation reached it: then it refunded.
    if let Some(entry) = f.ledger().await.get(&id.to_string()) {
        assert!(entry.refunded, "a capture on a cancelled order is refunded");
        assert_eq!(
            f.stream::<Payment>(id).await,
            ["PaymentCaptured", "PaymentRefunded"]
        );
        f.assert_outcomes_recorded(id).await;
        assert_eq!(f.folded_view(id).await.payment.unwrap().status, "REFUNDED");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_cancel_after_confirmation_refunds_releases_and_cancels_the_shipment() {
    let f = Fixture::new(false).await;
    let id = f.place(&[("SKU-1", 2)], "tok_visa").await;
    f.settle().await;
    assert_eq!(f.status(id).await, OrderStatus::Confirmed);

    f.cancel(id).await.unwrap();
    f.settle().await;
    let order = f.order(id).await;
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert_eq!(order.cancellation.unwrap().reason, CancellationReason::Requested);
    assert!(f.ledger().await[&id.to_string()].refunded);
    let stock = f.stock().await;
    assert_eq!((stock["SKU-1"].available, stock["SKU-1"].reserved), (100, 0));
    f.assert_compensated(id).await;
    // The customer sees it: refunded, released, the shipment cancelled.
    f.assert_outcomes_recorded(id).await;
    let view = f.folded_view(id).await;
    assert_eq!(view.payment.unwrap().status, "REFUNDED");
    assert_eq!(view.stock, "RELEASED");
    assert_eq!(view.shipment.unwrap().status, "CANCELLED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_provider_is_retried_and_captures_once() {
    let f = Fixture::new(false).await;
    let id = f.place(&[("SKU-2", 2)], "tok_flaky").await;
    f.settle().await;
    assert_eq!(f.status(id).await, OrderStatus::Confirmed);
    assert_eq!(
        f.stream::<Payment>(id).await,
        ["PaymentCaptured"],
        "captured once, after a retry"
    );
    assert_eq!(f.ledger().await.len(), 1);
    assert_eq!(
        f.provider_attempts(id).await,
        2,
        "the first attempt failed, the redelivery succeeded"
    );
}

/// Wraps an order event as the bus delivers it to a queue.
/// Delivers the order's event at `index` (0: placed, 1: cancelled, …) to `binary`,
/// as its queue would; returns the ids of the messages it failed.
async fn deliver(f: &Fixture, binary: &str, id: orderflow_domain::OrderId, index: usize) -> Vec<String> {
    let history = f.order_history(id).await;
    deliver_json(
        f,
        binary,
        &history[index].to_json(),
        &format!("m-{binary}-{index}"),
    )
    .await
}

/// Delivers one envelope (as JSON) to `binary` as message `message_id`; the ids of
/// the messages it failed.
async fn deliver_json(f: &Fixture, binary: &str, envelope: &str, message_id: &str) -> Vec<String> {
    let handler = handler_for(binary, f.runner.stack(), &f.dynamodb, 50).unwrap();
    handler(batch(vec![delivery(envelope, message_id)]))
        .await
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_seen_before_the_reservation_and_the_capture_leaves_tombstones() {
    let f = Fixture::new(false).await;
    let id = f.place(&[("SKU-1", 1)], "tok_visa").await;
    f.cancel(id).await.unwrap();
    let history = f.order_history(id).await;
    let placed = history[0].to_json();
    let cancelled = history[1].to_json();
    let stack = f.runner.stack();
    for binary in ["inventory", "payment"] {
        let handler = handler_for(binary, stack, &f.dynamodb, 50).unwrap();
        // The cancellation overtakes the placement.
        assert!(
            handler(batch(vec![delivery(&cancelled, "m-cancel")]))
                .await
                .batch_item_failures
                .is_empty()
        );
        assert!(
            handler(batch(vec![delivery(&placed, "m-placed")]))
                .await
                .batch_item_failures
                .is_empty()
        );
    }
    assert_eq!(
        f.stream::<Inventory>(id).await,
        ["ReservationVoided"],
        "the late reservation is never made"
    );
    assert_eq!(f.stock().await["SKU-1"].available, 100);
    assert_eq!(
        f.stream::<Payment>(id).await,
        ["PaymentVoided"],
        "the late capture is never made"
    );
    assert!(f.ledger().await.is_empty());
}

/// Delivers the participant event `event_type` of `history` to the saga; the ids of
/// the messages it failed.
async fn to_saga<E: orderflow_domain::DomainEvent>(
    f: &Fixture,
    history: &[orderflow_domain::Envelope<E>],
    event_type: &str,
) -> Vec<String> {
    let envelope = history
        .iter()
        .find(|e| e.data.event_type() == event_type)
        .unwrap_or_else(|| panic!("no {event_type}"));
    deliver_json(f, "order-saga", &envelope.to_json(), event_type).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_and_a_release_that_overtake_their_answers_record_them_once() {
    let f = Fixture::new(false).await;
    // Inventory and payment answer; the saga records neither before the customer
    // cancels, so the refund and the release reach it before the answers they undo.
    let id = f.place(&[("SKU-1", 2)], "tok_visa").await;
    f.runner.pump_stream().await.unwrap();
    f.pump("inventory").await;
    f.pump("payment").await;
    f.cancel(id).await.unwrap();
    f.runner.pump_stream().await.unwrap();
    f.pump("inventory").await;
    f.pump("payment").await;
    let inventory = f.history::<Inventory>(id).await;
    let payment = f.history::<Payment>(id).await;
    assert!(to_saga(&f, &payment, "PaymentRefunded").await.is_empty());
    assert!(to_saga(&f, &inventory, "StockReleased").await.is_empty());
    assert!(to_saga(&f, &payment, "PaymentCaptured").await.is_empty());
    assert!(to_saga(&f, &inventory, "StockReserved").await.is_empty());
    assert_eq!(
        f.stream::<Order>(id).await,
        [
            "OrderPlaced",
            "OrderCancelled",
            "OrderPaymentCaptured",
            "OrderPaymentRefunded",
            "OrderStockReserved",
            "OrderStockReleased"
        ],
        "each overtaken answer recorded once, from what its compensation names"
    );
    f.assert_outcomes_recorded(id).await;
    // The queued copies change nothing.
    f.settle().await;
    assert_eq!(f.stream::<Order>(id).await.len(), 6);
    f.assert_audited(id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipment_cancellation_that_overtakes_the_creation_waits_for_it() {
    use orderflow_domain::shipment::Shipment;
    let f = Fixture::new(false).await;
    let id = f.place(&[("SKU-2", 1)], "tok_visa").await;
    f.runner.pump_stream().await.unwrap();
    f.pump("inventory").await;
    f.pump("payment").await;
    f.runner.pump_stream().await.unwrap();
    f.pump("order-saga").await;
    assert_eq!(f.status(id).await, OrderStatus::Confirmed);
    f.runner.pump_stream().await.unwrap();
    f.pump("shipping").await;
    // Cancelled before the saga records the shipment; shipping cancels it.
    f.cancel(id).await.unwrap();
    f.runner.pump_stream().await.unwrap();
    f.pump("shipping").await;
    let shipment = f.history::<Shipment>(id).await;
    assert_eq!(
        to_saga(&f, &shipment, "ShipmentCancelled").await,
        ["ShipmentCancelled"],
        "retried, not parked: the creation is on its way"
    );
    assert!(f.order(id).await.shipment.is_none());
    assert!(to_saga(&f, &shipment, "ShipmentCreated").await.is_empty());
    assert!(to_saga(&f, &shipment, "ShipmentCancelled").await.is_empty());
    let view = f.folded_view(id).await;
    assert_eq!(view.shipment.unwrap().status, "CANCELLED");
    f.settle().await;
    f.assert_outcomes_recorded(id).await;
    f.assert_audited(id).await;
    assert!(f.dead_letters().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_fails_alone_and_the_rest_of_the_batch_is_not_reprocessed() {
    let f = Fixture::new(false).await;
    let id = f.place(&[("SKU-2", 1)], "tok_visa").await;
    let history = f.order_history(id).await;
    let handler = handler_for("inventory", f.runner.stack(), &f.dynamodb, 50).unwrap();
    let mut poison = delivery(&history[0].to_json(), "m-poison");
    poison.body = Some("{not an event".into());
    let response = handler(batch(vec![poison, delivery(&history[0].to_json(), "m-good")])).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m-poison"]);
    assert_eq!(f.stream::<Inventory>(id).await, ["StockReserved"]);
    assert_eq!(f.stock().await["SKU-2"].reserved, 1, "reserved once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_delivered_twice_and_out_of_order_keeps_the_invariants() {
    let f = Fixture::new(true).await;
    let tokens = [
        "tok_visa",
        "tok_visa",
        "tok_decline",
        "tok_flaky",
        "tok_insufficient_funds",
        "tok_visa",
    ];
    let mut orders = Vec::new();
    for i in 0..18 {
        let lines: &[(&str, u64)] = match i % 3 {
            0 => &[("SKU-1", 2), ("SKU-2", 1)],
            1 => &[("SKU-RARE", 1)],
            _ => &[("SKU-2", 3)],
        };
        let id = f.place(lines, tokens[i % tokens.len()]).await;
        orders.push(id);
        if i % 5 == 4 {
            // Some customers cancel at once, racing the saga.
            let _ = f.cancel(id).await;
        }
    }
    f.settle().await;
    // Some cancel after confirmation.
    for id in orders.iter().step_by(4) {
        let _ = f.cancel(*id).await;
    }
    f.settle().await;

    f.assert_invariants(&orders, &Fixture::initial_stock()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_whose_record_a_crash_lost_is_refunded_when_the_cancel_arrives() {
    use orderflow_app::PaymentGateway;
    let f = Fixture::new(false).await;
    let id = f.place(&[("SKU-2", 2)], "tok_visa").await;
    // The payment handler reached the provider, then died before recording it.
    let total = f.order(id).await.total;
    let token = orderflow_domain::order::PaymentToken::parse("tok_visa").unwrap();
    let captured = f.gateway.capture(id, total, &token).await.unwrap();
    assert!(matches!(captured, orderflow_app::CaptureOutcome::Captured { .. }));
    assert!(
        f.stream::<Payment>(id).await.is_empty(),
        "no record of the capture"
    );

    f.cancel(id).await.unwrap();
    assert!(
        deliver(&f, "payment", id, 1).await.is_empty(),
        "OrderCancelled handled"
    );
    assert_eq!(
        f.stream::<Payment>(id).await,
        ["PaymentCaptured", "PaymentRefunded"]
    );
    assert!(
        f.ledger().await[&id.to_string()].refunded,
        "the provider refunded it"
    );

    // The original OrderPlaced, redelivered after the crash, changes nothing.
    assert!(
        deliver(&f, "payment", id, 0).await.is_empty(),
        "OrderPlaced handled"
    );
    assert_eq!(
        f.stream::<Payment>(id).await,
        ["PaymentCaptured", "PaymentRefunded"]
    );
    assert_eq!(f.ledger().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_attempted_after_the_cancel_is_refused_by_the_provider() {
    use orderflow_app::PaymentGateway;
    let f = Fixture::new(false).await;
    let id = f.place(&[("SKU-2", 1)], "tok_visa").await;
    f.cancel(id).await.unwrap();
    assert!(
        deliver(&f, "payment", id, 1).await.is_empty(),
        "OrderCancelled handled"
    );
    assert_eq!(f.stream::<Payment>(id).await, ["PaymentVoided"]);
    // A handler that read the state before the tombstone now reaches the provider.
    let total = f.order(id).await.total;
    let token = orderflow_domain::order::PaymentToken::parse("tok_visa").unwrap();
    let late = f.gateway.capture(id, total, &token).await.unwrap();
    assert_eq!(
        late,
        orderflow_app::CaptureOutcome::Declined {
            reason: "payment_cancelled".into()
        }
    );
    assert!(f.ledger().await.is_empty(), "no money was taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_order_finds_the_capture_a_crash_left_unrecorded() {
    use orderflow_app::{PaymentGateway, PaymentVault};
    let f = Fixture::new(false).await;
    let id = f.place(&[("SKU-1", 1)], "tok_visa").await;
    let total = f.order(id).await.total;
    let token = orderflow_domain::order::PaymentToken::parse("tok_visa").unwrap();
    f.gateway.capture(id, total, &token).await.unwrap();
    // Even with the token gone (expired while the message waited), the capture the
    // provider holds is what gets recorded: no decline, no second charge.
    f.vault.forget(id).await.unwrap();
    assert!(
        deliver(&f, "payment", id, 0).await.is_empty(),
        "OrderPlaced handled"
    );
    assert_eq!(f.stream::<Payment>(id).await, ["PaymentCaptured"]);
    let ledger = f.ledger().await;
    assert_eq!(ledger.len(), 1);
    assert!(!ledger[&id.to_string()].refunded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_still_pending_past_its_deadline_is_cancelled_with_reason_timeout_and_compensated() {
    let f = Fixture::new(false).await;
    let done = f.place(&[("SKU-2", 1)], "tok_visa").await;
    f.settle().await;
    let stuck = f.place(&[("SKU-1", 2)], "tok_visa").await;
    // Inventory answers and the saga records it; payment never gets to run.
    f.runner.pump_stream().await.unwrap();
    for binary in ["inventory", "order-saga", "inventory", "order-saga"] {
        f.pump(binary).await;
        f.runner.pump_stream().await.unwrap();
    }
    assert_eq!(f.status(stuck).await, OrderStatus::Pending);
    assert_eq!(f.stock().await["SKU-1"].reserved, 2);

    // Within the deadline nothing happens.
    let now = orderflow_domain::Timestamp::from_jiff(jiff::Timestamp::now());
    let early = f.runner.sweep_pending(now).await.unwrap();
    assert!(early.expired.is_empty(), "{early:?}");

    // Sixteen minutes on, the stuck order expires; the confirmed one is left alone.
    let later = now.plus(jiff::SignedDuration::from_mins(16));
    let swept = f.runner.sweep_pending(later).await.unwrap();
    assert_eq!(swept.expired, [stuck.to_string()]);
    assert_eq!((swept.examined, swept.failed), (2, 0));
    let again = f.runner.sweep_pending(later).await.unwrap();
    assert!(again.expired.is_empty(), "a second sweep changes nothing");

    f.settle().await;
    let order = f.order(stuck).await;
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert_eq!(order.cancellation.unwrap().reason, CancellationReason::Timeout);
    assert_eq!(f.status(done).await, OrderStatus::Confirmed);
    // The customer sees the reservation given back.
    f.assert_outcomes_recorded(stuck).await;
    assert_eq!(f.folded_view(stuck).await.stock, "RELEASED");
    let stock = f.stock().await;
    assert_eq!(
        (stock["SKU-1"].available, stock["SKU-1"].reserved),
        (100, 0),
        "released"
    );
    assert!(
        f.ledger()
            .await
            .get(&stuck.to_string())
            .is_none_or(|e| e.refunded),
        "not left charged"
    );
    assert!(f.dead_letters().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_captures_the_total_the_store_records_not_the_one_a_message_carries() {
    let f = Fixture::new(false).await;
    let id = f.place(&[("SKU-1", 2), ("SKU-2", 1)], "tok_visa").await;
    let stored_total = f.order(id).await.total.amount;
    // Someone able to write to the payment queue sends the order's OrderPlaced with
    // a total of 1 cent.
    let history = f.order_history(id).await;
    let mut forged: serde_json::Value = serde_json::from_str(&history[0].to_json()).unwrap();
    forged["data"]["total"]["amount"] = serde_json::json!(1);
    let handler = handler_for("payment", f.runner.stack(), &f.dynamodb, 50).unwrap();
    let failed = handler(batch(vec![delivery(&forged.to_string(), "m-forged")])).await;
    assert!(failed.batch_item_failures.is_empty());
    let ledger = f.ledger().await;
    assert_eq!(
        ledger[&id.to_string()].amount,
        stored_total,
        "the store's total was captured"
    );
    assert_ne!(stored_total, 1);

    // An OrderPlaced for an order the store does not hold captures nothing: poison.
    let mut invented = forged.clone();
    let nowhere = orderflow_domain::OrderId::from_uuid(uuid::Uuid::now_v7());
    invented["aggregateId"] = serde_json::json!(nowhere.to_string());
    invented["data"]["orderId"] = serde_json::json!(nowhere.to_string());
    let failed = handler(batch(vec![delivery(&invented.to_string(), "m-invented")])).await;
    assert_eq!(failed.batch_item_failures.len(), 1);
    assert!(!f.ledger().await.contains_key(&nowhere.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_item_written_without_a_reserved_count_still_reserves() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let f = Fixture::new(false).await;
    // As an operator might write one by hand: no `reserved`, no `sold`.
    f.dynamodb
        .put_item()
        .table_name(f.stack.table("CatalogTable").unwrap())
        .item("sku", AttributeValue::S("SKU-BARE".into()))
        .item("name", AttributeValue::S("Bare".into()))
        .item("priceAmount", AttributeValue::N("250".into()))
        .item("currency", AttributeValue::S("USD".into()))
        .item("available", AttributeValue::N("4".into()))
        .send()
        .await
        .unwrap();
    let id = f.place(&[("SKU-BARE", 3)], "tok_visa").await;
    f.settle().await;
    assert_eq!(f.status(id).await, OrderStatus::Confirmed);
    let stock = &f.stock().await["SKU-BARE"];
    assert_eq!((stock.available, stock.reserved), (1, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_and_refunds_wait_out_a_provider_outage_and_none_is_parked() {
    use std::time::{Duration, Instant};
    // As `orderflow-dev up` runs it: failed messages are left to come back when their
    // visibility says (payment's backoff: 1 s, then 2, 4, …), not made visible at once.
    let template = orderflow_provision::Template::load(&orderflow_provision::Template::default_path())
        .unwrap()
        .with_parameters(["PaymentRetryBaseSeconds=1"])
        .unwrap();
    let f = Fixture::with(
        template,
        orderflow_runner::Options {
            failed_visibility: None,
            receive_wait: Duration::ZERO,
            ..orderflow_runner::Options::default()
        },
    )
    .await;
    let to_refund = f.place(&[("SKU-1", 1)], "tok_visa").await;
    f.settle().await;
    assert_eq!(f.status(to_refund).await, OrderStatus::Confirmed);

    // The provider goes down for six seconds; meanwhile one order is cancelled (a
    // refund is due) and another placed (a capture is due).
    let outage_ends = orderflow_domain::Timestamp::from_jiff(jiff::Timestamp::now())
        .plus(jiff::SignedDuration::from_secs(6));
    f.gateway.set_outage(Some(outage_ends)).await.unwrap();
    f.cancel(to_refund).await.unwrap();
    let to_capture = f.place(&[("SKU-2", 1)], "tok_visa").await;
    // Without backoff a failed message would wait out the queue's 60 s visibility.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut rounds = 0;
    loop {
        f.settle().await;
        let ledger = f.ledger().await;
        let captured = ledger.contains_key(&to_capture.to_string());
        let refunded = ledger[&to_refund.to_string()].refunded;
        if captured && refunded && f.status(to_capture).await == OrderStatus::Confirmed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled after the outage: {ledger:?}"
        );
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(rounds > 0, "the outage held them up");
    assert!(
        orderflow_domain::Timestamp::from_jiff(jiff::Timestamp::now()) >= outage_ends,
        "nothing was paid during the outage"
    );
    assert!(
        f.dead_letters().await.is_empty(),
        "nothing parked: {:?}",
        f.dead_letters().await
    );
    f.assert_compensated(to_refund).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_its_participants_answered_is_left_for_the_saga_not_timed_out() {
    let f = Fixture::new(false).await;
    let behind = f.place(&[("SKU-1", 1)], "tok_visa").await;
    // Inventory and payment answer; the saga has not recorded either yet.
    f.runner.pump_stream().await.unwrap();
    for binary in ["inventory", "payment"] {
        f.pump(binary).await;
    }
    assert_eq!(f.status(behind).await, OrderStatus::Pending);
    assert_eq!(f.stream::<Inventory>(behind).await, ["StockReserved"]);
    assert_eq!(f.stream::<Payment>(behind).await, ["PaymentCaptured"]);

    let later = orderflow_domain::Timestamp::from_jiff(jiff::Timestamp::now())
        .plus(jiff::SignedDuration::from_mins(20));
    let swept = f.runner.sweep_pending(later).await.unwrap();
    assert_eq!(swept.left_for_saga, [behind.to_string()], "{swept:?}");
    assert!(swept.expired.is_empty());
    // The saga catches up and confirms it: nothing to compensate, nothing refunded.
    f.settle().await;
    assert_eq!(f.status(behind).await, OrderStatus::Confirmed);
    assert!(!f.ledger().await[&behind.to_string()].refunded);
    // Confirmed now, it leaves the index at the next run.
    let next = f.runner.sweep_pending(later).await.unwrap();
    assert_eq!((next.examined, next.expired.len()), (1, 0));
    let last = f.runner.sweep_pending(later).await.unwrap();
    assert_eq!(last.examined, 0, "taken out of the index");
}

/// Moves every message of queue `from` to queue `to` (logical ids), as SQS's redrive
/// does after `maxReceiveCount` receives, or an operator's `dlq redrive` back.
async fn move_messages(f: &Fixture, from: &str, to: &str) -> usize {
    let (from, to) = (
        f.stack.messaging.queues[from].url.clone(),
        f.stack.messaging.queues[to].url.clone(),
    );
    let mut moved = 0;
    loop {
        let messages = f
            .sqs
            .receive_message()
            .queue_url(&from)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            return moved;
        }
        for message in messages {
            f.sqs
                .send_message()
                .queue_url(&to)
                .message_body(message.body.unwrap())
                .send()
                .await
                .unwrap();
            f.sqs
                .delete_message()
                .queue_url(&from)
                .receipt_handle(message.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
            moved += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_order_whose_saga_messages_are_parked_is_flagged_then_cancelled_and_compensated() {
    let f = Fixture::new(false).await;
    let stuck = f.place(&[("SKU-1", 1)], "tok_visa").await;
    // Inventory and payment answer; the saga's messages end in its DLQ.
    f.runner.pump_stream().await.unwrap();
    for binary in ["inventory", "payment"] {
        f.pump(binary).await;
    }
    f.runner.pump_stream().await.unwrap();
    let parked = move_messages(&f, "OrderSagaQueue", "OrderSagaDeadLetterQueue").await;
    assert_eq!(parked, 2, "StockReserved and PaymentCaptured");
    assert_eq!(f.status(stuck).await, OrderStatus::Pending);

    // The checker names the DLQ that holds each answer.
    let report = orderflow_cli::check::run(&orderflow_cli::check::CheckArgs {
        on: orderflow_cli::target::Target::local(&f.stack.prefix),
        from: None,
        until: None,
        grace: 0,
    })
    .await
    .unwrap();
    let about: Vec<&str> = report
        .findings
        .iter()
        .filter(|x| x.order_id == Some(stuck))
        .map(|x| x.what.as_str())
        .collect();
    for answer in ["StockReserved", "PaymentCaptured"] {
        assert!(
            about
                .iter()
                .any(|w| w.contains(&format!("its {answer} sits in OrderSagaDeadLetterQueue"))),
            "{answer}: {about:?}"
        );
    }

    // Past the deadline, within the saga's patience: left for it.
    let now = orderflow_domain::Timestamp::from_jiff(jiff::Timestamp::now());
    let swept = f
        .runner
        .sweep_pending(now.plus(jiff::SignedDuration::from_mins(20)))
        .await
        .unwrap();
    assert_eq!(swept.left_for_saga, [stuck.to_string()], "{swept:?}");
    // Past its patience: the saga is stuck, not behind; the order is cancelled and
    // compensation gives back the money and the stock.
    let swept = f
        .runner
        .sweep_pending(now.plus(jiff::SignedDuration::from_mins(30)))
        .await
        .unwrap();
    assert_eq!(
        (swept.stalled.clone(), swept.expired.clone()),
        (vec![stuck.to_string()], vec![stuck.to_string()]),
        "{swept:?}"
    );
    f.settle().await;
    assert_eq!(f.status(stuck).await, OrderStatus::Cancelled);
    assert!(f.ledger().await[&stuck.to_string()].refunded, "not left charged");
    assert_eq!(
        f.stream::<Inventory>(stuck).await,
        ["StockReserved", "StockReleased"]
    );
    assert_eq!(
        f.stream::<Payment>(stuck).await,
        ["PaymentCaptured", "PaymentRefunded"]
    );

    // Redriven once the cause is fixed, the answers are late facts: nothing moves.
    assert_eq!(
        move_messages(&f, "OrderSagaDeadLetterQueue", "OrderSagaQueue").await,
        2
    );
    f.settle().await;
    assert_eq!(f.status(stuck).await, OrderStatus::Cancelled);
    assert!(f.dead_letters().await.is_empty(), "{:?}", f.dead_letters().await);
    assert_eq!(
        f.stream::<Payment>(stuck).await,
        ["PaymentCaptured", "PaymentRefunded"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_pending_orders_are_timed_out_page_by_page_however_late_the_run() {
    let f = Fixture::new(false).await;
    let mut pending = Vec::new();
    for _ in 0..40 {
        let placed = futures::future::join_all((0..50).map(|_| f.place(&[("SKU-1", 1)], "tok_visa"))).await;
        pending.extend(placed);
    }
    // Two hours after the deadline (the old 30-minute window would have missed them
    // all): every one is found, a page at a time, and expired once.
    let later = orderflow_domain::Timestamp::from_jiff(jiff::Timestamp::now())
        .plus(jiff::SignedDuration::from_hours(2));
    let swept = f.runner.sweep_pending(later).await.unwrap();
    assert_eq!((swept.examined, swept.failed), (2_000, 0));
    let mut expired = swept.expired.clone();
    expired.sort();
    let mut ids: Vec<String> = pending.iter().map(ToString::to_string).collect();
    ids.sort();
    assert_eq!(expired, ids);
    let again = f.runner.sweep_pending(later).await.unwrap();
    assert_eq!((again.examined, again.expired.len()), (0, 0));
    for id in pending.iter().step_by(97) {
        let order = f.order(*id).await;
        assert_eq!(order.status, OrderStatus::Cancelled);
        assert_eq!(order.cancellation.unwrap().reason, CancellationReason::Timeout);
    }
}

/// The runner honours a mapping's `MaximumBatchingWindowInSeconds`: with a window, a
/// batch keeps gathering what arrives within it; without one (the template's choice,
/// so that no hop waits), a batch is what was there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batching_window_gathers_what_arrives_within_it_and_none_waits_for_nothing() {
    let text = std::fs::read_to_string(orderflow_provision::Template::default_path()).unwrap();
    for (window, expected) in [(2, 3), (0, 1)] {
        // The template's text with the inventory mapping's window set.
        let marker = "Queue: !GetAtt InventoryQueue.Arn\n            BatchSize: 10\n            MaximumBatchingWindowInSeconds: 0";
        assert!(
            text.contains(marker),
            "the inventory mapping as the template writes it"
        );
        let changed = text.replace(
            marker,
            &format!("Queue: !GetAtt InventoryQueue.Arn\n            BatchSize: 10\n            MaximumBatchingWindowInSeconds: {window}"),
        );
        let template = orderflow_provision::Template::parse(&changed).unwrap();
        let f = Fixture::with(
            template,
            orderflow_runner::Options {
                receive_wait: std::time::Duration::from_secs(1),
                failed_visibility: Some(std::time::Duration::ZERO),
                ..orderflow_runner::Options::default()
            },
        )
        .await;
        let consumer = f
            .runner
            .consumers()
            .iter()
            .find(|c| c.mapping.queue == "InventoryQueue")
            .unwrap();
        assert_eq!(consumer.mapping.batching_window_seconds, window);
        let (sqs, url) = (f.sqs.clone(), consumer.queue.url.clone());
        let send = move |n: u32| {
            let (sqs, url) = (sqs.clone(), url.clone());
            async move {
                sqs.send_message()
                    .queue_url(url)
                    .message_body(format!("{{\"n\": {n}}}"))
                    .send()
                    .await
                    .unwrap();
            }
        };
        send(0).await;
        // Two more arrive 300 and 600 ms into the batch.
        let later = tokio::spawn(async move {
            for n in 1..=2 {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                send(n).await;
            }
        });
        let received = f.runner.pump_queue(consumer).await.unwrap();
        later.await.unwrap();
        assert_eq!(received, expected, "window {window} s");
    }
}

/// A sample event from `events/`, made to name `order` at `version`.
fn forged(sample: &str, order: orderflow_domain::OrderId, version: u64) -> serde_json::Value {
    let path = format!("{}/../events/{sample}", env!("CARGO_MANIFEST_DIR"));
    let mut event: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["eventId"] = serde_json::json!(uuid::Uuid::now_v7().to_string());
    event["aggregateId"] = serde_json::json!(order.to_string());
    event["version"] = serde_json::json!(version);
    if event["data"].get("orderId").is_some() {
        event["data"]["orderId"] = serde_json::json!(order.to_string());
    }
    event
}

/// Sends `envelope` straight to the queue `queue`, as a principal of the account with
/// `sqs:SendMessage` could (the template's queue policies refuse it in AWS; moto does
/// not enforce them, which is the point: the consumer must not rely on them alone).
async fn send_to_queue(f: &Fixture, queue: &str, envelope: &serde_json::Value) {
    let body = serde_json::json!({
        "version": "0", "id": uuid::Uuid::now_v7().to_string(),
        "source": format!("orderflow.{}", envelope["aggregateType"].as_str().unwrap()),
        "detail-type": envelope["eventType"], "account": "000000000000",
        "time": "2026-11-21T06:30:00Z", "region": "us-east-1", "resources": [], "detail": envelope,
    });
    let sqs = orderflow_provision::local::sqs_client().await.unwrap();
    sqs.send_message()
        .queue_url(&f.runner.stack().queue(queue).unwrap().url)
        .message_body(body.to_string())
        .send()
        .await
        .unwrap();
}

/// Delivers `binary`'s queue until its DLQ holds `parked` messages; the reasons the
/// failure log recorded for them.
async fn pump_until_parked(f: &Fixture, binary: &str, dlq: &str, parked: usize) -> Vec<String> {
    let sqs = orderflow_provision::local::sqs_client().await.unwrap();
    for _ in 0..30 {
        let found = orderflow_cli::dlq::show_in(
            f.runner.stack(),
            &sqs,
            &f.dynamodb,
            dlq,
            10,
            std::time::Duration::ZERO,
        )
        .await
        .unwrap();
        if found.len() >= parked {
            return found
                .into_iter()
                .map(|p| p.last_error.unwrap_or_default())
                .collect();
        }
        f.pump(binary).await;
    }
    panic!("{dlq} did not get {parked} message(s)");
}

/// Forged messages written straight to the consumers' queues: an `OrderCancelled` for
/// a confirmed order (to payment and inventory), and a `StockReserved` and a
/// `PaymentCaptured` for an order neither participant has answered (to the saga).
/// Nothing is refunded, released or confirmed, and every forged message is parked with
/// the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_messages_sent_straight_to_the_queues_move_nothing_and_are_parked_with_the_reason() {
    let f = Fixture::new(false).await;
    let confirmed = f.place(&[("SKU-1", 2)], "tok_visa").await;
    f.settle().await;
    assert_eq!(f.status(confirmed).await, OrderStatus::Confirmed);
    let (ledger, stock) = (f.ledger().await, f.stock().await);
    let next = u64::try_from(f.order_history(confirmed).await.len()).unwrap() + 1;

    // An OrderCancelled at the order's next version (the store has none there), and
    // one at version 1 (the store holds its OrderPlaced there).
    send_to_queue(
        &f,
        "PaymentQueue",
        &forged("order/OrderCancelled.json", confirmed, next),
    )
    .await;
    send_to_queue(
        &f,
        "InventoryQueue",
        &forged("order/OrderCancelled.json", confirmed, 1),
    )
    .await;
    let payment = pump_until_parked(&f, "payment", "PaymentDeadLetterQueue", 1).await;
    let inventory = pump_until_parked(&f, "inventory", "InventoryDeadLetterQueue", 1).await;
    assert!(payment[0].contains("is not in the event store"), "{payment:?}");
    assert!(
        inventory[0].contains("holds a OrderPlaced there"),
        "{inventory:?}"
    );
    assert_eq!(f.ledger().await, ledger, "nothing refunded");
    assert_eq!(f.stock().await, stock, "nothing released");
    assert_eq!(f.status(confirmed).await, OrderStatus::Confirmed);
    assert_eq!(f.stream::<Payment>(confirmed).await, ["PaymentCaptured"]);

    // Answers no participant gave, for an order still pending.
    let pending = f.place(&[("SKU-1", 1)], "tok_visa").await;
    send_to_queue(
        &f,
        "OrderSagaQueue",
        &forged("inventory/StockReserved.json", pending, 1),
    )
    .await;
    send_to_queue(
        &f,
        "OrderSagaQueue",
        &forged("payment/PaymentCaptured.json", pending, 1),
    )
    .await;
    let saga = pump_until_parked(&f, "order-saga", "OrderSagaDeadLetterQueue", 2).await;
    assert!(
        saga.iter().all(|r| r.contains("is not in the event store")),
        "{saga:?}"
    );
    assert_eq!(
        f.status(pending).await,
        OrderStatus::Pending,
        "not confirmed on forged word"
    );
    assert_eq!(f.stream::<Order>(pending).await, ["OrderPlaced"]);
}

/// Items on `order#` keys that are no events (one without an event's attributes, one
/// whose body is not an envelope), written beside real orders: the relay cannot ever
/// publish them, sets them aside with their keys and reason, and the orders on the same
/// stream behind them complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_records_that_are_no_events_are_quarantined_and_the_orders_behind_them_complete() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let f = Fixture::new(false).await;
    let table = f.stack.table("EventStoreTable").unwrap();
    let bare = format!("order#{}", uuid::Uuid::now_v7());
    f.dynamodb
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(bare.clone()))
        .item("version", AttributeValue::N("1".into()))
        .item("note", AttributeValue::S("written by hand".into()))
        .send()
        .await
        .unwrap();
    let garbled = uuid::Uuid::now_v7();
    let attribute = |s: &str| AttributeValue::S(s.into());
    f.dynamodb
        .put_item()
        .table_name(table)
        .item("pk", attribute(&format!("order#{garbled}")))
        .item("version", AttributeValue::N("1".into()))
        .item("aggregateType", attribute("order"))
        .item("aggregateId", attribute(&garbled.to_string()))
        .item("eventId", attribute(&uuid::Uuid::now_v7().to_string()))
        .item("eventType", attribute("OrderPlaced"))
        .item("occurredAt", attribute("2026-12-01T10:00:00Z"))
        .item("timeBucket", attribute("2026-12-01#0"))
        .item("timeKey", attribute("x"))
        .item("body", attribute("{not an envelope"))
        .send()
        .await
        .unwrap();
    let orders = [
        f.place(&[("SKU-1", 1)], "tok_visa").await,
        f.place(&[("SKU-2", 1)], "tok_visa").await,
    ];
    f.settle().await;
    for order in orders {
        assert_eq!(f.status(order).await, OrderStatus::Confirmed);
    }
    let sqs = orderflow_provision::local::sqs_client().await.unwrap();
    let mut quarantined = orderflow_cli::relay::quarantined(f.runner.stack(), &sqs, 10)
        .await
        .unwrap();
    quarantined.sort_by(|a, b| a.keys.cmp(&b.keys));
    assert_eq!(quarantined.len(), 2, "{quarantined:?}");
    let bare_notice = quarantined.iter().find(|q| q.keys.contains(&bare)).unwrap();
    assert!(
        bare_notice.reason.contains("the item is not an event"),
        "{bare_notice:?}"
    );
    let garbled_notice = quarantined
        .iter()
        .find(|q| q.keys.contains(&garbled.to_string()))
        .unwrap();
    assert!(
        garbled_notice
            .reason
            .contains("the item's body is not an envelope"),
        "{garbled_notice:?}"
    );
    assert!(!garbled_notice.sequence.is_empty());
    assert!(f.dead_letters().await.is_empty(), "nothing failed for good");
}
