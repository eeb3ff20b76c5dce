//! Configuration from the environment, checked once at start-up.
//!
//! Resource names come from variables the template sets; endpoints and credentials
//! come from the AWS SDK's own standard variables (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_REGION`, …), so the same binary talks to AWS, to
//! DynamoDB Local and moto, or to LocalStack without a line of code changing.

use aws_config::{BehaviorVersion, SdkConfig};

/// A variable is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not set.
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    /// Set to something unusable.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A required variable.
///
/// # Errors
/// [`ConfigError::Missing`] when unset or empty.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// An optional number with a default.
///
/// # Errors
/// [`ConfigError::Invalid`] when set but not a number.
pub fn number_or(name: &'static str, default: u64) -> Result<u64, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value.trim().parse().map_err(|e| ConfigError::Invalid {
            name,
            reason: format!("{e}"),
        }),
        _ => Ok(default),
    }
}

/// Where the event store lives and how often it snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `EVENT_STORE_TABLE`.
    pub events_table: String,
    /// `SNAPSHOT_TABLE`.
    pub snapshots_table: String,
    /// `SNAPSHOT_EVERY` (default 50; 0 turns snapshots off).
    pub snapshot_every: u64,
}

impl StoreConfig {
    /// Reads the variables.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            events_table: required("EVENT_STORE_TABLE")?,
            snapshots_table: required("SNAPSHOT_TABLE")?,
            snapshot_every: number_or("SNAPSHOT_EVERY", 50)?,
        })
    }
}

/// The SDK configuration from the standard chain (environment, profile, role), with
/// [`sdk_timeouts`].
pub async fn aws_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(sdk_timeouts())
        .load()
        .await
}

/// How long one AWS call may take: a connection 1 s, an attempt 3 s, the call with its
/// retries 7 s. Every function's timeout is 10 s: a hung call fails while the function
/// can still report it, instead of Lambda killing the invocation with its whole batch.
#[must_use]
pub fn sdk_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(1))
        .operation_attempt_timeout(std::time::Duration::from_secs(3))
        .operation_timeout(std::time::Duration::from_secs(7))
        .build()
}

/// The failure log (`FAILURE_LOG_TABLE`) a consumer records its failed messages in.
///
/// # Errors
/// [`ConfigError`] naming the variable.
pub fn failure_log_from_env(
    client: &aws_sdk_dynamodb::Client,
    consumer: &str,
) -> Result<crate::sqs::FailureLog, ConfigError> {
    Ok(crate::sqs::FailureLog::new(
        client.clone(),
        required("FAILURE_LOG_TABLE")?,
        consumer,
    ))
}

/// The event store repository the environment names (`EVENT_STORE_TABLE`,
/// `SNAPSHOT_TABLE`, `SNAPSHOT_EVERY`), over `client`: what every function starts with.
///
/// # Errors
/// [`ConfigError`] naming the variable.
pub fn repository_from_env(
    client: &aws_sdk_dynamodb::Client,
) -> Result<orderflow_app::Repository<crate::DynamoEventStore>, ConfigError> {
    let config = StoreConfig::from_env()?;
    Ok(orderflow_app::Repository::new(
        crate::DynamoEventStore::new(client.clone(), config.events_table, config.snapshots_table),
        config.snapshot_every,
    ))
}
