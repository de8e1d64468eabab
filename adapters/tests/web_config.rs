//! The web server's own loop with `--web.config.file` (exporter-toolkit's format): TLS and
//! HTTP/2, client certificates, basic auth, headers, the rate limit, reloading; and the
//! connection cap and read timeout against idle and slow clients. Read with hyper and
//! rustls clients, with curl, and in headless Chromium.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use scrapepool_adapters::web::{serve_router, ServeOptions, WebConfigSource};

const PAGE: &str = "<html><body><p id=\"x\">scrapepool page body</p></body></html>";

fn router() -> Router {
    Router::new()
        .route("/-/healthy", get(|| async { "scrapepool is Healthy.\n" }))
        .route(
            "/page",
            get(|| async { axum::response::Html(PAGE.to_string()) }),
        )
}

/// A CA, a server certificate for 127.0.0.1 and two client certificates (one with the SAN
/// `scraper.test`, one with `other.test`), as PEM files in one folder.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertificateDer<'static>,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "web test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&server_key, &ca, &ca_key)
            .unwrap();
        write("server.pem", server.pem());
        write("server-key.pem", server_key.serialize_pem());
        for (name, san) in [("client", "scraper.test"), ("other", "other.test")] {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec![san.to_string()])
                .unwrap()
                .signed_by(&key, &ca, &ca_key)
                .unwrap();
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}-key.pem"), key.serialize_pem());
        }
        write("ca.pem", ca.pem());
        Pki {
            dir,
            ca: ca.der().clone(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `web.yml` (relative file names resolve in this folder) and returns its path.
    fn web_config(&self, text: &str) -> PathBuf {
        let path = self.path("web.yml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn client_identity(
        &self,
        name: &str,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        use rustls::pki_types::pem::PemObject as _;
        let certs = CertificateDer::pem_file_iter(self.path(&format!("{name}.pem")))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(self.path(&format!("{name}-key.pem"))).unwrap();
        (certs, key)
    }
}

static ONLY_TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
static ONLY_TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// TLS options of one test client.
#[derive(Default)]
struct Client<'a> {
    /// The client certificate: which folder's, and its name there.
    identity: Option<(&'a Pki, &'a str)>,
    alpn: Vec<&'static [u8]>,
    versions: Option<&'static [&'static rustls::SupportedProtocolVersion]>,
}

struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    body: String,
    http2: bool,
}

async fn start(options: ServeOptions) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_router(
        listener,
        router(),
        options,
        std::future::pending(),
    ));
    addr
}

fn options(config: Option<&Path>) -> ServeOptions {
    ServeOptions {
        web_config: config.map(|p| Arc::new(WebConfigSource::open(p).unwrap())),
        ..ServeOptions::default()
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// One HTTPS GET; `Err` when the TLS handshake or the request fails.
async fn https_get(
    pki: &Pki,
    addr: SocketAddr,
    path: &str,
    authorization: Option<&str>,
    client: Client<'_>,
) -> Result<Answer, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(client.versions.unwrap_or(rustls::DEFAULT_VERSIONS))
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client.identity {
        Some((owner, name)) => {
            let (certs, key) = owner.client_identity(name);
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = if client.alpn.is_empty() {
        vec![b"http/1.1".to_vec()]
    } else {
        client.alpn.iter().map(|p| p.to_vec()).collect()
    };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let http2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let mut request = hyper::Request::get(format!("https://127.0.0.1:{}{path}", addr.port()));
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    let request = request.body(Empty::<Bytes>::new()).unwrap();
    let response = if http2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(request)
            .await
            .map_err(|e| e.to_string())?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(request)
            .await
            .map_err(|e| e.to_string())?
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        http2,
    })
}

/// A plain HTTP/1.0 GET with std's sockets: status and body.
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, response))
}

fn users_config(pki: &Pki, extra: &str) -> PathBuf {
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    pki.web_config(&format!(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  alice: {hash}\n{extra}"
    ))
}

#[tokio::test]
async fn https_with_basic_auth_lets_in_only_the_right_password() {
    let pki = Pki::new();
    let addr = start(options(Some(&users_config(&pki, "")))).await;

    let none = https_get(&pki, addr, "/-/healthy", None, Client::default())
        .await
        .unwrap();
    assert_eq!(none.status, 401);
    assert_eq!(none.headers["www-authenticate"], "Basic");
    assert_eq!(none.headers["x-frame-options"], "deny");
    let wrong = https_get(
        &pki,
        addr,
        "/-/healthy",
        Some(&basic("alice", "guess")),
        Client::default(),
    )
    .await
    .unwrap();
    assert_eq!(wrong.status, 401);
    let stranger = https_get(
        &pki,
        addr,
        "/-/healthy",
        Some(&basic("mallory", "s3cret")),
        Client::default(),
    )
    .await
    .unwrap();
    assert_eq!(stranger.status, 401);
    let right = https_get(
        &pki,
        addr,
        "/-/healthy",
        Some(&basic("alice", "s3cret")),
        Client::default(),
    )
    .await
    .unwrap();
    assert_eq!(right.status, 200);
    assert_eq!(right.body, "scrapepool is Healthy.\n");
    assert_eq!(right.headers["x-frame-options"], "deny");
    // Asked again: the cached answer, the same verdict.
    let again = https_get(
        &pki,
        addr,
        "/-/healthy",
        Some(&basic("alice", "guess")),
        Client::default(),
    )
    .await
    .unwrap();
    assert_eq!(again.status, 401);

    // Plain HTTP on the TLS port gets no page.
    let plain = tokio::task::spawn_blocking(move || http_get(addr, "/-/healthy"))
        .await
        .unwrap();
    assert!(
        !matches!(&plain, Ok((200, _))),
        "plain HTTP was answered on the TLS port: {plain:?}"
    );
}

#[tokio::test]
async fn http2_is_chosen_by_alpn_unless_the_config_turns_it_off() {
    let pki = Pki::new();
    let base = "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n";
    let both = Client {
        alpn: vec![b"h2", b"http/1.1"],
        ..Client::default()
    };
    let addr = start(options(Some(&pki.web_config(base)))).await;
    let a = https_get(&pki, addr, "/page", None, both).await.unwrap();
    assert!(a.http2, "h2 was not negotiated");
    assert_eq!(a.status, 200);
    assert!(a.body.contains("scrapepool page body"));

    let pki2 = Pki::new();
    let off = pki2.web_config(&format!("{base}http_server_config:\n  http2: false\n"));
    let addr = start(options(Some(&off))).await;
    let both = Client {
        alpn: vec![b"h2", b"http/1.1"],
        ..Client::default()
    };
    let a = https_get(&pki2, addr, "/page", None, both).await.unwrap();
    assert!(!a.http2, "h2 was negotiated with http2: false");
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn tls_versions_are_enforced() {
    let pki = Pki::new();
    let path = pki.web_config(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  min_version: TLS13\n",
    );
    let addr = start(options(Some(&path))).await;
    let only12 = Client {
        versions: Some(ONLY_TLS12),
        ..Client::default()
    };
    let e = https_get(&pki, addr, "/-/healthy", None, only12)
        .await
        .err();
    assert!(
        e.is_some_and(|e| e.starts_with("handshake")),
        "a TLS 1.2 client got in"
    );
    let only13 = Client {
        versions: Some(ONLY_TLS13),
        ..Client::default()
    };
    assert_eq!(
        https_get(&pki, addr, "/-/healthy", None, only13)
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn client_certificates_are_required_verified_and_matched_to_the_allowed_sans() {
    let pki = Pki::new();
    let path = pki.web_config(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  client_allowed_sans: [scraper.test]\n",
    );
    let addr = start(options(Some(&path))).await;
    let without = https_get(&pki, addr, "/-/healthy", None, Client::default()).await;
    assert!(without.is_err(), "a client without a certificate got in");
    let other = Client {
        identity: Some((&pki, "other")),
        ..Client::default()
    };
    assert!(
        https_get(&pki, addr, "/-/healthy", None, other)
            .await
            .is_err(),
        "a certificate without an allowed SAN got in"
    );
    let allowed = Client {
        identity: Some((&pki, "client")),
        ..Client::default()
    };
    assert_eq!(
        https_get(&pki, addr, "/-/healthy", None, allowed)
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn a_certificate_of_another_ca_is_refused_when_verifying() {
    let pki = Pki::new();
    let foreign = Pki::new();
    let path = pki.web_config(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n",
    );
    let addr = start(options(Some(&path))).await;
    // No certificate: let in (a certificate is verified only if given).
    assert_eq!(
        https_get(&pki, addr, "/-/healthy", None, Client::default())
            .await
            .unwrap()
            .status,
        200
    );
    let ours = Client {
        identity: Some((&pki, "client")),
        ..Client::default()
    };
    assert_eq!(
        https_get(&pki, addr, "/-/healthy", None, ours)
            .await
            .unwrap()
            .status,
        200
    );
    let theirs = Client {
        identity: Some((&foreign, "client")),
        ..Client::default()
    };
    assert!(
        https_get(&pki, addr, "/-/healthy", None, theirs)
            .await
            .is_err(),
        "a client certificate of an unknown CA got in"
    );
}

#[tokio::test]
async fn the_rate_limit_answers_429_past_the_burst() {
    let pki = Pki::new();
    let path = users_config(&pki, "rate_limit:\n  burst: 2\n  interval: 1h\n");
    let addr = start(options(Some(&path))).await;
    let auth = basic("alice", "s3cret");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            https_get(&pki, addr, "/-/healthy", Some(&auth), Client::default())
                .await
                .unwrap()
                .status,
        );
    }
    assert_eq!(statuses, vec![200, 200, 429]);
}

#[tokio::test]
async fn a_changed_file_applies_to_new_connections_and_a_broken_one_keeps_the_last_good() {
    let pki = Pki::new();
    let path = users_config(&pki, "");
    let addr = start(options(Some(&path))).await;
    let alice = basic("alice", "s3cret");
    let bob = basic("bob", "hunter2");
    assert_eq!(
        https_get(&pki, addr, "/-/healthy", Some(&bob), Client::default())
            .await
            .unwrap()
            .status,
        401
    );
    let hash = bcrypt::hash("hunter2", 4).unwrap();
    std::fs::write(
        &path,
        format!("tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\nbasic_auth_users:\n  bob: {hash}\n"),
    )
    .unwrap();
    assert_eq!(
        https_get(&pki, addr, "/-/healthy", Some(&bob), Client::default())
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        https_get(&pki, addr, "/-/healthy", Some(&alice), Client::default())
            .await
            .unwrap()
            .status,
        401
    );
    std::fs::write(&path, "basic_auth_users: [not, a, map]\n").unwrap();
    assert_eq!(
        https_get(&pki, addr, "/-/healthy", Some(&bob), Client::default())
            .await
            .unwrap()
            .status,
        200,
        "a broken file replaced the last good config"
    );
}

#[test]
fn a_bad_file_is_refused_naming_the_file_and_the_problem() {
    let pki = Pki::new();
    let path = pki
        .web_config("tls_server_config:\n  cert_file: missing.pem\n  key_file: server-key.pem\n");
    let e = WebConfigSource::open(&path).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(e.contains("failed to read cert_file"), "{e}");
    let path = pki.web_config("tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n");
    let e = WebConfigSource::open(&path).unwrap_err().to_string();
    assert!(e.contains("TLS_RSA_WITH_RC4_128_SHA"), "{e}");
    let path = pki.web_config("tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  client_ca_file: ca.pem\n");
    let e = WebConfigSource::open(&path).unwrap_err().to_string();
    assert!(
        e.contains("client CA's have been configured without a Client Auth Policy"),
        "{e}"
    );
}

/// The cap and the read timeout: idle and slow clients fill every slot, and still
/// `/-/healthy` answers once the timeout has closed them.
#[tokio::test]
async fn idle_and_slow_clients_lose_their_slot_within_the_read_timeout() {
    let timeout = Duration::from_millis(500);
    let addr = start(ServeOptions {
        max_connections: 4,
        read_timeout: timeout,
        web_config: None,
    })
    .await;
    // Two silent clients, one that sends a byte of headers every 100 ms forever, and one
    // that is idle after a first request on a kept-alive connection: every slot is taken.
    let mut holders = Vec::new();
    for _ in 0..2 {
        holders.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let slow = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt as _;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        let request = b"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for b in request.iter().cycle() {
            if s.write_all(&[*b]).await.is_err() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if started.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        started.elapsed()
    });
    let kept = {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        s
    };
    holders.push(kept);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let started = Instant::now();
    let answer = tokio::task::spawn_blocking(move || http_get(addr, "/-/healthy"))
        .await
        .unwrap()
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(answer.0, 200);
    assert!(
        waited < Duration::from_secs(5),
        "/-/healthy waited {waited:?} behind idle clients"
    );
    // The slow writer was cut off: by the header timeout, well before its 10 s.
    let slow_for = slow.await.unwrap();
    assert!(
        slow_for < Duration::from_secs(5),
        "the slow client kept its slot {slow_for:?}"
    );
    // The silent ones see their connection closed.
    for mut s in holders {
        use tokio::io::AsyncReadExt as _;
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an idle connection was never closed");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "an idle connection got data: {read:?}"
        );
    }
}

#[tokio::test]
async fn curl_reads_the_page_over_https_with_basic_auth() {
    let Some(curl) = ["/usr/bin/curl", "/bin/curl"]
        .iter()
        .find(|p| Path::new(p).exists())
    else {
        assert!(
            std::env::var("SCRAPEPOOL_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "curl is missing"
        );
        eprintln!("SKIPPED: curl is not installed");
        return;
    };
    let pki = Pki::new();
    let addr = start(options(Some(&users_config(&pki, "")))).await;
    let url = format!("https://127.0.0.1:{}/page", addr.port());
    let ca = pki.path("ca.pem");
    let run = |user: &'static str| {
        let (curl, url, ca) = (curl.to_string(), url.clone(), ca.clone());
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(curl)
                .args([
                    "-s",
                    "-o",
                    "-",
                    "-w",
                    "\n%{http_code} %{http_version}",
                    "--http2",
                    "--cacert",
                ])
                .arg(&ca)
                .args(["-u", user, &url])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    let ok = run("alice:s3cret").await.unwrap();
    assert!(ok.contains("scrapepool page body"), "{ok}");
    assert!(
        ok.ends_with("200 2"),
        "curl did not get 200 over HTTP/2: {ok}"
    );
    let refused = run("alice:nope").await.unwrap();
    assert!(refused.ends_with("401 2"), "{refused}");
    assert!(!refused.contains("scrapepool page body"));
}

fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SCRAPEPOOL_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn dump_dom(chromium: &Path, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--ignore-certificate-errors",
            "--timeout=20000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn chromium_reads_the_page_with_credentials_and_not_without() {
    let Some(binary) = chromium() else {
        assert!(
            std::env::var("SCRAPEPOOL_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "chromium is missing"
        );
        eprintln!("SKIPPED: chromium is not installed (set SCRAPEPOOL_CHROMIUM)");
        return;
    };
    let pki = Pki::new();
    let addr = start(options(Some(&users_config(&pki, "")))).await;
    let port = addr.port();
    let (b1, b2) = (binary.clone(), binary);
    let with = tokio::task::spawn_blocking(move || {
        dump_dom(&b1, &format!("https://alice:s3cret@127.0.0.1:{port}/page"))
    });
    let with = with.await.unwrap();
    assert!(with.contains("scrapepool page body"), "{with}");
    let without = tokio::task::spawn_blocking(move || {
        dump_dom(&b2, &format!("https://127.0.0.1:{port}/page"))
    })
    .await
    .unwrap();
    assert!(!without.contains("scrapepool page body"), "{without}");
}
