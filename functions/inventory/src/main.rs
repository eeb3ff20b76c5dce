//! Lambda entry point of inventory.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    orderflow_lambda::serve::<inventory::InventoryService<orderflow_app::SystemClock>>().await
}
