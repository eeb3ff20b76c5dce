//! `orderflow catalog import | export` and `orderflow stock receive | write-off | shard`: the
//! catalog and its stock, through the same product events as the API (`PUT
//! /products/{sku}`, `POST /products/{sku}/stock`), against a local or deployed stack.
//!
//! Import is idempotent: a product that is missing is listed with the file's
//! `available` as its initial stock; one whose name, price or description differ is
//! repriced; one that matches is left as it is. Stock of a listed product is never
//! set from a file (units arrive and leave through `orderflow stock`, each with its
//! reason), so importing twice, or importing an export, changes nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use orderflow_adapters::catalog::{DynamoCatalog, DynamoStockLedger};
use orderflow_app::stock::{Applied, ReshardError};
use orderflow_app::{Catalog, CatalogService, CommandError, Product, Repository, SystemClock};
use orderflow_domain::product::{MAX_STOCK_DELTA, MAX_TEXT, ProductDetails, ProductError};
use orderflow_domain::{Currency, Metadata, Money, Sku};
use serde::{Deserialize, Serialize};

/// Products written at once.
const IN_FLIGHT: usize = 8;

/// The reason recorded for the stock a listing brings.
pub const IMPORT_REASON: &str = "initial stock (catalog import)";

/// `orderflow catalog`.
#[derive(Debug, clap::Args)]
pub struct CatalogArgs {
    #[command(subcommand)]
    command: CatalogCommand,
}

#[derive(Debug, clap::Subcommand)]
enum CatalogCommand {
    /// List or reprice every product of a file (JSON array, or CSV with a header row:
    /// sku,name,priceAmount,currency[,available][,description]).
    Import(ImportArgs),
    /// Write the catalog with its counters (JSON, or CSV).
    Export(ExportArgs),
}

/// `orderflow catalog import`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The file: `.csv` is read as CSV, anything else as JSON.
    pub file: PathBuf,
    /// Print what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Who the events name as their actor.
    #[arg(long)]
    pub actor: Option<String>,
    /// The stack.
    #[command(flatten)]
    pub on: crate::target::Target,
}

/// `orderflow catalog export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// `json` or `csv`.
    #[arg(long, default_value = "json")]
    pub format: Format,
    /// Write here instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// The stack.
    #[command(flatten)]
    pub on: crate::target::Target,
}

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A JSON array of products.
    Json,
    /// CSV with a header row.
    Csv,
}

/// `orderflow stock`.
#[derive(Debug, clap::Args)]
pub struct StockArgs {
    #[command(subcommand)]
    command: StockCommand,
}

#[derive(Debug, clap::Subcommand)]
enum StockCommand {
    /// Units in: a delivery, a return to the shelf.
    Receive(AdjustArgs),
    /// Units out other than by sale: damaged, lost, a recount.
    WriteOff(AdjustArgs),
    /// Spread a popular product's stock over several items, so its reservations are
    /// not all writes to one (1 puts it back on one); run again to even them out.
    Shard(ShardArgs),
}

/// `orderflow stock shard`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShardArgs {
    /// The SKU.
    pub sku: String,
    /// Over how many items (1 to 32).
    #[arg(long)]
    pub shards: u32,
    /// The stack.
    #[command(flatten)]
    pub on: crate::target::Target,
}

/// `orderflow stock receive | write-off`.
#[derive(Debug, Clone, clap::Args)]
pub struct AdjustArgs {
    /// The SKU.
    pub sku: String,
    /// How many units.
    pub quantity: u64,
    /// Why, recorded on the product's stream (`received PO-123`).
    #[arg(long)]
    pub reason: String,
    /// Who the event names as its actor.
    #[arg(long)]
    pub actor: Option<String>,
    /// The stack.
    #[command(flatten)]
    pub on: crate::target::Target,
}

/// One row of a catalog file, as `orderflow catalog export` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// The SKU.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Unit price, minor units.
    pub price_amount: u64,
    /// ISO 4217 code.
    pub currency: String,
    /// Units on hand when first listed.
    #[serde(default)]
    pub available: u64,
    /// Exported for information; never imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<u64>,
    /// Exported for information; never imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sold: Option<u64>,
    /// Longer text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl From<&Product> for Row {
    fn from(p: &Product) -> Self {
        Self {
            sku: p.sku.to_string(),
            name: p.name.clone(),
            price_amount: p.price_amount,
            currency: p.currency.as_str().to_owned(),
            available: p.available,
            reserved: Some(p.reserved),
            sold: Some(p.sold),
            description: p.description.clone(),
        }
    }
}

/// A row checked: what the product should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The SKU.
    pub sku: Sku,
    /// Its details.
    pub details: ProductDetails,
    /// Units to list it with.
    pub available: u64,
}

/// Reads a catalog file and checks every row: the first bad one is an error naming its
/// row and field, and nothing is written.
///
/// # Errors
/// An unreadable file, a malformed row, a SKU twice.
pub fn read(path: &Path) -> anyhow::Result<Vec<Wanted>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let rows: Vec<Row> = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        csv::Reader::from_reader(text.as_bytes())
            .deserialize()
            .enumerate()
            .map(|(n, row)| row.with_context(|| format!("{}: row {}", path.display(), n + 2)))
            .collect::<anyhow::Result<_>>()?
    } else {
        serde_json::from_str(&text)
            .with_context(|| format!("{}: a JSON array of products", path.display()))?
    };
    let mut seen = std::collections::HashSet::new();
    rows.into_iter()
        .enumerate()
        .map(|(n, row)| {
            let wanted = check(row).with_context(|| format!("{}: product {}", path.display(), n + 1))?;
            anyhow::ensure!(
                seen.insert(wanted.sku.clone()),
                "{}: product {}: {} appears twice",
                path.display(),
                n + 1,
                wanted.sku
            );
            Ok(wanted)
        })
        .collect()
}

fn check(row: Row) -> anyhow::Result<Wanted> {
    let sku = Sku::parse(row.sku).context("sku")?;
    let name = row.name.trim().to_owned();
    anyhow::ensure!(
        (1..=200).contains(&name.chars().count()),
        "name: 1 to 200 characters"
    );
    anyhow::ensure!(row.price_amount > 0, "priceAmount: above 0 (minor units)");
    let currency = Currency::parse(&row.currency).context("currency")?;
    anyhow::ensure!(
        row.available <= MAX_STOCK_DELTA,
        "available: at most {MAX_STOCK_DELTA}"
    );
    let description = row
        .description
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    anyhow::ensure!(
        description.as_ref().is_none_or(|d| d.chars().count() <= MAX_TEXT),
        "description: at most {MAX_TEXT} characters"
    );
    Ok(Wanted {
        sku,
        details: ProductDetails {
            name,
            price: Money::new(row.price_amount, currency),
            description,
        },
        available: row.available,
    })
}

/// What an import does to one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Listed with this many units.
    List(u64),
    /// Its details change from these.
    Reprice(ProductDetails),
    /// Already as the file says.
    Unchanged,
}

/// The change `wanted` makes to the catalog's `current`, and whether the file's stock
/// differs from the catalog's (left alone: stock moves through `orderflow stock`).
#[must_use]
pub fn plan(wanted: &Wanted, current: Option<&Product>) -> (Change, Option<u64>) {
    match current {
        None => (Change::List(wanted.available), None),
        Some(product) => {
            let change = if product.details() == wanted.details {
                Change::Unchanged
            } else {
                Change::Reprice(product.details())
            };
            (
                change,
                (product.available != wanted.available).then_some(product.available),
            )
        }
    }
}

/// What an import did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// Products listed.
    pub listed: usize,
    /// Products repriced.
    pub repriced: usize,
    /// Products already as the file says.
    pub unchanged: usize,
    /// One line per change, and per stock difference left alone.
    pub lines: Vec<String>,
}

/// The stack's catalog, and the service that changes it.
struct Stocked {
    catalog: DynamoCatalog,
    service: CatalogService<DynamoStockLedger, SystemClock>,
}

async fn stocked(on: &crate::target::Target) -> anyhow::Result<Stocked> {
    let resolved = crate::target::resolve(on).await?;
    stocked_in(&resolved.stack, &resolved.dynamodb)
}

fn stocked_in(
    stack: &orderflow_provision::local::Stack,
    dynamodb: &aws_sdk_dynamodb::Client,
) -> anyhow::Result<Stocked> {
    let store = crate::target::event_store(stack, dynamodb)?;
    let catalog = DynamoCatalog::new(dynamodb.clone(), crate::target::table(stack, "CatalogTable")?);
    Ok(Stocked {
        service: CatalogService::new(
            Repository::new(store.clone(), 0),
            DynamoStockLedger::new(store, catalog.clone()),
            SystemClock,
        ),
        catalog,
    })
}

fn metadata(actor: Option<&str>, command: &str) -> Metadata {
    let actor = actor.map_or_else(
        || {
            format!(
                "operator:{}",
                std::env::var("USER").unwrap_or_else(|_| "cli".to_owned())
            )
        },
        str::to_owned,
    );
    let id = uuid::Uuid::now_v7().to_string();
    Metadata {
        correlation_id: id.clone(),
        causation_id: format!("cli:{command}:{id}"),
        actor,
    }
}

fn money(m: Money) -> String {
    format!("{} {}", m.amount, m.currency.as_str())
}

/// Imports `args.file` into the stack's catalog.
///
/// # Errors
/// A bad file (nothing written), an unreachable stack, a write that failed (the
/// products before it are in; running again finishes the rest).
pub async fn import(args: &ImportArgs) -> anyhow::Result<Imported> {
    let wanted = read(&args.file)?;
    let stocked = stocked(&args.on).await?;
    import_into(&stocked, &wanted, args.dry_run, args.actor.as_deref()).await
}

/// Imports `path` into a stack just provisioned (`orderflow-dev up` seeds its catalog
/// here), and answers with the whole catalog.
///
/// # Errors
/// See [`import`].
pub async fn seed(
    stack: &orderflow_provision::local::Stack,
    dynamodb: &aws_sdk_dynamodb::Client,
    path: &Path,
) -> anyhow::Result<Vec<Product>> {
    let wanted = read(path)?;
    let stocked = stocked_in(stack, dynamodb)?;
    import_into(&stocked, &wanted, false, Some("operator:orderflow-dev")).await?;
    Ok(stocked.catalog.all().await?)
}

async fn import_into(
    stocked: &Stocked,
    wanted: &[Wanted],
    dry_run: bool,
    actor: Option<&str>,
) -> anyhow::Result<Imported> {
    let skus: Vec<Sku> = wanted.iter().map(|w| w.sku.clone()).collect();
    let current = stocked.catalog.products(&skus).await?;
    let metadata = metadata(actor, "catalog-import");
    let bar = indicatif::ProgressBar::new(wanted.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} products {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut imported = Imported::default();
    let mut work = Vec::new();
    for w in wanted {
        let (change, stock_differs) = plan(w, current.get(&w.sku));
        let verb = |done: &str, dry: &str| if dry_run { dry.to_owned() } else { done.to_owned() };
        match &change {
            Change::List(units) => {
                imported.listed += 1;
                imported.lines.push(format!(
                    "{} {} ({}, {}) with {units} units",
                    verb("listed", "would list"),
                    w.sku,
                    w.details.name,
                    money(w.details.price)
                ));
            }
            Change::Reprice(before) => {
                imported.repriced += 1;
                imported.lines.push(format!(
                    "{} {}: {} at {} -> {} at {}",
                    verb("repriced", "would reprice"),
                    w.sku,
                    before.name,
                    money(before.price),
                    w.details.name,
                    money(w.details.price)
                ));
            }
            Change::Unchanged => imported.unchanged += 1,
        }
        if let Some(now) = stock_differs {
            imported.lines.push(format!(
                "left alone: {} has {now} available, the file says {} (use orderflow stock receive | write-off)",
                w.sku, w.available
            ));
        }
        if change != Change::Unchanged {
            work.push(w.clone());
        }
    }
    if dry_run {
        return Ok(imported);
    }
    bar.inc((wanted.len() - work.len()) as u64);
    futures::stream::iter(work)
        .map(|w| {
            let (service, metadata, bar) = (&stocked.service, &metadata, &bar);
            async move {
                service
                    .describe(&w.sku, w.details, w.available, IMPORT_REASON, metadata)
                    .await
                    .with_context(|| format!("writing {}", w.sku))?;
                bar.inc(1);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    bar.finish_and_clear();
    Ok(imported)
}

/// Prints what an import did.
///
/// # Errors
/// When stdout is closed.
pub fn print_import(imported: &Imported, dry_run: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for line in &imported.lines {
        writeln!(out, "{line}")?;
    }
    writeln!(
        out,
        "{}: {} listed, {} repriced, {} unchanged",
        if dry_run {
            "dry run (nothing written)"
        } else {
            "imported"
        },
        imported.listed,
        imported.repriced,
        imported.unchanged
    )
}

/// The whole catalog in `format`.
///
/// # Errors
/// An unreachable stack.
pub async fn export(on: &crate::target::Target, format: Format) -> anyhow::Result<String> {
    let stocked = stocked(on).await?;
    let rows: Vec<Row> = stocked.catalog.all().await?.iter().map(Row::from).collect();
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(&rows)? + "\n",
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer.write_record([
                "sku",
                "name",
                "priceAmount",
                "currency",
                "available",
                "reserved",
                "sold",
                "description",
            ])?;
            for row in &rows {
                writer.write_record([
                    row.sku.clone(),
                    row.name.clone(),
                    row.price_amount.to_string(),
                    row.currency.clone(),
                    row.available.to_string(),
                    row.reserved.unwrap_or(0).to_string(),
                    row.sold.unwrap_or(0).to_string(),
                    row.description.clone().unwrap_or_default(),
                ])?;
            }
            String::from_utf8(writer.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?
        }
    })
}

/// Receives (`sign` 1) or writes off (`sign` -1) stock, and answers with the product.
///
/// # Errors
/// No such product, too little available for a write-off, an unreachable stack.
pub async fn adjust(args: &AdjustArgs, sign: i64) -> anyhow::Result<Product> {
    let sku = Sku::parse(&args.sku).context("sku")?;
    let reason = args.reason.trim();
    anyhow::ensure!(
        (1..=MAX_TEXT).contains(&reason.chars().count()),
        "--reason: 1 to {MAX_TEXT} characters"
    );
    let units = i64::try_from(args.quantity)
        .ok()
        .filter(|q| (1..=MAX_STOCK_DELTA.cast_signed()).contains(q))
        .with_context(|| format!("quantity: 1 to {MAX_STOCK_DELTA}"))?;
    let stocked = stocked(&args.on).await?;
    let metadata = metadata(args.actor.as_deref(), "stock");
    match stocked
        .service
        .adjust(&sku, sign * units, reason, &metadata, None)
        .await
    {
        Ok(Applied::Done(_)) => {}
        Ok(Applied::Refused { .. }) => {
            let available = stocked
                .catalog
                .products(std::slice::from_ref(&sku))
                .await?
                .get(&sku)
                .map_or(0, |p| p.available);
            anyhow::bail!("{sku}: cannot write off {units}: only {available} available");
        }
        Err(CommandError::Domain(ProductError::NotListed)) => {
            anyhow::bail!("{sku}: no such product; list it first (orderflow catalog import)")
        }
        Err(e) => return Err(e).with_context(|| format!("adjusting the stock of {sku}")),
    }
    stocked
        .catalog
        .products(std::slice::from_ref(&sku))
        .await?
        .remove(&sku)
        .with_context(|| format!("{sku} vanished from the catalog"))
}

/// Spreads a product's stock over `args.shards` items, and answers with the product
/// (its counters are what they were).
///
/// # Errors
/// No such product, a count out of range, stock that kept moving, an unreachable stack.
pub async fn shard(args: &ShardArgs) -> anyhow::Result<Product> {
    let sku = Sku::parse(&args.sku).context("sku")?;
    let stocked = stocked(&args.on).await?;
    match stocked.catalog.reshard(&sku, args.shards).await {
        Ok(product) => Ok(product),
        Err(ReshardError::Unknown) => {
            anyhow::bail!("{sku}: no such product; list it first (orderflow catalog import)")
        }
        Err(ReshardError::OutOfRange { max, .. }) => anyhow::bail!("--shards: 1 to {max}"),
        Err(e) => Err(e).with_context(|| format!("spreading the stock of {sku}")),
    }
}

/// Runs `orderflow catalog`.
///
/// # Errors
/// See [`import`] and [`export`].
pub async fn run_catalog(args: &CatalogArgs) -> anyhow::Result<()> {
    match &args.command {
        CatalogCommand::Import(import_args) => {
            let imported = import(import_args).await?;
            print_import(&imported, import_args.dry_run)?;
        }
        CatalogCommand::Export(export_args) => {
            let text = export(&export_args.on, export_args.format).await?;
            match &export_args.output {
                Some(path) => {
                    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
                }
                None => std::io::stdout().lock().write_all(text.as_bytes())?,
            }
        }
    }
    Ok(())
}

/// Runs `orderflow stock`.
///
/// # Errors
/// See [`adjust`].
pub async fn run_stock(args: &StockArgs) -> anyhow::Result<()> {
    let (adjust_args, sign, verb) = match &args.command {
        StockCommand::Receive(a) => (a, 1, "received"),
        StockCommand::WriteOff(a) => (a, -1, "wrote off"),
        StockCommand::Shard(a) => {
            let product = shard(a).await?;
            writeln!(
                std::io::stdout().lock(),
                "{}: stock over {} item{}; available {}, reserved {}, sold {}",
                product.sku,
                product.shards,
                if product.shards == 1 { "" } else { "s" },
                product.available,
                product.reserved,
                product.sold
            )?;
            return Ok(());
        }
    };
    let product = adjust(adjust_args, sign).await?;
    writeln!(
        std::io::stdout().lock(),
        "{}: {verb} {} ({}); available {}, reserved {}, sold {}",
        product.sku,
        adjust_args.quantity,
        adjust_args.reason.trim(),
        product.available,
        product.reserved,
        product.sold
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    fn row(sku: &str, price: u64) -> Row {
        Row {
            sku: sku.into(),
            name: "Beans".into(),
            price_amount: price,
            currency: "USD".into(),
            available: 5,
            reserved: None,
            sold: None,
            description: None,
        }
    }

    #[test]
    fn a_file_is_checked_whole_before_anything_is_written() {
        let dir = std::env::temp_dir().join(format!("orderflow-catalog-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("c.csv");
        std::fs::write(
            &csv,
            "sku,name,priceAmount,currency,available,description\nSKU-1,\"Beans, 1 kg\",1299,USD,50,\nSKU-2,Filters,500,USD,0,Paper\n",
        )
        .unwrap();
        let wanted = read(&csv).unwrap();
        assert_eq!(wanted.len(), 2);
        assert_eq!(wanted[0].details.name, "Beans, 1 kg");
        assert_eq!(wanted[1].details.description.as_deref(), Some("Paper"));
        std::fs::write(&csv, "sku,name,priceAmount,currency\nSKU-1,Beans,-3,USD\n").unwrap();
        assert!(format!("{:#}", read(&csv).unwrap_err()).contains("row 2"));
        let json = dir.join("c.json");
        std::fs::write(&json, serde_json::to_string(&[row("SKU-1", 0)]).unwrap()).unwrap();
        assert!(format!("{:#}", read(&json).unwrap_err()).contains("priceAmount"));
        std::fs::write(
            &json,
            serde_json::to_string(&[row("SKU-1", 1), row("SKU-1", 2)]).unwrap(),
        )
        .unwrap();
        assert!(format!("{:#}", read(&json).unwrap_err()).contains("twice"));
    }

    #[test]
    fn the_plan_lists_what_is_missing_reprices_what_differs_and_leaves_stock_alone() {
        let wanted = check(row("SKU-1", 1299)).unwrap();
        assert_eq!(plan(&wanted, None), (Change::List(5), None));
        let mut current = Product::listed(wanted.sku.clone(), "Beans", wanted.details.price, 5);
        assert_eq!(plan(&wanted, Some(&current)), (Change::Unchanged, None));
        current.available = 3;
        current.price_amount = 999;
        let (change, stock) = plan(&wanted, Some(&current));
        assert!(matches!(change, Change::Reprice(before) if before.price.amount == 999));
        assert_eq!(stock, Some(3));
    }
}
