//! Lambda entry point of the pending-order timeout (an EventBridge schedule).
// The handler's future nests the command service's guarded execution inside the
// runtime's; computing its layout needs more than the default depth.
#![recursion_limit = "256"]

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent, Runtime, service_fn};
use orderflow_adapters::config::Config;
use orderflow_adapters::telemetry;
use orderflow_app::{Clock, SystemClock};
use pending_timeout::PendingTimeout;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let sweeper = PendingTimeout::from_config(&Config::from_process())?;
    let metrics = orderflow_adapters::metrics::init_lambda("pending-timeout")?;
    orderflow_adapters::metrics::serve(
        metrics,
        Runtime::new(service_fn(|_: LambdaEvent<EventBridgeEvent>| {
            let sweeper = &sweeper;
            async move {
                let swept = sweeper.sweep(SystemClock.now()).await?;
                tracing::info!(
                    examined = swept.examined,
                    expired = swept.expired.len(),
                    left_for_saga = swept.left_for_saga.len(),
                    stalled = swept.stalled.len(),
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
        })),
    )
    .await
}
