//! A secret's value from Secrets Manager, and a data key wrapped or unwrapped by KMS:
//! signed JSON requests made without the services' SDKs.
//!
//! Both are one JSON 1.1 call each ([`SignedJson`]); KMS's `Encrypt` and `Decrypt`
//! wrap the customers' data keys (`orderflow_app::personal`) under the stack's key,
//! bound to the customer by the encryption context.
//!
//! The order API reads one secret (its cursor key) once per instance; the SDK client
//! for that call was 171 KB of its binary (5.98 → 5.81 MB without it) and parsed its
//! endpoint rules when built. This is the same call as the SDK makes it: JSON 1.1 over
//! HTTPS, signed with SigV4 by `aws-sigv4` (the signer every SDK client here already
//! links), through the connector the SDK clients share ([`crate::config::https_connector`]),
//! within [`crate::config::sdk_timeouts`]' limits, retried as the SDK's standard
//! strategy retries (I/O failures, timeouts, 5xx, throttling; at most three attempts,
//! with jittered backoff), each attempt counted as an `AwsCalls` metric.
//!
//! The endpoint is `AWS_ENDPOINT_URL_SECRETS_MANAGER` (`AWS_ENDPOINT_URL_KMS`), else
//! `AWS_ENDPOINT_URL`, else the service's regional endpoint in the `aws`, `aws-cn` and `aws-us-gov` partitions
//! (FIPS and dual-stack as the SDK configuration sets them), the hosts the SDK's own
//! endpoint rules give there (a test compares them). Elsewhere, set the endpoint
//! variable.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpConnector};
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use aws_smithy_types::retry::ErrorKind;

use crate::calls::CallCounter;
use crate::config::{ATTEMPT_TIMEOUT, CALL_TIMEOUT};

/// A JSON 1.1 service: its name as the SDK counts its calls and reads its endpoint
/// variable, its signing name, its target prefix and its regional endpoint.
#[derive(Debug)]
pub struct Service {
    /// The SDK's service id (`Secrets Manager`, `KMS`).
    pub id: &'static str,
    /// The SigV4 signing name.
    pub signing_name: &'static str,
    /// The `x-amz-target` prefix.
    pub target: &'static str,
    /// The regional endpoint for (region, FIPS, dual-stack).
    pub endpoint: fn(&str, bool, bool) -> String,
}

/// Secrets Manager.
pub const SECRETS_MANAGER: Service = Service {
    id: "Secrets Manager",
    signing_name: "secretsmanager",
    target: "secretsmanager",
    endpoint: default_endpoint,
};

/// KMS.
pub const KMS: Service = Service {
    id: "KMS",
    signing_name: "kms",
    target: "TrentService",
    endpoint: kms_endpoint,
};
/// Attempts at one call, the first included (the SDK's standard strategy).
pub const MAX_ATTEMPTS: u32 = 3;
/// The backoff before the second attempt is up to this; before the third, up to twice it.
const BACKOFF: Duration = Duration::from_millis(200);

/// Why a call failed. None of it is for a client: it names the service's answer, for
/// the log.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No region to send the request to, and no endpoint variable.
    #[error("no region (AWS_REGION) and no endpoint (AWS_ENDPOINT_URL_<SERVICE>)")]
    NoRegion,
    /// An endpoint that is not a URL with a host.
    #[error("the endpoint {endpoint:?} is not a URL with a host")]
    Endpoint {
        /// As given.
        endpoint: String,
    },
    /// The credentials provider gave none.
    #[error("no credentials: {0}")]
    Credentials(String),
    /// The request could not be signed.
    #[error("signing the request failed: {0}")]
    Signing(String),
    /// Not sent, or no answer: connection refused or reset, TLS, a response cut short.
    #[error("the service could not be reached: {0}")]
    Transport(String),
    /// No answer within the attempt's or the call's time.
    #[error("the service did not answer within {0:?}")]
    TimedOut(Duration),
    /// The service refused: its status, error type and message.
    #[error("the service answered {status} {kind}: {message}")]
    Service {
        /// The HTTP status.
        status: u16,
        /// `ResourceNotFoundException`, `AccessDeniedException`, `ThrottlingException`, …
        kind: String,
        /// The service's message.
        message: String,
    },
    /// An answer that is not the operation's.
    #[error("the service's answer could not be read: {0}")]
    Malformed(String),
    /// The secret holds binary, not a string.
    #[error("the secret has no SecretString")]
    NotAString,
}

impl SecretError {
    /// Whether the SDK's standard strategy would try again.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) | Self::TimedOut(_) => true,
            Self::Service { status, kind, .. } => {
                *status >= 500
                    || *status == 429
                    || matches!(
                        kind.as_str(),
                        "ThrottlingException"
                            | "Throttling"
                            | "TooManyRequestsException"
                            | "RequestLimitExceeded"
                            | "RequestThrottled"
                            | "RequestThrottledException"
                            | "ProvisionedThroughputExceededException"
                            | "TransactionInProgressException"
                            | "RequestTimeout"
                            | "RequestTimeoutException"
                            | "InternalServiceError"
                    )
            }
            _ => false,
        }
    }
}

/// Signed JSON 1.1 calls to one service.
#[derive(Clone)]
pub struct SignedJson {
    service: &'static Service,
    endpoint: http::Uri,
    host: http::HeaderValue,
    region: String,
    credentials: SharedCredentialsProvider,
    connector: SharedHttpConnector,
    counter: CallCounter,
}

impl std::fmt::Debug for SignedJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedJson")
            .field("service", &self.service.id)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// A Secrets Manager reader of secret strings.
#[derive(Debug, Clone)]
pub struct SecretsManager(SignedJson);

impl SecretsManager {
    /// Calls to `endpoint` in `region` ([`SignedJson::new`]).
    ///
    /// # Errors
    /// [`SecretError::Endpoint`] when `endpoint` is not a URL with a host.
    pub fn new(
        endpoint: &str,
        region: impl Into<String>,
        credentials: SharedCredentialsProvider,
        connector: SharedHttpConnector,
    ) -> Result<Self, SecretError> {
        SignedJson::new(&SECRETS_MANAGER, endpoint, region, credentials, connector).map(Self)
    }

    /// A Lambda function's ([`SignedJson::from_lambda_environment`]).
    ///
    /// # Errors
    /// As [`SignedJson::from_sdk_config`].
    pub fn from_lambda_environment() -> Result<Self, SecretError> {
        SignedJson::from_lambda_environment(&SECRETS_MANAGER).map(Self)
    }

    /// As an SDK client built from `config` would call ([`SignedJson::from_sdk_config`]).
    ///
    /// # Errors
    /// As [`SignedJson::from_sdk_config`].
    pub fn from_sdk_config(
        config: &aws_types::SdkConfig,
        connector: SharedHttpConnector,
    ) -> Result<Self, SecretError> {
        SignedJson::from_sdk_config(&SECRETS_MANAGER, config, connector).map(Self)
    }

    /// This reader, counting its calls with `counter`.
    #[must_use]
    pub fn counted_by(self, counter: CallCounter) -> Self {
        Self(self.0.counted_by(counter))
    }

    /// The `SecretString` of `secret_id` (a name or an ARN), its current version.
    ///
    /// # Errors
    /// [`SecretError`]: after the last retryable failure, at once for any other, and
    /// [`SecretError::TimedOut`] when the call with its retries outlasts
    /// [`CALL_TIMEOUT`].
    pub async fn secret_string(&self, secret_id: &str) -> Result<String, SecretError> {
        let body = serde_json::json!({ "SecretId": secret_id });
        answer(&self.0.call("GetSecretValue", &body).await?)
    }

    /// The `SecretString` of the version of `secret_id` labelled `stage` (`AWSPREVIOUS`
    /// after a rotation); `None` when no version carries the label.
    ///
    /// # Errors
    /// As [`Self::secret_string`], but for the missing label.
    pub async fn secret_string_at(
        &self,
        secret_id: &str,
        stage: &str,
    ) -> Result<Option<String>, SecretError> {
        let body = serde_json::json!({ "SecretId": secret_id, "VersionStage": stage });
        match self.0.call("GetSecretValue", &body).await {
            Ok(bytes) => answer(&bytes).map(Some),
            Err(SecretError::Service { kind, .. }) if kind == "ResourceNotFoundException" => Ok(None),
            Err(error) => Err(error),
        }
    }
}

impl SignedJson {
    /// Calls to `service` at `endpoint` in `region`, signed with `credentials`' keys,
    /// sent through `connector`, counted into the process-wide tally
    /// ([`CallCounter::default`]).
    ///
    /// # Errors
    /// [`SecretError::Endpoint`] when `endpoint` is not a URL with a host.
    pub fn new(
        service: &'static Service,
        endpoint: &str,
        region: impl Into<String>,
        credentials: SharedCredentialsProvider,
        connector: SharedHttpConnector,
    ) -> Result<Self, SecretError> {
        let bad = || SecretError::Endpoint {
            endpoint: endpoint.to_owned(),
        };
        let uri: http::Uri = endpoint.parse().map_err(|_| bad())?;
        let authority = uri.authority().ok_or_else(bad)?;
        let host = http::HeaderValue::from_str(authority.as_str()).map_err(|_| bad())?;
        Ok(Self {
            service,
            endpoint: uri,
            host,
            region: region.into(),
            credentials,
            connector,
            counter: CallCounter::default(),
        })
    }

    /// A Lambda function's: [`Self::from_sdk_config`] of
    /// [`crate::config::lambda_sdk_config`], through the connector of the SDK's
    /// clients.
    ///
    /// # Errors
    /// As [`Self::from_sdk_config`].
    pub fn from_lambda_environment(service: &'static Service) -> Result<Self, SecretError> {
        Self::from_sdk_config(
            service,
            &crate::config::lambda_sdk_config(),
            crate::config::https_connector(crate::config::Roots::Aws),
        )
    }

    /// Calls as an SDK client built from `config` would make them: its region and
    /// credentials; its endpoint for the service (`AWS_ENDPOINT_URL_<SERVICE>` or
    /// `AWS_ENDPOINT_URL` as the configuration read them), else the regional one (with
    /// its FIPS and dual-stack settings); sent through `connector`.
    ///
    /// # Errors
    /// [`SecretError::NoRegion`] without a region or an endpoint;
    /// [`SecretError::Credentials`] without a credentials provider;
    /// [`SecretError::Endpoint`] for an endpoint that is not a URL.
    pub fn from_sdk_config(
        service: &'static Service,
        config: &aws_types::SdkConfig,
        connector: SharedHttpConnector,
    ) -> Result<Self, SecretError> {
        let region = config.region().map(ToString::to_string);
        let configured = config
            .service_config()
            .and_then(|loader| {
                let key = aws_types::service_config::ServiceConfigKey::builder()
                    .service_id(service.id)
                    .env("AWS_ENDPOINT_URL")
                    .profile("endpoint_url")
                    .build()
                    .ok()?;
                loader.load_config(key)
            })
            .or_else(|| config.endpoint_url().map(ToOwned::to_owned))
            .filter(|endpoint| !endpoint.is_empty());
        let endpoint = match configured {
            Some(endpoint) => endpoint,
            None => (service.endpoint)(
                region.as_deref().ok_or(SecretError::NoRegion)?,
                config.use_fips().unwrap_or(false),
                config.use_dual_stack().unwrap_or(false),
            ),
        };
        let credentials = config
            .credentials_provider()
            .ok_or_else(|| SecretError::Credentials("no credentials provider".into()))?;
        // With an endpoint but no region, the signature still needs one; the
        // emulators accept any.
        Self::new(
            service,
            &endpoint,
            region.unwrap_or_else(|| "us-east-1".into()),
            credentials,
            connector,
        )
    }

    /// This reader, counting its calls with `counter`.
    #[must_use]
    pub fn counted_by(self, counter: CallCounter) -> Self {
        Self { counter, ..self }
    }

    /// `operation` with `body`: the answer's bytes.
    ///
    /// # Errors
    /// [`SecretError`]: after the last retryable failure, at once for any other, and
    /// [`SecretError::TimedOut`] when the call with its retries outlasts
    /// [`CALL_TIMEOUT`].
    pub async fn call(
        &self,
        operation: &'static str,
        body: &serde_json::Value,
    ) -> Result<Vec<u8>, SecretError> {
        tokio::time::timeout(CALL_TIMEOUT, self.with_retries(operation, body.to_string()))
            .await
            .unwrap_or(Err(SecretError::TimedOut(CALL_TIMEOUT)))
    }

    async fn with_retries(&self, operation: &'static str, body: String) -> Result<Vec<u8>, SecretError> {
        let mut attempt = 1;
        loop {
            let result = tokio::time::timeout(ATTEMPT_TIMEOUT, self.attempt(operation, body.as_bytes()))
                .await
                .unwrap_or(Err(SecretError::TimedOut(ATTEMPT_TIMEOUT)));
            match result {
                Err(error) if error.is_retryable() && attempt < MAX_ATTEMPTS => {
                    tracing::debug!(error = %error, attempt, service = self.service.id, operation, "call failed; retrying");
                    let ceiling = BACKOFF * 2_u32.pow(attempt - 1);
                    tokio::time::sleep(ceiling.mul_f64(fastrand::f64())).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn attempt(&self, operation: &'static str, body: &[u8]) -> Result<Vec<u8>, SecretError> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|error| SecretError::Credentials(error.to_string()))?;
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri(self.endpoint.clone())
            .header(http::header::HOST, self.host.clone())
            .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")
            .header("x-amz-target", format!("{}.{operation}", self.service.target))
            .body(body.to_vec())
            .map_err(|error| SecretError::Signing(error.to_string()))?;
        self.sign(&mut request, credentials.into())?;
        let request = HttpRequest::try_from(request.map(SdkBody::from))
            .map_err(|error| SecretError::Signing(error.to_string()))?;
        self.counter.count(self.service.id, operation);
        let response = self
            .connector
            .call(request)
            .await
            .map_err(|error| transport(&error))?;
        let status = response.status().as_u16();
        let error_type = response.headers().get("x-amzn-errortype").map(ToOwned::to_owned);
        let bytes = ByteStream::new(response.into_body())
            .collect()
            .await
            .map_err(|error| SecretError::Transport(error.to_string()))?
            .into_bytes();
        if (200..300).contains(&status) {
            Ok(bytes.to_vec())
        } else {
            Err(refusal(status, error_type.as_deref(), &bytes))
        }
    }

    fn sign(&self, request: &mut http::Request<Vec<u8>>, identity: Identity) -> Result<(), SecretError> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let signing = |error: &dyn std::fmt::Display| SecretError::Signing(error.to_string());
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service.signing_name)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| signing(&e))?
            .into();
        let uri = request.uri().to_string();
        let signable = SignableRequest::new(
            request.method().as_str(),
            uri,
            request
                .headers()
                .iter()
                .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))),
            SignableBody::Bytes(request.body()),
        )
        .map_err(|e| signing(&e))?;
        let (instructions, _signature) = sign(signable, &params).map_err(|e| signing(&e))?.into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

/// A connector's failure: a timeout as such, anything else as not reached.
fn transport(error: &ConnectorError) -> SecretError {
    if error.is_timeout() {
        return SecretError::TimedOut(ATTEMPT_TIMEOUT);
    }
    // User errors (a request hyper would not send) are not retried; I/O, cut-short and
    // unclassified failures are, as the SDK retries them.
    if error.is_user() || error.as_other() == Some(ErrorKind::ClientError) {
        return SecretError::Signing(error.to_string());
    }
    SecretError::Transport(error.to_string())
}

/// The `SecretString` of a 2xx answer.
fn answer(bytes: &[u8]) -> Result<String, SecretError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "SecretString")]
        secret_string: Option<String>,
    }
    let answer: Answer =
        serde_json::from_slice(bytes).map_err(|error| SecretError::Malformed(error.to_string()))?;
    answer.secret_string.ok_or(SecretError::NotAString)
}

/// The service's refusal: its error type from the `x-amzn-ErrorType` header or the
/// body's `__type` (either may carry a namespace before `#` and details after `:`), its
/// message from the body's `message` or `Message`.
fn refusal(status: u16, header: Option<&str>, bytes: &[u8]) -> SecretError {
    let body: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let field = |name: &str| body.get(name).and_then(serde_json::Value::as_str);
    let kind = header
        .or_else(|| field("__type"))
        .map(|raw| {
            let raw = raw.split(':').next().unwrap_or(raw);
            raw.rsplit('#').next().unwrap_or(raw).trim().to_owned()
        })
        .filter(|kind| !kind.is_empty())
        .unwrap_or_else(|| "Unknown".to_owned());
    let message = field("message")
        .or_else(|| field("Message"))
        .unwrap_or_default()
        .to_owned();
    SecretError::Service {
        status,
        kind,
        message,
    }
}

/// The service's regional endpoint, as its endpoint rules give it in the `aws`,
/// `aws-cn` and `aws-us-gov` partitions (a test holds it to the SDK's rules).
#[must_use]
pub fn default_endpoint(region: &str, fips: bool, dual_stack: bool) -> String {
    // The service's endpoints are dual-stack already; only China's FIPS one differs.
    let suffix = match (region.starts_with("cn-"), fips && dual_stack) {
        (true, true) => "api.amazonwebservices.com.cn",
        (true, false) => "amazonaws.com.cn",
        (false, _) => "amazonaws.com",
    };
    let service = if fips {
        "secretsmanager-fips"
    } else {
        "secretsmanager"
    };
    format!("https://{service}.{region}.{suffix}")
}

/// KMS's regional endpoint, as its endpoint rules give it in the `aws`, `aws-cn` and
/// `aws-us-gov` partitions (`kms-fips` for FIPS; `api.aws` hosts when dual-stack).
#[must_use]
pub fn kms_endpoint(region: &str, fips: bool, dual_stack: bool) -> String {
    let service = if fips { "kms-fips" } else { "kms" };
    let suffix = match (region.starts_with("cn-"), dual_stack) {
        (true, true) => "api.amazonwebservices.com.cn",
        (true, false) => "amazonaws.com.cn",
        (false, true) => "api.aws",
        (false, false) => "amazonaws.com",
    };
    format!("https://{service}.{region}.{suffix}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn refusals_are_read_from_the_header_or_the_body() {
        let body = br#"{"__type":"com.amazonaws.secretsmanager#ResourceNotFoundException","Message":"no such secret"}"#;
        let SecretError::Service {
            status,
            kind,
            message,
        } = refusal(400, None, body)
        else {
            panic!("not a refusal")
        };
        assert_eq!(
            (status, kind.as_str(), message.as_str()),
            (400, "ResourceNotFoundException", "no such secret")
        );
        let header = refusal(400, Some("ThrottlingException:http://internal"), b"not json");
        assert!(header.is_retryable(), "{header}");
        assert!(matches!(header, SecretError::Service { ref kind, .. } if kind == "ThrottlingException"));
        let unknown = refusal(503, None, b"");
        assert!(unknown.is_retryable());
        assert!(!refusal(403, None, br#"{"__type":"AccessDeniedException"}"#).is_retryable());
    }

    #[test]
    fn an_answer_without_a_string_or_not_json_is_an_error() {
        assert_eq!(
            answer(br#"{"Name":"k","SecretString":"s3cr3t"}"#).unwrap(),
            "s3cr3t"
        );
        assert!(matches!(
            answer(br#"{"SecretBinary":"AAEC"}"#),
            Err(SecretError::NotAString)
        ));
        assert!(matches!(answer(b"<html>"), Err(SecretError::Malformed(_))));
    }

    #[test]
    fn endpoints_are_those_the_sdk_resolves() {
        use aws_sdk_secretsmanager::config::endpoint::{Params, ResolveEndpoint};
        let resolver = aws_sdk_secretsmanager::config::endpoint::DefaultResolver::new();
        let regions = [
            "us-east-1",
            "eu-west-1",
            "ap-southeast-2",
            "ca-central-1",
            "us-gov-west-1",
            "cn-north-1",
            "cn-northwest-1",
        ];
        for region in regions {
            for fips in [false, true] {
                for dual_stack in [false, true] {
                    let params = Params::builder()
                        .region(region)
                        .use_fips(fips)
                        .use_dual_stack(dual_stack)
                        .build()
                        .unwrap();
                    let expected = futures::executor::block_on(resolver.resolve_endpoint(&params)).unwrap();
                    assert_eq!(
                        default_endpoint(region, fips, dual_stack),
                        expected.url(),
                        "{region} fips={fips} dual_stack={dual_stack}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_endpoint_must_have_a_host() {
        let credentials = SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        ));
        let connector = orderflow_https::unusable("unused");
        assert!(
            SecretsManager::new("not a url", "us-east-1", credentials.clone(), connector.clone()).is_err()
        );
        assert!(
            SecretsManager::new("/relative", "us-east-1", credentials.clone(), connector.clone()).is_err()
        );
        assert!(SecretsManager::new("http://127.0.0.1:5050", "us-east-1", credentials, connector).is_ok());
    }
}
