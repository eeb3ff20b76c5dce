//! Stock: the catalog's counters move only in the commit that records the move.
//!
//! Two ports. [`Catalog`] reads and lists products (prices for placement, counters for
//! the checker). [`StockLedger`] appends a stream's events together with the stock
//! moves they stand for, all or nothing, so a retry can never repeat a move: the move
//! and the record of it commit together. [`execute_with_moves`] is command handling
//! over both: decide, append with the moves, re-decide after a lost race.

use std::collections::HashMap;
use std::future::Future;

use orderflow_domain::inventory::StockLine;
use orderflow_domain::{Aggregate, Currency, Envelope, Metadata, Money, Sku};
use serde::{Deserialize, Serialize};

use crate::command::{CommandError, Repository, envelopes};
use crate::ports::{AppendError, Clock, EventRecord, EventStore, StoreError, StreamId};

/// How many times a command is re-decided after losing a race.
const ATTEMPTS: u32 = 5;

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
    /// A product newly listed at `price` with `available` units in stock, none reserved
    /// or sold.
    #[must_use]
    pub fn listed(sku: Sku, name: impl Into<String>, price: Money, available: u64) -> Self {
        Self {
            sku,
            name: name.into(),
            price_amount: price.amount,
            currency: price.currency,
            available,
            reserved: 0,
            sold: 0,
        }
    }

    /// The unit price.
    #[must_use]
    pub const fn price(&self) -> Money {
        Money::new(self.price_amount, self.currency)
    }
}

/// The product catalog: prices and stock counters.
pub trait Catalog: Send + Sync {
    /// Writes a product whole (seeding, operators' tools).
    fn put(&self, product: &Product) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The products among `skus` that exist (strongly consistent reads).
    fn products(
        &self,
        skus: &[Sku],
    ) -> impl Future<Output = Result<HashMap<Sku, Product>, StoreError>> + Send;

    /// Every product, by SKU.
    fn all(&self) -> impl Future<Output = Result<Vec<Product>, StoreError>> + Send;
}

/// A move between a product's counters. Stock is conserved: a move takes from one
/// counter what it adds to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StockMove {
    /// From available to reserved, if that many are available.
    Reserve(StockLine),
    /// From reserved back to available, if that many are reserved.
    Release(StockLine),
}

impl StockMove {
    /// The SKU and quantity moved.
    #[must_use]
    pub const fn line(&self) -> &StockLine {
        match self {
            Self::Reserve(line) | Self::Release(line) => line,
        }
    }
}

/// Why an append with stock moves did not happen. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// Move `index` found too little stock, or no such product.
    #[error("stock move {index} refused: {}", if *.unknown { "no such product" } else { "not enough stock" })]
    Refused {
        /// Position in the moves given.
        index: usize,
        /// The product does not exist.
        unknown: bool,
    },
    /// The append itself failed: another writer got there first, or the store failed.
    #[error(transparent)]
    Append(#[from] AppendError),
}

/// Appends events together with the stock moves they record, atomically.
pub trait StockLedger: Send + Sync {
    /// The event store the ledger appends to (the one the aggregate is loaded from).
    type Store: EventStore;

    /// Its event store.
    fn store(&self) -> &Self::Store;

    /// Appends `events` at `expected_version` and applies `moves`, or nothing at all.
    /// The same append again (the same event ids at the same versions) succeeds without
    /// moving stock twice.
    ///
    /// # Errors
    /// [`MoveError::Refused`] names the move that failed its condition;
    /// [`AppendError::Conflict`] when another writer appended first.
    fn append_with_moves(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
        moves: &[StockMove],
    ) -> impl Future<Output = Result<(), MoveError>> + Send;
}

/// What happened to a command with stock moves.
#[derive(Debug)]
pub enum Applied<E> {
    /// The events were appended and their moves applied (empty: a duplicate).
    Done(Vec<Envelope<E>>),
    /// Move `index` was refused; nothing was written.
    Refused {
        /// Which move.
        index: usize,
        /// The product does not exist.
        unknown: bool,
    },
}

/// Decides `command` on the aggregate and commits the events with the stock moves
/// `moves_for` derives from them, re-deciding when another writer got there first.
///
/// # Errors
/// [`CommandError`]: the domain refused, the stream cannot be loaded, the store
/// failed, or every attempt lost its race.
pub async fn execute_with_moves<A, L, C>(
    repository: &Repository<L::Store>,
    ledger: &L,
    clock: &C,
    aggregate_id: &str,
    command: A::Command,
    metadata: &Metadata,
    moves_for: impl Fn(&[A::Event]) -> Vec<StockMove>,
) -> Result<Applied<A::Event>, CommandError<A::Error>>
where
    A: Aggregate,
    L: StockLedger,
    C: Clock,
{
    let stream = StreamId::new(A::TYPE, aggregate_id);
    for _ in 0..ATTEMPTS {
        let loaded = repository.load::<A>(aggregate_id).await?;
        let decided = A::decide(&loaded.state, command.clone()).map_err(CommandError::Domain)?;
        if decided.is_empty() {
            return Ok(Applied::Done(Vec::new()));
        }
        let moves = moves_for(&decided);
        let envelopes = envelopes::<A>(
            clock,
            aggregate_id,
            loaded.version,
            decided,
            metadata,
            loaded.stamp(clock.now()),
        );
        let records: Vec<_> = envelopes.iter().map(EventRecord::from_envelope).collect();
        match ledger
            .append_with_moves(&stream, loaded.version, &records, &moves)
            .await
        {
            Ok(()) => return Ok(Applied::Done(envelopes)),
            Err(MoveError::Refused { index, unknown }) => return Ok(Applied::Refused { index, unknown }),
            Err(MoveError::Append(AppendError::Conflict { .. })) => {
                tracing::debug!(%stream, "lost an append race; re-deciding");
            }
            Err(MoveError::Append(AppendError::Store(e))) => return Err(CommandError::Store(e)),
            Err(MoveError::Append(other)) => return Err(CommandError::Rejected(other)),
        }
    }
    Err(CommandError::Contention { attempts: ATTEMPTS })
}
