//! The designed floor of an ordinary order: the AWS calls each step takes at low
//! traffic, what `orderflow-dev load` compares its measured calls with.

use std::collections::BTreeMap;

/// One line of the designed floor: the fewest calls a step of an ordinary order needs.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// The step of the saga.
    pub step: &'static str,
    /// The function that takes it.
    pub function: &'static str,
    /// `Service.Operation`.
    pub operation: &'static str,
    /// Calls.
    pub calls: u32,
    /// What each call is for.
    pub why: &'static str,
}

pub(super) const fn floor(
    step: &'static str,
    function: &'static str,
    operation: &'static str,
    calls: u32,
    why: &'static str,
) -> Floor {
    Floor {
        step,
        function,
        operation,
        calls,
        why,
    }
}

/// The designed floor of an ordinary order (placed, reserved, captured, confirmed,
/// shipped), by step: 46 calls, at low traffic (a stream batch and a queue batch per
/// event; under load the relay and the projector batch below it). docs/performance.md's
/// "Calls per order" says what each would take to remove.
pub const FLOOR: &[Floor] = &[
    floor(
        "place",
        "order-api",
        "DynamoDB.UpdateItem",
        1,
        "the principal's orders this minute (the rate limit)",
    ),
    floor(
        "place",
        "order-api",
        "DynamoDB.PutItem",
        1,
        "the idempotency key claimed",
    ),
    floor(
        "place",
        "order-api",
        "DynamoDB.BatchGetItem",
        1,
        "every line's price, one read",
    ),
    floor(
        "place",
        "order-api",
        "DynamoDB.PutItem",
        1,
        "the card token into the vault",
    ),
    floor(
        "place",
        "order-api",
        "DynamoDB.TransactWriteItems",
        1,
        "OrderPlaced appended (a new stream: nothing read)",
    ),
    floor(
        "place",
        "order-api",
        "DynamoDB.UpdateItem",
        1,
        "the idempotency record completed with the answer",
    ),
    floor(
        "publish",
        "relay",
        "EventBridge.PutEvents",
        7,
        "one per write that appended events (7 writes, 8 events)",
    ),
    floor(
        "reserve",
        "inventory",
        "DynamoDB.Query",
        2,
        "OrderPlaced read back from the store (never a message's word); the reservation's stream",
    ),
    floor(
        "reserve",
        "inventory",
        "DynamoDB.TransactWriteItems",
        1,
        "StockReserved with the SKUs' counters",
    ),
    floor(
        "capture",
        "payment",
        "DynamoDB.Query",
        3,
        "OrderPlaced read back from the store; the payment's stream; the order's total from the order's stream",
    ),
    floor(
        "capture",
        "payment",
        "DynamoDB.GetItem",
        2,
        "the token from the vault; the (simulated) provider's availability",
    ),
    floor(
        "capture",
        "payment",
        "DynamoDB.TransactWriteItems",
        2,
        "the (simulated) provider's capture; PaymentCaptured",
    ),
    floor(
        "capture",
        "payment",
        "DynamoDB.DeleteItem",
        1,
        "the token forgotten once the capture is recorded",
    ),
    floor(
        "confirm",
        "order-saga",
        "DynamoDB.Query",
        4,
        "each answer read back from its participant's stream; the order's stream, for each answer",
    ),
    floor(
        "confirm",
        "order-saga",
        "DynamoDB.TransactWriteItems",
        2,
        "OrderStockReserved; OrderPaymentCaptured with OrderConfirmed",
    ),
    floor(
        "ship",
        "shipping",
        "DynamoDB.Query",
        2,
        "OrderConfirmed read back from the store; the shipment's stream",
    ),
    floor(
        "ship",
        "shipping",
        "DynamoDB.TransactWriteItems",
        1,
        "ShipmentCreated",
    ),
    floor(
        "record shipment",
        "order-saga",
        "DynamoDB.Query",
        2,
        "ShipmentCreated read back from the store; the order's stream",
    ),
    floor(
        "record shipment",
        "order-saga",
        "DynamoDB.TransactWriteItems",
        1,
        "OrderShipmentRecorded",
    ),
    floor(
        "project",
        "projector",
        "DynamoDB.GetItem",
        5,
        "the view, for each of the order's 5 events",
    ),
    floor(
        "project",
        "projector",
        "DynamoDB.PutItem",
        5,
        "the view written, for each of them",
    ),
];

/// The floor's calls by `function Service.Operation`.
#[must_use]
pub fn floor_by_operation() -> BTreeMap<String, u32> {
    let mut by = BTreeMap::new();
    for line in FLOOR {
        *by.entry(format!("{} {}", line.function, line.operation))
            .or_default() += line.calls;
    }
    by
}
