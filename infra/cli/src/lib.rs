//! The library behind the `orderflow` CLI: what `orderflow dev` runs, callable
//! in-process by the system tests.
//!
//! - [`runner`]: Lambda's event source mappings, locally: the event store's stream
//!   into the relay, each function's SQS queue into its handler.

pub mod runner;
