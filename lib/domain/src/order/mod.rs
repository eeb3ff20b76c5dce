//! The Order aggregate as a pure decider.
//!
//! `decide(&state, command)` returns the events a command causes or a domain error;
//! `evolve(state, &event)` applies one event. The saga is joined here: the answers of
//! inventory and payment are recorded on the order, and the order confirms itself when
//! both are in or cancels itself on the first failure. Answers that arrive twice, or
//! after the question no longer matters, decide nothing: transports deliver at least
//! once and in any order.
//!
//! - `values`: lines, prices, the payment reference, the address, statuses, reasons;
//! - `commands`: what the aggregate can be asked;
//! - `state`: what the fold of its events knows;
//! - `errors`: what it refuses, in the domain's words;
//! - `decider`: `decide` and `evolve`;
//! - [`events`], [`view`]: what it records, and how clients see it.

pub mod events;
pub mod view;

mod commands;
mod decider;
mod errors;
mod state;
mod values;

pub use commands::{OrderCommand, PlaceOrder};
pub use decider::Order;
pub use errors::{Action, OrderError};
pub use events::OrderEvent;
pub use state::{Cancellation, Compensation, OrderState, PaymentAnswer, PlacedOrder, Shipment, StockAnswer};
pub use values::{
    AddressError, CancellationReason, ErasedAddress, FulfilmentStep, MAX_LINES, OrderLine, OrderStatus,
    PaymentRef, PaymentToken, PersonalAddress, PricedLine, ShippingAddress,
};

#[cfg(test)]
pub(crate) mod given_when_then;
#[cfg(test)]
mod model;
