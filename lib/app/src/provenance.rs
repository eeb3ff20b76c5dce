//! Where a message came from: the event store, or someone else.
//!
//! Every event a consumer is sent was appended to the event store before the relay put
//! it on the bus. A consumer that moves money or stock therefore reads the event back
//! from the store by its stream and version and acts on what the store holds, not on
//! what the message says: a message written to a queue by anyone but the relay (a
//! forged `OrderCancelled`, an invented `PaymentCaptured`, a real event with its data
//! edited) finds no event, or another one, and moves nothing.

use crate::ports::{EventRecord, EventStore, StoreError, StreamId};

/// What a consumer makes of the events it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadBack {
    /// It acts on the message as sent (a consumer whose work the store can always
    /// correct, such as a read model's).
    Trusted,
    /// The store's event at the message's stream and version, if there is one.
    Stored(Option<EventRecord>),
}

/// The event at `version` of `stream`, read strongly consistently: one page of one
/// event.
///
/// # Errors
/// [`StoreError`] when the store cannot be read.
pub async fn read_back<S: EventStore>(
    store: &S,
    stream: &StreamId,
    version: u64,
) -> Result<ReadBack, StoreError> {
    if version == 0 {
        return Ok(ReadBack::Stored(None));
    }
    let mut page = store.load_page(stream, version - 1, 1).await?;
    Ok(ReadBack::Stored(
        page.pop().filter(|record| record.version == version),
    ))
}
