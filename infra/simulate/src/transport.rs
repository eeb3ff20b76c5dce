//! The simulated transports: the relay from the store's stream to the bus, the
//! template's rules to the queues, and the queues' batches, visibility, redelivery and
//! dead-letter queues.

use std::future::Future;
use std::pin::Pin;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use orderflow_app::EventRecord;
use orderflow_provision::messaging::pattern_matches;

use crate::{Delivery, MAX_BATCH, Message, World, describe};

impl World {
    /// The relay publishes what the stream holds, perhaps reordered within the batch
    /// (a transaction's records arrive in any order) and perhaps twice.
    pub(crate) fn relay(&mut self, chaos: bool) -> anyhow::Result<()> {
        let mut batch: Vec<EventRecord> = self.store.committed_since(self.relayed)?;
        if batch.is_empty() {
            return Ok(());
        }
        let take = if chaos {
            1 + self.rng.below(batch.len())
        } else {
            batch.len()
        };
        batch.truncate(take);
        if chaos && self.rng.chance(60) {
            // PutEvents throttled part-way: what went out stays out, and the relay's
            // mapping retries the batch from its first record (published again).
            let sent = self.rng.below(batch.len());
            self.faults.count(|| {
                format!(
                    "relay: PutEvents throttled after {sent} of {} records; the batch is retried",
                    batch.len()
                )
            });
            for record in &batch[..sent] {
                self.publish(record)?;
            }
            return Ok(());
        }
        self.relayed += batch.len();
        if chaos && batch.len() > 1 && self.rng.chance(400) {
            let (a, b) = (self.rng.below(batch.len()), self.rng.below(batch.len()));
            batch.swap(a, b);
            self.faults
                .count(|| format!("relay: records {a} and {b} of a batch of {} swapped", batch.len()));
        }
        for record in &batch {
            self.publish(record)?;
            if chaos && self.rng.chance(50) {
                self.faults
                    .count(|| format!("relay: {} v{} published twice", record.stream, record.version));
                self.publish(record)?;
            }
        }
        Ok(())
    }

    /// The bus: the event, as EventBridge hands it to SQS, to every queue whose rule
    /// matches.
    pub(crate) fn publish(&mut self, record: &EventRecord) -> anyhow::Result<()> {
        let detail: serde_json::Value = serde_json::from_str(&record.body)?;
        let event = serde_json::json!({
            "version": "0",
            "id": record.event_id.to_string(),
            "detail-type": record.event_type,
            "source": format!("orderflow.{}", record.stream.aggregate_type),
            "account": "000000000000",
            "time": record.occurred_at.to_string(),
            "region": "us-east-1",
            "resources": [format!("orderflow:{}", record.stream)],
            "detail": detail,
        });
        let targets: Vec<String> = self
            .rules
            .iter()
            .filter(|rule| pattern_matches(&rule.pattern, &event))
            .flat_map(|rule| rule.queues().map(str::to_owned))
            .collect();
        let body = event.to_string();
        for queue in targets {
            self.enqueue(&queue, body.clone(), false);
        }
        Ok(())
    }

    pub(crate) fn enqueue(&mut self, queue: &str, body: String, poison: bool) {
        let id = format!("m-{}", self.next_message);
        self.next_message += 1;
        let now = self.clock.elapsed();
        if let Some(queue) = self.queues.get_mut(queue) {
            queue.messages.push_back(Message {
                id,
                body,
                receives: 0,
                visible_at: now,
                poison,
            });
        }
    }

    /// Takes a batch of up to [`MAX_BATCH`] visible messages of `queue` (any of them:
    /// SQS does not keep order) for delivery: each counts a receive and is hidden until
    /// it is settled.
    pub(crate) fn receive(&mut self, queue_id: &str) -> Option<Delivery> {
        let now = self.clock.elapsed();
        let size = 1 + self.rng.below(MAX_BATCH);
        let queue = self.queues.get_mut(queue_id)?;
        let mut messages = Vec::new();
        while messages.len() < size {
            let visible: Vec<usize> = (0..queue.messages.len())
                .filter(|&i| queue.messages[i].visible_at <= now)
                .collect();
            let Some(mut message) = self.rng.pick(&visible).and_then(|i| queue.messages.remove(i)) else {
                break;
            };
            message.receives += 1;
            messages.push(message);
        }
        (!messages.is_empty()).then(|| Delivery {
            queue: queue_id.to_owned(),
            consumer: queue.consumer.clone(),
            messages,
        })
    }

    /// The batch a delivery hands its handler, as Lambda's event source mapping builds it.
    pub(crate) fn batch(delivery: &Delivery) -> SqsEvent {
        let mut batch = SqsEvent::default();
        batch.records = delivery
            .messages
            .iter()
            .map(|message| {
                let mut sqs = SqsMessage::default();
                sqs.message_id = Some(message.id.clone());
                sqs.body = Some(message.body.clone());
                sqs.attributes
                    .insert("ApproximateReceiveCount".into(), message.receives.to_string());
                sqs
            })
            .collect();
        batch
    }

    /// Runs a delivery's handler. Every simulated queue has one (queues without a
    /// function are not simulated); were one missing, the message would fail and come
    /// back, never vanish.
    pub(crate) fn invoke(&self, delivery: &Delivery) -> Pin<Box<dyn Future<Output = SqsBatchResponse>>> {
        match self.handlers.get(&delivery.consumer) {
            Some(handle) => handle(Self::batch(delivery)),
            None => {
                let mut response = SqsBatchResponse::default();
                for message in &delivery.messages {
                    let mut failure = aws_lambda_events::event::sqs::BatchItemFailure::default();
                    failure.item_identifier = message.id.clone();
                    response.batch_item_failures.push(failure);
                }
                Box::pin(std::future::ready(response))
            }
        }
    }

    /// Delivers one visible message of `queue`. While faults are on, another delivery
    /// may run beside it, their calls interleaved wherever one is slow: the same message
    /// again (its visibility timeout ran out while the first handler was still at it)
    /// or a message of any queue (Lambda runs batches concurrently).
    pub(crate) async fn deliver(&mut self, queue_id: &str, chaos: bool) {
        let Some(first) = self.receive(queue_id) else {
            return;
        };
        let beside = if chaos && self.rng.chance(150) {
            if self.rng.chance(300) {
                let mut again = first.clone();
                for message in &mut again.messages {
                    message.receives += 1;
                }
                self.faults.count(|| {
                    format!(
                        "{}: a batch of {} delivered again while its first delivery runs",
                        first.consumer,
                        first.messages.len()
                    )
                });
                Some((again, true))
            } else {
                let ready = self.ready();
                let other = self.rng.pick(&ready);
                other.and_then(|q| self.receive(&q)).map(|d| {
                    self.faults
                        .note(|| format!("{} and {}: delivered concurrently", first.consumer, d.consumer));
                    (d, false)
                })
            }
        } else {
            None
        };
        let run_first = self.invoke(&first);
        match beside {
            None => {
                let response = run_first.await;
                self.settle(first, &response, chaos);
            }
            Some((second, same)) => {
                let run_second = self.invoke(&second);
                let (response, second_response) = futures::join!(run_first, run_second);
                if same {
                    // Only the latest receipt can delete the message.
                    self.settle(second, &second_response, chaos);
                } else {
                    self.settle(first, &response, chaos);
                    self.settle(second, &second_response, chaos);
                }
            }
        }
    }

    /// Settles each message of a delivery as SQS would, by the batch's
    /// `batchItemFailures`: deleted, back after the visibility timeout, or redriven to
    /// the DLQ after `maxReceiveCount` receives.
    pub(crate) fn settle(&mut self, delivery: Delivery, response: &SqsBatchResponse, chaos: bool) {
        let Delivery {
            queue,
            consumer,
            messages,
        } = delivery;
        let failures = response.batch_item_failures.len();
        if failures > 0 && failures < messages.len() {
            self.faults.note(|| {
                format!(
                    "{consumer}: a batch of {}: {failures} failed, the rest deleted",
                    messages.len()
                )
            });
        }
        for message in messages {
            let failed = response
                .batch_item_failures
                .iter()
                .any(|f| f.item_identifier == message.id);
            self.settle_one(&queue, &consumer, message, failed, chaos);
        }
    }

    /// Settles one message of a batch.
    pub(crate) fn settle_one(
        &mut self,
        queue_id: &str,
        consumer: &str,
        mut message: Message,
        failed: bool,
        chaos: bool,
    ) {
        let now = self.clock.elapsed();
        let lost_delete = !failed && chaos && self.rng.chance(80);
        let Some(queue) = self.queues.get_mut(queue_id) else {
            return;
        };
        let visibility = i64::from(queue.spec.visibility_timeout) * 1_000_000;
        if failed {
            if queue
                .spec
                .redrive
                .as_ref()
                .is_some_and(|(_, max)| message.receives >= *max)
            {
                self.faults.note(|| {
                    format!(
                        "{consumer}: {} failed {} times; to the DLQ",
                        describe(&message.body),
                        message.receives
                    )
                });
                queue.dead.push(message);
            } else {
                self.faults.note(|| {
                    format!(
                        "{consumer}: {} failed; back after the visibility timeout",
                        describe(&message.body)
                    )
                });
                message.visible_at = now + visibility;
                queue.messages.push_back(message);
            }
        } else if lost_delete {
            // Handled, but the delete was lost: SQS delivers it again.
            self.faults.count(|| {
                format!(
                    "{consumer}: {} handled, its delete lost; delivered again",
                    describe(&message.body)
                )
            });
            message.visible_at = now + visibility;
            queue.messages.push_back(message);
        } else {
            self.faults
                .note(|| format!("{consumer}: {} handled", describe(&message.body)));
        }
    }

    /// Queues with a message visible now.
    pub(crate) fn ready(&self) -> Vec<String> {
        let now = self.clock.elapsed();
        self.queues
            .iter()
            .filter(|(_, q)| q.messages.iter().any(|m| m.visible_at <= now))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// When the next hidden message shows again, if any is waiting.
    pub(crate) fn next_visible(&self) -> Option<i64> {
        self.queues
            .values()
            .flat_map(|q| q.messages.iter().map(|m| m.visible_at))
            .min()
    }
}
