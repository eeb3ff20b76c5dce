//! A rate limit per principal: a fixed window of one minute per key.

use std::future::Future;

use orderflow_domain::Timestamp;

use crate::StoreError;

/// The length of a window, seconds.
pub const WINDOW_SECONDS: i64 = 60;

/// What taking one unit decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Under the limit: go ahead.
    Admitted,
    /// Over the limit: try again in this many seconds (when the window turns).
    Limited {
        /// Seconds until the next window.
        retry_after: u64,
    },
}

/// The window `now` falls in, and the seconds left until it turns.
#[must_use]
pub fn window(now: Timestamp) -> (i64, u64) {
    let second = now.as_micros().div_euclid(1_000_000);
    let window = second.div_euclid(WINDOW_SECONDS);
    let left = (window + 1) * WINDOW_SECONDS - second;
    (window, u64::try_from(left).unwrap_or(1).max(1))
}

/// A limit of so many units per key and minute, that holds however many instances take
/// units at once.
pub trait RateLimiter: Send + Sync {
    /// The limit per minute.
    fn per_minute(&self) -> u64;

    /// Takes one unit for `key` at `now`.
    ///
    /// # Errors
    /// [`StoreError`] when the count cannot be kept (the caller decides whether to fail
    /// open or closed; the API fails closed with a 503).
    fn take(&self, key: &str, now: Timestamp) -> impl Future<Output = Result<Admission, StoreError>> + Send;
}
