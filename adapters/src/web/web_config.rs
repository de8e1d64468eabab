//! `--web.config.file`: TLS (with client certificates), basic auth, response headers and a
//! rate limit for the web server, in the format of Prometheus's exporter-toolkit — the file
//! Prometheus and its exporters read, so one file can serve all of them.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # or `cert:` inline PEM; relative paths are read from the file's folder
//!   key_file: server.key           # or `key:`
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: clients.crt    # or `client_ca:`
//!   client_allowed_sans: [scraper.example]
//!   min_version: TLS12
//! http_server_config:
//!   http2: true
//!   headers: {X-Frame-Options: deny}
//! rate_limit: {burst: 10, interval: 1s}
//! basic_auth_users:
//!   alice: $2y$10$...              # bcrypt hashes (`htpasswd -nBC 10 alice`)
//! ```
//!
//! Where scrapepool differs from exporter-toolkit (ARCHITECTURE.md, "Web surface"): TLS 1.0
//! and 1.1 are never offered (rustls has neither; a `min_version` below TLS 1.2 is raised with
//! a warning); `cipher_suites` and `curve_preferences` name only what rustls implements (the
//! AEAD suites with forward secrecy; X25519, P-256, P-384), anything else is an error naming
//! it; the verifying client-auth modes need a client CA (Go would fall back to the system
//! roots). The file is read again when it changes, for each new connection; a change that does
//! not load is logged and the last good version kept (exporter-toolkit answers 500 instead).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};
use serde::Deserialize;

/// The file's shape, as exporter-toolkit reads it (`yaml.UnmarshalStrict`: unknown keys are
/// errors).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    #[serde(default)]
    tls_server_config: Option<TlsShape>,
    #[serde(default)]
    http_server_config: Option<HttpShape>,
    #[serde(default)]
    rate_limit: Option<RateLimitShape>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsShape {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    #[serde(default)]
    cipher_suites: Vec<String>,
    #[serde(default)]
    curve_preferences: Vec<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    /// Accepted and ignored, as exporter-toolkit does (Go's TLS has ignored it since 1.17).
    #[allow(dead_code)]
    prefer_server_cipher_suites: Option<bool>,
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpShape {
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitShape {
    #[serde(default)]
    burst: u32,
    interval: Option<String>,
}

/// A web config file that does not load: the file and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, in exporter-toolkit's words where it has some.
    pub message: String,
}

impl fmt::Display for WebConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "web config file {}: {}",
            self.path.display(),
            self.message
        )
    }
}

impl std::error::Error for WebConfigError {}

/// Headers a web config may set, and the values each may take (any when empty):
/// exporter-toolkit's list.
const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// A token bucket: `burst` requests at once, one more every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed at once.
    pub burst: u32,
    /// Time that earns one more request.
    pub interval: Duration,
}

/// A loaded web config: what the server applies to each connection and request.
#[derive(Debug)]
pub struct WebConfig {
    /// TLS, when `tls_server_config` asks for it.
    pub tls: Option<Arc<ServerConfig>>,
    /// Basic-auth users and their bcrypt hashes; empty: no basic auth.
    pub users: BTreeMap<String, String>,
    /// Headers added to every response.
    pub headers: Vec<(String, String)>,
    /// The rate limit of all requests together, when set.
    pub rate_limit: Option<RateLimit>,
    /// Whether a TLS client may choose HTTP/2 (by ALPN).
    pub http2: bool,
    /// Whether a client must show a certificate before it may send a request.
    pub requires_client_cert: bool,
    /// What the load noticed but accepted (a TLS version raised to 1.2).
    pub warnings: Vec<String>,
}

impl WebConfig {
    /// Reads and checks the file at `path`: its TLS files, certificates and keys, and every
    /// bcrypt hash.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let err = |message: String| WebConfigError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Self::parse(&text, path.parent().unwrap_or(Path::new("."))).map_err(err)
    }

    /// Parses a web config whose relative paths are relative to `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<Self, String> {
        let shape: FileShape = if text.trim().is_empty() {
            FileShape::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| e.to_string())?
        };
        let mut warnings = Vec::new();
        let http = shape.http_server_config.unwrap_or_default();
        let http2 = http.http2.unwrap_or(true);
        let mut headers = Vec::new();
        for (name, value) in &http.headers {
            let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| n == name) else {
                return Err(format!("HTTP header {name:?} can not be configured"));
            };
            if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
                return Err(format!(
                    "invalid value for {name}. Expected one of: {allowed:?}, but got: {value:?}"
                ));
            }
            headers.push((name.clone(), value.clone()));
        }
        let rate_limit = match shape.rate_limit {
            Some(RateLimitShape {
                burst,
                interval: Some(interval),
            }) => {
                let interval = parse_go_duration(&interval)
                    .map_err(|e| format!("rate_limit.interval: {e}"))?;
                (!interval.is_zero()).then_some(RateLimit { burst, interval })
            }
            _ => None,
        };
        let users = shape.basic_auth_users.unwrap_or_default();
        for (user, hash) in &users {
            hash.parse::<bcrypt::HashParts>().map_err(|e| {
                format!("basic_auth_users: the hash of user {user:?} is not a bcrypt hash: {e}")
            })?;
        }
        let (tls, requires_client_cert) = match shape.tls_server_config {
            Some(t) if tls_enabled(&t) => {
                let (config, required) = server_config(&t, dir, http2, &mut warnings)?;
                (Some(Arc::new(config)), required)
            }
            _ => (None, false),
        };
        Ok(Self {
            tls,
            users,
            headers,
            rate_limit,
            http2,
            requires_client_cert,
            warnings,
        })
    }

    /// Whether a request must prove who sent it (a basic-auth user or a verified client
    /// certificate).
    pub fn authenticates(&self) -> bool {
        !self.users.is_empty() || self.requires_client_cert
    }
}

/// exporter-toolkit's `IsEnabled`: any TLS field set turns TLS on (and then the certificate
/// and key must be there).
fn tls_enabled(t: &TlsShape) -> bool {
    [
        &t.cert,
        &t.key,
        &t.cert_file,
        &t.key_file,
        &t.client_ca,
        &t.client_ca_file,
        &t.client_auth_type,
    ]
    .iter()
    .any(|f| f.as_deref().is_some_and(|v| !v.is_empty()))
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|v| !v.is_empty())
}

fn join(dir: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// Reads `file` (relative to `dir`) or takes the inline text: PEM either way.
fn pem(
    dir: &Path,
    file: Option<&str>,
    inline: Option<&str>,
    what: &str,
) -> Result<Vec<u8>, String> {
    match (file, inline) {
        (Some(file), _) => {
            let path = join(dir, file);
            std::fs::read(&path)
                .map_err(|e| format!("failed to read {what}_file ({}): {e}", path.display()))
        }
        (None, Some(text)) => Ok(text.as_bytes().to_vec()),
        (None, None) => Err(format!("missing one of {what} or {what}_file")),
    }
}

fn tls_version(name: &str) -> Result<u16, String> {
    match name {
        "TLS10" => Ok(0x0301),
        "TLS11" => Ok(0x0302),
        "TLS12" => Ok(0x0303),
        "TLS13" => Ok(0x0304),
        other => Err(format!("unknown TLS version: {other}")),
    }
}

/// The TLS 1.2 suites rustls implements, by their Go names (Go names the ChaCha suites
/// with and without `_SHA256`).
fn cipher_suite(name: &str) -> Option<rustls::SupportedCipherSuite> {
    use rustls::crypto::ring::cipher_suite as cs;
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    })
}

fn curve(name: &str) -> Option<&'static dyn rustls::crypto::SupportedKxGroup> {
    use rustls::crypto::ring::kx_group;
    Some(match name {
        "X25519" => kx_group::X25519,
        "CurveP256" => kx_group::SECP256R1,
        "CurveP384" => kx_group::SECP384R1,
        _ => return None,
    })
}

/// exporter-toolkit's `client_auth_type` values (with its old alias `RequireClientCert`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    None,
    Request,
    RequireAny,
    VerifyIfGiven,
    RequireAndVerify,
}

fn client_auth(name: Option<&str>) -> Result<ClientAuth, String> {
    Ok(match name.unwrap_or("") {
        "" | "NoClientCert" => ClientAuth::None,
        "RequestClientCert" => ClientAuth::Request,
        "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAny,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerify,
        other => return Err(format!("invalid ClientAuth: {other}")),
    })
}

/// Builds the rustls server config; also says whether a client certificate is required.
fn server_config(
    t: &TlsShape,
    dir: &Path,
    http2: bool,
    warnings: &mut Vec<String>,
) -> Result<(ServerConfig, bool), String> {
    let cert_pem = pem(dir, non_empty(&t.cert_file), non_empty(&t.cert), "cert")?;
    let key_pem = pem(dir, non_empty(&t.key_file), non_empty(&t.key), "key")?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("failed to load X509KeyPair: {e}"))?;
    if certs.is_empty() {
        return Err("failed to load X509KeyPair: no certificate in the certificate PEM".into());
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("failed to load X509KeyPair: {e}"))?;

    let min = tls_version(non_empty(&t.min_version).unwrap_or("TLS12"))?;
    let max = tls_version(non_empty(&t.max_version).unwrap_or("TLS13"))?;
    if max < 0x0303 {
        return Err(format!(
            "max_version {} asks for a TLS version below 1.2, which scrapepool does not offer",
            t.max_version.as_deref().unwrap_or_default()
        ));
    }
    if min < 0x0303 {
        warnings.push(format!(
            "min_version {}: TLS 1.0 and 1.1 are not offered, the server accepts TLS 1.2 and up",
            t.min_version.as_deref().unwrap_or_default()
        ));
    }
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if min <= 0x0303 && max >= 0x0303 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= 0x0304 {
        versions.push(&rustls::version::TLS13);
    }
    if versions.is_empty() {
        return Err("min_version is above max_version".into());
    }

    let mut provider = rustls::crypto::ring::default_provider();
    if !t.cipher_suites.is_empty() {
        let mut suites: Vec<_> = provider
            .cipher_suites
            .iter()
            .copied()
            .filter(|s| s.tls13().is_some())
            .collect();
        for name in &t.cipher_suites {
            let suite = cipher_suite(name).ok_or_else(|| {
                format!("cipher_suites: {name} is not offered by scrapepool (rustls implements only the AEAD suites with forward secrecy)")
            })?;
            suites.push(suite);
        }
        provider.cipher_suites = suites;
    }
    if !t.curve_preferences.is_empty() {
        provider.kx_groups = t
            .curve_preferences
            .iter()
            .map(|name| {
                curve(name).ok_or_else(|| {
                    format!("curve_preferences: {name} is not offered by scrapepool (X25519, CurveP256 and CurveP384 are)")
                })
            })
            .collect::<Result<_, _>>()?;
    }
    let provider = Arc::new(provider);

    let auth = client_auth(non_empty(&t.client_auth_type))?;
    let ca_pem = match (non_empty(&t.client_ca_file), non_empty(&t.client_ca)) {
        (None, None) => None,
        (file, inline) => Some(pem(dir, file, inline, "client_ca")?),
    };
    if ca_pem.is_some() && auth == ClientAuth::None {
        return Err("client CA's have been configured without a Client Auth Policy".into());
    }
    let roots = match &ca_pem {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("client CA: {e}"))?;
                roots.add(cert).map_err(|e| format!("client CA: {e}"))?;
            }
            Some(Arc::new(roots))
        }
        None => None,
    };
    let verifying = matches!(
        auth,
        ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify
    );
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match auth {
        ClientAuth::None => None,
        ClientAuth::Request | ClientAuth::RequireAny => Some(Arc::new(AnyClientCert {
            mandatory: auth == ClientAuth::RequireAny,
            provider: provider.clone(),
        })),
        ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify => {
            let roots = roots.clone().ok_or_else(|| {
                format!(
                    "client_auth_type {} needs client_ca_file or client_ca",
                    t.client_auth_type.as_deref().unwrap_or_default()
                )
            })?;
            let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let builder = if auth == ClientAuth::VerifyIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            Some(builder.build().map_err(|e| format!("client CA: {e}"))?)
        }
    };
    let verifier = match (&t.client_allowed_sans, verifier) {
        (Some(sans), Some(inner)) => Some(Arc::new(AllowedSans {
            inner,
            sans: sans.clone(),
        }) as Arc<dyn ClientCertVerifier>),
        (Some(_), None) => {
            return Err(
                "client_allowed_sans needs a client_auth_type that asks for certificates".into(),
            )
        }
        (None, v) => v,
    };
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("failed to load X509KeyPair: {e}"))?;
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let required = matches!(auth, ClientAuth::RequireAny | ClientAuth::RequireAndVerify)
        && (verifying || t.client_allowed_sans.is_some());
    Ok((config, required))
}

/// `RequestClientCert` and `RequireAnyClientCert`: asks for a certificate, checks that the
/// client holds its key (the handshake signature), and trusts nothing about it.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `client_allowed_sans`: the client certificate must name one of these (DNS name, email,
/// IP address or URI), after the inner verifier accepted it.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    sans: Vec<String>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let names = subject_alt_names(end_entity.as_ref())
            .ok_or_else(|| rustls::Error::General("error parsing client certificate".into()))?;
        if names.iter().any(|n| self.sans.contains(n)) {
            Ok(verified)
        } else {
            Err(rustls::Error::General(format!(
                "could not find allowed SANs in client cert, found: {:?}",
                self.sans
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The DNS names, emails, IP addresses and URIs of a DER certificate, written as Go writes
/// them (`net.IP.String()`, `url.URL.String()`).
fn subject_alt_names(der: &[u8]) -> Option<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => names.push(d.to_string()),
                GeneralName::RFC822Name(e) => names.push(e.to_string()),
                GeneralName::URI(u) => names.push(u.to_string()),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => names
                        .push(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).ok()?).to_string()),
                    16 => names.push(
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).ok()?).to_string(),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Some(names)
}

/// A Go `time.Duration` string (`1s`, `1.5m`, `1h30m`, `250ms`), as YAML gives it to
/// exporter-toolkit.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("time: invalid duration {text:?}");
    let mut rest = text.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() || rest.starts_with('-') {
        return Err(bad());
    }
    rest = rest.strip_prefix('+').unwrap_or(rest);
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// The web config of a running server: the file, and its last version that loaded. Read
/// again for each new connection when the file's modification time or size changed.
#[derive(Debug)]
pub struct WebConfigSource {
    path: PathBuf,
    state: Mutex<(Option<Stamp>, Arc<WebConfig>)>,
}

/// What tells a changed file: its modification time and size.
type Stamp = (SystemTime, u64);

impl WebConfigSource {
    /// Loads the file once; an error here stops the daemon before it listens.
    pub fn open(path: &Path) -> Result<Self, WebConfigError> {
        let stamp = stamp(path);
        let config = WebConfig::load(path)?;
        for w in &config.warnings {
            tracing::warn!(file = %path.display(), "web config: {w}");
        }
        Ok(Self {
            path: path.to_path_buf(),
            state: Mutex::new((stamp, Arc::new(config))),
        })
    }

    /// The config to use for a new connection: the file again if it changed and loads,
    /// else the last good one.
    pub fn current(&self) -> Arc<WebConfig> {
        let now = stamp(&self.path);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now.is_some() && now != state.0 {
            state.0 = now;
            match WebConfig::load(&self.path) {
                Ok(config) => {
                    for w in &config.warnings {
                        tracing::warn!(file = %self.path.display(), "web config: {w}");
                    }
                    tracing::info!(file = %self.path.display(), "web config reloaded");
                    state.1 = Arc::new(config);
                }
                Err(e) => tracing::error!("{e}; keeping the last version that loaded"),
            }
        }
        state.1.clone()
    }
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WebConfig, String> {
        WebConfig::parse(text, Path::new("/nonexistent"))
    }

    #[test]
    fn an_empty_file_is_plain_http_without_auth() {
        let c = parse("").unwrap();
        assert!(c.tls.is_none());
        assert!(!c.authenticates());
        assert!(c.http2);
        assert_eq!(c.rate_limit, None);
    }

    #[test]
    fn unknown_keys_are_refused_as_exporter_toolkit_refuses_them() {
        let e = parse("tls_server_config:\n  certfile: x\n").unwrap_err();
        assert!(e.contains("certfile"), "{e}");
        let e = parse("basic_auth: {}\n").unwrap_err();
        assert!(e.contains("basic_auth"), "{e}");
    }

    #[test]
    fn a_user_whose_hash_is_not_bcrypt_is_refused_naming_the_user() {
        let e = parse("basic_auth_users:\n  alice: plaintext\n").unwrap_err();
        assert!(e.contains("\"alice\"") && e.contains("bcrypt"), "{e}");
        let hash = bcrypt::hash("secret", 4).unwrap();
        let ok = parse(&format!("basic_auth_users:\n  alice: {hash}\n")).unwrap();
        assert!(ok.authenticates());
    }

    #[test]
    fn headers_are_checked_against_exporter_toolkits_list() {
        let e = parse("http_server_config:\n  headers:\n    Server: x\n").unwrap_err();
        assert_eq!(e, "HTTP header \"Server\" can not be configured");
        let e = parse("http_server_config:\n  headers:\n    X-Frame-Options: allow\n").unwrap_err();
        assert!(e.starts_with("invalid value for X-Frame-Options."), "{e}");
        let c =
            parse("http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n")
                .unwrap();
        assert_eq!(c.headers, vec![("X-Frame-Options".into(), "deny".into())]);
        assert!(!c.http2);
    }

    #[test]
    fn tls_without_a_certificate_or_key_is_refused() {
        let e = parse("tls_server_config:\n  key_file: k.pem\n").unwrap_err();
        assert_eq!(e, "missing one of cert or cert_file");
        let e = parse("tls_server_config:\n  client_auth_type: Bogus\n  cert: x\n  key: y\n")
            .unwrap_err();
        assert!(e.starts_with("failed to load X509KeyPair"), "{e}");
        let e = parse("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n").unwrap_err();
        assert!(
            e.starts_with("failed to read cert_file (/nonexistent/c.pem)"),
            "{e}"
        );
    }

    #[test]
    fn rate_limit_intervals_are_go_durations() {
        let c = parse("rate_limit:\n  burst: 3\n  interval: 1.5s\n").unwrap();
        assert_eq!(
            c.rate_limit,
            Some(RateLimit {
                burst: 3,
                interval: Duration::from_millis(1500)
            })
        );
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_go_duration("1d").is_err());
        assert!(parse("rate_limit:\n  interval: soon\n").is_err());
    }
}
