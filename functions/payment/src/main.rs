//! Lambda entry point of payment.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use orderflow_adapters::payment::{DynamoVault, SimulatedGateway};
use orderflow_adapters::{DynamoEventStore, StoreConfig, aws_sdk_config, config, telemetry};
use orderflow_app::{Repository, SystemClock};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let store_config = StoreConfig::from_env()?;
    let vault_table = config::required("PAYMENT_VAULT_TABLE")?;
    let provider_table = config::required("PAYMENT_PROVIDER_TABLE")?;
    let client = aws_sdk_dynamodb::Client::new(&aws_sdk_config().await);
    let store = DynamoEventStore::new(
        client.clone(),
        store_config.events_table,
        store_config.snapshots_table,
    );
    let service = payment::PaymentService::new(
        Repository::new(store, store_config.snapshot_every),
        SystemClock,
        SimulatedGateway::new(client.clone(), provider_table),
        DynamoVault::new(client, vault_table),
    );
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let service = &service;
        async move { Ok::<_, Error>(service.handle(event.payload).await) }
    }))
    .await
}
