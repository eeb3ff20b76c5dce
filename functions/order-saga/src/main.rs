//! Lambda entry point of the order saga.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    orderflow_lambda::serve::<order_saga::OrderSaga<orderflow_app::SystemClock>>().await
}
