//! The library behind the `orderflow` CLI, callable in-process by the system tests.
//!
//! - [`dev`]: `orderflow dev`, the whole system on a laptop.
//! - [`runner`]: Lambda's event source mappings, locally: the event store's stream
//!   into the relay, each function's SQS queue into its handler.

pub mod dev;
pub mod runner;

/// Logs for the CLI: JSON lines (with each handler's correlation id) or, with
/// `pretty`, human-readable ones. `RUST_LOG` filters (default: info for orderflow,
/// warnings for the rest).
pub fn init_logging(pretty: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        "warn,orderflow=info,orderflow_cli=info,inventory=info,payment=info,shipping=info,order_saga=info,order_api=info,relay=warn"
            .into()
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if pretty {
        builder.compact().init();
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    }
}
