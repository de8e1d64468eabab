//! The `scrapepool` command line: a thin layer over the core and the adapters.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// A pool of Prometheus scrapers sharing targets by consistent hashing, publishing to Kafka.
#[derive(Parser, Debug)]
#[command(name = "scrapepool", version, about)]
struct Cli {
    /// More log output (-v: info, -vv: debug, -vvv: trace). Quiet by default.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon: standalone (jobs from a file, samples to stdout), or with
    /// `--zookeeper`, `--kafka` and `--topic` as a member of the pool.
    Run(cmd::run::Args),
    /// Validate a jobs file, like `promtool check config`.
    Check(cmd::check::Args),
    /// Resolve a jobs file's static targets and print them as Prometheus's /api/v1/targets.
    Targets(cmd::targets::Args),
    /// Parse an exposition file and print its samples as JSON lines.
    Parse(cmd::parse::Args),
    /// Run the deterministic simulation of a pool for one seed or a range of seeds.
    Sim(cmd::sim::Args),
    /// Manage the jobs in ZooKeeper: apply, list, get, delete.
    Jobs(cmd::jobs::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match cli.command {
        Command::Run(args) => cmd::run::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::Targets(args) => cmd::targets::run(args),
        Command::Parse(args) => cmd::parse::run(args),
        Command::Sim(args) => cmd::sim::run(args),
        Command::Jobs(args) => cmd::jobs::run(args),
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCRAPEPOOL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
