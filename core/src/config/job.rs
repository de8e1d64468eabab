//! The sections of a scrape job and of the document around it: the document, `global:`,
//! `runtime:`, `otlp:`, a file of `scrape_config_files`, `scrape_config`, a relabel rule and
//! a static group, each one table of fields (see
//! [`super::walk`] for how a row reads a key) and one `finish` that checks them together.
//!
//! A section's draft starts with Prometheus 3.16's defaults; a row overwrites what its key
//! gives.
//! A new key is one row in its section's table.

use std::collections::BTreeMap;
use std::time::Duration;

use super::discovery::{consul_sd_defaults, dns_sd_defaults, file_sd_defaults, http_sd_defaults};
use super::http_client::HttpClient;
use super::units::parse_base2_bytes;
use super::walk::{row, value_position, Field, Keys, Path, Section, Walker};
use super::yaml::{Kind, Node};
use super::{
    GlobalConfig, HttpClientOptions, JobConfig, NameEscapingScheme, NameValidationScheme, Position,
    Scheme, ScrapeProtocol, SdConfig, TargetGroup, TlsConfig,
};
use crate::labels::{is_valid_label_name, Labels};
use crate::relabel::{RelabelConfig, RelabelSpec};

/// Keys of a job that Prometheus knows and scrapepool does not implement, named as such in
/// the error (so a user knows the key is real, not misspelled). Every `scrape_config` key of
/// Prometheus 3.16 is read, so the list is empty; discovery mechanisms scrapepool lacks are
/// named by `unsupported_in_job`.
pub(super) const UNSUPPORTED_FIELDS: &[&str] = &[];

/// The top-level keys of a Prometheus 3.16 configuration: a document with any of them is a
/// whole configuration (its jobs under `scrape_configs:`), not one job.
pub(crate) const TOP_LEVEL_KEYS: &[&str] = &[
    "global",
    "runtime",
    "alerting",
    "rule_files",
    "scrape_config_files",
    "scrape_configs",
    "storage",
    "tracing",
    "remote_write",
    "remote_read",
    "otlp",
];

/// Prometheus's pattern for `rule_files` and `scrape_config_files` entries: a `*` only in
/// the last path element.
fn is_valid_file_pattern(pattern: &str) -> bool {
    match pattern.find('*') {
        None => true,
        Some(i) => !pattern[i..].contains('/'),
    }
}

/// In a job (and at the top, where a job may stand alone): the keys above, and every
/// discovery mechanism other than DNS, Consul, file and HTTP.
fn unsupported_in_job(key: &str) -> bool {
    UNSUPPORTED_FIELDS.contains(&key) || key.ends_with("_sd_configs")
}

/// A whole file: `global:` and `scrape_configs:`, or a single job.
struct Document {
    /// The caller's defaults, overridden by a `global:` section.
    global: GlobalConfig,
    /// The items of `scrape_configs`, read once the whole document is (`global:` may come
    /// after them).
    jobs: Vec<Node>,
    /// An invalid `global.metric_name_escaping_scheme`, as written and where: Prometheus
    /// reports it only when there is a job to apply it to.
    bad_escaping: Option<(String, Position)>,
    /// `scrape_config_files`, each pattern with where it is written.
    scrape_config_files: Vec<(String, Position)>,
    /// `otlp.translation_strategy` and where, checked against the global validation scheme.
    otlp_translation: Option<(String, Position)>,
}

impl Section for Document {
    type Value = ();

    const FIELDS: &'static [Field<Self>] = &[
        row("global", |w, v, p, d| {
            let draft = Global {
                global: d.global.clone(),
                interval: Duration::ZERO,
                timeout: Duration::ZERO,
                escaping: None,
            };
            if let Some((global, bad)) = w.section(v, p, draft) {
                d.global = global;
                d.bad_escaping = bad;
            }
        }),
        row("scrape_configs", |w, v, p, d| {
            if let Some(items) = w.seq(v, p) {
                d.jobs = items.to_vec();
            }
        }),
        row("scrape_config_files", |w, v, p, d| {
            let Some(items) = w.seq(v, p) else { return };
            for (i, item) in items.iter().enumerate() {
                let Some(pattern) = w.string(item, &p.index(i)) else {
                    continue;
                };
                if !is_valid_file_pattern(&pattern) {
                    let message = format!("invalid scrape config file path {pattern:?}");
                    w.err(&p.index(i), item.pos, message);
                    continue;
                }
                d.scrape_config_files.push((pattern, item.pos));
            }
        }),
        row("rule_files", |w, v, p, _| {
            w.checked_string_list(v, p, is_valid_file_pattern, |f| {
                format!("invalid rule file path {f:?}")
            });
        }),
        row("runtime", |w, v, p, _| {
            w.section(v, p, Runtime);
        }),
        row("otlp", |w, v, p, d| {
            let draft = Otlp {
                promote_all: None,
                promote: Vec::new(),
                ignore: Vec::new(),
            };
            w.section(v, p, draft);
            if let Some(pos) = value_position(v, "translation_strategy") {
                if let Kind::Map(entries) = &v.kind {
                    let text = entries
                        .iter()
                        .rev()
                        .find(|(k, _)| k.text() == Some("translation_strategy"))
                        .and_then(|(_, v)| v.text())
                        .unwrap_or("");
                    d.otlp_translation = Some((text.to_string(), pos));
                }
            }
        }),
    ];

    /// Sections of a whole Prometheus configuration that have no meaning for scrape jobs;
    /// accepted and not read, so that a whole `prometheus.yml` loads.
    const IGNORED: &'static [&'static str] = &[
        "alerting",
        "remote_write",
        "remote_read",
        "storage",
        "tracing",
    ];

    fn unsupported(key: &str) -> bool {
        unsupported_in_job(key)
    }

    /// Unused: [`document`] reads the keys with [`Walker::keys`], then the jobs.
    fn finish(self, _: &mut Walker<'_>, _: &Node, _: &Path, _: bool) -> Option<()> {
        Some(())
    }
}

/// The whole document: one job, or `global:` and `scrape_configs:`. Every valid job, in the
/// order written; one bad job hides no other.
pub(super) fn document(w: &mut Walker<'_>, root: &Node, global: &GlobalConfig) -> Loaded {
    let root_path = Path::root();
    let mut out = Loaded {
        jobs: Vec::new(),
        global: global.clone(),
        scrape_config_files: Vec::new(),
        names: BTreeMap::new(),
    };
    let entries = match &root.kind {
        Kind::Null => return out,
        Kind::Map(entries) => entries,
        _ => {
            w.type_err(
                &root_path,
                root,
                "a scrape config or a document with scrape_configs",
            );
            return out;
        }
    };
    let is_document = entries
        .iter()
        .any(|(k, _)| k.text().is_some_and(|k| TOP_LEVEL_KEYS.contains(&k)));
    if !is_document {
        out.jobs = job(w, root, &root_path, global).into_iter().collect();
        out.names = out
            .jobs
            .iter()
            .map(|j| (j.job_name.clone(), "main config file".to_string()))
            .collect();
        return out;
    }
    let Some(entries) = w.map(root, &root_path) else {
        return out;
    };
    let mut doc = Document {
        global: global.clone(),
        jobs: Vec::new(),
        bad_escaping: None,
        scrape_config_files: Vec::new(),
        otlp_translation: None,
    };
    w.keys(entries, &root_path, &mut doc);
    if let Some((strategy, pos)) = &doc.otlp_translation {
        let path = root_path.key("otlp").key("translation_strategy");
        match strategy.as_str() {
            "" | "UnderscoreEscapingWithSuffixes" | "UnderscoreEscapingWithoutSuffixes" => {}
            "NoTranslation" | "NoUTF8EscapingWithSuffixes" => {
                if doc.global.metric_name_validation_scheme == NameValidationScheme::Legacy {
                    let message = format!(
                        "OTLP translation strategy {strategy:?} is not allowed when UTF8 is disabled"
                    );
                    w.err(&path, *pos, message);
                }
            }
            other => {
                let message = format!("unsupported OTLP translation strategy {other:?}");
                w.err(&path, *pos, message);
            }
        }
    }
    if let (Some((text, pos)), false) = (&doc.bad_escaping, doc.jobs.is_empty()) {
        let message = format!(
            "unknown global name escaping method specified, must be one of 'allow-utf-8', 'underscores', 'dots', or 'values', got {text:?}"
        );
        w.err(
            &root_path.key("global").key("metric_name_escaping_scheme"),
            *pos,
            message,
        );
    }
    let list = root_path.key("scrape_configs");
    let mut jobs: Vec<JobConfig> = Vec::new();
    let mut names: BTreeMap<String, Position> = BTreeMap::new();
    for (i, node) in doc.jobs.iter().enumerate() {
        let path = list.index(i);
        w.job = String::new();
        if let Kind::Null = node.kind {
            w.err(&path, node.pos, "empty or null scrape config section");
            continue;
        }
        let job = job(w, node, &path, &doc.global);
        // Names of invalid jobs count too: a repeated name is an error of its own.
        let name = job
            .as_ref()
            .map(|j| j.job_name.clone())
            .unwrap_or_else(|| w.job.clone());
        if !name.is_empty() {
            let pos = job_name_position(node).unwrap_or(node.pos);
            if let Some(first) = names.get(&name) {
                let message = format!(
                    "found multiple scrape configs with job name {name:?} (first at line {})",
                    first.line
                );
                w.err(&path.key("job_name"), pos, message);
                continue;
            }
            names.insert(name, pos);
        }
        jobs.extend(job);
    }
    w.job = String::new();
    Loaded {
        jobs,
        global: doc.global,
        scrape_config_files: doc.scrape_config_files,
        names: names
            .into_keys()
            .map(|n| (n, "main config file".to_string()))
            .collect(),
    }
}

/// What [`document`] read.
pub(super) struct Loaded {
    /// Every valid job, in the order written.
    pub(super) jobs: Vec<JobConfig>,
    /// The document's `global:` over the caller's defaults.
    pub(super) global: GlobalConfig,
    /// `scrape_config_files` patterns, with where each is written.
    pub(super) scrape_config_files: Vec<(String, Position)>,
    /// Every job name (valid jobs or not) and where it was found, for Prometheus's message
    /// on a name repeated in a scrape config file.
    pub(super) names: BTreeMap<String, String>,
}

/// The jobs of one file of `scrape_config_files` (a document with only `scrape_configs:`),
/// under the main file's `global:`; `names` holds every job name seen so far and where, and
/// gets this file's.
pub(super) fn scrape_config_file(
    w: &mut Walker<'_>,
    root: &Node,
    file: &str,
    global: &GlobalConfig,
    names: &mut BTreeMap<String, String>,
) -> Vec<JobConfig> {
    let root_path = Path::root();
    let Some(entries) = w.map(root, &root_path) else {
        return Vec::new();
    };
    let mut doc = ScrapeConfigsFile { jobs: Vec::new() };
    w.keys(entries, &root_path, &mut doc);
    let list = root_path.key("scrape_configs");
    let mut jobs = Vec::new();
    for (i, node) in doc.jobs.iter().enumerate() {
        let path = list.index(i);
        w.job = String::new();
        if let Kind::Null = node.kind {
            w.err(&path, node.pos, "empty or null scrape config section");
            continue;
        }
        let Some(job) = job(w, node, &path, global) else {
            continue;
        };
        if let Some(first) = names.get(&job.job_name) {
            let message = format!(
                "found multiple scrape configs with job name {:?}, first found in {first}",
                job.job_name
            );
            let pos = job_name_position(node).unwrap_or(node.pos);
            w.err(&path.key("job_name"), pos, message);
            continue;
        }
        names.insert(job.job_name.clone(), format!("{file:?}"));
        jobs.push(job);
    }
    w.job = String::new();
    jobs
}

/// A file of `scrape_config_files`: `scrape_configs:` and nothing else.
struct ScrapeConfigsFile {
    jobs: Vec<Node>,
}

impl Section for ScrapeConfigsFile {
    type Value = ();

    const FIELDS: &'static [Field<Self>] = &[row("scrape_configs", |w, v, p, d| {
        if let Some(items) = w.seq(v, p) {
            d.jobs = items.to_vec();
        }
    })];

    fn unsupported(_: &str) -> bool {
        false
    }

    /// Unused: [`scrape_config_file`] reads the keys with [`Walker::keys`], then the jobs.
    fn finish(self, _: &mut Walker<'_>, _: &Node, _: &Path, _: bool) -> Option<()> {
        Some(())
    }
}

/// `runtime:`: read and checked, not used.
struct Runtime;

impl Section for Runtime {
    type Value = ();

    const FIELDS: &'static [Field<Self>] = &[
        row("gogc", |w, v, p, _| {
            w.int(v, p);
        }),
        row("log_level", |w, v, p, _| {
            let Some(level) = w.string(v, p) else { return };
            let known = ["", "debug", "info", "warn", "error"];
            if !known.contains(&level.to_ascii_lowercase().as_str()) {
                w.err(p, v.pos, format!("unrecognized log level {level}"));
            }
        }),
    ];

    fn unsupported(_: &str) -> bool {
        false
    }

    fn finish(self, _: &mut Walker<'_>, _: &Node, _: &Path, _: bool) -> Option<()> {
        Some(())
    }
}

/// `otlp:`: read and checked as Prometheus does, not used (scrapepool receives no OTLP).
struct Otlp {
    /// `promote_all_resource_attributes` and where.
    promote_all: Option<(bool, Position)>,
    /// `promote_resource_attributes`, each with where.
    promote: Vec<(String, Position)>,
    /// `ignore_resource_attributes`, each with where.
    ignore: Vec<(String, Position)>,
}

/// The items of a list of strings, each with where it is written.
fn positioned_strings(w: &mut Walker<'_>, v: &Node, p: &Path) -> Vec<(String, Position)> {
    w.each(v, p, |w, item, p| w.string(item, p).map(|s| (s, item.pos)))
}

impl Section for Otlp {
    type Value = ();

    const FIELDS: &'static [Field<Self>] = &[
        row("promote_all_resource_attributes", |w, v, p, d| {
            d.promote_all = w.boolean(v, p).map(|b| (b, v.pos))
        }),
        row("promote_resource_attributes", |w, v, p, d| {
            d.promote = positioned_strings(w, v, p)
        }),
        row("ignore_resource_attributes", |w, v, p, d| {
            d.ignore = positioned_strings(w, v, p)
        }),
        row("translation_strategy", |w, v, p, _| {
            w.string(v, p);
        }),
        row("keep_identifying_resource_attributes", |w, v, p, _| {
            w.boolean(v, p);
        }),
        row("convert_histograms_to_nhcb", |w, v, p, _| {
            w.boolean(v, p);
        }),
        row("promote_scope_metadata", |w, v, p, _| {
            w.boolean(v, p);
        }),
        row("label_name_underscore_sanitization", |w, v, p, _| {
            w.boolean(v, p);
        }),
        row("label_name_preserve_multiple_underscores", |w, v, p, _| {
            w.boolean(v, p);
        }),
    ];

    fn unsupported(_: &str) -> bool {
        false
    }

    fn finish(self, w: &mut Walker<'_>, _: &Node, path: &Path, clean: bool) -> Option<()> {
        if !clean {
            return Some(());
        }
        let promote_all = self.promote_all.is_some_and(|(b, _)| b);
        let (list, key, adjective) = if promote_all {
            if let Some((_, pos)) = self.promote.first() {
                w.err(
                    &path.key("promote_resource_attributes"),
                    *pos,
                    "'promote_all_resource_attributes' and 'promote_resource_attributes' cannot be configured simultaneously",
                );
                return Some(());
            }
            (&self.ignore, "ignore_resource_attributes", "ignored")
        } else {
            if let Some((_, pos)) = self.ignore.first() {
                w.err(
                    &path.key("ignore_resource_attributes"),
                    *pos,
                    "'ignore_resource_attributes' cannot be configured unless 'promote_all_resource_attributes' is true",
                );
                return Some(());
            }
            (&self.promote, "promote_resource_attributes", "promoted")
        };
        let mut seen = std::collections::BTreeSet::new();
        for (i, (attr, pos)) in list.iter().enumerate() {
            let attr = attr.trim();
            let message = if attr.is_empty() {
                format!("invalid '{key}': empty {adjective} OTel resource attribute")
            } else if !seen.insert(attr) {
                format!("invalid '{key}': duplicated {adjective} OTel resource attribute {attr:?}")
            } else {
                continue;
            };
            w.err(&path.key(key).index(i), *pos, message);
        }
        Some(())
    }
}

/// The `global:` section of a whole document over `defaults` (`defaults` when it has none).
pub(super) fn global_of(w: &mut Walker<'_>, root: &Node, defaults: &GlobalConfig) -> GlobalConfig {
    let Kind::Map(entries) = &root.kind else {
        return defaults.clone();
    };
    let Some((_, node)) = entries.iter().find(|(k, _)| k.text() == Some("global")) else {
        return defaults.clone();
    };
    let draft = Global {
        global: defaults.clone(),
        interval: Duration::ZERO,
        timeout: Duration::ZERO,
        escaping: None,
    };
    w.section(node, &Path::root().key("global"), draft)
        .map(|(global, _)| global)
        .unwrap_or_else(|| defaults.clone())
}

/// Where the first `job_name` of a job is written.
fn job_name_position(node: &Node) -> Option<Position> {
    match &node.kind {
        Kind::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.text() == Some("job_name"))
            .map(|(_, v)| v.pos),
        _ => None,
    }
}

/// `global:`, over the caller's defaults.
struct Global {
    /// The caller's defaults, overwritten by each key read (interval and timeout apart).
    global: GlobalConfig,
    /// `scrape_interval` as written; zero when unset.
    interval: Duration,
    /// `scrape_timeout` as written; zero when unset.
    timeout: Duration,
    /// `metric_name_escaping_scheme` as written and where; `None` when unset.
    escaping: Option<(String, Position)>,
}

/// A `scrape_protocols` list as written: each name with where it is.
type Protocols = Vec<(String, Position)>;

/// Reads a `scrape_protocols` list; `None` for a null (unset).
fn protocols(w: &mut Walker<'_>, v: &Node, p: &Path) -> Option<Protocols> {
    if let Kind::Null = v.kind {
        return None;
    }
    Some(positioned_strings(w, v, p))
}

/// The names of every scrape protocol, as Prometheus lists them in errors.
fn supported_protocols() -> String {
    let names: Vec<&str> = ScrapeProtocol::ALL.iter().map(|p| p.as_str()).collect();
    format!("[{}]", names.join(" "))
}

/// Checks a `scrape_protocols` list as Prometheus does; `whose` ends each message ("for
/// global config", "for scrape config with job name \"j\""). The protocols, or `None`.
fn check_protocols(
    w: &mut Walker<'_>,
    list: &Protocols,
    pos: Position,
    path: &Path,
    whose: &str,
) -> Option<Vec<ScrapeProtocol>> {
    if list.is_empty() {
        w.err(
            path,
            pos,
            format!("scrape_protocols cannot be empty {whose}"),
        );
        return None;
    }
    let mut out = Vec::with_capacity(list.len());
    let mut seen = std::collections::BTreeSet::new();
    let mut ok = true;
    for (i, (name, pos)) in list.iter().enumerate() {
        if !seen.insert(name.to_lowercase()) {
            let all: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
            let message = format!(
                "duplicated protocol in scrape_protocols, got [{}] {whose}",
                all.join(" ")
            );
            w.err(&path.index(i), *pos, message);
            ok = false;
            continue;
        }
        match ScrapeProtocol::parse(name) {
            Some(p) => out.push(p),
            None => {
                let message = format!(
                    "scrape_protocols: unknown scrape protocol {name}, supported: {} {whose}",
                    supported_protocols()
                );
                w.err(&path.index(i), *pos, message);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// A `metric_name_validation_scheme`: `None` when unset (empty).
fn validation_scheme(w: &mut Walker<'_>, v: &Node, p: &Path) -> Option<NameValidationScheme> {
    match w.string(v, p)?.as_str() {
        "" => None,
        "utf8" => Some(NameValidationScheme::Utf8),
        "legacy" => Some(NameValidationScheme::Legacy),
        other => {
            w.err(
                p,
                v.pos,
                format!("unrecognized ValidationScheme: {other:?}"),
            );
            None
        }
    }
}

/// An optional boolean (Go's `*bool`): `None` for a null.
fn opt_bool(w: &mut Walker<'_>, v: &Node, p: &Path) -> Option<bool> {
    match v.kind {
        Kind::Null => None,
        _ => w.boolean(v, p),
    }
}

/// A `body_size_limit` in bytes.
fn body_size(w: &mut Walker<'_>, v: &Node, p: &Path) -> Option<u64> {
    let text = w.string(v, p)?;
    match parse_base2_bytes(&text) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            w.err(p, v.pos, e);
            None
        }
    }
}

impl Section for Global {
    type Value = (GlobalConfig, Option<(String, Position)>);

    const FIELDS: &'static [Field<Self>] = &[
        row("scrape_interval", |w, v, p, d| {
            d.interval = w.duration(v, p).unwrap_or_default()
        }),
        row("scrape_timeout", |w, v, p, d| {
            d.timeout = w.duration(v, p).unwrap_or_default()
        }),
        row("scrape_protocols", |w, v, p, d| {
            let Some(list) = protocols(w, v, p) else {
                d.global.scrape_protocols = None;
                return;
            };
            d.global.scrape_protocols = check_protocols(w, &list, v.pos, p, "for global config");
        }),
        row("evaluation_interval", |w, v, p, _| {
            w.duration(v, p);
        }),
        row("rule_query_offset", |w, v, p, _| {
            w.duration(v, p);
        }),
        row("query_log_file", |w, v, p, _| {
            w.string(v, p);
        }),
        row("query_max_series", |w, v, p, _| {
            w.uint(v, p);
        }),
        row("query_max_samples_read", |w, v, p, _| {
            w.uint(v, p);
        }),
        row("query_max_duration", |w, v, p, _| {
            w.duration(v, p);
        }),
        row("scrape_failure_log_file", |w, v, p, d| {
            d.global.scrape_failure_log_file = w.non_empty(v, p)
        }),
        row("external_labels", |w, v, p, d| {
            if let Some(labels) = w.string_map(v, p) {
                d.global.external_labels = labels;
            }
        }),
        row("body_size_limit", |w, v, p, d| {
            d.global.body_size_limit_bytes = body_size(w, v, p).unwrap_or_default()
        }),
        row("sample_limit", |w, v, p, d| {
            d.global.sample_limit = w.uint(v, p).unwrap_or_default()
        }),
        row("target_limit", |w, v, p, d| {
            d.global.target_limit = w.uint(v, p).unwrap_or_default()
        }),
        row("label_limit", |w, v, p, d| {
            d.global.label_limit = w.uint(v, p).unwrap_or_default()
        }),
        row("label_name_length_limit", |w, v, p, d| {
            d.global.label_name_length_limit = w.uint(v, p).unwrap_or_default()
        }),
        row("label_value_length_limit", |w, v, p, d| {
            d.global.label_value_length_limit = w.uint(v, p).unwrap_or_default()
        }),
        row("keep_dropped_targets", |w, v, p, d| {
            d.global.keep_dropped_targets = w.uint(v, p).unwrap_or_default()
        }),
        row("metric_name_validation_scheme", |w, v, p, d| {
            // Unset, like an invalid one that Go lets through here, is the default.
            d.global.metric_name_validation_scheme = validation_scheme(w, v, p).unwrap_or_default()
        }),
        row("metric_name_escaping_scheme", |w, v, p, d| {
            d.escaping = w.non_empty(v, p).map(|s| (s, v.pos))
        }),
        row("scrape_native_histograms", |w, v, p, d| {
            d.global.scrape_native_histograms = opt_bool(w, v, p).unwrap_or(false)
        }),
        row("convert_classic_histograms_to_nhcb", |w, v, p, d| {
            d.global.convert_classic_histograms_to_nhcb = w.boolean(v, p).unwrap_or_default()
        }),
        row("always_scrape_classic_histograms", |w, v, p, d| {
            d.global.always_scrape_classic_histograms = w.boolean(v, p).unwrap_or_default()
        }),
        row("extra_scrape_metrics", |w, v, p, d| {
            d.global.extra_scrape_metrics = opt_bool(w, v, p).unwrap_or(false)
        }),
    ];

    fn unsupported(_: &str) -> bool {
        false
    }

    fn finish(self, w: &mut Walker<'_>, node: &Node, path: &Path, _: bool) -> Option<Self::Value> {
        let Global {
            mut global,
            mut interval,
            mut timeout,
            escaping,
        } = self;
        let legacy = global.metric_name_validation_scheme == NameValidationScheme::Legacy;
        let labels_path = path.key("external_labels");
        let labels_pos = value_position(node, "external_labels").unwrap_or(node.pos);
        for name in global.external_labels.keys() {
            let valid = if legacy {
                is_valid_label_name(name)
            } else {
                !name.is_empty()
            };
            if !valid {
                let message = format!("{name:?} is not a valid label name");
                w.err(&labels_path.key(name), labels_pos, message);
            }
        }
        if interval.is_zero() {
            interval = global.scrape_interval;
        }
        if timeout > interval {
            w.err(
                &path.key("scrape_timeout"),
                value_position(node, "scrape_timeout").unwrap_or(node.pos),
                "global scrape timeout greater than scrape interval",
            );
        }
        if timeout.is_zero() {
            timeout = global.scrape_timeout.min(interval);
        }
        global.scrape_interval = interval;
        global.scrape_timeout = timeout;
        let mut bad = None;
        match escaping {
            None => global.metric_name_escaping_scheme = None,
            Some((text, pos)) => match NameEscapingScheme::parse(&text) {
                Some(scheme) => global.metric_name_escaping_scheme = Some(scheme),
                None => bad = Some((text, pos)),
            },
        }
        Some((global, bad))
    }
}

/// One `scrape_config` at `path`; `None` when it has any error (all of them reported).
fn job(w: &mut Walker<'_>, node: &Node, path: &Path, global: &GlobalConfig) -> Option<JobConfig> {
    // Name the job in every error, even those of fields written before `job_name`.
    // And read its relabel rules under its name validation scheme, wherever that is written.
    w.legacy_names = global.metric_name_validation_scheme == NameValidationScheme::Legacy;
    if let Kind::Map(entries) = &node.kind {
        if let Some((_, value)) = entries.iter().find(|(k, _)| k.text() == Some("job_name")) {
            w.job = value.text().unwrap_or("").to_string();
        }
        let scheme = entries
            .iter()
            .rev()
            .find(|(k, _)| k.text() == Some("metric_name_validation_scheme"))
            .and_then(|(_, v)| v.text());
        match scheme {
            Some("legacy") => w.legacy_names = true,
            Some("utf8") => w.legacy_names = false,
            _ => {}
        }
    }
    let draft = Job {
        job: JobConfig {
            job_name: String::new(),
            scrape_interval: Duration::ZERO,
            scrape_timeout: Duration::ZERO,
            metrics_path: "/metrics".into(),
            scheme: Scheme::Http,
            params: BTreeMap::new(),
            honor_labels: false,
            honor_timestamps: true,
            enable_compression: true,
            sample_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            body_size_limit_bytes: 0,
            target_limit: 0,
            basic_auth: None,
            authorization: None,
            tls_config: TlsConfig::default(),
            http_client: HttpClientOptions::default(),
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
            static_configs: Vec::new(),
            sd_configs: Vec::new(),
            track_timestamps_staleness: false,
            scrape_protocols: Vec::new(),
            fallback_scrape_protocol: None,
            scrape_native_histograms: false,
            always_scrape_classic_histograms: false,
            convert_classic_histograms_to_nhcb: false,
            extra_scrape_metrics: false,
            scrape_failure_log_file: None,
            native_histogram_bucket_limit: 0,
            native_histogram_min_bucket_factor: 0.0,
            keep_dropped_targets: 0,
            metric_name_validation_scheme: NameValidationScheme::Utf8,
            metric_name_escaping_scheme: NameEscapingScheme::AllowUtf8,
        },
        global: global.clone(),
        http: HttpClient::default(),
        own: OwnKeys::default(),
    };
    w.url_targets.clear();
    w.section(node, path, draft)
}

/// A job being read.
struct Job {
    job: JobConfig,
    /// The defaults the job inherits.
    global: GlobalConfig,
    /// The HTTP client keys, written inline in the job.
    http: HttpClient,
    /// The keys whose default is the global value, as written (`None`: unset).
    own: OwnKeys,
}

/// The keys of a job that fall back to `global:` when unset, as written.
#[derive(Default)]
struct OwnKeys {
    scrape_protocols: Option<(Protocols, Position)>,
    fallback_scrape_protocol: Option<(String, Position)>,
    scrape_native_histograms: Option<bool>,
    always_scrape_classic_histograms: Option<bool>,
    convert_classic_histograms_to_nhcb: Option<bool>,
    extra_scrape_metrics: Option<bool>,
    metric_name_validation_scheme: Option<NameValidationScheme>,
    metric_name_escaping_scheme: Option<(String, Position)>,
}

impl Section for Job {
    type Value = JobConfig;

    const FIELDS: &'static [Field<Self>] = &[
        row("job_name", |w, v, p, d| {
            d.job.job_name = w.string(v, p).unwrap_or_default()
        }),
        row("scrape_interval", |w, v, p, d| {
            d.job.scrape_interval = w.duration(v, p).unwrap_or_default()
        }),
        row("scrape_timeout", |w, v, p, d| {
            d.job.scrape_timeout = w.duration(v, p).unwrap_or_default()
        }),
        row("metrics_path", |w, v, p, d| {
            d.job.metrics_path = w.string(v, p).unwrap_or_default()
        }),
        row("scheme", |w, v, p, d| {
            if let Some(s) = scheme(w, v, p) {
                d.job.scheme = s;
            }
        }),
        row("params", |w, v, p, d| {
            let Some(entries) = w.map(v, p) else { return };
            for (k, values) in entries {
                let Some(param) = w.string(k, p) else {
                    continue;
                };
                if let Some(values) = w.string_list(values, &p.key(&param)) {
                    d.job.params.insert(param, values);
                }
            }
        }),
        row("honor_labels", |w, v, p, d| {
            d.job.honor_labels = w.boolean(v, p).unwrap_or_default()
        }),
        row("honor_timestamps", |w, v, p, d| {
            d.job.honor_timestamps = w.boolean(v, p).unwrap_or_default()
        }),
        row("enable_compression", |w, v, p, d| {
            d.job.enable_compression = w.boolean(v, p).unwrap_or_default()
        }),
        row("sample_limit", |w, v, p, d| {
            d.job.sample_limit = w.uint(v, p).unwrap_or_default()
        }),
        row("label_limit", |w, v, p, d| {
            d.job.label_limit = w.uint(v, p).unwrap_or_default()
        }),
        row("label_name_length_limit", |w, v, p, d| {
            d.job.label_name_length_limit = w.uint(v, p).unwrap_or_default()
        }),
        row("label_value_length_limit", |w, v, p, d| {
            d.job.label_value_length_limit = w.uint(v, p).unwrap_or_default()
        }),
        row("target_limit", |w, v, p, d| {
            d.job.target_limit = w.uint(v, p).unwrap_or_default()
        }),
        row("body_size_limit", |w, v, p, d| {
            d.job.body_size_limit_bytes = body_size(w, v, p).unwrap_or_default()
        }),
        row("keep_dropped_targets", |w, v, p, d| {
            d.job.keep_dropped_targets = w.uint(v, p).unwrap_or_default()
        }),
        row("native_histogram_bucket_limit", |w, v, p, d| {
            d.job.native_histogram_bucket_limit = w.uint(v, p).unwrap_or_default()
        }),
        row("native_histogram_min_bucket_factor", |w, v, p, d| {
            d.job.native_histogram_min_bucket_factor = w.float(v, p).unwrap_or_default()
        }),
        row("track_timestamps_staleness", |w, v, p, d| {
            d.job.track_timestamps_staleness = w.boolean(v, p).unwrap_or_default()
        }),
        row("scrape_failure_log_file", |w, v, p, d| {
            d.job.scrape_failure_log_file = w.non_empty(v, p)
        }),
        row("scrape_protocols", |w, v, p, d| {
            d.own.scrape_protocols = protocols(w, v, p).map(|l| (l, v.pos))
        }),
        row("fallback_scrape_protocol", |w, v, p, d| {
            d.own.fallback_scrape_protocol = w.non_empty(v, p).map(|s| (s, v.pos))
        }),
        row("scrape_native_histograms", |w, v, p, d| {
            d.own.scrape_native_histograms = opt_bool(w, v, p)
        }),
        row("always_scrape_classic_histograms", |w, v, p, d| {
            d.own.always_scrape_classic_histograms = opt_bool(w, v, p)
        }),
        row("convert_classic_histograms_to_nhcb", |w, v, p, d| {
            d.own.convert_classic_histograms_to_nhcb = opt_bool(w, v, p)
        }),
        row("extra_scrape_metrics", |w, v, p, d| {
            d.own.extra_scrape_metrics = opt_bool(w, v, p)
        }),
        row("metric_name_validation_scheme", |w, v, p, d| {
            d.own.metric_name_validation_scheme = validation_scheme(w, v, p)
        }),
        row("metric_name_escaping_scheme", |w, v, p, d| {
            d.own.metric_name_escaping_scheme = w.non_empty(v, p).map(|s| (s, v.pos))
        }),
        row("relabel_configs", |w, v, p, d| {
            d.job.relabel_configs = relabel_configs(w, v, p)
        }),
        row("metric_relabel_configs", |w, v, p, d| {
            d.job.metric_relabel_configs = relabel_configs(w, v, p)
        }),
        row("static_configs", |w, v, p, d| {
            let Some(items) = w.seq(v, p) else { return };
            for (i, item) in items.iter().enumerate() {
                let draft = TargetGroup {
                    targets: Vec::new(),
                    labels: Labels::new(),
                    // Prometheus names a static group by its index.
                    source: i.to_string(),
                };
                d.job
                    .static_configs
                    .extend(w.section(item, &p.index(i), draft));
            }
        }),
        row("dns_sd_configs", |w, v, p, d| {
            let found = w.each(v, p, |w, item, p| w.section(item, p, dns_sd_defaults()));
            d.job
                .sd_configs
                .extend(found.into_iter().map(SdConfig::Dns));
        }),
        row("consul_sd_configs", |w, v, p, d| {
            let found = w.each(v, p, |w, item, p| w.section(item, p, consul_sd_defaults()));
            d.job
                .sd_configs
                .extend(found.into_iter().map(SdConfig::Consul));
        }),
        row("file_sd_configs", |w, v, p, d| {
            let found = w.each(v, p, |w, item, p| w.section(item, p, file_sd_defaults()));
            d.job
                .sd_configs
                .extend(found.into_iter().map(SdConfig::File));
        }),
        row("http_sd_configs", |w, v, p, d| {
            let found = w.each(v, p, |w, item, p| w.section(item, p, http_sd_defaults()));
            d.job
                .sd_configs
                .extend(found.into_iter().map(SdConfig::Http));
        }),
    ];

    fn unsupported(key: &str) -> bool {
        unsupported_in_job(key)
    }

    fn inline(&mut self) -> Option<&mut dyn Keys> {
        Some(&mut self.http)
    }

    fn finish(self, w: &mut Walker<'_>, node: &Node, path: &Path, _: bool) -> Option<JobConfig> {
        let Job {
            mut job,
            global,
            http,
            own,
        } = self;
        if job.job_name.is_empty() {
            let pos = job_name_position(node).unwrap_or(node.pos);
            w.err(&path.key("job_name"), pos, "job_name is empty");
        }
        if let Some(http) = http.finish(w, node, path, true) {
            job.basic_auth = http.basic_auth.map(|b| b.0);
            job.authorization = http.authorization.map(|a| a.0);
            job.tls_config = http.tls_config;
            job.http_client = http.options;
        }
        // Prometheus rejects URLs as targets unless relabeling may rewrite them.
        let url_targets = std::mem::take(&mut w.url_targets);
        if value_position(node, "relabel_configs").is_none() {
            w.errors.extend(url_targets);
        }
        // Prometheus: the interval first, then the timeout checked against it, then defaulted.
        if job.scrape_interval.is_zero() {
            job.scrape_interval = global.scrape_interval;
        }
        if job.scrape_timeout > job.scrape_interval {
            let message = format!(
                "scrape timeout greater than scrape interval for scrape config with job name {:?}",
                job.job_name
            );
            let pos = value_position(node, "scrape_timeout").unwrap_or(node.pos);
            w.err(&path.key("scrape_timeout"), pos, message);
        }
        if job.scrape_timeout.is_zero() {
            job.scrape_timeout = global.scrape_timeout.min(job.scrape_interval);
        }
        inherit(&mut job, &global, own, w, path, node.pos);
        Some(job)
    }
}

/// What a job takes from `global:` and checks against it, in the order of Prometheus's
/// `ScrapeConfig.Validate`.
fn inherit(
    job: &mut JobConfig,
    global: &GlobalConfig,
    own: OwnKeys,
    w: &mut Walker<'_>,
    path: &Path,
    job_pos: Position,
) {
    let whose = format!("for scrape config with job name {:?}", job.job_name);
    for (limit, default) in [
        (&mut job.body_size_limit_bytes, global.body_size_limit_bytes),
        (&mut job.sample_limit, global.sample_limit),
        (&mut job.target_limit, global.target_limit),
        (&mut job.label_limit, global.label_limit),
        (
            &mut job.label_name_length_limit,
            global.label_name_length_limit,
        ),
        (
            &mut job.label_value_length_limit,
            global.label_value_length_limit,
        ),
        (&mut job.keep_dropped_targets, global.keep_dropped_targets),
    ] {
        if *limit == 0 {
            *limit = default;
        }
    }
    if job.scrape_failure_log_file.is_none() {
        job.scrape_failure_log_file = global.scrape_failure_log_file.clone();
    }
    job.scrape_native_histograms = own
        .scrape_native_histograms
        .unwrap_or(global.scrape_native_histograms);
    job.extra_scrape_metrics = own
        .extra_scrape_metrics
        .unwrap_or(global.extra_scrape_metrics);
    job.scrape_protocols = match &own.scrape_protocols {
        Some((list, pos)) => {
            let p = path.key("scrape_protocols");
            check_protocols(w, list, *pos, &p, &whose).unwrap_or_default()
        }
        None => match &global.scrape_protocols {
            Some(list) => list.clone(),
            None if job.scrape_native_histograms => ScrapeProtocol::PROTO_FIRST.to_vec(),
            None => ScrapeProtocol::DEFAULT.to_vec(),
        },
    };
    if let Some((name, pos)) = &own.fallback_scrape_protocol {
        match ScrapeProtocol::parse(name) {
            Some(p) => job.fallback_scrape_protocol = Some(p),
            None => {
                let message = format!(
                    "invalid fallback_scrape_protocol {whose}: unknown scrape protocol {name}, supported: {}",
                    supported_protocols()
                );
                w.err(&path.key("fallback_scrape_protocol"), *pos, message);
            }
        }
    }
    // Classic-to-custom-bucket conversion is not implemented: a job that asks for it must not
    // look valid (README, "What scrapepool does differently from Prometheus 3.16").
    job.metric_name_validation_scheme = own
        .metric_name_validation_scheme
        .unwrap_or(global.metric_name_validation_scheme);
    let global_escaping =
        global
            .metric_name_escaping_scheme
            .unwrap_or(match global.metric_name_validation_scheme {
                NameValidationScheme::Legacy => NameEscapingScheme::Underscores,
                NameValidationScheme::Utf8 => NameEscapingScheme::AllowUtf8,
            });
    let escaping = match &own.metric_name_escaping_scheme {
        Some((text, pos)) => match NameEscapingScheme::parse(text) {
            Some(scheme) => Some((scheme, *pos)),
            None => {
                let message = format!(
                    "unknown scrape config name escaping method specified, must be one of 'allow-utf-8', 'underscores', 'dots', or 'values', got {text:?}"
                );
                w.err(&path.key("metric_name_escaping_scheme"), *pos, message);
                None
            }
        },
        None => None,
    };
    job.metric_name_escaping_scheme = match (escaping, own.metric_name_validation_scheme) {
        (Some((scheme, _)), _) => scheme,
        (None, None) => global_escaping,
        (None, Some(NameValidationScheme::Legacy)) => NameEscapingScheme::Underscores,
        (None, Some(NameValidationScheme::Utf8)) => NameEscapingScheme::AllowUtf8,
    };
    if job.metric_name_escaping_scheme == NameEscapingScheme::AllowUtf8
        && job.metric_name_validation_scheme != NameValidationScheme::Utf8
    {
        let pos = escaping.map_or(job_pos, |(_, pos)| pos);
        w.err(
            &path.key("metric_name_escaping_scheme"),
            pos,
            "utf8 metric names requested but validation scheme is not set to UTF8",
        );
    }
    job.convert_classic_histograms_to_nhcb = own
        .convert_classic_histograms_to_nhcb
        .unwrap_or(global.convert_classic_histograms_to_nhcb);
    if job.convert_classic_histograms_to_nhcb {
        w.err(
            &path.key("convert_classic_histograms_to_nhcb"),
            job_pos,
            format!("convert_classic_histograms_to_nhcb: true {whose} is not supported by scrapepool: it converts no classic histograms to custom-bucket ones"),
        );
    }
    job.always_scrape_classic_histograms = own
        .always_scrape_classic_histograms
        .unwrap_or(global.always_scrape_classic_histograms);
}

/// A label name as Prometheus 3 reads one in `source_labels` and static `labels` (its
/// process-wide UTF-8 validation): any non-empty string.
fn is_valid_utf8_name(name: &str) -> bool {
    !name.is_empty()
}

/// `http` or `https`.
pub(super) fn scheme(w: &mut Walker<'_>, node: &Node, path: &Path) -> Option<Scheme> {
    match w.string(node, path)?.as_str() {
        "http" => Some(Scheme::Http),
        "https" => Some(Scheme::Https),
        other => {
            let message = format!("scheme must be \"http\" or \"https\", not {other:?}");
            w.err(path, node.pos, message);
            None
        }
    }
}

/// A list of relabel rules; the valid ones, every error reported.
fn relabel_configs(w: &mut Walker<'_>, node: &Node, path: &Path) -> Vec<RelabelConfig> {
    w.each(node, path, |w, item, p| {
        if let Kind::Null = item.kind {
            w.err(p, item.pos, "empty or null relabeling rule");
            return None;
        }
        let draft = RelabelSpec {
            legacy_names: w.legacy_names,
            ..RelabelSpec::default()
        };
        w.section(item, p, draft)
    })
}

impl Section for RelabelSpec {
    type Value = RelabelConfig;

    const FIELDS: &'static [Field<Self>] = &[
        row("source_labels", |w, v, p, d| {
            if let Some(labels) = w.checked_string_list(v, p, is_valid_utf8_name, |label| {
                format!("{label:?} is not a valid label name")
            }) {
                d.source_labels = Some(labels);
            }
        }),
        row("separator", |w, v, p, d| d.separator = w.string(v, p)),
        row("regex", |w, v, p, d| d.regex = w.string(v, p)),
        row("modulus", |w, v, p, d| d.modulus = w.uint(v, p)),
        row("target_label", |w, v, p, d| d.target_label = w.string(v, p)),
        row("replacement", |w, v, p, d| d.replacement = w.string(v, p)),
        row("action", |w, v, p, d| d.action = w.string(v, p)),
    ];

    /// Prometheus's checks of a rule, once its keys read cleanly.
    fn finish(
        self,
        w: &mut Walker<'_>,
        node: &Node,
        path: &Path,
        clean: bool,
    ) -> Option<RelabelConfig> {
        if !clean {
            return None;
        }
        match RelabelConfig::from_spec(self) {
            Ok(rc) => Some(rc),
            Err(e) => {
                let pos = value_position(node, e.field()).unwrap_or(node.pos);
                w.err(&path.key(e.field()), pos, e.to_string());
                None
            }
        }
    }
}

impl Section for TargetGroup {
    type Value = TargetGroup;

    const FIELDS: &'static [Field<Self>] = &[
        row("targets", |w, v, p, d| {
            let Some(items) = w.seq(v, p) else { return };
            for (i, item) in items.iter().enumerate() {
                let path = p.index(i);
                let Some(address) = w.string(item, &path) else {
                    continue;
                };
                if address.contains('/') {
                    let message = format!("{address:?} is not a valid hostname");
                    w.url_target(&path, item.pos, message);
                }
                d.targets
                    .push(Labels::from_pairs([("__address__", address)]));
            }
        }),
        row("labels", |w, v, p, d| {
            let Some(entries) = w.map(v, p) else { return };
            for (k, value) in entries {
                let Some(label) = w.string(k, p) else {
                    continue;
                };
                let path = p.key(&label);
                if !is_valid_utf8_name(&label) {
                    w.err(&path, k.pos, format!("{label:?} is not a valid label name"));
                    continue;
                }
                if let Some(value) = w.string(value, &path) {
                    d.labels.set(label, value);
                }
            }
        }),
    ];

    fn finish(self, _: &mut Walker<'_>, _: &Node, _: &Path, _: bool) -> Option<TargetGroup> {
        Some(self)
    }
}
