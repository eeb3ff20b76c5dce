//! The order saga: records inventory's, payment's and shipping's answers on the order
//! aggregate, which confirms itself when stock and payment are both in and cancels
//! itself (with a machine-readable reason) on the first failure; then records what
//! compensation did (refund, stock release, shipment cancellation) once the order is
//! cancelled, so the customer sees it.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use orderflow_adapters::bus::BusEvent;
use orderflow_adapters::event_store::DynamoEventStore;
use orderflow_adapters::sqs::{Failure, FailureLog, process_batch};
use orderflow_app::{Clock, CommandError, CommandService, Repository};
use orderflow_domain::inventory::InventoryEvent;
use orderflow_domain::order::{Order, OrderCommand, OrderError};
use orderflow_domain::payment::PaymentEvent;
use orderflow_domain::shipment::ShipmentEvent;
use orderflow_domain::{DomainEvent, Metadata, OrderId, RawEnvelope};
use tracing::Instrument;

/// Who records the saga's events.
pub const ACTOR: &str = "service:order-saga";

/// The order command an answer stands for (`None`: not an answer the order records).
///
/// # Errors
/// [`Failure::Poison`] for an event that does not decode.
pub fn command_for(raw: RawEnvelope<'_>) -> Result<Option<(OrderId, OrderCommand)>, Failure> {
    // A compensation is recorded at the time its participant made it.
    let occurred_at = raw.occurred_at;
    Ok(match raw.aggregate_type.as_str() {
        "inventory" => match raw.decode::<InventoryEvent>()?.data {
            InventoryEvent::Reserved(e) => Some((
                e.order_id,
                OrderCommand::RecordStockReserved {
                    reservation_id: e.order_id.to_string(),
                },
            )),
            InventoryEvent::ReservationFailed(e) => Some((
                e.order_id,
                OrderCommand::RecordStockReservationFailed {
                    sku: e.sku,
                    reason: e.reason.as_str().to_owned(),
                },
            )),
            InventoryEvent::Released(e) => Some((
                e.order_id,
                OrderCommand::RecordStockReleased {
                    reservation_id: e.order_id.to_string(),
                    at: occurred_at,
                },
            )),
            InventoryEvent::Voided(_) => None,
        },
        "payment" => match raw.decode::<PaymentEvent>()?.data {
            PaymentEvent::Captured(e) => Some((
                e.order_id,
                OrderCommand::RecordPaymentCaptured {
                    payment_id: e.payment_id,
                    amount: e.amount,
                },
            )),
            PaymentEvent::Declined(e) => Some((
                e.order_id,
                OrderCommand::RecordPaymentDeclined { reason: e.reason },
            )),
            PaymentEvent::Refunded(e) => Some((
                e.order_id,
                OrderCommand::RecordPaymentRefunded {
                    payment_id: e.payment_id,
                    amount: e.amount,
                    at: occurred_at,
                },
            )),
            PaymentEvent::Voided(_) => None,
        },
        "shipment" => match raw.decode::<ShipmentEvent>()?.data {
            ShipmentEvent::Created(e) => Some((
                e.order_id,
                OrderCommand::RecordShipment {
                    shipment_id: e.shipment_id,
                    tracking_number: e.tracking_number,
                },
            )),
            ShipmentEvent::Cancelled(e) => Some((
                e.order_id,
                OrderCommand::RecordShipmentCancelled {
                    shipment_id: e.shipment_id,
                    at: occurred_at,
                },
            )),
            ShipmentEvent::Voided(_) => None,
        },
        _ => None,
    })
}

/// The saga.
#[derive(Debug, Clone)]
pub struct OrderSaga<C> {
    commands: CommandService<DynamoEventStore, C>,
    failures: Option<FailureLog>,
}

impl<C: Clock> OrderSaga<C> {
    /// The saga over the event store.
    pub const fn new(repository: Repository<DynamoEventStore>, clock: C) -> Self {
        Self {
            commands: CommandService::new(repository, clock, orderflow_app::command::DEFAULT_MAX_ATTEMPTS),
            failures: None,
        }
    }

    /// Records every failed message in `log`, for the DLQ tooling.
    #[must_use]
    pub fn with_failure_log(mut self, log: FailureLog) -> Self {
        self.failures = Some(log);
        self
    }

    /// Handles an SQS batch of answers.
    pub async fn handle(&self, batch: SqsEvent) -> SqsBatchResponse {
        process_batch(batch, self.failures.as_ref(), |message| {
            self.handle_message(message)
        })
        .await
    }

    async fn handle_message(&self, message: SqsMessage) -> Result<(), Failure> {
        let body = message
            .body
            .as_deref()
            .ok_or_else(|| Failure::poison("message has no body"))?;
        let bus =
            BusEvent::parse(body).map_err(|e| Failure::poison_while("reading the EventBridge event", e))?;
        let raw = RawEnvelope::parse(bus.detail.get())?;
        let metadata = Metadata::caused_by(&raw, ACTOR);
        let event_type = raw.event_type.clone().into_owned();
        let Some((order_id, command)) = command_for(raw)? else {
            return Err(Failure::poison(format!("the saga does not handle {event_type}")));
        };
        let span = tracing::info_span!(
            "order-saga",
            correlation_id = %metadata.correlation_id,
            order_id = %order_id,
            event_type
        );
        async {
            let executed = self
                .commands
                .execute::<Order>(&order_id.to_string(), command, &metadata, None)
                .await
                .map_err(|e| match e {
                    // A shipment's cancellation overtook its creation in the queue:
                    // the creation is on its way, and a redelivery records both.
                    CommandError::Domain(OrderError::ShipmentMissing) => Failure::retry(e),
                    e => Failure::from(e),
                })?;
            orderflow_adapters::metrics::order_events(&executed.events);
            let recorded: Vec<_> = executed.events.iter().map(|e| e.data.event_type()).collect();
            let status = executed
                .state
                .placed()
                .map(|o| o.status.as_str())
                .unwrap_or_default();
            tracing::info!(?recorded, status, "answer recorded on the order");
            Ok(())
        }
        .instrument(span)
        .await
    }
}
