//! `orderflow`: the operator's command line.

use std::io::Write as _;

use clap::{Parser, Subcommand};
use orderflow_cli::{
    capacity, catalog, check, customers, dev, dlq, footprint, load, rebuild, relay, replay, token,
};

#[derive(Debug, Parser)]
#[command(name = "orderflow", version, about = "Run and operate orderflow")]
struct Cli {
    /// Logs (on stderr): `human` lines or `json` lines.
    #[arg(long, global = true, value_enum, default_value = "human")]
    log_format: orderflow_cli::LogFormat,
    /// More logs: `-v` what orderflow does, `-vv` debug; an error's causes too.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Human-readable logs (the default now; kept for older scripts).
    #[arg(long, global = true, hide = true)]
    pretty: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system locally: resources from template.yaml, the API, the handlers.
    Dev(dev::DevArgs),
    /// Rebuild the order read model from the event store into the side not served, and
    /// compare it with the served one.
    Rebuild(rebuild::RebuildArgs),
    /// Check the invariants, the read model against the store, and every transition;
    /// exits 1 on any finding.
    Check(check::CheckArgs),
    /// The dead-letter queues: list, show, redrive.
    Dlq(dlq::DlqArgs),
    /// Replay stored events (bounded, rate-limited, recorded) to the replay bus, a read
    /// model, or (explicitly) the live bus.
    Replay(replay::ReplayArgs),
    /// The relay's failures: `recover` republishes the events of batches it gave up on.
    Relay(relay::RelayArgs),
    /// The catalog: `import <file>` (JSON or CSV; idempotent; `--dry-run`) and `export`.
    Catalog(catalog::CatalogArgs),
    /// Stock: `receive | write-off <sku> <n> --reason <why>`, `shard <sku> --shards <n>`.
    Stock(catalog::StockArgs),
    /// Customers' personal data: `show <id>`, `erase <id> --reason <why>` (crypto-shredding),
    /// `encrypt-history` (seal what was written in clear before sealing).
    Customers(customers::CustomersArgs),
    /// Print a token for the local stack: `--customer <id>` or `--operator <name>`.
    Token(token::TokenArgs),
    /// Place orders through the API with a mix of declines, out-of-stock lines and
    /// cancellations; report latencies, time to terminal and shipped, orders/s, AWS
    /// calls per order, DLQ depths and `check`'s findings. Exits 1 unless all is clean.
    Load(load::LoadArgs),
    /// What N orders/s needs and costs on AWS (request units per table, stream shards,
    /// EventBridge, SQS, Lambda concurrency), the limit that binds first and the answer.
    Capacity(capacity::CapacityArgs),
    /// Each function's release binary: its size and its init time (start to the first
    /// Runtime API request), side by side with a hello-world function built the same
    /// way. Exits 1 when one is over its budget.
    Footprint(footprint::FootprintArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let format = if cli.pretty {
        orderflow_cli::LogFormat::Human
    } else {
        cli.log_format
    };
    orderflow_cli::init_logging(format, cli.verbose);
    let verbose = cli.verbose > 0;
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(
                std::io::stderr(),
                "{}",
                orderflow_cli::error_report(&error, verbose)
            );
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C: finishing the batches in flight, then stopping");
            let _ = stop.send(true);
        }
    });
    match cli.command {
        Command::Relay(args) => {
            drop(shutdown);
            relay::run(&args).await
        }
        Command::Token(args) => {
            drop(shutdown);
            token::run(&args)
        }
        Command::Dev(args) => dev::run(args, shutdown).await,
        Command::Catalog(args) => {
            drop(shutdown);
            catalog::run_catalog(&args).await
        }
        Command::Stock(args) => {
            drop(shutdown);
            catalog::run_stock(&args).await
        }
        Command::Replay(args) => {
            let replayed = replay::run(&args, shutdown).await?;
            replay::report(&replayed)?;
            Ok(())
        }
        Command::Dlq(args) => {
            drop(shutdown);
            dlq::run(&args).await
        }
        Command::Customers(args) => {
            drop(shutdown);
            customers::run(&args).await
        }
        Command::Check(args) => {
            drop(shutdown);
            let report = check::run(&args).await?;
            check::print(&report)?;
            if !report.clean() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Load(args) => {
            drop(shutdown);
            let report = load::run(&args).await?;
            load::print(&report, args.report.as_deref())?;
            if !load::clean(&report) {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Capacity(args) => {
            drop(shutdown);
            capacity::run(&args)?;
            Ok(())
        }
        Command::Footprint(args) => {
            drop(shutdown);
            let report = footprint::run(&args).await?;
            let over = report.over();
            if !over.is_empty() {
                for line in over {
                    tracing::warn!("{line}");
                }
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Rebuild(args) => {
            drop(shutdown);
            let rebuilt = rebuild::run(&args).await?;
            rebuild::report(&rebuilt)?;
            Ok(())
        }
    }
}
