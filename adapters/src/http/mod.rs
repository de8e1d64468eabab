//! The HTTP fetcher: Prometheus's scrape request (headers, auth, TLS, gzip, timeout, body
//! limit, redirects) on hyper 1, over a pluggable [`Connector`] — tokio TCP in production,
//! turmoil TCP in the simulation — so both run the same request code. Connections
//! (connector, proxy, TLS, HTTP/1.1 or HTTP/2 by ALPN) and the `Authorization` header come
//! from `client`, which Consul discovery uses too; OAuth 2.0 tokens from `oauth2`; the
//! scrape's own headers, `http_headers`, redirects, the keep-alive pool and the body (gzip,
//! size limit) are this module's.
//!
//! Redirects (`follow_redirects`, default true) are followed as Go's `http.Client` follows
//! them, at most [`REDIRECTS_MAX`]; once a hop leaves the scrape URL's host (neither that
//! host nor a name under it) the credentials (`basic_auth`, `authorization`, the OAuth 2.0
//! token) and the `Cookie` headers of `http_headers` stay behind for the rest of the chain,
//! as Prometheus's client (common 0.72) does. Without `follow_redirects`, the 3xx is the
//! scrape's answer.
//!
//! Connections are kept alive between a target's scrapes (as Prometheus's Go client does),
//! HTTPS ones too: at one scrape a second per target, connecting anew cost scrapepool about a
//! tenth of its CPU (bench/peers.sh, perf). A kept connection is used only by the next request
//! to the same URL with the same connection settings (TLS settings, HTTP/2, proxy: a changed
//! `tls_config` connects anew); when it turns out closed or fails before the response, the
//! request is sent once more on a fresh connection (GET is idempotent), so one target's
//! broken connection never fails the next scrape. The simulation's fetcher
//! (`with_connector`) does not pool.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{
    HeaderName, HeaderValue, ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING,
    CONTENT_TYPE, HOST, LOCATION, PROXY_AUTHORIZATION, USER_AGENT,
};
use hyper::{Request, Uri};
use scrapepool_core::scrape::{FetchOutcome, ScrapeError, ScrapeSpec};

use crate::ports::Fetcher;

pub(crate) mod client;
mod oauth2;

pub use client::{tls_client_config, Connector, TcpConnector};
use client::{Client, ConnectError, Connection};

/// The header that tells the exporter how long we wait (seconds, as Prometheus formats it).
pub const SCRAPE_TIMEOUT_HEADER: &str = "X-Prometheus-Scrape-Timeout-Seconds";
/// Our User-Agent.
pub const USER_AGENT_VALUE: &str = concat!("scrapepool/", env!("CARGO_PKG_VERSION"));
/// Prometheus's wording of a body over `body_size_limit` (scrape.go `errBodySizeLimit`).
pub const BODY_SIZE_LIMIT_ERROR: &str = "body size limit exceeded";

/// Compressed bytes inflated at a time before the body limit is checked again.
const GUNZIP_STEP_BYTES: usize = 1024;

/// Most idle kept-alive connections (one per scrape URL); past it, connections close after use.
pub const IDLE_CONNECTIONS_MAX: usize = 100_000;
/// How long a kept-alive connection may sit idle before it is closed instead of reused
/// (Go's `http.Transport` in Prometheus: 5 minutes).
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(300);

/// An idle connection kept for the next request to the same URL with the same settings.
struct Idle {
    conn: Connection,
    since: tokio::time::Instant,
}

/// The kept-alive connections, by URL and connection settings ([`pool_key`]).
#[derive(Default)]
struct Pool {
    idle: Mutex<HashMap<String, Idle>>,
    /// Keys whose server sent a response head too long for the small read buffer: their
    /// fresh connections are [`Client::large_heads`] ones from then on.
    large_heads: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.idle.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("Pool").field("idle", &n).finish()
    }
}

impl Pool {
    fn take(&self, url: &str) -> Option<Idle> {
        let idle = self.idle.lock().ok()?.remove(url)?;
        (idle.since.elapsed() < IDLE_CONNECTION_TIMEOUT).then_some(idle)
    }

    fn needs_large_heads(&self, key: &str) -> bool {
        self.large_heads.lock().is_ok_and(|set| set.contains(key))
    }

    fn remember_large_heads(&self, key: &str) {
        if let Ok(mut set) = self.large_heads.lock() {
            // Bounded like the idle connections; forgetting costs one more request.
            if set.len() >= IDLE_CONNECTIONS_MAX {
                set.clear();
            }
            set.insert(key.to_string());
        }
    }

    fn put(&self, url: &str, idle: Idle) {
        let Ok(mut map) = self.idle.lock() else {
            return;
        };
        if map.len() >= IDLE_CONNECTIONS_MAX {
            // Targets that went away leave their connections behind: drop the expired ones.
            map.retain(|_, i| i.since.elapsed() < IDLE_CONNECTION_TIMEOUT);
            if map.len() >= IDLE_CONNECTIONS_MAX {
                return;
            }
        }
        map.insert(url.to_string(), idle);
    }
}

/// Fetches targets over HTTP(S); see [`Fetcher`].
#[derive(Clone, Debug, Default)]
pub struct HttpFetcher<C = TcpConnector> {
    connector: C,
    /// Kept-alive connections; `None`: one connection per request.
    pool: Option<Arc<Pool>>,
    /// OAuth 2.0 tokens, shared by every target of the same `oauth2` settings.
    tokens: Arc<oauth2::Tokens>,
}

impl HttpFetcher<TcpConnector> {
    /// A fetcher over tokio TCP, keeping connections alive between scrapes.
    pub fn new() -> Self {
        HttpFetcher {
            connector: TcpConnector,
            pool: Some(Arc::default()),
            tokens: Arc::default(),
        }
    }
}

impl<C: Connector> HttpFetcher<C> {
    /// A fetcher over `connector`, one connection per request.
    pub fn with_connector(connector: C) -> Self {
        HttpFetcher {
            connector,
            pool: None,
            tokens: Arc::default(),
        }
    }

    /// Keeps connections alive between scrapes of the same URL.
    pub fn keep_alive(mut self) -> Self {
        self.pool = Some(Arc::default());
        self
    }
}

impl<C: Connector> Fetcher for HttpFetcher<C> {
    async fn fetch(&self, spec: &ScrapeSpec) -> FetchOutcome {
        // The whole scrape — connect, TLS, request, body — fits in the scrape timeout.
        match tokio::time::timeout(
            spec.timeout,
            fetch_inner(&self.connector, self.pool.as_deref(), &self.tokens, spec),
        )
        .await
        {
            Ok(Ok((body, content_type))) => FetchOutcome::Body { body, content_type },
            Ok(Err(error)) => FetchOutcome::Failed { error },
            Err(_) => FetchOutcome::Failed {
                error: ScrapeError::Timeout {
                    url: spec.url.clone(),
                },
            },
        }
    }
}

/// Formats a duration as Prometheus does for the timeout header (`10`, `0.5`).
pub fn timeout_header_value(timeout: Duration) -> String {
    format!("{}", timeout.as_secs_f64())
}

/// A request the target's settings do not allow to be made.
fn invalid(reason: String) -> ScrapeError {
    ScrapeError::InvalidRequest { reason }
}

/// Go's wording of a failed dial: `connect: connection refused` for an OS error (Rust says
/// `Connection refused (os error 111)`); any other error as it is.
pub(crate) fn dial_reason(e: &io::Error) -> String {
    if e.raw_os_error().is_none() {
        return e.to_string();
    }
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or_default();
    let mut chars = text.chars();
    let first = chars.next().map(|c| c.to_lowercase().to_string());
    format!("connect: {}{}", first.unwrap_or_default(), chars.as_str())
}

/// A gzip failure in Go's words where they differ (`gzip: invalid header`).
fn gunzip_error(e: io::Error) -> ScrapeError {
    let reason = e.to_string();
    let reason = match reason.as_str() {
        "invalid gzip header" => "invalid header".to_string(),
        "incomplete deflate stream" => "unexpected EOF".to_string(),
        _ => reason,
    };
    ScrapeError::Decompression { reason }
}

/// Most redirects followed in one scrape (Go's `http.Client`).
pub const REDIRECTS_MAX: usize = 10;

/// Most bytes of a redirect's body read so that its connection can be kept; a longer one
/// closes the connection instead.
const REDIRECT_BODY_BYTES_MAX: usize = 64 << 10;

/// Headers of `http_headers` not sent once a redirect left the scrape URL's host (Go's
/// `makeHeadersCopier` and common's `sensitiveHeadersOnRedirect`; the others of that list
/// are reserved and cannot be configured).
const SENSITIVE_ON_REDIRECT: &[&str] = &["cookie", "cookie2"];

/// The credential of one scrape: the OAuth 2.0 token, or the `basic_auth`/`authorization`
/// header (secret files read now).
async fn credentials<C: Connector>(
    connector: &C,
    tokens: &oauth2::Tokens,
    spec: &ScrapeSpec,
) -> Result<Option<HeaderValue>, ScrapeError> {
    if let Some(config) = &spec.http_client.oauth2 {
        return tokens
            .authorization(connector, config, USER_AGENT_VALUE)
            .await
            .map(Some)
            .map_err(|reason| {
                if reason.starts_with("unable to read") {
                    invalid(reason)
                } else {
                    ScrapeError::Request {
                        url: spec.url.clone(),
                        reason,
                    }
                }
            });
    }
    client::authorization(spec.basic_auth.as_ref(), spec.authorization.as_ref()).map_err(invalid)
}

/// The `http_headers` of one scrape, in order: per name, its values, its secrets (marked
/// sensitive) and the contents of its files (read now, trimmed, remembered for the filter).
fn custom_headers(spec: &ScrapeSpec) -> Result<Vec<(HeaderName, HeaderValue)>, ScrapeError> {
    let mut out = Vec::new();
    for (name, header) in &spec.http_client.http_headers {
        let key = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("http_headers: {name:?} is not a header name")))?;
        for value in &header.values {
            let value = HeaderValue::from_str(value).map_err(|_| {
                invalid(format!(
                    "http_headers {name}: {value:?} is not a valid HTTP header value"
                ))
            })?;
            out.push((key.clone(), value));
        }
        for secret in &header.secrets {
            let value = client::header(
                secret.expose().to_string(),
                &format!("a secret of http_headers {name}"),
            )
            .map_err(invalid)?;
            out.push((key.clone(), value));
        }
        for file in &header.files {
            let value = client::read_secret_file(file, "headers").map_err(invalid)?;
            let value = client::header(value, &format!("the file {file} of http_headers {name}"))
                .map_err(invalid)?;
            out.push((key.clone(), value));
        }
    }
    Ok(out)
}

/// What a scrape request carries besides the scrape's own headers.
struct Extra<'a> {
    /// The credential, `None` also once a redirect left the scrape URL's host.
    credentials: Option<&'a HeaderValue>,
    /// `http_headers`.
    headers: &'a [(HeaderName, HeaderValue)],
    /// Whether a redirect left the scrape URL's host (sensitive headers are dropped).
    crossed: bool,
}

/// Builds the GET request of one scrape for `uri` over `conn`.
fn build_request(
    spec: &ScrapeSpec,
    uri: &Uri,
    conn: &Connection,
    extra: &Extra<'_>,
) -> Result<Request<Empty<Bytes>>, ScrapeError> {
    let url = uri.to_string();
    let authority = uri
        .authority()
        .ok_or_else(|| invalid(format!("scrape URL {url:?} has no host")))?;
    let (target, with_host) = conn.target(uri);
    let mut builder = Request::get(target);
    if with_host {
        builder = builder.header(HOST, authority.as_str());
    }
    let mut req = builder
        .header(ACCEPT, spec.exposition.accept_header.as_str())
        .header(
            ACCEPT_ENCODING,
            if spec.enable_compression {
                "gzip"
            } else {
                "identity"
            },
        )
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header(SCRAPE_TIMEOUT_HEADER, timeout_header_value(spec.timeout))
        .body(Empty::new())
        .map_err(|e| invalid(format!("cannot build request for {url:?}: {e}")))?;
    let headers = req.headers_mut();
    for (name, value) in extra.headers {
        if extra.crossed && SENSITIVE_ON_REDIRECT.contains(&name.as_str()) {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    if let Some(value) = extra.credentials {
        headers.insert(AUTHORIZATION, value.clone());
    }
    if let Some(Some(value)) = &conn.via_proxy {
        headers.insert(PROXY_AUTHORIZATION, value.clone());
    }
    Ok(req)
}

/// A scrape URL taken apart: whether TLS, host, port.
fn endpoint(uri: &Uri, url: &str) -> Result<(bool, String, u16), ScrapeError> {
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        other => {
            return Err(invalid(format!(
                "unsupported scheme {other:?} in scrape URL {url:?}"
            )))
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| invalid(format!("scrape URL {url:?} has no host")))?
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    Ok((https, host, port))
}

/// Go's `isDomainOrSubdomain`: `sub` is `parent` or a name under it (never an IPv6
/// address, which only matches itself).
fn is_domain_or_subdomain(sub: &str, parent: &str) -> bool {
    let (sub, parent) = (sub.to_ascii_lowercase(), parent.to_ascii_lowercase());
    if parent.is_empty() {
        return false;
    }
    if sub == parent {
        return true;
    }
    if sub.contains([':', '%', '[']) {
        return false;
    }
    sub.strip_suffix(parent.as_str())
        .is_some_and(|rest| rest.ends_with('.'))
}

/// What decides whether a kept connection may serve a request: the TLS settings and HTTP/2
/// for HTTPS, the proxy settings for both (a hash, since the secrets in them count too).
fn connection_settings(spec: &ScrapeSpec, https: bool) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    https.hash(&mut h);
    if https {
        format!("{:?}", spec.tls_config).hash(&mut h);
        spec.tls_config
            .key
            .as_ref()
            .map(|k| k.expose())
            .hash(&mut h);
        spec.http_client.enable_http2.hash(&mut h);
    }
    let proxy = &spec.http_client.proxy;
    format!("{proxy:?}").hash(&mut h);
    for values in proxy.proxy_connect_header.values() {
        for v in values {
            v.expose().hash(&mut h);
        }
    }
    h.finish()
}

/// The pool's key of a connection for `url` with `spec`'s settings.
fn pool_key(url: &str, spec: &ScrapeSpec, https: bool) -> String {
    format!("{url} {:016x}", connection_settings(spec, https))
}

async fn fetch_inner<C: Connector>(
    connector: &C,
    pool: Option<&Pool>,
    tokens: &oauth2::Tokens,
    spec: &ScrapeSpec,
) -> Result<(Vec<u8>, Option<String>), ScrapeError> {
    let mut url = spec.url.clone();
    let mut uri: Uri = url
        .parse()
        .map_err(|e| invalid(format!("invalid scrape URL {url:?}: {e}")))?;
    let (_, original_host, _) = endpoint(&uri, &url)?;
    let original_host = original_host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let credentials = credentials(connector, tokens, spec).await?;
    let headers = custom_headers(spec)?;
    let mut crossed = false;
    let mut redirects = 0;
    loop {
        let (https, host, port) = endpoint(&uri, &url)?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        // Go's rule is sticky: once a hop left the host, credentials stay behind.
        crossed |= !is_domain_or_subdomain(bare, &original_host);
        let extra = Extra {
            credentials: credentials.as_ref().filter(|_| !crossed),
            headers: &headers,
            crossed,
        };
        let key = pool_key(&url, spec, https);
        let (resp, conn) = exchange(
            connector, pool, spec, &uri, &url, &key, https, &host, port, &extra,
        )
        .await?;
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let is_redirect = matches!(resp.status().as_u16(), 301 | 302 | 303 | 307 | 308);
        match location {
            Some(location) if is_redirect && spec.http_client.follow_redirects => {
                let next = url::Url::parse(&url)
                    .and_then(|base| base.join(&location))
                    .map_err(|e| ScrapeError::Request {
                        url: url.clone(),
                        reason: format!("failed to parse Location header {location:?}: {e}"),
                    })?;
                let next = next.to_string();
                if redirects == REDIRECTS_MAX {
                    return Err(ScrapeError::Request {
                        url: next,
                        reason: format!("stopped after {REDIRECTS_MAX} redirects"),
                    });
                }
                redirects += 1;
                drain_and_keep(resp, conn, pool, &key).await;
                uri = next
                    .parse()
                    .map_err(|e| invalid(format!("invalid redirect URL {next:?}: {e}")))?;
                url = next;
            }
            _ => return read_response(resp, conn, pool, &key, spec).await,
        }
    }
}

/// Reads a redirect's short body to its end so its connection can serve again; a long one
/// is dropped with its connection.
async fn drain_and_keep(
    resp: hyper::Response<hyper::body::Incoming>,
    conn: Connection,
    pool: Option<&Pool>,
    key: &str,
) {
    let Some(pool) = pool else { return };
    let limited = http_body_util::Limited::new(resp.into_body(), REDIRECT_BODY_BYTES_MAX);
    if limited.collect().await.is_ok() {
        pool.put(
            key,
            Idle {
                conn,
                since: tokio::time::Instant::now(),
            },
        );
    }
}

/// One request of a scrape: on the kept connection of `key` if there is one and it works
/// (else, GET being idempotent, once more on a fresh one), or on a fresh connection. A
/// response head too long for the small read buffer is asked for once more, on a
/// connection that reads heads up to Go's limit; the pool remembers that `key` needs one.
#[allow(clippy::too_many_arguments)]
async fn exchange<C: Connector>(
    connector: &C,
    pool: Option<&Pool>,
    spec: &ScrapeSpec,
    uri: &Uri,
    url: &str,
    key: &str,
    https: bool,
    host: &str,
    port: u16,
    extra: &Extra<'_>,
) -> Result<(hyper::Response<hyper::body::Incoming>, Connection), ScrapeError> {
    let mut large = pool.is_some_and(|p| p.needs_large_heads(key));
    if let Some(Idle { mut conn, .. }) = pool.and_then(|p| p.take(key)) {
        // A closed connection fails `ready`; then (or when the request fails before any
        // response) the request goes on below on a fresh connection.
        if conn.sender.ready().await.is_ok() {
            let req = build_request(spec, uri, &conn, extra)?;
            match conn.sender.send_request(req).await {
                Ok(resp) => return Ok((resp, conn)),
                Err(e) if e.is_parse_too_large() => large = true,
                Err(_) => {}
            }
        }
    }
    let fresh = |large| fresh_exchange(connector, spec, uri, url, https, host, port, extra, large);
    let sent = match fresh(large).await? {
        Err(e) if e.is_parse_too_large() && !large => {
            if let Some(pool) = pool {
                pool.remember_large_heads(key);
            }
            large = true;
            fresh(large).await?
        }
        sent => sent,
    };
    sent.map_err(|e| ScrapeError::Request {
        url: url.to_string(),
        reason: if large && e.is_parse_too_large() {
            // Go's words, for the limit Prometheus has.
            format!(
                "net/http: server response headers exceeded {} bytes; aborted",
                client::HEAD_BYTES_MAX
            )
        } else {
            e.to_string()
        },
    })
}

/// Sends the request on a new connection (a [`Client::large_heads`] one with `large`).
/// `Err`: the connection could not be made; `Ok(Err)`: the request failed (hyper's
/// `is_parse_too_large` when the head did not fit).
#[allow(clippy::too_many_arguments)]
async fn fresh_exchange<C: Connector>(
    connector: &C,
    spec: &ScrapeSpec,
    uri: &Uri,
    url: &str,
    https: bool,
    host: &str,
    port: u16,
    extra: &Extra<'_>,
    large: bool,
) -> Result<Result<(hyper::Response<hyper::body::Incoming>, Connection), hyper::Error>, ScrapeError>
{
    // Configuration errors (unreadable CA or key files) are reported before any dialing.
    let mut client = Client::with_options(
        connector.clone(),
        https.then_some(&spec.tls_config),
        spec.http_client.enable_http2,
        &spec.http_client.proxy,
    )
    .map_err(invalid)?;
    if large {
        client = client.large_heads();
    }
    let mut conn: Connection = client.connect(host, port).await.map_err(|e| match e {
        ConnectError::Dial(e) => ScrapeError::Connect {
            url: url.to_string(),
            address: format!("{host}:{port}"),
            reason: dial_reason(&e),
        },
        ConnectError::Proxy(reason) => ScrapeError::Request {
            url: url.to_string(),
            reason,
        },
        ConnectError::ServerName(name_str) => {
            invalid(format!("invalid TLS server name {name_str:?}"))
        }
        ConnectError::Tls(e) => ScrapeError::Tls {
            url: url.to_string(),
            reason: e.to_string(),
        },
        ConnectError::Handshake(e) => ScrapeError::Request {
            url: url.to_string(),
            reason: e.to_string(),
        },
    })?;
    let req = build_request(spec, uri, &conn, extra)?;
    Ok(conn.sender.send_request(req).await.map(|resp| (resp, conn)))
}

/// Reads a response under the body limit; a connection read to the end goes back to `pool`
/// under `key`.
async fn read_response(
    resp: hyper::Response<hyper::body::Incoming>,
    conn: Connection,
    pool: Option<&Pool>,
    key: &str,
    spec: &ScrapeSpec,
) -> Result<(Vec<u8>, Option<String>), ScrapeError> {
    let status = resp.status();
    if let Some(e) =
        ScrapeError::from_status(status.as_u16(), status.canonical_reason().unwrap_or(""))
    {
        return Err(e);
    }
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let gzip = resp
        .headers()
        .get(CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let limit = spec.limits.body_size_limit_bytes;
    let mut sink = LimitedBuf {
        buf: Vec::new(),
        limit,
    };
    // An uncompressed body announced within the limit is read into one allocation.
    if !gzip {
        if let Some(len) = resp
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .filter(|&len| limit == 0 || len < limit)
        {
            sink.buf
                .reserve_exact(usize::try_from(len.min(64 << 20)).unwrap_or(0));
        }
    }
    // Every member of a multi-member gzip body is inflated, as Go's `gzip.Reader` does.
    let mut gunzip = gzip.then(|| flate2::write::MultiGzDecoder::new(Vec::new()));
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ScrapeError::ReadBody {
            reason: e.to_string(),
        })?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        match &mut gunzip {
            None => sink.push(&chunk)?,
            Some(decoder) => {
                // Inflate in small steps and move the output into the limited buffer after
                // each, so a gzip bomb is stopped within one step's expansion (deflate's
                // ratio is at most about 1000:1, so about 1 MiB past the limit at worst).
                for piece in chunk.chunks(GUNZIP_STEP_BYTES) {
                    decoder.write_all(piece).map_err(gunzip_error)?;
                    let out = std::mem::take(decoder.get_mut());
                    sink.push(&out)?;
                }
            }
        }
    }
    if let Some(decoder) = gunzip {
        let out = decoder.finish().map_err(gunzip_error)?;
        sink.push(&out)?;
    }
    // The whole body was read: the connection may serve the target's next scrape. (Any
    // early return above drops it, and with it a half-read response.)
    if let Some(pool) = pool {
        pool.put(
            key,
            Idle {
                conn,
                since: tokio::time::Instant::now(),
            },
        );
    }
    Ok((sink.buf, content_type))
}

/// The body as read so far, failing as soon as it reaches the limit (0: none).
struct LimitedBuf {
    buf: Vec<u8>,
    limit: u64,
}

impl LimitedBuf {
    fn push(&mut self, data: &[u8]) -> Result<(), ScrapeError> {
        // Prometheus reads at most `limit` bytes and fails when it got that many, so a body
        // of exactly `limit` bytes already fails; we do the same.
        let len = self.buf.len() + data.len();
        if self.limit > 0 && len as u64 >= self.limit {
            return Err(ScrapeError::BodySizeLimit);
        }
        if len > self.buf.capacity() && self.limit > 0 {
            // Grow by doubling, but never past the limit: the buffer of a body just under
            // the limit takes the limit, not twice it.
            let cap = usize::try_from(self.limit).unwrap_or(usize::MAX);
            let target = (self.buf.capacity() * 2).max(len).min(cap);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_header_is_formatted_like_prometheus() {
        assert_eq!(timeout_header_value(Duration::from_secs(10)), "10");
        assert_eq!(timeout_header_value(Duration::from_millis(500)), "0.5");
        assert_eq!(timeout_header_value(Duration::from_millis(1250)), "1.25");
    }

    #[test]
    fn limited_buf_fails_at_the_limit_like_prometheus() {
        let mut b = LimitedBuf {
            buf: Vec::new(),
            limit: 4,
        };
        b.push(b"abc").unwrap();
        let e = b.push(b"d").unwrap_err();
        assert_eq!(e, ScrapeError::BodySizeLimit);
        assert_eq!(e.to_string(), BODY_SIZE_LIMIT_ERROR);
        let mut unlimited = LimitedBuf {
            buf: Vec::new(),
            limit: 0,
        };
        unlimited.push(&[0; 10_000]).unwrap();
    }

    #[test]
    fn limited_buf_never_allocates_past_its_limit() {
        let mut b = LimitedBuf {
            buf: Vec::new(),
            limit: 100_000,
        };
        for _ in 0..99 {
            b.push(&[7; 1000]).unwrap();
        }
        assert_eq!(b.buf.len(), 99_000);
        assert!(b.buf.capacity() <= 100_000, "{}", b.buf.capacity());
    }
}
