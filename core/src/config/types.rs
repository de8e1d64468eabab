//! The validated configuration: what a job, its discovery and its HTTP client are once every
//! default is applied. These types are the contract the rest of the workspace uses; fields may
//! be added, not renamed.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::units::ser_duration;
use crate::labels::Labels;
pub use crate::labels::{
    EscapingScheme as NameEscapingScheme, ValidationScheme as NameValidationScheme,
};
pub use crate::protocol::ScrapeProtocol;
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
    /// CA certificate(s) to verify the server with, PEM written inline (`ca`).
    pub ca: Option<String>,
    /// CA certificate(s) to verify the server with.
    pub ca_file: Option<String>,
    /// Client certificate, PEM written inline (`cert`).
    pub cert: Option<String>,
    /// Client certificate.
    pub cert_file: Option<String>,
    /// Client key, PEM written inline (`key`).
    pub key: Option<Secret>,
    /// Client key.
    pub key_file: Option<String>,
    /// Server name to verify, instead of the target's host.
    pub server_name: Option<String>,
    /// Skip verification of the server's certificate.
    pub insecure_skip_verify: bool,
    /// Lowest TLS version offered (`min_version`); none: TLS 1.2, Go's client default.
    pub min_version: Option<TlsVersion>,
    /// Highest TLS version offered (`max_version`); none: the highest known.
    pub max_version: Option<TlsVersion>,
}

/// A TLS protocol version as `tls_config.min_version`/`max_version` write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum TlsVersion {
    /// `TLS10`.
    #[serde(rename = "TLS10")]
    Tls10,
    /// `TLS11`.
    #[serde(rename = "TLS11")]
    Tls11,
    /// `TLS12`.
    #[serde(rename = "TLS12")]
    Tls12,
    /// `TLS13`.
    #[serde(rename = "TLS13")]
    Tls13,
}

impl TlsVersion {
    /// The version of its configuration spelling (`TLS12`), as Prometheus's `TLSVersions`.
    pub fn parse(text: &str) -> Option<TlsVersion> {
        match text {
            "TLS10" => Some(TlsVersion::Tls10),
            "TLS11" => Some(TlsVersion::Tls11),
            "TLS12" => Some(TlsVersion::Tls12),
            "TLS13" => Some(TlsVersion::Tls13),
            _ => None,
        }
    }

    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls10 => "TLS10",
            TlsVersion::Tls11 => "TLS11",
            TlsVersion::Tls12 => "TLS12",
            TlsVersion::Tls13 => "TLS13",
        }
    }
}

/// The proxy keys of an HTTP client (Prometheus's `ProxyConfig`).
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct ProxyConfig {
    /// The HTTP proxy every request goes through (`proxy_url`), unless `no_proxy` exempts it.
    pub proxy_url: Option<String>,
    /// Hosts, domains and networks reached directly (`no_proxy`, comma-separated as the
    /// `NO_PROXY` variable).
    pub no_proxy: Option<String>,
    /// Take the proxy from `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY`.
    pub proxy_from_environment: bool,
    /// Headers sent to the proxy with a `CONNECT` (HTTPS through the proxy).
    pub proxy_connect_header: BTreeMap<String, Vec<Secret>>,
}

impl ProxyConfig {
    /// Whether any proxy is configured.
    pub fn is_set(&self) -> bool {
        self.proxy_url.is_some() || self.proxy_from_environment
    }
}

/// `oauth2`: the client-credentials grant (RFC 6749 4.4); the token it gets is sent as
/// `Authorization: Bearer`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OAuth2 {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: Option<Secret>,
    /// A file holding the client secret, read at each token request.
    pub client_secret_file: Option<String>,
    /// `scopes`, sent space-separated as `scope`.
    pub scopes: Vec<String>,
    /// Where tokens are asked for.
    pub token_url: String,
    /// Extra form parameters of the token request.
    pub endpoint_params: BTreeMap<String, String>,
    /// TLS settings for the token endpoint.
    pub tls_config: TlsConfig,
    /// Proxy settings for the token endpoint.
    pub proxy: ProxyConfig,
}

/// One `http_headers` entry: every value is sent, `values` first, then `secrets`, then the
/// contents of `files` (read at each request, surrounding whitespace trimmed).
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct HttpHeader {
    /// Values shown as written.
    pub values: Vec<String>,
    /// Values never shown.
    pub secrets: Vec<Secret>,
    /// Files holding one value each.
    pub files: Vec<String>,
}

/// The HTTP client keys beyond `basic_auth`, `authorization` and `tls_config` (which a job
/// keeps in fields of their own), with Prometheus's defaults.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HttpClientOptions {
    /// Follow 3xx redirects (default true), at most 10.
    pub follow_redirects: bool,
    /// Offer HTTP/2 in the TLS handshake (default true); plain HTTP is always HTTP/1.1.
    pub enable_http2: bool,
    /// The proxy keys.
    pub proxy: ProxyConfig,
    /// OAuth 2.0 client credentials.
    pub oauth2: Option<OAuth2>,
    /// Headers added to every request, by name as written.
    pub http_headers: BTreeMap<String, HttpHeader>,
}

impl Default for HttpClientOptions {
    /// Prometheus's `DefaultHTTPClientConfig`: redirects followed, HTTP/2 enabled.
    fn default() -> Self {
        HttpClientOptions {
            follow_redirects: true,
            enable_http2: true,
            proxy: ProxyConfig::default(),
            oauth2: None,
            http_headers: BTreeMap::new(),
        }
    }
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
    /// MX records, with `port`: the mail exchangers' names.
    #[serde(rename = "MX")]
    Mx,
    /// NS records, with `port`: the name servers' names.
    #[serde(rename = "NS")]
    Ns,
}

/// `dns_sd_configs` entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DnsSdConfig {
    /// Names to query.
    pub names: Vec<String>,
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: DnsRecordType,
    /// Port for A, AAAA, MX and NS records.
    pub port: Option<u16>,
    /// How often to query again (Prometheus's default 30s).
    #[serde(serialize_with = "ser_duration")]
    pub refresh_interval: Duration,
}

/// The HTTP client settings of a discovery that speaks HTTP (Prometheus's
/// `HTTPClientConfig`, written inline in the entry): the part of them scrapepool implements.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct HttpClientConfig {
    /// HTTP basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// Authorization header (covers the legacy `bearer_token`).
    pub authorization: Option<Authorization>,
    /// TLS settings for `https`.
    pub tls_config: TlsConfig,
}

/// `consul_sd_configs` entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConsulSdConfig {
    /// `host:port` of the Consul agent (default `localhost:8500`).
    pub server: String,
    /// Put before every API path (a Consul behind a reverse proxy), e.g. `/consul`.
    pub path_prefix: Option<String>,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Datacenter to query; the agent's own when absent.
    pub datacenter: Option<String>,
    /// Namespace to query (Consul Enterprise, the `ns` parameter).
    pub namespace: Option<String>,
    /// Admin partition to query (Consul Enterprise, the `partition` parameter).
    pub partition: Option<String>,
    /// ACL token, sent as `X-Consul-Token`.
    pub token: Option<Secret>,
    /// Services to watch; all when empty.
    pub services: Vec<String>,
    /// Tags a service must have, all of them.
    pub tags: Vec<String>,
    /// Node metadata a node must have.
    pub node_meta: BTreeMap<String, String>,
    /// Filter expression of the catalog's service list (`filter`).
    pub filter: Option<String>,
    /// Filter expression of each service's health query (`health_filter`).
    pub health_filter: Option<String>,
    /// Separator used to join tags into `__meta_consul_tags` (default `,`).
    pub tag_separator: String,
    /// Allow stale reads from any server.
    pub allow_stale: bool,
    /// How often to refresh when blocking queries are not used (default 30s).
    #[serde(serialize_with = "ser_duration")]
    pub refresh_interval: Duration,
    /// The HTTP client: `basic_auth` (also from `username` and `password`), `authorization`,
    /// and `tls_config` for `scheme: https`.
    #[serde(flatten)]
    pub http_client: HttpClientConfig,
}

/// `http_sd_configs` entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HttpSdConfig {
    /// The `http` or `https` URL answering the target groups as JSON.
    pub url: String,
    /// How often to fetch again (default 60s); also the timeout of one fetch.
    #[serde(serialize_with = "ser_duration")]
    pub refresh_interval: Duration,
    /// The HTTP client settings.
    #[serde(flatten)]
    pub http_client: HttpClientConfig,
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
    /// HTTP discovery.
    Http(HttpSdConfig),
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
    /// The other HTTP client keys: redirects, HTTP/2, proxy, OAuth 2.0, custom headers.
    pub http_client: HttpClientOptions,
    /// Target relabeling.
    pub relabel_configs: Vec<RelabelConfig>,
    /// Relabeling of scraped samples.
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Targets given in the configuration.
    pub static_configs: Vec<TargetGroup>,
    /// Discovery that needs the outside world, in the order written (DNS, Consul, file, HTTP).
    pub sd_configs: Vec<SdConfig>,
    /// `track_timestamps_staleness` (default false): staleness markers for series with
    /// explicit timestamps too.
    pub track_timestamps_staleness: bool,
    /// `scrape_protocols`, most wanted first: the job's own, else the global one, else
    /// [`ScrapeProtocol::PROTO_FIRST`] when the job scrapes native histograms, else
    /// [`ScrapeProtocol::DEFAULT`]. Never empty, no repeats.
    pub scrape_protocols: Vec<ScrapeProtocol>,
    /// `fallback_scrape_protocol`: how to parse a body whose Content-Type is missing or
    /// unknown; `None` when unset.
    pub fallback_scrape_protocol: Option<ScrapeProtocol>,
    /// `scrape_native_histograms` (the global one when unset; default false).
    pub scrape_native_histograms: bool,
    /// `always_scrape_classic_histograms` (the global one when unset; default false).
    pub always_scrape_classic_histograms: bool,
    /// `convert_classic_histograms_to_nhcb` (the global one when unset; default false).
    pub convert_classic_histograms_to_nhcb: bool,
    /// `extra_scrape_metrics` (the global one when unset; default false): add
    /// `scrape_timeout_seconds`, `scrape_sample_limit` and `scrape_body_size_bytes`.
    pub extra_scrape_metrics: bool,
    /// `scrape_failure_log_file`, as written (the global one when unset).
    pub scrape_failure_log_file: Option<String>,
    /// `native_histogram_bucket_limit`; 0 = no limit.
    pub native_histogram_bucket_limit: u64,
    /// `native_histogram_min_bucket_factor`; 0 = none.
    pub native_histogram_min_bucket_factor: f64,
    /// `keep_dropped_targets` (the global one when unset or 0); 0 = keep all.
    pub keep_dropped_targets: u64,
    /// `metric_name_validation_scheme` (the global one when unset).
    pub metric_name_validation_scheme: NameValidationScheme,
    /// `metric_name_escaping_scheme`, resolved as Prometheus does: the job's own, else the
    /// global one when the job sets no validation scheme, else `underscores` for `legacy`
    /// and `allow-utf-8` for `utf8`.
    pub metric_name_escaping_scheme: NameEscapingScheme,
}

/// `global:` defaults that jobs inherit, with Prometheus 3.16's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalConfig {
    /// Default scrape interval (1m).
    pub scrape_interval: Duration,
    /// Default scrape timeout (10s).
    pub scrape_timeout: Duration,
    /// `scrape_protocols`; `None` when unset (a job then picks its default by
    /// `scrape_native_histograms`).
    pub scrape_protocols: Option<Vec<ScrapeProtocol>>,
    /// Default `body_size_limit` in bytes of a job that sets none (or 0); 0 = no limit.
    pub body_size_limit_bytes: u64,
    /// Default `sample_limit`; 0 = no limit.
    pub sample_limit: u64,
    /// Default `target_limit`; 0 = no limit.
    pub target_limit: u64,
    /// Default `label_limit`; 0 = no limit.
    pub label_limit: u64,
    /// Default `label_name_length_limit`; 0 = no limit.
    pub label_name_length_limit: u64,
    /// Default `label_value_length_limit`; 0 = no limit.
    pub label_value_length_limit: u64,
    /// Default `keep_dropped_targets`; 0 = no limit.
    pub keep_dropped_targets: u64,
    /// `metric_name_validation_scheme` (default `utf8`).
    pub metric_name_validation_scheme: NameValidationScheme,
    /// `metric_name_escaping_scheme`; `None` when unset (then inferred from the validation
    /// scheme, as Prometheus does).
    pub metric_name_escaping_scheme: Option<NameEscapingScheme>,
    /// `scrape_native_histograms` (default false).
    pub scrape_native_histograms: bool,
    /// `convert_classic_histograms_to_nhcb` (default false).
    pub convert_classic_histograms_to_nhcb: bool,
    /// `always_scrape_classic_histograms` (default false).
    pub always_scrape_classic_histograms: bool,
    /// `extra_scrape_metrics` (default false).
    pub extra_scrape_metrics: bool,
    /// `scrape_failure_log_file`, as written; `None` when unset.
    pub scrape_failure_log_file: Option<String>,
    /// `external_labels`, validated: every series gets them unless it has a label of the
    /// same name, as remote write adds them. Values are taken as written: Prometheus's `$VAR`
    /// expansion is not done.
    pub external_labels: BTreeMap<String, String>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: Duration::from_secs(60),
            scrape_timeout: Duration::from_secs(10),
            scrape_protocols: None,
            body_size_limit_bytes: 0,
            sample_limit: 0,
            target_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            keep_dropped_targets: 0,
            metric_name_validation_scheme: NameValidationScheme::Utf8,
            metric_name_escaping_scheme: None,
            scrape_native_histograms: false,
            convert_classic_histograms_to_nhcb: false,
            always_scrape_classic_histograms: false,
            extra_scrape_metrics: false,
            scrape_failure_log_file: None,
            external_labels: BTreeMap::new(),
        }
    }
}
