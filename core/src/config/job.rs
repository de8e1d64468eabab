//! The sections of a scrape job and of the document around it: the document, `global:`,
//! `scrape_config`, a relabel rule and a static group, each one table of fields (see
//! [`super::walk`] for how a row reads a key) and one `finish` that checks them together.
//!
//! A section's draft starts with Prometheus's defaults; a row overwrites what its key gives.
//! A new key is one row in its section's table.

use std::collections::BTreeMap;
use std::time::Duration;

use super::discovery::{consul_sd_defaults, dns_sd_defaults, file_sd_defaults};
use super::http_client::HttpClient;
use super::units::parse_base2_bytes;
use super::walk::{row, value_position, Field, Keys, Path, Section, Walker};
use super::yaml::{Kind, Node};
use super::{GlobalConfig, JobConfig, Position, Scheme, SdConfig, TargetGroup, TlsConfig};
use crate::labels::{EscapingScheme, Labels, ValidationScheme};
use crate::protocol::{default_scrape_protocols, ScrapeProtocol};
use crate::relabel::{RelabelConfig, RelabelSpec};

/// Keys of Prometheus's that scrapepool does not implement: named in the error, so a user
/// knows the key is real but unsupported rather than misspelled.
pub(super) const UNSUPPORTED_FIELDS: &[&str] = &[
    "oauth2",
    "proxy_url",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
    "follow_redirects",
    "enable_http2",
    "track_timestamps_staleness",
    "keep_dropped_targets",
    "native_histogram_bucket_limit",
    "native_histogram_min_bucket_factor",
    "scrape_classic_histograms",
    "http_headers",
];

/// In a job (and at the top, where a job may stand alone): the keys above, and every
/// discovery mechanism other than DNS, Consul and file.
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
}

impl Section for Document {
    type Value = ();

    const FIELDS: &'static [Field<Self>] = &[
        row("global", |w, v, p, d| {
            let draft = Global {
                defaults: d.global.clone(),
                interval: Duration::ZERO,
                timeout: Duration::ZERO,
                protocols: None,
                validation: None,
                escaping: None,
                external_labels: Vec::new(),
            };
            if let Some(global) = w.section(v, p, draft) {
                d.global = global;
            }
        }),
        row("scrape_configs", |w, v, p, d| {
            if let Some(items) = w.seq(v, p) {
                d.jobs = items.to_vec();
            }
        }),
    ];

    /// Keys of a whole Prometheus configuration that have no meaning for scrape jobs;
    /// accepted and ignored so that `scrapepool check prometheus.yml` works on a real file.
    const IGNORED: &'static [&'static str] = &[
        "rule_files",
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
pub(super) fn document(w: &mut Walker<'_>, root: &Node, global: &GlobalConfig) -> Vec<JobConfig> {
    let root_path = Path::root();
    let entries = match &root.kind {
        Kind::Null => return Vec::new(),
        Kind::Map(entries) => entries,
        _ => {
            w.type_err(
                &root_path,
                root,
                "a scrape config or a document with scrape_configs",
            );
            return Vec::new();
        }
    };
    let is_document = entries
        .iter()
        .any(|(k, _)| matches!(k.text(), Some("scrape_configs" | "global")));
    if !is_document {
        return job(w, root, &root_path, global).into_iter().collect();
    }
    let Some(entries) = w.map(root, &root_path) else {
        return Vec::new();
    };
    let mut doc = Document {
        global: global.clone(),
        jobs: Vec::new(),
    };
    w.keys(entries, &root_path, &mut doc);
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
    jobs
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
    /// What an unset (zero) value falls back to.
    defaults: GlobalConfig,
    /// `scrape_interval` as written; zero when unset.
    interval: Duration,
    /// `scrape_timeout` as written; zero when unset.
    timeout: Duration,
    /// `scrape_protocols` as written.
    protocols: Option<Vec<ScrapeProtocol>>,
    /// `metric_name_validation_scheme` as written; `None` when unset or empty.
    validation: Option<ValidationScheme>,
    /// `metric_name_escaping_scheme` as written.
    escaping: Option<EscapingScheme>,
    /// The names of `external_labels` and where each is written, checked against the
    /// validation scheme once the whole section is read.
    external_labels: Vec<(String, Position)>,
}

impl Section for Global {
    type Value = GlobalConfig;

    const FIELDS: &'static [Field<Self>] = &[
        row("scrape_interval", |w, v, p, d| {
            d.interval = w.duration(v, p).unwrap_or_default()
        }),
        row("scrape_timeout", |w, v, p, d| {
            d.timeout = w.duration(v, p).unwrap_or_default()
        }),
        row("scrape_protocols", |w, v, p, d| {
            d.protocols = scrape_protocols(w, v, p, "global config")
        }),
        row("metric_name_validation_scheme", |w, v, p, d| {
            d.validation = validation_scheme(w, v, p)
        }),
        row("metric_name_escaping_scheme", |w, v, p, d| {
            d.escaping = escaping_scheme(w, v, p, "global")
        }),
        row("external_labels", |w, v, p, d| {
            let Some(entries) = w.map(v, p) else { return };
            for (k, value) in entries {
                let Some(label) = w.string(k, p) else {
                    continue;
                };
                if w.string(value, &p.key(&label)).is_some() {
                    d.external_labels.push((label, k.pos));
                }
            }
        }),
    ];

    /// Keys of Prometheus's `global:` section that do not concern scraping
    /// (`external_labels` is read only to check its names, as Prometheus does).
    const IGNORED: &'static [&'static str] = &["evaluation_interval", "query_log_file"];

    fn finish(self, w: &mut Walker<'_>, node: &Node, path: &Path, _: bool) -> Option<GlobalConfig> {
        let Global {
            defaults,
            mut interval,
            mut timeout,
            protocols,
            validation,
            escaping,
            external_labels,
        } = self;
        let validation = validation.unwrap_or(ValidationScheme::Utf8);
        for (label, pos) in external_labels {
            if !validation.is_valid_label_name(&label) {
                let path = path.key("external_labels").key(&label);
                w.err(&path, pos, format!("{label:?} is not a valid label name"));
            }
        }
        if interval.is_zero() {
            interval = defaults.scrape_interval;
        }
        if timeout > interval {
            w.err(
                &path.key("scrape_timeout"),
                value_position(node, "scrape_timeout").unwrap_or(node.pos),
                "global scrape timeout greater than scrape interval",
            );
        }
        if timeout.is_zero() {
            timeout = defaults.scrape_timeout.min(interval);
        }
        Some(GlobalConfig {
            scrape_interval: interval,
            scrape_timeout: timeout,
            scrape_protocols: protocols.or(defaults.scrape_protocols),
            metric_name_validation_scheme: validation,
            metric_name_escaping_scheme: escaping,
        })
    }
}

/// One `scrape_config` at `path`; `None` when it has any error (all of them reported).
fn job(w: &mut Walker<'_>, node: &Node, path: &Path, global: &GlobalConfig) -> Option<JobConfig> {
    // Name the job in every error, even those of fields written before `job_name`.
    if let Kind::Map(entries) = &node.kind {
        if let Some((_, value)) = entries.iter().find(|(k, _)| k.text() == Some("job_name")) {
            w.job = value.text().unwrap_or("").to_string();
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
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
            static_configs: Vec::new(),
            sd_configs: Vec::new(),
            scrape_protocols: Vec::new(),
            fallback_scrape_protocol: None,
            metric_name_validation_scheme: ValidationScheme::Utf8,
            metric_name_escaping_scheme: EscapingScheme::AllowUtf8,
        },
        global: global.clone(),
        http: HttpClient::default(),
        protocols: None,
        validation: None,
        escaping: None,
        relabel_at: Vec::new(),
        metric_relabel_at: Vec::new(),
    };
    w.url_targets.clear();
    w.section(node, path, draft)
}

/// A job being read.
struct Job {
    job: JobConfig,
    /// The defaults of the interval and the timeout.
    global: GlobalConfig,
    /// The HTTP client keys, written inline in the job.
    http: HttpClient,
    /// `scrape_protocols` as written.
    protocols: Option<Vec<ScrapeProtocol>>,
    /// `metric_name_validation_scheme` as written; `None` when unset or empty.
    validation: Option<ValidationScheme>,
    /// `metric_name_escaping_scheme` as written.
    escaping: Option<EscapingScheme>,
    /// Where each rule of `relabel_configs` is written (path, rule node).
    relabel_at: Vec<(Path, Node)>,
    /// Where each rule of `metric_relabel_configs` is written.
    metric_relabel_at: Vec<(Path, Node)>,
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
            let Some(text) = w.string(v, p) else { return };
            match parse_base2_bytes(&text) {
                Ok(bytes) => d.job.body_size_limit_bytes = bytes,
                Err(e) => w.err(p, v.pos, e),
            }
        }),
        row("relabel_configs", |w, v, p, d| {
            (d.job.relabel_configs, d.relabel_at) = relabel_configs(w, v, p).into_iter().unzip()
        }),
        row("metric_relabel_configs", |w, v, p, d| {
            (d.job.metric_relabel_configs, d.metric_relabel_at) =
                relabel_configs(w, v, p).into_iter().unzip()
        }),
        row("scrape_protocols", |w, v, p, d| {
            d.protocols = scrape_protocols(w, v, p, "scrape config")
        }),
        row("fallback_scrape_protocol", |w, v, p, d| {
            let Some(name) = w.string(v, p) else { return };
            if name.is_empty() {
                return;
            }
            match protocol(&name) {
                Ok(found) => d.job.fallback_scrape_protocol = Some(found),
                Err(why) => {
                    let message = format!(
                        "invalid fallback_scrape_protocol for scrape config with job name {:?}: {why}",
                        w.job
                    );
                    w.err(p, v.pos, message);
                }
            }
        }),
        row("metric_name_validation_scheme", |w, v, p, d| {
            d.validation = validation_scheme(w, v, p)
        }),
        row("metric_name_escaping_scheme", |w, v, p, d| {
            d.escaping = escaping_scheme(w, v, p, "scrape config")
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
            protocols,
            validation,
            escaping,
            relabel_at,
            metric_relabel_at,
        } = self;
        // Prometheus 3.16's `ScrapeConfig.Validate`: the job's scheme, else the global one;
        // the escaping scheme from the job, else from the job's own validation scheme when
        // it sets one, else the global escaping (itself defaulting from the global scheme).
        job.scrape_protocols = protocols
            .or_else(|| global.scrape_protocols.clone())
            .unwrap_or_else(|| default_scrape_protocols(false).to_vec());
        job.metric_name_validation_scheme =
            validation.unwrap_or(global.metric_name_validation_scheme);
        job.metric_name_escaping_scheme = match (escaping, validation) {
            (Some(e), _) => e,
            (None, Some(v)) => EscapingScheme::default_for(v),
            (None, None) => global.metric_name_escaping_scheme.unwrap_or_else(|| {
                EscapingScheme::default_for(global.metric_name_validation_scheme)
            }),
        };
        if job.metric_name_escaping_scheme == EscapingScheme::AllowUtf8
            && job.metric_name_validation_scheme != ValidationScheme::Utf8
        {
            let pos = value_position(node, "metric_name_escaping_scheme")
                .or_else(|| value_position(node, "metric_name_validation_scheme"))
                .unwrap_or(node.pos);
            w.err(
                &path.key("metric_name_escaping_scheme"),
                pos,
                "utf8 metric names requested but validation scheme is not set to UTF8",
            );
        }
        let scheme = job.metric_name_validation_scheme;
        for (rules, at) in [
            (&mut job.relabel_configs, &relabel_at),
            (&mut job.metric_relabel_configs, &metric_relabel_at),
        ] {
            for (rule, (rule_path, rule_node)) in rules.iter_mut().zip(at) {
                match rule.clone().with_validation_scheme(scheme) {
                    Ok(checked) => *rule = checked,
                    Err(e) => {
                        let pos = value_position(rule_node, e.field()).unwrap_or(rule_node.pos);
                        w.err(&rule_path.key(e.field()), pos, e.to_string());
                    }
                }
            }
        }
        if job.job_name.is_empty() {
            let pos = job_name_position(node).unwrap_or(node.pos);
            w.err(&path.key("job_name"), pos, "job_name is empty");
        }
        if let Some(http) = http.finish(w, node, path, true) {
            job.basic_auth = http.basic_auth.map(|b| b.0);
            job.authorization = http.authorization.map(|a| a.0);
            job.tls_config = http.tls_config;
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
        Some(job)
    }
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

/// A list of relabel rules; the valid ones with where each is written, every error reported.
fn relabel_configs(
    w: &mut Walker<'_>,
    node: &Node,
    path: &Path,
) -> Vec<(RelabelConfig, (Path, Node))> {
    w.each(node, path, |w, item, p| {
        if let Kind::Null = item.kind {
            w.err(p, item.pos, "empty or null relabeling rule");
            return None;
        }
        let rule = w.section(item, p, RelabelSpec::default())?;
        Some((rule, (p.clone(), item.clone())))
    })
}

/// The protocol named `name`, or why not: Prometheus's error for a name it does not know,
/// and scrapepool's for protobuf, which it cannot parse.
fn protocol(name: &str) -> Result<ScrapeProtocol, String> {
    match ScrapeProtocol::from_name(name) {
        Some(ScrapeProtocol::PrometheusProto) => Err(
            "PrometheusProto is not supported by scrapepool (it has no protobuf parser); use the text protocols"
                .to_string(),
        ),
        Some(p) => Ok(p),
        None => Err(ScrapeProtocol::unknown_message(name)),
    }
}

/// `scrape_protocols` of `what` (`scrape config` or `global config`): a non-empty list of
/// protocols, none repeated (ignoring case), with Prometheus's errors.
fn scrape_protocols(
    w: &mut Walker<'_>,
    node: &Node,
    path: &Path,
    what: &str,
) -> Option<Vec<ScrapeProtocol>> {
    let names = w.string_list(node, path)?;
    let suffix = if what == "global config" {
        " for global config".to_string()
    } else {
        format!(" for scrape config with job name {:?}", w.job)
    };
    if names.is_empty() {
        w.err(
            path,
            node.pos,
            format!("scrape_protocols cannot be empty{suffix}"),
        );
        return None;
    }
    let items = w.seq(node, path).unwrap_or(&[]);
    let mut out = Vec::with_capacity(names.len());
    let mut seen: Vec<String> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let pos = items.get(i).map_or(node.pos, |n| n.pos);
        let lower = name.to_lowercase();
        if seen.contains(&lower) {
            let message = format!(
                "duplicated protocol in scrape_protocols, got [{}]{suffix}",
                names.join(" ")
            );
            w.err(&path.index(i), pos, message);
            return None;
        }
        seen.push(lower);
        match protocol(name) {
            Ok(p) => out.push(p),
            Err(why) => {
                w.err(
                    &path.index(i),
                    pos,
                    format!("scrape_protocols: {why}{suffix}"),
                );
                return None;
            }
        }
    }
    Some(out)
}

/// `metric_name_validation_scheme`: `utf8`, `legacy`, or empty for unset.
fn validation_scheme(w: &mut Walker<'_>, node: &Node, path: &Path) -> Option<ValidationScheme> {
    let name = w.string(node, path)?;
    if name.is_empty() {
        return None;
    }
    let found = ValidationScheme::from_name(&name);
    if found.is_none() {
        w.err(
            path,
            node.pos,
            format!("unrecognized ValidationScheme: {name:?}"),
        );
    }
    found
}

/// `metric_name_escaping_scheme` of `what` (`scrape config` or `global`), empty for unset.
fn escaping_scheme(
    w: &mut Walker<'_>,
    node: &Node,
    path: &Path,
    what: &str,
) -> Option<EscapingScheme> {
    let name = w.string(node, path)?;
    if name.is_empty() {
        return None;
    }
    let found = EscapingScheme::from_name(&name);
    if found.is_none() {
        let message = format!(
            "unknown {what} name escaping method specified, must be one of 'allow-utf-8', 'underscores', 'dots', or 'values', got {name:?}"
        );
        w.err(path, node.pos, message);
    }
    found
}

impl Section for RelabelSpec {
    type Value = RelabelConfig;

    const FIELDS: &'static [Field<Self>] = &[
        row("source_labels", |w, v, p, d| {
            // Any non-empty UTF-8 name, whatever the job's scheme: Prometheus 3.16 reads
            // `model.LabelNames` with the UTF-8 scheme.
            let utf8 = |l: &str| ValidationScheme::Utf8.is_valid_label_name(l);
            if let Some(labels) = w.checked_string_list(v, p, utf8, |label| {
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
                // As `source_labels`: the UTF-8 scheme, whatever the job's.
                if !ValidationScheme::Utf8.is_valid_label_name(&label) {
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
