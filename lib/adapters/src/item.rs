//! Whole-item writes and reads of one serde value, shared by the simple tables (the
//! catalog, the failure log).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use orderflow_app::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Writes `value` whole as an item of `table`; `operation` names the write in errors.
pub(crate) async fn put<T: Serialize>(
    client: &Client,
    table: &str,
    value: &T,
    operation: &'static str,
) -> Result<(), StoreError> {
    let item = serde_dynamo::to_item(value).map_err(|e| StoreError::new(operation, e))?;
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(|e| StoreError::new(operation, e))?;
    Ok(())
}

/// Reads the item of `table` whose string key `key` is `value` (strongly consistent);
/// `operation` names the read in errors.
pub(crate) async fn get<T: DeserializeOwned>(
    client: &Client,
    table: &str,
    (key, value): (&str, String),
    operation: &'static str,
) -> Result<Option<T>, StoreError> {
    client
        .get_item()
        .table_name(table)
        .key(key, AttributeValue::S(value))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| StoreError::new(operation, e))?
        .item
        .map(|item| serde_dynamo::from_item(item).map_err(|e| StoreError::new(operation, e)))
        .transpose()
}
