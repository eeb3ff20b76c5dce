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
