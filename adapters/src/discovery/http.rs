//! `http_sd_configs`: target groups fetched from an HTTP endpoint every `refresh_interval`,
//! as Prometheus 3.16's `discovery/http`.
//!
//! - One `GET <url>` per round, the first at once, then one every `refresh_interval` (from
//!   the start of the previous one), each allowed `refresh_interval` in all. Headers:
//!   `User-Agent` as the scrapes send it, `Accept: application/json`,
//!   `X-Prometheus-Refresh-Interval-Seconds` (the interval in seconds, Go's shortest
//!   spelling: `60`, `0.5`), and the `Authorization` of `basic_auth` or `authorization`.
//! - The answer must be `200`, with a `Content-Type` of `application/json` (optionally
//!   `; charset=utf-8`, any case), and a body of at most [`BODY_SIZE_BYTES_MAX`] bytes
//!   holding a JSON list of `{"targets": [...], "labels": {...}}` (unknown keys, an invalid
//!   label name or a `null` item are errors, as Prometheus decodes them).
//! - Group `i` gets the source `<url>:<i>` and the label `__meta_url` = the URL.
//! - A round that fails (connection, TLS, timeout, non-200 status, wrong content type, too
//!   large or invalid body) sends `Err` naming the URL and what failed; the core keeps the
//!   last good groups in force (as Prometheus's discovery manager keeps the last groups it
//!   got), counts the failure and shows it until a round succeeds.
//!
//! Requests go through the HTTP adapter's client stack (`http::client`, as scrapes and
//! Consul do): tokio TCP, and for `https` rustls with the entry's `tls_config`. One fresh
//! connection per round: rounds are a minute apart by default.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use scrapepool_core::config::{Authorization, BasicAuth, HttpSdConfig, SdConfig, TargetGroup};
use scrapepool_core::labels::{is_valid_label_name, Labels};
use scrapepool_core::node::ProviderId;
use tokio::time::Instant;

use super::{Reporter, ADDRESS_LABEL};
use crate::http::client::{self, Client, ConnectError, Connection};
use crate::http::{TcpConnector, USER_AGENT_VALUE};
use crate::ports::{Discoverer, EventSender};

/// Largest response body read; a larger one fails the round.
pub const BODY_SIZE_BYTES_MAX: usize = 64 << 20;
/// The group label holding the URL the group came from.
pub const URL_LABEL: &str = "__meta_url";
/// The header telling the server how often it will be asked.
pub const REFRESH_INTERVAL_HEADER: &str = "X-Prometheus-Refresh-Interval-Seconds";
/// Shortest wait between rounds, whatever `refresh_interval` says.
pub const REFRESH_INTERVAL_MIN: Duration = Duration::from_millis(10);
/// Longest part of an error response's body quoted in an error message.
const ERROR_BODY_CHARS_MAX: usize = 200;

/// HTTP discovery.
#[derive(Clone, Debug, Default)]
pub struct HttpDiscoverer;

impl Discoverer for HttpDiscoverer {
    async fn run(&self, provider: ProviderId, config: SdConfig, events: EventSender) {
        let mut reporter = Reporter::new(provider, events);
        let SdConfig::Http(config) = config else {
            reporter
                .report(Err("http discoverer given a non-HTTP sd_config".into()))
                .await;
            return;
        };
        let endpoint = match Endpoint::new(&config) {
            Ok(e) => e,
            Err(message) => {
                reporter.report(Err(message)).await;
                // Only a new configuration can fix this; wait to be aborted.
                std::future::pending::<()>().await;
                return;
            }
        };
        let interval = config.refresh_interval.max(REFRESH_INTERVAL_MIN);
        loop {
            let started = Instant::now();
            let result = endpoint.refresh().await;
            if let Err(message) = &result {
                tracing::warn!(%message, "http discovery failed; keeping the last targets");
            }
            if !reporter.report(result).await {
                return;
            }
            tokio::time::sleep_until(started + interval).await;
        }
    }
}

/// One `http_sd_configs` entry, ready to fetch.
struct Endpoint {
    url: String,
    uri: Uri,
    host: String,
    port: u16,
    client: Client<TcpConnector>,
    basic_auth: Option<BasicAuth>,
    authorization: Option<Authorization>,
    /// The refresh interval, for the header and as the deadline of one round.
    interval: Duration,
}

impl Endpoint {
    /// Errors when the URL or the TLS settings are unusable.
    fn new(config: &HttpSdConfig) -> Result<Endpoint, String> {
        let url = config.url.clone();
        let fail = |e: String| format!("http_sd: {url}: {e}");
        let uri: Uri = url.parse().map_err(|e| fail(format!("invalid URL: {e}")))?;
        let https = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(fail("URL scheme must be 'http' or 'https'".into())),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| fail("host is missing in URL".into()))?
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let http = &config.http_client;
        let client = Client::new(TcpConnector, https.then_some(&http.tls_config))
            .map_err(|e| fail(format!("tls_config: {e}")))?;
        Ok(Endpoint {
            url,
            uri,
            host,
            port,
            client,
            basic_auth: http.basic_auth.clone(),
            authorization: http.authorization.clone(),
            interval: config.refresh_interval,
        })
    }

    /// One round: the groups, or what failed.
    async fn refresh(&self) -> Result<Vec<TargetGroup>, String> {
        let deadline = self.interval.max(REFRESH_INTERVAL_MIN);
        match tokio::time::timeout(deadline, self.fetch()).await {
            Ok(Ok(body)) => parse_groups(&self.url, &body),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("no answer within {}ms", deadline.as_millis())),
        }
        .map_err(|e| format!("http_sd: GET {}: {e}", self.url))
    }

    fn request(&self) -> Result<Request<Empty<Bytes>>, String> {
        let target = self.uri.path_and_query().map_or("/", |p| p.as_str());
        let authority = self.uri.authority().map_or("", |a| a.as_str());
        // A `user:password@` in the URL is not part of the Host header.
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let mut request = Request::get(target)
            .header(HOST, host)
            .header(USER_AGENT, USER_AGENT_VALUE)
            .header(ACCEPT, "application/json")
            .header(
                REFRESH_INTERVAL_HEADER,
                self.interval.as_secs_f64().to_string(),
            );
        // Read each round, so a rotated `password_file` or `credentials_file` is followed.
        if let Some(auth) =
            client::authorization(self.basic_auth.as_ref(), self.authorization.as_ref())?
        {
            request = request.header(AUTHORIZATION, auth);
        }
        request
            .body(Empty::new())
            .map_err(|e| format!("cannot build the request: {e}"))
    }

    /// Connects, sends the request and checks the answer; the body, or what failed.
    async fn fetch(&self) -> Result<Bytes, String> {
        let request = self.request()?;
        let (host, port) = (&self.host, self.port);
        let Connection {
            mut sender,
            task: _task,
            ..
        } = self.client.connect(host, port).await.map_err(|e| match e {
            ConnectError::Dial(e) => format!("connecting to {host}:{port}: {e}"),
            ConnectError::Proxy(why) => format!("connecting to {host}:{port}: {why}"),
            ConnectError::ServerName(name) => format!("invalid TLS server name {name:?}"),
            ConnectError::Tls(e) => format!("tls: {e}"),
            ConnectError::Handshake(e) => format!("request failed: {e}"),
        })?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let body = http_body_util::Limited::new(response.into_body(), BODY_SIZE_BYTES_MAX)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    format!("body larger than the {BODY_SIZE_BYTES_MAX} bytes allowed")
                } else {
                    format!("reading the body: {e}")
                }
            });
        if status != StatusCode::OK {
            let text = body
                .ok()
                .map(|b| {
                    let text = String::from_utf8_lossy(&b);
                    text.trim()
                        .chars()
                        .take(ERROR_BODY_CHARS_MAX)
                        .collect::<String>()
                })
                .filter(|t| !t.is_empty())
                .map(|t| format!(": {t}"))
                .unwrap_or_default();
            return Err(format!(
                "server returned HTTP status {}{text}",
                status_text(status)
            ));
        }
        if !is_json_content_type(content_type.trim()) {
            return Err(format!("unsupported content type {content_type:?}"));
        }
        body
    }
}

/// Go's `resp.Status`: `500 Internal Server Error`.
fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// Prometheus's `^(?i:application\/json(;\s*charset=("utf-8"|utf-8))?)$`.
pub fn is_json_content_type(value: &str) -> bool {
    let value = value.to_ascii_lowercase();
    let Some(rest) = value.strip_prefix("application/json") else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let Some(rest) = rest.strip_prefix(';') else {
        return false;
    };
    let rest = rest.trim_start_matches([' ', '\t', '\n', '\r', '\x0c']);
    matches!(rest, "charset=utf-8" | "charset=\"utf-8\"")
}

/// One group as the endpoint writes it; unknown keys are errors, as in Prometheus.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    targets: Option<Vec<String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Turns a body into its groups: source `<url>:<index>`, `__meta_url` on each.
pub fn parse_groups(url: &str, body: &[u8]) -> Result<Vec<TargetGroup>, String> {
    let raw: Vec<Option<RawGroup>> =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut groups = Vec::with_capacity(raw.len());
    for (i, group) in raw.into_iter().enumerate() {
        let Some(group) = group else {
            return Err("nil target group item found".into());
        };
        let mut labels = Labels::new();
        for (name, value) in group.labels.unwrap_or_default() {
            if !is_valid_label_name(&name) {
                return Err(format!("group {i}: {name:?} is not a valid label name"));
            }
            labels.set(name, value);
        }
        labels.set(URL_LABEL.to_string(), url.to_string());
        let targets = group
            .targets
            .unwrap_or_default()
            .into_iter()
            .map(|t| Labels::from_pairs([(ADDRESS_LABEL, t)]))
            .collect();
        groups.push(TargetGroup {
            targets,
            labels,
            source: format!("{url}:{i}"),
        });
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_as_prometheus_matches_them() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            assert!(is_json_content_type(ok), "{ok}");
        }
        for bad in [
            "",
            "text/plain",
            "application/json; charset=latin1",
            "application/jsonx",
            "application/json;",
        ] {
            assert!(!is_json_content_type(bad), "{bad}");
        }
    }

    #[test]
    fn groups_get_the_url_label_and_an_indexed_source() {
        let url = "http://sd.example/t";
        let groups = parse_groups(
            url,
            br#"[{"targets": ["a:1", "b:2"], "labels": {"env": "prod"}}, {"targets": []}]"#,
        )
        .unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].source, "http://sd.example/t:0");
        assert_eq!(groups[1].source, "http://sd.example/t:1");
        assert_eq!(
            groups[0].labels,
            Labels::from_pairs([("env", "prod"), ("__meta_url", url)])
        );
        assert_eq!(groups[0].targets[1].get("__address__"), Some("b:2"));
        assert_eq!(groups[1].labels.get("__meta_url"), Some(url));
    }

    #[test]
    fn bad_groups_are_errors() {
        assert_eq!(
            parse_groups("u", b"[null]").unwrap_err(),
            "nil target group item found"
        );
        assert_eq!(
            parse_groups("u", br#"[{"labels": {"a-b": "x"}}]"#).unwrap_err(),
            "group 0: \"a-b\" is not a valid label name"
        );
        assert!(parse_groups("u", br#"[{"target": []}]"#)
            .unwrap_err()
            .contains("unknown field `target`"));
        assert!(parse_groups("u", b"{}")
            .unwrap_err()
            .starts_with("invalid JSON"));
    }
}
