//! Every AWS call counted, by service and operation: an SDK interceptor
//! ([`CallCounter`]) that counts each attempt the client sends (a retry is a call, and
//! is billed as one). Counts go to a [`Calls`] tally and, as the `AwsCalls` metric with
//! `service` and `operation` dimensions, to CloudWatch in Lambda (a no-op where no
//! recorder is installed).
//!
//! Every client the functions and `orderflow-dev up` build is made [`Counted`]; the
//! process-wide tally is [`Calls::global`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// One counted kind of call: who made it (a function's name, or empty where a process
/// is one function, as in Lambda), to which service, which operation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Call {
    /// The function that made it (`inventory`, `order-api`, …), or empty.
    pub function: String,
    /// `DynamoDB`, `SQS`, `EventBridge`, …
    pub service: String,
    /// `TransactWriteItems`, …
    pub operation: String,
}

/// The name `orderflow-dev up`'s runner counts its own calls under: the polling, deletes
/// and shard reads that stand in for Lambda's event source mappings (in AWS, Lambda's
/// calls, not the functions').
pub const EVENT_SOURCE_MAPPING: &str = "event-source-mapping";

/// A tally of calls.
#[derive(Debug, Default)]
pub struct Calls(Mutex<BTreeMap<Call, u64>>);

impl Calls {
    /// The process-wide tally every [`Counted`] client adds to.
    pub fn global() -> Arc<Self> {
        static GLOBAL: OnceLock<Arc<Calls>> = OnceLock::new();
        GLOBAL.get_or_init(Arc::default).clone()
    }

    /// Counts one call made by `function`.
    pub fn record(&self, function: &str, service: &str, operation: &str) {
        if let Ok(mut calls) = self.0.lock() {
            let call = Call {
                function: function.to_owned(),
                service: service.to_owned(),
                operation: operation.to_owned(),
            };
            *calls.entry(call).or_default() += 1;
        }
    }

    /// The counts so far, by function, service and operation.
    #[must_use]
    pub fn by_function(&self) -> BTreeMap<Call, u64> {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The counts so far, by `(service, operation)`, every function together.
    #[must_use]
    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        let mut calls = BTreeMap::new();
        for (call, n) in self.by_function() {
            *calls.entry((call.service, call.operation)).or_default() += n;
        }
        calls
    }

    /// Every call so far.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.by_function().values().sum()
    }
}

/// The interceptor: counts every attempt a client transmits into its tally.
#[derive(Debug, Clone)]
pub struct CallCounter {
    calls: Arc<Calls>,
    function: Arc<str>,
}

impl CallCounter {
    /// Counting into `calls`.
    #[must_use]
    pub fn into(calls: Arc<Calls>) -> Self {
        Self {
            calls,
            function: Arc::from(""),
        }
    }

    /// Counting as `function`'s calls: where one process runs several functions, as
    /// `orderflow-dev up` does.
    #[must_use]
    pub fn of(self, function: &str) -> Self {
        Self {
            function: Arc::from(function),
            ..self
        }
    }
}

impl CallCounter {
    /// Counts one attempt at `operation` of `service` (the SDK's names: `"Secrets
    /// Manager"`, `"GetSecretValue"`): in the tally and as an `AwsCalls` metric. The
    /// interceptor counts an SDK client's; a call made without one counts its own.
    pub fn count(&self, service: &str, operation: &str) {
        self.calls.record(&self.function, service, operation);
        metrics::counter!(
            "AwsCalls",
            "service" => service.to_owned(),
            "operation" => operation.to_owned()
        )
        .increment(1);
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
            self.count(metadata.service(), metadata.name());
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

    /// This client, counting its calls into the process-wide tally as `function`'s.
    #[must_use]
    fn counted_as(&self, function: &str) -> Self {
        self.counted_by(CallCounter::default().of(function))
    }

    /// A client built from `config`, counting its calls into the process-wide tally:
    /// what a Lambda function builds at init, one client rather than a client and then
    /// its counted copy.
    #[must_use]
    fn counted_from(config: &aws_types::SdkConfig) -> Self;
}

macro_rules! counted {
    ($($sdk:ident),*) => {$(
        impl Counted for $sdk::Client {
            fn counted_by(&self, counter: CallCounter) -> Self {
                $sdk::Client::from_conf(self.config().to_builder().interceptor(counter).build())
            }

            fn counted_from(config: &aws_types::SdkConfig) -> Self {
                $sdk::Client::from_conf(
                    $sdk::config::Builder::from(config)
                        .interceptor(CallCounter::default())
                        .build(),
                )
            }
        }
    )*};
}

counted!(aws_sdk_dynamodb, aws_sdk_sqs, aws_sdk_eventbridge);
