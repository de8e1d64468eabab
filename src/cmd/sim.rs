//! `scrapepool sim`: run the deterministic simulation for one seed or a range of seeds.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use scrapepool_sim::faults::Kinds;
use scrapepool_sim::{Outcome, SimConfig};

/// Arguments of `scrapepool sim`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// One seed.
    #[arg(long, conflicts_with = "seeds")]
    pub seed: Option<u64>,
    /// A range of seeds, `A..B` (B excluded).
    #[arg(long)]
    pub seeds: Option<String>,
    /// Scrapers at the start.
    #[arg(long, default_value_t = 5)]
    pub scrapers: usize,
    /// Targets.
    #[arg(long, default_value_t = 500)]
    pub targets: u32,
    /// Exporter hosts the targets are spread over.
    #[arg(long, default_value_t = 5)]
    pub exporters: u32,
    /// Simulated duration (`30m`, `90s`).
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Length of the chaos phase; the rest heals (default: two thirds of the duration).
    #[arg(long, value_parser = parse_duration)]
    pub chaos: Option<Duration>,
    /// Scrape interval.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub interval: Duration,
    /// ZooKeeper session timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub session_timeout: Duration,
    /// Replication factor.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: usize,
    /// Faults to draw from: `all`, `graceful` (joins, draining leaves, job edits), `none`, or
    /// a comma-separated list of crash, leave, join, partition, expire, slow, flap, job-edit.
    #[arg(long, default_value = "all")]
    pub faults: Kinds,
    /// Mean time between faults in the chaos phase.
    #[arg(long, default_value = "45s", value_parser = parse_duration)]
    pub fault_every: Duration,
    /// Most records each scraper's memory queue holds.
    #[arg(long, default_value_t = scrapepool_sim::kafka::QUEUE_LEN_MAX)]
    pub queue_records_max: usize,
    /// Each scraper spools to its host's disk what its memory queue cannot hold (the disk
    /// outlives a crash).
    #[arg(long)]
    pub spool: bool,
    /// With `--spool`: every submission is written to the spool on its way to the broker, so
    /// a crash loses nothing handed to the sink.
    #[arg(long, requires = "spool")]
    pub spool_write_through: bool,
    /// After the run, print everything the trace holds about target T, and every fault.
    #[arg(long)]
    pub explain: Option<u32>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    scrapepool_core::config::parse_duration(s)
}

/// The run of each seed the arguments name.
pub(crate) fn configs(args: &Args) -> Result<Vec<SimConfig>, String> {
    let seeds: Vec<u64> = match (&args.seed, &args.seeds) {
        (Some(s), _) => vec![*s],
        (None, Some(range)) => match range
            .split_once("..")
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        {
            Some((a, b)) if a < b => (a..b).collect(),
            _ => return Err(format!("--seeds takes A..B with A < B, got {range:?}")),
        },
        (None, None) => vec![1],
    };
    Ok(seeds
        .into_iter()
        .map(|seed| SimConfig {
            seed,
            scrapers: args.scrapers,
            targets: args.targets,
            exporters: args.exporters,
            duration: args.duration,
            chaos: args.chaos.unwrap_or(args.duration * 2 / 3),
            interval: args.interval,
            session_timeout: args.session_timeout,
            replication_factor: args.replication_factor,
            fault_every: args.fault_every,
            faults: args.faults,
            queue_records_max: args.queue_records_max,
            spool: args.spool,
            spool_write_through: args.spool_write_through,
        })
        .collect())
}

/// Runs the command.
pub(crate) fn run(args: Args) -> ExitCode {
    let configs = match configs(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let tty = std::io::stderr().is_terminal();
    let mut failed = Vec::new();
    let mut outcomes = Vec::new();
    let total = configs.len();
    for (i, config) in configs.into_iter().enumerate() {
        let seed = config.seed;
        if tty {
            eprint!("\r[{:>4}/{}] seed {seed} {}", i + 1, total, bar(i, total));
        }
        let outcome = scrapepool_sim::run(config);
        if !outcome.violations.is_empty() {
            if tty {
                eprintln!();
            }
            report_violation(&outcome);
            failed.push(seed);
        }
        if let Some(target) = args.explain {
            explain(&outcome, target);
        }
        outcomes.push(outcome);
    }
    if tty {
        eprintln!();
    }
    print_summary(&outcomes);
    if failed.is_empty() {
        println!("sim: {} passed, 0 failed", outcomes.len());
        ExitCode::SUCCESS
    } else {
        println!(
            "sim: {} passed, {} failed (seeds {failed:?})",
            outcomes.len() - failed.len(),
            failed.len()
        );
        ExitCode::FAILURE
    }
}

fn bar(done: usize, total: usize) -> String {
    let width = 30;
    let filled = width * done / total.max(1);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

fn report_violation(o: &Outcome) {
    eprintln!(
        "seed {}: {} violation(s)",
        o.config.seed,
        o.violations.len()
    );
    let mut checkers: Vec<&str> = o.violations.iter().map(|v| v.invariant).collect();
    checkers.sort_unstable();
    checkers.dedup();
    eprintln!("  failed checkers: {}", checkers.join(", "));
    for v in o.violations.iter().take(10) {
        eprintln!("  {v}");
    }
    eprintln!("Reproduce with: {}", o.config.reproduce_command());
}

fn print_summary(outcomes: &[Outcome]) {
    println!(
        "{:>6} {:>9} {:>7} {:>8} {:>9} {:>10} {:>9} {:>11} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "seed",
        "coverage",
        "dup",
        "1/slot",
        "max gap",
        "moved/bnd",
        "converge",
        "delivered",
        "not dlv",
        "spilled",
        "restored",
        "sim/wall",
        "result"
    );
    for o in outcomes {
        let s = &o.summary;
        let speed = o.config.duration.as_secs_f64() / o.wall.as_secs_f64().max(1e-9);
        println!(
            "{:>6} {:>8.2}% {:>6.2}% {:>7.2}% {:>8.1}s {:>10} {:>8.1}s {:>11} {:>9} {:>9} {:>9} {:>8.0}x {:>8}",
            o.config.seed,
            s.coverage_pct,
            s.duplicate_pct,
            s.slots_exact_pct,
            s.max_gap_ms as f64 / 1000.0,
            format!("{}/{}", s.moved_max.0, s.moved_max.1),
            s.convergence_ms as f64 / 1000.0,
            s.samples_delivered,
            s.samples_not_delivered,
            s.samples_spilled,
            s.samples_restored,
            speed,
            if o.violations.is_empty() {
                "ok"
            } else {
                "FAIL"
            }
        );
    }
}

fn explain(o: &Outcome, target: u32) {
    use scrapepool_sim::trace::Seen;
    let t0 = scrapepool_sim::EPOCH_MS;
    let mut lines: Vec<(i64, String)> = o
        .faults
        .iter()
        .map(|(at, f)| (*at, format!("FAULT {f:?}")))
        .collect();
    for (at, seen) in &o.trace {
        let about = match seen {
            Seen::Scrape { target: t, .. }
            | Seen::Acked { target: t, .. }
            | Seen::Marker { target: t, .. }
            | Seen::Emitted { target: t, .. }
            | Seen::Spilled { target: t, .. } => *t == target,
            Seen::Counters { .. } | Seen::Started { .. } => true,
            Seen::Fault(_) | Seen::Replayed { .. } | Seen::SpoolRefused { .. } => false,
        };
        if about {
            lines.push((*at, format!("{seen:?}")));
        }
    }
    lines.sort_by_key(|(at, _)| *at);
    for (at, line) in lines {
        println!("{:>9.3}s {line}", (at - t0) as f64 / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;
    use scrapepool_sim::faults::Kinds;
    use scrapepool_sim::SimConfig;

    /// Parses a printed reproduce line with the command line's own definition.
    fn parse_back(line: &str) -> SimConfig {
        let rest = line
            .strip_prefix("cargo run --release -- ")
            .expect("a cargo run line");
        let cli = crate::Cli::try_parse_from(
            std::iter::once("scrapepool").chain(rest.split_whitespace()),
        )
        .unwrap_or_else(|e| panic!("{line}: {e}"));
        let crate::Command::Sim(args) = cli.command else {
            panic!("not a sim line: {line}");
        };
        let mut configs = super::configs(&args).expect("valid arguments");
        assert_eq!(configs.len(), 1, "one seed: {line}");
        configs.pop().expect("one")
    }

    fn assert_same(a: &SimConfig, b: &SimConfig) {
        // SimConfig has no PartialEq; its Debug shows every field.
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }

    #[test]
    fn the_reproduce_line_parses_back_into_the_same_config() {
        let default = SimConfig::default();
        assert_same(&parse_back(&default.reproduce_command()), &default);
        let odd = SimConfig {
            seed: 4711,
            scrapers: 9,
            targets: 2000,
            exporters: 7,
            duration: Duration::from_millis(95_500),
            chaos: Duration::from_secs(61),
            interval: Duration::from_secs(10),
            session_timeout: Duration::from_millis(6_250),
            replication_factor: 2,
            fault_every: Duration::from_secs(7),
            faults: Kinds {
                crash: true,
                flap: true,
                job_edit: true,
                ..Kinds::none()
            },
            queue_records_max: 300,
            spool: true,
            spool_write_through: true,
        };
        assert_same(&parse_back(&odd.reproduce_command()), &odd);
        for faults in [Kinds::graceful(), Kinds::none()] {
            let c = SimConfig {
                faults,
                ..SimConfig::default()
            };
            assert_same(&parse_back(&c.reproduce_command()), &c);
        }
    }

    #[test]
    fn the_defaults_of_the_command_line_are_the_default_config() {
        assert_same(
            &parse_back("cargo run --release -- sim --seed 1"),
            &SimConfig::default(),
        );
    }
}
