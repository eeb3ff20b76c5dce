//! Faults injected into an emulator client's calls, at the SDK's interceptor hooks, for
//! tests that must show what a crash or a lost response does: the emulator is real and
//! the request reaches it (or not) exactly as it would reach AWS; only what the caller
//! sees is changed.
//!
//! - [`Faults::lose_responses`]: the call is applied, then its response is replaced by
//!   a 500, as when a connection drops after the write (the SDK retries it);
//! - [`Faults::fail`]: the call never leaves the client, as when a function dies just
//!   before it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    LoseResponse,
    Fail,
}

/// Which calls of one operation to spoil, and how many were.
#[derive(Debug, Clone)]
pub struct Faults {
    operation: &'static str,
    fault: Fault,
    remaining: Arc<AtomicU32>,
    injected: Arc<AtomicU32>,
}

impl Faults {
    /// The next `times` calls of `operation` (`"TransactWriteItems"`) are applied, and
    /// their responses lost.
    #[must_use]
    pub fn lose_responses(operation: &'static str, times: u32) -> Self {
        Self::new(operation, Fault::LoseResponse, times)
    }

    /// The next `times` calls of `operation` (`"UpdateItem"`) fail before they are
    /// sent.
    #[must_use]
    pub fn fail(operation: &'static str, times: u32) -> Self {
        Self::new(operation, Fault::Fail, times)
    }

    fn new(operation: &'static str, fault: Fault, times: u32) -> Self {
        Self {
            operation,
            fault,
            remaining: Arc::new(AtomicU32::new(times)),
            injected: Arc::new(AtomicU32::new(0)),
        }
    }

    /// Spoils the next `times` calls from now on (replacing what was left), for a test
    /// that must set its stage before the faults begin.
    pub fn arm(&self, times: u32) {
        self.remaining.store(times, Ordering::SeqCst);
    }

    /// How many faults were injected so far.
    #[must_use]
    pub fn injected(&self) -> u32 {
        self.injected.load(Ordering::SeqCst)
    }

    /// Whether this call is one to spoil (and counts it).
    fn strikes(&self, fault: Fault, cfg: &ConfigBag) -> bool {
        let ours = self.fault == fault && cfg.load::<Metadata>().is_some_and(|m| m.name() == self.operation);
        let struck = ours
            && self
                .remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if struck {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        struck
    }
}

impl Intercept for Faults {
    fn name(&self) -> &'static str {
        "orderflow-faults"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.strikes(Fault::Fail, cfg) {
            return Err(format!("injected fault: {} did not leave the client", self.operation).into());
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.strikes(Fault::LoseResponse, cfg) {
            let status = StatusCode::try_from(500_u16).map_err(|e| BoxError::from(e.to_string()))?;
            *context.response_mut() = Response::new(
                status,
                SdkBody::from(
                    r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected fault: the response was lost"}"#,
                ),
            );
        }
        Ok(())
    }
}

/// A DynamoDB client for the emulator with `faults` injected into its calls.
///
/// # Errors
/// [`crate::local::NoEndpoint`] when no endpoint variable is set.
pub async fn dynamodb_client_with(
    faults: Faults,
) -> Result<aws_sdk_dynamodb::Client, crate::local::NoEndpoint> {
    let client = crate::local::dynamodb_client().await?;
    let config = client.config().to_builder().interceptor(faults).build();
    Ok(aws_sdk_dynamodb::Client::from_conf(config))
}
