//! The order domain of orderflow, pure: no I/O, no AWS, no async runtime.
//!
//! - [`ids`], [`money`], [`time`]: the values, parsed once at the edge.
//! - [`order`]: the Order aggregate as a decider (`decide` / `evolve`); it joins the saga.
//! - [`inventory`], [`payment`], [`shipment`]: the other participants' per-order
//!   deciders, each with a tombstone for a cancellation that arrives first.
//! - [`product`]: a catalog product's listing, price and stock receipts and write-offs.
//! - [`customer`], [`personal`]: what is personal, how it is sealed, and its erasures.
//! - [`envelope`]: the envelope every event travels in, and upcasting on read.
//! - [`schema`]: the JSON Schemas of every event type and of the envelope.
//!
//! Cargo keeps this crate pure: its dependency tree has no `aws-*`, `lambda_*` or
//! `tokio` crate, and a test in `tests/` fails if one ever appears.

pub mod audit;
pub mod customer;
pub mod envelope;
pub mod ids;
pub mod inventory;
pub mod money;
pub mod order;
pub mod payment;
pub mod personal;
pub mod product;
pub mod schema;
pub mod shipment;
mod text;
pub mod time;
pub mod whole;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use envelope::{DecodeError, DomainEvent, Envelope, Metadata, RawEnvelope, ReplayMark};
pub use ids::{CustomerId, IdempotencyKey, OrderId, ParseError, Quantity, Sku};
pub use money::{Currency, Money, MoneyError};
pub use text::{PLAIN_TEXT, PLAIN_TEXT_OR_BLANK, is_plain_text};
pub use time::{Timestamp, TimestampError};

/// An event-sourced aggregate as a decider: state is the fold of its events.
pub trait Aggregate {
    /// The stream prefix and EventBridge source suffix (`order` → `orderflow.order`).
    const TYPE: &'static str;
    /// The version of the state's serialised form; snapshots of another version are
    /// ignored, so changing the state's shape only needs this number bumped.
    const STATE_SCHEMA: u32;
    /// The fold of the events.
    type State: Default + Clone + Serialize + DeserializeOwned + std::fmt::Debug + Send + Sync;
    /// What callers ask for.
    type Command: Clone + std::fmt::Debug + Send + Sync;
    /// What happened.
    type Event: DomainEvent + Clone + std::fmt::Debug + Send + Sync;
    /// Why a command was refused, in domain words.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The events `command` causes in `state`.
    ///
    /// # Errors
    /// The domain's refusal.
    fn decide(state: &Self::State, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// `state` after `event`.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// Folds events over a state.
    fn fold<'a>(state: Self::State, events: impl IntoIterator<Item = &'a Self::Event>) -> Self::State
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(state, Self::evolve)
    }
}
