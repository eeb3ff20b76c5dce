//! Lambda entry point of the order API.

use std::sync::Arc;

use lambda_http::{Error, run};
use order_api::{Api, AuthMode};
use orderflow_adapters::catalog::DynamoCatalog;
use orderflow_adapters::payment::DynamoVault;
use orderflow_adapters::{
    DynamoEventStore, DynamoIdempotencyStore, StoreConfig, aws_sdk_config, config, telemetry,
};
use orderflow_app::{CommandService, Repository, SystemClock};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let store = StoreConfig::from_env()?;
    let client = aws_sdk_dynamodb::Client::new(&aws_sdk_config().await);
    let repository = Repository::new(
        DynamoEventStore::new(client.clone(), store.events_table, store.snapshots_table),
        store.snapshot_every,
    );
    let api = Api::new(
        CommandService::new(
            repository,
            SystemClock,
            orderflow_app::command::DEFAULT_MAX_ATTEMPTS,
        ),
        Api::idempotency(DynamoIdempotencyStore::new(
            client.clone(),
            config::required("IDEMPOTENCY_TABLE")?,
        )),
        DynamoCatalog::new(client.clone(), config::required("CATALOG_TABLE")?),
        DynamoVault::new(client, config::required("PAYMENT_VAULT_TABLE")?),
        AuthMode::Jwt,
    );
    run(order_api::router(Arc::new(api))).await
}
