//! Property test: random command sequences against a small reference model.
//!
//! The model is a table of facts (placed, status, the two answers, shipped) with the
//! brief's rules written out plainly; the decider must agree with it on every step,
//! about the events it emits and the errors it returns, and the fold of what it
//! emitted must land in the model's state.

use proptest::prelude::*;
use proptest::test_runner::Config;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

use super::events::names;
use super::*;
use crate::Aggregate;
use crate::envelope::{DomainEvent, Envelope, Metadata};
use crate::ids::{CustomerId, OrderId, Quantity, Sku};
use crate::money::Currency;
use crate::money::Money;
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    None,
    Yes,
    No,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Model {
    placed: bool,
    status: OrderStatus,
    stock: Answer,
    payment: Answer,
    shipped: bool,
    refunded: bool,
    released: bool,
    shipment_cancelled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Place,
    StockOk,
    StockFail,
    PayOk,
    PayWrongAmount,
    PayFail,
    Ship,
    Advance(FulfilmentStep),
    Cancel,
    Expire,
    Refund,
    RefundWrongAmount,
    Release,
    CancelShipment,
}

/// What the model says a step must produce.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    Events(Vec<&'static str>),
    NotPlaced,
    AlreadyPlaced,
    Invalid,
    AmountMismatch,
    ShipmentMissing,
}

const FULFILMENT: [FulfilmentStep; 4] = [
    FulfilmentStep::Preparing,
    FulfilmentStep::Ready,
    FulfilmentStep::OutForDelivery,
    FulfilmentStep::Delivered,
];

fn predecessor(step: FulfilmentStep) -> OrderStatus {
    match step {
        FulfilmentStep::Preparing => OrderStatus::Confirmed,
        FulfilmentStep::Ready => OrderStatus::Preparing,
        FulfilmentStep::OutForDelivery => OrderStatus::Ready,
        FulfilmentStep::Delivered => OrderStatus::OutForDelivery,
    }
}

/// The brief's rules, one step at a time.
fn model_step(m: &Model, step: Step) -> (Expected, Model) {
    use Expected::Events;
    use OrderStatus::*;
    let mut next = m.clone();
    if !m.placed {
        return if step == Step::Place {
            next.placed = true;
            (Events(vec![names::PLACED]), next)
        } else {
            (Expected::NotPlaced, next)
        };
    }
    let outcome = match step {
        Step::Place => Expected::AlreadyPlaced,
        Step::StockOk | Step::StockFail if m.stock != Answer::None => Events(vec![]),
        Step::PayOk | Step::PayFail | Step::PayWrongAmount if m.payment != Answer::None => Events(vec![]),
        Step::PayWrongAmount => Expected::AmountMismatch,
        Step::StockOk => {
            next.stock = Answer::Yes;
            if m.status == Pending && m.payment == Answer::Yes {
                next.status = Confirmed;
                Events(vec![names::STOCK_RESERVED, names::CONFIRMED])
            } else {
                Events(vec![names::STOCK_RESERVED])
            }
        }
        Step::PayOk => {
            next.payment = Answer::Yes;
            if m.status == Pending && m.stock == Answer::Yes {
                next.status = Confirmed;
                Events(vec![names::PAYMENT_CAPTURED, names::CONFIRMED])
            } else {
                Events(vec![names::PAYMENT_CAPTURED])
            }
        }
        Step::StockFail | Step::PayFail => {
            let recorded = if step == Step::StockFail {
                next.stock = Answer::No;
                names::STOCK_RESERVATION_FAILED
            } else {
                next.payment = Answer::No;
                names::PAYMENT_DECLINED
            };
            if m.status == Pending {
                next.status = Cancelled;
                Events(vec![recorded, names::CANCELLED])
            } else {
                Events(vec![recorded])
            }
        }
        Step::Ship if m.shipped => Events(vec![]),
        Step::Ship if m.status == Pending || m.stock != Answer::Yes || m.payment != Answer::Yes => {
            Expected::Invalid
        }
        Step::Ship => {
            next.shipped = true;
            Events(vec![names::SHIPMENT_RECORDED])
        }
        Step::Advance(to) if m.status != predecessor(to) => Expected::Invalid,
        Step::Advance(FulfilmentStep::OutForDelivery) if !m.shipped => Expected::ShipmentMissing,
        Step::Advance(to) => {
            next.status = to.status();
            Events(vec![names::FULFILMENT_ADVANCED])
        }
        Step::Cancel if matches!(m.status, Pending | Confirmed | Preparing) => {
            next.status = Cancelled;
            Events(vec![names::CANCELLED])
        }
        Step::Cancel => Expected::Invalid,
        Step::Expire if m.status == Pending => {
            next.status = Cancelled;
            Events(vec![names::CANCELLED])
        }
        Step::Expire => Events(vec![]),
        // Compensation outcomes: once each, only on a cancelled order; a refund or a
        // release that overtook its answer brings the answer with it.
        Step::Refund | Step::RefundWrongAmount if m.refunded => Events(vec![]),
        Step::Release if m.released => Events(vec![]),
        Step::CancelShipment if m.shipment_cancelled => Events(vec![]),
        Step::Refund | Step::RefundWrongAmount | Step::Release | Step::CancelShipment
            if m.status != Cancelled =>
        {
            Expected::Invalid
        }
        Step::RefundWrongAmount => Expected::AmountMismatch,
        Step::Refund => match m.payment {
            Answer::No => Expected::Invalid,
            Answer::Yes => {
                next.refunded = true;
                Events(vec![names::PAYMENT_REFUNDED])
            }
            Answer::None => {
                (next.payment, next.refunded) = (Answer::Yes, true);
                Events(vec![names::PAYMENT_CAPTURED, names::PAYMENT_REFUNDED])
            }
        },
        Step::Release => match m.stock {
            Answer::No => Expected::Invalid,
            Answer::Yes => {
                next.released = true;
                Events(vec![names::STOCK_RELEASED])
            }
            Answer::None => {
                (next.stock, next.released) = (Answer::Yes, true);
                Events(vec![names::STOCK_RESERVED, names::STOCK_RELEASED])
            }
        },
        Step::CancelShipment if !m.shipped => Expected::ShipmentMissing,
        Step::CancelShipment => {
            next.shipment_cancelled = true;
            Events(vec![names::SHIPMENT_CANCELLED])
        }
    };
    (outcome, next)
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model {
            placed: false,
            status: OrderStatus::Pending,
            stock: Answer::None,
            payment: Answer::None,
            shipped: false,
            refunded: false,
            released: false,
            shipment_cancelled: false,
        })
        .boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Step> {
        let place_weight = if state.placed { 1 } else { 12 };
        prop_oneof![
            place_weight => Just(Step::Place),
            3 => Just(Step::StockOk),
            1 => Just(Step::StockFail),
            3 => Just(Step::PayOk),
            1 => Just(Step::PayWrongAmount),
            1 => Just(Step::PayFail),
            2 => Just(Step::Ship),
            4 => proptest::sample::select(FULFILMENT.to_vec()).prop_map(Step::Advance),
            1 => Just(Step::Cancel),
            1 => Just(Step::Expire),
            2 => Just(Step::Refund),
            1 => Just(Step::RefundWrongAmount),
            2 => Just(Step::Release),
            2 => Just(Step::CancelShipment),
        ]
        .boxed()
    }

    fn apply(state: Model, step: &Step) -> Model {
        model_step(&state, *step).1
    }
}

struct Sut {
    state: OrderState,
    model: Model,
    version: u64,
    history: Vec<Envelope<OrderEvent>>,
}

fn usd(amount: u64) -> Money {
    Money::new(amount, Currency::parse("USD").unwrap())
}

fn command(step: Step) -> OrderCommand {
    match step {
        Step::Place => OrderCommand::Place(PlaceOrder {
            order_id: OrderId::parse("0192f0a0-7c1e-7a3b-9c2d-1e2f3a4b5c6d").unwrap(),
            customer_id: CustomerId::parse("c-1").unwrap(),
            lines: vec![PricedLine {
                sku: Sku::parse("SKU-1").unwrap(),
                quantity: Quantity::parse(3).unwrap(),
                unit_price: usd(250),
            }],
            payment: PaymentToken::parse("tok_visa").unwrap().masked(),
            shipping_address: serde_json::from_str(r#"{"v":1,"n":"AAAAAAAAAAAAAAAA","c":"YWRkcmVzcw=="}"#)
                .unwrap(),
            placed_at: Timestamp::parse("2026-11-21T06:30:00Z").unwrap(),
        }),
        Step::StockOk => OrderCommand::RecordStockReserved {
            reservation_id: "r".into(),
        },
        Step::StockFail => OrderCommand::RecordStockReservationFailed {
            sku: None,
            reason: "insufficient_stock".into(),
        },
        Step::PayOk => OrderCommand::RecordPaymentCaptured {
            payment_id: "p".into(),
            amount: usd(750),
        },
        Step::PayWrongAmount => OrderCommand::RecordPaymentCaptured {
            payment_id: "p".into(),
            amount: usd(749),
        },
        Step::PayFail => OrderCommand::RecordPaymentDeclined {
            reason: "card_declined".into(),
        },
        Step::Ship => OrderCommand::RecordShipment {
            shipment_id: "s".into(),
            tracking_number: "t".into(),
        },
        Step::Advance(to) => OrderCommand::Advance(to),
        Step::Cancel => OrderCommand::Cancel { detail: None },
        Step::Expire => OrderCommand::ExpirePending,
        Step::Refund | Step::RefundWrongAmount => OrderCommand::RecordPaymentRefunded {
            payment_id: "p".into(),
            amount: usd(if step == Step::Refund { 750 } else { 749 }),
            at: Timestamp::parse("2026-11-21T06:31:00Z").unwrap(),
        },
        Step::Release => OrderCommand::RecordStockReleased {
            reservation_id: "r".into(),
            at: Timestamp::parse("2026-11-21T06:32:00Z").unwrap(),
        },
        Step::CancelShipment => OrderCommand::RecordShipmentCancelled {
            shipment_id: "s".into(),
            at: Timestamp::parse("2026-11-21T06:33:00Z").unwrap(),
        },
    }
}

fn observed(result: &Result<Vec<OrderEvent>, OrderError>) -> Expected {
    match result {
        Ok(events) => Expected::Events(events.iter().map(DomainEvent::event_type).collect()),
        Err(OrderError::NotPlaced) => Expected::NotPlaced,
        Err(OrderError::AlreadyPlaced) => Expected::AlreadyPlaced,
        Err(OrderError::InvalidTransition { .. }) => Expected::Invalid,
        Err(OrderError::AmountMismatch { .. }) => Expected::AmountMismatch,
        Err(OrderError::ShipmentMissing) => Expected::ShipmentMissing,
        Err(other) => panic!("the model never produces {other:?}"),
    }
}

impl StateMachineTest for Sut {
    type SystemUnderTest = Self;
    type Reference = Reference;

    fn init_test(model: &Model) -> Self {
        Self {
            state: OrderState::default(),
            model: model.clone(),
            version: 0,
            history: Vec::new(),
        }
    }

    fn apply(mut sut: Self, model_after: &Model, step: Step) -> Self {
        let (expected, _) = model_step(&sut.model, step);
        let result = Order::decide(&sut.state, command(step));
        assert_eq!(observed(&result), expected, "step {step:?} from {:?}", sut.model);
        for event in result.unwrap_or_default() {
            // Every emitted event survives the trip through its stored form.
            sut.version += 1;
            let envelope = Envelope {
                event_id: uuid::Uuid::nil(),
                aggregate_type: "order".into(),
                aggregate_id: "o".into(),
                version: sut.version,
                occurred_at: Timestamp::parse("2026-11-21T06:30:00Z").unwrap(),
                metadata: Metadata {
                    correlation_id: "c".into(),
                    causation_id: "c".into(),
                    actor: "a".into(),
                },
                replay: None,
                data: event,
            };
            let decoded = Envelope::<OrderEvent>::decode(&envelope.to_json()).unwrap();
            assert_eq!(decoded, envelope);
            sut.state = Order::evolve(sut.state, &decoded.data);
            sut.history.push(decoded);
        }
        sut.model = model_after.clone();
        sut
    }

    fn check_invariants(sut: &Self, model: &Model) {
        // The consistency checker's rules accept every history the decider can write.
        let findings = crate::audit::check_transitions(&sut.history);
        assert!(findings.is_empty(), "{findings:?} in {:?}", sut.history);
        let Some(order) = sut.state.placed() else {
            assert!(!model.placed);
            return;
        };
        assert!(model.placed);
        assert_eq!(order.status, model.status);
        assert_eq!(
            matches!(order.stock, StockAnswer::Reserved { .. }),
            model.stock == Answer::Yes
        );
        assert_eq!(
            matches!(order.payment, PaymentAnswer::Captured { .. }),
            model.payment == Answer::Yes
        );
        assert_eq!(order.shipment.is_some(), model.shipped);
        assert_eq!(order.compensation.refunded_at.is_some(), model.refunded);
        assert_eq!(order.compensation.stock_released_at.is_some(), model.released);
        assert_eq!(
            order.compensation.shipment_cancelled_at.is_some(),
            model.shipment_cancelled
        );
        // Compensation undoes what was done, on a cancelled order only.
        if model.refunded || model.released || model.shipment_cancelled {
            assert_eq!(order.status, OrderStatus::Cancelled);
        }
        assert!(!model.refunded || matches!(order.payment, PaymentAnswer::Captured { .. }));
        assert!(!model.released || matches!(order.stock, StockAnswer::Reserved { .. }));
        assert!(!model.shipment_cancelled || order.shipment.is_some());
        // Nothing moves past PENDING unless paid and reserved; nothing ships unpaid.
        if !matches!(order.status, OrderStatus::Pending | OrderStatus::Cancelled) || order.shipment.is_some()
        {
            assert!(matches!(order.stock, StockAnswer::Reserved { .. }));
            assert!(matches!(order.payment, PaymentAnswer::Captured { .. }));
        }
        assert_eq!(
            order.status == OrderStatus::Cancelled,
            order.cancellation.is_some()
        );
    }
}

prop_state_machine! {
    #![proptest_config(Config {
        cases: 10_000,
        failure_persistence: None,
        .. Config::default()
    })]

    #[test]
    fn the_decider_agrees_with_the_reference_model(sequential 1..40 => Sut);
}
