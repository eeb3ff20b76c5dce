//! SQS event source plumbing: one batch in, partial batch failures out.
//!
//! Every message is handled on its own; the ones that fail are reported in
//! `batchItemFailures`, so SQS redelivers only those (after the visibility timeout)
//! and the redrive policy moves a message that keeps failing to its DLQ. A failure is
//! logged with its reason where it happens, and recorded in the failure log (keyed by
//! message id) so `orderflow dlq show` can say why a parked message is there: nothing
//! fails silently.

use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;
use orderflow_app::failures::FAILURE_RETENTION;
use orderflow_app::{BoxError, Clock, Disposed, Disposition, FailureLog, StoreError};

/// Why a message was not processed: its disposition (retry or poison) and the error
/// itself, sources and all, so the log line and the failure log can give the whole
/// cause chain.
#[derive(Debug, thiserror::Error)]
#[error("{disposition}: {error}")]
pub struct Failure {
    /// Whether a redelivery can fix it.
    pub disposition: Disposition,
    /// What went wrong.
    #[source]
    pub error: BoxError,
}

impl Failure {
    /// A failure a redelivery may fix.
    pub fn retry(error: impl Into<BoxError>) -> Self {
        Self {
            disposition: Disposition::Retry,
            error: error.into(),
        }
    }

    /// A failure of the message itself: it will end in the DLQ.
    pub fn poison(error: impl Into<BoxError>) -> Self {
        Self {
            disposition: Disposition::Poison,
            error: error.into(),
        }
    }

    /// A failure a redelivery may fix, saying what was being done when `source` failed.
    pub fn retry_while(doing: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::retry(Context {
            doing: doing.into(),
            source: source.into(),
        })
    }

    /// A failure of the message itself, saying what about it `source` refused.
    pub fn poison_while(doing: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::poison(Context {
            doing: doing.into(),
            source: source.into(),
        })
    }

    /// Whether a redelivery may fix it.
    #[must_use]
    pub fn is_retry(&self) -> bool {
        self.disposition == Disposition::Retry
    }

    /// The error and its sources, outermost first.
    #[must_use]
    pub fn causes(&self) -> Vec<String> {
        orderflow_app::cause_chain(self.error.as_ref())
    }

    /// The cause chain on one line: `a: b: c`.
    #[must_use]
    pub fn reason(&self) -> String {
        self.causes().join(": ")
    }
}

/// What was being done when an error happened, with the error as its source.
#[derive(Debug, thiserror::Error)]
#[error("{doing}")]
struct Context {
    doing: String,
    #[source]
    source: BoxError,
}

/// Every error that says how it is handled becomes a failure with that disposition,
/// keeping the error as its source.
impl<E: Disposed + Send + Sync + 'static> From<E> for Failure {
    fn from(error: E) -> Self {
        Self {
            disposition: error.disposition(),
            error: Box::new(error),
        }
    }
}

/// Reads the envelope of the EventBridge event an SQS message carries, decoded (and
/// upcast) into `E`, with the metadata for the events it causes (`actor` records them).
///
/// # Errors
/// [`Failure::poison`]: the message is not an event of `E`.
pub fn decode_message<E: orderflow_domain::DomainEvent>(
    message: &SqsMessage,
    actor: &str,
) -> Result<(orderflow_domain::Envelope<E>, orderflow_domain::Metadata), Failure> {
    let body = message
        .body
        .as_deref()
        .ok_or_else(|| Failure::poison("message has no body"))?;
    let bus = crate::bus::BusEvent::parse(body)
        .map_err(|e| Failure::poison_while("reading the EventBridge event", e))?;
    let raw = orderflow_domain::RawEnvelope::parse(bus.detail.get())?;
    let metadata = orderflow_domain::Metadata::caused_by(&raw, actor);
    Ok((raw.decode()?, metadata))
}

tokio::task_local! {
    /// When the batch being handled must be answered for (see [`within`]).
    static DEADLINE: tokio::time::Instant;
}

/// Time kept back from the invocation's deadline to report the batch's outcome.
const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_millis(500);

/// Handles a batch (`work`) knowing the invocation ends at `deadline` (Lambda's, from
/// its context): a message still unfinished half a second before then is reported as
/// a failure, to come back on its own, instead of Lambda killing the invocation and
/// every message of the batch coming back with it. One hung call costs one message a
/// receive.
///
/// A deadline that has already passed, or leaves no more than the margin, when the
/// batch starts is no real invocation's (Lambda's leaves the function's timeout; some
/// local runtime emulators send none, or zero): the batch then runs without one.
pub async fn within<F: Future>(deadline: std::time::SystemTime, work: F) -> F::Output {
    match deadline.duration_since(std::time::SystemTime::now()) {
        Ok(left) if left > DEADLINE_MARGIN => {
            DEADLINE
                .scope(tokio::time::Instant::now() + (left - DEADLINE_MARGIN), work)
                .await
        }
        _ => {
            tracing::debug!("no usable invocation deadline; the batch runs without one");
            work.await
        }
    }
}

/// An SQS client built when first asked for. The consumer that needs one (payment's
/// backoff) needs it only once a message fails, so a sandbox that sees no failure never
/// builds it: a client parses its endpoint rules when built, a tenth of a function's
/// init.
#[derive(Clone)]
pub struct Sqs(std::sync::Arc<SqsCell>);

struct SqsCell {
    client: std::sync::OnceLock<aws_sdk_sqs::Client>,
    build: Box<dyn Fn() -> aws_sdk_sqs::Client + Send + Sync>,
}

impl Sqs {
    /// A client already built.
    #[must_use]
    pub fn built(client: aws_sdk_sqs::Client) -> Self {
        let cell = std::sync::OnceLock::new();
        let _ = cell.set(client.clone());
        Self(std::sync::Arc::new(SqsCell {
            client: cell,
            build: Box::new(move || client.clone()),
        }))
    }

    /// A client `build` makes on first use.
    pub fn deferred(build: impl Fn() -> aws_sdk_sqs::Client + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(SqsCell {
            client: std::sync::OnceLock::new(),
            build: Box::new(build),
        }))
    }

    /// Whether the client has been built.
    #[must_use]
    pub fn is_built(&self) -> bool {
        self.0.client.get().is_some()
    }

    /// The client, built now if it was not yet.
    #[must_use]
    pub fn client(&self) -> &aws_sdk_sqs::Client {
        self.0.client.get_or_init(|| (self.0.build)())
    }
}

impl std::fmt::Debug for Sqs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqs").field("built", &self.is_built()).finish()
    }
}

/// How the retryable failures of a queue come back: later with every receive
/// (`base` × 2^(receives − 1) seconds, at most `max`), set on the message with
/// `ChangeMessageVisibility`. A dependency that is down for an hour then costs a
/// message a dozen receives, not the queue's whole budget in five minutes.
#[derive(Debug, Clone)]
pub struct Backoff {
    sqs: Sqs,
    queue_url: String,
    base_seconds: u32,
    max_seconds: u32,
}

impl Backoff {
    /// Backoff on the queue at `queue_url`.
    pub fn new(sqs: Sqs, queue_url: impl Into<String>, base_seconds: u32, max_seconds: u32) -> Self {
        Self {
            sqs,
            queue_url: queue_url.into(),
            base_seconds,
            max_seconds,
        }
    }

    /// Seconds a message stays hidden after its `receives`-th receive failed.
    #[must_use]
    pub fn delay(base_seconds: u32, max_seconds: u32, receives: u32) -> u32 {
        let doublings = receives.saturating_sub(1).min(31);
        base_seconds.saturating_mul(1_u32 << doublings).min(max_seconds)
    }

    /// Hides the message for its delay; a failure only costs the backoff (the message
    /// comes back after the queue's own visibility timeout).
    async fn hold(&self, receipt_handle: &str, receives: u32) {
        let seconds = Self::delay(self.base_seconds, self.max_seconds, receives);
        let changed = self
            .sqs
            .client()
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(seconds).unwrap_or(i32::MAX))
            .send()
            .await;
        if let Err(error) = changed {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(error), "backoff not set; the queue's visibility timeout applies");
        }
    }
}

/// Handles each message of `event` with `handle`, concurrently, and reports the
/// failures for SQS to redeliver.
pub async fn process_batch<F, Fut>(event: SqsEvent, handle: F) -> SqsBatchResponse
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    process_batch_with_backoff::<_, _, MemoryFailureLog>(event, None, None, handle).await
}

/// [`process_batch`], recording failures with `failures` and holding back retryable
/// ones by `backoff`.
pub async fn process_batch_with_backoff<F, Fut, L: FailureLog>(
    event: SqsEvent,
    failures: Option<&FailureRecorder<L>>,
    backoff: Option<&Backoff>,
    handle: F,
) -> SqsBatchResponse
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let outcomes = join_all(event.records.into_iter().map(|message| {
        let id = message.message_id.clone().unwrap_or_default();
        let receives = message
            .attributes
            .get("ApproximateReceiveCount")
            .cloned()
            .unwrap_or_default();
        let receipt = message.receipt_handle.clone();
        let fut = handle(message);
        async move {
            let started = std::time::Instant::now();
            let outcome = match DEADLINE.try_with(|deadline| *deadline) {
                Ok(deadline) => tokio::time::timeout_at(deadline, fut).await.unwrap_or_else(|_| {
                    Err(Failure::retry(
                        "unfinished at the invocation's deadline; it comes back on its own",
                    ))
                }),
                Err(_) => fut.await,
            };
            crate::metrics::handler_duration(started.elapsed());
            (id, receives, receipt, outcome)
        }
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    let mut failed = Vec::new();
    let mut holds = Vec::new();
    for (id, receives, receipt, outcome) in outcomes {
        let Err(error) = outcome else { continue };
        if let (true, Some(backoff), Some(receipt)) = (error.is_retry(), backoff, receipt) {
            let count = receives.parse::<u32>().unwrap_or(1);
            holds.push(async move { backoff.hold(&receipt, count).await });
        }
        crate::metrics::message_failed(error.disposition.as_str());
        let reason = error.reason();
        match error.disposition {
            Disposition::Retry => {
                tracing::warn!(message_id = %id, receive_count = %receives, %reason, "message failed; SQS will redeliver it");
            }
            Disposition::Poison => {
                tracing::error!(message_id = %id, receive_count = %receives, %reason, "poison message; it will reach the DLQ");
            }
        }
        failed.push((id.clone(), receives, error));
        response.batch_item_failures.push(failure(id));
    }
    join_all(holds).await;
    if let Some(log) = failures {
        join_all(
            failed
                .iter()
                .map(|(id, receives, error)| log.record(id, receives, error)),
        )
        .await;
    }
    response
}

pub use orderflow_app::RecordedFailure;

/// What a consumer records its failed messages with: the log, its own name, and the
/// clock the failures are stamped by.
#[derive(Clone)]
pub struct FailureRecorder<L> {
    log: L,
    consumer: String,
    clock: std::sync::Arc<dyn Clock>,
}

impl<L: std::fmt::Debug> std::fmt::Debug for FailureRecorder<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureRecorder")
            .field("log", &self.log)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

impl<L: FailureLog> FailureRecorder<L> {
    /// `consumer` recording into `log`, stamped by `clock`.
    pub fn new(log: L, consumer: impl Into<String>, clock: impl Clock + 'static) -> Self {
        Self {
            log,
            consumer: consumer.into(),
            clock: std::sync::Arc::new(clock),
        }
    }

    /// Records a failure; a failure to record is logged, never returned (the message
    /// has failed either way and SQS keeps it).
    pub async fn record(&self, message_id: &str, receive_count: &str, error: &Failure) {
        let now = self.clock.now();
        let causes = error.causes();
        let record = RecordedFailure {
            message_id: message_id.to_owned(),
            consumer: self.consumer.clone(),
            kind: error.disposition.as_str().to_owned(),
            reason: causes.join(": "),
            causes,
            receive_count: receive_count.to_owned(),
            failed_at: now.to_string(),
            expiration: now.as_jiff().as_second() + FAILURE_RETENTION.as_secs(),
        };
        if let Err(error) = self.log.record(&record).await {
            tracing::warn!(message_id, error = %orderflow_app::cause_chain(&error).join(": "), "failure not recorded");
        }
    }
}

/// The failure log in DynamoDB: one item per message id, expiring with the DLQs'
/// retention.
#[derive(Debug, Clone)]
pub struct DynamoFailureLog {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoFailureLog {
    /// The log in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

impl FailureLog for DynamoFailureLog {
    async fn record(&self, failure: &RecordedFailure) -> Result<(), StoreError> {
        crate::item::put(&self.client, &self.table, failure, "record a failure").await
    }

    async fn get(&self, message_id: &str) -> Result<Option<RecordedFailure>, StoreError> {
        let key = ("messageId", message_id.to_owned());
        crate::item::get(&self.client, &self.table, key, "read the failure log").await
    }
}

/// The failure log in memory, for tests and the simulation.
#[derive(Debug, Clone, Default)]
pub struct MemoryFailureLog {
    failures: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, RecordedFailure>>>,
}

impl MemoryFailureLog {
    /// An empty log.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, RecordedFailure>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl FailureLog for MemoryFailureLog {
    async fn record(&self, failure: &RecordedFailure) -> Result<(), StoreError> {
        self.lock().insert(failure.message_id.clone(), failure.clone());
        Ok(())
    }

    async fn get(&self, message_id: &str) -> Result<Option<RecordedFailure>, StoreError> {
        Ok(self.lock().get(message_id).cloned())
    }
}

fn failure(id: String) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = id;
    failure
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn a_deferred_client_is_built_on_first_use_and_once_for_every_copy() {
        let builds = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = builds.clone();
        let sqs = Sqs::deferred(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::Config::builder()
                    .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                    .region(aws_sdk_sqs::config::Region::new("us-east-1"))
                    .build(),
            )
        });
        let copy = sqs.clone();
        assert!(!sqs.is_built());
        assert_eq!(builds.load(std::sync::atomic::Ordering::SeqCst), 0);
        let _ = sqs.client();
        let _ = copy.client();
        assert!(copy.is_built());
        assert_eq!(builds.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(Sqs::built(copy.client().clone()).is_built());
    }

    fn message(id: &str) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.to_owned());
        message
    }

    #[test]
    fn a_failure_keeps_its_disposition_and_every_cause() {
        use orderflow_app::{CommandError, LoadError, StoreError};
        let store = StoreError::new("query", std::io::Error::other("connection reset by peer"));
        let failure = Failure::from(CommandError::<std::io::Error>::Load(LoadError::Store(store)));
        assert!(failure.is_retry());
        assert_eq!(
            failure.causes(),
            ["event store: query failed", "connection reset by peer"]
        );
        let refused = Failure::from(CommandError::Domain(std::io::Error::other("cannot cancel")));
        assert_eq!(refused.disposition, Disposition::Poison);
        let parse = Failure::poison_while("reading the order id", std::io::Error::other("not a UUID"));
        assert_eq!(parse.reason(), "reading the order id: not a UUID");
        assert_eq!(parse.to_string(), "poison: reading the order id");
    }

    #[tokio::test]
    async fn a_message_still_running_at_the_deadline_fails_alone_and_in_time() {
        let mut batch = SqsEvent::default();
        batch.records = vec![message("quick"), message("hung"), message("quick-too")];
        let started = std::time::Instant::now();
        let response = within(
            SystemTime::now() + Duration::from_millis(800),
            process_batch(batch, |m| async move {
                if m.message_id.as_deref() == Some("hung") {
                    // A call that never answers.
                    tokio::time::sleep(Duration::from_secs(3_600)).await;
                }
                Ok(())
            }),
        )
        .await;
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(failed, ["hung"]);
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(800),
            "answered before the deadline, with the margin kept: {took:?}"
        );
        // A deadline already past when the batch starts (a local emulator that sends
        // zero) is no deadline: nothing is cut.
        let mut batch = SqsEvent::default();
        batch.records = vec![message("slow")];
        let response = within(
            SystemTime::UNIX_EPOCH,
            process_batch(batch, |_| async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(())
            }),
        )
        .await;
        assert!(response.batch_item_failures.is_empty());
        // Without a deadline (a test or a tool calling the handler), nothing is cut.
        let mut batch = SqsEvent::default();
        batch.records = vec![message("slow")];
        let response = process_batch(batch, |_| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(())
        })
        .await;
        assert!(response.batch_item_failures.is_empty());
    }
}
