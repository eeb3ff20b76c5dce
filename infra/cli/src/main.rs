//! `orderflow`: the operator's command line.
//!
//! `orderflow dev` provisions every resource of `template.yaml` in the local emulators
//! (the same file AWS deploys, read as it is) and prints how to reach it.

mod dev;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "orderflow", version, about = "Run and operate orderflow")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the template's resources in the local emulators and print how to reach them.
    Dev(dev::DevArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Dev(args) => dev::run(args).await,
    }
}
