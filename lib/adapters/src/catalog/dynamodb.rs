//! The catalog on DynamoDB: one item per SKU (and its shards' items), read for
//! prices and written by listings, receipts and write-offs in the transaction that
//! appends their events.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use orderflow_app::Product;
use orderflow_app::stock::{MAX_STOCK_SHARDS, ReshardError};
use orderflow_app::{Catalog, StoreError};
use orderflow_domain::Sku;
use orderflow_domain::product::ProductDetails;

use super::layout::{Change, Counter, Counters, Layout, key, shard_key, shards_of};

/// The catalog table.
#[derive(Debug, Clone)]
pub struct DynamoCatalog {
    client: Client,
    table: String,
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
        key: HashMap<String, AttributeValue>,
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
            .set_key(Some(key))
            .update_expression(update)
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::new("build stock update", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Its client and table (tests and tools that read the items themselves).
    #[must_use]
    pub fn parts(&self) -> (&Client, &str) {
        (&self.client, &self.table)
    }

    /// `change` of `quantity` units on shard `shard` of `sku`, under its condition and
    /// the condition that the product is still spread over `shards` items (a move
    /// planned against another layout fails and is planned again).
    pub(super) fn counter_update(
        &self,
        sku: &Sku,
        shard: u32,
        shards: u32,
        change: Change,
        quantity: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        let layout_holds = if shards <= 1 {
            "attribute_not_exists(shards)"
        } else {
            "shards = :shards"
        };
        let (update, condition) = match change {
            Change::Shift(from, to) => {
                let (from, to) = (from.name(), to.name());
                (
                    format!("SET {from} = {from} - :q, {to} = if_not_exists({to}, :zero) + :q"),
                    format!("{from} >= :q AND {layout_holds}"),
                )
            }
            Change::In => (
                "SET available = available + :q".to_owned(),
                format!("attribute_exists(sku) AND {layout_holds}"),
            ),
            Change::Out => (
                "SET available = available - :q".to_owned(),
                format!("available >= :q AND {layout_holds}"),
            ),
        };
        let mut values = vec![(":q", number(quantity))];
        if update.contains(":zero") {
            values.push((":zero", number(0)));
        }
        if shards > 1 {
            values.push((":shards", number(u64::from(shards))));
        }
        self.update(shard_key(sku, shard), &update, Some(&condition), &[], values)
    }

    /// A listing or a change of details, on the product's own item (with the units
    /// received with it).
    pub(super) fn describe(
        &self,
        sku: &Sku,
        details: &ProductDetails,
        received: u64,
    ) -> Result<TransactWriteItem, StoreError> {
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
            (":q", number(received)),
            (":zero", number(0)),
        ];
        let expression = match &details.description {
            Some(text) => {
                values.push((":description", AttributeValue::S(text.clone())));
                format!("{set}, description = :description")
            }
            None => format!("{set} REMOVE description"),
        };
        self.update(key(sku), &expression, None, &[("#name", "name")], values)
    }

    /// `sku`'s stock item by item (strongly consistent), or `None` if no such product.
    ///
    /// # Errors
    /// [`StoreError`] when a read fails.
    pub async fn layout(&self, sku: &Sku) -> Result<Option<Layout>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(sku)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new("read product", e))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let shards = shards_of(&item);
        let mut items = vec![Some(Counters::of(&item))];
        if shards > 1 {
            let keys: Vec<_> = (1..shards).map(|shard| shard_key(sku, shard)).collect();
            let mut by_key = self.shard_counters(keys).await?;
            items.extend((1..shards).map(|shard| by_key.remove(&format!("{sku}#{shard}"))));
        }
        Ok(Some(Layout { items }))
    }

    /// Every item of `keys` that exists (strongly consistent, 100 keys a call,
    /// unprocessed keys asked for again).
    async fn get_all(
        &self,
        keys: Vec<HashMap<String, AttributeValue>>,
        what: &'static str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let keys = KeysAndAttributes::builder()
                .consistent_read(true)
                .set_keys(Some(chunk.to_vec()))
                .build()
                .map_err(|e| StoreError::new("build batch get", e))?;
            let mut request = HashMap::from([(self.table.clone(), keys)]);
            // Unprocessed keys come back under throttling: ask again until none are left.
            while !request.is_empty() {
                let output = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(request))
                    .send()
                    .await
                    .map_err(|e| StoreError::new(what, e))?;
                found.extend(
                    output
                        .responses
                        .and_then(|mut r| r.remove(&self.table))
                        .unwrap_or_default(),
                );
                request = output.unprocessed_keys.unwrap_or_default();
            }
        }
        Ok(found)
    }

    /// The counters of the shard items of `keys` that exist, by their key.
    async fn shard_counters(
        &self,
        keys: Vec<HashMap<String, AttributeValue>>,
    ) -> Result<HashMap<String, Counters>, StoreError> {
        Ok(self
            .get_all(keys, "read stock shards")
            .await?
            .iter()
            .filter_map(|item| match item.get("sku") {
                Some(AttributeValue::S(k)) => Some((k.clone(), Counters::of(item))),
                _ => None,
            })
            .collect())
    }

    /// `products` with the counters of their other shards added in.
    async fn with_shards(&self, mut products: Vec<Product>) -> Result<Vec<Product>, StoreError> {
        let keys: Vec<_> = products
            .iter()
            .filter(|p| p.shards > 1)
            .flat_map(|p| (1..p.shards).map(|shard| shard_key(&p.sku, shard)))
            .collect();
        if keys.is_empty() {
            return Ok(products);
        }
        let shards = self.shard_counters(keys).await?;
        for product in &mut products {
            for shard in 1..product.shards {
                if let Some(c) = shards.get(&format!("{}#{shard}", product.sku)) {
                    c.add_to(product);
                }
            }
        }
        Ok(products)
    }

    /// Spreads `sku`'s stock over `shards` items (1: back onto the product's own),
    /// available and reserved evenly, sold on the product's own item: every counter's
    /// total is what it was. One transaction, conditioned on every item holding what
    /// was read, so a move landing in between makes it read and try again; a move
    /// planned against the old layout fails its own condition and is planned again.
    ///
    /// # Errors
    /// [`ReshardError`].
    async fn reshard_stock(&self, sku: &Sku, shards: u32) -> Result<Product, ReshardError> {
        if !(1..=MAX_STOCK_SHARDS).contains(&shards) {
            return Err(ReshardError::OutOfRange {
                shards,
                max: MAX_STOCK_SHARDS,
            });
        }
        for _ in 0..RESHARD_ATTEMPTS {
            let layout = self.layout(sku).await?.ok_or(ReshardError::Unknown)?;
            let actions = self.reshard_actions(sku, &layout, shards)?;
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions))
                .send()
                .await
            {
                Ok(_) => {
                    let products = self.products(std::slice::from_ref(sku)).await?;
                    return products.get(sku).cloned().ok_or(ReshardError::Unknown);
                }
                Err(error) => {
                    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;

                    if !matches!(
                        error.as_service_error(),
                        Some(TransactWriteItemsError::TransactionCanceledException(_))
                    ) {
                        return Err(StoreError::new("reshard stock", error).into());
                    }
                    tracing::debug!(%sku, "stock moved while resharding; reading again");
                }
            }
        }
        Err(ReshardError::Contended {
            attempts: RESHARD_ATTEMPTS,
        })
    }

    fn reshard_actions(
        &self,
        sku: &Sku,
        layout: &Layout,
        shards: u32,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let total = layout.total();
        let even = |units: u64, shard: u32| {
            let n = u64::from(shards);
            units / n + u64::from(u64::from(shard) < units % n)
        };
        let target = |shard: u32| Counters {
            available: even(total.available, shard),
            reserved: even(total.reserved, shard),
            sold: if shard == 0 { total.sold } else { 0 },
        };
        let old = |shard: u32| layout.items.get(shard as usize).copied().flatten();
        // Each item as it was read, or absent.
        let held = |shard: u32, values: &mut Vec<(String, AttributeValue)>| match old(shard) {
            Some(c) => {
                values.push((":oa".into(), number(c.available)));
                values.push((":or".into(), number(c.reserved)));
                values.push((":os".into(), number(c.sold)));
                "available = :oa AND reserved = :or AND sold = :os".to_owned()
            }
            None => "attribute_not_exists(sku)".to_owned(),
        };
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError::new("build reshard", e);
        let values_map = |values: Vec<(String, AttributeValue)>| -> HashMap<String, AttributeValue> {
            values.into_iter().collect()
        };
        let mut actions = Vec::new();
        // The product's own item: shard 0, and where the layout is written down.
        let mine = target(0);
        let mut values = vec![
            (":a".to_owned(), number(mine.available)),
            (":r".to_owned(), number(mine.reserved)),
            (":s".to_owned(), number(mine.sold)),
        ];
        let was = old(0).unwrap_or_default();
        values.push((":oa".into(), number(was.available)));
        values.push((":or".into(), number(was.reserved)));
        values.push((":os".into(), number(was.sold)));
        // Counters an older build never wrote read as 0.
        let unchanged = |name: &str, alias: &str, value: u64| {
            if value == 0 {
                format!("({name} = {alias} OR attribute_not_exists({name}))")
            } else {
                format!("{name} = {alias}")
            }
        };
        let mut condition = format!(
            "attribute_exists(sku) AND {} AND {} AND {}",
            unchanged("available", ":oa", was.available),
            unchanged("reserved", ":or", was.reserved),
            unchanged("sold", ":os", was.sold)
        );
        if layout.shards() > 1 {
            condition.push_str(" AND shards = :was");
            values.push((":was".into(), number(u64::from(layout.shards()))));
        } else {
            condition.push_str(" AND attribute_not_exists(shards)");
        }
        let set = "SET available = :a, reserved = :r, sold = :s";
        let update = if shards > 1 {
            values.push((":n".into(), number(u64::from(shards))));
            format!("{set}, shards = :n")
        } else {
            format!("{set} REMOVE shards")
        };
        actions.push(
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(key(sku)))
                        .update_expression(update)
                        .condition_expression(condition)
                        .set_expression_attribute_values(Some(values_map(values)))
                        .build()
                        .map_err(build)?,
                )
                .build(),
        );
        for shard in 1..shards.max(layout.shards()) {
            let mut values = Vec::new();
            let condition = held(shard, &mut values);
            let action = if shard < shards {
                let c = target(shard);
                let mut item = shard_key(sku, shard);
                item.insert("shardOf".into(), AttributeValue::S(sku.to_string()));
                item.insert("shards".into(), number(u64::from(shards)));
                item.insert("available".into(), number(c.available));
                item.insert("reserved".into(), number(c.reserved));
                item.insert("sold".into(), number(c.sold));
                TransactWriteItem::builder()
                    .put(
                        aws_sdk_dynamodb::types::Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(item))
                            .condition_expression(condition)
                            .set_expression_attribute_values((!values.is_empty()).then(|| values_map(values)))
                            .build()
                            .map_err(build)?,
                    )
                    .build()
            } else {
                TransactWriteItem::builder()
                    .delete(
                        aws_sdk_dynamodb::types::Delete::builder()
                            .table_name(&self.table)
                            .set_key(Some(shard_key(sku, shard)))
                            .condition_expression(condition)
                            .set_expression_attribute_values((!values.is_empty()).then(|| values_map(values)))
                            .build()
                            .map_err(build)?,
                    )
                    .build()
            };
            actions.push(action);
        }
        Ok(actions)
    }

    /// Moves `units` of `counter` onto shard `to` of `sku` from its other shards (those
    /// holding the most first), in one transaction that changes no total: what lets a
    /// move that would be split over many shards land on one. Fails its condition (and
    /// moves nothing) if the layout or the counters changed since `layout` was read.
    pub(super) async fn gather(
        &self,
        sku: &Sku,
        counter: Counter,
        to: u32,
        units: u64,
        layout: &Layout,
    ) -> Result<(), StoreError> {
        let shards = layout.shards();
        let name = counter.name();
        let layout_holds = "shards = :shards";
        let mut sources: Vec<(u32, u64)> = (0..shards)
            .filter(|&shard| shard != to)
            .filter_map(|shard| {
                Some((
                    shard,
                    layout.items.get(shard as usize).copied().flatten()?.get(counter),
                ))
            })
            .filter(|&(_, held)| held > 0)
            .collect();
        sources.sort_by_key(|&(shard, held)| (std::cmp::Reverse(held), shard));
        let mut left = units;
        let mut actions = Vec::new();
        for (shard, held) in sources {
            if left == 0 {
                break;
            }
            let take = held.min(left);
            left -= take;
            actions.push(self.update(
                shard_key(sku, shard),
                &format!("SET {name} = {name} - :q"),
                Some(&format!("{name} >= :q AND {layout_holds}")),
                &[],
                vec![(":q", number(take)), (":shards", number(u64::from(shards)))],
            )?);
        }
        let gathered = units - left;
        if gathered == 0 {
            return Ok(());
        }
        actions.push(self.update(
            shard_key(sku, to),
            &format!("SET {name} = if_not_exists({name}, :zero) + :q"),
            Some(&format!("attribute_exists(sku) AND {layout_holds}")),
            &[],
            vec![
                (":q", number(gathered)),
                (":zero", number(0)),
                (":shards", number(u64::from(shards))),
            ],
        )?);
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Stock moved under it: the caller reads the layout and plans again.
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(TransactWriteItemsError::TransactionCanceledException(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(StoreError::new("gather stock on one shard", e)),
        }
    }

    /// What is wrong with how stock is laid out over items: a shard item of no product,
    /// or beyond its product's shards, or missing, or naming another layout. Each is
    /// stock the counters' sums would miscount.
    ///
    /// # Errors
    /// [`StoreError`] when the scan fails.
    pub async fn layout_findings(&self) -> Result<Vec<String>, StoreError> {
        let (products, shards) = self.scan_all().await?;
        let layouts: HashMap<String, u32> = products.iter().map(|p| (p.sku.to_string(), p.shards)).collect();
        let mut findings = Vec::new();
        let mut seen: std::collections::HashSet<(String, u32)> = std::collections::HashSet::new();
        for item in &shards {
            let (of, shard) = (item.of.clone(), item.shard);
            match layouts.get(&of) {
                None => findings.push(format!(
                    "{of}#{shard}: a stock shard of no product (available {}, reserved {}, sold {})",
                    item.counters.available, item.counters.reserved, item.counters.sold
                )),
                Some(&n) if shard >= n => findings.push(format!(
                    "{of}#{shard}: a stock shard beyond the product's {n} (its units are not counted)"
                )),
                Some(&n) if item.shards != n => findings.push(format!(
                    "{of}#{shard}: says {} shards, the product {n}",
                    item.shards
                )),
                Some(_) => {}
            }
            seen.insert((of, shard));
        }
        for product in &products {
            for shard in 1..product.shards {
                if !seen.contains(&(product.sku.to_string(), shard)) {
                    findings.push(format!(
                        "{}: spread over {} items, but {}#{shard} is missing",
                        product.sku, product.shards, product.sku
                    ));
                }
            }
        }
        Ok(findings)
    }

    /// The whole table: products (their own items' counters only) and shard items.
    async fn scan_all(&self) -> Result<(Vec<Product>, Vec<ShardItem>), StoreError> {
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
        let (shards, products): (Vec<_>, Vec<_>) =
            items.into_iter().partition(|item| item.contains_key("shardOf"));
        let products: Vec<Product> =
            serde_dynamo::from_items(products).map_err(|e| StoreError::new("decode product", e))?;
        let shards = shards.iter().filter_map(ShardItem::of).collect();
        Ok((products, shards))
    }
}

/// How many times a reshard reads and tries again while stock moves under it.
const RESHARD_ATTEMPTS: u32 = 10;

/// A shard item as scanned.
#[derive(Debug, Clone)]
struct ShardItem {
    of: String,
    shard: u32,
    shards: u32,
    counters: Counters,
}

impl ShardItem {
    fn of(item: &HashMap<String, AttributeValue>) -> Option<Self> {
        let (Some(AttributeValue::S(key)), Some(AttributeValue::S(of))) =
            (item.get("sku"), item.get("shardOf"))
        else {
            return None;
        };
        let shard = key.rsplit_once('#')?.1.parse().ok()?;
        Some(Self {
            of: of.clone(),
            shard,
            shards: shards_of(item),
            counters: Counters::of(item),
        })
    }
}

fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

impl Catalog for DynamoCatalog {
    /// Writes a product's own item whole (seeding a local stack or a test): its stock
    /// on that one item; a product spread over several is resharded after.
    async fn put(&self, product: &Product) -> Result<(), StoreError> {
        if product.shards != 1 {
            return Err(StoreError::new(
                "put product",
                "a product is put on one item; spread its stock with reshard",
            ));
        }
        crate::item::put(&self.client, &self.table, product, "put product").await
    }

    /// The products of `skus` that exist (strongly consistent, 100 keys a call), their
    /// counters summed over their shards.
    async fn products(&self, skus: &[Sku]) -> Result<HashMap<Sku, Product>, StoreError> {
        let items = self
            .get_all(skus.iter().map(key).collect(), "read products")
            .await?;
        let products: Vec<Product> =
            serde_dynamo::from_items(items).map_err(|e| StoreError::new("decode product", e))?;
        Ok(self
            .with_shards(products)
            .await?
            .into_iter()
            .map(|p| (p.sku.clone(), p))
            .collect())
    }

    async fn reshard(&self, sku: &Sku, shards: u32) -> Result<Product, ReshardError> {
        self.reshard_stock(sku, shards).await
    }

    /// Every product, by SKU (paginated scan; the catalog is small), its counters
    /// summed over its shards.
    async fn all(&self) -> Result<Vec<Product>, StoreError> {
        let (mut products, shards) = self.scan_all().await?;
        let index: HashMap<String, usize> = products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.sku.to_string(), i))
            .collect();
        for item in shards {
            if let Some(&i) = index.get(&item.of) {
                let product = &mut products[i];
                // A shard beyond the product's count is not its stock (the checker says so).
                if item.shard < product.shards {
                    item.counters.add_to(product);
                }
            }
        }
        products.sort_by(|a, b| a.sku.cmp(&b.sku));
        Ok(products)
    }

    /// One page of a scan: pages follow the table's order (stable from page to page),
    /// each sorted by SKU. Shard items are passed over: a page continues after its last
    /// product, so a page may hold fewer than `limit`.
    async fn page(
        &self,
        limit: usize,
        after: Option<&Sku>,
    ) -> Result<(Vec<Product>, Option<Sku>), StoreError> {
        let mut start = after.map(key);
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .filter_expression("attribute_not_exists(shardOf)")
                .send()
                .await
                .map_err(|e| StoreError::new("scan products", e))?;
            let products: Vec<Product> = serde_dynamo::from_items(output.items.unwrap_or_default())
                .map_err(|e| StoreError::new("decode product", e))?;
            match (products.last(), output.last_evaluated_key) {
                // Only shard items in this stretch: go on from where the scan stopped.
                (None, Some(last)) => start = Some(last),
                (last, more) => {
                    let next = last.filter(|_| more.is_some()).map(|p| p.sku.clone());
                    let mut products = self.with_shards(products).await?;
                    // A catalog that fits one page reads in SKU order, as `all` does.
                    products.sort_by(|a, b| a.sku.cmp(&b.sku));
                    return Ok((products, next));
                }
            }
        }
    }
}
