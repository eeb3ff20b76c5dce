//! Lambda entry point of order-saga.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent};
use orderflow_adapters::config::{failure_log_from_env, repository_from_env};
use orderflow_adapters::{aws_sdk_config, telemetry};
use orderflow_app::SystemClock;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let client = aws_sdk_dynamodb::Client::new(&aws_sdk_config().await);
    let service = order_saga::OrderSaga::new(repository_from_env(&client)?, SystemClock)
        .with_failure_log(failure_log_from_env(&client, order_saga::ACTOR)?);
    let metrics = orderflow_adapters::metrics::init_lambda("order-saga")?;
    orderflow_adapters::metrics::emf::lambda::handler::run(metrics, |event: LambdaEvent<SqsEvent>| {
        let service = &service;
        async move {
            let deadline = event.context.deadline();
            Ok::<_, Error>(orderflow_adapters::sqs::within(deadline, service.handle(event.payload)).await)
        }
    })
    .await
}
