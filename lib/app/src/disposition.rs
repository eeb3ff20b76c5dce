//! What a failed message deserves: another try, or the dead-letter queue. Each error
//! type says it once, here, and a consumer's failure keeps the error itself (with its
//! sources) beside the disposition.

use orderflow_domain::DecodeError;

use crate::command::{CommandError, LoadError};
use crate::ports::{AppendError, GatewayError, StoreError};

/// Whether a redelivery can fix a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Transient (store throttled, provider down, lost a race): a redelivery may well
    /// succeed.
    Retry,
    /// The message itself is bad (malformed, impossible): it will end in the DLQ.
    Poison,
}

impl Disposition {
    /// `retry` or `poison`, as logs, metrics and the failure log spell it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Poison => "poison",
        }
    }
}

impl std::fmt::Display for Disposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Retry => "retryable",
            Self::Poison => "poison",
        })
    }
}

/// An error that knows whether a redelivery can fix it.
pub trait Disposed: std::error::Error {
    /// Retry or poison.
    fn disposition(&self) -> Disposition;
}

impl Disposed for StoreError {
    fn disposition(&self) -> Disposition {
        Disposition::Retry
    }
}

impl Disposed for DecodeError {
    fn disposition(&self) -> Disposition {
        Disposition::Poison
    }
}

impl Disposed for GatewayError {
    fn disposition(&self) -> Disposition {
        match self {
            Self::Unavailable(_) => Disposition::Retry,
            Self::Refused(_) => Disposition::Poison,
        }
    }
}

impl Disposed for LoadError {
    fn disposition(&self) -> Disposition {
        match self {
            Self::Store(_) => Disposition::Retry,
            Self::Corrupt { .. } | Self::Gap { .. } => Disposition::Poison,
        }
    }
}

impl Disposed for AppendError {
    fn disposition(&self) -> Disposition {
        match self {
            Self::Conflict { .. } | Self::Store(_) => Disposition::Retry,
            Self::TooManyEvents { .. } | Self::NotContiguous { .. } => Disposition::Poison,
        }
    }
}

impl<E: std::error::Error + 'static> Disposed for CommandError<E> {
    /// The domain refusing a command, or a stream the store cannot serve, is the
    /// message's fault; losing every race or a store failure is not.
    fn disposition(&self) -> Disposition {
        match self {
            Self::Contention { .. } | Self::Store(_) => Disposition::Retry,
            Self::Load(load) => load.disposition(),
            Self::Domain(_) | Self::VersionMismatch { .. } | Self::Rejected(_) => Disposition::Poison,
        }
    }
}

/// The error and every source under it, outermost first: `a: b: c`.
#[must_use]
pub fn cause_chain(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut chain = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // `#[error(transparent)]` and "{0}" wrappers repeat their source: say it once.
        if chain.last() != Some(&text) {
            chain.push(text);
        }
        source = cause.source();
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_every_cause_once() {
        let store = StoreError::new("query", std::io::Error::other("connection reset"));
        let load = LoadError::Store(store);
        let command = CommandError::<std::io::Error>::Load(load);
        assert_eq!(command.disposition(), Disposition::Retry);
        assert_eq!(
            cause_chain(&command),
            ["event store: query failed", "connection reset"]
        );
    }
}
