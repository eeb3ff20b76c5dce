//! `simulate`: runs seeded scenarios of the whole system and checks every invariant.
//!
//! `simulate --seeds 1000` runs seeds 1..=1000; `simulate --seed 42` replays one and
//! prints its trace. The last line is always
//! `simulate: N scenarios, F faults injected, V invariant violations`; the exit code is
//! 1 when any invariant broke.
//!
//! `simulate --mutants --seeds 200` (`make simulate-mutants`) runs the system with each
//! of [`mutants::ALL`], a bug planted in one port, until a seed catches it, and fails
//! when one survives its seed budget: the simulation has teeth only if it tells a
//! broken system from the real one.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use orderflow_simulate::{Settings, mutants, run};

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
    /// Run every mutant (a bug planted in one port) instead, each until a seed
    /// catches it.
    #[arg(long)]
    mutants: bool,
    /// Orders per scenario.
    #[arg(long, default_value_t = Settings::default().orders)]
    orders: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let settings = Settings {
        orders: args.orders,
        traced: args.seed.is_some(),
        ..Settings::default()
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "simulate: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.mutants {
        return mutants(&runtime, args.seeds, settings);
    }
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
        // Batches keep no trace; the seed replays exactly, so it is run again with one.
        let traced = Settings {
            traced: true,
            ..settings
        };
        let _ = writeln!(out, "trace of seed {}:", report.seed);
        if let Ok(replayed) = runtime.block_on(run(report.seed, traced)) {
            for line in &replayed.trace {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    let millis = elapsed.as_millis().max(1);
    let rate = u128::from(seeds.len() as u64) * 1000 / millis;
    let _ = writeln!(
        out,
        "({rate} scenarios/s on one thread, {}.{:03} s)",
        millis / 1000,
        millis % 1000
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

/// Runs each mutant over seeds 1..=`budget` until one catches it.
fn mutants(runtime: &tokio::runtime::Runtime, budget: u64, settings: Settings) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let mut survivors = Vec::new();
    for candidate in mutants::ALL {
        let planted = Settings {
            mutant: Some(candidate.bug),
            ..settings
        };
        let mut caught = None;
        for seed in 1..=budget {
            let finding = match runtime.block_on(run(seed, planted)) {
                Ok(report) => report.violations.into_iter().next(),
                Err(e) => Some(format!("the run failed: {e:#}")),
            };
            if let Some(finding) = finding {
                caught = Some((seed, finding));
                break;
            }
        }
        match caught {
            Some((seed, finding)) => {
                let _ = writeln!(out, "mutant {}: caught by seed {seed}: {finding}", candidate.name);
            }
            None => {
                let _ = writeln!(
                    out,
                    "mutant {}: SURVIVED {budget} seeds ({})",
                    candidate.name, candidate.breaks
                );
                survivors.push(candidate.name);
            }
        }
    }
    let _ = writeln!(
        out,
        "simulate-mutants: {} mutants, {} caught, {} survived",
        mutants::ALL.len(),
        mutants::ALL.len() - survivors.len(),
        survivors.len()
    );
    if survivors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
