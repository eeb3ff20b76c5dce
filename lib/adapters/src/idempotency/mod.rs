//! Idempotency store adapters: DynamoDB and in memory, one contract.

pub mod dynamodb;
pub mod memory;

pub use dynamodb::DynamoIdempotencyStore;
pub use memory::MemoryIdempotencyStore;
