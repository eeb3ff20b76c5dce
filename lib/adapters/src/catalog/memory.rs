//! The catalog and the stock ledger in memory, with the DynamoDB ones' contract: one
//! conformance suite runs against both.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use orderflow_app::Product;
use orderflow_app::stock::{MAX_STOCK_SHARDS, ReshardError};
use orderflow_app::{Catalog, EventRecord, MoveError, Once, StockLedger, StockMove, StoreError, StreamId};
use orderflow_domain::Sku;
use orderflow_domain::inventory::StockLine;

use crate::event_store::MemoryEventStore;

/// The catalog in memory, with the same contract as [`DynamoCatalog`](super::DynamoCatalog) (one
/// conformance suite runs against both). Clones share the same products.
#[derive(Debug, Clone, Default)]
pub struct MemoryCatalog {
    products: Arc<Mutex<BTreeMap<Sku, Product>>>,
}

impl MemoryCatalog {
    /// An empty catalog.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, BTreeMap<Sku, Product>>, StoreError> {
        self.products
            .lock()
            .map_err(|_| StoreError::new("lock", "a writer panicked while holding the catalog"))
    }
}

impl Catalog for MemoryCatalog {
    async fn put(&self, product: &Product) -> Result<(), StoreError> {
        self.lock()?.insert(product.sku.clone(), product.clone());
        Ok(())
    }

    async fn products(&self, skus: &[Sku]) -> Result<HashMap<Sku, Product>, StoreError> {
        let products = self.lock()?;
        Ok(skus
            .iter()
            .filter_map(|sku| products.get(sku).map(|p| (sku.clone(), p.clone())))
            .collect())
    }

    async fn all(&self) -> Result<Vec<Product>, StoreError> {
        Ok(self.lock()?.values().cloned().collect())
    }

    /// Its counters are sums already: only the count changes.
    async fn reshard(&self, sku: &Sku, shards: u32) -> Result<Product, ReshardError> {
        if !(1..=MAX_STOCK_SHARDS).contains(&shards) {
            return Err(ReshardError::OutOfRange {
                shards,
                max: MAX_STOCK_SHARDS,
            });
        }
        let mut products = self.lock()?;
        let product = products.get_mut(sku).ok_or(ReshardError::Unknown)?;
        product.shards = shards;
        Ok(product.clone())
    }

    async fn page(
        &self,
        limit: usize,
        after: Option<&Sku>,
    ) -> Result<(Vec<Product>, Option<Sku>), StoreError> {
        use std::ops::Bound;
        let products = self.lock()?;
        let start = after.map_or(Bound::Unbounded, |sku| Bound::Excluded(sku.clone()));
        let mut page: Vec<Product> = products
            .range((start, Bound::Unbounded))
            .take(limit.max(1) + 1)
            .map(|(_, p)| p.clone())
            .collect();
        let more = page.len() > limit.max(1);
        page.truncate(limit.max(1));
        let next = page.last().filter(|_| more).map(|p| p.sku.clone());
        Ok((page, next))
    }
}

/// Inventory's ledger in memory: the catalog's lock is held across the append, so the
/// events and the moves commit together or not at all.
#[derive(Debug, Clone, Default)]
pub struct MemoryStockLedger {
    store: MemoryEventStore,
    catalog: MemoryCatalog,
    /// The keys of the [`Once`] claims made; clones share them.
    claims: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl MemoryStockLedger {
    /// The ledger over an in-memory store and catalog.
    #[must_use]
    pub fn new(store: MemoryEventStore, catalog: MemoryCatalog) -> Self {
        Self {
            store,
            catalog,
            claims: Arc::default(),
        }
    }

    fn append(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
        moves: &[StockMove],
        once: Option<&Once>,
    ) -> Result<(), MoveError> {
        let mut products = self.catalog.lock().map_err(orderflow_app::AppendError::Store)?;
        let mut claims = self.claims.lock().map_err(|_| {
            orderflow_app::AppendError::Store(StoreError::new("lock", "a writer panicked holding the claims"))
        })?;
        self.store.append_then(stream, expected_version, events, || {
            if once.is_some_and(|once| claims.contains(&once.key)) {
                return Err(MoveError::AlreadyApplied);
            }
            apply_moves(&mut products, moves)?;
            if let Some(once) = once {
                claims.insert(once.key.clone());
            }
            Ok(())
        })
    }
}

/// `moves` applied to `products`, or the first one refused.
fn apply_moves(products: &mut BTreeMap<Sku, Product>, moves: &[StockMove]) -> Result<(), MoveError> {
    let mut moved = products.clone();
    for (index, stock_move) in moves.iter().enumerate() {
        let refused = |unknown| MoveError::Refused { index, unknown };
        let sku = stock_move.sku();
        if let StockMove::Describe {
            details, received, ..
        } = stock_move
        {
            let product = moved
                .entry(sku.clone())
                .or_insert_with(|| Product::listed(sku.clone(), "", details.price, 0));
            product.name.clone_from(&details.name);
            product.price_amount = details.price.amount;
            product.currency = details.price.currency;
            product.description.clone_from(&details.description);
            product.available += received;
            continue;
        }
        let product = moved.get_mut(sku).ok_or(refused(true))?;
        let units = |line: &StockLine| u64::from(line.quantity.get());
        let (from, to, quantity) = match stock_move {
            StockMove::Reserve(line) => (
                Some(&mut product.available),
                Some(&mut product.reserved),
                units(line),
            ),
            StockMove::Release(line) => (
                Some(&mut product.reserved),
                Some(&mut product.available),
                units(line),
            ),
            StockMove::Sell(line) => (Some(&mut product.reserved), Some(&mut product.sold), units(line)),
            StockMove::Receive { quantity, .. } => (None, Some(&mut product.available), *quantity),
            StockMove::WriteOff { quantity, .. } => (Some(&mut product.available), None, *quantity),
            StockMove::Describe { .. } => continue,
        };
        if let Some(from) = from {
            *from = from.checked_sub(quantity).ok_or(refused(false))?;
        }
        if let Some(to) = to {
            *to += quantity;
        }
    }
    *products = moved;
    Ok(())
}

impl StockLedger for MemoryStockLedger {
    type Store = MemoryEventStore;

    fn store(&self) -> &MemoryEventStore {
        &self.store
    }

    async fn append_with_moves(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
        moves: &[StockMove],
        once: Option<&Once>,
    ) -> Result<(), MoveError> {
        self.append(stream, expected_version, events, moves, once)
    }
}
