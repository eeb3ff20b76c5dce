//! Lambda entry point of shipping.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use orderflow_adapters::{DynamoEventStore, StoreConfig, aws_sdk_config, telemetry};
use orderflow_app::{Repository, SystemClock};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let store_config = StoreConfig::from_env()?;
    let client = aws_sdk_dynamodb::Client::new(&aws_sdk_config().await);
    let store = DynamoEventStore::new(client, store_config.events_table, store_config.snapshots_table);
    let service =
        shipping::ShippingService::new(Repository::new(store, store_config.snapshot_every), SystemClock);
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let service = &service;
        async move { Ok::<_, Error>(service.handle(event.payload).await) }
    }))
    .await
}
