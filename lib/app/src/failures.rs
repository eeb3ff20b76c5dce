//! Why messages failed: each consumer records its failed messages (keyed by message
//! id, the last failure winning) so that `orderflow dlq show` and the simulation can say
//! why a parked message is there.

use std::future::Future;

use crate::{BoxError, Disposed, Disposition, StoreError};

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
        crate::cause_chain(self.error.as_ref())
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn a_failure_keeps_its_disposition_and_every_cause() {
        use crate::{CommandError, LoadError};
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
}
