//! Every AWS call counted, by service and operation: an SDK interceptor
//! ([`CallCounter`]) that counts each attempt the client sends (a retry is a call, and
//! is billed as one). Counts go to a [`Calls`] tally and, as the `AwsCalls` metric with
//! `service` and `operation` dimensions, to CloudWatch in Lambda (a no-op where no
//! recorder is installed).
//!
//! Every client the functions and `orderflow dev` build is made [`Counted`]; the
//! process-wide tally is [`Calls::global`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// A tally of calls by `(service, operation)`.
#[derive(Debug, Default)]
pub struct Calls(Mutex<BTreeMap<(String, String), u64>>);

impl Calls {
    /// The process-wide tally every [`Counted`] client adds to.
    pub fn global() -> Arc<Self> {
        static GLOBAL: OnceLock<Arc<Calls>> = OnceLock::new();
        GLOBAL.get_or_init(Arc::default).clone()
    }

    /// Counts one call.
    pub fn record(&self, service: &str, operation: &str) {
        if let Ok(mut calls) = self.0.lock() {
            *calls
                .entry((service.to_owned(), operation.to_owned()))
                .or_default() += 1;
        }
    }

    /// The counts so far, by `(service, operation)`.
    #[must_use]
    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Every call so far.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }
}

/// The interceptor: counts every attempt a client transmits into its tally.
#[derive(Debug, Clone)]
pub struct CallCounter {
    calls: Arc<Calls>,
}

impl CallCounter {
    /// Counting into `calls`.
    #[must_use]
    pub const fn into(calls: Arc<Calls>) -> Self {
        Self { calls }
    }
}

impl Default for CallCounter {
    fn default() -> Self {
        Self::into(Calls::global())
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            self.calls.record(metadata.service(), metadata.name());
            metrics::counter!(
                "AwsCalls",
                "service" => metadata.service().to_owned(),
                "operation" => metadata.name().to_owned()
            )
            .increment(1);
        }
        Ok(())
    }
}

/// A client whose calls are counted.
pub trait Counted: Sized {
    /// This client, counting its calls into `counter`'s tally.
    #[must_use]
    fn counted_by(&self, counter: CallCounter) -> Self;

    /// This client, counting its calls into the process-wide tally.
    #[must_use]
    fn counted(&self) -> Self {
        self.counted_by(CallCounter::default())
    }
}

macro_rules! counted {
    ($($sdk:ident),*) => {$(
        impl Counted for $sdk::Client {
            fn counted_by(&self, counter: CallCounter) -> Self {
                $sdk::Client::from_conf(self.config().to_builder().interceptor(counter).build())
            }
        }
    )*};
}

counted!(aws_sdk_dynamodb, aws_sdk_sqs, aws_sdk_eventbridge);
