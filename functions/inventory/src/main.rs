//! Lambda entry point of inventory.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use orderflow_adapters::catalog::DynamoCatalog;
use orderflow_adapters::config::{failure_log_from_env, repository_from_env, required};
use orderflow_adapters::{aws_sdk_config, telemetry};
use orderflow_app::SystemClock;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let client = aws_sdk_dynamodb::Client::new(&aws_sdk_config().await);
    let catalog = DynamoCatalog::new(client.clone(), required("CATALOG_TABLE")?);
    let service = inventory::InventoryService::new(repository_from_env(&client)?, SystemClock, catalog)
        .with_failure_log(failure_log_from_env(&client, inventory::ACTOR)?);
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let service = &service;
        async move { Ok::<_, Error>(service.handle(event.payload).await) }
    }))
    .await
}
