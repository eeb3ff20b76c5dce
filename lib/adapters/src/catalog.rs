//! The product catalog and its stock: prices for the API, and the stock moves inventory
//! (reservations, releases, sales) and operators (listings, receipts, write-offs) make
//! inside the transactions that append their events.
//!
//! One item per SKU: `sku`, `name`, `priceAmount`, `currency`, `description`,
//! `available`, `reserved`, `sold`. Stock is conserved: every move takes from one
//! counter what it adds to another, or enters or leaves through a receipt or write-off
//! recorded on the product's stream, under a condition, in the same transaction as the
//! event that records it.

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

    fn update(
        &self,
        sku: &Sku,
        update: &str,
        condition: Option<&str>,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let names: HashMap<String, String> = names
            .iter()
            .map(|(alias, name)| ((*alias).to_owned(), (*name).to_owned()))
            .collect();
        let values: HashMap<String, AttributeValue> = values
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(sku)))
            .update_expression(update)
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::new("build stock update", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// `from - :q, to + :q` if `from >= :q`. `:zero` is for counters an item may not
    /// have yet (written by an older build): `if_not_exists(reserved, :zero)`.
    fn shift(&self, sku: &Sku, quantity: u64, from: &str, to: &str) -> Result<TransactWriteItem, StoreError> {
        self.update(
            sku,
            &format!("SET {from} = {from} - :q, {to} = if_not_exists({to}, :zero) + :q"),
            Some(&format!("{from} >= :q")),
            &[],
            vec![(":q", number(quantity)), (":zero", number(0))],
        )
    }

    /// The item update that makes `stock_move`, under its condition.
    ///
    /// # Errors
    /// [`StoreError`] if the request cannot be built.
    pub fn stock_move(&self, stock_move: &StockMove) -> Result<TransactWriteItem, StoreError> {
        let units = |line: &StockLine| u64::from(line.quantity.get());
        match stock_move {
            StockMove::Reserve(line) => self.shift(&line.sku, units(line), "available", "reserved"),
            StockMove::Release(line) => self.shift(&line.sku, units(line), "reserved", "available"),
            StockMove::Sell(line) => self.shift(&line.sku, units(line), "reserved", "sold"),
            StockMove::Receive { sku, quantity } => self.update(
                sku,
                "SET available = available + :q",
                Some("attribute_exists(sku)"),
                &[],
                vec![(":q", number(*quantity))],
            ),
            StockMove::WriteOff { sku, quantity } => self.update(
                sku,
                "SET available = available - :q",
                Some("available >= :q"),
                &[],
                vec![(":q", number(*quantity))],
            ),
            StockMove::Describe {
                sku,
                details,
                received,
            } => {
                let set = "SET #name = :name, priceAmount = :price, currency = :currency, \
                     available = if_not_exists(available, :zero) + :q, \
                     reserved = if_not_exists(reserved, :zero), sold = if_not_exists(sold, :zero)";
                let mut values = vec![
                    (":name", AttributeValue::S(details.name.clone())),
                    (":price", number(details.price.amount)),
                    (
                        ":currency",
                        AttributeValue::S(details.price.currency.as_str().to_owned()),
                    ),
                    (":q", number(*received)),
                    (":zero", number(0)),
                ];
                let expression = match &details.description {
                    Some(text) => {
                        values.push((":description", AttributeValue::S(text.clone())));
                        format!("{set}, description = :description")
                    }
                    None => format!("{set} REMOVE description"),
                };
                self.update(sku, &expression, None, &[("#name", "name")], values)
            }
        }
    }
}

fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
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

    /// One page of a scan: pages follow the table's order (stable from page to page),
    /// each sorted by SKU.
    async fn page(
        &self,
        limit: usize,
        after: Option<&Sku>,
    ) -> Result<(Vec<Product>, Option<Sku>), StoreError> {
        let output = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(after.map(key))
            .send()
            .await
            .map_err(|e| StoreError::new("scan products", e))?;
        let mut products: Vec<Product> = serde_dynamo::from_items(output.items.unwrap_or_default())
            .map_err(|e| StoreError::new("decode product", e))?;
        // A catalog that fits one page reads in SKU order, as `all` does.
        products.sort_by(|a, b| a.sku.cmp(&b.sku));
        let next = output.last_evaluated_key.and_then(|mut k| match k.remove("sku") {
            Some(AttributeValue::S(sku)) => Sku::parse(sku).ok(),
            _ => None,
        });
        Ok((products, next))
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
            .map(|m| self.catalog.stock_move(m))
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
    ) -> Result<(), MoveError> {
        let mut products = self.catalog.lock().map_err(orderflow_app::AppendError::Store)?;
        self.store.append_then(stream, expected_version, events, || {
            apply_moves(&mut products, moves)
        })
    }
}
