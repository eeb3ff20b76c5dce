//! Reservations per second on one SKU against the same reservations spread over many
//! SKUs, side by side in one run, through inventory's own path on DynamoDB Local: each
//! reservation decides on its `inventory#<order>` stream and commits its event with the
//! stock update in one `TransactWriteItems`.
//!
//! On one SKU every transaction updates the same catalog item, so they serialise on it
//! (DynamoDB cancels a transaction that meets another on an item: a conflict, retried
//! here as inventory's queue would redeliver it). Spread over many SKUs they do not;
//! nor do they on one SKU whose stock is spread over 4 or 16 shards
//! (`Catalog::reshard`), each order's reservation going to its own shard.
//!
//! Run with `make bench` (it starts the emulators). `HOT_SKU_RESERVATIONS` (default 400)
//! and `HOT_SKU_CONCURRENCY` (default 16) size the run.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic,
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    reason = "benchmark harness"
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use orderflow_adapters::DynamoEventStore;
use orderflow_adapters::catalog::{DynamoCatalog, DynamoStockLedger};
use orderflow_app::stock::{Applied, execute_with_moves};
use orderflow_app::{Catalog, CommandError, Product, Repository, StockMove, SystemClock};
use orderflow_domain::inventory::{Inventory, InventoryCommand, InventoryEvent, StockLine};
use orderflow_domain::{Currency, Metadata, Money, OrderId, Quantity, Sku};
use orderflow_provision::local;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Measured {
    per_second: f64,
    conflicts: u64,
    elapsed: Duration,
}

async fn run(skus: usize, shards: u32, reservations: usize, concurrency: usize) -> Measured {
    let client = local::dynamodb_client()
        .await
        .expect("make bench starts DynamoDB Local");
    let tables = local::fresh_tables(&client, &["EventStoreTable", "SnapshotTable", "CatalogTable"])
        .await
        .unwrap();
    let store = DynamoEventStore::new(
        client.clone(),
        &tables["EventStoreTable"],
        &tables["SnapshotTable"],
    );
    let catalog = DynamoCatalog::new(client, &tables["CatalogTable"]);
    let names: Vec<Sku> = (0..skus)
        .map(|n| Sku::parse(format!("SKU-{n}")).unwrap())
        .collect();
    for sku in &names {
        let product = Product::listed(
            sku.clone(),
            "Bench",
            Money::new(100, Currency::parse("USD").unwrap()),
            1_000_000,
        );
        catalog.put(&product).await.unwrap();
        if shards > 1 {
            catalog.reshard(sku, shards).await.unwrap();
        }
    }
    let repository = Repository::new(store.clone(), 0);
    let ledger = DynamoStockLedger::new(store, catalog.clone());
    let conflicts = AtomicU64::new(0);
    let metadata = Metadata {
        correlation_id: "bench".into(),
        causation_id: "bench".into(),
        actor: "service:inventory".into(),
    };
    let started = Instant::now();
    futures::stream::iter(0..reservations)
        .for_each_concurrent(concurrency, |n| {
            let (repository, ledger, conflicts, metadata) = (&repository, &ledger, &conflicts, &metadata);
            let sku = names[n % names.len()].clone();
            async move {
                let order_id = OrderId::from_uuid(uuid::Uuid::now_v7());
                let lines = vec![StockLine {
                    sku,
                    quantity: Quantity::parse(1).unwrap(),
                }];
                loop {
                    let applied = execute_with_moves::<Inventory, _, _>(
                        repository,
                        ledger,
                        &SystemClock,
                        &order_id.to_string(),
                        InventoryCommand::Reserve {
                            order_id,
                            lines: lines.clone(),
                        },
                        metadata,
                        |events| {
                            events
                                .iter()
                                .flat_map(|e| match e {
                                    InventoryEvent::Reserved(r) => {
                                        r.lines.iter().cloned().map(StockMove::Reserve).collect()
                                    }
                                    _ => Vec::new(),
                                })
                                .collect()
                        },
                        None,
                    )
                    .await;
                    match applied {
                        Ok(Applied::Done(_)) => break,
                        Ok(Applied::Refused { .. }) => panic!("a million units ran out"),
                        // A transaction that met another on the item: redelivered.
                        Err(CommandError::Store(_) | CommandError::Contention { .. }) => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        })
        .await;
    let elapsed = started.elapsed();
    let reserved: u64 = catalog.all().await.unwrap().iter().map(|p| p.reserved).sum();
    assert_eq!(reserved, reservations as u64, "every reservation landed once");
    Measured {
        per_second: reservations as f64 / elapsed.as_secs_f64(),
        conflicts: conflicts.into_inner(),
        elapsed,
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments of its own.
    let reservations = setting("HOT_SKU_RESERVATIONS", 400);
    let concurrency = setting("HOT_SKU_CONCURRENCY", 16);
    let spread_over = 100;
    // Warm the emulator's JIT and the client's connections before any run is timed.
    run(10, 1, 50, concurrency).await;
    let hot = run(1, 1, reservations, concurrency).await;
    let mut rows = vec![("one SKU, one item".to_owned(), hot)];
    for shards in [4, 16] {
        rows.push((
            format!("one SKU, {shards} shards"),
            run(1, shards, reservations, concurrency).await,
        ));
    }
    rows.push((
        format!("{spread_over} SKUs"),
        run(spread_over, 1, reservations, concurrency).await,
    ));
    println!("hot_sku: {reservations} reservations, {concurrency} at a time, on DynamoDB Local");
    let baseline = rows[0].1.per_second;
    for (name, measured) in &rows {
        println!(
            "  {name:<20} {:>7.1} reservations/s  ({:.2} s, {} conflicts retried)  {:.2}x one item",
            measured.per_second,
            measured.elapsed.as_secs_f64(),
            measured.conflicts,
            measured.per_second / baseline
        );
    }
}
