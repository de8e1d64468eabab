//! Job configuration: Prometheus `scrape_config` YAML into typed, validated structs.
//!
//! ## How a document is read
//!
//! `yaml` parses the text into a tree whose every node keeps its line and column, with
//! scalars typed as Go's `yaml.v2` types them for Prometheus. The tree is walked rather than
//! fed to derived `Deserialize` impls, because a derive stops at the first error while a jobs
//! file must report every error of every job. Each section (the document, `global:`, a job,
//! the HTTP client, `basic_auth`, `authorization`, `tls_config`, a relabel rule, a static
//! group, each discovery) is one table of fields, a row per key saying how its value is read
//! and where it is stored: `job`, `http_client`, `discovery`. One routine in `walk`
//! reads any mapping against its table, and every error carries the full path of its value.
//! `types` holds the validated result, `units` durations and sizes.
//!
//! ## Where scrapepool differs from Prometheus 2.42 on purpose
//!
//! - Every error is reported, each with its job, field and position; Prometheus stops at
//!   the first. The messages are Prometheus's (checked against promtool 2.42 by
//!   `tests/prometheus_parity.rs`).
//! - `scheme` must be `http` or `https` (Prometheus accepts any string and fails the targets).
//! - A negative `body_size_limit` and a zero `refresh_interval` are rejected.
//! - DNS `MX` records and the keys in `job::UNSUPPORTED_FIELDS` are named as
//!   unsupported.
//! - Relative file paths (`ca_file`, `password_file`, file SD `files`, ...) are kept as
//!   written: a job from ZooKeeper has no directory to join them to.
//! - Top-level `rule_files`, `alerting`, `remote_write`, `remote_read`, `storage`, `tracing`
//!   and `global.evaluation_interval`/`external_labels`/`query_log_file` are accepted and
//!   ignored, so a whole `prometheus.yml` can be checked.

use std::fmt;

mod discovery;
mod http_client;
mod job;
mod types;
mod units;
mod walk;
mod yaml;

pub use types::{
    Authorization, BasicAuth, ConsulSdConfig, DnsRecordType, DnsSdConfig, FileSdConfig,
    GlobalConfig, JobConfig, Scheme, SdConfig, Secret, TargetGroup, TlsConfig,
};
pub use units::{format_duration, parse_base2_bytes, parse_duration, ser_duration};

use walk::{Path, Walker};

/// Where in a document an error is: 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// One thing wrong with a configuration, with where it is.
///
/// Displayed as `origin:line:column: job "name": field: message`; the job and the field are
/// left out when unknown (a YAML syntax error; no job for a `global:` field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file or znode the text came from.
    pub origin: String,
    /// The job the error is in (empty when it is not known).
    pub job: String,
    /// The field's full path from the document root, e.g. `scrape_timeout` in a job that
    /// stands alone, `scrape_configs[0].consul_sd_configs[1].tls_config.ca_file` in a file.
    pub field: String,
    /// Where in the text.
    pub position: Position,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: ",
            self.origin, self.position.line, self.position.column
        )?;
        if !self.job.is_empty() {
            write!(f, "job {:?}: ", self.job)?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Loads every job of a document: one `scrape_config`, or a list under `scrape_configs:`
/// (with an optional `global:` section).
///
/// `global` holds the caller's defaults; a `global:` section in the document overrides them.
/// Returns every valid job and every error; one bad job never hides the others.
pub fn load_jobs(
    text: &str,
    origin: &str,
    global: &GlobalConfig,
) -> (Vec<JobConfig>, Vec<ConfigError>) {
    let mut walker = Walker::new(origin);
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err((position, message)) => {
            walker.err(&Path::root(), position, message);
            return (Vec::new(), walker.errors);
        }
    };
    let jobs = job::document(&mut walker, &root, global);
    // In the order of the text, as a reader goes through the file.
    walker
        .errors
        .sort_by_key(|e| (e.position.line, e.position.column));
    (jobs, walker.errors)
}

/// Reads the `global:` section of a whole Prometheus configuration (interval, timeout,
/// `external_labels`), with its errors; a text without one gives the defaults.
pub fn load_global(text: &str, origin: &str) -> Result<GlobalConfig, Vec<ConfigError>> {
    let mut walker = Walker::new(origin);
    let global = match yaml::parse(text) {
        Ok(root) => job::global_of(&mut walker, &root, &GlobalConfig::default()),
        Err((position, message)) => {
            walker.err(&Path::root(), position, message);
            GlobalConfig::default()
        }
    };
    if walker.errors.is_empty() {
        Ok(global)
    } else {
        Err(walker.errors)
    }
}

/// Loads the single job stored in one ZooKeeper znode; its name must be `expected_name`.
pub fn load_job(
    text: &str,
    origin: &str,
    expected_name: &str,
) -> Result<JobConfig, Vec<ConfigError>> {
    let (mut jobs, errors) = load_jobs(text, origin, &GlobalConfig::default());
    if !errors.is_empty() {
        return Err(errors);
    }
    match (jobs.pop(), jobs.is_empty()) {
        (Some(job), true) if job.job_name == expected_name => Ok(job),
        _ => Err(vec![ConfigError {
            origin: origin.to_string(),
            job: expected_name.to_string(),
            field: "job_name".into(),
            position: Position { line: 1, column: 1 },
            message: format!("a job znode must hold exactly one job named {expected_name:?}"),
        }]),
    }
}

#[cfg(test)]
mod tests;
