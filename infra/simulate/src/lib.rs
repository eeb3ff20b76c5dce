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

mod clients;
pub mod faults;
mod invariants;
pub mod mutants;
mod transport;

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use faults::{Faults, FaultyGateway, FaultyIdempotency, FaultyLedger, FaultyStore, Rng, SimClock};
use inventory::InventoryService;
use mutants::{Bug, Mutated};
use order_saga::OrderSaga;
use orderflow_adapters::MemoryIdempotencyStore;
use orderflow_adapters::catalog::{MemoryCatalog, MemoryStockLedger};
use orderflow_adapters::failure_log::{FailureRecorder, MemoryFailureLog};
use orderflow_adapters::payment::{MemoryGateway, MemoryVault};
use orderflow_adapters::{MemoryEventStore, MemoryOrderViews};
use orderflow_app::placement::{Placement, order_id_for};
use orderflow_app::{CatalogService, CommandService, Idempotency, Repository, scoped_key};
use orderflow_domain::Money;
use orderflow_domain::product::ProductDetails;
use orderflow_domain::{Currency, CustomerId, Metadata, OrderId, Sku};
use orderflow_lambda::{Consumer, Service};
use orderflow_provision::Template;
use orderflow_provision::messaging::{QueueSpec, RuleSpec, declared_queues, declared_rules};
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
    /// The bug planted in one port, if any ([`mutants`]).
    pub mutant: Option<Bug>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            orders: 6,
            fault_per_mille: 60,
            chaos_steps: 120,
            quiesce_steps: 4000,
            traced: false,
            mutant: None,
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
    /// The API answered a cancellation with the order cancelled.
    cancel_accepted: bool,
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
    api: CommandService<Mutated<FaultyStore>, SimClock>,
    /// The API's place-order use case and its idempotency records.
    placement: Placement<Mutated<FaultyStore>, SimClock, MemoryCatalog, MemoryVault>,
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
        // The store as one consumer sees it, with the run's bug if it is one of `bugs`.
        let mutated = |bugs: &[Bug]| Repository::new(Mutated::new(faulty.clone(), settings.mutant, bugs), 0);

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
                InventoryService::new(
                    Repository::new(store.clone(), 0),
                    clock.skewed(skew()),
                    Mutated::new(
                        ledger,
                        settings.mutant,
                        &[Bug::LedgerReleasesTwice, Bug::LedgerSaleMovesNothing],
                    ),
                ),
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
                    Mutated::new(
                        FaultyGateway::new(gateway.clone(), faults.clone()),
                        settings.mutant,
                        &[Bug::ProviderRefundsNothing],
                    ),
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
                OrderSaga::new(mutated(&[Bug::SagaStoreDropsCompensations]), clock.skewed(skew())),
                &failures,
                &clock,
            ),
        );
        handlers.insert(
            "projector".into(),
            handler(
                Projector::new(
                    repository(&faulty),
                    Mutated::new(views.clone(), settings.mutant, &[Bug::ReadModelKeepsFirstWrite]),
                ),
                &failures,
                &clock,
            ),
        );
        let api_clock = clock.skewed(skew());
        let api = CommandService::new(mutated(&[Bug::ApiStoreLosesCancellations]), api_clock.clone(), 5);
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
                cancel_accepted: false,
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

    /// The simulation tells a broken system from the real one: with any one bug
    /// planted in a port, a seed breaks an invariant (what `make simulate-mutants`
    /// prints, as a test).
    #[tokio::test]
    async fn every_bug_planted_in_a_port_breaks_an_invariant() {
        for mutant in mutants::ALL {
            let planted = Settings {
                mutant: Some(mutant.bug),
                ..Settings::default()
            };
            let mut caught = None;
            for seed in 1..=200 {
                if !run(seed, planted).await.unwrap().violations.is_empty() {
                    caught = Some(seed);
                    break;
                }
            }
            assert!(
                caught.is_some(),
                "{} survived 200 seeds: {}",
                mutant.name,
                mutant.breaks
            );
        }
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
