//! The emulators' ceiling for a call mix: the same calls an order costs (by service and
//! operation, the functions' and the event source mappings'), issued straight to
//! DynamoDB Local and moto with no orderflow code in the way, as fast as they answer.
//! `orderflow-dev load --ceiling` runs it after the load, in the same run, so the end to
//! end rate is read against what the emulators can serve on the same machine at the
//! same time.
//!
//! The calls go to a scratch copy of the stack (`<prefix>-ceiling<time>`, provisioned from
//! the same template: the event store with its stream, the bus with the template's
//! rules, the queues) and to one scratch table of its own, all removed afterwards:
//!
//! - `TransactWriteItems`: an event into the event store (its stream records it) and a
//!   counter updated, as an append with its side effect;
//! - `PutItem`, `GetItem`, `UpdateItem`, `DeleteItem`, `BatchGetItem` (two keys),
//!   `Query` (a five-item partition): on the scratch table;
//! - `PutEvents`: the events of an ordinary order, as the relay sends them (the
//!   measured number of entries a call), into the scratch bus, whose rules fan them out
//!   to the scratch queues;
//! - `ReceiveMessage`, `DeleteMessageBatch`, `ChangeMessageVisibility`,
//!   `GetQueueAttributes`: on those queues, deleting what was received;
//! - `GetRecords`, `GetShardIterator`, `DescribeStream`: on the event store's stream.
//!
//! Any other operation in the mix is left out and named in the result.

#![allow(
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "rates of a measurement"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use orderflow_provision::Template;
use orderflow_provision::local::{self, Stack};
use serde::Serialize;
use tokio::sync::Mutex;

/// The events of an ordinary order, as the relay publishes them: `(source, type, file)`.
const ORDER_EVENTS: [(&str, &str); 8] = [
    ("order", "OrderPlaced"),
    ("inventory", "StockReserved"),
    ("payment", "PaymentCaptured"),
    ("order", "OrderStockReserved"),
    ("order", "OrderPaymentCaptured"),
    ("order", "OrderConfirmed"),
    ("shipment", "ShipmentCreated"),
    ("order", "OrderShipmentRecorded"),
];

/// What the emulators served.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ceiling {
    /// Calls answered per second, the mix as given.
    pub calls_per_second: f64,
    /// Calls of one order in the mix (those issued).
    pub calls_per_order: f64,
    /// Orders per second the emulators could serve: the two above divided.
    pub orders_per_second: f64,
    /// Calls that failed (they count as calls: the emulator answered).
    pub errors: u64,
    /// Operations of the mix with no stand-in here, per order.
    pub left_out: BTreeMap<String, f64>,
    /// Seconds measured.
    pub seconds: f64,
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Mean milliseconds a call took, by operation.
    pub mean_ms: BTreeMap<String, f64>,
}

/// The scratch resources and clients.
struct Bench {
    tables: Vec<String>,
    all_queues: Vec<String>,
    dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
    store: String,
    scratch: String,
    bus: String,
    queues: Vec<String>,
    stream_arn: String,
    entries: usize,
    bodies: Vec<(String, String, String)>,
    receipts: Mutex<Vec<(String, String)>>,
    /// Per queue, how much a receive there is worth now: what the last one got, grown
    /// by one for every receive made elsewhere since.
    promise: Mutex<Vec<usize>>,
    iterators: Mutex<Vec<String>>,
    shard: String,
    seq: AtomicU64,
}

/// The queue whose receive promises most (ties broken in turn from `n`); every queue's
/// promise grows by one and the chosen one's starts again from nothing, until its
/// receive says what it is worth.
fn pick(promise: &mut [usize], n: usize) -> Option<usize> {
    let len = promise.len();
    let best = (0..len)
        .map(|i| (n + i) % len)
        .fold(None, |best: Option<usize>, i| match best {
            Some(b) if promise[b] >= promise[i] => Some(b),
            _ => Some(i),
        })?;
    for p in promise.iter_mut() {
        *p += 1;
    }
    promise[best] = 0;
    Some(best)
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

impl Bench {
    /// The queue to receive from: where the messages are, as the runner's long polls
    /// find them. Visiting every queue in turn would leave the busy ones backing up
    /// (and moto's receive slows with a queue's depth), so the queue whose receive
    /// promises most is taken, ties broken in turn from `n`.
    async fn next_queue(&self, n: usize) -> Option<usize> {
        pick(&mut self.promise.lock().await, n)
    }

    fn key(&self) -> String {
        format!("k{}", self.seq.fetch_add(1, Ordering::Relaxed) % 512)
    }

    async fn call(&self, operation: &str) -> anyhow::Result<()> {
        match operation {
            "DynamoDB.PutItem" => {
                self.dynamodb
                    .put_item()
                    .table_name(&self.scratch)
                    .item("pk", s(self.key()))
                    .item("sk", s("view"))
                    .item("body", s("x".repeat(600)))
                    .send()
                    .await?;
            }
            "DynamoDB.GetItem" => {
                self.dynamodb
                    .get_item()
                    .table_name(&self.scratch)
                    .key("pk", s(self.key()))
                    .key("sk", s("view"))
                    .consistent_read(true)
                    .send()
                    .await?;
            }
            "DynamoDB.UpdateItem" => {
                self.dynamodb
                    .update_item()
                    .table_name(&self.scratch)
                    .key("pk", s(self.key()))
                    .key("sk", s("counter"))
                    .update_expression("ADD n :one")
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .send()
                    .await?;
            }
            "DynamoDB.DeleteItem" => {
                self.dynamodb
                    .delete_item()
                    .table_name(&self.scratch)
                    .key("pk", s(self.key()))
                    .key("sk", s("gone"))
                    .send()
                    .await?;
            }
            "DynamoDB.BatchGetItem" => {
                let keys = KeysAndAttributes::builder()
                    .keys([("pk".to_owned(), s("stream-1")), ("sk".to_owned(), s("1"))].into())
                    .keys([("pk".to_owned(), s("stream-1")), ("sk".to_owned(), s("2"))].into())
                    .build()?;
                self.dynamodb
                    .batch_get_item()
                    .request_items(&self.scratch, keys)
                    .send()
                    .await?;
            }
            "DynamoDB.Query" => {
                self.dynamodb
                    .query()
                    .table_name(&self.scratch)
                    .key_condition_expression("pk = :pk")
                    .expression_attribute_values(":pk", s("stream-1"))
                    .consistent_read(true)
                    .send()
                    .await?;
            }
            "DynamoDB.TransactWriteItems" => {
                let put = Put::builder()
                    .table_name(&self.store)
                    .item("pk", s(format!("ceiling#{}", uuid::Uuid::now_v7())))
                    .item("version", AttributeValue::N("1".into()))
                    .item("body", s("x".repeat(600)))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()?;
                let update = Update::builder()
                    .table_name(&self.scratch)
                    .key("pk", s(self.key()))
                    .key("sk", s("stock"))
                    .update_expression("ADD n :one")
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .build()?;
                self.dynamodb
                    .transact_write_items()
                    .transact_items(TransactWriteItem::builder().put(put).build())
                    .transact_items(TransactWriteItem::builder().update(update).build())
                    .send()
                    .await?;
            }
            "EventBridge.PutEvents" => {
                let n = self.seq.fetch_add(1, Ordering::Relaxed) as usize;
                let entries: Vec<PutEventsRequestEntry> = (0..self.entries)
                    .filter_map(|i| self.bodies.get((n + i) % self.bodies.len()))
                    .map(|(source, kind, body)| {
                        PutEventsRequestEntry::builder()
                            .event_bus_name(&self.bus)
                            .source(source)
                            .detail_type(kind)
                            .detail(body)
                            .build()
                    })
                    .collect();
                self.events.put_events().set_entries(Some(entries)).send().await?;
            }
            "SQS.ReceiveMessage" => {
                let n = self.seq.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(index) = self.next_queue(n).await else {
                    return Ok(());
                };
                let queue = &self.queues[index];
                let received = self
                    .sqs
                    .receive_message()
                    .queue_url(queue)
                    .max_number_of_messages(10)
                    .wait_time_seconds(0)
                    .send()
                    .await?;
                let messages = received.messages.unwrap_or_default();
                if let Some(promise) = self.promise.lock().await.get_mut(index) {
                    // A full receive is worth repeating at once; an empty one waits
                    // until every other queue has had its turn.
                    *promise = messages.len() * self.queues.len();
                }
                let mut receipts = self.receipts.lock().await;
                for message in messages {
                    if let Some(handle) = message.receipt_handle {
                        receipts.push((queue.clone(), handle));
                    }
                }
            }
            "SQS.DeleteMessageBatch" => {
                let batch: Vec<(String, String)> = {
                    let mut receipts = self.receipts.lock().await;
                    let Some((queue, _)) = receipts.last().cloned() else {
                        drop(receipts);
                        return Box::pin(self.call("SQS.ReceiveMessage")).await;
                    };
                    let mut batch = Vec::new();
                    receipts.retain(|(q, h)| {
                        if *q == queue && batch.len() < 10 {
                            batch.push((q.clone(), h.clone()));
                            false
                        } else {
                            true
                        }
                    });
                    batch
                };
                let Some(queue) = batch.first().map(|(q, _)| q.clone()) else {
                    return Ok(());
                };
                let entries = batch
                    .iter()
                    .enumerate()
                    .map(|(i, (_, h))| {
                        DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(h)
                            .build()
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                self.sqs
                    .delete_message_batch()
                    .queue_url(queue)
                    .set_entries(Some(entries))
                    .send()
                    .await?;
            }
            "SQS.GetQueueAttributes" | "SQS.ChangeMessageVisibility" => {
                let n = self.seq.fetch_add(1, Ordering::Relaxed) as usize;
                if let Some(queue) = self.queues.get(n % self.queues.len().max(1)) {
                    self.sqs
                        .get_queue_attributes()
                        .queue_url(queue)
                        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                        .send()
                        .await?;
                }
            }
            "DynamoDB Streams.GetRecords" | "DynamoDBStreams.GetRecords" => {
                let iterator = self.iterators.lock().await.pop();
                let iterator = match iterator {
                    Some(iterator) => iterator,
                    None => self.iterator().await?,
                };
                let page = self
                    .streams
                    .get_records()
                    .shard_iterator(iterator)
                    .limit(100)
                    .send()
                    .await?;
                if let Some(next) = page.next_shard_iterator {
                    self.iterators.lock().await.push(next);
                }
            }
            "DynamoDB Streams.GetShardIterator" | "DynamoDBStreams.GetShardIterator" => {
                let iterator = self.iterator().await?;
                self.iterators.lock().await.push(iterator);
            }
            "DynamoDB Streams.DescribeStream" | "DynamoDBStreams.DescribeStream" => {
                self.streams
                    .describe_stream()
                    .stream_arn(&self.stream_arn)
                    .send()
                    .await?;
            }
            other => anyhow::bail!("no stand-in for {other}"),
        }
        Ok(())
    }

    /// Deletes the scratch tables and queues (the bus and its rules stay: they cost
    /// nothing at rest).
    async fn remove(&self) {
        for table in self.tables.iter().chain([&self.scratch]) {
            if let Err(error) = self.dynamodb.delete_table().table_name(table).send().await {
                tracing::warn!(%table, error = %aws_sdk_dynamodb::error::DisplayErrorContext(error), "scratch table left behind");
            }
        }
        for queue in &self.all_queues {
            if let Err(error) = self.sqs.delete_queue().queue_url(queue).send().await {
                tracing::warn!(%queue, error = %aws_sdk_sqs::error::DisplayErrorContext(error), "scratch queue left behind");
            }
        }
    }

    async fn iterator(&self) -> anyhow::Result<String> {
        self.streams
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(&self.shard)
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::Latest)
            .send()
            .await?
            .shard_iterator
            .context("no shard iterator")
    }
}

/// Whether the bench has a stand-in for `operation` (`Service.Operation`).
#[must_use]
pub fn covered(operation: &str) -> bool {
    matches!(
        operation,
        "DynamoDB.PutItem"
            | "DynamoDB.GetItem"
            | "DynamoDB.UpdateItem"
            | "DynamoDB.DeleteItem"
            | "DynamoDB.BatchGetItem"
            | "DynamoDB.Query"
            | "DynamoDB.TransactWriteItems"
            | "EventBridge.PutEvents"
            | "SQS.ReceiveMessage"
            | "SQS.DeleteMessageBatch"
            | "SQS.GetQueueAttributes"
            | "SQS.ChangeMessageVisibility"
            | "DynamoDB Streams.GetRecords"
            | "DynamoDBStreams.GetRecords"
            | "DynamoDB Streams.GetShardIterator"
            | "DynamoDBStreams.GetShardIterator"
            | "DynamoDB Streams.DescribeStream"
            | "DynamoDBStreams.DescribeStream"
    )
}

/// The calls of `orders` orders of `mix` (`Service.Operation` → calls per order), in a
/// fixed interleaving: each operation spread evenly over the sequence.
#[must_use]
pub fn schedule(mix: &BTreeMap<String, f64>, orders: u32) -> Vec<String> {
    let mut slots: Vec<(f64, String)> = Vec::new();
    for (operation, per_order) in mix {
        let count = (per_order * f64::from(orders)).round() as u64;
        for i in 0..count {
            slots.push(((i as f64 + 0.5) / count as f64, operation.clone()));
        }
    }
    slots.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    slots.into_iter().map(|(_, op)| op).collect()
}

async fn scratch_table(dynamodb: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let created = dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sk")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sk")
                .key_type(KeyType::Range)
                .build()?,
        )
        .send()
        .await;
    if let Err(error) = created {
        let exists = error.as_service_error().is_some_and(
            aws_sdk_dynamodb::operation::create_table::CreateTableError::is_resource_in_use_exception,
        );
        anyhow::ensure!(
            exists,
            "creating {name}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(error)
        );
    }
    for version in 1..=5 {
        dynamodb
            .put_item()
            .table_name(name)
            .item("pk", s("stream-1"))
            .item("sk", s(version.to_string()))
            .item("body", s("x".repeat(600)))
            .send()
            .await?;
    }
    Ok(())
}

async fn prepare(template: &Template, prefix: &str, entries: usize) -> anyhow::Result<Bench> {
    let stack: Stack = local::provision_stack(template, prefix)
        .await
        .context("provisioning the scratch stack the ceiling is measured on")?;
    let dynamodb = local::dynamodb_client().await?;
    let scratch = format!("{prefix}-Scratch");
    scratch_table(&dynamodb, &scratch).await?;
    let store = stack
        .table("EventStoreTable")
        .context("no EventStoreTable")?
        .to_owned();
    let stream_arn = dynamodb
        .describe_table()
        .table_name(&store)
        .send()
        .await?
        .table
        .and_then(|t| t.latest_stream_arn)
        .context("the event store has no stream")?;
    let streams = local::dynamodb_streams_client().await?;
    let shard = streams
        .describe_stream()
        .stream_arn(&stream_arn)
        .send()
        .await?
        .stream_description
        .and_then(|d| d.shards)
        .and_then(|s| s.into_iter().rev().find_map(|s| s.shard_id))
        .context("the event store's stream has no shard")?;
    let root = Template::default_path()
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let bodies = ORDER_EVENTS
        .iter()
        .map(|(aggregate, kind)| {
            let path = root.join("events").join(aggregate).join(format!("{kind}.json"));
            std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))
                .map(|body| (format!("orderflow.{aggregate}"), (*kind).to_owned(), body))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let queues: Vec<String> = stack
        .messaging
        .queues
        .values()
        .filter(|q| q.redrive.is_some())
        .map(|q| q.url.clone())
        .collect();
    let sqs = local::sqs_client().await?;
    let queues_len = queues.len();
    Ok(Bench {
        tables: stack.tables.values().cloned().collect(),
        all_queues: stack.messaging.queues.values().map(|q| q.url.clone()).collect(),
        streams,
        sqs,
        events: local::eventbridge_client().await?,
        bus: stack.bus().to_owned(),
        dynamodb,
        store,
        scratch,
        queues,
        stream_arn,
        entries: entries.clamp(1, 10),
        bodies,
        receipts: Mutex::new(Vec::new()),
        promise: Mutex::new(vec![10; queues_len]),
        iterators: Mutex::new(Vec::new()),
        shard,
        seq: AtomicU64::new(0),
    })
}

/// Issues `mix` (`Service.Operation` → calls per order) for `duration` with
/// `concurrency` calls in flight, PutEvents carrying `entries` events each.
///
/// # Errors
/// When the scratch stack cannot be provisioned.
pub async fn measure(
    template: &Template,
    prefix: &str,
    mix: &BTreeMap<String, f64>,
    entries: usize,
    duration: Duration,
    concurrency: usize,
) -> anyhow::Result<Ceiling> {
    // A fresh scratch stack each run, removed after it: what a receive costs the
    // emulator grows with the queue's depth, so no run may inherit another's messages.
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let bench = Arc::new(prepare(template, &format!("{prefix}-ceiling{stamp}"), entries).await?);
    let (issued, left_out): (BTreeMap<String, f64>, BTreeMap<String, f64>) = mix
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .partition(|(op, _)| covered(op));
    let plan = Arc::new(schedule(&issued, 20));
    anyhow::ensure!(!plan.is_empty(), "the mix holds no call this bench can issue");
    let took: Arc<std::sync::Mutex<BTreeMap<String, (f64, u64)>>> = Arc::default();
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (bench, plan, next, done, errors, took) = (
                bench.clone(),
                plan.clone(),
                next.clone(),
                done.clone(),
                errors.clone(),
                took.clone(),
            );
            tokio::spawn(async move {
                while started.elapsed() < duration {
                    let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(operation) = plan.get(n % plan.len()) else {
                        break;
                    };
                    let call_started = Instant::now();
                    if let Err(error) = bench.call(operation).await
                        && errors.fetch_add(1, Ordering::Relaxed) == 0
                    {
                        tracing::warn!(operation, error = format!("{error:#}"), "a ceiling call failed");
                    }
                    if let Ok(mut took) = took.lock() {
                        let entry = took.entry(operation.clone()).or_default();
                        entry.0 += call_started.elapsed().as_secs_f64() * 1000.0;
                        entry.1 += 1;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.context("a bench worker")?;
    }
    let seconds = started.elapsed().as_secs_f64();
    bench.remove().await;
    let calls_per_second = done.load(Ordering::Relaxed) as f64 / seconds;
    let calls_per_order: f64 = issued.values().sum();
    Ok(Ceiling {
        calls_per_second,
        calls_per_order,
        orders_per_second: calls_per_second / calls_per_order.max(f64::EPSILON),
        errors: errors.load(Ordering::Relaxed),
        left_out,
        seconds,
        concurrency,
        mean_ms: took
            .lock()
            .map(|t| {
                t.iter()
                    .map(|(op, (ms, n))| (op.clone(), ms / (*n).max(1) as f64))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn receives_go_where_the_messages_are_and_empty_queues_wait_their_turn() {
        let mut promise = vec![10; 4];
        let mut n = 0;
        let mut receive = |promise: &mut Vec<usize>, got: &dyn Fn(usize) -> usize| {
            let q = super::pick(promise, n).unwrap();
            n += 1;
            promise[q] = got(q) * 4;
            q
        };
        // Queue 2 is the busy one: it fills every receive, the others are empty.
        let busy = |q: usize| if q == 2 { 10 } else { 0 };
        let visits: Vec<usize> = (0..40).map(|_| receive(&mut promise, &busy)).collect();
        let at_busy = visits.iter().filter(|&&q| q == 2).count();
        assert!(at_busy >= 30, "{visits:?}");
        // Yet every empty queue is still looked at now and then.
        for q in [0, 1, 3] {
            assert!(visits.contains(&q), "{q} never visited: {visits:?}");
        }
        assert_eq!(super::pick(&mut [], 3), None);
    }

    use super::*;

    #[test]
    fn the_schedule_holds_each_operation_in_its_share_spread_out() {
        let mix: BTreeMap<String, f64> = [("A".to_owned(), 2.0), ("B".to_owned(), 0.5)].into();
        let plan = schedule(&mix, 4);
        assert_eq!(plan.iter().filter(|o| *o == "A").count(), 8);
        assert_eq!(plan.iter().filter(|o| *o == "B").count(), 2);
        // Spread: the two B's are not side by side.
        let b: Vec<usize> = plan
            .iter()
            .enumerate()
            .filter(|(_, o)| *o == "B")
            .map(|(i, _)| i)
            .collect();
        assert!(b[1] - b[0] > 3, "{plan:?}");
    }

    #[test]
    fn operations_without_a_stand_in_are_named() {
        assert!(covered("DynamoDB.TransactWriteItems"));
        assert!(covered("SQS.ReceiveMessage"));
        assert!(!covered("SecretsManager.GetSecretValue"));
    }
}
