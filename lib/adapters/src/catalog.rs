//! The product catalog and its stock (inventory's table): prices for the API, and the
//! stock moves inventory makes inside its reservation transactions.
//!
//! One item per SKU: `sku`, `name`, `priceAmount`, `currency`, `available`, `reserved`,
//! `sold`. Stock is conserved: every move takes from one counter what it adds to
//! another, under a condition, in the same transaction as the event that records it.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use orderflow_app::StoreError;
use orderflow_domain::inventory::StockLine;
use orderflow_domain::{Currency, Money, Sku};
use serde::{Deserialize, Serialize};

/// A product as the catalog holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    /// Its SKU.
    pub sku: Sku,
    /// Display name.
    pub name: String,
    /// Unit price, minor units.
    pub price_amount: u64,
    /// Price currency.
    pub currency: Currency,
    /// Units free to reserve.
    pub available: u64,
    /// Units held for orders not yet shipped.
    #[serde(default)]
    pub reserved: u64,
    /// Units gone with shipped orders.
    #[serde(default)]
    pub sold: u64,
}

impl Product {
    /// The unit price.
    #[must_use]
    pub const fn price(&self) -> Money {
        Money::new(self.price_amount, self.currency)
    }
}

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

    /// Writes products (seeding a local stack or a test).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn put(&self, product: &Product) -> Result<(), StoreError> {
        let item = serde_dynamo::to_item(product).map_err(|e| StoreError::new("encode product", e))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::new("put product", e))?;
        Ok(())
    }

    /// The products of `skus` that exist (strongly consistent, 100 keys a call).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn products(&self, skus: &[Sku]) -> Result<HashMap<Sku, Product>, StoreError> {
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
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn all(&self) -> Result<Vec<Product>, StoreError> {
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
