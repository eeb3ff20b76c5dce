//! Crypto-shredding: each customer's personal data sealed with a data key of their own
//! (`docs/decisions/personal-data.md`).
//!
//! [`seal`] and [`open`] are AES-256-GCM (`ring`, the AEAD the TLS stack already links)
//! with a random 96-bit nonce and the customer's id as associated data, so a value
//! sealed for one customer never opens as another's. [`CustomerKeys`] keeps the data
//! keys, each wrapped by a [`KeyWrap`] (the stack's KMS key in AWS, a local wrapping
//! key on a laptop): erasing a customer deletes their key, and every value sealed with
//! it is noise from then on.

use std::future::Future;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use orderflow_domain::CustomerId;
use orderflow_domain::personal::{SEALED_VERSION, Sealed};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::StoreError;

/// Bytes of a data key.
pub const KEY_LEN: usize = 32;

/// A customer's data key (or a wrapping key): never logged, never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey([u8; KEY_LEN]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// Why a value could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The system's random source failed.
    #[error("no randomness for a key or a nonce")]
    Randomness,
    /// A scheme this code does not know.
    #[error("sealed with scheme v{0}, which this code does not read")]
    Scheme(u32),
    /// Not base64, the wrong key, another customer's value, or tampered with.
    #[error("the value does not open with this key for this customer")]
    Open,
    /// Key bytes of the wrong length.
    #[error("a key has {KEY_LEN} bytes")]
    KeyLength,
}

impl DataKey {
    /// A fresh random key.
    ///
    /// # Errors
    /// [`SealError::Randomness`].
    pub fn generate() -> Result<Self, SealError> {
        let mut bytes = [0_u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SealError::Randomness)?;
        Ok(Self(bytes))
    }

    /// A key from its bytes.
    ///
    /// # Errors
    /// [`SealError::KeyLength`] unless there are [`KEY_LEN`] of them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        <[u8; KEY_LEN]>::try_from(bytes)
            .map(Self)
            .map_err(|_| SealError::KeyLength)
    }

    /// Its bytes, for wrapping.
    #[must_use]
    pub const fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn aead(&self) -> Result<LessSafeKey, SealError> {
        UnboundKey::new(&AES_256_GCM, &self.0)
            .map(LessSafeKey::new)
            .map_err(|_| SealError::KeyLength)
    }
}

/// `plaintext` sealed with `key`, bound to `context` (the customer's id for personal
/// data; the customer's id under a prefix for a wrapped key).
///
/// # Errors
/// [`SealError::Randomness`] when no nonce can be drawn.
pub fn seal_bytes(key: &DataKey, context: &[u8], plaintext: &[u8]) -> Result<Sealed, SealError> {
    let mut nonce = [0_u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| SealError::Randomness)?;
    let mut buffer = plaintext.to_vec();
    key.aead()?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context),
            &mut buffer,
        )
        .map_err(|_| SealError::Open)?;
    Ok(Sealed {
        version: SEALED_VERSION,
        nonce: STANDARD.encode(nonce),
        ciphertext: STANDARD.encode(buffer),
    })
}

/// What [`seal_bytes`] sealed with `key` for `context`.
///
/// # Errors
/// [`SealError::Scheme`] for an unknown scheme, [`SealError::Open`] for anything that
/// does not open.
pub fn open_bytes(key: &DataKey, context: &[u8], sealed: &Sealed) -> Result<Vec<u8>, SealError> {
    if sealed.version != SEALED_VERSION {
        return Err(SealError::Scheme(sealed.version));
    }
    let nonce: [u8; NONCE_LEN] = STANDARD
        .decode(&sealed.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or(SealError::Open)?;
    let mut buffer = STANDARD.decode(&sealed.ciphertext).map_err(|_| SealError::Open)?;
    let plain = key
        .aead()?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context),
            &mut buffer,
        )
        .map_err(|_| SealError::Open)?;
    Ok(plain.to_vec())
}

/// `plaintext`, personal data of `customer`, sealed with their key.
///
/// # Errors
/// As [`seal_bytes`].
pub fn seal(key: &DataKey, customer: &CustomerId, plaintext: &[u8]) -> Result<Sealed, SealError> {
    seal_bytes(key, customer.as_str().as_bytes(), plaintext)
}

/// Personal data of `customer` that [`seal`] sealed with their key.
///
/// # Errors
/// As [`open_bytes`]: a value of another customer does not open.
pub fn open(key: &DataKey, customer: &CustomerId, sealed: &Sealed) -> Result<Vec<u8>, SealError> {
    open_bytes(key, customer.as_str().as_bytes(), sealed)
}

/// Wraps data keys for storage: the stack's KMS key in AWS, a local key on a laptop.
pub trait KeyWrap: Send + Sync {
    /// `key`, wrapped, bound to `customer`.
    ///
    /// # Errors
    /// [`StoreError`] when the wrapping service fails.
    fn wrap(
        &self,
        key: &DataKey,
        customer: &CustomerId,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;

    /// The key [`Self::wrap`] wrapped for `customer`.
    ///
    /// # Errors
    /// [`StoreError`] when the service fails or the bytes are not a key it wrapped
    /// for this customer.
    fn unwrap(
        &self,
        wrapped: &[u8],
        customer: &CustomerId,
    ) -> impl Future<Output = Result<DataKey, StoreError>> + Send;
}

/// The customers' data keys.
pub trait CustomerKeys: Send + Sync {
    /// The customer's key, made (once, however many ask at the same time) if they
    /// have none.
    ///
    /// # Errors
    /// [`StoreError`].
    fn key_for(&self, customer: &CustomerId) -> impl Future<Output = Result<DataKey, StoreError>> + Send;

    /// The customer's key; `None` once they were erased (or before they had one).
    ///
    /// # Errors
    /// [`StoreError`].
    fn key(&self, customer: &CustomerId) -> impl Future<Output = Result<Option<DataKey>, StoreError>> + Send;

    /// Forgets the customer's key: what it sealed never opens again. Whether there
    /// was one.
    ///
    /// # Errors
    /// [`StoreError`].
    fn erase(&self, customer: &CustomerId) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    fn customer(id: &str) -> CustomerId {
        CustomerId::parse(id).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_for_its_customer_only() {
        let key = DataKey::generate().unwrap();
        let alice = customer("c-alice");
        let sealed = seal(&key, &alice, b"1 Main St").unwrap();
        assert_eq!(open(&key, &alice, &sealed).unwrap(), b"1 Main St");
        assert!(!sealed.ciphertext.contains("Main"), "{sealed:?}");
        // Another customer's id, another key, a flipped byte, another scheme.
        assert_eq!(open(&key, &customer("c-bob"), &sealed), Err(SealError::Open));
        assert_eq!(
            open(&DataKey::generate().unwrap(), &alice, &sealed),
            Err(SealError::Open)
        );
        let mut bytes = STANDARD.decode(&sealed.ciphertext).unwrap();
        bytes[0] ^= 1;
        let tampered = Sealed {
            ciphertext: STANDARD.encode(bytes),
            ..sealed.clone()
        };
        assert_eq!(open(&key, &alice, &tampered), Err(SealError::Open));
        let future = Sealed {
            version: 2,
            ..sealed.clone()
        };
        assert_eq!(open(&key, &alice, &future), Err(SealError::Scheme(2)));
        // A fresh nonce each time: the same value never seals the same way twice.
        assert_ne!(seal(&key, &alice, b"1 Main St").unwrap(), sealed);
    }

    #[test]
    fn a_key_is_its_thirty_two_bytes_and_never_printed() {
        let key = DataKey::generate().unwrap();
        assert_eq!(DataKey::from_bytes(key.expose()).unwrap(), key);
        assert_eq!(DataKey::from_bytes(&[0; 16]), Err(SealError::KeyLength));
        assert_eq!(format!("{key:?}"), "DataKey(..)");
    }
}
