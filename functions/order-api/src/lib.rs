//! The order API: an axum [`Router`](axum::Router) that runs in Lambda through `lambda_http` (HTTP
//! API, payload 2.0) and, unchanged, on localhost under the dev runner.
//!
//! | route | does |
//! |---|---|
//! | `POST /orders` | place an order (`Idempotency-Key`), 201 + `Location` |
//! | `GET /orders/{id}` | the order from the read model; `?consistent=true` folded from the store now; `?at=<RFC 3339>` as it stood then |
//! | `GET /orders/{id}/events` | its audit trail, paginated (`limit`, `cursor`) |
//! | `POST /orders/{id}/cancel` | cancel with a reason (`If-Match` optional) |
//! | `POST /orders/{id}/status` | operator transition (`If-Match` optional) |
//! | `GET /customers/{id}/orders` | a customer's orders, newest first, paginated |
//! | `GET /customers/{id}/personal-data` | everything held about a customer, opened |
//! | `DELETE /customers/{id}/personal-data` | erase it (`?reason=`): 202, or 409 while orders are in flight |
//! | `GET /products` | the catalog, paginated (`limit`, `cursor`) |
//! | `GET /products/{sku}` | operators: a product with its counters |
//! | `PUT /products/{sku}` | operators: list a product (201) or change its name and price |
//! | `POST /products/{sku}/stock` | operators: receive or write off stock (`Idempotency-Key`) |
//! | `GET /products/{sku}/events` | operators: a product's audit trail, paginated |
//!
//! Prices come from the catalog, never from the client. Who may do what is decided in
//! [`access`]; the actor of every command (`customer:<id>` or `operator:<sub>`) is
//! recorded in the events' metadata.

pub mod access;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod openapi;
mod orders;
pub mod paging;
pub mod personal;
pub mod products;
mod routes;

use jiff::SignedDuration;
use orderflow_adapters::catalog::{DynamoCatalog, DynamoStockLedger, MemoryCatalog, MemoryStockLedger};
use orderflow_adapters::config::Config;
use orderflow_adapters::payment::DynamoVault;
use orderflow_adapters::payment::MemoryVault;
use orderflow_adapters::personal::{DynamoCustomerKeys, KeyWrapping, MemoryCustomerKeys};
use orderflow_adapters::rate_limit::DynamoRateLimiter;
use orderflow_adapters::rate_limit::MemoryRateLimiter;
use orderflow_adapters::read_model::DynamoOrderViews;
use orderflow_adapters::secrets::SecretsManager;
use orderflow_adapters::{DynamoEventStore, DynamoIdempotencyStore};
use orderflow_adapters::{MemoryEventStore, MemoryIdempotencyStore, MemoryOrderViews};
use orderflow_app::personal::{CustomerKeys, PersonalData};
use orderflow_app::placement::Placement;
use orderflow_app::{
    Catalog, CatalogService, Clock, CommandService, EventStore, Idempotency, IdempotencyStore, OrderViews,
    PaymentVault, RateLimiter, StockLedger, SystemClock,
};

use access::HasPrincipalClaims;
pub use access::{Action, Decision, Principal, PrincipalClaims, authorize};
pub use error::ApiError;
pub use extract::{JsonBody, MAX_BODY_BYTES, PlaceOrderRequest};
use paging::{CursorKey, Cursors};
pub use routes::{openapi as openapi_document, operations, router};

/// How the API authorizes and pages: everything it needs besides its stores.
#[derive(Debug, Clone)]
pub struct Access<L = DynamoRateLimiter> {
    /// Which claim holds a customer's id.
    pub claims: PrincipalClaims,
    /// The key cursors are signed with.
    pub cursors: Cursors,
    /// Orders per minute per principal.
    pub placements: L,
}

/// What the API runs over, one port each: DynamoDB in Lambda and `orderflow-dev up`
/// ([`Dynamo`]), memory in the in-memory API tests ([`InMemory`]).
pub trait Stores: Send + Sync + 'static {
    /// The event store.
    type Events: EventStore + Clone + std::fmt::Debug + 'static;
    /// The idempotency records.
    type Keys: IdempotencyStore + Clone + std::fmt::Debug + 'static;
    /// The catalog.
    type Catalog: Catalog + Clone + std::fmt::Debug + 'static;
    /// The payment vault.
    type Vault: PaymentVault + Clone + std::fmt::Debug + 'static;
    /// The order read model.
    type Views: OrderViews + Clone + std::fmt::Debug + 'static;
    /// The placement rate limit.
    type Limiter: RateLimiter + Clone + std::fmt::Debug + 'static;
    /// The clock.
    type Clock: Clock + Clone + std::fmt::Debug + 'static;
    /// The customers' data keys.
    type Customers: CustomerKeys + Clone + std::fmt::Debug + 'static;
    /// Product events with the counters they move.
    type Ledger: StockLedger<Store = Self::Events> + Clone + std::fmt::Debug + 'static;

    /// The ledger over the event store and the catalog.
    /// The stock ledger over the store and catalog, claiming stock changes' keys where
    /// `keys` keeps them.
    fn ledger(store: &Self::Events, catalog: &Self::Catalog, keys: &Self::Keys) -> Self::Ledger;
}

/// The API over DynamoDB.
#[derive(Debug, Clone, Copy)]
pub struct Dynamo;

impl Stores for Dynamo {
    type Events = DynamoEventStore;
    type Keys = DynamoIdempotencyStore;
    type Catalog = DynamoCatalog;
    type Vault = DynamoVault;
    type Views = DynamoOrderViews;
    type Limiter = DynamoRateLimiter;
    type Clock = SystemClock;
    type Customers = DynamoCustomerKeys<KeyWrapping>;
    type Ledger = DynamoStockLedger;

    fn ledger(
        store: &DynamoEventStore,
        catalog: &DynamoCatalog,
        keys: &DynamoIdempotencyStore,
    ) -> DynamoStockLedger {
        DynamoStockLedger::new(store.clone(), catalog.clone()).with_claims(keys.table())
    }
}

/// The API in memory.
#[derive(Debug, Clone, Copy)]
pub struct InMemory;

impl Stores for InMemory {
    type Events = MemoryEventStore;
    type Keys = MemoryIdempotencyStore;
    type Catalog = MemoryCatalog;
    type Vault = MemoryVault;
    type Views = MemoryOrderViews;
    type Limiter = MemoryRateLimiter;
    type Clock = SystemClock;
    type Customers = MemoryCustomerKeys;
    type Ledger = MemoryStockLedger;

    fn ledger(
        store: &MemoryEventStore,
        catalog: &MemoryCatalog,
        _keys: &MemoryIdempotencyStore,
    ) -> MemoryStockLedger {
        MemoryStockLedger::new(store.clone(), catalog.clone())
    }
}

/// What the API needs.
#[derive(Debug, Clone)]
pub struct Api<P: Stores = Dynamo> {
    commands: CommandService<P::Events, P::Clock>,
    idempotency: Idempotency<P::Keys, P::Clock>,
    catalog: P::Catalog,
    placement: Placement<P::Events, P::Clock, P::Catalog, P::Vault>,
    catalog_changes: CatalogService<P::Ledger, P::Clock>,
    views: P::Views,
    personal: PersonalData<P::Customers>,
    access: Access<P::Limiter>,
}

impl<P: Stores> Api<P> {
    /// The API over its stores.
    #[must_use]
    pub fn new(
        commands: CommandService<P::Events, P::Clock>,
        idempotency: Idempotency<P::Keys, P::Clock>,
        catalog: P::Catalog,
        vault: P::Vault,
        views: P::Views,
        keys: P::Customers,
        access: Access<P::Limiter>,
    ) -> Self {
        let store = commands.repository().store();
        Self {
            catalog_changes: CatalogService::new(
                commands.repository().clone(),
                P::ledger(store, &catalog, idempotency.store()),
                commands.clock().clone(),
            ),
            placement: Placement::new(commands.clone(), catalog.clone(), vault),
            commands,
            idempotency,
            catalog,
            views,
            personal: PersonalData::new(keys),
            access,
        }
    }

    /// The idempotency lease and retention the API uses by default: longer than a
    /// request, a day of retries.
    #[must_use]
    pub fn idempotency_over(store: P::Keys, clock: P::Clock) -> Idempotency<P::Keys, P::Clock> {
        Self::idempotency_for(store, clock, DEFAULT_IDEMPOTENCY_RETENTION)
    }

    /// The idempotency lease, and records kept for `retention`.
    #[must_use]
    pub fn idempotency_for(
        store: P::Keys,
        clock: P::Clock,
        retention: SignedDuration,
    ) -> Idempotency<P::Keys, P::Clock> {
        Idempotency::new(store, clock, SignedDuration::from_secs(30), retention)
    }
}

impl Api<Dynamo> {
    /// The API as its function's variables describe it (`EVENT_STORE_TABLE`,
    /// `SNAPSHOT_TABLE`, `SNAPSHOT_EVERY`, `IDEMPOTENCY_TABLE`, `CATALOG_TABLE`,
    /// `PAYMENT_VAULT_TABLE`, `ORDER_VIEW_TABLE` and [`Access::from_variables`]'s), with
    /// `cursors` signing its pages and `wrapping` the customers' data keys in
    /// `CUSTOMER_KEY_TABLE`: Lambda and `orderflow-dev up` build it here alike.
    ///
    /// # Errors
    /// [`AccessConfigError::Config`] naming a missing or malformed variable.
    pub fn from_config(
        config: &Config,
        cursors: impl Into<Cursors>,
        wrapping: KeyWrapping,
    ) -> Result<Self, AccessConfigError> {
        let dynamodb = &config.dynamodb;
        Ok(Self::new(
            CommandService::new(
                config.repository()?,
                SystemClock,
                orderflow_app::command::DEFAULT_MAX_ATTEMPTS,
            ),
            Self::idempotency_for(
                DynamoIdempotencyStore::new(dynamodb.clone(), config.required("IDEMPOTENCY_TABLE")?),
                SystemClock,
                idempotency_retention(config)?,
            ),
            DynamoCatalog::new(dynamodb.clone(), config.required("CATALOG_TABLE")?),
            DynamoVault::new(dynamodb.clone(), config.required("PAYMENT_VAULT_TABLE")?),
            DynamoOrderViews::new(dynamodb.clone(), config.required("ORDER_VIEW_TABLE")?),
            DynamoCustomerKeys::new(dynamodb.clone(), config.required("CUSTOMER_KEY_TABLE")?, wrapping),
            Access::from_variables(|name| config.var(name), dynamodb.clone(), cursors)?,
        ))
    }

    /// The idempotency lease and retention the API uses: longer than a request, a day
    /// of retries.
    #[must_use]
    pub fn idempotency(store: DynamoIdempotencyStore) -> Idempotency<DynamoIdempotencyStore, SystemClock> {
        Self::idempotency_over(store, SystemClock)
    }
}

impl<P: Stores> HasPrincipalClaims for Api<P> {
    fn principal_claims(&self) -> &PrincipalClaims {
        &self.access.claims
    }
}

/// How long an idempotency record is kept unless `IDEMPOTENCY_RETENTION_HOURS` (the
/// template's `IdempotencyRetentionHours`) says otherwise.
pub const DEFAULT_IDEMPOTENCY_RETENTION: SignedDuration = SignedDuration::from_hours(24);

/// `IDEMPOTENCY_RETENTION_HOURS`, 1 to 168 (default 24).
///
/// # Errors
/// [`orderflow_adapters::ConfigError::Invalid`] out of range or not a number.
fn idempotency_retention(config: &Config) -> Result<SignedDuration, orderflow_adapters::ConfigError> {
    let hours = config.number_or("IDEMPOTENCY_RETENTION_HOURS", 24)?;
    if !(1..=168).contains(&hours) {
        return Err(orderflow_adapters::ConfigError::Invalid {
            name: "IDEMPOTENCY_RETENTION_HOURS",
            reason: format!("{hours} is not 1 to 168 hours"),
        });
    }
    Ok(SignedDuration::from_hours(i64::try_from(hours).unwrap_or(24)))
}

/// The rate-limit scope of placements in the rate-limit table.
pub const PLACEMENT_SCOPE: &str = "place-order";

/// Why the API's access settings could not be read at start-up.
#[derive(Debug, thiserror::Error)]
pub enum AccessConfigError {
    /// A variable is missing or malformed.
    #[error(transparent)]
    Config(#[from] orderflow_adapters::ConfigError),
    /// The cursor key's secret could not be read.
    #[error("reading the cursor key secret {secret_id} failed")]
    Secret {
        /// The secret's id or ARN.
        secret_id: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The secret is not a usable key.
    #[error("the cursor key secret {secret_id}: {reason}")]
    WeakKey {
        /// The secret's id or ARN.
        secret_id: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Access {
    /// The settings from the function's variables (`CUSTOMER_ID_CLAIM`,
    /// `GROUPS_CLAIM`, `OPERATOR_GROUP`, `RATE_LIMIT_TABLE`, `ORDERS_PER_MINUTE`), read
    /// through `variable` so that the dev runner can hand over the template's values as
    /// Lambda gets them.
    ///
    /// # Errors
    /// [`AccessConfigError::Config`] for a missing table or a malformed number.
    pub fn from_variables(
        variable: impl Fn(&str) -> Option<String>,
        dynamodb: aws_sdk_dynamodb::Client,
        cursors: impl Into<Cursors>,
    ) -> Result<Self, AccessConfigError> {
        use orderflow_adapters::ConfigError;
        let present = |name: &'static str| variable(name).filter(|v| !v.trim().is_empty());
        let per_minute = match present("ORDERS_PER_MINUTE") {
            None => DEFAULT_ORDERS_PER_MINUTE,
            Some(raw) => {
                raw.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ConfigError::Invalid {
                        name: "ORDERS_PER_MINUTE",
                        reason: format!("{raw:?} is not a positive whole number"),
                    })?
            }
        };
        Ok(Self {
            claims: PrincipalClaims {
                customer_id_claim: present("CUSTOMER_ID_CLAIM")
                    .unwrap_or_else(|| access::DEFAULT_CUSTOMER_ID_CLAIM.to_owned()),
                groups_claim: present("GROUPS_CLAIM")
                    .unwrap_or_else(|| access::DEFAULT_GROUPS_CLAIM.to_owned()),
                operator_group: present("OPERATOR_GROUP")
                    .unwrap_or_else(|| access::DEFAULT_OPERATOR_GROUP.to_owned()),
            },
            cursors: cursors.into(),
            placements: DynamoRateLimiter::new(
                dynamodb,
                present("RATE_LIMIT_TABLE").ok_or(ConfigError::Missing("RATE_LIMIT_TABLE"))?,
                PLACEMENT_SCOPE,
                per_minute,
            ),
        })
    }
}

/// Orders a principal may place per minute unless `ORDERS_PER_MINUTE` says otherwise.
pub const DEFAULT_ORDERS_PER_MINUTE: u64 = 60;

/// The function's whole `main` on Lambda: telemetry, the API from the process
/// environment (the cursor key from Secrets Manager, customer data keys wrapped by KMS),
/// and the runtime loop with its metrics.
///
/// # Errors
/// When the configuration is incomplete or the runtime fails.
pub async fn lambda_main() -> Result<(), lambda_http::Error> {
    orderflow_lambda::telemetry::init();
    let config = orderflow_adapters::config::Config::from_process();
    let cursors = cursors_from_secret(
        SecretsManager::from_lambda_environment()?,
        config.required("CURSOR_KEY_SECRET")?,
    );
    let wrapping = orderflow_adapters::personal::KeyWrapping::Kms(Box::new(
        orderflow_adapters::personal::KmsKeyWrap::from_lambda_environment(
            config.required("CUSTOMER_DATA_KEY")?,
        )?,
    ));
    let api = Api::from_config(&config, cursors, wrapping)?;
    orderflow_lambda::run(
        "order-api",
        lambda_http::lambda_runtime::Runtime::new(gateway::HttpApi::new(router(std::sync::Arc::new(api)))),
    )
    .await
}

/// The cursor key from the Secrets Manager secret `secret_id`, read through `secrets`
/// when a list first needs it, so a function's start waits for no secret.
#[must_use]
pub fn cursors_from_secret(secrets: SecretsManager, secret_id: String) -> Cursors {
    let reader: std::sync::Arc<(SecretsManager, String)> = std::sync::Arc::new((secrets, secret_id));
    Cursors::deferred(move || {
        let reader = reader.clone();
        async move { cursor_key_from_secret(&reader.0, &reader.1).await }
    })
}

/// The cursor key from a Secrets Manager secret: its current `SecretString`, and the
/// previous one (`AWSPREVIOUS`, after a rotation) to open the cursors it sealed.
///
/// # Errors
/// [`AccessConfigError::Secret`] when it cannot be read, [`AccessConfigError::WeakKey`]
/// when it is too short to be a key.
pub async fn cursor_key_from_secret(
    secrets: &SecretsManager,
    secret_id: &str,
) -> Result<CursorKey, AccessConfigError> {
    let text = secrets
        .secret_string(secret_id)
        .await
        .map_err(|e| AccessConfigError::Secret {
            secret_id: secret_id.to_owned(),
            source: Box::new(e),
        })?;
    let weak = |reason| AccessConfigError::WeakKey {
        secret_id: secret_id.to_owned(),
        reason,
    };
    let key = CursorKey::new(text.as_bytes()).map_err(weak)?;
    let previous = secrets
        .secret_string_at(secret_id, "AWSPREVIOUS")
        .await
        .map_err(|e| AccessConfigError::Secret {
            secret_id: secret_id.to_owned(),
            source: Box::new(e),
        })?;
    match previous {
        Some(previous) => key.with_previous(previous.as_bytes()).map_err(weak),
        None => Ok(key),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    fn config(hours: Option<&'static str>) -> Config {
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version_latest()
                .build(),
        );
        Config::new(
            move |name| {
                (name == "IDEMPOTENCY_RETENTION_HOURS")
                    .then(|| hours.map(str::to_owned))
                    .flatten()
            },
            client,
            None,
        )
    }

    #[test]
    fn idempotency_records_are_kept_as_the_template_says_within_a_week() {
        assert_eq!(
            idempotency_retention(&config(None)).unwrap(),
            DEFAULT_IDEMPOTENCY_RETENTION
        );
        assert_eq!(
            idempotency_retention(&config(Some("72"))).unwrap(),
            SignedDuration::from_hours(72)
        );
        for bad in ["0", "169", "a day"] {
            assert!(idempotency_retention(&config(Some(bad))).is_err(), "{bad}");
        }
    }
}
