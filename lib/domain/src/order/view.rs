//! The order as clients see it: folded from its envelopes (so it knows when each step
//! happened), in the API's camelCase shape. Pure, so the API's "folded from the store"
//! answer and a projected read model cannot differ.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Aggregate;
use crate::envelope::Envelope;
use crate::ids::{CustomerId, OrderId};
use crate::money::Money;
use crate::order::{
    CancellationReason, ErasedAddress, Order, OrderEvent, OrderLine, OrderState, OrderStatus, PaymentAnswer,
    PersonalAddress, PlacedOrder, ShippingAddress, StockAnswer,
};
use crate::time::Timestamp;

/// Payment as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    /// `CAPTURED`, `DECLINED` or, once a cancelled order's capture came back,
    /// `REFUNDED`.
    pub status: String,
    /// The capture id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    /// Why it was declined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The masked payment method.
    pub method: String,
    /// When the capture was refunded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded_at: Option<Timestamp>,
}

/// The shipment as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentView {
    /// `CREATED`, or `CANCELLED` once shipping cancelled it.
    #[serde(default = "created")]
    pub status: String,
    /// Shipping's id.
    pub shipment_id: String,
    /// The carrier's tracking number.
    pub tracking_number: String,
    /// When shipping cancelled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<Timestamp>,
}

/// Views stored before shipments could be cancelled on the order.
fn created() -> String {
    "CREATED".into()
}

/// The address as a read shows it: in clear, or erased.
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "the schema of what a read shows; never built")]
enum ShownAddress {
    /// In clear, to the customer it belongs to and to operators.
    Clear(ShippingAddress),
    /// The customer was erased.
    Erased(ErasedAddress),
}

/// An order, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// When it entered each status it has been in (`{"PENDING": …, "CONFIRMED": …}`).
    #[serde(default)]
    pub timeline: BTreeMap<OrderStatus, Timestamp>,
    /// Why it was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<CancellationReason>,
    /// The free text of the cancellation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_detail: Option<String>,
    /// Stock: `AWAITING`, `RESERVED`, `FAILED` or, once a cancelled order's
    /// reservation was given back, `RELEASED`.
    pub stock: String,
    /// When the reservation was released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_released_at: Option<Timestamp>,
    /// Payment, once answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentView>,
    /// Shipment, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment: Option<ShipmentView>,
    /// Delivery address. Stored sealed; a read shows its owner the address in clear,
    /// or, once the customer was erased, every field as `[erased]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<ShownAddress>")]
    pub shipping_address: Option<PersonalAddress>,
}

/// `address` replaced with the erased marker; whether it held an address to erase.
fn erase(address: &mut Option<PersonalAddress>) -> bool {
    match address {
        Some(PersonalAddress::Sealed(_) | PersonalAddress::Clear(_)) => {
            *address = Some(PersonalAddress::Erased(ErasedAddress));
            true
        }
        Some(PersonalAddress::Erased(_)) | None => false,
    }
}

/// `address`, in clear, replaced with `sealed`; whether it was in clear.
fn seal(address: &mut Option<PersonalAddress>, sealed: &crate::personal::Sealed) -> bool {
    if matches!(address, Some(PersonalAddress::Clear(_))) {
        *address = Some(PersonalAddress::Sealed(sealed.clone()));
        true
    } else {
        false
    }
}

impl OrderView {
    /// Replaces the order's personal fields with the erased marker; whether it held
    /// any (sealed or in clear).
    pub fn erase_personal(&mut self) -> bool {
        erase(&mut self.shipping_address)
    }

    /// Replaces an address held in clear with `sealed` (the history's migration);
    /// whether it was in clear.
    pub fn seal_personal(&mut self, sealed: &crate::personal::Sealed) -> bool {
        seal(&mut self.shipping_address, sealed)
    }

    /// Folds an order's envelopes (in version order) into its view; `None` before
    /// `OrderPlaced`.
    #[must_use]
    pub fn fold(history: &[Envelope<OrderEvent>]) -> Option<Self> {
        let mut projection = OrderProjection::default();
        for envelope in history {
            projection.fold_in(envelope);
        }
        projection.view()
    }

    fn of(
        order: &PlacedOrder,
        version: u64,
        updated_at: Timestamp,
        timeline: BTreeMap<OrderStatus, Timestamp>,
    ) -> Self {
        let compensation = order.compensation;
        let payment = match &order.payment {
            PaymentAnswer::Awaiting => None,
            PaymentAnswer::Captured { payment_id, .. } => Some(PaymentView {
                status: if compensation.refunded_at.is_some() {
                    "REFUNDED"
                } else {
                    "CAPTURED"
                }
                .into(),
                payment_id: Some(payment_id.clone()),
                reason: None,
                method: order.payment_ref.as_str().to_owned(),
                refunded_at: compensation.refunded_at,
            }),
            PaymentAnswer::Declined { reason } => Some(PaymentView {
                status: "DECLINED".into(),
                payment_id: None,
                reason: Some(reason.clone()),
                method: order.payment_ref.as_str().to_owned(),
                refunded_at: None,
            }),
        };
        Self {
            order_id: order.order_id,
            customer_id: order.customer_id.clone(),
            status: order.status,
            items: order.lines.clone(),
            total: order.total,
            version,
            placed_at: order.placed_at,
            updated_at,
            timeline,
            cancellation_reason: order.cancellation.as_ref().map(|c| c.reason),
            cancellation_detail: order.cancellation.as_ref().and_then(|c| c.detail.clone()),
            stock: match order.stock {
                StockAnswer::Awaiting => "AWAITING",
                StockAnswer::Reserved { .. } if compensation.stock_released_at.is_some() => "RELEASED",
                StockAnswer::Reserved { .. } => "RESERVED",
                StockAnswer::Failed { .. } => "FAILED",
            }
            .into(),
            stock_released_at: compensation.stock_released_at,
            payment,
            shipment: order.shipment.as_ref().map(|s| ShipmentView {
                status: if compensation.shipment_cancelled_at.is_some() {
                    "CANCELLED".into()
                } else {
                    created()
                },
                shipment_id: s.shipment_id.clone(),
                tracking_number: s.tracking_number.clone(),
                cancelled_at: compensation.shipment_cancelled_at,
            }),
            shipping_address: order.shipping_address.clone(),
        }
    }
}

/// The projector's working state for one order: the aggregate state folded so far,
/// the last version folded in and when it happened. The live projector keeps it next
/// to the view and applies one event at a time; a rebuild folds a whole history
/// through the same [`OrderProjection::apply`], so the two cannot differ.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderProjection {
    /// The aggregate state after `version`.
    pub state: OrderState,
    /// The last version folded in (0: none).
    pub version: u64,
    /// When that event happened.
    pub updated_at: Option<Timestamp>,
    /// When the order entered each status.
    #[serde(default)]
    pub timeline: BTreeMap<OrderStatus, Timestamp>,
}

/// What [`OrderProjection::apply`] made of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The next version: folded in.
    Folded,
    /// At or below the current version: a duplicate or a late copy, ignored.
    AlreadySeen,
    /// Beyond the next version: events are missing in between, nothing changed.
    Gap {
        /// The version the projection needs next.
        expected: u64,
    },
}

impl OrderProjection {
    /// Replaces the order's personal fields with the erased marker; whether it held
    /// any (sealed or in clear).
    pub fn erase_personal(&mut self) -> bool {
        match &mut self.state {
            OrderState::Placed(order) => erase(&mut order.shipping_address),
            OrderState::NotPlaced => false,
        }
    }

    /// Replaces an address held in clear with `sealed` (the history's migration);
    /// whether it was in clear.
    pub fn seal_personal(&mut self, sealed: &crate::personal::Sealed) -> bool {
        match &mut self.state {
            OrderState::Placed(order) => seal(&mut order.shipping_address, sealed),
            OrderState::NotPlaced => false,
        }
    }

    /// Folds `envelope` in if it is the next version; never moves backward and never
    /// skips a version.
    pub fn apply(&mut self, envelope: &Envelope<OrderEvent>) -> Applied {
        if envelope.version <= self.version {
            return Applied::AlreadySeen;
        }
        if envelope.version != self.version + 1 {
            return Applied::Gap {
                expected: self.version + 1,
            };
        }
        self.fold_in(envelope);
        Applied::Folded
    }

    fn fold_in(&mut self, envelope: &Envelope<OrderEvent>) {
        self.state = Order::evolve(std::mem::take(&mut self.state), &envelope.data);
        self.version = envelope.version;
        self.updated_at = Some(envelope.occurred_at);
        if let Some(order) = self.state.placed() {
            self.timeline.entry(order.status).or_insert(envelope.occurred_at);
        }
    }

    /// The view, once the order is placed.
    #[must_use]
    pub fn view(&self) -> Option<OrderView> {
        Some(OrderView::of(
            self.state.placed()?,
            self.version,
            self.updated_at?,
            self.timeline.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

    use proptest::prelude::*;

    use super::*;
    use crate::order::given_when_then::sample_history;

    proptest! {
        /// Any delivery of an order's events (duplicated, shuffled), each gap answered
        /// by catching up from the full history, ends at the fold of the history.
        #[test]
        fn any_delivery_order_converges_on_the_fold(
            order in prop::collection::vec(0usize..64, 1..40),
            steps in 1usize..=9,
        ) {
            let history = sample_history(steps);
            let mut projection = OrderProjection::default();
            let mut deliveries: Vec<_> = order.iter().map(|i| &history[i % history.len()]).collect();
            deliveries.extend(history.iter());
            for envelope in deliveries {
                let before = projection.clone();
                match projection.apply(envelope) {
                    Applied::Folded => prop_assert_eq!(projection.version, before.version + 1),
                    Applied::AlreadySeen => prop_assert_eq!(&projection, &before),
                    Applied::Gap { expected } => {
                        prop_assert_eq!(&projection, &before);
                        for missing in &history[usize::try_from(expected - 1).unwrap()..] {
                            prop_assert_eq!(projection.apply(missing), Applied::Folded);
                            if missing.version == envelope.version {
                                break;
                            }
                        }
                    }
                }
                prop_assert!(projection.version >= before.version);
            }
            prop_assert_eq!(projection.view(), OrderView::fold(&history));
        }
    }

    #[test]
    fn an_address_in_clear_is_sealed_once_and_any_address_erased_once() {
        let sealed = crate::personal::Sealed {
            version: crate::personal::SEALED_VERSION,
            nonce: "bm9uY2U=".into(),
            ciphertext: "Y2lwaGVy".into(),
        };
        let mut view = OrderView::fold(&sample_history(1)).unwrap();
        let clear: ShippingAddress = serde_json::from_value(serde_json::json!(
            {"name": "Ada", "line1": "1 Main St", "city": "Springfield", "postalCode": "1", "country": "US"}
        ))
        .unwrap();
        view.shipping_address = Some(PersonalAddress::Clear(clear));
        assert!(view.seal_personal(&sealed), "in clear: sealed");
        assert_eq!(
            view.shipping_address,
            Some(PersonalAddress::Sealed(sealed.clone()))
        );
        assert!(!view.seal_personal(&sealed), "sealed already: left as it is");
        assert!(view.erase_personal(), "sealed: erased");
        assert!(matches!(view.shipping_address, Some(PersonalAddress::Erased(_))));
        assert!(!view.erase_personal(), "erased already");
        assert!(!view.seal_personal(&sealed), "erased: nothing to seal");
        view.shipping_address = None;
        assert!(!view.erase_personal() && !view.seal_personal(&sealed));
        assert_eq!(view.shipping_address, None);
    }

    #[test]
    fn the_projectors_state_is_sealed_and_erased_as_its_view_is() {
        let sealed = crate::personal::Sealed {
            version: crate::personal::SEALED_VERSION,
            nonce: "bm9uY2U=".into(),
            ciphertext: "Y2lwaGVy".into(),
        };
        let mut empty = OrderProjection::default();
        assert!(
            !empty.seal_personal(&sealed) && !empty.erase_personal(),
            "not placed: nothing"
        );
        let mut projection = OrderProjection::default();
        for event in &sample_history(1) {
            assert_eq!(projection.apply(event), Applied::Folded);
        }
        let address = |p: &OrderProjection| match &p.state {
            OrderState::Placed(order) => order.shipping_address.clone(),
            OrderState::NotPlaced => None,
        };
        let clear: ShippingAddress = serde_json::from_value(serde_json::json!(
            {"name": "Ada", "line1": "1 Main St", "city": "Springfield", "postalCode": "1", "country": "US"}
        ))
        .unwrap();
        if let OrderState::Placed(order) = &mut projection.state {
            order.shipping_address = Some(PersonalAddress::Clear(clear));
        }
        assert!(projection.seal_personal(&sealed));
        assert_eq!(
            address(&projection),
            Some(PersonalAddress::Sealed(sealed.clone()))
        );
        assert!(projection.erase_personal());
        assert!(matches!(address(&projection), Some(PersonalAddress::Erased(_))));
        assert!(!projection.erase_personal());
    }

    #[test]
    fn the_timeline_holds_when_each_status_was_entered() {
        let history = sample_history(9);
        let view = OrderView::fold(&history).unwrap();
        let at = |i: usize| history[i].occurred_at;
        // placed (0), confirmed with the 4th event (3), then one step per event (5..=8).
        assert_eq!(
            view.timeline.into_iter().collect::<Vec<_>>(),
            [
                (OrderStatus::Pending, at(0)),
                (OrderStatus::Confirmed, at(3)),
                (OrderStatus::Preparing, at(5)),
                (OrderStatus::Ready, at(6)),
                (OrderStatus::OutForDelivery, at(7)),
                (OrderStatus::Delivered, at(8)),
            ]
        );
    }

    #[test]
    fn a_compensated_order_shows_each_outcome_with_its_time() {
        use crate::order::given_when_then::{at, compensated_history};
        let history = compensated_history();
        let view = OrderView::fold(&history).unwrap();
        assert_eq!(view.status, OrderStatus::Cancelled);
        let payment = view.payment.unwrap();
        assert_eq!(
            (payment.status.as_str(), payment.refunded_at),
            ("REFUNDED", Some(at(1)))
        );
        assert_eq!(payment.payment_id.as_deref(), Some("pay-1"));
        assert_eq!(
            (view.stock.as_str(), view.stock_released_at),
            ("RELEASED", Some(at(2)))
        );
        let shipment = view.shipment.unwrap();
        assert_eq!(
            (shipment.status.as_str(), shipment.cancelled_at),
            ("CANCELLED", Some(at(3)))
        );
        // Before the outcomes, the same order shows what was done and not yet undone.
        let before = OrderView::fold(&history[..history.len() - 3]).unwrap();
        assert_eq!(before.payment.unwrap().status, "CAPTURED");
        assert_eq!(
            (before.stock.as_str(), before.stock_released_at),
            ("RESERVED", None)
        );
        assert_eq!(before.shipment.unwrap().status, "CREATED");
        // In the API's JSON.
        let json = serde_json::to_value(OrderView::fold(&history).unwrap()).unwrap();
        assert_eq!(json["payment"]["status"], "REFUNDED");
        assert!(json["payment"]["refundedAt"].is_string());
        assert_eq!(json["stock"], "RELEASED");
        assert!(json["stockReleasedAt"].is_string());
        assert_eq!(json["shipment"]["status"], "CANCELLED");
        assert!(json["shipment"]["cancelledAt"].is_string());
    }

    #[test]
    fn a_view_stored_before_shipments_had_a_status_still_reads() {
        let mut json = serde_json::to_value(OrderView::fold(&sample_history(5)).unwrap()).unwrap();
        json["shipment"].as_object_mut().unwrap().remove("status");
        let view: OrderView = serde_json::from_value(json).unwrap();
        assert_eq!(view.shipment.unwrap().status, "CREATED");
    }

    #[test]
    fn nothing_before_placement() {
        assert_eq!(OrderProjection::default().view(), None);
        assert_eq!(OrderView::fold(&[]), None);
    }
}
