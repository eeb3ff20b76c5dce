//! Loading aggregates (snapshot + later events, upcast on read) and handling commands:
//! load, decide, append at the expected version, and on a lost race re-load and
//! re-decide a bounded number of times.

use orderflow_domain::{Aggregate, DecodeError, Envelope, Metadata, RawEnvelope};

use crate::ports::{AppendError, Clock, EventRecord, EventStore, SnapshotRecord, StoreError, StreamId};

/// An aggregate folded from the store.
#[derive(Debug, Clone)]
pub struct Loaded<A: Aggregate> {
    /// The fold.
    pub state: A::State,
    /// The last version folded in (0: no events).
    pub version: u64,
    /// The snapshot version the load started from, if one was used.
    pub from_snapshot: Option<u64>,
    /// When the last event folded in happened (`None`: no events).
    pub last_occurred_at: Option<orderflow_domain::Timestamp>,
}

impl<A: Aggregate> Loaded<A> {
    /// An aggregate with no events: what a load of a stream known to be new gives,
    /// without the read.
    #[must_use]
    pub fn empty() -> Self {
        Self {
            state: A::State::default(),
            version: 0,
            from_snapshot: None,
            last_occurred_at: None,
        }
    }

    /// The time to stamp the next events with: `now`, unless the stream's last event
    /// happened later (a writer whose clock is behind). Events of a stream never go
    /// back in time, so a fold "as of" any instant never skips one.
    #[must_use]
    pub fn stamp(&self, now: orderflow_domain::Timestamp) -> orderflow_domain::Timestamp {
        self.last_occurred_at.map_or(now, |last| last.max(now))
    }
}

/// Why an aggregate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event does not decode: the stream is corrupt or from a newer build.
    #[error("event {version} of {stream} cannot be decoded")]
    Corrupt {
        /// The stream.
        stream: StreamId,
        /// The event's version.
        version: u64,
        /// Why.
        #[source]
        source: DecodeError,
    },
    /// The versions read are not 1, 2, 3, … : the store broke its contract.
    #[error("{stream} has a gap: expected version {expected}, found {found}")]
    Gap {
        /// The stream.
        stream: StreamId,
        /// The version that should have come next.
        expected: u64,
        /// The one that did.
        found: u64,
    },
}

/// Why a command did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error + 'static> {
    /// The domain refused it.
    #[error(transparent)]
    Domain(E),
    /// `If-Match`: the aggregate is not at the version the caller saw.
    #[error("the order is at version {actual}, not {expected}")]
    VersionMismatch {
        /// What the caller expected.
        expected: u64,
        /// What it is.
        actual: u64,
    },
    /// Every attempt lost the race to a concurrent writer.
    #[error("gave up after {attempts} concurrent changes")]
    Contention {
        /// How many times it re-decided.
        attempts: u32,
    },
    /// The store refused the events themselves (more than one append holds).
    #[error("the decided events cannot be appended")]
    Rejected(#[source] AppendError),
    /// Loading failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Appending failed for a reason of the store's.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A command that took effect (or decided nothing).
#[derive(Debug, Clone)]
pub struct Executed<A: Aggregate> {
    /// The state after the command.
    pub state: A::State,
    /// The version after the command.
    pub version: u64,
    /// The new events, empty when the command decided nothing (a duplicate).
    pub events: Vec<Envelope<A::Event>>,
    /// When the stream's last event happened, as [`Loaded::last_occurred_at`].
    pub last_occurred_at: Option<orderflow_domain::Timestamp>,
}

impl<A: Aggregate> Executed<A> {
    /// The aggregate as it stands after the command, as a load would give it: the
    /// next command can be decided on it without reading the stream again.
    #[must_use]
    pub fn into_loaded(self) -> Loaded<A> {
        Loaded {
            state: self.state,
            version: self.version,
            from_snapshot: None,
            last_occurred_at: self.last_occurred_at,
        }
    }
}

/// The first page of a stream read where snapshots are never taken.
const UNSNAPSHOTTED_PAGE: usize = 100;

/// Loads aggregates from an event store, using and taking snapshots.
#[derive(Debug, Clone)]
pub struct Repository<S> {
    store: S,
    snapshot_every: u64,
}

impl<S: EventStore> Repository<S> {
    /// A repository that snapshots every `snapshot_every` events (0: never).
    pub const fn new(store: S, snapshot_every: u64) -> Self {
        Self {
            store,
            snapshot_every,
        }
    }

    /// The store underneath.
    pub const fn store(&self) -> &S {
        &self.store
    }

    /// Loads from the events, and from the latest usable snapshot when the stream is
    /// long enough to have one.
    ///
    /// The first read is one page of the stream from its start, as long as the snapshot
    /// interval: most streams (an order's dozen events) end within it, and are loaded
    /// in that one call, with no snapshot read. Only a stream that fills the page reads
    /// its latest snapshot, and uses it when it is past the page.
    ///
    /// A snapshot of another state schema, or one that does not deserialize, is
    /// ignored (and logged): the events are the truth, snapshots only a cache.
    ///
    /// # Errors
    /// [`LoadError`].
    pub async fn load<A: Aggregate>(&self, aggregate_id: &str) -> Result<Loaded<A>, LoadError> {
        let stream = StreamId::new(A::TYPE, aggregate_id);
        let page = usize::try_from(self.snapshot_every)
            .ok()
            .filter(|every| *every > 0)
            .unwrap_or(UNSNAPSHOTTED_PAGE);
        let first = self.store.load_page(&stream, 0, page).await?;
        let (state, version) = fold_records::<A>(&stream, A::State::default(), 0, &first)?;
        if first.len() < page {
            return Ok(Loaded {
                state,
                version,
                from_snapshot: None,
                last_occurred_at: first.last().map(|r| r.occurred_at),
            });
        }
        let snapshot = if self.snapshot_every == 0 {
            None
        } else {
            match self.store.latest_snapshot(&stream).await {
                Ok(snapshot) => snapshot
                    .and_then(|s| usable_snapshot::<A>(&s))
                    .filter(|(_, at)| *at > version),
                Err(error) => {
                    tracing::warn!(%stream, error = %error, "snapshot unavailable; loading every event");
                    None
                }
            }
        };
        let (state, version, from_snapshot) = match snapshot {
            Some((state, at)) => (state, at, Some(at)),
            None => (state, version, None),
        };
        let records = self.store.load(&stream, version).await?;
        let (state, version) = fold_records::<A>(&stream, state, version, &records)?;
        let last_occurred_at = match records
            .last()
            .or_else(|| first.last().filter(|r| r.version == version))
        {
            Some(last) => Some(last.occurred_at),
            // Everything was in the snapshot: the time of its last event is one read away.
            None if version > 0 => self
                .store
                .load_page(&stream, version - 1, 1)
                .await?
                .first()
                .map(|r| r.occurred_at),
            None => None,
        };
        Ok(Loaded {
            state,
            version,
            from_snapshot,
            last_occurred_at,
        })
    }

    /// Loads by folding every event, ignoring snapshots.
    ///
    /// # Errors
    /// [`LoadError`].
    pub async fn load_without_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Loaded<A>, LoadError> {
        let stream = StreamId::new(A::TYPE, aggregate_id);
        let records = self.store.load(&stream, 0).await?;
        let (state, version) = fold_records::<A>(&stream, A::State::default(), 0, &records)?;
        Ok(Loaded {
            state,
            version,
            from_snapshot: None,
            last_occurred_at: records.last().map(|r| r.occurred_at),
        })
    }

    /// Every event of the aggregate, decoded and upcast: its audit trail.
    ///
    /// # Errors
    /// [`LoadError`].
    pub async fn history<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<Envelope<A::Event>>, LoadError> {
        self.history_after::<A>(aggregate_id, 0).await
    }

    /// The events of the aggregate after `after_version`, decoded and upcast.
    ///
    /// # Errors
    /// [`LoadError`].
    pub async fn history_after<A: Aggregate>(
        &self,
        aggregate_id: &str,
        after_version: u64,
    ) -> Result<Vec<Envelope<A::Event>>, LoadError> {
        let stream = StreamId::new(A::TYPE, aggregate_id);
        let records = self.store.load(&stream, after_version).await?;
        records.iter().map(|r| decode_record::<A>(&stream, r)).collect()
    }

    /// At most `limit` events after `after_version`, decoded and upcast: a page of the
    /// audit trail.
    ///
    /// # Errors
    /// [`LoadError`].
    pub async fn history_page<A: Aggregate>(
        &self,
        aggregate_id: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<Envelope<A::Event>>, LoadError> {
        let stream = StreamId::new(A::TYPE, aggregate_id);
        let records = self.store.load_page(&stream, after_version, limit).await?;
        records.iter().map(|r| decode_record::<A>(&stream, r)).collect()
    }

    /// Saves a snapshot when `from..=to` crossed a multiple of `snapshot_every`.
    /// Failure is logged, never returned: the append it follows already succeeded.
    async fn maybe_snapshot<A: Aggregate>(&self, stream: &StreamId, from: u64, to: u64, state: &A::State) {
        if self.snapshot_every == 0 || from / self.snapshot_every == to / self.snapshot_every {
            return;
        }
        let body = match serde_json::to_string(state) {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(%stream, %error, "state does not serialise; no snapshot");
                return;
            }
        };
        let snapshot = SnapshotRecord {
            stream: stream.clone(),
            version: to,
            schema: A::STATE_SCHEMA,
            body,
        };
        if let Err(error) = self.store.save_snapshot(&snapshot).await {
            tracing::warn!(%stream, version = to, error = %error, "snapshot not saved");
        }
    }
}

fn usable_snapshot<A: Aggregate>(snapshot: &SnapshotRecord) -> Option<(A::State, u64)> {
    if snapshot.schema != A::STATE_SCHEMA {
        tracing::info!(
            stream = %snapshot.stream,
            schema = snapshot.schema,
            current = A::STATE_SCHEMA,
            "snapshot of another state schema ignored"
        );
        return None;
    }
    match serde_json::from_str(&snapshot.body) {
        Ok(state) => Some((state, snapshot.version)),
        Err(error) => {
            tracing::warn!(stream = %snapshot.stream, version = snapshot.version, %error, "unreadable snapshot ignored");
            None
        }
    }
}

fn decode_record<A: Aggregate>(
    stream: &StreamId,
    record: &EventRecord,
) -> Result<Envelope<A::Event>, LoadError> {
    RawEnvelope::parse(&record.body)
        .and_then(RawEnvelope::decode)
        .map_err(|source| corrupt(stream, record, source))
}

fn corrupt(stream: &StreamId, record: &EventRecord, source: DecodeError) -> LoadError {
    LoadError::Corrupt {
        stream: stream.clone(),
        version: record.version,
        source,
    }
}

/// Folds stored records onto `state` at `version`, checking there is no gap.
///
/// # Errors
/// [`LoadError::Corrupt`], [`LoadError::Gap`].
pub fn fold_records<A: Aggregate>(
    stream: &StreamId,
    mut state: A::State,
    mut version: u64,
    records: &[EventRecord],
) -> Result<(A::State, u64), LoadError> {
    for record in records {
        if record.version != version + 1 {
            return Err(LoadError::Gap {
                stream: stream.clone(),
                expected: version + 1,
                found: record.version,
            });
        }
        let data = RawEnvelope::parse(&record.body)
            .and_then(|raw| raw.decode_data::<A::Event>())
            .map_err(|source| corrupt(stream, record, source))?;
        state = A::evolve(state, &data);
        version = record.version;
    }
    Ok((state, version))
}

/// Handles commands for aggregates of any type against one store.
#[derive(Debug, Clone)]
pub struct CommandService<S, C> {
    repository: Repository<S>,
    clock: C,
    max_attempts: u32,
}

/// How many times a command is decided before contention is reported.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

impl<S: EventStore, C: Clock> CommandService<S, C> {
    /// A service that re-decides up to `max_attempts` times on conflict.
    pub const fn new(repository: Repository<S>, clock: C, max_attempts: u32) -> Self {
        Self {
            repository,
            clock,
            max_attempts,
        }
    }

    /// The repository, for reads.
    pub const fn repository(&self) -> &Repository<S> {
        &self.repository
    }

    /// The clock.
    pub const fn clock(&self) -> &C {
        &self.clock
    }

    /// Loads the aggregate, decides `command`, and appends the events at the loaded
    /// version; on a conflict, re-loads and re-decides (the command is decided anew on
    /// the newer state, so a duplicate becomes a no-op).
    ///
    /// With `expected_version` (`If-Match`) the command applies only to that version,
    /// and a concurrent change is a mismatch rather than a retry.
    ///
    /// # Errors
    /// See [`CommandError`].
    pub async fn execute<A: Aggregate>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &Metadata,
        expected_version: Option<u64>,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        self.execute_guarded(aggregate_id, command, metadata, expected_version, |_| Ok(()))
            .await
    }

    /// [`execute`](Self::execute), but only where `guard` accepts the loaded state
    /// (say, the caller owns the aggregate). The guard runs on every attempt, before
    /// `If-Match` is compared and before anything is decided, so a refused caller
    /// learns nothing about the aggregate beyond the guard's error.
    ///
    /// # Errors
    /// The guard's error as [`CommandError::Domain`]; otherwise as
    /// [`execute`](Self::execute).
    pub async fn execute_guarded<A: Aggregate>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &Metadata,
        expected_version: Option<u64>,
        guard: impl Fn(&A::State) -> Result<(), A::Error>,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        self.attempt(aggregate_id, None, command, metadata, expected_version, guard)
            .await
    }

    /// [`execute`](Self::execute) on an aggregate the caller has just loaded (or
    /// executed a command on: [`Executed::into_loaded`]): the first attempt decides on
    /// `loaded` instead of reading the stream again. A conflict re-loads, as ever, so a
    /// stale `loaded` costs a retry, never a wrong decision.
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub async fn execute_loaded<A: Aggregate>(
        &self,
        aggregate_id: &str,
        loaded: Loaded<A>,
        command: A::Command,
        metadata: &Metadata,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        self.attempt(aggregate_id, Some(loaded), command, metadata, None, |_| Ok(()))
            .await
    }

    async fn attempt<A: Aggregate>(
        &self,
        aggregate_id: &str,
        mut preloaded: Option<Loaded<A>>,
        command: A::Command,
        metadata: &Metadata,
        expected_version: Option<u64>,
        guard: impl Fn(&A::State) -> Result<(), A::Error>,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        let stream = StreamId::new(A::TYPE, aggregate_id);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let loaded = match preloaded.take() {
                Some(loaded) => loaded,
                None => self.repository.load::<A>(aggregate_id).await?,
            };
            guard(&loaded.state).map_err(CommandError::Domain)?;
            if let Some(expected) = expected_version
                && expected != loaded.version
            {
                return Err(CommandError::VersionMismatch {
                    expected,
                    actual: loaded.version,
                });
            }
            let decided = A::decide(&loaded.state, command.clone()).map_err(CommandError::Domain)?;
            if decided.is_empty() {
                return Ok(Executed {
                    state: loaded.state,
                    version: loaded.version,
                    events: Vec::new(),
                    last_occurred_at: loaded.last_occurred_at,
                });
            }
            let envelopes = envelopes::<A>(
                &self.clock,
                aggregate_id,
                loaded.version,
                decided,
                metadata,
                loaded.stamp(self.clock.now()),
            );
            let records: Vec<_> = envelopes.iter().map(EventRecord::from_envelope).collect();
            match self
                .repository
                .store
                .append(&stream, loaded.version, &records)
                .await
            {
                Ok(()) => {
                    let state = A::fold(loaded.state, envelopes.iter().map(|e| &e.data));
                    let version = loaded.version + envelopes.len() as u64;
                    self.repository
                        .maybe_snapshot::<A>(&stream, loaded.version, version, &state)
                        .await;
                    return Ok(Executed {
                        state,
                        version,
                        last_occurred_at: envelopes
                            .last()
                            .map(|e| e.occurred_at)
                            .or(loaded.last_occurred_at),
                        events: envelopes,
                    });
                }
                Err(AppendError::Conflict { .. }) if expected_version.is_some() => {
                    let actual = self.repository.load::<A>(aggregate_id).await?.version;
                    return Err(CommandError::VersionMismatch {
                        expected: loaded.version,
                        actual,
                    });
                }
                Err(AppendError::Conflict { .. }) if attempt < self.max_attempts => {
                    metrics::counter!("ConflictsRetried").increment(1);
                    tracing::debug!(%stream, attempt, "lost an append race; re-deciding");
                }
                Err(AppendError::Conflict { .. }) => {
                    return Err(CommandError::Contention { attempts: attempt });
                }
                Err(AppendError::Store(error)) => return Err(CommandError::Store(error)),
                Err(error @ (AppendError::TooManyEvents { .. } | AppendError::NotContiguous { .. })) => {
                    return Err(CommandError::Rejected(error));
                }
            }
        }
    }
}

/// Wraps newly decided events in envelopes: versions after `version`, ids minted by
/// `clock`, one timestamp.
#[must_use]
pub fn envelopes<A: Aggregate>(
    clock: &impl Clock,
    aggregate_id: &str,
    version: u64,
    events: Vec<A::Event>,
    metadata: &Metadata,
    occurred_at: orderflow_domain::Timestamp,
) -> Vec<Envelope<A::Event>> {
    (version + 1..)
        .zip(events)
        .map(|(version, data)| Envelope {
            event_id: clock.mint_id(),
            aggregate_type: A::TYPE.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            version,
            occurred_at,
            metadata: metadata.clone(),
            replay: None,
            data,
        })
        .collect()
}
