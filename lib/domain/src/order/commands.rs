//! What the order aggregate can be asked to do.

use super::*;
use crate::ids::{CustomerId, OrderId, Sku};
use crate::money::Money;
use crate::time::Timestamp;

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
    /// Where, sealed with the customer's data key before it reaches the domain.
    pub shipping_address: crate::personal::Sealed,
    /// When.
    pub placed_at: Timestamp,
}
