//! Inventory over the in-memory event store and stock ledger: any delivery of an
//! order's placement and cancellation (duplicated, reordered, the cancellation before
//! the placement) conserves stock, reserves at most once and ends with nothing held
//! for a cancelled order. In milliseconds, so it runs hundreds of cases.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use inventory::InventoryService;
use orderflow_adapters::MemoryEventStore;
use orderflow_adapters::catalog::{MemoryCatalog, MemoryStockLedger, Product};
use orderflow_app::{Catalog, Repository, SystemClock};
use orderflow_domain::{Currency, Money, OrderId, Sku};
use orderflow_lambda::Consumer;
use orderflow_testkit::{at, metadata, placed_order};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_delivery_conserves_stock_and_a_cancelled_order_holds_none(
        stock in 0u64..5,
        quantity in 1u64..4,
        cancelled in any::<bool>(),
        picks in prop::collection::vec(0usize..8, 0..12),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let sku = Sku::parse("SKU-1").unwrap();
            let catalog = MemoryCatalog::new();
            let usd = Currency::parse("USD").unwrap();
            catalog.put(&Product::listed(sku.clone(), "Widget", Money::new(500, usd), stock)).await.unwrap();
            let store = MemoryEventStore::new();
            let ledger = MemoryStockLedger::new(store.clone(), catalog.clone());
            let service = InventoryService::new(Repository::new(store.clone(), 0), SystemClock, ledger);

            let order_id = OrderId::from_uuid(uuid::Uuid::now_v7());
            let history = placed_order(order_id, quantity, 500, at(0), cancelled);
            // Random copies in a random order, then every event once (the queue's
            // redeliveries end with each message delivered).
            let deliveries = picks.iter().map(|i| &history[i % history.len()]).chain(history.iter());
            for envelope in deliveries {
                let outcome = service.on(envelope.clone(), metadata()).await;
                prop_assert!(outcome.is_ok(), "{:?}", outcome.err());
            }

            let product = catalog.products(std::slice::from_ref(&sku)).await.unwrap()[&sku].clone();
            prop_assert_eq!(product.available + product.reserved, stock, "stock is conserved");
            let reserved = !cancelled && quantity <= stock;
            prop_assert_eq!(product.reserved, if reserved { quantity } else { 0 });
            let inventory: Vec<String> = store
                .committed_since(0)
                .unwrap()
                .into_iter()
                .filter(|r| r.stream.aggregate_type == "inventory")
                .map(|r| r.event_type)
                .collect();
            prop_assert!(
                inventory.iter().filter(|t| *t == "StockReserved").count() <= 1,
                "reserved once at most: {:?}", inventory
            );
            if reserved {
                prop_assert_eq!(&inventory, &["StockReserved"]);
            }
            Ok(())
        })?;
    }
}
