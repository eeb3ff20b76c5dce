//! The sample payloads in `events/<aggregate>/` decode, re-encode to the same JSON, and old
//! schema versions upcast to what the current version says.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed expectation should fail loudly"
)]

use std::path::PathBuf;

use orderflow_domain::order::OrderEvent;
use orderflow_domain::order::events::names;
use orderflow_domain::{DecodeError, DomainEvent, Envelope};
use serde_json::Value;

fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/order")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(samples_dir().join(name)).unwrap()
}

/// Decodes and re-encodes every current-version sample of one aggregate's folder;
/// returns the event types seen.
fn round_trip_folder<E: DomainEvent + std::fmt::Debug>(folder: &str) -> Vec<&'static str> {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(samples_dir().join("..").join(folder)).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains(".v") {
            continue; // old schema versions: see the upcasting test
        }
        let json = std::fs::read_to_string(&path).unwrap();
        let envelope = Envelope::<E>::decode(&json).unwrap_or_else(|e| panic!("{folder}/{name}: {e}"));
        assert_eq!(format!("{}.json", envelope.event_type()), name);
        assert_eq!(
            envelope.aggregate_type, folder,
            "{name} sits in its aggregate's folder"
        );
        let original: Value = serde_json::from_str(&json).unwrap();
        let reencoded: Value = serde_json::from_str(&envelope.to_json()).unwrap();
        assert_eq!(
            reencoded, original,
            "{folder}/{name} does not re-encode to itself"
        );
        seen.push(envelope.event_type());
    }
    seen.sort_unstable();
    seen
}

fn sorted(mut names: Vec<&'static str>) -> Vec<&'static str> {
    names.sort_unstable();
    names
}

#[test]
fn every_current_sample_round_trips_exactly() {
    let all = sorted(vec![
        names::PLACED,
        names::STOCK_RESERVED,
        names::STOCK_RESERVATION_FAILED,
        names::PAYMENT_CAPTURED,
        names::PAYMENT_DECLINED,
        names::CONFIRMED,
        names::SHIPMENT_RECORDED,
        names::FULFILMENT_ADVANCED,
        names::CANCELLED,
        names::PAYMENT_REFUNDED,
        names::STOCK_RELEASED,
        names::SHIPMENT_CANCELLED,
    ]);
    assert_eq!(
        round_trip_folder::<OrderEvent>("order"),
        all,
        "every order event type has a sample"
    );
    use orderflow_domain::{inventory, payment, shipment};
    assert_eq!(
        round_trip_folder::<inventory::InventoryEvent>("inventory"),
        sorted(vec![
            inventory::names::RESERVED,
            inventory::names::RESERVATION_FAILED,
            inventory::names::RELEASED,
            inventory::names::VOIDED,
            inventory::names::SOLD
        ])
    );
    use orderflow_domain::{customer, product};
    assert_eq!(
        round_trip_folder::<customer::CustomerEvent>("customer"),
        vec![customer::names::PERSONAL_DATA_ERASED]
    );
    assert_eq!(
        round_trip_folder::<product::ProductEvent>("product"),
        sorted(vec![
            product::names::LISTED,
            product::names::REPRICED,
            product::names::RECEIVED,
            product::names::WRITTEN_OFF
        ])
    );
    assert_eq!(
        round_trip_folder::<payment::PaymentEvent>("payment"),
        sorted(vec![
            payment::names::CAPTURED,
            payment::names::DECLINED,
            payment::names::REFUNDED,
            payment::names::VOIDED
        ])
    );
    assert_eq!(
        round_trip_folder::<shipment::ShipmentEvent>("shipment"),
        sorted(vec![
            shipment::names::CREATED,
            shipment::names::CANCELLED,
            shipment::names::VOIDED
        ])
    );
}

#[test]
fn order_placed_v1_upcasts_to_v2() {
    let v1 = Envelope::<OrderEvent>::decode(&read("OrderPlaced.v1.json")).unwrap();
    let v2 = Envelope::<OrderEvent>::decode(&read("OrderPlaced.v2.json")).unwrap();
    let (OrderEvent::Placed(old), OrderEvent::Placed(new)) = (&v1.data, &v2.data) else {
        panic!("both samples are OrderPlaced");
    };
    assert_eq!(
        old.lines, new.lines,
        "v1 flat prices become Money with line totals"
    );
    assert_eq!(old.total, new.total);
    assert_eq!(old.shipping_address, None, "v1 had no address");
    assert_eq!(old.customer_id, new.customer_id);
    // Re-encoding writes the current version.
    let reencoded: Value = serde_json::from_str(&v1.to_json()).unwrap();
    assert_eq!(reencoded["schemaVersion"], 3);
    assert_eq!(v1.data.schema_version(), 3);
}

#[test]
fn order_placed_v2_keeps_its_address_in_clear_until_history_is_encrypted() {
    use orderflow_domain::order::PersonalAddress;
    let v2 = Envelope::<OrderEvent>::decode(&read("OrderPlaced.v2.json")).unwrap();
    let v3 = Envelope::<OrderEvent>::decode(&read("OrderPlaced.json")).unwrap();
    let (OrderEvent::Placed(old), OrderEvent::Placed(new)) = (&v2.data, &v3.data) else {
        panic!("both samples are OrderPlaced");
    };
    assert_eq!((&old.lines, old.total), (&new.lines, new.total));
    let Some(PersonalAddress::Clear(address)) = &old.shipping_address else {
        panic!("a v2 address reads in clear: {:?}", old.shipping_address);
    };
    assert_eq!(address.name, "Ada Lovelace");
    assert!(
        matches!(new.shipping_address, Some(PersonalAddress::Sealed(_))),
        "v3 seals it"
    );
    assert!(!read("OrderPlaced.json").contains("Lovelace"));
}

#[test]
fn readers_ignore_unknown_fields() {
    let mut json: Value = serde_json::from_str(&read("OrderCancelled.json")).unwrap();
    json["somethingNew"] = Value::from(1);
    json["data"]["alsoNew"] = Value::from("x");
    let decoded = Envelope::<OrderEvent>::decode(&json.to_string()).unwrap();
    assert_eq!(decoded.event_type(), names::CANCELLED);
}

#[test]
fn unknown_types_and_future_versions_are_typed_errors() {
    let mut json: Value = serde_json::from_str(&read("OrderConfirmed.json")).unwrap();
    json["eventType"] = Value::from("OrderTeleported");
    assert!(matches!(
        Envelope::<OrderEvent>::decode(&json.to_string()),
        Err(DecodeError::UnknownType(t)) if t == "OrderTeleported"
    ));
    let mut json: Value = serde_json::from_str(&read("OrderConfirmed.json")).unwrap();
    json["schemaVersion"] = Value::from(9);
    assert!(matches!(
        Envelope::<OrderEvent>::decode(&json.to_string()),
        Err(DecodeError::FromTheFuture {
            version: 9,
            current: 1,
            ..
        })
    ));
    assert!(matches!(
        Envelope::<OrderEvent>::decode("{\"eventId\": 1}"),
        Err(DecodeError::Envelope(_))
    ));
    let mut json: Value = serde_json::from_str(&read("OrderPlaced.v1.json")).unwrap();
    json["data"]["lines"][0]
        .as_object_mut()
        .unwrap()
        .remove("unitPriceMinor");
    assert!(matches!(
        Envelope::<OrderEvent>::decode(&json.to_string()),
        Err(DecodeError::Upcast { from: 1, .. })
    ));
}

mod v1_fast_path {
    use orderflow_domain::order::events::order_placed_v1_both_ways;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// A value for a v1 field: mostly what v1 wrote, sometimes what it must refuse.
    fn field(good: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
        prop_oneof![
            8 => good,
            1 => Just(Value::Null),
            1 => prop_oneof![
                Just(json!("")),
                Just(json!(-1)),
                Just(json!(1.5)),
                Just(json!(u64::MAX)),
                Just(json!([])),
                Just(json!("usd")),
            ],
        ]
        .boxed()
    }

    fn line() -> impl Strategy<Value = Value> {
        (
            field(prop_oneof![Just(json!("SKU-1")), "[A-Z0-9-]{1,8}".prop_map(Value::from)].boxed()),
            field((0u64..1_200).prop_map(Value::from).boxed()),
            field(prop_oneof![(0u64..100_000).prop_map(Value::from), Just(json!(u64::MAX / 2))].boxed()),
            any::<bool>(),
        )
            .prop_map(|(sku, quantity, unit, extra)| {
                let mut line = json!({"sku": sku, "quantity": quantity, "unitPriceMinor": unit});
                if extra {
                    line["note"] = json!("a field v1 readers ignore");
                }
                line
            })
    }

    fn v1() -> impl Strategy<Value = Value> {
        (
            field(Just(json!("0192f0a0-7c1e-7a3b-9c2d-1e2f3a4b5c6d")).boxed()),
            field(Just(json!("c-1")).boxed()),
            field(prop_oneof![Just(json!("USD")), Just(json!("EUR"))].boxed()),
            prop::collection::vec(line(), 0..4),
            field((0u64..1_000_000).prop_map(Value::from).boxed()),
            field(Just(json!("tok_****visa")).boxed()),
            field(
                prop_oneof![
                    Just(json!("2026-11-21T06:30:01.000000Z")),
                    Just(json!("2026-11-21T08:30:01+02:00"))
                ]
                .boxed(),
            ),
            any::<bool>(),
        )
            .prop_map(
                |(order, customer, currency, lines, total, payment, placed, address)| {
                    let mut v1 = json!({
                        "orderId": order, "customerId": customer, "currency": currency, "lines": lines,
                        "totalMinor": total, "payment": payment, "placedAt": placed,
                    });
                    if address {
                        // v1 never had one; the upcaster writes null whatever is there.
                        v1["shippingAddress"] = json!({"line1": "x"});
                    }
                    v1
                },
            )
    }

    proptest! {
        /// The typed read of `OrderPlaced` v1 is only a faster way to the upcaster's
        /// answer: it agrees wherever it answers, and answers wherever the upcaster
        /// accepts the data.
        #[test]
        fn the_typed_v1_read_agrees_with_the_declared_upcaster(data in v1()) {
            let raw = serde_json::value::to_raw_value(&data).unwrap();
            let (fast, declared) = order_placed_v1_both_ways(&raw);
            match (fast, declared) {
                (Some(fast), Ok(declared)) => prop_assert_eq!(fast, declared),
                (None, Err(_)) => {}
                (fast, declared) => prop_assert!(false, "typed {fast:?}, declared {declared:?} for {data}"),
            }
        }
    }
}
