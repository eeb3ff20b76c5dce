//! Lambda entry point of the order API.

use std::sync::Arc;

use lambda_http::{Error, lambda_runtime::Runtime};
use order_api::gateway::HttpApi;
use order_api::{Api, cursors_from_secret};
use orderflow_adapters::calls::CallCounter;
use orderflow_adapters::config::Config;
use orderflow_adapters::config::lambda_sdk_config;
use orderflow_adapters::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_process();
    let cursors = cursors_from_secret(
        || {
            let config = aws_sdk_secretsmanager::config::Builder::from(&lambda_sdk_config())
                .interceptor(CallCounter::default())
                .build();
            aws_sdk_secretsmanager::Client::from_conf(config)
        },
        config.required("CURSOR_KEY_SECRET")?,
    );
    let api = Api::from_config(&config, cursors)?;
    let metrics = orderflow_adapters::metrics::init_lambda("order-api")?;
    orderflow_adapters::metrics::serve(
        metrics,
        Runtime::new(HttpApi::new(order_api::router(Arc::new(api)))),
    )
    .await
}
