//! The default `PaymentGateway`: a deterministic simulated provider with a ledger in
//! DynamoDB, and the `PaymentVault` on DynamoDB.
//!
//! The provider behaves as the brief says: `tok_decline` is declined (`card_declined`),
//! `tok_insufficient_funds` too (`insufficient_funds`), `tok_flaky` fails transiently
//! on its first attempt for an order, anything else is captured. Captures are keyed by
//! order id and refunds by capture id, as a real provider's idempotency keys are: a
//! repeated call returns the first answer, a repeated key with another amount is
//! refused, and a refund of a capture already refunded is success. Cancelling an order's payment refunds a capture made under its key and
//! leaves a `void#<orderId>` marker that every later capture checks in the same
//! transaction: a capture and a cancel, in whichever order, never leave money taken. The ledger (`capture#<orderId>` items) is what the money invariant is
//! checked against: it is the provider's view, independent of our events.
//!
//! For drills, the provider can be taken down for a while ([`SimulatedGateway::set_outage`]:
//! an `outage` item with its end): until then every call fails as unavailable, as a
//! real provider's outage does, across every process that shares the ledger.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, ReturnValue, TransactWriteItem};
use orderflow_app::{
    CaptureOutcome, Clock, GatewayError, Kept, PaymentGateway, PaymentVault, ProviderCapture, StoreError,
};
use orderflow_domain::order::PaymentToken;
use orderflow_domain::{Currency, Money, OrderId, Timestamp};
use serde::{Deserialize, Serialize};

/// One capture in the simulated provider's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// `capture#<orderId>`.
    pub id: String,
    /// The capture id.
    pub payment_id: String,
    /// The order.
    pub order_id: String,
    /// Captured amount, minor units.
    pub amount: u64,
    /// Currency.
    pub currency: String,
    /// Whether it was refunded.
    pub refunded: bool,
}

/// The simulated provider over its ledger table.
#[derive(Debug, Clone)]
pub struct SimulatedGateway {
    client: Client,
    table: String,
}

/// The ledger item that holds a simulated outage's end.
const OUTAGE: &str = "outage";

fn unavailable(error: impl std::fmt::Display) -> GatewayError {
    GatewayError::Unavailable(error.to_string())
}

impl SimulatedGateway {
    /// The provider with its ledger in `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Every capture in the ledger.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn ledger(&self) -> Result<Vec<LedgerEntry>, StoreError> {
        let items = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(id, :capture)")
            .expression_attribute_values(":capture", AttributeValue::S("capture#".into()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| StoreError::new("scan ledger", e))?;
        serde_dynamo::from_items(items).map_err(|e| StoreError::new("decode ledger", e))
    }

    /// Takes the provider down until `until` (`None`: back up now). Every call before
    /// then fails as [`GatewayError::Unavailable`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn set_outage(&self, until: Option<Timestamp>) -> Result<(), StoreError> {
        let until = until.map_or(0, |t| t.as_micros());
        self.client
            .put_item()
            .table_name(&self.table)
            .item("id", AttributeValue::S(OUTAGE.into()))
            .item("until", AttributeValue::N(until.to_string()))
            .send()
            .await
            .map_err(|e| StoreError::new("set the simulated outage", e))?;
        Ok(())
    }

    /// Fails while a simulated outage lasts.
    async fn available(&self) -> Result<(), GatewayError> {
        let until = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(OUTAGE.into()))
            .send()
            .await
            .map_err(unavailable)?
            .item
            .and_then(|i| {
                i.get("until")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<i64>().ok())
            })
            .unwrap_or(0);
        if until > Timestamp::from_jiff(jiff::Timestamp::now()).as_micros() {
            return Err(GatewayError::Unavailable("simulated provider outage".into()));
        }
        Ok(())
    }

    /// Counts an attempt; true for the order's first.
    async fn first_attempt(&self, order_id: OrderId) -> Result<bool, GatewayError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(format!("attempts#{order_id}")))
            .update_expression("ADD attempts :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(unavailable)?;
        let attempts = output
            .attributes
            .and_then(|a| {
                a.get("attempts")
                    .and_then(|n| n.as_n().ok())
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .unwrap_or(1);
        Ok(attempts == 1)
    }

    async fn existing_capture(&self, order_id: OrderId) -> Result<Option<LedgerEntry>, GatewayError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(format!("capture#{order_id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?
            .item;
        item.map(|i| serde_dynamo::from_item(i).map_err(unavailable))
            .transpose()
    }
}

/// The card that fails transiently on its first attempt for an order.
const FLAKY: &str = "tok_flaky";

fn flaky() -> GatewayError {
    GatewayError::Unavailable("simulated provider timeout (tok_flaky)".into())
}

/// The simulated provider's declining cards: `tok_decline` (`card_declined`) and
/// `tok_insufficient_funds`.
fn declined_by(token: &PaymentToken) -> Option<CaptureOutcome> {
    let reason = match token.expose_secret() {
        "tok_decline" => "card_declined",
        "tok_insufficient_funds" => "insufficient_funds",
        _ => return None,
    };
    Some(CaptureOutcome::Declined {
        reason: reason.into(),
    })
}

impl PaymentGateway for SimulatedGateway {
    async fn capture(
        &self,
        order_id: OrderId,
        amount: Money,
        token: &PaymentToken,
    ) -> Result<CaptureOutcome, GatewayError> {
        self.available().await?;
        if let Some(declined) = declined_by(token) {
            return Ok(declined);
        }
        if token.expose_secret() == FLAKY && self.first_attempt(order_id).await? {
            return Err(flaky());
        }
        let entry = LedgerEntry {
            id: format!("capture#{order_id}"),
            payment_id: format!("pay_{order_id}"),
            order_id: order_id.to_string(),
            amount: amount.amount,
            currency: amount.currency.to_string(),
            refunded: false,
        };
        let item = serde_dynamo::to_item(&entry).map_err(unavailable)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(id)")
            .build()
            .map_err(unavailable)?;
        let not_voided = ConditionCheck::builder()
            .table_name(&self.table)
            .key("id", AttributeValue::S(format!("void#{order_id}")))
            .condition_expression("attribute_not_exists(id)")
            .build()
            .map_err(unavailable)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(not_voided).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        let Err(error) = result else {
            return Ok(CaptureOutcome::Captured {
                payment_id: entry.payment_id,
            });
        };
        let reasons: Vec<Option<String>> = match error.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(e)) => e
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().map(str::to_owned))
                .collect(),
            _ => return Err(unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(error))),
        };
        let failed = |i: usize| reasons.get(i).and_then(Option::as_deref) == Some("ConditionalCheckFailed");
        if failed(0) {
            // The order's payment was cancelled first: this key takes no money.
            return Ok(CaptureOutcome::Declined {
                reason: "payment_cancelled".into(),
            });
        }
        if failed(1) {
            // The idempotency key was used: return the first capture, charge nothing,
            // unless this call asks another amount under it.
            let existing = self
                .existing_capture(order_id)
                .await?
                .ok_or_else(|| GatewayError::Unavailable("capture vanished".into()))?;
            if !same_amount(&existing, amount) {
                return Err(capture_key_reused(order_id));
            }
            return Ok(CaptureOutcome::Captured {
                payment_id: existing.payment_id,
            });
        }
        Err(GatewayError::Unavailable(format!(
            "capture transaction cancelled: {reasons:?}"
        )))
    }

    async fn capture_of(&self, order_id: OrderId) -> Result<Option<ProviderCapture>, GatewayError> {
        self.available().await?;
        let Some(entry) = self.existing_capture(order_id).await?.filter(|e| !e.refunded) else {
            return Ok(None);
        };
        let amount = Money::new(
            entry.amount,
            Currency::parse(&entry.currency).map_err(unavailable)?,
        );
        Ok(Some(ProviderCapture {
            payment_id: entry.payment_id,
            amount,
        }))
    }

    async fn cancel(&self, order_id: OrderId) -> Result<Option<ProviderCapture>, GatewayError> {
        self.available().await?;
        // The marker first: a capture racing this call either committed before it (and
        // is found below) or fails its check on it.
        self.client
            .put_item()
            .table_name(&self.table)
            .item("id", AttributeValue::S(format!("void#{order_id}")))
            .send()
            .await
            .map_err(unavailable)?;
        let Some(entry) = self.existing_capture(order_id).await? else {
            return Ok(None);
        };
        let amount = Money::new(
            entry.amount,
            Currency::parse(&entry.currency).map_err(unavailable)?,
        );
        self.refund(order_id, &entry.payment_id, amount).await?;
        Ok(Some(ProviderCapture {
            payment_id: entry.payment_id,
            amount,
        }))
    }

    /// Keyed by the capture: a repeated refund of the same amount answers as the first
    /// did (already refunded is success); another amount is refused.
    async fn refund(&self, order_id: OrderId, payment_id: &str, amount: Money) -> Result<(), GatewayError> {
        self.available().await?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(format!("capture#{order_id}")))
            .update_expression("SET refunded = :yes")
            .condition_expression(
                "attribute_exists(id) AND paymentId = :pid AND amount = :amount AND currency = :currency",
            )
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":pid", AttributeValue::S(payment_id.to_owned()))
            .expression_attribute_values(":amount", AttributeValue::N(amount.amount.to_string()))
            .expression_attribute_values(":currency", AttributeValue::S(amount.currency.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                match self.existing_capture(order_id).await? {
                    Some(entry) if entry.payment_id == payment_id => Err(refund_key_reused(payment_id)),
                    _ => Err(GatewayError::Refused(format!(
                        "no capture {payment_id} for order {order_id}"
                    ))),
                }
            }
            Err(e) => Err(unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(e))),
        }
    }
}

/// The payment vault table (`orderId`, `token`, TTL `expiration`).
#[derive(Debug, Clone)]
pub struct DynamoVault {
    client: Client,
    table: String,
}

impl DynamoVault {
    /// The vault in `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

impl PaymentVault for DynamoVault {
    async fn keep(
        &self,
        order_id: OrderId,
        token: &PaymentToken,
        expires_at: Timestamp,
    ) -> Result<Kept, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("orderId", AttributeValue::S(order_id.to_string()))
            .item("token", AttributeValue::S(token.expose_secret().to_owned()))
            .item(
                "expiration",
                AttributeValue::N(expires_at.as_jiff().as_second().to_string()),
            )
            .condition_expression("attribute_not_exists(orderId) OR #token = :token")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":token", AttributeValue::S(token.expose_secret().to_owned()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(if output.attributes.is_some_and(|a| !a.is_empty()) {
                Kept::Same
            } else {
                Kept::New
            }),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(Kept::Other)
            }
            Err(e) => Err(StoreError::new("keep payment token", e)),
        }
    }

    async fn token(&self, order_id: OrderId) -> Result<Option<PaymentToken>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("orderId", AttributeValue::S(order_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new("read payment token", e))?
            .item;
        let Some(token) = item
            .as_ref()
            .and_then(|i| i.get("token"))
            .and_then(|t| t.as_s().ok())
        else {
            return Ok(None);
        };
        PaymentToken::parse(token.clone())
            .map(Some)
            .map_err(|e| StoreError::new("read payment token", e))
    }

    async fn forget(&self, order_id: OrderId) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("orderId", AttributeValue::S(order_id.to_string()))
            .send()
            .await
            .map_err(|e| StoreError::new("forget payment token", e))?;
        Ok(())
    }
}

/// What the provider did for one order, as its books show it: the calls that reached
/// it and the money they moved. A provider honouring its idempotency keys moves money
/// at most once each way however often it is called.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProviderCalls {
    /// Capture calls answered (an outage's refusals are not counted).
    pub capture_calls: u32,
    /// Captures that took money.
    pub captures: u32,
    /// Refund calls answered.
    pub refund_calls: u32,
    /// Refunds that gave money back.
    pub refunds: u32,
    /// Calls that reused a key with a different amount (refused).
    pub conflicts: u32,
}

#[derive(Debug, Default)]
struct MemoryProvider {
    captures: std::collections::HashMap<OrderId, LedgerEntry>,
    voided: std::collections::HashSet<OrderId>,
    attempts: std::collections::HashMap<OrderId, u64>,
    calls: std::collections::HashMap<OrderId, ProviderCalls>,
    outage_until: Option<Timestamp>,
}

impl MemoryProvider {
    fn calls(&mut self, order_id: OrderId) -> &mut ProviderCalls {
        self.calls.entry(order_id).or_default()
    }
}

/// The simulated provider in memory: the same rules as [`SimulatedGateway`] (declining
/// tokens, `tok_flaky`'s first attempt, one capture per order key, a refund per capture
/// key, a repeated key with another amount refused, a cancel that refunds and refuses
/// later captures, outages), for tests and the simulation. It keeps its books per order
/// ([`Self::calls`]). An outage ends by its clock: the system's, or the simulation's
/// ([`Self::with_clock`]).
#[derive(Clone)]
pub struct MemoryGateway {
    provider: std::sync::Arc<std::sync::Mutex<MemoryProvider>>,
    clock: std::sync::Arc<dyn Clock>,
}

impl std::fmt::Debug for MemoryGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryGateway")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryGateway {
    fn default() -> Self {
        Self::with_clock(orderflow_app::SystemClock)
    }
}

impl MemoryGateway {
    /// A provider with an empty ledger, on the system clock.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A provider with an empty ledger whose outages end by `clock`.
    #[must_use]
    pub fn with_clock(clock: impl Clock + 'static) -> Self {
        Self {
            provider: std::sync::Arc::default(),
            clock: std::sync::Arc::new(clock),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryProvider> {
        self.provider
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many times `refund` was called for `order_id`.
    #[must_use]
    pub fn refund_calls(&self, order_id: OrderId) -> u32 {
        self.calls(order_id).refund_calls
    }

    /// The provider's books for `order_id`.
    #[must_use]
    pub fn calls(&self, order_id: OrderId) -> ProviderCalls {
        self.lock().calls.get(&order_id).copied().unwrap_or_default()
    }

    /// Every capture in the ledger.
    #[must_use]
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.lock().captures.values().cloned().collect()
    }

    /// Takes the provider down until `until` (`None`: back up now).
    pub fn set_outage(&self, until: Option<Timestamp>) {
        self.lock().outage_until = until;
    }

    fn available(&self, provider: &MemoryProvider) -> Result<(), GatewayError> {
        match provider.outage_until {
            Some(until) if until > self.clock.now() => {
                Err(GatewayError::Unavailable("simulated provider outage".into()))
            }
            _ => Ok(()),
        }
    }

    fn live(entry: &LedgerEntry) -> Result<ProviderCapture, GatewayError> {
        Ok(ProviderCapture {
            payment_id: entry.payment_id.clone(),
            amount: Money::new(
                entry.amount,
                Currency::parse(&entry.currency).map_err(unavailable)?,
            ),
        })
    }
}

/// Whether a ledger entry holds exactly `amount`.
fn same_amount(entry: &LedgerEntry, amount: Money) -> bool {
    entry.amount == amount.amount && entry.currency == amount.currency.to_string()
}

fn capture_key_reused(order_id: OrderId) -> GatewayError {
    GatewayError::Refused(format!(
        "idempotency key of order {order_id}'s capture reused with a different amount"
    ))
}

fn refund_key_reused(payment_id: &str) -> GatewayError {
    GatewayError::Refused(format!(
        "refund of {payment_id} for another amount than its capture"
    ))
}

impl PaymentGateway for MemoryGateway {
    async fn capture(
        &self,
        order_id: OrderId,
        amount: Money,
        token: &PaymentToken,
    ) -> Result<CaptureOutcome, GatewayError> {
        let mut provider = self.lock();
        self.available(&provider)?;
        provider.calls(order_id).capture_calls += 1;
        if let Some(declined) = declined_by(token) {
            return Ok(declined);
        }
        if token.expose_secret() == FLAKY {
            let attempts = provider.attempts.entry(order_id).or_default();
            *attempts += 1;
            if *attempts == 1 {
                return Err(flaky());
            }
        }
        if provider.voided.contains(&order_id) {
            return Ok(CaptureOutcome::Declined {
                reason: "payment_cancelled".into(),
            });
        }
        if let Some(entry) = provider.captures.get(&order_id) {
            // The key was used: the first answer again, or a refusal for another amount.
            if !same_amount(entry, amount) {
                let payment_id = entry.payment_id.clone();
                provider.calls(order_id).conflicts += 1;
                tracing::warn!(%payment_id, "capture key reused with a different amount");
                return Err(capture_key_reused(order_id));
            }
            return Ok(CaptureOutcome::Captured {
                payment_id: entry.payment_id.clone(),
            });
        }
        let entry = LedgerEntry {
            id: format!("capture#{order_id}"),
            payment_id: format!("pay_{order_id}"),
            order_id: order_id.to_string(),
            amount: amount.amount,
            currency: amount.currency.to_string(),
            refunded: false,
        };
        let payment_id = entry.payment_id.clone();
        provider.captures.insert(order_id, entry);
        provider.calls(order_id).captures += 1;
        Ok(CaptureOutcome::Captured { payment_id })
    }

    async fn capture_of(&self, order_id: OrderId) -> Result<Option<ProviderCapture>, GatewayError> {
        let provider = self.lock();
        self.available(&provider)?;
        provider
            .captures
            .get(&order_id)
            .filter(|e| !e.refunded)
            .map(Self::live)
            .transpose()
    }

    async fn cancel(&self, order_id: OrderId) -> Result<Option<ProviderCapture>, GatewayError> {
        let mut provider = self.lock();
        self.available(&provider)?;
        provider.voided.insert(order_id);
        let Some(entry) = provider.captures.get_mut(&order_id) else {
            return Ok(None);
        };
        let refunds = !entry.refunded;
        entry.refunded = true;
        let live = Self::live(entry);
        if refunds {
            provider.calls(order_id).refunds += 1;
        }
        live.map(Some)
    }

    async fn refund(&self, order_id: OrderId, payment_id: &str, amount: Money) -> Result<(), GatewayError> {
        let mut provider = self.lock();
        self.available(&provider)?;
        provider.calls(order_id).refund_calls += 1;
        let Some(entry) = provider
            .captures
            .get_mut(&order_id)
            .filter(|e| e.payment_id == payment_id)
        else {
            return Err(GatewayError::Refused(format!(
                "no capture {payment_id} for order {order_id}"
            )));
        };
        if !same_amount(entry, amount) {
            provider.calls(order_id).conflicts += 1;
            return Err(refund_key_reused(payment_id));
        }
        // Keyed by the capture: a repeated refund answers as the first did.
        let refunds = !entry.refunded;
        entry.refunded = true;
        if refunds {
            provider.calls(order_id).refunds += 1;
        }
        Ok(())
    }
}

/// The payment vault in memory. Like the table's TTL, expiry is housekeeping, not a
/// promise: a token is served until it is forgotten.
#[derive(Debug, Clone, Default)]
pub struct MemoryVault {
    tokens: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<OrderId, (String, Timestamp)>>>,
}

impl MemoryVault {
    /// An empty vault.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<OrderId, (String, Timestamp)>> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl PaymentVault for MemoryVault {
    async fn keep(
        &self,
        order_id: OrderId,
        token: &PaymentToken,
        expires_at: Timestamp,
    ) -> Result<Kept, StoreError> {
        let mut tokens = self.lock();
        let kept = match tokens.get(&order_id) {
            None => Kept::New,
            Some((held, _)) if held == token.expose_secret() => Kept::Same,
            Some(_) => return Ok(Kept::Other),
        };
        tokens.insert(order_id, (token.expose_secret().to_owned(), expires_at));
        Ok(kept)
    }

    async fn token(&self, order_id: OrderId) -> Result<Option<PaymentToken>, StoreError> {
        self.lock()
            .get(&order_id)
            .map(|(token, _)| {
                PaymentToken::parse(token.clone()).map_err(|e| StoreError::new("decode token", e))
            })
            .transpose()
    }

    async fn forget(&self, order_id: OrderId) -> Result<(), StoreError> {
        self.lock().remove(&order_id);
        Ok(())
    }
}
