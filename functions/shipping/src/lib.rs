//! Shipping: on `OrderConfirmed`, create a shipment with a tracking number; on
//! `OrderCancelled`, cancel it, or leave a tombstone so a late confirmation ships
//! nothing.

use orderflow_adapters::config::{Config, ConfigError};
use orderflow_adapters::event_store::DynamoEventStore;
use orderflow_app::Failure;
use orderflow_app::{Clock, CommandService, EventStore, Repository, SystemClock};
use orderflow_domain::order::OrderEvent;
use orderflow_domain::schema::Reads;
use orderflow_domain::shipment::{Shipment, ShipmentCommand, ShipmentCreated};
use orderflow_domain::{DomainEvent, Envelope, Metadata, OrderId};
use orderflow_lambda::{Consumer, FromConfig, Recorded};

/// Who records shipping's events.
pub const ACTOR: &str = "service:shipping";

/// The events it reads, each up to the schema version it was built for: the contract
/// gate fails when a producer would write a newer one or the template routes another.
pub const READS: &[Reads] = &[
    Reads::new(orderflow_domain::order::events::names::CONFIRMED, 1),
    Reads::new(orderflow_domain::order::events::names::CANCELLED, 1),
];

/// The carrier's tracking number for an order: stable, so a retried creation that
/// races itself names the same parcel.
#[must_use]
pub fn tracking_number(order_id: OrderId) -> String {
    let hex = order_id.as_uuid().simple().to_string().to_uppercase();
    format!("OF{}", &hex[hex.len() - 16..])
}

/// The shipping service.
#[derive(Debug, Clone)]
pub struct ShippingService<C, S = DynamoEventStore> {
    commands: CommandService<S, C>,
}

impl<C: Clock, S: EventStore> ShippingService<C, S> {
    /// The service over the event store.
    pub const fn new(repository: Repository<S>, clock: C) -> Self {
        Self {
            commands: CommandService::new(repository, clock, orderflow_app::command::DEFAULT_MAX_ATTEMPTS),
        }
    }
}

impl<C: Clock + 'static, S: EventStore + 'static> Consumer for ShippingService<C, S> {
    const NAME: &'static str = "shipping";
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
        let order_id = OrderId::parse(&envelope.aggregate_id)
            .map_err(|e| Failure::poison_while("reading the order id", e))?;
        let command = match &envelope.data {
            OrderEvent::Confirmed(_) => ShipmentCommand::Create(ShipmentCreated {
                order_id,
                shipment_id: format!("shp_{order_id}"),
                tracking_number: tracking_number(order_id),
            }),
            OrderEvent::Cancelled(_) => ShipmentCommand::Cancel { order_id },
            other => {
                return Err(Failure::poison(format!(
                    "shipping does not handle {}",
                    other.event_type()
                )));
            }
        };
        let executed = self
            .commands
            .execute::<Shipment>(&order_id.to_string(), command, &metadata, None)
            .await?;
        Ok(Recorded::of(&executed.events))
    }
}

impl FromConfig for ShippingService<SystemClock> {
    fn build(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self::new(config.repository()?, SystemClock))
    }
}
