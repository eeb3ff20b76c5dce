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
    pub sqs: Option<crate::sqs::Sqs>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config").finish_non_exhaustive()
    }
}

impl Config {
    /// A Lambda function's: the process's environment and a DynamoDB client configured
    /// from it ([`lambda_sdk_config`]), its calls counted ([`crate::calls`]). No SQS
    /// client: only a function that manages its messages' visibility asks for one
    /// ([`Config::with_sqs`]), so the others neither carry its code nor build it at init.
    #[must_use]
    pub fn from_process() -> Self {
        Self::new(
            process_variable,
            crate::calls::Counted::counted_from(&lambda_sdk_config()),
            None,
        )
    }

    /// This configuration with an SQS client configured from the process's environment
    /// ([`lambda_sdk_config`]), its calls counted, built when first used
    /// ([`crate::sqs::Sqs`]).
    #[must_use]
    pub fn with_sqs(self) -> Self {
        Self {
            sqs: Some(crate::sqs::Sqs::deferred(|| {
                <aws_sdk_sqs::Client as crate::calls::Counted>::counted_from(&lambda_sdk_config())
            })),
            ..self
        }
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
            sqs: sqs.map(crate::sqs::Sqs::built),
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
    ) -> Result<crate::failure_log::FailureRecorder<crate::failure_log::DynamoFailureLog>, ConfigError> {
        Ok(crate::failure_log::FailureRecorder::new(
            crate::failure_log::DynamoFailureLog::new(
                self.dynamodb.clone(),
                self.required("FAILURE_LOG_TABLE")?,
            ),
            consumer,
            orderflow_app::SystemClock,
        ))
    }
}

/// Whom an HTTPS client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roots {
    /// The system's store (the CLI, the local runner).
    System,
    /// The roots AWS service endpoints chain to (`aws-roots.pem`: Amazon Root CA 1 to
    /// 4 and Starfield Services Root G2), compiled in: a Lambda function talks to AWS
    /// alone, and reading and parsing the system's hundred-odd roots was most of its
    /// init time. `ORDERFLOW_TLS_ROOTS=system` gives it the system's store instead.
    Aws,
}

/// The roots AWS service endpoints chain to.
pub const AWS_ROOTS_PEM: &str = include_str!("aws-roots.pem");

/// The HTTPS client for `roots` ([`orderflow_https::Https1Client`]: HTTP/1.1, rustls on
/// ring), one per process and kind of roots, so every SDK client shares its pool.
#[must_use]
pub fn https_client(roots: Roots) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    match https(roots) {
        Ok(client) => client.clone().shared(),
        Err(reason) => {
            let reason = reason.clone();
            aws_smithy_runtime_api::client::http::http_client_fn(move |_, _| {
                orderflow_https::unusable(reason.clone())
            })
        }
    }
}

/// The connector of [`https_client`]`(roots)` for a request signed and sent by our own
/// code rather than an SDK client ([`crate::secrets`]): [`sdk_timeouts`]' connect
/// timeout, the pool the SDK's clients share.
#[must_use]
pub fn https_connector(roots: Roots) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
    match https(roots) {
        Ok(client) => client.connector(
            &aws_smithy_runtime_api::client::http::HttpConnectorSettings::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .build(),
        ),
        Err(reason) => orderflow_https::unusable(reason.clone()),
    }
}

/// The process's client for `roots`, or why its TLS configuration did not build (ring
/// supports every protocol version rustls ships, so this is not expected; it is logged
/// once, and every call fails with it rather than the process stopping).
fn https(roots: Roots) -> &'static Result<orderflow_https::Https1Client, String> {
    use orderflow_https::{Https1Client, pem_roots, system_roots};
    type Client = Result<Https1Client, String>;
    static SYSTEM: std::sync::OnceLock<Client> = std::sync::OnceLock::new();
    static AWS: std::sync::OnceLock<Client> = std::sync::OnceLock::new();
    let build = |store| {
        Https1Client::new(store).map_err(|error| {
            tracing::error!(error = %error, "TLS configuration unusable");
            error.to_string()
        })
    };
    let system_asked = std::env::var("ORDERFLOW_TLS_ROOTS").is_ok_and(|v| v == "system");
    match roots {
        Roots::Aws if !system_asked => AWS.get_or_init(|| match pem_roots(AWS_ROOTS_PEM.as_bytes()) {
            Ok(store) => build(store),
            // The bundle is compiled in and checked by a test; should it still not
            // load, the system's store, said out loud rather than silently.
            Err(error) => {
                tracing::warn!(error = %error, "TLS roots unusable; trusting the system's store");
                build(system_roots())
            }
        }),
        _ => SYSTEM.get_or_init(|| build(system_roots())),
    }
}

/// The SDK configuration from the standard chain (environment, profile, role), with
/// [`sdk_timeouts`] and the system's roots ([`https_client`]).
pub async fn aws_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client(Roots::System))
        .timeout_config(sdk_timeouts())
        .load()
        .await
}

/// The SDK configuration of a Lambda function, from the variables Lambda sets and
/// nothing else: region (`AWS_REGION`), the execution role's credentials
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), endpoints
/// (`AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`), with [`sdk_timeouts`] and
/// standard retries, through an [`https_client`] that trusts AWS's roots alone.
///
/// The standard chain ([`aws_sdk_config`]) would look the same up and then fall back
/// to profiles, SSO, web identity, ECS and instance metadata, none of which a Lambda
/// sandbox has: that code, with the STS and SSO clients it carries, is a third of a
/// function's binary, and reading profile files is part of its cold start.
#[must_use]
pub fn lambda_sdk_config() -> SdkConfig {
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .ok()
        .filter(|r| !r.is_empty())
        .map(aws_config::Region::new);
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region)
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        ))
        .http_client(https_client(Roots::Aws))
        .timeout_config(sdk_timeouts())
        .retry_config(aws_config::retry::RetryConfig::standard())
        .sleep_impl(aws_smithy_async::rt::sleep::SharedAsyncSleep::new(
            aws_smithy_async::rt::sleep::TokioSleep::new(),
        ))
        .time_source(aws_smithy_async::time::SystemTimeSource::new())
        .service_config(EnvironmentEndpoints)
        .build()
}

/// Endpoints from the SDK's variables: `AWS_ENDPOINT_URL_<SERVICE>` (the service id in
/// capitals, spaces as underscores: `AWS_ENDPOINT_URL_SECRETS_MANAGER`), then
/// `AWS_ENDPOINT_URL`. (aws-config's own reader of these is private to its loader,
/// which would bring the whole default chain with it.)
#[derive(Debug)]
struct EnvironmentEndpoints;

impl aws_types::service_config::LoadServiceConfig for EnvironmentEndpoints {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        service_setting(key.env(), key.service_id(), |name| std::env::var(name).ok())
    }
}

/// `{base}_{SERVICE}`, else `{base}`, as `variable` has them (empty is unset).
fn service_setting(
    base: &str,
    service_id: &str,
    variable: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let service = service_id.to_ascii_uppercase().replace(' ', "_");
    variable(&format!("{base}_{service}"))
        .filter(|v| !v.is_empty())
        .or_else(|| variable(base).filter(|v| !v.is_empty()))
}

/// How long a connection may take to open ([`sdk_timeouts`]).
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// How long one attempt at a call may take ([`sdk_timeouts`]).
pub const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// How long a call with its retries may take ([`sdk_timeouts`]).
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(7);

/// How long one AWS call may take: a connection 1 s, an attempt 3 s, the call with its
/// retries 7 s. Every function's timeout is 10 s: a hung call fails while the function
/// can still report it, instead of Lambda killing the invocation with its whole batch.
#[must_use]
pub fn sdk_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(CALL_TIMEOUT)
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
    fn the_aws_roots_are_the_five_certificates_aws_endpoints_chain_to() {
        use base64::Engine as _;
        use sha2::Digest as _;
        // Each certificate follows a comment naming its subject and SHA-256: the
        // certificate itself must hold that name and hash to that fingerprint.
        let blocks: Vec<(&str, &str)> = AWS_ROOTS_PEM
            .split("-----BEGIN CERTIFICATE-----")
            .zip(AWS_ROOTS_PEM.split("-----BEGIN CERTIFICATE-----").skip(1))
            .map(|(before, block)| {
                let comment = before.lines().rev().find(|l| l.starts_with("# ")).unwrap();
                (comment, block.split("-----END CERTIFICATE-----").next().unwrap())
            })
            .collect();
        assert_eq!(blocks.len(), 5);
        let names = [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2",
        ];
        for ((comment, block), name) in blocks.into_iter().zip(names) {
            let der = base64::engine::general_purpose::STANDARD
                .decode(block.split_whitespace().collect::<String>())
                .unwrap();
            // An X.509 certificate: a DER SEQUENCE with a two-byte length.
            assert_eq!(&der[..2], &[0x30, 0x82]);
            assert!(der.windows(name.len()).any(|w| w == name.as_bytes()), "{name}");
            let fingerprint = sha2::Sha256::digest(&der)
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":");
            assert!(comment.contains(&format!("CN = {name},")), "{comment}");
            assert!(
                comment.ends_with(&format!("SHA-256 {fingerprint}")),
                "{comment} vs {fingerprint}"
            );
        }
        assert_eq!(
            orderflow_https::pem_roots(AWS_ROOTS_PEM.as_bytes())
                .unwrap()
                .len(),
            5
        );
    }

    #[test]
    fn a_service_endpoint_variable_comes_before_the_general_one() {
        let vars = |set: &'static [(&'static str, &'static str)]| {
            move |name: &str| set.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
        };
        let both = vars(&[
            ("AWS_ENDPOINT_URL", "http://general"),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://secrets"),
            ("AWS_ENDPOINT_URL_DYNAMODB", ""),
        ]);
        assert_eq!(
            service_setting("AWS_ENDPOINT_URL", "Secrets Manager", both).as_deref(),
            Some("http://secrets")
        );
        // Empty is unset: the general one applies.
        assert_eq!(
            service_setting("AWS_ENDPOINT_URL", "DynamoDB", both).as_deref(),
            Some("http://general")
        );
        assert_eq!(service_setting("AWS_ENDPOINT_URL", "SQS", vars(&[])), None);
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
