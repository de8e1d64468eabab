//! A jobs file cut into one YAML text per job, the form `/jobs/<name>` stores.
//!
//! A file may hold one job, or a `scrape_configs:` list with an optional `global:` section.
//! The coordinator stores one job per znode, so each job is re-written as a standalone
//! document: anchors and merge keys are resolved, and the global interval and timeout are
//! written into every job that relied on them, so the job means the same thing on its own.

use serde_json::Value;

use crate::config::{format_duration, load_jobs, ConfigError, GlobalConfig, Position};

/// Validates `text` and splits it into `(job name, YAML of that job alone)`, in file order.
///
/// Nothing is returned unless every job is valid: a file is applied whole or not at all.
pub fn split_jobs(text: &str, origin: &str) -> Result<Vec<(String, String)>, Vec<ConfigError>> {
    let (jobs, errors) = load_jobs(text, origin, &GlobalConfig::default());
    if !errors.is_empty() {
        return Err(errors);
    }
    let whole_file_error = |message: String| {
        vec![ConfigError { origin: origin.to_string(), job: String::new(), field: String::new(), position: Position { line: 1, column: 1 }, message }]
    };
    let doc: Value = serde_saphyr::from_str(text).map_err(|e| whole_file_error(e.to_string()))?;
    let Value::Object(mut root) = doc else {
        return Err(whole_file_error("a jobs file is a mapping".into()));
    };
    let mut texts = Vec::new();
    match root.remove("scrape_configs") {
        Some(Value::Array(list)) => {
            // The loaded jobs carry the effective interval and timeout (global defaults and
            // Prometheus's "timeout falls to the interval" rule applied): write those.
            for (job, loaded) in list.into_iter().zip(&jobs) {
                let Value::Object(mut job) = job else { continue };
                job.entry("scrape_interval").or_insert_with(|| Value::String(format_duration(loaded.scrape_interval)));
                job.entry("scrape_timeout").or_insert_with(|| Value::String(format_duration(loaded.scrape_timeout)));
                texts.push(job);
            }
        }
        Some(_) => return Err(whole_file_error("scrape_configs must be a list".into())),
        None => texts.push(root),
    }
    let mut out = Vec::with_capacity(texts.len());
    for job in texts {
        let name = job.get("job_name").and_then(Value::as_str).unwrap_or_default().to_string();
        let yaml = serde_saphyr::to_string(&Value::Object(job)).map_err(|e| whole_file_error(format!("job {name:?}: {e}")))?;
        out.push((name, yaml));
    }
    // Every text must load on its own to the very job the file defined.
    for ((name, yaml), job) in out.iter().zip(&jobs) {
        match crate::config::load_job(yaml, origin, name) {
            Ok(alone) if alone == *job => {}
            _ => return Err(whole_file_error(format!("job {name:?} does not survive being stored on its own"))),
        }
    }
    Ok(out)
}
