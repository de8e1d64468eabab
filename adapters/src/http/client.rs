//! One HTTP client stack for every outgoing request, scrapes, OAuth 2.0 token requests and
//! Consul discovery alike: the [`Connector`] that opens the byte stream (tokio TCP in
//! production, turmoil TCP in the simulation), the way through a proxy (a `CONNECT` tunnel
//! for HTTPS, absolute-form requests for plain HTTP), the rustls configuration of a
//! `tls_config` (versions, inline or file PEM, ALPN offering `h2` when HTTP/2 is enabled),
//! hyper's HTTP/1.1 or HTTP/2 handshake on a task that dies with the connection, and
//! credentials as header values.
//!
//! What a request carries (its headers beyond authorization), how long it may take (the
//! caller's deadline covers dialing, TLS, the request and the body) and how its body is read
//! belong to the caller.

use std::future::Future;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use scrapepool_core::config::{Authorization, BasicAuth, ProxyConfig, TlsConfig, TlsVersion};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Opens the byte stream a request runs over.
pub trait Connector: Clone + Send + Sync + 'static {
    /// The connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Connects to `host:port` (the caller puts a deadline on it).
    fn connect(&self, host: &str, port: u16) -> impl Future<Output = io::Result<Self::Io>> + Send;
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

/// A connection's read buffer. hyper's adaptive buffer grows to the size of the bodies it
/// reads and keeps that while the connection idles between scrapes: about 64 KiB for each
/// node_exporter target. A fixed 16 KiB costs a few more reads per body and caps it.
/// A response head (status line and headers) longer than that fails to parse on such a
/// connection; the request is then sent again on a [`Client::large_heads`] connection.
const READ_BUF_BYTES: usize = 16 * 1024;

/// The longest response head a [`Client::large_heads`] connection reads: Go's default
/// `MaxResponseHeaderBytes` (Prometheus does not change it).
pub(crate) const HEAD_BYTES_MAX: usize = 10 << 20;

/// The most header lines a [`Client::large_heads`] connection reads. Go has no such limit;
/// hyper needs one (it reserves room for that many per response while parsing, 64 bytes
/// each: 4 MiB, for the time of the parse).
pub(crate) const HEAD_LINES_MAX: usize = 64 * 1024;

/// Largest answer of a proxy to `CONNECT` (its status line and headers).
const CONNECT_RESPONSE_BYTES_MAX: usize = 16 * 1024;

/// Connects to servers: plain, or over TLS with the settings of one `tls_config`; directly,
/// or through the proxy of one `ProxyConfig`.
#[derive(Clone)]
pub(crate) struct Client<C> {
    connector: C,
    tls: Option<Tls>,
    proxy: Option<Arc<Proxy>>,
    /// HTTP/1.1 connections read heads up to [`HEAD_BYTES_MAX`] and [`HEAD_LINES_MAX`]
    /// with a buffer that grows, instead of the fixed [`READ_BUF_BYTES`].
    large_heads: bool,
}

/// TLS settings ready to use.
#[derive(Clone)]
struct Tls {
    config: Arc<rustls::ClientConfig>,
    /// The name the server's certificate must carry (`server_name`, else the host).
    server_name: Option<String>,
    /// Where trusted certificates come from, for errors: `ca_file <path>` or the public roots.
    trust: String,
}

/// Which requests go through which proxy, as Go's `http.Transport.Proxy` of Prometheus's
/// `ProxyConfig` decides: `proxy_url` alone takes every request; with `no_proxy` or from
/// the environment, Go's `httpproxy` rules apply, under which `localhost` and loopback
/// addresses are always reached directly.
struct Proxy {
    matcher: hyper_util::client::proxy::matcher::Matcher,
    /// `localhost` and loopback addresses are never proxied (Go's `httpproxy`).
    direct_loopback: bool,
    /// `proxy_connect_header`, sent with each `CONNECT`.
    connect_headers: HeaderMap,
}

impl Proxy {
    fn new(config: &ProxyConfig) -> Result<Option<Proxy>, String> {
        use hyper_util::client::proxy::matcher::Matcher;
        let matcher = if config.proxy_from_environment {
            Matcher::from_env()
        } else if let Some(url) = &config.proxy_url {
            let mut builder = Matcher::builder().http(url.clone()).https(url.clone());
            if let Some(no) = &config.no_proxy {
                builder = builder.no(no.clone());
            }
            builder.build()
        } else {
            return Ok(None);
        };
        let mut connect_headers = HeaderMap::new();
        for (name, values) in &config.proxy_connect_header {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("proxy_connect_header {name:?} is not a header name"))?;
            for value in values {
                let value = header(
                    value.expose().to_string(),
                    &format!("proxy_connect_header {name}"),
                )?;
                connect_headers.append(name.clone(), value);
            }
        }
        Ok(Some(Proxy {
            matcher,
            direct_loopback: config.proxy_from_environment || config.no_proxy.is_some(),
            connect_headers,
        }))
    }

    /// The proxy for a request to `scheme://host:port`, if it goes through one.
    fn route(&self, https: bool, host: &str, port: u16) -> Option<Route> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if self.direct_loopback
            && (bare.eq_ignore_ascii_case("localhost")
                || bare
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback()))
        {
            return None;
        }
        let scheme = if https { "https" } else { "http" };
        let uri: Uri = format!("{scheme}://{host}:{port}/").parse().ok()?;
        let intercept = self.matcher.intercept(&uri)?;
        let proxy = intercept.uri();
        let proxy_host = proxy.host()?.to_string();
        let proxy_port = proxy.port_u16().unwrap_or(80);
        Some(Route {
            host: proxy_host,
            port: proxy_port,
            authorization: intercept.basic_auth().cloned(),
        })
    }
}

/// The proxy one connection goes through.
struct Route {
    host: String,
    port: u16,
    /// `Proxy-Authorization` from the proxy URL's user information.
    authorization: Option<HeaderValue>,
}

/// Sends the requests of one connection: HTTP/1.1, or HTTP/2 when the TLS handshake chose it.
pub(crate) enum Sender<B> {
    /// HTTP/1.1.
    H1(hyper::client::conn::http1::SendRequest<B>),
    /// HTTP/2 (negotiated by ALPN).
    H2(hyper::client::conn::http2::SendRequest<B>),
}

impl<B> Sender<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Waits until the connection can take a request; fails when it closed.
    pub(crate) async fn ready(&mut self) -> Result<(), hyper::Error> {
        match self {
            Sender::H1(s) => s.ready().await,
            Sender::H2(s) => s.ready().await,
        }
    }

    /// Sends `request`: over HTTP/1.1 as given (origin-form or absolute-form target, `Host`
    /// header); over HTTP/2 with an absolute URI, which hyper turns into `:scheme` and
    /// `:authority`.
    pub(crate) async fn send_request(
        &mut self,
        request: Request<B>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        match self {
            Sender::H1(s) => s.send_request(request).await,
            Sender::H2(s) => s.send_request(request).await,
        }
    }
}

/// A connection ready for requests; its task ends when this is dropped.
pub(crate) struct Connection<B = Empty<Bytes>> {
    /// Sends requests over the connection.
    pub(crate) sender: Sender<B>,
    /// The task driving the connection.
    pub(crate) task: AbortOnDrop,
    /// For plain HTTP through a proxy: requests carry the absolute URI as their target, and
    /// this `Proxy-Authorization` (from the proxy URL) if any. `None`: direct, or tunneled.
    pub(crate) via_proxy: Option<Option<HeaderValue>>,
}

impl<B> Connection<B> {
    /// The request target for `uri` and whether a `Host` header goes with it: the absolute
    /// URI over HTTP/2 (hyper makes `:authority` of it) and for plain HTTP through a proxy
    /// (with `Host`), the origin form (path and query, with `Host`) otherwise.
    pub(crate) fn target(&self, uri: &Uri) -> (String, bool) {
        match (&self.sender, &self.via_proxy) {
            (Sender::H2(_), _) => (uri.to_string(), false),
            (Sender::H1(_), Some(_)) => (uri.to_string(), true),
            (Sender::H1(_), None) => (
                uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
                true,
            ),
        }
    }
}

/// Why [`Client::connect`] failed; each caller words it its own way.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The connector could not open the stream.
    Dial(io::Error),
    /// The proxy could not be reached or refused the tunnel; Go's words (`proxyconnect
    /// tcp: ...`, or the proxy's status text).
    Proxy(String),
    /// The TLS server name is not a valid DNS name or IP address.
    ServerName(String),
    /// The TLS handshake failed.
    Tls(io::Error),
    /// The HTTP handshake failed.
    Handshake(hyper::Error),
}

impl<C: Connector> Client<C> {
    /// A client over `connector`; with `tls`, every connection is TLS with those settings,
    /// offering HTTP/1.1 only. Fails when the TLS settings are unusable (unreadable CA or
    /// key files, ...), before anything is dialed.
    pub(crate) fn new(connector: C, tls: Option<&TlsConfig>) -> Result<Client<C>, String> {
        Client::with_options(connector, tls, false, &ProxyConfig::default())
    }

    /// A client over `connector`, with `tls` as [`Client::new`]; `http2` offers `h2` before
    /// `http/1.1` in the TLS handshake; `proxy` says which connections go through a proxy.
    pub(crate) fn with_options(
        connector: C,
        tls: Option<&TlsConfig>,
        http2: bool,
        proxy: &ProxyConfig,
    ) -> Result<Client<C>, String> {
        let tls = match tls {
            None => None,
            Some(tls) => {
                let mut config = tls_client_config(tls)?;
                if http2 {
                    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                }
                Some(Tls {
                    config: Arc::new(config),
                    server_name: tls.server_name.clone(),
                    trust: match (&tls.ca_file, &tls.ca) {
                        (Some(path), _) => format!("ca_file {path}"),
                        (None, Some(_)) => "the inline ca".into(),
                        (None, None) => "the public root certificates".into(),
                    },
                })
            }
        };
        let proxy = Proxy::new(proxy)?.map(Arc::new);
        Ok(Client {
            connector,
            tls,
            proxy,
            large_heads: false,
        })
    }

    /// The same client, its HTTP/1.1 connections reading response heads up to Go's limit
    /// ([`HEAD_BYTES_MAX`]) rather than [`READ_BUF_BYTES`]: for a server whose head did not
    /// fit. Their read buffer grows with what they read and stays grown while kept alive,
    /// which is why it is not the default.
    pub(crate) fn large_heads(mut self) -> Self {
        self.large_heads = true;
        self
    }

    /// Whether connections are TLS.
    pub(crate) fn is_https(&self) -> bool {
        self.tls.is_some()
    }

    /// Dials `host:port` (a bracketed IPv6 literal as the URI gives it), or the proxy that
    /// takes it (opening a `CONNECT` tunnel for TLS), runs TLS when the client has TLS
    /// settings, and hands the stream to hyper. No deadline of its own.
    pub(crate) async fn connect<B>(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Connection<B>, ConnectError>
    where
        B: Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let route = self
            .proxy
            .as_ref()
            .and_then(|p| p.route(self.tls.is_some(), host, port));
        let Some(route) = route else {
            let io = self
                .connector
                .connect(host, port)
                .await
                .map_err(ConnectError::Dial)?;
            return self.over(io, host, None).await;
        };
        let mut io = self
            .connector
            .connect(&route.host, route.port)
            .await
            .map_err(|e| {
                ConnectError::Proxy(format!(
                    "proxyconnect tcp: dial tcp {}:{}: {}",
                    route.host,
                    route.port,
                    crate::http::dial_reason(&e)
                ))
            })?;
        if self.tls.is_none() {
            return self.over(io, host, Some(route.authorization)).await;
        }
        let headers = self
            .proxy
            .as_ref()
            .map(|p| &p.connect_headers)
            .cloned()
            .unwrap_or_default();
        tunnel(&mut io, host, port, &headers, route.authorization.as_ref()).await?;
        self.over(io, host, None).await
    }

    /// TLS when the client has TLS settings, then hyper's handshake: HTTP/2 when ALPN chose
    /// `h2`, else HTTP/1.1.
    async fn over<IO, B>(
        &self,
        io: IO,
        host: &str,
        via_proxy: Option<Option<HeaderValue>>,
    ) -> Result<Connection<B>, ConnectError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        B: Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match &self.tls {
            None => handshake(io, false, self.large_heads, via_proxy).await,
            Some(tls) => {
                let name = tls.server_name.clone().unwrap_or_else(|| {
                    host.trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string()
                });
                let name = ServerName::try_from(name.clone())
                    .map_err(|_| ConnectError::ServerName(name))?;
                let stream = tokio_rustls::TlsConnector::from(tls.config.clone())
                    .connect(name, io)
                    .await
                    .map_err(|e| ConnectError::Tls(plain_tls_error(e, &tls.trust)))?;
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                handshake(stream, h2, self.large_heads, via_proxy).await
            }
        }
    }
}

/// Asks the proxy on `io` for a tunnel to `host:port` (`CONNECT`, as Go's transport sends
/// it: `Host`, Go's User-Agent unless the headers give one, the proxy's credentials, the
/// `proxy_connect_header`s) and reads its answer; anything but 200 fails with the status
/// text, as Go reports it.
async fn tunnel<IO>(
    io: &mut IO,
    host: &str,
    port: u16,
    headers: &HeaderMap,
    authorization: Option<&HeaderValue>,
) -> Result<(), ConnectError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let failed = |e: io::Error| ConnectError::Proxy(format!("proxyconnect tcp: {e}"));
    let mut request =
        format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n").into_bytes();
    if !headers.contains_key(hyper::header::USER_AGENT) {
        request.extend_from_slice(b"User-Agent: Go-http-client/1.1\r\n");
    }
    let auth = authorization
        .filter(|_| !headers.contains_key(hyper::header::PROXY_AUTHORIZATION))
        .map(|v| (&hyper::header::PROXY_AUTHORIZATION, v));
    for (name, value) in headers.iter().chain(auth) {
        request.extend_from_slice(name.as_str().as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    io.write_all(&request).await.map_err(failed)?;
    io.flush().await.map_err(failed)?;
    // Read the answer's head byte by byte: what follows it belongs to the tunnel.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= CONNECT_RESPONSE_BYTES_MAX {
            return Err(ConnectError::Proxy(
                "proxyconnect tcp: the proxy's answer to CONNECT is too long".into(),
            ));
        }
        let byte = io.read_u8().await.map_err(failed)?;
        head.push(byte);
    }
    let head = String::from_utf8_lossy(&head);
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code, text) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
    if !version.is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(ConnectError::Proxy(format!(
            "proxyconnect tcp: malformed HTTP response {status_line:?}"
        )));
    }
    match code {
        Some("200") => Ok(()),
        Some(code) => Err(ConnectError::Proxy(if text.is_empty() {
            code.to_string()
        } else {
            text.to_string()
        })),
        None => Err(ConnectError::Proxy(format!(
            "proxyconnect tcp: malformed HTTP response {status_line:?}"
        ))),
    }
}

/// Runs hyper's HTTP/1.1 (or, with `h2`, HTTP/2) handshake over `io` and spawns the
/// connection's task; with `large_heads`, HTTP/1.1 reads heads up to Go's limit.
async fn handshake<IO, B>(
    io: IO,
    h2: bool,
    large_heads: bool,
    via_proxy: Option<Option<HeaderValue>>,
) -> Result<Connection<B>, ConnectError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if h2 {
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(io))
            .await
            .map_err(ConnectError::Handshake)?;
        let task = AbortOnDrop(tokio::spawn(async move {
            let _ = conn.await;
        }));
        return Ok(Connection {
            sender: Sender::H2(sender),
            task,
            via_proxy,
        });
    }
    let mut builder = hyper::client::conn::http1::Builder::new();
    if large_heads {
        // The buffer must hold the whole head, and then some of the body it reads along.
        builder
            .max_buf_size(HEAD_BYTES_MAX + READ_BUF_BYTES)
            .max_header_size(HEAD_BYTES_MAX)
            .max_headers(HEAD_LINES_MAX);
    } else {
        builder.read_buf_exact_size(Some(READ_BUF_BYTES));
    }
    let (sender, conn) = builder
        .handshake(TokioIo::new(io))
        .await
        .map_err(ConnectError::Handshake)?;
    let task = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    Ok(Connection {
        sender: Sender::H1(sender),
        task,
        via_proxy,
    })
}

/// The `Authorization` header of `basic_auth` or `authorization` (the latter wins when both
/// are given), reading a password or credentials file when the secret is not inline.
pub(crate) fn authorization(
    basic: Option<&BasicAuth>,
    auth: Option<&Authorization>,
) -> Result<Option<HeaderValue>, String> {
    let mut value = None;
    if let Some(basic) = basic {
        let password = match (&basic.password, &basic.password_file) {
            (Some(p), _) => p.expose().to_string(),
            (None, Some(file)) => read_secret_file(file, "basic auth password")?,
            (None, None) => String::new(),
        };
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{password}", basic.username));
        // An exporter echoing the header shows the token, which carries the password.
        if !password.is_empty() {
            remember_secret(&token);
        }
        value = Some(header(format!("Basic {token}"), "basic auth")?);
    }
    if let Some(auth) = auth {
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
        value = Some(header(format!("{kind} {credentials}"), "authorization")?);
    }
    Ok(value)
}

/// Aborts the spawned connection task when the exchange ends (done, failed or timed out) or the kept connection is dropped.
pub(crate) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Largest secret file read (a password, a token or a credentials blob).
const SECRET_FILE_BYTES_MAX: u64 = 64 << 10;

/// How many secrets read from files (and Basic tokens) are remembered for the response
/// filter; past it the oldest is forgotten (rotated files keep adding new ones).
const REMEMBERED_SECRETS_MAX: usize = 256;

/// Secrets this process sent that its configuration does not hold inline: the contents of
/// `password_file` / `credentials_file` (and so `bearer_token_file`) as last read, and
/// Basic tokens, oldest first. The web endpoints filter these as they filter inline secrets.
static REMEMBERED_SECRETS: std::sync::Mutex<std::collections::VecDeque<String>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());

pub(crate) fn remember_secret(secret: &str) {
    let mut remembered = REMEMBERED_SECRETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if remembered.iter().any(|s| s == secret) {
        return;
    }
    if remembered.len() >= REMEMBERED_SECRETS_MAX {
        remembered.pop_front();
    }
    remembered.push_back(secret.to_string());
}

/// Every secret read from a file or sent as a Basic token so far (see
/// [`REMEMBERED_SECRETS`]), for the response filter.
pub(crate) fn remembered_secrets() -> Vec<String> {
    REMEMBERED_SECRETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .cloned()
        .collect()
}

/// Reads a secret file as Prometheus does: whole, surrounding whitespace trimmed; only a
/// regular file, through [`SECRET_FILE_BYTES_MAX`]. What it read is remembered for the
/// response filter.
pub(crate) fn read_secret_file(path: &str, what: &str) -> Result<String, String> {
    let secret = crate::discovery::file::read_capped(
        std::path::Path::new(path),
        SECRET_FILE_BYTES_MAX,
        true,
    )
    .map(|s| s.trim().to_string())
    .map_err(|e| format!("unable to read {what} file {path}: {e}"))?;
    if !secret.is_empty() {
        remember_secret(&secret);
    }
    Ok(secret)
}

/// A header value carrying a credential, marked sensitive; the error names `what`, never
/// the value.
pub(crate) fn header(value: String, what: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(&value)
        .map_err(|_| format!("{what} is not a valid HTTP header value"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// The TLS versions rustls offers for `min_version`..=`max_version`: TLS 1.2 and 1.3, the
/// only ones rustls speaks (a `min_version` below TLS12 is TLS12).
fn tls_versions(tls: &TlsConfig) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let min = tls.min_version.unwrap_or(TlsVersion::Tls12);
    let max = tls.max_version.unwrap_or(TlsVersion::Tls13);
    let versions: Vec<_> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| min <= *v && *v <= max)
    .map(|(_, v)| v)
    .collect();
    if versions.is_empty() {
        return Err(format!(
            "tls_config: no TLS version from {} to {}: scrapepool speaks only TLS12 and TLS13",
            min.as_str(),
            max.as_str()
        ));
    }
    Ok(versions)
}

/// The certificates of PEM text `pem` (from `what`), at least one.
fn pem_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("unable to parse {what}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("unable to use {what}: no certificate in it"));
    }
    Ok(certs)
}

/// Builds the rustls client configuration of `tls` (ring provider; TLS 1.2 and 1.3 within
/// `min_version`/`max_version`; CA, certificate and key inline or from files, the files read
/// anew at each call).
pub fn tls_client_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&tls_versions(tls)?)
        .map_err(|e| format!("tls: {e}"))?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert { provider }))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let mut ca_certs = Vec::new();
        let ca = match (&tls.ca, &tls.ca_file) {
            (Some(pem), _) => Some((
                pem.as_bytes().to_vec(),
                "specified CA cert inline".to_string(),
            )),
            (None, Some(ca_file)) => {
                let pem = std::fs::read(ca_file)
                    .map_err(|e| format!("unable to read CA file {ca_file}: {e}"))?;
                Some((pem, format!("specified CA cert {ca_file}")))
            }
            (None, None) => None,
        };
        match ca {
            Some((pem, what)) => {
                for cert in pem_certs(&pem, &what)? {
                    roots
                        .add(cert.clone())
                        .map_err(|e| format!("unable to use {what}: {e}"))?;
                    ca_certs.push(cert);
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let webpki =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("tls: {e}"))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CaFileVerifier { webpki, ca_certs }))
    };
    let cert = match (&tls.cert, &tls.cert_file) {
        (Some(pem), _) => Some((
            pem.as_bytes().to_vec(),
            "client certificate inline".to_string(),
        )),
        (None, Some(file)) => Some((
            std::fs::read(file)
                .map_err(|e| format!("unable to read client certificate {file}: {e}"))?,
            format!("client certificate {file}"),
        )),
        (None, None) => None,
    };
    let key = match (&tls.key, &tls.key_file) {
        (Some(pem), _) => Some(
            PrivateKeyDer::from_pem_slice(pem.expose().as_bytes())
                .map_err(|e| format!("unable to read client key inline: {e}"))?,
        ),
        (None, Some(file)) => Some(
            PrivateKeyDer::from_pem_file(file)
                .map_err(|e| format!("unable to read client key {file}: {e}"))?,
        ),
        (None, None) => None,
    };
    let mut config = match (cert, key) {
        (Some((pem, what)), Some(key)) => builder
            .with_client_auth_cert(pem_certs(&pem, &what)?, key)
            .map_err(|e| format!("unable to use {what}: {e}"))?,
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("tls_config: a client certificate and key must be given together".into()),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Verifies server certificates as Go's `crypto/tls` (and so Prometheus) does with a
/// `ca_file`: a chain to one of its certificates, checked by webpki; or else a server
/// certificate that *is* one of them, byte for byte.
///
/// The second case is the self-signed exporter certificate given as its own `ca_file`. Go's
/// `x509.Certificate.Verify` accepts a leaf found in the root pool as a chain of one; webpki
/// refuses it (`CaUsedAsEndEntity` when the certificate says it is a CA, as `openssl req
/// -x509` makes it). Such a certificate is trusted because the operator listed that very
/// certificate, so its issuer and constraints do not matter; what Go still checks is checked
/// here too: the server name (by webpki's name matching) and the validity period (read from
/// the certificate by [`validity`], against the handshake's time). The handshake signatures
/// are webpki's, so the server must hold the certificate's key.
#[derive(Debug)]
struct CaFileVerifier {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    /// The certificates of `ca_file` (empty with the public roots).
    ca_certs: Vec<CertificateDer<'static>>,
}

impl rustls::client::danger::ServerCertVerifier for CaFileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let chained = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let listed = || {
            self.ca_certs
                .iter()
                .any(|ca| ca.as_ref() == end_entity.as_ref())
        };
        match chained {
            Err(_) if listed() => {
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                let (not_before, not_after) =
                    validity(end_entity.as_ref()).ok_or(rustls::CertificateError::BadEncoding)?;
                let time = now.as_secs();
                if time < not_before {
                    return Err(rustls::CertificateError::NotValidYetContext {
                        time: now,
                        not_before: rustls::pki_types::UnixTime::since_unix_epoch(
                            std::time::Duration::from_secs(not_before),
                        ),
                    }
                    .into());
                }
                if time > not_after {
                    return Err(rustls::CertificateError::ExpiredContext {
                        time: now,
                        not_after: rustls::pki_types::UnixTime::since_unix_epoch(
                            std::time::Duration::from_secs(not_after),
                        ),
                    }
                    .into());
                }
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The validity period of a DER certificate, `(notBefore, notAfter)` in seconds since the
/// Unix epoch; `None` when the DER is not a certificate's shape. Reads only the path to
/// `tbsCertificate.validity` (RFC 5280 4.1): webpki checks the period but does not expose it.
fn validity(cert: &[u8]) -> Option<(u64, u64)> {
    /// One DER element: (tag, contents, what follows).
    fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | b as usize);
            (len, &rest[n..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }
    /// A UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
    fn time(tag: u8, text: &[u8]) -> Option<u64> {
        let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
        let (year, rest) = match (tag, text.len()) {
            (0x17, 12) => {
                let yy: i64 = text[..2].parse().ok()?;
                (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
            }
            (0x18, 14) => (text[..4].parse().ok()?, &text[4..]),
            _ => return None,
        };
        if !rest.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let field = |i: usize| rest[i..i + 2].parse::<i64>().ok();
        let (month, day) = (field(0)?, field(2)?);
        let seconds = field(4)? * 3600 + field(6)? * 60 + field(8)?;
        // Days from the civil date (Howard Hinnant's algorithm).
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (month + 9) % 12;
        let doy = (153 * mp + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        u64::try_from(days * 86_400 + seconds).ok()
    }
    let (0x30, certificate, _) = element(cert)? else {
        return None;
    };
    let (0x30, tbs, _) = element(certificate)? else {
        return None;
    };
    let mut rest = tbs;
    let (tag, _, after) = element(rest)?;
    if tag == 0xa0 {
        rest = after; // version
    }
    for _ in 0..3 {
        rest = element(rest)?.2; // serialNumber, signature, issuer
    }
    let (0x30, validity, _) = element(rest)? else {
        return None;
    };
    let (tag, not_before, rest) = element(validity)?;
    let not_before = time(tag, not_before)?;
    let (tag, not_after, _) = element(rest)?;
    Some((not_before, time(tag, not_after)?))
}

/// A TLS handshake failure in Go's words (`tls: ` is the caller's prefix): which name the
/// certificate lacks, when it expires or starts, or that its issuer is not among the
/// certificates trusted (`trust`, named). Other failures keep rustls's wording.
fn plain_tls_error(e: io::Error, trust: &str) -> io::Error {
    use rustls::CertificateError as C;
    let Some(rustls::Error::InvalidCertificate(cert)) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return e;
    };
    let rfc3339 = |t: &rustls::pki_types::UnixTime| {
        let mut out = String::new();
        scrapepool_core::format::write_rfc3339_ms(&mut out, t.as_secs() as i64 * 1000);
        out.replace(".000Z", "Z")
    };
    let why = match cert {
        C::UnknownIssuer => format!(
            "x509: certificate signed by unknown authority (not one of {trust} nor signed by one)"
        ),
        C::NotValidForNameContext {
            expected,
            presented,
        } => {
            let expected = match expected {
                ServerName::DnsName(name) => name.as_ref().to_string(),
                ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
                other => format!("{other:?}"),
            };
            if presented.is_empty() {
                format!(
                    "x509: certificate is not valid for any names, but wanted to match {expected}"
                )
            } else {
                // webpki gives each name as `DnsName("a")`, `IpAddress(1.2.3.4)`, ...
                let names: Vec<&str> = presented
                    .iter()
                    .map(|name| {
                        name.split_once('(')
                            .and_then(|(_, inner)| inner.strip_suffix(')'))
                            .map_or(name.as_str(), |inner| inner.trim_matches('"'))
                    })
                    .collect();
                format!(
                    "x509: certificate is valid for {}, not {expected}",
                    names.join(", ")
                )
            }
        }
        C::ExpiredContext { time, not_after } => format!(
            "x509: certificate has expired or is not yet valid: current time {} is after {}",
            rfc3339(time),
            rfc3339(not_after)
        ),
        C::NotValidYetContext { time, not_before } => format!(
            "x509: certificate has expired or is not yet valid: current time {} is before {}",
            rfc3339(time),
            rfc3339(not_before)
        ),
        _ => return e,
    };
    io::Error::new(e.kind(), format!("failed to verify certificate: {why}"))
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
    use scrapepool_core::config::Secret;

    use super::*;

    fn basic(password: &str) -> BasicAuth {
        BasicAuth {
            username: "user".into(),
            password: Some(Secret(password.into())),
            password_file: None,
        }
    }

    fn bearer(credentials: &str) -> Authorization {
        Authorization {
            kind: String::new(),
            credentials: Some(Secret(credentials.into())),
            credentials_file: None,
        }
    }

    #[test]
    fn authorization_is_basic_or_bearer_and_sensitive() {
        let v = authorization(Some(&basic("pass")), None).unwrap().unwrap();
        assert_eq!(v, "Basic dXNlcjpwYXNz");
        assert!(v.is_sensitive());
        let v = authorization(None, Some(&bearer("tok"))).unwrap().unwrap();
        assert_eq!(v, "Bearer tok");
        let v = authorization(Some(&basic("pass")), Some(&bearer("tok")));
        assert_eq!(v.unwrap().unwrap(), "Bearer tok");
        assert!(authorization(None, None).unwrap().is_none());
    }

    #[test]
    fn a_credential_that_cannot_be_a_header_is_named_not_quoted() {
        let e = authorization(None, Some(&bearer("bad\nsecret"))).unwrap_err();
        assert_eq!(e, "authorization is not a valid HTTP header value");
        let e = header("s3cr3t\n".into(), "the token").unwrap_err();
        assert_eq!(e, "the token is not a valid HTTP header value");
    }

    #[test]
    fn secrets_read_from_files_and_basic_tokens_are_remembered_for_the_filter() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "  remembered-pw-31 \n").unwrap();
        let basic = BasicAuth {
            username: "u".into(),
            password: None,
            password_file: Some(file.display().to_string()),
        };
        let v = authorization(Some(&basic), None).unwrap().unwrap();
        let token = v
            .to_str()
            .unwrap()
            .strip_prefix("Basic ")
            .unwrap()
            .to_string();
        let remembered = remembered_secrets();
        assert!(remembered.contains(&"remembered-pw-31".to_string()));
        assert!(remembered.contains(&token));
        // A FIFO as the file is refused at once, not waited on.
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let auth = Authorization {
            kind: "Bearer".into(),
            credentials: None,
            credentials_file: Some(fifo.display().to_string()),
        };
        assert_eq!(
            authorization(None, Some(&auth)).unwrap_err(),
            format!(
                "unable to read authorization credentials file {}: a named pipe, not a regular file; not read",
                fifo.display()
            )
        );
    }

    #[test]
    fn an_unreadable_credentials_file_is_named() {
        let auth = Authorization {
            kind: "Bearer".into(),
            credentials: None,
            credentials_file: Some("/nonexistent/token".into()),
        };
        let e = authorization(None, Some(&auth)).unwrap_err();
        assert!(
            e.starts_with("unable to read authorization credentials file /nonexistent/token: "),
            "{e}"
        );
    }
}
