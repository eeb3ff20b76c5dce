//! The product catalog and its stock (inventory's table): prices for the API, and the
//! stock moves inventory makes inside its reservation transactions.
//!
//! One item per SKU: `sku`, `name`, `priceAmount`, `currency`, `available`, `reserved`,
//! `sold`. Stock is conserved: every move takes from one counter what it adds to
//! another, under a condition, in the same transaction as the event that records it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
pub use orderflow_app::Product;
use orderflow_app::{Catalog, EventRecord, MoveError, StockLedger, StockMove, StoreError, StreamId};
use orderflow_domain::Sku;
use orderflow_domain::inventory::StockLine;

use crate::event_store::dynamodb::EffectsError;
use crate::event_store::{DynamoEventStore, MemoryEventStore};

/// The catalog table.
#[derive(Debug, Clone)]
pub struct DynamoCatalog {
    client: Client,
    table: String,
}

fn key(sku: &Sku) -> HashMap<String, AttributeValue> {
    HashMap::from([("sku".to_owned(), AttributeValue::S(sku.to_string()))])
}

impl DynamoCatalog {
    /// The catalog in `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn stock_move(
        &self,
        line: &StockLine,
        update: &str,
        condition: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        // `:zero` is for counters an item may not have yet (written by hand, or by an
        // older build): `if_not_exists(reserved, :zero)`.
        let values = HashMap::from([
            (":q".to_owned(), AttributeValue::N(line.quantity.to_string())),
            (":zero".to_owned(), AttributeValue::N("0".to_owned())),
        ])
        .into_iter()
        .filter(|(name, _)| update.contains(name.as_str()) || condition.contains(name.as_str()))
        .collect();
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(&line.sku)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::new("build stock update", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Moves `line` from available to reserved, if that many are available.
    ///
    /// # Errors
    /// [`StoreError`] if the request cannot be built.
    pub fn reserve(&self, line: &StockLine) -> Result<TransactWriteItem, StoreError> {
        self.stock_move(
            line,
            "SET available = available - :q, reserved = if_not_exists(reserved, :zero) + :q",
            "available >= :q",
        )
    }

    /// Moves `line` back from reserved to available.
    ///
    /// # Errors
    /// [`StoreError`] if the request cannot be built.
    pub fn release(&self, line: &StockLine) -> Result<TransactWriteItem, StoreError> {
        self.stock_move(
            line,
            "SET available = available + :q, reserved = reserved - :q",
            "reserved >= :q",
        )
    }
}

impl Catalog for DynamoCatalog {
    /// Writes products (seeding a local stack or a test).
    async fn put(&self, product: &Product) -> Result<(), StoreError> {
        crate::item::put(&self.client, &self.table, product, "put product").await
    }

    /// The products of `skus` that exist (strongly consistent, 100 keys a call).
    async fn products(&self, skus: &[Sku]) -> Result<HashMap<Sku, Product>, StoreError> {
        let mut found = HashMap::with_capacity(skus.len());
        for chunk in skus.chunks(100) {
            let mut keys = KeysAndAttributes::builder().consistent_read(true);
            for sku in chunk {
                keys = keys.keys(key(sku));
            }
            let mut request = HashMap::from([(
                self.table.clone(),
                keys.build().map_err(|e| StoreError::new("build batch get", e))?,
            )]);
            // Unprocessed keys come back under throttling: ask again until none are left.
            while !request.is_empty() {
                let output = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(request))
                    .send()
                    .await
                    .map_err(|e| StoreError::new("read products", e))?;
                let items = output
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default();
                let products: Vec<Product> =
                    serde_dynamo::from_items(items).map_err(|e| StoreError::new("decode product", e))?;
                found.extend(products.into_iter().map(|p| (p.sku.clone(), p)));
                request = output.unprocessed_keys.unwrap_or_default();
            }
        }
        Ok(found)
    }

    /// Every product, by SKU (paginated scan; the catalog is small).
    async fn all(&self) -> Result<Vec<Product>, StoreError> {
        let items = self
            .client
            .scan()
            .table_name(&self.table)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| StoreError::new("scan products", e))?;
        let mut products: Vec<Product> =
            serde_dynamo::from_items(items).map_err(|e| StoreError::new("decode product", e))?;
        products.sort_by(|a, b| a.sku.cmp(&b.sku));
        Ok(products)
    }
}

/// Inventory's ledger in DynamoDB: the events and the counter updates in one
/// `TransactWriteItems`.
#[derive(Debug, Clone)]
pub struct DynamoStockLedger {
    store: DynamoEventStore,
    catalog: DynamoCatalog,
}

impl DynamoStockLedger {
    /// The ledger over the event store and the catalog table.
    #[must_use]
    pub const fn new(store: DynamoEventStore, catalog: DynamoCatalog) -> Self {
        Self { store, catalog }
    }
}

impl StockLedger for DynamoStockLedger {
    type Store = DynamoEventStore;

    fn store(&self) -> &DynamoEventStore {
        &self.store
    }

    async fn append_with_moves(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
        moves: &[StockMove],
    ) -> Result<(), MoveError> {
        let effects = moves
            .iter()
            .map(|m| match m {
                StockMove::Reserve(line) => self.catalog.reserve(line),
                StockMove::Release(line) => self.catalog.release(line),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(orderflow_app::AppendError::Store)?;
        match self
            .store
            .append_with_effects(stream, expected_version, events, effects)
            .await
        {
            Ok(()) => Ok(()),
            Err(EffectsError::Append(e)) => Err(MoveError::Append(e)),
            Err(EffectsError::Effect { index, item }) => Err(MoveError::Refused {
                index,
                unknown: item.is_none(),
            }),
        }
    }
}

/// The catalog in memory, with the same contract as [`DynamoCatalog`] (one
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
}

/// Inventory's ledger in memory: the catalog's lock is held across the append, so the
/// events and the moves commit together or not at all.
#[derive(Debug, Clone, Default)]
pub struct MemoryStockLedger {
    store: MemoryEventStore,
    catalog: MemoryCatalog,
}

impl MemoryStockLedger {
    /// The ledger over an in-memory store and catalog.
    #[must_use]
    pub const fn new(store: MemoryEventStore, catalog: MemoryCatalog) -> Self {
        Self { store, catalog }
    }
}

/// `moves` applied to `products`, or the first one refused.
fn apply_moves(products: &mut BTreeMap<Sku, Product>, moves: &[StockMove]) -> Result<(), MoveError> {
    let mut moved = products.clone();
    for (index, stock_move) in moves.iter().enumerate() {
        let line = stock_move.line();
        let refused = |unknown| MoveError::Refused { index, unknown };
        let product = moved.get_mut(&line.sku).ok_or(refused(true))?;
        let quantity = u64::from(line.quantity.get());
        let (from, to) = match stock_move {
            StockMove::Reserve(_) => (&mut product.available, &mut product.reserved),
            StockMove::Release(_) => (&mut product.reserved, &mut product.available),
        };
        *from = from.checked_sub(quantity).ok_or(refused(false))?;
        *to += quantity;
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
    ) -> Result<(), MoveError> {
        let mut products = self.catalog.lock().map_err(orderflow_app::AppendError::Store)?;
        self.store.append_then(stream, expected_version, events, || {
            apply_moves(&mut products, moves)
        })
    }
}
