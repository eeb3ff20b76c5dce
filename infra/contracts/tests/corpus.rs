//! The historical corpus: stored events at every schema version ever written
//! (`events/corpus/*.jsonl`, one stream per file, kept forever and grown whenever a
//! version is added) are decoded with today's upcasters, folded and projected, and
//! compared with their golden views (`<stream>.golden.json`). An upcaster that changes
//! what an old event means, or a fold that reads old events differently, fails here.
//!
//! `ORDERFLOW_UPDATE_GOLDEN=1` writes the golden files instead; review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

use std::path::Path;

use orderflow_contracts::{CORPUS, corpus, repository};
use orderflow_domain::order::view::{Applied, OrderProjection, OrderView};
use orderflow_domain::{
    Aggregate, DomainEvent, Envelope, customer, inventory, order, payment, product, shipment,
};
use serde_json::{Value, json};

/// Decodes a stream, checks it is one contiguous stream and that every event
/// re-encodes at the current version, and folds it.
fn fold<A: Aggregate>(name: &str, lines: &[Value]) -> (Vec<Envelope<A::Event>>, Value) {
    let events: Vec<Envelope<A::Event>> = lines
        .iter()
        .map(|line| Envelope::decode(&line.to_string()).unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(
            event.version,
            i as u64 + 1,
            "{name}: versions run from 1 without gaps"
        );
        assert_eq!(event.aggregate_id, events[0].aggregate_id, "{name}: one stream");
        assert_eq!(event.aggregate_type, A::TYPE, "{name}");
        let reencoded: Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(
            reencoded["schemaVersion"],
            json!(event.data.schema_version()),
            "{name}: old events are written back at the current version"
        );
    }
    let state = A::fold(A::State::default(), events.iter().map(|e| &e.data));
    (events, serde_json::to_value(state).unwrap())
}

fn golden(name: &str, lines: &[Value]) -> Value {
    let aggregate = lines[0]["aggregateType"].as_str().unwrap();
    match aggregate {
        "order" => {
            let (events, state) = fold::<order::Order>(name, lines);
            // Projected as the projector does, one event at a time.
            let mut projection = OrderProjection::default();
            for event in &events {
                assert_eq!(projection.apply(event), Applied::Folded, "{name}");
            }
            let view = projection.view();
            assert_eq!(
                view,
                OrderView::fold(&events),
                "{name}: a rebuild folds what the projector applied"
            );
            json!({"state": state, "view": view})
        }
        "inventory" => json!({"state": fold::<inventory::Inventory>(name, lines).1}),
        "payment" => json!({"state": fold::<payment::Payment>(name, lines).1}),
        "shipment" => json!({"state": fold::<shipment::Shipment>(name, lines).1}),
        "product" => json!({"state": fold::<product::Product>(name, lines).1}),
        "customer" => json!({"state": fold::<customer::Customer>(name, lines).1}),
        other => panic!("{name}: no aggregate {other}"),
    }
}

#[test]
fn every_stored_stream_upcasts_folds_and_projects_to_its_golden_view() {
    let root = repository();
    let mut streams: std::collections::BTreeMap<String, Vec<Value>> = std::collections::BTreeMap::new();
    for (file, _, event) in corpus(&root) {
        streams.entry(file).or_default().push(event);
    }
    assert!(streams.len() >= 13, "{}", streams.len());
    let update = std::env::var("ORDERFLOW_UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut wrong = Vec::new();
    for (file, lines) in &streams {
        let actual = golden(file, lines);
        let path = Path::new(&root)
            .join(CORPUS)
            .join(file.replace(".jsonl", ".golden.json"));
        if update {
            std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
            continue;
        }
        let expected: Value = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| {
                panic!(
                    "{}: missing; run with ORDERFLOW_UPDATE_GOLDEN=1 and review it",
                    path.display()
                )
            });
        if actual != expected {
            wrong.push(format!(
                "{file}:\n  expected {}\n  actual   {}",
                serde_json::to_string(&expected).unwrap(),
                serde_json::to_string(&actual).unwrap()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "streams fold to something else than their golden views:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_v1_order_reads_as_the_v2_order_it_would_have_been() {
    let root = repository();
    let v1: Vec<Value> = corpus(&root)
        .into_iter()
        .filter(|(f, _, _)| f == "order-delivered-placed-at-v1.jsonl")
        .map(|(_, _, e)| e)
        .collect();
    assert_eq!(v1[0]["schemaVersion"], 1);
    let (events, _) = fold::<order::Order>("v1", &v1);
    let view = OrderView::fold(&events).unwrap();
    assert_eq!(view.total.amount, 3098, "v1's totalMinor");
    assert_eq!(
        view.items[0].line_total.amount, 2598,
        "v1's unit price × quantity"
    );
    assert_eq!(view.shipping_address, None, "v1 had no address");
    assert_eq!(view.status.to_string(), "DELIVERED");
}

/// The sealed order of the erased customer: its totals and status fold as any order's;
/// its address opens with the customer's key (the test key it was sealed with) and,
/// the key gone as `customer-erased.jsonl` records, reads as the erased marker.
#[test]
fn the_erased_customers_order_keeps_its_totals_and_reads_erased_without_the_key() {
    use orderflow_app::personal::{DataKey, shown};
    use orderflow_domain::order::{ErasedAddress, PersonalAddress};
    let root = repository();
    let stream = |name: &str| -> Vec<Value> {
        corpus(&root)
            .into_iter()
            .filter(|(f, _, _)| f == name)
            .map(|(_, _, e)| e)
            .collect()
    };
    let sealed = stream("order-delivered-sealed.jsonl");
    assert_eq!(sealed[0]["schemaVersion"], 3);
    let (events, _) = fold::<order::Order>("sealed", &sealed);
    let view = OrderView::fold(&events).unwrap();
    assert_eq!(
        (view.total.amount, view.status.to_string().as_str()),
        (3098, "DELIVERED")
    );
    let address = view.shipping_address.clone().unwrap();
    assert!(matches!(address, PersonalAddress::Sealed(_)), "{address:?}");
    assert!(!sealed[0].to_string().contains("Hopper"));
    let key = DataKey::from_bytes(&orderflow_testkit::TEST_KEY).unwrap();
    let PersonalAddress::Clear(opened) = shown(Some(&key), &view.customer_id, address.clone()) else {
        panic!("the key opens it");
    };
    assert_eq!(opened.name, "Grace Hopper");
    assert_eq!(
        shown(None, &view.customer_id, address),
        PersonalAddress::Erased(ErasedAddress)
    );
    let erased = stream("customer-erased.jsonl");
    let (events, _) = fold::<customer::Customer>("erased", &erased);
    let customer::CustomerEvent::PersonalDataErased(erasure) = &events[0].data;
    assert_eq!(erasure.orders, vec![view.order_id]);
    assert!(
        !erased[0].to_string().contains("Hopper"),
        "no personal data in the audit trail"
    );
}
