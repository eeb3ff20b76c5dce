//! The wire contract of the events: every event type at the schema version this build
//! writes ([`EVENTS`]), the envelope they travel in ([`WireEnvelope`]), and the
//! upcasters that bring older versions forward ([`upcasters`]).
//!
//! The schemas are generated from the types serde reads, so they cannot drift from the
//! code; `events/schemas/` holds them, every version ever written, and the contract gate
//! compares the two.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings, json_schema};

use crate::envelope::{ReplayMark, Upcaster};
use crate::ids::{CustomerId, IdempotencyKey, OrderId, Quantity, Sku};
use crate::money::Currency;
use crate::time::Timestamp;
use crate::{Aggregate, customer, inventory, order, payment, product, shipment};

/// One event type at the schema version this build writes.
#[derive(Debug, Clone, Copy)]
pub struct EventSchema {
    /// The aggregate whose streams hold it (`order`, `inventory`, …).
    pub aggregate_type: &'static str,
    /// Its wire name (`OrderPlaced`).
    pub event_type: &'static str,
    /// The schema version this build writes.
    pub version: u32,
    /// Its `data`'s schema.
    pub schema: fn() -> Schema,
}

impl EventSchema {
    /// The file the schema is kept in under `events/schemas/`:
    /// `<aggregate>/<EventType>.v<version>.json`.
    #[must_use]
    pub fn file(&self) -> String {
        file_of(self.aggregate_type, self.event_type, self.version)
    }
}

/// The file of `event_type` at `version` under `events/schemas/`.
#[must_use]
pub fn file_of(aggregate_type: &str, event_type: &str, version: u32) -> String {
    format!("{aggregate_type}/{event_type}.v{version}.json")
}

/// The settings every contract schema is generated with: JSON Schema 2020-12, as a
/// reader sees the type (a member with a default may be absent).
#[must_use]
pub fn settings() -> SchemaSettings {
    SchemaSettings::draft2020_12().for_deserialize()
}

/// The root schema of `T`, titled with `title`.
#[must_use]
pub fn root<T: JsonSchema>() -> Schema {
    settings().into_generator().into_root_schema_for::<T>()
}

macro_rules! events {
    ($($aggregate:ty => [$($name:expr, $version:expr => $data:ty;)*])*) => {
        /// Every event type this build writes, at the version it writes.
        pub const EVENTS: &[EventSchema] = &[
            $($(EventSchema {
                aggregate_type: <$aggregate as Aggregate>::TYPE,
                event_type: $name,
                version: $version,
                schema: root::<$data>,
            },)*)*
        ];
    };
}

events! {
    order::Order => [
        order::events::names::PLACED, order::events::ORDER_PLACED_VERSION => order::events::OrderPlaced;
        order::events::names::STOCK_RESERVED, 1 => order::events::OrderStockReserved;
        order::events::names::STOCK_RESERVATION_FAILED, 1 => order::events::OrderStockReservationFailed;
        order::events::names::PAYMENT_CAPTURED, 1 => order::events::OrderPaymentCaptured;
        order::events::names::PAYMENT_DECLINED, 1 => order::events::OrderPaymentDeclined;
        order::events::names::CONFIRMED, 1 => order::events::OrderConfirmed;
        order::events::names::SHIPMENT_RECORDED, 1 => order::events::OrderShipmentRecorded;
        order::events::names::FULFILMENT_ADVANCED, 1 => order::events::OrderFulfilmentAdvanced;
        order::events::names::CANCELLED, 1 => order::events::OrderCancelled;
        order::events::names::PAYMENT_REFUNDED, 1 => order::events::OrderPaymentRefunded;
        order::events::names::STOCK_RELEASED, 1 => order::events::OrderStockReleased;
        order::events::names::SHIPMENT_CANCELLED, 1 => order::events::OrderShipmentCancelled;
    ]
    inventory::Inventory => [
        inventory::names::RESERVED, 1 => inventory::StockReserved;
        inventory::names::RESERVATION_FAILED, 1 => inventory::StockReservationFailed;
        inventory::names::RELEASED, 1 => inventory::StockReleased;
        inventory::names::VOIDED, 1 => inventory::ReservationVoided;
        inventory::names::SOLD, 1 => inventory::StockSold;
    ]
    payment::Payment => [
        payment::names::CAPTURED, 1 => payment::PaymentCaptured;
        payment::names::DECLINED, 1 => payment::PaymentDeclined;
        payment::names::REFUNDED, 1 => payment::PaymentRefunded;
        payment::names::VOIDED, 1 => payment::PaymentVoided;
    ]
    shipment::Shipment => [
        shipment::names::CREATED, 1 => shipment::ShipmentCreated;
        shipment::names::CANCELLED, 1 => shipment::ShipmentCancelled;
        shipment::names::VOIDED, 1 => shipment::ShipmentVoided;
    ]
    product::Product => [
        product::names::LISTED, 1 => product::ProductListed;
        product::names::REPRICED, 1 => product::ProductRepriced;
        product::names::RECEIVED, 1 => product::StockReceived;
        product::names::WRITTEN_OFF, 1 => product::StockWrittenOff;
    ]
    customer::Customer => [
        customer::names::PERSONAL_DATA_ERASED, 1 => customer::PersonalDataErased;
    ]
}

/// What a consumer declares it reads: an event type, at every schema version up to
/// `up_to` (older ones through the upcasters). The contract gate fails when a producer
/// would write a version beyond it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reads {
    /// The event type.
    pub event_type: &'static str,
    /// The newest schema version it reads.
    pub up_to: u32,
}

impl Reads {
    /// Reads `event_type` up to version `up_to`.
    #[must_use]
    pub const fn new(event_type: &'static str, up_to: u32) -> Self {
        Self { event_type, up_to }
    }
}

/// Every upcaster of every aggregate.
pub fn upcasters() -> impl Iterator<Item = &'static Upcaster> {
    order::events::UPCASTERS.iter()
}

/// The envelope every event travels in: in the event store's `payload`, as the bus's
/// `detail`, in replays and in DLQ messages. Readers ignore members they do not know.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "Envelope")]
pub struct WireEnvelope {
    /// Unique and time-ordered (UUID v7).
    pub event_id: uuid::Uuid,
    /// The event's wire name (`OrderPlaced`): the bus's `detail-type`.
    pub event_type: String,
    /// The schema version `data` was written at.
    #[schemars(range(min = 1))]
    pub schema_version: u32,
    /// `order`, `inventory`, `payment`, `shipment`, `product` or `customer`: the bus's `source` is
    /// `orderflow.<aggregateType>`.
    pub aggregate_type: String,
    /// The aggregate instance (an order id, a SKU).
    pub aggregate_id: String,
    /// Position in the aggregate's stream, from 1.
    #[schemars(range(min = 1))]
    pub version: u64,
    /// When the event was recorded.
    pub occurred_at: Timestamp,
    /// Follows one order through every service.
    pub correlation_id: String,
    /// The event or request that caused this event.
    pub causation_id: String,
    /// Who issued the command (`customer:<id>`, `operator:<sub>`, `service:<name>`).
    pub actor: String,
    /// Present only on replayed copies.
    #[serde(default)]
    pub replay: Option<ReplayMark>,
    /// The event itself, as its type's schema at `schemaVersion` says.
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// The envelope's schema version (bumped by hand on a breaking change to the envelope).
pub const ENVELOPE_VERSION: u32 = 1;

/// A string newtype's schema.
fn text(description: &str, max: usize, pattern: &str) -> Schema {
    json_schema!({
        "type": "string",
        "description": description,
        "minLength": 1,
        "maxLength": max,
        "pattern": pattern,
    })
}

/// Letters, digits and `- _ . :`, as identifiers allow.
const ID_PATTERN: &str = "^[A-Za-z0-9._:-]+$";

macro_rules! schema {
    ($ty:ty, $name:literal, $body:expr) => {
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                $body
            }
        }
    };
}

schema!(
    CustomerId,
    "CustomerId",
    text(
        "A customer, as the identity provider names them.",
        128,
        ID_PATTERN
    )
);
schema!(
    Sku,
    "Sku",
    text("A stock-keeping unit of the catalog.", 64, ID_PATTERN)
);
schema!(
    IdempotencyKey,
    "IdempotencyKey",
    text(
        "A client-chosen key that makes a command safe to retry.",
        255,
        "^[!-~]+$"
    )
);
schema!(
    OrderId,
    "OrderId",
    json_schema!({"type": "string", "format": "uuid", "description": "An order's identity (a UUID)."})
);
schema!(
    Quantity,
    "Quantity",
    json_schema!({"type": "integer", "minimum": Quantity::MIN, "maximum": Quantity::MAX, "description": "How many units."})
);
schema!(
    Currency,
    "Currency",
    json_schema!({"type": "string", "pattern": "^[A-Z]{3}$", "description": "An ISO 4217 currency code such as USD."})
);
schema!(
    Timestamp,
    "Timestamp",
    json_schema!({"type": "string", "format": "date-time", "description": "An RFC 3339 instant; written in UTC with microseconds."})
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn every_event_type_is_listed_once_with_an_object_schema() {
        let mut seen = std::collections::BTreeSet::new();
        for event in EVENTS {
            assert!(seen.insert(event.event_type), "{} listed twice", event.event_type);
            let schema = (event.schema)();
            assert_eq!(
                schema.get("type").and_then(|t| t.as_str()),
                Some("object"),
                "{}",
                event.event_type
            );
        }
        assert_eq!(seen.len(), 29);
    }

    #[test]
    fn each_event_s_schema_is_kept_in_its_file_and_every_older_version_has_an_upcaster() {
        let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/schemas");
        for event in EVENTS {
            let file = event.file();
            assert_eq!(
                file,
                format!(
                    "{}/{}.v{}.json",
                    event.aggregate_type, event.event_type, event.version
                )
            );
            assert!(schemas.join(&file).is_file(), "{file}");
            for older in 1..event.version {
                assert!(
                    upcasters().any(|u| u.event_type == event.event_type && u.from_version == older),
                    "{} v{older} has no upcaster",
                    event.event_type
                );
            }
        }
        assert!(upcasters().count() > 0);
    }

    #[test]
    fn a_string_newtype_s_schema_states_its_length_and_pattern_and_defaults_are_optional() {
        let sku = serde_json::to_value(root::<Sku>()).unwrap();
        assert_eq!(sku["maxLength"], 64);
        assert_eq!(sku["minLength"], 1);
        assert_eq!(sku["pattern"], ID_PATTERN);
        assert_eq!(sku["$schema"], "https://json-schema.org/draft/2020-12/schema");
        #[derive(serde::Deserialize, JsonSchema)]
        #[allow(dead_code, reason = "only its schema is read")]
        struct WithDefault {
            needed: u32,
            #[serde(default)]
            optional: u32,
        }
        let schema = serde_json::to_value(root::<WithDefault>()).unwrap();
        assert_eq!(schema["required"], serde_json::json!(["needed"]), "{schema}");
    }
}
