//! `orderflow dev`: every resource of `template.yaml` in the local emulators, named
//! `<prefix>-<LogicalId>`, created if missing (running it again is harmless), then a
//! summary of how to reach them.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use orderflow_provision::{Template, local};

/// Options of `orderflow dev`.
#[derive(Debug, clap::Args)]
pub(crate) struct DevArgs {
    /// The SAM template to provision from.
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    /// Prefix of every local resource name.
    #[arg(long, env = "ORDERFLOW_PREFIX", default_value = "orderflow")]
    prefix: String,
}

pub(crate) async fn run(args: DevArgs) -> anyhow::Result<()> {
    let template =
        Template::load(&args.template).with_context(|| format!("reading {}", args.template.display()))?;
    let stack = local::provision_stack(&template, &args.prefix)
        .await
        .context("provisioning the template in the emulators: are they running (`make emulators`)?")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "orderflow is provisioned from {}:", args.template.display())?;
    let mut tables: Vec<_> = stack.tables.iter().collect();
    tables.sort();
    for (logical_id, name) in tables {
        writeln!(out, "  table  {logical_id:24} {name}")?;
    }
    for (logical_id, queue) in &stack.messaging.queues {
        let redrive = queue.redrive.as_ref().map_or(String::new(), |(dlq, max)| {
            format!("  -> {dlq} after {max} receives")
        });
        writeln!(out, "  queue  {logical_id:24} {}{redrive}", queue.name)?;
    }
    for (logical_id, name) in stack.messaging.buses.iter().chain(&stack.messaging.rules) {
        writeln!(out, "  events {logical_id:24} {name}")?;
    }
    for (label, variable) in [
        ("DynamoDB and Streams", "AWS_ENDPOINT_URL_DYNAMODB"),
        ("SQS and EventBridge ", "AWS_ENDPOINT_URL"),
    ] {
        writeln!(out, "\n{label}: {}", std::env::var(variable).unwrap_or_default())?;
    }
    writeln!(
        out,
        "\nFor a shell that talks to them: eval \"$(infra/local/emulators.sh env)\""
    )?;
    writeln!(out, "Stop the emulators with `make stop`.")?;
    Ok(())
}
