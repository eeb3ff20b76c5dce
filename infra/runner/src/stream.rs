//! The event store's stream to the relay, as Lambda's stream event source mapping
//! delivers it: every shard, in batches, each record read again from its sequence
//! number until it is handled, with a checkpoint kept across restarts.

use std::collections::HashMap;

use anyhow::Context;
use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord as StreamEventRecord};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;

use crate::{DESCRIBE_EVERY, Invoke, Runner, Seen, now_ms};

/// What is saved between runs: the last relayed sequence number of every shard.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Checkpoint {
    stream_arn: String,
    shards: HashMap<String, String>,
}

#[derive(Debug, Default)]
pub(crate) struct ShardPosition {
    iterator: Option<String>,
    last_sequence: Option<String>,
    closed: bool,
}

pub(crate) fn load_checkpoint(
    path: Option<&std::path::Path>,
    stream_arn: &str,
) -> HashMap<String, ShardPosition> {
    let Some(path) = path else { return HashMap::new() };
    let Ok(bytes) = std::fs::read(path) else {
        return HashMap::new();
    };
    match serde_json::from_slice::<Checkpoint>(&bytes) {
        Ok(checkpoint) if checkpoint.stream_arn == stream_arn => {
            tracing::info!(
                shards = checkpoint.shards.len(),
                "resuming the stream from the checkpoint"
            );
            checkpoint
                .shards
                .into_iter()
                .map(|(shard, sequence)| {
                    (
                        shard,
                        ShardPosition {
                            iterator: None,
                            last_sequence: Some(sequence),
                            closed: false,
                        },
                    )
                })
                .collect()
        }
        Ok(_) => {
            tracing::info!(
                "checkpoint is for another stream (the emulator restarted); reading from the start"
            );
            HashMap::new()
        }
        Err(error) => {
            tracing::warn!(%error, "unreadable checkpoint ignored; reading from the start");
            HashMap::new()
        }
    }
}

/// One line per order event in a stream batch.
pub(crate) fn order_summaries(batch: &StreamEvent) -> Vec<String> {
    use orderflow_domain::order::OrderEvent;
    batch
        .records
        .iter()
        .filter_map(|record| {
            let event =
                orderflow_adapters::event_store::dynamodb::record_from_item(record.change.new_image.clone())
                    .ok()?;
            if event.stream.aggregate_type != "order" {
                return None;
            }
            let envelope = orderflow_domain::Envelope::<OrderEvent>::decode(&event.body).ok()?;
            let status = match &envelope.data {
                OrderEvent::Placed(_) => "PENDING".to_owned(),
                OrderEvent::Confirmed(_) => "CONFIRMED".to_owned(),
                OrderEvent::Cancelled(c) => {
                    format!("CANCELLED ({})", serde_json::to_value(c.reason).ok()?.as_str()?)
                }
                OrderEvent::FulfilmentAdvanced(a) => a.step.status().as_str().to_owned(),
                other => format!("recorded {}", orderflow_domain::DomainEvent::event_type(other)),
            };
            Some(format!(
                "order {}  v{:<2} {:<34} correlation {}",
                envelope.aggregate_id, envelope.version, status, envelope.metadata.correlation_id
            ))
        })
        .collect()
}

pub(crate) fn print_summaries(lines: &[String]) {
    use std::io::Write;
    if lines.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    for line in lines {
        // A closed stdout (piped to a pager that quit) must not stop the runner.
        let _ = writeln!(out, "{line}");
    }
}

pub(crate) fn to_stream_event(
    records: Vec<aws_sdk_dynamodbstreams::types::Record>,
) -> anyhow::Result<StreamEvent> {
    let mut converted = Vec::with_capacity(records.len());
    for record in records {
        let change = record.dynamodb.context("stream record without its change")?;
        let new_image: serde_dynamo::Item = change.new_image.unwrap_or_default().into();
        let keys: serde_dynamo::Item = change.keys.unwrap_or_default().into();
        let json = serde_json::json!({
            "awsRegion": record.aws_region.unwrap_or_default(),
            "eventID": record.event_id.unwrap_or_default(),
            "eventName": record.event_name.map(|n| n.as_str().to_owned()).unwrap_or_default(),
            "eventSource": "aws:dynamodb",
            "dynamodb": {
                "Keys": keys,
                "NewImage": new_image,
                "SequenceNumber": change.sequence_number,
                "SizeBytes": change.size_bytes.unwrap_or_default(),
                "StreamViewType": "NEW_IMAGE",
            },
        });
        let record: StreamEventRecord = serde_json::from_value(json).context("shaping a stream record")?;
        converted.push(record);
    }
    let mut event = StreamEvent::default();
    event.records = converted;
    Ok(event)
}

impl Runner {
    /// Reads what is new on every shard of the stream and relays it. Returns how many
    /// records were read.
    ///
    /// # Errors
    /// When DynamoDB Streams fails.
    pub async fn pump_stream(&self) -> anyhow::Result<usize> {
        let shard_ids = self.shard_ids().await?;
        let mut shards = self.shards.lock().await;
        let mut read = 0;
        for shard_id in shard_ids {
            let position = shards.entry(shard_id.clone()).or_default();
            if position.closed {
                continue;
            }
            if position.iterator.is_none() {
                position.iterator = Some(
                    self.iterator(&shard_id, position.last_sequence.as_deref())
                        .await?,
                );
            }
            let Some(iterator) = position.iterator.clone() else {
                continue;
            };
            let page = match self
                .streams
                .get_records()
                .shard_iterator(iterator)
                .limit(100)
                .send()
                .await
            {
                Ok(page) => page,
                // An expired iterator, or one DynamoDB Local took on an empty shard and
                // dropped when records arrived (that error arrives untyped: match the
                // code): take a new one after the last relayed record, or at the trim
                // horizon. Nothing is lost.
                Err(error)
                    if matches!(
                        aws_sdk_dynamodbstreams::error::ProvideErrorMetadata::code(&error),
                        Some("ExpiredIteratorException" | "TrimmedDataAccessException")
                    ) =>
                {
                    tracing::debug!(shard = %shard_id, "shard iterator no longer valid; taking a new one");
                    position.iterator = Some(
                        self.iterator(&shard_id, position.last_sequence.as_deref())
                            .await?,
                    );
                    continue;
                }
                Err(error) => {
                    let code =
                        aws_sdk_dynamodbstreams::error::ProvideErrorMetadata::code(&error).map(str::to_owned);
                    return Err(error)
                        .with_context(|| format!("reading shard {shard_id} of the stream (code {code:?})"));
                }
            };
            let records = page.records.unwrap_or_default();
            read += records.len();
            if records.is_empty() {
                position.iterator = page.next_shard_iterator;
                position.closed = position.iterator.is_none();
                if position.closed {
                    // Its child shards are read from the next poll on.
                    *self.described.lock().await = None;
                }
                continue;
            }
            // The events' own times: the stream's ApproximateCreationDateTime is
            // rounded down to the second (to the minute on some emulators).
            let oldest = records
                .iter()
                .filter_map(
                    |r| match r.dynamodb.as_ref()?.new_image.as_ref()?.get("occurredAt")? {
                        aws_sdk_dynamodbstreams::types::AttributeValue::S(at) => {
                            orderflow_domain::Timestamp::parse(at).ok()
                        }
                        _ => None,
                    },
                )
                .map(|t| u64::try_from(t.as_micros() / 1_000).unwrap_or(0))
                .min();
            if let (Some(created), Ok(mut lag)) = (oldest, self.lag.lock()) {
                let at_ms = now_ms();
                lag.stream = Some(Seen {
                    age_ms: at_ms.saturating_sub(created),
                    at_ms,
                });
            }
            let batch = to_stream_event(records)?;
            let sequences: Vec<_> = batch
                .records
                .iter()
                .map(|r| r.change.sequence_number.clone().unwrap_or_default())
                .collect();
            let summaries = if self.options.summaries {
                order_summaries(&batch)
            } else {
                Vec::new()
            };
            let response = self.invoke_relay(batch).await;
            let first_failed = response
                .batch_item_failures
                .iter()
                .filter_map(|f| f.item_identifier.clone())
                .min_by_key(|s| s.parse::<u128>().unwrap_or(u128::MAX));
            match first_failed {
                // As Lambda does: retry from the first failed record on.
                Some(sequence) => {
                    tracing::warn!(shard = %shard_id, sequence, "relay failed a record; reading again from it");
                    let iterator = self
                        .streams
                        .get_shard_iterator()
                        .stream_arn(&self.stream_arn)
                        .shard_id(&shard_id)
                        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                        .sequence_number(sequence)
                        .send()
                        .await
                        .context("repositioning on the failed record")?
                        .shard_iterator;
                    position.iterator = iterator;
                }
                None => {
                    position.last_sequence = sequences.last().cloned();
                    position.iterator = page.next_shard_iterator;
                    position.closed = position.iterator.is_none();
                    print_summaries(&summaries);
                    self.save_checkpoint(&shards).await;
                }
            }
        }
        Ok(read)
    }

    /// The stream's shard ids, described again when older than [`DESCRIBE_EVERY`].
    pub(crate) async fn shard_ids(&self) -> anyhow::Result<Vec<String>> {
        let mut described = self.described.lock().await;
        if let Some((at, ids)) = described.as_ref()
            && at.elapsed() < DESCRIBE_EVERY
        {
            return Ok(ids.clone());
        }
        let description = self
            .streams
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .context("describing the stream")?
            .stream_description
            .context("stream description")?;
        let ids: Vec<String> = description
            .shards
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| s.shard_id)
            .collect();
        *described = Some((tokio::time::Instant::now(), ids.clone()));
        Ok(ids)
    }

    pub(crate) async fn invoke_relay(
        &self,
        batch: StreamEvent,
    ) -> aws_lambda_events::event::streams::DynamoDbEventResponse {
        match &self.options.invoke {
            Invoke::InProcess => relay::relay(&self.publisher, batch).await,
            Invoke::LambdaWatch { url } => {
                let endpoint = format!(
                    "{}/2015-03-31/functions/relay/invocations",
                    url.trim_end_matches('/')
                );
                let sequences: Vec<_> = batch
                    .records
                    .iter()
                    .filter_map(|r| r.change.sequence_number.clone())
                    .collect();
                let reply = self.http.post(&endpoint).json(&batch).send().await;
                let parsed = match reply {
                    Ok(reply) if reply.status().is_success() => reply.json().await.ok(),
                    _ => None,
                };
                parsed.unwrap_or_else(|| {
                    tracing::error!(%endpoint, "relay invocation failed; the batch will be read again");
                    let mut response = aws_lambda_events::event::streams::DynamoDbEventResponse::default();
                    response.batch_item_failures = sequences
                        .into_iter()
                        .map(|s| {
                            let mut failure =
                                aws_lambda_events::event::streams::DynamoDbBatchItemFailure::default();
                            failure.item_identifier = Some(s);
                            failure
                        })
                        .collect();
                    response
                })
            }
        }
    }

    pub(crate) async fn save_checkpoint(&self, shards: &HashMap<String, ShardPosition>) {
        let Some(path) = &self.options.checkpoint else {
            return;
        };
        let checkpoint = Checkpoint {
            stream_arn: self.stream_arn.clone(),
            shards: shards
                .iter()
                .filter_map(|(id, p)| p.last_sequence.clone().map(|s| (id.clone(), s)))
                .collect(),
        };
        // Write beside, then rename: a crash leaves the old checkpoint or the new one,
        // never half of one.
        let tmp = path.with_extension("tmp");
        let written = match serde_json::to_vec(&checkpoint) {
            Ok(bytes) => tokio::fs::write(&tmp, bytes)
                .await
                .and(tokio::fs::rename(&tmp, path).await),
            Err(error) => Err(std::io::Error::other(error)),
        };
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), %error, "stream checkpoint not saved; a restart re-relays (duplicates are harmless)");
        }
    }

    pub(crate) async fn iterator(&self, shard_id: &str, after: Option<&str>) -> anyhow::Result<String> {
        let request = self
            .streams
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard_id);
        let request = match after {
            Some(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(sequence),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        request
            .send()
            .await
            .context("getting a shard iterator")?
            .shard_iterator
            .context("no shard iterator")
    }
}
