//! `orderflow customers show | erase | encrypt-history`: a customer's personal data, on
//! a local or deployed stack, through the same use cases as the API's
//! `/customers/{id}/personal-data` (`orderflow_app::personal`).
//!
//! The data keys are unwrapped as the order API unwraps them: by the stack's KMS key
//! (`CustomerDataKey`) on a deployed stack, by the local stack's wrapping key (made by
//! `orderflow-dev up`, in its state directory) on a local one.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use orderflow_adapters::config::{Roots, https_connector};
use orderflow_adapters::personal::{DynamoCustomerKeys, KeyWrapping, KmsKeyWrap};
use orderflow_adapters::secrets::{KMS, SignedJson};
use orderflow_app::personal::{EraseError, PersonalData};
use orderflow_app::{CommandService, Repository, SystemClock};
use orderflow_domain::{CustomerId, Metadata};

use crate::keys::LocalKeys;
use crate::target::{Resolved, Target};

/// `orderflow customers`.
#[derive(Debug, clap::Args)]
pub struct CustomersArgs {
    #[command(subcommand)]
    command: CustomersCommand,
}

#[derive(Debug, clap::Subcommand)]
enum CustomersCommand {
    /// Print everything held about a customer as one JSON document (what
    /// `GET /customers/{id}/personal-data` answers).
    Show(ShowArgs),
    /// Erase a customer's personal data: delete their data key, purge the read model's
    /// copies, record `PersonalDataErased`. Refused while an order is in flight.
    Erase(EraseArgs),
    /// Seal the personal fields of events written before sealing (`OrderPlaced` v2,
    /// in clear) with their customers' keys, in place; see
    /// `docs/decisions/personal-data.md`.
    EncryptHistory(EncryptArgs),
}

/// Where the local stack's keys are.
#[derive(Debug, Clone, clap::Args)]
pub struct KeysAt {
    /// The local stack's state directory (its wrapping key).
    #[arg(long, default_value = ".local/run")]
    pub state_dir: PathBuf,
}

/// `orderflow customers show`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    /// The customer.
    pub customer: String,
    /// Local keys.
    #[command(flatten)]
    pub keys: KeysAt,
    /// The stack.
    #[command(flatten)]
    pub on: Target,
}

/// `orderflow customers erase`.
#[derive(Debug, Clone, clap::Args)]
pub struct EraseArgs {
    /// The customer.
    pub customer: String,
    /// Why (recorded in the audit trail: never personal data).
    #[arg(long)]
    pub reason: String,
    /// Who the event names as its actor.
    #[arg(long)]
    pub actor: Option<String>,
    /// Local keys.
    #[command(flatten)]
    pub keys: KeysAt,
    /// The stack.
    #[command(flatten)]
    pub on: Target,
}

/// `orderflow customers encrypt-history`.
#[derive(Debug, Clone, clap::Args)]
pub struct EncryptArgs {
    /// Count what would be sealed, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Local keys.
    #[command(flatten)]
    pub keys: KeysAt,
    /// The stack.
    #[command(flatten)]
    pub on: Target,
}

/// The personal-data use cases over a resolved stack.
struct Personal {
    personal: PersonalData<DynamoCustomerKeys<KeyWrapping>>,
    commands: CommandService<orderflow_adapters::DynamoEventStore, SystemClock>,
    views: orderflow_adapters::read_model::DynamoOrderViews,
}

/// The stack's key wrapping: its KMS key when deployed, the local key otherwise.
async fn wrapping(on: &Target, resolved: &Resolved, keys: &KeysAt) -> anyhow::Result<KeyWrapping> {
    if on.stack.is_some() {
        let key = resolved
            .stack
            .env("CUSTOMER_DATA_KEY")
            .context("the stack has no CustomerDataKey")?;
        let kms = SignedJson::from_sdk_config(
            &KMS,
            &orderflow_adapters::aws_sdk_config().await,
            https_connector(Roots::System),
        )?;
        return Ok(KeyWrapping::Kms(Box::new(KmsKeyWrap::new(kms, key))));
    }
    LocalKeys::load(&keys.state_dir, &on.prefix)?.key_wrapping()
}

async fn personal(on: &Target, keys: &KeysAt) -> anyhow::Result<Personal> {
    let resolved = crate::target::resolve(on).await?;
    let table = crate::target::table(&resolved.stack, "CustomerKeyTable")?.to_owned();
    let wrapping = wrapping(on, &resolved, keys).await?;
    let store = crate::target::event_store(&resolved.stack, &resolved.dynamodb)?;
    Ok(Personal {
        personal: PersonalData::new(DynamoCustomerKeys::new(
            resolved.dynamodb.clone(),
            table,
            wrapping,
        )),
        commands: CommandService::new(Repository::new(store, 50), SystemClock, 5),
        views: crate::target::order_views(&resolved.stack, &resolved.dynamodb)?,
    })
}

fn customer(id: &str) -> anyhow::Result<CustomerId> {
    CustomerId::parse(id).map_err(|e| anyhow::anyhow!("customer {id:?}: {e}"))
}

/// Everything held about `args.customer`, as JSON.
///
/// # Errors
/// When the stack cannot be reached or a store fails.
pub async fn show(args: &ShowArgs) -> anyhow::Result<serde_json::Value> {
    let p = personal(&args.on, &args.keys).await?;
    let held = p
        .personal
        .held(&p.views, &p.commands, &customer(&args.customer)?)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(serde_json::to_value(held)?)
}

/// Erases `args.customer`'s personal data.
///
/// # Errors
/// When orders are in flight (naming them), the reason is refused, or a store fails.
pub async fn erase(args: &EraseArgs) -> anyhow::Result<serde_json::Value> {
    let p = personal(&args.on, &args.keys).await?;
    let customer = customer(&args.customer)?;
    let actor = args.actor.clone().unwrap_or_else(|| {
        format!(
            "operator:{}",
            std::env::var("USER").unwrap_or_else(|_| "cli".to_owned())
        )
    });
    let id = uuid::Uuid::now_v7().to_string();
    let metadata = Metadata {
        correlation_id: id.clone(),
        causation_id: format!("cli:customers-erase:{id}"),
        actor,
    };
    match p
        .personal
        .erase(&p.views, &p.commands, &customer, &args.reason, &metadata)
        .await
    {
        Ok(erased) => Ok(serde_json::json!({
            "erasureId": erased.erasure_id,
            "customerId": customer,
            "status": "ERASED",
            "orders": erased.orders,
            "keyDeleted": erased.key_deleted,
        })),
        Err(EraseError::InFlight(orders)) => Err(anyhow::anyhow!(
            "{customer} has {} order(s) neither delivered nor cancelled; erase once they are: {}",
            orders.len(),
            orders
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Err(other) => Err(other.into()),
    }
}

/// `orderflow customers …`.
///
/// # Errors
/// As the subcommand.
pub async fn run(args: &CustomersArgs) -> anyhow::Result<()> {
    let answer = match &args.command {
        CustomersCommand::Show(show_args) => show(show_args).await?,
        CustomersCommand::Erase(erase_args) => erase(erase_args).await?,
        CustomersCommand::EncryptHistory(encrypt_args) => {
            serde_json::to_value(encrypt_history(encrypt_args).await?)?
        }
    };
    writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&answer)?)?;
    Ok(())
}

/// What `encrypt-history` did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Encrypted {
    /// Orders read.
    pub orders: usize,
    /// `OrderPlaced` events whose address was in clear and is now sealed (with
    /// `--dry-run`: would be).
    pub sealed: usize,
    /// Of those, the orders of customers erased since they were placed: sealed under
    /// a key that is thrown away at once, so they stay erased.
    pub sealed_erased: usize,
    /// Views of the read model whose address was in clear and is now sealed.
    pub views_sealed: usize,
    /// Snapshots dropped (their state held the address in clear).
    pub snapshots_dropped: usize,
    /// Nothing was changed.
    pub dry_run: bool,
}

/// Seals every `OrderPlaced` written before sealing, in place: the envelope is
/// rewritten at the current schema version with the address sealed under its
/// customer's key (or, for a customer erased since, under a key thrown away), the
/// order's snapshots are dropped and its view's address is sealed. Idempotent: a
/// sealed event is left as it is, so a run that stopped can run again.
///
/// # Errors
/// When the stack cannot be reached or a store fails; what was sealed stays sealed.
pub async fn encrypt_history(args: &EncryptArgs) -> anyhow::Result<Encrypted> {
    use orderflow_app::EventStore as _;
    use orderflow_app::StreamId;
    use orderflow_domain::customer::{Customer, CustomerEvent};
    use orderflow_domain::order::{Order, OrderEvent, PersonalAddress};
    use orderflow_domain::{Aggregate as _, Envelope};

    let p = personal(&args.on, &args.keys).await?;
    let store = p.commands.repository().store();
    let mut done = Encrypted {
        dry_run: args.dry_run,
        ..Encrypted::default()
    };
    for id in store.aggregate_ids(Order::TYPE).await? {
        done.orders += 1;
        let stream = StreamId::new(Order::TYPE, &id);
        let Some(first) = store.load_page(&stream, 0, 1).await?.into_iter().next() else {
            continue;
        };
        let envelope = Envelope::<OrderEvent>::decode(&first.body)
            .with_context(|| format!("order {id}: its first event does not decode"))?;
        let OrderEvent::Placed(placed) = &envelope.data else {
            continue;
        };
        let Some(PersonalAddress::Clear(address)) = &placed.shipping_address else {
            continue;
        };
        let erasures = p
            .commands
            .repository()
            .history::<Customer>(placed.customer_id.as_str())
            .await?;
        let erased = erasures.iter().any(|e| {
            let CustomerEvent::PersonalDataErased(erasure) = &e.data;
            erasure.erased_at >= placed.placed_at || erasure.orders.contains(&placed.order_id)
        });
        done.sealed += 1;
        done.sealed_erased += usize::from(erased);
        if args.dry_run {
            continue;
        }
        let sealed = if erased {
            let throwaway = orderflow_app::personal::DataKey::generate()?;
            orderflow_app::personal::seal(&throwaway, &placed.customer_id, &serde_json::to_vec(address)?)?
        } else {
            p.personal.seal_address(&placed.customer_id, address).await?
        };
        let mut sealed_placed = placed.as_ref().clone();
        sealed_placed.shipping_address = Some(PersonalAddress::Sealed(sealed.clone()));
        let rewritten = Envelope {
            data: OrderEvent::Placed(Box::new(sealed_placed)),
            ..envelope.clone()
        };
        if !store
            .rewrite(&stream, first.version, &first.body, &rewritten.to_json())
            .await?
        {
            anyhow::bail!("order {id}: its first event changed while it was sealed; run again");
        }
        done.snapshots_dropped += store.drop_snapshots(&stream).await?;
        done.views_sealed += usize::from(p.views.seal_personal(placed.order_id, &sealed).await?);
        tracing::info!(order_id = %placed.order_id, erased, "an order's address sealed");
    }
    Ok(done)
}
