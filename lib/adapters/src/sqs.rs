//! SQS event source plumbing: one batch in, partial batch failures out.
//!
//! Every message is handled on its own; the ones that fail are reported in
//! `batchItemFailures`, so SQS redelivers only those (after the visibility timeout)
//! and the redrive policy moves a message that keeps failing to its DLQ. A failure is
//! logged with its reason where it happens: nothing fails silently.

use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;

/// Why a message was not processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Transient (store throttled, provider down): a redelivery may well succeed.
    #[error("retryable: {0}")]
    Retry(String),
    /// The message itself is bad (malformed, impossible): it will end in the DLQ.
    #[error("poison: {0}")]
    Poison(String),
}

impl<E: std::error::Error + 'static> From<orderflow_app::CommandError<E>> for Failure {
    /// The one place that says which command failures a redelivery can fix.
    fn from(error: orderflow_app::CommandError<E>) -> Self {
        use orderflow_app::{CommandError, LoadError};
        let reason = error.to_string();
        match error {
            CommandError::Contention { .. }
            | CommandError::Store(_)
            | CommandError::Load(LoadError::Store(_)) => Self::Retry(reason),
            CommandError::Domain(_)
            | CommandError::VersionMismatch { .. }
            | CommandError::Rejected(_)
            | CommandError::Load(LoadError::Corrupt { .. } | LoadError::Gap { .. }) => Self::Poison(reason),
        }
    }
}

impl From<orderflow_domain::DecodeError> for Failure {
    fn from(error: orderflow_domain::DecodeError) -> Self {
        Self::Poison(format!("undecodable event: {error}"))
    }
}

impl From<orderflow_app::GatewayError> for Failure {
    fn from(error: orderflow_app::GatewayError) -> Self {
        match error {
            orderflow_app::GatewayError::Unavailable(reason) => Self::Retry(reason),
            orderflow_app::GatewayError::Refused(reason) => Self::Poison(reason),
        }
    }
}

impl From<orderflow_app::StoreError> for Failure {
    fn from(error: orderflow_app::StoreError) -> Self {
        Self::Retry(error.to_string())
    }
}

/// Reads the envelope of the EventBridge event an SQS message carries, decoded (and
/// upcast) into `E`, with the metadata for the events it causes (`actor` records them).
///
/// # Errors
/// [`Failure::Poison`]: the message is not an event of `E`.
pub fn decode_message<E: orderflow_domain::DomainEvent>(
    message: &SqsMessage,
    actor: &str,
) -> Result<(orderflow_domain::Envelope<E>, orderflow_domain::Metadata), Failure> {
    let body = message
        .body
        .as_deref()
        .ok_or_else(|| Failure::Poison("message has no body".into()))?;
    let bus = crate::bus::BusEvent::parse(body)
        .map_err(|e| Failure::Poison(format!("not an EventBridge event: {e}")))?;
    let raw = orderflow_domain::RawEnvelope::parse(bus.detail.get())?;
    let metadata = orderflow_domain::Metadata::caused_by(&raw, actor);
    Ok((raw.decode()?, metadata))
}

/// Handles each message of `event` with `handle`, concurrently, and reports the
/// failures for SQS to redeliver.
pub async fn process_batch<F, Fut>(event: SqsEvent, handle: F) -> SqsBatchResponse
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
        let fut = handle(message);
        async move { (id, receives, fut.await) }
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    for (id, receives, outcome) in outcomes {
        match outcome {
            Ok(()) => {}
            Err(Failure::Retry(reason)) => {
                tracing::warn!(message_id = %id, receive_count = %receives, %reason, "message failed; SQS will redeliver it");
                response.batch_item_failures.push(failure(id));
            }
            Err(Failure::Poison(reason)) => {
                tracing::error!(message_id = %id, receive_count = %receives, %reason, "poison message; it will reach the DLQ");
                response.batch_item_failures.push(failure(id));
            }
        }
    }
    response
}

fn failure(id: String) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = id;
    failure
}
