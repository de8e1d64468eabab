//! The discovery sections: `dns_sd_configs`, `consul_sd_configs`, `file_sd_configs` and
//! `http_sd_configs` entries, each one table of fields with Prometheus 3.16's defaults and
//! checks. Consul and HTTP discovery take the HTTP client keys inline, as a job does.

use std::collections::BTreeMap;
use std::time::Duration;

use super::http_client::{DiscoveryClient, HttpClient};
use super::job::scheme;
use super::walk::{row, value_position, Field, Keys, Path, Section, Walker};
use super::yaml::Node;
use super::{
    BasicAuth, ConsulSdConfig, DnsRecordType, DnsSdConfig, FileSdConfig, HttpClientConfig,
    HttpSdConfig, Position, Scheme, Secret,
};

/// A `refresh_interval` of discovery: a duration greater than zero.
fn refresh_interval(w: &mut Walker<'_>, node: &Node, path: &Path) -> Option<Duration> {
    let d = w.duration(node, path)?;
    if d.is_zero() {
        w.err(path, node.pos, "refresh_interval must be greater than 0");
        return None;
    }
    Some(d)
}

pub(super) fn dns_sd_defaults() -> DnsSdConfig {
    DnsSdConfig {
        names: Vec::new(),
        record_type: DnsRecordType::Srv,
        port: None,
        refresh_interval: Duration::from_secs(30),
    }
}

impl Section for DnsSdConfig {
    type Value = DnsSdConfig;

    const FIELDS: &'static [Field<Self>] = &[
        row("names", |w, v, p, d| {
            d.names = w.string_list(v, p).unwrap_or_default()
        }),
        row("type", |w, v, p, d| {
            let Some(name) = w.string(v, p) else { return };
            match name.to_ascii_uppercase().as_str() {
                "SRV" => d.record_type = DnsRecordType::Srv,
                "A" => d.record_type = DnsRecordType::A,
                "AAAA" => d.record_type = DnsRecordType::Aaaa,
                "MX" => d.record_type = DnsRecordType::Mx,
                "NS" => d.record_type = DnsRecordType::Ns,
                _ => w.err(p, v.pos, format!("invalid DNS-SD records type {name}")),
            }
        }),
        row("port", |w, v, p, d| match w.uint(v, p) {
            Some(port) if port <= u16::MAX as u64 => d.port = (port > 0).then_some(port as u16),
            Some(port) => w.err(p, v.pos, format!("port {port} is out of range")),
            None => {}
        }),
        row("refresh_interval", |w, v, p, d| {
            if let Some(interval) = refresh_interval(w, v, p) {
                d.refresh_interval = interval;
            }
        }),
    ];

    fn finish(self, w: &mut Walker<'_>, node: &Node, path: &Path, _: bool) -> Option<DnsSdConfig> {
        if self.names.is_empty() {
            w.err(
                &path.key("names"),
                node.pos,
                "DNS-SD config must contain at least one SRV record name",
            );
        }
        if self.record_type != DnsRecordType::Srv && self.port.is_none() {
            w.err(
                &path.key("port"),
                value_position(node, "type").unwrap_or(node.pos),
                "a port is required in DNS-SD configs for all record types except SRV",
            );
        }
        Some(self)
    }
}

/// The HTTP client keys of a discovery entry, checked together as Prometheus's
/// `HTTPClientConfig.Validate`.
fn http_client(
    w: &mut Walker<'_>,
    http: HttpClient,
    node: &Node,
    path: &Path,
) -> Option<HttpClientConfig> {
    let http = http.finish(w, node, path, true)?;
    Some(HttpClientConfig {
        basic_auth: http.basic_auth.map(|b| b.0),
        authorization: http.authorization.map(|a| a.0),
        tls_config: http.tls_config,
    })
}

/// A `consul_sd_configs` entry being read.
pub(super) struct ConsulDraft {
    config: ConsulSdConfig,
    /// `username` and where it is written.
    username: Option<(String, Position)>,
    /// `password` and where it is written.
    password: Option<(Secret, Position)>,
    /// The HTTP client keys, written inline.
    http: DiscoveryClient,
}

pub(super) fn consul_sd_defaults() -> ConsulDraft {
    ConsulDraft {
        config: ConsulSdConfig {
            server: "localhost:8500".into(),
            path_prefix: None,
            scheme: Scheme::Http,
            datacenter: None,
            namespace: None,
            partition: None,
            token: None,
            services: Vec::new(),
            tags: Vec::new(),
            node_meta: BTreeMap::new(),
            filter: None,
            health_filter: None,
            tag_separator: ",".into(),
            allow_stale: true,
            refresh_interval: Duration::from_secs(30),
            http_client: HttpClientConfig::default(),
        },
        username: None,
        password: None,
        http: DiscoveryClient::default(),
    }
}

impl Section for ConsulDraft {
    type Value = ConsulSdConfig;

    const FIELDS: &'static [Field<Self>] = &[
        row("server", |w, v, p, d| {
            d.config.server = w.string(v, p).unwrap_or_default()
        }),
        row("path_prefix", |w, v, p, d| {
            d.config.path_prefix = w.non_empty(v, p)
        }),
        row("scheme", |w, v, p, d| {
            if let Some(s) = scheme(w, v, p) {
                d.config.scheme = s;
            }
        }),
        row("datacenter", |w, v, p, d| {
            d.config.datacenter = w.non_empty(v, p)
        }),
        row("namespace", |w, v, p, d| {
            d.config.namespace = w.non_empty(v, p)
        }),
        row("partition", |w, v, p, d| {
            d.config.partition = w.non_empty(v, p)
        }),
        row("token", |w, v, p, d| {
            d.config.token = w.secret(v, p).filter(|s| !s.expose().is_empty())
        }),
        row("username", |w, v, p, d| {
            d.username = w.non_empty(v, p).map(|u| (u, v.pos))
        }),
        row("password", |w, v, p, d| {
            d.password = w
                .secret(v, p)
                .filter(|s| !s.expose().is_empty())
                .map(|s| (s, v.pos))
        }),
        row("services", |w, v, p, d| {
            d.config.services = w.string_list(v, p).unwrap_or_default()
        }),
        row("tags", |w, v, p, d| {
            d.config.tags = w.string_list(v, p).unwrap_or_default()
        }),
        row("node_meta", |w, v, p, d| {
            d.config.node_meta = w.string_map(v, p).unwrap_or_default()
        }),
        row("filter", |w, v, p, d| d.config.filter = w.non_empty(v, p)),
        row("health_filter", |w, v, p, d| {
            d.config.health_filter = w.non_empty(v, p)
        }),
        row("tag_separator", |w, v, p, d| {
            d.config.tag_separator = w.string(v, p).unwrap_or_default()
        }),
        row("allow_stale", |w, v, p, d| {
            d.config.allow_stale = w.boolean(v, p).unwrap_or_default()
        }),
        row("refresh_interval", |w, v, p, d| {
            if let Some(interval) = refresh_interval(w, v, p) {
                d.config.refresh_interval = interval;
            }
        }),
    ];

    fn unsupported(key: &str) -> bool {
        super::job::UNSUPPORTED_FIELDS.contains(&key)
            || super::http_client::CLIENT_KEYS.contains(&key)
    }

    fn inline(&mut self) -> Option<&mut dyn Keys> {
        Some(&mut self.http)
    }

    /// Prometheus's checks, in its order: the server, `username`/`password` against
    /// `basic_auth` (they become its basic authentication), `token` against
    /// `authorization`, then the HTTP client's own.
    fn finish(
        self,
        w: &mut Walker<'_>,
        node: &Node,
        path: &Path,
        _: bool,
    ) -> Option<ConsulSdConfig> {
        let ConsulDraft {
            mut config,
            username,
            password,
            http: DiscoveryClient(mut http),
        } = self;
        if config.server.trim().is_empty() {
            w.err(
                &path.key("server"),
                value_position(node, "server").unwrap_or(node.pos),
                "consul SD configuration requires a server address",
            );
        }
        if let Some(pos) = username
            .as_ref()
            .map(|u| u.1)
            .or(password.as_ref().map(|p| p.1))
        {
            if http.basic_auth.is_some() {
                let key = if username.is_some() {
                    "username"
                } else {
                    "password"
                };
                w.err(
                    &path.key(key),
                    pos,
                    "at most one of consul SD configuration username and password and basic auth can be configured",
                );
            } else {
                let basic = BasicAuth {
                    username: username.map(|u| u.0).unwrap_or_default(),
                    password: password.map(|p| p.0),
                    password_file: None,
                };
                http.basic_auth = Some((basic, pos));
            }
        }
        if let (Some(_), Some((_, pos))) = (&config.token, &http.authorization) {
            w.err(
                &path.key("token"),
                value_position(node, "token").unwrap_or(*pos),
                "at most one of consul SD token, authorization, or oauth2 can be configured",
            );
        }
        config.http_client = http_client(w, http, node, path)?;
        Some(config)
    }
}

/// A `http_sd_configs` entry being read.
pub(super) struct HttpSdDraft {
    config: HttpSdConfig,
    /// The HTTP client keys, written inline.
    http: DiscoveryClient,
}

pub(super) fn http_sd_defaults() -> HttpSdDraft {
    HttpSdDraft {
        config: HttpSdConfig {
            url: String::new(),
            refresh_interval: Duration::from_secs(60),
            http_client: HttpClientConfig::default(),
        },
        http: DiscoveryClient::default(),
    }
}

impl Section for HttpSdDraft {
    type Value = HttpSdConfig;

    const FIELDS: &'static [Field<Self>] = &[
        row("url", |w, v, p, d| {
            d.config.url = w.string(v, p).unwrap_or_default()
        }),
        row("refresh_interval", |w, v, p, d| {
            if let Some(interval) = refresh_interval(w, v, p) {
                d.config.refresh_interval = interval;
            }
        }),
    ];

    fn unsupported(key: &str) -> bool {
        super::job::UNSUPPORTED_FIELDS.contains(&key)
            || super::http_client::CLIENT_KEYS.contains(&key)
    }

    fn inline(&mut self) -> Option<&mut dyn Keys> {
        Some(&mut self.http)
    }

    /// Prometheus's checks: a URL with scheme `http` or `https` and a host, then the HTTP
    /// client's own.
    fn finish(self, w: &mut Walker<'_>, node: &Node, path: &Path, _: bool) -> Option<HttpSdConfig> {
        let HttpSdDraft {
            mut config,
            http: DiscoveryClient(http),
        } = self;
        let url_path = path.key("url");
        let url_pos = value_position(node, "url").unwrap_or(node.pos);
        if config.url.is_empty() {
            w.err(&url_path, url_pos, "URL is missing");
        } else if let Err(e) = check_sd_url(&config.url) {
            w.err(&url_path, url_pos, e);
        }
        config.http_client = http_client(w, http, node, path)?;
        Some(config)
    }
}

/// The checks of Prometheus's HTTP SD on its URL, in Go's words: it parses (the host has no
/// space or control character), its scheme is `http` or `https` (any case), it has a host.
fn check_sd_url(url: &str) -> Result<(), String> {
    if url.chars().any(|c| c.is_ascii_control()) {
        return Err(format!(
            "parse {url:?}: net/url: invalid control character in URL"
        ));
    }
    let scheme_end = url.find(':').filter(|&i| {
        let scheme = &url[..i];
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let (scheme, rest) = match scheme_end {
        Some(i) => (url[..i].to_ascii_lowercase(), &url[i + 1..]),
        None => (String::new(), url),
    };
    if scheme != "http" && scheme != "https" {
        return Err("URL scheme must be 'http' or 'https'".into());
    }
    let authority = match rest.strip_prefix("//") {
        Some(after) => after.split(['/', '?', '#']).next().unwrap_or(""),
        None => "",
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.contains(' ') {
        return Err(format!(
            "parse {url:?}: invalid character \" \" in host name"
        ));
    }
    // Go's `URL.Host` keeps the port: `http://:8080/` has a host.
    if host.is_empty() {
        return Err("host is missing in URL".into());
    }
    Ok(())
}

pub(super) fn file_sd_defaults() -> FileSdConfig {
    FileSdConfig {
        files: Vec::new(),
        refresh_interval: Duration::from_secs(300),
    }
}

impl Section for FileSdConfig {
    type Value = FileSdConfig;

    const FIELDS: &'static [Field<Self>] = &[
        row("files", |w, v, p, d| {
            if let Some(files) = w.checked_string_list(v, p, is_valid_file_sd_name, |file| {
                format!("path name {file:?} is not valid for file discovery")
            }) {
                d.files = files;
            }
        }),
        row("refresh_interval", |w, v, p, d| {
            if let Some(interval) = refresh_interval(w, v, p) {
                d.refresh_interval = interval;
            }
        }),
    ];

    fn finish(
        self,
        w: &mut Walker<'_>,
        node: &Node,
        path: &Path,
        clean: bool,
    ) -> Option<FileSdConfig> {
        if self.files.is_empty() && clean {
            w.err(
                &path.key("files"),
                node.pos,
                "file service discovery config must contain at least one path name",
            );
        }
        Some(self)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{
        load_jobs, ConfigError, DnsRecordType, GlobalConfig, JobConfig, SdConfig, Secret,
    };

    fn load(text: &str) -> (Vec<JobConfig>, Vec<ConfigError>) {
        load_jobs(text, "jobs.yml", &GlobalConfig::default())
    }

    fn sd(text: &str) -> Vec<SdConfig> {
        let (jobs, errors) = load(text);
        assert!(errors.is_empty(), "{errors:#?}");
        jobs.into_iter().next().unwrap().sd_configs
    }

    /// Every error as (field, line, message).
    fn errors(text: &str) -> Vec<(String, usize, String)> {
        load(text)
            .1
            .into_iter()
            .map(|e| (e.field, e.position.line, e.message))
            .collect()
    }

    fn one_error(text: &str) -> (String, usize, String) {
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:#?}");
        e.into_iter().next().unwrap()
    }

    #[test]
    fn http_sd_defaults_and_every_key() {
        let configs = sd("job_name: a\nhttp_sd_configs:\n  - url: http://sd.example:8080/targets?x=1\n  - url: https://sd.example/t\n    refresh_interval: 15s\n    authorization: {credentials: tok}\n    tls_config: {ca_file: /ca.pem, server_name: sd}\n  - url: http://sd.example/b\n    basic_auth: {username: u, password: p}\n  - url: HTTP://:8080/t\n    bearer_token: legacy\n");
        let [SdConfig::Http(a), SdConfig::Http(b), SdConfig::Http(c), SdConfig::Http(d)] =
            configs.as_slice()
        else {
            panic!("{configs:#?}")
        };
        assert_eq!(a.url, "http://sd.example:8080/targets?x=1");
        assert_eq!(a.refresh_interval, Duration::from_secs(60));
        assert_eq!(a.http_client, Default::default());
        assert_eq!(b.refresh_interval, Duration::from_secs(15));
        let auth = b.http_client.authorization.as_ref().unwrap();
        assert_eq!(
            (auth.kind.as_str(), auth.credentials.as_ref()),
            ("Bearer", Some(&Secret("tok".into())))
        );
        assert_eq!(b.http_client.tls_config.ca_file.as_deref(), Some("/ca.pem"));
        assert_eq!(b.http_client.tls_config.server_name.as_deref(), Some("sd"));
        assert_eq!(c.http_client.basic_auth.as_ref().unwrap().username, "u");
        assert_eq!(
            d.http_client.authorization.as_ref().unwrap().credentials,
            Some(Secret("legacy".into()))
        );
    }

    #[test]
    fn http_sd_errors_are_prometheus_3_16s() {
        // Each checked against promtool 3.16 `check config`.
        let cases: &[(&str, &str, &str)] = &[
            ("{}", "http_sd_configs[0].url", "URL is missing"),
            (
                "{url: 'ftp://x/'}",
                "http_sd_configs[0].url",
                "URL scheme must be 'http' or 'https'",
            ),
            (
                "{url: 'x.example/sd'}",
                "http_sd_configs[0].url",
                "URL scheme must be 'http' or 'https'",
            ),
            (
                "{url: 'http:///x'}",
                "http_sd_configs[0].url",
                "host is missing in URL",
            ),
            (
                "{url: 'http://a b/x'}",
                "http_sd_configs[0].url",
                "parse \"http://a b/x\": invalid character \" \" in host name",
            ),
            (
                "{url: 'http://x/', basic_auth: {username: a}, authorization: {credentials: x}}",
                "http_sd_configs[0].authorization",
                "at most one of basic_auth, oauth2 & authorization must be configured",
            ),
            (
                "{url: 'http://x/', oauth2: {client_id: a}}",
                "http_sd_configs[0].oauth2",
                "field \"oauth2\" is not supported by scrapepool",
            ),
            (
                "{url: 'http://x/', refresh: 1m}",
                "http_sd_configs[0].refresh",
                "unknown field \"refresh\"",
            ),
        ];
        for (entry, field, message) in cases {
            let text = format!("job_name: a\nhttp_sd_configs:\n  - {entry}\n");
            assert_eq!(
                one_error(&text),
                (field.to_string(), 3, message.to_string()),
                "{entry}"
            );
        }
    }

    #[test]
    fn dns_mx_and_ns_need_a_port_and_the_type_is_named_as_written() {
        let configs = sd("job_name: a\ndns_sd_configs:\n  - {names: [mail.example], type: mx, port: 25}\n  - {names: [example], type: NS, port: 53}\n");
        let [SdConfig::Dns(mx), SdConfig::Dns(ns)] = configs.as_slice() else {
            panic!("{configs:#?}")
        };
        assert_eq!((mx.record_type, mx.port), (DnsRecordType::Mx, Some(25)));
        assert_eq!((ns.record_type, ns.port), (DnsRecordType::Ns, Some(53)));
        let (field, _, message) =
            one_error("job_name: a\ndns_sd_configs:\n  - {names: [a], type: mx}\n");
        assert_eq!(
            (field.as_str(), message.as_str()),
            (
                "dns_sd_configs[0].port",
                "a port is required in DNS-SD configs for all record types except SRV"
            )
        );
        let (_, _, message) =
            one_error("job_name: a\ndns_sd_configs:\n  - {names: [a], type: txt}\n");
        assert_eq!(message, "invalid DNS-SD records type txt");
    }

    #[test]
    fn consul_every_key() {
        let configs = sd("job_name: a
consul_sd_configs:
  - server: consul.example:8501
    path_prefix: /consul
    token: t0k
    datacenter: dc2
    namespace: team-a
    partition: part-1
    scheme: https
    username: u
    password: p
    services: [web, db]
    tags: [prod]
    node_meta: {rack: r1}
    tag_separator: ';'
    allow_stale: false
    refresh_interval: 5s
    filter: 'ServiceName != \"x\"'
    health_filter: 'Service.Port == 80'
    tls_config: {insecure_skip_verify: true}
  - authorization: {credentials: x}
");
        let [SdConfig::Consul(c), SdConfig::Consul(d)] = configs.as_slice() else {
            panic!("{configs:#?}")
        };
        assert_eq!(c.server, "consul.example:8501");
        assert_eq!(c.path_prefix.as_deref(), Some("/consul"));
        assert_eq!(c.token, Some(Secret("t0k".into())));
        assert_eq!(c.datacenter.as_deref(), Some("dc2"));
        assert_eq!(c.namespace.as_deref(), Some("team-a"));
        assert_eq!(c.partition.as_deref(), Some("part-1"));
        assert_eq!(c.scheme, crate::config::Scheme::Https);
        let basic = c.http_client.basic_auth.as_ref().unwrap();
        assert_eq!(
            (basic.username.as_str(), basic.password.as_ref()),
            ("u", Some(&Secret("p".into())))
        );
        assert_eq!(c.services, ["web", "db"]);
        assert_eq!(c.tags, ["prod"]);
        assert_eq!(c.node_meta["rack"], "r1");
        assert_eq!(c.tag_separator, ";");
        assert!(!c.allow_stale);
        assert_eq!(c.refresh_interval, Duration::from_secs(5));
        assert_eq!(c.filter.as_deref(), Some("ServiceName != \"x\""));
        assert_eq!(c.health_filter.as_deref(), Some("Service.Port == 80"));
        assert!(c.http_client.tls_config.insecure_skip_verify);
        // Defaults.
        assert_eq!(d.server, "localhost:8500");
        assert!(d.allow_stale && d.tag_separator == "," && d.path_prefix.is_none());
        assert_eq!(d.refresh_interval, Duration::from_secs(30));
        assert!(d.http_client.authorization.is_some());
    }

    #[test]
    fn consul_errors_are_prometheus_3_16s() {
        // Each checked against promtool 3.16 `check config`.
        let cases: &[(&str, &str, &str)] = &[
            (
                "{username: u, basic_auth: {username: a}}",
                "consul_sd_configs[0].username",
                "at most one of consul SD configuration username and password and basic auth can be configured",
            ),
            (
                "{password: p, basic_auth: {username: a}}",
                "consul_sd_configs[0].password",
                "at most one of consul SD configuration username and password and basic auth can be configured",
            ),
            (
                "{token: t, authorization: {credentials: x}}",
                "consul_sd_configs[0].token",
                "at most one of consul SD token, authorization, or oauth2 can be configured",
            ),
            (
                "{username: u, bearer_token: x}",
                "consul_sd_configs[0].basic_auth",
                "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
            ),
            (
                "{proxy_url: 'http://p:3128'}",
                "consul_sd_configs[0].proxy_url",
                "field \"proxy_url\" is not supported by scrapepool",
            ),
        ];
        for (entry, field, message) in cases {
            let text = format!("job_name: a\nconsul_sd_configs:\n  - {entry}\n");
            assert_eq!(
                one_error(&text),
                (field.to_string(), 3, message.to_string()),
                "{entry}"
            );
        }
        // A token with a legacy bearer_token is accepted, as in Prometheus.
        let configs = sd("job_name: a\nconsul_sd_configs: [{token: t, bearer_token: x}]\n");
        assert!(matches!(&configs[0], SdConfig::Consul(c) if c.token.is_some()));
    }

    #[test]
    fn other_discoveries_stay_refused_by_name() {
        for key in [
            "kubernetes_sd_configs",
            "ec2_sd_configs",
            "eureka_sd_configs",
        ] {
            let text = format!("job_name: a\n{key}: []\n");
            let (field, _, message) = one_error(&text);
            assert_eq!(field, key);
            assert_eq!(
                message,
                format!("field {key:?} is not supported by scrapepool")
            );
        }
    }
}
