//! Crypto-shredding: each customer's personal data sealed with a data key of their own
//! (`docs/decisions/personal-data.md`).
//!
//! [`seal`] and [`open`] are AES-256-GCM (`ring`, the AEAD the TLS stack already links)
//! with a random 96-bit nonce and the customer's id as associated data, so a value
//! sealed for one customer never opens as another's. [`CustomerKeys`] keeps the data
//! keys, each wrapped by a [`KeyWrap`] (the stack's KMS key in AWS, a local wrapping
//! key on a laptop): erasing a customer deletes their key, and every value sealed with
//! it is noise from then on.

use std::collections::HashMap;
use std::future::Future;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use orderflow_domain::customer::{Customer, CustomerCommand, PersonalDataErased};
use orderflow_domain::order::view::OrderView;
use orderflow_domain::order::{ErasedAddress, Order, OrderEvent, PersonalAddress, ShippingAddress};
use orderflow_domain::personal::{PERSONAL_FIELDS, SEALED_VERSION, Sealed};
use orderflow_domain::{CustomerId, Envelope, Metadata, OrderId};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::{Clock, CommandService, EventStore, LoadError, OrderViews, StoreError};

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

/// The personal-data use cases: seal an address on its way in, show views to their
/// readers, erase a customer, and gather what is held about one.
#[derive(Debug, Clone)]
pub struct PersonalData<K> {
    keys: K,
}

/// Why a customer's personal data was not erased.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    /// Orders not yet delivered or cancelled: shipping still needs their addresses.
    #[error("{} order(s) still in flight", .0.len())]
    InFlight(Vec<OrderId>),
    /// The reason is empty, too long or not plain text.
    #[error(transparent)]
    Refused(#[from] orderflow_domain::customer::CustomerError),
    /// A store failed; nothing that was done is undone, and asking again finishes it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The erasure could not be recorded.
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    /// Its id.
    pub erasure_id: String,
    /// The orders whose personal fields it erased.
    pub orders: Vec<OrderId>,
    /// Whether a key was there to delete.
    pub key_deleted: bool,
}

/// Everything held about a customer, their personal fields opened.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    /// Whose.
    pub customer_id: CustomerId,
    /// Whether a data key is held for them (false once erased).
    pub key_held: bool,
    /// Every field the system counts as personal.
    pub personal_fields: &'static [&'static str],
    /// Their orders, newest first, as a read shows them.
    pub orders: Vec<OrderView>,
    /// The events that name them: each order's `OrderPlaced` (its address opened) and
    /// their erasures.
    pub events: Vec<serde_json::Value>,
}

/// The most of a customer's orders one erasure or access request reads.
pub const MAX_ORDERS: usize = 10_000;

impl<K: CustomerKeys> PersonalData<K> {
    /// The use cases over a key store.
    pub const fn new(keys: K) -> Self {
        Self { keys }
    }

    /// The key store.
    pub const fn keys(&self) -> &K {
        &self.keys
    }

    /// `address` sealed for `customer` with their key, made on first use.
    ///
    /// # Errors
    /// [`StoreError`] when the key store or the randomness fails.
    pub async fn seal_address(
        &self,
        customer: &CustomerId,
        address: &ShippingAddress,
    ) -> Result<Sealed, StoreError> {
        let key = self.keys.key_for(customer).await?;
        let plain = serde_json::to_vec(address).map_err(|e| StoreError::new("encode an address", e))?;
        seal(&key, customer, &plain).map_err(|e| StoreError::new("seal an address", e))
    }

    /// `views` as a read shows them: each sealed address opened with its customer's
    /// key, or erased when the key is gone. One key read per customer, none when no
    /// view holds a sealed address.
    ///
    /// # Errors
    /// [`StoreError`] when the key store fails.
    pub async fn show(&self, mut views: Vec<OrderView>) -> Result<Vec<OrderView>, StoreError> {
        let mut keys: HashMap<CustomerId, Option<DataKey>> = HashMap::new();
        for view in &mut views {
            let Some(PersonalAddress::Sealed(_)) = &view.shipping_address else {
                continue;
            };
            if !keys.contains_key(&view.customer_id) {
                let key = self.keys.key(&view.customer_id).await?;
                keys.insert(view.customer_id.clone(), key);
            }
            let key = keys.get(&view.customer_id).and_then(Option::as_ref);
            view.shipping_address = view
                .shipping_address
                .take()
                .map(|address| shown(key, &view.customer_id, address));
        }
        Ok(views)
    }

    /// One view as a read shows it ([`Self::show`]).
    ///
    /// # Errors
    /// [`StoreError`] when the key store fails.
    pub async fn show_one(&self, view: OrderView) -> Result<OrderView, StoreError> {
        let mut shown = self.show(vec![view]).await?;
        shown
            .pop()
            .ok_or_else(|| StoreError::new("show an order", "no view"))
    }

    /// Erases `customer`'s personal data: refused while any of their orders is in
    /// flight (shipping needs its address until delivery); otherwise deletes their
    /// data key, replaces the read model's copies with the erased marker and records
    /// `PersonalDataErased` on the customer's stream. Asking again finishes an erasure
    /// a failure interrupted, and records another.
    ///
    /// The orders are those the read model knows: an order placed in the moment before
    /// the erasure, not yet projected, is not waited for, and its address reads as
    /// erased like the others'.
    ///
    /// # Errors
    /// [`EraseError`].
    pub async fn erase<V: OrderViews, S: EventStore, C: Clock>(
        &self,
        views: &V,
        commands: &CommandService<S, C>,
        customer: &CustomerId,
        reason: &str,
        metadata: &Metadata,
    ) -> Result<Erased, EraseError> {
        if !orderflow_domain::customer::valid_reason(reason) {
            return Err(orderflow_domain::customer::CustomerError::Reason.into());
        }
        let orders = orders_of(views, customer).await?;
        let in_flight: Vec<OrderId> = orders
            .iter()
            .filter(|o| !o.status.is_final())
            .map(|o| o.order_id)
            .collect();
        if !in_flight.is_empty() {
            return Err(EraseError::InFlight(in_flight));
        }
        let key_deleted = self.keys.erase(customer).await?;
        for order in &orders {
            views.erase_personal(order.order_id).await?;
        }
        let erased = PersonalDataErased {
            erasure_id: uuid::Uuid::now_v7().to_string(),
            customer_id: customer.clone(),
            reason: reason.to_owned(),
            orders: orders.iter().map(|o| o.order_id).collect(),
            key_deleted,
            erased_at: commands.clock().now(),
        };
        let recorded = Erased {
            erasure_id: erased.erasure_id.clone(),
            orders: erased.orders.clone(),
            key_deleted,
        };
        commands
            .execute::<Customer>(
                customer.as_str(),
                CustomerCommand::RecordErasure(erased),
                metadata,
                None,
            )
            .await
            .map_err(|e| match e {
                crate::CommandError::Domain(refused) => EraseError::Refused(refused),
                other => EraseError::Store(StoreError::new("record an erasure", other)),
            })?;
        tracing::info!(customer_id = %customer, erasure_id = %recorded.erasure_id, orders = recorded.orders.len(), key_deleted, actor = %metadata.actor, "personal data erased");
        Ok(recorded)
    }

    /// Everything held about `customer`: their orders as a read shows them, each
    /// order's `OrderPlaced` with its address opened, and their erasures.
    ///
    /// # Errors
    /// [`StoreError`] or [`LoadError`] when a store fails.
    pub async fn held<V: OrderViews, S: EventStore, C: Clock>(
        &self,
        views: &V,
        commands: &CommandService<S, C>,
        customer: &CustomerId,
    ) -> Result<Held, EraseError> {
        let key = self.keys.key(customer).await?;
        let orders = orders_of(views, customer).await?;
        let repository = commands.repository();
        let mut events = Vec::with_capacity(orders.len());
        for order in &orders {
            let placed = repository
                .history_page::<Order>(&order.order_id.to_string(), 0, 1)
                .await?;
            for mut envelope in placed {
                if let OrderEvent::Placed(placed) = &mut envelope.data {
                    placed.shipping_address = placed
                        .shipping_address
                        .take()
                        .map(|a| shown(key.as_ref(), customer, a));
                }
                events.push(to_value(&envelope)?);
            }
        }
        for envelope in repository.history::<Customer>(customer.as_str()).await? {
            events.push(to_value(&envelope)?);
        }
        let orders = orders
            .into_iter()
            .map(|mut view| {
                view.shipping_address = view
                    .shipping_address
                    .take()
                    .map(|a| shown(key.as_ref(), customer, a));
                view
            })
            .collect();
        Ok(Held {
            customer_id: customer.clone(),
            key_held: key.is_some(),
            personal_fields: PERSONAL_FIELDS,
            orders,
            events,
        })
    }
}

fn to_value<E: orderflow_domain::DomainEvent>(
    envelope: &Envelope<E>,
) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(&envelope.to_json()).map_err(|e| StoreError::new("encode an event", e))
}

/// Every order of `customer` the read model holds, newest first (at most
/// [`MAX_ORDERS`]).
async fn orders_of<V: OrderViews>(views: &V, customer: &CustomerId) -> Result<Vec<OrderView>, StoreError> {
    let mut orders = Vec::new();
    let mut after = None;
    loop {
        let page = views.by_customer(customer, 100, after.as_ref()).await?;
        orders.extend(page.orders);
        match page.next {
            Some(next) if orders.len() < MAX_ORDERS => after = Some(next),
            _ => return Ok(orders),
        }
    }
}

/// `address` of `customer` as a read shows it, given their key (`None`: erased): a
/// sealed address opened, or erased when it does not open with the key (the key was
/// deleted, and a later order made a new one). Anything else as it is.
#[must_use]
pub fn shown(key: Option<&DataKey>, customer: &CustomerId, address: PersonalAddress) -> PersonalAddress {
    match address {
        PersonalAddress::Sealed(sealed) => key
            .and_then(|key| open(key, customer, &sealed).ok())
            .and_then(|plain| serde_json::from_slice::<ShippingAddress>(&plain).ok())
            .map_or(PersonalAddress::Erased(ErasedAddress), PersonalAddress::Clear),
        other => other,
    }
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
