//! Running work at most once per idempotency key, on top of an [`IdempotencyStore`].
//!
//! The first request claims the key, runs, and stores its response; a repeat with the
//! same request gets the stored response; a repeat with a different request is refused;
//! a failed run releases the key so the client's retry can run again.

use std::future::Future;

use jiff::SignedDuration;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::ports::{Claim, Clock, IdempotencyError, IdempotencyStore};

/// A fingerprint of a request, to tell "the same request again" from "another request
/// with the same key".
#[must_use]
pub fn fingerprint(request: &[u8]) -> String {
    hex::encode(Sha256::digest(request))
}

/// The record key of a client's `key` within `scope` (the principal that sent it).
///
/// The scope is length-prefixed, so no two (scope, key) pairs map to one record
/// however they are spelled: `("a:b", "c")` and `("a", "b:c")` stay apart.
#[must_use]
pub fn scoped_key(scope: &str, key: &str) -> String {
    format!("{}:{scope}:{key}", scope.len())
}

/// Why an idempotent run did not produce a response.
#[derive(Debug, thiserror::Error)]
pub enum IdempotentError<E: std::error::Error + 'static> {
    /// The key could not be claimed (reused, in progress, store down).
    #[error(transparent)]
    Key(#[from] IdempotencyError),
    /// The work itself failed; the key was released.
    #[error(transparent)]
    Work(E),
    /// A stored response no longer decodes (written by an incompatible build).
    #[error("the stored response for this key cannot be read")]
    StoredResponse(#[source] serde_json::Error),
}

/// A response, and whether it was replayed from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<T> {
    /// The response.
    pub response: T,
    /// `true` when an earlier run's stored response was returned.
    pub replayed: bool,
}

/// Runs work once per key.
#[derive(Debug, Clone)]
pub struct Idempotency<S, C> {
    store: S,
    clock: C,
    lease: SignedDuration,
    retention: SignedDuration,
}

impl<S: IdempotencyStore, C: Clock> Idempotency<S, C> {
    /// Keys are leased for `lease` while work runs (longer than the work's timeout), and
    /// completed responses are kept for `retention`.
    pub const fn new(store: S, clock: C, lease: SignedDuration, retention: SignedDuration) -> Self {
        Self {
            store,
            clock,
            lease,
            retention,
        }
    }

    /// The store the keys are kept in.
    pub const fn store(&self) -> &S {
        &self.store
    }

    /// The claim that makes work under `key` land at most once
    /// ([`crate::stock::Once`]), kept as long as the key's response is.
    pub fn once(&self, key: &str) -> crate::stock::Once {
        crate::stock::Once {
            key: key.to_owned(),
            expires_at: self.clock.now().plus(self.retention),
        }
    }

    /// Runs `work` unless `key` already completed for the same `fingerprint`.
    ///
    /// # Errors
    /// See [`IdempotentError`].
    pub async fn run<T, E, F, Fut>(
        &self,
        key: &str,
        fingerprint: &str,
        work: F,
    ) -> Result<Outcome<T>, IdempotentError<E>>
    where
        T: Serialize + DeserializeOwned,
        E: std::error::Error + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let now = self.clock.now();
        let lease_until = now.plus(self.lease);
        let expires_at = now.plus(self.retention);
        match self
            .store
            .claim(key, fingerprint, now, lease_until, expires_at)
            .await?
        {
            Claim::Completed(stored) => {
                let response = serde_json::from_str(&stored).map_err(IdempotentError::StoredResponse)?;
                return Ok(Outcome {
                    response,
                    replayed: true,
                });
            }
            Claim::Acquired => {}
        }
        match work().await {
            Ok(response) => {
                let stored = serde_json::to_string(&response).map_err(IdempotentError::StoredResponse)?;
                let expires_at = self.clock.now().plus(self.retention);
                self.store.complete(key, fingerprint, &stored, expires_at).await?;
                Ok(Outcome {
                    response,
                    replayed: false,
                })
            }
            Err(error) => {
                if let Err(release) = self.store.release(key, fingerprint).await {
                    // The lease runs out on its own; a retry waits for it at worst.
                    tracing::warn!(error = %release, "idempotency key not released after a failure");
                }
                Err(IdempotentError::Work(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::scoped_key;

    #[test]
    fn scoped_keys_of_different_principals_never_collide() {
        // Each pair would meet under a plain "scope#key" or "scope:key" join.
        let pairs = [
            (("customer:a#b", "c"), ("customer:a", "b#c")),
            (("customer:a:b", "c"), ("customer:a", "b:c")),
            (("1:x", "y"), ("1", "x:y")),
        ];
        for (one, two) in pairs {
            assert_ne!(
                scoped_key(one.0, one.1),
                scoped_key(two.0, two.1),
                "{one:?} {two:?}"
            );
        }
        assert_eq!(scoped_key("customer:c-1", "k"), scoped_key("customer:c-1", "k"));
    }
}
