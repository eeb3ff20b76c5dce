//! The customers' data keys: one contract, run against the in-memory store and the
//! DynamoDB one (wrapped by a local key) on DynamoDB Local.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use orderflow_adapters::personal::{DynamoCustomerKeys, LocalKeyWrap, MemoryCustomerKeys};
use orderflow_app::personal::{CustomerKeys, DataKey, KeyWrap, open, seal};
use orderflow_domain::CustomerId;
use orderflow_provision::local;

fn customer() -> CustomerId {
    CustomerId::parse(format!("c-{}", uuid::Uuid::now_v7().simple())).unwrap()
}

/// A key is made once however many ask at once, seals and opens its customer's data,
/// and once erased is gone: what it sealed never opens again.
async fn a_key_is_made_once_and_erasing_it_shreds_what_it_sealed(keys: impl CustomerKeys) {
    let alice = customer();
    assert!(keys.key(&alice).await.unwrap().is_none());
    let made = futures::future::join_all((0..8).map(|_| keys.key_for(&alice))).await;
    let first = made[0].as_ref().unwrap().clone();
    assert!(made.iter().all(|k| k.as_ref().unwrap() == &first), "one key");
    assert_eq!(keys.key(&alice).await.unwrap(), Some(first.clone()));
    let sealed = seal(&first, &alice, b"1 Main St").unwrap();

    let bob = customer();
    let bobs = keys.key_for(&bob).await.unwrap();
    assert_ne!(bobs, first, "a key per customer");

    assert!(keys.erase(&alice).await.unwrap());
    assert!(keys.key(&alice).await.unwrap().is_none());
    assert!(!keys.erase(&alice).await.unwrap(), "erased once");
    // Anything new gets a new key; the old data stays noise.
    let again = keys.key_for(&alice).await.unwrap();
    assert!(open(&again, &alice, &sealed).is_err());
    assert_eq!(
        keys.key(&bob).await.unwrap(),
        Some(bobs),
        "the others keep theirs"
    );
}

#[tokio::test]
async fn memory_contract() {
    a_key_is_made_once_and_erasing_it_shreds_what_it_sealed(MemoryCustomerKeys::new()).await;
}

async fn dynamo_keys(wrap: LocalKeyWrap) -> DynamoCustomerKeys<LocalKeyWrap> {
    let client = local::dynamodb_client().await.unwrap();
    let tables = local::fresh_tables(&client, &["CustomerKeyTable"])
        .await
        .expect("DynamoDB Local is reachable");
    DynamoCustomerKeys::new(client, &tables["CustomerKeyTable"], wrap)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_contract() {
    let wrap = LocalKeyWrap::new(DataKey::generate().unwrap());
    a_key_is_made_once_and_erasing_it_shreds_what_it_sealed(dynamo_keys(wrap).await).await;
}

/// The table holds each key wrapped: not its bytes, and not a key that unwraps for
/// another customer or under another wrapping key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_holds_keys_only_wrapped() {
    let wrap = LocalKeyWrap::new(DataKey::generate().unwrap());
    let keys = dynamo_keys(wrap.clone()).await;
    let alice = customer();
    let key = keys.key_for(&alice).await.unwrap();
    let stored = keys.stored(&alice).await.unwrap().unwrap();
    assert!(
        !stored.windows(8).any(|w| key.expose().windows(8).any(|k| k == w)),
        "the key's bytes are not in the item"
    );
    assert_eq!(wrap.unwrap(&stored, &alice).await.unwrap(), key);
    assert!(wrap.unwrap(&stored, &customer()).await.is_err());
    let other = LocalKeyWrap::new(DataKey::generate().unwrap());
    assert!(other.unwrap(&stored, &alice).await.is_err());
}

/// The data keys wrapped by KMS (moto's, over HTTP): a key wraps and unwraps for its
/// customer only, the table never holds its bytes, and erasing it works as with the
/// local wrapping key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_wraps_each_key_bound_to_its_customer() {
    use orderflow_adapters::config::{Roots, https_connector};
    use orderflow_adapters::personal::{KeyWrapping, KmsKeyWrap};
    use orderflow_adapters::secrets::{KMS, SignedJson};
    let kms = SignedJson::from_sdk_config(&KMS, &local::sdk_config().await, https_connector(Roots::System))
        .unwrap();
    let created = kms
        .call(
            "CreateKey",
            &serde_json::json!({"Description": "orderflow test", "KeyUsage": "ENCRYPT_DECRYPT"}),
        )
        .await
        .expect("moto's KMS is reachable");
    let created: serde_json::Value = serde_json::from_slice(&created).unwrap();
    let key_arn = created["KeyMetadata"]["Arn"].as_str().unwrap().to_owned();
    let wrap = KmsKeyWrap::new(kms, &key_arn);

    let alice = customer();
    let key = DataKey::generate().unwrap();
    let wrapped = wrap.wrap(&key, &alice).await.unwrap();
    assert!(
        !wrapped
            .windows(8)
            .any(|w| key.expose().windows(8).any(|k| k == w))
    );
    assert_eq!(wrap.unwrap(&wrapped, &alice).await.unwrap(), key);
    assert!(
        wrap.unwrap(&wrapped, &customer()).await.is_err(),
        "the encryption context binds it to its customer"
    );

    let client = local::dynamodb_client().await.unwrap();
    let tables = local::fresh_tables(&client, &["CustomerKeyTable"]).await.unwrap();
    let keys = DynamoCustomerKeys::new(
        client,
        &tables["CustomerKeyTable"],
        KeyWrapping::Kms(Box::new(wrap)),
    );
    a_key_is_made_once_and_erasing_it_shreds_what_it_sealed(keys).await;
}
