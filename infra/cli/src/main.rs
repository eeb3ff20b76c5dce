//! `orderflow`: the operator's command line.

use clap::{Parser, Subcommand};
use orderflow_cli::{catalog, check, customers, dlq, rebuild, relay, replay, token};

#[derive(Debug, Parser)]
#[command(
    name = "orderflow",
    version,
    about = "Operate orderflow: a deployed stack (--stack) or the local one"
)]
struct Cli {
    #[command(flatten)]
    globals: orderflow_cli::Globals,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    orderflow_cli::main_with(&cli.globals, run(cli.command)).await
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Relay(args) => relay::run(&args).await,
        Command::Token(args) => token::run(&args),
        Command::Catalog(args) => catalog::run_catalog(&args).await,
        Command::Stock(args) => catalog::run_stock(&args).await,
        Command::Dlq(args) => dlq::run(&args).await,
        Command::Customers(args) => customers::run(&args).await,
        Command::Replay(args) => {
            let replayed = replay::run(&args, orderflow_cli::on_ctrl_c()).await?;
            Ok(replay::report(&replayed)?)
        }
        Command::Check(args) => {
            let report = check::run(&args).await?;
            check::print(&report)?;
            if !report.clean() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Rebuild(args) => {
            let rebuilt = rebuild::run(&args).await?;
            Ok(rebuild::report(&rebuilt)?)
        }
    }
}
