//! Lambda entry point of the relay.

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Error, LambdaEvent, Runtime, service_fn};
use orderflow_adapters::calls::Counted;
use orderflow_adapters::config::lambda_sdk_config;
use orderflow_adapters::{EventBridgePublisher, config, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let bus_name = config::required("EVENT_BUS_NAME")?;
    let publisher = EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::counted_from(&lambda_sdk_config()),
        bus_name,
    );
    let metrics = orderflow_adapters::metrics::init_lambda("relay")?;
    orderflow_adapters::metrics::serve(
        metrics,
        Runtime::new(service_fn(|event: LambdaEvent<Event>| {
            let publisher = &publisher;
            async move { Ok::<_, Error>(relay::relay(publisher, event.payload).await) }
        })),
    )
    .await
}
