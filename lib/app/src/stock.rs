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
use orderflow_domain::product::{self, ProductCommand, ProductDetails, ProductError, ProductEvent};
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
    /// Longer text, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How many items its stock counters are spread over (1: the product's own). The
    /// counters above are the sums over them ([`Catalog::reshard`]).
    #[serde(default = "one_shard", skip_serializing_if = "is_one_shard")]
    pub shards: u32,
}

const fn one_shard() -> u32 {
    1
}

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
const fn is_one_shard(shards: &u32) -> bool {
    *shards == 1
}

/// The most items one SKU's stock may be spread over: gathering a move's units from
/// every shard onto one is one transaction of at most this many actions (a move that
/// would otherwise carry its transaction past 100 is gathered first).
pub const MAX_STOCK_SHARDS: u32 = 32;

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
            description: None,
            shards: 1,
        }
    }

    /// Its name, price and description.
    #[must_use]
    pub fn details(&self) -> ProductDetails {
        ProductDetails {
            name: self.name.clone(),
            price: self.price(),
            description: self.description.clone(),
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

    /// Spreads `sku`'s stock over `shards` items (1: back onto one), so that one
    /// popular product's moves are not all writes to one item; every counter's total
    /// is what it was, and its product reads the same. Also evens out shards that moves
    /// have left uneven. Nothing is changed when it fails.
    ///
    /// # Errors
    /// [`ReshardError`].
    fn reshard(&self, sku: &Sku, shards: u32) -> impl Future<Output = Result<Product, ReshardError>> + Send;

    /// Every product, by SKU.
    fn all(&self) -> impl Future<Output = Result<Vec<Product>, StoreError>> + Send;

    /// Up to `limit` products after the position `after` names, each page sorted by SKU,
    /// and where to continue when there may be more. Together the pages hold every
    /// product once.
    fn page(
        &self,
        limit: usize,
        after: Option<&Sku>,
    ) -> impl Future<Output = Result<(Vec<Product>, Option<Sku>), StoreError>> + Send;
}

/// Why stock could not be resharded. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ReshardError {
    /// No such product.
    #[error("no such product")]
    Unknown,
    /// Too few or too many shards.
    #[error("{shards} shards: a product's stock is spread over 1 to {max} items")]
    OutOfRange {
        /// Asked for.
        shards: u32,
        /// The most.
        max: u32,
    },
    /// Stock kept moving while it was read.
    #[error("stock kept moving; tried {attempts} times")]
    Contended {
        /// How many times.
        attempts: u32,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A change to a product's entry. Stock is conserved: a move between counters takes
/// from one what it adds to another, and units only enter or leave the counters
/// through a receipt or a write-off, each recorded on the product's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StockMove {
    /// From available to reserved, if that many are available.
    Reserve(StockLine),
    /// From reserved back to available, if that many are reserved.
    Release(StockLine),
    /// From reserved to sold, if that many are reserved.
    Sell(StockLine),
    /// Into available, if the product exists.
    Receive {
        /// The product.
        sku: Sku,
        /// Units.
        quantity: u64,
    },
    /// Out of available, if that many are available.
    WriteOff {
        /// The product.
        sku: Sku,
        /// Units.
        quantity: u64,
    },
    /// Lists the product with these details or changes them (its counters start at
    /// zero), and adds `received` units to available.
    Describe {
        /// The product.
        sku: Sku,
        /// Its name, price and description.
        details: ProductDetails,
        /// Units received with the listing.
        received: u64,
    },
}

impl StockMove {
    /// The product it changes.
    #[must_use]
    pub const fn sku(&self) -> &Sku {
        match self {
            Self::Reserve(line) | Self::Release(line) | Self::Sell(line) => &line.sku,
            Self::Receive { sku, .. } | Self::WriteOff { sku, .. } | Self::Describe { sku, .. } => sku,
        }
    }
}

/// A command's identity, claimed in the same transaction as its events and stock moves,
/// so that the command lands at most once however often it runs: a retry after a lost
/// answer, a crash after the commit, or a takeover of its idempotency lease finds the
/// claim and moves nothing. Placement gets the same from its stream (the order id comes
/// from the key); a stock change appends to its product's stream, so it needs this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Once {
    /// The command's key: the principal-scoped idempotency key it came with.
    pub key: String,
    /// Until when the claim is kept (the idempotency record's retention: past it, the
    /// same key is a new request).
    pub expires_at: orderflow_domain::Timestamp,
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
    /// The command's [`Once`] was claimed before: it already landed.
    #[error("this command already landed")]
    AlreadyApplied,
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

    /// Appends `events` at `expected_version`, applies `moves` and, when given, claims
    /// `once`, in one transaction: all of it, or nothing. The same append again (the
    /// same event ids at the same versions) succeeds without moving stock twice.
    ///
    /// # Errors
    /// [`MoveError::Refused`] names the move that failed its condition;
    /// [`MoveError::AlreadyApplied`] when `once` was claimed before (nothing written);
    /// [`AppendError::Conflict`] when another writer appended first.
    fn append_with_moves(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
        moves: &[StockMove],
        once: Option<&Once>,
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
/// `moves_for` derives from them, re-deciding when another writer got there first;
/// with `once`, at most once for that identity (a command that already landed is
/// `Applied::Done` with no events, as a duplicate is).
///
/// # Errors
/// [`CommandError`]: the domain refused, the stream cannot be loaded, the store
/// failed, or every attempt lost its race.
#[expect(
    clippy::too_many_arguments,
    reason = "the service's three parts, the command, and how it moves stock (its moves and its claim): a struct for them would be used here alone"
)]
pub async fn execute_with_moves<A, L, C>(
    repository: &Repository<L::Store>,
    ledger: &L,
    clock: &C,
    aggregate_id: &str,
    command: A::Command,
    metadata: &Metadata,
    moves_for: impl Fn(&[A::Event]) -> Vec<StockMove>,
    once: Option<&Once>,
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
        let appended = ledger
            .append_with_moves(&stream, loaded.version, &records, &moves, once)
            .await;
        match appended {
            Ok(()) => return Ok(Applied::Done(envelopes)),
            Err(MoveError::AlreadyApplied) => {
                tracing::info!(%stream, "this command already landed; nothing moved again");
                return Ok(Applied::Done(Vec::new()));
            }
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

/// The catalog's changes as their product stream records them: listing, repricing,
/// receipts and write-offs, each committed with the counters it moves.
#[derive(Debug, Clone)]
pub struct CatalogService<L: StockLedger, C> {
    repository: Repository<L::Store>,
    ledger: L,
    clock: C,
}

impl<L: StockLedger, C: Clock> CatalogService<L, C> {
    /// The service over the ledger (whose store `repository` reads).
    pub const fn new(repository: Repository<L::Store>, ledger: L, clock: C) -> Self {
        Self {
            repository,
            ledger,
            clock,
        }
    }

    /// The product's stream, for its audit trail and the checker.
    #[must_use]
    pub const fn repository(&self) -> &Repository<L::Store> {
        &self.repository
    }

    /// Lists `sku` with `details` (and `initial_stock` units, received for `reason`), or
    /// changes its details; the same details again change nothing.
    ///
    /// # Errors
    /// [`CommandError`].
    pub async fn describe(
        &self,
        sku: &Sku,
        details: ProductDetails,
        initial_stock: u64,
        reason: &str,
        metadata: &Metadata,
    ) -> Result<Applied<ProductEvent>, CommandError<ProductError>> {
        let command = ProductCommand::Describe {
            sku: sku.clone(),
            details,
            initial_stock,
            reason: reason.to_owned(),
        };
        self.run(sku, command, metadata, None).await
    }

    /// Receives (`delta` > 0) or writes off units of `sku` for `reason`; with `once`
    /// (a request's idempotency key), at most once for it, however often it runs.
    ///
    /// # Errors
    /// [`CommandError`]; a write-off of more than is available is
    /// [`Applied::Refused`].
    pub async fn adjust(
        &self,
        sku: &Sku,
        delta: i64,
        reason: &str,
        metadata: &Metadata,
        once: Option<&Once>,
    ) -> Result<Applied<ProductEvent>, CommandError<ProductError>> {
        let command = ProductCommand::Adjust {
            sku: sku.clone(),
            delta,
            reason: reason.to_owned(),
        };
        self.run(sku, command, metadata, once).await
    }

    async fn run(
        &self,
        sku: &Sku,
        command: ProductCommand,
        metadata: &Metadata,
        once: Option<&Once>,
    ) -> Result<Applied<ProductEvent>, CommandError<ProductError>> {
        execute_with_moves::<product::Product, L, C>(
            &self.repository,
            &self.ledger,
            &self.clock,
            sku.as_str(),
            command,
            metadata,
            product_moves,
            once,
        )
        .await
    }
}

/// The counter changes product events stand for: a listing and the stock received
/// with it are one change to one item (a transaction may touch an item once).
#[must_use]
pub fn product_moves(events: &[ProductEvent]) -> Vec<StockMove> {
    let mut moves: Vec<StockMove> = Vec::new();
    for event in events {
        match event {
            ProductEvent::Listed(e) => moves.push(StockMove::Describe {
                sku: e.sku.clone(),
                details: e.details.clone(),
                received: 0,
            }),
            ProductEvent::Repriced(e) => moves.push(StockMove::Describe {
                sku: e.sku.clone(),
                details: e.details.clone(),
                received: 0,
            }),
            ProductEvent::Received(e) => match moves.last_mut() {
                Some(StockMove::Describe { sku, received, .. }) if *sku == e.sku => *received += e.quantity,
                _ => moves.push(StockMove::Receive {
                    sku: e.sku.clone(),
                    quantity: e.quantity,
                }),
            },
            ProductEvent::WrittenOff(e) => moves.push(StockMove::WriteOff {
                sku: e.sku.clone(),
                quantity: e.quantity,
            }),
        }
    }
    moves
}

/// Everything wrong with one product's counters, against its stream (what entered and
/// left through operators) and the inventory streams (`held`: reserved for orders not
/// yet out for delivery; `sold`: gone with them). Empty when stock is conserved:
/// received − written off = available + reserved + sold.
#[must_use]
pub fn conservation(product: &Product, stream: &product::ProductState, held: u64, sold: u64) -> Vec<String> {
    let sku = &product.sku;
    let Some(net) = stream.net_stock() else {
        return vec![format!(
            "{sku}: in the catalog without a ProductListed on product#{sku} (written by hand?)"
        )];
    };
    let mut findings = Vec::new();
    let counted = product.available + product.reserved + product.sold;
    if net != counted {
        findings.push(format!(
            "{sku}: received − written off = {net}, but available {} + reserved {} + sold {} = {counted}",
            product.available, product.reserved, product.sold
        ));
    }
    if product.reserved != held {
        findings.push(format!(
            "{sku}: the catalog holds {} reserved, the inventory streams {held}",
            product.reserved
        ));
    }
    if product.sold != sold {
        findings.push(format!(
            "{sku}: the catalog counts {} sold, the inventory streams {sold}",
            product.sold
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use orderflow_domain::product::{ProductListed, StockReceived, StockWrittenOff};

    use super::*;

    #[test]
    fn conservation_names_every_counter_that_does_not_add_up() {
        let sku = Sku::parse("SKU-1").unwrap();
        let details = ProductDetails {
            name: "Beans".into(),
            price: Money::new(100, Currency::parse("USD").unwrap()),
            description: None,
        };
        let stream = product::ProductState::Listed {
            details: details.clone(),
            received: 12,
            written_off: 2,
        };
        let mut row = Product::listed(sku, "Beans", details.price, 5);
        row.reserved = 3;
        row.sold = 2;
        assert!(conservation(&row, &stream, 3, 2).is_empty());
        let findings = conservation(&row, &stream, 2, 3);
        assert_eq!(findings.len(), 2, "{findings:?}");
        row.available = 6;
        let findings = conservation(&row, &stream, 3, 2);
        assert!(
            findings[0].contains("received − written off = 10"),
            "{findings:?}"
        );
        let unlisted = conservation(&row, &product::ProductState::Unlisted, 3, 2);
        assert!(unlisted[0].contains("without a ProductListed"), "{unlisted:?}");
    }

    #[test]
    fn a_listing_and_its_stock_are_one_move() {
        let sku = Sku::parse("SKU-1").unwrap();
        let details = ProductDetails {
            name: "Beans".into(),
            price: Money::new(100, Currency::parse("USD").unwrap()),
            description: None,
        };
        let received = |quantity| {
            ProductEvent::Received(StockReceived {
                sku: sku.clone(),
                quantity,
                reason: "count".into(),
            })
        };
        let listed = ProductEvent::Listed(ProductListed {
            sku: sku.clone(),
            details: details.clone(),
        });
        assert_eq!(
            product_moves(&[listed, received(5)]),
            [StockMove::Describe {
                sku: sku.clone(),
                details,
                received: 5
            }]
        );
        let written_off = ProductEvent::WrittenOff(StockWrittenOff {
            sku: sku.clone(),
            quantity: 2,
            reason: "damaged".into(),
        });
        assert_eq!(
            product_moves(&[received(3), written_off]),
            [
                StockMove::Receive {
                    sku: sku.clone(),
                    quantity: 3
                },
                StockMove::WriteOff { sku, quantity: 2 }
            ]
        );
    }
}
