//! Lambda entry point of the relay.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    relay::lambda_main().await
}
