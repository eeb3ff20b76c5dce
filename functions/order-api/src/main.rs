//! Lambda entry point of the order API.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    order_api::lambda_main().await
}
