//! `orderflow check`: the consistency checker. Over every order (or those placed in a
//! time range) it verifies:
//!
//! - each order's four streams against the brief's rules ([`audit_order`]): no gap, no
//!   impossible transition, captured once for the total when confirmed, not charged
//!   and not holding stock when cancelled, nothing shipped unpaid;
//! - the payment provider's ledger against the payment streams (charged exactly when
//!   the stream says captured and not refunded);
//! - the read model against the fold of the store (orders whose last event is younger
//!   than `--grace` are left out: the projector may still be on its way);
//! - over all orders only: stock is conserved for every SKU (received − written off
//!   on its product stream = available + reserved + sold in the catalog), the
//!   catalog's reserved and sold counters equal what the inventory streams hold and
//!   sold, every product stream has its catalog entry, and the read model holds no
//!   view of an order the store lacks;
//! - that no saga has stalled: an order unchanged for longer than `--grace` (the lag
//!   objective) is not still `PENDING` (an answer from inventory or payment missing,
//!   or given and never recorded on the order) nor `CONFIRMED` without a shipment, nor
//!   out for delivery with its stock still reserved (not sold), as when an event was
//!   lost between the store and its consumers;
//! - that the customer sees every compensation: a refund, a stock release or a
//!   shipment cancellation older than `--grace` is recorded on the order, at the time
//!   its participant made it (and the order records none its participants did not);
//! - that no event of an order sits in a DLQ: each parked message names its order, its
//!   event and the DLQ that holds it (an answer the saga never recorded leaves its
//!   order pending until the timeout gives up on the saga and cancels it).
//!
//! It prints a report and exits non-zero on any finding.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use orderflow_adapters::DynamoEventStore;
use orderflow_adapters::catalog::DynamoCatalog;
use orderflow_adapters::payment::SimulatedGateway;
use orderflow_adapters::read_model::DynamoOrderViews;
use orderflow_app::{Catalog, EventStore, Repository};
use orderflow_domain::audit::{OrderStreams, audit_order, held_stock, sold_stock, unrecorded_outcomes};
use orderflow_domain::inventory::Inventory;
use orderflow_domain::order::view::OrderView;
use orderflow_domain::order::{Order, OrderStatus};
use orderflow_domain::payment::{Payment, PaymentEvent};
use orderflow_domain::product::{Product, ProductState};
use orderflow_domain::shipment::Shipment;
use orderflow_domain::{Aggregate, OrderId, Timestamp};

/// Orders read at once.
const IN_FLIGHT: usize = 16;

/// Messages read from each DLQ (hidden a few seconds while read, then released).
const PARKED_READ: usize = 1000;

/// Options of `orderflow check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// The stack.
    #[command(flatten)]
    pub on: crate::target::Target,
    /// Only orders placed at or after this time (RFC 3339); with `--until` (default:
    /// now), the range is read from the event store's time index.
    #[arg(long)]
    pub from: Option<String>,
    /// Only orders placed before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Leave out of the read-model comparison and the stall check orders changed in
    /// the last N seconds (the lag objective).
    #[arg(long, default_value_t = 30)]
    pub grace: u64,
}

/// One finding, on one order or on the whole system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The order, when it is about one.
    pub order_id: Option<OrderId>,
    /// What is wrong.
    pub what: String,
}

/// What a check found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Orders checked.
    pub orders: usize,
    /// Orders left out of the read-model comparison (changed within the grace period).
    pub recent: usize,
    /// Everything wrong.
    pub findings: Vec<Finding>,
}

impl Report {
    fn order(&mut self, order_id: OrderId, what: impl Into<String>) {
        self.findings.push(Finding {
            order_id: Some(order_id),
            what: what.into(),
        });
    }

    /// Whether nothing was found.
    #[must_use]
    pub const fn clean(&self) -> bool {
        self.findings.is_empty()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "checked {} orders ({} too recent for the read-model comparison): {} finding(s)",
            self.orders,
            self.recent,
            self.findings.len()
        )?;
        for finding in &self.findings {
            match finding.order_id {
                Some(id) => writeln!(f, "  order {id}: {}", finding.what)?,
                None => writeln!(f, "  {}", finding.what)?,
            }
        }
        Ok(())
    }
}

fn parse_time(flag: &str, text: Option<&str>) -> anyhow::Result<Option<Timestamp>> {
    text.map(|t| Timestamp::parse(t).with_context(|| format!("--{flag}: an RFC 3339 time")))
        .transpose()
}

struct Checked {
    order_id: OrderId,
    findings: Vec<String>,
    held: Vec<(String, u64)>,
    sold: Vec<(String, u64)>,
    charged: bool,
    recent: bool,
}

/// Runs the checker.
///
/// # Errors
/// When the stack cannot be read (findings are in the report, not errors).
pub async fn run(args: &CheckArgs) -> anyhow::Result<Report> {
    let (from, until) = (
        parse_time("from", args.from.as_deref())?,
        parse_time("until", args.until.as_deref())?,
    );
    let resolved = crate::target::resolve(&args.on).await?;
    let stack = &resolved.stack;
    let dynamodb = resolved.dynamodb.clone();
    let table = |id: &str| crate::target::table(stack, id);
    let store = crate::target::event_store(stack, &dynamodb)?;
    let repository = Repository::new(store.clone(), 0);
    let views = crate::target::order_views(stack, &dynamodb)?;
    let whole = from.is_none() && until.is_none();

    let ids: Vec<OrderId> = if whole {
        store
            .aggregate_ids(Order::TYPE)
            .await?
            .iter()
            .filter_map(|id| OrderId::parse(id).ok())
            .collect()
    } else {
        // The time index is read a day at a time: a range has a start.
        let from = from.context("--until needs --from")?;
        let until = until.unwrap_or_else(|| Timestamp::from_jiff(jiff::Timestamp::now()));
        store
            .read_time_range(from, until)
            .await?
            .iter()
            .filter(|r| r.event_type == "OrderPlaced")
            .filter_map(|r| OrderId::parse(&r.stream.aggregate_id).ok())
            .collect()
    };
    let horizon = Timestamp::from_jiff(jiff::Timestamp::now()).plus(-jiff::SignedDuration::from_secs(
        i64::try_from(args.grace).unwrap_or(i64::MAX),
    ));

    // Over every order, one scan of the read model serves every comparison; over a time
    // range, each order's view is read on its own.
    let scanned = if whole { Some(views.all().await?) } else { None };
    let checked: Vec<Checked> = futures::stream::iter(ids.iter().copied())
        .map(|order_id| {
            let (repository, views, scanned) = (&repository, &views, scanned.as_ref());
            async move {
                // One order whose stream cannot be read (an item on its key that is no
                // event) is a finding about it, not the end of the check.
                let checked = check_order(repository, views, scanned, order_id, horizon).await;
                anyhow::Ok(checked.unwrap_or_else(|error| Checked {
                    order_id,
                    findings: vec![format!("its stream cannot be read: {error:#}")],
                    held: Vec::new(),
                    sold: Vec::new(),
                    charged: false,
                    recent: false,
                }))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await?;

    let mut report = Report {
        orders: checked.len(),
        ..Report::default()
    };
    let mut held: BTreeMap<String, u64> = BTreeMap::new();
    let mut sold: BTreeMap<String, u64> = BTreeMap::new();
    let mut charged: HashMap<OrderId, bool> = HashMap::new();
    for order in checked {
        report.recent += usize::from(order.recent);
        for what in order.findings {
            report.order(order.order_id, what);
        }
        for (sku, quantity) in order.held {
            *held.entry(sku).or_default() += quantity;
        }
        for (sku, quantity) in order.sold {
            *sold.entry(sku).or_default() += quantity;
        }
        charged.insert(order.order_id, order.charged);
    }

    let ledger = SimulatedGateway::new(dynamodb.clone(), table("PaymentProviderTable")?)
        .ledger()
        .await?;
    for entry in &ledger {
        let Ok(order_id) = OrderId::parse(&entry.order_id) else {
            continue;
        };
        match charged.get(&order_id) {
            Some(&expected) if expected == entry.refunded => report.order(
                order_id,
                format!(
                    "the provider says {}, the payment stream says {}",
                    if entry.refunded { "refunded" } else { "charged" },
                    if expected { "charged" } else { "not charged" }
                ),
            ),
            None if whole && !entry.refunded => {
                report.order(order_id, "charged at the provider, but no such order");
            }
            _ => {}
        }
    }
    // A message parked in a DLQ is an event some consumer never acted on.
    for dlq in crate::dlq::dead_letter_queues(stack) {
        let parked = crate::dlq::show_in(
            stack,
            &resolved.sqs,
            &dynamodb,
            &dlq.logical_id,
            PARKED_READ,
            std::time::Duration::from_secs(5),
        )
        .await?;
        for message in parked {
            let Some(order_id) = message.order_id.as_deref().and_then(|id| OrderId::parse(id).ok()) else {
                continue;
            };
            if !charged.contains_key(&order_id) {
                continue;
            }
            report.order(
                order_id,
                format!(
                    "its {} sits in {} ({}): fix the cause, then `orderflow dlq redrive {}`",
                    message.event_type.as_deref().unwrap_or("message"),
                    dlq.logical_id,
                    message.last_error.as_deref().unwrap_or("no failure recorded"),
                    dlq.logical_id,
                ),
            );
        }
    }
    // A record the relay set aside is an item on the events table that is no event:
    // an operator must look at it.
    for record in crate::relay::quarantined(stack, &resolved.sqs, 100).await? {
        report.findings.push(Finding {
            order_id: None,
            what: format!(
                "a stream record the relay quarantined (sequence {}, keys {}): {}",
                record.sequence, record.keys, record.reason
            ),
        });
    }
    if whole {
        let catalog = DynamoCatalog::new(dynamodb.clone(), table("CatalogTable")?);
        let products = catalog.all().await?;
        for what in catalog.layout_findings().await? {
            report.findings.push(Finding { order_id: None, what });
        }
        let streams: Vec<(orderflow_app::Product, ProductState)> = futures::stream::iter(products)
            .map(|product| async {
                let history = repository.history::<Product>(product.sku.as_str()).await?;
                anyhow::Ok((
                    product,
                    Product::fold(ProductState::default(), history.iter().map(|e| &e.data)),
                ))
            })
            .buffer_unordered(IN_FLIGHT)
            .try_collect()
            .await?;
        let catalogued: std::collections::HashSet<String> =
            streams.iter().map(|(p, _)| p.sku.to_string()).collect();
        for (product, stream) in &streams {
            let sku = product.sku.as_str();
            let (held, sold) = (
                held.get(sku).copied().unwrap_or(0),
                sold.get(sku).copied().unwrap_or(0),
            );
            for what in orderflow_app::stock::conservation(product, stream, held, sold) {
                report.findings.push(Finding { order_id: None, what });
            }
        }
        for sku in store.aggregate_ids(Product::TYPE).await? {
            if !catalogued.contains(&sku) {
                report.findings.push(Finding {
                    order_id: None,
                    what: format!("{sku}: product#{sku} has events but the catalog has no entry"),
                });
            }
        }
        let known: std::collections::HashSet<OrderId> = ids.iter().copied().collect();
        let stored = scanned.iter().flat_map(HashMap::keys);
        for id in stored
            .filter(|id| !known.contains(id))
            .copied()
            .collect::<Vec<_>>()
        {
            report.order(
                id,
                format!("a view in {} of an order the store lacks", views.table()),
            );
        }
    }
    Ok(report)
}

async fn check_order(
    repository: &Repository<DynamoEventStore>,
    views: &DynamoOrderViews,
    scanned: Option<&HashMap<OrderId, OrderView>>,
    order_id: OrderId,
    horizon: Timestamp,
) -> anyhow::Result<Checked> {
    let id = order_id.to_string();
    let (order, inventory, payment, shipment) = tokio::try_join!(
        repository.history::<Order>(&id),
        repository.history::<Inventory>(&id),
        repository.history::<Payment>(&id),
        repository.history::<Shipment>(&id),
    )?;
    let mut findings: Vec<String> = audit_order(OrderStreams {
        order: &order,
        inventory: &inventory,
        payment: &payment,
        shipment: &shipment,
    })
    .iter()
    .map(ToString::to_string)
    .collect();
    for (outcome, at) in unrecorded_outcomes(OrderStreams {
        order: &order,
        inventory: &inventory,
        payment: &payment,
        shipment: &shipment,
    }) {
        if at <= horizon {
            findings.push(format!(
                "the {outcome} at {at} is not recorded on the order: the customer does not see it"
            ));
        }
    }
    let recent = order.last().is_some_and(|e| e.occurred_at > horizon);
    if !recent {
        let folded = OrderView::fold(&order);
        if let Some(stall) = folded.as_ref().and_then(|f| {
            stalled(
                f.status,
                !inventory.is_empty(),
                !payment.is_empty(),
                !shipment.is_empty(),
            )
        }) {
            findings.push(stall);
        }
        if folded
            .as_ref()
            .is_some_and(|f| matches!(f.status, OrderStatus::OutForDelivery | OrderStatus::Delivered))
            && !held_stock(&inventory).is_empty()
        {
            findings
                .push("stalled: gone out for delivery but its stock is still reserved, not sold".to_owned());
        }
        let stored = match scanned {
            Some(all) => all.get(&order_id).cloned(),
            None => views.get(order_id).await?.map(|s| s.view),
        };
        match (&stored, &folded) {
            (None, Some(f)) => findings.push(format!("no view (the store is at v{})", f.version)),
            (Some(s), Some(f)) if !orderflow_app::read_model::agrees(s, f) => findings.push(format!(
                "the view (v{}, {}) differs from the fold of the store (v{}, {})",
                s.version, s.status, f.version, f.status
            )),
            _ => {}
        }
    }
    let refunded = payment
        .iter()
        .any(|e| matches!(e.data, PaymentEvent::Refunded(_)));
    let captured = payment
        .iter()
        .any(|e| matches!(e.data, PaymentEvent::Captured(_)));
    Ok(Checked {
        order_id,
        findings,
        held: held_stock(&inventory)
            .into_iter()
            .map(|l| (l.sku.to_string(), u64::from(l.quantity.get())))
            .collect(),
        sold: sold_stock(&inventory)
            .into_iter()
            .map(|l| (l.sku.to_string(), u64::from(l.quantity.get())))
            .collect(),
        charged: captured && !refunded,
        recent,
    })
}

/// Why an order that has not changed for longer than the lag objective is stuck, if
/// it is: the saga owes it a step.
fn stalled(status: OrderStatus, inventory: bool, payment: bool, shipment: bool) -> Option<String> {
    match status {
        OrderStatus::Pending => {
            let missing: Vec<&str> = [("inventory", inventory), ("payment", payment)]
                .iter()
                .filter(|(_, answered)| !answered)
                .map(|(who, _)| *who)
                .collect();
            Some(if missing.is_empty() {
                "stalled: PENDING although inventory and payment answered (not recorded on the order)"
                    .to_owned()
            } else {
                format!("stalled: PENDING with no answer from {}", missing.join(" or "))
            })
        }
        OrderStatus::Confirmed if !shipment => Some("stalled: CONFIRMED but no shipment".to_owned()),
        _ => None,
    }
}

/// Prints the report.
///
/// # Errors
/// When stdout is closed.
pub fn print(report: &Report) -> std::io::Result<()> {
    write!(std::io::stdout().lock(), "{report}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saga_that_owes_an_order_a_step_is_stalled() {
        use OrderStatus::{Cancelled, Confirmed, Delivered, Pending, Preparing};
        assert_eq!(
            stalled(Pending, true, false, false).as_deref(),
            Some("stalled: PENDING with no answer from payment")
        );
        assert_eq!(
            stalled(Pending, false, false, false).as_deref(),
            Some("stalled: PENDING with no answer from inventory or payment")
        );
        assert!(stalled(Pending, true, true, false).is_some_and(|s| s.contains("not recorded")));
        assert!(stalled(Confirmed, true, true, false).is_some());
        for done in [
            stalled(Confirmed, true, true, true),
            stalled(Preparing, true, true, true),
            stalled(Delivered, true, true, true),
            stalled(Cancelled, false, true, false),
        ] {
            assert_eq!(done, None);
        }
    }
}
