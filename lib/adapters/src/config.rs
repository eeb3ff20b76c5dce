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
    required_in(&process_variable, name)
}

fn process_variable(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn required_in(variable: &dyn Fn(&str) -> Option<String>, name: &'static str) -> Result<String, ConfigError> {
    match variable(name) {
        Some(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing(name)),
    }
}

fn number_in(
    variable: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match variable(name) {
        Some(value) if !value.trim().is_empty() => value.trim().parse().map_err(|e| ConfigError::Invalid {
            name,
            reason: format!("{e}"),
        }),
        _ => Ok(default),
    }
}

/// Reads one variable.
type Variables = std::sync::Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where a function reads its configuration: its environment variables (the
/// process's in Lambda; the template's, resolved to a local stack's names, in the
/// local runner) and the clients every function shares. A function is built from
/// this alone, so Lambda and the local runner cannot wire it differently.
#[derive(Clone)]
pub struct Config {
    variables: Variables,
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SQS, for a consumer that manages its messages' visibility (payment's backoff);
    /// `None` where nothing delivers from a real queue (tests calling a handler).
    pub sqs: Option<aws_sdk_sqs::Client>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config").finish_non_exhaustive()
    }
}

impl Config {
    /// The process's environment and clients from the SDK's standard chain, their calls
    /// counted ([`crate::calls`]).
    pub async fn from_process() -> Self {
        let sdk = aws_sdk_config().await;
        Self::new(
            process_variable,
            crate::calls::Counted::counted(&aws_sdk_dynamodb::Client::new(&sdk)),
            Some(crate::calls::Counted::counted(&aws_sdk_sqs::Client::new(&sdk))),
        )
    }

    /// Variables from `variables`, with these clients.
    pub fn new(
        variables: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
        dynamodb: aws_sdk_dynamodb::Client,
        sqs: Option<aws_sdk_sqs::Client>,
    ) -> Self {
        Self {
            variables: std::sync::Arc::new(variables),
            dynamodb,
            sqs,
        }
    }

    /// A variable, when set and not blank.
    #[must_use]
    pub fn var(&self, name: &str) -> Option<String> {
        (self.variables)(name).filter(|v| !v.trim().is_empty())
    }

    /// A required variable.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] when unset or empty.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        required_in(&*self.variables, name)
    }

    /// An optional number with a default.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when set but not a number.
    pub fn number_or(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        number_in(&*self.variables, name, default)
    }

    /// The event store repository (`EVENT_STORE_TABLE`, `SNAPSHOT_TABLE`,
    /// `SNAPSHOT_EVERY`): what every function starts with.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable.
    pub fn repository(&self) -> Result<orderflow_app::Repository<crate::DynamoEventStore>, ConfigError> {
        Ok(orderflow_app::Repository::new(
            crate::DynamoEventStore::new(
                self.dynamodb.clone(),
                self.required("EVENT_STORE_TABLE")?,
                self.required("SNAPSHOT_TABLE")?,
            ),
            self.number_or("SNAPSHOT_EVERY", 50)?,
        ))
    }

    /// The failure log (`FAILURE_LOG_TABLE`) `consumer` records its failed messages in.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable.
    pub fn failure_log(
        &self,
        consumer: &str,
    ) -> Result<crate::sqs::FailureRecorder<crate::sqs::DynamoFailureLog>, ConfigError> {
        Ok(crate::sqs::FailureRecorder::new(
            crate::sqs::DynamoFailureLog::new(self.dynamodb.clone(), self.required("FAILURE_LOG_TABLE")?),
            consumer,
            orderflow_app::SystemClock,
        ))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    fn config(variables: &'static [(&'static str, &'static str)]) -> Config {
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .build(),
        );
        Config::new(
            |name| {
                variables
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            },
            dynamodb,
            None,
        )
    }

    #[test]
    fn variables_are_read_through_the_given_source_and_checked() {
        let c = config(&[
            ("EVENT_STORE_TABLE", "events"),
            ("SNAPSHOT_TABLE", "snapshots"),
            ("SNAPSHOT_EVERY", "7"),
            ("BLANK", "  "),
            ("FAILURE_LOG_TABLE", "failures"),
        ]);
        assert_eq!(c.var("BLANK"), None);
        assert_eq!(c.required("BLANK"), Err(ConfigError::Missing("BLANK")));
        assert_eq!(c.number_or("SNAPSHOT_EVERY", 50), Ok(7));
        assert_eq!(c.number_or("UNSET", 50), Ok(50));
        assert!(c.repository().is_ok());
        assert!(c.failure_log("service:x").is_ok());

        let bad = config(&[
            ("EVENT_STORE_TABLE", "events"),
            ("SNAPSHOT_TABLE", "snapshots"),
            ("SNAPSHOT_EVERY", "often"),
        ]);
        assert!(matches!(
            bad.repository(),
            Err(ConfigError::Invalid {
                name: "SNAPSHOT_EVERY",
                ..
            })
        ));
        assert_eq!(
            config(&[]).failure_log("service:x").err(),
            Some(ConfigError::Missing("FAILURE_LOG_TABLE"))
        );
    }
}
