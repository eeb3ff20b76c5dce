//! An in-memory idempotency store with the DynamoDB adapter's semantics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use orderflow_app::{Claim, IdempotencyError, IdempotencyStore, KeyRecord, KeyStatus, StoreError};
use orderflow_domain::Timestamp;

/// Idempotency records in a mutex. Clones share the same data.
#[derive(Debug, Clone, Default)]
pub struct MemoryIdempotencyStore {
    records: Arc<Mutex<HashMap<String, KeyRecord>>>,
}

impl MemoryIdempotencyStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, HashMap<String, KeyRecord>>, StoreError> {
        self.records
            .lock()
            .map_err(|_| StoreError::new("lock", "a writer panicked while holding the store"))
    }
}

impl IdempotencyStore for MemoryIdempotencyStore {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
        lease_until: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Claim, IdempotencyError> {
        let mut records = self.lock()?;
        if let Some(existing) = records.get(key)
            && !existing.is_stale(now)
        {
            return existing.claim_outcome(fingerprint);
        }
        records.insert(
            key.to_owned(),
            KeyRecord {
                status: KeyStatus::InProgress,
                fingerprint: fingerprint.to_owned(),
                lease_until,
                expires_at,
                response: None,
            },
        );
        Ok(Claim::Acquired)
    }

    async fn complete(
        &self,
        key: &str,
        fingerprint: &str,
        response: &str,
        expires_at: Timestamp,
    ) -> Result<(), IdempotencyError> {
        let mut records = self.lock()?;
        match records.get_mut(key) {
            Some(record) if record.status == KeyStatus::InProgress && record.fingerprint == fingerprint => {
                record.status = KeyStatus::Completed;
                record.response = Some(response.to_owned());
                record.expires_at = expires_at;
                Ok(())
            }
            _ => Err(IdempotencyError::ClaimLost),
        }
    }

    async fn release(&self, key: &str, fingerprint: &str) -> Result<(), IdempotencyError> {
        let mut records = self.lock()?;
        if records
            .get(key)
            .is_some_and(|r| r.status == KeyStatus::InProgress && r.fingerprint == fingerprint)
        {
            records.remove(key);
        }
        Ok(())
    }
}
