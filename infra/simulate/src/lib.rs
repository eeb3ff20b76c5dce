//! A deterministic simulation of the whole system.
//!
//! Every consumer runs as deployed ([`orderflow_lambda::Service`] around the same
//! service code) over the in-memory adapters. The store's change stream, the relay,
//! the bus with the template's own rules and the queues (visibility timeouts, receive
//! counts, redrive to the DLQ the template names) are simulated. One seeded scheduler
//! chooses every step: which order is placed or cancelled (by its customer or an
//! operator) when, which fulfilment step an operator asks for, when the pending-order
//! timeout reaches an order, which stream records the relay publishes in which order
//! (and where `PutEvents` is throttled), which queued message is delivered next, and
//! which call fails ([`faults`]). Then faults stop, the system is driven to quiescence,
//! operators move shipped orders on, it settles again, and every invariant is checked
//! with the consistency checker's own rules.
//!
//! A seed replays exactly: nothing here reads the wall clock or an unseeded random
//! source to decide anything.

pub mod faults;

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use faults::{Faults, FaultyGateway, FaultyIdempotency, FaultyLedger, FaultyStore, Rng, SimClock};
use inventory::InventoryService;
use order_saga::OrderSaga;
use orderflow_adapters::MemoryIdempotencyStore;
use orderflow_adapters::catalog::{MemoryCatalog, MemoryStockLedger};
use orderflow_adapters::failure_log::{FailureRecorder, MemoryFailureLog};
use orderflow_adapters::payment::{MemoryGateway, MemoryVault};
use orderflow_adapters::{MemoryEventStore, MemoryOrderViews};
use orderflow_app::placement::{NewOrder, PlaceError, Placement, order_id_for};
use orderflow_app::stock::{Applied, conservation};
use orderflow_app::{
    Catalog, CatalogService, CommandError, CommandService, EventRecord, FailureLog as _, Idempotency,
    IdempotencyError, IdempotentError, OrderViews, Repository, fingerprint, scoped_key,
};
use orderflow_domain::audit::{OrderStreams, audit_order, held_stock, sold_stock, unrecorded_outcomes};
use orderflow_domain::inventory::Inventory;
use orderflow_domain::order::view::OrderView;
use orderflow_domain::order::{FulfilmentStep, Order, OrderCommand, OrderStatus, PaymentToken};
use orderflow_domain::payment::Payment;
use orderflow_domain::product::{self, ProductDetails};
use orderflow_domain::shipment::Shipment;
use orderflow_domain::{Aggregate, Money};
use orderflow_domain::{Currency, CustomerId, Metadata, OrderId, Quantity, Sku};
use orderflow_lambda::{Consumer, Service};
use orderflow_provision::Template;
use orderflow_provision::messaging::{QueueSpec, RuleSpec, declared_queues, declared_rules, pattern_matches};
use payment::PaymentService;
use projector::Projector;
use shipping::ShippingService;

/// The template the simulated transports are read from, as built.
const TEMPLATE: &str = include_str!("../../../template.yaml");

/// How a scenario runs: its size and how hostile its world is.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Orders in the workload.
    pub orders: usize,
    /// Chance of a fault per store or provider call, per mille.
    pub fault_per_mille: u64,
    /// Steps before the run is driven to quiescence.
    pub chaos_steps: usize,
    /// Steps quiescence may take before the run counts as stuck.
    pub quiesce_steps: usize,
    /// Keep a trace of every step and fault (to print a seed's schedule).
    pub traced: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            orders: 6,
            fault_per_mille: 60,
            chaos_steps: 120,
            quiesce_steps: 4000,
            traced: false,
        }
    }
}

/// What one scenario did and found.
#[derive(Debug, Clone)]
pub struct Report {
    /// Its seed.
    pub seed: u64,
    /// Faults injected (failed calls, duplicates, reorderings, poison messages).
    pub faults: u64,
    /// Broken invariants; empty when the run is sound.
    pub violations: Vec<String>,
    /// Every scheduler step and fault, in order.
    pub trace: Vec<String>,
}

type Handler = Box<dyn Fn(SqsEvent) -> Pin<Box<dyn Future<Output = SqsBatchResponse>>>>;

/// `consumer` with the runtime around it, recording its failures in `failures`.
fn handler<C: Consumer + Clone>(consumer: C, failures: &MemoryFailureLog, clock: &SimClock) -> Handler {
    let recorder = FailureRecorder::new(failures.clone(), C::ACTOR, clock.clone());
    let service = std::rc::Rc::new(Service::with_failures(consumer, recorder));
    Box::new(move |batch| {
        let service = std::rc::Rc::clone(&service);
        Box::pin(async move { service.handle(batch).await })
    })
}

#[derive(Debug, Clone)]
struct Message {
    id: String,
    body: String,
    receives: u32,
    visible_at: i64,
    /// Sent on purpose as poison: it must end in the DLQ.
    poison: bool,
}

/// A message out for delivery.
#[derive(Debug, Clone)]
struct Delivery {
    queue: String,
    consumer: String,
    /// One batch: each message settles on its own (`batchItemFailures`).
    messages: Vec<Message>,
}

/// The most messages one simulated batch takes (the template's `BatchSize` is 10; four
/// are enough to mix successes, retries and poison in one invocation).
const MAX_BATCH: usize = 4;

struct SimQueue {
    spec: QueueSpec,
    consumer: String,
    messages: VecDeque<Message>,
    dead: Vec<Message>,
}

/// One order of the workload.
#[derive(Debug, Clone)]
struct Planned {
    id: OrderId,
    /// The client's idempotency key, scoped to its principal.
    key: String,
    customer: CustomerId,
    lines: Vec<(usize, u64)>,
    card: &'static str,
    cancel: bool,
    /// Fulfilment steps an operator takes once the system is quiet (0 to 4).
    advance: usize,
    placed: bool,
    cancelled: bool,
}

/// The API's idempotency lease, as `order_api::Api::idempotency` sets it.
const LEASE_SECONDS: i64 = 30;

const CARDS: [&str; 4] = ["tok_visa", "tok_visa", "tok_decline", "tok_flaky"];
const SKUS: usize = 3;

/// The simulated system for one seed.
struct World {
    rng: Rng,
    faults: Faults,
    clock: SimClock,
    store: MemoryEventStore,
    catalog: MemoryCatalog,
    views: MemoryOrderViews,
    gateway: MemoryGateway,
    /// Why each failed message failed, as the consumers recorded it.
    failures: MemoryFailureLog,
    api: CommandService<FaultyStore, SimClock>,
    /// The API's place-order use case and its idempotency records.
    placement: Placement<FaultyStore, SimClock, MemoryCatalog, MemoryVault>,
    idempotency: Idempotency<FaultyIdempotency<MemoryIdempotencyStore>, SimClock>,
    /// The customers' data keys: the API seals each address before it places an order.
    personal: orderflow_app::personal::PersonalData<orderflow_adapters::personal::MemoryCustomerKeys>,
    /// The pending-order timeout's writer (its own skewed clock).
    sweeper: CommandService<FaultyStore, SimClock>,
    /// Operators receiving and writing off stock while orders reserve it.
    stocking: CatalogService<FaultyLedger, SimClock>,
    queues: BTreeMap<String, SimQueue>,
    handlers: BTreeMap<String, Handler>,
    rules: Vec<RuleSpec>,
    relayed: usize,
    next_message: u64,
    orders: Vec<Planned>,
    stock: Vec<Sku>,
    /// What the workload saw go wrong on the way (reported with the invariants).
    surprises: Vec<String>,
}

/// What the template declares for the bus and the queues, read once per process: every
/// scenario reads the same template.
struct Transports {
    /// (queue, the function it feeds, the queue as declared).
    mappings: Vec<(String, String, QueueSpec)>,
    rules: Vec<RuleSpec>,
}

fn transports() -> anyhow::Result<&'static Transports> {
    static TRANSPORTS: std::sync::OnceLock<Transports> = std::sync::OnceLock::new();
    if let Some(transports) = TRANSPORTS.get() {
        return Ok(transports);
    }
    let template = Template::parse(TEMPLATE)?;
    let declared = declared_queues(&template)?;
    let mut mappings = Vec::new();
    for mapping in template.sqs_mappings()? {
        let spec = declared
            .get(&mapping.queue)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("{} maps an undeclared queue", mapping.function))?;
        mappings.push((mapping.queue, mapping.binary, spec));
    }
    let rules = declared_rules(&template)?;
    Ok(TRANSPORTS.get_or_init(|| Transports { mappings, rules }))
}

impl World {
    async fn new(seed: u64, settings: Settings) -> anyhow::Result<Self> {
        let mut rng = Rng::new(seed);
        let faults = Faults::new(rng.next(), settings.fault_per_mille, settings.traced);
        let clock = SimClock::new();
        let mut skew = || i64::try_from(rng.below(4_000_000)).unwrap_or(0) - 2_000_000;
        let store = MemoryEventStore::new();
        let faulty = FaultyStore::new(store.clone(), faults.clone());
        let catalog = MemoryCatalog::new();
        let views = MemoryOrderViews::new();
        let gateway = MemoryGateway::with_clock(clock.clone());
        let vault = MemoryVault::new();
        let repository = |s: &FaultyStore| Repository::new(s.clone(), 0);

        let failures = MemoryFailureLog::new();
        let mut handlers: BTreeMap<String, Handler> = BTreeMap::new();
        let ledger = FaultyLedger::new(
            MemoryStockLedger::new(store.clone(), catalog.clone()),
            faults.clone(),
        );
        let stocking = CatalogService::new(
            Repository::new(store.clone(), 0),
            ledger.clone(),
            clock.skewed(skew()),
        );
        handlers.insert(
            "inventory".into(),
            handler(
                InventoryService::new(Repository::new(store.clone(), 0), clock.skewed(skew()), ledger),
                &failures,
                &clock,
            ),
        );
        handlers.insert(
            "payment".into(),
            handler(
                PaymentService::new(
                    repository(&faulty),
                    clock.skewed(skew()),
                    FaultyGateway::new(gateway.clone(), faults.clone()),
                    vault.clone(),
                ),
                &failures,
                &clock,
            ),
        );
        handlers.insert(
            "shipping".into(),
            handler(
                ShippingService::new(repository(&faulty), clock.skewed(skew())),
                &failures,
                &clock,
            ),
        );
        handlers.insert(
            "order-saga".into(),
            handler(
                OrderSaga::new(repository(&faulty), clock.skewed(skew())),
                &failures,
                &clock,
            ),
        );
        handlers.insert(
            "projector".into(),
            handler(
                Projector::new(repository(&faulty), views.clone()),
                &failures,
                &clock,
            ),
        );
        let api_clock = clock.skewed(skew());
        let api = CommandService::new(repository(&faulty), api_clock.clone(), 5);
        let placement = Placement::new(api.clone(), catalog.clone(), vault.clone());
        let idempotency = Idempotency::new(
            FaultyIdempotency::new(MemoryIdempotencyStore::new(), faults.clone()),
            api_clock,
            jiff::SignedDuration::from_secs(LEASE_SECONDS),
            jiff::SignedDuration::from_hours(24),
        );
        let sweeper = CommandService::new(repository(&faulty), clock.skewed(skew()), 5);

        let transports = transports()?;
        let mut queues = BTreeMap::new();
        for (queue, consumer, spec) in &transports.mappings {
            if !handlers.contains_key(consumer) {
                continue;
            }
            queues.insert(
                queue.clone(),
                SimQueue {
                    spec: spec.clone(),
                    consumer: consumer.clone(),
                    messages: VecDeque::new(),
                    dead: Vec::new(),
                },
            );
        }
        let rules = transports.rules.clone();

        // The catalog is stocked as operators stock it: listed with its stock, as
        // product events committed with the counters.
        let lister = CatalogService::new(
            Repository::new(store.clone(), 0),
            MemoryStockLedger::new(store.clone(), catalog.clone()),
            clock.clone(),
        );
        let seeding = Metadata {
            correlation_id: "seed".into(),
            causation_id: "seed".into(),
            actor: "operator:sim".into(),
        };
        let mut stock = Vec::new();
        for n in 0..SKUS {
            let sku = Sku::parse(format!("SKU-{n}"))?;
            let details = ProductDetails {
                name: format!("Product {n}"),
                price: Money::new(500 + 250 * n as u64, Currency::parse("USD")?),
                description: None,
            };
            lister
                .describe(&sku, details, rng.below(9) as u64, "initial count", &seeding)
                .await?;
            stock.push(sku);
        }
        let orders = (0..settings.orders)
            .map(|n| {
                let customer = CustomerId::parse(format!("c-{}", n % 3)).unwrap_or_else(|_| unreachable!());
                let key = scoped_key(&format!("customer:{customer}"), &format!("key-{seed}-{n}"));
                (customer, key)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|(customer, key)| Planned {
                id: order_id_for(&key),
                key,
                customer,
                lines: {
                    // One or two distinct SKUs (an order names a SKU once).
                    let first = rng.below(SKUS);
                    (0..=rng.below(2))
                        .map(|k| ((first + k) % SKUS, 1 + rng.below(3) as u64))
                        .collect()
                },
                card: CARDS[rng.below(CARDS.len())],
                cancel: rng.chance(300),
                advance: if rng.chance(400) { 1 + rng.below(4) } else { 0 },
                placed: false,
                cancelled: false,
            })
            .collect();
        Ok(Self {
            rng,
            faults,
            clock,
            store,
            catalog,
            views,
            gateway,
            failures,
            api,
            placement,
            idempotency,
            personal: orderflow_app::personal::PersonalData::new(
                orderflow_adapters::personal::MemoryCustomerKeys::new(),
            ),
            sweeper,
            stocking,
            queues,
            handlers,
            rules,
            relayed: 0,
            next_message: 0,
            orders,
            stock,
            surprises: Vec::new(),
        })
    }

    fn note(&self, line: impl FnOnce() -> String) {
        self.faults.note(line);
    }

    /// The client places order `n` through the API's use case under its idempotency key,
    /// retrying on failure as a client does (the same key and body), waiting out a lease
    /// a crashed attempt left.
    async fn place(&mut self, n: usize) -> anyhow::Result<()> {
        let order = self.orders[n].clone();
        let token = PaymentToken::parse(order.card)?;
        let mut items = Vec::new();
        for (sku, quantity) in &order.lines {
            items.push((self.stock[*sku].clone(), Quantity::parse(*quantity)?));
        }
        let address = serde_json::from_str(
            r#"{"name":"A","line1":"1 St","city":"C","postalCode":"1","country":"US"}"#,
        )?;
        let new_order = NewOrder {
            order_id: order.id,
            customer_id: order.customer.clone(),
            items,
            token,
            address: self.personal.seal_address(&order.customer, &address).await?,
        };
        let metadata = Metadata {
            correlation_id: format!("corr-{n}"),
            causation_id: format!("req-{n}"),
            actor: format!("customer:{}", order.customer),
        };
        let fingerprint = fingerprint(format!("{:?}", order.lines).as_bytes());
        for attempt in 1..=20 {
            let request = || {
                let placement = &self.placement;
                let (new_order, metadata) = (&new_order, &metadata);
                self.idempotency
                    .run(&order.key, &fingerprint, move || async move {
                        placement
                            .place(new_order.clone(), metadata)
                            .await
                            .map(|placed| placed.order)
                    })
            };
            // A double click, or a client that timed out and retried while its first
            // request is still running: two requests with one key at once.
            let results = if attempt == 1 && self.rng.chance(100) {
                self.faults
                    .count(|| format!("place order {n}: the same request twice at once"));
                let (first, second) = futures::join!(request(), request());
                vec![first, second]
            } else {
                vec![request().await]
            };
            let mut wait = false;
            for result in results {
                match result {
                    Ok(outcome) if outcome.response.order_id == order.id => {
                        self.note(|| {
                            format!(
                                "place order {n} ({}, {} line(s)): placed on attempt {attempt}{}",
                                order.card,
                                order.lines.len(),
                                if outcome.replayed {
                                    " (a replayed answer)"
                                } else {
                                    ""
                                }
                            )
                        });
                        self.orders[n].placed = true;
                    }
                    Ok(outcome) => {
                        self.surprises.push(format!(
                            "order {n}: the client was answered with another order, {}",
                            outcome.response.order_id
                        ));
                        self.orders[n].placed = true;
                    }
                    Err(IdempotentError::Work(PlaceError::Command(CommandError::Domain(e)))) => {
                        anyhow::bail!("the workload's order {n} is invalid: {e}")
                    }
                    Err(IdempotentError::Key(IdempotencyError::InProgress)) => {
                        // Another attempt holds the key: the client retries after a while.
                        self.note(||format!(
                            "place order {n}: attempt {attempt} finds the key in progress; the client waits"
                        ));
                        wait = true;
                    }
                    Err(e) => self.note(|| {
                        format!("place order {n}: attempt {attempt} failed ({e}); the client retries")
                    }),
                }
            }
            if self.orders[n].placed {
                return Ok(());
            }
            if wait {
                self.clock.advance(LEASE_SECONDS * 1_000_000 + 1_000_000);
            }
        }
        anyhow::bail!("order {n} could not be placed in 20 attempts")
    }

    /// The customer cancels order `n`; the order may no longer allow it.
    async fn cancel(&mut self, n: usize) {
        let order = self.orders[n].clone();
        self.orders[n].cancelled = true;
        // A customer or an operator, whoever asks first.
        let actor = if self.rng.chance(500) {
            "operator:ops-1".to_owned()
        } else {
            format!("customer:{}", order.customer)
        };
        let metadata = Metadata {
            correlation_id: format!("corr-{n}"),
            causation_id: format!("cancel-{n}"),
            actor: actor.clone(),
        };
        for attempt in 1..=20 {
            match self
                .api
                .execute::<Order>(
                    &order.id.to_string(),
                    OrderCommand::Cancel { detail: None },
                    &metadata,
                    None,
                )
                .await
            {
                Ok(_) => {
                    self.note(|| format!("cancel order {n} by {actor}: done on attempt {attempt}"));
                    return;
                }
                Err(CommandError::Domain(e)) => {
                    self.note(|| format!("cancel order {n}: refused ({e})"));
                    return;
                }
                Err(e) => self.note(|| format!("cancel order {n}: attempt {attempt} failed ({e})")),
            }
        }
    }

    /// An operator moves order `n` one step on (preparing, ready, out for delivery,
    /// delivered), whatever its state: the order refuses a step it does not allow.
    async fn advance(&mut self, n: usize) -> anyhow::Result<()> {
        let id = self.orders[n].id.to_string();
        let loaded = self.api.repository().load::<Order>(&id).await;
        let Ok(loaded) = loaded else {
            self.note(|| format!("advance order {n}: its stream could not be read"));
            return Ok(());
        };
        let step = match loaded.state.placed().map(|o| o.status) {
            Some(OrderStatus::Confirmed) => FulfilmentStep::Preparing,
            Some(OrderStatus::Preparing) => FulfilmentStep::Ready,
            Some(OrderStatus::Ready) => FulfilmentStep::OutForDelivery,
            Some(OrderStatus::OutForDelivery) => FulfilmentStep::Delivered,
            // Asked too early or too late: the order must refuse it.
            _ => [FulfilmentStep::Preparing, FulfilmentStep::Delivered][self.rng.below(2)],
        };
        let metadata = Metadata {
            correlation_id: format!("corr-{n}"),
            causation_id: format!("advance-{n}-{}", loaded.version),
            actor: "operator:ops-1".into(),
        };
        let result = self
            .api
            .execute::<Order>(&id, OrderCommand::Advance(step), &metadata, Some(loaded.version))
            .await;
        match result {
            Ok(_) => self.note(|| format!("advance order {n}: {step:?}")),
            Err(e) => self.note(|| format!("advance order {n}: {step:?} not done ({e})")),
        }
        Ok(())
    }

    /// The pending-order timeout reaches order `n` (its deadline has passed, as far as
    /// the sweep knows): the sweep's own rule decides.
    async fn expire(&mut self, n: usize) {
        let id = self.orders[n].id.to_string();
        // The saga is never given up on here: its messages are delayed, never parked
        // for good, and an answered order waits for it.
        let never = orderflow_domain::Timestamp::from_jiff(jiff::Timestamp::UNIX_EPOCH);
        match pending_timeout::expire(&self.sweeper, &id, never).await {
            Ok(fate) => self.note(|| format!("pending timeout, order {n}: {fate:?}")),
            Err(e) => self.note(|| format!("pending timeout, order {n}: failed ({e}); the next run retries")),
        }
    }

    /// The relay publishes what the stream holds, perhaps reordered within the batch
    /// (a transaction's records arrive in any order) and perhaps twice.
    fn relay(&mut self, chaos: bool) -> anyhow::Result<()> {
        let mut batch: Vec<EventRecord> = self.store.committed_since(self.relayed)?;
        if batch.is_empty() {
            return Ok(());
        }
        let take = if chaos {
            1 + self.rng.below(batch.len())
        } else {
            batch.len()
        };
        batch.truncate(take);
        if chaos && self.rng.chance(60) {
            // PutEvents throttled part-way: what went out stays out, and the relay's
            // mapping retries the batch from its first record (published again).
            let sent = self.rng.below(batch.len());
            self.faults.count(|| {
                format!(
                    "relay: PutEvents throttled after {sent} of {} records; the batch is retried",
                    batch.len()
                )
            });
            for record in &batch[..sent] {
                self.publish(record)?;
            }
            return Ok(());
        }
        self.relayed += batch.len();
        if chaos && batch.len() > 1 && self.rng.chance(400) {
            let (a, b) = (self.rng.below(batch.len()), self.rng.below(batch.len()));
            batch.swap(a, b);
            self.faults
                .count(|| format!("relay: records {a} and {b} of a batch of {} swapped", batch.len()));
        }
        for record in &batch {
            self.publish(record)?;
            if chaos && self.rng.chance(50) {
                self.faults
                    .count(|| format!("relay: {} v{} published twice", record.stream, record.version));
                self.publish(record)?;
            }
        }
        Ok(())
    }

    /// The bus: the event, as EventBridge hands it to SQS, to every queue whose rule
    /// matches.
    fn publish(&mut self, record: &EventRecord) -> anyhow::Result<()> {
        let detail: serde_json::Value = serde_json::from_str(&record.body)?;
        let event = serde_json::json!({
            "version": "0",
            "id": record.event_id.to_string(),
            "detail-type": record.event_type,
            "source": format!("orderflow.{}", record.stream.aggregate_type),
            "account": "000000000000",
            "time": record.occurred_at.to_string(),
            "region": "us-east-1",
            "resources": [format!("orderflow:{}", record.stream)],
            "detail": detail,
        });
        let targets: Vec<String> = self
            .rules
            .iter()
            .filter(|rule| pattern_matches(&rule.pattern, &event))
            .flat_map(|rule| rule.queues().map(str::to_owned))
            .collect();
        let body = event.to_string();
        for queue in targets {
            self.enqueue(&queue, body.clone(), false);
        }
        Ok(())
    }

    fn enqueue(&mut self, queue: &str, body: String, poison: bool) {
        let id = format!("m-{}", self.next_message);
        self.next_message += 1;
        let now = self.clock.elapsed();
        if let Some(queue) = self.queues.get_mut(queue) {
            queue.messages.push_back(Message {
                id,
                body,
                receives: 0,
                visible_at: now,
                poison,
            });
        }
    }

    /// An operator receives (up to 5) or writes off (up to 3) units of a SKU while
    /// orders reserve it. A failed call is not retried: committed or not, the units and
    /// their record went together.
    async fn restock(&mut self) {
        let sku = self.stock[self.rng.below(self.stock.len())].clone();
        let delta = if self.rng.chance(500) {
            1 + self.rng.below(5) as i64
        } else {
            -(1 + self.rng.below(3) as i64)
        };
        let metadata = Metadata {
            correlation_id: format!("stock-{}", self.next_message),
            causation_id: format!("stock-{}", self.next_message),
            actor: "operator:sim".into(),
        };
        let outcome = match self
            .stocking
            .adjust(&sku, delta, "sim count", &metadata, None)
            .await
        {
            Ok(Applied::Done(_)) => "done".to_owned(),
            Ok(Applied::Refused { .. }) => "refused: too little available".to_owned(),
            Err(e) => format!("not done ({e})"),
        };
        self.note(|| format!("operator: stock {sku} {delta:+}: {outcome}"));
    }

    /// The payment provider goes down for 10 s to 2 min of simulated time: every call
    /// fails as unavailable until then, and payments wait it out through their queue's
    /// retries (4 min of visibility timeouts before a message would be redriven).
    fn provider_outage(&mut self) {
        let seconds = 10 + self.rng.below(111);
        let now = orderflow_app::Clock::now(&self.clock).as_micros();
        let Ok(ends) =
            orderflow_domain::Timestamp::from_micros(now + i64::try_from(seconds).unwrap_or(0) * 1_000_000)
        else {
            return;
        };
        self.gateway.set_outage(Some(ends));
        self.faults.count(|| format!("provider: down for {seconds} s"));
    }

    /// Takes a batch of up to [`MAX_BATCH`] visible messages of `queue` (any of them:
    /// SQS does not keep order) for delivery: each counts a receive and is hidden until
    /// it is settled.
    fn receive(&mut self, queue_id: &str) -> Option<Delivery> {
        let now = self.clock.elapsed();
        let size = 1 + self.rng.below(MAX_BATCH);
        let queue = self.queues.get_mut(queue_id)?;
        let mut messages = Vec::new();
        while messages.len() < size {
            let visible: Vec<usize> = (0..queue.messages.len())
                .filter(|&i| queue.messages[i].visible_at <= now)
                .collect();
            let Some(mut message) = self.rng.pick(&visible).and_then(|i| queue.messages.remove(i)) else {
                break;
            };
            message.receives += 1;
            messages.push(message);
        }
        (!messages.is_empty()).then(|| Delivery {
            queue: queue_id.to_owned(),
            consumer: queue.consumer.clone(),
            messages,
        })
    }

    /// The batch a delivery hands its handler, as Lambda's event source mapping builds it.
    fn batch(delivery: &Delivery) -> SqsEvent {
        let mut batch = SqsEvent::default();
        batch.records = delivery
            .messages
            .iter()
            .map(|message| {
                let mut sqs = SqsMessage::default();
                sqs.message_id = Some(message.id.clone());
                sqs.body = Some(message.body.clone());
                sqs.attributes
                    .insert("ApproximateReceiveCount".into(), message.receives.to_string());
                sqs
            })
            .collect();
        batch
    }

    /// Runs a delivery's handler. Every simulated queue has one (queues without a
    /// function are not simulated); were one missing, the message would fail and come
    /// back, never vanish.
    fn invoke(&self, delivery: &Delivery) -> Pin<Box<dyn Future<Output = SqsBatchResponse>>> {
        match self.handlers.get(&delivery.consumer) {
            Some(handle) => handle(Self::batch(delivery)),
            None => {
                let mut response = SqsBatchResponse::default();
                for message in &delivery.messages {
                    let mut failure = aws_lambda_events::event::sqs::BatchItemFailure::default();
                    failure.item_identifier = message.id.clone();
                    response.batch_item_failures.push(failure);
                }
                Box::pin(std::future::ready(response))
            }
        }
    }

    /// Delivers one visible message of `queue`. While faults are on, another delivery
    /// may run beside it, their calls interleaved wherever one is slow: the same message
    /// again (its visibility timeout ran out while the first handler was still at it)
    /// or a message of any queue (Lambda runs batches concurrently).
    async fn deliver(&mut self, queue_id: &str, chaos: bool) {
        let Some(first) = self.receive(queue_id) else {
            return;
        };
        let beside = if chaos && self.rng.chance(150) {
            if self.rng.chance(300) {
                let mut again = first.clone();
                for message in &mut again.messages {
                    message.receives += 1;
                }
                self.faults.count(|| {
                    format!(
                        "{}: a batch of {} delivered again while its first delivery runs",
                        first.consumer,
                        first.messages.len()
                    )
                });
                Some((again, true))
            } else {
                let ready = self.ready();
                let other = self.rng.pick(&ready);
                other.and_then(|q| self.receive(&q)).map(|d| {
                    self.faults
                        .note(|| format!("{} and {}: delivered concurrently", first.consumer, d.consumer));
                    (d, false)
                })
            }
        } else {
            None
        };
        let run_first = self.invoke(&first);
        match beside {
            None => {
                let response = run_first.await;
                self.settle(first, &response, chaos);
            }
            Some((second, same)) => {
                let run_second = self.invoke(&second);
                let (response, second_response) = futures::join!(run_first, run_second);
                if same {
                    // Only the latest receipt can delete the message.
                    self.settle(second, &second_response, chaos);
                } else {
                    self.settle(first, &response, chaos);
                    self.settle(second, &second_response, chaos);
                }
            }
        }
    }

    /// Settles each message of a delivery as SQS would, by the batch's
    /// `batchItemFailures`: deleted, back after the visibility timeout, or redriven to
    /// the DLQ after `maxReceiveCount` receives.
    fn settle(&mut self, delivery: Delivery, response: &SqsBatchResponse, chaos: bool) {
        let Delivery {
            queue,
            consumer,
            messages,
        } = delivery;
        let failures = response.batch_item_failures.len();
        if failures > 0 && failures < messages.len() {
            self.faults.note(|| {
                format!(
                    "{consumer}: a batch of {}: {failures} failed, the rest deleted",
                    messages.len()
                )
            });
        }
        for message in messages {
            let failed = response
                .batch_item_failures
                .iter()
                .any(|f| f.item_identifier == message.id);
            self.settle_one(&queue, &consumer, message, failed, chaos);
        }
    }

    /// Settles one message of a batch.
    fn settle_one(
        &mut self,
        queue_id: &str,
        consumer: &str,
        mut message: Message,
        failed: bool,
        chaos: bool,
    ) {
        let now = self.clock.elapsed();
        let lost_delete = !failed && chaos && self.rng.chance(80);
        let Some(queue) = self.queues.get_mut(queue_id) else {
            return;
        };
        let visibility = i64::from(queue.spec.visibility_timeout) * 1_000_000;
        if failed {
            if queue
                .spec
                .redrive
                .as_ref()
                .is_some_and(|(_, max)| message.receives >= *max)
            {
                self.faults.note(|| {
                    format!(
                        "{consumer}: {} failed {} times; to the DLQ",
                        describe(&message.body),
                        message.receives
                    )
                });
                queue.dead.push(message);
            } else {
                self.faults.note(|| {
                    format!(
                        "{consumer}: {} failed; back after the visibility timeout",
                        describe(&message.body)
                    )
                });
                message.visible_at = now + visibility;
                queue.messages.push_back(message);
            }
        } else if lost_delete {
            // Handled, but the delete was lost: SQS delivers it again.
            self.faults.count(|| {
                format!(
                    "{consumer}: {} handled, its delete lost; delivered again",
                    describe(&message.body)
                )
            });
            message.visible_at = now + visibility;
            queue.messages.push_back(message);
        } else {
            self.faults
                .note(|| format!("{consumer}: {} handled", describe(&message.body)));
        }
    }

    /// Queues with a message visible now.
    fn ready(&self) -> Vec<String> {
        let now = self.clock.elapsed();
        self.queues
            .iter()
            .filter(|(_, q)| q.messages.iter().any(|m| m.visible_at <= now))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// When the next hidden message shows again, if any is waiting.
    fn next_visible(&self) -> Option<i64> {
        self.queues
            .values()
            .flat_map(|q| q.messages.iter().map(|m| m.visible_at))
            .min()
    }

    async fn step(&mut self, chaos: bool) -> anyhow::Result<bool> {
        self.clock
            .advance(i64::try_from(self.rng.below(300_000)).unwrap_or(0));
        let unplaced: Vec<usize> = (0..self.orders.len())
            .filter(|&n| !self.orders[n].placed)
            .collect();
        let cancellable: Vec<usize> = (0..self.orders.len())
            .filter(|&n| self.orders[n].placed && self.orders[n].cancel && !self.orders[n].cancelled)
            .collect();
        let ready = self.ready();
        let pending_stream = self.store.committed_since(self.relayed)?.len();
        let mut choices = Vec::new();
        if chaos && !unplaced.is_empty() {
            choices.push(0);
        }
        if chaos && !cancellable.is_empty() {
            choices.push(1);
        }
        if pending_stream > 0 {
            choices.extend([2, 2]);
        }
        if !ready.is_empty() {
            choices.extend([3, 3, 3]);
        }
        if chaos && self.rng.chance(15) {
            choices.push(4);
        }
        let placed: Vec<usize> = (0..self.orders.len())
            .filter(|&n| self.orders[n].placed)
            .collect();
        if chaos && !placed.is_empty() {
            choices.push(5);
            if self.rng.chance(300) {
                choices.push(6);
            }
        }
        if chaos && self.rng.chance(8) {
            choices.push(7);
        }
        if chaos && self.rng.chance(25) {
            choices.push(8);
        }
        let Some(&choice) = choices.get(self.rng.below(choices.len())) else {
            // Nothing to do now: wait for the next hidden message, if any.
            return Ok(match self.next_visible() {
                Some(at) => {
                    self.clock.advance_to(at);
                    true
                }
                None => false,
            });
        };
        match choice {
            0 => {
                if let Some(n) = self.rng.pick(&unplaced) {
                    self.place(n).await?;
                }
            }
            1 => {
                if let Some(n) = self.rng.pick(&cancellable) {
                    self.cancel(n).await;
                }
            }
            2 => self.relay(chaos)?,
            3 => {
                if let Some(queue) = self.rng.pick(&ready) {
                    self.deliver(&queue, chaos).await;
                }
            }
            5 => {
                if let Some(n) = self.rng.pick(&placed) {
                    self.advance(n).await?;
                }
            }
            6 => {
                if let Some(n) = self.rng.pick(&placed) {
                    self.expire(n).await;
                }
            }
            7 => self.provider_outage(),
            8 => self.restock().await,
            _ => {
                let ids: Vec<String> = self.queues.keys().cloned().collect();
                let queue = ids[self.rng.below(ids.len())].clone();
                self.faults
                    .count(|| format!("poison: a malformed message sent to {queue}"));
                self.enqueue(&queue, "{not an event".into(), true);
            }
        }
        Ok(true)
    }

    /// Runs fault-free steps until nothing is left to do; `false` if `steps` were not
    /// enough.
    async fn quiesce(&mut self, steps: usize) -> anyhow::Result<bool> {
        for _ in 0..steps {
            if !self.step(false).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every invariant the checker knows, over the quiet system.
    async fn check(&self) -> anyhow::Result<Vec<String>> {
        let mut violations = self.surprises.clone();
        let repository = Repository::new(self.store.clone(), 0);
        let mut held: BTreeMap<Sku, u64> = BTreeMap::new();
        let mut sold: BTreeMap<Sku, u64> = BTreeMap::new();
        for (n, planned) in self.orders.iter().enumerate() {
            let id = planned.id.to_string();
            let order = repository.history::<Order>(&id).await?;
            let inventory = repository.history::<Inventory>(&id).await?;
            let payment = repository.history::<Payment>(&id).await?;
            // The provider's own books: its idempotency keys held however often payment
            // called it (duplicates, crashes, lost answers).
            let calls = self.gateway.calls(planned.id);
            if calls.captures > 1 {
                violations.push(format!(
                    "order {n}: the provider captured {} times",
                    calls.captures
                ));
            }
            if calls.refunds > 1 {
                violations.push(format!(
                    "order {n}: the provider refunded {} times",
                    calls.refunds
                ));
            }
            if calls.conflicts > 0 {
                violations.push(format!(
                    "order {n}: {} provider call(s) reused a key with another amount",
                    calls.conflicts
                ));
            }
            let shipment = repository.history::<Shipment>(&id).await?;
            let streams = OrderStreams {
                order: &order,
                inventory: &inventory,
                payment: &payment,
                shipment: &shipment,
            };
            for finding in audit_order(streams) {
                violations.push(format!("order {n}: {finding}"));
            }
            for (outcome, _) in unrecorded_outcomes(streams) {
                violations.push(format!("order {n}: its {outcome} is not recorded on the order"));
            }
            for line in held_stock(&inventory) {
                *held.entry(line.sku).or_default() += u64::from(line.quantity.get());
            }
            for line in sold_stock(&inventory) {
                *sold.entry(line.sku).or_default() += u64::from(line.quantity.get());
            }
            let Some(folded) = OrderView::fold(&order) else {
                if planned.placed {
                    violations.push(format!("order {n}: placed but its stream is empty"));
                }
                continue;
            };
            match folded.status {
                OrderStatus::Cancelled => {}
                // Confirmed and shipped; operators may have moved it on since.
                OrderStatus::Confirmed
                | OrderStatus::Preparing
                | OrderStatus::Ready
                | OrderStatus::OutForDelivery
                | OrderStatus::Delivered
                    if folded.shipment.is_some() => {}
                other => violations.push(format!("order {n}: stuck at {other} (no terminal state)")),
            }
            match self.views.get(planned.id).await? {
                Some(stored) if stored.view == folded => {}
                Some(_) => {
                    violations.push(format!("order {n}: its view differs from the fold of its events"))
                }
                None => violations.push(format!("order {n}: no view")),
            }
        }
        for sku in &self.stock {
            let products = self.catalog.products(std::slice::from_ref(sku)).await?;
            let Some(product) = products.get(sku) else {
                violations.push(format!("{sku}: gone from the catalog"));
                continue;
            };
            let history = repository.history::<product::Product>(sku.as_str()).await?;
            let stream =
                product::Product::fold(product::ProductState::default(), history.iter().map(|e| &e.data));
            violations.extend(conservation(
                product,
                &stream,
                held.get(sku).copied().unwrap_or(0),
                sold.get(sku).copied().unwrap_or(0),
            ));
        }
        let mut ledger = self.gateway.ledger();
        ledger.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        for entry in ledger {
            let Some((n, _)) = self
                .orders
                .iter()
                .enumerate()
                .find(|(_, o)| o.id.to_string() == entry.order_id)
            else {
                violations.push(format!(
                    "the provider charged an unknown order {}",
                    entry.order_id
                ));
                continue;
            };
            let order = repository.history::<Order>(&entry.order_id).await?;
            let cancelled = OrderView::fold(&order).is_some_and(|v| v.status == OrderStatus::Cancelled);
            if cancelled && !entry.refunded {
                violations.push(format!(
                    "order {n}: cancelled, but the provider still holds its capture"
                ));
            }
            if !cancelled && entry.refunded {
                violations.push(format!("order {n}: not cancelled, but its capture was refunded"));
            }
        }
        for (id, queue) in &self.queues {
            if !queue.messages.is_empty() {
                violations.push(format!("{id}: {} message(s) never handled", queue.messages.len()));
            }
            for message in &queue.dead {
                if !message.poison {
                    violations.push(format!("{id}: {} in the DLQ", describe(&message.body)));
                    continue;
                }
                // A parked message says why it is there (what `orderflow dlq show` reads).
                match self.failures.get(&message.id).await? {
                    Some(failure) if failure.kind == "poison" => {}
                    other => violations.push(format!(
                        "{id}: poison message {} parked without its reason recorded ({other:?})",
                        message.id
                    )),
                }
            }
        }
        Ok(violations)
    }
}

/// `OrderPlaced of order#…` for a message body, for the trace.
fn describe(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body).map_or_else(
        |_| "a malformed message".to_owned(),
        |event| {
            format!(
                "{} v{} of {}",
                event["detail-type"].as_str().unwrap_or("?"),
                event["detail"]["version"],
                event["detail"]["aggregateType"].as_str().unwrap_or("?"),
            )
        },
    )
}

/// Runs the scenario of `seed` to quiescence and checks it.
///
/// # Errors
/// When the simulation itself cannot run (the template does not parse).
pub async fn run(seed: u64, settings: Settings) -> anyhow::Result<Report> {
    let mut world = World::new(seed, settings).await?;
    for _ in 0..settings.chaos_steps {
        world.step(true).await?;
    }
    // The rest of the workload arrives; faults stop; the system settles.
    for n in 0..world.orders.len() {
        if !world.orders[n].placed {
            world.place(n).await?;
        }
    }
    world.faults.calm();
    world.note(|| "-- faults stop; driving to quiescence".into());
    let mut violations = Vec::new();
    let mut quiet = world.quiesce(settings.quiesce_steps).await?;
    if quiet {
        // Operators move shipped orders on, step by step; then the system settles again.
        world.note(|| "-- operators move orders on".into());
        for n in 0..world.orders.len() {
            for _ in 0..world.orders[n].advance {
                world.advance(n).await?;
            }
        }
        quiet = world.quiesce(settings.quiesce_steps).await?;
    }
    if quiet {
        violations.extend(world.check().await?);
    } else {
        violations.push(format!("not quiet after {} steps", settings.quiesce_steps));
    }
    Ok(Report {
        seed,
        faults: world.faults.injected(),
        violations,
        trace: world.faults.trace(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[tokio::test]
    async fn seeded_runs_inject_faults_and_keep_every_invariant() {
        let mut faults = 0;
        for seed in 1..=10 {
            let report = run(seed, Settings::default()).await.unwrap();
            assert_eq!(report.violations, Vec::<String>::new(), "seed {seed}");
            faults += report.faults;
        }
        assert!(faults > 0, "the runs injected no fault");
    }

    /// Lambda hands a consumer several messages at once and settles each by the
    /// batch's `batchItemFailures`: the runs include batches where some fail and the
    /// rest are deleted, and every invariant still holds.
    #[tokio::test]
    async fn batches_settle_message_by_message_on_partial_failures() {
        let traced = Settings {
            traced: true,
            ..Settings::default()
        };
        let mut partial = 0;
        for seed in 1..=20 {
            let report = run(seed, traced).await.unwrap();
            assert_eq!(report.violations, Vec::<String>::new(), "seed {seed}");
            partial += report
                .trace
                .iter()
                .filter(|line| line.contains("failed, the rest deleted"))
                .count();
        }
        assert!(partial > 0, "no batch mixed failures and successes");
    }

    #[tokio::test]
    async fn a_seed_replays_exactly() {
        let traced = Settings {
            traced: true,
            ..Settings::default()
        };
        let (first, again, untraced) = (
            run(7, traced).await.unwrap(),
            run(7, traced).await.unwrap(),
            run(7, Settings::default()).await.unwrap(),
        );
        assert!(first.trace.len() > 100, "{} lines", first.trace.len());
        assert_eq!(first.trace, again.trace);
        assert_eq!(first.faults, again.faults);
        assert!(untraced.trace.is_empty());
        assert_eq!(untraced.faults, first.faults, "keeping a trace changes nothing");
    }
}
