//! Logs as JSON lines (CloudWatch-friendly), one subscriber for every function.
//!
//! `RUST_LOG` filters as usual (default `info`); `ORDERFLOW_LOG_FORMAT=pretty` gives
//! human-readable lines for local runs. Span fields (the correlation id a handler puts
//! on its span) appear on every line inside the span.

/// Installs the global subscriber. Calling it twice is harmless.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if std::env::var("ORDERFLOW_LOG_FORMAT").is_ok_and(|f| f == "pretty") {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .without_time()
            .try_init()
    };
    // Already installed (tests, the dev runner hosting several handlers): keep it.
    drop(result);
}
