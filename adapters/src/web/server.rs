//! The web server's own loop: a cap on connections, one timeout for slow and idle clients,
//! TLS and basic auth from the web config (ARCHITECTURE.md, "Web surface").
//!
//! - At most [`ServeOptions::max_connections`] connections are open at once; the next one
//!   waits in the kernel's backlog until one closes, so the web server never takes the file
//!   descriptors the scrapes need.
//! - [`ServeOptions::read_timeout`] bounds a TLS handshake, the reading of each request's
//!   headers, and any silence on a connection (an idle keep-alive or HTTP/2 connection is
//!   closed after it): a client that sends nothing, or sends slowly, loses its slot within that
//!   time, so such clients cannot keep `/-/healthy` from answering.
//! - With a web config: TLS by its `tls_server_config`, then for every request the rate limit,
//!   basic auth (bcrypt, one check at a time, results cached) and the configured headers.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::web_config::{WebConfig, WebConfigSource};

/// How the web server treats its connections.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Most connections open at once (`--web.max-connections`).
    pub max_connections: usize,
    /// Longest TLS handshake, header read, or silence on a connection (`--web.read-timeout`).
    pub read_timeout: Duration,
    /// TLS, basic auth, headers and rate limit (`--web.config.file`); none: plain HTTP, open.
    pub web_config: Option<Arc<WebConfigSource>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_connections: 512,
            read_timeout: Duration::from_secs(30),
            web_config: None,
        }
    }
}

/// A warning for a server that anyone who can reach it may read: listening beyond loopback
/// without basic auth or required client certificates. `None` when there is nothing to say.
pub fn exposure_warning(addr: SocketAddr, config: Option<&WebConfig>) -> Option<String> {
    if addr.ip().is_loopback() || config.is_some_and(WebConfig::authenticates) {
        return None;
    }
    Some(format!(
        "the web server listens on {addr}, beyond loopback, without authentication: anyone who \
         reaches it can read every target, label and page (give --web.config.file with \
         basic_auth_users or client certificates, or listen on 127.0.0.1)"
    ))
}

/// Serves `router` on `listener` with `options` until `shutdown` completes, then waits for
/// the requests in flight.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let auth = Arc::new(AuthCache::default());
    let limiter = Arc::new(Mutex::new(Bucket::default()));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, _peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("web server: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let config = options.web_config.as_ref().map(|s| s.current());
        let service = RequestService {
            router: router.clone(),
            config: config.clone(),
            auth: auth.clone(),
            limiter: limiter.clone(),
        };
        let read_timeout = options.read_timeout;
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let io = Idle::new(stream, read_timeout);
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(read_timeout);
            builder.http2().timer(TokioTimer::new());
            let service = hyper::service::service_fn(move |req| service.clone().call(req));
            match config.as_ref().and_then(|c| c.tls.clone()) {
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone());
                    let tls_stream =
                        match tokio::time::timeout(read_timeout, acceptor.accept(io)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!("web server: TLS handshake failed: {e}");
                                return;
                            }
                            Err(_) => return,
                        };
                    let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    let builder = if h2 {
                        builder.http2_only()
                    } else {
                        builder.http1_only()
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls_stream), service);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
                None => {
                    let builder = builder.http1_only();
                    let conn = builder.serve_connection(TokioIo::new(io), service);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One request through the web config's checks, then the router.
#[derive(Clone)]
struct RequestService {
    router: Router,
    config: Option<Arc<WebConfig>>,
    auth: Arc<AuthCache>,
    limiter: Arc<Mutex<Bucket>>,
}

impl RequestService {
    async fn call(
        self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<Response, std::convert::Infallible> {
        let req = req.map(Body::new);
        let Some(config) = self.config else {
            return Ok(route(self.router, req).await);
        };
        if let Some(limit) = config.rate_limit {
            let allowed = self
                .limiter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .allow(limit.burst, limit.interval, Instant::now());
            if !allowed {
                return Ok(with_headers(
                    (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n").into_response(),
                    &config,
                ));
            }
        }
        if !config.users.is_empty() && !self.auth.check(&config, basic_credentials(&req)).await {
            let mut response = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
            return Ok(with_headers(response, &config));
        }
        Ok(with_headers(route(self.router, req).await, &config))
    }
}

async fn route(router: Router, req: Request) -> Response {
    use tower::ServiceExt as _;
    match router.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

fn with_headers(mut response: Response, config: &WebConfig) -> Response {
    for (name, value) in &config.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            response.headers_mut().insert(n, v);
        }
    }
    response
}

/// Most remembered basic-auth answers; the cache starts over when full.
const AUTH_CACHE_MAX: usize = 1024;

/// Basic-auth checks: bcrypt is slow on purpose, so answers are remembered (by user, hash
/// and password) and only one check runs at a time, off the async threads.
#[derive(Default)]
struct AuthCache {
    answers: Mutex<HashMap<(String, String, String), bool>>,
    one_at_a_time: tokio::sync::Mutex<()>,
}

/// exporter-toolkit's hash of "fakepassword": checked for unknown users, so that timing does
/// not tell which users exist.
const FAKE_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

impl AuthCache {
    async fn check(&self, config: &WebConfig, credentials: Option<(String, String)>) -> bool {
        let Some((user, password)) = credentials else {
            return false;
        };
        let (known, hash) = match config.users.get(&user) {
            Some(hash) => (true, hash.clone()),
            None => (false, FAKE_HASH.to_string()),
        };
        let key = (user, hash.clone(), password.clone());
        if let Some(&ok) = self
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return ok && known;
        }
        let _turn = self.one_at_a_time.lock().await;
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
                && known;
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if answers.len() >= AUTH_CACHE_MAX {
            answers.clear();
        }
        answers.insert(key, ok);
        ok
    }
}

/// The user and password of an `Authorization: Basic` header.
fn basic_credentials(req: &Request) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// A token bucket (Go's `rate.Limiter`): `burst` tokens at most, one more every `interval`.
#[derive(Debug, Default)]
struct Bucket {
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    fn allow(&mut self, burst: u32, interval: Duration, now: Instant) -> bool {
        let burst = f64::from(burst);
        self.tokens = match self.last {
            None => burst,
            Some(last) => {
                let earned =
                    now.saturating_duration_since(last).as_secs_f64() / interval.as_secs_f64();
                (self.tokens + earned).min(burst)
            }
        };
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A connection that fails once it has been silent (nothing read, nothing written) for
/// `timeout`.
struct Idle<IO> {
    inner: IO,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<IO> Idle<IO> {
    fn new(inner: IO, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    fn touch(&mut self) {
        let next = tokio::time::Instant::now() + self.timeout;
        self.deadline.as_mut().reset(next);
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Idle<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client was silent for the read timeout",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Idle<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            if n > 0 {
                self.touch();
            }
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_one_per_interval() {
        let mut b = Bucket::default();
        let t0 = Instant::now();
        let i = Duration::from_secs(1);
        assert!(b.allow(2, i, t0));
        assert!(b.allow(2, i, t0));
        assert!(!b.allow(2, i, t0));
        assert!(!b.allow(2, i, t0 + Duration::from_millis(500)));
        assert!(b.allow(2, i, t0 + Duration::from_millis(1000)));
        assert!(!b.allow(2, i, t0 + Duration::from_millis(1100)));
    }

    #[test]
    fn only_loopback_without_auth_goes_unwarned() {
        let open = WebConfig::parse("", std::path::Path::new(".")).unwrap();
        assert_eq!(
            exposure_warning("127.0.0.1:9091".parse().unwrap(), None),
            None
        );
        assert_eq!(
            exposure_warning("[::1]:9091".parse().unwrap(), Some(&open)),
            None
        );
        let w = exposure_warning("0.0.0.0:9091".parse().unwrap(), Some(&open)).unwrap();
        assert!(
            w.contains("0.0.0.0:9091") && w.contains("without authentication"),
            "{w}"
        );
        let hash = bcrypt::hash("pw", 4).unwrap();
        let auth = WebConfig::parse(
            &format!("basic_auth_users:\n  u: {hash}\n"),
            std::path::Path::new("."),
        )
        .unwrap();
        assert_eq!(
            exposure_warning("0.0.0.0:9091".parse().unwrap(), Some(&auth)),
            None
        );
    }

    #[test]
    fn basic_credentials_are_read_from_the_header() {
        let req = Request::builder()
            .header("Authorization", "Basic dTpwOnc=")
            .body(Body::empty())
            .unwrap();
        assert_eq!(basic_credentials(&req), Some(("u".into(), "p:w".into())));
        let req = Request::builder()
            .header("Authorization", "Bearer x")
            .body(Body::empty())
            .unwrap();
        assert_eq!(basic_credentials(&req), None);
    }
}
