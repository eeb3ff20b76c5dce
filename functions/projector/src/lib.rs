//! The projector: keeps the order read model (one view per order and the by-customer
//! index) from the order events on its queue.
//!
//! Correct under duplicates and any delivery order. The stored view carries the
//! version of the last event folded in: an event at or below it changes nothing; the
//! next version is folded onto the stored projection; an event beyond it (a gap: an
//! earlier event is late or lost) makes the projector read what it lacks from the
//! event store, so a view never skips an event. Writes are conditional on the stored
//! version being lower, so a view never goes backward. The fold is
//! [`OrderProjection::apply`], the same one a rebuild uses.

use orderflow_adapters::config::{Config, ConfigError};
use orderflow_adapters::event_store::DynamoEventStore;
use orderflow_adapters::read_model::DynamoOrderViews;
use orderflow_app::Failure;
use orderflow_app::{EventStore, OrderViews, Repository, Written};
use orderflow_domain::order::view::{Applied, OrderProjection};
use orderflow_domain::order::{Order, OrderEvent};
use orderflow_domain::schema::Reads;
use orderflow_domain::{Envelope, Metadata, OrderId};
use orderflow_lambda::{Consumer, FromConfig};

/// The projector's name in logs (it records no events).
pub const ACTOR: &str = "service:projector";

/// The events it reads, each up to the schema version it was built for: the contract
/// gate fails when a producer would write a newer one or the template routes another.
pub const READS: &[Reads] = &[
    Reads::new(orderflow_domain::order::events::names::PLACED, 3),
    Reads::new(orderflow_domain::order::events::names::STOCK_RESERVED, 1),
    Reads::new(
        orderflow_domain::order::events::names::STOCK_RESERVATION_FAILED,
        1,
    ),
    Reads::new(orderflow_domain::order::events::names::PAYMENT_CAPTURED, 1),
    Reads::new(orderflow_domain::order::events::names::PAYMENT_DECLINED, 1),
    Reads::new(orderflow_domain::order::events::names::CONFIRMED, 1),
    Reads::new(orderflow_domain::order::events::names::SHIPMENT_RECORDED, 1),
    Reads::new(orderflow_domain::order::events::names::FULFILMENT_ADVANCED, 1),
    Reads::new(orderflow_domain::order::events::names::CANCELLED, 1),
    Reads::new(orderflow_domain::order::events::names::PAYMENT_REFUNDED, 1),
    Reads::new(orderflow_domain::order::events::names::STOCK_RELEASED, 1),
    Reads::new(orderflow_domain::order::events::names::SHIPMENT_CANCELLED, 1),
];

/// What projecting one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The view moved forward by this event alone.
    Applied,
    /// The view was behind by more than one event and caught up from the store.
    CaughtUp {
        /// How many events were read from the store.
        read: usize,
    },
    /// Already in the view (a duplicate or a late copy).
    Duplicate,
}

/// Folds an order's events into its view: over any event store and any read model
/// (DynamoDB in Lambda, the in-memory twins in tests).
#[derive(Debug, Clone)]
pub struct Projector<S = DynamoEventStore, V = DynamoOrderViews> {
    repository: Repository<S>,
    views: V,
}

impl<S: EventStore + 'static, V: OrderViews + 'static> Consumer for Projector<S, V> {
    const NAME: &'static str = "projector";
    const ACTOR: &'static str = ACTOR;
    type Event = OrderEvent;
    type Outcome = Outcome;

    async fn on(&self, envelope: Envelope<OrderEvent>, _metadata: Metadata) -> Result<Outcome, Failure> {
        self.project(&envelope).await
    }
}

impl FromConfig for Projector {
    fn build(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self::new(
            config.repository()?,
            DynamoOrderViews::new(config.dynamodb.clone(), config.required("ORDER_VIEW_TABLE")?),
        ))
    }
}

impl<S: EventStore, V: OrderViews> Projector<S, V> {
    /// The projector over the event store and the views.
    pub const fn new(repository: Repository<S>, views: V) -> Self {
        Self { repository, views }
    }

    /// Brings the view of the event's order up to at least the event's version.
    ///
    /// # Errors
    /// [`Failure::poison`] for an event that is not of an order; [`Failure::retry`]
    /// when a store fails or does not hold the event yet.
    pub async fn project(&self, envelope: &Envelope<OrderEvent>) -> Result<Outcome, Failure> {
        let order_id = OrderId::parse(&envelope.aggregate_id)
            .map_err(|e| Failure::poison_while("reading the order id", e))?;
        let stored = self.views.get(order_id).await?;
        let mut projection = match stored {
            Some(stored) => match stored.projection {
                Some(projection) => projection,
                None if stored.view.version >= envelope.version => return Ok(Outcome::Duplicate),
                // Written by another state schema: fold the order again from the start.
                None => OrderProjection::default(),
            },
            None => OrderProjection::default(),
        };
        let outcome = match projection.apply(envelope) {
            Applied::AlreadySeen => return Ok(Outcome::Duplicate),
            Applied::Folded => Outcome::Applied,
            Applied::Gap { expected } => {
                let missing = self
                    .repository
                    .history_after::<Order>(&envelope.aggregate_id, expected - 1)
                    .await
                    .map_err(|e| Failure::retry_while("catching up from the event store", e))?;
                for event in &missing {
                    if projection.apply(event) != Applied::Folded {
                        return Err(Failure::retry(format!(
                            "the event store returned version {} after {}",
                            event.version, projection.version
                        )));
                    }
                }
                if projection.version < envelope.version {
                    return Err(Failure::retry(format!(
                        "the event store holds {} events, the message is version {}",
                        projection.version, envelope.version
                    )));
                }
                tracing::info!(
                    from = expected,
                    to = projection.version,
                    "gap: caught up from the event store"
                );
                Outcome::CaughtUp { read: missing.len() }
            }
        };
        match self.views.put(&projection).await? {
            Written::Updated => Ok(outcome),
            // Another delivery got there first with this version or a later one.
            Written::AlreadyCurrent => Ok(Outcome::Duplicate),
        }
    }

    /// Folds an order's whole history from the store into its view (a rebuild): the
    /// same [`OrderProjection::apply`] the live path uses, and the same conditional
    /// write, so a rebuild racing the live projector can only move a view forward.
    ///
    /// # Errors
    /// When the store fails or holds a gap.
    pub async fn rebuild(&self, order_id: OrderId) -> Result<Written, Failure> {
        let history = self
            .repository
            .history::<Order>(&order_id.to_string())
            .await
            .map_err(|e| Failure::retry_while(format!("reading {order_id}"), e))?;
        let mut projection = OrderProjection::default();
        for event in &history {
            if projection.apply(event) != Applied::Folded {
                return Err(Failure::poison(format!(
                    "{order_id}: version {} after {}",
                    event.version, projection.version
                )));
            }
        }
        Ok(self.views.put(&projection).await?)
    }
}
