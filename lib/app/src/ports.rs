//! The ports: what the application needs from the outside world, as a few coarse
//! traits. Adapters (DynamoDB, in memory) implement them side by side and pass one
//! conformance suite.

use std::fmt;
use std::future::Future;

use orderflow_domain::{DomainEvent, Envelope, Timestamp};
use uuid::Uuid;

/// A boxed error from an adapter, kept as the `source` of ours.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The most events one append may carry: a DynamoDB transaction holds 100 actions and
/// one of them checks the expected version.
pub const MAX_EVENTS_PER_APPEND: usize = 99;

/// One aggregate instance's stream: `order#0192…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    /// `order`, `inventory`, …
    pub aggregate_type: String,
    /// The instance.
    pub aggregate_id: String,
}

impl StreamId {
    /// A stream of `aggregate_type` for `aggregate_id`.
    #[must_use]
    pub fn new(aggregate_type: impl Into<String>, aggregate_id: impl Into<String>) -> Self {
        Self {
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.aggregate_type, self.aggregate_id)
    }
}

/// One stored event: what the store indexes by, and the envelope as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Whose event.
    pub stream: StreamId,
    /// Position in the stream, from 1.
    pub version: u64,
    /// The envelope's `eventId`.
    pub event_id: Uuid,
    /// The envelope's `eventType`.
    pub event_type: String,
    /// The envelope's `occurredAt`.
    pub occurred_at: Timestamp,
    /// The whole envelope, JSON: what the relay publishes as `detail`.
    pub body: String,
}

impl EventRecord {
    /// The order of the time index and of replays: time, then event id.
    #[must_use]
    pub const fn time_order(&self) -> (Timestamp, Uuid) {
        (self.occurred_at, self.event_id)
    }

    /// The record of an envelope.
    #[must_use]
    pub fn from_envelope<E: DomainEvent>(envelope: &Envelope<E>) -> Self {
        Self {
            stream: StreamId::new(envelope.aggregate_type.clone(), envelope.aggregate_id.clone()),
            version: envelope.version,
            event_id: envelope.event_id,
            event_type: envelope.event_type().to_owned(),
            occurred_at: envelope.occurred_at,
            body: envelope.to_json(),
        }
    }
}

/// A saved fold of a stream up to `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// Whose state.
    pub stream: StreamId,
    /// The last event folded in.
    pub version: u64,
    /// The state's serialised form version (`Aggregate::STATE_SCHEMA`).
    pub schema: u32,
    /// The state, JSON.
    pub body: String,
}

/// The store failed for a reason of its own (network, throttling, permissions).
#[derive(Debug, thiserror::Error)]
#[error("event store: {operation} failed")]
pub struct StoreError {
    /// What we were doing.
    pub operation: &'static str,
    /// The adapter's error.
    #[source]
    pub source: BoxError,
}

impl StoreError {
    /// Wraps an adapter error.
    pub fn new(operation: &'static str, source: impl Into<BoxError>) -> Self {
        Self {
            operation,
            source: source.into(),
        }
    }
}

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Someone else appended first: the stream is no longer at `expected_version`.
    #[error("{stream} is no longer at version {expected_version}")]
    Conflict {
        /// The stream.
        stream: StreamId,
        /// The version the caller decided on.
        expected_version: u64,
    },
    /// More events than one transaction holds.
    #[error("{count} events in one append; at most {max}")]
    TooManyEvents {
        /// How many were given.
        count: usize,
        /// [`MAX_EVENTS_PER_APPEND`].
        max: usize,
    },
    /// The events are not the next versions of one stream.
    #[error("events must be versions {first}.. of one stream, in order")]
    NotContiguous {
        /// The version the first event should have had.
        first: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The append-only event store, with snapshots.
pub trait EventStore: Send + Sync {
    /// Appends `events` (versions `expected_version + 1 ..`, in order, one stream)
    /// atomically, if and only if the stream is at `expected_version`.
    ///
    /// # Errors
    /// [`AppendError::Conflict`] when another writer got there first; the rest as named.
    fn append(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
    ) -> impl Future<Output = Result<(), AppendError>> + Send;

    /// The events of `stream` with a version above `after_version`, in order, read
    /// strongly consistently.
    ///
    /// # Errors
    /// [`StoreError`].
    fn load(
        &self,
        stream: &StreamId,
        after_version: u64,
    ) -> impl Future<Output = Result<Vec<EventRecord>, StoreError>> + Send;

    /// At most `limit` events of `stream` with a version above `after_version`, in
    /// order, read strongly consistently: one page of an audit trail.
    ///
    /// # Errors
    /// [`StoreError`].
    fn load_page(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<EventRecord>, StoreError>> + Send;

    /// Every event with `from <= occurredAt < until`, ordered by time then event id,
    /// through the time index (eventually consistent, as any index).
    ///
    /// # Errors
    /// [`StoreError`].
    fn read_time_range(
        &self,
        from: Timestamp,
        until: Timestamp,
    ) -> impl Future<Output = Result<Vec<EventRecord>, StoreError>> + Send;

    /// Saves a snapshot; an older one at the same version is replaced.
    ///
    /// # Errors
    /// [`StoreError`].
    fn save_snapshot(&self, snapshot: &SnapshotRecord)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The snapshot of `stream` with the highest version, if any.
    ///
    /// # Errors
    /// [`StoreError`].
    fn latest_snapshot(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<Option<SnapshotRecord>, StoreError>> + Send;
}

/// The outcome of claiming an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours: do the work, then complete or release it.
    Acquired,
    /// The same request already completed: here is its response.
    Completed(String),
}

/// Why a key could not be claimed or settled.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// The key was used before with a different request.
    #[error("the idempotency key was already used with a different request")]
    KeyReused,
    /// The same request is being processed right now by another invocation.
    #[error("a request with this idempotency key is still in progress")]
    InProgress,
    /// Our claim lapsed and another invocation took the key over before we completed.
    #[error("the claim on this idempotency key was lost")]
    ClaimLost,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Idempotency records with Powertools semantics: a conditional claim marks a key
/// in progress until a lease runs out; completion stores the response with the
/// request's fingerprint; records expire by TTL.
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for the request with `fingerprint`.
    ///
    /// A key that is absent, expired, or in progress past `lease_until` of a crashed
    /// invocation is acquired; one completed with the same fingerprint returns the
    /// stored response.
    ///
    /// # Errors
    /// [`IdempotencyError::KeyReused`] for a different fingerprint,
    /// [`IdempotencyError::InProgress`] while another invocation holds the lease.
    fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
        lease_until: Timestamp,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<Claim, IdempotencyError>> + Send;

    /// Stores the response of a claimed key until `expires_at`.
    ///
    /// # Errors
    /// [`IdempotencyError::ClaimLost`] when the claim is no longer ours.
    fn complete(
        &self,
        key: &str,
        fingerprint: &str,
        response: &str,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<(), IdempotencyError>> + Send;

    /// Gives a claimed key up after a failure, so a retry can run.
    ///
    /// # Errors
    /// [`IdempotencyError::Store`].
    fn release(
        &self,
        key: &str,
        fingerprint: &str,
    ) -> impl Future<Output = Result<(), IdempotencyError>> + Send;
}

/// Where "now" comes from: the domain never reads a clock. A clock also mints event
/// ids, since a UUID v7 is an instant plus randomness: the system's mints them from the
/// wall clock and the operating system's randomness, the simulation's from its seed, so
/// that a run replays to the same ids.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;

    /// A new, unique event id (UUID v7).
    fn mint_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_jiff(jiff::Timestamp::now())
    }
}

/// Checks what every adapter must refuse before touching storage: too many events,
/// events of another stream, or versions that do not follow `expected_version`.
///
/// # Errors
/// [`AppendError::TooManyEvents`], [`AppendError::NotContiguous`].
pub fn validate_append(
    stream: &StreamId,
    expected_version: u64,
    events: &[EventRecord],
) -> Result<(), AppendError> {
    if events.len() > MAX_EVENTS_PER_APPEND {
        return Err(AppendError::TooManyEvents {
            count: events.len(),
            max: MAX_EVENTS_PER_APPEND,
        });
    }
    let in_order = (expected_version + 1..)
        .zip(events)
        .all(|(version, e)| e.version == version && &e.stream == stream);
    if in_order {
        Ok(())
    } else {
        Err(AppendError::NotContiguous {
            first: expected_version + 1,
        })
    }
}

/// The state of a stored idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Claimed; work running.
    InProgress,
    /// Work done; response stored.
    Completed,
}

/// A stored idempotency record, as adapters read it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// In progress or completed.
    pub status: KeyStatus,
    /// The fingerprint of the request that claimed it.
    pub fingerprint: String,
    /// Until when an in-progress claim holds.
    pub lease_until: Timestamp,
    /// When the record expires (the TTL attribute).
    pub expires_at: Timestamp,
    /// The stored response, once completed.
    pub response: Option<String>,
}

impl KeyRecord {
    /// Whether a new claim may replace this record: it expired (TTL deletion lags), or
    /// its claim was left in progress past the lease by a crashed invocation.
    #[must_use]
    pub fn is_stale(&self, now: Timestamp) -> bool {
        self.expires_at <= now || (self.status == KeyStatus::InProgress && self.lease_until <= now)
    }

    /// What a claim with `fingerprint` gets when this live record is in the way.
    ///
    /// # Errors
    /// [`IdempotencyError::KeyReused`], [`IdempotencyError::InProgress`].
    pub fn claim_outcome(&self, fingerprint: &str) -> Result<Claim, IdempotencyError> {
        if self.fingerprint != fingerprint {
            return Err(IdempotencyError::KeyReused);
        }
        match (self.status, &self.response) {
            (KeyStatus::Completed, Some(response)) => Ok(Claim::Completed(response.clone())),
            _ => Err(IdempotencyError::InProgress),
        }
    }
}

/// Publishes stored events to the bus (the relay's port).
pub trait EventPublisher: Send + Sync {
    /// Publishes `events`, retrying what the bus refuses; returns the indexes of the
    /// events that still could not be published, in ascending order.
    fn publish(&self, events: &[EventRecord]) -> impl Future<Output = Vec<usize>> + Send;
}

/// What the payment provider answered to a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureOutcome {
    /// The amount was captured.
    Captured {
        /// The provider's capture id.
        payment_id: String,
    },
    /// The provider declined (a final answer).
    Declined {
        /// The provider's reason.
        reason: String,
    },
}

/// A capture as the provider knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCapture {
    /// The provider's capture id.
    pub payment_id: String,
    /// What it captured.
    pub amount: orderflow_domain::Money,
}

/// The payment provider failed to answer.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Transient: the same call later may succeed.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request itself (a refund of an unknown capture).
    #[error("payment provider refused the request: {0}")]
    Refused(String),
}

/// A payment provider. Every call that moves money carries an idempotency key derived
/// from the order, as Stripe's, Adyen's and Braintree's calls take one: a capture is
/// keyed by its order id, a refund by the capture's id. A repeated key answers with the
/// first result (never a second charge, never a second refund; "already refunded" is
/// success), and a repeated key with another amount is refused
/// ([`GatewayError::Refused`]).
pub trait PaymentGateway: Send + Sync {
    /// Captures `amount` with `token` for `order_id`.
    ///
    /// # Errors
    /// [`GatewayError`].
    fn capture(
        &self,
        order_id: orderflow_domain::OrderId,
        amount: orderflow_domain::Money,
        token: &orderflow_domain::order::PaymentToken,
    ) -> impl Future<Output = Result<CaptureOutcome, GatewayError>> + Send;

    /// The live (unrefunded) capture made under the order's key, if any: what a
    /// provider's lookup by idempotency key answers.
    ///
    /// # Errors
    /// [`GatewayError`].
    fn capture_of(
        &self,
        order_id: orderflow_domain::OrderId,
    ) -> impl Future<Output = Result<Option<ProviderCapture>, GatewayError>> + Send;

    /// Cancels the order's payment at the provider: refunds a capture made under its
    /// key (one whose record a crash may have lost) and refuses any later capture with
    /// it. Returns the capture it found, if any. Idempotent.
    ///
    /// # Errors
    /// [`GatewayError`].
    fn cancel(
        &self,
        order_id: orderflow_domain::OrderId,
    ) -> impl Future<Output = Result<Option<ProviderCapture>, GatewayError>> + Send;

    /// Refunds the order's capture `payment_id` in full (`amount` is what it captured),
    /// keyed by `payment_id`.
    ///
    /// # Errors
    /// [`GatewayError`].
    fn refund(
        &self,
        order_id: orderflow_domain::OrderId,
        payment_id: &str,
        amount: orderflow_domain::Money,
    ) -> impl Future<Output = Result<(), GatewayError>> + Send;
}

/// What [`PaymentVault::keep`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// The vault held no token for the order; it holds this one now.
    New,
    /// The vault already held this very token for the order.
    Same,
    /// The vault holds another token for the order and kept it.
    Other,
}

/// Where payment tokens wait between the API and the payment service: never in an
/// event, never in a log.
pub trait PaymentVault: Send + Sync {
    /// Keeps `token` for `order_id` until `expires_at`, unless the vault holds another
    /// token for it: a retried placement can never swap the card of an order already
    /// placed.
    ///
    /// # Errors
    /// [`StoreError`].
    fn keep(
        &self,
        order_id: orderflow_domain::OrderId,
        token: &orderflow_domain::order::PaymentToken,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<Kept, StoreError>> + Send;

    /// The token kept for `order_id`, if any.
    ///
    /// # Errors
    /// [`StoreError`].
    fn token(
        &self,
        order_id: orderflow_domain::OrderId,
    ) -> impl Future<Output = Result<Option<orderflow_domain::order::PaymentToken>, StoreError>> + Send;

    /// Forgets the token once payment no longer needs it.
    ///
    /// # Errors
    /// [`StoreError`].
    fn forget(
        &self,
        order_id: orderflow_domain::OrderId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
