//! The metrics each function emits, read back from the EMF documents the collector
//! writes (what CloudWatch parses out of the function's log).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

use std::time::Duration;

use orderflow_domain::Envelope;
use orderflow_domain::order::OrderEvent;
use orderflow_domain::payment::PaymentEvent;
use orderflow_lambda::metrics;
use serde_json::Value;

fn sample<E: orderflow_domain::DomainEvent>(path: &str) -> Envelope<E> {
    let text =
        std::fs::read_to_string(format!("{}/../../events/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    Envelope::decode(&text).unwrap()
}

/// A metric read back: its name, value and dimensions.
type Emitted = (String, Value, Vec<(String, String)>);

/// Every metric in the documents.
fn read(documents: &str) -> Vec<Emitted> {
    let mut metrics = Vec::new();
    for line in documents.lines().filter(|l| !l.trim().is_empty()) {
        let doc: Value = serde_json::from_str(line).unwrap();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "orderflow", "{doc}");
        assert!(doc["_aws"]["Timestamp"].as_u64().is_some(), "{doc}");
        let dimensions: Vec<String> = directive["Dimensions"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_owned())
            .collect();
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap().to_owned();
            let values = dimensions
                .iter()
                .map(|d| (d.clone(), doc[d].as_str().unwrap_or_default().to_owned()))
                .collect();
            metrics.push((name.clone(), doc[&name].clone(), values));
        }
    }
    metrics
}

#[test]
fn every_business_and_handler_metric_is_an_emf_document_with_the_function_as_dimension() {
    let collector = metrics::init_lambda("order-saga").unwrap();
    let placed = sample::<OrderEvent>("order/OrderPlaced.json");
    let confirmed = sample::<OrderEvent>("order/OrderConfirmed.json");
    let cancelled = sample::<OrderEvent>("order/OrderCancelled.json");
    metrics::time_to_confirm(
        std::slice::from_ref(&confirmed),
        confirmed
            .occurred_at
            .plus(jiff::SignedDuration::from_millis(-1_250)),
    );
    metrics::order_events(&[placed, confirmed, cancelled.clone(), cancelled]);
    metrics::payment_events(&[sample::<PaymentEvent>("payment/PaymentDeclined.json")]);
    metrics::handler_duration(Duration::from_micros(1_500));
    metrics::message_failed("poison");
    metrics::events_relayed(3);

    let mut out = Vec::new();
    collector.flush(&mut out).unwrap();
    let metrics = read(&String::from_utf8(out).unwrap());
    let find = |name: &str| {
        metrics
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("{name} missing from {metrics:#?}"))
    };
    for (name, value) in [("OrdersPlaced", 1), ("OrdersConfirmed", 1), ("EventsRelayed", 3)] {
        let (_, v, dims) = find(name);
        assert_eq!(v.as_u64(), Some(value), "{name}");
        assert_eq!(dims, &[("function".to_owned(), "order-saga".to_owned())]);
    }
    let (_, v, dims) = find("OrdersCancelled");
    assert_eq!(v.as_u64(), Some(2));
    assert!(
        dims.contains(&("reason".to_owned(), "payment_declined".to_owned())),
        "{dims:?}"
    );
    let (_, _, dims) = find("PaymentDeclines");
    assert!(
        dims.iter().any(|(d, v)| d == "reason" && v == "card_declined"),
        "{dims:?}"
    );
    let (_, _, dims) = find("MessagesFailed");
    assert!(dims.contains(&("kind".to_owned(), "poison".to_owned())));
    let (_, v, dims) = find("TimeToConfirm");
    assert_eq!(v, &serde_json::json!([1250.0]), "milliseconds");
    assert_eq!(dims, &[("function".to_owned(), "order-saga".to_owned())]);
    let (_, v, _) = find("HandlerDuration");
    assert_eq!(v, &serde_json::json!([1500.0]), "microseconds");
}
