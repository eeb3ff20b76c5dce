//! The functions' one runtime.
//!
//! [`run`] is any function's runtime loop (metrics collector, invocation span, flush);
//! [`telemetry`] sets up its logs; [`batch`] handles an SQS batch within the
//! invocation's deadline and reports partial failures.
//!
//! For a queue consumer, the rest is here too. A consumer says what it is
//! ([`Consumer::NAME`], [`Consumer::ACTOR`]), which events it reads
//! ([`Consumer::Event`]), how it builds its dependencies from configuration
//! ([`FromConfig::build`]) and what it does with one event ([`Consumer::on`], returning
//! its own typed outcome). [`Service`] does the rest, the same for all of them:
//! decoding the EventBridge event an SQS message carries (and upcasting it), the span
//! with the correlation id, handling a batch's messages concurrently within the
//! invocation's deadline, metrics, the failure log and partial-batch results. [`serve`]
//! is a consumer's whole `main`; the local runner builds the same [`Service`] from the
//! template's environment, so Lambda and `orderflow-dev up` cannot wire a consumer
//! differently.

use std::fmt::Debug;
use std::future::Future;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{Error, LambdaEvent, Runtime, service_fn};
use orderflow_adapters::config::{Config, ConfigError};
use orderflow_adapters::failure_log::{DynamoFailureLog, FailureRecorder};
use orderflow_adapters::sqs::Backoff;
use orderflow_app::{Failure, FailureLog, ReadBack, StoreError, StreamId};
use orderflow_domain::{DomainEvent, Envelope, Metadata, RawEnvelope};
use tracing::Instrument;

pub mod batch;
pub mod metrics;
pub mod telemetry;

use batch::{decode_message, process_batch_with_backoff};

/// A function that consumes the events on its queue.
pub trait Consumer: Send + Sync + Sized + 'static {
    /// The function's name: its binary, its metrics dimension, its failure log entries.
    const NAME: &'static str;
    /// Who the events it records name as their actor (`service:<name>`).
    const ACTOR: &'static str;
    /// What it reads off its queue.
    type Event: DomainEvent + Debug + Send + Sync;
    /// What handling one event did, for the log line.
    type Outcome: Debug + Send;

    /// Handles one event.
    ///
    /// # Errors
    /// [`Failure`]: retry (a redelivery may succeed) or poison (to the DLQ).
    fn on(
        &self,
        envelope: Envelope<Self::Event>,
        metadata: Metadata,
    ) -> impl Future<Output = Result<Self::Outcome, Failure>> + Send;

    /// The event a message names (`stream`, `version`), read back from the event store
    /// ([`orderflow_app::provenance::read_back`]), so that the consumer acts on what the
    /// store holds and never on a message's word; [`ReadBack::Trusted`] (the default)
    /// takes the message as sent. A message whose event the store does not hold, or
    /// holds as an event of another type, is parked with the reason.
    ///
    /// # Errors
    /// [`StoreError`]: the message is retried.
    fn read_back(
        &self,
        stream: &StreamId,
        version: u64,
    ) -> impl Future<Output = Result<ReadBack, StoreError>> + Send {
        let _ = (stream, version);
        std::future::ready(Ok(ReadBack::Trusted))
    }

    /// How retryable failures are held back, when not by the queue's own visibility
    /// timeout.
    fn backoff(&self) -> Option<&Backoff> {
        None
    }
}

/// A consumer as deployed: built from its function's configuration (the template's
/// environment in Lambda and in `orderflow-dev up`). Kept apart from [`Consumer`] so the
/// same consumer runs over in-memory adapters in tests and the simulation.
pub trait FromConfig: Consumer {
    /// Builds the consumer from configuration.
    ///
    /// # Errors
    /// [`ConfigError`] naming a missing or malformed variable.
    fn build(config: &Config) -> Result<Self, ConfigError>;

    /// Whether it sets its messages' visibility itself (a backoff), and so needs
    /// [`Config::sqs`]: only then does [`serve`] build an SQS client.
    const MANAGES_VISIBILITY: bool = false;
}

/// The event types a consumer appended (empty: a duplicate, or nothing to do).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recorded(pub Vec<&'static str>);

impl Recorded {
    /// The types of `events`.
    pub fn of<E: DomainEvent>(events: &[Envelope<E>]) -> Self {
        Self(events.iter().map(Envelope::event_type).collect())
    }
}

/// A consumer with the runtime around it, recording its failures in a `L`.
#[derive(Debug, Clone)]
pub struct Service<C, L = DynamoFailureLog> {
    consumer: C,
    failures: Option<FailureRecorder<L>>,
}

impl<C: Consumer> Service<C> {
    /// `consumer`, recording no failures (tests and tools).
    pub const fn new(consumer: C) -> Self {
        Self {
            consumer,
            failures: None,
        }
    }

    /// Builds the consumer from `config`, recording its failures in the failure log
    /// (`FAILURE_LOG_TABLE`).
    ///
    /// # Errors
    /// [`ConfigError`] naming a missing or malformed variable.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError>
    where
        C: FromConfig,
    {
        Ok(Self {
            consumer: C::build(config)?,
            failures: Some(config.failure_log(C::ACTOR)?),
        })
    }
}

impl<C: Consumer, L: FailureLog> Service<C, L> {
    /// `consumer`, recording its failures with `failures`.
    pub const fn with_failures(consumer: C, failures: FailureRecorder<L>) -> Self {
        Self {
            consumer,
            failures: Some(failures),
        }
    }

    /// The consumer.
    pub const fn consumer(&self) -> &C {
        &self.consumer
    }

    /// Handles an SQS batch: every message on its own, concurrently; the ones that
    /// failed are reported for SQS to redeliver.
    pub async fn handle(&self, batch: SqsEvent) -> SqsBatchResponse {
        process_batch_with_backoff(
            batch,
            self.failures.as_ref(),
            self.consumer.backoff(),
            |message| self.handle_message(message),
        )
        .await
    }

    async fn handle_message(&self, message: SqsMessage) -> Result<(), Failure> {
        let (envelope, metadata) = decode_message::<C::Event>(&message, C::ACTOR)?;
        let (envelope, metadata) = self.as_stored(envelope, metadata).await?;
        let span = tracing::info_span!(
            "consume",
            consumer = C::NAME,
            correlation_id = %metadata.correlation_id,
            aggregate_id = %envelope.aggregate_id,
            event_type = envelope.event_type(),
            version = envelope.version,
        );
        async {
            let outcome = self.consumer.on(envelope, metadata).await?;
            tracing::info!(?outcome, "handled");
            Ok(())
        }
        .instrument(span)
        .await
    }
}

impl<C: Consumer, L> Service<C, L> {
    /// The message's event as the store holds it, when the consumer reads events back.
    async fn as_stored(
        &self,
        envelope: Envelope<C::Event>,
        metadata: Metadata,
    ) -> Result<(Envelope<C::Event>, Metadata), Failure> {
        let stream = StreamId::new(envelope.aggregate_type.clone(), envelope.aggregate_id.clone());
        let named = || {
            format!(
                "{} of {stream} at version {}",
                envelope.event_type(),
                envelope.version
            )
        };
        let record = match self
            .consumer
            .read_back(&stream, envelope.version)
            .await
            .map_err(|e| Failure::retry_while("reading the event back from the event store", e))?
        {
            ReadBack::Trusted => return Ok((envelope, metadata)),
            ReadBack::Stored(None) => {
                return Err(Failure::poison(format!(
                    "{} is not in the event store: the relay never published it (a forged or misdirected message); nothing done",
                    named()
                )));
            }
            // The type must agree; the rest (ids, data) is taken from the store, so a
            // message that copies a real event's place but edits its data moves only
            // what the real event moves, once, as a duplicate would.
            ReadBack::Stored(Some(record)) if record.event_type != envelope.event_type() => {
                return Err(Failure::poison(format!(
                    "{}: the event store holds a {} there (a forged message); nothing done",
                    named(),
                    record.event_type
                )));
            }
            ReadBack::Stored(Some(record)) => record,
        };
        let raw = RawEnvelope::parse(&record.body)?;
        let metadata = Metadata::caused_by(&raw, C::ACTOR);
        let mut stored: Envelope<C::Event> = raw.decode()?;
        // A replay's mark is the message's: the store holds the event as first appended.
        stored.replay = envelope.replay;
        Ok((stored, metadata))
    }
}

/// A queue consumer's whole `main`: telemetry, configuration from the process
/// environment, metrics, and the Lambda runtime loop, each batch handled within the
/// invocation's deadline.
///
/// # Errors
/// When the configuration is incomplete or the runtime fails.
pub async fn serve<C: FromConfig>() -> Result<(), Error> {
    telemetry::init();
    let config = if C::MANAGES_VISIBILITY {
        Config::from_process().with_sqs()
    } else {
        Config::from_process()
    };
    let service = Service::<C>::from_config(&config)?;
    run(
        C::NAME,
        Runtime::new(service_fn(|event: LambdaEvent<SqsEvent>| {
            let service = &service;
            async move {
                let deadline = event.context.deadline();
                Ok::<_, Error>(batch::within(deadline, service.handle(event.payload)).await)
            }
        })),
    )
    .await
}

/// Any function's runtime loop, once its handler is built: the metrics collector for
/// function `name`, each invocation in a span with its request id, its metrics flushed
/// when it ends ([`metrics::serve`]). A function calls [`telemetry::init`] before it
/// builds its handler, so what building it logs is kept.
///
/// # Errors
/// When the collector cannot start or the runtime fails.
pub async fn run<S>(name: &'static str, runtime: Runtime<S>) -> Result<(), Error>
where
    S: lambda_runtime::tower::Service<lambda_runtime::LambdaInvocation, Response = (), Error = Error>,
{
    let collector = metrics::init_lambda(name)?;
    metrics::serve(collector, runtime).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

    use std::sync::Mutex;

    use aws_lambda_events::event::sqs::SqsMessage;
    use orderflow_domain::order::OrderEvent;

    use super::*;

    /// Records what it was given; fails the way its name says.
    struct Probe {
        seen: Mutex<Vec<(String, String)>>,
    }

    impl Consumer for Probe {
        const NAME: &'static str = "probe";
        const ACTOR: &'static str = "service:probe";
        type Event = OrderEvent;
        type Outcome = &'static str;

        async fn on(
            &self,
            envelope: Envelope<OrderEvent>,
            metadata: Metadata,
        ) -> Result<&'static str, Failure> {
            self.seen
                .lock()
                .unwrap()
                .push((envelope.event_type().to_owned(), metadata.actor.clone()));
            match envelope.aggregate_id.as_str() {
                "retry" => Err(Failure::retry("the store is throttled")),
                _ => Ok("done"),
            }
        }
    }

    fn message(id: &str, aggregate_id: &str) -> SqsMessage {
        let mut detail: serde_json::Value =
            serde_json::from_str(include_str!("../../../events/order/OrderConfirmed.json")).unwrap();
        detail["aggregateId"] = aggregate_id.into();
        let body = serde_json::json!({
            "version": "0", "id": id, "source": "orderflow.order", "detail-type": "OrderConfirmed",
            "account": "0", "time": "2026-11-21T06:30:00Z", "region": "us-east-1", "resources": [],
            "detail": detail,
        });
        let mut message = SqsMessage::default();
        message.message_id = Some(id.to_owned());
        message.body = Some(body.to_string());
        message
    }

    #[tokio::test]
    async fn each_message_is_decoded_handed_over_and_only_failures_are_reported() {
        let service = Service::new(Probe {
            seen: Mutex::new(Vec::new()),
        });
        let mut garbled = message("garbled", "o-3");
        garbled.body = Some("{not json".into());
        let mut batch = SqsEvent::default();
        batch.records = vec![message("ok", "o-1"), message("busy", "retry"), garbled];
        let response = service.handle(batch).await;
        let mut failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        failed.sort_unstable();
        assert_eq!(failed, ["busy", "garbled"]);
        let mut seen = service.consumer().seen.lock().unwrap().clone();
        seen.sort();
        // The undecodable message never reached the consumer; what did carries the
        // consumer's own actor for the events it causes.
        assert_eq!(
            seen,
            [
                ("OrderConfirmed".to_owned(), "service:probe".to_owned()),
                ("OrderConfirmed".to_owned(), "service:probe".to_owned())
            ]
        );
    }
}
