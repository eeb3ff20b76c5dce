//! Lambda entry point of shipping.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    orderflow_lambda::serve::<shipping::ShippingService<orderflow_app::SystemClock>>().await
}
