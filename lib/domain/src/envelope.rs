//! The event envelope every event travels in (store, bus, replay), and the decoding
//! path that upcasts old schema versions to the current one on read.
//!
//! Decoding is two-step for speed: the envelope is parsed with `data` left as raw JSON,
//! then the event type picks the one struct to parse it into. Only events written at an
//! older schema version take the slower path through a `serde_json::Value` and the
//! upcaster chain.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::time::Timestamp;

/// An event of some aggregate: knows its wire name and schema version, and how to
/// decode (and upcast) itself from stored JSON.
pub trait DomainEvent: Sized + Serialize {
    /// The past-tense name, e.g. `OrderPlaced`: EventBridge `detail-type`.
    fn event_type(&self) -> &'static str;

    /// The schema version this build writes for this event's type.
    fn schema_version(&self) -> u32;

    /// Decodes `data` that was written as `event_type` at `schema_version`, upcasting an
    /// older version to the current one.
    ///
    /// # Errors
    /// [`DecodeError`] for an unknown type, a version from the future, a missing
    /// upcaster or data that does not match the schema.
    fn decode(event_type: &str, schema_version: u32, data: &RawValue) -> Result<Self, DecodeError>;
}

/// Who and what caused an event: the audit trail's "who" and the trace through services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// Follows one order through every service.
    pub correlation_id: String,
    /// The event or request that caused this event.
    pub causation_id: String,
    /// The principal that issued the command (a user, an operator or a service).
    pub actor: String,
}

impl Metadata {
    /// The metadata of an event caused by `cause`: same correlation, caused by it,
    /// recorded by `actor` (a service, `service:<name>`).
    #[must_use]
    pub fn caused_by(cause: &RawEnvelope<'_>, actor: &str) -> Self {
        Self {
            correlation_id: cause.correlation_id.clone().into_owned(),
            causation_id: cause.event_id.to_string(),
            actor: actor.to_owned(),
        }
    }
}

/// The mark a replayed event carries, so consumers can tell it from live traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReplayMark {
    /// The replay's record id.
    pub id: String,
    /// Why it was replayed.
    pub reason: String,
}

/// One event with its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<E> {
    /// UUID v7: unique and time-ordered.
    pub event_id: Uuid,
    /// `order`, `inventory`, …: EventBridge `source` is `orderflow.<aggregate_type>`.
    pub aggregate_type: String,
    /// The aggregate instance.
    pub aggregate_id: String,
    /// Position in the aggregate's stream, from 1.
    pub version: u64,
    /// When the event was recorded.
    pub occurred_at: Timestamp,
    /// Correlation, causation and actor.
    pub metadata: Metadata,
    /// Present only on replayed copies.
    pub replay: Option<ReplayMark>,
    /// The event itself.
    pub data: E,
}

/// Why stored JSON could not become an event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The envelope itself is malformed.
    #[error("malformed event envelope")]
    Envelope(#[source] serde_json::Error),
    /// No event of this type exists for the aggregate.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// Written by a newer build than this one.
    #[error("{event_type} schema version {version} is newer than this build's {current}")]
    FromTheFuture {
        /// The event type.
        event_type: String,
        /// The stored version.
        version: u32,
        /// The newest version this build knows.
        current: u32,
    },
    /// A version gap in the upcaster chain.
    #[error("no upcaster for {event_type} from schema version {from}")]
    NoUpcaster {
        /// The event type.
        event_type: String,
        /// The version with no way forward.
        from: u32,
    },
    /// An upcaster refused the old data.
    #[error("cannot upcast {event_type} from schema version {from}: {reason}")]
    Upcast {
        /// The event type.
        event_type: String,
        /// The version being upcast.
        from: u32,
        /// What was wrong.
        reason: String,
    },
    /// The data does not match the event's schema.
    #[error("{event_type} data does not match its schema")]
    Data {
        /// The event type.
        event_type: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
}

/// Converts one event type's data from one schema version to the next.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    /// The event type it applies to.
    pub event_type: &'static str,
    /// The version it reads; it writes `from_version + 1`.
    pub from_version: u32,
    /// The conversion.
    pub upcast: fn(serde_json::Value) -> Result<serde_json::Value, String>,
}

/// Decodes one event type's `data`, running the upcaster chain when it is old.
///
/// # Errors
/// See [`DecodeError`].
pub fn decode_data<T: DeserializeOwned>(
    event_type: &'static str,
    version: u32,
    current: u32,
    data: &RawValue,
    upcasters: &[Upcaster],
) -> Result<T, DecodeError> {
    let data_error = |source| DecodeError::Data {
        event_type: event_type.to_owned(),
        source,
    };
    if version == current {
        return serde_json::from_str(data.get()).map_err(data_error);
    }
    if version > current {
        return Err(DecodeError::FromTheFuture {
            event_type: event_type.to_owned(),
            version,
            current,
        });
    }
    let mut value: serde_json::Value = serde_json::from_str(data.get()).map_err(data_error)?;
    for from in version..current {
        let step = upcasters
            .iter()
            .find(|u| u.event_type == event_type && u.from_version == from)
            .ok_or_else(|| DecodeError::NoUpcaster {
                event_type: event_type.to_owned(),
                from,
            })?;
        value = (step.upcast)(value).map_err(|reason| DecodeError::Upcast {
            event_type: event_type.to_owned(),
            from,
            reason,
        })?;
    }
    serde_json::from_value(value).map_err(data_error)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeOut<'a, E> {
    event_id: &'a Uuid,
    event_type: &'a str,
    schema_version: u32,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    version: u64,
    occurred_at: &'a Timestamp,
    correlation_id: &'a str,
    causation_id: &'a str,
    actor: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    replay: Option<&'a ReplayMark>,
    data: &'a E,
}

/// The envelope with `data` still raw: what every reader parses first.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawEnvelope<'a> {
    /// See [`Envelope::event_id`].
    pub event_id: Uuid,
    /// The event's wire name.
    #[serde(borrow)]
    pub event_type: Cow<'a, str>,
    /// The schema version `data` was written at.
    pub schema_version: u32,
    /// See [`Envelope::aggregate_type`].
    #[serde(borrow)]
    pub aggregate_type: Cow<'a, str>,
    /// See [`Envelope::aggregate_id`].
    #[serde(borrow)]
    pub aggregate_id: Cow<'a, str>,
    /// See [`Envelope::version`].
    pub version: u64,
    /// See [`Envelope::occurred_at`].
    pub occurred_at: Timestamp,
    /// See [`Metadata::correlation_id`].
    #[serde(borrow)]
    pub correlation_id: Cow<'a, str>,
    /// See [`Metadata::causation_id`].
    #[serde(borrow)]
    pub causation_id: Cow<'a, str>,
    /// See [`Metadata::actor`].
    #[serde(borrow)]
    pub actor: Cow<'a, str>,
    /// See [`Envelope::replay`].
    #[serde(default)]
    pub replay: Option<ReplayMark>,
    /// The event data, undecoded.
    #[serde(borrow)]
    pub data: &'a RawValue,
}

impl<'a> RawEnvelope<'a> {
    /// Parses the envelope, leaving `data` raw.
    ///
    /// # Errors
    /// [`DecodeError::Envelope`] when the JSON is not an envelope.
    pub fn parse(json: &'a str) -> Result<Self, DecodeError> {
        serde_json::from_str(json).map_err(DecodeError::Envelope)
    }

    /// Decodes `data` into the aggregate's event type, upcasting on the way.
    ///
    /// # Errors
    /// See [`DecodeError`].
    pub fn decode<E: DomainEvent>(self) -> Result<Envelope<E>, DecodeError> {
        let data = self.decode_data()?;
        Ok(Envelope {
            event_id: self.event_id,
            aggregate_type: self.aggregate_type.into_owned(),
            aggregate_id: self.aggregate_id.into_owned(),
            version: self.version,
            occurred_at: self.occurred_at,
            metadata: Metadata {
                correlation_id: self.correlation_id.into_owned(),
                causation_id: self.causation_id.into_owned(),
                actor: self.actor.into_owned(),
            },
            replay: self.replay,
            data,
        })
    }

    /// Decodes only `data`, upcasting on the way: what a fold needs, with the rest of
    /// the envelope checked by [`RawEnvelope::parse`] but not copied.
    ///
    /// # Errors
    /// See [`DecodeError`].
    pub fn decode_data<E: DomainEvent>(&self) -> Result<E, DecodeError> {
        E::decode(&self.event_type, self.schema_version, self.data)
    }
}

impl<E: DomainEvent> Envelope<E> {
    /// The event's wire name.
    #[must_use]
    pub fn event_type(&self) -> &'static str {
        self.data.event_type()
    }

    /// Parses and decodes stored JSON in one go.
    ///
    /// # Errors
    /// See [`DecodeError`].
    pub fn decode(json: &str) -> Result<Self, DecodeError> {
        RawEnvelope::parse(json)?.decode()
    }

    /// The envelope as JSON, always at the current schema version.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Serialising plain structs of strings and numbers into a String cannot fail;
        // the fallback keeps this function total without a panic path.
        serde_json::to_string(&self.wire()).unwrap_or_default()
    }

    fn wire(&self) -> EnvelopeOut<'_, E> {
        EnvelopeOut {
            event_id: &self.event_id,
            event_type: self.data.event_type(),
            schema_version: self.data.schema_version(),
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
            version: self.version,
            occurred_at: &self.occurred_at,
            correlation_id: &self.metadata.correlation_id,
            causation_id: &self.metadata.causation_id,
            actor: &self.metadata.actor,
            replay: self.replay.as_ref(),
            data: &self.data,
        }
    }
}

impl<E: DomainEvent> Serialize for Envelope<E> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.wire().serialize(serializer)
    }
}
