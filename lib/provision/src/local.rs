//! Clients for the local emulators and uniquely named tables from the template, for
//! tests and the dev runner.
//!
//! Endpoints come from the SDK's standard variables (`AWS_ENDPOINT_URL_DYNAMODB`, …)
//! as everywhere else; only when none is set does this fall back to DynamoDB Local's
//! default port, so `cargo test` works by hand after `make emulators`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::{Credentials, Region};

use crate::{ProvisionError, Template};

/// DynamoDB Local's default endpoint (see `infra/local/emulators.sh`).
pub const DEFAULT_DYNAMODB_ENDPOINT: &str = "http://127.0.0.1:8000";

/// The SDK configuration for the emulators: standard variables first, local defaults
/// for whatever is unset.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if std::env::var_os("AWS_REGION").is_none() {
        loader = loader.region(Region::new("us-east-1"));
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        loader =
            loader.credentials_provider(Credentials::new("local", "local", None, None, "orderflow-local"));
    }
    loader.load().await
}

/// DynamoDB Local's endpoint when no standard variable names one for `service_variable`.
fn fallback_endpoint(service_variable: &str) -> Option<&'static str> {
    let unset =
        std::env::var_os(service_variable).is_none() && std::env::var_os("AWS_ENDPOINT_URL").is_none();
    unset.then_some(DEFAULT_DYNAMODB_ENDPOINT)
}

/// A DynamoDB client for the emulator.
pub async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    let config = sdk_config().await;
    let builder = aws_sdk_dynamodb::config::Builder::from(&config);
    let builder = match fallback_endpoint("AWS_ENDPOINT_URL_DYNAMODB") {
        Some(endpoint) => builder.endpoint_url(endpoint),
        None => builder,
    };
    aws_sdk_dynamodb::Client::from_conf(builder.build())
}

/// A DynamoDB Streams client for the emulator.
pub async fn dynamodb_streams_client() -> aws_sdk_dynamodbstreams::Client {
    let config = sdk_config().await;
    let builder = aws_sdk_dynamodbstreams::config::Builder::from(&config);
    let builder = match fallback_endpoint("AWS_ENDPOINT_URL_DYNAMODB_STREAMS") {
        Some(endpoint) => builder.endpoint_url(endpoint),
        None => builder,
    };
    aws_sdk_dynamodbstreams::Client::from_conf(builder.build())
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
