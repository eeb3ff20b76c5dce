//! The failure log's adapters (DynamoDB and in memory) and the recorder a consumer
//! stamps its failed messages with.

use orderflow_app::failures::FAILURE_RETENTION;
use orderflow_app::{Clock, Failure, FailureLog, StoreError};

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
