//! Pages of lists: `limit`, and cursors that only this API can have made.
//!
//! A cursor is `<position>.<tag>`: the position as URL-safe base64 JSON and an
//! HMAC-SHA256 of it under the API's cursor key (a Secrets Manager secret in AWS, the
//! local key in `orderflow dev`). A cursor that was altered, made up, or minted for
//! another list is a 400 before anything is read with it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

use crate::AccessConfigError;
use crate::error::ApiError;

/// What a cursor's tag is computed over besides the position, so a tag made for
/// anything else under the same key never passes.
const CONTEXT: &[u8] = b"orderflow-cursor-v1.";

/// Reads the cursor key, for [`Cursors::deferred`].
type LoadKey =
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<CursorKey, AccessConfigError>> + Send>> + Send + Sync;

/// The cursor key as the API holds it: given at start-up ([`Cursors::ready`]), or read
/// when a list first needs it ([`Cursors::deferred`]; in Lambda, from Secrets Manager),
/// so that a function's start waits for no secret and a request that lists nothing
/// never reads it. A read that fails is a 503 for that request and is tried again by
/// the next; a key once read is kept.
#[derive(Clone)]
pub struct Cursors(Arc<Source>);

/// Where the key comes from.
enum Source {
    /// Given.
    Ready(CursorKey),
    /// Read by `load`, once it succeeds.
    Deferred {
        key: tokio::sync::OnceCell<CursorKey>,
        load: Box<LoadKey>,
    },
}

impl std::fmt::Debug for Cursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursors")
            .field("read", &self.is_read())
            .finish_non_exhaustive()
    }
}

impl From<CursorKey> for Cursors {
    fn from(key: CursorKey) -> Self {
        Self::ready(key)
    }
}

impl Cursors {
    /// A key known at start-up.
    #[must_use]
    pub fn ready(key: CursorKey) -> Self {
        Self(Arc::new(Source::Ready(key)))
    }

    /// A key `load` reads when it is first needed.
    #[must_use]
    pub fn deferred<F, R>(load: F) -> Self
    where
        F: Fn() -> R + Send + Sync + 'static,
        R: Future<Output = Result<CursorKey, AccessConfigError>> + Send + 'static,
    {
        Self(Arc::new(Source::Deferred {
            key: tokio::sync::OnceCell::new(),
            load: Box::new(move || Box::pin(load())),
        }))
    }

    /// Whether the key has been read.
    #[must_use]
    pub fn is_read(&self) -> bool {
        match &*self.0 {
            Source::Ready(_) => true,
            Source::Deferred { key, .. } => key.initialized(),
        }
    }

    /// The key, read now if it has not been.
    ///
    /// # Errors
    /// A 503 when it cannot be read; why is logged, not returned.
    pub async fn key(&self) -> Result<&CursorKey, ApiError> {
        match &*self.0 {
            Source::Ready(key) => Ok(key),
            Source::Deferred { key, load } => key
                .get_or_try_init(load)
                .await
                .map_err(|error| ApiError::unavailable(&error)),
        }
    }
}

/// The default and the largest page of a list.
pub const DEFAULT_PAGE: u16 = 20;
/// The largest page.
pub const MAX_PAGE: u16 = 100;

/// The key cursors are signed with.
#[derive(Clone)]
pub struct CursorKey(Vec<u8>);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

/// A cursor key shorter than this is refused at start-up.
pub const MIN_CURSOR_KEY_BYTES: usize = 16;

impl CursorKey {
    /// A key from secret bytes.
    ///
    /// # Errors
    /// A message when the secret is shorter than [`MIN_CURSOR_KEY_BYTES`].
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, String> {
        let secret = secret.into();
        if secret.len() < MIN_CURSOR_KEY_BYTES {
            return Err(format!(
                "the cursor key has {} bytes; at least {MIN_CURSOR_KEY_BYTES} are needed",
                secret.len()
            ));
        }
        Ok(Self(secret))
    }

    fn tag(&self, position: &str) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        #[allow(clippy::expect_used, reason = "HMAC accepts every key length")]
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(CONTEXT);
        mac.update(position.as_bytes());
        mac
    }

    /// Encodes and signs a position.
    #[must_use]
    pub fn seal<T: Serialize>(&self, position: &T) -> String {
        let encoded = URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).unwrap_or_default());
        let tag = URL_SAFE_NO_PAD.encode(self.tag(&encoded).finalize().into_bytes());
        format!("{encoded}.{tag}")
    }

    /// The position in a cursor this key sealed; `None` for anything else.
    #[must_use]
    pub fn open<T: DeserializeOwned>(&self, cursor: &str) -> Option<T> {
        let (encoded, tag) = cursor.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.tag(encoded).verify_slice(&tag).ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()
    }
}

/// The query string, checked by hand so every malformed parameter gets its own 400.
pub use crate::extract::Params;

/// `limit`: 1 to [`MAX_PAGE`], `default` when absent.
///
/// # Errors
/// A 400 `invalid_limit`.
pub fn limit(params: &Params, default: u16) -> Result<u16, ApiError> {
    params.get("limit").map_or(Ok(default), |raw| {
        raw.parse()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::invalid_field("invalid_limit", "limit", format!("1 to {MAX_PAGE}")))
    })
}

/// `cursor`, opened with `key`.
///
/// # Errors
/// A 400 `invalid_cursor` for a cursor this API did not make.
pub fn cursor<T: DeserializeOwned>(key: &CursorKey, params: &Params) -> Result<Option<T>, ApiError> {
    params
        .get("cursor")
        .map(|raw| key.open(raw).ok_or_else(bad_cursor))
        .transpose()
}

/// The 400 for a cursor of another list.
#[must_use]
pub fn foreign_cursor() -> ApiError {
    ApiError::invalid_field("invalid_cursor", "cursor", "this cursor belongs to another list")
}

fn bad_cursor() -> ApiError {
    ApiError::invalid_field(
        "invalid_cursor",
        "cursor",
        "pass back a nextCursor this list returned",
    )
}

/// A page: `{"<name>": [...], "nextCursor"?}`.
#[must_use]
pub fn list(name: &str, items: serde_json::Value, next: Option<String>) -> serde_json::Value {
    let mut page = serde_json::Map::from_iter([(name.to_owned(), items)]);
    if let Some(next) = next {
        page.insert("nextCursor".into(), next.into());
    }
    page.into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn a_sealed_cursor_opens_and_any_change_to_it_does_not() {
        let key = CursorKey::new(*b"0123456789abcdef0123").unwrap();
        let cursor = key.seal(&("c-1", 7_u64));
        assert_eq!(key.open::<(String, u64)>(&cursor), Some(("c-1".into(), 7)));
        // Another key, a flipped character anywhere, the unsigned position, garbage.
        let other = CursorKey::new(*b"another key of enough bytes").unwrap();
        assert_eq!(other.open::<(String, u64)>(&cursor), None);
        for i in 0..cursor.len() {
            let mut bytes = cursor.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            if tampered != cursor {
                assert_eq!(key.open::<(String, u64)>(&tampered), None, "{tampered}");
            }
        }
        let unsigned = cursor.split_once('.').unwrap().0;
        assert_eq!(key.open::<(String, u64)>(unsigned), None);
        assert_eq!(key.open::<(String, u64)>("not a cursor"), None);
        assert!(CursorKey::new(*b"short").is_err());
    }
}
