//! The event store on DynamoDB.
//!
//! Events table: one item per event, partition key `pk` = `<aggregateType>#<id>`, sort
//! key `version`. An append is one `TransactWriteItems`: a `ConditionCheck` that the
//! expected version exists (so no gap can be written) and one `Put` per event with
//! `attribute_not_exists(pk)` (so no version is written twice). Two writers at one
//! version: exactly one wins, the other gets [`AppendError::Conflict`].
//!
//! The `by-time` index spreads events over `timeBucket` = `<UTC day>#<shard>` (the
//! shard from a hash of the stream, so a stream stays in one shard and a busy day is
//! spread over [`TIME_SHARDS`] partitions), sorted by `timeKey` =
//! `<occurredAt>#<eventId>`.
//!
//! Snapshots live in their own table (`pk`, `version`), so they never reach the stream
//! the relay publishes from.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
use futures::future::try_join_all;
use orderflow_app::{
    AppendError, EventRecord, EventStore, SnapshotRecord, StoreError, StreamId, validate_append,
};
use orderflow_domain::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The time index's name, as `template.yaml` declares it.
pub const TIME_INDEX: &str = "by-time";

/// How many partitions one day of the time index is spread over.
pub const TIME_SHARDS: u32 = 16;

/// The sparse index of orders that may still be pending: every `OrderPlaced` item is
/// in it (`pendingShard`, one of [`TIME_SHARDS`], sorted by `timeKey`) from the moment
/// it is appended, in the same write, until [`DynamoEventStore::retire_pending`] takes
/// it out.
pub const PENDING_INDEX: &str = "pending";

/// The event that opens an order, and its place in the pending index.
const PLACED: &str = "OrderPlaced";

fn pending_shard(shard: u32) -> String {
    format!("pending#{shard:02}")
}

/// An entry of the pending index: an order placed at `placed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    /// The order's id.
    pub order_id: String,
    /// `timeKey` of its `OrderPlaced`.
    pub time_key: String,
}

/// Where a page of the pending index continues.
pub type PendingCursor = HashMap<String, AttributeValue>;

/// DynamoDB's limit on actions in one transaction.
pub const MAX_TRANSACTION_ACTIONS: usize = 100;

/// How often an append is retried when DynamoDB cancels it for a concurrent
/// transaction on the same items (as opposed to a failed condition).
const TRANSACTION_CONFLICT_RETRIES: u32 = 8;

/// The event store's DynamoDB tables.
#[derive(Debug, Clone)]
pub struct DynamoEventStore {
    client: Client,
    events_table: String,
    snapshots_table: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventItem {
    pk: String,
    version: u64,
    aggregate_type: String,
    aggregate_id: String,
    event_id: Uuid,
    event_type: String,
    occurred_at: Timestamp,
    time_bucket: String,
    time_key: String,
    body: String,
    /// Set on `OrderPlaced` only: the sparse [`PENDING_INDEX`] of orders that may still
    /// be pending, until the pending-order sweep retires them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_shard: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotItem {
    pk: String,
    version: u64,
    schema: u32,
    body: String,
}

/// FNV-1a: stable across builds and platforms, unlike `std`'s hasher.
fn shard_of(stream_key: &str) -> u32 {
    let hash = stream_key.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash % TIME_SHARDS
}

fn time_bucket(day: &str, shard: u32) -> String {
    format!("{day}#{shard:02}")
}

impl EventItem {
    fn from_record(record: &EventRecord) -> Self {
        let pk = record.stream.to_string();
        let shard = shard_of(&pk);
        Self {
            time_bucket: time_bucket(&record.occurred_at.utc_day(), shard),
            time_key: format!("{}#{}", record.occurred_at, record.event_id),
            pk,
            version: record.version,
            aggregate_type: record.stream.aggregate_type.clone(),
            aggregate_id: record.stream.aggregate_id.clone(),
            event_id: record.event_id,
            event_type: record.event_type.clone(),
            occurred_at: record.occurred_at,
            body: record.body.clone(),
            pending_shard: (record.event_type == PLACED).then(|| pending_shard(shard)),
        }
    }

    fn into_record(self) -> EventRecord {
        EventRecord {
            stream: StreamId::new(self.aggregate_type, self.aggregate_id),
            version: self.version,
            event_id: self.event_id,
            event_type: self.event_type,
            occurred_at: self.occurred_at,
            body: self.body,
        }
    }
}

fn to_item<T: Serialize>(value: &T) -> Result<HashMap<String, AttributeValue>, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::new("encode item", e))
}

fn from_items<T: for<'de> Deserialize<'de>>(
    items: Vec<HashMap<String, AttributeValue>>,
) -> Result<Vec<T>, StoreError> {
    serde_dynamo::from_items(items).map_err(|e| StoreError::new("decode item", e))
}

/// Reads an event back from an item of the events table, as the table's stream
/// delivers it (`NEW_IMAGE`) to the relay.
///
/// # Errors
/// [`StoreError`] when the item is not an event.
pub fn record_from_item(item: impl Into<serde_dynamo::Item>) -> Result<EventRecord, StoreError> {
    let item: EventItem =
        serde_dynamo::from_item(item).map_err(|e| StoreError::new("decode stream image", e))?;
    Ok(item.into_record())
}

impl DynamoEventStore {
    /// The store over `events_table` and `snapshots_table`.
    pub fn new(client: Client, events_table: impl Into<String>, snapshots_table: impl Into<String>) -> Self {
        Self {
            client,
            events_table: events_table.into(),
            snapshots_table: snapshots_table.into(),
        }
    }

    /// The `Put` that appends one event, for callers that must write an event in the
    /// same transaction as a side effect of their own (reserve stock and record it).
    ///
    /// # Errors
    /// [`StoreError`] if the record cannot be encoded.
    pub fn put_event(&self, record: &EventRecord) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.events_table)
            .set_item(Some(to_item(&EventItem::from_record(record))?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::new("build put", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The `ConditionCheck` that `stream` is at least at `version` (nothing for 0).
    ///
    /// # Errors
    /// [`StoreError`] if the request cannot be built.
    pub fn check_version(
        &self,
        stream: &StreamId,
        version: u64,
    ) -> Result<Option<TransactWriteItem>, StoreError> {
        if version == 0 {
            return Ok(None);
        }
        let check = ConditionCheck::builder()
            .table_name(&self.events_table)
            .key("pk", AttributeValue::S(stream.to_string()))
            .key("version", AttributeValue::N(version.to_string()))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| StoreError::new("build condition check", e))?;
        Ok(Some(TransactWriteItem::builder().condition_check(check).build()))
    }

    /// A strongly consistent query for the events of `stream` above `after_version`.
    fn stream_after(
        &self,
        stream: &StreamId,
        after_version: u64,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.events_table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND version > :after")
            .expression_attribute_values(":pk", AttributeValue::S(stream.to_string()))
            .expression_attribute_values(":after", AttributeValue::N(after_version.to_string()))
    }

    /// A page of the pending index's shard `shard`: orders placed before `until`, oldest
    /// first, continuing after `after`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn pending_page(
        &self,
        shard: u32,
        until: Timestamp,
        after: Option<PendingCursor>,
        limit: i32,
    ) -> Result<(Vec<PendingEntry>, Option<PendingCursor>), StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.events_table)
            .index_name(PENDING_INDEX)
            .key_condition_expression("pendingShard = :shard AND timeKey < :until")
            .expression_attribute_values(":shard", AttributeValue::S(pending_shard(shard)))
            .expression_attribute_values(":until", AttributeValue::S(until.to_string()))
            .set_exclusive_start_key(after)
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::new("query the pending index", e))?;
        let entries = output
            .items()
            .iter()
            .filter_map(|item| {
                let pk = item.get("pk")?.as_s().ok()?;
                Some(PendingEntry {
                    order_id: pk.strip_prefix("order#")?.to_owned(),
                    time_key: item.get("timeKey")?.as_s().ok()?.clone(),
                })
            })
            .collect();
        Ok((entries, output.last_evaluated_key))
    }

    /// Takes an order out of the pending index (it is no longer pending): its
    /// `OrderPlaced` item loses `pendingShard`, nothing else. The stream sees a
    /// `MODIFY`, which the relay does not publish.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn retire_pending(&self, order_id: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.events_table)
            .key("pk", AttributeValue::S(format!("order#{order_id}")))
            .key("version", AttributeValue::N("1".into()))
            .update_expression("REMOVE pendingShard")
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
            .map_err(|e| StoreError::new("retire a pending order", e))?;
        Ok(())
    }

    /// Replaces the envelope of one stored event, if it is still `old` (a migration's
    /// rewrite: `orderflow customers encrypt-history` sealing what was written in
    /// clear). Whether it was replaced. The stream sees a `MODIFY`, which the relay
    /// does not publish: nothing downstream runs twice.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn rewrite(
        &self,
        stream: &StreamId,
        version: u64,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let updated = self
            .client
            .update_item()
            .table_name(&self.events_table)
            .key("pk", AttributeValue::S(stream.to_string()))
            .key("version", AttributeValue::N(version.to_string()))
            .update_expression("SET body = :new")
            .condition_expression("body = :old")
            .expression_attribute_values(":old", AttributeValue::S(old.to_owned()))
            .expression_attribute_values(":new", AttributeValue::S(new.to_owned()))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(StoreError::new("rewrite an event", e)),
        }
    }

    /// Deletes every snapshot of `stream` (caches of its fold: the next load folds the
    /// events again); how many.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn drop_snapshots(&self, stream: &StreamId) -> Result<usize, StoreError> {
        let items = self
            .client
            .query()
            .table_name(&self.snapshots_table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(stream.to_string()))
            .projection_expression("pk, version")
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| StoreError::new("list snapshots", e))?;
        for key in &items {
            self.client
                .delete_item()
                .table_name(&self.snapshots_table)
                .set_key(Some(key.clone()))
                .send()
                .await
                .map_err(|e| StoreError::new("delete a snapshot", e))?;
        }
        Ok(items.len())
    }

    /// The ids of every aggregate of a type (a scan for each stream's first event):
    /// what a rebuild or a checker walks.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn aggregate_ids(&self, aggregate_type: &str) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{aggregate_type}#");
        let items = self
            .client
            .scan()
            .table_name(&self.events_table)
            .filter_expression("version = :first AND begins_with(pk, :prefix)")
            .projection_expression("pk")
            .expression_attribute_values(":first", AttributeValue::N("1".into()))
            .expression_attribute_values(":prefix", AttributeValue::S(prefix.clone()))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| StoreError::new("scan aggregate ids", e))?;
        Ok(items
            .into_iter()
            .filter_map(|item| match item.get("pk") {
                Some(AttributeValue::S(pk)) => pk.strip_prefix(&prefix).map(str::to_owned),
                _ => None,
            })
            .collect())
    }

    async fn query_day_shard(
        &self,
        bucket: String,
        from: &str,
        until: &str,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let pages = self
            .client
            .query()
            .table_name(&self.events_table)
            .index_name(TIME_INDEX)
            .key_condition_expression("timeBucket = :b AND timeKey BETWEEN :from AND :until")
            .expression_attribute_values(":b", AttributeValue::S(bucket))
            .expression_attribute_values(":from", AttributeValue::S(from.to_owned()))
            .expression_attribute_values(":until", AttributeValue::S(until.to_owned()))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| StoreError::new("query time index", e))?;
        let items: Vec<EventItem> = from_items(pages)?;
        // BETWEEN is inclusive: `until` itself sorts before any `until#<id>` key, so an
        // event at exactly `until` is already outside; this filter only guards the text.
        Ok(items
            .into_iter()
            .map(EventItem::into_record)
            .filter(|r| r.occurred_at.to_string().as_str() < until)
            .collect())
    }
}

/// The idempotency token of one attempt at an append: the same for the SDK's own
/// retries of that attempt, different for every other append (its event ids are new)
/// and for our retries after a transaction conflict (whose first try was refused, not
/// applied). At most 36 characters, as DynamoDB takes.
#[must_use]
pub fn client_request_token(
    stream: &StreamId,
    expected_version: u64,
    events: &[EventRecord],
    attempt: u32,
) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    digest.update(stream.to_string().as_bytes());
    digest.update(expected_version.to_be_bytes());
    for event in events {
        digest.update(event.event_id.as_bytes());
    }
    let hash = hex::encode(digest.finalize());
    format!("{}-{attempt}", &hash[..32])
}

/// Reads why DynamoDB cancelled a transaction: a failed condition (someone else won,
/// or a side effect's condition did not hold) or a concurrent transaction on the same
/// items (transient: try again).
enum Cancelled {
    ConditionFailed {
        index: usize,
        item: Option<HashMap<String, AttributeValue>>,
    },
    TransactionConflict,
}

fn cancellation(error: &aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError>) -> Option<Cancelled> {
    let TransactWriteItemsError::TransactionCanceledException(cancelled) = error.as_service_error()? else {
        return None;
    };
    let reasons = cancelled.cancellation_reasons();
    if let Some((index, reason)) = reasons
        .iter()
        .enumerate()
        .find(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
    {
        return Some(Cancelled::ConditionFailed {
            index,
            item: reason.item.clone(),
        });
    }
    reasons
        .iter()
        .any(|r| r.code() == Some("TransactionConflict"))
        .then_some(Cancelled::TransactionConflict)
}

/// Why an append with side effects did not happen.
#[derive(Debug, thiserror::Error)]
pub enum EffectsError {
    /// Someone else appended first.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// The condition of side effect `index` failed; `item` is the item as it was
    /// (`None`: it did not exist).
    #[error("side effect {index} failed its condition")]
    Effect {
        /// Position in the `effects` given.
        index: usize,
        /// The item the condition failed on.
        item: Option<HashMap<String, AttributeValue>>,
    },
}

impl DynamoEventStore {
    /// Appends `events` and applies `effects` in one transaction: all or nothing.
    ///
    /// `expected_version` must be the version just loaded: unlike [`EventStore::append`]
    /// this spends no action on checking it exists (the puts' `attribute_not_exists`
    /// still makes a concurrent writer lose), so `effects` + `events` may use all 100
    /// actions.
    ///
    /// # Errors
    /// [`EffectsError::Effect`] names the side effect whose condition failed;
    /// [`AppendError::Conflict`] when another writer appended first.
    pub async fn append_with_effects(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
        effects: Vec<TransactWriteItem>,
    ) -> Result<(), EffectsError> {
        self.append_with_planned_effects(stream, expected_version, events, effects, 0)
            .await
    }

    /// [`Self::append_with_effects`] for a caller that may send the same append again
    /// with other effects (the same stock move spread differently): `plan` tells the
    /// attempts apart, so DynamoDB does not take the second for a repeat of the first
    /// (a `ClientRequestToken` reused with other items is refused).
    ///
    /// # Errors
    /// As [`Self::append_with_effects`].
    pub async fn append_with_planned_effects(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
        effects: Vec<TransactWriteItem>,
        plan: u32,
    ) -> Result<(), EffectsError> {
        validate_append(stream, expected_version, events)?;
        let total = events.len() + effects.len();
        if total > MAX_TRANSACTION_ACTIONS {
            return Err(AppendError::TooManyEvents {
                count: total,
                max: MAX_TRANSACTION_ACTIONS,
            }
            .into());
        }
        let effect_count = effects.len();
        let mut actions = effects;
        for event in events {
            actions.push(self.put_event(event).map_err(AppendError::Store)?);
        }
        self.transact(stream, expected_version, events, actions, effect_count, plan)
            .await
    }

    /// Runs a transaction whose first `effect_count` actions are side effects and the
    /// rest the event store's own (appending `events`), retrying DynamoDB's transient
    /// transaction conflicts.
    ///
    /// Each attempt carries a `ClientRequestToken` derived from the append (stream,
    /// version, event ids) and the attempt. The SDK would send a random one per call,
    /// which covers its own retries of a lost response; a token of the append also
    /// covers the same append sent again by a caller that saw it fail: DynamoDB answers
    /// success without writing twice, instead of a conflict with our own events.
    async fn transact(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
        actions: Vec<TransactWriteItem>,
        effect_count: usize,
        plan: u32,
    ) -> Result<(), EffectsError> {
        let conflict = || AppendError::Conflict {
            stream: stream.clone(),
            expected_version,
        };
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .client_request_token(client_request_token(
                    stream,
                    expected_version,
                    events,
                    plan * (TRANSACTION_CONFLICT_RETRIES + 1) + attempt,
                ))
                .send()
                .await;
            let Err(error) = result else { return Ok(()) };
            match cancellation(&error) {
                Some(Cancelled::ConditionFailed { index, item }) if index < effect_count => {
                    return Err(EffectsError::Effect { index, item });
                }
                Some(Cancelled::ConditionFailed { .. }) => return Err(conflict().into()),
                Some(Cancelled::TransactionConflict) if attempt < TRANSACTION_CONFLICT_RETRIES => {
                    attempt += 1;
                    let jitter = u64::from(uuid::Uuid::now_v7().as_u128().to_le_bytes()[15] % 8);
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 5 + jitter)).await;
                }
                // Still contended after the retries: the caller re-loads and re-decides,
                // which is exactly what a lost race needs.
                Some(Cancelled::TransactionConflict) => return Err(conflict().into()),
                // This token went with other items before: the same append, planned
                // differently, committed or in flight. Loading again tells which.
                None if matches!(
                    error.as_service_error(),
                    Some(TransactWriteItemsError::IdempotentParameterMismatchException(_))
                ) =>
                {
                    return Err(conflict().into());
                }
                None => return Err(AppendError::Store(StoreError::new("transact", error)).into()),
            }
        }
    }
}

impl EventStore for DynamoEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
    ) -> Result<(), AppendError> {
        validate_append(stream, expected_version, events)?;
        if events.is_empty() {
            return Ok(());
        }
        let mut actions: Vec<_> = self
            .check_version(stream, expected_version)?
            .into_iter()
            .collect();
        for event in events {
            actions.push(self.put_event(event)?);
        }
        match self
            .transact(stream, expected_version, events, actions, 0, 0)
            .await
        {
            Ok(()) => Ok(()),
            Err(EffectsError::Append(error)) => Err(error),
            // No side effects were given, so every failed condition is the store's own.
            Err(EffectsError::Effect { .. }) => Err(AppendError::Conflict {
                stream: stream.clone(),
                expected_version,
            }),
        }
    }

    async fn load(&self, stream: &StreamId, after_version: u64) -> Result<Vec<EventRecord>, StoreError> {
        let pages = self
            .stream_after(stream, after_version)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| StoreError::new("load stream", e))?;
        let items: Vec<EventItem> = from_items(pages)?;
        Ok(items.into_iter().map(EventItem::into_record).collect())
    }

    async fn load_page(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let mut records = Vec::new();
        let mut start = None;
        // A query page stops at 1 MB, so a page of large events may take several.
        while records.len() < limit {
            let output = self
                .stream_after(stream, after_version)
                .limit(i32::try_from(limit - records.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::new("load a page of a stream", e))?;
            let items: Vec<EventItem> = from_items(output.items.unwrap_or_default())?;
            records.extend(items.into_iter().map(EventItem::into_record));
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(records)
    }

    async fn read_time_range(
        &self,
        from: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<EventRecord>, StoreError> {
        if until <= from {
            return Ok(Vec::new());
        }
        let (from_text, until_text) = (from.to_string(), until.to_string());
        let mut days = Vec::new();
        let mut day = from;
        let last_day = until.plus(jiff::SignedDuration::from_micros(-1)).utc_day();
        loop {
            let name = day.utc_day();
            let done = name == last_day;
            days.push(name);
            if done {
                break;
            }
            day = day.plus(jiff::SignedDuration::from_hours(24));
        }
        let queries = days.iter().flat_map(|day| {
            (0..TIME_SHARDS)
                .map(|shard| self.query_day_shard(time_bucket(day, shard), &from_text, &until_text))
        });
        let mut events: Vec<_> = try_join_all(queries).await?.into_iter().flatten().collect();
        events.sort_by_key(EventRecord::time_order);
        Ok(events)
    }

    async fn save_snapshot(&self, snapshot: &SnapshotRecord) -> Result<(), StoreError> {
        let item = SnapshotItem {
            pk: snapshot.stream.to_string(),
            version: snapshot.version,
            schema: snapshot.schema,
            body: snapshot.body.clone(),
        };
        self.client
            .put_item()
            .table_name(&self.snapshots_table)
            .set_item(Some(to_item(&item)?))
            .send()
            .await
            .map_err(|e| StoreError::new("save snapshot", e))?;
        Ok(())
    }

    async fn latest_snapshot(&self, stream: &StreamId) -> Result<Option<SnapshotRecord>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.snapshots_table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(stream.to_string()))
            .scan_index_forward(false)
            .limit(1)
            .send()
            .await
            .map_err(|e| StoreError::new("load snapshot", e))?;
        let items: Vec<SnapshotItem> = from_items(output.items.unwrap_or_default())?;
        Ok(items.into_iter().next().map(|s| SnapshotRecord {
            stream: stream.clone(),
            version: s.version,
            schema: s.schema,
            body: s.body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of("order#a"), shard_of("order#a"));
        let used: std::collections::HashSet<_> = (0..1000).map(|i| shard_of(&format!("order#{i}"))).collect();
        assert_eq!(used.len(), TIME_SHARDS as usize);
    }
}
