//! Idempotency records with Powertools semantics, one suite against both adapters,
//! plus what only DynamoDB shows (the TTL attribute and table setting) and the
//! run-once wrapper on top.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

#[macro_use]
mod common;

use std::sync::Arc;

use common::*;
use jiff::SignedDuration;
use orderflow_app::{Claim, Idempotency, IdempotencyError, IdempotencyStore, IdempotentError, SystemClock};
use orderflow_domain::Timestamp;
use uuid::Uuid;

fn at(seconds: i64) -> Timestamp {
    ts("2026-11-21T06:00:00Z").plus(SignedDuration::from_secs(seconds))
}

/// Claims at `now` with a 30 s lease and a one-day retention.
async fn claim(
    store: &impl IdempotencyStore,
    key: &str,
    fingerprint: &str,
    now: i64,
) -> Result<Claim, IdempotencyError> {
    store
        .claim(key, fingerprint, at(now), at(now + 30), at(now + 86_400))
        .await
}

fn key() -> String {
    format!("user-1#{}", Uuid::now_v7())
}

mod suite {
    use super::*;

    pub(crate) async fn a_completed_key_returns_the_stored_response(store: impl IdempotencyStore) {
        let key = key();
        assert_eq!(claim(&store, &key, "fp-a", 0).await.unwrap(), Claim::Acquired);
        store
            .complete(&key, "fp-a", "{\"orderId\":\"o-1\"}", at(86_400))
            .await
            .unwrap();
        assert_eq!(
            claim(&store, &key, "fp-a", 5).await.unwrap(),
            Claim::Completed("{\"orderId\":\"o-1\"}".into())
        );
    }

    pub(crate) async fn another_request_with_the_key_is_refused(store: impl IdempotencyStore) {
        let key = key();
        claim(&store, &key, "fp-a", 0).await.unwrap();
        assert!(matches!(
            claim(&store, &key, "fp-b", 1).await,
            Err(IdempotencyError::KeyReused)
        ));
        store.complete(&key, "fp-a", "r", at(86_400)).await.unwrap();
        assert!(matches!(
            claim(&store, &key, "fp-b", 2).await,
            Err(IdempotencyError::KeyReused)
        ));
    }

    pub(crate) async fn the_same_request_in_flight_is_in_progress(store: impl IdempotencyStore) {
        let key = key();
        claim(&store, &key, "fp-a", 0).await.unwrap();
        assert!(matches!(
            claim(&store, &key, "fp-a", 29).await,
            Err(IdempotencyError::InProgress)
        ));
    }

    pub(crate) async fn a_crashed_claim_is_taken_over_after_its_lease(store: impl IdempotencyStore) {
        let key = key();
        claim(&store, &key, "fp-a", 0).await.unwrap();
        // The first invocation died; past the lease a retry takes the key over.
        assert_eq!(claim(&store, &key, "fp-a", 31).await.unwrap(), Claim::Acquired);
        store.complete(&key, "fp-a", "second", at(86_400)).await.unwrap();
        // The first invocation waking up late cannot overwrite the result.
        assert!(matches!(
            store.complete(&key, "fp-a", "first", at(86_400)).await,
            Err(IdempotencyError::ClaimLost)
        ));
        assert_eq!(
            claim(&store, &key, "fp-a", 40).await.unwrap(),
            Claim::Completed("second".into())
        );
    }

    pub(crate) async fn an_expired_record_is_as_good_as_absent(store: impl IdempotencyStore) {
        let key = key();
        claim(&store, &key, "fp-a", 0).await.unwrap();
        store.complete(&key, "fp-a", "old", at(100)).await.unwrap();
        // TTL deletion lags in DynamoDB; past `expiration` the record no longer counts.
        assert_eq!(claim(&store, &key, "fp-b", 101).await.unwrap(), Claim::Acquired);
    }

    pub(crate) async fn a_released_key_can_be_claimed_again(store: impl IdempotencyStore) {
        let key = key();
        claim(&store, &key, "fp-a", 0).await.unwrap();
        store.release(&key, "fp-b").await.unwrap();
        assert!(
            matches!(
                claim(&store, &key, "fp-a", 1).await,
                Err(IdempotencyError::InProgress)
            ),
            "another request's release does not free the key"
        );
        store.release(&key, "fp-a").await.unwrap();
        assert_eq!(claim(&store, &key, "fp-a", 2).await.unwrap(), Claim::Acquired);
        // Releasing what is not there is fine.
        store.release("never-claimed", "fp").await.unwrap();
    }

    pub(crate) async fn two_concurrent_first_uses_get_one_claim(store: impl IdempotencyStore + 'static) {
        let store = Arc::new(store);
        for _ in 0..20 {
            let key = key();
            let (a, b) = tokio::join!(
                tokio::spawn({
                    let (store, key) = (store.clone(), key.clone());
                    async move { claim(store.as_ref(), &key, "fp-a", 0).await }
                }),
                tokio::spawn({
                    let (store, key) = (store.clone(), key.clone());
                    async move { claim(store.as_ref(), &key, "fp-a", 0).await }
                }),
            );
            let results = [a.unwrap(), b.unwrap()];
            let acquired = results
                .iter()
                .filter(|r| matches!(r, Ok(Claim::Acquired)))
                .count();
            let in_progress = results
                .iter()
                .filter(|r| matches!(r, Err(IdempotencyError::InProgress)))
                .count();
            assert_eq!((acquired, in_progress), (1, 1), "{results:?}");
        }
    }

    pub(crate) async fn work_runs_once_per_key(store: impl IdempotencyStore) {
        let idempotency = Idempotency::new(
            store,
            SystemClock,
            SignedDuration::from_secs(30),
            SignedDuration::from_hours(24),
        );
        let key = key();
        let runs = std::sync::atomic::AtomicU32::new(0);
        let work = || async {
            let n = runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            Ok::<_, std::io::Error>(format!("order-{n}"))
        };
        let first = idempotency.run(&key, "fp-a", work).await.unwrap();
        let second = idempotency.run(&key, "fp-a", work).await.unwrap();
        assert_eq!((first.response.as_str(), first.replayed), ("order-1", false));
        assert_eq!((second.response.as_str(), second.replayed), ("order-1", true));
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        let reused = idempotency.run(&key, "fp-b", work).await.unwrap_err();
        assert!(matches!(
            reused,
            IdempotentError::Key(IdempotencyError::KeyReused)
        ));
    }

    pub(crate) async fn failed_work_releases_the_key(store: impl IdempotencyStore) {
        let idempotency = Idempotency::new(
            store,
            SystemClock,
            SignedDuration::from_secs(30),
            SignedDuration::from_hours(24),
        );
        let key = key();
        let failed = idempotency
            .run(&key, "fp-a", || async {
                Err::<String, _>(std::io::Error::other("downstream down"))
            })
            .await
            .unwrap_err();
        assert!(matches!(failed, IdempotentError::Work(_)));
        let retried = idempotency
            .run(&key, "fp-a", || async {
                Ok::<_, std::io::Error>("done".to_owned())
            })
            .await
            .unwrap();
        assert_eq!((retried.response.as_str(), retried.replayed), ("done", false));
    }
}

against_both!(
    memory: orderflow_adapters::MemoryIdempotencyStore::new(),
    dynamodb: crate::common::dynamo_idempotency_store().await.0,
    tests: [
        a_completed_key_returns_the_stored_response,
        another_request_with_the_key_is_refused,
        the_same_request_in_flight_is_in_progress,
        a_crashed_claim_is_taken_over_after_its_lease,
        an_expired_record_is_as_good_as_absent,
        a_released_key_can_be_claimed_again,
        two_concurrent_first_uses_get_one_claim,
        work_runs_once_per_key,
        failed_work_releases_the_key,
    ]
);

#[tokio::test]
async fn records_carry_a_ttl_attribute_the_table_expires_by() {
    let (store, client, table) = dynamo_idempotency_store().await;
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let description = ttl.time_to_live_description.unwrap();
    assert_eq!(description.attribute_name.as_deref(), Some("expiration"));
    assert_eq!(description.time_to_live_status.unwrap().as_str(), "ENABLED");

    let key = key();
    claim(&store, &key, "fp-a", 0).await.unwrap();
    store.complete(&key, "fp-a", "r", at(86_400)).await.unwrap();
    let item = client
        .get_item()
        .table_name(&table)
        .key("id", aws_sdk_dynamodb::types::AttributeValue::S(key))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let expiration = item["expiration"].as_n().unwrap().parse::<i64>().unwrap();
    assert_eq!(
        expiration,
        at(86_400).as_jiff().as_second(),
        "epoch seconds, as TTL needs"
    );
    assert_eq!(item["status"].as_s().unwrap(), "COMPLETED");
}
