//! The scheduler's randomness and the faults it injects: one seeded generator decides
//! every choice, so a seed replays exactly. Adapters are wrapped, not changed: a store
//! or provider call can fail before it happens (an outage) or after (the write happened,
//! the caller saw an error, as a crash or a lost response leaves it).

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use orderflow_adapters::MemoryEventStore;
use orderflow_adapters::catalog::MemoryStockLedger;
use orderflow_app::{
    AppendError, CaptureOutcome, Claim, Clock, EventRecord, EventStore, GatewayError, IdempotencyError,
    IdempotencyStore, MoveError, PaymentGateway, ProviderCapture, SnapshotRecord, StockLedger, StockMove,
    StoreError, StreamId,
};
use orderflow_domain::order::PaymentToken;
use orderflow_domain::{Money, OrderId, Timestamp};

/// SplitMix64: small, fast, and the same sequence for the same seed everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The generator for `seed`.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub const fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    /// One of `items`, any of them alike (`None` when there is none).
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        items.get(self.below(items.len())).cloned()
    }

    /// True `per_mille` times in a thousand.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

/// Simulated time, shared by every writer; each writer may read it skewed.
#[derive(Debug, Clone)]
pub struct SimClock {
    now: Arc<AtomicI64>,
    skew_micros: i64,
    /// Ids minted so far, shared by every writer: ids follow from the schedule alone.
    minted: Arc<std::sync::atomic::AtomicU64>,
}

/// Where simulated time starts: 2026-11-21T06:30:00Z.
const EPOCH_MICROS: i64 = 1_795_761_000_000_000;

impl SimClock {
    /// A clock at the start of simulated time.
    #[must_use]
    pub fn new() -> Self {
        Self {
            now: Arc::new(AtomicI64::new(EPOCH_MICROS)),
            skew_micros: 0,
            minted: Arc::default(),
        }
    }

    /// The same time, read `skew_micros` off (a writer whose clock drifts).
    #[must_use]
    pub fn skewed(&self, skew_micros: i64) -> Self {
        Self {
            now: Arc::clone(&self.now),
            skew_micros,
            minted: Arc::clone(&self.minted),
        }
    }

    /// Moves time forward.
    pub fn advance(&self, micros: i64) {
        self.now.fetch_add(micros, Ordering::Relaxed);
    }

    /// Microseconds since the start, unskewed.
    #[must_use]
    pub fn elapsed(&self) -> i64 {
        self.now.load(Ordering::Relaxed) - EPOCH_MICROS
    }

    /// Moves time to `elapsed` microseconds since the start, if that is later.
    pub fn advance_to(&self, elapsed: i64) {
        self.now.fetch_max(EPOCH_MICROS + elapsed, Ordering::Relaxed);
    }
}

impl Default for SimClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        let micros = self.now.load(Ordering::Relaxed) + self.skew_micros;
        // Simulated time stays within a few days of its start: always representable.
        Timestamp::from_micros(micros).unwrap_or_else(|_| Timestamp::from_jiff(jiff::Timestamp::UNIX_EPOCH))
    }

    /// A UUID v7 of this writer's simulated instant whose "random" bits count the ids
    /// minted so far: unique, and the same on every replay of a seed.
    fn mint_id(&self) -> uuid::Uuid {
        let n = self.minted.fetch_add(1, Ordering::Relaxed);
        let millis = u64::try_from(self.now().as_micros() / 1000).unwrap_or(0);
        let mut counter = [0_u8; 10];
        counter[2..].copy_from_slice(&n.to_be_bytes());
        uuid::Builder::from_unix_timestamp_millis(millis, &counter).into_uuid()
    }
}

/// What a wrapped call does this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Goes through.
    None,
    /// Fails before anything happens (an outage, a throttle).
    Before,
    /// Happens, then fails (a crash after the write, a lost response).
    After,
}

#[derive(Debug)]
struct Plan {
    rng: Rng,
    /// Chance of a fault per call, per mille; 0 once the run drives to quiescence.
    per_mille: u64,
    injected: u64,
    /// `None` when the run keeps no trace (a batch of seeds: a failing one is run again
    /// with its trace).
    trace: Option<Vec<String>>,
}

/// The faults of one run, shared by every wrapped adapter.
#[derive(Debug, Clone)]
pub struct Faults(Arc<Mutex<Plan>>);

impl Faults {
    /// Faults drawn from `seed`, `per_mille` of calls failing, keeping a trace if
    /// `traced`.
    #[must_use]
    pub fn new(seed: u64, per_mille: u64, traced: bool) -> Self {
        Self(Arc::new(Mutex::new(Plan {
            rng: Rng::new(seed),
            per_mille,
            injected: 0,
            trace: traced.then(Vec::new),
        })))
    }

    fn plan(&self) -> MutexGuard<'_, Plan> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `call` fails this time, and how; recorded in the trace. While faults
    /// are on, a call may also be slow: it yields to the scheduler one to three times
    /// before it is made, so that whatever runs beside it (another delivery, another
    /// request) goes first.
    pub async fn draw(&self, call: &str) -> Fault {
        let (fault, yields) = {
            let mut plan = self.plan();
            let per_mille = plan.per_mille;
            if per_mille == 0 {
                return Fault::None;
            }
            let yields = if plan.rng.chance(250) {
                1 + plan.rng.below(3)
            } else {
                0
            };
            let fault = if !plan.rng.chance(per_mille) {
                Fault::None
            } else if plan.rng.chance(500) {
                Fault::Before
            } else {
                Fault::After
            };
            if fault != Fault::None {
                plan.injected += 1;
                plan.write(|| {
                    format!(
                        "  fault: {call} fails {}",
                        match fault {
                            Fault::Before => "before it happens",
                            _ => "after it happened",
                        }
                    )
                });
            }
            (fault, yields)
        };
        for _ in 0..yields {
            Slow::default().await;
        }
        fault
    }

    /// Stops injecting (the run is driven to quiescence).
    pub fn calm(&self) {
        self.plan().per_mille = 0;
    }

    /// Records a scheduler step in the trace (the line is only made when it is kept).
    pub fn note(&self, line: impl FnOnce() -> String) {
        self.plan().write(line);
    }

    /// Counts a fault the scheduler injected itself (a duplicate, a reordering).
    pub fn count(&self, line: impl FnOnce() -> String) {
        let mut plan = self.plan();
        plan.injected += 1;
        plan.write(line);
    }

    /// Faults injected so far.
    #[must_use]
    pub fn injected(&self) -> u64 {
        self.plan().injected
    }

    /// The trace so far (empty when none is kept).
    #[must_use]
    pub fn trace(&self) -> Vec<String> {
        self.plan().trace.clone().unwrap_or_default()
    }
}

impl Plan {
    fn write(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            trace.push(line());
        }
    }
}

/// A slow call: pending once (waking itself at once), so that a scheduler polling
/// several futures moves the others on before this one continues.
#[derive(Debug, Default)]
struct Slow {
    yielded: bool,
}

impl Future for Slow {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.yielded {
            std::task::Poll::Ready(())
        } else {
            self.yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
}

/// `call` under `fault`: not made at all, made and then reported failed, or made.
async fn faulted<T, E, F>(fault: Fault, call: impl FnOnce() -> F, failure: impl FnOnce() -> E) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    match fault {
        Fault::Before => Err(failure()),
        Fault::After => {
            call().await?;
            Err(failure())
        }
        Fault::None => call().await,
    }
}

fn outage(call: &str) -> StoreError {
    StoreError::new("simulated fault", format!("{call} failed"))
}

/// An event store whose calls fail as [`Faults`] decides.
#[derive(Debug, Clone)]
pub struct FaultyStore {
    inner: MemoryEventStore,
    faults: Faults,
}

impl FaultyStore {
    /// `inner` with `faults`.
    #[must_use]
    pub const fn new(inner: MemoryEventStore, faults: Faults) -> Self {
        Self { inner, faults }
    }
}

impl EventStore for FaultyStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
    ) -> Result<(), AppendError> {
        let fault = self.faults.draw(&format!("append to {stream}")).await;
        faulted(
            fault,
            || self.inner.append(stream, expected_version, events),
            || AppendError::Store(outage("append")),
        )
        .await
    }

    async fn load(&self, stream: &StreamId, after_version: u64) -> Result<Vec<EventRecord>, StoreError> {
        if self.faults.draw(&format!("load {stream}")).await == Fault::None {
            self.inner.load(stream, after_version).await
        } else {
            Err(outage("load"))
        }
    }

    async fn load_page(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.load_page(stream, after_version, limit).await
    }

    async fn read_time_range(
        &self,
        from: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.read_time_range(from, until).await
    }

    async fn save_snapshot(&self, snapshot: &SnapshotRecord) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }

    async fn latest_snapshot(&self, stream: &StreamId) -> Result<Option<SnapshotRecord>, StoreError> {
        self.inner.latest_snapshot(stream).await
    }
}

/// Inventory's ledger, failing as [`Faults`] decides.
#[derive(Debug, Clone)]
pub struct FaultyLedger {
    inner: MemoryStockLedger,
    faults: Faults,
}

impl FaultyLedger {
    /// `inner` with `faults`.
    #[must_use]
    pub const fn new(inner: MemoryStockLedger, faults: Faults) -> Self {
        Self { inner, faults }
    }
}

impl StockLedger for FaultyLedger {
    type Store = MemoryEventStore;

    fn store(&self) -> &MemoryEventStore {
        self.inner.store()
    }

    async fn append_with_moves(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: &[EventRecord],
        moves: &[StockMove],
        once: Option<&orderflow_app::Once>,
    ) -> Result<(), MoveError> {
        let fault = self
            .faults
            .draw(&format!(
                "append with stock moves to {stream}{}",
                if once.is_some() { ", once" } else { "" }
            ))
            .await;
        faulted(
            fault,
            || {
                self.inner
                    .append_with_moves(stream, expected_version, events, moves, once)
            },
            || AppendError::Store(outage("transaction")).into(),
        )
        .await
    }
}

/// The payment provider, down or losing responses as [`Faults`] decides.
#[derive(Debug, Clone)]
pub struct FaultyGateway<G> {
    inner: G,
    faults: Faults,
}

impl<G> FaultyGateway<G> {
    /// `inner` with `faults`.
    #[must_use]
    pub const fn new(inner: G, faults: Faults) -> Self {
        Self { inner, faults }
    }
}

fn unavailable(call: &str) -> GatewayError {
    GatewayError::Unavailable(format!("simulated provider fault: {call}"))
}

impl<G: PaymentGateway> PaymentGateway for FaultyGateway<G> {
    async fn capture(
        &self,
        order_id: OrderId,
        amount: Money,
        token: &PaymentToken,
    ) -> Result<CaptureOutcome, GatewayError> {
        let fault = self.faults.draw("provider capture").await;
        faulted(
            fault,
            || self.inner.capture(order_id, amount, token),
            || unavailable("capture"),
        )
        .await
    }

    async fn capture_of(&self, order_id: OrderId) -> Result<Option<ProviderCapture>, GatewayError> {
        if self.faults.draw("provider lookup").await == Fault::None {
            self.inner.capture_of(order_id).await
        } else {
            Err(unavailable("lookup"))
        }
    }

    async fn cancel(&self, order_id: OrderId) -> Result<Option<ProviderCapture>, GatewayError> {
        let fault = self.faults.draw("provider cancel").await;
        faulted(fault, || self.inner.cancel(order_id), || unavailable("cancel")).await
    }

    async fn refund(&self, order_id: OrderId, payment_id: &str, amount: Money) -> Result<(), GatewayError> {
        let fault = self.faults.draw("provider refund").await;
        faulted(
            fault,
            || self.inner.refund(order_id, payment_id, amount),
            || unavailable("refund"),
        )
        .await
    }
}

/// An idempotency store whose calls fail as [`Faults`] decides: a claim taken but its
/// answer lost holds the key until its lease runs out; a completion that fails is the
/// crash between the append and the record of its answer.
#[derive(Debug, Clone)]
pub struct FaultyIdempotency<I> {
    inner: I,
    faults: Faults,
}

impl<I> FaultyIdempotency<I> {
    /// `inner` with `faults`.
    #[must_use]
    pub const fn new(inner: I, faults: Faults) -> Self {
        Self { inner, faults }
    }
}

impl<I: IdempotencyStore> IdempotencyStore for FaultyIdempotency<I> {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
        lease_until: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Claim, IdempotencyError> {
        faulted(
            self.faults.draw("idempotency claim").await,
            || self.inner.claim(key, fingerprint, now, lease_until, expires_at),
            || IdempotencyError::Store(outage("claim")),
        )
        .await
    }

    async fn complete(
        &self,
        key: &str,
        fingerprint: &str,
        response: &str,
        expires_at: Timestamp,
    ) -> Result<(), IdempotencyError> {
        faulted(
            self.faults.draw("idempotency completion").await,
            || self.inner.complete(key, fingerprint, response, expires_at),
            || IdempotencyError::Store(outage("complete")),
        )
        .await
    }

    async fn release(&self, key: &str, fingerprint: &str) -> Result<(), IdempotencyError> {
        faulted(
            self.faults.draw("idempotency release").await,
            || self.inner.release(key, fingerprint),
            || IdempotencyError::Store(outage("release")),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    #[test]
    fn simulated_clocks_mint_unique_ids_that_replay_exactly() {
        let mint = || {
            let clock = SimClock::new();
            let skewed = clock.skewed(-1_500_000);
            let mut ids = Vec::new();
            for step in 0..100 {
                clock.advance(step * 1_000);
                ids.push(clock.mint_id());
                ids.push(skewed.mint_id());
            }
            ids
        };
        let ids = mint();
        assert_eq!(ids, mint(), "the same schedule mints the same ids");
        assert_eq!(
            ids.iter().collect::<std::collections::HashSet<_>>().len(),
            ids.len()
        );
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
    }

    #[tokio::test]
    async fn a_slow_call_lets_what_runs_beside_it_go_first() {
        let order = RefCell::new(Vec::new());
        futures::join!(
            async {
                Slow::default().await;
                order.borrow_mut().push("slow");
            },
            async {
                order.borrow_mut().push("beside");
            }
        );
        assert_eq!(order.into_inner(), ["beside", "slow"]);
    }

    #[tokio::test]
    async fn calls_interleave_only_while_faults_are_on() {
        let faults = Faults::new(7, 1000, false);
        let mut slow = 0;
        for _ in 0..200 {
            let order = RefCell::new(Vec::new());
            futures::join!(
                async {
                    faults.draw("call").await;
                    order.borrow_mut().push(1);
                },
                async {
                    order.borrow_mut().push(2);
                }
            );
            slow += usize::from(order.into_inner() == [2, 1]);
        }
        assert!((20..=100).contains(&slow), "{slow} of 200 calls were slow");
        faults.calm();
        let order = RefCell::new(Vec::new());
        for _ in 0..50 {
            futures::join!(
                async {
                    assert_eq!(faults.draw("call").await, Fault::None);
                    order.borrow_mut().push(1);
                },
                async {
                    order.borrow_mut().push(2);
                }
            );
        }
        assert!(order.into_inner().chunks(2).all(|pair| pair == [1, 2]));
    }
}
