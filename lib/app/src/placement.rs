//! The place-order use case, over any event store, catalog and vault: price the lines
//! from the catalog, decide (so an invalid order keeps no token), keep the payment token,
//! append `OrderPlaced`. A placement that ran before under the same key (it crashed, or
//! its answer was lost, after the append) answers with the order it placed.
//!
//! The order id is derived from the principal's scoped idempotency key
//! ([`order_id_for`]), so however often a placement runs it lands on one stream. Rate
//! limits and the idempotency record stay with the caller (the HTTP API).

use std::collections::HashSet;

use jiff::SignedDuration;
use orderflow_domain::order::view::OrderView;
use orderflow_domain::order::{
    Order, OrderCommand, OrderError, OrderEvent, PaymentToken, PlaceOrder, PricedLine,
};
use orderflow_domain::{Aggregate, CustomerId, Envelope, Metadata, OrderId, Quantity, Sku};
use uuid::Uuid;

use crate::{
    Catalog, Clock, CommandError, CommandService, EventStore, Kept, LoadError, Loaded, PaymentVault,
    StoreError,
};

/// How long a payment token waits in the vault for the payment service.
pub const TOKEN_RETENTION: SignedDuration = SignedDuration::from_hours(24);

/// The namespace order ids are derived in.
const ORDER_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6465_7266_6c6f_772d_6f72_6465_7273);

/// The order id of the placement under `scoped_key` (a principal's idempotency key,
/// [`crate::scoped_key`]): one key, one order, however often the placement runs.
#[must_use]
pub fn order_id_for(scoped_key: &str) -> OrderId {
    OrderId::from_uuid(Uuid::new_v5(&ORDER_ID_NAMESPACE, scoped_key.as_bytes()))
}

/// An order to place, parsed at the edge.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// Its id ([`order_id_for`]).
    pub order_id: OrderId,
    /// Whose it is.
    pub customer_id: CustomerId,
    /// What, as the customer asked (priced here from the catalog).
    pub items: Vec<(Sku, Quantity)>,
    /// The card token (kept in the vault, only its mask in the event).
    pub token: PaymentToken,
    /// Where to, sealed for the customer ([`crate::personal::PersonalData::seal_address`]):
    /// the use case never holds it in clear.
    pub address: orderflow_domain::personal::Sealed,
}

/// A placed order.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The order as its `OrderPlaced` left it.
    pub order: OrderView,
    /// The events this run appended: empty when an earlier run had placed it.
    pub events: Vec<Envelope<OrderEvent>>,
}

/// Why an order was not placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// A line names a SKU the catalog does not list.
    #[error("{0} is not in the catalog")]
    UnknownSku(Sku),
    /// The key's stream holds another request's order (a key reused with other items).
    #[error("this idempotency key was used with a different request")]
    KeyReused,
    /// The order refused, or the append failed.
    #[error(transparent)]
    Command(#[from] CommandError<OrderError>),
    /// The order's stream could not be read.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The catalog or the vault failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The use case.
#[derive(Debug, Clone)]
pub struct Placement<S, C, K, V> {
    commands: CommandService<S, C>,
    catalog: K,
    vault: V,
}

impl<S: EventStore, C: Clock, K: Catalog, V: PaymentVault> Placement<S, C, K, V> {
    /// The use case over its ports.
    pub const fn new(commands: CommandService<S, C>, catalog: K, vault: V) -> Self {
        Self {
            commands,
            catalog,
            vault,
        }
    }

    /// Places `order`, or answers with the order an earlier run of it placed.
    ///
    /// # Errors
    /// [`PlaceError`].
    pub async fn place(&self, order: NewOrder, metadata: &Metadata) -> Result<Placed, PlaceError> {
        let now = self.commands.clock().now();
        let mut seen = HashSet::new();
        let skus: Vec<Sku> = order
            .items
            .iter()
            .map(|(s, _)| s.clone())
            .filter(|s| seen.insert(s.clone()))
            .collect();
        let products = self.catalog.products(&skus).await?;
        let lines = order
            .items
            .into_iter()
            .map(|(sku, quantity)| {
                let product = products
                    .get(&sku)
                    .ok_or_else(|| PlaceError::UnknownSku(sku.clone()))?;
                Ok(PricedLine {
                    unit_price: product.price(),
                    sku,
                    quantity,
                })
            })
            .collect::<Result<Vec<_>, PlaceError>>()?;
        let order_id = order.order_id;
        let command = OrderCommand::Place(PlaceOrder {
            order_id,
            customer_id: order.customer_id,
            lines,
            payment: order.token.masked(),
            shipping_address: order.address,
            placed_at: now,
        });
        // Decide first, so an invalid order stores no token.
        Order::decide(&orderflow_domain::order::OrderState::NotPlaced, command.clone())
            .map_err(|e| PlaceError::Command(CommandError::Domain(e)))?;
        // A token already held for this order is another request's under the same key
        // (the vault keeps the first, so a retry cannot swap the card).
        let kept = self
            .vault
            .keep(order_id, &order.token, now.plus(TOKEN_RETENTION))
            .await?;
        if kept == Kept::Other {
            return Err(PlaceError::KeyReused);
        }
        // The id is new unless this placement ran before, so the order is decided on an
        // empty stream without reading it: a stream that holds the order makes the
        // append conflict, and the command is decided again on what it holds.
        match self
            .commands
            .execute_loaded::<Order>(&order_id.to_string(), Loaded::empty(), command.clone(), metadata)
            .await
        {
            Ok(executed) => {
                let placed = OrderView::fold(&executed.events)
                    .ok_or(PlaceError::Command(CommandError::Domain(OrderError::NotPlaced)))?;
                Ok(Placed {
                    order: placed,
                    events: executed.events,
                })
            }
            // This placement ran before (it crashed, or its answer was lost, after the
            // append): the order on its stream is the one to answer with.
            Err(CommandError::Domain(OrderError::AlreadyPlaced)) => {
                let placed = self.placed_before(order_id, &command).await;
                // The vault held no token, so payment has settled and forgotten the
                // first one: the copy this retry left is nobody's to use.
                if kept == Kept::New
                    && let Err(error) = self.vault.forget(order_id).await
                {
                    tracing::warn!(%error, "a retry's payment token not forgotten; its TTL will remove it");
                }
                placed
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The answer a placement gave the first time: the order as its `OrderPlaced` left
    /// it. The stream is this principal's and key's alone, so it holds this request,
    /// unless the key was reused with other items after its record expired: that is
    /// refused as any reuse is.
    async fn placed_before(&self, order_id: OrderId, command: &OrderCommand) -> Result<Placed, PlaceError> {
        let history = self
            .commands
            .repository()
            .history_page::<Order>(&order_id.to_string(), 0, 1)
            .await?;
        let same = match (history.first().map(|e| &e.data), command) {
            (Some(OrderEvent::Placed(placed)), OrderCommand::Place(place)) => {
                placed.customer_id == place.customer_id
                    && placed.lines.len() == place.lines.len()
                    && placed
                        .lines
                        .iter()
                        .zip(&place.lines)
                        .all(|(a, b)| a.sku == b.sku && a.quantity == b.quantity)
            }
            _ => false,
        };
        if !same {
            return Err(PlaceError::KeyReused);
        }
        tracing::info!(%order_id, "placement ran again; answering with the order it placed");
        let order = OrderView::fold(&history)
            .ok_or(PlaceError::Command(CommandError::Domain(OrderError::NotPlaced)))?;
        Ok(Placed {
            order,
            events: Vec::new(),
        })
    }
}
