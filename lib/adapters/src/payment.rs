//! The default `PaymentGateway`: a deterministic simulated provider with a ledger in
//! DynamoDB, and the `PaymentVault` on DynamoDB.
//!
//! The provider behaves as the brief says: `tok_decline` is declined (`card_declined`),
//! `tok_insufficient_funds` too (`insufficient_funds`), `tok_flaky` fails transiently
//! on its first attempt for an order, anything else is captured. Captures are keyed by
//! order id like a real provider's idempotency keys, so a retried capture returns the
//! first one. The ledger (`capture#<orderId>` items) is what the money invariant is
//! checked against: it is the provider's view, independent of our events.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use orderflow_app::{CaptureOutcome, GatewayError, PaymentGateway, PaymentVault, StoreError};
use orderflow_domain::order::PaymentToken;
use orderflow_domain::{Money, OrderId, Timestamp};
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

impl PaymentGateway for SimulatedGateway {
    async fn capture(
        &self,
        order_id: OrderId,
        amount: Money,
        token: &PaymentToken,
    ) -> Result<CaptureOutcome, GatewayError> {
        match token.expose_secret() {
            "tok_decline" => {
                return Ok(CaptureOutcome::Declined {
                    reason: "card_declined".into(),
                });
            }
            "tok_insufficient_funds" => {
                return Ok(CaptureOutcome::Declined {
                    reason: "insufficient_funds".into(),
                });
            }
            "tok_flaky" if self.first_attempt(order_id).await? => {
                return Err(GatewayError::Unavailable(
                    "simulated provider timeout (tok_flaky)".into(),
                ));
            }
            _ => {}
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
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(CaptureOutcome::Captured {
                payment_id: entry.payment_id,
            }),
            // The idempotency key was used: return the first capture, charge nothing.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                let existing = self
                    .existing_capture(order_id)
                    .await?
                    .ok_or_else(|| GatewayError::Unavailable("capture vanished".into()))?;
                Ok(CaptureOutcome::Captured {
                    payment_id: existing.payment_id,
                })
            }
            Err(e) => Err(unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(e))),
        }
    }

    async fn refund(&self, order_id: OrderId, payment_id: &str, _amount: Money) -> Result<(), GatewayError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(format!("capture#{order_id}")))
            .update_expression("SET refunded = :yes")
            .condition_expression("attribute_exists(id) AND paymentId = :pid")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":pid", AttributeValue::S(payment_id.to_owned()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(GatewayError::Refused(format!(
                    "no capture {payment_id} for order {order_id}"
                )))
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
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("orderId", AttributeValue::S(order_id.to_string()))
            .item("token", AttributeValue::S(token.expose_secret().to_owned()))
            .item(
                "expiration",
                AttributeValue::N(expires_at.as_jiff().as_second().to_string()),
            )
            .send()
            .await
            .map_err(|e| StoreError::new("keep payment token", e))?;
        Ok(())
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
