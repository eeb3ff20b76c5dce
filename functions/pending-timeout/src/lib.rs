//! The pending-order timeout: every minute, orders placed more than the deadline ago
//! that are still `PENDING` are cancelled with reason `timeout`, and compensated like
//! any cancellation (inventory releases, payment voids or refunds, from the event).
//!
//! Candidates come from the event store's time index: the `OrderPlaced` events of a
//! window that ends at `now - deadline` and reaches back `lookback` (so a missed run or
//! two loses nothing). `ExpirePending` is a no-op on an order that moved on, so the
//! overlap between runs costs a load per order, never a wrong cancellation.

use jiff::SignedDuration;
use orderflow_adapters::event_store::DynamoEventStore;
use orderflow_app::{Clock, CommandService, EventStore, Repository};
use orderflow_domain::order::{Order, OrderCommand};
use orderflow_domain::{Metadata, RawEnvelope, Timestamp};

/// Who records the cancellations.
pub const ACTOR: &str = "service:pending-timeout";

/// The default deadline (the template's `PendingTimeoutMinutes`).
pub const DEFAULT_DEADLINE: SignedDuration = SignedDuration::from_mins(15);

/// How far behind the deadline a run still looks.
pub const DEFAULT_LOOKBACK: SignedDuration = SignedDuration::from_mins(30);

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Orders placed in the window.
    pub examined: usize,
    /// Of those, cancelled now.
    pub expired: Vec<String>,
    /// Orders that failed (retried by the next run, which overlaps this one).
    pub failed: usize,
}

/// The sweeper.
#[derive(Debug, Clone)]
pub struct PendingTimeout<C> {
    commands: CommandService<DynamoEventStore, C>,
    deadline: SignedDuration,
    lookback: SignedDuration,
}

impl<C: Clock> PendingTimeout<C> {
    /// A sweeper with a deadline and a lookback.
    pub const fn new(
        repository: Repository<DynamoEventStore>,
        clock: C,
        deadline: SignedDuration,
        lookback: SignedDuration,
    ) -> Self {
        Self {
            commands: CommandService::new(repository, clock, orderflow_app::command::DEFAULT_MAX_ATTEMPTS),
            deadline,
            lookback,
        }
    }

    /// Expires the orders placed in `(now - deadline - lookback, now - deadline]` that
    /// are still pending.
    ///
    /// # Errors
    /// When the time index cannot be read; a failing order only counts in `failed`.
    pub async fn sweep(&self, now: Timestamp) -> Result<Swept, orderflow_app::StoreError> {
        let until = now.plus(-self.deadline);
        let from = until.plus(-self.lookback);
        let records = self
            .commands
            .repository()
            .store()
            .read_time_range(from, until.plus(SignedDuration::from_micros(1)))
            .await?;
        let mut swept = Swept::default();
        for record in records.iter().filter(|r| r.event_type == "OrderPlaced") {
            swept.examined += 1;
            let placed = match RawEnvelope::parse(&record.body) {
                Ok(placed) => placed,
                Err(error) => {
                    tracing::error!(stream = %record.stream, %error, "unreadable OrderPlaced in the time index");
                    swept.failed += 1;
                    continue;
                }
            };
            let metadata = Metadata::caused_by(&placed, ACTOR);
            let order_id = placed.aggregate_id.clone();
            let executed = self
                .commands
                .execute::<Order>(&order_id, OrderCommand::ExpirePending, &metadata, None)
                .await;
            match executed {
                Ok(executed) if !executed.events.is_empty() => {
                    orderflow_adapters::metrics::order_events(&executed.events);
                    tracing::info!(%order_id, correlation_id = %metadata.correlation_id, "pending past the deadline: cancelled (timeout)");
                    swept.expired.push(order_id);
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%order_id, error = %error, "expiry failed; the next run retries");
                    swept.failed += 1;
                }
            }
        }
        Ok(swept)
    }
}
