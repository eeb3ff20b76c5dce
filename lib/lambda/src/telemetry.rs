//! Logs as JSON lines (CloudWatch-friendly), one subscriber for every function and the
//! CLI.
//!
//! `RUST_LOG` filters by target and level (`warn,orderflow=info,inventory=debug`; a
//! value that does not parse leaves the default); `ORDERFLOW_LOG_FORMAT=pretty` (or the CLI's `--pretty`)
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
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref(), default_filter);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    let result = if pretty {
        registry.with(layer.compact()).try_init()
    } else {
        registry
            .with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init()
    };
    // Already installed (tests, the dev runner hosting several handlers): keep it.
    drop(result);
}

/// The filter: `RUST_LOG` when it parses as targets and levels, else `default_filter`
/// (a target-and-level filter needs no regular expressions in every function).
fn filter(rust_log: Option<&str>, default_filter: &str) -> tracing_subscriber::filter::Targets {
    rust_log
        .and_then(|v| v.parse().ok())
        .or_else(|| default_filter.parse().ok())
        .unwrap_or_else(|| tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO))
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::filter;

    #[test]
    fn rust_log_sets_levels_by_target_and_a_bad_one_leaves_the_default() {
        let set = filter(Some("warn,inventory=debug"), "info");
        assert!(set.would_enable("inventory::handler", &Level::DEBUG));
        assert!(!set.would_enable("aws_smithy_runtime", &Level::INFO));
        assert!(set.would_enable("aws_smithy_runtime", &Level::WARN));

        let default = filter(Some("inventory=loudly"), "warn,orderflow=info");
        assert!(default.would_enable("orderflow::dev", &Level::INFO));
        assert!(!default.would_enable("hyper", &Level::INFO));

        let unset = filter(None, "info");
        assert!(unset.would_enable("payment", &Level::INFO));
        assert!(!unset.would_enable("payment", &Level::DEBUG));
    }
}
