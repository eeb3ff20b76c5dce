//! Payment over the in-memory event store, provider and vault: whatever the order in
//! which `OrderPlaced` and `OrderCancelled` reach it, however often, and whatever the
//! card does, an order is charged at most once and never left charged once cancelled.
//! Hundreds of interleavings in well under a second.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use orderflow_adapters::MemoryEventStore;
use orderflow_adapters::payment::{MemoryGateway, MemoryVault};
use orderflow_app::{PaymentVault, Repository, SystemClock};
use orderflow_domain::order::PaymentToken;
use orderflow_domain::payment::{Payment, PaymentEvent, Trigger};
use orderflow_domain::{OrderId, Timestamp};
use orderflow_testkit::{metadata, placed_order, store_order};
use payment::PaymentService;
use proptest::prelude::*;

/// The order's events in the store: placed, and cancelled if `cancelled`.
async fn order_in(store: &MemoryEventStore, order_id: OrderId, cancelled: bool) {
    let now = Timestamp::from_jiff(jiff::Timestamp::now());
    store_order(store, &placed_order(order_id, 3, 250, now, cancelled)).await;
}

/// What [`order_in`]'s order costs.
fn total() -> orderflow_domain::Money {
    orderflow_domain::Money::new(750, orderflow_domain::Currency::parse("USD").unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn an_order_is_charged_at_most_once_and_never_left_charged_once_cancelled(
        card in prop::sample::select(vec!["tok_visa", "tok_flaky", "tok_decline"]),
        cancelled in any::<bool>(),
        deliveries in prop::collection::vec(any::<bool>(), 0..8),
        lost_capture in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let order_id = OrderId::from_uuid(uuid::Uuid::now_v7());
            let store = MemoryEventStore::new();
            order_in(&store, order_id, cancelled).await;
            let (gateway, vault) = (MemoryGateway::new(), MemoryVault::new());
            let later = Timestamp::from_jiff(jiff::Timestamp::now()).plus(jiff::SignedDuration::from_hours(1));
            let token = PaymentToken::parse(card).unwrap();
            vault.keep(order_id, &token, later).await.unwrap();
            if lost_capture {
                // A delivery reached the provider and crashed before recording its answer.
                let _ = orderflow_app::PaymentGateway::capture(&gateway, order_id, total(), &token).await;
            }
            let service = PaymentService::new(
                Repository::new(store.clone(), 0),
                SystemClock,
                gateway.clone(),
                vault,
            );
            // Copies of the triggers in any order (a cancellation only exists if the
            // order was cancelled); a retryable failure is a delivery that comes back.
            let trigger = |placed: bool| if placed || !cancelled { Trigger::Placed } else { Trigger::Cancelled };
            for placed in deliveries {
                let _ = service.settle(order_id, trigger(placed), &metadata()).await;
            }
            // Then the queue delivers each once more until it is handled.
            let mut last = vec![Trigger::Placed];
            if cancelled {
                last.push(Trigger::Cancelled);
            }
            for trigger in last {
                let mut attempts = 0;
                while service.settle(order_id, trigger, &metadata()).await.is_err() {
                    attempts += 1;
                    prop_assert!(attempts < 3, "settles within a redelivery or two");
                }
            }
            let events = Repository::new(store, 0).history::<Payment>(&order_id.to_string()).await.unwrap();
            let captures = events.iter().filter(|e| matches!(e.data, PaymentEvent::Captured(_))).count();
            prop_assert!(captures <= 1, "captured {} times", captures);
            let ledger = gateway.ledger();
            prop_assert!(ledger.len() <= 1);
            // The provider's books: one capture and at most one refund, whatever the
            // deliveries and the crash; no key reused with another amount.
            let calls = gateway.calls(order_id);
            prop_assert!(calls.captures <= 1, "{:?}", calls);
            prop_assert!(calls.refunds <= 1, "{:?}", calls);
            prop_assert!(calls.refund_calls <= 1, "refunds asked of the provider: {:?}", calls);
            prop_assert_eq!(calls.conflicts, 0);
            let charged = ledger.iter().any(|e| !e.refunded);
            if cancelled {
                prop_assert!(!charged, "a cancelled order is not left charged");
            } else {
                prop_assert_eq!(charged, card != "tok_decline");
                prop_assert_eq!(captures, usize::from(card != "tok_decline"));
            }
            Ok(())
        })?;
    }
}

/// A capture whose record a crash lost, then the order's cancellation: the provider's
/// cancel finds and refunds it, payment records the capture and the refund, and asks
/// the provider for no second refund (a real one answers that with an error, which
/// would park the message and leave the refund unrecorded).
#[tokio::test]
async fn a_capture_the_cancel_refunded_is_recorded_without_a_second_refund_call() {
    use orderflow_app::PaymentGateway;
    let order_id = OrderId::from_uuid(uuid::Uuid::now_v7());
    let store = MemoryEventStore::new();
    order_in(&store, order_id, true).await;
    let gateway = MemoryGateway::new();
    let token = PaymentToken::parse("tok_visa").unwrap();
    let amount = total();
    // The capture reached the provider; its record did not reach the store.
    gateway.capture(order_id, amount, &token).await.unwrap();
    let service = PaymentService::new(
        Repository::new(store.clone(), 0),
        SystemClock,
        gateway.clone(),
        MemoryVault::new(),
    );
    for _ in 0..2 {
        service
            .settle(order_id, Trigger::Cancelled, &metadata())
            .await
            .unwrap();
    }
    let events = Repository::new(store, 0)
        .history::<Payment>(&order_id.to_string())
        .await
        .unwrap();
    let types: Vec<&str> = events
        .iter()
        .map(|e| orderflow_domain::DomainEvent::event_type(&e.data))
        .collect();
    assert_eq!(types, ["PaymentCaptured", "PaymentRefunded"]);
    assert_eq!(gateway.refund_calls(order_id), 0, "the cancel refunded it");
    assert!(gateway.ledger().iter().all(|e| e.refunded));
}

/// The retry backoff from the function's variables: none without a queue, the
/// defaults for blank numbers, a positive number taken, anything else refused by name.
#[test]
fn the_backoff_is_read_from_the_variables() {
    let backoff = |vars: &[(&str, &str)]| {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let sqs = orderflow_adapters::sqs::Sqs::deferred(|| unreachable!("no message is held here"));
        payment::backoff(sqs, |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    };
    let url = ("PAYMENT_QUEUE_URL", "http://127.0.0.1:5050/000000000000/payment");
    assert!(backoff(&[]).unwrap().is_none(), "no queue, no backoff");
    assert!(backoff(&[("PAYMENT_QUEUE_URL", " ")]).unwrap().is_none());
    assert!(backoff(&[url]).unwrap().is_some());
    assert!(
        backoff(&[
            url,
            ("PAYMENT_RETRY_BASE_SECONDS", " "),
            ("PAYMENT_RETRY_MAX_SECONDS", "")
        ])
        .unwrap()
        .is_some()
    );
    assert!(
        backoff(&[
            url,
            ("PAYMENT_RETRY_BASE_SECONDS", "5"),
            ("PAYMENT_RETRY_MAX_SECONDS", "60")
        ])
        .unwrap()
        .is_some()
    );
    for (name, raw) in [
        ("PAYMENT_RETRY_BASE_SECONDS", "0"),
        ("PAYMENT_RETRY_BASE_SECONDS", "-5"),
        ("PAYMENT_RETRY_MAX_SECONDS", "ten"),
    ] {
        let refused = backoff(&[url, (name, raw)]).unwrap_err().to_string();
        assert!(refused.contains(name), "{refused}");
    }
}
