//! The application layer of orderflow: the ports the outside world plugs into, and
//! the command handling around the pure domain.
//!
//! - [`ports`]: `EventStore`, `IdempotencyStore`, `Clock`.
//! - [`command`]: load (snapshot + events, upcast on read), decide, append at the
//!   expected version, re-decide on a lost race.
//! - [`idempotency`]: run work once per idempotency key.
//! - [`placement`]: the place-order use case (price, decide, keep the token, append).
//! - [`stock`]: the catalog, and stock moves committed with the events that record them.
//! - [`provenance`]: a consumer reads the event it was sent back from the store.
//! - [`disposition`]: whether a failure is worth a redelivery, said once per error.
//!
//! No AWS here: adapters live in `orderflow-adapters`.

pub mod command;
pub mod disposition;
pub mod failures;
pub mod idempotency;
pub mod personal;
pub mod placement;
pub mod ports;
pub mod provenance;
pub mod rate_limit;
pub mod read_model;
pub mod stock;

pub use command::{CommandError, CommandService, Executed, LoadError, Loaded, Repository};
pub use disposition::{Disposed, Disposition, cause_chain};
pub use failures::{Failure, FailureLog, RecordedFailure};
pub use idempotency::{Idempotency, IdempotentError, Outcome, fingerprint, scoped_key};
pub use ports::{
    AppendError, BoxError, CaptureOutcome, Claim, Clock, EventPublisher, EventRecord, EventStore,
    GatewayError, IdempotencyError, IdempotencyStore, Kept, KeyRecord, KeyStatus, MAX_EVENTS_PER_APPEND,
    PaymentGateway, PaymentVault, ProviderCapture, SnapshotRecord, StoreError, StreamId, SystemClock,
    validate_append,
};
pub use provenance::ReadBack;
pub use rate_limit::{Admission, RateLimiter};
pub use read_model::{CustomerCursor, CustomerPage, OrderViews, StoredView, Written};
pub use stock::{Catalog, CatalogService, MoveError, Once, Product, StockLedger, StockMove};
