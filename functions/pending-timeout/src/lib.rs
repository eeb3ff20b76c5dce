//! The pending-order timeout: every minute, orders placed more than the deadline ago
//! that are still `PENDING` are cancelled with reason `timeout`, and compensated like
//! any cancellation (inventory releases, payment voids or refunds, from the event).
//!
//! Candidates come from the event store's sparse pending index: every `OrderPlaced` is
//! in it from the write that appends it, read page by page (oldest first, in each of
//! its shards) up to `now - deadline`. An order found no longer pending is taken out
//! of the index, once; an expired one too. There is no look-back window: an order
//! stays in the index until a run has seen it settled, so a run that fails, or an
//! outage of any length, strands nothing.
//!
//! Before cancelling, the participants' own streams are read: an order that inventory
//! and payment have both answered is left for the saga to record (it is behind, not
//! stuck, and the lag alarm covers it), for [`SAGA_PATIENCE`] past the deadline. After
//! that the saga is not behind but stuck (its message parked in its DLQ, or lost), and
//! the order is cancelled like any other: compensation refunds and releases what the
//! participants took, so no order is left charged and forgotten. The answers, when
//! the parked message is redriven, are recorded as late facts on the cancelled order;
//! `orderflow check` names the DLQ that holds them.

use futures::StreamExt;
use jiff::SignedDuration;
use orderflow_adapters::config::{Config, ConfigError};
use orderflow_adapters::event_store::DynamoEventStore;
use orderflow_adapters::event_store::dynamodb::{PendingEntry, TIME_SHARDS};
use orderflow_app::{Clock, CommandService, EventStore, Repository};
use orderflow_domain::inventory::Inventory;
use orderflow_domain::order::{Order, OrderCommand, OrderStatus};
use orderflow_domain::payment::Payment;
use orderflow_domain::{Metadata, Timestamp};

/// Who records the cancellations.
pub const ACTOR: &str = "service:pending-timeout";

/// The default deadline (the template's `PendingTimeoutMinutes`).
pub const DEFAULT_DEADLINE: SignedDuration = SignedDuration::from_mins(15);

/// How long past the deadline an order its participants answered is left for the saga
/// to record: twice the saga queue's whole retry path (five receives of 60 s before its
/// DLQ), so only an answer that is parked or lost outlasts it.
pub const SAGA_PATIENCE: SignedDuration = SignedDuration::from_mins(10);

/// Entries read from the index at once.
const PAGE: i32 = 100;

/// Orders of a page settled at once (each is a few reads and at most two writes).
const IN_FLIGHT: usize = 16;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Orders the index offered (placed before the deadline, not yet retired).
    pub examined: usize,
    /// Of those, cancelled now.
    pub expired: Vec<String>,
    /// Pending, but answered by inventory and payment: left for the saga.
    pub left_for_saga: Vec<String>,
    /// Answered, but still pending [`SAGA_PATIENCE`] past the deadline: cancelled now
    /// (also in `expired`), the saga's message parked or lost.
    pub stalled: Vec<String>,
    /// Orders that failed (retried by the next run: they stay in the index).
    pub failed: usize,
}

/// The sweeper.
#[derive(Debug, Clone)]
pub struct PendingTimeout<C> {
    commands: CommandService<DynamoEventStore, C>,
    deadline: SignedDuration,
}

/// What became of one order past its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It was still pending and unanswered: cancelled now (reason `timeout`).
    Expired,
    /// Still pending, but inventory and payment have both answered: left for the saga
    /// to record.
    LeftForSaga,
    /// Answered, but the saga never recorded the answers in its patience: cancelled now
    /// (reason `timeout`).
    Stalled,
    /// No longer pending (or never placed): nothing to do.
    Settled,
}

impl PendingTimeout<orderflow_app::SystemClock> {
    /// The sweeper its function's variables describe: the event store's and
    /// `PENDING_TIMEOUT_MINUTES` (default 15).
    ///
    /// # Errors
    /// [`ConfigError`] naming a missing or malformed variable.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let minutes = config.number_or("PENDING_TIMEOUT_MINUTES", 15)?;
        let minutes = i64::try_from(minutes).map_err(|e| ConfigError::Invalid {
            name: "PENDING_TIMEOUT_MINUTES",
            reason: e.to_string(),
        })?;
        Ok(Self::new(
            config.repository()?,
            orderflow_app::SystemClock,
            SignedDuration::from_mins(minutes),
        ))
    }
}

impl<C: Clock> PendingTimeout<C> {
    /// A sweeper with a deadline.
    pub const fn new(repository: Repository<DynamoEventStore>, clock: C, deadline: SignedDuration) -> Self {
        Self {
            commands: CommandService::new(repository, clock, orderflow_app::command::DEFAULT_MAX_ATTEMPTS),
            deadline,
        }
    }

    /// Expires the orders placed before `now - deadline` that are still pending.
    ///
    /// # Errors
    /// When the index cannot be read; a failing order only counts in `failed`.
    pub async fn sweep(&self, now: Timestamp) -> Result<Swept, orderflow_app::StoreError> {
        let until = now.plus(-self.deadline);
        let give_up = until.plus(-SAGA_PATIENCE);
        let store = self.commands.repository().store();
        let mut swept = Swept::default();
        for shard in 0..TIME_SHARDS {
            let mut after = None;
            loop {
                let (entries, next) = store.pending_page(shard, until, after, PAGE).await?;
                let settled: Vec<_> = futures::stream::iter(entries)
                    .map(|entry| async move {
                        let fate = self.settle(&entry, give_up).await;
                        (entry.order_id, fate)
                    })
                    .buffer_unordered(IN_FLIGHT)
                    .collect()
                    .await;
                for (order_id, fate) in settled {
                    swept.examined += 1;
                    match fate {
                        Ok(Fate::Expired) => swept.expired.push(order_id),
                        Ok(Fate::Stalled) => {
                            swept.expired.push(order_id.clone());
                            swept.stalled.push(order_id);
                        }
                        Ok(Fate::LeftForSaga) => swept.left_for_saga.push(order_id),
                        Ok(Fate::Settled) => {}
                        Err(error) => {
                            tracing::warn!(%order_id, %error, "expiry failed; the next run retries");
                            swept.failed += 1;
                        }
                    }
                }
                match next {
                    Some(key) => after = Some(key),
                    None => break,
                }
            }
        }
        Ok(swept)
    }

    /// Expires one order if it is still pending and not answered; takes it out of the
    /// index once it is (or already was) no longer pending.
    async fn settle(&self, entry: &PendingEntry, give_up: Timestamp) -> Result<Fate, ExpiryError> {
        let order_id = &entry.order_id;
        let fate = expire(&self.commands, order_id, give_up).await?;
        if fate != Fate::LeftForSaga {
            self.commands
                .repository()
                .store()
                .retire_pending(order_id)
                .await?;
        }
        Ok(fate)
    }
}

/// Cancels the order `order_id` (reason `timeout`) if it is still pending, over any
/// event store: the rule the sweep applies to each order past its deadline. An order
/// inventory and payment have both answered is left for the saga unless it was placed
/// before `give_up` (then the saga is stuck, not behind).
///
/// # Errors
/// [`ExpiryError`] when a stream cannot be read or the cancellation not appended.
pub async fn expire<S: EventStore, C: Clock>(
    commands: &CommandService<S, C>,
    order_id: &str,
    give_up: Timestamp,
) -> Result<Fate, ExpiryError> {
    let repository = commands.repository();
    let loaded = repository.load::<Order>(order_id).await?;
    let Some(placed) = loaded.state.placed().filter(|o| o.status == OrderStatus::Pending) else {
        return Ok(Fate::Settled);
    };
    let placed_at = placed.placed_at;
    let (inventory, payment) = tokio::try_join!(
        repository.history::<Inventory>(order_id),
        repository.history::<Payment>(order_id),
    )?;
    let answered = !inventory.is_empty() && !payment.is_empty();
    if answered && placed_at >= give_up {
        tracing::warn!(%order_id, "pending past the deadline, but inventory and payment have answered: left for the saga to record");
        return Ok(Fate::LeftForSaga);
    }
    if answered {
        tracing::error!(%order_id, "answered, but the saga never recorded the answers (its message parked in its DLQ, or lost): cancelling, so compensation gives back what was taken");
    }
    let placed = repository.history_page::<Order>(order_id, 0, 1).await?;
    let metadata = placed.first().map_or_else(
        || Metadata {
            correlation_id: order_id.to_owned(),
            causation_id: format!("timeout:{order_id}"),
            actor: ACTOR.to_owned(),
        },
        |first| Metadata {
            correlation_id: first.metadata.correlation_id.clone(),
            causation_id: first.event_id.to_string(),
            actor: ACTOR.to_owned(),
        },
    );
    let executed = commands
        .execute::<Order>(order_id, OrderCommand::ExpirePending, &metadata, None)
        .await?;
    if executed.events.is_empty() {
        return Ok(Fate::Settled);
    }
    orderflow_lambda::metrics::order_events(&executed.events);
    tracing::info!(%order_id, correlation_id = %metadata.correlation_id, "pending past the deadline: cancelled (timeout)");
    Ok(if answered { Fate::Stalled } else { Fate::Expired })
}

/// Why one order could not be expired (it stays in the index; the next run retries).
#[derive(Debug, thiserror::Error)]
pub enum ExpiryError {
    /// A stream could not be read.
    #[error(transparent)]
    Load(#[from] orderflow_app::LoadError),
    /// The index could not be updated.
    #[error(transparent)]
    Store(#[from] orderflow_app::StoreError),
    /// The expiry was not appended.
    #[error(transparent)]
    Command(#[from] orderflow_app::CommandError<orderflow_domain::order::OrderError>),
}

/// The function's whole `main` on Lambda (an EventBridge schedule invokes it):
/// telemetry, the sweeper from the process environment, and the runtime loop with its
/// metrics. A sweep that could not expire every order it should have fails the
/// invocation, so the schedule's retry and the alarm on errors see it.
///
/// # Errors
/// When the configuration is incomplete or the runtime fails.
pub async fn lambda_main() -> Result<(), lambda_runtime::Error> {
    use lambda_runtime::{Error, LambdaEvent, Runtime, service_fn};
    orderflow_lambda::telemetry::init();
    let sweeper = PendingTimeout::from_config(&orderflow_adapters::config::Config::from_process())?;
    orderflow_lambda::run(
        "pending-timeout",
        Runtime::new(service_fn(
            |_: LambdaEvent<aws_lambda_events::event::eventbridge::EventBridgeEvent>| {
                let sweeper = &sweeper;
                async move {
                    let swept = sweeper.sweep(orderflow_app::SystemClock.now()).await?;
                    tracing::info!(
                        examined = swept.examined,
                        expired = swept.expired.len(),
                        left_for_saga = swept.left_for_saga.len(),
                        stalled = swept.stalled.len(),
                        failed = swept.failed,
                        "swept"
                    );
                    if swept.failed > 0 {
                        return Err(Error::from(format!(
                            "{} orders could not be expired",
                            swept.failed
                        )));
                    }
                    Ok::<_, Error>(())
                }
            },
        )),
    )
    .await
}
