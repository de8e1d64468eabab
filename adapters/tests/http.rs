//! The HTTP fetcher against small in-process hyper servers on 127.0.0.1.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderMap;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use scrapepool_adapters::http::{HttpFetcher, BODY_SIZE_LIMIT_ERROR, SCRAPE_TIMEOUT_HEADER};
use scrapepool_adapters::ports::Fetcher;
use scrapepool_core::config::{Authorization, BasicAuth, Secret, TlsConfig};
use scrapepool_core::encode::{EmitSpec, Encoding};
use scrapepool_core::labels::{EscapingScheme, Labels, ValidationScheme};
use scrapepool_core::protocol::{ExpositionSpec, ScrapeProtocol};
use scrapepool_core::scrape::{FetchOutcome, Limits, ScrapeSpec, SeriesCache};
use scrapepool_core::time::Timestamp;

/// Prometheus 3.16's Accept header for the default `scrape_protocols` and the `utf8`
/// validation scheme, written out (scrape_test.go `TestAcceptHeader`).
const DEFAULT_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.7,application/openmetrics-text;version=0.0.1;q=0.6,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.3";

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// What the test server answers.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: ReplyBody,
    delay: Duration,
}

#[derive(Clone)]
enum ReplyBody {
    Full(Bytes),
    /// This chunk, repeated `n` times (streamed, never held whole).
    Repeat(Bytes, usize),
}

impl Reply {
    fn ok(body: &str) -> Reply {
        Reply {
            status: 200,
            headers: vec![(
                "content-type",
                "text/plain; version=0.0.4; charset=utf-8".into(),
            )],
            body: ReplyBody::Full(Bytes::from(body.to_string())),
            delay: Duration::ZERO,
        }
    }
}

/// A test server: its address and every request's headers and target.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<(String, HeaderMap)>>>,
}

impl Server {
    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{path}", self.addr)
    }

    fn last_headers(&self) -> HeaderMap {
        self.seen
            .lock()
            .unwrap()
            .last()
            .expect("the server saw a request")
            .1
            .clone()
    }
}

async fn serve(reply: Reply, tls: Option<rustls::ServerConfig>) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let acceptor = tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (reply, seen, acceptor) = (reply.clone(), seen2.clone(), acceptor.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (reply, seen) = (reply.clone(), seen.clone());
                    async move {
                        seen.lock()
                            .unwrap()
                            .push((req.uri().to_string(), req.headers().clone()));
                        tokio::time::sleep(reply.delay).await;
                        let body: BoxBody = match reply.body {
                            ReplyBody::Full(b) => Full::new(b).boxed(),
                            ReplyBody::Repeat(chunk, n) => StreamBody::new(futures::stream::iter(
                                std::iter::repeat_n(chunk, n)
                                    .map(|c| Ok::<_, Infallible>(Frame::data(c))),
                            ))
                            .boxed(),
                        };
                        let mut resp = Response::builder().status(reply.status);
                        for (k, v) in &reply.headers {
                            resp = resp.header(*k, v);
                        }
                        Ok::<_, Infallible>(resp.body(body).unwrap())
                    }
                });
                let builder = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(stream).await {
                            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                        }
                    }
                }
            });
        }
    });
    Server { addr, seen }
}

fn spec(url: String) -> ScrapeSpec {
    ScrapeSpec {
        url,
        target_labels: Labels::default(),
        interval: Duration::from_secs(15),
        timeout: Duration::from_secs(5),
        honor_labels: false,
        honor_timestamps: true,
        track_timestamps_staleness: false,
        extra_scrape_metrics: false,
        external_labels: Labels::new(),
        enable_compression: true,
        limits: Limits::default(),
        metric_relabel_configs: Vec::new(),
        basic_auth: None,
        authorization: None,
        tls_config: TlsConfig::default(),
        http_client: Default::default(),
        emit: EmitSpec {
            encoding: Encoding::RemoteWrite,
            message_bytes_max: 1 << 20,
            scraper_id: "t".into(),
            job: "j".into(),
            instance: "i".into(),
            key_hash: 0,
        },
        exposition: Default::default(),
        histograms: Default::default(),
    }
}

fn gzip(data: &[u8]) -> Bytes {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    Bytes::from(e.finish().unwrap())
}

fn body(outcome: FetchOutcome) -> (Vec<u8>, Option<String>) {
    match outcome {
        FetchOutcome::Body { body, content_type } => (body, content_type),
        FetchOutcome::Failed { error } => panic!("fetch failed: {error}"),
    }
}

fn error(outcome: FetchOutcome) -> String {
    match outcome {
        FetchOutcome::Failed { error } => error.to_string(),
        FetchOutcome::Body { body, .. } => panic!(
            "fetch succeeded with {} bytes, expected a failure",
            body.len()
        ),
    }
}

#[tokio::test]
async fn sends_prometheus_headers_and_passes_body_and_content_type() {
    let mut reply = Reply::ok("up 1\n");
    reply.headers = vec![(
        "content-type",
        "application/openmetrics-text; version=1.0.0; charset=utf-8".into(),
    )];
    let server = serve(reply, None).await;
    let mut s = spec(server.url("http", "/metrics?module=x&target=y"));
    s.timeout = Duration::from_millis(7500);
    let (b, ct) = body(HttpFetcher::new().fetch(&s).await);
    assert_eq!(b, b"up 1\n");
    assert_eq!(
        ct.as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let (target, h) = server.seen.lock().unwrap()[0].clone();
    assert_eq!(target, "/metrics?module=x&target=y");
    assert_eq!(h["accept"], DEFAULT_ACCEPT);
    assert_eq!(h["accept-encoding"], "gzip");
    assert_eq!(h[SCRAPE_TIMEOUT_HEADER], "7.5");
    assert_eq!(
        h["user-agent"],
        format!("scrapepool/{}", env!("CARGO_PKG_VERSION")).as_str()
    );
    assert_eq!(h["host"], server.addr.to_string().as_str());
    assert!(h.get("authorization").is_none());
}

#[tokio::test]
async fn gzip_body_is_decompressed() {
    let text = "# TYPE a counter\na_total 1\n".repeat(1000);
    let mut reply = Reply::ok("");
    reply.body = ReplyBody::Full(gzip(text.as_bytes()));
    reply.headers.push(("content-encoding", "gzip".into()));
    let server = serve(reply, None).await;
    let (b, ct) = body(
        HttpFetcher::new()
            .fetch(&spec(server.url("http", "/metrics")))
            .await,
    );
    assert_eq!(b, text.as_bytes());
    assert_eq!(
        ct.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
}

#[tokio::test]
async fn every_member_of_a_multi_member_gzip_body_is_read() {
    // `cat a.gz b.gz`: Go's gzip.Reader (so Prometheus) reads both members.
    let mut two = gzip(b"a 1\n").to_vec();
    two.extend_from_slice(&gzip(b"b 2\n"));
    let mut reply = Reply::ok("");
    reply.body = ReplyBody::Full(Bytes::from(two));
    reply.headers.push(("content-encoding", "gzip".into()));
    let server = serve(reply, None).await;
    let (b, _) = body(
        HttpFetcher::new()
            .fetch(&spec(server.url("http", "/metrics")))
            .await,
    );
    assert_eq!(b, b"a 1\nb 2\n");
}

#[tokio::test]
async fn a_response_head_past_the_read_buffer_is_read_up_to_gos_limit() {
    // 1 MiB in one header and 2,000 header lines: Go (so Prometheus) reads heads up to
    // 10 MiB. The first request overflows the 16 KiB read buffer and is asked again on a
    // connection that reads large heads; that one is kept, so the second scrape is one
    // request.
    let mut reply = Reply::ok("up 1\n");
    reply.headers.push(("x-large", "v".repeat(1 << 20)));
    reply
        .headers
        .extend((0..2000).map(|i| ("x-line", format!("{i}"))));
    let server = serve(reply, None).await;
    let fetcher = HttpFetcher::new();
    let s = spec(server.url("http", "/metrics"));
    for _ in 0..2 {
        let (b, ct) = body(fetcher.fetch(&s).await);
        assert_eq!(b, b"up 1\n");
        assert_eq!(
            ct.as_deref(),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
    }
    assert_eq!(server.seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_response_head_past_gos_limit_fails_in_gos_words() {
    let mut reply = Reply::ok("up 1\n");
    reply.headers.push(("x-large", "v".repeat(11 << 20)));
    let server = serve(reply, None).await;
    let url = server.url("http", "/metrics");
    assert_eq!(
        error(HttpFetcher::new().fetch(&spec(url.clone())).await),
        format!(
            "Get \"{url}\": net/http: server response headers exceeded 10485760 bytes; aborted"
        )
    );
}

#[tokio::test]
async fn compression_disabled_asks_for_identity() {
    let server = serve(Reply::ok("x 1\n"), None).await;
    let mut s = spec(server.url("http", "/metrics"));
    s.enable_compression = false;
    body(HttpFetcher::new().fetch(&s).await);
    assert_eq!(server.last_headers()["accept-encoding"], "identity");
}

#[tokio::test]
async fn basic_auth_with_password_and_password_file() {
    let server = serve(Reply::ok("x 1\n"), None).await;
    let mut s = spec(server.url("http", "/metrics"));
    s.basic_auth = Some(BasicAuth {
        username: "alice".into(),
        password: Some(Secret("s3cret".into())),
        password_file: None,
    });
    body(HttpFetcher::new().fetch(&s).await);
    // base64("alice:s3cret")
    assert_eq!(
        server.last_headers()["authorization"],
        "Basic YWxpY2U6czNjcmV0"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, "from-file\n").unwrap();
    s.basic_auth = Some(BasicAuth {
        username: "bob".into(),
        password: None,
        password_file: Some(file.display().to_string()),
    });
    body(HttpFetcher::new().fetch(&s).await);
    // base64("bob:from-file"): the file's trailing newline is trimmed, as Prometheus does.
    assert_eq!(
        server.last_headers()["authorization"],
        "Basic Ym9iOmZyb20tZmlsZQ=="
    );

    s.basic_auth = Some(BasicAuth {
        username: "bob".into(),
        password: None,
        password_file: Some("/nonexistent/pw".into()),
    });
    let e = error(HttpFetcher::new().fetch(&s).await);
    assert!(e.contains("/nonexistent/pw"), "{e}");
}

#[tokio::test]
async fn bearer_and_custom_authorization() {
    let server = serve(Reply::ok("x 1\n"), None).await;
    let mut s = spec(server.url("http", "/metrics"));
    s.authorization = Some(Authorization {
        kind: "Bearer".into(),
        credentials: Some(Secret("tok".into())),
        credentials_file: None,
    });
    body(HttpFetcher::new().fetch(&s).await);
    assert_eq!(server.last_headers()["authorization"], "Bearer tok");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "  filetok \n").unwrap();
    s.authorization = Some(Authorization {
        kind: "Custom".into(),
        credentials: None,
        credentials_file: Some(file.display().to_string()),
    });
    body(HttpFetcher::new().fetch(&s).await);
    assert_eq!(server.last_headers()["authorization"], "Custom filetok");
}

#[tokio::test]
async fn slow_server_times_out_within_the_scrape_timeout() {
    let mut reply = Reply::ok("x 1\n");
    reply.delay = Duration::from_secs(10);
    let server = serve(reply, None).await;
    let mut s = spec(server.url("http", "/metrics"));
    s.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let e = error(HttpFetcher::new().fetch(&s).await);
    let took = started.elapsed();
    assert_eq!(e, format!("Get \"{}\": context deadline exceeded", s.url));
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "took {took:?}"
    );
}

#[tokio::test]
async fn body_over_the_limit_fails() {
    let server = serve(Reply::ok(&"a".repeat(1000)), None).await;
    let mut s = spec(server.url("http", "/metrics"));
    s.limits.body_size_limit_bytes = 1001;
    assert_eq!(body(HttpFetcher::new().fetch(&s).await).0.len(), 1000);
    // Like Prometheus, reaching the limit exactly already fails.
    s.limits.body_size_limit_bytes = 1000;
    let e = error(HttpFetcher::new().fetch(&s).await);
    assert!(e.starts_with(BODY_SIZE_LIMIT_ERROR), "{e}");
}

#[tokio::test]
async fn endless_body_is_cut_as_soon_as_the_limit_is_passed() {
    let mut reply = Reply::ok("");
    // 64 KiB × 1M = 64 GiB: reading it whole would take far longer than the timeout.
    reply.body = ReplyBody::Repeat(Bytes::from(vec![b'a'; 64 * 1024]), 1 << 20);
    let server = serve(reply, None).await;
    let mut s = spec(server.url("http", "/metrics"));
    s.timeout = Duration::from_secs(20);
    s.limits.body_size_limit_bytes = 1 << 20;
    let started = Instant::now();
    let e = error(HttpFetcher::new().fetch(&s).await);
    assert!(e.starts_with(BODY_SIZE_LIMIT_ERROR), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn gzip_bomb_is_stopped_by_the_limit_on_the_decompressed_size() {
    // 64 MiB of zeros compress to about 64 KiB.
    let bomb = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            e.write_all(&zeros).unwrap();
        }
        Bytes::from(e.finish().unwrap())
    };
    assert!(bomb.len() < 1 << 20);
    let mut reply = Reply::ok("");
    reply.body = ReplyBody::Full(bomb);
    reply.headers.push(("content-encoding", "gzip".into()));
    let server = serve(reply, None).await;
    let mut s = spec(server.url("http", "/metrics"));
    s.limits.body_size_limit_bytes = 1 << 20;
    let e = error(HttpFetcher::new().fetch(&s).await);
    assert!(e.starts_with(BODY_SIZE_LIMIT_ERROR), "{e}");
}

#[tokio::test]
async fn only_200_is_a_successful_scrape() {
    for (status, want) in [
        (204, "server returned HTTP status 204 No Content"),
        (201, "server returned HTTP status 201 Created"),
        (299, "server returned HTTP status 299"),
    ] {
        let mut reply = Reply::ok("up 1\n");
        reply.status = status;
        let server = serve(reply, None).await;
        let e = error(
            HttpFetcher::new()
                .fetch(&spec(server.url("http", "/metrics")))
                .await,
        );
        assert_eq!(e, want);
    }
}

/// An exporter of the test's own serves one UTF-8 named series under each Content-Type;
/// the fetch and the core's processing give the series Prometheus 3.16 gives, or its error.
#[tokio::test]
async fn utf8_names_under_each_content_type() {
    let text = "# TYPE \"my.metric\" gauge\n{\"my.metric\",\"my.label\"=\"ü\"} 1\n";
    let om = format!("{text}# EOF\n");
    let want = r#"{__name__="my.metric", "my.label"="ü"}"#;
    /// Content-Type, body, fallback, and the series or the error.
    type Case<'a> = (
        Option<&'a str>,
        &'a str,
        Option<ScrapeProtocol>,
        Result<&'a str, &'a str>,
    );
    let cases: Vec<Case> = vec![
        (Some("text/plain; version=1.0.0; escaping=allow-utf-8"), text, None, Ok(want)),
        (Some("text/plain; version=0.0.4; charset=utf-8"), text, None, Ok(want)),
        (Some("application/openmetrics-text; version=1.0.0; charset=utf-8"), &om, None, Ok(want)),
        (None, text, None, Err("non-compliant scrape target sending blank Content-Type and no fallback_scrape_protocol specified for target")),
        (None, text, Some(ScrapeProtocol::PrometheusText1_0_0), Ok(want)),
        (Some("application/json"), &om, None, Err("received unsupported Content-Type \"application/json\" and no fallback_scrape_protocol specified for target")),
        (Some("application/json"), &om, Some(ScrapeProtocol::OpenMetricsText1_0_0), Ok(want)),
    ];
    for (content_type, served, fallback, expected) in cases {
        let mut reply = Reply::ok(served);
        reply.headers = content_type
            .map(|ct| vec![("content-type", ct.to_string())])
            .unwrap_or_default();
        let server = serve(reply, None).await;
        let mut s = spec(server.url("http", "/metrics"));
        s.exposition.fallback = fallback;
        let fetched = HttpFetcher::new().fetch(&s).await;
        let mut cache = SeriesCache::default();
        let (report, _) = scrapepool_core::scrape::process(
            &s,
            &mut cache,
            Timestamp(0),
            Duration::from_millis(1),
            &fetched,
        );
        let got = if report.up {
            Ok(cache
                .series()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "))
        } else {
            Err(report.error.map(|e| e.to_string()).unwrap_or_default())
        };
        let expected = expected.map(str::to_string).map_err(str::to_string);
        assert_eq!(got, expected, "{content_type:?} fallback {fallback:?}");
        assert_eq!(server.last_headers()["accept"], DEFAULT_ACCEPT);
    }
}

#[tokio::test]
async fn the_accept_header_follows_scrape_protocols_and_the_escaping_scheme() {
    let server = serve(Reply::ok("up 1\n"), None).await;
    let mut s = spec(server.url("http", "/metrics"));
    s.exposition = ExpositionSpec::new(
        &[
            ScrapeProtocol::PrometheusText0_0_4,
            ScrapeProtocol::PrometheusText1_0_0,
        ],
        EscapingScheme::Underscores,
        None,
        ValidationScheme::Legacy,
    );
    body(HttpFetcher::new().fetch(&s).await);
    assert_eq!(
        server.last_headers()["accept"],
        "text/plain;version=0.0.4;q=0.7,text/plain;version=1.0.0;escaping=underscores;q=0.6,*/*;q=0.5"
    );
}

#[tokio::test]
async fn non_2xx_fails_with_the_status() {
    let mut reply = Reply::ok("nope");
    reply.status = 503;
    let server = serve(reply, None).await;
    let e = error(
        HttpFetcher::new()
            .fetch(&spec(server.url("http", "/metrics")))
            .await,
    );
    assert_eq!(e, "server returned HTTP status 503 Service Unavailable");
}

#[tokio::test]
async fn refused_connection_fails() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = error(
        HttpFetcher::new()
            .fetch(&spec(format!("http://127.0.0.1:{port}/metrics")))
            .await,
    );
    // Go's wording, as Prometheus shows it.
    assert_eq!(
        e,
        format!(
            "Get \"http://127.0.0.1:{port}/metrics\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
    );
}

#[tokio::test]
async fn a_body_that_is_not_gzip_fails_in_gos_words() {
    let mut reply = Reply::ok("this body is plain text, not gzip\n");
    reply.headers.push(("content-encoding", "gzip".into()));
    let server = serve(reply, None).await;
    let e = error(
        HttpFetcher::new()
            .fetch(&spec(server.url("http", "/metrics")))
            .await,
    );
    assert_eq!(e, "gzip: invalid header");

    let whole = gzip("a 1\n".repeat(100).as_bytes());
    let mut reply = Reply::ok("");
    reply.body = ReplyBody::Full(whole.slice(..whole.len() / 2));
    reply.headers.push(("content-encoding", "gzip".into()));
    let server = serve(reply, None).await;
    let e = error(
        HttpFetcher::new()
            .fetch(&spec(server.url("http", "/metrics")))
            .await,
    );
    assert_eq!(e, "gzip: unexpected EOF");
}

/// A CA, a server certificate for `names` and a client certificate, all signed by the CA,
/// written as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    server_certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl Pki {
    fn new(names: &[&str]) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "scrapepool test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap()
                .signed_by(&server_key, &ca, &ca_key)
                .unwrap();
        let client_key = rcgen::KeyPair::generate().unwrap();
        let mut client_params = rcgen::CertificateParams::new(vec!["client".to_string()]).unwrap();
        client_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "scraper");
        let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("client.pem"), client.pem()).unwrap();
        std::fs::write(
            dir.path().join("client-key.pem"),
            client_key.serialize_pem(),
        )
        .unwrap();
        Pki {
            dir,
            ca_der: ca.der().clone(),
            server_certs: vec![server.der().clone()],
            server_key: rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn server_config(&self, require_client_cert: bool) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone()).unwrap();
            builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap(),
            )
        } else {
            builder.with_no_client_auth()
        };
        builder
            .with_single_cert(self.server_certs.clone(), self.server_key.clone_key())
            .unwrap()
    }
}

#[tokio::test]
async fn tls_with_ca_file_and_client_certificate() {
    let pki = Pki::new(&["127.0.0.1", "localhost"]);
    let server = serve(Reply::ok("tls 1\n"), Some(pki.server_config(true))).await;
    let mut s = spec(server.url("https", "/metrics"));
    s.tls_config = TlsConfig {
        ca_file: Some(pki.path("ca.pem")),
        cert_file: Some(pki.path("client.pem")),
        key_file: Some(pki.path("client-key.pem")),
        ..TlsConfig::default()
    };
    assert_eq!(body(HttpFetcher::new().fetch(&s).await).0, b"tls 1\n");

    // Without the client certificate the server refuses the handshake.
    s.tls_config.cert_file = None;
    s.tls_config.key_file = None;
    error(HttpFetcher::new().fetch(&s).await);
}

#[tokio::test]
async fn tls_server_name_overrides_the_url_host() {
    let pki = Pki::new(&["exporter.internal"]);
    let server = serve(Reply::ok("x 1\n"), Some(pki.server_config(false))).await;
    let mut s = spec(server.url("https", "/metrics"));
    s.tls_config.ca_file = Some(pki.path("ca.pem"));
    // The certificate is not for 127.0.0.1 ...
    let e = error(HttpFetcher::new().fetch(&s).await);
    assert!(e.contains("tls") || e.contains("certificate"), "{e}");
    // ... but it is for the configured server_name.
    s.tls_config.server_name = Some("exporter.internal".into());
    assert_eq!(body(HttpFetcher::new().fetch(&s).await).0, b"x 1\n");
}

#[tokio::test]
async fn tls_unknown_ca_fails_unless_insecure_skip_verify() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = serve(Reply::ok("x 1\n"), Some(pki.server_config(false))).await;
    let mut s = spec(server.url("https", "/metrics"));
    // The public roots do not know our test CA.
    let e = error(HttpFetcher::new().fetch(&s).await);
    assert!(
        e.contains("UnknownIssuer") || e.contains("certificate"),
        "{e}"
    );
    s.tls_config.insecure_skip_verify = true;
    assert_eq!(body(HttpFetcher::new().fetch(&s).await).0, b"x 1\n");
}

#[tokio::test]
async fn tls_bad_ca_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec("https://127.0.0.1:1/metrics".into());
    s.tls_config.ca_file = Some(dir.path().join("missing.pem").display().to_string());
    let e = error(HttpFetcher::new().fetch(&s).await);
    assert!(e.contains("missing.pem"), "{e}");
}

/// A connector that is not TCP at all: in-memory pipes to an in-process server, the way the
/// simulation plugs turmoil's streams into the same request code.
#[derive(Clone)]
struct PipeConnector {
    server: tokio::sync::mpsc::Sender<tokio::io::DuplexStream>,
    dialed: Arc<Mutex<Vec<(String, u16)>>>,
}

impl scrapepool_adapters::http::Connector for PipeConnector {
    type Io = tokio::io::DuplexStream;

    async fn connect(&self, host: &str, port: u16) -> std::io::Result<tokio::io::DuplexStream> {
        self.dialed.lock().unwrap().push((host.to_string(), port));
        let (client, server) = tokio::io::duplex(64 * 1024);
        self.server
            .send(server)
            .await
            .map_err(|_| std::io::Error::other("server gone"))?;
        Ok(client)
    }
}

#[tokio::test]
async fn runs_over_any_connector() {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<tokio::io::DuplexStream>(4);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Some(stream) = rx.recv().await {
            let seen = seen2.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    seen.lock().unwrap().push(req.headers().clone());
                    let body = gzip(b"piped 1\n");
                    async move {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-encoding", "gzip")
                                .header("content-type", "text/plain; version=0.0.4")
                                .body(Full::new(body))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let dialed = Arc::new(Mutex::new(Vec::new()));
    let fetcher = HttpFetcher::with_connector(PipeConnector {
        server: tx,
        dialed: dialed.clone(),
    });
    let (b, ct) = body(
        fetcher
            .fetch(&spec("http://exporter.sim:9100/metrics".into()))
            .await,
    );
    assert_eq!(b, b"piped 1\n");
    assert_eq!(ct.as_deref(), Some("text/plain; version=0.0.4"));
    assert_eq!(
        *dialed.lock().unwrap(),
        [("exporter.sim".to_string(), 9100)]
    );
    let h = seen.lock().unwrap()[0].clone();
    assert_eq!(h["host"], "exporter.sim:9100");
    assert_eq!(h["accept"], DEFAULT_ACCEPT);
}

/// A raw HTTP/1.1 server on 127.0.0.1 that counts the connections it accepts; with
/// `close_after_one` it closes each connection right after its first response, without
/// saying so (as a server whose idle timeout ran out between two scrapes).
async fn counting_server(
    body: &'static str,
    close_after_one: bool,
) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let resp = format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                        if stream.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                        if close_after_one {
                            let _ = stream.shutdown().await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn a_targets_scrapes_reuse_one_kept_alive_connection() {
    let (addr, accepted) = counting_server("a 1\n", false).await;
    let fetcher = HttpFetcher::new();
    let s = spec(format!("http://{addr}/metrics"));
    for _ in 0..3 {
        assert_eq!(body(fetcher.fetch(&s).await).0, b"a 1\n");
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The simulation's fetcher (with_connector) connects per scrape.
    let (addr, accepted) = counting_server("b 2\n", false).await;
    let fetcher = HttpFetcher::with_connector(scrapepool_adapters::http::TcpConnector);
    let s = spec(format!("http://{addr}/metrics"));
    for _ in 0..2 {
        assert_eq!(body(fetcher.fetch(&s).await).0, b"b 2\n");
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_kept_connection_the_server_closed_is_replaced_without_failing_the_scrape() {
    let (addr, accepted) = counting_server("c 3\n", true).await;
    let fetcher = HttpFetcher::new();
    let s = spec(format!("http://{addr}/metrics"));
    for _ in 0..3 {
        // Let the server's close arrive, or not: either way the scrape must succeed.
        assert_eq!(body(fetcher.fetch(&s).await).0, b"c 3\n");
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
}

/// A self-signed server certificate for `names` (marked a CA when `is_ca`, as `openssl req
/// -x509` marks it), valid from `from` to `until` (years), written as `cert.pem`, with a
/// server configuration presenting it.
fn self_signed(
    names: &[&str],
    is_ca: bool,
    from: i32,
    until: i32,
) -> (tempfile::TempDir, String, rustls::ServerConfig) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "exporter");
    if is_ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(until, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cert.pem");
    std::fs::write(&path, cert.pem()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    (dir, path.display().to_string(), config)
}

#[tokio::test]
async fn a_self_signed_exporter_certificate_given_as_ca_file_is_trusted() {
    // Both shapes operators make: CA:TRUE (openssl req -x509) and a plain leaf; validity
    // dates on either side of 2050 (UTCTime and GeneralizedTime).
    for (is_ca, until) in [(true, 2099), (false, 2049), (true, 4096)] {
        let (_dir, cert, config) = self_signed(&["127.0.0.1", "localhost"], is_ca, 2020, until);
        let server = serve(Reply::ok("self 1\n"), Some(config)).await;
        let mut s = spec(server.url("https", "/metrics"));
        s.tls_config.ca_file = Some(cert);
        assert_eq!(
            body(HttpFetcher::new().fetch(&s).await).0,
            b"self 1\n",
            "is_ca {is_ca}, until {until}"
        );
    }
}

#[tokio::test]
async fn a_self_signed_certificate_still_needs_the_right_name_and_dates() {
    // Wrong name: the names it has and the one wanted.
    let (_dir, cert, config) = self_signed(&["exporter.internal", "10.1.2.3"], true, 2020, 2099);
    let server = serve(Reply::ok("x 1\n"), Some(config)).await;
    let mut s = spec(server.url("https", "/metrics"));
    s.tls_config.ca_file = Some(cert.clone());
    let e = error(HttpFetcher::new().fetch(&s).await);
    assert_eq!(
        e,
        format!(
            "Get \"{}\": tls: failed to verify certificate: x509: certificate is valid for exporter.internal, 10.1.2.3, not 127.0.0.1",
            s.url
        )
    );
    s.tls_config.server_name = Some("exporter.internal".into());
    assert_eq!(body(HttpFetcher::new().fetch(&s).await).0, b"x 1\n");

    // Expired, and not yet valid: the current time and the bound.
    for (from, until, word, bound) in [
        (2001, 2002, "after", "2002-01-01T00:00:00Z"),
        (2200, 2201, "before", "2200-01-01T00:00:00Z"),
    ] {
        let (_dir, cert, config) = self_signed(&["127.0.0.1"], true, from, until);
        let server = serve(Reply::ok("x 1\n"), Some(config)).await;
        let mut s = spec(server.url("https", "/metrics"));
        s.tls_config.ca_file = Some(cert);
        let e = error(HttpFetcher::new().fetch(&s).await);
        let prefix = format!(
            "Get \"{}\": tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time ",
            s.url
        );
        assert!(e.starts_with(&prefix), "{e}");
        assert!(e.ends_with(&format!(" is {word} {bound}")), "{e}");
    }
}

#[tokio::test]
async fn an_unknown_issuer_names_the_certificates_trusted() {
    // The server's certificate is signed by a CA the ca_file does not hold.
    let pki = Pki::new(&["127.0.0.1"]);
    let server = serve(Reply::ok("x 1\n"), Some(pki.server_config(false))).await;
    let (_dir, other, _) = self_signed(&["127.0.0.1"], true, 2020, 2099);
    let mut s = spec(server.url("https", "/metrics"));
    s.tls_config.ca_file = Some(other.clone());
    let e = error(HttpFetcher::new().fetch(&s).await);
    assert_eq!(
        e,
        format!("Get \"{}\": tls: failed to verify certificate: x509: certificate signed by unknown authority (not one of ca_file {other} nor signed by one)", s.url)
    );
    s.tls_config.ca_file = None;
    let e = error(HttpFetcher::new().fetch(&s).await);
    assert!(
        e.ends_with("x509: certificate signed by unknown authority (not one of the public root certificates nor signed by one)"),
        "{e}"
    );
}
