//! SQS event source plumbing: one batch in, partial batch failures out.
//!
//! Every message is handled on its own; the ones that fail are reported in
//! `batchItemFailures`, so SQS redelivers only those (after the visibility timeout)
//! and the redrive policy moves a message that keeps failing to its DLQ. A failure is
//! logged with its reason where it happens, and recorded in the failure log (keyed by
//! message id) so `orderflow dlq show` can say why a parked message is there: nothing
//! fails silently.

use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;
use orderflow_adapters::failure_log::{FailureRecorder, MemoryFailureLog};
use orderflow_adapters::sqs::Backoff;
use orderflow_app::{Disposition, Failure, FailureLog};

/// Reads the envelope of the EventBridge event an SQS message carries, decoded (and
/// upcast) into `E`, with the metadata for the events it causes (`actor` records them).
///
/// # Errors
/// [`Failure::poison`]: the message is not an event of `E`.
pub fn decode_message<E: orderflow_domain::DomainEvent>(
    message: &SqsMessage,
    actor: &str,
) -> Result<(orderflow_domain::Envelope<E>, orderflow_domain::Metadata), Failure> {
    let body = message
        .body
        .as_deref()
        .ok_or_else(|| Failure::poison("message has no body"))?;
    let bus = orderflow_adapters::bus::BusEvent::parse(body)
        .map_err(|e| Failure::poison_while("reading the EventBridge event", e))?;
    let raw = orderflow_domain::RawEnvelope::parse(bus.detail.get())?;
    let metadata = orderflow_domain::Metadata::caused_by(&raw, actor);
    Ok((raw.decode()?, metadata))
}

tokio::task_local! {
    /// When the batch being handled must be answered for (see [`within`]).
    static DEADLINE: tokio::time::Instant;
}

/// Time kept back from the invocation's deadline to report the batch's outcome.
const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_millis(500);

/// Handles a batch (`work`) knowing the invocation ends at `deadline` (Lambda's, from
/// its context): a message still unfinished half a second before then is reported as
/// a failure, to come back on its own, instead of Lambda killing the invocation and
/// every message of the batch coming back with it. One hung call costs one message a
/// receive.
///
/// A deadline that has already passed, or leaves no more than the margin, when the
/// batch starts is no real invocation's (Lambda's leaves the function's timeout; some
/// local runtime emulators send none, or zero): the batch then runs without one.
pub async fn within<F: Future>(deadline: std::time::SystemTime, work: F) -> F::Output {
    match deadline.duration_since(std::time::SystemTime::now()) {
        Ok(left) if left > DEADLINE_MARGIN => {
            DEADLINE
                .scope(tokio::time::Instant::now() + (left - DEADLINE_MARGIN), work)
                .await
        }
        _ => {
            tracing::debug!("no usable invocation deadline; the batch runs without one");
            work.await
        }
    }
}

/// Handles each message of `event` with `handle`, concurrently, and reports the
/// failures for SQS to redeliver.
pub async fn process_batch<F, Fut>(event: SqsEvent, handle: F) -> SqsBatchResponse
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    process_batch_with_backoff::<_, _, MemoryFailureLog>(event, None, None, handle).await
}

/// [`process_batch`], recording failures with `failures` and holding back retryable
/// ones by `backoff`.
pub async fn process_batch_with_backoff<F, Fut, L: FailureLog>(
    event: SqsEvent,
    failures: Option<&FailureRecorder<L>>,
    backoff: Option<&Backoff>,
    handle: F,
) -> SqsBatchResponse
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let outcomes = join_all(event.records.into_iter().map(|message| {
        let id = message.message_id.clone().unwrap_or_default();
        let receives = message
            .attributes
            .get("ApproximateReceiveCount")
            .cloned()
            .unwrap_or_default();
        let receipt = message.receipt_handle.clone();
        let fut = handle(message);
        async move {
            let started = std::time::Instant::now();
            let outcome = match DEADLINE.try_with(|deadline| *deadline) {
                Ok(deadline) => tokio::time::timeout_at(deadline, fut).await.unwrap_or_else(|_| {
                    Err(Failure::retry(
                        "unfinished at the invocation's deadline; it comes back on its own",
                    ))
                }),
                Err(_) => fut.await,
            };
            crate::metrics::handler_duration(started.elapsed());
            (id, receives, receipt, outcome)
        }
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    let mut failed = Vec::new();
    let mut holds = Vec::new();
    for (id, receives, receipt, outcome) in outcomes {
        let Err(error) = outcome else { continue };
        if let (true, Some(backoff), Some(receipt)) = (error.is_retry(), backoff, receipt) {
            let count = receives.parse::<u32>().unwrap_or(1);
            holds.push(async move { backoff.hold(&receipt, count).await });
        }
        crate::metrics::message_failed(error.disposition.as_str());
        let reason = error.reason();
        match error.disposition {
            Disposition::Retry => {
                tracing::warn!(message_id = %id, receive_count = %receives, %reason, "message failed; SQS will redeliver it");
            }
            Disposition::Poison => {
                tracing::error!(message_id = %id, receive_count = %receives, %reason, "poison message; it will reach the DLQ");
            }
        }
        failed.push((id.clone(), receives, error));
        response.batch_item_failures.push(failure(id));
    }
    join_all(holds).await;
    if let Some(log) = failures {
        join_all(
            failed
                .iter()
                .map(|(id, receives, error)| log.record(id, receives, error)),
        )
        .await;
    }
    response
}

fn failure(id: String) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = id;
    failure
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use std::time::{Duration, SystemTime};

    use super::*;

    fn message(id: &str) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.to_owned());
        message
    }

    #[tokio::test]
    async fn a_message_still_running_at_the_deadline_fails_alone_and_in_time() {
        let mut batch = SqsEvent::default();
        batch.records = vec![message("quick"), message("hung"), message("quick-too")];
        let started = std::time::Instant::now();
        let response = within(
            SystemTime::now() + Duration::from_millis(800),
            process_batch(batch, |m| async move {
                if m.message_id.as_deref() == Some("hung") {
                    // A call that never answers.
                    tokio::time::sleep(Duration::from_secs(3_600)).await;
                }
                Ok(())
            }),
        )
        .await;
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(failed, ["hung"]);
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(800),
            "answered before the deadline, with the margin kept: {took:?}"
        );
        // A deadline already past when the batch starts (a local emulator that sends
        // zero) is no deadline: nothing is cut.
        let mut batch = SqsEvent::default();
        batch.records = vec![message("slow")];
        let response = within(
            SystemTime::UNIX_EPOCH,
            process_batch(batch, |_| async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(())
            }),
        )
        .await;
        assert!(response.batch_item_failures.is_empty());
        // Without a deadline (a test or a tool calling the handler), nothing is cut.
        let mut batch = SqsEvent::default();
        batch.records = vec![message("slow")];
        let response = process_batch(batch, |_| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(())
        })
        .await;
        assert!(response.batch_item_failures.is_empty());
    }
}
