//! Inventory's stock ledger on DynamoDB: reservations, releases and sales, each in
//! the transaction that appends its event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use orderflow_app::{EventRecord, MoveError, Once, StockLedger, StockMove, StoreError, StreamId};
use orderflow_domain::Sku;

use crate::event_store::DynamoEventStore;
use crate::event_store::dynamodb::{EffectsError, MAX_TRANSACTION_ACTIONS};

use super::DynamoCatalog;
use super::layout::{Change, Counter, Layout, preferred_shard, shards_of};

/// Inventory's ledger in DynamoDB: the events and the counter updates in one
/// `TransactWriteItems`.
///
/// A product's stock may be spread over several items ([`Catalog::reshard`](orderflow_app::Catalog::reshard)),
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
        once: Option<&Once>,
    ) -> Result<(), MoveError> {
        self.append(stream, expected_version, events, moves, once).await
    }
}
