//! SQS from a consumer: a client built when first needed, and the backoff that holds a
//! retried message back by changing its visibility.

/// An SQS client built when first asked for. The consumer that needs one (payment's
/// backoff) needs it only once a message fails, so a sandbox that sees no failure never
/// builds it: a client parses its endpoint rules when built, a tenth of a function's
/// init.
#[derive(Clone)]
pub struct Sqs(std::sync::Arc<SqsCell>);

struct SqsCell {
    client: std::sync::OnceLock<aws_sdk_sqs::Client>,
    build: Box<dyn Fn() -> aws_sdk_sqs::Client + Send + Sync>,
}

impl Sqs {
    /// A client already built.
    #[must_use]
    pub fn built(client: aws_sdk_sqs::Client) -> Self {
        let cell = std::sync::OnceLock::new();
        let _ = cell.set(client.clone());
        Self(std::sync::Arc::new(SqsCell {
            client: cell,
            build: Box::new(move || client.clone()),
        }))
    }

    /// A client `build` makes on first use.
    pub fn deferred(build: impl Fn() -> aws_sdk_sqs::Client + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(SqsCell {
            client: std::sync::OnceLock::new(),
            build: Box::new(build),
        }))
    }

    /// Whether the client has been built.
    #[must_use]
    pub fn is_built(&self) -> bool {
        self.0.client.get().is_some()
    }

    /// The client, built now if it was not yet.
    #[must_use]
    pub fn client(&self) -> &aws_sdk_sqs::Client {
        self.0.client.get_or_init(|| (self.0.build)())
    }
}

impl std::fmt::Debug for Sqs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqs").field("built", &self.is_built()).finish()
    }
}

/// How the retryable failures of a queue come back: later with every receive
/// (`base` × 2^(receives − 1) seconds, at most `max`), set on the message with
/// `ChangeMessageVisibility`. A dependency that is down for an hour then costs a
/// message a dozen receives, not the queue's whole budget in five minutes.
#[derive(Debug, Clone)]
pub struct Backoff {
    sqs: Sqs,
    queue_url: String,
    base_seconds: u32,
    max_seconds: u32,
}

impl Backoff {
    /// Backoff on the queue at `queue_url`.
    pub fn new(sqs: Sqs, queue_url: impl Into<String>, base_seconds: u32, max_seconds: u32) -> Self {
        Self {
            sqs,
            queue_url: queue_url.into(),
            base_seconds,
            max_seconds,
        }
    }

    /// Seconds a message stays hidden after its `receives`-th receive failed.
    #[must_use]
    pub fn delay(base_seconds: u32, max_seconds: u32, receives: u32) -> u32 {
        let doublings = receives.saturating_sub(1).min(31);
        base_seconds.saturating_mul(1_u32 << doublings).min(max_seconds)
    }

    /// Hides the message for its delay; a failure only costs the backoff (the message
    /// comes back after the queue's own visibility timeout).
    pub async fn hold(&self, receipt_handle: &str, receives: u32) {
        let seconds = Self::delay(self.base_seconds, self.max_seconds, receives);
        let changed = self
            .sqs
            .client()
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(seconds).unwrap_or(i32::MAX))
            .send()
            .await;
        if let Err(error) = changed {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(error), "backoff not set; the queue's visibility timeout applies");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn a_deferred_client_is_built_on_first_use_and_once_for_every_copy() {
        let builds = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = builds.clone();
        let sqs = Sqs::deferred(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::Config::builder()
                    .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                    .region(aws_sdk_sqs::config::Region::new("us-east-1"))
                    .build(),
            )
        });
        let copy = sqs.clone();
        assert!(!sqs.is_built());
        assert_eq!(builds.load(std::sync::atomic::Ordering::SeqCst), 0);
        let _ = sqs.client();
        let _ = copy.client();
        assert!(copy.is_built());
        assert_eq!(builds.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(Sqs::built(copy.client().clone()).is_built());
    }
}
