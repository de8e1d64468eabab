//! `scrapepool check`: validates a jobs file like `promtool check config`.

use std::path::PathBuf;
use std::process::ExitCode;

use scrapepool_core::config::{load_jobs, GlobalConfig};

/// Arguments of `scrapepool check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The jobs file: one scrape_config, or a document with `scrape_configs:`.
    pub file: PathBuf,
}

/// Runs the command: exit 0 with a one-line summary, or 1 with every error and its position.
pub fn run(args: Args) -> ExitCode {
    let origin = args.file.display().to_string();
    let text = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{origin}: cannot read: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (jobs, errors) = load_jobs(&text, &origin, &GlobalConfig::default());
    if errors.is_empty() {
        println!("SUCCESS: {origin} is valid: {} job(s)", jobs.len());
        return ExitCode::SUCCESS;
    }
    for error in &errors {
        eprintln!("{error}");
    }
    eprintln!(
        "FAILED: {} error(s) in {origin} ({} valid job(s))",
        errors.len(),
        jobs.len()
    );
    ExitCode::FAILURE
}
