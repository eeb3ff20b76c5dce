//! `orderflow rebuild`: the order read model rebuilt from the event store into the
//! table the API does not serve (the shadow side of `OrderViewSource`), at a bounded
//! rate, then compared with the live one.
//!
//! 1. Clears the target table (unless `--keep`); refuses to clear the served one.
//! 2. Lists every order (a scan for each stream's first event).
//! 3. Folds each order's history into its view with the projector's own fold and
//!    conditional write, at most `--rate` orders a second, with a progress bar.
//! 4. Reports how the rebuilt table compares with the served one: orders missing from
//!    it, differing, and extra. Switching is a parameter:
//!    `sam deploy --parameter-overrides OrderViewSource=shadow` (locally,
//!    `orderflow-dev up --parameter-overrides OrderViewSource=shadow`).

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use orderflow_adapters::read_model::DynamoOrderViews;
use orderflow_app::Repository;
use orderflow_domain::order::view::OrderView;
use orderflow_domain::{Aggregate, OrderId};
use orderflow_provision::local::Stack;

/// The two sides of the read model in the template.
const SIDES: [(&str, &str); 2] = [("primary", "OrderViewTable"), ("shadow", "OrderViewShadowTable")];

/// How many orders are folded at once (the rate bounds the total).
const IN_FLIGHT: usize = 16;

/// Options of `orderflow rebuild`.
#[derive(Debug, Clone, clap::Args)]
pub struct RebuildArgs {
    /// The stack.
    #[command(flatten)]
    pub on: crate::target::Target,
    /// The side to rebuild (`primary` or `shadow`); default: the one not served.
    #[arg(long)]
    pub into: Option<String>,
    /// Orders folded per second at most, to leave the store's capacity to live traffic.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: u32,
    /// Keep what the target holds (monotonic writes only move views forward); allowed
    /// on the served side, where clearing is refused.
    #[arg(long)]
    pub keep: bool,
    /// No progress bar (logs and the report only).
    #[arg(long)]
    pub quiet: bool,
}

/// How a rebuilt table compares with the served one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Views equal on both sides.
    pub same: usize,
    /// In the rebuilt table, not in the served one (the live projector is behind, or
    /// lost them).
    pub missing: Vec<OrderId>,
    /// On both sides, different.
    pub differing: Vec<OrderId>,
    /// In the served table, not in the rebuilt one (no such order in the store).
    pub extra: Vec<OrderId>,
}

impl Comparison {
    /// Compares `rebuilt` with `served`.
    #[must_use]
    pub fn of(rebuilt: &HashMap<OrderId, OrderView>, served: &HashMap<OrderId, OrderView>) -> Self {
        let mut comparison = Self::default();
        for (id, view) in rebuilt {
            match served.get(id) {
                None => comparison.missing.push(*id),
                Some(other) if other != view => comparison.differing.push(*id),
                Some(_) => comparison.same += 1,
            }
        }
        comparison.extra = served
            .keys()
            .filter(|id| !rebuilt.contains_key(id))
            .copied()
            .collect();
        for ids in [
            &mut comparison.missing,
            &mut comparison.differing,
            &mut comparison.extra,
        ] {
            ids.sort_unstable();
        }
        comparison
    }

    /// Whether both sides hold the same views.
    #[must_use]
    pub const fn identical(&self) -> bool {
        self.missing.is_empty() && self.differing.is_empty() && self.extra.is_empty()
    }
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "  same       {}", self.same)?;
        for (name, ids) in [
            ("missing", &self.missing),
            ("differing", &self.differing),
            ("extra", &self.extra),
        ] {
            write!(f, "  {name:10} {}", ids.len())?;
            let shown: Vec<String> = ids.iter().take(5).map(ToString::to_string).collect();
            if !shown.is_empty() {
                let more = if ids.len() > 5 { ", …" } else { "" };
                write!(f, "  ({}{more})", shown.join(", "))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    /// The table rebuilt.
    pub table: String,
    /// The table the API serves.
    pub served: String,
    /// Orders folded.
    pub orders: usize,
    /// Items cleared first.
    pub cleared: usize,
    /// How long the folding took.
    pub elapsed: Duration,
    /// The comparison with the served table.
    pub comparison: Comparison,
}

/// The read-model table of `side` (`primary` or `shadow`), or by default the side the
/// API does not serve; with the table served now.
///
/// # Errors
/// For another side, or a stack without both tables or `ORDER_VIEW_TABLE`.
pub fn read_model_side<'a>(stack: &'a Stack, side: Option<&str>) -> anyhow::Result<(&'a str, &'a str)> {
    let served = stack
        .env("ORDER_VIEW_TABLE")
        .context("the template sets no ORDER_VIEW_TABLE")?;
    let into = match side {
        Some(side) => {
            let logical_id = SIDES
                .iter()
                .find(|(name, _)| *name == side)
                .map(|(_, id)| *id)
                .with_context(|| format!("--into: primary or shadow, not {side:?}"))?;
            crate::target::table(stack, logical_id)?
        }
        None => SIDES
            .iter()
            .filter_map(|(_, id)| stack.table(id))
            .find(|table| *table != served)
            .context("the template has no second read-model table")?,
    };
    Ok((into, served))
}

fn progress(quiet: bool, total: usize) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} rebuilding [{bar:30}] {pos}/{len} orders  {per_sec}  eta {eta}  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// Runs `orderflow rebuild`.
///
/// # Errors
/// When the stack is incomplete, a store fails, or the target is the served table and
/// would be cleared.
pub async fn run(args: &RebuildArgs) -> anyhow::Result<Rebuilt> {
    let resolved = crate::target::resolve(&args.on).await?;
    let stack = &resolved.stack;
    let (into, served) = read_model_side(stack, args.into.as_deref())?;
    let (into, served) = (into.to_owned(), served.to_owned());
    anyhow::ensure!(
        into != served || args.keep,
        "{into} is the table the API serves: rebuild the other side, or pass --keep to top it up in place"
    );
    let dynamodb = resolved.dynamodb.clone();
    let store = crate::target::event_store(stack, &dynamodb)?;
    let target = DynamoOrderViews::new(dynamodb.clone(), &into);
    let projector = projector::Projector::new(Repository::new(store.clone(), 0), target.clone());

    let cleared = if args.keep { 0 } else { target.clear().await? };
    let ids = store
        .aggregate_ids(orderflow_domain::order::Order::TYPE)
        .await?
        .iter()
        .map(|id| OrderId::parse(id).with_context(|| format!("order stream {id:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    tracing::info!(orders = ids.len(), into = %into, rate = args.rate, cleared, "rebuilding the order read model");

    let bar = progress(args.quiet, ids.len());
    let started = Instant::now();
    let interval = Duration::from_secs(1) / args.rate.max(1);
    let mut results = futures::stream::iter(ids.iter().enumerate())
        .map(|(i, id)| {
            let projector = &projector;
            async move {
                // Order i starts no earlier than i / rate seconds in: the ceiling.
                let due = started + interval.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
                tokio::time::sleep_until(due.into()).await;
                projector
                    .rebuild(*id)
                    .await
                    .map_err(|e| anyhow::anyhow!("{id}: {e}"))
            }
        })
        .buffer_unordered(IN_FLIGHT);
    while let Some(result) = results.next().await {
        result?;
        bar.inc(1);
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();

    let rebuilt = target.all().await?;
    let live = DynamoOrderViews::new(dynamodb, &served).all().await?;
    Ok(Rebuilt {
        comparison: Comparison::of(&rebuilt, &live),
        table: into,
        served,
        orders: ids.len(),
        cleared,
        elapsed,
    })
}

/// Prints a rebuild's report.
///
/// # Errors
/// When stdout is closed.
pub fn report(rebuilt: &Rebuilt) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "rebuilt {} orders into {} in {:.1?} ({} cleared first)",
        rebuilt.orders, rebuilt.table, rebuilt.elapsed, rebuilt.cleared
    )?;
    writeln!(out, "compared with {} (served now):", rebuilt.served)?;
    write!(out, "{}", rebuilt.comparison)?;
    if rebuilt.table != rebuilt.served {
        let side = SIDES
            .iter()
            .find(|(_, id)| rebuilt.table.ends_with(id))
            .map_or("shadow", |(side, _)| side);
        writeln!(
            out,
            "to serve it: sam deploy --parameter-overrides OrderViewSource={side}  \
             (locally: orderflow-dev up --parameter-overrides OrderViewSource={side})"
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use orderflow_domain::order::view::OrderView;

    use super::*;

    fn view(id: u128, version: u64) -> (OrderId, OrderView) {
        let id = OrderId::from_uuid(uuid::Uuid::from_u128(id));
        let json = serde_json::json!({
            "orderId": id, "customerId": "c-1", "status": "PENDING", "items": [],
            "total": {"amount": 0, "currency": "USD"}, "version": version,
            "placedAt": "2026-11-21T06:30:00.000000Z", "updatedAt": "2026-11-21T06:30:00.000000Z",
            "stock": "AWAITING",
        });
        (id, serde_json::from_value(json).unwrap())
    }

    #[test]
    fn a_comparison_names_missing_differing_and_extra_orders() {
        let rebuilt = HashMap::from([view(1, 1), view(2, 3), view(3, 2)]);
        let served = HashMap::from([view(1, 1), view(2, 2), view(4, 1)]);
        let comparison = Comparison::of(&rebuilt, &served);
        assert_eq!(comparison.same, 1);
        assert_eq!(comparison.missing, [view(3, 0).0]);
        assert_eq!(comparison.differing, [view(2, 0).0]);
        assert_eq!(comparison.extra, [view(4, 0).0]);
        assert!(!comparison.identical());
        assert!(Comparison::of(&served, &served).identical());
        let text = comparison.to_string();
        assert!(
            text.contains("missing    1") && text.contains("extra      1"),
            "{text}"
        );
    }
}
