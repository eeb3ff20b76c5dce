//! Deliberately broken ports, for the simulation's own check (`simulate --mutants`): a
//! simulation that cannot tell a broken system from the real one proves nothing.
//!
//! Each mutant is a bug one port could have (a store that answers a write it did not
//! make, a ledger that moves the wrong units, a provider that answers a refund it did
//! not make), planted by [`Mutated`], a decorator the simulation wraps around that
//! port for the one consumer it concerns. The product's code is never changed: without
//! a mutant switched on, [`Mutated`] passes every call through. The rules in the
//! product's own code (the deciders, the read model's fold, the consumers' choices)
//! are mutated by `cargo-mutants` instead (`make mutants`), with this simulation among
//! the tests that must catch them.

use std::collections::HashMap;

use orderflow_app::{
    AppendError, CaptureOutcome, CustomerCursor, CustomerPage, EventRecord, EventStore, GatewayError,
    MoveError, OrderViews, PaymentGateway, ProviderCapture, SnapshotRecord, StockLedger, StockMove,
    StoreError, StoredView, StreamId, Written,
};
use orderflow_domain::order::PaymentToken;
use orderflow_domain::order::view::{OrderProjection, OrderView};
use orderflow_domain::{CustomerId, Money, OrderId, Timestamp};

/// A bug planted in one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// The saga's store answers the order's record of a compensation without keeping it.
    SagaStoreDropsCompensations,
    /// The API's store answers the write of a cancellation without keeping it.
    ApiStoreLosesCancellations,
    /// The read model's write condition admits a view's first write only and answers
    /// every later one as already current.
    ReadModelKeepsFirstWrite,
    /// Inventory's ledger moves a release's units twice.
    LedgerReleasesTwice,
    /// Inventory's ledger records a sale without moving its units.
    LedgerSaleMovesNothing,
    /// The payment provider answers a refund without making it.
    ProviderRefundsNothing,
}

/// A mutant the check runs: the bug, what it is known by, and what it breaks.
#[derive(Debug, Clone, Copy)]
pub struct Mutant {
    /// The bug.
    pub bug: Bug,
    /// What the report calls it.
    pub name: &'static str,
    /// What it breaks, for the report.
    pub breaks: &'static str,
}

/// Every mutant the check runs.
pub const ALL: &[Mutant] = &[
    Mutant {
        bug: Bug::SagaStoreDropsCompensations,
        name: "saga-store-drops-compensations",
        breaks: "the order does not record a refund, release or shipment cancellation its participants made",
    },
    Mutant {
        bug: Bug::ApiStoreLosesCancellations,
        name: "api-store-loses-cancellations",
        breaks: "a cancellation is answered as done and the order goes on",
    },
    Mutant {
        bug: Bug::ReadModelKeepsFirstWrite,
        name: "read-model-keeps-first-write",
        breaks: "a view never moves past the first version written, and the projector is told it is current",
    },
    Mutant {
        bug: Bug::LedgerReleasesTwice,
        name: "ledger-releases-twice",
        breaks: "a release moves each line's units twice",
    },
    Mutant {
        bug: Bug::LedgerSaleMovesNothing,
        name: "ledger-sale-moves-nothing",
        breaks: "an order out for delivery is recorded sold but its units stay reserved",
    },
    Mutant {
        bug: Bug::ProviderRefundsNothing,
        name: "provider-refunds-nothing",
        breaks: "the provider answers a refund as made and keeps the money",
    },
];

/// A port with at most one planted bug; every call it has no bug for goes through.
#[derive(Debug, Clone)]
pub struct Mutated<P> {
    inner: P,
    bug: Option<Bug>,
}

impl<P> Mutated<P> {
    /// `inner`, with the run's `planted` bug if it is one of the `port`'s.
    #[must_use]
    pub fn new(inner: P, planted: Option<Bug>, port: &[Bug]) -> Self {
        Self {
            inner,
            bug: planted.filter(|bug| port.contains(bug)),
        }
    }

    fn has(&self, bug: Bug) -> bool {
        self.bug == Some(bug)
    }
}

/// Whether `events` are only of `types`.
fn only(events: &[EventRecord], types: &[&str]) -> bool {
    !events.is_empty() && events.iter().all(|e| types.contains(&e.event_type.as_str()))
}

impl<S: EventStore> EventStore for Mutated<S> {
    async fn append(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
    ) -> Result<(), AppendError> {
        use orderflow_domain::order::events::names::{
            CANCELLED, PAYMENT_REFUNDED, SHIPMENT_CANCELLED, STOCK_RELEASED,
        };
        if (self.has(Bug::SagaStoreDropsCompensations)
            && only(events, &[PAYMENT_REFUNDED, STOCK_RELEASED, SHIPMENT_CANCELLED]))
            || (self.has(Bug::ApiStoreLosesCancellations) && only(events, &[CANCELLED]))
        {
            return Ok(());
        }
        self.inner.append(stream, expected_version, events).await
    }

    async fn load(&self, stream: &StreamId, after_version: u64) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.load(stream, after_version).await
    }

    async fn load_page(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.load_page(stream, after_version, limit).await
    }

    async fn read_time_range(
        &self,
        from: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.read_time_range(from, until).await
    }

    async fn save_snapshot(&self, snapshot: &SnapshotRecord) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }

    async fn latest_snapshot(&self, stream: &StreamId) -> Result<Option<SnapshotRecord>, StoreError> {
        self.inner.latest_snapshot(stream).await
    }
}

impl<L: StockLedger> StockLedger for Mutated<L> {
    type Store = L::Store;

    fn store(&self) -> &L::Store {
        self.inner.store()
    }

    async fn append_with_moves(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
        moves: &[StockMove],
        once: Option<&orderflow_app::Once>,
    ) -> Result<(), MoveError> {
        let moves: Vec<StockMove> = moves
            .iter()
            .flat_map(|stock_move| match stock_move {
                StockMove::Release(_) if self.has(Bug::LedgerReleasesTwice) => vec![stock_move.clone(); 2],
                StockMove::Sell(_) if self.has(Bug::LedgerSaleMovesNothing) => Vec::new(),
                _ => vec![stock_move.clone()],
            })
            .collect();
        self.inner
            .append_with_moves(stream, expected_version, events, &moves, once)
            .await
    }
}

impl<G: PaymentGateway> PaymentGateway for Mutated<G> {
    async fn capture(
        &self,
        order_id: OrderId,
        amount: Money,
        token: &PaymentToken,
    ) -> Result<CaptureOutcome, GatewayError> {
        self.inner.capture(order_id, amount, token).await
    }

    async fn capture_of(&self, order_id: OrderId) -> Result<Option<ProviderCapture>, GatewayError> {
        self.inner.capture_of(order_id).await
    }

    async fn cancel(&self, order_id: OrderId) -> Result<Option<ProviderCapture>, GatewayError> {
        self.inner.cancel(order_id).await
    }

    async fn refund(&self, order_id: OrderId, payment_id: &str, amount: Money) -> Result<(), GatewayError> {
        if self.has(Bug::ProviderRefundsNothing) {
            return Ok(());
        }
        self.inner.refund(order_id, payment_id, amount).await
    }
}

impl<V: OrderViews> OrderViews for Mutated<V> {
    async fn get(&self, order_id: OrderId) -> Result<Option<StoredView>, StoreError> {
        self.inner.get(order_id).await
    }

    async fn put(&self, projection: &OrderProjection) -> Result<Written, StoreError> {
        if self.has(Bug::ReadModelKeepsFirstWrite)
            && let Some(view) = projection.view()
            && self.inner.get(view.order_id).await?.is_some()
        {
            return Ok(Written::AlreadyCurrent);
        }
        self.inner.put(projection).await
    }

    async fn by_customer(
        &self,
        customer: &CustomerId,
        limit: u16,
        after: Option<&CustomerCursor>,
    ) -> Result<CustomerPage, StoreError> {
        self.inner.by_customer(customer, limit, after).await
    }

    async fn erase_personal(&self, order_id: OrderId) -> Result<bool, StoreError> {
        self.inner.erase_personal(order_id).await
    }

    async fn all(&self) -> Result<HashMap<OrderId, OrderView>, StoreError> {
        self.inner.all().await
    }
}
