//! The HTTP fetcher: Prometheus's scrape request (headers, auth, TLS, gzip, timeout, body
//! limit) on hyper 1, over a pluggable [`Connector`] — tokio TCP in production, turmoil TCP in
//! the simulation — so both run the same request code. Connections (connector, TLS, hyper's
//! handshake) and the `Authorization` header come from `client`, which Consul discovery
//! uses too; the scrape's own headers, the keep-alive pool and the body (gzip, size limit)
//! are this module's.
//!
//! Plain-HTTP connections are kept alive between a target's scrapes (as Prometheus's Go
//! client does): at one scrape a second per target, connecting anew cost scrapepool about a
//! tenth of its CPU (bench/peers.sh, perf). A kept connection is used only by the next scrape
//! of the same URL; when it turns out closed or fails before the response, the scrape retries
//! once on a fresh connection (GET is idempotent), so one target's broken connection never
//! fails the next scrape. HTTPS scrapes still connect per scrape (their TLS settings may
//! change between scrapes); the simulation's fetcher (`with_connector`) does not pool.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{
    ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HOST, USER_AGENT,
};
use hyper::{Request, Uri};
use scrapepool_core::scrape::{FetchOutcome, ScrapeError, ScrapeSpec};

use crate::ports::Fetcher;

pub(crate) mod client;

pub use client::{tls_client_config, Connector, TcpConnector};
use client::{AbortOnDrop, Client, ConnectError, Connection};

/// The Accept header of Prometheus 2.42's scraper (scrape.go `scrapeAcceptHeader`).
pub const ACCEPT_HEADER: &str =
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
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

/// An idle connection kept for the next scrape of the same URL.
struct Idle {
    sender: SendRequest<Empty<Bytes>>,
    conn: AbortOnDrop,
    since: tokio::time::Instant,
}

/// The kept-alive connections, by scrape URL.
#[derive(Default)]
struct Pool {
    idle: Mutex<HashMap<String, Idle>>,
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
    /// Kept-alive plain-HTTP connections; `None`: one connection per scrape.
    pool: Option<Arc<Pool>>,
}

impl HttpFetcher<TcpConnector> {
    /// A fetcher over tokio TCP, keeping plain-HTTP connections alive between scrapes.
    pub fn new() -> Self {
        HttpFetcher {
            connector: TcpConnector,
            pool: Some(Arc::default()),
        }
    }
}

impl<C: Connector> HttpFetcher<C> {
    /// A fetcher over `connector`, one connection per scrape.
    pub fn with_connector(connector: C) -> Self {
        HttpFetcher {
            connector,
            pool: None,
        }
    }

    /// Keeps plain-HTTP connections alive between scrapes of the same URL.
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
            fetch_inner(&self.connector, self.pool.as_deref(), spec),
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
fn dial_reason(e: &io::Error) -> String {
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

/// Builds the GET request of one scrape.
fn build_request(spec: &ScrapeSpec, uri: &Uri) -> Result<Request<Empty<Bytes>>, ScrapeError> {
    let authority = uri
        .authority()
        .ok_or_else(|| invalid(format!("scrape URL {:?} has no host", spec.url)))?;
    let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut req = Request::get(target)
        .header(HOST, authority.as_str())
        .header(ACCEPT, ACCEPT_HEADER)
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
        .map_err(|e| invalid(format!("cannot build request for {:?}: {e}", spec.url)))?;
    if let Some(value) =
        client::authorization(spec.basic_auth.as_ref(), spec.authorization.as_ref())
            .map_err(invalid)?
    {
        req.headers_mut().insert(AUTHORIZATION, value);
    }
    Ok(req)
}

async fn fetch_inner<C: Connector>(
    connector: &C,
    pool: Option<&Pool>,
    spec: &ScrapeSpec,
) -> Result<(Vec<u8>, Option<String>), ScrapeError> {
    let url = &spec.url;
    let uri: Uri = url
        .parse()
        .map_err(|e| invalid(format!("invalid scrape URL {url:?}: {e}")))?;
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
    let req = build_request(spec, &uri)?;
    let pool = if https { None } else { pool };
    if let Some(idle) = pool.and_then(|p| p.take(url)) {
        let Idle {
            mut sender, conn, ..
        } = idle;
        // A closed connection fails `ready`; then (or when the request fails before any
        // response) the scrape goes on below on a fresh connection.
        if sender.ready().await.is_ok() {
            if let Ok(resp) = sender.send_request(req).await {
                return read_response(resp, sender, conn, pool, spec).await;
            }
        }
        return fetch_fresh(
            connector,
            pool,
            spec,
            https,
            &host,
            port,
            build_request(spec, &uri)?,
        )
        .await;
    }
    fetch_fresh(connector, pool, spec, https, &host, port, req).await
}

#[allow(clippy::too_many_arguments)]
async fn fetch_fresh<C: Connector>(
    connector: &C,
    pool: Option<&Pool>,
    spec: &ScrapeSpec,
    https: bool,
    host: &str,
    port: u16,
    req: Request<Empty<Bytes>>,
) -> Result<(Vec<u8>, Option<String>), ScrapeError> {
    let url = &spec.url;
    // Configuration errors (unreadable CA or key files) are reported before any dialing.
    let client =
        Client::new(connector.clone(), https.then_some(&spec.tls_config)).map_err(invalid)?;
    let Connection {
        mut sender,
        task: conn,
    } = client.connect(host, port).await.map_err(|e| match e {
        ConnectError::Dial(e) => ScrapeError::Connect {
            url: url.clone(),
            address: format!("{host}:{port}"),
            reason: dial_reason(&e),
        },
        ConnectError::ServerName(name_str) => {
            invalid(format!("invalid TLS server name {name_str:?}"))
        }
        ConnectError::Tls(e) => ScrapeError::Tls {
            url: url.clone(),
            reason: e.to_string(),
        },
        ConnectError::Handshake(e) => ScrapeError::Request {
            url: url.clone(),
            reason: e.to_string(),
        },
    })?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| ScrapeError::Request {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    read_response(resp, sender, conn, pool, spec).await
}

/// Reads a response under the body limit; a connection read to the end goes back to `pool`.
async fn read_response(
    resp: hyper::Response<hyper::body::Incoming>,
    sender: SendRequest<Empty<Bytes>>,
    conn: AbortOnDrop,
    pool: Option<&Pool>,
    spec: &ScrapeSpec,
) -> Result<(Vec<u8>, Option<String>), ScrapeError> {
    let url = &spec.url;
    let status = resp.status();
    if !status.is_success() {
        return Err(ScrapeError::HttpStatus {
            code: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("").to_string(),
        });
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
            url,
            Idle {
                sender,
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
