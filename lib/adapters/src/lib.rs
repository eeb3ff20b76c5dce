//! Adapters for the application's ports, each backend side by side with its
//! in-memory twin: `event_store::{dynamodb, memory}`, `idempotency::{dynamodb, memory}`.
//! One conformance suite (in `tests/`) runs against both, the DynamoDB side against
//! DynamoDB Local.

pub mod bus;
pub mod calls;
pub mod catalog;
pub mod config;
pub mod event_store;
pub mod failure_log;
pub mod idempotency;
mod item;
pub mod payment;
pub mod personal;
pub mod rate_limit;
pub mod read_model;
pub mod secrets;
pub mod sqs;

pub use bus::{BusEvent, EventBridgePublisher};
pub use config::{Config, ConfigError, aws_sdk_config};
pub use event_store::{DynamoEventStore, MemoryEventStore};
pub use idempotency::{DynamoIdempotencyStore, MemoryIdempotencyStore};
pub use read_model::{DynamoOrderViews, MemoryOrderViews};
