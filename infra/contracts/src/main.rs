//! `orderflow-contracts`: writes the published contracts from the code (`write`, run by
//! `make schemas`) and gates them (`check`, run by `make schema-check` in CI).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The API's OpenAPI description and every event's JSON Schema: generated, published,
/// and kept compatible.
#[derive(Debug, Parser)]
#[command(name = "orderflow-contracts", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write what the code generates (never a breaking change over a published version).
    Write,
    /// Fail on anything the gate refuses: a stale file, a breaking change, a version
    /// without an upcaster, a consumer that cannot read what it is sent.
    Check,
}

#[allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool's report"
)]
fn main() -> ExitCode {
    let root = orderflow_contracts::repository();
    match Cli::parse().command {
        Command::Write => match orderflow_contracts::write(&root) {
            Ok((written, refused)) => {
                for path in &written {
                    println!("wrote {path}");
                }
                if written.is_empty() && refused.is_empty() {
                    println!("every contract is up to date");
                }
                for finding in &refused {
                    eprintln!("refused: {finding}");
                }
                if refused.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("writing the contracts failed: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Check => {
            let findings = orderflow_contracts::check(&root);
            for finding in &findings {
                eprintln!("{finding}");
            }
            if findings.is_empty() {
                println!(
                    "contracts: the OpenAPI description, the envelope and {} event schemas are what the code generates; every version is readable, in the corpus and compatible with every copy of it on the main branch; every consumer reads what it is sent",
                    orderflow_domain::schema::EVENTS.len()
                );
                ExitCode::SUCCESS
            } else {
                eprintln!("contracts: {} finding(s)", findings.len());
                ExitCode::FAILURE
            }
        }
    }
}
