//! The Order aggregate as a pure decider.
//!
//! `decide(&state, command)` returns the events a command causes or a domain error;
//! `evolve(state, &event)` applies one event. The saga is joined here: the answers of
//! inventory and payment are recorded on the order, and the order confirms itself when
//! both are in or cancels itself on the first failure. Answers that arrive twice, or
//! after the question no longer matters, decide nothing: transports deliver at least
//! once and in any order.

pub mod events;
pub mod view;

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Aggregate;
use crate::ids::{CustomerId, OrderId, Quantity, Sku};
use crate::money::{Money, MoneyError};
use crate::time::Timestamp;
pub use events::OrderEvent;
use events::{
    OrderCancelled, OrderConfirmed, OrderFulfilmentAdvanced, OrderPaymentCaptured, OrderPaymentDeclined,
    OrderPaymentRefunded, OrderPlaced, OrderShipmentCancelled, OrderShipmentRecorded, OrderStockReleased,
    OrderStockReservationFailed, OrderStockReserved,
};

/// The most lines one order may have: inventory reserves every line and records the
/// reservation in one DynamoDB transaction, and 99 stock updates plus the event fill
/// its 100 actions. All-or-nothing reservation is worth more than a hundredth line.
pub const MAX_LINES: usize = 99;

/// One priced line of a placed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    /// What.
    pub sku: Sku,
    /// How many.
    pub quantity: Quantity,
    /// The catalog price when the order was placed.
    pub unit_price: Money,
    /// `unit_price × quantity`.
    pub line_total: Money,
}

/// A line as the command carries it: the price comes from the catalog, never the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    /// What.
    pub sku: Sku,
    /// How many.
    pub quantity: Quantity,
    /// The catalog's unit price.
    pub unit_price: Money,
}

/// A payment token as the client sends it. Secret: it has no `Serialize`, and its
/// `Debug` hides it, so it cannot reach an event or a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct PaymentToken(String);

impl PaymentToken {
    /// Parses a token: `tok_` and 1 to 64 letters, digits or `_`.
    ///
    /// # Errors
    /// [`crate::ParseError::InvalidCharacters`] on anything else.
    pub fn parse(value: impl Into<String>) -> Result<Self, crate::ParseError> {
        let value = value.into();
        let ok = value.strip_prefix("tok_").is_some_and(|rest| {
            (1..=64).contains(&rest.len()) && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if ok {
            Ok(Self(value))
        } else {
            Err(crate::ParseError::InvalidCharacters {
                field: "paymentToken",
                allowed: "tok_ followed by 1 to 64 letters, digits or _",
            })
        }
    }

    /// The secret itself, for the payment provider only.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// A reference safe to store and show: the last four characters.
    #[must_use]
    pub fn masked(&self) -> PaymentRef {
        let tail: String = self
            .0
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        PaymentRef(format!("tok_****{tail}"))
    }
}

impl fmt::Debug for PaymentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PaymentToken(****)")
    }
}

/// A masked reference to a payment method, safe in events and logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRef(String);

impl PaymentRef {
    /// The masked text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where an order is delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RawAddress")]
pub struct ShippingAddress {
    /// Recipient.
    pub name: String,
    /// Street and number.
    pub line1: String,
    /// Anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAddress {
    name: String,
    line1: String,
    #[serde(default)]
    line2: Option<String>,
    city: String,
    postal_code: String,
    country: String,
}

/// An address field that is missing, too long or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shippingAddress.{field}: {problem}")]
pub struct AddressError {
    /// The field.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl TryFrom<RawAddress> for ShippingAddress {
    type Error = AddressError;
    fn try_from(raw: RawAddress) -> Result<Self, Self::Error> {
        let text = |field: &'static str, value: &str| {
            if value.trim().is_empty() {
                Err(AddressError {
                    field,
                    problem: "must not be empty",
                })
            } else if value.chars().count() > 200 || value.chars().any(char::is_control) {
                Err(AddressError {
                    field,
                    problem: "must be at most 200 printable characters",
                })
            } else {
                Ok(())
            }
        };
        text("name", &raw.name)?;
        text("line1", &raw.line1)?;
        if let Some(line2) = &raw.line2 {
            text("line2", line2)?;
        }
        text("city", &raw.city)?;
        text("postalCode", &raw.postal_code)?;
        if raw.country.len() != 2 || !raw.country.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(AddressError {
                field: "country",
                problem: "must be an ISO 3166-1 alpha-2 code",
            });
        }
        Ok(Self {
            name: raw.name,
            line1: raw.line1,
            line2: raw.line2,
            city: raw.city,
            postal_code: raw.postal_code,
            country: raw.country,
        })
    }
}

/// Where an order is in its life (ordered as the life goes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Placed; waiting for stock and payment.
    Pending,
    /// Stock reserved and payment captured.
    Confirmed,
    /// Being prepared.
    Preparing,
    /// Ready for pick-up by the carrier.
    Ready,
    /// With the carrier.
    OutForDelivery,
    /// Delivered: final.
    Delivered,
    /// Cancelled: final.
    Cancelled,
}

impl OrderStatus {
    /// The wire name (`OUT_FOR_DELIVERY`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Preparing => "PREPARING",
            Self::Ready => "READY",
            Self::OutForDelivery => "OUT_FOR_DELIVERY",
            Self::Delivered => "DELIVERED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Whether a customer or operator may still cancel.
    #[must_use]
    pub const fn is_cancellable(self) -> bool {
        matches!(self, Self::Pending | Self::Confirmed | Self::Preparing)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operator-driven steps after confirmation, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FulfilmentStep {
    /// CONFIRMED → PREPARING.
    Preparing,
    /// PREPARING → READY.
    Ready,
    /// READY → OUT_FOR_DELIVERY (needs a shipment).
    OutForDelivery,
    /// OUT_FOR_DELIVERY → DELIVERED.
    Delivered,
}

impl FulfilmentStep {
    /// The status the order has after this step.
    #[must_use]
    pub const fn status(self) -> OrderStatus {
        match self {
            Self::Preparing => OrderStatus::Preparing,
            Self::Ready => OrderStatus::Ready,
            Self::OutForDelivery => OrderStatus::OutForDelivery,
            Self::Delivered => OrderStatus::Delivered,
        }
    }

    /// The only status this step may start from.
    #[must_use]
    pub const fn from_status(self) -> OrderStatus {
        match self {
            Self::Preparing => OrderStatus::Confirmed,
            Self::Ready => OrderStatus::Preparing,
            Self::OutForDelivery => OrderStatus::Ready,
            Self::Delivered => OrderStatus::OutForDelivery,
        }
    }

    /// Parses a wire name (`PREPARING`, `READY`, `OUT_FOR_DELIVERY`, `DELIVERED`).
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Preparing,
            Self::Ready,
            Self::OutForDelivery,
            Self::Delivered,
        ]
        .into_iter()
        .find(|s| s.status().as_str() == text)
    }
}

/// Why an order was cancelled, machine-readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancellationReason {
    /// A customer or an operator asked.
    Requested,
    /// Inventory could not reserve every line.
    OutOfStock,
    /// Payment was declined.
    PaymentDeclined,
    /// Still pending past the deadline.
    Timeout,
}

/// Inventory's answer, as recorded on the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum StockAnswer {
    /// No answer yet.
    Awaiting,
    /// Every line reserved.
    #[serde(rename_all = "camelCase")]
    Reserved {
        /// Inventory's reservation.
        reservation_id: String,
    },
    /// Nothing reserved.
    Failed {
        /// The short SKU, if one.
        sku: Option<Sku>,
        /// Inventory's reason.
        reason: String,
    },
}

/// Payment's answer, as recorded on the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum PaymentAnswer {
    /// No answer yet.
    Awaiting,
    /// The total was captured.
    #[serde(rename_all = "camelCase")]
    Captured {
        /// The provider's id.
        payment_id: String,
        /// What was captured.
        amount: Money,
    },
    /// Declined.
    Declined {
        /// The provider's reason.
        reason: String,
    },
}

/// A shipment created for the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipment {
    /// Shipping's id.
    pub shipment_id: String,
    /// The carrier's tracking number.
    pub tracking_number: String,
}

/// Why and how an order was cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancellation {
    /// Machine-readable reason.
    pub reason: CancellationReason,
    /// Free text.
    pub detail: Option<String>,
}

/// A placed order: everything the fold of its events knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacedOrder {
    /// Identity.
    pub order_id: OrderId,
    /// Who placed it.
    pub customer_id: CustomerId,
    /// The priced lines.
    pub lines: Vec<OrderLine>,
    /// The total.
    pub total: Money,
    /// Masked payment reference.
    pub payment_ref: PaymentRef,
    /// Delivery address (absent only on orders upcast from v1).
    pub shipping_address: Option<ShippingAddress>,
    /// When it was placed.
    pub placed_at: Timestamp,
    /// Where it is.
    pub status: OrderStatus,
    /// Inventory's answer.
    pub stock: StockAnswer,
    /// Payment's answer.
    pub payment: PaymentAnswer,
    /// The shipment, once created.
    pub shipment: Option<Shipment>,
    /// Why it was cancelled, if it was.
    pub cancellation: Option<Cancellation>,
    /// What compensation did once it was cancelled, as the participants reported it.
    #[serde(default)]
    pub compensation: Compensation,
}

/// The outcome of each compensation, recorded on the order when its participant
/// reports it: when the capture was refunded, the reservation released, the shipment
/// cancelled. Each is recorded once, only on a cancelled order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Compensation {
    /// When payment refunded the capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded_at: Option<Timestamp>,
    /// When inventory released the reservation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_released_at: Option<Timestamp>,
    /// When shipping cancelled the shipment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment_cancelled_at: Option<Timestamp>,
}

/// The order aggregate's state: nothing yet, or a placed order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", content = "order", rename_all = "camelCase")]
pub enum OrderState {
    /// No `OrderPlaced` yet.
    #[default]
    NotPlaced,
    /// Placed; see the status.
    Placed(Box<PlacedOrder>),
}

impl OrderState {
    /// The placed order, if any.
    #[must_use]
    pub fn placed(&self) -> Option<&PlacedOrder> {
        match self {
            Self::NotPlaced => None,
            Self::Placed(order) => Some(order),
        }
    }
}

/// A command for the order aggregate. Time and prices come in with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCommand {
    /// Place a new order.
    Place(PlaceOrder),
    /// Record inventory's successful reservation.
    RecordStockReserved {
        /// Inventory's reservation.
        reservation_id: String,
    },
    /// Record inventory's failure to reserve.
    RecordStockReservationFailed {
        /// The short SKU, if one.
        sku: Option<Sku>,
        /// Inventory's reason.
        reason: String,
    },
    /// Record payment's capture.
    RecordPaymentCaptured {
        /// The provider's id.
        payment_id: String,
        /// What was captured.
        amount: Money,
    },
    /// Record payment's decline.
    RecordPaymentDeclined {
        /// The provider's reason.
        reason: String,
    },
    /// Record shipping's shipment.
    RecordShipment {
        /// Shipping's id.
        shipment_id: String,
        /// The carrier's tracking number.
        tracking_number: String,
    },
    /// An operator moves the order on.
    Advance(FulfilmentStep),
    /// A customer or operator cancels.
    Cancel {
        /// Their words.
        detail: Option<String>,
    },
    /// The pending deadline passed (the scheduler decides when).
    ExpirePending,
    /// Record payment's refund of the capture (compensation of a cancelled order).
    RecordPaymentRefunded {
        /// The capture refunded.
        payment_id: String,
        /// What was refunded.
        amount: Money,
        /// When payment refunded it.
        at: Timestamp,
    },
    /// Record inventory's release of the reservation.
    RecordStockReleased {
        /// Inventory's reservation.
        reservation_id: String,
        /// When inventory released it.
        at: Timestamp,
    },
    /// Record shipping's cancellation of the shipment.
    RecordShipmentCancelled {
        /// Shipping's id.
        shipment_id: String,
        /// When shipping cancelled it.
        at: Timestamp,
    },
}

/// The data of a new order, priced from the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceOrder {
    /// The id the caller minted.
    pub order_id: OrderId,
    /// Who.
    pub customer_id: CustomerId,
    /// What, priced.
    pub lines: Vec<PricedLine>,
    /// Masked payment method.
    pub payment: PaymentRef,
    /// Where.
    pub shipping_address: ShippingAddress,
    /// When.
    pub placed_at: Timestamp,
}

/// A command that does not fit the order's state, in the domain's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// The order was never placed.
    #[error("the order does not exist")]
    NotPlaced,
    /// `Place` on an existing order.
    #[error("the order already exists")]
    AlreadyPlaced,
    /// The command is not allowed in the order's current status.
    #[error("cannot {action} an order that is {state}")]
    InvalidTransition {
        /// The status the order is in.
        state: OrderStatus,
        /// What was attempted.
        action: Action,
    },
    /// An order without lines.
    #[error("an order needs at least one line")]
    NoLines,
    /// More than [`MAX_LINES`] lines.
    #[error("an order has at most {MAX_LINES} lines, got {0}")]
    TooManyLines(usize),
    /// The same SKU on two lines.
    #[error("SKU {0} appears on more than one line")]
    DuplicateSku(Sku),
    /// Prices in different currencies, or a total that overflows.
    #[error("cannot total the order: {0}")]
    Money(#[from] MoneyError),
    /// Payment captured something other than the total.
    #[error("captured {captured} but the order total is {total}")]
    AmountMismatch {
        /// What payment reported.
        captured: Money,
        /// What the order costs.
        total: Money,
    },
    /// OUT_FOR_DELIVERY before shipping created a shipment, or a shipment's
    /// cancellation before its creation was recorded on the order.
    #[error("no shipment has been created for the order yet")]
    ShipmentMissing,
}

/// What a rejected command tried to do, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Record a shipment.
    RecordShipment,
    /// Move on to a fulfilment step.
    Advance(FulfilmentStep),
    /// Cancel.
    Cancel,
    /// Record a compensation (refund, release, shipment cancellation).
    Compensate(&'static str),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RecordShipment => f.write_str("record a shipment for"),
            Self::Advance(step) => write!(f, "move to {}", step.status()),
            Self::Cancel => f.write_str("cancel"),
            Self::Compensate(what) => write!(f, "record the {what} of"),
        }
    }
}

/// The order aggregate.
#[derive(Debug, Clone, Copy)]
pub struct Order;

impl Aggregate for Order {
    const TYPE: &'static str = "order";
    const STATE_SCHEMA: u32 = 1;
    type State = OrderState;
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;

    fn decide(state: &OrderState, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        match (state, command) {
            (OrderState::NotPlaced, OrderCommand::Place(place)) => decide_place(place),
            (OrderState::Placed(_), OrderCommand::Place(_)) => Err(OrderError::AlreadyPlaced),
            (OrderState::NotPlaced, _) => Err(OrderError::NotPlaced),
            (OrderState::Placed(order), command) => decide_placed(order, command),
        }
    }

    fn evolve(state: OrderState, event: &OrderEvent) -> OrderState {
        match (state, event) {
            (OrderState::NotPlaced, OrderEvent::Placed(placed)) => {
                OrderState::Placed(Box::new(PlacedOrder {
                    order_id: placed.order_id,
                    customer_id: placed.customer_id.clone(),
                    lines: placed.lines.clone(),
                    total: placed.total,
                    payment_ref: placed.payment.clone(),
                    shipping_address: placed.shipping_address.clone(),
                    placed_at: placed.placed_at,
                    status: OrderStatus::Pending,
                    stock: StockAnswer::Awaiting,
                    payment: PaymentAnswer::Awaiting,
                    shipment: None,
                    cancellation: None,
                    compensation: Compensation::default(),
                }))
            }
            // Anything before placement, or a second placement, changes nothing: evolve
            // is total so that a corrupt stream cannot panic a reader.
            (state @ OrderState::NotPlaced, _) | (state @ OrderState::Placed(_), OrderEvent::Placed(_)) => {
                state
            }
            (OrderState::Placed(mut order), event) => {
                apply(&mut order, event);
                OrderState::Placed(order)
            }
        }
    }
}

fn apply(order: &mut PlacedOrder, event: &OrderEvent) {
    match event {
        OrderEvent::Placed(_) => {}
        OrderEvent::StockReserved(e) => {
            order.stock = StockAnswer::Reserved {
                reservation_id: e.reservation_id.clone(),
            };
        }
        OrderEvent::StockReservationFailed(e) => {
            order.stock = StockAnswer::Failed {
                sku: e.sku.clone(),
                reason: e.reason.clone(),
            };
        }
        OrderEvent::PaymentCaptured(e) => {
            order.payment = PaymentAnswer::Captured {
                payment_id: e.payment_id.clone(),
                amount: e.amount,
            };
        }
        OrderEvent::PaymentDeclined(e) => {
            order.payment = PaymentAnswer::Declined {
                reason: e.reason.clone(),
            };
        }
        OrderEvent::Confirmed(_) => order.status = OrderStatus::Confirmed,
        OrderEvent::ShipmentRecorded(e) => {
            order.shipment = Some(Shipment {
                shipment_id: e.shipment_id.clone(),
                tracking_number: e.tracking_number.clone(),
            });
        }
        OrderEvent::FulfilmentAdvanced(e) => order.status = e.step.status(),
        OrderEvent::Cancelled(e) => {
            order.status = OrderStatus::Cancelled;
            order.cancellation = Some(Cancellation {
                reason: e.reason,
                detail: e.detail.clone(),
            });
        }
        OrderEvent::PaymentRefunded(e) => order.compensation.refunded_at = Some(e.refunded_at),
        OrderEvent::StockReleased(e) => order.compensation.stock_released_at = Some(e.released_at),
        OrderEvent::ShipmentCancelled(e) => order.compensation.shipment_cancelled_at = Some(e.cancelled_at),
    }
}

fn decide_place(place: PlaceOrder) -> Result<Vec<OrderEvent>, OrderError> {
    let Some(first) = place.lines.first() else {
        return Err(OrderError::NoLines);
    };
    if place.lines.len() > MAX_LINES {
        return Err(OrderError::TooManyLines(place.lines.len()));
    }
    let currency = first.unit_price.currency;
    let mut seen = HashSet::with_capacity(place.lines.len());
    let mut lines = Vec::with_capacity(place.lines.len());
    for line in place.lines {
        if !seen.insert(line.sku.clone()) {
            return Err(OrderError::DuplicateSku(line.sku));
        }
        let line_total = line.unit_price.checked_times(line.quantity)?;
        lines.push(OrderLine {
            sku: line.sku,
            quantity: line.quantity,
            unit_price: line.unit_price,
            line_total,
        });
    }
    let total = Money::sum(currency, lines.iter().map(|l| l.line_total))?;
    Ok(vec![OrderEvent::Placed(Box::new(OrderPlaced {
        order_id: place.order_id,
        customer_id: place.customer_id,
        lines,
        total,
        payment: place.payment,
        shipping_address: Some(place.shipping_address),
        placed_at: place.placed_at,
    }))])
}

fn cancelled(reason: CancellationReason, detail: Option<String>) -> OrderEvent {
    OrderEvent::Cancelled(OrderCancelled { reason, detail })
}

fn decide_placed(order: &PlacedOrder, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
    let pending = order.status == OrderStatus::Pending;
    let stock_reserved = matches!(order.stock, StockAnswer::Reserved { .. });
    let payment_captured = matches!(order.payment, PaymentAnswer::Captured { .. });
    match command {
        OrderCommand::Place(_) => Err(OrderError::AlreadyPlaced),

        // Answers: the first one of each kind is recorded, whatever the status (a late
        // answer on a cancelled order is a fact compensation needs); only while pending
        // do they move the order. Repeats decide nothing.
        OrderCommand::RecordStockReserved { reservation_id } => {
            if order.stock != StockAnswer::Awaiting {
                return Ok(vec![]);
            }
            let mut events = vec![OrderEvent::StockReserved(OrderStockReserved { reservation_id })];
            if pending && payment_captured {
                events.push(OrderEvent::Confirmed(OrderConfirmed {}));
            }
            Ok(events)
        }
        OrderCommand::RecordStockReservationFailed { sku, reason } => {
            if order.stock != StockAnswer::Awaiting {
                return Ok(vec![]);
            }
            let detail = sku
                .as_ref()
                .map(|s| format!("{reason}: {s}"))
                .unwrap_or_else(|| reason.clone());
            let mut events = vec![OrderEvent::StockReservationFailed(OrderStockReservationFailed {
                sku,
                reason,
            })];
            if pending {
                events.push(cancelled(CancellationReason::OutOfStock, Some(detail)));
            }
            Ok(events)
        }
        OrderCommand::RecordPaymentCaptured { payment_id, amount } => {
            if order.payment != PaymentAnswer::Awaiting {
                return Ok(vec![]);
            }
            if amount != order.total {
                return Err(OrderError::AmountMismatch {
                    captured: amount,
                    total: order.total,
                });
            }
            let mut events = vec![OrderEvent::PaymentCaptured(OrderPaymentCaptured {
                payment_id,
                amount,
            })];
            if pending && stock_reserved {
                events.push(OrderEvent::Confirmed(OrderConfirmed {}));
            }
            Ok(events)
        }
        OrderCommand::RecordPaymentDeclined { reason } => {
            if order.payment != PaymentAnswer::Awaiting {
                return Ok(vec![]);
            }
            let mut events = vec![OrderEvent::PaymentDeclined(OrderPaymentDeclined {
                reason: reason.clone(),
            })];
            if pending {
                events.push(cancelled(CancellationReason::PaymentDeclined, Some(reason)));
            }
            Ok(events)
        }
        OrderCommand::RecordShipment {
            shipment_id,
            tracking_number,
        } => {
            if order.shipment.is_some() {
                return Ok(vec![]);
            }
            // A shipment only exists for an order that was confirmed (paid and reserved),
            // even if it has been cancelled since.
            if pending || !(stock_reserved && payment_captured) {
                return Err(OrderError::InvalidTransition {
                    state: order.status,
                    action: Action::RecordShipment,
                });
            }
            Ok(vec![OrderEvent::ShipmentRecorded(OrderShipmentRecorded {
                shipment_id,
                tracking_number,
            })])
        }
        OrderCommand::Advance(step) => {
            if order.status != step.from_status() {
                return Err(OrderError::InvalidTransition {
                    state: order.status,
                    action: Action::Advance(step),
                });
            }
            if step == FulfilmentStep::OutForDelivery && order.shipment.is_none() {
                return Err(OrderError::ShipmentMissing);
            }
            Ok(vec![OrderEvent::FulfilmentAdvanced(OrderFulfilmentAdvanced {
                step,
            })])
        }
        OrderCommand::Cancel { detail } => {
            if !order.status.is_cancellable() {
                return Err(OrderError::InvalidTransition {
                    state: order.status,
                    action: Action::Cancel,
                });
            }
            Ok(vec![cancelled(CancellationReason::Requested, detail)])
        }
        // The scheduler races the saga: an order that moved on meanwhile is not an error.
        OrderCommand::ExpirePending => Ok(if pending {
            vec![cancelled(CancellationReason::Timeout, None)]
        } else {
            vec![]
        }),
        OrderCommand::RecordPaymentRefunded {
            payment_id,
            amount,
            at,
        } => decide_refund(order, payment_id, amount, at),
        OrderCommand::RecordStockReleased { reservation_id, at } => decide_release(order, reservation_id, at),
        OrderCommand::RecordShipmentCancelled { shipment_id, at } => {
            if order.compensation.shipment_cancelled_at.is_some() {
                return Ok(vec![]);
            }
            compensating(order, "shipment cancellation")?;
            // The creation is on its way (the two can cross in the queue): the caller
            // retries once it is recorded.
            if order.shipment.is_none() {
                return Err(OrderError::ShipmentMissing);
            }
            Ok(vec![OrderEvent::ShipmentCancelled(OrderShipmentCancelled {
                shipment_id,
                cancelled_at: at,
            })])
        }
    }
}

/// Compensation follows a cancellation, never anything else.
fn compensating(order: &PlacedOrder, what: &'static str) -> Result<(), OrderError> {
    if order.status == OrderStatus::Cancelled {
        Ok(())
    } else {
        Err(OrderError::InvalidTransition {
            state: order.status,
            action: Action::Compensate(what),
        })
    }
}

/// A refund is recorded once; one that overtook its capture records the capture it
/// implies first (the refund names it), so the order reads the same in either order.
fn decide_refund(
    order: &PlacedOrder,
    payment_id: String,
    amount: Money,
    at: Timestamp,
) -> Result<Vec<OrderEvent>, OrderError> {
    if order.compensation.refunded_at.is_some() {
        return Ok(vec![]);
    }
    compensating(order, "refund")?;
    if amount != order.total {
        return Err(OrderError::AmountMismatch {
            captured: amount,
            total: order.total,
        });
    }
    let mut events = Vec::with_capacity(2);
    match order.payment {
        PaymentAnswer::Captured { .. } => {}
        PaymentAnswer::Awaiting => events.push(OrderEvent::PaymentCaptured(OrderPaymentCaptured {
            payment_id: payment_id.clone(),
            amount,
        })),
        PaymentAnswer::Declined { .. } => {
            return Err(OrderError::InvalidTransition {
                state: order.status,
                action: Action::Compensate("refund"),
            });
        }
    }
    events.push(OrderEvent::PaymentRefunded(OrderPaymentRefunded {
        payment_id,
        amount,
        refunded_at: at,
    }));
    Ok(events)
}

/// A release is recorded once; one that overtook its reservation records the
/// reservation first, like a refund its capture.
fn decide_release(
    order: &PlacedOrder,
    reservation_id: String,
    at: Timestamp,
) -> Result<Vec<OrderEvent>, OrderError> {
    if order.compensation.stock_released_at.is_some() {
        return Ok(vec![]);
    }
    compensating(order, "stock release")?;
    let mut events = Vec::with_capacity(2);
    match order.stock {
        StockAnswer::Reserved { .. } => {}
        StockAnswer::Awaiting => {
            events.push(OrderEvent::StockReserved(OrderStockReserved { reservation_id }))
        }
        StockAnswer::Failed { .. } => {
            return Err(OrderError::InvalidTransition {
                state: order.status,
                action: Action::Compensate("stock release"),
            });
        }
    }
    events.push(OrderEvent::StockReleased(OrderStockReleased { released_at: at }));
    Ok(events)
}

#[cfg(test)]
pub(crate) mod given_when_then;
#[cfg(test)]
mod model;
