//! The validated configuration: what a job, its discovery and its HTTP client are once every
//! default is applied. These types are the contract the rest of the workspace uses; fields may
//! be added, not renamed.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::units::ser_duration;
use crate::labels::{EscapingScheme, Labels, ValidationScheme};
use crate::protocol::ScrapeProtocol;
use crate::relabel::RelabelConfig;

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

impl fmt::Display for Secret {
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
    /// `scrape_protocols`: the formats asked for, most preferred first.
    pub scrape_protocols: Vec<ScrapeProtocol>,
    /// `fallback_scrape_protocol`: the format of a response whose Content-Type selects none.
    pub fallback_scrape_protocol: Option<ScrapeProtocol>,
    /// `metric_name_validation_scheme` (default `utf8`, or the global one).
    pub metric_name_validation_scheme: ValidationScheme,
    /// `metric_name_escaping_scheme` (default from the validation scheme, or the global one).
    pub metric_name_escaping_scheme: EscapingScheme,
}

/// `global:` defaults that jobs inherit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalConfig {
    /// Default scrape interval (1m).
    pub scrape_interval: Duration,
    /// Default scrape timeout (10s).
    pub scrape_timeout: Duration,
    /// Default `scrape_protocols`; `None`: Prometheus's default for each job.
    pub scrape_protocols: Option<Vec<ScrapeProtocol>>,
    /// Default `metric_name_validation_scheme` (`utf8`).
    pub metric_name_validation_scheme: ValidationScheme,
    /// Default `metric_name_escaping_scheme`; `None`: from the validation scheme.
    pub metric_name_escaping_scheme: Option<EscapingScheme>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: Duration::from_secs(60),
            scrape_timeout: Duration::from_secs(10),
            scrape_protocols: None,
            metric_name_validation_scheme: ValidationScheme::Utf8,
            metric_name_escaping_scheme: None,
        }
    }
}
