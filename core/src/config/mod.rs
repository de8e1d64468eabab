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
//! ## What a document is
//!
//! A mapping with any of Prometheus 3.16's top-level keys (`global`, `runtime`, `alerting`,
//! `rule_files`, `scrape_config_files`, `scrape_configs`, `storage`, `tracing`,
//! `remote_write`, `remote_read`, `otlp`) is a whole configuration: its jobs are the items
//! of `scrape_configs` and of the files of `scrape_config_files` (read through the caller,
//! [`load_config`]), none when there are neither. Any other mapping is one `scrape_config`
//! (the form a job has in ZooKeeper). Jobs inherit `global:` as Prometheus 3.16's
//! `ScrapeConfig.Validate` has them do: interval, timeout, the limits (when unset or 0),
//! `scrape_protocols`, the name validation and escaping schemes, the histogram switches,
//! `extra_scrape_metrics` and `scrape_failure_log_file`.
//!
//! ## Where scrapepool differs from Prometheus 3.16 on purpose
//!
//! - Every error is reported, each with its file, job, field and position; Prometheus stops
//!   at the first. The messages are Prometheus 3.16's (checked against promtool 3.16 on
//!   `testdata/config-corpus/` by `tests/promtool_parity.rs`).
//! - `scheme` must be `http` or `https` (Prometheus accepts any string and fails the targets).
//! - A negative `body_size_limit` and a zero `refresh_interval` are rejected.
//! - The keys in `job::UNSUPPORTED_FIELDS` and every discovery but static, DNS, Consul, file
//!   and HTTP are named as unsupported.
//! - Relative file paths (`ca_file`, `password_file`, file SD `files`, ...) are kept as
//!   written: a job from ZooKeeper has no directory to join them to.
//!   `scrape_config_files` patterns are joined to the file's directory by the caller.
//! - `alerting`, `remote_write`, `remote_read`, `storage` and `tracing` are accepted and not
//!   read (scrapepool neither evaluates rules nor stores samples); `runtime`, `otlp`,
//!   `rule_files` patterns and the `global:` keys of queries and rules are read and checked,
//!   and not used.

use std::fmt;

mod discovery;
mod http_client;
mod job;
pub(crate) use job::TOP_LEVEL_KEYS;
mod types;
mod units;
mod walk;
mod yaml;

pub use types::{
    Authorization, BasicAuth, ConsulSdConfig, DnsRecordType, DnsSdConfig, FileSdConfig,
    GlobalConfig, HttpClientConfig, HttpClientOptions, HttpHeader, HttpSdConfig, JobConfig,
    NameEscapingScheme, NameValidationScheme, OAuth2, ProxyConfig, Scheme, ScrapeProtocol,
    SdConfig, Secret, TargetGroup, TlsConfig, TlsVersion,
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

/// Loads every job of a document: one `scrape_config`, or a whole configuration (its
/// `scrape_configs:`, none without; see the module doc).
///
/// `global` holds the caller's defaults; a `global:` section in the document overrides them.
/// Returns every valid job and every error; one bad job never hides the others. The jobs
/// of `scrape_config_files` follow the document's own, read through `files`, under the
/// document's `global:`, their errors naming their own file.
pub fn load_config(
    text: &str,
    origin: &str,
    global: &GlobalConfig,
    files: ConfigFiles<'_>,
) -> (Vec<JobConfig>, Vec<ConfigError>) {
    let mut walker = Walker::new(origin);
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err((position, message)) => {
            walker.err(&Path::root(), position, message);
            return (Vec::new(), walker.errors);
        }
    };
    let loaded = job::document(&mut walker, &root, global);
    // In the order of the text, as a reader goes through the file.
    walker
        .errors
        .sort_by_key(|e| (e.position.line, e.position.column));
    let mut errors = walker.errors;
    let mut jobs = loaded.jobs;
    let mut names = loaded.names;
    for (pattern, position) in loaded.scrape_config_files {
        let found = match files(&pattern) {
            Ok(found) => found,
            Err(e) => {
                errors.push(ConfigError {
                    origin: origin.to_string(),
                    job: String::new(),
                    field: "scrape_config_files".into(),
                    position,
                    message: format!(
                        "error loading scrape configs: error retrieving scrape config files for {pattern:?}: {e}"
                    ),
                });
                continue;
            }
        };
        for (file, text) in found {
            let mut walker = Walker::new(&file);
            let text = match text {
                Ok(text) => text,
                Err(e) => {
                    walker.err(&Path::root(), Position { line: 1, column: 1 }, e);
                    errors.extend(walker.errors);
                    continue;
                }
            };
            match yaml::parse(&text) {
                Ok(root) => jobs.extend(job::scrape_config_file(
                    &mut walker,
                    &root,
                    &file,
                    &loaded.global,
                    &mut names,
                )),
                Err((position, message)) => walker.err(&Path::root(), position, message),
            }
            walker
                .errors
                .sort_by_key(|e| (e.position.line, e.position.column));
            errors.extend(walker.errors);
        }
    }
    (jobs, errors)
}

/// What each pattern of `scrape_config_files` matches: every file (in the order to read
/// them) with its text or why it could not be read, or why the pattern is not one. The
/// caller does the reading; the core stays free of I/O.
pub type ConfigFiles<'a> = &'a mut dyn FnMut(&str) -> Result<Vec<ConfigFile>, String>;

/// One file of `scrape_config_files`: its name (as errors show it) and its text, or why it
/// could not be read.
pub type ConfigFile = (String, Result<String, String>);

/// Loads every job of a document like [`load_config`], refusing `scrape_config_files`
/// (there is no file system to read them from, as for a job in ZooKeeper).
pub fn load_jobs(
    text: &str,
    origin: &str,
    global: &GlobalConfig,
) -> (Vec<JobConfig>, Vec<ConfigError>) {
    load_config(text, origin, global, &mut |pattern| {
        Err(format!(
            "{pattern:?} is not read here: scrape_config_files need the file system of `scrapepool check`, `run --jobs` or `jobs apply`"
        ))
    })
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
