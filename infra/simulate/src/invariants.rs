//! The invariants every scenario is checked against once it is quiet: money and stock
//! conserved, every order settled as its events say, views the fold of the store.

use std::collections::BTreeMap;

use orderflow_app::stock::conservation;
use orderflow_app::{Catalog, FailureLog as _, OrderViews, Repository};
use orderflow_domain::Aggregate;
use orderflow_domain::Sku;
use orderflow_domain::audit::{OrderStreams, audit_order, held_stock, sold_stock, unrecorded_outcomes};
use orderflow_domain::inventory::Inventory;
use orderflow_domain::order::view::OrderView;
use orderflow_domain::order::{Order, OrderStatus};
use orderflow_domain::payment::Payment;
use orderflow_domain::product::{self};
use orderflow_domain::shipment::Shipment;

use crate::{World, describe};

impl World {
    /// Every invariant the checker knows, over the quiet system.
    pub(crate) async fn check(&self) -> anyhow::Result<Vec<String>> {
        let mut violations = self.surprises.clone();
        let repository = Repository::new(self.store.clone(), 0);
        let mut held: BTreeMap<Sku, u64> = BTreeMap::new();
        let mut sold: BTreeMap<Sku, u64> = BTreeMap::new();
        for (n, planned) in self.orders.iter().enumerate() {
            let id = planned.id.to_string();
            let order = repository.history::<Order>(&id).await?;
            let inventory = repository.history::<Inventory>(&id).await?;
            let payment = repository.history::<Payment>(&id).await?;
            // The provider's own books: its idempotency keys held however often payment
            // called it (duplicates, crashes, lost answers).
            let calls = self.gateway.calls(planned.id);
            if calls.captures > 1 {
                violations.push(format!(
                    "order {n}: the provider captured {} times",
                    calls.captures
                ));
            }
            if calls.refunds > 1 {
                violations.push(format!(
                    "order {n}: the provider refunded {} times",
                    calls.refunds
                ));
            }
            if calls.conflicts > 0 {
                violations.push(format!(
                    "order {n}: {} provider call(s) reused a key with another amount",
                    calls.conflicts
                ));
            }
            let shipment = repository.history::<Shipment>(&id).await?;
            let streams = OrderStreams {
                order: &order,
                inventory: &inventory,
                payment: &payment,
                shipment: &shipment,
            };
            for finding in audit_order(streams) {
                violations.push(format!("order {n}: {finding}"));
            }
            for (outcome, _) in unrecorded_outcomes(streams) {
                violations.push(format!("order {n}: its {outcome} is not recorded on the order"));
            }
            for line in held_stock(&inventory) {
                *held.entry(line.sku).or_default() += u64::from(line.quantity.get());
            }
            for line in sold_stock(&inventory) {
                *sold.entry(line.sku).or_default() += u64::from(line.quantity.get());
            }
            let Some(folded) = OrderView::fold(&order) else {
                if planned.placed {
                    violations.push(format!("order {n}: placed but its stream is empty"));
                }
                continue;
            };
            if planned.cancel_accepted && folded.status != OrderStatus::Cancelled {
                violations.push(format!(
                    "order {n}: its cancellation was answered as done, yet it is {}",
                    folded.status
                ));
            }
            match folded.status {
                OrderStatus::Cancelled => {}
                // Confirmed and shipped; operators may have moved it on since.
                OrderStatus::Confirmed
                | OrderStatus::Preparing
                | OrderStatus::Ready
                | OrderStatus::OutForDelivery
                | OrderStatus::Delivered
                    if folded.shipment.is_some() => {}
                other => violations.push(format!("order {n}: stuck at {other} (no terminal state)")),
            }
            match self.views.get(planned.id).await? {
                Some(stored) if stored.view == folded => {}
                Some(_) => {
                    violations.push(format!("order {n}: its view differs from the fold of its events"))
                }
                None => violations.push(format!("order {n}: no view")),
            }
        }
        for sku in &self.stock {
            let products = self.catalog.products(std::slice::from_ref(sku)).await?;
            let Some(product) = products.get(sku) else {
                violations.push(format!("{sku}: gone from the catalog"));
                continue;
            };
            let history = repository.history::<product::Product>(sku.as_str()).await?;
            let stream =
                product::Product::fold(product::ProductState::default(), history.iter().map(|e| &e.data));
            violations.extend(conservation(
                product,
                &stream,
                held.get(sku).copied().unwrap_or(0),
                sold.get(sku).copied().unwrap_or(0),
            ));
        }
        let mut ledger = self.gateway.ledger();
        ledger.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        for entry in ledger {
            let Some((n, _)) = self
                .orders
                .iter()
                .enumerate()
                .find(|(_, o)| o.id.to_string() == entry.order_id)
            else {
                violations.push(format!(
                    "the provider charged an unknown order {}",
                    entry.order_id
                ));
                continue;
            };
            let order = repository.history::<Order>(&entry.order_id).await?;
            let cancelled = OrderView::fold(&order).is_some_and(|v| v.status == OrderStatus::Cancelled);
            if cancelled && !entry.refunded {
                violations.push(format!(
                    "order {n}: cancelled, but the provider still holds its capture"
                ));
            }
            if !cancelled && entry.refunded {
                violations.push(format!("order {n}: not cancelled, but its capture was refunded"));
            }
        }
        for (id, queue) in &self.queues {
            if !queue.messages.is_empty() {
                violations.push(format!("{id}: {} message(s) never handled", queue.messages.len()));
            }
            for message in &queue.dead {
                if !message.poison {
                    violations.push(format!("{id}: {} in the DLQ", describe(&message.body)));
                    continue;
                }
                // A parked message says why it is there (what `orderflow dlq show` reads).
                match self.failures.get(&message.id).await? {
                    Some(failure) if failure.kind == "poison" => {}
                    other => violations.push(format!(
                        "{id}: poison message {} parked without its reason recorded ({other:?})",
                        message.id
                    )),
                }
            }
        }
        Ok(violations)
    }
}
