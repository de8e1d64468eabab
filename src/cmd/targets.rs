//! `scrapepool targets`: resolves the static targets of a jobs file, offline, and prints them
//! in the shape of Prometheus 3.16's `GET /api/v1/targets?state=any`.

use std::path::PathBuf;
use std::process::ExitCode;

use scrapepool_core::config::{format_duration, load_config, GlobalConfig};
use scrapepool_core::labels::Labels;
use scrapepool_core::targets::resolve;

/// Arguments of `scrapepool targets`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The jobs file: one scrape_config, or a document with `scrape_configs:`.
    pub file: PathBuf,
}

/// The response body, field for field as Prometheus writes it.
#[derive(serde::Serialize)]
struct Response {
    status: &'static str,
    data: Data,
}

#[derive(serde::Serialize)]
struct Data {
    #[serde(rename = "activeTargets")]
    active_targets: Vec<ActiveTarget>,
    #[serde(rename = "droppedTargets")]
    dropped_targets: Vec<DroppedTarget>,
    /// Every job's count of dropped targets, also those `keep_dropped_targets` does not keep.
    #[serde(rename = "droppedTargetCounts")]
    dropped_target_counts: std::collections::BTreeMap<String, usize>,
}

/// One active target, in the field order of Prometheus 3.16's `api/v1.Target`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ActiveTarget {
    discovered_labels: Labels,
    labels: Labels,
    scrape_pool: String,
    scrape_url: String,
    global_url: String,
    last_error: String,
    last_scrape: &'static str,
    // Always 0 offline; an integer so it prints `0` as Go does, not `0.0`.
    last_scrape_duration: u8,
    health: &'static str,
    scrape_interval: String,
    scrape_timeout: String,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct DroppedTarget {
    discovered_labels: Labels,
    scrape_pool: String,
}

/// Go's zero `time.Time`, which Prometheus shows for a target never scraped.
const NEVER: &str = "0001-01-01T00:00:00Z";

/// Runs the command. Exit 1 when the file has errors (printed on stderr; the valid jobs are
/// still printed), 0 otherwise; targets that fail to resolve are reported on stderr.
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
    let (mut jobs, errors) = load_config(
        &text,
        &origin,
        &GlobalConfig::default(),
        &mut super::config_files(&dir),
    );
    for error in &errors {
        eprintln!("{error}");
    }
    // Prometheus lists scrape pools in name order.
    jobs.sort_by(|a, b| a.job_name.cmp(&b.job_name));
    let mut data = Data {
        active_targets: Vec::new(),
        dropped_targets: Vec::new(),
        dropped_target_counts: Default::default(),
    };
    for job in &jobs {
        let resolved = resolve(job, &job.static_configs);
        for error in &resolved.errors {
            eprintln!("{origin}: job {:?}: {error}", job.job_name);
        }
        let last_error = resolved.limit_error.clone().unwrap_or_default();
        for t in resolved.active {
            data.active_targets.push(ActiveTarget {
                discovered_labels: t.discovered_labels,
                labels: t.labels,
                scrape_pool: job.job_name.clone(),
                // Offline there is no external URL to rewrite localhost targets with.
                global_url: t.url.clone(),
                scrape_url: t.url,
                last_error: last_error.clone(),
                last_scrape: NEVER,
                last_scrape_duration: 0,
                health: "unknown",
                scrape_interval: format_duration(t.scrape_interval),
                scrape_timeout: format_duration(t.scrape_timeout),
            });
        }
        data.dropped_target_counts
            .insert(job.job_name.clone(), resolved.dropped_count);
        data.dropped_targets
            .extend(resolved.dropped.into_iter().map(|d| DroppedTarget {
                discovered_labels: d.discovered_labels,
                scrape_pool: job.job_name.clone(),
            }));
    }
    let response = Response {
        status: "success",
        data,
    };
    match serde_json::to_string(&response) {
        Ok(json) => println!("{}", go_json_escape(&json)),
        Err(e) => {
            eprintln!("cannot encode the targets: {e}");
            return ExitCode::FAILURE;
        }
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Escapes `<`, `>`, `&`, U+2028 and U+2029 as Go's `encoding/json` does, so the output is
/// byte-for-byte what Prometheus serves. These characters only occur inside JSON strings.
fn go_json_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}
