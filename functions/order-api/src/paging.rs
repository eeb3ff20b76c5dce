//! Pages of lists: `limit`, and cursors that only this API can have made.
//!
//! A cursor is `<position>.<tag>`: the position as URL-safe base64 JSON and an
//! HMAC-SHA256 of it under the API's cursor key (a Secrets Manager secret in AWS, the
//! local key in `orderflow-dev up`). A cursor that was altered, made up, or minted for
//! another list is a 400 before anything is read with it.
//!
//! The key can be rotated (`docs/operations.md`): cursors are sealed with the secret's
//! current version and opened with it or the previous one, so the cursors clients hold
//! survive one rotation. The API re-reads the secret every [`KEY_REFRESH`], and at once
//! (at most every [`KEY_REREAD`]) when a cursor opens under neither key it holds: one
//! sealed by an instance that read the secret after a rotation.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

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

/// How long a key read from its secret is used before it is read again.
pub const KEY_REFRESH: Duration = Duration::from_secs(300);
/// A cursor no key opens makes the API read the secret again, but no sooner than this
/// after the last read (a made-up cursor cannot make every request a secret read).
pub const KEY_REREAD: Duration = Duration::from_secs(30);

/// The cursor key as the API holds it: given at start-up ([`Cursors::ready`]), or read
/// when a list first needs it ([`Cursors::deferred`]; in Lambda, from Secrets Manager),
/// so that a function's start waits for no secret and a request that lists nothing
/// never reads it. A first read that fails is a 503 for that request and is tried again
/// by the next; a key read is used for [`KEY_REFRESH`], and kept while a later read
/// fails.
#[derive(Clone)]
pub struct Cursors(Arc<Source>);

/// Where the key comes from.
enum Source {
    /// Given.
    Ready(Arc<CursorKey>),
    /// Read by `load`, again when it is stale.
    Deferred {
        held: tokio::sync::Mutex<Option<Held>>,
        load: Box<LoadKey>,
    },
}

/// A key as read, and when.
struct Held {
    key: Arc<CursorKey>,
    read_at: Instant,
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
        Self(Arc::new(Source::Ready(Arc::new(key))))
    }

    /// A key `load` reads when it is first needed.
    #[must_use]
    pub fn deferred<F, R>(load: F) -> Self
    where
        F: Fn() -> R + Send + Sync + 'static,
        R: Future<Output = Result<CursorKey, AccessConfigError>> + Send + 'static,
    {
        Self(Arc::new(Source::Deferred {
            held: tokio::sync::Mutex::new(None),
            load: Box::new(move || Box::pin(load())),
        }))
    }

    /// Whether the key has been read.
    #[must_use]
    pub fn is_read(&self) -> bool {
        match &*self.0 {
            Source::Ready(_) => true,
            Source::Deferred { held, .. } => held.try_lock().map_or(true, |held| held.is_some()),
        }
    }

    /// The key, read now if it has not been or is stale.
    ///
    /// # Errors
    /// A 503 when it was never read and cannot be; why is logged, not returned.
    pub async fn key(&self) -> Result<Arc<CursorKey>, ApiError> {
        match &*self.0 {
            Source::Ready(key) => Ok(key.clone()),
            Source::Deferred { held, load } => {
                let mut held = held.lock().await;
                match &*held {
                    Some(h) if h.read_at.elapsed() < KEY_REFRESH => Ok(h.key.clone()),
                    _ => Self::read(&mut held, load).await,
                }
            }
        }
    }

    /// The key for a list and the position its `cursor` parameter holds, if any.
    ///
    /// # Errors
    /// A 400 `invalid_cursor` for a cursor this API did not make; a 503 as [`Self::key`].
    pub async fn open<T: DeserializeOwned>(
        &self,
        params: &Params,
    ) -> Result<(Arc<CursorKey>, Option<T>), ApiError> {
        let key = self.key().await?;
        let Some(raw) = params.get("cursor") else {
            return Ok((key, None));
        };
        if raw.len() > MAX_CURSOR {
            return Err(bad_cursor());
        }
        if let Some(position) = key.open(raw) {
            return Ok((key, Some(position)));
        }
        // Perhaps sealed under a key rotated in since this instance read its own.
        if let Source::Deferred { held, load } = &*self.0 {
            let mut held = held.lock().await;
            if held.as_ref().is_some_and(|h| h.read_at.elapsed() >= KEY_REREAD) {
                let newer = Self::read(&mut held, load).await?;
                if let Some(position) = newer.open(raw) {
                    return Ok((newer, Some(position)));
                }
            }
        }
        Err(bad_cursor())
    }

    /// Reads the key into `held`; a failed read keeps the key held, if any, for
    /// another [`KEY_REFRESH`].
    async fn read(held: &mut Option<Held>, load: &LoadKey) -> Result<Arc<CursorKey>, ApiError> {
        match load().await {
            Ok(key) => {
                let key = Arc::new(key);
                *held = Some(Held {
                    key: key.clone(),
                    read_at: Instant::now(),
                });
                Ok(key)
            }
            Err(error) => match held {
                Some(h) => {
                    tracing::warn!(%error, "the cursor key could not be read again; the one held stays in use");
                    h.read_at = Instant::now();
                    Ok(h.key.clone())
                }
                None => Err(ApiError::unavailable(&error)),
            },
        }
    }
}

/// The default and the largest page of a list.
pub const DEFAULT_PAGE: u16 = 20;
/// The largest page.
pub const MAX_PAGE: u16 = 100;

/// The shape of a cursor ([`CursorKey::seal`]): the position and its tag, each
/// base64url without padding, joined by a dot. The contract describes `cursor` so.
pub const CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$";

/// The longest cursor taken: a position is a few ids and a timestamp, and its tag 43
/// characters, so every cursor this API makes is far shorter.
pub const MAX_CURSOR: usize = 1024;

/// The keys cursors are signed with: the current one, which seals and opens, and the
/// one it replaced, which only opens.
#[derive(Clone)]
pub struct CursorKey {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
}

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
        Ok(Self {
            current: strong(secret.into())?,
            previous: None,
        })
    }

    /// This key, also opening cursors sealed with `secret` (the key it replaced).
    ///
    /// # Errors
    /// A message when the secret is shorter than [`MIN_CURSOR_KEY_BYTES`].
    pub fn with_previous(self, secret: impl Into<Vec<u8>>) -> Result<Self, String> {
        Ok(Self {
            previous: Some(strong(secret.into())?),
            ..self
        })
    }

    fn tag(key: &[u8], position: &str) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        #[allow(clippy::expect_used, reason = "HMAC accepts every key length")]
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(CONTEXT);
        mac.update(position.as_bytes());
        mac
    }

    /// Encodes and signs a position with the current key.
    #[must_use]
    pub fn seal<T: Serialize>(&self, position: &T) -> String {
        let encoded = URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).unwrap_or_default());
        let tag = URL_SAFE_NO_PAD.encode(Self::tag(&self.current, &encoded).finalize().into_bytes());
        format!("{encoded}.{tag}")
    }

    /// The position in a cursor the current or the previous key sealed; `None` for
    /// anything else.
    #[must_use]
    pub fn open<T: DeserializeOwned>(&self, cursor: &str) -> Option<T> {
        let (encoded, tag) = cursor.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| Self::tag(key, encoded).verify_slice(&tag).is_ok())?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()
    }
}

/// `secret`, unless it is too short to be a key.
fn strong(secret: Vec<u8>) -> Result<Vec<u8>, String> {
    if secret.len() < MIN_CURSOR_KEY_BYTES {
        return Err(format!(
            "the cursor key has {} bytes; at least {MIN_CURSOR_KEY_BYTES} are needed",
            secret.len()
        ));
    }
    Ok(secret)
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

    #[test]
    fn every_cursor_has_the_shape_the_contract_describes() {
        // CURSOR_PATTERN, by hand: two non-empty base64url parts joined by one dot.
        let shaped = |cursor: &str| {
            let base64url = |part: &str| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            };
            assert_eq!(CURSOR_PATTERN, "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$");
            cursor.len() <= MAX_CURSOR
                && cursor
                    .split_once('.')
                    .is_some_and(|(position, tag)| base64url(position) && base64url(tag))
        };
        let key = CursorKey::new(*b"a key of at least 16 bytes").unwrap();
        // The largest positions the lists make: a customer's page (a 64-character id,
        // a timestamp and an order id), a catalog page (a 64-character SKU).
        let customer = ("c".repeat(64), i64::MAX, "0192d9a4-7c3e-7000-8000-000000000000");
        for cursor in [
            key.seal(&customer),
            key.seal(&"S".repeat(64)),
            key.seal(&u64::MAX),
        ] {
            assert!(shaped(&cursor), "{cursor}");
        }
        assert!(!shaped(""));
        assert!(!shaped("no-dot"));
        assert!(!shaped(&"a.".repeat(MAX_CURSOR)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cursor_longer_than_any_this_api_makes_is_refused_without_reading_the_secret_again() {
        let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let secret = Arc::new(std::sync::Mutex::new(
            CursorKey::new(*b"a key of at least 16 bytes").unwrap(),
        ));
        let cursors = rotating(&secret, &reads);
        let read = || reads.load(std::sync::atomic::Ordering::SeqCst);
        cursors.key().await.unwrap();
        assert_eq!(read(), 1);
        // Long enough after the read that a cursor the key cannot open would have the
        // secret read again (a rotation elsewhere): an over-long one is refused first.
        tokio::time::advance(KEY_REREAD).await;
        let long = format!("{}.{}", "A".repeat(MAX_CURSOR), "B".repeat(43));
        let refused = cursors.open::<u64>(&params(&long)).await.unwrap_err();
        assert_eq!(
            (refused.status, refused.code),
            (axum::http::StatusCode::BAD_REQUEST, "invalid_cursor")
        );
        assert_eq!(read(), 1);
        // A made-up cursor of an ordinary length does have it read again.
        assert!(cursors.open::<u64>(&params("bm90.aXQ")).await.is_err());
        assert_eq!(read(), 2);
    }

    #[test]
    fn a_rotated_key_seals_with_the_current_secret_and_opens_with_either() {
        let old = CursorKey::new(*b"the key before the rotation").unwrap();
        let sealed_before = old.seal(&1_u64);
        let rotated = CursorKey::new(*b"the key after the rotation!")
            .unwrap()
            .with_previous(*b"the key before the rotation")
            .unwrap();
        assert_eq!(rotated.open::<u64>(&sealed_before), Some(1));
        let sealed_after = rotated.seal(&2_u64);
        assert_eq!(
            old.open::<u64>(&sealed_after),
            None,
            "sealed with the current key"
        );
        let next = CursorKey::new(*b"the key two rotations on!!")
            .unwrap()
            .with_previous(*b"the key after the rotation!")
            .unwrap();
        assert_eq!(next.open::<u64>(&sealed_after), Some(2));
        assert_eq!(
            next.open::<u64>(&sealed_before),
            None,
            "two rotations retire a key"
        );
        assert!(old.with_previous(*b"short").is_err());
    }

    /// A loader whose secret the test rotates, counting its reads.
    fn rotating(
        secret: &Arc<std::sync::Mutex<CursorKey>>,
        reads: &Arc<std::sync::atomic::AtomicUsize>,
    ) -> Cursors {
        let (secret, reads) = (secret.clone(), reads.clone());
        Cursors::deferred(move || {
            reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let key = secret.lock().unwrap().clone();
            async move { Ok(key) }
        })
    }

    fn params(cursor: &str) -> Params {
        Params(std::collections::HashMap::from([(
            "cursor".to_owned(),
            cursor.to_owned(),
        )]))
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_rotation_an_instance_reads_the_secret_again_for_a_cursor_it_cannot_open() {
        let first = CursorKey::new(*b"the key before the rotation").unwrap();
        let secret = Arc::new(std::sync::Mutex::new(first.clone()));
        let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let cursors = rotating(&secret, &reads);
        let read = || reads.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(cursors.key().await.unwrap().seal(&1_u64), first.seal(&1_u64));
        assert_eq!(read(), 1);

        // Another instance read the rotated secret and sealed a cursor with it.
        let rotated = CursorKey::new(*b"the key after the rotation!")
            .unwrap()
            .with_previous(*b"the key before the rotation")
            .unwrap();
        *secret.lock().unwrap() = rotated.clone();
        let sealed = rotated.seal(&2_u64);
        // Read a moment ago: a cursor no key opens is refused without reading again.
        assert!(cursors.open::<u64>(&params(&sealed)).await.is_err());
        assert_eq!(read(), 1);
        // Later, the same cursor makes it read the secret, and opens.
        tokio::time::advance(KEY_REREAD).await;
        let (key, position) = cursors.open::<u64>(&params(&sealed)).await.unwrap();
        assert_eq!((position, read()), (Some(2), 2));
        assert_eq!(key.seal(&3_u64), rotated.seal(&3_u64));
        // A made-up cursor right after is refused without another read.
        assert!(cursors.open::<u64>(&params("bm90.aXQ")).await.is_err());
        assert_eq!(read(), 2);
        // And the key is read again once it is stale, cursor or none.
        cursors.key().await.unwrap();
        assert_eq!(read(), 2);
        tokio::time::advance(KEY_REFRESH).await;
        cursors.key().await.unwrap();
        assert_eq!(read(), 3);
    }
}
