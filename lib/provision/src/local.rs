//! Clients for the local emulators and uniquely named tables from the template, for
//! tests and the dev runner.
//!
//! Endpoints come only from the SDK's standard variables (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_DYNAMODB`, …), as everywhere else. These helpers refuse to build a
//! client when none is set: a test or `orderflow dev` run by hand can never create
//! tables in a real account by accident. `make test` and `make dev` set them;
//! `eval "$(infra/local/emulators.sh env)"` sets them for a shell.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::{Credentials, Region};

use crate::{ProvisionError, Template};

/// No emulator endpoint is configured.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "no emulator endpoint: set {0} or AWS_ENDPOINT_URL (`make test` and `make dev` do; for a shell: \
     eval \"$(infra/local/emulators.sh env)\")"
)]
pub struct NoEndpoint(&'static str);

fn require_endpoint(service_variable: &'static str) -> Result<(), NoEndpoint> {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    if set(service_variable) || set("AWS_ENDPOINT_URL") {
        Ok(())
    } else {
        Err(NoEndpoint(service_variable))
    }
}

/// The SDK configuration for the emulators: standard variables, with a region and
/// dummy credentials when none are set (emulators accept any).
pub async fn sdk_config() -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(orderflow_https::shared_client(orderflow_https::system_roots()));
    if std::env::var_os("AWS_REGION").is_none() {
        loader = loader.region(Region::new("us-east-1"));
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        loader =
            loader.credentials_provider(Credentials::new("local", "local", None, None, "orderflow-local"));
    }
    loader.load().await
}

/// A DynamoDB client for the emulator.
///
/// # Errors
/// [`NoEndpoint`] when no endpoint variable is set.
pub async fn dynamodb_client() -> Result<aws_sdk_dynamodb::Client, NoEndpoint> {
    require_endpoint("AWS_ENDPOINT_URL_DYNAMODB")?;
    Ok(aws_sdk_dynamodb::Client::new(&sdk_config().await))
}

/// A DynamoDB Streams client for the emulator.
///
/// # Errors
/// [`NoEndpoint`] when no endpoint variable is set.
pub async fn dynamodb_streams_client() -> Result<aws_sdk_dynamodbstreams::Client, NoEndpoint> {
    require_endpoint("AWS_ENDPOINT_URL_DYNAMODB_STREAMS")?;
    Ok(aws_sdk_dynamodbstreams::Client::new(&sdk_config().await))
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
/// [`NoEndpoint`] when no endpoint variable is set.
pub async fn sqs_client() -> Result<aws_sdk_sqs::Client, NoEndpoint> {
    require_endpoint("AWS_ENDPOINT_URL_SQS")?;
    Ok(aws_sdk_sqs::Client::new(&sdk_config().await))
}

/// An EventBridge client for the emulator.
///
/// # Errors
/// [`NoEndpoint`] when no endpoint variable is set.
pub async fn eventbridge_client() -> Result<aws_sdk_eventbridge::Client, NoEndpoint> {
    require_endpoint("AWS_ENDPOINT_URL_EVENTBRIDGE")?;
    Ok(aws_sdk_eventbridge::Client::new(&sdk_config().await))
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
    #[error("no local stack {prefix:?} ({missing} is missing): run `orderflow dev --prefix {prefix}` first")]
    Missing {
        /// The prefix asked for.
        prefix: String,
        /// The first resource not found.
        missing: String,
    },
}

/// The stack `orderflow dev` created under `prefix`, looked up without creating
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
