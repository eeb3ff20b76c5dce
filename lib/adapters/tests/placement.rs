//! The place-order use case (`orderflow_app::placement`) over the in-memory adapters:
//! a new order is priced from the catalog, its token kept and `OrderPlaced` appended; a
//! run that placed before answers with the same order and appends nothing; a key reused
//! with other items, an unknown SKU or an invalid order places nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use orderflow_adapters::MemoryEventStore;
use orderflow_adapters::catalog::{MemoryCatalog, Product};
use orderflow_adapters::payment::MemoryVault;
use orderflow_app::placement::{NewOrder, PlaceError, Placement, order_id_for};
use orderflow_app::{
    Catalog, CommandError, CommandService, PaymentVault, Repository, SystemClock, scoped_key,
};
use orderflow_domain::order::{OrderError, PaymentToken};
use orderflow_domain::{Currency, CustomerId, IdempotencyKey, Money, Quantity, Sku};
use orderflow_testkit::metadata;

struct Fixture {
    placement: Placement<MemoryEventStore, SystemClock, MemoryCatalog, MemoryVault>,
    store: MemoryEventStore,
    vault: MemoryVault,
}

async fn fixture() -> Fixture {
    let catalog = MemoryCatalog::new();
    catalog
        .put(&Product::listed(
            Sku::parse("SKU-1").unwrap(),
            "Product",
            Money::new(1299, Currency::parse("USD").unwrap()),
            10,
        ))
        .await
        .unwrap();
    let store = MemoryEventStore::new();
    let vault = MemoryVault::new();
    let commands = CommandService::new(Repository::new(store.clone(), 0), SystemClock, 5);
    Fixture {
        placement: Placement::new(commands, catalog, vault.clone()),
        store,
        vault,
    }
}

fn new_order(key: &str, sku: &str, quantity: u64) -> NewOrder {
    let customer = CustomerId::parse("c-1").unwrap();
    let key = scoped_key(
        &format!("customer:{customer}"),
        IdempotencyKey::parse(key).unwrap().as_str(),
    );
    NewOrder {
        order_id: order_id_for(&key),
        address: orderflow_testkit::sealed_address(&customer),
        customer_id: customer,
        items: vec![(Sku::parse(sku).unwrap(), Quantity::parse(quantity).unwrap())],
        token: PaymentToken::parse("tok_visa").unwrap(),
    }
}

#[tokio::test]
async fn a_new_order_is_priced_kept_and_appended_once() {
    let f = fixture().await;
    let order = new_order("k-1", "SKU-1", 2);
    let placed = f.placement.place(order.clone(), &metadata()).await.unwrap();
    assert_eq!(placed.order.order_id, order.order_id);
    assert_eq!(placed.order.total.amount, 2598);
    assert_eq!(placed.events.len(), 1);
    assert!(f.vault.token(order.order_id).await.unwrap().is_some());

    // The same placement again (a crash or a lost answer after the append): the same
    // order, nothing appended.
    let again = f.placement.place(order.clone(), &metadata()).await.unwrap();
    assert_eq!(again.order.order_id, order.order_id);
    assert_eq!(again.order.total, placed.order.total);
    assert!(again.events.is_empty());
    assert_eq!(f.store.committed_since(0).unwrap().len(), 1);
}

#[tokio::test]
async fn a_reused_key_an_unknown_sku_or_an_invalid_order_places_nothing() {
    let f = fixture().await;
    f.placement
        .place(new_order("k-1", "SKU-1", 2), &metadata())
        .await
        .unwrap();
    let reused = f.placement.place(new_order("k-1", "SKU-1", 3), &metadata()).await;
    assert!(matches!(reused, Err(PlaceError::KeyReused)), "{reused:?}");

    let unknown = new_order("k-2", "SKU-9", 1);
    let refused = f.placement.place(unknown.clone(), &metadata()).await;
    assert!(
        matches!(refused, Err(PlaceError::UnknownSku(ref sku)) if sku.as_str() == "SKU-9"),
        "{refused:?}"
    );
    assert!(f.vault.token(unknown.order_id).await.unwrap().is_none());

    let mut empty = new_order("k-3", "SKU-1", 1);
    empty.items.clear();
    let invalid = f.placement.place(empty.clone(), &metadata()).await;
    assert!(
        matches!(
            invalid,
            Err(PlaceError::Command(CommandError::Domain(OrderError::NoLines)))
        ),
        "{invalid:?}"
    );
    assert!(
        f.vault.token(empty.order_id).await.unwrap().is_none(),
        "an invalid order keeps no token"
    );
    assert_eq!(f.store.committed_since(0).unwrap().len(), 1);
}

/// A retry under the same key with another card: refused while the vault holds the
/// first card (it cannot be swapped under an order already placed); once payment has
/// settled and forgotten it, answered with the order, and the retry's card not kept.
#[tokio::test]
async fn a_retry_with_another_card_never_replaces_the_card_held() {
    let f = fixture().await;
    let order = new_order("k-1", "SKU-1", 2);
    f.placement.place(order.clone(), &metadata()).await.unwrap();
    let mut other = order.clone();
    other.token = PaymentToken::parse("tok_mastercard").unwrap();
    let swapped = f.placement.place(other.clone(), &metadata()).await;
    assert!(matches!(swapped, Err(PlaceError::KeyReused)), "{swapped:?}");
    assert_eq!(
        f.vault.token(order.order_id).await.unwrap(),
        Some(PaymentToken::parse("tok_visa").unwrap())
    );

    f.vault.forget(order.order_id).await.unwrap();
    let again = f.placement.place(other, &metadata()).await.unwrap();
    assert_eq!(again.order.order_id, order.order_id);
    assert!(again.events.is_empty());
    assert!(
        f.vault.token(order.order_id).await.unwrap().is_none(),
        "the retry's card is not left for payment to use"
    );
    assert_eq!(f.store.committed_since(0).unwrap().len(), 1);
}
