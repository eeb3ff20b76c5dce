//! The product catalog and its stock: prices for the API, and the stock moves inventory
//! (reservations, releases, sales) and operators (listings, receipts, write-offs) make
//! inside the transactions that append their events.
//!
//! One item per SKU: `sku`, `name`, `priceAmount`, `currency`, `description`,
//! `available`, `reserved`, `sold`, and `shards` when its stock is spread over more
//! items than its own: then `<sku>#1` … `<sku>#<shards-1>` each hold `shardOf`,
//! `shards` and their own three counters, and the product's counters are the sums
//! ([`Layout`]). Stock is conserved: every move takes from one
//! counter what it adds to another, or enters or leaves through a receipt or write-off
//! recorded on the product's stream, under a condition, in the same transaction as the
//! event that records it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
pub use orderflow_app::Product;
use orderflow_app::stock::{MAX_STOCK_SHARDS, ReshardError};
use orderflow_app::{Catalog, EventRecord, MoveError, Once, StockLedger, StockMove, StoreError, StreamId};
use orderflow_domain::Sku;
use orderflow_domain::inventory::StockLine;
use orderflow_domain::product::ProductDetails;

use crate::event_store::dynamodb::{EffectsError, MAX_TRANSACTION_ACTIONS};
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

/// The item of shard `shard` of `sku`'s stock: the product's own for shard 0, else
/// `<sku>#<shard>` (`#` is never in a SKU, so the two cannot meet).
fn shard_key(sku: &Sku, shard: u32) -> HashMap<String, AttributeValue> {
    if shard == 0 {
        key(sku)
    } else {
        HashMap::from([("sku".to_owned(), AttributeValue::S(format!("{sku}#{shard}")))])
    }
}

/// A number attribute of `item` (0 when absent: counters an older build did not write).
fn counter(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
        _ => 0,
    }
}

/// How many items `item`'s product spreads its stock over (1 when it says nothing).
fn shards_of(item: &HashMap<String, AttributeValue>) -> u32 {
    u32::try_from(counter(item, "shards")).unwrap_or(1).max(1)
}

/// The counters of one item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Units free to reserve.
    pub available: u64,
    /// Units held for orders.
    pub reserved: u64,
    /// Units sold.
    pub sold: u64,
}

impl Counters {
    fn of(item: &HashMap<String, AttributeValue>) -> Self {
        Self {
            available: counter(item, "available"),
            reserved: counter(item, "reserved"),
            sold: counter(item, "sold"),
        }
    }

    /// Adds these counters to `product`'s.
    fn add_to(&self, product: &mut Product) {
        product.available += self.available;
        product.reserved += self.reserved;
        product.sold += self.sold;
    }

    const fn get(&self, name: Counter) -> u64 {
        match name {
            Counter::Available => self.available,
            Counter::Reserved => self.reserved,
            Counter::Sold => self.sold,
        }
    }
}

/// One of an item's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Counter {
    Available,
    Reserved,
    Sold,
}

impl Counter {
    const fn name(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Reserved => "reserved",
            Self::Sold => "sold",
        }
    }
}

/// What a stock move does to the counters of the item it lands on.
#[derive(Debug, Clone, Copy)]
enum Change {
    /// From one counter to another.
    Shift(Counter, Counter),
    /// Into available (a receipt).
    In,
    /// Out of available (a write-off).
    Out,
}

impl Change {
    /// What `stock_move` changes and by how many units (`None`: a listing, which is
    /// not a counter change on a shard).
    fn of(stock_move: &StockMove) -> Option<(Self, u64)> {
        let units = |line: &StockLine| u64::from(line.quantity.get());
        match stock_move {
            StockMove::Reserve(line) => {
                Some((Self::Shift(Counter::Available, Counter::Reserved), units(line)))
            }
            StockMove::Release(line) => {
                Some((Self::Shift(Counter::Reserved, Counter::Available), units(line)))
            }
            StockMove::Sell(line) => Some((Self::Shift(Counter::Reserved, Counter::Sold), units(line))),
            StockMove::Receive { quantity, .. } => Some((Self::In, *quantity)),
            StockMove::WriteOff { quantity, .. } => Some((Self::Out, *quantity)),
            StockMove::Describe { .. } => None,
        }
    }

    /// The counter it takes from, if any.
    const fn from(self) -> Option<Counter> {
        match self {
            Self::Shift(from, _) => Some(from),
            Self::Out => Some(Counter::Available),
            Self::In => None,
        }
    }
}

/// A SKU's stock item by item, read strongly consistent: the product's own item is
/// shard 0; `None` where a shard's item is missing (only ever by hand: `orderflow
/// check` names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Each shard's counters, by shard.
    pub items: Vec<Option<Counters>>,
}

impl Layout {
    /// How many shards the product says it has.
    #[must_use]
    pub fn shards(&self) -> u32 {
        u32::try_from(self.items.len()).unwrap_or(u32::MAX)
    }

    /// The counters summed over every shard.
    #[must_use]
    pub fn total(&self) -> Counters {
        self.items
            .iter()
            .flatten()
            .fold(Counters::default(), |sum, c| Counters {
                available: sum.available + c.available,
                reserved: sum.reserved + c.reserved,
                sold: sum.sold + c.sold,
            })
    }

    /// Where `quantity` units of `change` land: all of a receipt on `preferred`; what
    /// is taken, from `preferred` first, then from the shards holding the most.
    /// `None` when every shard together holds too little.
    fn split(&self, change: Change, quantity: u64, preferred: u32) -> Option<Vec<(u32, u64)>> {
        let present = |shard: u32| self.items.get(shard as usize).copied().flatten();
        let Some(from) = change.from() else {
            let shard = if present(preferred).is_some() {
                preferred
            } else {
                0
            };
            return Some(vec![(shard, quantity)]);
        };
        let mut order: Vec<(u32, u64)> = (0..self.shards())
            .filter_map(|shard| present(shard).map(|c| (shard, c.get(from))))
            .collect();
        order.sort_by_key(|&(shard, held)| (shard != preferred, std::cmp::Reverse(held), shard));
        let mut left = quantity;
        let mut parts = Vec::new();
        for (shard, held) in order {
            if left == 0 {
                break;
            }
            let take = held.min(left);
            if take > 0 {
                parts.push((shard, take));
                left -= take;
            }
        }
        (left == 0).then_some(parts)
    }
}

/// The shard a stream's moves on `sku` go to first: the same for an order's
/// reservation, release and sale (so a release finds its units where they were
/// reserved), spread across orders.
fn preferred_shard(stream: &StreamId, sku: &Sku, shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    // FNV-1a: stable across processes and builds, unlike the standard hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in stream
        .to_string()
        .bytes()
        .chain([b'/'])
        .chain(sku.as_str().bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    u32::try_from(hash % u64::from(shards)).unwrap_or(0)
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
    fn counter_update(
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
    fn describe(
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
    async fn gather(
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

/// Inventory's ledger in DynamoDB: the events and the counter updates in one
/// `TransactWriteItems`.
///
/// A product's stock may be spread over several items ([`DynamoCatalog::reshard`]),
/// so that one popular SKU's moves are not all writes to one item. A move goes to the
/// shard its stream prefers; when that shard holds too little, or the layout changed
/// under it, the ledger reads the product's shards and spreads the move over those
/// that hold stock, in the same transaction. A move is refused only when every shard
/// together holds too little. How many shards each product has is remembered from
/// what the ledger has read; a move made against a layout that changed fails its
/// condition (`shards`) and is planned again.
#[derive(Debug, Clone)]
pub struct DynamoStockLedger {
    store: DynamoEventStore,
    catalog: DynamoCatalog,
    shards: Arc<Mutex<HashMap<Sku, u32>>>,
    /// Where [`Once`] claims are put: the idempotency table (`id`, `expiration`).
    claims: Option<String>,
}

/// How many times a move is planned again against what the ledger read before the
/// append goes back to its caller as a conflict (which re-decides).
const PLAN_ROUNDS: u32 = 6;

/// How many times one append gathers split moves' units before it goes back to its
/// caller as a conflict (stock kept moving under each gathering).
const GATHER_ROUNDS: u32 = 4;

/// How many products' shard counts a ledger remembers before it starts again.
const REMEMBERED: usize = 10_000;

/// What one effect of a planned transaction stands for.
#[derive(Debug, Clone, Copy)]
struct Owner {
    /// The move's position.
    index: usize,
    /// The shard it lands on.
    shard: u32,
    /// The shards the plan assumed.
    shards: u32,
}

impl DynamoStockLedger {
    /// The ledger over the event store and the catalog table.
    #[must_use]
    pub fn new(store: DynamoEventStore, catalog: DynamoCatalog) -> Self {
        Self {
            store,
            catalog,
            shards: Arc::default(),
            claims: None,
        }
    }

    /// Claims commands' [`Once`] in `table` (the idempotency table: `id` its key,
    /// `expiration` its TTL), as `applied#<key>` items.
    #[must_use]
    pub fn with_claims(mut self, table: impl Into<String>) -> Self {
        self.claims = Some(table.into());
        self
    }

    /// The `Put` that claims `once`: it fails its condition if the claim exists.
    fn claim(&self, once: &Once) -> Result<TransactWriteItem, MoveError> {
        let store = |e: StoreError| MoveError::Append(orderflow_app::AppendError::Store(e));
        let table = self.claims.as_deref().ok_or_else(|| {
            store(StoreError::new(
                "claim a command",
                "this ledger has no claims table (DynamoStockLedger::with_claims)",
            ))
        })?;
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(table)
            .item("id", AttributeValue::S(format!("applied#{}", once.key)))
            .item(
                "expiration",
                AttributeValue::N(once.expires_at.as_jiff().as_second().to_string()),
            )
            .condition_expression("attribute_not_exists(id)")
            .build()
            .map_err(|e| store(StoreError::new("build a claim", e)))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Appends with moves, and with the claim of `once` when given.
    async fn append(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
        moves: &[StockMove],
        once: Option<&Once>,
    ) -> Result<(), MoveError> {
        let claim = once.map(|once| self.claim(once)).transpose()?;
        let mut read: HashMap<Sku, Layout> = HashMap::new();
        let mut gathered = 0;
        for round in 0..PLAN_ROUNDS {
            let (mut effects, owners) = loop {
                let (effects, owners) = self.plan(stream, moves, &read)?;
                if effects.len() + events.len() + usize::from(claim.is_some()) <= MAX_TRANSACTION_ACTIONS {
                    break (effects, owners);
                }
                // Split over too many shards for one transaction: gather each split
                // move's units on its stream's shard, then plan again (one part each).
                gathered += 1;
                if gathered > GATHER_ROUNDS {
                    return Err(MoveError::Append(orderflow_app::AppendError::Conflict {
                        stream: stream.clone(),
                        expected_version,
                    }));
                }
                self.gather_split(stream, moves, &owners, &mut read).await?;
            };
            // The claim goes after the moves' effects, so their indexes stay the owners'.
            let claimed_at = claim.as_ref().map(|claim| {
                effects.push(claim.clone());
                effects.len() - 1
            });
            let failed = match self
                .store
                .append_with_planned_effects(stream, expected_version, events, effects, round)
                .await
            {
                Ok(()) => return Ok(()),
                Err(EffectsError::Append(e)) => return Err(MoveError::Append(e)),
                Err(EffectsError::Effect { index, .. }) if Some(index) == claimed_at => {
                    return Err(MoveError::AlreadyApplied);
                }
                Err(EffectsError::Effect { index, item }) => (owners[index], item),
            };
            let (owner, item) = failed;
            let refused = |unknown| MoveError::Refused {
                index: owner.index,
                unknown,
            };
            match item.as_ref().map(shards_of) {
                // The product's own item is missing: no such product.
                None if owner.shard == 0 => return Err(refused(true)),
                // One item, as assumed, and too little on it.
                Some(1) if owner.shards == 1 => return Err(refused(false)),
                // A shard short of units, or a layout other than the one assumed: read
                // the product's shards and plan again.
                _ => {}
            }
            let sku = moves[owner.index].sku();
            let layout = self
                .catalog
                .layout(sku)
                .await
                .map_err(|e| MoveError::Append(orderflow_app::AppendError::Store(e)))?
                .ok_or(refused(true))?;
            self.remember(sku, layout.shards());
            read.insert(sku.clone(), layout);
        }
        // Stock kept moving under every plan: the caller loads and decides again.
        Err(MoveError::Append(orderflow_app::AppendError::Conflict {
            stream: stream.clone(),
            expected_version,
        }))
    }

    /// For each move `owners` shows split over several shards, gathers its units on
    /// the shard its stream prefers, and reads the product's layout again into `read`.
    async fn gather_split(
        &self,
        stream: &StreamId,
        moves: &[StockMove],
        owners: &[Owner],
        read: &mut HashMap<Sku, Layout>,
    ) -> Result<(), MoveError> {
        let store = |e: StoreError| MoveError::Append(orderflow_app::AppendError::Store(e));
        // Units each (product, counter) must have on its preferred shard.
        let mut wanted: HashMap<(Sku, Counter), u64> = HashMap::new();
        for (index, stock_move) in moves.iter().enumerate() {
            if owners.iter().filter(|o| o.index == index).count() < 2 {
                continue;
            }
            if let Some((change, quantity)) = Change::of(stock_move)
                && let Some(counter) = change.from()
            {
                *wanted.entry((stock_move.sku().clone(), counter)).or_default() += quantity;
            }
        }
        for ((sku, counter), units) in wanted {
            let Some(layout) = read.get(&sku) else { continue };
            let to = preferred_shard(stream, &sku, layout.shards());
            let held = layout
                .items
                .get(to as usize)
                .copied()
                .flatten()
                .map_or(0, |c| c.get(counter));
            if units > held {
                self.catalog
                    .gather(&sku, counter, to, units - held, layout)
                    .await
                    .map_err(store)?;
            }
            let layout = self
                .catalog
                .layout(&sku)
                .await
                .map_err(store)?
                .ok_or(MoveError::Refused {
                    index: moves.iter().position(|m| m.sku() == &sku).unwrap_or(0),
                    unknown: true,
                })?;
            read.insert(sku, layout);
        }
        Ok(())
    }

    fn remembered(&self, sku: &Sku) -> u32 {
        self.shards
            .lock()
            .map_or(1, |known| known.get(sku).copied().unwrap_or(1))
    }

    fn remember(&self, sku: &Sku, shards: u32) {
        if let Ok(mut known) = self.shards.lock() {
            if known.len() >= REMEMBERED {
                known.clear();
            }
            known.insert(sku.clone(), shards);
        }
    }

    /// The transaction's effects for `moves`: each on its stream's shard, or spread
    /// over the shards of a product whose layout was read this time (`read`).
    fn plan(
        &self,
        stream: &StreamId,
        moves: &[StockMove],
        read: &HashMap<Sku, Layout>,
    ) -> Result<(Vec<TransactWriteItem>, Vec<Owner>), MoveError> {
        let store = |e: StoreError| MoveError::Append(orderflow_app::AppendError::Store(e));
        let mut effects = Vec::with_capacity(moves.len());
        let mut owners = Vec::with_capacity(moves.len());
        for (index, stock_move) in moves.iter().enumerate() {
            let sku = stock_move.sku();
            let Some((change, quantity)) = Change::of(stock_move) else {
                if let StockMove::Describe {
                    details, received, ..
                } = stock_move
                {
                    effects.push(self.catalog.describe(sku, details, *received).map_err(store)?);
                    owners.push(Owner {
                        index,
                        shard: 0,
                        shards: 0,
                    });
                }
                continue;
            };
            let (shards, parts) = match read.get(sku) {
                Some(layout) => {
                    let shards = layout.shards();
                    let parts = layout
                        .split(change, quantity, preferred_shard(stream, sku, shards))
                        .ok_or(MoveError::Refused {
                            index,
                            unknown: false,
                        })?;
                    (shards, parts)
                }
                None => {
                    let shards = self.remembered(sku);
                    (shards, vec![(preferred_shard(stream, sku, shards), quantity)])
                }
            };
            for (shard, units) in parts {
                effects.push(
                    self.catalog
                        .counter_update(sku, shard, shards, change, units)
                        .map_err(store)?,
                );
                owners.push(Owner { index, shard, shards });
            }
        }
        Ok((effects, owners))
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
        self.append(stream, expected_version, events, moves, None).await
    }

    async fn append_with_moves_once(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
        moves: &[StockMove],
        once: &Once,
    ) -> Result<(), MoveError> {
        self.append(stream, expected_version, events, moves, Some(once))
            .await
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
    ) -> Result<(), MoveError> {
        self.append(stream, expected_version, events, moves, None)
    }

    async fn append_with_moves_once(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
        moves: &[StockMove],
        once: &Once,
    ) -> Result<(), MoveError> {
        self.append(stream, expected_version, events, moves, Some(once))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    fn layout(available: &[Option<u64>]) -> Layout {
        Layout {
            items: available
                .iter()
                .map(|a| {
                    a.map(|available| Counters {
                        available,
                        reserved: 1,
                        sold: 0,
                    })
                })
                .collect(),
        }
    }

    #[test]
    fn a_move_takes_from_its_shard_first_then_from_the_fullest() {
        let reserve = Change::Shift(Counter::Available, Counter::Reserved);
        let shards = layout(&[Some(1), Some(5), Some(3), None]);
        assert_eq!(shards.split(reserve, 2, 2), Some(vec![(2, 2)]));
        assert_eq!(shards.split(reserve, 6, 2), Some(vec![(2, 3), (1, 3)]));
        assert_eq!(shards.split(reserve, 9, 0), Some(vec![(0, 1), (1, 5), (2, 3)]));
        assert_eq!(shards.split(reserve, 10, 0), None, "nine units in all");
        // A release takes from reserved (one on each shard that exists).
        let release = Change::Shift(Counter::Reserved, Counter::Available);
        assert_eq!(shards.split(release, 3, 1), Some(vec![(1, 1), (0, 1), (2, 1)]));
        // A receipt lands whole on its shard, or on the product's own if that is missing.
        assert_eq!(shards.split(Change::In, 7, 1), Some(vec![(1, 7)]));
        assert_eq!(shards.split(Change::In, 7, 3), Some(vec![(0, 7)]));
        assert_eq!(
            shards.total(),
            Counters {
                available: 9,
                reserved: 3,
                sold: 0
            }
        );
    }

    #[test]
    fn an_orders_moves_prefer_one_shard_and_orders_spread_over_all() {
        let sku = Sku::parse("SKU-1").unwrap();
        let stream = |n: u32| StreamId::new("inventory", format!("order-{n}"));
        assert_eq!(preferred_shard(&stream(1), &sku, 1), 0);
        assert_eq!(
            preferred_shard(&stream(7), &sku, 8),
            preferred_shard(&stream(7), &sku, 8)
        );
        let mut hits = [0_u32; 4];
        for n in 0..400 {
            hits[preferred_shard(&stream(n), &sku, 4) as usize] += 1;
        }
        assert!(hits.iter().all(|&h| (60..=140).contains(&h)), "{hits:?}");
    }
}
