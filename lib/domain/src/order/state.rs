//! What the fold of an order's events knows, and how one event changes it.

use serde::{Deserialize, Serialize};

use super::events::*;
use super::*;
use crate::ids::{CustomerId, OrderId, Sku};
use crate::money::Money;
use crate::time::Timestamp;

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
    /// Delivery address, sealed (absent only on orders upcast from v1).
    pub shipping_address: Option<PersonalAddress>,
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

pub(super) fn apply(order: &mut PlacedOrder, event: &OrderEvent) {
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
