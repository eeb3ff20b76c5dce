//! Given/when/then tests: every transition and every rejection of the order decider.

use super::events::*;
use super::*;
use crate::Aggregate;
use crate::ids::{CustomerId, OrderId, Quantity, Sku};
use crate::money::Currency;
use crate::money::{Money, MoneyError};
use crate::time::Timestamp;

fn usd(amount: u64) -> Money {
    Money::new(amount, Currency::parse("USD").unwrap())
}

fn line(sku: &str, quantity: u64, unit: u64) -> PricedLine {
    PricedLine {
        sku: Sku::parse(sku).unwrap(),
        quantity: Quantity::parse(quantity).unwrap(),
        unit_price: usd(unit),
    }
}

/// An address as the API hands it over: sealed (the domain never sees it in clear).
fn address() -> crate::personal::Sealed {
    serde_json::from_str(r#"{"v":1,"n":"AAAAAAAAAAAAAAAA","c":"c2VhbGVkIGFkZHJlc3M="}"#).unwrap()
}

fn place_with(lines: Vec<PricedLine>) -> OrderCommand {
    OrderCommand::Place(PlaceOrder {
        order_id: OrderId::parse("0192f0a0-7c1e-7a3b-9c2d-1e2f3a4b5c6d").unwrap(),
        customer_id: CustomerId::parse("c-1").unwrap(),
        lines,
        payment: PaymentToken::parse("tok_visa").unwrap().masked(),
        shipping_address: address(),
        placed_at: Timestamp::parse("2026-11-21T06:30:00Z").unwrap(),
    })
}

fn place() -> OrderCommand {
    place_with(vec![line("SKU-1", 2, 1299), line("SKU-2", 1, 500)])
}

/// The `OrderPlaced` that `place()` decides: total 2×1299 + 500.
fn placed() -> OrderEvent {
    let events = Order::decide(&OrderState::NotPlaced, place()).unwrap();
    events.into_iter().next().unwrap()
}

fn reserved() -> OrderEvent {
    OrderEvent::StockReserved(OrderStockReserved {
        reservation_id: "res-1".into(),
    })
}
fn reservation_failed() -> OrderEvent {
    OrderEvent::StockReservationFailed(OrderStockReservationFailed {
        sku: Some(Sku::parse("SKU-2").unwrap()),
        reason: "insufficient_stock".into(),
    })
}
fn captured() -> OrderEvent {
    OrderEvent::PaymentCaptured(OrderPaymentCaptured {
        payment_id: "pay-1".into(),
        amount: usd(3098),
    })
}
fn declined() -> OrderEvent {
    OrderEvent::PaymentDeclined(OrderPaymentDeclined {
        reason: "card_declined".into(),
    })
}
fn confirmed() -> OrderEvent {
    OrderEvent::Confirmed(OrderConfirmed {})
}
fn shipment() -> OrderEvent {
    OrderEvent::ShipmentRecorded(OrderShipmentRecorded {
        shipment_id: "shp-1".into(),
        tracking_number: "TRK1".into(),
    })
}
fn advanced(step: FulfilmentStep) -> OrderEvent {
    OrderEvent::FulfilmentAdvanced(OrderFulfilmentAdvanced { step })
}
fn cancelled_because(reason: CancellationReason, detail: Option<&str>) -> OrderEvent {
    OrderEvent::Cancelled(OrderCancelled {
        reason,
        detail: detail.map(str::to_owned),
    })
}

fn record_reserved() -> OrderCommand {
    OrderCommand::RecordStockReserved {
        reservation_id: "res-1".into(),
    }
}
fn record_reservation_failed() -> OrderCommand {
    OrderCommand::RecordStockReservationFailed {
        sku: Some(Sku::parse("SKU-2").unwrap()),
        reason: "insufficient_stock".into(),
    }
}
fn record_captured() -> OrderCommand {
    OrderCommand::RecordPaymentCaptured {
        payment_id: "pay-1".into(),
        amount: usd(3098),
    }
}
fn record_declined() -> OrderCommand {
    OrderCommand::RecordPaymentDeclined {
        reason: "card_declined".into(),
    }
}
fn record_shipment() -> OrderCommand {
    OrderCommand::RecordShipment {
        shipment_id: "shp-1".into(),
        tracking_number: "TRK1".into(),
    }
}

/// Histories that reach each status.
fn confirmed_history() -> Vec<OrderEvent> {
    vec![placed(), reserved(), captured(), confirmed()]
}
fn history_at(step: FulfilmentStep) -> Vec<OrderEvent> {
    let mut events = confirmed_history();
    events.push(shipment());
    for s in [
        FulfilmentStep::Preparing,
        FulfilmentStep::Ready,
        FulfilmentStep::OutForDelivery,
        FulfilmentStep::Delivered,
    ] {
        events.push(advanced(s));
        if s == step {
            break;
        }
    }
    events
}
fn cancelled_pending_history() -> Vec<OrderEvent> {
    vec![
        placed(),
        declined(),
        cancelled_because(CancellationReason::PaymentDeclined, Some("card_declined")),
    ]
}

struct Given(OrderState);
struct Then(Result<Vec<OrderEvent>, OrderError>);

fn given(events: impl IntoIterator<Item = OrderEvent>) -> Given {
    let events: Vec<_> = events.into_iter().collect();
    Given(Order::fold(OrderState::default(), &events))
}

impl Given {
    fn when(self, command: OrderCommand) -> Then {
        Then(Order::decide(&self.0, command))
    }
}

impl Then {
    #[track_caller]
    fn then_expect(self, expected: impl IntoIterator<Item = OrderEvent>) {
        assert_eq!(self.0, Ok(expected.into_iter().collect()));
    }

    #[track_caller]
    fn then_nothing(self) {
        self.then_expect([]);
    }

    #[track_caller]
    fn then_error(self, expected: OrderError) {
        assert_eq!(self.0, Err(expected));
    }
}

// ---- placing -------------------------------------------------------------------------

#[test]
fn placing_prices_lines_and_totals_them() {
    let Then(result) = given([]).when(place());
    let events = result.unwrap();
    let [OrderEvent::Placed(p)] = events.as_slice() else {
        panic!("expected one OrderPlaced, got {events:?}")
    };
    assert_eq!(p.lines[0].line_total, usd(2598));
    assert_eq!(p.lines[1].line_total, usd(500));
    assert_eq!(p.total, usd(3098));
    assert_eq!(
        p.payment.as_str(),
        "tok_****",
        "tok_visa is too short to show any of"
    );
    assert!(p.shipping_address.is_some());
}

#[test]
fn placing_twice_is_rejected() {
    given([placed()])
        .when(place())
        .then_error(OrderError::AlreadyPlaced);
}

#[test]
fn placing_without_lines_is_rejected() {
    given([]).when(place_with(vec![])).then_error(OrderError::NoLines);
}

#[test]
fn placing_more_than_99_lines_is_rejected() {
    let lines = (0..100).map(|i| line(&format!("SKU-{i}"), 1, 1)).collect();
    given([])
        .when(place_with(lines))
        .then_error(OrderError::TooManyLines(100));
    let lines = (0..99).map(|i| line(&format!("SKU-{i}"), 1, 1)).collect();
    assert!(Order::decide(&OrderState::NotPlaced, place_with(lines)).is_ok());
}

#[test]
fn placing_the_same_sku_twice_is_rejected() {
    given([])
        .when(place_with(vec![line("SKU-1", 1, 1), line("SKU-1", 2, 1)]))
        .then_error(OrderError::DuplicateSku(Sku::parse("SKU-1").unwrap()));
}

#[test]
fn placing_across_currencies_is_rejected() {
    let mut eur = line("SKU-2", 1, 100);
    eur.unit_price = Money::new(100, Currency::parse("EUR").unwrap());
    let Then(result) = given([]).when(place_with(vec![line("SKU-1", 1, 1), eur]));
    assert!(matches!(
        result,
        Err(OrderError::Money(MoneyError::CurrencyMismatch { .. }))
    ));
}

#[test]
fn placing_an_overflowing_total_is_rejected() {
    given([])
        .when(place_with(vec![line("SKU-1", 1000, u64::MAX / 500)]))
        .then_error(OrderError::Money(MoneyError::Overflow));
    given([])
        .when(place_with(vec![line("SKU-1", 1, u64::MAX), line("SKU-2", 1, 1)]))
        .then_error(OrderError::Money(MoneyError::Overflow));
}

#[test]
fn every_command_but_place_needs_a_placed_order() {
    for command in [
        record_reserved(),
        record_reservation_failed(),
        record_captured(),
        record_declined(),
        record_shipment(),
        OrderCommand::Advance(FulfilmentStep::Preparing),
        OrderCommand::Cancel { detail: None },
        OrderCommand::ExpirePending,
    ] {
        given([]).when(command).then_error(OrderError::NotPlaced);
    }
}

// ---- joining the saga ---------------------------------------------------------------

#[test]
fn stock_first_waits_for_payment() {
    given([placed()])
        .when(record_reserved())
        .then_expect([reserved()]);
}

#[test]
fn payment_first_waits_for_stock() {
    given([placed()])
        .when(record_captured())
        .then_expect([captured()]);
}

#[test]
fn stock_after_payment_confirms() {
    given([placed(), captured()])
        .when(record_reserved())
        .then_expect([reserved(), confirmed()]);
}

#[test]
fn payment_after_stock_confirms() {
    given([placed(), reserved()])
        .when(record_captured())
        .then_expect([captured(), confirmed()]);
}

#[test]
fn a_capture_of_the_wrong_amount_is_rejected() {
    given([placed()])
        .when(OrderCommand::RecordPaymentCaptured {
            payment_id: "pay-1".into(),
            amount: usd(1),
        })
        .then_error(OrderError::AmountMismatch {
            captured: usd(1),
            total: usd(3098),
        });
}

#[test]
fn reservation_failure_cancels_out_of_stock() {
    given([placed()]).when(record_reservation_failed()).then_expect([
        reservation_failed(),
        cancelled_because(CancellationReason::OutOfStock, Some("insufficient_stock: SKU-2")),
    ]);
}

#[test]
fn reservation_failure_after_capture_cancels_too() {
    given([placed(), captured()])
        .when(record_reservation_failed())
        .then_expect([
            reservation_failed(),
            cancelled_because(CancellationReason::OutOfStock, Some("insufficient_stock: SKU-2")),
        ]);
}

#[test]
fn decline_cancels_payment_declined() {
    given([placed(), reserved()])
        .when(record_declined())
        .then_expect([
            declined(),
            cancelled_because(CancellationReason::PaymentDeclined, Some("card_declined")),
        ]);
}

#[test]
fn duplicate_answers_decide_nothing() {
    given([placed(), reserved()])
        .when(record_reserved())
        .then_nothing();
    given([placed(), captured()])
        .when(record_captured())
        .then_nothing();
    given(confirmed_history()).when(record_reserved()).then_nothing();
    given(confirmed_history()).when(record_captured()).then_nothing();
    given(cancelled_pending_history())
        .when(record_declined())
        .then_nothing();
    given([placed(), reservation_failed()])
        .when(record_reservation_failed())
        .then_nothing();
}

#[test]
fn a_contradicting_second_answer_decides_nothing() {
    given([placed(), reserved()])
        .when(record_reservation_failed())
        .then_nothing();
    given([placed(), captured()])
        .when(record_declined())
        .then_nothing();
}

#[test]
fn late_success_on_a_cancelled_order_is_recorded_without_confirming() {
    given(cancelled_pending_history())
        .when(record_reserved())
        .then_expect([reserved()]);
    let out_of_stock = vec![
        placed(),
        reservation_failed(),
        cancelled_because(CancellationReason::OutOfStock, None),
    ];
    given(out_of_stock)
        .when(record_captured())
        .then_expect([captured()]);
}

#[test]
fn late_failure_on_a_cancelled_order_does_not_cancel_again() {
    let customer_cancelled = vec![placed(), cancelled_because(CancellationReason::Requested, None)];
    given(customer_cancelled.clone())
        .when(record_declined())
        .then_expect([declined()]);
    given(customer_cancelled)
        .when(record_reservation_failed())
        .then_expect([reservation_failed()]);
}

// ---- shipment -------------------------------------------------------------------------

#[test]
fn shipment_is_recorded_once_on_a_confirmed_order() {
    given(confirmed_history())
        .when(record_shipment())
        .then_expect([shipment()]);
    let mut shipped = confirmed_history();
    shipped.push(shipment());
    given(shipped).when(record_shipment()).then_nothing();
}

#[test]
fn shipment_on_a_pending_order_is_rejected() {
    given([placed(), reserved()])
        .when(record_shipment())
        .then_error(OrderError::InvalidTransition {
            state: OrderStatus::Pending,
            action: Action::RecordShipment,
        });
}

#[test]
fn shipment_on_an_order_cancelled_before_confirmation_is_rejected() {
    given(cancelled_pending_history())
        .when(record_shipment())
        .then_error(OrderError::InvalidTransition {
            state: OrderStatus::Cancelled,
            action: Action::RecordShipment,
        });
}

#[test]
fn shipment_on_an_order_cancelled_after_confirmation_is_recorded() {
    let mut history = confirmed_history();
    history.push(cancelled_because(CancellationReason::Requested, None));
    given(history).when(record_shipment()).then_expect([shipment()]);
}

// ---- fulfilment ---------------------------------------------------------------------

#[test]
fn fulfilment_moves_one_step_at_a_time() {
    given(history_at(FulfilmentStep::Preparing).into_iter().take(5))
        .when(OrderCommand::Advance(FulfilmentStep::Preparing))
        .then_expect([advanced(FulfilmentStep::Preparing)]);
    given(history_at(FulfilmentStep::Preparing))
        .when(OrderCommand::Advance(FulfilmentStep::Ready))
        .then_expect([advanced(FulfilmentStep::Ready)]);
    given(history_at(FulfilmentStep::Ready))
        .when(OrderCommand::Advance(FulfilmentStep::OutForDelivery))
        .then_expect([advanced(FulfilmentStep::OutForDelivery)]);
    given(history_at(FulfilmentStep::OutForDelivery))
        .when(OrderCommand::Advance(FulfilmentStep::Delivered))
        .then_expect([advanced(FulfilmentStep::Delivered)]);
}

#[test]
fn fulfilment_may_not_skip_or_repeat_steps() {
    let invalid = |history: Vec<OrderEvent>, state, step| {
        given(history)
            .when(OrderCommand::Advance(step))
            .then_error(OrderError::InvalidTransition {
                state,
                action: Action::Advance(step),
            });
    };
    invalid(vec![placed()], OrderStatus::Pending, FulfilmentStep::Preparing);
    invalid(confirmed_history(), OrderStatus::Confirmed, FulfilmentStep::Ready);
    invalid(
        confirmed_history(),
        OrderStatus::Confirmed,
        FulfilmentStep::Delivered,
    );
    invalid(
        history_at(FulfilmentStep::Preparing),
        OrderStatus::Preparing,
        FulfilmentStep::Preparing,
    );
    invalid(
        history_at(FulfilmentStep::Ready),
        OrderStatus::Ready,
        FulfilmentStep::Delivered,
    );
    invalid(
        history_at(FulfilmentStep::Delivered),
        OrderStatus::Delivered,
        FulfilmentStep::Preparing,
    );
    invalid(
        cancelled_pending_history(),
        OrderStatus::Cancelled,
        FulfilmentStep::Preparing,
    );
}

#[test]
fn out_for_delivery_needs_a_shipment() {
    let mut history = confirmed_history();
    history.push(advanced(FulfilmentStep::Preparing));
    history.push(advanced(FulfilmentStep::Ready));
    given(history)
        .when(OrderCommand::Advance(FulfilmentStep::OutForDelivery))
        .then_error(OrderError::ShipmentMissing);
}

// ---- cancelling ---------------------------------------------------------------------

#[test]
fn cancel_is_allowed_while_pending_confirmed_or_preparing() {
    let cancel = || OrderCommand::Cancel {
        detail: Some("changed my mind".into()),
    };
    let expected = || {
        [cancelled_because(
            CancellationReason::Requested,
            Some("changed my mind"),
        )]
    };
    given([placed()]).when(cancel()).then_expect(expected());
    given(confirmed_history()).when(cancel()).then_expect(expected());
    given(history_at(FulfilmentStep::Preparing))
        .when(cancel())
        .then_expect(expected());
}

#[test]
fn cancel_is_rejected_from_ready_on() {
    for (history, state) in [
        (history_at(FulfilmentStep::Ready), OrderStatus::Ready),
        (
            history_at(FulfilmentStep::OutForDelivery),
            OrderStatus::OutForDelivery,
        ),
        (history_at(FulfilmentStep::Delivered), OrderStatus::Delivered),
        (cancelled_pending_history(), OrderStatus::Cancelled),
    ] {
        given(history)
            .when(OrderCommand::Cancel { detail: None })
            .then_error(OrderError::InvalidTransition {
                state,
                action: Action::Cancel,
            });
    }
}

#[test]
fn timeout_cancels_only_pending_orders() {
    given([placed(), reserved()])
        .when(OrderCommand::ExpirePending)
        .then_expect([cancelled_because(CancellationReason::Timeout, None)]);
    given(confirmed_history())
        .when(OrderCommand::ExpirePending)
        .then_nothing();
    given(cancelled_pending_history())
        .when(OrderCommand::ExpirePending)
        .then_nothing();
}

// ---- compensation outcomes ------------------------------------------------------------

pub(crate) fn at(second: i64) -> Timestamp {
    Timestamp::from_micros(1_800_000_000_000_000 + second * 1_000_000).unwrap()
}
fn record_refunded(amount: u64) -> OrderCommand {
    OrderCommand::RecordPaymentRefunded {
        payment_id: "pay-1".into(),
        amount: usd(amount),
        at: at(1),
    }
}
fn refunded() -> OrderEvent {
    OrderEvent::PaymentRefunded(OrderPaymentRefunded {
        payment_id: "pay-1".into(),
        amount: usd(3098),
        refunded_at: at(1),
    })
}
fn record_released() -> OrderCommand {
    OrderCommand::RecordStockReleased {
        reservation_id: "res-1".into(),
        at: at(2),
    }
}
fn released() -> OrderEvent {
    OrderEvent::StockReleased(OrderStockReleased { released_at: at(2) })
}
fn record_shipment_cancelled() -> OrderCommand {
    OrderCommand::RecordShipmentCancelled {
        shipment_id: "shp-1".into(),
        at: at(3),
    }
}
fn shipment_cancelled() -> OrderEvent {
    OrderEvent::ShipmentCancelled(OrderShipmentCancelled {
        shipment_id: "shp-1".into(),
        cancelled_at: at(3),
    })
}
fn cancelled_after_shipment() -> Vec<OrderEvent> {
    let mut history = confirmed_history();
    history.push(shipment());
    history.push(cancelled_because(CancellationReason::Requested, None));
    history
}

#[test]
fn a_cancelled_order_records_each_compensation_once_with_its_time() {
    let mut history = cancelled_after_shipment();
    for (command, event) in [
        (record_refunded(3098), refunded()),
        (record_released(), released()),
        (record_shipment_cancelled(), shipment_cancelled()),
    ] {
        given(history.clone())
            .when(command.clone())
            .then_expect([event.clone()]);
        history.push(event);
        given(history.clone()).when(command).then_nothing();
    }
    let state = Order::fold(OrderState::default(), &history);
    assert_eq!(
        state.placed().unwrap().compensation,
        Compensation {
            refunded_at: Some(at(1)),
            stock_released_at: Some(at(2)),
            shipment_cancelled_at: Some(at(3)),
        }
    );
}

#[test]
fn a_refund_or_release_that_overtook_its_answer_records_the_answer_it_implies() {
    let timed_out = || vec![placed(), cancelled_because(CancellationReason::Timeout, None)];
    given(timed_out())
        .when(record_refunded(3098))
        .then_expect([captured(), refunded()]);
    given(timed_out())
        .when(record_released())
        .then_expect([reserved(), released()]);
    // ... and the answer arriving after it is a repeat.
    let mut history = timed_out();
    history.extend([captured(), refunded(), reserved(), released()]);
    given(history.clone()).when(record_captured()).then_nothing();
    given(history).when(record_reserved()).then_nothing();
}

#[test]
fn a_shipment_cancellation_that_overtook_the_creation_waits_for_it() {
    let mut history = confirmed_history();
    history.push(cancelled_because(CancellationReason::Requested, None));
    given(history)
        .when(record_shipment_cancelled())
        .then_error(OrderError::ShipmentMissing);
}

#[test]
fn compensation_is_rejected_on_an_order_that_is_not_cancelled() {
    for (command, what) in [
        (record_refunded(3098), "refund"),
        (record_released(), "stock release"),
        (record_shipment_cancelled(), "shipment cancellation"),
    ] {
        let mut history = confirmed_history();
        history.push(shipment());
        given(history)
            .when(command)
            .then_error(OrderError::InvalidTransition {
                state: OrderStatus::Confirmed,
                action: Action::Compensate(what),
            });
    }
}

#[test]
fn compensation_contradicting_the_answer_or_the_total_is_rejected() {
    given(cancelled_pending_history())
        .when(record_refunded(3098))
        .then_error(OrderError::InvalidTransition {
            state: OrderStatus::Cancelled,
            action: Action::Compensate("refund"),
        });
    given([
        placed(),
        reservation_failed(),
        cancelled_because(CancellationReason::OutOfStock, Some("insufficient_stock: SKU-2")),
    ])
    .when(record_released())
    .then_error(OrderError::InvalidTransition {
        state: OrderStatus::Cancelled,
        action: Action::Compensate("stock release"),
    });
    given(cancelled_after_shipment())
        .when(record_refunded(3097))
        .then_error(OrderError::AmountMismatch {
            captured: usd(3097),
            total: usd(3098),
        });
}

// ---- evolve -------------------------------------------------------------------------

#[test]
fn the_fold_knows_everything_that_happened() {
    let state = Order::fold(OrderState::default(), &history_at(FulfilmentStep::Delivered));
    let order = state.placed().unwrap();
    assert_eq!(order.status, OrderStatus::Delivered);
    assert_eq!(order.total, usd(3098));
    assert_eq!(
        order.stock,
        StockAnswer::Reserved {
            reservation_id: "res-1".into()
        }
    );
    assert!(matches!(order.payment, PaymentAnswer::Captured { .. }));
    assert_eq!(
        order.shipment.as_ref().map(|s| s.tracking_number.as_str()),
        Some("TRK1")
    );

    let state = Order::fold(OrderState::default(), &cancelled_pending_history());
    let order = state.placed().unwrap();
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert_eq!(
        order.cancellation.as_ref().map(|c| c.reason),
        Some(CancellationReason::PaymentDeclined)
    );
}

#[test]
fn evolve_ignores_events_before_placement() {
    let state = Order::fold(OrderState::default(), &[reserved(), confirmed()]);
    assert_eq!(state, OrderState::NotPlaced);
}

#[test]
fn state_round_trips_through_json_for_snapshots() {
    let state = Order::fold(OrderState::default(), &history_at(FulfilmentStep::Ready));
    let json = serde_json::to_string(&state).unwrap();
    assert_eq!(serde_json::from_str::<OrderState>(&json).unwrap(), state);
}

#[test]
fn payment_token_never_shows_itself() {
    let token = PaymentToken::parse("tok_42424242secret").unwrap();
    assert_eq!(format!("{token:?}"), "PaymentToken(****)");
    assert_eq!(
        token.masked().as_str(),
        "tok_****cret",
        "ten of fourteen stay hidden"
    );
    let twelve = PaymentToken::parse("tok_4242424242ab").unwrap().masked();
    assert_eq!(twelve.as_str(), "tok_****42ab", "eight of twelve stay hidden");
    // Short tokens show nothing of themselves, not their last four.
    for short in ["tok_visa", "tok_a", "tok_4242secret", "tok_12345678901"] {
        let masked = PaymentToken::parse(short).unwrap().masked();
        assert_eq!(masked.as_str(), "tok_****", "{short}");
    }
    assert!(PaymentToken::parse("4242424242424242").is_err());
    assert!(PaymentToken::parse("tok_").is_err());
    assert!(PaymentToken::parse("tok_a b").is_err());
}

#[test]
fn address_is_validated_on_parse() {
    let bad = [
        r#"{"name":"","line1":"x","city":"y","postalCode":"1","country":"US"}"#,
        r#"{"name":"a","line1":"x","city":"y","postalCode":"1","country":"usa"}"#,
        r#"{"name":"a","line1":"x","city":"y","country":"US"}"#,
    ];
    for json in bad {
        assert!(serde_json::from_str::<ShippingAddress>(json).is_err(), "{json}");
    }
}

/// The first `events` envelopes (1..=9) of an order that goes all the way to delivery,
/// one second apart.
pub(crate) fn sample_history(events: usize) -> Vec<crate::Envelope<OrderEvent>> {
    enveloped(history_at(FulfilmentStep::Delivered).into_iter().take(events))
}

/// An order confirmed, shipped, cancelled by its customer and compensated: refunded
/// (at `at(1)`), released (`at(2)`), its shipment cancelled (`at(3)`).
pub(crate) fn compensated_history() -> Vec<crate::Envelope<OrderEvent>> {
    let mut history = cancelled_after_shipment();
    history.extend([refunded(), released(), shipment_cancelled()]);
    enveloped(history)
}

fn enveloped(events: impl IntoIterator<Item = OrderEvent>) -> Vec<crate::Envelope<OrderEvent>> {
    events
        .into_iter()
        .zip(1u64..)
        .map(|(data, version)| crate::Envelope {
            event_id: uuid::Uuid::from_u128(u128::from(version)),
            aggregate_type: "order".into(),
            aggregate_id: "0192f0a0-7c1e-7a3b-9c2d-1e2f3a4b5c6d".into(),
            version,
            occurred_at: Timestamp::from_micros(
                1_700_000_000_000_000 + i64::try_from(version).unwrap() * 1_000_000,
            )
            .unwrap(),
            metadata: crate::Metadata {
                correlation_id: "c".into(),
                causation_id: "c".into(),
                actor: "test".into(),
            },
            replay: None,
            data,
        })
        .collect()
}
