//! Idempotency records on DynamoDB, with Powertools semantics.
//!
//! One item per key (`id`): `status` (`IN_PROGRESS` / `COMPLETED`), `fingerprint`,
//! `leaseUntil` (epoch microseconds), `expiration` (epoch seconds: the table's TTL
//! attribute) and, once completed, `response`. A claim is one conditional `PutItem`
//! that succeeds only when no live record is in the way; when one is, the item the
//! condition failed on comes back with the error and decides the outcome.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use orderflow_app::{Claim, IdempotencyError, IdempotencyStore, KeyRecord, KeyStatus, StoreError};
use orderflow_domain::Timestamp;
use serde::{Deserialize, Serialize};

const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETED: &str = "COMPLETED";

/// The idempotency table.
#[derive(Debug, Clone)]
pub struct DynamoIdempotencyStore {
    client: Client,
    table: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyItem {
    id: String,
    status: String,
    fingerprint: String,
    lease_until: i64,
    expiration: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response: Option<String>,
}

fn epoch_seconds(ts: Timestamp) -> i64 {
    ts.as_jiff().as_second()
}

impl KeyItem {
    fn into_record(self) -> Result<KeyRecord, StoreError> {
        let status = match self.status.as_str() {
            IN_PROGRESS => KeyStatus::InProgress,
            COMPLETED => KeyStatus::Completed,
            other => {
                return Err(StoreError::new(
                    "decode idempotency record",
                    format!("unknown status {other:?}"),
                ));
            }
        };
        let time = |micros| {
            Timestamp::from_micros(micros).map_err(|e| StoreError::new("decode idempotency record", e))
        };
        Ok(KeyRecord {
            status,
            fingerprint: self.fingerprint,
            lease_until: time(self.lease_until)?,
            expires_at: time(self.expiration.saturating_mul(1_000_000))?,
            response: self.response,
        })
    }
}

impl DynamoIdempotencyStore {
    /// The store over `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Its table's name.
    #[must_use]
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn read(&self, key: &str) -> Result<Option<KeyRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new("read idempotency record", e))?;
        output.item.map(decode).transpose()
    }
}

fn decode(item: HashMap<String, AttributeValue>) -> Result<KeyRecord, StoreError> {
    let item: KeyItem =
        serde_dynamo::from_item(item).map_err(|e| StoreError::new("decode idempotency record", e))?;
    item.into_record()
}

fn condition_failed<E>(error: &SdkError<E>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    error
        .as_service_error()
        .and_then(aws_sdk_dynamodb::error::ProvideErrorMetadata::code)
        == Some("ConditionalCheckFailedException")
}

impl IdempotencyStore for DynamoIdempotencyStore {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
        lease_until: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Claim, IdempotencyError> {
        let item = KeyItem {
            id: key.to_owned(),
            status: IN_PROGRESS.to_owned(),
            fingerprint: fingerprint.to_owned(),
            lease_until: lease_until.as_micros(),
            expiration: epoch_seconds(expires_at),
            response: None,
        };
        let item =
            serde_dynamo::to_item(&item).map_err(|e| StoreError::new("encode idempotency record", e))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(id) OR expiration <= :now_s OR (#status = :in_progress AND leaseUntil <= :now_us)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now_s", AttributeValue::N(epoch_seconds(now).to_string()))
            .expression_attribute_values(":now_us", AttributeValue::N(now.as_micros().to_string()))
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.to_owned()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(Claim::Acquired),
            Err(error) if condition_failed(&error) => error,
            Err(error) => return Err(StoreError::new("claim idempotency key", error).into()),
        };
        // A live record is in the way: it decides the outcome. It comes back with the
        // error; should an endpoint not return it, read it (it cannot be stale now).
        let returned = match error.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(e)) => e.item.clone(),
            _ => None,
        };
        let existing = match returned {
            Some(item) => Some(decode(item)?),
            None => self.read(key).await?,
        };
        match existing {
            Some(record) => record.claim_outcome(fingerprint),
            // Deleted between the two calls (released after a failure): the client retries.
            None => Err(IdempotencyError::InProgress),
        }
    }

    async fn complete(
        &self,
        key: &str,
        fingerprint: &str,
        response: &str,
        expires_at: Timestamp,
    ) -> Result<(), IdempotencyError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(key.to_owned()))
            .update_expression("SET #status = :completed, #response = :response, expiration = :exp")
            .condition_expression("#status = :in_progress AND fingerprint = :fp")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#response", "response")
            .expression_attribute_values(":completed", AttributeValue::S(COMPLETED.to_owned()))
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.to_owned()))
            .expression_attribute_values(":response", AttributeValue::S(response.to_owned()))
            .expression_attribute_values(":exp", AttributeValue::N(epoch_seconds(expires_at).to_string()))
            .expression_attribute_values(":fp", AttributeValue::S(fingerprint.to_owned()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if condition_failed(&error) => Err(IdempotencyError::ClaimLost),
            Err(error) => Err(StoreError::new("complete idempotency key", error).into()),
        }
    }

    async fn release(&self, key: &str, fingerprint: &str) -> Result<(), IdempotencyError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(key.to_owned()))
            .condition_expression("#status = :in_progress AND fingerprint = :fp")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.to_owned()))
            .expression_attribute_values(":fp", AttributeValue::S(fingerprint.to_owned()))
            .send()
            .await;
        match result {
            // Not ours any more (or gone): nothing to release.
            Ok(_) => Ok(()),
            Err(error) if condition_failed(&error) => Ok(()),
            Err(error) => Err(StoreError::new("release idempotency key", error).into()),
        }
    }
}
