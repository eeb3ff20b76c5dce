//! A customer as the event store knows them (stream `customer#<customerId>`): only the
//! erasures of their personal data, the audit trail of crypto-shredding.
//!
//! The customer's orders keep their totals, statuses and histories; what an erasure
//! removes is the customer's data key, so every personal field sealed with it is
//! noise from then on. `PersonalDataErased` records who asked (the envelope's actor),
//! when, why and which orders it covered, and holds no personal data itself.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::Aggregate;
use crate::envelope::{DecodeError, DomainEvent, decode_data};
use crate::ids::{CustomerId, OrderId};
use crate::time::Timestamp;

/// The most characters an erasure's reason may have.
pub const MAX_REASON: usize = 500;

/// A customer's personal data was erased: their data key is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonalDataErased {
    /// The erasure (the id the request was answered with).
    pub erasure_id: String,
    /// Whose.
    pub customer_id: CustomerId,
    /// Why, as the requester gave it (never personal data: the API says so).
    pub reason: String,
    /// The orders whose personal fields it erased.
    pub orders: Vec<OrderId>,
    /// Whether a key was there to delete (false: nothing was held, or an earlier
    /// erasure had deleted it).
    pub key_deleted: bool,
    /// When.
    pub erased_at: Timestamp,
}

/// Every customer event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CustomerEvent {
    /// See [`PersonalDataErased`].
    PersonalDataErased(PersonalDataErased),
}

/// Wire names.
pub mod names {
    /// `PersonalDataErased`
    pub const PERSONAL_DATA_ERASED: &str = "PersonalDataErased";
}

impl DomainEvent for CustomerEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::PersonalDataErased(_) => names::PERSONAL_DATA_ERASED,
        }
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn decode(event_type: &str, version: u32, data: &RawValue) -> Result<Self, DecodeError> {
        match event_type {
            names::PERSONAL_DATA_ERASED => Ok(Self::PersonalDataErased(decode_data(
                names::PERSONAL_DATA_ERASED,
                version,
                1,
                data,
                &[],
            )?)),
            other => Err(DecodeError::UnknownType(other.to_owned())),
        }
    }
}

/// What the event store knows of a customer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerState {
    /// Erasures recorded.
    pub erasures: u32,
    /// When the last one happened.
    pub last_erased_at: Option<Timestamp>,
}

/// What a customer can be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerCommand {
    /// Record an erasure that deleted (or found no) key.
    RecordErasure(PersonalDataErased),
}

/// Why a customer command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomerError {
    /// The reason is empty, too long or not plain text.
    #[error("reason: must be 1 to {MAX_REASON} printable characters")]
    Reason,
}

/// The customer aggregate.
#[derive(Debug, Clone, Copy)]
pub struct Customer;

impl Aggregate for Customer {
    const TYPE: &'static str = "customer";
    const STATE_SCHEMA: u32 = 1;
    type State = CustomerState;
    type Command = CustomerCommand;
    type Event = CustomerEvent;
    type Error = CustomerError;

    fn decide(_state: &CustomerState, command: CustomerCommand) -> Result<Vec<CustomerEvent>, CustomerError> {
        let CustomerCommand::RecordErasure(erased) = command;
        if !valid_reason(&erased.reason) {
            return Err(CustomerError::Reason);
        }
        Ok(vec![CustomerEvent::PersonalDataErased(erased)])
    }

    fn evolve(state: CustomerState, event: &CustomerEvent) -> CustomerState {
        let CustomerEvent::PersonalDataErased(erased) = event;
        CustomerState {
            erasures: state.erasures.saturating_add(1),
            last_erased_at: Some(erased.erased_at),
        }
    }
}

/// Whether `reason` may be recorded: 1 to [`MAX_REASON`] printable characters.
#[must_use]
pub fn valid_reason(reason: &str) -> bool {
    !reason.trim().is_empty() && reason.chars().count() <= MAX_REASON && crate::is_plain_text(reason)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    fn erased(reason: &str) -> PersonalDataErased {
        PersonalDataErased {
            erasure_id: "e-1".into(),
            customer_id: CustomerId::parse("c-1").unwrap(),
            reason: reason.into(),
            orders: vec![],
            key_deleted: true,
            erased_at: Timestamp::parse("2026-12-07T10:00:00Z").unwrap(),
        }
    }

    #[test]
    fn every_erasure_is_recorded_with_a_plain_reason() {
        let events = Customer::decide(
            &CustomerState::default(),
            CustomerCommand::RecordErasure(erased("customer request")),
        )
        .unwrap();
        let state = Customer::fold(CustomerState::default(), &events);
        assert_eq!(state.erasures, 1);
        // Asked again, recorded again: each request is its own audit entry.
        let again = Customer::decide(&state, CustomerCommand::RecordErasure(erased("again"))).unwrap();
        assert_eq!(Customer::fold(state, &again).erasures, 2);
        for bad in ["", "   ", &"x".repeat(MAX_REASON + 1), "a\u{202e}b"] {
            assert_eq!(
                Customer::decide(
                    &CustomerState::default(),
                    CustomerCommand::RecordErasure(erased(bad))
                ),
                Err(CustomerError::Reason),
                "{bad:?}"
            );
        }
    }
}
