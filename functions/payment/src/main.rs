//! Lambda entry point of payment.

use orderflow_adapters::payment::{DynamoVault, SimulatedGateway};
use orderflow_app::SystemClock;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    orderflow_lambda::serve::<payment::PaymentService<SimulatedGateway, DynamoVault, SystemClock>>().await
}
