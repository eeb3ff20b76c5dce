//! Metrics in CloudWatch embedded metric format (EMF), through the `metrics` facade and
//! `metrics_cloudwatch_embedded`: each Lambda function installs the collector
//! ([`init_lambda`]) and runs under [`serve`], which flushes one EMF document to stdout
//! after every invocation; CloudWatch turns it into metrics in the `orderflow`
//! namespace, each with the function as a dimension. Elsewhere (the dev runner, tests) no recorder is installed
//! and every call here is a no-op.
//!
//! | metric | unit | dimensions | from |
//! |---|---|---|---|
//! | `OrdersPlaced` | count | function | the API |
//! | `OrdersConfirmed` | count | function | the order saga |
//! | `OrdersCancelled` | count | function, reason | the API, the saga, the pending-order timeout |
//! | `PaymentDeclines` | count | function, reason | payment |
//! | `TimeToConfirm` | ms | function | the order saga: placement to `OrderConfirmed` |
//! | `HandlerDuration` | µs | function | every SQS message, every API request |
//! | `MessagesFailed` | count | function, kind | every SQS consumer |
//! | `ConflictsRetried` | count | function | command handling (a lost append race re-decided) |
//! | `EventsRelayed` | count | function | the relay |
//! | `ColdStart` | count | function | every function |
//! | `AwsCalls` | count | function, service, operation | every AWS call every function sends ([`orderflow_adapters::calls`]) |

use std::future::Future;
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};
use std::time::Duration;

use lambda_runtime::LambdaInvocation;
use lambda_runtime::tower::{Layer, Service};
use metrics_cloudwatch_embedded::Builder;
use orderflow_domain::Envelope;
use orderflow_domain::order::OrderEvent;
use orderflow_domain::payment::PaymentEvent;

/// The CloudWatch namespace.
pub const NAMESPACE: &str = "orderflow";

/// The EMF property each document carries the invocation's request id in.
const REQUEST_ID: &str = "requestId";

/// A collector that flushes after each invocation.
pub type Collector = &'static metrics_cloudwatch_embedded::Collector;

/// Installs the EMF collector for a Lambda function.
///
/// # Errors
/// When a recorder is already installed.
pub fn init_lambda(function: &'static str) -> Result<Collector, String> {
    let collector = Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension("function", function)
        .init()
        .map_err(|e| e.to_string())?;
    metrics::describe_histogram!(
        "HandlerDuration",
        metrics::Unit::Microseconds,
        "time to handle a message or a request"
    );
    metrics::describe_histogram!(
        "TimeToConfirm",
        metrics::Unit::Milliseconds,
        "time from an order's placement to its confirmation"
    );
    Ok(collector)
}

/// Counts what happened to orders: placed, confirmed, cancelled (by reason).
pub fn order_events(events: &[Envelope<OrderEvent>]) {
    for event in events {
        match &event.data {
            OrderEvent::Placed(_) => metrics::counter!("OrdersPlaced").increment(1),
            OrderEvent::Confirmed(_) => metrics::counter!("OrdersConfirmed").increment(1),
            OrderEvent::Cancelled(cancelled) => {
                let reason = serde_json::to_value(cancelled.reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "unknown".into());
                metrics::counter!("OrdersCancelled", "reason" => reason).increment(1);
            }
            _ => {}
        }
    }
}

/// Records how long each order confirmed in `events` took from its placement at
/// `placed_at` (`TimeToConfirm`, milliseconds).
pub fn time_to_confirm(events: &[Envelope<OrderEvent>], placed_at: orderflow_domain::Timestamp) {
    for event in events {
        if let OrderEvent::Confirmed(_) = &event.data {
            let micros = event
                .occurred_at
                .as_micros()
                .saturating_sub(placed_at.as_micros())
                .max(0);
            let millis = u32::try_from(micros / 1_000).unwrap_or(u32::MAX);
            metrics::histogram!("TimeToConfirm").record(f64::from(millis));
        }
    }
}

/// Counts payment declines (by the provider's reason).
pub fn payment_events(events: &[Envelope<PaymentEvent>]) {
    for event in events {
        if let PaymentEvent::Declined(declined) = &event.data {
            metrics::counter!("PaymentDeclines", "reason" => declined.reason.clone()).increment(1);
        }
    }
}

/// Records how long a message or a request took.
pub fn handler_duration(elapsed: Duration) {
    let micros = u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX);
    metrics::histogram!("HandlerDuration").record(f64::from(micros));
}

/// Counts a failed message (`retry` or `poison`).
pub fn message_failed(kind: &'static str) {
    metrics::counter!("MessagesFailed", "kind" => kind).increment(1);
}

/// Counts events the relay published.
pub fn events_relayed(count: usize) {
    metrics::counter!("EventsRelayed").increment(u64::try_from(count).unwrap_or(u64::MAX));
}

/// Runs a Lambda function's runtime with tracing and the collector: each invocation in a
/// span with its request id, its metrics flushed to stdout when it ends, and
/// `ColdStart` counted once, on the first.
///
/// This is what `metrics_cloudwatch_embedded`'s `lambda` feature does, without that
/// feature: it makes `lambda_http` take every event source it knows (REST APIs, ALB,
/// WebSockets, VPC Lattice), whose request types the order API, which takes HTTP API
/// events only, would otherwise carry.
///
/// # Errors
/// When the runtime fails.
pub async fn serve<S>(
    collector: Collector,
    runtime: lambda_runtime::Runtime<S>,
) -> Result<(), lambda_runtime::Error>
where
    S: Service<LambdaInvocation, Response = (), Error = lambda_runtime::Error>,
{
    runtime
        .layer(lambda_runtime::layers::TracingLayer::new())
        .layer(Flushing::new(collector))
        .run()
        .await
}

/// The layer [`serve`] adds: the invocation's request id as an EMF property, the cold
/// start counted once, the collector flushed after the invocation (to stdout, where
/// Lambda's log stream takes EMF documents from).
pub struct Flushing<W = std::io::Stdout> {
    collector: Collector,
    out: fn() -> W,
}

impl Flushing {
    /// Flushes `collector` to stdout.
    #[must_use]
    pub fn new(collector: Collector) -> Self {
        Self {
            collector,
            out: std::io::stdout,
        }
    }
}

impl<W> Flushing<W> {
    /// Flushes `collector` to what `out` opens.
    #[must_use]
    pub fn writing_to(collector: Collector, out: fn() -> W) -> Self {
        Self { collector, out }
    }
}

impl<W> Clone for Flushing<W> {
    fn clone(&self) -> Self {
        Self {
            collector: self.collector,
            out: self.out,
        }
    }
}

impl<W> std::fmt::Debug for Flushing<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Flushing(..)")
    }
}

impl<S, W> Layer<S> for Flushing<W> {
    type Service = Flushed<S, W>;

    fn layer(&self, inner: S) -> Flushed<S, W> {
        Flushed {
            flushing: self.clone(),
            inner,
        }
    }
}

/// An inner service whose invocations [`Flushing`] wraps.
pub struct Flushed<S, W = std::io::Stdout> {
    flushing: Flushing<W>,
    inner: S,
}

impl<S: std::fmt::Debug, W> std::fmt::Debug for Flushed<S, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flushed")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S: Clone, W> Clone for Flushed<S, W> {
    fn clone(&self) -> Self {
        Self {
            flushing: self.flushing.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<S, W> Service<LambdaInvocation> for Flushed<S, W>
where
    S: Service<LambdaInvocation>,
    W: std::io::Write,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = FlushAfter<S::Future, W>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> FlushAfter<S::Future, W> {
        let Flushing { collector, out } = self.flushing.clone();
        collector.set_property(REQUEST_ID, invocation.context.request_id.clone());
        static COLD_START: Once = Once::new();
        COLD_START.call_once(|| {
            if let Err(error) = collector.write_single("ColdStart", Some(metrics::Unit::Count), 1, out()) {
                tracing::warn!(%error, "writing the cold start metric failed");
            }
        });
        FlushAfter {
            flushing: self.flushing.clone(),
            inner: Box::pin(self.inner.call(invocation)),
        }
    }
}

/// An invocation's future, flushing the collector when it is ready.
pub struct FlushAfter<F, W = std::io::Stdout> {
    flushing: Flushing<W>,
    inner: Pin<Box<F>>,
}

impl<F, W> std::fmt::Debug for FlushAfter<F, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlushAfter(..)")
    }
}

impl<F: Future, W: std::io::Write> Future for FlushAfter<F, W> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let output = std::task::ready!(self.inner.as_mut().poll(cx));
        let Flushing { collector, out } = self.flushing.clone();
        if let Err(error) = collector.flush(out()) {
            tracing::warn!(%error, "flushing the invocation's metrics failed");
        }
        Poll::Ready(output)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    static WRITTEN: Mutex<Vec<u8>> = Mutex::new(Vec::new());

    /// What the layer writes, kept for the test to read.
    struct Written;

    impl Write for Written {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            WRITTEN.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn invocation(request_id: &str) -> LambdaInvocation {
        let mut context = lambda_runtime::Context::default();
        context.request_id = request_id.to_owned();
        LambdaInvocation {
            parts: http::Response::new(()).into_parts().0,
            body: bytes::Bytes::new(),
            context,
        }
    }

    #[tokio::test]
    async fn each_invocation_is_flushed_when_it_ends_with_its_request_id_and_the_cold_start_is_counted_once()
    {
        // The process's recorder: nextest runs each test in a process of its own.
        let collector = Builder::new()
            .cloudwatch_namespace(NAMESPACE)
            .with_dimension("function", "test")
            .with_timestamp(0)
            .init()
            .unwrap();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let released = Arc::new(tokio::sync::Mutex::new(Some(released)));
        let inner = lambda_runtime::tower::service_fn(move |invocation: LambdaInvocation| {
            let released = released.clone();
            async move {
                // The first invocation waits until the test lets it end.
                if let Some(wait) = released.lock().await.take() {
                    wait.await.unwrap();
                }
                let relayed = if invocation.context.request_id == "r-1" {
                    2
                } else {
                    1
                };
                events_relayed(relayed);
                Ok::<(), lambda_runtime::Error>(())
            }
        });
        let mut service = Flushing::writing_to(collector, || Written).layer(inner);

        let first = tokio::spawn(service.call(invocation("r-1")));
        tokio::task::yield_now().await;
        let before: Vec<String> = lines();
        assert_eq!(
            before.len(),
            1,
            "only the cold start, nothing flushed before the end: {before:?}"
        );
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        service.call(invocation("r-2")).await.unwrap();

        let documents: Vec<serde_json::Value> =
            lines().iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        let shown: Vec<(Option<u64>, Option<u64>, &str)> = documents
            .iter()
            .map(|d| {
                (
                    d["ColdStart"].as_u64(),
                    d["EventsRelayed"].as_u64(),
                    d["requestId"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                (Some(1), None, "r-1"),
                (None, Some(2), "r-1"),
                (None, Some(1), "r-2")
            ]
        );
        assert!(
            documents
                .iter()
                .all(|d| d["function"] == "test"
                    && d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == NAMESPACE)
        );
    }

    fn lines() -> Vec<String> {
        String::from_utf8(WRITTEN.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}
