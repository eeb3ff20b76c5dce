//! `orderflow-dev`: the developer's tools.

use clap::{Parser, Subcommand};
use orderflow_devtools::{capacity, dev, footprint, load};

#[derive(Debug, Parser)]
#[command(
    name = "orderflow-dev",
    version,
    about = "Run orderflow on a laptop, load it, size it"
)]
struct Cli {
    #[command(flatten)]
    globals: orderflow_cli::Globals,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system locally: resources from template.yaml, the API, the handlers.
    Up(dev::DevArgs),
    /// Place orders through the API with a mix of declines, out-of-stock lines and
    /// cancellations; report latencies, time to terminal and shipped, orders/s, AWS
    /// calls per order, DLQ depths and `orderflow check`'s findings. Exits 1 unless
    /// all is clean.
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
    orderflow_cli::main_with(&cli.globals, run(cli.command)).await
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Up(args) => dev::run(args, orderflow_cli::on_ctrl_c()).await,
        Command::Load(args) => {
            let report = load::run(&args).await?;
            load::print(&report, args.report.as_deref())?;
            if !load::clean(&report) {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Capacity(args) => {
            capacity::run(&args)?;
            Ok(())
        }
        Command::Footprint(args) => {
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
    }
}
