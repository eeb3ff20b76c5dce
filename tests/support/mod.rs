//! A provisioned stack with a seeded catalog and the local runner, and the few
//! operations the saga tests need to drive and inspect it.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different subset"
)]

use std::collections::HashMap;
use std::time::Duration;

use orderflow_adapters::DynamoEventStore;
use orderflow_adapters::catalog::{DynamoCatalog, Product};
use orderflow_adapters::payment::{DynamoVault, LedgerEntry, SimulatedGateway};
use orderflow_app::{Clock, CommandService, PaymentVault, Repository, SystemClock};
use orderflow_cli::runner::{Options, Runner};
use orderflow_domain::order::{
    Order, OrderCommand, OrderState, OrderStatus, PaymentToken, PlaceOrder, PlacedOrder, PricedLine,
};
use orderflow_domain::{Aggregate, Currency, CustomerId, Metadata, OrderId, Quantity, Sku, Timestamp};
use orderflow_provision::Template;
use orderflow_provision::local::{self, unique_name};
use uuid::Uuid;

/// The catalog every test starts from: (sku, price, stock).
pub const CATALOG: &[(&str, u64, u64)] = &[("SKU-1", 1299, 100), ("SKU-2", 500, 100), ("SKU-RARE", 9900, 2)];

pub struct Fixture {
    pub runner: Runner,
    pub template: Template,
    pub catalog: DynamoCatalog,
    pub gateway: SimulatedGateway,
    pub vault: DynamoVault,
    pub commands: CommandService<DynamoEventStore, SystemClock>,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

pub fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

impl Fixture {
    pub async fn new(duplicate_deliveries: bool) -> Self {
        let template = Template::load(&Template::default_path()).unwrap();
        let stack = local::provision_stack(&template, &unique_name("saga"))
            .await
            .expect("the emulators are running (make test starts them)");
        let dynamodb = local::dynamodb_client().await.unwrap();
        let table = |id: &str| stack.table(id).unwrap().to_owned();
        let catalog = DynamoCatalog::new(dynamodb.clone(), table("CatalogTable"));
        for (sku, price, stock) in CATALOG {
            catalog
                .put(&Product {
                    sku: Sku::parse(*sku).unwrap(),
                    name: format!("Product {sku}"),
                    price_amount: *price,
                    currency: usd(),
                    available: *stock,
                    reserved: 0,
                    sold: 0,
                })
                .await
                .unwrap();
        }
        let store = DynamoEventStore::new(dynamodb.clone(), table("EventStoreTable"), table("SnapshotTable"));
        let fixture_parts = (
            SimulatedGateway::new(dynamodb.clone(), table("PaymentProviderTable")),
            DynamoVault::new(dynamodb.clone(), table("PaymentVaultTable")),
        );
        let options = Options {
            failed_visibility: Some(Duration::ZERO),
            duplicate_deliveries,
            receive_wait: Duration::ZERO,
            ..Options::default()
        };
        let runner = Runner::new(stack, &template, options).await.unwrap();
        Self {
            runner,
            template,
            catalog,
            gateway: fixture_parts.0,
            vault: fixture_parts.1,
            commands: CommandService::new(Repository::new(store, 50), SystemClock, 5),
            dynamodb,
        }
    }

    fn metadata(actor: &str) -> Metadata {
        let id = Uuid::now_v7().to_string();
        Metadata {
            correlation_id: id.clone(),
            causation_id: format!("req-{id}"),
            actor: actor.to_owned(),
        }
    }

    /// Places an order priced from the catalog, keeping its token in the vault, as the
    /// order API does.
    pub async fn place(&self, lines: &[(&str, u64)], token: &str) -> OrderId {
        let order_id = OrderId::from_uuid(Uuid::now_v7());
        self.place_with_id(order_id, lines, token).await;
        order_id
    }

    pub async fn cancel(&self, order_id: OrderId) -> Result<(), String> {
        self.commands
            .execute::<Order>(
                &order_id.to_string(),
                OrderCommand::Cancel {
                    detail: Some("changed my mind".into()),
                },
                &Self::metadata("user-1"),
                None,
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    pub async fn order(&self, order_id: OrderId) -> PlacedOrder {
        let loaded = self
            .commands
            .repository()
            .load::<Order>(&order_id.to_string())
            .await
            .unwrap();
        match loaded.state {
            OrderState::Placed(order) => *order,
            OrderState::NotPlaced => panic!("order {order_id} does not exist"),
        }
    }

    pub async fn status(&self, order_id: OrderId) -> OrderStatus {
        self.order(order_id).await.status
    }

    /// Event types of one aggregate's stream.
    pub async fn stream<A: Aggregate>(&self, order_id: OrderId) -> Vec<&'static str> {
        self.commands
            .repository()
            .history::<A>(&order_id.to_string())
            .await
            .unwrap()
            .iter()
            .map(|e| orderflow_domain::DomainEvent::event_type(&e.data))
            .collect()
    }

    pub async fn stock(&self) -> HashMap<String, Product> {
        self.catalog
            .all()
            .await
            .unwrap()
            .into_iter()
            .map(|p| (p.sku.to_string(), p))
            .collect()
    }

    pub async fn ledger(&self) -> HashMap<String, LedgerEntry> {
        self.gateway
            .ledger()
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.order_id.clone(), e))
            .collect()
    }

    pub async fn settle(&self) {
        self.runner.run_until_quiet(3, 400).await.unwrap();
    }
}

impl Fixture {
    /// Whether the vault no longer holds the order's token.
    pub async fn vault_token_gone(&self, order_id: OrderId) -> bool {
        self.vault.token(order_id).await.unwrap().is_none()
    }

    /// How many capture attempts the simulated provider counted for `tok_flaky`.
    pub async fn provider_attempts(&self, order_id: OrderId) -> u64 {
        let item = self
            .dynamodb
            .get_item()
            .table_name(self.runner.stack().table("PaymentProviderTable").unwrap())
            .key(
                "id",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("attempts#{order_id}")),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap_or_default();
        item.get("attempts")
            .and_then(|n| n.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Messages sitting in any dead-letter queue of the stack.
    pub async fn dead_letters(&self) -> Vec<String> {
        let sqs = local::sqs_client().await.unwrap();
        let mut found = Vec::new();
        for (logical_id, queue) in &self.runner.stack().messaging.queues {
            if !logical_id.contains("DeadLetter") {
                continue;
            }
            let attributes = sqs
                .get_queue_attributes()
                .queue_url(&queue.url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap_or_default();
            let count = attributes
                .get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            if count > 0 {
                found.push(format!("{logical_id}: {count}"));
            }
        }
        found
    }
}

impl Fixture {
    /// The order API over this stack, as Lambda runs it (JWT principal).
    pub fn api(&self) -> axum::Router {
        let table = |id: &str| self.runner.stack().table(id).unwrap().to_owned();
        let store = DynamoEventStore::new(
            self.dynamodb.clone(),
            table("EventStoreTable"),
            table("SnapshotTable"),
        );
        let api = order_api::Api::new(
            CommandService::new(Repository::new(store, 50), SystemClock, 5),
            order_api::Api::idempotency(orderflow_adapters::DynamoIdempotencyStore::new(
                self.dynamodb.clone(),
                table("IdempotencyTable"),
            )),
            self.catalog.clone(),
            self.vault.clone(),
            order_api::AuthMode::Jwt,
        );
        order_api::router(std::sync::Arc::new(api))
    }

    /// Places an order with a given id (the one the sample payloads name).
    pub async fn place_with_id(&self, order_id: OrderId, lines: &[(&str, u64)], token: &str) {
        let skus: Vec<_> = lines.iter().map(|(s, _)| Sku::parse(*s).unwrap()).collect();
        let products = self.catalog.products(&skus).await.unwrap();
        let token = PaymentToken::parse(token).unwrap();
        self.vault
            .keep(
                order_id,
                &token,
                Timestamp::parse("2099-01-01T00:00:00Z").unwrap(),
            )
            .await
            .unwrap();
        let lines = lines
            .iter()
            .map(|(sku, quantity)| {
                let sku = Sku::parse(*sku).unwrap();
                PricedLine {
                    unit_price: products[&sku].price(),
                    sku,
                    quantity: Quantity::parse(*quantity).unwrap(),
                }
            })
            .collect();
        let command = OrderCommand::Place(PlaceOrder {
            order_id,
            customer_id: CustomerId::parse("c-1").unwrap(),
            lines,
            payment: token.masked(),
            shipping_address: serde_json::from_str(
                r#"{"name":"Ada","line1":"1 Main St","city":"Springfield","postalCode":"12345","country":"US"}"#,
            )
            .unwrap(),
            placed_at: SystemClock.now(),
        });
        self.commands
            .execute::<Order>(&order_id.to_string(), command, &Self::metadata("user-1"), None)
            .await
            .unwrap();
    }
}
