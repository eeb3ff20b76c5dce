//! `orderflow`, the operator's command line: every command acts on a deployed stack
//! (`--stack`) or on the local one the developer tools run, the same way
//! ([`target`]). Its library is what the system tests call in-process.
//!
//! - [`catalog`]: `orderflow catalog import | export` and `orderflow stock`.
//! - [`dlq`]: `orderflow dlq list | show | redrive`.
//! - [`check`]: `orderflow check`, the consistency checker.
//! - [`replay`]: `orderflow replay`, governed replay of stored events.
//! - [`rebuild`]: `orderflow rebuild`, the order read model rebuilt from the store.
//! - [`relay`]: `orderflow relay recover`, the events of batches the relay gave up on.
//! - [`customers`]: `orderflow customers show | erase | encrypt-history`.
//! - [`token`]: `orderflow token`, a token of the local stack's issuer ([`keys`]).
//!
//! Results and progress go to stdout; logs to stderr, warnings only and readable
//! unless `-v` or `--log-format json` say otherwise ([`init_logging`]); an error ends a
//! command with one line ([`error_report`]).

pub mod catalog;
pub mod check;
pub mod customers;
pub mod dlq;
pub mod keys;
pub mod rebuild;
pub mod relay;
pub mod replay;
pub mod target;
pub mod token;

/// The flags both command lines take, whatever the command.
#[derive(Debug, Clone, clap::Args)]
pub struct Globals {
    /// Logs (on stderr): `human` lines or `json` lines.
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// More logs: `-v` what orderflow does, `-vv` debug; an error's causes too.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Human-readable logs (the default; kept for older scripts).
    #[arg(long, global = true, hide = true)]
    pub pretty: bool,
}

/// Ctrl-C, for the commands that finish their work in flight before they stop.
static CTRL_C: std::sync::OnceLock<tokio::sync::watch::Sender<bool>> = std::sync::OnceLock::new();

/// A receiver that turns true on Ctrl-C. A command that holds one is told and stops
/// when it is ready; while none is held, Ctrl-C ends the process with code 130.
#[must_use]
pub fn on_ctrl_c() -> tokio::sync::watch::Receiver<bool> {
    CTRL_C
        .get_or_init(|| tokio::sync::watch::channel(false).0)
        .subscribe()
}

/// A command line's `main`: logs as `globals` say, Ctrl-C as [`on_ctrl_c`] says, then
/// `command`. An error ends it with [`error_report`]'s line on stderr and exit code 1;
/// a command decides other codes itself.
pub async fn main_with(
    globals: &Globals,
    command: impl Future<Output = anyhow::Result<()>>,
) -> std::process::ExitCode {
    use std::io::Write as _;
    let format = if globals.pretty {
        LogFormat::Human
    } else {
        globals.log_format
    };
    init_logging(format, globals.verbose);
    let stop = CTRL_C.get_or_init(|| tokio::sync::watch::channel(false).0);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            if stop.send(true).is_err() {
                std::process::exit(130);
            }
            tracing::info!("Ctrl-C: finishing the work in flight, then stopping");
        }
    });
    match command.await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "{}", error_report(&error, globals.verbose > 0));
            std::process::ExitCode::FAILURE
        }
    }
}

/// How the CLI writes its logs (on stderr; results and progress go to stdout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line each.
    #[default]
    Human,
    /// JSON lines, with each handler's correlation id (for a log pipeline).
    Json,
}

/// The level filter for `verbose` (`-v` count): warnings only by default; `-v`: what
/// orderflow's crates do (info); `-vv`: debug. `RUST_LOG`, when set, decides instead.
#[must_use]
pub fn log_filter(verbose: u8) -> String {
    const CRATES: [&str; 15] = [
        "orderflow",
        "orderflow_cli",
        "orderflow_devtools",
        "orderflow_runner",
        "orderflow_provision",
        "orderflow_adapters",
        "orderflow_app",
        "inventory",
        "payment",
        "shipping",
        "order_saga",
        "order_api",
        "projector",
        "relay",
        "pending_timeout",
    ];
    let level = match verbose {
        0 => return "warn".to_owned(),
        1 => "info",
        _ => "debug",
    };
    std::iter::once("warn".to_owned())
        .chain(CRATES.iter().map(|c| format!("{c}={level}")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Logs for the CLI, on stderr: `format`, at [`log_filter`]'s level for `verbose`.
pub fn init_logging(format: LogFormat, verbose: u8) {
    orderflow_lambda::telemetry::init_with(&log_filter(verbose), format == LogFormat::Human);
}

/// What the CLI prints for an error that ends a command: one line saying what failed
/// (the outermost context), with a hint where the cause is a usual one, and the whole
/// chain of causes only when `verbose`.
#[must_use]
pub fn error_report(error: &anyhow::Error, verbose: bool) -> String {
    let mut text = format!("error: {error}");
    let chain = format!("{error:#}").to_lowercase();
    let hint = if chain.contains("dispatch failure")
        || chain.contains("connection refused")
        || chain.contains("connect error")
        || chain.contains("io error")
    {
        Some(
            "the stack did not answer: locally, start the emulators (`make emulators`); for AWS, check --stack and your credentials",
        )
    } else if chain.contains("resourcenotfound") || chain.contains("nonexistentqueue") {
        Some(
            "a resource of the stack is missing: locally, `orderflow-dev up` creates them; check --prefix or --stack",
        )
    } else {
        None
    };
    if let Some(hint) = hint.filter(|_| !text.contains("make emulators")) {
        text.push_str(&format!("\n  hint: {hint}"));
    }
    if verbose {
        for cause in error.chain().skip(1) {
            text.push_str(&format!("\n  caused by: {cause}"));
        }
    } else if error.chain().nth(1).is_some() {
        text.push_str("\n  (run again with -v for the causes)");
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn an_error_is_one_line_with_its_causes_only_when_asked() {
        let error = anyhow::anyhow!("dispatch failure: io error: Connection refused (os error 111)")
            .context("reading the DLQ orderflow-InventoryDeadLetterQueue");
        let short = error_report(&error, false);
        assert_eq!(
            short.lines().next(),
            Some("error: reading the DLQ orderflow-InventoryDeadLetterQueue")
        );
        assert!(short.contains("hint: the stack did not answer"), "{short}");
        assert!(!short.contains("os error 111"), "{short}");
        assert!(short.ends_with("(run again with -v for the causes)"), "{short}");
        let long = error_report(&error, true);
        assert!(long.contains("caused by: dispatch failure"), "{long}");
        assert_eq!(
            error_report(&anyhow::anyhow!("no DLQ \"X\""), false),
            "error: no DLQ \"X\""
        );
    }

    #[test]
    fn warnings_by_default_and_more_with_each_v() {
        assert_eq!(log_filter(0), "warn");
        assert!(log_filter(1).contains("orderflow_cli=info"));
        assert!(log_filter(2).contains("inventory=debug"));
    }
}
