//! The rate limit's contract, against DynamoDB Local and in memory: a key gets
//! `per_minute` units in a window and is then told when the window turns; keys and
//! windows are counted apart; concurrent takers never get more than the limit.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use orderflow_adapters::rate_limit::{DynamoRateLimiter, MemoryRateLimiter};
use orderflow_app::{Admission, RateLimiter};
use orderflow_domain::Timestamp;
use orderflow_provision::local;
use uuid::Uuid;

/// 12:00:15 of some day: 45 s before the window turns.
fn at(offset_seconds: i64) -> Timestamp {
    Timestamp::from_micros((1_795_780_800 + 15 + offset_seconds) * 1_000_000).unwrap()
}

async fn contract(limiter: impl RateLimiter) {
    assert_eq!(limiter.per_minute(), 3);
    let key = format!("customer:{}", Uuid::now_v7());
    for _ in 0..3 {
        assert_eq!(limiter.take(&key, at(0)).await.unwrap(), Admission::Admitted);
    }
    assert_eq!(
        limiter.take(&key, at(0)).await.unwrap(),
        Admission::Limited { retry_after: 45 }
    );
    assert_eq!(
        limiter.take(&key, at(44)).await.unwrap(),
        Admission::Limited { retry_after: 1 }
    );
    let other = format!("customer:{}", Uuid::now_v7());
    assert_eq!(
        limiter.take(&other, at(0)).await.unwrap(),
        Admission::Admitted,
        "keys are counted apart"
    );
    assert_eq!(
        limiter.take(&key, at(45)).await.unwrap(),
        Admission::Admitted,
        "a new window"
    );
}

async fn concurrent(limiter: impl RateLimiter) {
    let key = format!("customer:{}", Uuid::now_v7());
    let takes = futures::future::join_all((0..10).map(|_| limiter.take(&key, at(0)))).await;
    let admitted = takes
        .into_iter()
        .filter(|t| *t.as_ref().unwrap() == Admission::Admitted)
        .count();
    assert_eq!(admitted, 3);
}

#[tokio::test]
async fn in_memory() {
    contract(MemoryRateLimiter::new(3)).await;
    concurrent(MemoryRateLimiter::new(3)).await;
}

#[tokio::test]
async fn in_dynamodb() {
    let client = local::dynamodb_client().await.unwrap();
    let tables = local::fresh_tables(&client, &["RateLimitTable"])
        .await
        .expect("DynamoDB Local is reachable");
    let table = tables["RateLimitTable"].clone();
    contract(DynamoRateLimiter::new(client.clone(), table.clone(), "test", 3)).await;
    concurrent(DynamoRateLimiter::new(client, table, "test", 3)).await;
}
