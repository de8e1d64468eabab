//! The HTTP client sections: the client keys a job writes inline (Prometheus's
//! `HTTPClientConfig`), `basic_auth`, `authorization`, `oauth2`, `tls_config`, the proxy
//! keys and `http_headers`.

use std::collections::BTreeMap;

use super::walk::{row, value_position, Field, Keys, Path, Section, Walker};
use super::yaml::Node;
use super::{
    Authorization, BasicAuth, HttpClientOptions, HttpHeader, OAuth2, Position, ProxyConfig, Secret,
    TlsConfig, TlsVersion,
};

/// The HTTP client keys of a job (Prometheus's `HTTPClientConfig`), with where each
/// authentication was written, for the checks of `finish`.
#[derive(Default)]
pub(super) struct HttpClient {
    pub(super) basic_auth: Option<(BasicAuth, Position)>,
    pub(super) authorization: Option<(Authorization, Position)>,
    bearer_token: Option<(Secret, Position)>,
    bearer_token_file: Option<(String, Position)>,
    oauth2: Option<(OAuth2, Position)>,
    pub(super) tls_config: TlsConfig,
    /// `follow_redirects`, `enable_http2`, `http_headers` as read (`proxy` and `oauth2`
    /// are set by `finish`).
    pub(super) options: HttpClientOptions,
    proxy: Proxy,
}

/// The proxy keys (Prometheus's `ProxyConfig`), written inline in an HTTP client or in
/// `oauth2`; checked together by its `finish`.
#[derive(Default)]
struct Proxy(ProxyConfig);

/// Headers Prometheus sets itself or that change the connection: `http_headers` may not
/// set them (common's `ReservedHeaders`).
const RESERVED_HEADERS: &[&str] = &[
    "Authorization",
    "Host",
    "Content-Encoding",
    "Content-Length",
    "Content-Type",
    "User-Agent",
    "Connection",
    "Keep-Alive",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Www-Authenticate",
    "Accept-Encoding",
    "X-Prometheus-Remote-Write-Version",
    "X-Prometheus-Remote-Read-Version",
    "X-Prometheus-Scrape-Timeout-Seconds",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Amz-Content-Sha256",
];

/// Go's `http.CanonicalHeaderKey`: each dash-separated word capitalized; a name holding a
/// character that is not a token character is left as it is.
pub(super) fn canonical_header_key(name: &str) -> String {
    if !name.bytes().all(is_token_byte) {
        return name.to_string();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// A character of an HTTP token (RFC 9110 5.6.2), what a header name is made of.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `oauth2` keys Prometheus knows for its JWT-bearer grant and secret references, which
/// scrapepool does not implement.
const OAUTH2_UNSUPPORTED: &[&str] = &[
    "client_secret_ref",
    "client_certificate_key_id",
    "client_certificate_key",
    "client_certificate_key_file",
    "client_certificate_key_ref",
    "signature_algorithm",
    "iss",
    "audience",
    "claims",
];

/// The HTTP client keys of Prometheus's that a job reads and other HTTP clients (Consul
/// discovery) do not: named as unsupported there.
pub(super) const CLIENT_KEYS: &[&str] = &[
    "oauth2",
    "proxy_url",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
    "follow_redirects",
    "enable_http2",
    "http_headers",
];

/// The HTTP client keys as a discovery mechanism (Consul, HTTP SD) reads them inline: all
/// but the proxy keys, `oauth2` and `http_headers` of [`CLIENT_KEYS`], which the discovery
/// clients do not carry out, so that those keys are refused as not supported (by the
/// section's `unsupported`) instead of read and ignored.
#[derive(Default)]
pub(super) struct DiscoveryClient(pub(super) HttpClient);

impl Keys for DiscoveryClient {
    fn read_key(&mut self, w: &mut Walker<'_>, key: &str, value: &Node, path: &Path) -> bool {
        let refused = CLIENT_KEYS.contains(&key) && !DISCOVERY_READ_KEYS.contains(&key);
        !refused && self.0.read_key(w, key, value, path)
    }
}

/// Of [`CLIENT_KEYS`], the ones a discovery entry reads although its client does not carry
/// them out (it neither follows redirects nor speaks HTTP/2): every configuration Prometheus
/// writes out (`/api/v1/status/config`) has them in each discovery entry, at their defaults.
const DISCOVERY_READ_KEYS: &[&str] = &["follow_redirects", "enable_http2"];

/// The grant type of RFC 7523, which scrapepool does not implement.
const GRANT_TYPE_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

impl Section for HttpClient {
    type Value = HttpClient;

    const FIELDS: &'static [Field<Self>] = &[
        row("basic_auth", |w, v, p, d| {
            let draft = BasicAuth {
                username: String::new(),
                password: None,
                password_file: None,
            };
            d.basic_auth = w.section(v, p, draft).map(|b| (b, v.pos));
        }),
        row("authorization", |w, v, p, d| {
            let draft = Authorization {
                kind: String::new(),
                credentials: None,
                credentials_file: None,
            };
            d.authorization = w.section(v, p, draft).map(|a| (a, v.pos));
        }),
        row("bearer_token", |w, v, p, d| {
            d.bearer_token = w.secret(v, p).map(|s| (s, v.pos))
        }),
        row("bearer_token_file", |w, v, p, d| {
            d.bearer_token_file = w.string(v, p).map(|s| (s, v.pos))
        }),
        row("tls_config", |w, v, p, d| {
            if let Some(tls) = w.section(v, p, TlsConfig::default()) {
                d.tls_config = tls;
            }
        }),
        row("oauth2", |w, v, p, d| {
            let draft = OAuth2Draft::default();
            d.oauth2 = w.section(v, p, draft).map(|o| (o, v.pos));
        }),
        row("follow_redirects", |w, v, p, d| {
            d.options.follow_redirects = w.boolean(v, p).unwrap_or_default()
        }),
        row("enable_http2", |w, v, p, d| {
            d.options.enable_http2 = w.boolean(v, p).unwrap_or_default()
        }),
        row("http_headers", |w, v, p, d| {
            d.options.http_headers = http_headers(w, v, p).unwrap_or_default()
        }),
    ];

    fn inline(&mut self) -> Option<&mut dyn Keys> {
        Some(&mut self.proxy)
    }

    /// Checks the authentications together, as Prometheus's `HTTPClientConfig.Validate`, and
    /// turns a legacy `bearer_token` or `bearer_token_file` into an `authorization`.
    fn finish(mut self, w: &mut Walker<'_>, node: &Node, path: &Path, _: bool) -> Option<Self> {
        self.bearer_token = self.bearer_token.filter(|b| !b.0.expose().is_empty());
        self.bearer_token_file = self.bearer_token_file.filter(|b| !b.0.is_empty());
        let bearer_pos = self
            .bearer_token
            .as_ref()
            .map(|b| b.1)
            .or(self.bearer_token_file.as_ref().map(|b| b.1));
        let has_bearer = bearer_pos.is_some();
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            w.err(
                &path.key("bearer_token_file"),
                bearer_pos.unwrap_or_default(),
                "at most one of bearer_token & bearer_token_file must be configured",
            );
        }
        let basic_or_oauth2 = self
            .basic_auth
            .as_ref()
            .map(|b| ("basic_auth", b.1))
            .or(self.oauth2.as_ref().map(|o| ("oauth2", o.1)));
        if let (Some((key, pos)), true) = (basic_or_oauth2, has_bearer) {
            w.err(
                &path.key(key),
                pos,
                "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
            );
        }
        if let Some((_, pos)) = &self.authorization {
            if has_bearer {
                w.err(
                    &path.key("authorization"),
                    *pos,
                    "authorization is not compatible with bearer_token & bearer_token_file",
                );
            }
            if self.basic_auth.is_some() || self.oauth2.is_some() {
                w.err(
                    &path.key("authorization"),
                    *pos,
                    "at most one of basic_auth, oauth2 & authorization must be configured",
                );
            }
        } else if let Some((token, pos)) = self.bearer_token.take() {
            let auth = Authorization {
                kind: "Bearer".into(),
                credentials: Some(token),
                credentials_file: None,
            };
            self.authorization = Some((auth, pos));
        } else if let Some((file, pos)) = self.bearer_token_file.take() {
            let auth = Authorization {
                kind: "Bearer".into(),
                credentials: None,
                credentials_file: Some(file),
            };
            self.authorization = Some((auth, pos));
        }
        if let (Some((_, pos)), Some(_), None) =
            (&self.oauth2, &self.basic_auth, &self.authorization)
        {
            w.err(
                &path.key("oauth2"),
                *pos,
                "at most one of basic_auth, oauth2 & authorization must be configured",
            );
        }
        if let Some(proxy) = std::mem::take(&mut self.proxy).finish(w, node, path, true) {
            self.options.proxy = proxy;
        }
        self.options.oauth2 = self.oauth2.as_ref().map(|o| o.0.clone());
        Some(self)
    }
}

impl Section for BasicAuth {
    type Value = BasicAuth;

    const FIELDS: &'static [Field<Self>] = &[
        row("username", |w, v, p, d| {
            d.username = w.string(v, p).unwrap_or_default()
        }),
        row("password", |w, v, p, d| {
            d.password = w.secret(v, p).filter(|s| !s.expose().is_empty())
        }),
        row("password_file", |w, v, p, d| {
            d.password_file = w.non_empty(v, p)
        }),
    ];

    fn finish(self, w: &mut Walker<'_>, node: &Node, path: &Path, _: bool) -> Option<BasicAuth> {
        if self.password.is_some() && self.password_file.is_some() {
            w.err(
                path,
                node.pos,
                "at most one of basic_auth password, password_file & password_ref must be configured",
            );
        }
        Some(self)
    }
}

impl Section for Authorization {
    type Value = Authorization;

    const FIELDS: &'static [Field<Self>] = &[
        row("type", |w, v, p, d| {
            d.kind = w.string(v, p).unwrap_or_default()
        }),
        row("credentials", |w, v, p, d| {
            d.credentials = w.secret(v, p).filter(|s| !s.expose().is_empty())
        }),
        row("credentials_file", |w, v, p, d| {
            d.credentials_file = w.non_empty(v, p)
        }),
    ];

    fn finish(
        mut self,
        w: &mut Walker<'_>,
        node: &Node,
        path: &Path,
        _: bool,
    ) -> Option<Authorization> {
        if self.credentials.is_some() && self.credentials_file.is_some() {
            w.err(
                path,
                node.pos,
                "at most one of authorization credentials & credentials_file must be configured",
            );
        }
        self.kind = self.kind.trim().to_string();
        if self.kind.is_empty() {
            self.kind = "Bearer".into();
        }
        if self.kind.eq_ignore_ascii_case("basic") {
            w.err(
                &path.key("type"),
                value_position(node, "type").unwrap_or(node.pos),
                "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
            );
        }
        Some(self)
    }
}

impl Section for TlsConfig {
    type Value = TlsConfig;

    const FIELDS: &'static [Field<Self>] = &[
        row("ca", |w, v, p, d| d.ca = w.non_empty(v, p)),
        row("ca_file", |w, v, p, d| d.ca_file = w.non_empty(v, p)),
        row("cert", |w, v, p, d| d.cert = w.non_empty(v, p)),
        row("cert_file", |w, v, p, d| d.cert_file = w.non_empty(v, p)),
        row("key", |w, v, p, d| {
            d.key = w.secret(v, p).filter(|s| !s.expose().is_empty())
        }),
        row("key_file", |w, v, p, d| d.key_file = w.non_empty(v, p)),
        row("server_name", |w, v, p, d| {
            d.server_name = w.non_empty(v, p)
        }),
        row("insecure_skip_verify", |w, v, p, d| {
            d.insecure_skip_verify = w.boolean(v, p).unwrap_or_default()
        }),
        row("min_version", |w, v, p, d| {
            d.min_version = tls_version(w, v, p)
        }),
        row("max_version", |w, v, p, d| {
            d.max_version = tls_version(w, v, p)
        }),
    ];

    fn unsupported(key: &str) -> bool {
        matches!(key, "ca_ref" | "cert_ref" | "key_ref")
    }

    /// Prometheus's `TLSConfig.Validate`, and the version order its `NewTLSConfig` checks.
    fn finish(self, w: &mut Walker<'_>, node: &Node, path: &Path, _: bool) -> Option<TlsConfig> {
        let at = |key: &str| value_position(node, key).unwrap_or(node.pos);
        if self.ca.is_some() && self.ca_file.is_some() {
            w.err(
                &path.key("ca_file"),
                at("ca_file"),
                "at most one of ca, ca_file & ca_ref must be configured",
            );
        }
        if self.cert.is_some() && self.cert_file.is_some() {
            w.err(
                &path.key("cert_file"),
                at("cert_file"),
                "at most one of cert, cert_file & cert_ref must be configured",
            );
        }
        if self.key.is_some() && self.key_file.is_some() {
            w.err(
                &path.key("key_file"),
                at("key_file"),
                "at most one of key and key_file must be configured",
            );
        }
        let has_cert = self.cert.is_some() || self.cert_file.is_some();
        let has_key = self.key.is_some() || self.key_file.is_some();
        if has_cert && !has_key {
            w.err(
                &path.key("key_file"),
                node.pos,
                "exactly one of key or key_file must be configured when a client certificate is configured",
            );
        } else if has_key && !has_cert {
            w.err(
                &path.key("cert_file"),
                node.pos,
                "exactly one of cert or cert_file must be configured when a client key is configured",
            );
        }
        if let (Some(min), Some(max)) = (self.min_version, self.max_version) {
            if max < min {
                w.err(
                    &path.key("max_version"),
                    at("max_version"),
                    "tls_config.max_version must be greater than or equal to tls_config.min_version if both are specified",
                );
            }
        }
        Some(self)
    }
}

/// A `min_version` / `max_version`: `TLS10` to `TLS13`; empty is unset.
fn tls_version(w: &mut Walker<'_>, v: &Node, p: &Path) -> Option<TlsVersion> {
    let text = w.string(v, p)?;
    if text.is_empty() {
        return None;
    }
    let version = TlsVersion::parse(&text);
    if version.is_none() {
        w.err(p, v.pos, format!("unknown TLS version: {text}"));
    }
    version
}

impl Section for Proxy {
    type Value = ProxyConfig;

    const FIELDS: &'static [Field<Self>] = &[
        row("proxy_url", |w, v, p, d| d.0.proxy_url = proxy_url(w, v, p)),
        row("no_proxy", |w, v, p, d| d.0.no_proxy = w.non_empty(v, p)),
        row("proxy_from_environment", |w, v, p, d| {
            d.0.proxy_from_environment = w.boolean(v, p).unwrap_or_default()
        }),
        row("proxy_connect_header", |w, v, p, d| {
            let Some(entries) = w.map(v, p) else { return };
            for (name, values) in entries {
                let Some(name) = w.string(name, p) else {
                    continue;
                };
                let path = p.key(&name);
                let secrets = w.each(values, &path, |w, item, path| w.secret(item, path));
                d.0.proxy_connect_header.insert(name, secrets);
            }
        }),
    ];

    /// Prometheus's `ProxyConfig.Validate`; `node` is the mapping the keys are written in.
    fn finish(self, w: &mut Walker<'_>, node: &Node, path: &Path, _: bool) -> Option<ProxyConfig> {
        let c = self.0;
        let at = |key: &str| value_position(node, key).unwrap_or(node.pos);
        // Go's `ProxyConfig.Validate` stops at the first of these.
        let first = if !c.proxy_connect_header.is_empty()
            && !c.proxy_from_environment
            && c.proxy_url.is_none()
        {
            Some((
                "proxy_connect_header",
                "if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured",
            ))
        } else if c.proxy_from_environment && c.proxy_url.is_some() {
            Some((
                "proxy_url",
                "if proxy_from_environment is configured, proxy_url must not be configured",
            ))
        } else if c.proxy_from_environment && c.no_proxy.is_some() {
            Some((
                "no_proxy",
                "if proxy_from_environment is configured, no_proxy must not be configured",
            ))
        } else if c.proxy_url.is_none()
            && c.no_proxy.is_some()
            && value_position(node, "proxy_url").is_none()
        {
            Some((
                "no_proxy",
                "if no_proxy is configured, proxy_url must also be configured",
            ))
        } else {
            None
        };
        if let Some((key, message)) = first {
            w.err(&path.key(key), at(key), message);
        }
        Some(c)
    }
}

/// A `proxy_url`: what Go's `url.Parse` refuses in its words; a scheme other than `http`
/// is refused as unsupported (Go also speaks `https` and SOCKS5 to proxies). Empty is unset.
fn proxy_url(w: &mut Walker<'_>, v: &Node, p: &Path) -> Option<String> {
    let text = w.string(v, p)?;
    if text.is_empty() {
        return None;
    }
    let fail = |w: &mut Walker<'_>, why: String| {
        w.err(p, v.pos, format!("parse {text:?}: {why}"));
    };
    if text.bytes().any(|b| b < 0x20 || b == 0x7f) {
        fail(w, "net/url: invalid control character in URL".into());
        return None;
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        if text.starts_with(':') {
            fail(w, "missing protocol scheme".into());
        } else {
            w.err(
                p,
                v.pos,
                format!("proxy_url {text:?} has no scheme and host (write http://host:port)"),
            );
        }
        return None;
    };
    if scheme.is_empty() {
        fail(w, "missing protocol scheme".into());
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = match host_port.rsplit_once(']') {
        Some((_, after)) => after.strip_prefix(':'),
        None => host_port.split_once(':').map(|(_, port)| port),
    };
    if let Some(port) = port {
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            fail(w, format!("invalid port \":{port}\" after host"));
            return None;
        }
    }
    if !scheme.eq_ignore_ascii_case("http") {
        w.err(
            p,
            v.pos,
            format!("proxy_url scheme {scheme:?} is not supported by scrapepool (only http)"),
        );
        return None;
    }
    if host_port.is_empty() {
        w.err(p, v.pos, format!("proxy_url {text:?} has no host"));
        return None;
    }
    Some(text)
}

/// `oauth2` being read: its own keys, and the proxy keys written inline.
#[derive(Default)]
struct OAuth2Draft {
    client_id: String,
    client_secret: Option<Secret>,
    client_secret_file: Option<String>,
    scopes: Vec<String>,
    token_url: String,
    endpoint_params: BTreeMap<String, String>,
    tls_config: TlsConfig,
    proxy: Proxy,
}

impl Section for OAuth2Draft {
    type Value = OAuth2;

    const FIELDS: &'static [Field<Self>] = &[
        row("client_id", |w, v, p, d| {
            d.client_id = w.string(v, p).unwrap_or_default()
        }),
        row("client_secret", |w, v, p, d| {
            d.client_secret = w.secret(v, p).filter(|s| !s.expose().is_empty())
        }),
        row("client_secret_file", |w, v, p, d| {
            d.client_secret_file = w.non_empty(v, p)
        }),
        row("scopes", |w, v, p, d| {
            d.scopes = w.string_list(v, p).unwrap_or_default()
        }),
        row("token_url", |w, v, p, d| {
            d.token_url = w.string(v, p).unwrap_or_default()
        }),
        row("endpoint_params", |w, v, p, d| {
            d.endpoint_params = w.string_map(v, p).unwrap_or_default()
        }),
        row("tls_config", |w, v, p, d| {
            if let Some(tls) = w.section(v, p, TlsConfig::default()) {
                d.tls_config = tls;
            }
        }),
        row("grant_type", |w, v, p, _| {
            if w.string(v, p).as_deref() == Some(GRANT_TYPE_JWT_BEARER) {
                w.err(
                    p,
                    v.pos,
                    format!("grant_type {GRANT_TYPE_JWT_BEARER:?} is not supported by scrapepool"),
                );
            }
        }),
    ];

    fn unsupported(key: &str) -> bool {
        OAUTH2_UNSUPPORTED.contains(&key)
    }

    fn inline(&mut self) -> Option<&mut dyn Keys> {
        Some(&mut self.proxy)
    }

    /// The `oauth2` checks of Prometheus's `HTTPClientConfig.Validate`.
    fn finish(self, w: &mut Walker<'_>, node: &Node, path: &Path, _: bool) -> Option<OAuth2> {
        if self.client_id.is_empty() {
            w.err(
                &path.key("client_id"),
                value_position(node, "client_id").unwrap_or(node.pos),
                "oauth2 client_id must be configured",
            );
        }
        if self.token_url.is_empty() {
            w.err(
                &path.key("token_url"),
                value_position(node, "token_url").unwrap_or(node.pos),
                "oauth2 token_url must be configured",
            );
        }
        if self.client_secret.is_some() && self.client_secret_file.is_some() {
            w.err(
                &path.key("client_secret_file"),
                value_position(node, "client_secret_file").unwrap_or(node.pos),
                "at most one of oauth2 client_secret, client_secret_file & client_secret_ref must be configured using grant-type=client_credentials",
            );
        }
        let proxy = self.proxy.finish(w, node, path, true)?;
        Some(OAuth2 {
            client_id: self.client_id,
            client_secret: self.client_secret,
            client_secret_file: self.client_secret_file,
            scopes: self.scopes,
            token_url: self.token_url,
            endpoint_params: self.endpoint_params,
            tls_config: self.tls_config,
            proxy,
        })
    }
}

/// `http_headers`: header name → `values`, `secrets`, `files`. A name Prometheus reserves is
/// refused in its words; one that is not an HTTP token is refused as Go's transport would
/// refuse it at the first request.
fn http_headers(w: &mut Walker<'_>, v: &Node, p: &Path) -> Option<BTreeMap<String, HttpHeader>> {
    let entries = w.map(v, p)?;
    let mut out = BTreeMap::new();
    for (name_node, value) in entries {
        let Some(name) = w.string(name_node, p) else {
            continue;
        };
        let path = p.key(&name);
        let canonical = canonical_header_key(&name);
        if RESERVED_HEADERS.contains(&canonical.as_str()) {
            w.err(
                &path,
                name_node.pos,
                format!("setting header {canonical:?} is not allowed"),
            );
        } else if name.is_empty() || !name.bytes().all(is_token_byte) {
            w.err(
                &path,
                name_node.pos,
                format!("net/http: invalid header field name {name:?}"),
            );
        }
        if let Some(header) = w.section(value, &path, HttpHeader::default()) {
            out.insert(name, header);
        }
    }
    Some(out)
}

impl Section for HttpHeader {
    type Value = HttpHeader;

    const FIELDS: &'static [Field<Self>] = &[
        row("values", |w, v, p, d| {
            d.values = w.string_list(v, p).unwrap_or_default()
        }),
        row("secrets", |w, v, p, d| {
            d.secrets = w.each(v, p, |w, item, path| w.secret(item, path))
        }),
        row("files", |w, v, p, d| {
            d.files = w.string_list(v, p).unwrap_or_default()
        }),
    ];

    fn finish(self, _: &mut Walker<'_>, _: &Node, _: &Path, _: bool) -> Option<HttpHeader> {
        Some(self)
    }
}
