//! The HTTP fetcher: Prometheus's scrape request (headers, auth, TLS, gzip, timeout, body
//! limit) on hyper 1, over a pluggable [`Connector`] — tokio TCP in production, turmoil TCP in
//! the simulation — so both run the same request code.
//!
//! Plain-HTTP connections are kept alive between a target's scrapes (as Prometheus's Go
//! client does): at one scrape a second per target, connecting anew cost scrapepool about a
//! tenth of its CPU (bench/peers.sh, perf). A kept connection is used only by the next scrape
//! of the same URL; when it turns out closed or fails before the response, the scrape retries
//! once on a fresh connection (GET is idempotent), so one target's broken connection never
//! fails the next scrape. HTTPS scrapes still connect per scrape (their TLS settings may
//! change between scrapes); the simulation's fetcher (`with_connector`) does not pool.

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{
    HeaderValue, ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HOST,
    USER_AGENT,
};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use scrapepool_core::config::TlsConfig;
use scrapepool_core::scrape::{FetchOutcome, ScrapeError, ScrapeSpec};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::ports::Fetcher;

/// The Accept header of Prometheus 2.42's scraper (scrape.go `scrapeAcceptHeader`).
pub const ACCEPT_HEADER: &str =
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// The header that tells the exporter how long we wait (seconds, as Prometheus formats it).
pub const SCRAPE_TIMEOUT_HEADER: &str = "X-Prometheus-Scrape-Timeout-Seconds";
/// Our User-Agent.
pub const USER_AGENT_VALUE: &str = concat!("scrapepool/", env!("CARGO_PKG_VERSION"));
/// Prometheus's wording of a body over `body_size_limit` (scrape.go `errBodySizeLimit`).
pub const BODY_SIZE_LIMIT_ERROR: &str = "body size limit exceeded";

/// A connection's read buffer. hyper's adaptive buffer grows to the size of the bodies it
/// reads and keeps that while the connection idles between scrapes: about 64 KiB for each
/// node_exporter target. A fixed 16 KiB costs a few more reads per body and caps it.
const READ_BUF_BYTES: usize = 16 * 1024;

/// Compressed bytes inflated at a time before the body limit is checked again.
const GUNZIP_STEP_BYTES: usize = 1024;

/// Opens the byte stream a request runs over.
pub trait Connector: Clone + Send + Sync + 'static {
    /// The connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Connects to `host:port` (the caller puts a deadline on it).
    fn connect(&self, host: &str, port: u16) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

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

/// Plain tokio TCP.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    type Io = tokio::net::TcpStream;

    async fn connect(&self, host: &str, port: u16) -> io::Result<tokio::net::TcpStream> {
        // A bracketed IPv6 literal comes from the URI as `[::1]`.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let stream = tokio::net::TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
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

/// Reads a secret file as Prometheus does: whole, surrounding whitespace trimmed.
fn read_secret_file(path: &str, what: &str) -> Result<String, ScrapeError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| invalid(format!("unable to read {what} file {path}: {e}")))
}

fn header(value: String, what: &str) -> Result<HeaderValue, ScrapeError> {
    HeaderValue::from_str(&value)
        .map_err(|_| invalid(format!("{what} is not a valid HTTP header value")))
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
    if let Some(basic) = &spec.basic_auth {
        let password = match (&basic.password, &basic.password_file) {
            (Some(p), _) => p.expose().to_string(),
            (None, Some(file)) => read_secret_file(file, "basic auth password")?,
            (None, None) => String::new(),
        };
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{password}", basic.username));
        req.headers_mut().insert(
            AUTHORIZATION,
            header(format!("Basic {token}"), "basic auth")?,
        );
    }
    if let Some(auth) = &spec.authorization {
        let credentials = match (&auth.credentials, &auth.credentials_file) {
            (Some(c), _) => c.expose().to_string(),
            (None, Some(file)) => read_secret_file(file, "authorization credentials")?,
            (None, None) => String::new(),
        };
        let kind = if auth.kind.is_empty() {
            "Bearer"
        } else {
            &auth.kind
        };
        req.headers_mut().insert(
            AUTHORIZATION,
            header(format!("{kind} {credentials}"), "authorization")?,
        );
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
    let tls_config = if https {
        Some(tls_client_config(&spec.tls_config).map_err(invalid)?)
    } else {
        None
    };
    let io = connector
        .connect(host, port)
        .await
        .map_err(|e| ScrapeError::Connect {
            url: url.clone(),
            address: format!("{host}:{port}"),
            reason: dial_reason(&e),
        })?;
    if let Some(config) = tls_config {
        let name_str = spec.tls_config.server_name.clone().unwrap_or_else(|| {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        });
        let name = ServerName::try_from(name_str.clone())
            .map_err(|_| invalid(format!("invalid TLS server name {name_str:?}")))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, io)
            .await
            .map_err(|e| ScrapeError::Tls {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        exchange(tls, req, None, spec).await
    } else {
        exchange(io, req, pool, spec).await
    }
}

/// Aborts the spawned connection task when the scrape ends (done, failed or timed out).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends `req` over `io` and reads the response body under the body limit.
async fn exchange<IO>(
    io: IO,
    req: Request<Empty<Bytes>>,
    pool: Option<&Pool>,
    spec: &ScrapeSpec,
) -> Result<(Vec<u8>, Option<String>), ScrapeError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let request_error = |e: hyper::Error| ScrapeError::Request {
        url: spec.url.clone(),
        reason: e.to_string(),
    };
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .read_buf_exact_size(Some(READ_BUF_BYTES))
        .handshake(TokioIo::new(io))
        .await
        .map_err(request_error)?;
    let conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let resp = sender.send_request(req).await.map_err(request_error)?;
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
    let mut gunzip = gzip.then(|| flate2::write::GzDecoder::new(Vec::new()));
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
        if self.limit > 0 && (self.buf.len() + data.len()) as u64 >= self.limit {
            return Err(ScrapeError::BodySizeLimit);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }
}

/// Builds the rustls client configuration of `tls` (ring provider, TLS 1.2 and 1.3).
pub fn tls_client_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert { provider }))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &tls.ca_file {
            Some(ca_file) => {
                let certs = CertificateDer::pem_file_iter(ca_file)
                    .map_err(|e| format!("unable to read CA file {ca_file}: {e}"))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("unable to parse CA file {ca_file}: {e}"))?;
                if certs.is_empty() {
                    return Err(format!(
                        "unable to use specified CA cert {ca_file}: no certificate in it"
                    ));
                }
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|e| format!("unable to use specified CA cert {ca_file}: {e}"))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let certs = CertificateDer::pem_file_iter(cert_file)
                .map_err(|e| format!("unable to read client certificate {cert_file}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("unable to parse client certificate {cert_file}: {e}"))?;
            let key = PrivateKeyDer::from_pem_file(key_file)
                .map_err(|e| format!("unable to read client key {key_file}: {e}"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("unable to use client certificate {cert_file}: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("tls_config: cert_file and key_file must be given together".into()),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// `insecure_skip_verify`: accepts any server certificate, but still checks the handshake
/// signatures (so the connection is at least to whoever holds that certificate's key).
#[derive(Debug)]
struct AcceptAnyServerCert {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
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
}
