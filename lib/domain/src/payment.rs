//! Payment for one order, as a decider (stream `payment#<orderId>`), and the rule that
//! says what the payment service must do next.
//!
//! The provider is outside any transaction, so the service works in steps: read the
//! state, ask [`next_step`], call the provider (idempotent by order id), record the
//! result, repeat. Whatever crashes or races happen between steps, the next delivery
//! of either trigger (`OrderPlaced`, `OrderCancelled`) converges on the same end: a
//! cancelled order is never left charged, and a capture is never made twice.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::Aggregate;
use crate::envelope::{DecodeError, DomainEvent, decode_data};
use crate::ids::OrderId;
use crate::money::Money;

/// The provider captured the amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentCaptured {
    /// The order.
    pub order_id: OrderId,
    /// The provider's capture id.
    pub payment_id: String,
    /// What was captured.
    pub amount: Money,
}

/// The provider declined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentDeclined {
    /// The order.
    pub order_id: OrderId,
    /// The provider's reason (`card_declined`, `insufficient_funds`, …).
    pub reason: String,
}

/// A capture was refunded in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRefunded {
    /// The order.
    pub order_id: OrderId,
    /// The capture refunded.
    pub payment_id: String,
    /// What was refunded.
    pub amount: Money,
}

/// The order was cancelled before any capture: the tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentVoided {
    /// The order.
    pub order_id: OrderId,
}

/// Every payment event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PaymentEvent {
    /// See [`PaymentCaptured`].
    Captured(PaymentCaptured),
    /// See [`PaymentDeclined`].
    Declined(PaymentDeclined),
    /// See [`PaymentRefunded`].
    Refunded(PaymentRefunded),
    /// See [`PaymentVoided`].
    Voided(PaymentVoided),
}

/// Wire names.
pub mod names {
    /// `PaymentCaptured`
    pub const CAPTURED: &str = "PaymentCaptured";
    /// `PaymentDeclined`
    pub const DECLINED: &str = "PaymentDeclined";
    /// `PaymentRefunded`
    pub const REFUNDED: &str = "PaymentRefunded";
    /// `PaymentVoided`
    pub const VOIDED: &str = "PaymentVoided";
}

impl DomainEvent for PaymentEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Captured(_) => names::CAPTURED,
            Self::Declined(_) => names::DECLINED,
            Self::Refunded(_) => names::REFUNDED,
            Self::Voided(_) => names::VOIDED,
        }
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn decode(event_type: &str, version: u32, data: &RawValue) -> Result<Self, DecodeError> {
        use names::*;
        Ok(match event_type {
            CAPTURED => Self::Captured(decode_data(CAPTURED, version, 1, data, &[])?),
            DECLINED => Self::Declined(decode_data(DECLINED, version, 1, data, &[])?),
            REFUNDED => Self::Refunded(decode_data(REFUNDED, version, 1, data, &[])?),
            VOIDED => Self::Voided(decode_data(VOIDED, version, 1, data, &[])?),
            other => return Err(DecodeError::UnknownType(other.to_owned())),
        })
    }
}

/// A capture, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capture {
    /// The provider's id.
    pub payment_id: String,
    /// The amount.
    pub amount: Money,
}

/// What is known about one order's payment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentState {
    /// The capture, once made (even one made after a cancellation).
    pub capture: Option<Capture>,
    /// The provider declined.
    pub declined: bool,
    /// The capture was refunded.
    pub refunded: bool,
    /// The order is known to be cancelled.
    pub cancelled: bool,
}

/// What triggered the payment service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `OrderPlaced`: take the money.
    Placed,
    /// `OrderCancelled`: give it back.
    Cancelled,
}

/// What the payment service must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Ask the provider to capture.
    Capture,
    /// Ask the provider to refund this capture.
    Refund(Capture),
    /// Record the cancellation before any capture (the tombstone).
    Void,
    /// Nothing left to do.
    Done,
}

/// The next step for `trigger` in `state`.
#[must_use]
pub fn next_step(state: &PaymentState, trigger: Trigger) -> Step {
    let cancelled = state.cancelled || trigger == Trigger::Cancelled;
    match &state.capture {
        // A capture on a cancelled order is refunded, whichever trigger noticed.
        Some(capture) if cancelled && !state.refunded => Step::Refund(capture.clone()),
        Some(_) => Step::Done,
        None if state.declined => Step::Done,
        None if trigger == Trigger::Cancelled && !state.cancelled => Step::Void,
        None if cancelled => Step::Done,
        None => Step::Capture,
    }
}

/// The payment service records what the provider did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentCommand {
    /// The provider captured.
    RecordCapture(PaymentCaptured),
    /// The provider declined.
    RecordDecline(PaymentDeclined),
    /// The provider refunded.
    RecordRefund(PaymentRefunded),
    /// Cancelled before any capture.
    Void {
        /// The order.
        order_id: OrderId,
    },
}

/// Payment refuses nothing: a command applies or is a duplicate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreachable")]
pub enum PaymentError {}

/// The payment aggregate.
#[derive(Debug, Clone, Copy)]
pub struct Payment;

impl Aggregate for Payment {
    const TYPE: &'static str = "payment";
    const STATE_SCHEMA: u32 = 1;
    type State = PaymentState;
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;

    fn decide(state: &PaymentState, command: PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentError> {
        let settled = state.capture.is_some() || state.declined;
        Ok(match command {
            // A capture that happened is recorded even after a tombstone: it is a fact,
            // and the refund that follows needs it.
            PaymentCommand::RecordCapture(e) if !settled => vec![PaymentEvent::Captured(e)],
            PaymentCommand::RecordDecline(e) if !settled => vec![PaymentEvent::Declined(e)],
            PaymentCommand::RecordRefund(e) if state.capture.is_some() && !state.refunded => {
                vec![PaymentEvent::Refunded(e)]
            }
            PaymentCommand::Void { order_id } if !settled && !state.cancelled => {
                vec![PaymentEvent::Voided(PaymentVoided { order_id })]
            }
            _ => vec![],
        })
    }

    fn evolve(mut state: PaymentState, event: &PaymentEvent) -> PaymentState {
        match event {
            PaymentEvent::Captured(e) => {
                state.capture = Some(Capture {
                    payment_id: e.payment_id.clone(),
                    amount: e.amount,
                });
            }
            PaymentEvent::Declined(_) => state.declined = true,
            PaymentEvent::Refunded(_) => {
                state.refunded = true;
                state.cancelled = true;
            }
            PaymentEvent::Voided(_) => state.cancelled = true,
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn order() -> OrderId {
        OrderId::parse("0192f0a0-7c1e-7a3b-9c2d-1e2f3a4b5c6d").unwrap()
    }
    fn amount() -> Money {
        Money::new(3098, Currency::parse("USD").unwrap())
    }
    fn captured() -> PaymentCommand {
        PaymentCommand::RecordCapture(PaymentCaptured {
            order_id: order(),
            payment_id: "pay-1".into(),
            amount: amount(),
        })
    }
    fn refunded() -> PaymentCommand {
        PaymentCommand::RecordRefund(PaymentRefunded {
            order_id: order(),
            payment_id: "pay-1".into(),
            amount: amount(),
        })
    }
    fn apply(state: PaymentState, command: PaymentCommand) -> PaymentState {
        let events = Payment::decide(&state, command).unwrap();
        Payment::fold(state, &events)
    }

    #[test]
    fn a_settled_payment_takes_no_other_answer_and_no_tombstone() {
        let declined = || {
            PaymentCommand::RecordDecline(PaymentDeclined {
                order_id: order(),
                reason: "card_declined".into(),
            })
        };
        let void = || PaymentCommand::Void { order_id: order() };
        let paid = apply(PaymentState::default(), captured());
        assert_eq!(Payment::decide(&paid, declined()).unwrap(), []);
        assert_eq!(Payment::decide(&paid, void()).unwrap(), []);
        let refused = apply(PaymentState::default(), declined());
        assert_eq!(Payment::decide(&refused, void()).unwrap(), []);
        let voided = apply(PaymentState::default(), void());
        assert_eq!(Payment::decide(&voided, void()).unwrap(), []);
        assert_eq!(
            Payment::decide(&PaymentState::default(), void()).unwrap().len(),
            1
        );
    }

    #[test]
    fn placed_captures_once() {
        let state = PaymentState::default();
        assert_eq!(next_step(&state, Trigger::Placed), Step::Capture);
        let state = apply(state, captured());
        assert_eq!(
            next_step(&state, Trigger::Placed),
            Step::Done,
            "a redelivery captures nothing"
        );
        assert!(Payment::decide(&state, captured()).unwrap().is_empty());
    }

    #[test]
    fn cancel_after_capture_refunds_once() {
        let state = apply(PaymentState::default(), captured());
        let Step::Refund(capture) = next_step(&state, Trigger::Cancelled) else {
            panic!("a captured, cancelled order is refunded");
        };
        assert_eq!(capture.amount, amount());
        let state = apply(state, refunded());
        assert_eq!(next_step(&state, Trigger::Cancelled), Step::Done);
        assert_eq!(next_step(&state, Trigger::Placed), Step::Done);
        assert!(Payment::decide(&state, refunded()).unwrap().is_empty());
    }

    #[test]
    fn cancel_before_capture_leaves_a_tombstone_and_no_capture_is_made() {
        let state = PaymentState::default();
        assert_eq!(next_step(&state, Trigger::Cancelled), Step::Void);
        let state = apply(state, PaymentCommand::Void { order_id: order() });
        assert!(state.cancelled);
        assert_eq!(
            next_step(&state, Trigger::Placed),
            Step::Done,
            "the late capture is never made"
        );
        assert_eq!(next_step(&state, Trigger::Cancelled), Step::Done);
    }

    #[test]
    fn a_capture_that_raced_the_tombstone_is_recorded_then_refunded() {
        let voided = apply(
            PaymentState::default(),
            PaymentCommand::Void { order_id: order() },
        );
        let state = apply(voided, captured());
        assert!(state.capture.is_some());
        assert!(matches!(next_step(&state, Trigger::Placed), Step::Refund(_)));
        assert!(matches!(next_step(&state, Trigger::Cancelled), Step::Refund(_)));
    }

    #[test]
    fn a_decline_settles_and_a_cancel_then_has_nothing_to_do() {
        let state = apply(
            PaymentState::default(),
            PaymentCommand::RecordDecline(PaymentDeclined {
                order_id: order(),
                reason: "card_declined".into(),
            }),
        );
        assert_eq!(next_step(&state, Trigger::Placed), Step::Done);
        assert_eq!(next_step(&state, Trigger::Cancelled), Step::Done);
        assert!(Payment::decide(&state, captured()).unwrap().is_empty());
    }
}
