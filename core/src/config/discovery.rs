//! The discovery sections: `dns_sd_configs`, `consul_sd_configs` and `file_sd_configs`
//! entries, each one table of fields with Prometheus's defaults and checks.

use std::collections::BTreeMap;
use std::time::Duration;

use super::job::scheme;
use super::walk::{row, value_position, Field, Path, Section, Walker};
use super::yaml::Node;
use super::{ConsulSdConfig, DnsRecordType, DnsSdConfig, FileSdConfig, Scheme, TlsConfig};

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
                "MX" => w.err(
                    p,
                    v.pos,
                    "DNS-SD records type MX is not supported by scrapepool",
                ),
                other => w.err(p, v.pos, format!("invalid DNS-SD records type {other}")),
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

pub(super) fn consul_sd_defaults() -> ConsulSdConfig {
    ConsulSdConfig {
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
    }
}

impl Section for ConsulSdConfig {
    type Value = ConsulSdConfig;

    const FIELDS: &'static [Field<Self>] = &[
        row("server", |w, v, p, d| {
            d.server = w.string(v, p).unwrap_or_default()
        }),
        row("scheme", |w, v, p, d| {
            if let Some(s) = scheme(w, v, p) {
                d.scheme = s;
            }
        }),
        row("datacenter", |w, v, p, d| d.datacenter = w.non_empty(v, p)),
        row("token", |w, v, p, d| {
            d.token = w.secret(v, p).filter(|s| !s.expose().is_empty())
        }),
        row("services", |w, v, p, d| {
            d.services = w.string_list(v, p).unwrap_or_default()
        }),
        row("tags", |w, v, p, d| {
            d.tags = w.string_list(v, p).unwrap_or_default()
        }),
        row("node_meta", |w, v, p, d| {
            d.node_meta = w.string_map(v, p).unwrap_or_default()
        }),
        row("tag_separator", |w, v, p, d| {
            d.tag_separator = w.string(v, p).unwrap_or_default()
        }),
        row("allow_stale", |w, v, p, d| {
            d.allow_stale = w.boolean(v, p).unwrap_or_default()
        }),
        row("tls_config", |w, v, p, d| {
            if let Some(tls) = w.section(v, p, TlsConfig::default()) {
                d.tls_config = tls;
            }
        }),
        row("refresh_interval", |w, v, p, d| {
            if let Some(interval) = refresh_interval(w, v, p) {
                d.refresh_interval = interval;
            }
        }),
    ];

    fn unsupported(key: &str) -> bool {
        super::job::UNSUPPORTED_FIELDS.contains(&key)
            || super::http_client::CLIENT_KEYS.contains(&key)
    }

    fn finish(
        self,
        w: &mut Walker<'_>,
        node: &Node,
        path: &Path,
        _: bool,
    ) -> Option<ConsulSdConfig> {
        if self.server.trim().is_empty() {
            w.err(
                &path.key("server"),
                value_position(node, "server").unwrap_or(node.pos),
                "consul SD configuration requires a server address",
            );
        }
        Some(self)
    }
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
