//! `orderflow token`: a token for the local stack, signed with its key, on stdout and
//! nothing else, so that `curl -H "Authorization: Bearer $(orderflow token --customer
//! c-1)"` works as it is.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::keys::{LocalKeys, Subject};

/// Options of `orderflow token`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["customer", "operator"])))]
pub struct TokenArgs {
    /// A customer's token, for this customer id.
    #[arg(long)]
    pub customer: Option<String>,
    /// An operator's token (scope orderflow/operator), for this operator's name.
    #[arg(long)]
    pub operator: Option<String>,
    /// How long the token is valid, seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub ttl: u64,
    /// The local stack (as `orderflow-dev up --prefix`).
    #[arg(long, env = "ORDERFLOW_PREFIX", default_value = "orderflow")]
    pub prefix: String,
    /// Where that stack keeps its state (as `orderflow-dev up --state-dir`).
    #[arg(long, default_value = ".local/run")]
    pub state_dir: PathBuf,
}

/// Mints the token.
///
/// # Errors
/// When the local stack has no key yet, or the id is empty.
pub fn mint(args: &TokenArgs) -> anyhow::Result<String> {
    let subject = match (&args.customer, &args.operator) {
        (Some(id), None) => Subject::Customer(id.clone()),
        (None, Some(name)) => Subject::Operator(name.clone()),
        _ => anyhow::bail!("give one of --customer <id> or --operator <name>"),
    };
    let id = match &subject {
        Subject::Customer(id) | Subject::Operator(id) => id,
    };
    anyhow::ensure!(
        !id.trim().is_empty() && id.len() <= 128,
        "the id must be 1 to 128 characters"
    );
    LocalKeys::load(&args.state_dir, &args.prefix)?.mint(&subject, Duration::from_secs(args.ttl))
}

/// Runs `orderflow token`: the token alone on stdout.
///
/// # Errors
/// As [`mint`].
pub fn run(args: &TokenArgs) -> anyhow::Result<()> {
    let token = mint(args)?;
    writeln!(std::io::stdout().lock(), "{token}")?;
    Ok(())
}
