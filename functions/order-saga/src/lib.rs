//! The order saga: records inventory's, payment's and shipping's answers on the order
//! aggregate, which confirms itself when stock and payment are both in and cancels
//! itself (with a machine-readable reason) on the first failure; then records what
//! compensation did (refund, stock release, shipment cancellation) once the order is
//! cancelled, so the customer sees it.

use orderflow_adapters::config::{Config, ConfigError};
use orderflow_adapters::event_store::DynamoEventStore;
use orderflow_app::Failure;
use orderflow_app::{Clock, CommandError, CommandService, EventStore, Repository, SystemClock};
use orderflow_domain::inventory::InventoryEvent;
use orderflow_domain::order::{Order, OrderCommand, OrderError};
use orderflow_domain::payment::PaymentEvent;
use orderflow_domain::schema::Reads;
use orderflow_domain::shipment::ShipmentEvent;
use orderflow_domain::{DecodeError, DomainEvent, Envelope, Metadata, OrderId};
use orderflow_lambda::{Consumer, FromConfig, Recorded};
use serde::Serialize;
use serde_json::value::RawValue;

/// Who records the saga's events.
pub const ACTOR: &str = "service:order-saga";

/// The events it reads, each up to the schema version it was built for: the contract
/// gate fails when a producer would write a newer one or the template routes another.
pub const READS: &[Reads] = &[
    Reads::new(orderflow_domain::inventory::names::RESERVED, 1),
    Reads::new(orderflow_domain::inventory::names::RESERVATION_FAILED, 1),
    Reads::new(orderflow_domain::inventory::names::RELEASED, 1),
    Reads::new(orderflow_domain::payment::names::CAPTURED, 1),
    Reads::new(orderflow_domain::payment::names::DECLINED, 1),
    Reads::new(orderflow_domain::payment::names::REFUNDED, 1),
    Reads::new(orderflow_domain::shipment::names::CREATED, 1),
    Reads::new(orderflow_domain::shipment::names::CANCELLED, 1),
];

/// What the saga reads: the participants' events (their type names are distinct).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Answer {
    /// Inventory's.
    Inventory(InventoryEvent),
    /// Payment's.
    Payment(PaymentEvent),
    /// Shipping's.
    Shipment(ShipmentEvent),
}

impl DomainEvent for Answer {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Inventory(e) => e.event_type(),
            Self::Payment(e) => e.event_type(),
            Self::Shipment(e) => e.event_type(),
        }
    }

    fn schema_version(&self) -> u32 {
        match self {
            Self::Inventory(e) => e.schema_version(),
            Self::Payment(e) => e.schema_version(),
            Self::Shipment(e) => e.schema_version(),
        }
    }

    fn decode(event_type: &str, version: u32, data: &RawValue) -> Result<Self, DecodeError> {
        match InventoryEvent::decode(event_type, version, data) {
            Err(DecodeError::UnknownType(_)) => {}
            decoded => return decoded.map(Self::Inventory),
        }
        match PaymentEvent::decode(event_type, version, data) {
            Err(DecodeError::UnknownType(_)) => {}
            decoded => return decoded.map(Self::Payment),
        }
        ShipmentEvent::decode(event_type, version, data).map(Self::Shipment)
    }
}

/// The order command an answer stands for (`None`: not an answer the order records).
/// A compensation is recorded at the time its participant made it.
#[must_use]
pub fn command_for(envelope: &Envelope<Answer>) -> Option<(OrderId, OrderCommand)> {
    let at = envelope.occurred_at;
    Some(match &envelope.data {
        Answer::Inventory(event) => match event {
            InventoryEvent::Reserved(e) => (
                e.order_id,
                OrderCommand::RecordStockReserved {
                    reservation_id: e.order_id.to_string(),
                },
            ),
            InventoryEvent::ReservationFailed(e) => (
                e.order_id,
                OrderCommand::RecordStockReservationFailed {
                    sku: e.sku.clone(),
                    reason: e.reason.as_str().to_owned(),
                },
            ),
            InventoryEvent::Released(e) => (
                e.order_id,
                OrderCommand::RecordStockReleased {
                    reservation_id: e.order_id.to_string(),
                    at,
                },
            ),
            InventoryEvent::Voided(_) | InventoryEvent::Sold(_) => return None,
        },
        Answer::Payment(event) => match event {
            PaymentEvent::Captured(e) => (
                e.order_id,
                OrderCommand::RecordPaymentCaptured {
                    payment_id: e.payment_id.clone(),
                    amount: e.amount,
                },
            ),
            PaymentEvent::Declined(e) => (
                e.order_id,
                OrderCommand::RecordPaymentDeclined {
                    reason: e.reason.clone(),
                },
            ),
            PaymentEvent::Refunded(e) => (
                e.order_id,
                OrderCommand::RecordPaymentRefunded {
                    payment_id: e.payment_id.clone(),
                    amount: e.amount,
                    at,
                },
            ),
            PaymentEvent::Voided(_) => return None,
        },
        Answer::Shipment(event) => match event {
            ShipmentEvent::Created(e) => (
                e.order_id,
                OrderCommand::RecordShipment {
                    shipment_id: e.shipment_id.clone(),
                    tracking_number: e.tracking_number.clone(),
                },
            ),
            ShipmentEvent::Cancelled(e) => (
                e.order_id,
                OrderCommand::RecordShipmentCancelled {
                    shipment_id: e.shipment_id.clone(),
                    at,
                },
            ),
            ShipmentEvent::Voided(_) => return None,
        },
    })
}

/// The saga, over any event store.
#[derive(Debug, Clone)]
pub struct OrderSaga<C, S = DynamoEventStore> {
    commands: CommandService<S, C>,
}

impl<C: Clock, S: EventStore> OrderSaga<C, S> {
    /// The saga over the event store.
    pub const fn new(repository: Repository<S>, clock: C) -> Self {
        Self {
            commands: CommandService::new(repository, clock, orderflow_app::command::DEFAULT_MAX_ATTEMPTS),
        }
    }

    /// Records one participant's answer (or compensation) on its order.
    ///
    /// # Errors
    /// [`Failure::poison`] for an event the order does not record or refuses;
    /// [`Failure::retry`] when the store fails, or when a shipment's cancellation
    /// overtook its creation.
    pub async fn record(
        &self,
        envelope: &Envelope<Answer>,
        metadata: &Metadata,
    ) -> Result<Recorded, Failure> {
        let Some((order_id, command)) = command_for(envelope) else {
            return Err(Failure::poison(format!(
                "the saga does not handle {}",
                envelope.event_type()
            )));
        };
        let executed = self
            .commands
            .execute::<Order>(&order_id.to_string(), command, metadata, None)
            .await
            .map_err(|e| match e {
                // A shipment's cancellation overtook its creation in the queue: the
                // creation is on its way, and a redelivery records both.
                CommandError::Domain(OrderError::ShipmentMissing) => Failure::retry(e),
                e => Failure::from(e),
            })?;
        orderflow_lambda::metrics::order_events(&executed.events);
        if let Some(order) = executed.state.placed() {
            orderflow_lambda::metrics::time_to_confirm(&executed.events, order.placed_at);
        }
        let status = executed
            .state
            .placed()
            .map(|o| o.status.as_str())
            .unwrap_or_default();
        tracing::info!(status, "answer recorded on the order");
        Ok(Recorded::of(&executed.events))
    }
}

impl<C: Clock + 'static, S: EventStore + 'static> Consumer for OrderSaga<C, S> {
    const NAME: &'static str = "order-saga";
    const ACTOR: &'static str = ACTOR;
    type Event = Answer;
    type Outcome = Recorded;

    /// Acts on the event as the store holds it, never on a message's word.
    async fn read_back(
        &self,
        stream: &orderflow_app::StreamId,
        version: u64,
    ) -> Result<orderflow_app::ReadBack, orderflow_app::StoreError> {
        orderflow_app::provenance::read_back(self.commands.repository().store(), stream, version).await
    }

    async fn on(&self, envelope: Envelope<Answer>, metadata: Metadata) -> Result<Recorded, Failure> {
        self.record(&envelope, &metadata).await
    }
}

impl FromConfig for OrderSaga<SystemClock> {
    fn build(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self::new(config.repository()?, SystemClock))
    }
}
