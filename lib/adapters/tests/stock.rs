//! The stock contract, one suite run against the in-memory ledger and catalog and
//! against the DynamoDB ones on DynamoDB Local: moves commit with their events or not
//! at all, a retried append never moves stock twice, and a lost race moves nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

#[macro_use]
mod common;

use common::{fresh_stream, records};
use orderflow_adapters::MemoryEventStore;
use orderflow_adapters::catalog::{DynamoCatalog, DynamoStockLedger, MemoryCatalog, MemoryStockLedger};
use orderflow_app::{AppendError, Catalog, EventStore, MoveError, Once, Product, StockLedger, StockMove};
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
    let tables = local::fresh_tables(&client, &["CatalogTable", "IdempotencyTable"])
        .await
        .expect("DynamoDB Local is reachable");
    let catalog = DynamoCatalog::new(client, &tables["CatalogTable"]);
    let ledger = DynamoStockLedger::new(store, catalog.clone()).with_claims(&tables["IdempotencyTable"]);
    (ledger, catalog)
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

/// One event on `stream` after `version`, with `stock_move`.
async fn next(
    ledger: &impl StockLedger,
    stream: &orderflow_app::StreamId,
    version: u64,
    stock_move: StockMove,
) -> Result<(), MoveError> {
    ledger
        .append_with_moves(
            stream,
            version,
            &records(stream, version + 1, 1),
            &[stock_move],
            None,
        )
        .await
}

/// `result` is the first move's refusal for want of stock.
fn short_of_stock(result: &Result<(), MoveError>) {
    assert!(
        matches!(
            result,
            Err(MoveError::Refused {
                index: 0,
                unknown: false
            })
        ),
        "{result:?}"
    );
}

mod suite {
    use super::*;

    /// A command claimed with its moves lands once: run again at the stream's next
    /// version (a retry that re-decided after the first run committed, its answer lost
    /// or its lease taken over), it moves nothing and appends nothing; another command
    /// lands; a refused move does not spend its claim.
    pub(crate) async fn a_command_claimed_with_its_moves_lands_once(
        (ledger, catalog): (impl StockLedger, impl Catalog),
    ) {
        let sku = stocked(&catalog, 10).await;
        let stream = fresh_stream();
        let once = |key: &str| Once {
            key: format!("{key}-{}", Uuid::now_v7()),
            expires_at: orderflow_domain::Timestamp::parse("2099-01-01T00:00:00Z").unwrap(),
        };
        let receive = |quantity| StockMove::Receive {
            sku: sku.clone(),
            quantity,
        };
        let first = once("receive-5");
        ledger
            .append_with_moves(&stream, 0, &records(&stream, 1, 1), &[receive(5)], Some(&first))
            .await
            .unwrap();
        for retry in 0..2 {
            let again = ledger
                .append_with_moves(&stream, 1, &records(&stream, 2, 1), &[receive(5)], Some(&first))
                .await;
            assert!(
                matches!(again, Err(MoveError::AlreadyApplied)),
                "retry {retry}: {again:?}"
            );
        }
        assert_eq!(counters(&catalog, &sku).await, (15, 0), "received once");
        assert_eq!(ledger.store().load(&stream, 0).await.unwrap().len(), 1);

        ledger
            .append_with_moves(
                &stream,
                1,
                &records(&stream, 2, 1),
                &[receive(2)],
                Some(&once("receive-2")),
            )
            .await
            .unwrap();
        assert_eq!(counters(&catalog, &sku).await, (17, 0));

        let write_off = |quantity| StockMove::WriteOff {
            sku: sku.clone(),
            quantity,
        };
        let refused_then_smaller = once("write-off");
        short_of_stock(
            &ledger
                .append_with_moves(
                    &stream,
                    2,
                    &records(&stream, 3, 1),
                    &[write_off(100)],
                    Some(&refused_then_smaller),
                )
                .await,
        );
        ledger
            .append_with_moves(
                &stream,
                2,
                &records(&stream, 3, 1),
                &[write_off(7)],
                Some(&refused_then_smaller),
            )
            .await
            .unwrap();
        assert_eq!(counters(&catalog, &sku).await, (10, 0));
        assert_eq!(ledger.store().load(&stream, 0).await.unwrap().len(), 3);
    }

    pub(crate) async fn moves_commit_with_their_events_once(
        (ledger, catalog): (impl StockLedger, impl Catalog),
    ) {
        let sku = stocked(&catalog, 5).await;
        let stream = fresh_stream();
        let reserve = records(&stream, 1, 1);
        let moves = [StockMove::Reserve(line(&sku, 2))];
        ledger
            .append_with_moves(&stream, 0, &reserve, &moves, None)
            .await
            .unwrap();
        assert_eq!(counters(&catalog, &sku).await, (3, 2));
        // The same append again (a retry after a lost response) moves nothing more.
        ledger
            .append_with_moves(&stream, 0, &reserve, &moves, None)
            .await
            .unwrap();
        assert_eq!(counters(&catalog, &sku).await, (3, 2));
        assert_eq!(ledger.store().load(&stream, 0).await.unwrap().len(), 1);
        let release = records(&stream, 2, 1);
        ledger
            .append_with_moves(&stream, 1, &release, &[StockMove::Release(line(&sku, 2))], None)
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
        let refused = ledger
            .append_with_moves(&stream, 0, &events, &too_many, None)
            .await;
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
            .append_with_moves(
                &stream,
                0,
                &events,
                &[StockMove::Reserve(line(&unknown, 1))],
                None,
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
        // Releasing more than is reserved is refused too: stock is never conjured.
        let refused = ledger
            .append_with_moves(&stream, 0, &events, &[StockMove::Release(line(&plenty, 1))], None)
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
            async move {
                ledger
                    .append_with_moves(stream, expected, &events, &moves, None)
                    .await
            }
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
                None,
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
                None,
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
                None,
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
                None,
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

    /// Reserves one unit of `sku` on each of `orders` fresh streams at once; how many
    /// were refused for want of stock.
    pub(crate) async fn reserve_one_each(ledger: &impl StockLedger, sku: &Sku, orders: usize) -> usize {
        let attempts = (0..orders).map(|_| async {
            let stream = fresh_stream();
            let events = records(&stream, 1, 1);
            loop {
                match ledger
                    .append_with_moves(&stream, 0, &events, &[StockMove::Reserve(line(sku, 1))], None)
                    .await
                {
                    Ok(()) => return false,
                    Err(MoveError::Refused { unknown: false, .. }) => return true,
                    // Stock kept moving under every plan: inventory re-decides; so does this.
                    Err(MoveError::Append(AppendError::Conflict { .. })) => {}
                    Err(other) => panic!("{other:?}"),
                }
            }
        });
        futures::future::join_all(attempts)
            .await
            .into_iter()
            .filter(|refused| *refused)
            .count()
    }

    pub(crate) async fn a_product_spread_over_shards_reads_and_moves_as_one(
        (ledger, catalog): (impl StockLedger, impl Catalog),
    ) {
        let sku = stocked(&catalog, 8).await;
        let spread = catalog.reshard(&sku, 4).await.unwrap();
        assert_eq!(
            (spread.shards, spread.available, spread.reserved, spread.sold),
            (4, 8, 0, 0)
        );
        // More than any one shard holds (two each), less than all of them: taken from several.
        let (big, short, ops) = (fresh_stream(), fresh_stream(), fresh_stream());
        let units = |n| line(&sku, n);
        next(&ledger, &big, 0, StockMove::Reserve(units(7)))
            .await
            .unwrap();
        assert_eq!(all_counters(&catalog, &sku).await, (1, 7, 0));
        short_of_stock(&next(&ledger, &short, 0, StockMove::Reserve(units(2))).await);
        // Five of the seven go out, two come back, wherever they were reserved.
        next(&ledger, &big, 1, StockMove::Sell(units(5))).await.unwrap();
        next(&ledger, &big, 2, StockMove::Release(units(2)))
            .await
            .unwrap();
        assert_eq!(all_counters(&catalog, &sku).await, (3, 0, 5));
        // Receipts and write-offs land on shards too.
        let (receive, write_off) = (
            StockMove::Receive {
                sku: sku.clone(),
                quantity: 10,
            },
            StockMove::WriteOff {
                sku: sku.clone(),
                quantity: 12,
            },
        );
        next(&ledger, &ops, 0, receive).await.unwrap();
        next(&ledger, &ops, 1, write_off).await.unwrap();
        assert_eq!(all_counters(&catalog, &sku).await, (1, 0, 5));
        // Back onto one item: the same counters.
        let one = catalog.reshard(&sku, 1).await.unwrap();
        assert_eq!((one.shards, one.available, one.reserved, one.sold), (1, 1, 0, 5));
        assert_eq!(
            catalog
                .all()
                .await
                .unwrap()
                .iter()
                .filter(|p| p.sku == sku)
                .count(),
            1
        );
    }

    pub(crate) async fn concurrent_reservations_on_shards_take_exactly_the_stock(
        (ledger, catalog): (impl StockLedger, impl Catalog),
    ) {
        let sku = stocked(&catalog, 30).await;
        catalog.reshard(&sku, 4).await.unwrap();
        // Reserved stock is spread too, and resharding again keeps every total.
        assert_eq!(reserve_one_each(&ledger, &sku, 10).await, 0);
        catalog.reshard(&sku, 3).await.unwrap();
        assert_eq!(all_counters(&catalog, &sku).await, (20, 10, 0));
        let refused = reserve_one_each(&ledger, &sku, 26).await;
        assert_eq!(refused, 6, "26 orders for 20 units");
        assert_eq!(all_counters(&catalog, &sku).await, (0, 30, 0));
    }

    pub(crate) async fn a_reshard_names_what_it_cannot_do((_, catalog): (impl StockLedger, impl Catalog)) {
        use orderflow_app::stock::ReshardError;
        let sku = stocked(&catalog, 3).await;
        assert!(matches!(
            catalog.reshard(&sku, 0).await,
            Err(ReshardError::OutOfRange { shards: 0, .. })
        ));
        assert!(matches!(
            catalog.reshard(&sku, 33).await,
            Err(ReshardError::OutOfRange { shards: 33, max: 32 })
        ));
        let unknown = Sku::parse("SKU-NOT-LISTED").unwrap();
        assert!(matches!(
            catalog.reshard(&unknown, 2).await,
            Err(ReshardError::Unknown)
        ));
        assert_eq!(all_counters(&catalog, &sku).await, (3, 0, 0));
    }

    pub(crate) async fn pages_list_every_sharded_product_once(
        (_, catalog): (impl StockLedger, impl Catalog),
    ) {
        let mut made = Vec::new();
        for n in 0..4 {
            let sku = stocked(&catalog, 9).await;
            catalog.reshard(&sku, 2 + n).await.unwrap();
            made.push(sku);
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = catalog.page(2, after.as_ref()).await.unwrap();
            assert!(page.len() <= 2);
            for product in page {
                if made.contains(&product.sku) {
                    assert_eq!(product.available, 9, "{product:?}");
                }
                seen.push(product.sku);
            }
            match next {
                Some(sku) => after = Some(sku),
                None => break,
            }
        }
        seen.sort();
        let before = seen.len();
        seen.dedup();
        assert_eq!(seen.len(), before, "a product listed twice");
        assert!(made.iter().all(|sku| seen.contains(sku)));
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
            .append_with_moves(&stream, 0, &late, &[StockMove::Reserve(line(&sku, 1))], None)
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
        a_command_claimed_with_its_moves_lands_once,
        moves_commit_with_their_events_once,
        a_refused_move_writes_nothing,
        a_lost_race_moves_nothing,
        sales_receipts_write_offs_and_listings_move_exactly_their_units,
        pages_list_every_product_once,
        a_product_spread_over_shards_reads_and_moves_as_one,
        concurrent_reservations_on_shards_take_exactly_the_stock,
        a_reshard_names_what_it_cannot_do,
        pages_list_every_sharded_product_once,
    ]
}

/// How the DynamoDB catalog lays a product's stock out: even shards, moves spread over
/// them, a layout that changed under a ledger planned again, and what the checker
/// names when the items are broken by hand.
mod layout {
    use aws_sdk_dynamodb::types::AttributeValue;
    use orderflow_adapters::catalog::Counters;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shards_share_the_stock_and_the_moves() {
        let (ledger, catalog) = dynamo_stock().await;
        let sku = stocked(&catalog, 10).await;
        catalog.reshard(&sku, 4).await.unwrap();
        let layout = catalog.layout(&sku).await.unwrap().unwrap();
        let available: Vec<u64> = layout.items.iter().map(|c| c.unwrap().available).collect();
        assert_eq!(available, [3, 3, 2, 2]);
        assert_eq!(suite::reserve_one_each(&ledger, &sku, 8).await, 0);
        let layout = catalog.layout(&sku).await.unwrap().unwrap();
        let holding = layout.items.iter().filter(|c| c.unwrap().reserved > 0).count();
        assert!(
            holding > 1,
            "eight orders' reservations all on one shard: {layout:?}"
        );
        assert_eq!(
            layout.total(),
            Counters {
                available: 2,
                reserved: 8,
                sold: 0
            }
        );
        assert!(catalog.layout_findings().await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_ledger_that_knew_another_layout_plans_again() {
        let (ledger, catalog) = dynamo_stock().await;
        let sku = stocked(&catalog, 12).await;
        // The ledger has only seen the product on one item.
        assert_eq!(suite::reserve_one_each(&ledger, &sku, 1).await, 0);
        catalog.reshard(&sku, 4).await.unwrap();
        assert_eq!(suite::reserve_one_each(&ledger, &sku, 3).await, 0);
        // It now knows four shards; two of them go away.
        catalog.reshard(&sku, 2).await.unwrap();
        assert_eq!(suite::reserve_one_each(&ledger, &sku, 4).await, 0);
        // And a ledger that started after the reshard.
        let fresh = DynamoStockLedger::new(ledger.store().clone(), catalog.clone());
        assert_eq!(suite::reserve_one_each(&fresh, &sku, 4).await, 0);
        assert_eq!(all_counters(&catalog, &sku).await, (0, 12, 0));
        assert_eq!(suite::reserve_one_each(&fresh, &sku, 1).await, 1);
        assert!(catalog.layout_findings().await.unwrap().is_empty());
    }

    /// `count` products no other test uses, `available` units each.
    async fn products(catalog: &DynamoCatalog, count: usize, available: u64) -> Vec<Sku> {
        futures::future::join_all((0..count).map(|_| stocked(catalog, available))).await
    }

    /// One event on `stream` after `version` with one move per line: a transaction
    /// with the most lines an order may have.
    async fn all_lines(
        ledger: &DynamoStockLedger,
        stream: &orderflow_app::StreamId,
        version: u64,
        moves: Vec<StockMove>,
    ) {
        assert_eq!(moves.len(), orderflow_domain::order::MAX_LINES);
        // A conflict is the ledger's "decide again" (products it knew on fewer items
        // were resharded): inventory loads and appends again, and so does this.
        for _ in 0..5 {
            match ledger
                .append_with_moves(stream, version, &records(stream, version + 1, 1), &moves, None)
                .await
            {
                Ok(()) => return,
                Err(MoveError::Append(AppendError::Conflict { .. })) => {}
                Err(other) => panic!("{other:?}"),
            }
        }
        panic!("no append in five decisions");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_ninety_nine_line_reservation_with_a_sharded_sku_fits_one_transaction() {
        let (ledger, catalog) = dynamo_stock().await;
        let mut skus = products(&catalog, 98, 1).await;
        // One SKU spread over eight shards, one unit on each: its line of eight would
        // take eight actions, and the order 107.
        let hot = stocked(&catalog, 8).await;
        catalog.reshard(&hot, 8).await.unwrap();
        skus.push(hot.clone());
        let stream = common::fresh_stream();
        let moves = skus
            .iter()
            .map(|sku| StockMove::Reserve(line(sku, if *sku == hot { 8 } else { 1 })))
            .collect();
        all_lines(&ledger, &stream, 0, moves).await;
        assert_eq!(all_counters(&catalog, &hot).await, (0, 8, 0));
        for sku in &skus[..98] {
            assert_eq!(all_counters(&catalog, sku).await, (0, 1, 0));
        }
        let layout = catalog.layout(&hot).await.unwrap().unwrap();
        assert_eq!(
            layout.items.iter().filter(|c| c.unwrap().reserved > 0).count(),
            1,
            "gathered on one shard: {layout:?}"
        );
        assert!(catalog.layout_findings().await.unwrap().is_empty());
        assert_eq!(ledger.store().load(&stream, 0).await.unwrap().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_release_and_a_sale_after_a_reshard_fit_one_transaction() {
        let (ledger, catalog) = dynamo_stock().await;
        let skus = products(&catalog, 99, 8).await;
        let (released, sold) = (common::fresh_stream(), common::fresh_stream());
        let each = |make: fn(StockLine) -> StockMove| skus.iter().map(|sku| make(line(sku, 4))).collect();
        all_lines(&ledger, &released, 0, each(StockMove::Reserve)).await;
        all_lines(&ledger, &sold, 0, each(StockMove::Reserve)).await;
        // Between the reservations and what follows them, ten SKUs are spread over
        // four shards: two of each order's four units on none of them.
        for sku in &skus[..10] {
            catalog.reshard(sku, 4).await.unwrap();
        }
        all_lines(&ledger, &released, 1, each(StockMove::Release)).await;
        all_lines(&ledger, &sold, 1, each(StockMove::Sell)).await;
        for sku in &skus {
            assert_eq!(all_counters(&catalog, sku).await, (4, 0, 4), "{sku}");
        }
        assert!(catalog.layout_findings().await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_checker_names_a_shard_missing_or_astray() {
        let (_, catalog) = dynamo_stock().await;
        let (client, table) = catalog.parts();
        let sku = stocked(&catalog, 9).await;
        catalog.reshard(&sku, 3).await.unwrap();
        client
            .delete_item()
            .table_name(table)
            .key("sku", AttributeValue::S(format!("{sku}#2")))
            .send()
            .await
            .unwrap();
        client
            .put_item()
            .table_name(table)
            .item("sku", AttributeValue::S(format!("{sku}#7")))
            .item("shardOf", AttributeValue::S(sku.to_string()))
            .item("shards", AttributeValue::N("3".into()))
            .item("available", AttributeValue::N("4".into()))
            .send()
            .await
            .unwrap();
        let findings = catalog.layout_findings().await.unwrap();
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert!(
            findings
                .iter()
                .any(|f| f.contains(&format!("{sku}#2 is missing"))),
            "{findings:?}"
        );
        assert!(
            findings
                .iter()
                .any(|f| f.contains(&format!("{sku}#7: a stock shard beyond"))),
            "{findings:?}"
        );
        // The product reads what its shards hold: 3 of its 9 went with the missing item.
        assert_eq!(all_counters(&catalog, &sku).await.0, 6);
        // A product put whole cannot claim shards it does not have.
        let mut spread = Product::listed(
            sku.clone(),
            "Widget",
            Money::new(1, Currency::parse("USD").unwrap()),
            1,
        );
        spread.shards = 2;
        assert!(catalog.put(&spread).await.is_err());
    }
}
