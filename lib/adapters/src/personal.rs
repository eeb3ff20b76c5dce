//! The customers' data keys (`orderflow_app::personal`): in memory, and in DynamoDB's
//! `CustomerKeyTable`, each key wrapped before it is stored.
//!
//! The table holds `customerId`, `wrapped` (the data key as the [`KeyWrap`] wrapped it)
//! and `createdAt`; it has no point-in-time recovery, so a deleted key is gone, not
//! restorable for 35 days. [`LocalKeyWrap`] wraps with a local 32-byte key (AES-256-GCM,
//! bound to the customer), for `orderflow-dev up` and tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use orderflow_app::StoreError;
use orderflow_app::personal::{CustomerKeys, DataKey, KeyWrap, open_bytes, seal_bytes};
use orderflow_domain::CustomerId;
use orderflow_domain::personal::Sealed;

use crate::secrets::{KMS, SignedJson};

/// What a wrapped key is bound to besides its customer, so nothing else sealed under
/// the wrapping key unwraps as a data key.
const WRAP_CONTEXT: &str = "orderflow-data-key:";

fn context(customer: &CustomerId) -> Vec<u8> {
    format!("{WRAP_CONTEXT}{customer}").into_bytes()
}

/// Wraps data keys with a local key.
#[derive(Clone)]
pub struct LocalKeyWrap(DataKey);

impl std::fmt::Debug for LocalKeyWrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalKeyWrap(..)")
    }
}

impl LocalKeyWrap {
    /// Wrapping with `key`.
    #[must_use]
    pub const fn new(key: DataKey) -> Self {
        Self(key)
    }
}

fn wrap_error(what: &'static str, error: impl std::fmt::Display) -> StoreError {
    StoreError::new(what, error.to_string())
}

impl KeyWrap for LocalKeyWrap {
    async fn wrap(&self, key: &DataKey, customer: &CustomerId) -> Result<Vec<u8>, StoreError> {
        let sealed = seal_bytes(&self.0, &context(customer), key.expose())
            .map_err(|e| wrap_error("wrap a data key", e))?;
        serde_json::to_vec(&sealed).map_err(|e| wrap_error("wrap a data key", e))
    }

    async fn unwrap(&self, wrapped: &[u8], customer: &CustomerId) -> Result<DataKey, StoreError> {
        let sealed: Sealed =
            serde_json::from_slice(wrapped).map_err(|e| wrap_error("unwrap a data key", e))?;
        let bytes = open_bytes(&self.0, &context(customer), &sealed)
            .map_err(|e| wrap_error("unwrap a data key", e))?;
        DataKey::from_bytes(&bytes).map_err(|e| wrap_error("unwrap a data key", e))
    }
}

/// The encryption context member that binds a wrapped key to its customer.
pub const KMS_CONTEXT: &str = "orderflow:customer";

/// Wraps data keys with a KMS key (`Encrypt`, `Decrypt`): envelope encryption, each
/// wrapped key bound to its customer by the encryption context, so one customer's key
/// never unwraps as another's and every unwrap names the customer in CloudTrail.
#[derive(Debug, Clone)]
pub struct KmsKeyWrap {
    kms: SignedJson,
    key_id: String,
}

impl KmsKeyWrap {
    /// Wrapping with the KMS key `key_id` (an id, ARN or alias) through `kms`.
    #[must_use]
    pub fn new(kms: SignedJson, key_id: impl Into<String>) -> Self {
        Self {
            kms,
            key_id: key_id.into(),
        }
    }

    /// A Lambda function's: KMS as the function's SDK configuration reaches it.
    ///
    /// # Errors
    /// When no region or endpoint is configured.
    pub fn from_lambda_environment(key_id: impl Into<String>) -> Result<Self, crate::secrets::SecretError> {
        Ok(Self::new(SignedJson::from_lambda_environment(&KMS)?, key_id))
    }
}

/// A base64 member of a KMS answer.
fn kms_blob(answer: &[u8], member: &str) -> Result<Vec<u8>, StoreError> {
    let value: serde_json::Value =
        serde_json::from_slice(answer).map_err(|e| wrap_error("read a KMS answer", e))?;
    let text = value
        .get(member)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| wrap_error("read a KMS answer", format!("no {member}")))?;
    STANDARD
        .decode(text)
        .map_err(|e| wrap_error("read a KMS answer", e))
}

impl KeyWrap for KmsKeyWrap {
    async fn wrap(&self, key: &DataKey, customer: &CustomerId) -> Result<Vec<u8>, StoreError> {
        let body = serde_json::json!({
            "KeyId": self.key_id,
            "Plaintext": STANDARD.encode(key.expose()),
            "EncryptionContext": {KMS_CONTEXT: customer.as_str()},
        });
        let answer = self
            .kms
            .call("Encrypt", &body)
            .await
            .map_err(|e| wrap_error("wrap a data key", e))?;
        kms_blob(&answer, "CiphertextBlob")
    }

    async fn unwrap(&self, wrapped: &[u8], customer: &CustomerId) -> Result<DataKey, StoreError> {
        let body = serde_json::json!({
            "KeyId": self.key_id,
            "CiphertextBlob": STANDARD.encode(wrapped),
            "EncryptionContext": {KMS_CONTEXT: customer.as_str()},
        });
        let answer = self
            .kms
            .call("Decrypt", &body)
            .await
            .map_err(|e| wrap_error("unwrap a data key", e))?;
        DataKey::from_bytes(&kms_blob(&answer, "Plaintext")?).map_err(|e| wrap_error("unwrap a data key", e))
    }
}

/// How a deployment wraps its data keys: with the stack's KMS key in AWS, with a local
/// key on a laptop.
#[derive(Debug, Clone)]
pub enum KeyWrapping {
    /// The stack's KMS key.
    Kms(Box<KmsKeyWrap>),
    /// A local 32-byte key.
    Local(LocalKeyWrap),
}

impl KeyWrap for KeyWrapping {
    async fn wrap(&self, key: &DataKey, customer: &CustomerId) -> Result<Vec<u8>, StoreError> {
        match self {
            Self::Kms(kms) => kms.wrap(key, customer).await,
            Self::Local(local) => local.wrap(key, customer).await,
        }
    }

    async fn unwrap(&self, wrapped: &[u8], customer: &CustomerId) -> Result<DataKey, StoreError> {
        match self {
            Self::Kms(kms) => kms.unwrap(wrapped, customer).await,
            Self::Local(local) => local.unwrap(wrapped, customer).await,
        }
    }
}

/// The data keys in memory, for tests and the simulation.
#[derive(Debug, Clone, Default)]
pub struct MemoryCustomerKeys {
    keys: Arc<Mutex<HashMap<CustomerId, DataKey>>>,
}

impl MemoryCustomerKeys {
    /// No keys yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl CustomerKeys for MemoryCustomerKeys {
    async fn key_for(&self, customer: &CustomerId) -> Result<DataKey, StoreError> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = keys.get(customer) {
            return Ok(key.clone());
        }
        let key = DataKey::generate().map_err(|e| wrap_error("make a data key", e))?;
        keys.insert(customer.clone(), key.clone());
        Ok(key)
    }

    async fn key(&self, customer: &CustomerId) -> Result<Option<DataKey>, StoreError> {
        Ok(self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(customer)
            .cloned())
    }

    async fn erase(&self, customer: &CustomerId) -> Result<bool, StoreError> {
        Ok(self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(customer)
            .is_some())
    }
}

/// The data keys in `CustomerKeyTable`, wrapped by `W`.
#[derive(Debug, Clone)]
pub struct DynamoCustomerKeys<W> {
    client: Client,
    table: String,
    wrap: W,
}

impl<W: KeyWrap> DynamoCustomerKeys<W> {
    /// The keys in `table`, wrapped by `wrap`.
    pub fn new(client: Client, table: impl Into<String>, wrap: W) -> Self {
        Self {
            client,
            table: table.into(),
            wrap,
        }
    }

    /// The wrapped key as stored, if any (what an operator's backup would hold).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn stored(&self, customer: &CustomerId) -> Result<Option<Vec<u8>>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("customerId", AttributeValue::S(customer.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new("read a data key", e))?
            .item;
        Ok(item
            .as_ref()
            .and_then(|i| i.get("wrapped"))
            .and_then(|w| w.as_b().ok())
            .map(|b| b.as_ref().to_vec()))
    }
}

impl<W: KeyWrap> CustomerKeys for DynamoCustomerKeys<W> {
    async fn key_for(&self, customer: &CustomerId) -> Result<DataKey, StoreError> {
        if let Some(key) = self.key(customer).await? {
            return Ok(key);
        }
        let key = DataKey::generate().map_err(|e| wrap_error("make a data key", e))?;
        let wrapped = self.wrap.wrap(&key, customer).await?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("customerId", AttributeValue::S(customer.to_string()))
            .item("wrapped", AttributeValue::B(Blob::new(wrapped)))
            .item("createdAt", AttributeValue::S(jiff::Timestamp::now().to_string()))
            .condition_expression("attribute_not_exists(customerId)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(key),
            // Another writer made the customer's key first: theirs is the key.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                self.key(customer)
                    .await?
                    .ok_or_else(|| StoreError::new("make a data key", "the key made first is gone"))
            }
            Err(e) => Err(StoreError::new("make a data key", e)),
        }
    }

    async fn key(&self, customer: &CustomerId) -> Result<Option<DataKey>, StoreError> {
        match self.stored(customer).await? {
            Some(wrapped) => self.wrap.unwrap(&wrapped, customer).await.map(Some),
            None => Ok(None),
        }
    }

    async fn erase(&self, customer: &CustomerId) -> Result<bool, StoreError> {
        let old = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("customerId", AttributeValue::S(customer.to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| StoreError::new("erase a data key", e))?;
        Ok(old.attributes.is_some_and(|a| !a.is_empty()))
    }
}
