//! Lambda entry point of payment.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent};
use orderflow_adapters::config::{failure_log_from_env, repository_from_env, required};
use orderflow_adapters::payment::{DynamoVault, SimulatedGateway};
use orderflow_adapters::{aws_sdk_config, telemetry};
use orderflow_app::SystemClock;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let sdk = aws_sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let gateway = SimulatedGateway::new(client.clone(), required("PAYMENT_PROVIDER_TABLE")?);
    let vault = DynamoVault::new(client.clone(), required("PAYMENT_VAULT_TABLE")?);
    let service = payment::PaymentService::new(repository_from_env(&client)?, SystemClock, gateway, vault)
        .with_failure_log(failure_log_from_env(&client, payment::ACTOR)?)
        .with_replayed_side_effects(std::env::var("REPLAY_SIDE_EFFECTS").is_ok_and(|v| v == "apply"));
    let service = match payment::backoff(aws_sdk_sqs::Client::new(&sdk), |name| std::env::var(name).ok())? {
        Some(backoff) => service.with_backoff(backoff),
        None => service,
    };
    let metrics = orderflow_adapters::metrics::init_lambda("payment")?;
    orderflow_adapters::metrics::emf::lambda::handler::run(metrics, |event: LambdaEvent<SqsEvent>| {
        let service = &service;
        async move {
            let deadline = event.context.deadline();
            Ok::<_, Error>(orderflow_adapters::sqs::within(deadline, service.handle(event.payload)).await)
        }
    })
    .await
}
