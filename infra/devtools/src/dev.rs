//! `orderflow-dev up`: the whole system on a laptop, wired exactly as `template.yaml`
//! wires it in AWS.
//!
//! 1. Creates every resource of the template in the emulators as `<prefix>-<LogicalId>`
//!    (harmless when they exist).
//! 2. Seeds the catalog from `infra/local/catalog.json` through `orderflow catalog
//!    import` (product events; only SKUs that are missing get stock, so a restart never
//!    resets it) and prints it.
//! 3. Serves the order API on `--listen` through the same axum router as Lambda,
//!    behind the local JWT authorizer ([`crate::authorizer`]): the stack's own signing
//!    key (made once under the state directory), the template's route scopes and
//!    throttles. `orderflow token` mints tokens with that key. Only loopback addresses
//!    unless `--allow-remote`.
//! 4. Serves the operations page on `--ops-listen` ([`crate::ops`]): orders through the
//!    saga, queues, DLQs and lag, live; and the AWS calls the API and the handlers made,
//!    counted as the `AwsCalls` metric counts them in AWS ([`crate::ops::calls`]).
//! 5. Runs the event source mappings: the event store's stream into the relay, each
//!    function's queue into its handler (in-process, or `cargo lambda watch`).
//!
//! Ctrl-C stops it cleanly; after a crash, a restart resumes the stream from its
//! checkpoint, and unfinished messages come back after their visibility timeout.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use order_api::Api;
use orderflow_adapters::calls::Counted as _;
use orderflow_adapters::catalog::Product;
use orderflow_adapters::config::Config;
use orderflow_provision::local::{self, Stack};
use orderflow_provision::{Template, local::provision_stack};

use crate::authorizer::{self, LocalAuthorizer};
use order_api::paging::CursorKey;
use orderflow_cli::keys::LocalKeys;
use orderflow_runner::{Invoke, Options, Runner};

/// Options of `orderflow-dev up`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// The SAM template to provision from.
    #[arg(long, default_value = "template.yaml")]
    pub template: PathBuf,
    /// Prefix of every local resource name.
    #[arg(long, env = "ORDERFLOW_PREFIX", default_value = "orderflow")]
    pub prefix: String,
    /// Where the order API listens (loopback only, unless `--allow-remote`).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// Serve the API on a non-loopback `--listen` address: the local stack, its test
    /// catalog and its tokens reachable from other machines. Say so only when meant.
    #[arg(long)]
    pub allow_remote: bool,
    /// The products to seed.
    #[arg(long, default_value = "infra/local/catalog.json")]
    pub catalog: PathBuf,
    /// Create the resources and seed the catalog, then exit.
    #[arg(long)]
    pub provision_only: bool,
    /// Forward invocations to `cargo lambda watch` at this URL instead of calling the
    /// handlers in-process (e.g. http://127.0.0.1:9000).
    #[arg(long)]
    pub lambda_watch: Option<String>,
    /// Hand every batch to its handler twice (a duplicate-delivery drill).
    #[arg(long)]
    pub duplicate_deliveries: bool,
    /// Visibility timeout per receive, seconds (default: each queue's own).
    #[arg(long)]
    pub visibility_timeout: Option<u64>,
    /// Template parameters, as `sam deploy --parameter-overrides` takes them (e.g.
    /// `OrderViewSource=shadow` to serve the rebuilt read model).
    #[arg(long, num_args = 1..)]
    pub parameter_overrides: Vec<String>,
    /// Where the operations page listens (loopback only, unless `--allow-remote`): `/`,
    /// orders through the saga, queues, DLQs and lag; `/calls`, the AWS calls the
    /// functions made, by service and operation.
    #[arg(long, default_value = "127.0.0.1:3001")]
    pub ops_listen: SocketAddr,
    /// Batches in flight at once per queue (Lambda starts with five pollers); a
    /// mapping's `ScalingConfig.MaximumConcurrency` caps it. One is the faster on moto,
    /// whose every receive scans the queue: 300 orders shipped at 7.4/s with one, 5.6/s
    /// with five.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub queue_pollers: u32,
    /// Where the stream checkpoint lives.
    #[arg(long, default_value = ".local/run")]
    pub state_dir: PathBuf,
}

/// Seeds the catalog from `path` the way operators import one (`orderflow catalog
/// import`): missing SKUs are listed with their stock, as product events; SKUs already
/// there keep their stock, so a restart never resets it.
async fn seed_catalog(stack: &Stack, path: &std::path::Path) -> anyhow::Result<Vec<Product>> {
    let dynamodb = local::dynamodb_client().await?;
    orderflow_cli::catalog::seed(stack, &dynamodb, path)
        .await
        .with_context(|| format!("seeding the catalog from {}", path.display()))
}

fn print_stack(stack: &Stack, products: &[Product], args: &DevArgs) -> std::io::Result<()> {
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
    writeln!(out, "\ncatalog:")?;
    for p in products {
        writeln!(
            out,
            "  {:10} {:28} {:>6} {}  available {:>4}  reserved {:>3}  sold {:>3}",
            p.sku.as_str(),
            p.name,
            p.price_amount,
            p.currency,
            p.available,
            p.reserved,
            p.sold
        )?;
    }
    Ok(())
}

/// The order API of the local stack as API Gateway and Lambda serve it: the router,
/// configured from the template's function environment, behind the local JWT
/// authorizer with the template's routes, scopes and throttles; and, without a token,
/// its OpenAPI description at `/openapi.json`.
///
/// # Errors
/// When the template lacks a table or a route setting, or the key cannot be read.
pub fn api_router(
    stack: &Stack,
    template: &Template,
    dynamodb: &aws_sdk_dynamodb::Client,
    keys: LocalKeys,
) -> anyhow::Result<axum::Router> {
    let environment = stack.environment.clone();
    let config = Config::new(move |name| environment.get(name).cloned(), dynamodb.clone(), None);
    let api = Api::from_config(
        &config,
        CursorKey::new(keys.cursor_key()).map_err(anyhow::Error::msg)?,
        keys.key_wrapping()?,
    )?;
    let authorizer = LocalAuthorizer::new(keys, template.http_routes(HTTP_API)?);
    // The description is public, as a published contract is: it needs no token.
    let description = Arc::new(order_api::openapi_document());
    Ok(axum::Router::new()
        .route(
            "/openapi.json",
            axum::routing::get(move || async move { axum::Json(description.as_ref().clone()) }),
        )
        .merge(authorizer::protect(
            order_api::router(Arc::new(api)),
            Arc::new(authorizer),
        )))
}

/// The HTTP API of the template.
pub const HTTP_API: &str = "OrderHttpApi";

/// The stack's signing keys, made on first use with the template's identity settings
/// (audience, customer id claim, groups claim, operators' group).
///
/// # Errors
/// When the key file cannot be read or written.
pub fn local_keys(
    template: &Template,
    state_dir: &std::path::Path,
    prefix: &str,
) -> anyhow::Result<LocalKeys> {
    let defaults = orderflow_cli::keys::Identity::default();
    let parameter = |name: &str, default: String| template.parameter(name).unwrap_or(default);
    let identity = orderflow_cli::keys::Identity {
        audience: parameter("JwtAudience", defaults.audience),
        customer_id_claim: parameter("CustomerIdClaim", defaults.customer_id_claim),
        groups_claim: parameter("GroupsClaim", defaults.groups_claim),
        operator_group: parameter("OperatorGroup", defaults.operator_group),
    };
    LocalKeys::load_or_create(state_dir, prefix, &identity)
}

/// The credentials the functions get locally: the emulators take any, and a real key
/// from the shell that started `orderflow-dev up` has no business in a file on disk.
pub const EMULATOR_CREDENTIALS: [(&str, &str); 2] =
    [("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")];

/// The environment the functions get in AWS, resolved to the local stack, plus the
/// region and emulator endpoints `variable` gives, and the emulators' credentials
/// (never the environment's).
#[must_use]
pub fn function_env(
    stack: &std::collections::BTreeMap<String, String>,
    variable: impl Fn(&str) -> Option<String>,
) -> std::collections::BTreeMap<String, String> {
    let mut variables = stack.clone();
    for name in [
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
    ] {
        if let Some(value) = variable(name) {
            variables.insert(name.to_owned(), value);
        }
    }
    for (name, value) in EMULATOR_CREDENTIALS {
        variables.insert(name.to_owned(), value.to_owned());
    }
    variables
}

/// Writes [`function_env`] as a file `cargo lambda watch --env-file` reads, its owner's
/// alone.
fn write_function_env(stack: &Stack, args: &DevArgs) -> anyhow::Result<PathBuf> {
    let variables = function_env(&stack.environment, |name| std::env::var(name).ok());
    let path = args.state_dir.join(format!("{}.env", args.prefix));
    let text: String = variables.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    orderflow_cli::keys::write_owner_only(&path, &text)?;
    Ok(path)
}

/// Runs `orderflow-dev up` until `shutdown` turns true.
///
/// # Errors
/// When provisioning fails, the port is taken, or the template is unreadable.
pub async fn run(args: DevArgs, shutdown: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<()> {
    for (flag, address) in [("--listen", args.listen), ("--ops-listen", args.ops_listen)] {
        anyhow::ensure!(
            address.ip().is_loopback() || args.allow_remote,
            "{flag} {address} is reachable from other machines; the local stack trusts its own test tokens and catalog. \
             Use a loopback address (127.0.0.1), or add --allow-remote if that is really meant",
        );
    }
    let template = Template::load(&args.template)
        .with_context(|| format!("reading {}", args.template.display()))?
        .with_parameters(args.parameter_overrides.iter().map(String::as_str))?;
    let stack = provision_stack(&template, &args.prefix)
        .await
        .context("provisioning the template in the emulators: are they running (`make emulators`)?")?;
    let products = seed_catalog(&stack, &args.catalog).await?;
    print_stack(&stack, &products, &args)?;
    let env_file = write_function_env(&stack, &args)?;
    // For the CLI in another terminal, which has none of the variables `make dev` set.
    local::Endpoints::from_env()
        .record(&args.state_dir)
        .with_context(|| format!("recording the endpoints in {}", args.state_dir.display()))?;
    writeln!(
        std::io::stdout().lock(),
        "\nfunction environment: {}  (cargo lambda watch --env-file {})",
        env_file.display(),
        env_file.display()
    )?;
    if args.provision_only {
        return Ok(());
    }

    let dynamodb = local::dynamodb_client().await?;
    let keys = local_keys(&template, &args.state_dir, &args.prefix)?;
    // The API's calls are counted, as its function counts them in AWS.
    let router = api_router(&stack, &template, &dynamodb.counted_as("order-api"), keys.clone())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let ops_listener = tokio::net::TcpListener::bind(args.ops_listen)
        .await
        .with_context(|| format!("listening on {} (--ops-listen)", args.ops_listen))?;
    let ops_address = ops_listener.local_addr()?;
    std::fs::create_dir_all(&args.state_dir)?;
    let options = Options {
        failed_visibility: None,
        duplicate_deliveries: args.duplicate_deliveries,
        receive_wait: Duration::from_secs(1),
        snapshot_every: 50,
        receive_visibility: args.visibility_timeout.map(Duration::from_secs),
        checkpoint: Some(
            args.state_dir
                .join(format!("{}-stream-checkpoint.json", args.prefix)),
        ),
        summaries: true,
        invoke: args
            .lambda_watch
            .clone()
            .map_or(Invoke::InProcess, |url| Invoke::LambdaWatch { url }),
        sweep_every: Some(Duration::from_secs(30)),
        queue_pollers: args.queue_pollers,
    };
    let runner = Arc::new(Runner::new(stack.clone(), &template, options).await?);
    let ops_page = Arc::new(crate::ops::Ops::new(
        stack,
        &template,
        dynamodb.clone(),
        local::sqs_client().await?,
        runner.clone(),
    )?);
    {
        let mut out = std::io::stdout().lock();
        let prefix = if args.prefix == "orderflow" {
            String::new()
        } else {
            format!(" --prefix {}", args.prefix)
        };
        writeln!(
            out,
            "\norder API: http://{listen}  (every route needs a token from the local issuer)\n  \
             TOKEN=$(cargo run -q -p orderflow-cli -- token{prefix} --customer c-1)\n  \
             curl -H \"Authorization: Bearer $TOKEN\" http://{listen}/products\n\
             operations: http://{ops_address}/  (orders through the saga, queues, DLQs, lag; /calls: AWS calls)",
            listen = args.listen,
        )?;
        writeln!(
            out,
            "delivering: stream -> relay, {} queue(s) -> {}\n",
            runner.consumers().len(),
            if args.lambda_watch.is_some() {
                "cargo lambda watch"
            } else {
                "in-process handlers"
            }
        )?;
    }
    let mut server_shutdown = shutdown.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = server_shutdown.wait_for(|stop| *stop).await;
    });
    let mut ops_shutdown = shutdown.clone();
    let access = if args.allow_remote {
        crate::ops::Access::Operators(Box::new(keys))
    } else {
        crate::ops::Access::Loopback
    };
    let ops_router = crate::ops::guard(crate::ops::router(ops_page), access);
    let ops = axum::serve(ops_listener, ops_router).with_graceful_shutdown(async move {
        let _ = ops_shutdown.wait_for(|stop| *stop).await;
    });
    let (served, ops_served, ran) = tokio::join!(
        async { server.await.context("serving the API") },
        async { ops.await.context("serving the operations endpoints") },
        runner.run(shutdown)
    );
    served?;
    ops_served?;
    ran?;
    writeln!(std::io::stdout().lock(), "orderflow-dev up stopped")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::function_env;

    #[test]
    fn the_functions_env_file_carries_the_emulators_credentials_never_the_shell_s() {
        let stack = BTreeMap::from([(
            "EVENT_STORE_TABLE".to_owned(),
            "orderflow-EventStoreTable".to_owned(),
        )]);
        let shell = |name: &str| match name {
            "AWS_REGION" => Some("eu-west-1".to_owned()),
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:5050".to_owned()),
            "AWS_ACCESS_KEY_ID" => Some("AKIAREALKEY0000000000".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("a-real-secret".to_owned()),
            "AWS_SESSION_TOKEN" => Some("a-real-session".to_owned()),
            _ => None,
        };
        let env = function_env(&stack, shell);
        assert_eq!(env["AWS_ACCESS_KEY_ID"], "local");
        assert_eq!(env["AWS_SECRET_ACCESS_KEY"], "local");
        assert!(!env.contains_key("AWS_SESSION_TOKEN"));
        assert_eq!(env["AWS_REGION"], "eu-west-1");
        assert_eq!(env["AWS_ENDPOINT_URL"], "http://127.0.0.1:5050");
        assert_eq!(env["EVENT_STORE_TABLE"], "orderflow-EventStoreTable");
        let text: String = env.values().cloned().collect();
        assert!(!text.contains("REAL") && !text.contains("real"), "{text}");
    }
}
