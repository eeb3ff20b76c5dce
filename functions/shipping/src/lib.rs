//! Shipping: on `OrderConfirmed`, create a shipment with a tracking number; on
//! `OrderCancelled`, cancel it, or leave a tombstone so a late confirmation ships
//! nothing.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use orderflow_adapters::event_store::DynamoEventStore;
use orderflow_adapters::sqs::{Failure, FailureLog, decode_message, process_batch};
use orderflow_app::{Clock, CommandService, Repository};
use orderflow_domain::order::OrderEvent;
use orderflow_domain::shipment::{Shipment, ShipmentCommand, ShipmentCreated};
use orderflow_domain::{DomainEvent, OrderId};
use tracing::Instrument;

/// Who records shipping's events.
pub const ACTOR: &str = "service:shipping";

/// The carrier's tracking number for an order: stable, so a retried creation that
/// races itself names the same parcel.
#[must_use]
pub fn tracking_number(order_id: OrderId) -> String {
    let hex = order_id.as_uuid().simple().to_string().to_uppercase();
    format!("OF{}", &hex[hex.len() - 16..])
}

/// The shipping service.
#[derive(Debug, Clone)]
pub struct ShippingService<C> {
    commands: CommandService<DynamoEventStore, C>,
    failures: Option<FailureLog>,
}

impl<C: Clock> ShippingService<C> {
    /// The service over the event store.
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

    /// Handles an SQS batch of order events.
    pub async fn handle(&self, batch: SqsEvent) -> SqsBatchResponse {
        process_batch(batch, self.failures.as_ref(), |message| {
            self.handle_message(message)
        })
        .await
    }

    async fn handle_message(&self, message: SqsMessage) -> Result<(), Failure> {
        let (envelope, metadata) = decode_message::<OrderEvent>(&message, ACTOR)?;
        let order_id = OrderId::parse(&envelope.aggregate_id)
            .map_err(|e| Failure::poison_while("reading the order id", e))?;
        let span = tracing::info_span!(
            "shipping",
            correlation_id = %metadata.correlation_id,
            order_id = %order_id,
            event_type = envelope.event_type()
        );
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
        async {
            let executed = self
                .commands
                .execute::<Shipment>(&order_id.to_string(), command, &metadata, None)
                .await?;
            let recorded: Vec<_> = executed.events.iter().map(|e| e.event_type()).collect();
            tracing::info!(?recorded, "shipping handled");
            Ok(())
        }
        .instrument(span)
        .await
    }
}
