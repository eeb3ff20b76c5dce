//! Logs as JSON lines (CloudWatch-friendly), one subscriber for every function and the
//! CLI.
//!
//! `RUST_LOG` filters as usual; `ORDERFLOW_LOG_FORMAT=pretty` (or the CLI's `--pretty`)
//! gives human-readable lines for local runs. Span fields (the correlation id a handler
//! puts on its span) appear on every line inside the span.

/// Installs the global subscriber for a function: `info` unless `RUST_LOG` says
/// otherwise. Calling it twice is harmless.
pub fn init() {
    let pretty = std::env::var("ORDERFLOW_LOG_FORMAT").is_ok_and(|f| f == "pretty");
    init_with("info", pretty);
}

/// Installs the global subscriber with `default_filter` when `RUST_LOG` is unset, as
/// JSON lines or, with `pretty`, compact human-readable ones.
pub fn init_with(default_filter: &str, pretty: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if pretty {
        builder.compact().try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    };
    // Already installed (tests, the dev runner hosting several handlers): keep it.
    drop(result);
}
