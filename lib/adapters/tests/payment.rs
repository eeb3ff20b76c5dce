//! The payment provider and vault contracts, one suite run against the in-memory
//! adapters and against the DynamoDB ones on DynamoDB Local.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

#[macro_use]
mod common;

use orderflow_adapters::payment::{DynamoVault, MemoryGateway, MemoryVault, SimulatedGateway};
use orderflow_app::{CaptureOutcome, GatewayError, Kept, PaymentGateway, PaymentVault};
use orderflow_domain::order::PaymentToken;
use orderflow_domain::{Currency, Money, OrderId, Timestamp};
use orderflow_provision::local;
use uuid::Uuid;

/// What the suite needs of a provider beyond the port: its outage switch and whether
/// the order's capture stands in its ledger (`Some(refunded)`).
trait Provider: PaymentGateway {
    async fn outage(&self, until: Option<Timestamp>);
    async fn charged(&self, order_id: OrderId) -> Option<bool>;
}

impl Provider for SimulatedGateway {
    async fn outage(&self, until: Option<Timestamp>) {
        self.set_outage(until).await.unwrap();
    }
    async fn charged(&self, order_id: OrderId) -> Option<bool> {
        self.ledger()
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.order_id == order_id.to_string())
            .map(|e| e.refunded)
    }
}

impl Provider for MemoryGateway {
    async fn outage(&self, until: Option<Timestamp>) {
        self.set_outage(until);
    }
    async fn charged(&self, order_id: OrderId) -> Option<bool> {
        self.ledger()
            .into_iter()
            .find(|e| e.order_id == order_id.to_string())
            .map(|e| e.refunded)
    }
}

async fn table(logical_id: &str) -> (aws_sdk_dynamodb::Client, String) {
    let client = local::dynamodb_client().await.unwrap();
    let tables = local::fresh_tables(&client, &[logical_id])
        .await
        .expect("DynamoDB Local is reachable");
    (client, tables[logical_id].clone())
}

async fn dynamo_gateway() -> SimulatedGateway {
    let (client, name) = table("PaymentProviderTable").await;
    SimulatedGateway::new(client, name)
}

async fn dynamo_vault() -> DynamoVault {
    let (client, name) = table("PaymentVaultTable").await;
    DynamoVault::new(client, name)
}

fn order() -> OrderId {
    OrderId::from_uuid(Uuid::now_v7())
}

fn usd(amount: u64) -> Money {
    Money::new(amount, Currency::parse("USD").unwrap())
}

fn token(text: &str) -> PaymentToken {
    PaymentToken::parse(text).unwrap()
}

fn captured(outcome: CaptureOutcome) -> String {
    match outcome {
        CaptureOutcome::Captured { payment_id } => payment_id,
        other @ CaptureOutcome::Declined { .. } => panic!("declined: {other:?}"),
    }
}

mod gateway {
    use super::*;

    pub(crate) async fn a_capture_is_made_once_per_order(provider: impl Provider) {
        let id = order();
        let first = captured(provider.capture(id, usd(1299), &token("tok_visa")).await.unwrap());
        let again = captured(provider.capture(id, usd(1299), &token("tok_visa")).await.unwrap());
        assert_eq!(first, again, "the order's key returns the first capture");
        assert_eq!(provider.charged(id).await, Some(false));
        let live = provider.capture_of(id).await.unwrap().unwrap();
        assert_eq!((live.payment_id, live.amount), (first, usd(1299)));
    }

    pub(crate) async fn declining_tokens_decline_and_a_flaky_one_fails_once(provider: impl Provider) {
        for (text, reason) in [
            ("tok_decline", "card_declined"),
            ("tok_insufficient_funds", "insufficient_funds"),
        ] {
            let id = order();
            assert!(matches!(
                provider.capture(id, usd(1), &token(text)).await.unwrap(),
                CaptureOutcome::Declined { reason: r } if r == reason
            ));
            assert_eq!(provider.charged(id).await, None);
        }
        let id = order();
        assert!(matches!(
            provider.capture(id, usd(1), &token("tok_flaky")).await,
            Err(GatewayError::Unavailable(_))
        ));
        captured(provider.capture(id, usd(1), &token("tok_flaky")).await.unwrap());
    }

    pub(crate) async fn a_cancel_refunds_and_refuses_every_later_capture(provider: impl Provider) {
        // Cancelled first: nothing to refund, and no capture afterwards.
        let early = order();
        assert!(provider.cancel(early).await.unwrap().is_none());
        assert!(matches!(
            provider.capture(early, usd(5), &token("tok_visa")).await.unwrap(),
            CaptureOutcome::Declined { reason } if reason == "payment_cancelled"
        ));
        assert_eq!(provider.charged(early).await, None);
        // Cancelled after a capture: refunded, and said so; twice changes nothing.
        let late = order();
        let payment_id = captured(provider.capture(late, usd(5), &token("tok_visa")).await.unwrap());
        let found = provider.cancel(late).await.unwrap().unwrap();
        assert_eq!(found.payment_id, payment_id);
        assert_eq!(provider.charged(late).await, Some(true));
        assert!(provider.capture_of(late).await.unwrap().is_none());
        assert!(provider.cancel(late).await.is_ok());
    }

    pub(crate) async fn a_refund_names_its_capture(provider: impl Provider) {
        let id = order();
        assert!(matches!(
            provider.refund(id, "pay_nothing", usd(5)).await,
            Err(GatewayError::Refused(_))
        ));
        let payment_id = captured(provider.capture(id, usd(5), &token("tok_visa")).await.unwrap());
        provider.refund(id, &payment_id, usd(5)).await.unwrap();
        assert_eq!(provider.charged(id).await, Some(true));
    }

    /// Capture keyed by the order, refund by the capture: a repeated key answers with
    /// the first result, "already refunded" is success, another amount is refused.
    pub(crate) async fn a_repeated_key_answers_the_first_result_and_refuses_another_amount(
        provider: impl Provider,
    ) {
        let id = order();
        let payment_id = captured(provider.capture(id, usd(5), &token("tok_visa")).await.unwrap());
        assert!(matches!(
            provider.capture(id, usd(6), &token("tok_visa")).await,
            Err(GatewayError::Refused(reason)) if reason.contains("different amount")
        ));
        assert_eq!(
            captured(provider.capture(id, usd(5), &token("tok_visa")).await.unwrap()),
            payment_id
        );
        assert_eq!(provider.capture_of(id).await.unwrap().unwrap().amount, usd(5));
        assert!(matches!(
            provider.refund(id, &payment_id, usd(4)).await,
            Err(GatewayError::Refused(reason)) if reason.contains("another amount")
        ));
        assert_eq!(
            provider.charged(id).await,
            Some(false),
            "a refused refund gives nothing back"
        );
        provider.refund(id, &payment_id, usd(5)).await.unwrap();
        provider.refund(id, &payment_id, usd(5)).await.unwrap();
        assert_eq!(provider.charged(id).await, Some(true));
        // A cancel's refund and a later refund of the same capture: both succeed.
        let cancelled = order();
        let payment_id = captured(
            provider
                .capture(cancelled, usd(7), &token("tok_visa"))
                .await
                .unwrap(),
        );
        assert!(provider.cancel(cancelled).await.unwrap().is_some());
        provider.refund(cancelled, &payment_id, usd(7)).await.unwrap();
    }

    pub(crate) async fn an_outage_fails_every_call_until_it_ends(provider: impl Provider) {
        let until = Timestamp::from_jiff(jiff::Timestamp::now()).plus(jiff::SignedDuration::from_mins(5));
        provider.outage(Some(until)).await;
        let id = order();
        assert!(matches!(
            provider.capture(id, usd(5), &token("tok_visa")).await,
            Err(GatewayError::Unavailable(_))
        ));
        assert!(matches!(
            provider.cancel(id).await,
            Err(GatewayError::Unavailable(_))
        ));
        provider.outage(None).await;
        captured(provider.capture(id, usd(5), &token("tok_visa")).await.unwrap());
    }
}

mod vault {
    use super::*;

    pub(crate) async fn a_token_is_kept_until_forgotten(vault: impl PaymentVault) {
        let id = order();
        assert!(vault.token(id).await.unwrap().is_none());
        let later = Timestamp::from_jiff(jiff::Timestamp::now()).plus(jiff::SignedDuration::from_hours(1));
        vault.keep(id, &token("tok_visa"), later).await.unwrap();
        assert_eq!(vault.token(id).await.unwrap(), Some(token("tok_visa")));
        vault.forget(id).await.unwrap();
        assert!(vault.token(id).await.unwrap().is_none());
        vault.forget(id).await.unwrap();
    }

    /// A retry cannot swap the card of an order whose token the vault holds.
    pub(crate) async fn another_token_never_replaces_the_one_held(vault: impl PaymentVault) {
        let id = order();
        let later = Timestamp::from_jiff(jiff::Timestamp::now()).plus(jiff::SignedDuration::from_hours(1));
        assert_eq!(
            vault.keep(id, &token("tok_visa"), later).await.unwrap(),
            Kept::New
        );
        assert_eq!(
            vault.keep(id, &token("tok_visa"), later).await.unwrap(),
            Kept::Same
        );
        assert_eq!(
            vault.keep(id, &token("tok_mastercard"), later).await.unwrap(),
            Kept::Other
        );
        assert_eq!(vault.token(id).await.unwrap(), Some(token("tok_visa")));
        vault.forget(id).await.unwrap();
        assert_eq!(
            vault.keep(id, &token("tok_mastercard"), later).await.unwrap(),
            Kept::New
        );
    }
}

mod memory {
    use super::*;

    #[tokio::test]
    async fn gateway_contract() {
        gateway::a_capture_is_made_once_per_order(MemoryGateway::new()).await;
        gateway::declining_tokens_decline_and_a_flaky_one_fails_once(MemoryGateway::new()).await;
        gateway::a_cancel_refunds_and_refuses_every_later_capture(MemoryGateway::new()).await;
        gateway::a_refund_names_its_capture(MemoryGateway::new()).await;
        gateway::a_repeated_key_answers_the_first_result_and_refuses_another_amount(MemoryGateway::new())
            .await;
        gateway::an_outage_fails_every_call_until_it_ends(MemoryGateway::new()).await;
    }

    #[tokio::test]
    async fn vault_contract() {
        vault::a_token_is_kept_until_forgotten(MemoryVault::new()).await;
        vault::another_token_never_replaces_the_one_held(MemoryVault::new()).await;
    }

    /// A clock that moves only when told.
    #[derive(Clone)]
    struct Manual(std::sync::Arc<std::sync::atomic::AtomicI64>);

    impl orderflow_app::Clock for Manual {
        fn now(&self) -> Timestamp {
            Timestamp::from_micros(self.0.load(std::sync::atomic::Ordering::Relaxed)).unwrap()
        }
    }

    #[tokio::test]
    async fn an_outage_ends_by_the_gateway_s_clock_not_the_wall_clock() {
        let start = Timestamp::from_jiff(jiff::Timestamp::now()).as_micros();
        let clock = Manual(std::sync::Arc::new(start.into()));
        let gateway = MemoryGateway::with_clock(clock.clone());
        let ends = Timestamp::from_micros(start + 60_000_000).unwrap();
        gateway.set_outage(Some(ends));
        let order = OrderId::from_uuid(Uuid::now_v7());
        assert!(matches!(
            gateway.capture_of(order).await,
            Err(GatewayError::Unavailable(_))
        ));
        clock
            .0
            .store(start + 59_000_000, std::sync::atomic::Ordering::Relaxed);
        assert!(matches!(
            gateway.capture_of(order).await,
            Err(GatewayError::Unavailable(_))
        ));
        clock
            .0
            .store(start + 61_000_000, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(gateway.capture_of(order).await.unwrap(), None);
    }
}

mod dynamodb {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gateway_contract() {
        gateway::a_capture_is_made_once_per_order(dynamo_gateway().await).await;
        gateway::declining_tokens_decline_and_a_flaky_one_fails_once(dynamo_gateway().await).await;
        gateway::a_cancel_refunds_and_refuses_every_later_capture(dynamo_gateway().await).await;
        gateway::a_refund_names_its_capture(dynamo_gateway().await).await;
        gateway::a_repeated_key_answers_the_first_result_and_refuses_another_amount(dynamo_gateway().await)
            .await;
        gateway::an_outage_fails_every_call_until_it_ends(dynamo_gateway().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn vault_contract() {
        vault::a_token_is_kept_until_forgotten(dynamo_vault().await).await;
        vault::another_token_never_replaces_the_one_held(dynamo_vault().await).await;
    }
}
