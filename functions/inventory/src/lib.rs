//! Inventory: on `OrderPlaced`, reserve every line (all or nothing) and record it; on
//! `OrderCancelled`, release what was reserved, or leave a tombstone so a reservation
//! arriving later is never made; when the order goes out for delivery
//! (`OrderFulfilmentAdvanced` to `OUT_FOR_DELIVERY`), move what it holds from reserved
//! to sold.
//!
//! Each stock move and its event commit in one DynamoDB transaction, so redeliveries
//! and retries cannot move stock twice.

use orderflow_adapters::catalog::{DynamoCatalog, DynamoStockLedger};
use orderflow_adapters::config::{Config, ConfigError};
use orderflow_app::Failure;
use orderflow_app::stock::{Applied, execute_with_moves};
use orderflow_app::{Clock, CommandService, Repository, StockLedger, StockMove, SystemClock};
use orderflow_domain::inventory::{Inventory, InventoryCommand, InventoryEvent, ShortageReason, StockLine};
use orderflow_domain::order::{FulfilmentStep, OrderEvent};
use orderflow_domain::schema::Reads;
use orderflow_domain::{DomainEvent, Envelope, Metadata, OrderId};
use orderflow_lambda::{Consumer, FromConfig, Recorded};

/// Who records inventory's events.
pub const ACTOR: &str = "service:inventory";

/// The events it reads, each up to the schema version it was built for: the contract
/// gate fails when a producer would write a newer one or the template routes another.
pub const READS: &[Reads] = &[
    Reads::new(orderflow_domain::order::events::names::PLACED, 3),
    Reads::new(orderflow_domain::order::events::names::CANCELLED, 1),
    Reads::new(orderflow_domain::order::events::names::FULFILMENT_ADVANCED, 1),
];

/// The inventory service, over any stock ledger (DynamoDB in AWS, memory in tests).
#[derive(Debug, Clone)]
pub struct InventoryService<C, L: StockLedger = DynamoStockLedger> {
    commands: CommandService<L::Store, C>,
    ledger: L,
}

impl<C: Clock, L: StockLedger> InventoryService<C, L> {
    /// The service over `repository` and `ledger`, which must append to the store the
    /// repository reads.
    pub const fn new(repository: Repository<L::Store>, clock: C, ledger: L) -> Self {
        Self {
            commands: CommandService::new(repository, clock, orderflow_app::command::DEFAULT_MAX_ATTEMPTS),
            ledger,
        }
    }

    /// Reserves `lines` for the order, or records which one was short.
    ///
    /// # Errors
    /// [`Failure`].
    pub async fn reserve(
        &self,
        order_id: OrderId,
        lines: Vec<StockLine>,
        metadata: &Metadata,
    ) -> Result<Recorded, Failure> {
        let id = order_id.to_string();
        let command = InventoryCommand::Reserve {
            order_id,
            lines: lines.clone(),
        };
        let applied = execute_with_moves::<Inventory, L, C>(
            self.commands.repository(),
            &self.ledger,
            self.commands.clock(),
            &id,
            command,
            metadata,
            moves,
            None,
        )
        .await?;
        match applied {
            Applied::Done(events) => {
                if events.is_empty() {
                    tracing::info!("already reserved, failed or voided; nothing to do");
                } else {
                    tracing::info!(lines = lines.len(), "stock reserved");
                }
                Ok(Recorded::of(&events))
            }
            Applied::Refused { index, unknown } => {
                let sku = lines.get(index).map(|l| l.sku.clone());
                let reason = if unknown {
                    ShortageReason::UnknownSku
                } else {
                    ShortageReason::InsufficientStock
                };
                tracing::info!(sku = ?sku, reason = reason.as_str(), "reservation failed; nothing reserved");
                let executed = self
                    .commands
                    .execute::<Inventory>(
                        &id,
                        InventoryCommand::RecordShortage {
                            order_id,
                            sku,
                            reason,
                        },
                        metadata,
                        None,
                    )
                    .await?;
                Ok(Recorded::of(&executed.events))
            }
        }
    }

    /// Sells what the order holds: reserved becomes sold. Nothing held (a duplicate, a
    /// reservation that failed) sells nothing.
    ///
    /// # Errors
    /// [`Failure`].
    pub async fn sell(&self, order_id: OrderId, metadata: &Metadata) -> Result<Recorded, Failure> {
        let applied = execute_with_moves::<Inventory, L, C>(
            self.commands.repository(),
            &self.ledger,
            self.commands.clock(),
            &order_id.to_string(),
            InventoryCommand::Sell { order_id },
            metadata,
            moves,
            None,
        )
        .await?;
        match applied {
            Applied::Done(events) => {
                if !events.is_empty() {
                    tracing::info!("reserved stock sold");
                }
                Ok(Recorded::of(&events))
            }
            Applied::Refused { index, .. } => Err(Failure::poison(format!(
                "stock of line {index} is not reserved as recorded; the catalog needs a look"
            ))),
        }
    }

    /// Releases the order's reservation, or leaves a tombstone.
    ///
    /// # Errors
    /// [`Failure`].
    pub async fn release(&self, order_id: OrderId, metadata: &Metadata) -> Result<Recorded, Failure> {
        let applied = execute_with_moves::<Inventory, L, C>(
            self.commands.repository(),
            &self.ledger,
            self.commands.clock(),
            &order_id.to_string(),
            InventoryCommand::Release { order_id },
            metadata,
            moves,
            None,
        )
        .await?;
        match applied {
            Applied::Done(events) => Ok(Recorded::of(&events)),
            // Releasing only fails its condition if the counters were tampered with.
            Applied::Refused { index, .. } => Err(Failure::poison(format!(
                "stock of line {index} is not reserved as recorded; the catalog needs a look"
            ))),
        }
    }
}

/// The stock moves the decided events stand for.
fn moves(events: &[InventoryEvent]) -> Vec<StockMove> {
    events
        .iter()
        .flat_map(|event| match event {
            InventoryEvent::Reserved(e) => e.lines.iter().cloned().map(StockMove::Reserve).collect(),
            InventoryEvent::Released(e) => e.lines.iter().cloned().map(StockMove::Release).collect(),
            InventoryEvent::Sold(e) => e.lines.iter().cloned().map(StockMove::Sell).collect(),
            InventoryEvent::ReservationFailed(_) | InventoryEvent::Voided(_) => Vec::new(),
        })
        .collect()
}

impl<C: Clock + 'static, L: StockLedger + 'static> Consumer for InventoryService<C, L> {
    const NAME: &'static str = "inventory";
    const ACTOR: &'static str = ACTOR;
    type Event = OrderEvent;
    type Outcome = Recorded;

    /// Acts on the event as the store holds it, never on a message's word.
    async fn read_back(
        &self,
        stream: &orderflow_app::StreamId,
        version: u64,
    ) -> Result<orderflow_app::ReadBack, orderflow_app::StoreError> {
        orderflow_app::provenance::read_back(self.commands.repository().store(), stream, version).await
    }

    async fn on(&self, envelope: Envelope<OrderEvent>, metadata: Metadata) -> Result<Recorded, Failure> {
        match &envelope.data {
            OrderEvent::Placed(placed) => {
                let lines = placed
                    .lines
                    .iter()
                    .map(|l| StockLine {
                        sku: l.sku.clone(),
                        quantity: l.quantity,
                    })
                    .collect();
                self.reserve(placed.order_id, lines, &metadata).await
            }
            OrderEvent::Cancelled(_) => {
                let order_id = OrderId::parse(&envelope.aggregate_id)
                    .map_err(|e| Failure::poison_while("reading the order id", e))?;
                self.release(order_id, &metadata).await
            }
            OrderEvent::FulfilmentAdvanced(advanced) => {
                if advanced.step != FulfilmentStep::OutForDelivery {
                    // The rule only routes OUT_FOR_DELIVERY; anything else moves no stock.
                    return Ok(Recorded::of::<InventoryEvent>(&[]));
                }
                let order_id = OrderId::parse(&envelope.aggregate_id)
                    .map_err(|e| Failure::poison_while("reading the order id", e))?;
                self.sell(order_id, &metadata).await
            }
            other => Err(Failure::poison(format!(
                "inventory does not handle {}",
                other.event_type()
            ))),
        }
    }
}

impl FromConfig for InventoryService<SystemClock> {
    fn build(config: &Config) -> Result<Self, ConfigError> {
        let repository = config.repository()?;
        let catalog = DynamoCatalog::new(config.dynamodb.clone(), config.required("CATALOG_TABLE")?);
        let ledger = DynamoStockLedger::new(repository.store().clone(), catalog);
        Ok(Self::new(repository, SystemClock, ledger))
    }
}
