//! Why messages failed: each consumer records its failed messages (keyed by message
//! id, the last failure winning) so that `orderflow dlq show` and the simulation can say
//! why a parked message is there.

use std::future::Future;

use crate::StoreError;

/// A recorded failure.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedFailure {
    /// The SQS message id.
    pub message_id: String,
    /// The function that failed it.
    pub consumer: String,
    /// `retry` or `poison`.
    pub kind: String,
    /// The reason, as logged: the cause chain on one line.
    pub reason: String,
    /// The cause chain, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<String>,
    /// Its receive count then.
    pub receive_count: String,
    /// When (RFC 3339).
    pub failed_at: String,
    /// TTL, epoch seconds.
    pub expiration: i64,
}

/// How long a failure is kept: as long as the DLQs keep messages (14 days).
pub const FAILURE_RETENTION: jiff::SignedDuration = jiff::SignedDuration::from_hours(14 * 24);

/// Where consumers record why a message failed.
pub trait FailureLog: Send + Sync {
    /// Records `failure`, replacing any earlier one of the same message.
    fn record(&self, failure: &RecordedFailure) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The last failure recorded for a message.
    fn get(
        &self,
        message_id: &str,
    ) -> impl Future<Output = Result<Option<RecordedFailure>, StoreError>> + Send;
}
