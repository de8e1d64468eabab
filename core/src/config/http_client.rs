//! The HTTP client sections: the client keys a job writes inline (Prometheus's
//! `HTTPClientConfig`), `basic_auth`, `authorization` and `tls_config`.

use super::walk::{row, value_position, Field, Path, Section, Walker};
use super::yaml::Node;
use super::{Authorization, BasicAuth, Position, Secret, TlsConfig};

/// The HTTP client keys of a job (Prometheus's `HTTPClientConfig`), with where each
/// authentication was written, for the checks of `finish`.
#[derive(Default)]
pub(super) struct HttpClient {
    pub(super) basic_auth: Option<(BasicAuth, Position)>,
    pub(super) authorization: Option<(Authorization, Position)>,
    bearer_token: Option<(Secret, Position)>,
    bearer_token_file: Option<(String, Position)>,
    pub(super) tls_config: TlsConfig,
}

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
    ];

    /// Checks the authentications together, as Prometheus's `HTTPClientConfig.Validate`, and
    /// turns a legacy `bearer_token` or `bearer_token_file` into an `authorization`.
    fn finish(mut self, w: &mut Walker<'_>, _: &Node, path: &Path, _: bool) -> Option<Self> {
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
        if let (Some((_, pos)), true) = (&self.basic_auth, has_bearer) {
            w.err(
                &path.key("basic_auth"),
                *pos,
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
            if self.basic_auth.is_some() {
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
        row("ca_file", |w, v, p, d| d.ca_file = w.non_empty(v, p)),
        row("cert_file", |w, v, p, d| d.cert_file = w.non_empty(v, p)),
        row("key_file", |w, v, p, d| d.key_file = w.non_empty(v, p)),
        row("server_name", |w, v, p, d| {
            d.server_name = w.non_empty(v, p)
        }),
        row("insecure_skip_verify", |w, v, p, d| {
            d.insecure_skip_verify = w.boolean(v, p).unwrap_or_default()
        }),
    ];

    fn finish(self, w: &mut Walker<'_>, node: &Node, path: &Path, _: bool) -> Option<TlsConfig> {
        match (&self.cert_file, &self.key_file) {
            (Some(cert), None) => w.err(
                &path.key("key_file"),
                node.pos,
                format!("exactly one of key or key_file must be configured when a client certificate is configured (cert_file {cert:?})"),
            ),
            (None, Some(key)) => w.err(
                &path.key("cert_file"),
                node.pos,
                format!("exactly one of cert or cert_file must be configured when a client key is configured (key_file {key:?})"),
            ),
            _ => {}
        }
        Some(self)
    }
}
