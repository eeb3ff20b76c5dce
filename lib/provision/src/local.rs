//! Clients for the local emulators and uniquely named tables from the template, for
//! tests and the dev runner.
//!
//! Endpoints come from the SDK's standard variables (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_DYNAMODB`, …), as everywhere else, and when none is set, from what
//! `orderflow-dev up` recorded ([`Endpoints::record`]): so the CLI in a second terminal
//! finds the local stack `make dev` runs. Recorded endpoints are loopback addresses
//! only. These helpers refuse to build a client when neither gives an endpoint: a test
//! or a command run by hand can never create tables in a real account by accident.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::{Credentials, Region};

use crate::{ProvisionError, Template};

/// No emulator endpoint is configured.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "no emulator endpoint: set {0} or AWS_ENDPOINT_URL, or start the local stack (`make dev`, \
     which records its endpoints in {ENDPOINTS_FILE} under its state directory)"
)]
pub struct NoEndpoint(&'static str);

/// The file, in `orderflow-dev up`'s state directory, its endpoints are recorded in.
pub const ENDPOINTS_FILE: &str = "endpoints.json";

/// Where recorded endpoints are read from: `$ORDERFLOW_STATE_DIR/endpoints.json`,
/// else `.local/run/endpoints.json` (`orderflow-dev up`'s default state directory).
#[must_use]
pub fn recorded_endpoints_path() -> std::path::PathBuf {
    std::env::var_os("ORDERFLOW_STATE_DIR")
        .map_or_else(
            || std::path::PathBuf::from(".local/run"),
            std::path::PathBuf::from,
        )
        .join(ENDPOINTS_FILE)
}

/// The emulators' endpoints and region: what the standard variables say, recorded by
/// `orderflow-dev up` for commands run where they are not set.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoints {
    /// The SDK's standard variables, by name (`AWS_ENDPOINT_URL`,
    /// `AWS_ENDPOINT_URL_DYNAMODB`, …, `AWS_REGION`).
    pub variables: std::collections::BTreeMap<String, String>,
}

impl Endpoints {
    /// The endpoint variables and the region this process has.
    #[must_use]
    pub fn from_env() -> Self {
        let variables = std::env::vars()
            .filter(|(name, value)| {
                (name.starts_with("AWS_ENDPOINT_URL") || name == "AWS_REGION") && !value.trim().is_empty()
            })
            .collect();
        Self { variables }
    }

    /// Writes them to `dir`/[`ENDPOINTS_FILE`].
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn record(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(ENDPOINTS_FILE), json)
    }

    /// What `path` records, keeping only endpoints on a loopback address: a file
    /// that names anything else is not the local stack's.
    #[must_use]
    pub fn read(path: &std::path::Path) -> Option<Self> {
        let mut recorded: Self = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        recorded
            .variables
            .retain(|name, value| name == "AWS_REGION" || is_loopback_url(value));
        Some(recorded)
    }

    /// The endpoint for a service: its own variable, else `AWS_ENDPOINT_URL`.
    fn endpoint(&self, service_variable: &str) -> Option<&str> {
        self.variables
            .get(service_variable)
            .or_else(|| self.variables.get("AWS_ENDPOINT_URL"))
            .map(String::as_str)
    }
}

fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority
        .rsplit_once(':')
        .filter(|(host, port)| !host.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(authority, |(host, _)| host);
    matches!(host, "localhost" | "[::1]")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Endpoints {
    /// What the local clients use: the standard variables when any endpoint variable is
    /// set, else what `orderflow-dev up` recorded (a region set in the environment still
    /// wins). Read once per client built.
    #[must_use]
    pub fn in_use() -> Self {
        let env = Self::from_env();
        if env
            .variables
            .keys()
            .any(|name| name.starts_with("AWS_ENDPOINT_URL"))
        {
            return env;
        }
        let mut recorded = Self::read(&recorded_endpoints_path()).unwrap_or_default();
        recorded.variables.extend(env.variables);
        recorded
    }
}

/// The SDK configuration for the emulators: the standard variables, with the region
/// [`Endpoints::in_use`] gives (else `us-east-1`) and dummy credentials when none are
/// set (emulators accept any).
pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_config_with(&Endpoints::in_use()).await
}

async fn sdk_config_with(endpoints: &Endpoints) -> aws_config::SdkConfig {
    let region = endpoints
        .variables
        .get("AWS_REGION")
        .cloned()
        .unwrap_or_else(|| "us-east-1".to_owned());
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(orderflow_https::shared_client(orderflow_https::system_roots()))
        .region(Region::new(region));
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        loader =
            loader.credentials_provider(Credentials::new("local", "local", None, None, "orderflow-local"));
    }
    loader.load().await
}

/// The SDK configuration for a service and the endpoint its client is sent to: its own
/// variable, else `AWS_ENDPOINT_URL`, from [`Endpoints::in_use`].
async fn service_config(
    service_variable: &'static str,
) -> Result<(aws_config::SdkConfig, String), NoEndpoint> {
    let endpoints = Endpoints::in_use();
    let endpoint = endpoints
        .endpoint(service_variable)
        .ok_or(NoEndpoint(service_variable))?
        .to_owned();
    Ok((sdk_config_with(&endpoints).await, endpoint))
}

/// A DynamoDB client for the emulator.
///
/// # Errors
/// [`NoEndpoint`] when neither a variable nor a recording gives an endpoint.
pub async fn dynamodb_client() -> Result<aws_sdk_dynamodb::Client, NoEndpoint> {
    let (sdk, endpoint) = service_config("AWS_ENDPOINT_URL_DYNAMODB").await?;
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(endpoint);
    Ok(aws_sdk_dynamodb::Client::from_conf(config.build()))
}

/// A DynamoDB Streams client for the emulator.
///
/// # Errors
/// [`NoEndpoint`] when neither a variable nor a recording gives an endpoint.
pub async fn dynamodb_streams_client() -> Result<aws_sdk_dynamodbstreams::Client, NoEndpoint> {
    let (sdk, endpoint) = service_config("AWS_ENDPOINT_URL_DYNAMODB_STREAMS").await?;
    let config = aws_sdk_dynamodbstreams::config::Builder::from(&sdk).endpoint_url(endpoint);
    Ok(aws_sdk_dynamodbstreams::Client::from_conf(config.build()))
}

/// A name no other test in this run (or a parallel one) uses.
#[must_use]
pub fn unique_name(logical_id: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "t{}x{}x{}-{logical_id}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// Creates each table of `logical_ids` from the repository's template under a unique
/// name; returns logical id → name.
///
/// # Errors
/// [`ProvisionError`].
pub async fn fresh_tables(
    client: &aws_sdk_dynamodb::Client,
    logical_ids: &[&str],
) -> Result<HashMap<String, String>, ProvisionError> {
    let template = Template::load(&Template::default_path())?;
    let mut names = HashMap::new();
    for &logical_id in logical_ids {
        let name = unique_name(logical_id);
        template.table(logical_id)?.create(client, &name).await?;
        names.insert(logical_id.to_owned(), name);
    }
    Ok(names)
}

/// An SQS client for the emulator (moto, or LocalStack).
///
/// # Errors
/// [`NoEndpoint`] when neither a variable nor a recording gives an endpoint.
pub async fn sqs_client() -> Result<aws_sdk_sqs::Client, NoEndpoint> {
    let (sdk, endpoint) = service_config("AWS_ENDPOINT_URL_SQS").await?;
    let config = aws_sdk_sqs::config::Builder::from(&sdk).endpoint_url(endpoint);
    Ok(aws_sdk_sqs::Client::from_conf(config.build()))
}

/// An EventBridge client for the emulator.
///
/// # Errors
/// [`NoEndpoint`] when neither a variable nor a recording gives an endpoint.
pub async fn eventbridge_client() -> Result<aws_sdk_eventbridge::Client, NoEndpoint> {
    let (sdk, endpoint) = service_config("AWS_ENDPOINT_URL_EVENTBRIDGE").await?;
    let config = aws_sdk_eventbridge::config::Builder::from(&sdk).endpoint_url(endpoint);
    Ok(aws_sdk_eventbridge::Client::from_conf(config.build()))
}

/// Every resource of the template, created locally under one prefix.
#[derive(Debug, Clone)]
pub struct Stack {
    /// The prefix of every name.
    pub prefix: String,
    /// Tables: logical id → name.
    pub tables: HashMap<String, String>,
    /// Queues, bus and rules.
    pub messaging: crate::create::Messaging,
    /// The functions' environment, resolved to these names (with the template's
    /// parameter overrides).
    pub environment: std::collections::BTreeMap<String, String>,
}

impl Stack {
    /// The local name of table `logical_id`.
    #[must_use]
    pub fn table(&self, logical_id: &str) -> Option<&str> {
        self.tables.get(logical_id).map(String::as_str)
    }

    /// Queue `logical_id`.
    #[must_use]
    pub fn queue(&self, logical_id: &str) -> Option<&crate::create::Queue> {
        self.messaging.queues.get(logical_id)
    }

    /// A function environment variable, as the template sets it.
    #[must_use]
    pub fn env(&self, name: &str) -> Option<&str> {
        self.environment.get(name).map(String::as_str)
    }

    /// The live bus's name (`EventBus`; else the first the template declares).
    #[must_use]
    pub fn bus(&self) -> &str {
        self.messaging
            .buses
            .get("EventBus")
            .or_else(|| self.messaging.buses.values().next())
            .map_or("", String::as_str)
    }
}

/// Why a stack could not be provisioned.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// No endpoint configured.
    #[error(transparent)]
    NoEndpoint(#[from] NoEndpoint),
    /// The template or an emulator failed.
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    /// No local stack has this prefix.
    #[error(
        "no local stack {prefix:?} ({missing} is missing): run `orderflow-dev up --prefix {prefix}` first"
    )]
    Missing {
        /// The prefix asked for.
        prefix: String,
        /// The first resource not found.
        missing: String,
    },
}

/// The stack `orderflow-dev up` created under `prefix`, looked up without creating
/// anything: what operator commands act on.
///
/// # Errors
/// [`StackError::Missing`] when a table or queue of the template is not there.
pub async fn existing_stack(template: &Template, prefix: &str) -> Result<Stack, StackError> {
    let dynamodb = dynamodb_client().await?;
    let tables = crate::messaging::table_names(template, prefix);
    let mut names: Vec<&String> = tables.values().collect();
    names.sort();
    for name in names {
        match dynamodb.describe_table().table_name(name).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Err(StackError::Missing {
                    prefix: prefix.to_owned(),
                    missing: name.clone(),
                });
            }
            Err(e) => return Err(crate::emulator(&format!("table {name}"), e).into()),
        }
    }
    let messaging = crate::create::existing_messaging(template, prefix, &sqs_client().await?)
        .await?
        .ok_or_else(|| StackError::Missing {
            prefix: prefix.to_owned(),
            missing: "a queue".into(),
        })?;
    Ok(Stack {
        prefix: prefix.to_owned(),
        tables,
        environment: environment(template, prefix, &messaging)?,
        messaging,
    })
}

/// The functions' environment as Lambda sees it: `!Ref` of a queue is its URL, as
/// CloudFormation resolves it; any other reference its local name.
fn environment(
    template: &Template,
    prefix: &str,
    messaging: &crate::create::Messaging,
) -> Result<std::collections::BTreeMap<String, String>, StackError> {
    let mut variables = template.function_environment(prefix)?;
    for value in variables.values_mut() {
        if let Some(queue) = messaging.queues.values().find(|q| q.name == *value) {
            value.clone_from(&queue.url);
        }
    }
    Ok(variables)
}

/// Creates every table, queue, bus and rule of `template` as `<prefix>-<LogicalId>`.
///
/// # Errors
/// [`StackError`].
pub async fn provision_stack(template: &Template, prefix: &str) -> Result<Stack, StackError> {
    let dynamodb = dynamodb_client().await?;
    let tables = crate::messaging::table_names(template, prefix);
    for (logical_id, name) in &tables {
        template.table(logical_id)?.create(&dynamodb, name).await?;
    }
    let messaging = crate::create::provision_messaging(
        template,
        prefix,
        &sqs_client().await?,
        &eventbridge_client().await?,
    )
    .await?;
    Ok(Stack {
        prefix: prefix.to_owned(),
        tables,
        environment: environment(template, prefix, &messaging)?,
        messaging,
    })
}

#[cfg(test)]
mod endpoint_tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn only_loopback_endpoints_are_taken_from_a_recording() {
        for url in [
            "http://127.0.0.1:8000",
            "http://localhost:4566",
            "https://[::1]:443/",
            "http://127.0.0.2",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "https://dynamodb.us-east-1.amazonaws.com",
            "http://10.0.0.1:8000",
            "http://127.0.0.1.evil.example:8000",
            "127.0.0.1:8000",
            "",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
        let dir = std::env::temp_dir().join(unique_name("endpoints"));
        let recorded = Endpoints {
            variables: [
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:5050"),
                (
                    "AWS_ENDPOINT_URL_DYNAMODB",
                    "https://dynamodb.us-east-1.amazonaws.com",
                ),
                ("AWS_REGION", "eu-west-1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        };
        recorded.record(&dir).unwrap();
        let read = Endpoints::read(&dir.join(ENDPOINTS_FILE)).unwrap();
        // The non-loopback DynamoDB endpoint is dropped: DynamoDB goes to the general
        // (loopback) one, never to an account.
        assert_eq!(
            read.endpoint("AWS_ENDPOINT_URL_DYNAMODB"),
            Some("http://127.0.0.1:5050")
        );
        assert_eq!(
            read.variables.get("AWS_REGION").map(String::as_str),
            Some("eu-west-1")
        );
        assert!(Endpoints::read(&dir.join("missing.json")).is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
