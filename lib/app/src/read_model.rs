//! The order read model as a port: one view per order, with the projector's working
//! state beside it, and a customer's orders newest first. The projector writes it, the
//! API and the operator's tools read it; the DynamoDB table and the in-memory twin
//! keep the same contract (`lib/adapters/tests/read_model.rs` runs one suite against
//! both).

use std::collections::HashMap;
use std::future::Future;

use orderflow_domain::order::view::{OrderProjection, OrderView};
use orderflow_domain::{CustomerId, OrderId};
use serde::{Deserialize, Serialize};

use crate::ports::StoreError;

/// A stored view with the projector's state, when it is of this build's schema.
#[derive(Debug, Clone)]
pub struct StoredView {
    /// What the API serves.
    pub view: OrderView,
    /// The projector's state; `None` when written by another state schema or
    /// unreadable (the projector then folds the order again from the store).
    pub projection: Option<OrderProjection>,
}

/// What a conditional write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The view moved forward.
    Updated,
    /// The read model already held this version or a later one; nothing changed.
    AlreadyCurrent,
}

/// Where a customer's list continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerCursor {
    /// Whose list (a cursor of another customer is refused).
    #[serde(rename = "c")]
    pub customer_id: String,
    /// The last key returned.
    #[serde(rename = "k")]
    pub customer_order_key: String,
    /// The last order returned.
    #[serde(rename = "o")]
    pub order_id: String,
}

/// A page of a customer's orders, newest first.
#[derive(Debug, Clone)]
pub struct CustomerPage {
    /// The orders.
    pub orders: Vec<OrderView>,
    /// Where the next page starts, if there is one.
    pub next: Option<CustomerCursor>,
}

/// The key a customer's orders sort by, newest first: `<placedAt>#<orderId>`.
#[must_use]
pub fn customer_order_key(view: &OrderView) -> String {
    format!("{}#{}", view.placed_at, view.order_id)
}

impl CustomerPage {
    /// The page of `customer`'s orders from `newest_first`, read with one more than
    /// `limit` to learn whether a next page exists without serving an empty one.
    #[must_use]
    pub fn of(customer: &CustomerId, mut newest_first: Vec<OrderView>, limit: usize) -> Self {
        let more = newest_first.len() > limit;
        newest_first.truncate(limit);
        let next = newest_first.last().filter(|_| more).map(|last| CustomerCursor {
            customer_id: customer.to_string(),
            customer_order_key: customer_order_key(last),
            order_id: last.order_id.to_string(),
        });
        Self {
            orders: newest_first,
            next,
        }
    }
}

/// Whether a stored view is what the fold of the store says: the same, or the same
/// with the personal fields erased (what a customer's erasure leaves in the read
/// model, over events whose sealed fields no key opens any more).
#[must_use]
pub fn agrees(stored: &OrderView, folded: &OrderView) -> bool {
    if matches!(
        stored.shipping_address,
        Some(orderflow_domain::order::PersonalAddress::Erased(_))
    ) {
        let mut folded = folded.clone();
        folded.erase_personal();
        stored == &folded
    } else {
        stored == folded
    }
}

/// The order read model.
pub trait OrderViews: Send + Sync {
    /// The view of one order, read strongly consistently.
    fn get(&self, order_id: OrderId) -> impl Future<Output = Result<Option<StoredView>, StoreError>> + Send;

    /// Writes the view of `projection` unless the read model already holds that
    /// version or a later one. A projection of an order not placed yet writes nothing.
    fn put(&self, projection: &OrderProjection) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// A page of `customer`'s orders, newest first, continuing after `after`. The
    /// cursor is the last key returned, so orders placed while a client pages (they
    /// sort first) never shift the pages it has not read yet.
    fn by_customer(
        &self,
        customer: &CustomerId,
        limit: u16,
        after: Option<&CustomerCursor>,
    ) -> impl Future<Output = Result<CustomerPage, StoreError>> + Send;

    /// Replaces the personal fields of one order's view, and of the projector's state
    /// beside it, with the erased marker: after a customer's erasure, the read model
    /// keeps no copy of them, not even sealed. Whether there were any. A write the
    /// projector makes meanwhile is not lost: the purge applies to what it finds.
    fn erase_personal(&self, order_id: OrderId) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every view, for comparisons and checks.
    fn all(&self) -> impl Future<Output = Result<HashMap<OrderId, OrderView>, StoreError>> + Send;
}
