//! Payment: on `OrderPlaced`, capture the order's total; on `OrderCancelled`, refund
//! the capture, or leave a tombstone so a late capture is never made.
//!
//! The provider is outside any transaction, so the service works in steps decided by
//! [`next_step`] from the recorded state, each provider call idempotent by order id:
//! a redelivery, a crash between the call and its record, or a cancel racing the
//! capture all converge on one capture at most, refunded if the order is cancelled.
//!
//! The one thing the recorded state cannot know is a capture whose record a crash
//! lost. So the tombstone is never laid on the record alone: the provider first
//! cancels the order's key, refunding such a capture (which is then recorded and
//! refunded here) and refusing any capture that comes after.
//!
//! The amount captured is the order's total as the event store records it, read from
//! the order's own stream: never the figure a bus message carries, which anyone able
//! to put a message on the queue could have written.

use orderflow_adapters::config::{Config, ConfigError};
use orderflow_adapters::event_store::DynamoEventStore;
use orderflow_adapters::payment::{DynamoVault, SimulatedGateway};
use orderflow_adapters::sqs::Backoff;
use orderflow_app::Failure;
use orderflow_app::{
    CaptureOutcome, Clock, CommandService, EventStore, PaymentGateway, PaymentVault, Repository, SystemClock,
};
use orderflow_domain::order::{Order, OrderEvent, OrderStatus};
use orderflow_domain::payment::{
    Payment, PaymentCaptured, PaymentCommand, PaymentDeclined, PaymentRefunded, Step, Trigger, next_step,
};
use orderflow_domain::schema::Reads;
use orderflow_domain::{DomainEvent, Envelope, Metadata, Money, OrderId};
use orderflow_lambda::{Consumer, FromConfig};

/// Backoff on the payment queue from the function's variables (`PAYMENT_QUEUE_URL`,
/// `PAYMENT_RETRY_BASE_SECONDS`, default 30, `PAYMENT_RETRY_MAX_SECONDS`, default
/// 900), read through `variable` so the dev runner hands over the template's values;
/// `None` without a queue URL.
///
/// # Errors
/// [`orderflow_adapters::ConfigError::Invalid`] for a malformed number.
pub fn backoff(
    sqs: orderflow_adapters::sqs::Sqs,
    variable: impl Fn(&str) -> Option<String>,
) -> Result<Option<Backoff>, orderflow_adapters::ConfigError> {
    let seconds = |name: &'static str, default: u32| match variable(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(raw) => raw.trim().parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
            orderflow_adapters::ConfigError::Invalid {
                name,
                reason: format!("{raw:?} is not a positive number of seconds"),
            }
        }),
    };
    let base = seconds("PAYMENT_RETRY_BASE_SECONDS", 30)?;
    let max = seconds("PAYMENT_RETRY_MAX_SECONDS", 900)?;
    Ok(variable("PAYMENT_QUEUE_URL")
        .filter(|url| !url.trim().is_empty())
        .map(|url| Backoff::new(sqs, url, base, max)))
}

impl<G: PaymentGateway + 'static, V: PaymentVault + 'static, C: Clock + 'static, S: EventStore + 'static>
    Consumer for PaymentService<G, V, C, S>
{
    const NAME: &'static str = "payment";
    const ACTOR: &'static str = ACTOR;
    type Event = OrderEvent;
    type Outcome = Settled;

    /// Acts on the event as the store holds it, never on a message's word.
    async fn read_back(
        &self,
        stream: &orderflow_app::StreamId,
        version: u64,
    ) -> Result<orderflow_app::ReadBack, orderflow_app::StoreError> {
        orderflow_app::provenance::read_back(self.commands.repository().store(), stream, version).await
    }

    async fn on(&self, envelope: Envelope<OrderEvent>, metadata: Metadata) -> Result<Settled, Failure> {
        let order_id = OrderId::parse(&envelope.aggregate_id)
            .map_err(|e| Failure::poison_while("reading the order id", e))?;
        if let Some(replay) = &envelope.replay
            && !self.replayed_side_effects
        {
            tracing::info!(replay_id = %replay.id, "replayed event: no payment side effects");
            return Ok(Settled::ReplayIgnored);
        }
        let trigger = match &envelope.data {
            OrderEvent::Placed(_) => Trigger::Placed,
            OrderEvent::Cancelled(_) => Trigger::Cancelled,
            other => {
                return Err(Failure::poison(format!(
                    "payment does not handle {}",
                    other.event_type()
                )));
            }
        };
        self.settle(order_id, trigger, &metadata).await?;
        Ok(Settled::Settled)
    }

    fn backoff(&self) -> Option<&Backoff> {
        self.backoff.as_ref()
    }
}

impl FromConfig for PaymentService<SimulatedGateway, DynamoVault, SystemClock> {
    /// The backoff sets each failed message's visibility.
    const MANAGES_VISIBILITY: bool = true;

    fn build(config: &Config) -> Result<Self, ConfigError> {
        let dynamodb = &config.dynamodb;
        let service = Self::new(
            config.repository()?,
            SystemClock,
            SimulatedGateway::new(dynamodb.clone(), config.required("PAYMENT_PROVIDER_TABLE")?),
            DynamoVault::new(dynamodb.clone(), config.required("PAYMENT_VAULT_TABLE")?),
        )
        .with_replayed_side_effects(config.var("REPLAY_SIDE_EFFECTS").is_some_and(|v| v == "apply"));
        let backoff = match &config.sqs {
            Some(sqs) => backoff(sqs.clone(), |name| config.var(name))?,
            None => None,
        };
        Ok(match backoff {
            Some(backoff) => service.with_backoff(backoff),
            None => service,
        })
    }
}

// Without it `orderflow_lambda::serve` builds no SQS client, `build` finds none and the
// backoff is silently off in AWS (the dev runner hands a client over regardless).
const _: () =
    assert!(<PaymentService<SimulatedGateway, DynamoVault, SystemClock> as FromConfig>::MANAGES_VISIBILITY);

/// What payment made of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Every step the trigger called for was taken (none, for a repeat).
    Settled,
    /// A replayed event: no payment side effects (`REPLAY_SIDE_EFFECTS` is not `apply`).
    ReplayIgnored,
}

/// Who records payment's events.
pub const ACTOR: &str = "service:payment";

/// The events it reads, each up to the schema version it was built for: the contract
/// gate fails when a producer would write a newer one or the template routes another.
pub const READS: &[Reads] = &[
    Reads::new(orderflow_domain::order::events::names::PLACED, 3),
    Reads::new(orderflow_domain::order::events::names::CANCELLED, 1),
];

/// Steps one delivery may take (capture, record, refund, record): more means a loop.
const MAX_STEPS: usize = 6;

/// The payment service.
#[derive(Debug, Clone)]
pub struct PaymentService<G, V, C, S = DynamoEventStore> {
    commands: CommandService<S, C>,
    gateway: G,
    vault: V,
    backoff: Option<Backoff>,
    replayed_side_effects: bool,
}

impl<G: PaymentGateway, V: PaymentVault, C: Clock, S: EventStore> PaymentService<G, V, C, S> {
    /// The service over the event store, the provider and the token vault.
    pub const fn new(repository: Repository<S>, clock: C, gateway: G, vault: V) -> Self {
        Self {
            commands: CommandService::new(repository, clock, orderflow_app::command::DEFAULT_MAX_ATTEMPTS),
            gateway,
            vault,
            backoff: None,
            replayed_side_effects: false,
        }
    }

    /// Makes payments for replayed events too (off by default: a replay is not a
    /// customer paying again).
    #[must_use]
    pub const fn with_replayed_side_effects(mut self, apply: bool) -> Self {
        self.replayed_side_effects = apply;
        self
    }

    /// Holds back messages that failed on a retryable error (the provider is down)
    /// longer with every receive, so an outage of an hour parks nothing in the DLQ.
    #[must_use]
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Takes every step `trigger` calls for until none is left.
    ///
    /// # Errors
    /// [`Failure::retry`] when the provider or the store is unavailable;
    /// [`Failure::poison`] for a capture of an order the store does not hold.
    pub async fn settle(
        &self,
        order_id: OrderId,
        mut trigger: Trigger,
        metadata: &Metadata,
    ) -> Result<(), Failure> {
        let id = order_id.to_string();
        // Loaded once: each step decides on the state the last one left (a concurrent
        // writer makes the append conflict, and the step is decided again on a fresh
        // load).
        let mut loaded = self.commands.repository().load::<Payment>(&id).await?;
        // A capture the provider's cancel found and refunded: recorded, then its refund
        // recorded without asking the provider again (a real one answers a second
        // refund with an error).
        let mut refunded_by_cancel: Option<String> = None;
        for _ in 0..MAX_STEPS {
            let command = match next_step(&loaded.state, trigger) {
                Step::Done => return Ok(()),
                Step::Capture => match self.order_total(order_id).await? {
                    Some(amount) => self.capture(order_id, amount).await?,
                    // Cancelled before payment saw it placed: never charge it; the
                    // tombstone refuses any capture that comes later.
                    None => {
                        tracing::info!("the order is already cancelled; no capture");
                        trigger = Trigger::Cancelled;
                        continue;
                    }
                },
                Step::Refund(capture) => {
                    if refunded_by_cancel.as_deref() == Some(capture.payment_id.as_str()) {
                        tracing::info!(payment_id = %capture.payment_id, "refunded by the provider's cancel");
                    } else {
                        self.gateway
                            .refund(order_id, &capture.payment_id, capture.amount)
                            .await?;
                        tracing::info!(payment_id = %capture.payment_id, "refunded");
                    }
                    PaymentCommand::RecordRefund(PaymentRefunded {
                        order_id,
                        payment_id: capture.payment_id,
                        amount: capture.amount,
                    })
                }
                Step::Void => {
                    let command = self.void(order_id).await?;
                    if let PaymentCommand::RecordCapture(found) = &command {
                        refunded_by_cancel = Some(found.payment_id.clone());
                    }
                    command
                }
            };
            let settles = matches!(
                command,
                PaymentCommand::RecordCapture(_) | PaymentCommand::RecordDecline(_)
            );
            let executed = self
                .commands
                .execute_loaded::<Payment>(&id, loaded, command, metadata)
                .await?;
            orderflow_lambda::metrics::payment_events(&executed.events);
            // The token outlives the call to the provider until its outcome is recorded:
            // a crash in between retries with the token, and the provider's idempotency
            // key makes that retry return the same capture.
            if settles && let Err(error) = self.vault.forget(order_id).await {
                tracing::warn!(%error, "payment token not forgotten; its TTL will remove it");
            }
            loaded = executed.into_loaded();
        }
        Err(Failure::poison(format!(
            "payment of {order_id} did not settle in {MAX_STEPS} steps"
        )))
    }

    /// The order's total, from its stream in the event store; `None` when the stream
    /// shows it cancelled.
    async fn order_total(&self, order_id: OrderId) -> Result<Option<Money>, Failure> {
        let order = self
            .commands
            .repository()
            .load::<Order>(&order_id.to_string())
            .await?;
        let placed = order.state.placed().ok_or_else(|| {
            Failure::poison(format!(
                "{order_id} is not in the event store; nothing to capture"
            ))
        })?;
        Ok((placed.status != OrderStatus::Cancelled).then_some(placed.total))
    }

    /// Cancels the order's payment at the provider before any capture is recorded. No
    /// capture is recorded, but a crash may have lost the record of one: the provider
    /// cancels the order's key, refunding what it took and refusing any later capture.
    async fn void(&self, order_id: OrderId) -> Result<PaymentCommand, Failure> {
        Ok(match self.gateway.cancel(order_id).await? {
            None => {
                tracing::info!("cancelled before any capture; leaving a tombstone");
                PaymentCommand::Void { order_id }
            }
            Some(capture) => {
                tracing::warn!(
                    payment_id = %capture.payment_id,
                    "the provider held an unrecorded capture (a crash lost its record); recording and refunding it"
                );
                PaymentCommand::RecordCapture(PaymentCaptured {
                    order_id,
                    payment_id: capture.payment_id,
                    amount: capture.amount,
                })
            }
        })
    }

    async fn capture(&self, order_id: OrderId, amount: Money) -> Result<PaymentCommand, Failure> {
        let outcome = match self.vault.token(order_id).await? {
            Some(token) => self.gateway.capture(order_id, amount, &token).await?,
            // The token is only forgotten once an outcome is recorded, so this is an
            // order whose token expired: ask the provider before declining, in case a
            // capture was made and its record lost.
            None => match self.gateway.capture_of(order_id).await? {
                Some(capture) => CaptureOutcome::Captured {
                    payment_id: capture.payment_id,
                },
                None => CaptureOutcome::Declined {
                    reason: "payment_token_missing".into(),
                },
            },
        };
        Ok(match outcome {
            CaptureOutcome::Captured { payment_id } => {
                tracing::info!(%payment_id, amount = amount.amount, "captured");
                PaymentCommand::RecordCapture(PaymentCaptured {
                    order_id,
                    payment_id,
                    amount,
                })
            }
            CaptureOutcome::Declined { reason } => {
                tracing::info!(%reason, "declined");
                PaymentCommand::RecordDecline(PaymentDeclined { order_id, reason })
            }
        })
    }
}
