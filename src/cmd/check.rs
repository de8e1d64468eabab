//! `scrapepool check`: validates a jobs file like `promtool check config`.

use std::path::PathBuf;
use std::process::ExitCode;

use scrapepool_core::config::{load_config, GlobalConfig};
use scrapepool_core::targets::resolve;

/// Arguments of `scrapepool check`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The jobs file: one scrape_config, or a whole Prometheus configuration (its
    /// `scrape_configs:` and the files of its `scrape_config_files:`).
    pub file: PathBuf,
}

/// Runs the command: exit 0 with a one-line summary, or 1 with every error (and its position
/// where the configuration gives one). An empty or comment-only file is valid: no job.
pub(crate) fn run(args: Args) -> ExitCode {
    let origin = args.file.display().to_string();
    let text = match super::read_jobs_file(&args.file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{origin}: cannot read: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dir = args
        .file
        .parent()
        .map(|d| d.to_path_buf())
        .unwrap_or_default();
    let (jobs, mut errors) = load_config(
        &text,
        &origin,
        &GlobalConfig::default(),
        &mut super::config_files(&dir),
    );
    let errors: Vec<String> = {
        let mut all: Vec<String> = errors.drain(..).map(|e| e.to_string()).collect();
        // Static targets that could never be scraped (an out-of-range port, an empty host,
        // ...) are errors here as well as on the running target.
        for job in &jobs {
            for error in resolve(job, &job.static_configs).errors {
                all.push(format!("{origin}: job {:?}: {error}", job.job_name));
            }
        }
        all
    };
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
