//! Job configuration: Prometheus `scrape_config` YAML into typed, validated structs.
//!
//! OWNER: config helper. The public types below are the contract the rest of the core uses;
//! fields may be added, not renamed.

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
    /// Where the group came from (`static/0`, a DNS name, a Consul service, a file).
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
