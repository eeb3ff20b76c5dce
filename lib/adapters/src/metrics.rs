//! Metrics in CloudWatch embedded metric format (EMF), through the `metrics` facade and
//! `metrics_cloudwatch_embedded`: each Lambda function installs the collector
//! ([`init_lambda`]), which flushes one EMF document to stdout after every invocation;
//! CloudWatch turns it into metrics in the `orderflow` namespace, each with the
//! function as a dimension. Elsewhere (the dev runner, tests) no recorder is installed
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
//! | `AwsCalls` | count | function, service, operation | every AWS call every function sends ([`crate::calls`]) |

use std::time::Duration;

use metrics_cloudwatch_embedded::Builder;
use orderflow_domain::Envelope;
use orderflow_domain::order::OrderEvent;
use orderflow_domain::payment::PaymentEvent;

/// The CloudWatch namespace.
pub const NAMESPACE: &str = "orderflow";

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
        .lambda_cold_start_metric("ColdStart")
        .with_lambda_request_id("requestId")
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

/// The EMF crate, for the functions' entry points (`emf::lambda::handler::run`).
pub use metrics_cloudwatch_embedded as emf;
