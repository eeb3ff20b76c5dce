//! An in-memory event store: the same contract as the DynamoDB one (the conformance
//! suite runs against both), for unit tests and for running without an emulator.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use orderflow_app::{
    AppendError, EventRecord, EventStore, SnapshotRecord, StoreError, StreamId, validate_append,
};
use orderflow_domain::Timestamp;

#[derive(Debug, Default)]
struct Inner {
    streams: HashMap<StreamId, Vec<EventRecord>>,
    /// Every event in the order it was committed: what a table's stream would carry.
    log: Vec<EventRecord>,
    snapshots: HashMap<StreamId, BTreeMap<u64, SnapshotRecord>>,
}

/// An event store in a mutex. Clones share the same data.
#[derive(Debug, Clone, Default)]
pub struct MemoryEventStore {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryEventStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The events committed after the first `position`, in commit order: the store's
    /// change stream, for a simulated relay.
    ///
    /// # Errors
    /// [`StoreError`] if a writer panicked holding the store.
    pub fn committed_since(&self, position: usize) -> Result<Vec<EventRecord>, StoreError> {
        Ok(self
            .lock()?
            .log
            .get(position..)
            .map(<[_]>::to_vec)
            .unwrap_or_default())
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::new("lock", "a writer panicked while holding the store"))
    }
}

impl MemoryEventStore {
    /// Appends `events` at `expected_version`, running `commit` (a side effect that must
    /// commit with them) under the store's lock first: when `commit` fails, nothing is
    /// appended. The same append again succeeds without running `commit`.
    ///
    /// # Errors
    /// `commit`'s error, or the append's as in [`EventStore::append`].
    pub fn append_then<E: From<AppendError>>(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
        commit: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), E> {
        validate_append(stream, expected_version, events)?;
        if events.is_empty() {
            return commit();
        }
        let mut inner = self.lock().map_err(AppendError::Store)?;
        let stored = inner.streams.entry(stream.clone()).or_default();
        // The same append again (the same events at the same versions): a retry of one
        // that succeeded, as DynamoDB's client request token answers it.
        let at = usize::try_from(expected_version).unwrap_or(usize::MAX);
        if stored
            .get(at..at.saturating_add(events.len()))
            .is_some_and(|s| s.iter().map(|e| e.event_id).eq(events.iter().map(|e| e.event_id)))
        {
            return Ok(());
        }
        if stored.len() as u64 != expected_version {
            return Err(AppendError::Conflict {
                stream: stream.clone(),
                expected_version,
            }
            .into());
        }
        commit()?;
        stored.extend_from_slice(events);
        inner.log.extend_from_slice(events);
        Ok(())
    }
}

impl EventStore for MemoryEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
    ) -> Result<(), AppendError> {
        self.append_then(stream, expected_version, events, || Ok::<_, AppendError>(()))
    }

    async fn load(&self, stream: &StreamId, after_version: u64) -> Result<Vec<EventRecord>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .streams
            .get(stream)
            .map(|events| {
                events
                    .iter()
                    .filter(|e| e.version > after_version)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn load_page(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let mut events = self.load(stream, after_version).await?;
        events.truncate(limit);
        Ok(events)
    }

    async fn read_time_range(
        &self,
        from: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let inner = self.lock()?;
        let mut events: Vec<_> = inner
            .streams
            .values()
            .flatten()
            .filter(|e| from <= e.occurred_at && e.occurred_at < until)
            .cloned()
            .collect();
        events.sort_by_key(EventRecord::time_order);
        Ok(events)
    }

    async fn save_snapshot(&self, snapshot: &SnapshotRecord) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner
            .snapshots
            .entry(snapshot.stream.clone())
            .or_default()
            .insert(snapshot.version, snapshot.clone());
        Ok(())
    }

    async fn latest_snapshot(&self, stream: &StreamId) -> Result<Option<SnapshotRecord>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .snapshots
            .get(stream)
            .and_then(|s| s.last_key_value())
            .map(|(_, s)| s.clone()))
    }
}
