//! The stock contract, one suite run against the in-memory ledger and catalog and
//! against the DynamoDB ones on DynamoDB Local: moves commit with their events or not
//! at all, a retried append never moves stock twice, and a lost race moves nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

#[macro_use]
mod common;

use common::{fresh_stream, records};
use orderflow_adapters::MemoryEventStore;
use orderflow_adapters::catalog::{DynamoCatalog, DynamoStockLedger, MemoryCatalog, MemoryStockLedger};
use orderflow_app::{AppendError, Catalog, EventStore, MoveError, Product, StockLedger, StockMove};
use orderflow_domain::inventory::StockLine;
use orderflow_domain::product::ProductDetails;
use orderflow_domain::{Currency, Money, Quantity, Sku};
use orderflow_provision::local;
use uuid::Uuid;

fn memory_stock() -> (MemoryStockLedger, MemoryCatalog) {
    let catalog = MemoryCatalog::new();
    (
        MemoryStockLedger::new(MemoryEventStore::new(), catalog.clone()),
        catalog,
    )
}

async fn dynamo_stock() -> (DynamoStockLedger, DynamoCatalog) {
    let (store, client, _) = common::dynamo_event_store_with_names().await;
    let tables = local::fresh_tables(&client, &["CatalogTable"])
        .await
        .expect("DynamoDB Local is reachable");
    let catalog = DynamoCatalog::new(client, &tables["CatalogTable"]);
    (DynamoStockLedger::new(store, catalog.clone()), catalog)
}

/// A product no other test uses, with `available` units.
async fn stocked(catalog: &impl Catalog, available: u64) -> Sku {
    let sku = Sku::parse(format!("SKU-{}", Uuid::now_v7().simple())).unwrap();
    let product = Product::listed(
        sku.clone(),
        "Widget",
        Money::new(1299, Currency::parse("USD").unwrap()),
        available,
    );
    catalog.put(&product).await.unwrap();
    sku
}

fn line(sku: &Sku, quantity: u64) -> StockLine {
    StockLine {
        sku: sku.clone(),
        quantity: Quantity::parse(quantity).unwrap(),
    }
}

/// (available, reserved, sold) of `sku`.
async fn all_counters(catalog: &impl Catalog, sku: &Sku) -> (u64, u64, u64) {
    let products = catalog.products(std::slice::from_ref(sku)).await.unwrap();
    let product = &products[sku];
    (product.available, product.reserved, product.sold)
}

/// (available, reserved) of `sku`.
async fn counters(catalog: &impl Catalog, sku: &Sku) -> (u64, u64) {
    let products = catalog.products(std::slice::from_ref(sku)).await.unwrap();
    let product = &products[sku];
    (product.available, product.reserved)
}

mod suite {
    use super::*;

    pub(crate) async fn moves_commit_with_their_events_once(
        (ledger, catalog): (impl StockLedger, impl Catalog),
    ) {
        let sku = stocked(&catalog, 5).await;
        let stream = fresh_stream();
        let reserve = records(&stream, 1, 1);
        let moves = [StockMove::Reserve(line(&sku, 2))];
        ledger
            .append_with_moves(&stream, 0, &reserve, &moves)
            .await
            .unwrap();
        assert_eq!(counters(&catalog, &sku).await, (3, 2));
        // The same append again (a retry after a lost response) moves nothing more.
        ledger
            .append_with_moves(&stream, 0, &reserve, &moves)
            .await
            .unwrap();
        assert_eq!(counters(&catalog, &sku).await, (3, 2));
        assert_eq!(ledger.store().load(&stream, 0).await.unwrap().len(), 1);
        let release = records(&stream, 2, 1);
        ledger
            .append_with_moves(&stream, 1, &release, &[StockMove::Release(line(&sku, 2))])
            .await
            .unwrap();
        assert_eq!(counters(&catalog, &sku).await, (5, 0));
    }

    pub(crate) async fn a_refused_move_writes_nothing((ledger, catalog): (impl StockLedger, impl Catalog)) {
        let (plenty, scarce) = (stocked(&catalog, 10).await, stocked(&catalog, 1).await);
        let stream = fresh_stream();
        let events = records(&stream, 1, 1);
        let too_many = [
            StockMove::Reserve(line(&plenty, 4)),
            StockMove::Reserve(line(&scarce, 2)),
        ];
        let refused = ledger.append_with_moves(&stream, 0, &events, &too_many).await;
        assert!(
            matches!(
                refused,
                Err(MoveError::Refused {
                    index: 1,
                    unknown: false
                })
            ),
            "{refused:?}"
        );
        let unknown = Sku::parse("SKU-NOT-LISTED").unwrap();
        let refused = ledger
            .append_with_moves(&stream, 0, &events, &[StockMove::Reserve(line(&unknown, 1))])
            .await;
        assert!(
            matches!(
                refused,
                Err(MoveError::Refused {
                    index: 0,
                    unknown: true
                })
            ),
            "{refused:?}"
        );
        // Releasing more than is reserved is refused too: stock is never conjured.
        let refused = ledger
            .append_with_moves(&stream, 0, &events, &[StockMove::Release(line(&plenty, 1))])
            .await;
        assert!(matches!(
            refused,
            Err(MoveError::Refused {
                index: 0,
                unknown: false
            })
        ));
        assert_eq!(counters(&catalog, &plenty).await, (10, 0));
        assert_eq!(counters(&catalog, &scarce).await, (1, 0));
        assert!(ledger.store().load(&stream, 0).await.unwrap().is_empty());
    }

    pub(crate) async fn sales_receipts_write_offs_and_listings_move_exactly_their_units(
        (ledger, catalog): (impl StockLedger, impl Catalog),
    ) {
        let sku = stocked(&catalog, 10).await;
        let stream = fresh_stream();
        let mut version = 0;
        let mut step = |moves: Vec<StockMove>| {
            version += 1;
            let events = records(&stream, version, 1);
            let ledger = &ledger;
            let stream = &stream;
            let expected = version - 1;
            async move { ledger.append_with_moves(stream, expected, &events, &moves).await }
        };
        step(vec![StockMove::Reserve(line(&sku, 4))]).await.unwrap();
        step(vec![StockMove::Sell(line(&sku, 3))]).await.unwrap();
        assert_eq!(all_counters(&catalog, &sku).await, (6, 1, 3));
        step(vec![StockMove::Receive {
            sku: sku.clone(),
            quantity: 7,
        }])
        .await
        .unwrap();
        step(vec![StockMove::WriteOff {
            sku: sku.clone(),
            quantity: 13,
        }])
        .await
        .unwrap();
        assert_eq!(all_counters(&catalog, &sku).await, (0, 1, 3));
        // Nothing is left to write off or sell beyond what is there; nothing moves.
        let short = step(vec![StockMove::WriteOff {
            sku: sku.clone(),
            quantity: 1,
        }])
        .await;
        assert!(
            matches!(
                short,
                Err(MoveError::Refused {
                    index: 0,
                    unknown: false
                })
            ),
            "{short:?}"
        );
        let oversold = ledger
            .append_with_moves(
                &stream,
                4,
                &records(&stream, 5, 1),
                &[StockMove::Sell(line(&sku, 2))],
            )
            .await;
        assert!(
            matches!(
                oversold,
                Err(MoveError::Refused {
                    index: 0,
                    unknown: false
                })
            ),
            "{oversold:?}"
        );
        assert_eq!(all_counters(&catalog, &sku).await, (0, 1, 3));
        assert_eq!(ledger.store().load(&stream, 0).await.unwrap().len(), 4);

        // A receipt for a product that does not exist is refused as unknown.
        let missing = Sku::parse(format!("SKU-{}", Uuid::now_v7().simple())).unwrap();
        let other = fresh_stream();
        let refused = ledger
            .append_with_moves(
                &other,
                0,
                &records(&other, 1, 1),
                &[StockMove::Receive {
                    sku: missing.clone(),
                    quantity: 1,
                }],
            )
            .await;
        assert!(
            matches!(
                refused,
                Err(MoveError::Refused {
                    index: 0,
                    unknown: true
                })
            ),
            "{refused:?}"
        );
        // A listing creates it with its first stock; describing it again keeps the counters.
        let details = |amount, description: Option<&str>| ProductDetails {
            name: "Kettle".into(),
            price: Money::new(amount, Currency::parse("EUR").unwrap()),
            description: description.map(str::to_owned),
        };
        ledger
            .append_with_moves(
                &other,
                0,
                &records(&other, 1, 1),
                &[StockMove::Describe {
                    sku: missing.clone(),
                    details: details(2500, Some("Steel")),
                    received: 4,
                }],
            )
            .await
            .unwrap();
        ledger
            .append_with_moves(
                &other,
                1,
                &records(&other, 2, 1),
                &[StockMove::Describe {
                    sku: missing.clone(),
                    details: details(2700, None),
                    received: 0,
                }],
            )
            .await
            .unwrap();
        let products = catalog.products(std::slice::from_ref(&missing)).await.unwrap();
        let product = &products[&missing];
        assert_eq!(
            product.details(),
            details(2700, None),
            "the description is gone too"
        );
        assert_eq!((product.available, product.reserved, product.sold), (4, 0, 0));
    }

    pub(crate) async fn pages_list_every_product_once((_, catalog): (impl StockLedger, impl Catalog)) {
        let mut made = Vec::new();
        for _ in 0..5 {
            made.push(stocked(&catalog, 1).await);
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = catalog.page(2, after.as_ref()).await.unwrap();
            assert!(page.len() <= 2);
            seen.extend(page.into_iter().map(|p| p.sku));
            match next {
                Some(sku) => after = Some(sku),
                None => break,
            }
        }
        seen.sort();
        made.sort();
        assert_eq!(seen, made);
    }

    pub(crate) async fn a_lost_race_moves_nothing((ledger, catalog): (impl StockLedger, impl Catalog)) {
        let sku = stocked(&catalog, 5).await;
        let stream = fresh_stream();
        ledger
            .store()
            .append(&stream, 0, &records(&stream, 1, 1))
            .await
            .unwrap();
        let late = records(&stream, 1, 1);
        let lost = ledger
            .append_with_moves(&stream, 0, &late, &[StockMove::Reserve(line(&sku, 1))])
            .await;
        assert!(
            matches!(lost, Err(MoveError::Append(AppendError::Conflict { .. }))),
            "{lost:?}"
        );
        assert_eq!(counters(&catalog, &sku).await, (5, 0));
        assert_eq!(ledger.store().load(&stream, 0).await.unwrap().len(), 1);
    }
}

against_both! {
    memory: super::memory_stock(),
    dynamodb: super::dynamo_stock().await,
    tests: [
        moves_commit_with_their_events_once,
        a_refused_move_writes_nothing,
        a_lost_race_moves_nothing,
        sales_receipts_write_offs_and_listings_move_exactly_their_units,
        pages_list_every_product_once,
    ]
}
