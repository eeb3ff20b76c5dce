//! Lambda entry point of the pending-order timeout (an EventBridge schedule).
// The handler's future nests the command service's guarded execution inside the
// runtime's; computing its layout needs more than the default depth.
#![recursion_limit = "256"]

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use jiff::SignedDuration;
use lambda_runtime::{Error, LambdaEvent};
use orderflow_adapters::config::{number_or, repository_from_env};
use orderflow_adapters::{aws_sdk_config, telemetry};
use orderflow_app::{Clock, SystemClock};
use pending_timeout::PendingTimeout;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let client = aws_sdk_dynamodb::Client::new(&aws_sdk_config().await);
    let minutes = number_or("PENDING_TIMEOUT_MINUTES", 15)?;
    let deadline = SignedDuration::from_mins(i64::try_from(minutes).map_err(|e| Error::from(e.to_string()))?);
    let sweeper = PendingTimeout::new(repository_from_env(&client)?, SystemClock, deadline);
    let metrics = orderflow_adapters::metrics::init_lambda("pending-timeout")?;
    orderflow_adapters::metrics::emf::lambda::handler::run(metrics, |_: LambdaEvent<EventBridgeEvent>| {
        let sweeper = &sweeper;
        async move {
            let swept = sweeper.sweep(SystemClock.now()).await?;
            tracing::info!(
                examined = swept.examined,
                expired = swept.expired.len(),
                left_for_saga = swept.left_for_saga.len(),
                failed = swept.failed,
                "swept"
            );
            if swept.failed > 0 {
                return Err(Error::from(format!(
                    "{} orders could not be expired",
                    swept.failed
                )));
            }
            Ok::<_, Error>(())
        }
    })
    .await
}
