//! Lambda entry point of the projector.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    orderflow_lambda::serve::<projector::Projector>().await
}
