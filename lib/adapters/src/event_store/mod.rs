//! Event store adapters: DynamoDB and in memory, one contract.

pub mod dynamodb;
pub mod memory;

pub use dynamodb::DynamoEventStore;
pub use memory::MemoryEventStore;
