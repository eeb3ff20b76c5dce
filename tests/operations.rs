//! Operating it, against DynamoDB Local and moto: the consistency checker finds what
//! was broken on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

mod support;

use aws_sdk_dynamodb::types::AttributeValue;
use orderflow_app::{EventRecord, EventStore, StreamId};
use orderflow_cli::check::{CheckArgs, run};
use orderflow_domain::order::Order;
use support::Fixture;
use uuid::Uuid;

fn args(f: &Fixture) -> CheckArgs {
    CheckArgs {
        template: orderflow_provision::Template::default_path(),
        prefix: f.stack.prefix.clone(),
        parameter_overrides: vec![],
        from: None,
        until: None,
        grace: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_a_corrupted_read_model_a_broken_invariant_and_an_impossible_transition() {
    let f = Fixture::new(false).await;
    let paid = f.place(&[("SKU-1", 1)], "tok_visa").await;
    let declined = f.place(&[("SKU-2", 1)], "tok_decline").await;
    let other = f.place(&[("SKU-2", 2)], "tok_visa").await;
    f.settle().await;
    let clean = run(&args(&f)).await.unwrap();
    assert!(clean.clean(), "{clean}");
    assert_eq!(clean.orders, 3);

    // 1. The read model says DELIVERED for an order that is CONFIRMED.
    f.dynamodb
        .update_item()
        .table_name(f.views.table())
        .key("orderId", AttributeValue::S(paid.to_string()))
        .update_expression("SET #s = :s")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":s", AttributeValue::S("DELIVERED".into()))
        .send()
        .await
        .unwrap();
    // 2. Stock: the catalog holds a reservation no order made.
    f.dynamodb
        .update_item()
        .table_name(f.stack.table("CatalogTable").unwrap())
        .key("sku", AttributeValue::S("SKU-1".into()))
        .update_expression("SET reserved = reserved + :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    // 3. A second OrderPlaced appended to a placed order's stream.
    let history = f
        .commands
        .repository()
        .history::<Order>(&other.to_string())
        .await
        .unwrap();
    let mut again = history[0].clone();
    again.version = history.len() as u64 + 1;
    again.event_id = Uuid::now_v7();
    f.commands
        .repository()
        .store()
        .append(
            &StreamId::new("order", other.to_string()),
            history.len() as u64,
            &[EventRecord::from_envelope(&again)],
        )
        .await
        .unwrap();

    let report = run(&args(&f)).await.unwrap();
    assert!(!report.clean());
    let text = report.to_string();
    let about = |id: orderflow_domain::OrderId| {
        report
            .findings
            .iter()
            .filter(|x| x.order_id == Some(id))
            .map(|x| x.what.clone())
            .collect::<Vec<_>>()
    };
    assert!(
        about(paid).iter().any(|w| w.contains("differs from the fold")),
        "{text}"
    );
    assert!(
        about(other)
            .iter()
            .any(|w| w.contains("impossible transition") && w.contains("OrderPlaced")),
        "{text}"
    );
    assert!(
        report.findings.iter().any(|x| x.order_id.is_none()
            && x.what.contains("SKU-1")
            && x.what.contains("holds 2 reserved, the inventory streams 1")),
        "{text}"
    );
    assert!(about(declined).is_empty(), "the untouched order is clean: {text}");

    // A time range that holds none of them checks none of them.
    let none = run(&CheckArgs {
        from: Some("2000-01-01T00:00:00Z".into()),
        until: Some("2000-01-02T00:00:00Z".into()),
        ..args(&f)
    })
    .await
    .unwrap();
    assert_eq!((none.orders, none.findings.len()), (0, 0), "{none}");
    assert!(
        run(&CheckArgs {
            from: Some("last week".into()),
            ..args(&f)
        })
        .await
        .is_err()
    );
}

async fn send_to(f: &Fixture, queue_logical_id: &str, body: String) {
    f.sqs
        .send_message()
        .queue_url(&f.stack.queue(queue_logical_id).unwrap().url)
        .message_body(body)
        .send()
        .await
        .unwrap();
}

fn dlq_target(f: &Fixture) -> orderflow_cli::dlq::Target {
    orderflow_cli::dlq::Target {
        template: orderflow_provision::Template::default_path(),
        prefix: f.stack.prefix.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_message_is_shown_with_its_error_and_redriven_after_the_fix() {
    use orderflow_cli::dlq;

    let f = Fixture::new(false).await;
    // A cancellation (v2) of an order the store does not hold yet, as if the store had
    // been restored from a backup older than the event: the projector cannot catch up.
    let model = f.place(&[("SKU-2", 1)], "tok_visa").await;
    f.cancel(model).await.unwrap();
    f.settle().await;
    let history = f
        .commands
        .repository()
        .history::<Order>(&model.to_string())
        .await
        .unwrap();
    let missing = orderflow_domain::OrderId::from_uuid(Uuid::now_v7());
    let mut cancelled = history[1].clone();
    cancelled.aggregate_id = missing.to_string();
    let body = support::delivery(&cancelled.to_json(), "m-1").body.unwrap();
    for _ in 0..2 {
        send_to(&f, "ProjectorQueue", body.clone()).await;
    }
    f.settle().await;

    let target = dlq_target(&f);
    let depths = dlq::list(&target).await.unwrap();
    let projector_dlq = depths
        .iter()
        .find(|d| d.logical_id == "ProjectorDeadLetterQueue")
        .unwrap();
    assert_eq!(projector_dlq.messages, 2, "{depths:?}");
    assert!(projector_dlq.oldest.is_some());
    assert!(projector_dlq.source.ends_with("ProjectorQueue"));
    assert!(
        depths
            .iter()
            .filter(|d| d.logical_id != "ProjectorDeadLetterQueue")
            .all(|d| d.messages == 0),
        "{depths:?}"
    );

    let parked = dlq::show(&target, "ProjectorQueue", 10).await.unwrap();
    assert_eq!(parked.len(), 2);
    for p in &parked {
        assert_eq!(p.event_type.as_deref(), Some("OrderCancelled"));
        assert_eq!(p.order_id.as_deref(), Some(missing.to_string().as_str()));
        assert!(
            p.receive_count
                .as_deref()
                .is_some_and(|n| n.parse::<u32>().unwrap() >= 5),
            "{p:?}"
        );
        let error = p.last_error.as_deref().unwrap_or_default();
        assert!(error.contains("the event store holds 0 events"), "{error}");
        assert!(error.contains("service:projector"), "{error}");
    }
    assert_eq!(
        dlq::list(&target)
            .await
            .unwrap()
            .iter()
            .find(|d| d.logical_id == "ProjectorDeadLetterQueue")
            .unwrap()
            .messages,
        2,
        "showing leaves them where they are"
    );

    // The fix: the order's events are in the store again.
    f.place_with_id(missing, &[("SKU-2", 1)], "tok_visa").await;
    f.cancel(missing).await.unwrap();

    // Back to the projector's queue at 1 message a second, by receive, send, delete.
    let started = std::time::Instant::now();
    let redriven = dlq::redrive(&target, "ProjectorDeadLetterQueue", 1, "receive-send")
        .await
        .unwrap();
    assert_eq!((redriven.moved, redriven.method), (2, "receive-send"));
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "bounded by --rate"
    );
    f.settle().await;
    assert!(
        f.views.get(missing).await.unwrap().is_some(),
        "projected after the redrive"
    );
    f.assert_read_models(&f.views, &[missing]).await;
    assert!(dlq::list(&target).await.unwrap().iter().all(|d| d.messages == 0));

    // `auto` uses a message move task where SQS has one, and falls back where it
    // does not (the emulator): the same outcome either way.
    let later = orderflow_domain::OrderId::from_uuid(Uuid::now_v7());
    cancelled.aggregate_id = later.to_string();
    send_to(
        &f,
        "ProjectorQueue",
        support::delivery(&cancelled.to_json(), "m-2").body.unwrap(),
    )
    .await;
    f.settle().await;
    f.place_with_id(later, &[("SKU-2", 1)], "tok_visa").await;
    f.cancel(later).await.unwrap();
    let auto = dlq::redrive(&target, "ProjectorDeadLetterQueue", 50, "auto")
        .await
        .unwrap();
    assert_eq!(auto.moved, 1);
    f.settle().await;
    assert!(f.views.get(later).await.unwrap().is_some());
    assert!(dlq::show(&target, "nope", 1).await.is_err());
}
