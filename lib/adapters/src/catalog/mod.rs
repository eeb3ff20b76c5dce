//! The product catalog and its stock: prices for the API, and the stock moves inventory
//! (reservations, releases, sales) and operators (listings, receipts, write-offs) make
//! inside the transactions that append their events.
//!
//! One item per SKU: `sku`, `name`, `priceAmount`, `currency`, `description`,
//! `available`, `reserved`, `sold`, and `shards` when its stock is spread over more
//! items than its own: then `<sku>#1` … `<sku>#<shards-1>` each hold `shardOf`,
//! `shards` and their own three counters, and the product's counters are the sums
//! ([`Layout`]). Stock is conserved: every move takes from one
//! counter what it adds to another, or enters or leaves through a receipt or write-off
//! recorded on the product's stream, under a condition, in the same transaction as the
//! event that records it.

mod dynamodb;
mod layout;
mod ledger;
mod memory;

pub use dynamodb::DynamoCatalog;
pub use layout::{Counters, Layout};
pub use ledger::DynamoStockLedger;
pub use memory::{MemoryCatalog, MemoryStockLedger};
pub use orderflow_app::Product;
