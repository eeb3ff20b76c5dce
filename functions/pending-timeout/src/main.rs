//! Lambda entry point of the pending-order timeout (an EventBridge schedule).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pending_timeout::lambda_main().await
}
