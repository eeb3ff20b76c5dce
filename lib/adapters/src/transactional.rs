//! Command handling whose events carry a side effect in DynamoDB (stock moves): decide,
//! then append the events and apply the effects in one transaction, re-deciding when
//! another writer got there first. A retry can never repeat the effect, because the
//! effect and the record of it commit together or not at all.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use orderflow_app::command::envelopes;
use orderflow_app::{AppendError, Clock, EventRecord, Repository, StoreError, StreamId};
use orderflow_domain::{Aggregate, Envelope, Metadata};

use crate::event_store::DynamoEventStore;
use crate::event_store::dynamodb::EffectsError;
use crate::sqs::Failure;

/// How many times a command is re-decided after losing a race.
const ATTEMPTS: u32 = 5;

/// What happened to a command with effects.
#[derive(Debug)]
pub enum Applied<E> {
    /// The events were appended and their effects applied (empty: a duplicate).
    Done(Vec<Envelope<E>>),
    /// The condition of effect `index` failed; nothing was written.
    EffectRefused {
        /// Which effect.
        index: usize,
        /// The item as it was (`None`: absent).
        item: Option<HashMap<String, AttributeValue>>,
    },
}

/// Decides `command` on the aggregate and commits the events with the effects
/// `effects_for` derives from them.
///
/// # Errors
/// [`Failure::retry`] for contention or a store failure, [`Failure::poison`] for a
/// corrupt stream or a refused command.
pub async fn execute_with_effects<A, C>(
    repository: &Repository<DynamoEventStore>,
    clock: &C,
    aggregate_id: &str,
    command: A::Command,
    metadata: &Metadata,
    effects_for: impl Fn(&[A::Event]) -> Result<Vec<TransactWriteItem>, StoreError>,
) -> Result<Applied<A::Event>, Failure>
where
    A: Aggregate,
    C: Clock,
{
    let stream = StreamId::new(A::TYPE, aggregate_id);
    for _ in 0..ATTEMPTS {
        let loaded = repository.load::<A>(aggregate_id).await?;
        let decided = A::decide(&loaded.state, command.clone()).map_err(Failure::poison)?;
        if decided.is_empty() {
            return Ok(Applied::Done(Vec::new()));
        }
        let effects = effects_for(&decided)?;
        let envelopes = envelopes::<A>(
            aggregate_id,
            loaded.version,
            decided,
            metadata,
            loaded.stamp(clock.now()),
        );
        let records: Vec<_> = envelopes.iter().map(EventRecord::from_envelope).collect();
        match repository
            .store()
            .append_with_effects(&stream, loaded.version, &records, effects)
            .await
        {
            Ok(()) => return Ok(Applied::Done(envelopes)),
            Err(EffectsError::Effect { index, item }) => return Ok(Applied::EffectRefused { index, item }),
            Err(EffectsError::Append(AppendError::Conflict { .. })) => {
                tracing::debug!(%stream, "lost an append race; re-deciding");
            }
            Err(EffectsError::Append(AppendError::Store(e))) => return Err(e.into()),
            Err(EffectsError::Append(other)) => return Err(other.into()),
        }
    }
    Err(Failure::retry(format!(
        "{stream}: still contended after {ATTEMPTS} attempts"
    )))
}
