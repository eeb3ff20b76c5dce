//! A per-principal rate limit that holds across Lambda instances: a fixed window of
//! one minute, counted in one DynamoDB item per (principal, window), each taken with a
//! conditional `ADD`, so concurrent instances can never let more through than the
//! limit. Items expire by TTL a window after their own. [`MemoryRateLimiter`] keeps the
//! same counts in memory.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use orderflow_app::StoreError;
use orderflow_app::rate_limit::{RateLimiter, WINDOW_SECONDS, window};
use orderflow_domain::Timestamp;
use sha2::{Digest, Sha256};

pub use orderflow_app::rate_limit::Admission;

/// A limit of `per_minute` units per key and minute, in `table`.
#[derive(Debug, Clone)]
pub struct DynamoRateLimiter {
    client: Client,
    table: String,
    per_minute: u64,
    scope: &'static str,
}

impl DynamoRateLimiter {
    /// `per_minute` units a minute per key, counted in `table` under `scope` (so that
    /// several limits can share one table).
    pub fn new(client: Client, table: impl Into<String>, scope: &'static str, per_minute: u64) -> Self {
        Self {
            client,
            table: table.into(),
            per_minute,
            scope,
        }
    }
}

impl RateLimiter for DynamoRateLimiter {
    fn per_minute(&self) -> u64 {
        self.per_minute
    }

    async fn take(&self, key: &str, now: Timestamp) -> Result<Admission, StoreError> {
        let (window, retry_after) = window(now);
        let window_end = (window + 1) * WINDOW_SECONDS;
        // The key is hashed: no principal's name is stored, and no two principals'
        // keys can collide however they are spelled.
        let id = format!(
            "{}#{}#{window}",
            self.scope,
            hex::encode(Sha256::digest(key.as_bytes()))
        );
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(HashMap::from([("id".to_owned(), AttributeValue::S(id))])))
            .update_expression("ADD used :one SET expiration = if_not_exists(expiration, :expires)")
            .condition_expression("attribute_not_exists(used) OR used < :limit")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(self.per_minute.to_string()))
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((window_end + WINDOW_SECONDS).to_string()),
            )
            .send()
            .await;
        match update {
            Ok(_) => Ok(Admission::Admitted),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(Admission::Limited { retry_after })
            }
            Err(error) => Err(StoreError::new("take a rate-limit unit", error)),
        }
    }
}

/// The same limit in memory, for tests and in-memory runs of the API.
#[derive(Debug, Clone)]
pub struct MemoryRateLimiter {
    per_minute: u64,
    used: std::sync::Arc<std::sync::Mutex<HashMap<(String, i64), u64>>>,
}

impl MemoryRateLimiter {
    /// `per_minute` units a minute per key.
    #[must_use]
    pub fn new(per_minute: u64) -> Self {
        Self {
            per_minute,
            used: std::sync::Arc::default(),
        }
    }
}

impl RateLimiter for MemoryRateLimiter {
    fn per_minute(&self) -> u64 {
        self.per_minute
    }

    async fn take(&self, key: &str, now: Timestamp) -> Result<Admission, StoreError> {
        let (window, retry_after) = window(now);
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        used.retain(|(_, w), _| *w >= window);
        let count = used.entry((key.to_owned(), window)).or_default();
        if *count >= self.per_minute {
            return Ok(Admission::Limited { retry_after });
        }
        *count += 1;
        Ok(Admission::Admitted)
    }
}
