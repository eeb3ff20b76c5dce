//! The handlers the runner hands batches to: every function the template maps,
//! built in-process from the stack's environment through one registry, or forwarded
//! to binaries `cargo lambda watch` runs.

use std::future::Future;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use orderflow_adapters::config::Config;
use orderflow_adapters::payment::{DynamoVault, SimulatedGateway};
use orderflow_app::SystemClock;
use orderflow_lambda::{Consumer as _, FromConfig, Service};
use orderflow_provision::local::Stack;

use crate::BatchHandler;

pub(crate) fn boxed<S, F, Fut>(service: S, call: F) -> BatchHandler
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, SqsEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = SqsBatchResponse> + Send + 'static,
{
    let service = Arc::new(service);
    let call = Arc::new(call);
    Arc::new(move |event| {
        let (service, call) = (service.clone(), call.clone());
        Box::pin(async move { call(service, event).await })
    })
}

/// A handler that forwards each batch to `cargo lambda watch`, which runs the
/// function's own binary; a failed invocation fails the whole batch, as in Lambda.
#[must_use]
pub fn forwarding_handler(http: reqwest::Client, url: &str, binary: &str) -> BatchHandler {
    let endpoint = format!(
        "{}/2015-03-31/functions/{binary}/invocations",
        url.trim_end_matches('/')
    );
    Arc::new(move |event: SqsEvent| {
        let (http, endpoint) = (http.clone(), endpoint.clone());
        Box::pin(async move {
            let ids: Vec<String> = event
                .records
                .iter()
                .filter_map(|m| m.message_id.clone())
                .collect();
            let all_failed = || {
                let mut response = SqsBatchResponse::default();
                response.batch_item_failures = ids
                    .iter()
                    .map(|id| {
                        let mut failure = aws_lambda_events::event::sqs::BatchItemFailure::default();
                        failure.item_identifier = id.clone();
                        failure
                    })
                    .collect();
                response
            };
            match http.post(&endpoint).json(&event).send().await {
                Ok(reply) if reply.status().is_success() => reply.json().await.unwrap_or_else(|error| {
                    tracing::error!(%endpoint, %error, "unreadable function response; failing the batch");
                    all_failed()
                }),
                Ok(reply) => {
                    tracing::error!(%endpoint, status = %reply.status(), "function invocation failed; failing the batch");
                    all_failed()
                }
                Err(error) => {
                    tracing::error!(%endpoint, %error, "cargo lambda watch unreachable; failing the batch");
                    all_failed()
                }
            }
        })
    })
}

/// The in-process handler of a function binary, wired to the stack's resources.
///
/// # Errors
/// When the binary is unknown or the stack lacks a table it needs.
pub fn handler_for(
    binary: &str,
    stack: &Stack,
    dynamodb: &aws_sdk_dynamodb::Client,
    snapshot_every: u64,
) -> anyhow::Result<BatchHandler> {
    handler_with(binary, stack, dynamodb, None, snapshot_every)
}

/// [`handler_for`], with the SQS client a handler that manages its messages' visibility
/// (payment's backoff) needs, as the runner builds them.
///
/// # Errors
/// As [`handler_for`].
pub fn handler_with(
    binary: &str,
    stack: &Stack,
    dynamodb: &aws_sdk_dynamodb::Client,
    sqs: Option<&aws_sdk_sqs::Client>,
    snapshot_every: u64,
) -> anyhow::Result<BatchHandler> {
    registry(binary, &stack_config(stack, dynamodb, sqs, snapshot_every))
}

/// The functions' configuration on a local stack: the template's environment resolved
/// to the stack's names, the snapshot interval the runner was given.
#[must_use]
pub fn stack_config(
    stack: &Stack,
    dynamodb: &aws_sdk_dynamodb::Client,
    sqs: Option<&aws_sdk_sqs::Client>,
    snapshot_every: u64,
) -> Config {
    let environment = stack.environment.clone();
    Config::new(
        move |name| match name {
            "SNAPSHOT_EVERY" => Some(snapshot_every.to_string()),
            name => environment.get(name).cloned(),
        },
        dynamodb.clone(),
        sqs.cloned(),
    )
}

/// Every queue consumer by its binary's name, built from `config` exactly as its
/// `main.rs` builds it in Lambda ([`orderflow_lambda::serve`]).
///
/// # Errors
/// When the binary is unknown or the configuration lacks what it needs.
pub fn registry(binary: &str, config: &Config) -> anyhow::Result<BatchHandler> {
    // The consumers as deployed: each over the adapters its `FromConfig` builds.
    type Inventory = inventory::InventoryService<SystemClock>;
    type Payment = payment::PaymentService<SimulatedGateway, DynamoVault, SystemClock>;
    type Shipping = shipping::ShippingService<SystemClock>;
    type OrderSaga = order_saga::OrderSaga<SystemClock>;
    type Projector = projector::Projector;
    fn service<C: FromConfig>(config: &Config) -> anyhow::Result<BatchHandler> {
        let service = Service::<C>::from_config(config)?;
        Ok(boxed(service, |s, e| async move { s.handle(e).await }))
    }
    match binary {
        Inventory::NAME => service::<Inventory>(config),
        Payment::NAME => service::<Payment>(config),
        Shipping::NAME => service::<Shipping>(config),
        OrderSaga::NAME => service::<OrderSaga>(config),
        Projector::NAME => service::<Projector>(config),
        other => anyhow::bail!("no in-process handler for function binary {other:?}"),
    }
}
