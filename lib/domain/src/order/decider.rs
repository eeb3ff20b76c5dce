//! The order aggregate as a decider: `decide` and `evolve`.

use std::collections::HashSet;

use super::events::*;
use super::state::apply;
use super::*;
use crate::Aggregate;
use crate::money::Money;
use crate::time::Timestamp;

/// The order aggregate.
#[derive(Debug, Clone, Copy)]
pub struct Order;

impl Aggregate for Order {
    const TYPE: &'static str = "order";
    const STATE_SCHEMA: u32 = 2;
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
        shipping_address: Some(PersonalAddress::Sealed(place.shipping_address)),
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
