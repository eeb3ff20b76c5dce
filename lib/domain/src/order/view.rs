//! The order as clients see it: folded from its envelopes (so it knows when each step
//! happened), in the API's camelCase shape. Pure, so the API's "folded from the store"
//! answer and a projected read model cannot differ.

use serde::{Deserialize, Serialize};

use crate::Aggregate;
use crate::envelope::Envelope;
use crate::ids::{CustomerId, OrderId};
use crate::money::Money;
use crate::order::{
    CancellationReason, Order, OrderEvent, OrderLine, OrderState, OrderStatus, PaymentAnswer,
    ShippingAddress, StockAnswer,
};
use crate::time::Timestamp;

/// Payment as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    /// `CAPTURED` or `DECLINED`.
    pub status: String,
    /// The capture id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    /// Why it was declined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The masked payment method.
    pub method: String,
}

/// The shipment as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentView {
    /// Shipping's id.
    pub shipment_id: String,
    /// The carrier's tracking number.
    pub tracking_number: String,
}

/// An order, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    /// Identity.
    pub order_id: OrderId,
    /// Who placed it.
    pub customer_id: CustomerId,
    /// Where it is.
    pub status: OrderStatus,
    /// The priced lines.
    pub items: Vec<OrderLine>,
    /// The total.
    pub total: Money,
    /// The last event folded in: the order's version for `If-Match`.
    pub version: u64,
    /// When it was placed.
    pub placed_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Why it was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<CancellationReason>,
    /// The free text of the cancellation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_detail: Option<String>,
    /// Stock: `AWAITING`, `RESERVED` or `FAILED`.
    pub stock: String,
    /// Payment, once answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentView>,
    /// Shipment, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment: Option<ShipmentView>,
    /// Delivery address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<ShippingAddress>,
}

impl OrderView {
    /// Folds an order's envelopes (in version order) into its view; `None` before
    /// `OrderPlaced`.
    #[must_use]
    pub fn fold(history: &[Envelope<OrderEvent>]) -> Option<Self> {
        let state = Order::fold(OrderState::default(), history.iter().map(|e| &e.data));
        let order = state.placed()?;
        let last = history.last()?;
        let payment = match &order.payment {
            PaymentAnswer::Awaiting => None,
            PaymentAnswer::Captured { payment_id, .. } => Some(PaymentView {
                status: "CAPTURED".into(),
                payment_id: Some(payment_id.clone()),
                reason: None,
                method: order.payment_ref.as_str().to_owned(),
            }),
            PaymentAnswer::Declined { reason } => Some(PaymentView {
                status: "DECLINED".into(),
                payment_id: None,
                reason: Some(reason.clone()),
                method: order.payment_ref.as_str().to_owned(),
            }),
        };
        Some(Self {
            order_id: order.order_id,
            customer_id: order.customer_id.clone(),
            status: order.status,
            items: order.lines.clone(),
            total: order.total,
            version: last.version,
            placed_at: order.placed_at,
            updated_at: last.occurred_at,
            cancellation_reason: order.cancellation.as_ref().map(|c| c.reason),
            cancellation_detail: order.cancellation.as_ref().and_then(|c| c.detail.clone()),
            stock: match order.stock {
                StockAnswer::Awaiting => "AWAITING",
                StockAnswer::Reserved { .. } => "RESERVED",
                StockAnswer::Failed { .. } => "FAILED",
            }
            .into(),
            payment,
            shipment: order.shipment.as_ref().map(|s| ShipmentView {
                shipment_id: s.shipment_id.clone(),
                tracking_number: s.tracking_number.clone(),
            }),
            shipping_address: order.shipping_address.clone(),
        })
    }
}
