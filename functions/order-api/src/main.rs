//! Lambda entry point of the order API.

use std::sync::Arc;

use lambda_http::{Error, lambda_runtime::Runtime};
use order_api::gateway::HttpApi;
use order_api::{Api, cursors_from_secret};
use orderflow_adapters::config::Config;
use orderflow_adapters::personal::{KeyWrapping, KmsKeyWrap};
use orderflow_adapters::secrets::SecretsManager;
use orderflow_adapters::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_process();
    let cursors = cursors_from_secret(
        SecretsManager::from_lambda_environment()?,
        config.required("CURSOR_KEY_SECRET")?,
    );
    let wrapping = KeyWrapping::Kms(Box::new(KmsKeyWrap::from_lambda_environment(
        config.required("CUSTOMER_DATA_KEY")?,
    )?));
    let api = Api::from_config(&config, cursors, wrapping)?;
    let metrics = orderflow_adapters::metrics::init_lambda("order-api")?;
    orderflow_adapters::metrics::serve(
        metrics,
        Runtime::new(HttpApi::new(order_api::router(Arc::new(api)))),
    )
    .await
}
