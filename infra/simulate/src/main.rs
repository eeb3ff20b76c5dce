//! `simulate`: runs seeded scenarios of the whole system and checks every invariant.
//!
//! `simulate --seeds 1000` runs seeds 1..=1000; `simulate --seed 42` replays one and
//! prints its trace. The last line is always
//! `simulate: N scenarios, F faults injected, V invariant violations`; the exit code is
//! 1 when any invariant broke.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use orderflow_simulate::{Settings, run};

#[derive(Debug, Parser)]
#[command(
    name = "simulate",
    about = "Seeded whole-system simulation with injected faults"
)]
struct Args {
    /// How many seeds to run (1..=N).
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// Replay this one seed and print its trace.
    #[arg(long)]
    seed: Option<u64>,
    /// Orders per scenario.
    #[arg(long, default_value_t = Settings::default().orders)]
    orders: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let settings = Settings {
        orders: args.orders,
        ..Settings::default()
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "simulate: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let seeds: Vec<u64> = args
        .seed
        .map_or_else(|| (1..=args.seeds).collect(), |seed| vec![seed]);
    let mut out = std::io::stdout().lock();
    let started = Instant::now();
    let (mut faults, mut violations) = (0, 0);
    let mut first_failure = None;
    for &seed in &seeds {
        let report = match runtime.block_on(run(seed, settings)) {
            Ok(report) => report,
            Err(e) => {
                let _ = writeln!(out, "seed {seed}: the simulation could not run: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        faults += report.faults;
        violations += report.violations.len();
        if args.seed.is_some() {
            for line in &report.trace {
                let _ = writeln!(out, "{line}");
            }
        }
        if !report.violations.is_empty() {
            for violation in &report.violations {
                let _ = writeln!(out, "seed {seed}: {violation}");
            }
            let _ = writeln!(out, "seed {seed}: replay it with `make simulate SEED={seed}`");
            first_failure.get_or_insert(report);
        }
    }
    let elapsed = started.elapsed();
    if let (Some(report), None) = (&first_failure, args.seed) {
        let _ = writeln!(out, "trace of seed {}:", report.seed);
        for line in &report.trace {
            let _ = writeln!(out, "{line}");
        }
    }
    let millis = elapsed.as_millis().max(1);
    let rate = u128::from(seeds.len() as u64) * 1000 / millis;
    let _ = writeln!(out, "({rate} scenarios/s on one thread, {millis} ms)");
    let _ = writeln!(
        out,
        "({rate:.0} scenarios/s on one thread, {:.2} s)",
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "simulate: {} scenarios, {faults} faults injected, {violations} invariant violations",
        seeds.len()
    );
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
