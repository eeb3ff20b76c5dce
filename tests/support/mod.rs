//! Test support: an [`Inspector`] that reads a provisioned stack's tables and checks
//! the brief's invariants, and a [`Fixture`] that adds an in-process runner and a way
//! to place orders as the API does.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different subset"
)]

use orderflow_adapters::personal::{DynamoCustomerKeys, KeyWrapping, LocalKeyWrap};
use orderflow_app::personal::{DataKey, PersonalData};
use std::collections::HashMap;
use std::ops::Deref;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use orderflow_adapters::DynamoEventStore;
use orderflow_adapters::catalog::{DynamoCatalog, Product};
use orderflow_adapters::payment::{DynamoVault, LedgerEntry, SimulatedGateway};
use orderflow_adapters::read_model::DynamoOrderViews;
use orderflow_app::{Catalog, Clock, CommandService, PaymentVault, Repository, SystemClock};
use orderflow_domain::order::view::OrderView;
use orderflow_domain::order::{
    Order, OrderCommand, OrderState, OrderStatus, PaymentToken, PlaceOrder, PlacedOrder, PricedLine,
};
use orderflow_domain::payment::Payment;
use orderflow_domain::{Aggregate, Currency, CustomerId, Metadata, OrderId, Quantity, Sku, Timestamp};
use orderflow_provision::Template;
use orderflow_provision::local::{self, Stack, unique_name};
use orderflow_runner::{Options, Runner};
use uuid::Uuid;

/// The catalog the in-process tests start from: (sku, price, stock).
pub const CATALOG: &[(&str, u64, u64)] = &[("SKU-1", 1299, 100), ("SKU-2", 500, 100), ("SKU-RARE", 9900, 2)];

pub fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

/// Reads a stack's tables and queues.
pub struct Inspector {
    pub stack: Stack,
    pub catalog: DynamoCatalog,
    pub gateway: SimulatedGateway,
    pub vault: DynamoVault,
    /// The customers' data keys, wrapped by the fixture's local key.
    pub keys: DynamoCustomerKeys<KeyWrapping>,
    /// The read model the API serves.
    pub views: DynamoOrderViews,
    pub commands: CommandService<DynamoEventStore, SystemClock>,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Inspector {
    /// The catalog's changes (listing, repricing, receipts, write-offs) as operators
    /// make them.
    pub fn stocking(
        &self,
    ) -> orderflow_app::CatalogService<orderflow_adapters::catalog::DynamoStockLedger, SystemClock> {
        orderflow_app::CatalogService::new(
            self.commands.repository().clone(),
            orderflow_adapters::catalog::DynamoStockLedger::new(
                self.commands.repository().store().clone(),
                self.catalog.clone(),
            ),
            SystemClock,
        )
    }

    pub async fn new(stack: Stack) -> Self {
        let dynamodb = local::dynamodb_client().await.unwrap();
        let table = |id: &str| stack.table(id).unwrap().to_owned();
        let store = DynamoEventStore::new(dynamodb.clone(), table("EventStoreTable"), table("SnapshotTable"));
        Self {
            catalog: DynamoCatalog::new(dynamodb.clone(), table("CatalogTable")),
            gateway: SimulatedGateway::new(dynamodb.clone(), table("PaymentProviderTable")),
            vault: DynamoVault::new(dynamodb.clone(), table("PaymentVaultTable")),
            keys: DynamoCustomerKeys::new(
                dynamodb.clone(),
                table("CustomerKeyTable"),
                KeyWrapping::Local(LocalKeyWrap::new(DataKey::from_bytes(&[7; 32]).unwrap())),
            ),
            views: orderflow_cli::target::order_views(&stack, &dynamodb).unwrap(),
            commands: CommandService::new(Repository::new(store, 50), SystemClock, 5),
            sqs: local::sqs_client().await.unwrap(),
            dynamodb,
            stack,
        }
    }

    pub fn metadata(actor: &str) -> Metadata {
        let id = Uuid::now_v7().to_string();
        Metadata {
            correlation_id: id.clone(),
            causation_id: format!("req-{id}"),
            actor: actor.to_owned(),
        }
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

    /// One aggregate's events for the order, decoded, in version order.
    pub async fn history<A: Aggregate>(
        &self,
        order_id: OrderId,
    ) -> Vec<orderflow_domain::Envelope<A::Event>> {
        self.commands
            .repository()
            .history::<A>(&order_id.to_string())
            .await
            .unwrap()
    }

    /// An order's events, decoded, in version order.
    pub async fn order_history(
        &self,
        order_id: OrderId,
    ) -> Vec<orderflow_domain::Envelope<orderflow_domain::order::OrderEvent>> {
        self.commands
            .repository()
            .history::<Order>(&order_id.to_string())
            .await
            .unwrap()
    }

    /// The consistency checker's rules find nothing on the order, and every
    /// compensation its participants made is recorded on it (after quiescence).
    pub async fn assert_audited(&self, order_id: OrderId) {
        use orderflow_domain::audit::{OrderStreams, audit_order, unrecorded_outcomes};
        use orderflow_domain::inventory::Inventory;
        use orderflow_domain::shipment::Shipment;
        let repository = self.commands.repository();
        let id = order_id.to_string();
        let (order, inventory, payment, shipment) = (
            repository.history::<Order>(&id).await.unwrap(),
            repository.history::<Inventory>(&id).await.unwrap(),
            repository.history::<Payment>(&id).await.unwrap(),
            repository.history::<Shipment>(&id).await.unwrap(),
        );
        let streams = OrderStreams {
            order: &order,
            inventory: &inventory,
            payment: &payment,
            shipment: &shipment,
        };
        assert_eq!(audit_order(streams), [], "{order_id}");
        assert_eq!(
            unrecorded_outcomes(streams),
            [],
            "{order_id}: outcomes not recorded"
        );
    }

    /// The order's view, folded from its events in the store.
    pub async fn folded_view(&self, order_id: OrderId) -> OrderView {
        OrderView::fold(&self.order_history(order_id).await).expect("the order is placed")
    }

    /// The order shows every compensation its participants made, at the time each
    /// made it: its payment `REFUNDED`, its stock `RELEASED`, its shipment (if it had
    /// one) `CANCELLED`.
    pub async fn assert_outcomes_recorded(&self, order_id: OrderId) {
        use orderflow_domain::inventory::{Inventory, InventoryEvent};
        use orderflow_domain::payment::PaymentEvent;
        use orderflow_domain::shipment::{Shipment, ShipmentEvent};
        let repository = self.commands.repository();
        let id = order_id.to_string();
        let refunded = repository
            .history::<Payment>(&id)
            .await
            .unwrap()
            .iter()
            .find(|e| matches!(e.data, PaymentEvent::Refunded(_)))
            .map(|e| e.occurred_at);
        let released = repository
            .history::<Inventory>(&id)
            .await
            .unwrap()
            .iter()
            .find(|e| matches!(e.data, InventoryEvent::Released(_)))
            .map(|e| e.occurred_at);
        let shipment_cancelled = repository
            .history::<Shipment>(&id)
            .await
            .unwrap()
            .iter()
            .find(|e| matches!(e.data, ShipmentEvent::Cancelled(_)))
            .map(|e| e.occurred_at);
        let view = self.folded_view(order_id).await;
        if let Some(at) = refunded {
            let payment = view.payment.as_ref().expect("a refunded order shows its payment");
            assert_eq!(
                (payment.status.as_str(), payment.refunded_at),
                ("REFUNDED", Some(at))
            );
        }
        if let Some(at) = released {
            assert_eq!(
                (view.stock.as_str(), view.stock_released_at),
                ("RELEASED", Some(at))
            );
        }
        if let Some(at) = shipment_cancelled {
            let shipment = view.shipment.as_ref().expect("a cancelled shipment shows");
            assert_eq!(
                (shipment.status.as_str(), shipment.cancelled_at),
                ("CANCELLED", Some(at))
            );
        }
        assert!(
            refunded.is_some() || released.is_some() || shipment_cancelled.is_some(),
            "nothing was compensated"
        );
    }

    /// Every order's view in `views` equals the fold of its events in the store.
    pub async fn assert_read_models(&self, views: &DynamoOrderViews, orders: &[OrderId]) {
        let mut wrong = Vec::new();
        for id in orders {
            let history = self.order_history(*id).await;
            let folded = OrderView::fold(&history);
            let stored = views.get(*id).await.unwrap().map(|s| s.view);
            let agrees = match (&stored, &folded) {
                (Some(s), Some(f)) => orderflow_app::read_model::agrees(s, f),
                (s, f) => s == f,
            };
            if !agrees {
                wrong.push(format!(
                    "{id}: stored version {:?}, store at {}",
                    stored.map(|v| v.version),
                    history.len()
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {} views differ from the fold of the store in {}: {wrong:?}",
            wrong.len(),
            orders.len(),
            views.table()
        );
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

    /// A confirmed order that was then cancelled is compensated everywhere: stock
    /// reserved then released, payment captured then refunded, shipment created then
    /// cancelled.
    pub async fn assert_compensated(&self, order_id: OrderId) {
        use orderflow_domain::{inventory::Inventory, shipment::Shipment};
        assert_eq!(
            self.stream::<Inventory>(order_id).await,
            ["StockReserved", "StockReleased"]
        );
        assert_eq!(
            self.stream::<Payment>(order_id).await,
            ["PaymentCaptured", "PaymentRefunded"]
        );
        assert_eq!(
            self.stream::<Shipment>(order_id).await,
            ["ShipmentCreated", "ShipmentCancelled"]
        );
    }

    /// Whether the vault no longer holds the order's token.
    pub async fn vault_token_gone(&self, order_id: OrderId) -> bool {
        self.vault.token(order_id).await.unwrap().is_none()
    }

    /// How many capture attempts the simulated provider counted for `tok_flaky`.
    pub async fn provider_attempts(&self, order_id: OrderId) -> u64 {
        let item = self
            .dynamodb
            .get_item()
            .table_name(self.stack.table("PaymentProviderTable").unwrap())
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

    /// Visible plus in-flight messages of every queue, by logical id.
    /// Everything the stack keeps, as text: every item of every table (events,
    /// snapshots, views, idempotency answers, keys, the vault, …) and the body of every
    /// message waiting in every queue and DLQ (received without hiding it).
    pub async fn stored_text(&self) -> String {
        let mut text = String::new();
        for table in self.stack.tables.values() {
            let items: Vec<_> = self
                .dynamodb
                .scan()
                .table_name(table)
                .into_paginator()
                .items()
                .send()
                .collect::<Vec<_>>()
                .await;
            for item in items {
                text.push_str(&format!("{:?}\n", item.unwrap()));
            }
        }
        for queue in self.stack.messaging.queues.values() {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&queue.url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
            for message in received.messages.unwrap_or_default() {
                text.push_str(message.body().unwrap_or_default());
                text.push('\n');
            }
        }
        text
    }

    pub async fn queue_depths(&self) -> HashMap<String, u64> {
        use aws_sdk_sqs::types::QueueAttributeName::{
            ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible,
        };
        let mut depths = HashMap::new();
        for (logical_id, queue) in &self.stack.messaging.queues {
            let attributes = self
                .sqs
                .get_queue_attributes()
                .queue_url(&queue.url)
                .attribute_names(ApproximateNumberOfMessages)
                .attribute_names(ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap_or_default();
            let count = |name| {
                attributes
                    .get(&name)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            depths.insert(
                logical_id.clone(),
                count(ApproximateNumberOfMessages) + count(ApproximateNumberOfMessagesNotVisible),
            );
        }
        depths
    }

    /// Dead-letter queues that hold anything, with their depth.
    pub async fn dead_letters(&self) -> Vec<String> {
        let mut found: Vec<_> = self
            .queue_depths()
            .await
            .into_iter()
            .filter(|(id, depth)| (id.contains("DeadLetter") || id.contains("Failure")) && *depth > 0)
            .map(|(id, depth)| format!("{id}: {depth}"))
            .collect();
        found.sort();
        found
    }

    /// The brief's invariants over `orders`, once the system is quiet:
    /// every order terminal; no double capture; captured - refunded = the total of the
    /// orders not cancelled; no cancelled order left charged; stock conserved for every
    /// SKU (initial = available + reserved + sold) and held only by confirmed orders;
    /// every DLQ empty.
    pub async fn assert_invariants(&self, orders: &[OrderId], initial_stock: &HashMap<String, u64>) {
        let ledger = self.ledger().await;
        let stock = self.stock().await;
        let mut expected_revenue = 0;
        let mut held: HashMap<String, u64> = HashMap::new();
        for id in orders {
            let order = self.order(*id).await;
            assert!(
                !matches!(order.status, OrderStatus::Pending),
                "{id} is terminal after quiescence: {:?}",
                order.status
            );
            let captures = self
                .stream::<Payment>(*id)
                .await
                .iter()
                .filter(|t| **t == "PaymentCaptured")
                .count();
            assert!(captures <= 1, "{id} captured {captures} times");
            self.assert_audited(*id).await;
            let entry = ledger.get(&id.to_string());
            if order.status == OrderStatus::Cancelled {
                assert!(
                    entry.is_none_or(|e| e.refunded),
                    "{id}: no cancelled order stays charged"
                );
            } else {
                expected_revenue += order.total.amount;
                assert!(
                    entry.is_some_and(|e| !e.refunded),
                    "{id}: a confirmed order is charged"
                );
                for line in &order.lines {
                    *held.entry(line.sku.to_string()).or_default() += u64::from(line.quantity.get());
                }
            }
        }
        let revenue: u64 = ledger
            .iter()
            .filter(|(id, e)| !e.refunded && orders.iter().any(|o| o.to_string() == **id))
            .map(|(_, e)| e.amount)
            .sum();
        assert_eq!(
            revenue, expected_revenue,
            "captured - refunded = total of the orders not cancelled"
        );
        for (sku, initial) in initial_stock {
            let product = &stock[sku];
            assert_eq!(
                product.available + product.reserved + product.sold,
                *initial,
                "{sku}: stock is conserved"
            );
            assert_eq!(
                product.reserved,
                held.get(sku).copied().unwrap_or(0),
                "{sku}: only live orders hold stock"
            );
        }
        assert!(
            self.dead_letters().await.is_empty(),
            "DLQs: {:?}",
            self.dead_letters().await
        );
    }
}

/// A fresh stack with a seeded catalog, and the in-process runner over it.
pub struct Fixture {
    pub runner: Runner,
    pub template: Template,
    inspector: Inspector,
}

impl Drop for Fixture {
    /// Deletes the stack's tables: DynamoDB Local slows down with every table it keeps
    /// (a sweep that takes 45 s on a fresh emulator took 400 s after the suite).
    fn drop(&mut self) {
        let tables: Vec<String> = self.stack.tables.values().cloned().collect();
        let dropped = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async {
                let Ok(dynamodb) = local::dynamodb_client().await else {
                    return;
                };
                futures::future::join_all(
                    tables
                        .iter()
                        .map(|table| dynamodb.delete_table().table_name(table).send()),
                )
                .await;
            });
        });
        let _ = dropped.join();
    }
}

impl Deref for Fixture {
    type Target = Inspector;
    fn deref(&self) -> &Inspector {
        &self.inspector
    }
}

impl Fixture {
    /// Seals the addresses of the orders this fixture places with `wrapping`'s keys
    /// (the local API's, when a test serves one over the stack).
    pub fn use_key_wrapping(&mut self, wrapping: KeyWrapping) {
        self.inspector.keys = DynamoCustomerKeys::new(
            self.inspector.dynamodb.clone(),
            self.inspector.stack.table("CustomerKeyTable").unwrap(),
            wrapping,
        );
    }

    pub async fn new(duplicate_deliveries: bool) -> Self {
        let options = Options {
            failed_visibility: Some(Duration::ZERO),
            duplicate_deliveries,
            receive_wait: Duration::ZERO,
            ..Options::default()
        };
        Self::with(Template::load(&Template::default_path()).unwrap(), options).await
    }

    /// A fixture over `template` (say, with parameter overrides), its runner with
    /// `options`.
    pub async fn with(template: Template, options: Options) -> Self {
        let stack = local::provision_stack(&template, &unique_name("saga"))
            .await
            .expect("the emulators are running (make test starts them)");
        let inspector = Inspector::new(stack.clone()).await;
        // Stocked as operators stock a stack: product events with their counters.
        let stocking = inspector.stocking();
        for (sku, price, stock) in CATALOG {
            let details = orderflow_domain::product::ProductDetails {
                name: format!("Product {sku}"),
                price: orderflow_domain::Money::new(*price, usd()),
                description: None,
            };
            stocking
                .describe(
                    &Sku::parse(*sku).unwrap(),
                    details,
                    *stock,
                    "initial count",
                    &Metadata {
                        correlation_id: "fixture".into(),
                        causation_id: "fixture".into(),
                        actor: "operator:fixture".into(),
                    },
                )
                .await
                .unwrap();
        }
        let runner = Runner::new(stack, &template, options).await.unwrap();
        Self {
            runner,
            template,
            inspector,
        }
    }

    pub fn initial_stock() -> HashMap<String, u64> {
        CATALOG
            .iter()
            .map(|(sku, _, n)| ((*sku).to_owned(), *n))
            .collect()
    }

    /// The order API over this stack, as Lambda runs it: the principal comes from the
    /// request context API Gateway's JWT authorizer hands on (see [`as_principal`]).
    pub fn api(&self) -> axum::Router {
        let table = |id: &str| self.stack.table(id).unwrap().to_owned();
        let store = DynamoEventStore::new(
            self.dynamodb.clone(),
            table("EventStoreTable"),
            table("SnapshotTable"),
        );
        let access = order_api::Access::from_variables(
            |name| (name == "RATE_LIMIT_TABLE").then(|| table("RateLimitTable")),
            self.dynamodb.clone(),
            order_api::paging::CursorKey::new(*b"the fixture's cursor key").unwrap(),
        )
        .unwrap();
        let api = order_api::Api::<order_api::Dynamo>::new(
            CommandService::new(Repository::new(store, 50), SystemClock, 5),
            order_api::Api::idempotency(orderflow_adapters::DynamoIdempotencyStore::new(
                self.dynamodb.clone(),
                table("IdempotencyTable"),
            )),
            self.catalog.clone(),
            self.vault.clone(),
            self.views.clone(),
            self.keys.clone(),
            access,
        );
        order_api::router(std::sync::Arc::new(api))
    }

    /// Places an order priced from the catalog, keeping its token in the vault, as the
    /// order API does.
    pub async fn place(&self, lines: &[(&str, u64)], token: &str) -> OrderId {
        let order_id = OrderId::from_uuid(Uuid::now_v7());
        self.place_with_id(order_id, lines, token).await;
        order_id
    }

    /// Places an order with a given id (the one the sample payloads name).
    pub async fn place_with_id(&self, order_id: OrderId, lines: &[(&str, u64)], token: &str) {
        self.place_for(order_id, "c-1", lines, token).await;
    }

    /// Places an order of `customer`.
    pub async fn place_for(&self, order_id: OrderId, customer: &str, lines: &[(&str, u64)], token: &str) {
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
        let customer_id = CustomerId::parse(customer).unwrap();
        let address = serde_json::from_str(
            r#"{"name":"Ada","line1":"1 Main St","city":"Springfield","postalCode":"12345","country":"US"}"#,
        )
        .unwrap();
        let shipping_address = PersonalData::new(self.keys.clone())
            .seal_address(&customer_id, &address)
            .await
            .unwrap();
        let command = OrderCommand::Place(PlaceOrder {
            order_id,
            customer_id,
            lines,
            payment: token.masked(),
            shipping_address,
            placed_at: SystemClock.now(),
        });
        self.commands
            .execute::<Order>(
                &order_id.to_string(),
                command,
                &Inspector::metadata("user-1"),
                None,
            )
            .await
            .unwrap();
    }

    /// An operator moves the order on to out for delivery, step by step.
    pub async fn send_out_for_delivery(&self, order_id: OrderId) {
        use orderflow_domain::order::FulfilmentStep;
        for step in [
            FulfilmentStep::Preparing,
            FulfilmentStep::Ready,
            FulfilmentStep::OutForDelivery,
        ] {
            self.commands
                .execute::<Order>(
                    &order_id.to_string(),
                    OrderCommand::Advance(step),
                    &Inspector::metadata("ops-1"),
                    None,
                )
                .await
                .unwrap();
        }
    }

    pub async fn cancel(&self, order_id: OrderId) -> Result<(), String> {
        self.commands
            .execute::<Order>(
                &order_id.to_string(),
                OrderCommand::Cancel {
                    detail: Some("changed my mind".into()),
                },
                &Inspector::metadata("user-1"),
                None,
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Delivers what waits in `binary`'s queue to it, once.
    pub async fn pump(&self, binary: &str) {
        let consumer = self
            .runner
            .consumers()
            .iter()
            .find(|c| c.mapping.binary == binary)
            .unwrap();
        self.runner.pump_queue(consumer).await.unwrap();
    }

    pub async fn settle(&self) {
        self.runner.run_until_quiet(3, 400).await.unwrap();
    }
}

/// An SQS message carrying an order event as the bus delivers it.
pub fn delivery(envelope_json: &str, message_id: &str) -> SqsMessage {
    let detail: serde_json::Value = serde_json::from_str(envelope_json).unwrap();
    let body = serde_json::json!({
        "version": "0", "id": message_id, "source": "orderflow.order",
        "detail-type": detail["eventType"], "account": "000000000000",
        "time": "2026-11-21T06:30:00Z", "region": "us-east-1", "resources": [], "detail": detail,
    });
    serde_json::from_value(serde_json::json!({
        "messageId": message_id, "receiptHandle": message_id, "body": body.to_string(),
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:test",
    }))
    .unwrap()
}

/// An SQS batch.
pub fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages;
    event
}

/// A small deterministic generator (xorshift64*), so a failing shuffle can be rerun.
pub struct Shuffler(u64);

impl Shuffler {
    pub const fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `true` one time in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = usize::try_from(self.next() % (i as u64 + 1)).unwrap();
            items.swap(i, j);
        }
    }
}

/// The worst deliveries a queue could make of these orders' events: every event of
/// every order, in one shuffled sequence, a third of them twice and a third of them
/// never (except each order's last, so every view can reach the end; the rest arrive
/// only through the projector's catch-up from the store).
pub async fn adversarial_deliveries(inspector: &Inspector, orders: &[OrderId], seed: u64) -> Vec<SqsMessage> {
    let mut random = Shuffler::new(seed);
    let mut messages = Vec::new();
    for id in orders {
        let history = inspector.order_history(*id).await;
        for (i, envelope) in history.iter().enumerate() {
            let last = i + 1 == history.len();
            let copies = if last {
                1 + usize::from(random.one_in(3))
            } else if random.one_in(3) {
                0
            } else {
                1 + usize::from(random.one_in(2))
            };
            for copy in 0..copies {
                messages.push(delivery(
                    &envelope.to_json(),
                    &format!("{id}-{}-{copy}", envelope.version),
                ));
            }
        }
    }
    random.shuffle(&mut messages);
    messages
}

/// `request` as API Gateway hands it to Lambda once its JWT authorizer verified a
/// token with `claims` (an operator's when `scope` holds `orderflow/operator`).
pub fn as_principal<B>(
    mut request: axum::http::Request<B>,
    claims: serde_json::Value,
) -> axum::http::Request<B> {
    let context: aws_lambda_events::event::apigw::ApiGatewayV2httpRequestContext =
        serde_json::from_value(serde_json::json!({
            "routeKey": "$default",
            "http": {"method": request.method().as_str(), "path": request.uri().path()},
            "authorizer": {"jwt": {"claims": claims, "scopes": null}},
        }))
        .unwrap();
    request
        .extensions_mut()
        .insert(lambda_http::request::RequestContext::ApiGatewayV2(context));
    request
}
