//! Lambda entry point of the order API.

use std::sync::Arc;

use lambda_http::Error;
use order_api::{Access, Api, cursor_key_from_secret};
use orderflow_adapters::catalog::DynamoCatalog;
use orderflow_adapters::config::{repository_from_env, required};
use orderflow_adapters::payment::DynamoVault;
use orderflow_adapters::read_model::DynamoOrderViews;
use orderflow_adapters::{DynamoIdempotencyStore, aws_sdk_config, telemetry};
use orderflow_app::{CommandService, SystemClock, command::DEFAULT_MAX_ATTEMPTS};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let sdk = aws_sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let cursors = cursor_key_from_secret(
        &aws_sdk_secretsmanager::Client::new(&sdk),
        &required("CURSOR_KEY_SECRET")?,
    )
    .await?;
    let access = Access::from_variables(|name| std::env::var(name).ok(), client.clone(), cursors)?;
    let api = Api::new(
        CommandService::new(repository_from_env(&client)?, SystemClock, DEFAULT_MAX_ATTEMPTS),
        Api::idempotency(DynamoIdempotencyStore::new(
            client.clone(),
            required("IDEMPOTENCY_TABLE")?,
        )),
        DynamoCatalog::new(client.clone(), required("CATALOG_TABLE")?),
        DynamoVault::new(client.clone(), required("PAYMENT_VAULT_TABLE")?),
        DynamoOrderViews::new(client, required("ORDER_VIEW_TABLE")?),
        access,
    );
    let metrics = orderflow_adapters::metrics::init_lambda("order-api")?;
    orderflow_adapters::metrics::emf::lambda::service::run_http(metrics, order_api::router(Arc::new(api)))
        .await
}
