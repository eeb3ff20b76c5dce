//! The library behind the `orderflow` CLI, callable in-process by the system tests.
//!
//! - [`dev`]: `orderflow dev`, the whole system on a laptop.
//! - [`authorizer`]: API Gateway's JWT authorizer, locally; [`token`]: `orderflow token`.
//! - [`runner`]: Lambda's event source mappings, locally: the event store's stream
//!   into the relay, each function's SQS queue into its handler.
//! - [`catalog`]: `orderflow catalog import | export` and `orderflow stock`.
//! - [`dlq`]: `orderflow dlq list | show | redrive`.
//! - [`check`]: `orderflow check`, the consistency checker.
//! - [`replay`]: `orderflow replay`, governed replay of stored events.
//! - [`target`]: where those commands act: a deployed stack (`--stack`) or a local one.
//! - [`rebuild`]: `orderflow rebuild`, the order read model rebuilt from the store.
//! - [`relay`]: `orderflow relay recover`, the events of batches the relay gave up on.
//! - [`load`]: `orderflow load`, orders through the API and what they cost and took;
//!   [`ceiling`]: what the emulators can serve of the same call mix.
//! - [`capacity`]: `orderflow capacity`, what N orders/s needs and costs on AWS.
//! - [`footprint`]: `orderflow footprint`, each function's binary size and init time
//!   beside a hello-world function's.

pub mod authorizer;
pub mod capacity;
pub mod catalog;
pub mod ceiling;
pub mod check;
pub mod dev;
pub mod dlq;
pub mod footprint;
pub mod load;
pub mod ops;
pub mod rebuild;
pub mod relay;
pub mod replay;
pub use orderflow_runner as runner;
pub mod target;
pub mod token;

/// Logs for the CLI: JSON lines (with each handler's correlation id) or, with
/// `pretty`, human-readable ones. `RUST_LOG` filters (default: info for orderflow's
/// crates, warnings for the rest).
pub fn init_logging(pretty: bool) {
    orderflow_adapters::telemetry::init_with(
        "warn,orderflow=info,orderflow_cli=info,orderflow_runner=info,orderflow_provision=info,inventory=info,payment=info,\
         shipping=info,order_saga=info,order_api=info,projector=warn,relay=warn",
        pretty,
    );
}
