//! Builders for the workspace's tests: an order to place, the
//! envelope an event is stored in, and a history decided by the decider itself, so
//! every suite builds them one way and none can build a history the decider would
//! not write.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test builders"
)]

use orderflow_domain::Aggregate;
use orderflow_domain::envelope::{Envelope, Metadata};
use orderflow_domain::ids::{CustomerId, OrderId, Quantity, Sku};
use orderflow_domain::money::{Currency, Money};
use orderflow_domain::order::{
    Order, OrderCommand, OrderEvent, OrderState, PaymentToken, PlaceOrder, PricedLine,
};
use orderflow_domain::time::Timestamp;

/// `amount` US cents.
#[must_use]
pub fn usd(amount: u64) -> Money {
    Money::new(amount, Currency::parse("USD").unwrap())
}

/// A fixed instant plus `second` seconds.
#[must_use]
pub fn at(second: i64) -> Timestamp {
    Timestamp::from_micros(1_800_000_000_000_000 + second * 1_000_000).unwrap()
}

/// The metadata of a test's events.
#[must_use]
pub fn metadata() -> Metadata {
    Metadata {
        correlation_id: "c".into(),
        causation_id: "c".into(),
        actor: "test".into(),
    }
}

/// Placing `quantity` of `SKU-1` at `unit_cents` each, paid with `tok_visa`.
#[must_use]
pub fn place(
    order_id: OrderId,
    customer: &CustomerId,
    quantity: u64,
    unit_cents: u64,
    placed_at: Timestamp,
) -> OrderCommand {
    OrderCommand::Place(PlaceOrder {
        order_id,
        customer_id: customer.clone(),
        lines: vec![PricedLine {
            sku: Sku::parse("SKU-1").unwrap(),
            quantity: Quantity::parse(quantity).unwrap(),
            unit_price: usd(unit_cents),
        }],
        payment: PaymentToken::parse("tok_visa").unwrap().masked(),
        shipping_address: sealed_address(customer),
        placed_at,
    })
}

/// A distinct event id on every call (the domain mints no random ids).
fn next_event_id() -> uuid::Uuid {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    uuid::Uuid::from_u64_pair(0x7e57, NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// `data` as version `version` of `<aggregate_type>#<aggregate_id>`.
#[must_use]
pub fn envelope<E>(
    aggregate_type: &str,
    aggregate_id: &str,
    version: u64,
    occurred_at: Timestamp,
    data: E,
) -> Envelope<E> {
    Envelope {
        event_id: next_event_id(),
        aggregate_type: aggregate_type.into(),
        aggregate_id: aggregate_id.into(),
        version,
        occurred_at,
        metadata: metadata(),
        replay: None,
        data,
    }
}

/// The order's history as the decider writes it for `commands` (each with the time
/// its events happen), version 1 on.
///
/// # Panics
/// When the decider refuses a command: the test asked for a history that cannot be.
#[must_use]
pub fn decided(
    order_id: OrderId,
    commands: impl IntoIterator<Item = (OrderCommand, Timestamp)>,
) -> Vec<Envelope<OrderEvent>> {
    let mut state = OrderState::default();
    let mut history = Vec::new();
    for (command, occurred_at) in commands {
        for data in Order::decide(&state, command).unwrap() {
            state = Order::evolve(state, &data);
            let version = history.len() as u64 + 1;
            history.push(envelope(
                "order",
                &order_id.to_string(),
                version,
                occurred_at,
                data,
            ));
        }
    }
    history
}

/// The history of an order of `quantity` × `SKU-1` at `unit_cents`, placed by `c-1` at
/// `at`, and cancelled then too if `cancelled`.
#[must_use]
pub fn placed_order(
    order_id: OrderId,
    quantity: u64,
    unit_cents: u64,
    at: Timestamp,
    cancelled: bool,
) -> Vec<Envelope<OrderEvent>> {
    let customer = CustomerId::parse("c-1").unwrap();
    let mut commands = vec![(place(order_id, &customer, quantity, unit_cents, at), at)];
    if cancelled {
        commands.push((OrderCommand::Cancel { detail: None }, at));
    }
    decided(order_id, commands)
}

/// Appends an order's `history` (version 1 on) to its stream in `store`.
///
/// # Panics
/// When the store refuses: the stream was not empty, or the store failed.
pub async fn store_order(store: &impl orderflow_app::EventStore, history: &[Envelope<OrderEvent>]) {
    let Some(first) = history.first() else { return };
    let records: Vec<_> = history
        .iter()
        .map(orderflow_app::EventRecord::from_envelope)
        .collect();
    store
        .append(
            &orderflow_app::StreamId::new("order", first.aggregate_id.clone()),
            0,
            &records,
        )
        .await
        .unwrap();
}

/// The data key the builders seal addresses with (a test's customers all share it).
pub const TEST_KEY: [u8; 32] = [42; 32];

/// A test address in clear.
#[must_use]
pub fn address() -> orderflow_domain::order::ShippingAddress {
    serde_json::from_str(r#"{"name":"A","line1":"1 St","city":"C","postalCode":"1","country":"US"}"#).unwrap()
}

/// [`address`] sealed for `customer` with [`TEST_KEY`], as the API hands it to the
/// domain.
#[must_use]
pub fn sealed_address(customer: &CustomerId) -> orderflow_domain::personal::Sealed {
    let key = orderflow_app::personal::DataKey::from_bytes(&TEST_KEY).unwrap();
    orderflow_app::personal::seal(&key, customer, &serde_json::to_vec(&address()).unwrap()).unwrap()
}
