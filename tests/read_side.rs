//! The read side against DynamoDB Local and moto: the projector under duplicates,
//! reordering and gaps; the API's read-model, consistent and temporal answers; and the
//! two paginated lists, stable while new entries arrive.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

mod support;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use orderflow_adapters::read_model::DynamoOrderViews;
use orderflow_domain::OrderId;
use orderflow_domain::order::view::OrderView;
use serde_json::{Value, json};
use support::{Fixture, batch, delivery};
use tower::ServiceExt;
use uuid::Uuid;

struct Reply {
    status: u16,
    source: Option<String>,
    etag: Option<String>,
    body: Value,
}

async fn call(f: &Fixture, method: &str, uri: &str, body: Option<Value>) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let operator =
        json!({"sub": "ops-ann", "scope": "orderflow/operator", "cognito:groups": "[orderflow-operators]"});
    let response = f
        .api()
        .oneshot(support::as_principal(request, operator))
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (source, etag) = (header("orderflow-source"), header("etag"));
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        source,
        etag,
        body: serde_json::from_slice(&bytes).unwrap(),
    }
}

async fn get(f: &Fixture, uri: &str) -> Reply {
    call(f, "GET", uri, None).await
}

fn projector(f: &Fixture, table: &str) -> projector::Projector {
    projector::Projector::new(
        f.commands.repository().clone(),
        DynamoOrderViews::new(f.dynamodb.clone(), table),
    )
}

async fn shipped_order(f: &Fixture) -> OrderId {
    let id = f.place(&[("SKU-1", 1)], "tok_visa").await;
    f.settle().await;
    for status in ["PREPARING", "READY", "OUT_FOR_DELIVERY", "DELIVERED"] {
        let reply = call(
            f,
            "POST",
            &format!("/orders/{id}/status"),
            Some(json!({ "status": status })),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    f.settle().await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_catches_up_over_gaps_and_ignores_duplicates_and_late_events() {
    let f = Fixture::new(false).await;
    let id = f.place(&[("SKU-1", 1)], "tok_visa").await;
    f.cancel(id).await.unwrap();
    let history = f.order_history(id).await;
    assert_eq!(history.len(), 2);
    let shadow = f.stack.table("OrderViewShadowTable").unwrap();
    let projector = projector(&f, shadow);
    let views = DynamoOrderViews::new(f.dynamodb.clone(), shadow);

    // The cancellation (v2) arrives first: a gap, filled from the store.
    let outcome = projector.project(&history[1]).await.unwrap();
    assert_eq!(outcome, projector::Outcome::CaughtUp { read: 2 });
    let view = views.get(id).await.unwrap().unwrap().view;
    assert_eq!(Some(&view), OrderView::fold(&history).as_ref());
    assert_eq!(view.version, 2);

    // The late placement and a duplicate of the cancellation change nothing.
    for late in [&history[0], &history[1]] {
        assert_eq!(
            projector.project(late).await.unwrap(),
            projector::Outcome::Duplicate
        );
    }
    assert_eq!(views.get(id).await.unwrap().unwrap().view, view);

    // Through the handler: a poison message fails alone, the good one is projected.
    let other = f.place(&[("SKU-2", 1)], "tok_visa").await;
    let placed = f.order_history(other).await;
    let mut poison = delivery(&placed[0].to_json(), "m-poison");
    poison.body = Some("{\"detail\": 1}".into());
    let response = orderflow_lambda::Service::new(projector)
        .handle(batch(vec![poison, delivery(&placed[0].to_json(), "m-good")]))
        .await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m-poison"]);
    assert_eq!(views.get(other).await.unwrap().unwrap().view.version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_come_from_the_read_model_with_version_and_etag_or_consistently_from_the_store() {
    let f = Fixture::new(false).await;
    let id = f.place(&[("SKU-1", 2)], "tok_visa").await;

    // Not projected yet: the API folds the store rather than answer 404.
    let early = get(&f, &format!("/orders/{id}")).await;
    assert_eq!(early.status, 200);
    assert_eq!(early.source.as_deref(), Some("event-store"));
    assert_eq!(early.body["status"], "PENDING");

    f.settle().await;
    let projected = get(&f, &format!("/orders/{id}")).await;
    assert_eq!(projected.status, 200);
    assert_eq!(projected.source.as_deref(), Some("read-model"));
    assert_eq!(projected.body["status"], "CONFIRMED");
    let version = projected.body["version"].as_u64().unwrap();
    assert_eq!(projected.etag, Some(format!("\"{version}\"")));

    let consistent = get(&f, &format!("/orders/{id}?consistent=true")).await;
    assert_eq!(consistent.source.as_deref(), Some("event-store"));
    assert_eq!(consistent.body, projected.body, "the projection equals the fold");
    assert_eq!(consistent.etag, projected.etag);

    // A change the projector has not seen yet: the read model lags, consistent does not.
    f.cancel(id).await.unwrap();
    assert_eq!(
        get(&f, &format!("/orders/{id}")).await.body["status"],
        "CONFIRMED"
    );
    assert_eq!(
        get(&f, &format!("/orders/{id}?consistent=true")).await.body["status"],
        "CANCELLED"
    );
    f.settle().await;
    assert_eq!(
        get(&f, &format!("/orders/{id}")).await.body["status"],
        "CANCELLED"
    );

    let bad = get(&f, &format!("/orders/{id}?consistent=maybe")).await;
    assert_eq!(
        (bad.status, bad.body["error"]["code"].as_str()),
        (400, Some("invalid_consistent"))
    );
    let unknown = get(&f, &format!("/orders/{}", OrderId::from_uuid(Uuid::now_v7()))).await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_each_moment_of_its_history_an_order_is_in_the_state_it_was_then() {
    let f = Fixture::new(false).await;
    let id = shipped_order(&f).await;
    let history = f.order_history(id).await;
    let mut statuses = Vec::new();
    for event in &history {
        let at = event.occurred_at.to_string();
        let reply = get(&f, &format!("/orders/{id}?at={at}")).await;
        assert_eq!(reply.status, 200, "at {at}: {}", reply.body);
        assert_eq!(reply.source.as_deref(), Some("event-store"));
        // Events recorded by one decision share their moment: all of them had happened.
        let happened: Vec<_> = history
            .iter()
            .take_while(|e| e.occurred_at <= event.occurred_at)
            .cloned()
            .collect();
        // As the API shows it to its owner: the sealed address opened.
        let shown = orderflow_app::personal::PersonalData::new(f.keys.clone())
            .show_one(OrderView::fold(&happened).unwrap())
            .await
            .unwrap();
        assert!(shown.shipping_address.as_ref().is_some_and(|a| a.is_clear()));
        let expected = serde_json::to_value(shown).unwrap();
        assert_eq!(reply.body, expected, "the state at {at}");
        let status = reply.body["status"].as_str().unwrap().to_owned();
        if statuses.last() != Some(&status) {
            statuses.push(status);
        }
    }
    assert_eq!(
        statuses,
        [
            "PENDING",
            "CONFIRMED",
            "PREPARING",
            "READY",
            "OUT_FOR_DELIVERY",
            "DELIVERED"
        ]
    );

    // The view keeps the moment of each step: when the event that moved it happened.
    let now = get(&f, &format!("/orders/{id}?consistent=true")).await.body;
    let timeline = now["timeline"].as_object().unwrap();
    assert_eq!(timeline.keys().cloned().collect::<Vec<_>>().len(), statuses.len());
    for status in &statuses {
        let moved = history
            .iter()
            .find(|e| {
                let upto: Vec<_> = history
                    .iter()
                    .take_while(|x| x.version <= e.version)
                    .cloned()
                    .collect();
                OrderView::fold(&upto).is_some_and(|v| v.status.as_str() == status.as_str())
            })
            .unwrap();
        assert_eq!(
            timeline[status.as_str()],
            moved.occurred_at.to_string(),
            "{status}"
        );
    }

    let before = history[0].occurred_at.plus(jiff::SignedDuration::from_micros(-1));
    let reply = get(&f, &format!("/orders/{id}?at={before}")).await;
    assert_eq!(
        (reply.status, reply.body["error"]["code"].as_str()),
        (404, Some("order_not_found"))
    );
    // Any offset is understood; the answer is the same moment.
    let placed = history[0]
        .occurred_at
        .as_jiff()
        .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(2)));
    let at_offset = placed
        .strftime("%Y-%m-%dT%H:%M:%S%.6f%:z")
        .to_string()
        .replace('+', "%2B");
    assert_eq!(
        get(&f, &format!("/orders/{id}?at={at_offset}")).await.body["status"],
        "PENDING"
    );
    for malformed in ["yesterday", "2026-13-01T00:00:00Z", "2026-11-21"] {
        let reply = get(&f, &format!("/orders/{id}?at={malformed}")).await;
        assert_eq!(
            (reply.status, reply.body["error"]["code"].as_str()),
            (400, Some("invalid_time")),
            "{malformed}"
        );
    }
}

/// Follows `nextCursor` from `first`, calling `between` after the first page.
async fn pages(f: &Fixture, first: &str, key: &str, mut between: impl AsyncFnMut()) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut uri = first.to_owned();
    loop {
        let reply = get(f, &uri).await;
        assert_eq!(reply.status, 200, "{uri}: {}", reply.body);
        pages.push(reply.body[key].as_array().unwrap().clone());
        if pages.len() == 1 {
            between().await;
        }
        let Some(next) = reply.body["nextCursor"].as_str() else {
            return pages;
        };
        let base = first.split_once("cursor=").map_or(first, |(b, _)| b);
        uri = format!("{base}&cursor={next}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_orders_page_newest_first_and_stay_stable_while_new_ones_arrive() {
    let f = Fixture::new(false).await;
    let customer = format!("c-{}", Uuid::now_v7().simple());
    let mut placed = Vec::new();
    for _ in 0..7 {
        let id = OrderId::from_uuid(Uuid::now_v7());
        f.place_for(id, &customer, &[("SKU-2", 1)], "tok_visa").await;
        placed.push(id);
    }
    f.place(&[("SKU-2", 1)], "tok_visa").await; // another customer's
    f.settle().await;

    let first = format!("/customers/{customer}/orders?limit=3");
    let pages = pages(&f, &first, "orders", async || {
        // New orders arrive while the client pages: they sort before its cursor.
        for _ in 0..2 {
            f.place_for(
                OrderId::from_uuid(Uuid::now_v7()),
                &customer,
                &[("SKU-2", 1)],
                "tok_visa",
            )
            .await;
        }
        f.settle().await;
    })
    .await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    let listed: Vec<String> = pages
        .iter()
        .flatten()
        .map(|o| o["orderId"].as_str().unwrap().to_owned())
        .collect();
    let newest_first: Vec<String> = placed.iter().rev().map(ToString::to_string).collect();
    assert_eq!(
        listed, newest_first,
        "every order once, newest first, none of the new ones"
    );
    assert!(
        pages
            .iter()
            .flatten()
            .all(|o| o["customerId"] == customer.as_str())
    );

    // Read from the start again, the new orders lead.
    let all = get(&f, &format!("/customers/{customer}/orders?limit=100")).await;
    assert_eq!(all.body["orders"].as_array().unwrap().len(), 9);
    assert!(all.body.get("nextCursor").is_none());
    assert_eq!(all.body["orders"][7]["orderId"], placed[1].to_string());

    let cursor = get(&f, &first).await.body["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=101", "invalid_limit"),
        ("limit=ten", "invalid_limit"),
        ("cursor=not-a-cursor", "invalid_cursor"),
        ("cursor=eyJ4IjoxfQ", "invalid_cursor"),
    ] {
        let reply = get(&f, &format!("/customers/{customer}/orders?{query}")).await;
        assert_eq!(
            (reply.status, reply.body["error"]["code"].as_str()),
            (400, Some(code)),
            "{query}"
        );
    }
    let foreign = get(&f, &format!("/customers/c-someone-else/orders?cursor={cursor}")).await;
    assert_eq!(foreign.status, 400, "a cursor is only good for its own list");
    let nobody = get(&f, "/customers/c-nobody/orders").await;
    assert_eq!(
        (nobody.status, nobody.body["orders"].as_array().map(Vec::len)),
        (200, Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_pages_in_version_order_with_who_and_why() {
    let f = Fixture::new(false).await;
    let id = f.place(&[("SKU-1", 1)], "tok_visa").await;
    f.settle().await;
    let first = format!("/orders/{id}/events?limit=2");
    let pages = pages(&f, &first, "events", async || {
        // Events appended while the client pages are read in their turn.
        for status in ["PREPARING", "READY"] {
            let reply = call(
                &f,
                "POST",
                &format!("/orders/{id}/status"),
                Some(json!({ "status": status })),
            )
            .await;
            assert_eq!(reply.status, 200);
        }
    })
    .await;
    let events: Vec<&Value> = pages.iter().flatten().collect();
    let versions: Vec<u64> = events.iter().map(|e| e["version"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (1..=u64::try_from(events.len()).unwrap()).collect();
    assert_eq!(versions, expected, "every version once, in order");
    assert!(pages.iter().all(|p| p.len() <= 2));
    let history = f.order_history(id).await;
    assert_eq!(events.len(), history.len());
    let types: Vec<&str> = events.iter().map(|e| e["eventType"].as_str().unwrap()).collect();
    let stored: Vec<&str> = history.iter().map(|e| e.event_type()).collect();
    assert_eq!(types, stored);
    for event in &events {
        for field in ["actor", "correlationId", "causationId", "occurredAt", "eventId"] {
            assert!(
                event[field].as_str().is_some_and(|v| !v.is_empty()),
                "{field}: {event}"
            );
        }
    }
    let last = events.last().unwrap();
    assert_eq!(last["actor"], "operator:ops-ann", "the operator is on record");
    assert_eq!(events[0]["actor"], "user-1", "so is the customer");

    let other = f.place(&[("SKU-1", 1)], "tok_visa").await;
    let cursor = get(&f, &first).await.body["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let foreign = get(&f, &format!("/orders/{other}/events?cursor={cursor}")).await;
    assert_eq!(
        (foreign.status, foreign.body["error"]["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
    let bad = get(&f, &format!("/orders/{id}/events?limit=1000")).await;
    assert_eq!(bad.status, 400);
    let unknown = get(
        &f,
        &format!("/orders/{}/events", OrderId::from_uuid(Uuid::now_v7())),
    )
    .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_folds_the_store_into_the_other_side_at_a_bounded_rate_and_reports_drift() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use orderflow_cli::rebuild::{RebuildArgs, run};

    let f = Fixture::new(false).await;
    let mut orders = Vec::new();
    for token in [
        "tok_visa",
        "tok_visa",
        "tok_decline",
        "tok_visa",
        "tok_visa",
        "tok_visa",
    ] {
        orders.push(f.place(&[("SKU-2", 1)], token).await);
    }
    f.settle().await;
    f.assert_read_models(&f.views, &orders).await;

    // Drift in the served table: a view lost, a view corrupted, a view of no order.
    let served = f.views.table().to_owned();
    let key = |id: OrderId| AttributeValue::S(id.to_string());
    f.dynamodb
        .delete_item()
        .table_name(&served)
        .key("orderId", key(orders[0]))
        .send()
        .await
        .unwrap();
    f.dynamodb
        .update_item()
        .table_name(&served)
        .key("orderId", key(orders[1]))
        .update_expression("SET #s = :s")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":s", AttributeValue::S("DELIVERED".into()))
        .send()
        .await
        .unwrap();
    let ghost = OrderId::from_uuid(Uuid::now_v7());
    let mut item = f
        .dynamodb
        .get_item()
        .table_name(&served)
        .key("orderId", key(orders[2]))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    item.insert("orderId".into(), key(ghost));
    f.dynamodb
        .put_item()
        .table_name(&served)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();

    let args = RebuildArgs {
        on: orderflow_cli::target::Target::local(&f.stack.prefix),
        into: None,
        rate: 20,
        keep: false,
        quiet: true,
    };
    let rebuilt = run(&args).await.unwrap();
    let shadow = f.stack.table("OrderViewShadowTable").unwrap();
    assert_eq!(rebuilt.table, shadow, "the side not served");
    assert_eq!(rebuilt.served, served);
    assert_eq!(rebuilt.orders, orders.len());
    assert!(
        rebuilt.elapsed >= std::time::Duration::from_millis(250),
        "6 orders at 20/s start over at least 5/20 s: {:?}",
        rebuilt.elapsed
    );
    let shadow_views = DynamoOrderViews::new(f.dynamodb.clone(), shadow);
    f.assert_read_models(&shadow_views, &orders).await;
    let comparison = &rebuilt.comparison;
    assert_eq!(comparison.missing, [orders[0]]);
    assert_eq!(comparison.differing, [orders[1]]);
    assert_eq!(comparison.extra, [ghost]);
    assert_eq!(comparison.same, orders.len() - 2);

    // Clearing the served side is refused; after the switch, the other side is the target.
    let refused = run(&RebuildArgs {
        into: Some("primary".into()),
        ..args.clone()
    })
    .await;
    assert!(refused.unwrap_err().to_string().contains("serves"));
    let switched = run(&RebuildArgs {
        on: orderflow_cli::target::Target {
            parameter_overrides: vec!["OrderViewSource=shadow".into()],
            ..args.on.clone()
        },
        ..args
    })
    .await
    .unwrap();
    assert_eq!(switched.served, shadow);
    assert_eq!(switched.table, served);
    assert!(switched.comparison.identical(), "{}", switched.comparison);
    assert_eq!(
        switched.cleared,
        orders.len(),
        "the ghost and every rebuilt view were cleared"
    );
}
