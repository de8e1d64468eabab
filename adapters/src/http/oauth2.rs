//! `oauth2`: the client-credentials grant (RFC 6749 4.4) as Prometheus's client (Go's
//! `golang.org/x/oauth2/clientcredentials`) runs it. A token is asked for with a form POST
//! to `token_url` (`grant_type=client_credentials`, `scope` from `scopes`, then
//! `endpoint_params`), the client authenticated by HTTP Basic first and, if the endpoint
//! refuses that, by `client_id`/`client_secret` in the form (Go's auto-detection, remembered
//! per endpoint). The token is kept until 10 seconds before `expires_in` runs out (Go's
//! `expiryDelta`; without `expires_in`, for good) and sent as `Authorization: <type>
//! <token>`. The secret (`client_secret_file` is read at every use) is part of the cache
//! key, so a rotated secret fetches a new token at once, as Prometheus does.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{
    HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST, PROXY_AUTHORIZATION, USER_AGENT,
};
use hyper::{Request, Uri};
use scrapepool_core::config::OAuth2;
use tokio::time::Instant;

use super::client::{self, Client, ConnectError, Connector};

/// How long before its expiry a token is no longer used (Go's `oauth2.expiryDelta`).
const EXPIRY_DELTA: Duration = Duration::from_secs(10);

/// Largest token response read.
const TOKEN_RESPONSE_BYTES_MAX: usize = 1 << 20;

/// Most tokens kept; past it the expired ones are dropped, then all.
const TOKENS_MAX: usize = 10_000;

/// A token as sent.
struct Token {
    header: HeaderValue,
    /// When it stops being used; `None`: never.
    until: Option<Instant>,
}

/// The tokens of every `oauth2` configuration seen, by a hash of the configuration and its
/// secret, and how each token endpoint wants the client to authenticate.
#[derive(Default)]
pub(crate) struct Tokens {
    tokens: Mutex<HashMap<u64, Token>>,
    /// Token endpoints that refused Basic authentication and took the form parameters.
    in_params: Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.tokens.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("Tokens").field("tokens", &n).finish()
    }
}

impl Tokens {
    /// The `Authorization` value for `config`: the kept token, or a new one from its
    /// endpoint over `connector`. The error is the whole reason, in Go's words.
    pub(crate) async fn authorization<C: Connector>(
        &self,
        connector: &C,
        config: &OAuth2,
        user_agent: &str,
    ) -> Result<HeaderValue, String> {
        let secret = match (&config.client_secret, &config.client_secret_file) {
            (Some(s), _) => s.expose().to_string(),
            (None, Some(file)) => client::read_secret_file(file, "oauth2 client secret")?,
            (None, None) => String::new(),
        };
        let key = cache_key(config, &secret);
        let now = Instant::now();
        if let Some(token) = self.tokens.lock().ok().and_then(|m| {
            m.get(&key)
                .filter(|t| t.until.is_none_or(|until| now < until))
                .map(|t| t.header.clone())
        }) {
            return Ok(token);
        }
        let in_params = self
            .in_params
            .lock()
            .is_ok_and(|s| s.contains(&config.token_url));
        let token = match fetch(connector, config, &secret, in_params, user_agent).await {
            Ok(token) => token,
            // Go's auto-detection: Basic first, then the form parameters.
            Err(first) if !in_params => {
                let token = fetch(connector, config, &secret, true, user_agent)
                    .await
                    .map_err(|_| first)?;
                if let Ok(mut s) = self.in_params.lock() {
                    s.insert(config.token_url.clone());
                }
                token
            }
            Err(e) => return Err(e),
        };
        let header = token.header.clone();
        if let Ok(mut map) = self.tokens.lock() {
            if map.len() >= TOKENS_MAX {
                map.retain(|_, t| t.until.is_none_or(|until| now < until));
                if map.len() >= TOKENS_MAX {
                    map.clear();
                }
            }
            map.insert(key, token);
        }
        Ok(header)
    }
}

/// What identifies a token: everything of `config` that goes into its request, and the
/// secret as read.
fn cache_key(config: &OAuth2, secret: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        &config.client_id,
        secret,
        &config.token_url,
        &config.scopes,
        &config.endpoint_params,
    )
        .hash(&mut h);
    format!("{:?}{:?}", config.tls_config, config.proxy).hash(&mut h);
    config
        .tls_config
        .key
        .as_ref()
        .map(|k| k.expose())
        .hash(&mut h);
    h.finish()
}

/// `application/x-www-form-urlencoded` of `pairs`.
fn form<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

/// One token request; `in_params` puts the client's credentials in the form rather than
/// in a Basic `Authorization`.
async fn fetch<C: Connector>(
    connector: &C,
    config: &OAuth2,
    secret: &str,
    in_params: bool,
    user_agent: &str,
) -> Result<Token, String> {
    let token_url = &config.token_url;
    let uri: Uri = token_url
        .parse()
        .map_err(|e| format!("oauth2: invalid token_url {token_url:?}: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        other => {
            return Err(format!(
                "oauth2: unsupported scheme {other:?} in token_url {token_url:?}"
            ))
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| format!("oauth2: token_url {token_url:?} has no host"))?
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let scope = config.scopes.join(" ");
    let mut pairs: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
    if !scope.is_empty() {
        pairs.push(("scope", &scope));
    }
    for (k, v) in &config.endpoint_params {
        if k == "grant_type" {
            pairs[0].1 = v;
            continue;
        }
        if pairs.iter().any(|(have, _)| have == k)
            || (in_params && matches!(k.as_str(), "client_id" | "client_secret"))
        {
            return Err(format!("oauth2: cannot overwrite parameter {k:?}"));
        }
        pairs.push((k, v));
    }
    if in_params {
        pairs.push(("client_id", &config.client_id));
        pairs.push(("client_secret", secret));
    }
    let body = form(pairs);

    let client = Client::with_options(
        connector.clone(),
        https.then_some(&config.tls_config),
        false,
        &config.proxy,
    )
    .map_err(|e| format!("oauth2: tls_config: {e}"))?;
    let mut conn = client
        .connect::<Full<Bytes>>(&host, port)
        .await
        .map_err(|e| match e {
            ConnectError::Dial(e) => format!(
                "oauth2: Post {token_url:?}: dial tcp {host}:{port}: {}",
                super::dial_reason(&e)
            ),
            ConnectError::Proxy(why) => format!("oauth2: Post {token_url:?}: {why}"),
            ConnectError::ServerName(name) => format!("oauth2: invalid TLS server name {name:?}"),
            ConnectError::Tls(e) => format!("oauth2: Post {token_url:?}: tls: {e}"),
            ConnectError::Handshake(e) => format!("oauth2: Post {token_url:?}: {e}"),
        })?;
    let (target, with_host) = conn.target(&uri);
    let mut req = Request::post(target)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(USER_AGENT, user_agent);
    if with_host {
        req = req.header(HOST, uri.authority().map_or("", |a| a.as_str()));
    }
    if let Some(Some(auth)) = &conn.via_proxy {
        req = req.header(PROXY_AUTHORIZATION, auth.clone());
    }
    let mut req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("oauth2: cannot build the token request: {e}"))?;
    if !in_params {
        // RFC 6749 2.3.1: both parts form-encoded before Basic encoding.
        use base64::Engine as _;
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(&config.client_id),
            enc(secret)
        ));
        req.headers_mut().insert(
            AUTHORIZATION,
            client::header(format!("Basic {basic}"), "oauth2 client credentials")?,
        );
    }
    let resp = conn
        .sender
        .send_request(req)
        .await
        .map_err(|e| format!("oauth2: Post {token_url:?}: {e}"))?;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = http_body_util::Limited::new(resp.into_body(), TOKEN_RESPONSE_BYTES_MAX)
        .collect()
        .await
        .map_err(|e| format!("oauth2: cannot fetch token: {e}"))?
        .to_bytes();
    let fields = parse_fields(&content_type, &body);
    if !status.is_success() {
        let code = fields.get("error").cloned().unwrap_or_default();
        return Err(if code.is_empty() {
            format!(
                "oauth2: cannot fetch token: {} {}\nResponse: {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or(""),
                String::from_utf8_lossy(&body)
            )
        } else {
            let mut text = format!("oauth2: {code:?}");
            for extra in ["error_description", "error_uri"] {
                if let Some(v) = fields.get(extra).filter(|v| !v.is_empty()) {
                    text.push_str(&format!(" {v:?}"));
                }
            }
            text
        });
    }
    let access_token = fields.get("access_token").cloned().unwrap_or_default();
    if access_token.is_empty() {
        return Err("oauth2: server response missing access_token".into());
    }
    client::remember_secret(&access_token);
    let kind = match fields.get("token_type").map(String::as_str).unwrap_or("") {
        t if t.eq_ignore_ascii_case("bearer") || t.is_empty() => "Bearer".to_string(),
        t if t.eq_ignore_ascii_case("mac") => "MAC".to_string(),
        t if t.eq_ignore_ascii_case("basic") => "Basic".to_string(),
        t => t.to_string(),
    };
    let until = fields
        .get("expires_in")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|secs| *secs > 0.0)
        .map(|secs| {
            let life = Duration::from_secs_f64(secs.min(1e9));
            Instant::now() + life.saturating_sub(EXPIRY_DELTA)
        });
    Ok(Token {
        header: client::header(format!("{kind} {access_token}"), "the oauth2 token")?,
        until,
    })
}

/// The fields of a token response: a form for `application/x-www-form-urlencoded` and
/// `text/plain` (as Go's oauth2 reads them), JSON otherwise; values as strings.
fn parse_fields(content_type: &str, body: &[u8]) -> HashMap<String, String> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if matches!(media, "application/x-www-form-urlencoded" | "text/plain") {
        return url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    }
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body)
    else {
        return HashMap::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((k, v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_responses_are_json_or_forms() {
        let f = parse_fields(
            "application/json; charset=utf-8",
            br#"{"access_token":"a","expires_in":3600,"token_type":"bearer","x":[1]}"#,
        );
        assert_eq!(f["access_token"], "a");
        assert_eq!(f["expires_in"], "3600");
        assert!(!f.contains_key("x"));
        let f = parse_fields("text/plain", b"access_token=b%20c&token_type=mac");
        assert_eq!(
            (f["access_token"].as_str(), f["token_type"].as_str()),
            ("b c", "mac")
        );
        assert!(parse_fields("application/json", b"not json").is_empty());
    }
}
