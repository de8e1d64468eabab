//! One HTTP/1.1 client stack for every outgoing request, scrapes and Consul discovery alike:
//! the [`Connector`] that opens the byte stream (tokio TCP in production, turmoil TCP in the
//! simulation), the rustls configuration of a `tls_config`, TLS with its server name, hyper's
//! handshake on a task that dies with the connection, and credentials as header values.
//!
//! What a request carries (its headers beyond authorization), how long it may take (the
//! caller's deadline covers dialing, TLS, the request and the body) and how its body is read
//! belong to the caller.

use std::future::Future;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http1::SendRequest;
use hyper::header::HeaderValue;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use scrapepool_core::config::{Authorization, BasicAuth, TlsConfig};
use tokio::io::{AsyncRead, AsyncWrite};

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
const READ_BUF_BYTES: usize = 16 * 1024;

/// Connects to one server: plain, or over TLS with the settings of one `tls_config`.
#[derive(Clone)]
pub(crate) struct Client<C> {
    connector: C,
    tls: Option<Tls>,
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

/// A connection ready for requests; its task ends when this is dropped.
pub(crate) struct Connection {
    /// Sends requests over the connection.
    pub(crate) sender: SendRequest<Empty<Bytes>>,
    /// The task driving the connection.
    pub(crate) task: AbortOnDrop,
}

/// Why [`Client::connect`] failed; each caller words it its own way.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The connector could not open the stream.
    Dial(io::Error),
    /// The TLS server name is not a valid DNS name or IP address.
    ServerName(String),
    /// The TLS handshake failed.
    Tls(io::Error),
    /// The HTTP/1.1 handshake failed.
    Handshake(hyper::Error),
}

impl<C: Connector> Client<C> {
    /// A client over `connector`; with `tls`, every connection is TLS with those settings.
    /// Fails when the TLS settings are unusable (unreadable CA or key files, ...), before
    /// anything is dialed.
    pub(crate) fn new(connector: C, tls: Option<&TlsConfig>) -> Result<Client<C>, String> {
        let tls = match tls {
            None => None,
            Some(tls) => Some(Tls {
                config: Arc::new(tls_client_config(tls)?),
                server_name: tls.server_name.clone(),
                trust: match &tls.ca_file {
                    Some(path) => format!("ca_file {path}"),
                    None => "the public root certificates".into(),
                },
            }),
        };
        Ok(Client { connector, tls })
    }

    /// Whether connections are TLS.
    pub(crate) fn is_https(&self) -> bool {
        self.tls.is_some()
    }

    /// Dials `host:port` (a bracketed IPv6 literal as the URI gives it), runs TLS when the
    /// client has TLS settings, and hands the stream to hyper. No deadline of its own.
    pub(crate) async fn connect(&self, host: &str, port: u16) -> Result<Connection, ConnectError> {
        let io = self
            .connector
            .connect(host, port)
            .await
            .map_err(ConnectError::Dial)?;
        match &self.tls {
            None => handshake(io).await,
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
                handshake(stream).await
            }
        }
    }
}

/// Runs hyper's HTTP/1.1 handshake over `io` and spawns the connection's task.
async fn handshake<IO>(io: IO) -> Result<Connection, ConnectError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .read_buf_exact_size(Some(READ_BUF_BYTES))
        .handshake(TokioIo::new(io))
        .await
        .map_err(ConnectError::Handshake)?;
    let task = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    Ok(Connection { sender, task })
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

fn remember_secret(secret: &str) {
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
fn read_secret_file(path: &str, what: &str) -> Result<String, String> {
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
        let mut ca_certs = Vec::new();
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
                        .add(cert.clone())
                        .map_err(|e| format!("unable to use specified CA cert {ca_file}: {e}"))?;
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
