//! Job configuration: Prometheus `scrape_config` YAML into typed, validated structs.
//!
//! OWNER: config helper. The public types below are the contract the rest of the core uses;
//! fields may be added, not renamed.
//!
//! ## How a document is read
//!
//! serde-saphyr (pinned) parses the text into a tree of `Spanned` nodes, so every value keeps
//! its line and column; merge keys (`<<: *base`) are expanded by the parser, an explicit key
//! winning over a merged one. The tree is then walked by hand rather than through derived
//! `Deserialize` impls, because a derive stops at the first error while a jobs file must
//! report every error of every job. Scalars are typed the way Go's `yaml.v2` types them for
//! Prometheus: a plain `yes`/`on`/`y` is a bool in a bool field and its text in a string
//! field, integers follow `strconv.ParseInt(s, 0, 64)` (`0x10`, `010` octal), a null leaves
//! the zero value, a quoted scalar is always a string.
//!
//! ## Where scrapepool differs from Prometheus 2.42 on purpose
//!
//! - Every error is reported, each with its job, field and position; Prometheus stops at
//!   the first. The messages are Prometheus's (checked against promtool 2.42 by
//!   `tests/prometheus_parity.rs`).
//! - `scheme` must be `http` or `https` (Prometheus accepts any string and fails the targets).
//! - A negative `body_size_limit` and a zero `refresh_interval` are rejected.
//! - DNS `MX` records and the fields in `UNSUPPORTED_JOB_FIELDS` are named as unsupported.
//! - Relative file paths (`ca_file`, `password_file`, file SD `files`, ...) are kept as
//!   written: a job from ZooKeeper has no directory to join them to.
//! - Top-level `rule_files`, `alerting`, `remote_write`, `remote_read`, `storage`, `tracing`
//!   and `global.evaluation_interval`/`external_labels`/`query_log_file` are accepted and
//!   ignored, so a whole `prometheus.yml` can be checked.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::labels::Labels;
use crate::relabel::{self, RelabelConfig};

/// A value that must never be shown: Debug, Display and Serialize print `<secret>`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl Secret {
    /// The secret itself, for the adapter that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<secret>")
    }
}

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP (Prometheus's default).
    #[default]
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// `basic_auth`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// The password (from `password` or read from `password_file` by the adapter).
    pub password: Option<Secret>,
    /// A file holding the password, read at scrape time by the adapter.
    pub password_file: Option<String>,
}

/// `authorization` (or the legacy `bearer_token` / `bearer_token_file`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Authorization {
    /// The scheme, `Bearer` by default.
    pub kind: String,
    /// The credentials.
    pub credentials: Option<Secret>,
    /// A file holding the credentials.
    pub credentials_file: Option<String>,
}

/// `tls_config`.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct TlsConfig {
    /// CA certificate(s) to verify the server with.
    pub ca_file: Option<String>,
    /// Client certificate.
    pub cert_file: Option<String>,
    /// Client key.
    pub key_file: Option<String>,
    /// Server name to verify, instead of the target's host.
    pub server_name: Option<String>,
    /// Skip verification of the server's certificate.
    pub insecure_skip_verify: bool,
}

/// A group of targets sharing labels: a `static_configs` entry, or one result of discovery.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TargetGroup {
    /// One label set per target; each has at least `__address__`.
    pub targets: Vec<Labels>,
    /// Labels shared by every target of the group.
    pub labels: Labels,
    /// Where the group came from: the index of a `static_configs` entry as Prometheus names it
    /// (`0`, `1`, ...), a DNS name, a Consul service, a file.
    pub source: String,
}

/// DNS record type of `dns_sd_configs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub enum DnsRecordType {
    /// SRV records (Prometheus's default): host and port from the record.
    #[default]
    #[serde(rename = "SRV")]
    Srv,
    /// A records, with `port`.
    A,
    /// AAAA records, with `port`.
    #[serde(rename = "AAAA")]
    Aaaa,
}

/// `dns_sd_configs` entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DnsSdConfig {
    /// Names to query.
    pub names: Vec<String>,
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: DnsRecordType,
    /// Port for A and AAAA records.
    pub port: Option<u16>,
    /// How often to query again (Prometheus's default 30s).
    #[serde(serialize_with = "ser_duration")]
    pub refresh_interval: Duration,
}

/// `consul_sd_configs` entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConsulSdConfig {
    /// `host:port` of the Consul agent (default `localhost:8500`).
    pub server: String,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Datacenter to query; the agent's own when absent.
    pub datacenter: Option<String>,
    /// ACL token.
    pub token: Option<Secret>,
    /// Services to watch; all when empty.
    pub services: Vec<String>,
    /// Tags a service must have, all of them.
    pub tags: Vec<String>,
    /// Node metadata a node must have.
    pub node_meta: BTreeMap<String, String>,
    /// Separator used to join tags into `__meta_consul_tags` (default `,`).
    pub tag_separator: String,
    /// Allow stale reads from any server.
    pub allow_stale: bool,
    /// How often to refresh when blocking queries are not used (default 30s).
    #[serde(serialize_with = "ser_duration")]
    pub refresh_interval: Duration,
    /// TLS settings for `scheme: https`.
    pub tls_config: TlsConfig,
}

/// `file_sd_configs` entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileSdConfig {
    /// Files (globs allowed in the last path element) holding target groups, JSON or YAML.
    pub files: Vec<String>,
    /// How often to re-read (default 5m) besides change notifications.
    #[serde(serialize_with = "ser_duration")]
    pub refresh_interval: Duration,
}

/// A discovery mechanism that needs the outside world (static configs do not).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SdConfig {
    /// DNS discovery.
    Dns(DnsSdConfig),
    /// Consul discovery.
    Consul(ConsulSdConfig),
    /// File discovery.
    File(FileSdConfig),
}

/// One scrape job, with every default applied and every field validated.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct JobConfig {
    /// The job's name, unique in a fleet; the `job` label of its targets.
    pub job_name: String,
    /// How often to scrape each target.
    #[serde(serialize_with = "ser_duration")]
    pub scrape_interval: Duration,
    /// How long one scrape may take; never more than the interval.
    #[serde(serialize_with = "ser_duration")]
    pub scrape_timeout: Duration,
    /// HTTP path, `/metrics` by default.
    pub metrics_path: String,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// URL query parameters.
    pub params: BTreeMap<String, Vec<String>>,
    /// Keep the scraped labels when they clash with target labels.
    pub honor_labels: bool,
    /// Keep the timestamps the exporter gives (default true).
    pub honor_timestamps: bool,
    /// Ask for gzip (default true).
    pub enable_compression: bool,
    /// Most samples a scrape may give after metric relabeling; 0 = no limit.
    pub sample_limit: u64,
    /// Most labels a sample may have; 0 = no limit.
    pub label_limit: u64,
    /// Longest label name; 0 = no limit.
    pub label_name_length_limit: u64,
    /// Longest label value; 0 = no limit.
    pub label_value_length_limit: u64,
    /// Largest uncompressed body in bytes; 0 = no limit.
    pub body_size_limit_bytes: u64,
    /// Most targets the job may have after relabeling; 0 = no limit.
    pub target_limit: u64,
    /// HTTP basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// Authorization header (covers the legacy `bearer_token`).
    pub authorization: Option<Authorization>,
    /// TLS settings for `https`.
    pub tls_config: TlsConfig,
    /// Target relabeling.
    pub relabel_configs: Vec<RelabelConfig>,
    /// Relabeling of scraped samples.
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Targets given in the configuration.
    pub static_configs: Vec<TargetGroup>,
    /// Discovery that needs the outside world, in the order written (DNS, Consul, file).
    pub sd_configs: Vec<SdConfig>,
}

/// `global:` defaults that jobs inherit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalConfig {
    /// Default scrape interval (1m).
    pub scrape_interval: Duration,
    /// Default scrape timeout (10s).
    pub scrape_timeout: Duration,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: Duration::from_secs(60),
            scrape_timeout: Duration::from_secs(10),
        }
    }
}

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
/// left out when unknown (a YAML syntax error, a `global:` field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file or znode the text came from.
    pub origin: String,
    /// The job the error is in (empty when it is not known).
    pub job: String,
    /// The field, e.g. `scrape_timeout` or `relabel_configs[2].regex`.
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
    let mut loader = Loader {
        origin,
        job: String::new(),
        errors: Vec::new(),
    };
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err((position, message)) => {
            loader.err("", position, message);
            return (Vec::new(), loader.errors);
        }
    };
    let jobs = loader.document(&root, global);
    // In the order of the text, as a reader goes through the file.
    loader
        .errors
        .sort_by_key(|e| (e.position.line, e.position.column));
    (jobs, loader.errors)
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

/// Parses a duration in Prometheus syntax: `1y2w3d4h5m6s7ms` (each unit at most once, in
/// that order), or `0`. Fractions, signs and other units are rejected, as Prometheus does.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    match s {
        "0" => return Ok(Duration::ZERO),
        "" => return Err("empty duration string".into()),
        _ => {}
    }
    let invalid = || format!("not a valid duration string: {s:?}");
    let mut rest = s.as_bytes();
    let mut next_unit = 0;
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(invalid());
        }
        let number = &rest[..digits];
        rest = &rest[digits..];
        let letters = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        // Units must appear in decreasing order, each at most once (Prometheus's regex).
        let Some(offset) = UNITS[next_unit..]
            .iter()
            .position(|(u, _)| u.as_bytes() == unit)
        else {
            return Err(invalid());
        };
        let (_, unit_ms) = UNITS[next_unit + offset];
        next_unit += offset + 1;
        let n: u64 = std::str::from_utf8(number)
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| "duration out of range".to_string())?;
        total_ms = n
            .checked_mul(unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .filter(|ms| *ms <= i64::MAX as u64 / 1_000_000)
            .ok_or_else(|| "duration out of range".to_string())?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Parses a byte size as Prometheus's `body_size_limit` does (Go's `units.Base2Bytes`):
/// a number (fractions allowed) and a unit `B`, `KB`/`KiB`, `MB`/`MiB`, `GB`/`GiB`,
/// `TB`/`TiB`, `PB`/`PiB`, `EB`/`EiB`, every prefix a power of 1024; parts may repeat
/// (`1MB512KB`); `0` alone needs no unit.
pub fn parse_base2_bytes(s: &str) -> Result<u64, String> {
    let invalid = || format!("units: invalid {s}");
    let mut rest = s;
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    } else if rest.starts_with('-') {
        return Err(format!("{s:?} is negative; a size must be 0 or more"));
    }
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let number = &rest[..number_len];
        if number.bytes().filter(|b| *b == b'.').count() > 1 || number.is_empty() || number == "." {
            return Err(invalid());
        }
        rest = &rest[number_len..];
        let unit_len = rest
            .bytes()
            .take_while(|b| !b.is_ascii_digit() && *b != b'.')
            .count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let power = match unit {
            "B" => 0,
            "KB" | "KiB" => 1,
            "MB" | "MiB" => 2,
            "GB" | "GiB" => 3,
            "TB" | "TiB" => 4,
            "PB" | "PiB" => 5,
            "EB" | "EiB" => 6,
            _ => return Err(format!("units: unknown unit {unit} in {s}")),
        };
        let value: f64 = if number.starts_with('.') {
            format!("0{number}")
        } else {
            number.to_string()
        }
        .parse()
        .map_err(|_| invalid())?;
        total += value * 1024f64.powi(power);
    }
    if total > i64::MAX as f64 {
        return Err("units: overflow parsing unit".into());
    }
    // Go converts with int64(f): truncation toward zero.
    Ok(total as u64)
}

/// The reading of YAML into a tree whose every node knows its line and column.
mod yaml {
    use std::fmt;

    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_saphyr::Spanned;

    use super::Position;

    /// What `deserialize_any` gave; scalars other than strings are re-read from the source
    /// text, so that `010` or `1e3` keep the spelling Go's YAML parser would see.
    enum Raw {
        Null,
        Bool(bool),
        Number,
        Str(String),
        Seq(Vec<Spanned<Raw>>),
        Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
    }

    impl<'de> Deserialize<'de> for Raw {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
            struct RawVisitor;
            impl<'de> Visitor<'de> for RawVisitor {
                type Value = Raw;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any YAML value")
                }
                fn visit_unit<E>(self) -> Result<Raw, E> {
                    Ok(Raw::Null)
                }
                fn visit_none<E>(self) -> Result<Raw, E> {
                    Ok(Raw::Null)
                }
                fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
                    Raw::deserialize(d)
                }
                fn visit_bool<E>(self, b: bool) -> Result<Raw, E> {
                    Ok(Raw::Bool(b))
                }
                fn visit_i64<E>(self, _: i64) -> Result<Raw, E> {
                    Ok(Raw::Number)
                }
                fn visit_u64<E>(self, _: u64) -> Result<Raw, E> {
                    Ok(Raw::Number)
                }
                fn visit_i128<E>(self, _: i128) -> Result<Raw, E> {
                    Ok(Raw::Number)
                }
                fn visit_u128<E>(self, _: u128) -> Result<Raw, E> {
                    Ok(Raw::Number)
                }
                fn visit_f64<E>(self, _: f64) -> Result<Raw, E> {
                    Ok(Raw::Number)
                }
                fn visit_str<E>(self, s: &str) -> Result<Raw, E> {
                    Ok(Raw::Str(s.to_string()))
                }
                fn visit_string<E>(self, s: String) -> Result<Raw, E> {
                    Ok(Raw::Str(s))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
                    let mut items = Vec::new();
                    while let Some(item) = a.next_element()? {
                        items.push(item);
                    }
                    Ok(Raw::Seq(items))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
                    let mut entries = Vec::new();
                    while let Some(entry) = a.next_entry()? {
                        entries.push(entry);
                    }
                    Ok(Raw::Map(entries))
                }
            }
            d.deserialize_any(RawVisitor)
        }
    }

    /// A scalar: its text as Go's YAML parser would hand it to a string field.
    #[derive(Debug, Clone)]
    pub struct Scalar {
        /// The value as a string.
        pub text: String,
        /// Written without quotes (only plain scalars may be booleans or numbers).
        pub plain: bool,
        /// The boolean the parser read, for YAML 1.1 spellings (`yes`, `on`, `y`).
        pub boolean: Option<bool>,
        /// The YAML tag name, for type errors.
        pub tag: &'static str,
    }

    /// What a node is.
    #[derive(Debug, Clone)]
    pub enum Kind {
        Null,
        Scalar(Scalar),
        Seq(Vec<Node>),
        Map(Vec<(Node, Node)>),
    }

    /// A YAML node with where its value is written.
    #[derive(Debug, Clone)]
    pub struct Node {
        pub kind: Kind,
        pub pos: Position,
    }

    impl Node {
        /// The tag of the node, for type errors (`!!seq`, `!!map`, `!!str`, ...).
        pub fn tag(&self) -> &'static str {
            match &self.kind {
                Kind::Null => "!!null",
                Kind::Scalar(s) => s.tag,
                Kind::Seq(_) => "!!seq",
                Kind::Map(_) => "!!map",
            }
        }

        /// The scalar text, if a scalar.
        pub fn text(&self) -> Option<&str> {
            match &self.kind {
                Kind::Scalar(s) => Some(&s.text),
                _ => None,
            }
        }
    }

    /// Parses `text` into a tree, or gives where and why it is not YAML.
    pub fn parse(text: &str) -> Result<Node, (Position, String)> {
        if text.trim().is_empty() {
            return Ok(Node {
                kind: Kind::Null,
                pos: Position { line: 1, column: 1 },
            });
        }
        let mut options = serde_saphyr::Options::default();
        // Duplicate keys reach the tree so they are reported per job, like everything else.
        options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
        options.with_snippet = false;
        match serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, options) {
            Ok(root) => Ok(convert(text, root)),
            Err(e) => {
                let position = e
                    .location()
                    .map(|l| Position {
                        line: l.line() as usize,
                        column: l.column() as usize,
                    })
                    .unwrap_or(Position { line: 1, column: 1 });
                let message = e.to_string();
                let message = message.lines().next().unwrap_or("invalid YAML").to_string();
                Err((position, format!("invalid YAML: {message}")))
            }
        }
    }

    fn convert(text: &str, spanned: Spanned<Raw>) -> Node {
        let location = if spanned.defined.line() > 0 {
            spanned.defined
        } else {
            spanned.referenced
        };
        let pos = Position {
            line: location.line() as usize,
            column: location.column() as usize,
        };
        let span = location.span();
        let source = match (span.byte_offset(), span.byte_len()) {
            (Some(offset), Some(len)) => text
                .get(offset as usize..(offset + len) as usize)
                .unwrap_or(""),
            _ => "",
        };
        let kind = match spanned.value {
            Raw::Null => Kind::Null,
            Raw::Bool(b) => Kind::Scalar(Scalar {
                text: if source.is_empty() {
                    b.to_string()
                } else {
                    source.to_string()
                },
                plain: true,
                boolean: Some(b),
                tag: "!!bool",
            }),
            Raw::Number => {
                let tag = if super::parse_go_int(source).is_some() {
                    "!!int"
                } else {
                    "!!float"
                };
                Kind::Scalar(Scalar {
                    text: source.to_string(),
                    plain: true,
                    boolean: None,
                    tag,
                })
            }
            Raw::Str(s) => {
                let plain = !source.starts_with(['"', '\'', '|', '>']);
                Kind::Scalar(Scalar {
                    text: s,
                    plain,
                    boolean: None,
                    tag: "!!str",
                })
            }
            Raw::Seq(items) => Kind::Seq(items.into_iter().map(|i| convert(text, i)).collect()),
            Raw::Map(entries) => Kind::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (convert(text, k), convert(text, v)))
                    .collect(),
            ),
        };
        Node { kind, pos }
    }
}

/// Parses an integer as Go's YAML parser resolves a plain scalar (`strconv.ParseInt(s, 0, 64)`
/// after removing `_`): decimal, `0x` hex, `0o`/leading-`0` octal, `0b` binary.
fn parse_go_int(s: &str) -> Option<i128> {
    let s = s.replace('_', "");
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, &s[..]),
    };
    let (radix, digits) = if let Some(d) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, d)
    } else if let Some(d) = digits
        .strip_prefix("0o")
        .or_else(|| digits.strip_prefix("0O"))
    {
        (8, d)
    } else if let Some(d) = digits
        .strip_prefix("0b")
        .or_else(|| digits.strip_prefix("0B"))
    {
        (2, d)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let value = i128::from_str_radix(digits, radix).ok()?;
    let value = if negative { -value } else { value };
    (i64::MIN as i128..=i64::MAX as i128)
        .contains(&value)
        .then_some(value)
}

use yaml::{Kind, Node};

/// Fields of Prometheus's `scrape_config` that scrapepool does not implement: named in the
/// error, so a user knows the field is real but unsupported rather than misspelled.
const UNSUPPORTED_JOB_FIELDS: &[&str] = &[
    "oauth2",
    "proxy_url",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
    "follow_redirects",
    "enable_http2",
    "track_timestamps_staleness",
    "scrape_protocols",
    "keep_dropped_targets",
    "native_histogram_bucket_limit",
    "native_histogram_min_bucket_factor",
    "scrape_classic_histograms",
    "http_headers",
];

/// Keys of a whole Prometheus configuration that have no meaning for scrape jobs; accepted
/// and ignored so that `scrapepool check prometheus.yml` works on a real file.
const IGNORED_TOP_LEVEL_FIELDS: &[&str] = &[
    "rule_files",
    "alerting",
    "remote_write",
    "remote_read",
    "storage",
    "tracing",
];

/// Keys of Prometheus's `global:` section that do not concern scraping; accepted and ignored.
const IGNORED_GLOBAL_FIELDS: &[&str] =
    &["evaluation_interval", "external_labels", "query_log_file"];

/// Walks the YAML tree, collecting every error with its position.
struct Loader<'a> {
    origin: &'a str,
    /// The job being read, named in every error.
    job: String,
    errors: Vec<ConfigError>,
}

/// The HTTP client fields of a job, gathered before they are checked together.
#[derive(Default)]
struct HttpFields {
    basic_auth: Option<(BasicAuth, Position)>,
    authorization: Option<(Authorization, Position)>,
    bearer_token: Option<(Secret, Position)>,
    bearer_token_file: Option<(String, Position)>,
}

impl<'a> Loader<'a> {
    fn err(&mut self, field: &str, position: Position, message: impl Into<String>) {
        self.errors.push(ConfigError {
            origin: self.origin.to_string(),
            job: self.job.clone(),
            field: field.to_string(),
            position,
            message: message.into(),
        });
    }

    fn type_err(&mut self, field: &str, node: &Node, want: &str) {
        let message = match &node.kind {
            Kind::Scalar(s) => format!("cannot unmarshal {} `{}` into {want}", s.tag, s.text),
            _ => format!("cannot unmarshal {} into {want}", node.tag()),
        };
        self.err(field, node.pos, message);
    }

    fn unknown_field(&mut self, prefix: &str, key: &Node) {
        let name = key.text().unwrap_or("?");
        let field = format!("{prefix}{name}");
        if UNSUPPORTED_JOB_FIELDS.contains(&name)
            || (prefix.is_empty() && name.ends_with("_sd_configs"))
        {
            self.err(
                &field,
                key.pos,
                format!("field {name:?} is not supported by scrapepool"),
            );
        } else {
            self.err(&field, key.pos, format!("unknown field {name:?}"));
        }
    }

    /// The entries of a mapping (a null is an empty mapping, as in Go); reports repeated keys.
    fn map<'n>(&mut self, node: &'n Node, field: &str) -> Option<&'n [(Node, Node)]> {
        match &node.kind {
            Kind::Null => Some(&[]),
            Kind::Map(entries) => {
                let mut seen: BTreeMap<&str, Position> = BTreeMap::new();
                for (key, _) in entries {
                    let Some(name) = key.text() else { continue };
                    if let Some(first) = seen.get(name) {
                        let message = format!(
                            "key {name:?} already set in this mapping at line {}",
                            first.line
                        );
                        self.err(&join(field, name), key.pos, message);
                    } else {
                        seen.insert(name, key.pos);
                    }
                }
                Some(entries)
            }
            _ => {
                self.type_err(field, node, "a mapping");
                None
            }
        }
    }

    fn seq<'n>(&mut self, node: &'n Node, field: &str) -> Option<&'n [Node]> {
        match &node.kind {
            Kind::Null => Some(&[]),
            Kind::Seq(items) => Some(items),
            _ => {
                self.type_err(field, node, "a list");
                None
            }
        }
    }

    fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match &node.kind {
            Kind::Null => Some(String::new()),
            Kind::Scalar(s) => Some(s.text.clone()),
            _ => {
                self.type_err(field, node, "string");
                None
            }
        }
    }

    /// A secret: like a string, but its value is never written into an error.
    fn secret(&mut self, node: &Node, field: &str) -> Option<Secret> {
        match &node.kind {
            Kind::Null => Some(Secret::default()),
            Kind::Scalar(s) => Some(Secret(s.text.clone())),
            _ => {
                self.err(
                    field,
                    node.pos,
                    format!("cannot unmarshal {} into a secret string", node.tag()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, field: &str) -> Option<bool> {
        match &node.kind {
            Kind::Null => Some(false),
            Kind::Scalar(s) if s.plain && s.boolean.is_some() => s.boolean,
            _ => {
                self.type_err(field, node, "bool");
                None
            }
        }
    }

    fn uint(&mut self, node: &Node, field: &str) -> Option<u64> {
        match &node.kind {
            Kind::Null => Some(0),
            Kind::Scalar(s) if s.plain => match parse_go_int(&s.text) {
                Some(v) if v >= 0 => Some(v as u64),
                _ => {
                    self.type_err(field, node, "uint");
                    None
                }
            },
            _ => {
                self.type_err(field, node, "uint");
                None
            }
        }
    }

    /// A duration; null (as in Go) leaves the zero value, which means "unset".
    fn duration(&mut self, node: &Node, field: &str) -> Option<Duration> {
        if let Kind::Null = node.kind {
            return Some(Duration::ZERO);
        }
        let text = self.string(node, field)?;
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(field, node.pos, e);
                None
            }
        }
    }

    fn string_list(&mut self, node: &Node, field: &str) -> Option<Vec<String>> {
        let items = self.seq(node, field)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(item, &format!("{field}[{i}]")) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn string_map(&mut self, node: &Node, field: &str) -> Option<BTreeMap<String, String>> {
        let entries = self.map(node, field)?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (key, value) in entries {
            let Some(name) = self.string(key, field) else {
                ok = false;
                continue;
            };
            match self.string(value, &join(field, &name)) {
                Some(v) => {
                    out.insert(name, v);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn refresh_interval(&mut self, node: &Node, field: &str) -> Option<Duration> {
        let d = self.duration(node, field)?;
        if d.is_zero() {
            self.err(field, node.pos, "refresh_interval must be greater than 0");
            return None;
        }
        Some(d)
    }

    /// The whole document: one job, or `global:` and `scrape_configs:`.
    fn document(&mut self, root: &Node, global: &GlobalConfig) -> Vec<JobConfig> {
        let entries = match &root.kind {
            Kind::Null => return Vec::new(),
            Kind::Map(entries) => entries,
            _ => {
                self.type_err(
                    "",
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
            return self.job(root, global).into_iter().collect();
        }
        let Some(entries) = self.map(root, "") else {
            return Vec::new();
        };
        let mut global = global.clone();
        let mut job_nodes: &[Node] = &[];
        for (key, value) in entries {
            match key.text().unwrap_or("") {
                "global" => {
                    if let Some(g) = self.global(value, &global) {
                        global = g;
                    }
                }
                "scrape_configs" => {
                    if let Some(items) = self.seq(value, "scrape_configs") {
                        job_nodes = items;
                    }
                }
                name if IGNORED_TOP_LEVEL_FIELDS.contains(&name) => {}
                _ => self.unknown_field("", key),
            }
        }
        let mut jobs: Vec<JobConfig> = Vec::new();
        let mut names: BTreeMap<String, Position> = BTreeMap::new();
        for node in job_nodes {
            self.job = String::new();
            if let Kind::Null = node.kind {
                self.err(
                    "scrape_configs",
                    node.pos,
                    "empty or null scrape config section",
                );
                continue;
            }
            let job = self.job(node, &global);
            // Names of invalid jobs count too: a repeated name is an error of its own.
            let name = job
                .as_ref()
                .map(|j| j.job_name.clone())
                .unwrap_or_else(|| self.job.clone());
            if !name.is_empty() {
                let pos = job_name_position(node).unwrap_or(node.pos);
                if let Some(first) = names.get(&name) {
                    let message = format!(
                        "found multiple scrape configs with job name {name:?} (first at line {})",
                        first.line
                    );
                    self.err("job_name", pos, message);
                    continue;
                }
                names.insert(name, pos);
            }
            jobs.extend(job);
        }
        self.job = String::new();
        jobs
    }

    fn global(&mut self, node: &Node, defaults: &GlobalConfig) -> Option<GlobalConfig> {
        let entries = self.map(node, "global")?;
        let before = self.errors.len();
        let (mut interval, mut timeout) = (Duration::ZERO, Duration::ZERO);
        let mut timeout_pos = node.pos;
        for (key, value) in entries {
            match key.text().unwrap_or("") {
                "scrape_interval" => {
                    interval = self
                        .duration(value, "global.scrape_interval")
                        .unwrap_or_default()
                }
                "scrape_timeout" => {
                    timeout = self
                        .duration(value, "global.scrape_timeout")
                        .unwrap_or_default();
                    timeout_pos = value.pos;
                }
                name if IGNORED_GLOBAL_FIELDS.contains(&name) => {}
                _ => self.unknown_field("global.", key),
            }
        }
        if interval.is_zero() {
            interval = defaults.scrape_interval;
        }
        if timeout > interval {
            self.err(
                "global.scrape_timeout",
                timeout_pos,
                "global scrape timeout greater than scrape interval",
            );
        }
        if timeout.is_zero() {
            timeout = defaults.scrape_timeout.min(interval);
        }
        (self.errors.len() == before).then_some(GlobalConfig {
            scrape_interval: interval,
            scrape_timeout: timeout,
        })
    }

    /// One `scrape_config`; `None` when it has any error (all of them reported).
    fn job(&mut self, node: &Node, global: &GlobalConfig) -> Option<JobConfig> {
        let entries = self.map(node, "")?;
        // Name the job in every error, even those of fields written before `job_name`.
        if let Some((_, value)) = entries.iter().find(|(k, _)| k.text() == Some("job_name")) {
            self.job = value.text().unwrap_or("").to_string();
        }
        let before = self.errors.len();
        let mut job = JobConfig {
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
        };
        let mut http = HttpFields::default();
        let mut timeout_pos = None;
        let mut static_nodes: Vec<&Node> = Vec::new();
        for (key, value) in entries {
            let name = key.text().unwrap_or("");
            match name {
                "job_name" => job.job_name = self.string(value, name).unwrap_or_default(),
                "scrape_interval" => {
                    job.scrape_interval = self.duration(value, name).unwrap_or_default()
                }
                "scrape_timeout" => {
                    job.scrape_timeout = self.duration(value, name).unwrap_or_default();
                    timeout_pos = Some(value.pos);
                }
                "metrics_path" => job.metrics_path = self.string(value, name).unwrap_or_default(),
                "scheme" => match self.string(value, name).as_deref() {
                    Some("http") => job.scheme = Scheme::Http,
                    Some("https") => job.scheme = Scheme::Https,
                    Some(other) => self.err(
                        name,
                        value.pos,
                        format!("scheme must be \"http\" or \"https\", not {other:?}"),
                    ),
                    None => {}
                },
                "params" => {
                    if let Some(entries) = self.map(value, name) {
                        for (k, v) in entries {
                            let Some(param) = self.string(k, name) else {
                                continue;
                            };
                            if let Some(values) = self.string_list(v, &join(name, &param)) {
                                job.params.insert(param, values);
                            }
                        }
                    }
                }
                "honor_labels" => job.honor_labels = self.boolean(value, name).unwrap_or_default(),
                "honor_timestamps" => {
                    job.honor_timestamps = self.boolean(value, name).unwrap_or_default()
                }
                "enable_compression" => {
                    job.enable_compression = self.boolean(value, name).unwrap_or_default()
                }
                "sample_limit" => job.sample_limit = self.uint(value, name).unwrap_or_default(),
                "label_limit" => job.label_limit = self.uint(value, name).unwrap_or_default(),
                "label_name_length_limit" => {
                    job.label_name_length_limit = self.uint(value, name).unwrap_or_default()
                }
                "label_value_length_limit" => {
                    job.label_value_length_limit = self.uint(value, name).unwrap_or_default()
                }
                "target_limit" => job.target_limit = self.uint(value, name).unwrap_or_default(),
                "body_size_limit" => {
                    if let Some(text) = self.string(value, name) {
                        match parse_base2_bytes(&text) {
                            Ok(bytes) => job.body_size_limit_bytes = bytes,
                            Err(e) => self.err(name, value.pos, e),
                        }
                    }
                }
                "basic_auth" => http.basic_auth = self.basic_auth(value).map(|b| (b, value.pos)),
                "authorization" => {
                    http.authorization = self.authorization(value).map(|a| (a, value.pos))
                }
                "bearer_token" => {
                    http.bearer_token = self.secret(value, name).map(|s| (s, value.pos))
                }
                "bearer_token_file" => {
                    http.bearer_token_file = self.string(value, name).map(|s| (s, value.pos))
                }
                "tls_config" => {
                    if let Some(tls) = self.tls_config(value) {
                        job.tls_config = tls;
                    }
                }
                "relabel_configs" => job.relabel_configs = self.relabel_configs(value, name),
                "metric_relabel_configs" => {
                    job.metric_relabel_configs = self.relabel_configs(value, name)
                }
                "static_configs" => {
                    if let Some(items) = self.seq(value, name) {
                        static_nodes.extend(items);
                    }
                }
                "dns_sd_configs" | "consul_sd_configs" | "file_sd_configs" => {
                    let Some(items) = self.seq(value, name) else {
                        continue;
                    };
                    for (i, item) in items.iter().enumerate() {
                        let field = format!("{name}[{i}]");
                        let sd = match name {
                            "dns_sd_configs" => self.dns_sd(item, &field).map(SdConfig::Dns),
                            "consul_sd_configs" => {
                                self.consul_sd(item, &field).map(SdConfig::Consul)
                            }
                            _ => self.file_sd(item, &field).map(SdConfig::File),
                        };
                        job.sd_configs.extend(sd);
                    }
                }
                _ => self.unknown_field("", key),
            }
        }
        if job.job_name.is_empty() {
            let pos = job_name_position(node).unwrap_or(node.pos);
            self.err("job_name", pos, "job_name is empty");
        }
        self.http_client(&mut job, http);
        // Static targets after the whole job is read: their check depends on relabel_configs.
        for (i, group) in static_nodes.into_iter().enumerate() {
            let no_relabeling = job.relabel_configs.is_empty()
                && !entries
                    .iter()
                    .any(|(k, _)| k.text() == Some("relabel_configs"));
            if let Some(g) = self.static_config(group, i, no_relabeling) {
                job.static_configs.push(g);
            }
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
            self.err("scrape_timeout", timeout_pos.unwrap_or(node.pos), message);
        }
        if job.scrape_timeout.is_zero() {
            job.scrape_timeout = global.scrape_timeout.min(job.scrape_interval);
        }
        (self.errors.len() == before).then_some(job)
    }

    /// Checks the HTTP client fields together, as Prometheus's `HTTPClientConfig.Validate`.
    fn http_client(&mut self, job: &mut JobConfig, http: HttpFields) {
        let bearer_pos = http
            .bearer_token
            .as_ref()
            .map(|b| b.1)
            .or(http.bearer_token_file.as_ref().map(|b| b.1));
        let has_bearer = http
            .bearer_token
            .as_ref()
            .is_some_and(|b| !b.0.expose().is_empty())
            || http
                .bearer_token_file
                .as_ref()
                .is_some_and(|b| !b.0.is_empty());
        if http
            .bearer_token
            .as_ref()
            .is_some_and(|b| !b.0.expose().is_empty())
            && http
                .bearer_token_file
                .as_ref()
                .is_some_and(|b| !b.0.is_empty())
        {
            self.err(
                "bearer_token_file",
                bearer_pos.unwrap_or_default(),
                "at most one of bearer_token & bearer_token_file must be configured",
            );
        }
        if let (Some((_, pos)), true) = (&http.basic_auth, has_bearer) {
            self.err("basic_auth", *pos, "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured");
        }
        if let Some((auth, pos)) = http.authorization {
            if has_bearer {
                self.err(
                    "authorization",
                    pos,
                    "authorization is not compatible with bearer_token & bearer_token_file",
                );
            }
            if http.basic_auth.is_some() {
                self.err(
                    "authorization",
                    pos,
                    "at most one of basic_auth, oauth2 & authorization must be configured",
                );
            }
            job.authorization = Some(auth);
        } else if let Some((token, _)) = http.bearer_token.filter(|b| !b.0.expose().is_empty()) {
            job.authorization = Some(Authorization {
                kind: "Bearer".into(),
                credentials: Some(token),
                credentials_file: None,
            });
        } else if let Some((file, _)) = http.bearer_token_file.filter(|b| !b.0.is_empty()) {
            job.authorization = Some(Authorization {
                kind: "Bearer".into(),
                credentials: None,
                credentials_file: Some(file),
            });
        }
        job.basic_auth = http.basic_auth.map(|b| b.0);
    }

    fn basic_auth(&mut self, node: &Node) -> Option<BasicAuth> {
        let entries = self.map(node, "basic_auth")?;
        let before = self.errors.len();
        let mut auth = BasicAuth {
            username: String::new(),
            password: None,
            password_file: None,
        };
        for (key, value) in entries {
            match key.text().unwrap_or("") {
                "username" => {
                    auth.username = self
                        .string(value, "basic_auth.username")
                        .unwrap_or_default()
                }
                "password" => {
                    auth.password = self
                        .secret(value, "basic_auth.password")
                        .filter(|s| !s.expose().is_empty())
                }
                "password_file" => {
                    auth.password_file = self
                        .string(value, "basic_auth.password_file")
                        .filter(|s| !s.is_empty())
                }
                _ => self.unknown_field("basic_auth.", key),
            }
        }
        if auth.password.is_some() && auth.password_file.is_some() {
            self.err(
                "basic_auth",
                node.pos,
                "at most one of basic_auth password & password_file must be configured",
            );
        }
        (self.errors.len() == before).then_some(auth)
    }

    fn authorization(&mut self, node: &Node) -> Option<Authorization> {
        let entries = self.map(node, "authorization")?;
        let before = self.errors.len();
        let mut auth = Authorization {
            kind: String::new(),
            credentials: None,
            credentials_file: None,
        };
        let mut type_pos = node.pos;
        for (key, value) in entries {
            match key.text().unwrap_or("") {
                "type" => {
                    auth.kind = self.string(value, "authorization.type").unwrap_or_default();
                    type_pos = value.pos;
                }
                "credentials" => {
                    auth.credentials = self
                        .secret(value, "authorization.credentials")
                        .filter(|s| !s.expose().is_empty())
                }
                "credentials_file" => {
                    auth.credentials_file = self
                        .string(value, "authorization.credentials_file")
                        .filter(|s| !s.is_empty())
                }
                _ => self.unknown_field("authorization.", key),
            }
        }
        if auth.credentials.is_some() && auth.credentials_file.is_some() {
            self.err(
                "authorization",
                node.pos,
                "at most one of authorization credentials & credentials_file must be configured",
            );
        }
        auth.kind = auth.kind.trim().to_string();
        if auth.kind.is_empty() {
            auth.kind = "Bearer".into();
        }
        if auth.kind.eq_ignore_ascii_case("basic") {
            self.err(
                "authorization.type",
                type_pos,
                "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
            );
        }
        (self.errors.len() == before).then_some(auth)
    }

    fn tls_config(&mut self, node: &Node) -> Option<TlsConfig> {
        let entries = self.map(node, "tls_config")?;
        let before = self.errors.len();
        let mut tls = TlsConfig::default();
        let opt = |s: Option<String>| s.filter(|s| !s.is_empty());
        for (key, value) in entries {
            match key.text().unwrap_or("") {
                "ca_file" => tls.ca_file = opt(self.string(value, "tls_config.ca_file")),
                "cert_file" => tls.cert_file = opt(self.string(value, "tls_config.cert_file")),
                "key_file" => tls.key_file = opt(self.string(value, "tls_config.key_file")),
                "server_name" => {
                    tls.server_name = opt(self.string(value, "tls_config.server_name"))
                }
                "insecure_skip_verify" => {
                    tls.insecure_skip_verify = self
                        .boolean(value, "tls_config.insecure_skip_verify")
                        .unwrap_or_default()
                }
                _ => self.unknown_field("tls_config.", key),
            }
        }
        match (&tls.cert_file, &tls.key_file) {
            (Some(cert), None) => self.err(
                "tls_config.key_file",
                node.pos,
                format!("client cert file {cert:?} specified without client key file"),
            ),
            (None, Some(key)) => self.err(
                "tls_config.cert_file",
                node.pos,
                format!("client key file {key:?} specified without client cert file"),
            ),
            _ => {}
        }
        (self.errors.len() == before).then_some(tls)
    }

    fn relabel_configs(&mut self, node: &Node, field: &str) -> Vec<RelabelConfig> {
        let Some(items) = self.seq(node, field) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let field = format!("{field}[{i}]");
            if let Kind::Null = item.kind {
                self.err(&field, item.pos, "empty or null relabeling rule");
                continue;
            }
            if let Some(rc) = self.relabel_config(item, &field) {
                out.push(rc);
            }
        }
        out
    }

    fn relabel_config(&mut self, node: &Node, field: &str) -> Option<RelabelConfig> {
        let entries = self.map(node, field)?;
        let before = self.errors.len();
        let mut spec = relabel::RelabelSpec::default();
        let mut positions: BTreeMap<&'static str, Position> = BTreeMap::new();
        let prefix = format!("{field}.");
        for (key, value) in entries {
            let name = key.text().unwrap_or("");
            let f = format!("{field}.{name}");
            match name {
                "source_labels" => {
                    positions.insert("source_labels", value.pos);
                    if let Some(labels) = self.string_list(value, &f) {
                        let items = match &value.kind {
                            Kind::Seq(items) => items.as_slice(),
                            _ => &[],
                        };
                        for (i, label) in labels.iter().enumerate() {
                            if !crate::labels::is_valid_label_name(label) {
                                let pos = items.get(i).map_or(value.pos, |n| n.pos);
                                self.err(
                                    &format!("{f}[{i}]"),
                                    pos,
                                    format!("{label:?} is not a valid label name"),
                                );
                            }
                        }
                        spec.source_labels = Some(labels);
                    }
                }
                "separator" => {
                    positions.insert("separator", value.pos);
                    spec.separator = self.string(value, &f);
                }
                "regex" => {
                    positions.insert("regex", value.pos);
                    spec.regex = self.string(value, &f);
                }
                "modulus" => {
                    positions.insert("modulus", value.pos);
                    spec.modulus = self.uint(value, &f);
                }
                "target_label" => {
                    positions.insert("target_label", value.pos);
                    spec.target_label = self.string(value, &f);
                }
                "replacement" => {
                    positions.insert("replacement", value.pos);
                    spec.replacement = self.string(value, &f);
                }
                "action" => {
                    positions.insert("action", value.pos);
                    spec.action = self.string(value, &f);
                }
                _ => self.unknown_field(&prefix, key),
            }
        }
        if self.errors.len() != before {
            return None;
        }
        match RelabelConfig::from_spec(spec) {
            Ok(rc) => Some(rc),
            Err(e) => {
                let pos = positions.get(e.field).copied().unwrap_or(node.pos);
                self.err(&format!("{field}.{}", e.field), pos, e.message);
                None
            }
        }
    }

    fn static_config(
        &mut self,
        node: &Node,
        index: usize,
        check_addresses: bool,
    ) -> Option<TargetGroup> {
        let field = format!("static_configs[{index}]");
        let entries = self.map(node, &field)?;
        let before = self.errors.len();
        let mut group = TargetGroup {
            targets: Vec::new(),
            labels: Labels::new(),
            source: index.to_string(),
        };
        for (key, value) in entries {
            let name = key.text().unwrap_or("");
            let f = format!("{field}.{name}");
            match name {
                "targets" => {
                    let Some(items) = self.seq(value, &f) else {
                        continue;
                    };
                    for (i, item) in items.iter().enumerate() {
                        let tf = format!("{f}[{i}]");
                        let Some(address) = self.string(item, &tf) else {
                            continue;
                        };
                        // Prometheus rejects URLs as targets unless relabeling may rewrite them.
                        if check_addresses && address.contains('/') {
                            self.err(
                                &tf,
                                item.pos,
                                format!("{address:?} is not a valid hostname"),
                            );
                            continue;
                        }
                        group
                            .targets
                            .push(Labels::from_pairs([("__address__", address)]));
                    }
                }
                "labels" => {
                    let Some(label_entries) = self.map(value, &f) else {
                        continue;
                    };
                    for (k, v) in label_entries {
                        let Some(label) = self.string(k, &f) else {
                            continue;
                        };
                        let lf = join(&f, &label);
                        if !crate::labels::is_valid_label_name(&label) {
                            self.err(&lf, k.pos, format!("{label:?} is not a valid label name"));
                            continue;
                        }
                        if let Some(v) = self.string(v, &lf) {
                            group.labels.set(label, v);
                        }
                    }
                }
                _ => self.unknown_field(&format!("{field}."), key),
            }
        }
        (self.errors.len() == before).then_some(group)
    }

    fn dns_sd(&mut self, node: &Node, field: &str) -> Option<DnsSdConfig> {
        let entries = self.map(node, field)?;
        let before = self.errors.len();
        let mut sd = DnsSdConfig {
            names: Vec::new(),
            record_type: DnsRecordType::Srv,
            port: None,
            refresh_interval: Duration::from_secs(30),
        };
        let mut type_pos = node.pos;
        for (key, value) in entries {
            let name = key.text().unwrap_or("");
            let f = format!("{field}.{name}");
            match name {
                "names" => sd.names = self.string_list(value, &f).unwrap_or_default(),
                "type" => {
                    type_pos = value.pos;
                    match self
                        .string(value, &f)
                        .map(|t| t.to_ascii_uppercase())
                        .as_deref()
                    {
                        Some("SRV") => sd.record_type = DnsRecordType::Srv,
                        Some("A") => sd.record_type = DnsRecordType::A,
                        Some("AAAA") => sd.record_type = DnsRecordType::Aaaa,
                        Some("MX") => self.err(
                            &f,
                            value.pos,
                            "DNS-SD records type MX is not supported by scrapepool",
                        ),
                        Some(other) => self.err(
                            &f,
                            value.pos,
                            format!("invalid DNS-SD records type {other}"),
                        ),
                        None => {}
                    }
                }
                "port" => match self.uint(value, &f) {
                    Some(p) if p <= u16::MAX as u64 => sd.port = (p > 0).then_some(p as u16),
                    Some(p) => self.err(&f, value.pos, format!("port {p} is out of range")),
                    None => {}
                },
                "refresh_interval" => {
                    sd.refresh_interval = self
                        .refresh_interval(value, &f)
                        .unwrap_or(sd.refresh_interval)
                }
                _ => self.unknown_field(&format!("{field}."), key),
            }
        }
        if sd.names.is_empty() {
            self.err(
                &format!("{field}.names"),
                node.pos,
                "DNS-SD config must contain at least one SRV record name",
            );
        }
        if sd.record_type != DnsRecordType::Srv && sd.port.is_none() {
            self.err(
                &format!("{field}.port"),
                type_pos,
                "a port is required in DNS-SD configs for all record types except SRV",
            );
        }
        (self.errors.len() == before).then_some(sd)
    }

    fn consul_sd(&mut self, node: &Node, field: &str) -> Option<ConsulSdConfig> {
        let entries = self.map(node, field)?;
        let before = self.errors.len();
        let mut sd = ConsulSdConfig {
            server: "localhost:8500".into(),
            scheme: Scheme::Http,
            datacenter: None,
            token: None,
            services: Vec::new(),
            tags: Vec::new(),
            node_meta: BTreeMap::new(),
            tag_separator: ",".into(),
            allow_stale: true,
            refresh_interval: Duration::from_secs(30),
            tls_config: TlsConfig::default(),
        };
        let mut server_pos = node.pos;
        for (key, value) in entries {
            let name = key.text().unwrap_or("");
            let f = format!("{field}.{name}");
            match name {
                "server" => {
                    server_pos = value.pos;
                    sd.server = self.string(value, &f).unwrap_or_default();
                }
                "scheme" => match self.string(value, &f).as_deref() {
                    Some("http") => sd.scheme = Scheme::Http,
                    Some("https") => sd.scheme = Scheme::Https,
                    Some(other) => self.err(
                        &f,
                        value.pos,
                        format!("scheme must be \"http\" or \"https\", not {other:?}"),
                    ),
                    None => {}
                },
                "datacenter" => sd.datacenter = self.string(value, &f).filter(|s| !s.is_empty()),
                "token" => sd.token = self.secret(value, &f).filter(|s| !s.expose().is_empty()),
                "services" => sd.services = self.string_list(value, &f).unwrap_or_default(),
                "tags" => sd.tags = self.string_list(value, &f).unwrap_or_default(),
                "node_meta" => sd.node_meta = self.string_map(value, &f).unwrap_or_default(),
                "tag_separator" => sd.tag_separator = self.string(value, &f).unwrap_or_default(),
                "allow_stale" => sd.allow_stale = self.boolean(value, &f).unwrap_or_default(),
                "tls_config" => {
                    if let Some(tls) = self.tls_config(value) {
                        sd.tls_config = tls;
                    }
                }
                "refresh_interval" => {
                    sd.refresh_interval = self
                        .refresh_interval(value, &f)
                        .unwrap_or(sd.refresh_interval)
                }
                _ => self.unknown_field(&format!("{field}."), key),
            }
        }
        if sd.server.trim().is_empty() {
            self.err(
                &format!("{field}.server"),
                server_pos,
                "consul SD configuration requires a server address",
            );
        }
        (self.errors.len() == before).then_some(sd)
    }

    fn file_sd(&mut self, node: &Node, field: &str) -> Option<FileSdConfig> {
        let entries = self.map(node, field)?;
        let before = self.errors.len();
        let mut sd = FileSdConfig {
            files: Vec::new(),
            refresh_interval: Duration::from_secs(300),
        };
        for (key, value) in entries {
            let name = key.text().unwrap_or("");
            let f = format!("{field}.{name}");
            match name {
                "files" => {
                    let Some(files) = self.string_list(value, &f) else {
                        continue;
                    };
                    let items = match &value.kind {
                        Kind::Seq(items) => items.as_slice(),
                        _ => &[],
                    };
                    for (i, file) in files.iter().enumerate() {
                        if !is_valid_file_sd_name(file) {
                            let pos = items.get(i).map_or(value.pos, |n| n.pos);
                            self.err(
                                &format!("{f}[{i}]"),
                                pos,
                                format!("path name {file:?} is not valid for file discovery"),
                            );
                        }
                    }
                    sd.files = files;
                }
                "refresh_interval" => {
                    sd.refresh_interval = self
                        .refresh_interval(value, &f)
                        .unwrap_or(sd.refresh_interval)
                }
                _ => self.unknown_field(&format!("{field}."), key),
            }
        }
        if sd.files.is_empty() && self.errors.len() == before {
            self.err(
                &format!("{field}.files"),
                node.pos,
                "file service discovery config must contain at least one path name",
            );
        }
        (self.errors.len() == before).then_some(sd)
    }
}

/// `field.key`, or `key` at the top.
fn join(field: &str, key: &str) -> String {
    if field.is_empty() {
        key.to_string()
    } else {
        format!("{field}.{key}")
    }
}

fn job_name_position(node: &Node) -> Option<Position> {
    match &node.kind {
        Kind::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.text() == Some("job_name"))
            .map(|(_, v)| v.pos),
        _ => None,
    }
}

/// Prometheus's file SD name pattern: `^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$`.
fn is_valid_file_sd_name(name: &str) -> bool {
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    if !matches!(ext, "json" | "yml" | "yaml" | "JSON" | "YML" | "YAML") {
        return false;
    }
    match stem.find('*') {
        None => true,
        Some(star) => !stem[star + 1..].contains(['*', '/']),
    }
}

/// Serializes a duration in Prometheus syntax (`1m30s`).
pub fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// Formats a duration as Prometheus's `model.Duration.String()` does: `1h30m`, `15s`,
/// `500ms`, `0s`; years and weeks only when they divide the duration exactly (`90d`, `2w`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len, exact) in [
        ("y", 365 * 86_400_000u64, true),
        ("w", 7 * 86_400_000, true),
        ("d", 86_400_000, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ] {
        // `is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
        #[allow(clippy::manual_is_multiple_of)]
        if exact && ms % len != 0 {
            continue;
        }
        if ms >= len {
            out.push_str(&format!("{}{}", ms / len, unit));
            ms %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (Vec<JobConfig>, Vec<ConfigError>) {
        load_jobs(text, "jobs.yml", &GlobalConfig::default())
    }

    fn one(text: &str) -> JobConfig {
        let (mut jobs, errors) = load(text);
        assert!(errors.is_empty(), "{errors:#?}");
        assert_eq!(jobs.len(), 1);
        jobs.remove(0)
    }

    fn errors(text: &str) -> Vec<ConfigError> {
        load(text).1
    }

    fn at(e: &ConfigError) -> (usize, usize) {
        (e.position.line, e.position.column)
    }

    #[test]
    fn prometheus_defaults() {
        let j = one("job_name: a\n");
        assert_eq!(j.scrape_interval, Duration::from_secs(60));
        assert_eq!(j.scrape_timeout, Duration::from_secs(10));
        assert_eq!(j.metrics_path, "/metrics");
        assert_eq!(j.scheme, Scheme::Http);
        assert!(!j.honor_labels && j.honor_timestamps && j.enable_compression);
        assert_eq!(
            (j.sample_limit, j.target_limit, j.body_size_limit_bytes),
            (0, 0, 0)
        );
        assert!(j.basic_auth.is_none() && j.authorization.is_none());
    }

    #[test]
    fn timeout_defaults_to_the_interval_when_the_interval_is_shorter() {
        // Prometheus: an unset timeout is min(global timeout, job interval).
        let j = one("job_name: a\nscrape_interval: 5s\n");
        assert_eq!(j.scrape_timeout, Duration::from_secs(5));
        let (jobs, errs) = load("global:\n  scrape_interval: 3s\nscrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_interval: 20s\n");
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            (jobs[0].scrape_interval, jobs[0].scrape_timeout),
            (Duration::from_secs(3), Duration::from_secs(3))
        );
        // The global timeout was derived as 3s; job b inherits it.
        assert_eq!(
            (jobs[1].scrape_interval, jobs[1].scrape_timeout),
            (Duration::from_secs(20), Duration::from_secs(3))
        );
        let (jobs, _) = load("global:\n  scrape_timeout: 30s\n  scrape_interval: 2m\nscrape_configs:\n  - job_name: a\n    scrape_interval: 15s\n");
        assert_eq!(jobs[0].scrape_timeout, Duration::from_secs(15));
    }

    #[test]
    fn timeout_greater_than_interval_is_an_error_at_the_timeout() {
        let e = errors("job_name: a\nscrape_interval: 10s\nscrape_timeout: 11s\n");
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].job.as_str(), e[0].field.as_str(), at(&e[0])),
            ("a", "scrape_timeout", (3, 17))
        );
        assert_eq!(
            e[0].message,
            "scrape timeout greater than scrape interval for scrape config with job name \"a\""
        );
        let e =
            errors("global:\n  scrape_interval: 5s\n  scrape_timeout: 6s\nscrape_configs: []\n");
        assert_eq!(
            (e[0].field.as_str(), e[0].message.as_str()),
            (
                "global.scrape_timeout",
                "global scrape timeout greater than scrape interval"
            )
        );
    }

    #[test]
    fn durations_in_prometheus_syntax() {
        let ok = [
            ("1m30s", 90_000),
            ("500ms", 500),
            ("1h", 3_600_000),
            ("2d", 172_800_000),
            ("1w", 604_800_000),
            ("1y", 31_536_000_000),
            ("0", 0),
            ("0s", 0),
            ("1h0m5s10ms", 3_605_010),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in [
            "1.5s", "-1s", "", "10", "30s1m", "1m1m", "1 m", "1S", "ms", "1sms",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} must be rejected");
        }
        assert_eq!(parse_duration(""), Err("empty duration string".into()));
        assert_eq!(
            parse_duration("1.5s"),
            Err("not a valid duration string: \"1.5s\"".into())
        );
    }

    #[test]
    fn durations_format_as_prometheus() {
        let cases = [
            (90_000, "1m30s"),
            (8 * 86_400_000, "8d"),
            (14 * 86_400_000, "2w"),
            (365 * 86_400_000, "1y"),
            (1500, "1s500ms"),
            (0, "0s"),
        ];
        for (ms, text) in cases {
            assert_eq!(format_duration(Duration::from_millis(ms)), text);
        }
    }

    #[test]
    fn body_size_limit_is_base_2() {
        let cases = [
            ("10MB", 10 << 20),
            ("10MiB", 10 << 20),
            ("1KB", 1024),
            ("1.5KB", 1536),
            ("2GB", 2 << 30),
            ("100B", 100),
            ("0", 0),
            ("1MB512KB", (1 << 20) + (512 << 10)),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_base2_bytes(text), Ok(bytes), "{text}");
        }
        for bad in ["100", "10mb", "10kB", "MB", "-1MB", "1.2.3MB"] {
            assert!(parse_base2_bytes(bad).is_err(), "{bad:?} must be rejected");
        }
        assert_eq!(
            one("job_name: a\nbody_size_limit: 10MB\n").body_size_limit_bytes,
            10_485_760
        );
        let e = errors("job_name: a\nbody_size_limit: 100\n");
        assert_eq!(
            (e[0].field.as_str(), at(&e[0])),
            ("body_size_limit", (2, 18))
        );
    }

    #[test]
    fn merge_keys_and_yaml_1_1_booleans_as_go_yaml() {
        let text = "\
scrape_configs:
  - &base
    job_name: a
    scrape_interval: 30s
    honor_labels: yes
    enable_compression: off
  - <<: *base
    job_name: b
    honor_labels: no
";
        let (jobs, errs) = load(text);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(jobs.len(), 2);
        assert!(jobs[0].honor_labels && !jobs[0].enable_compression);
        assert_eq!(jobs[1].job_name, "b");
        assert_eq!(jobs[1].scrape_interval, Duration::from_secs(30));
        // The explicit key wins over the merged one.
        assert!(!jobs[1].honor_labels);
        assert!(!jobs[1].enable_compression);
        // A quoted "yes" is a string, not a bool, as in Go.
        let e = errors("job_name: a\nhonor_labels: 'yes'\n");
        assert_eq!(e[0].message, "cannot unmarshal !!str `yes` into bool");
        // Go reads `y` as a bool in a bool field, and keeps its text in a string field.
        let j = one("job_name: a\nhonor_labels: y\nstatic_configs:\n  - targets: ['h:1']\n    labels: {y: n}\n");
        assert!(j.honor_labels);
        assert_eq!(j.static_configs[0].labels.get("y"), Some("n"));
    }

    #[test]
    fn integers_as_go_yaml() {
        assert_eq!(one("job_name: a\nsample_limit: 0x10\n").sample_limit, 16);
        assert_eq!(one("job_name: a\nsample_limit: 010\n").sample_limit, 8);
        assert_eq!(one("job_name: a\nsample_limit: 1_000\n").sample_limit, 1000);
        let e = errors("job_name: a\nsample_limit: -1\n");
        assert_eq!(e[0].message, "cannot unmarshal !!int `-1` into uint");
        let e = errors("job_name: a\nlabel_limit: abc\n");
        assert_eq!(
            (e[0].field.as_str(), e[0].message.as_str(), at(&e[0])),
            (
                "label_limit",
                "cannot unmarshal !!str `abc` into uint",
                (2, 14)
            )
        );
        // Numbers keep their spelling in string fields.
        assert_eq!(one("job_name: 010\n").job_name, "010");
    }

    #[test]
    fn every_field_is_read() {
        let j = one("\
job_name: full
scrape_interval: 30s
scrape_timeout: 20s
metrics_path: /m
scheme: https
params: {module: [a, b]}
honor_labels: true
honor_timestamps: false
enable_compression: false
sample_limit: 1
label_limit: 2
label_name_length_limit: 3
label_value_length_limit: 4
body_size_limit: 1KB
target_limit: 5
basic_auth: {username: u, password_file: /p}
tls_config: {ca_file: /ca, cert_file: /c, key_file: /k, server_name: s, insecure_skip_verify: true}
metric_relabel_configs:
  - source_labels: [__name__]
    regex: go_.*
    action: drop
dns_sd_configs:
  - names: [_x._tcp.example]
  - names: [a.example]
    type: a
    port: 9100
    refresh_interval: 1m
consul_sd_configs:
  - services: [web]
file_sd_configs:
  - files: [/etc/targets/*.json]
");
        assert_eq!(
            (j.scrape_interval, j.scrape_timeout),
            (Duration::from_secs(30), Duration::from_secs(20))
        );
        assert_eq!((j.metrics_path.as_str(), j.scheme), ("/m", Scheme::Https));
        assert_eq!(j.params["module"], vec!["a".to_string(), "b".to_string()]);
        assert!(j.honor_labels && !j.honor_timestamps && !j.enable_compression);
        assert_eq!(
            (
                j.sample_limit,
                j.label_limit,
                j.label_name_length_limit,
                j.label_value_length_limit,
                j.body_size_limit_bytes,
                j.target_limit
            ),
            (1, 2, 3, 4, 1024, 5)
        );
        assert_eq!(
            j.basic_auth,
            Some(BasicAuth {
                username: "u".into(),
                password: None,
                password_file: Some("/p".into())
            })
        );
        assert_eq!(
            j.tls_config,
            TlsConfig {
                ca_file: Some("/ca".into()),
                cert_file: Some("/c".into()),
                key_file: Some("/k".into()),
                server_name: Some("s".into()),
                insecure_skip_verify: true
            }
        );
        assert_eq!(
            j.metric_relabel_configs[0].action,
            crate::relabel::Action::Drop
        );
        assert_eq!(j.sd_configs.len(), 4);
        match &j.sd_configs[0] {
            SdConfig::Dns(d) => {
                assert_eq!(
                    (d.record_type, d.port, d.refresh_interval),
                    (DnsRecordType::Srv, None, Duration::from_secs(30))
                );
            }
            other => panic!("{other:?}"),
        }
        match &j.sd_configs[1] {
            SdConfig::Dns(d) => assert_eq!(
                (d.record_type, d.port, d.refresh_interval),
                (DnsRecordType::A, Some(9100), Duration::from_secs(60))
            ),
            other => panic!("{other:?}"),
        }
        match &j.sd_configs[2] {
            SdConfig::Consul(c) => {
                assert_eq!(c.server, "localhost:8500");
                assert_eq!(c.scheme, Scheme::Http);
                assert_eq!(c.tag_separator, ",");
                assert!(c.allow_stale);
                assert_eq!(c.refresh_interval, Duration::from_secs(30));
                assert_eq!(c.services, vec!["web".to_string()]);
            }
            other => panic!("{other:?}"),
        }
        match &j.sd_configs[3] {
            SdConfig::File(f) => assert_eq!(f.refresh_interval, Duration::from_secs(300)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn legacy_bearer_token_becomes_authorization() {
        let j = one("job_name: a\nbearer_token: t0k3n\n");
        let auth = j.authorization.unwrap();
        assert_eq!(
            (
                auth.kind.as_str(),
                auth.credentials.as_ref().map(Secret::expose)
            ),
            ("Bearer", Some("t0k3n"))
        );
        let j = one("job_name: a\nbearer_token_file: /t\n");
        assert_eq!(
            j.authorization.unwrap().credentials_file.as_deref(),
            Some("/t")
        );
        let j = one("job_name: a\nauthorization: {credentials: c}\n");
        assert_eq!(j.authorization.unwrap().kind, "Bearer");
        let e = errors("job_name: a\nbearer_token: t\nbearer_token_file: /t\n");
        assert_eq!(
            e[0].message,
            "at most one of bearer_token & bearer_token_file must be configured"
        );
        let e = errors("job_name: a\nbearer_token: t\nauthorization: {credentials: c}\n");
        assert_eq!(
            e[0].message,
            "authorization is not compatible with bearer_token & bearer_token_file"
        );
        let e = errors("job_name: a\nbasic_auth: {username: u}\nauthorization: {credentials: c}\n");
        assert_eq!(
            e[0].message,
            "at most one of basic_auth, oauth2 & authorization must be configured"
        );
        let e = errors("job_name: a\nauthorization: {type: Basic, credentials: c}\n");
        assert_eq!(
            (e[0].field.as_str(), at(&e[0])),
            ("authorization.type", (2, 23))
        );
    }

    #[test]
    fn secrets_never_print() {
        let text = "job_name: a\nbasic_auth: {username: u, password: hunter2}\nconsul_sd_configs: [{token: tok3n}]\n";
        let j = one(text);
        let debug = format!("{j:?}");
        let json = serde_json::to_string(&j).unwrap();
        for shown in [debug, json] {
            assert!(
                !shown.contains("hunter2") && !shown.contains("tok3n"),
                "{shown}"
            );
            assert!(shown.contains("<secret>"));
        }
        // A secret of the wrong type: the error does not echo it.
        let e = errors("job_name: a\nbearer_token: [hunter2]\n");
        assert!(!e[0].to_string().contains("hunter2"), "{}", e[0]);
    }

    #[test]
    fn errors_name_job_field_and_position() {
        let text = "\
job_name: web
scrape_interval: 1.5s
relabel_configs:
  - source_labels: [a]
    target_label: b
  - source_labels: [a]
    regex: '(unclosed'
    target_label: c
static_configs:
  - targets: ['h:1']
    labels:
      bad-name: x
sample_limt: 5
";
        let e = errors(text);
        let got: Vec<_> = e
            .iter()
            .map(|e| (e.job.as_str(), e.field.as_str(), at(e)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("web", "scrape_interval", (2, 18)),
                ("web", "relabel_configs[1].regex", (7, 12)),
                ("web", "static_configs[0].labels.bad-name", (12, 7)),
                ("web", "sample_limt", (13, 1)),
            ]
        );
        assert_eq!(
            e[0].to_string(),
            "jobs.yml:2:18: job \"web\": scrape_interval: not a valid duration string: \"1.5s\""
        );
        assert_eq!(e[1].message, "invalid regex \"(unclosed\": unclosed group");
        assert_eq!(e[2].message, "\"bad-name\" is not a valid label name");
        assert_eq!(e[3].message, "unknown field \"sample_limt\"");
    }

    #[test]
    fn one_bad_job_hides_no_other() {
        let text = "\
scrape_configs:
  - job_name: a
    scrape_interval: nope
  - job_name: b
  - job_name: c
    honor_labels: [x]
  - job_name: b
  - scrape_interval: 1m
  - ~
  - job_name: d
";
        let (jobs, e) = load(text);
        let names: Vec<_> = jobs.iter().map(|j| j.job_name.as_str()).collect();
        assert_eq!(names, vec!["b", "d"]);
        let got: Vec<_> = e
            .iter()
            .map(|e| (e.job.as_str(), e.field.as_str(), at(e)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", "scrape_interval", (3, 22)),
                ("c", "honor_labels", (6, 19)),
                ("b", "job_name", (7, 15)),
                ("", "job_name", (8, 5)),
                ("", "scrape_configs", (9, 5)),
            ]
        );
        assert_eq!(
            e[2].message,
            "found multiple scrape configs with job name \"b\" (first at line 4)"
        );
        assert_eq!(e[3].message, "job_name is empty");
        assert_eq!(e[4].message, "empty or null scrape config section");
    }

    #[test]
    fn relabel_errors_point_at_the_field() {
        let e = errors("job_name: a\nrelabel_configs:\n  - action: hashmod\n    target_label: t\n");
        assert_eq!(
            (e[0].field.as_str(), at(&e[0])),
            ("relabel_configs[0].modulus", (3, 5))
        );
        let e = errors("job_name: a\nrelabel_configs:\n  - action: labeldrop\n    regex: x\n    target_label: t\n");
        assert_eq!(
            (e[0].field.as_str(), at(&e[0])),
            ("relabel_configs[0].target_label", (5, 19))
        );
        let e = errors(
            "job_name: a\nrelabel_configs:\n  - source_labels: [ok, 1bad]\n    action: keep\n",
        );
        assert_eq!(
            (e[0].field.as_str(), at(&e[0])),
            ("relabel_configs[0].source_labels[1]", (3, 25))
        );
        let e = errors("job_name: a\nmetric_relabel_configs:\n  - action: explode\n");
        assert_eq!(
            (e[0].field.as_str(), e[0].message.as_str()),
            (
                "metric_relabel_configs[0].action",
                "unknown relabel action \"explode\""
            )
        );
    }

    #[test]
    fn static_configs_as_prometheus() {
        let j = one("job_name: a\nstatic_configs:\n  - targets: ['h:1', 'h:2']\n    labels: {env: prod}\n  - targets: ['h:3']\n");
        assert_eq!(j.static_configs.len(), 2);
        assert_eq!(j.static_configs[0].source, "0");
        assert_eq!(j.static_configs[1].source, "1");
        assert_eq!(
            j.static_configs[0].targets[1].get("__address__"),
            Some("h:2")
        );
        assert_eq!(j.static_configs[0].labels.get("env"), Some("prod"));
        // A URL as a target is rejected unless relabeling may rewrite it.
        let e = errors("job_name: a\nstatic_configs:\n  - targets: ['http://h:1/metrics']\n");
        assert_eq!(
            (e[0].field.as_str(), e[0].message.as_str()),
            (
                "static_configs[0].targets[0]",
                "\"http://h:1/metrics\" is not a valid hostname"
            )
        );
        let j = one("job_name: a\nstatic_configs:\n  - targets: ['http://h:1/x']\nrelabel_configs:\n  - target_label: __address__\n    replacement: h:1\n");
        assert_eq!(j.static_configs[0].targets.len(), 1);
    }

    #[test]
    fn discovery_validation() {
        let e = errors("job_name: a\ndns_sd_configs:\n  - names: [x.example]\n    type: A\n");
        assert_eq!(
            (e[0].field.as_str(), e[0].message.as_str()),
            (
                "dns_sd_configs[0].port",
                "a port is required in DNS-SD configs for all record types except SRV"
            )
        );
        let e = errors("job_name: a\ndns_sd_configs:\n  - names: []\n");
        assert_eq!(
            e[0].message,
            "DNS-SD config must contain at least one SRV record name"
        );
        let e = errors("job_name: a\ndns_sd_configs:\n  - names: [x]\n    type: TXT\n");
        assert_eq!(e[0].message, "invalid DNS-SD records type TXT");
        let e = errors("job_name: a\nconsul_sd_configs:\n  - server: ' '\n");
        assert_eq!(
            e[0].message,
            "consul SD configuration requires a server address"
        );
        let e = errors("job_name: a\nfile_sd_configs:\n  - files: [targets.txt]\n");
        assert_eq!(
            e[0].message,
            "path name \"targets.txt\" is not valid for file discovery"
        );
        let e = errors("job_name: a\nfile_sd_configs:\n  - refresh_interval: 1m\n");
        assert_eq!(
            e[0].message,
            "file service discovery config must contain at least one path name"
        );
        let e = errors("job_name: a\nkubernetes_sd_configs: []\noauth2: {}\n");
        assert_eq!(
            e[0].message,
            "field \"kubernetes_sd_configs\" is not supported by scrapepool"
        );
        assert_eq!(
            e[1].message,
            "field \"oauth2\" is not supported by scrapepool"
        );
    }

    #[test]
    fn yaml_errors_have_a_position() {
        let e = errors("job_name: a\nstatic_configs:\n  - targets: ['h:1'\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].position.line >= 3, "{:?}", e[0]);
        assert!(e[0].message.starts_with("invalid YAML"), "{}", e[0].message);
        let e = errors("job_name: a\nsample_limit: 1\nsample_limit: 2\n");
        assert_eq!((e[0].field.as_str(), at(&e[0])), ("sample_limit", (3, 1)));
        assert!(e[0].message.contains("already set"), "{}", e[0].message);
    }

    #[test]
    fn wrong_shapes_are_type_errors() {
        let e = errors("job_name: a\nstatic_configs: {targets: []}\n");
        assert_eq!(
            (e[0].field.as_str(), e[0].message.as_str()),
            ("static_configs", "cannot unmarshal !!map into a list")
        );
        let e = errors("job_name: a\nparams: {module: http_2xx}\n");
        assert_eq!(
            (e[0].field.as_str(), e[0].message.as_str()),
            (
                "params.module",
                "cannot unmarshal !!str `http_2xx` into a list"
            )
        );
        let e = errors("job_name: [a]\n");
        assert_eq!(e[0].field, "job_name");
        let e = errors("- a\n- b\n");
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn load_job_checks_the_name() {
        assert!(load_job("job_name: a\n", "/jobs/a", "a").is_ok());
        let e = load_job("job_name: b\n", "/jobs/a", "a").unwrap_err();
        assert_eq!(e[0].field, "job_name");
        let e = load_job("job_name: a\nscrape_interval: x\n", "/jobs/a", "a").unwrap_err();
        assert_eq!((e[0].origin.as_str(), e[0].job.as_str()), ("/jobs/a", "a"));
    }

    #[test]
    fn no_prefix_of_a_real_file_panics() {
        // Every truncation of the fixtures: an editor saving half a file, a torn znode.
        for fixture in [
            include_str!("../../testdata/jobs/good.yml"),
            include_str!("../../testdata/jobs/bad.yml"),
        ] {
            // Every fifth character keeps the test quick in debug builds.
            let mut ends: Vec<usize> = fixture.char_indices().map(|(i, _)| i).step_by(5).collect();
            ends.push(fixture.len());
            for end in ends {
                let (jobs, errs) = load(&fixture[..end]);
                for e in &errs {
                    assert!(
                        e.position.line >= 1 && e.position.column >= 1,
                        "{e:?} at {end}"
                    );
                }
                assert!(jobs.len() <= 4);
            }
        }
    }

    #[test]
    fn whole_prometheus_files_are_accepted() {
        let text = "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\nrule_files: [a.yml]\nalerting: {}\nscrape_configs:\n  - job_name: p\n";
        let j = one(text);
        assert_eq!(j.scrape_interval, Duration::from_secs(15));
        let e = errors("scrape_configs: []\nbogus: 1\n");
        assert_eq!(
            (e[0].field.as_str(), e[0].message.as_str()),
            ("bogus", "unknown field \"bogus\"")
        );
    }
}
