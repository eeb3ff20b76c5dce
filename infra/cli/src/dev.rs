//! `orderflow dev`: the template's tables in the emulators, named `<prefix>-<LogicalId>`,
//! created if missing (so running it again is harmless), then a summary of how to reach
//! them.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use orderflow_provision::{Created, Template, local};

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

/// The variables a function reads, by the table it names.
const TABLE_VARIABLES: &[(&str, &str)] = &[
    ("EventStoreTable", "EVENT_STORE_TABLE"),
    ("SnapshotTable", "SNAPSHOT_TABLE"),
    ("IdempotencyTable", "IDEMPOTENCY_TABLE"),
];

pub(crate) async fn run(args: DevArgs) -> anyhow::Result<()> {
    let template =
        Template::load(&args.template).with_context(|| format!("reading {}", args.template.display()))?;
    let client = local::dynamodb_client().await?;
    let mut lines = Vec::new();
    for logical_id in template.logical_ids("AWS::DynamoDB::Table") {
        let name = format!("{}-{logical_id}", args.prefix);
        let created = template
            .table(logical_id)?
            .create(&client, &name)
            .await
            .with_context(|| {
                format!("creating {logical_id}: is DynamoDB Local running (`make emulators`)?")
            })?;
        let state = match created {
            Created::New => "created",
            Created::Existing => "exists",
        };
        let variable = TABLE_VARIABLES
            .iter()
            .find(|(id, _)| *id == logical_id)
            .map_or(String::new(), |(_, var)| format!("  ({var})"));
        lines.push(format!("  {state:8} {logical_id:18} {name}{variable}"));
    }
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    writeln!(out, "orderflow is provisioned from {}:", args.template.display())?;
    for line in &lines {
        writeln!(out, "{line}")?;
    }
    writeln!(out, "\nDynamoDB (and Streams): {endpoint}")?;
    if let Ok(moto) = std::env::var("AWS_ENDPOINT_URL") {
        writeln!(out, "SQS and EventBridge:    {moto}")?;
    }
    writeln!(
        out,
        "\nFor a shell that talks to them: eval \"$(infra/local/emulators.sh env)\""
    )?;
    writeln!(out, "Stop the emulators with `make stop`.")?;
    Ok(())
}
