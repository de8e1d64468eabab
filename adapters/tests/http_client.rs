//! The HTTP client as Prometheus's: redirects, proxies, OAuth 2.0, custom headers, HTTP/2,
//! TLS versions, inline PEM and kept-alive HTTPS, against servers of the test's own on
//! 127.0.0.1.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use scrapepool_adapters::http::HttpFetcher;
use scrapepool_adapters::ports::Fetcher;
use scrapepool_core::config::{
    BasicAuth, HttpHeader, OAuth2, ProxyConfig, Secret, TlsConfig, TlsVersion,
};
use scrapepool_core::encode::{EmitSpec, Encoding};
use scrapepool_core::labels::Labels;
use scrapepool_core::scrape::{FetchOutcome, Limits, ScrapeSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request a server saw.
#[derive(Clone, Debug)]
struct Seen {
    target: String,
    headers: HeaderMap,
    version: hyper::Version,
    body: Bytes,
}

/// What a server answers: status, headers, body.
type Answer = (u16, Vec<(String, String)>, String);

/// A server's answers, from the request seen and how many came before it.
type Handler = Arc<dyn Fn(&Seen, usize) -> Answer + Send + Sync>;

struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    accepts: Arc<AtomicUsize>,
}

impl Server {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn ok(body: &str) -> Answer {
    (
        200,
        vec![("content-type".into(), "text/plain".into())],
        body.into(),
    )
}

/// A hyper server on 127.0.0.1: plain, or TLS with `tls` (HTTP/2 when ALPN chose `h2`).
async fn serve(handler: Handler, tls: Option<rustls::ServerConfig>) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let accepts = Arc::new(AtomicUsize::new(0));
    let acceptor = tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
    let (seen2, accepts2) = (seen.clone(), accepts.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            accepts2.fetch_add(1, Ordering::SeqCst);
            let (handler, seen, acceptor) = (handler.clone(), seen2.clone(), acceptor.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (handler, seen) = (handler.clone(), seen.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let request = Seen {
                            target: parts.uri.to_string(),
                            headers: parts.headers,
                            version: parts.version,
                            body,
                        };
                        let n = {
                            let mut seen = seen.lock().unwrap();
                            seen.push(request.clone());
                            seen.len() - 1
                        };
                        let (status, headers, body) = handler(&request, n);
                        let mut resp = Response::builder().status(status);
                        for (k, v) in headers {
                            resp = resp.header(k, v);
                        }
                        Ok::<_, Infallible>(resp.body(Full::new(Bytes::from(body))).unwrap())
                    }
                });
                match acceptor {
                    None => {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                    Some(acceptor) => {
                        let Ok(tls) = acceptor.accept(stream).await else {
                            return;
                        };
                        if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .serve_connection(TokioIo::new(tls), service)
                                .await;
                        } else {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(tls), service)
                                .await;
                        }
                    }
                }
            });
        }
    });
    Server {
        addr,
        seen,
        accepts,
    }
}

fn fixed(answer: Answer) -> Handler {
    Arc::new(move |_, _| answer.clone())
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
        enable_compression: false,
        limits: Limits::default(),
        metric_relabel_configs: Vec::new(),
        basic_auth: None,
        authorization: None,
        tls_config: TlsConfig::default(),
        http_client: Default::default(),
        exposition: Default::default(),
        histograms: Default::default(),
        emit: EmitSpec {
            encoding: Encoding::RemoteWrite,
            message_bytes_max: 1 << 20,
            scraper_id: "t".into(),
            job: "j".into(),
            instance: "i".into(),
            key_hash: 0,
        },
    }
}

fn body(outcome: FetchOutcome) -> String {
    match outcome {
        FetchOutcome::Body { body, .. } => String::from_utf8(body).unwrap(),
        FetchOutcome::Failed { error } => panic!("fetch failed: {error}"),
    }
}

fn error(outcome: FetchOutcome) -> String {
    match outcome {
        FetchOutcome::Failed { error } => error.to_string(),
        FetchOutcome::Body { body, .. } => panic!(
            "fetch succeeded with {:?}, expected a failure",
            String::from_utf8_lossy(&body)
        ),
    }
}

fn basic(user: &str, password: &str) -> BasicAuth {
    BasicAuth {
        username: user.into(),
        password: Some(Secret(password.into())),
        password_file: None,
    }
}

fn header_of(seen: &Seen, name: &str) -> Vec<String> {
    seen.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn redirects_are_followed_and_credentials_stay_on_the_first_host() {
    // The second server is reached as `localhost`: another host than `127.0.0.1`.
    let other = serve(fixed(ok("moved 1\n")), None).await;
    let other_url = format!("http://localhost:{}/final", other.addr.port());
    let first = serve(
        Arc::new(move |seen, _| match seen.target.as_str() {
            "/start" => (
                302,
                vec![("location".into(), "/next?x=1".into())],
                String::new(),
            ),
            "/next?x=1" => (
                301,
                vec![("location".into(), other_url.clone())],
                String::new(),
            ),
            _ => (404, vec![], String::new()),
        }),
        None,
    )
    .await;
    let mut s = spec(format!("http://127.0.0.1:{}/start", first.addr.port()));
    s.basic_auth = Some(basic("u", "pw"));
    let mut headers = BTreeMap::new();
    headers.insert(
        "X-Tenant".to_string(),
        HttpHeader {
            values: vec!["t1".into()],
            ..HttpHeader::default()
        },
    );
    headers.insert(
        "Cookie".to_string(),
        HttpHeader {
            secrets: vec![Secret("session=abc".into())],
            ..HttpHeader::default()
        },
    );
    s.http_client.http_headers = headers;
    let fetcher = HttpFetcher::new();
    assert_eq!(body(fetcher.fetch(&s).await), "moved 1\n");
    let seen = first.seen();
    assert_eq!(seen.len(), 2);
    for hop in &seen {
        assert_eq!(
            header_of(hop, "authorization"),
            ["Basic dTpwdw=="],
            "{hop:?}"
        );
        assert_eq!(header_of(hop, "cookie"), ["session=abc"]);
    }
    let seen = other.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/final");
    assert!(header_of(&seen[0], "authorization").is_empty(), "{seen:?}");
    assert!(header_of(&seen[0], "cookie").is_empty(), "{seen:?}");
    assert_eq!(header_of(&seen[0], "x-tenant"), ["t1"]);

    // follow_redirects: false: the 3xx is the scrape's answer, and it fails.
    s.http_client.follow_redirects = false;
    assert_eq!(
        error(fetcher.fetch(&s).await),
        "server returned HTTP status 302 Found"
    );
    assert_eq!(first.seen().len(), 3);
    assert_eq!(other.seen().len(), 1);
}

#[tokio::test]
async fn redirects_stop_after_ten_as_go_s_client() {
    let server = serve(
        Arc::new(|_, n| {
            let next = if n % 2 == 0 { "/b" } else { "/a" };
            (307, vec![("location".into(), next.into())], String::new())
        }),
        None,
    )
    .await;
    let s = spec(format!("http://127.0.0.1:{}/a", server.addr.port()));
    assert_eq!(
        error(HttpFetcher::new().fetch(&s).await),
        format!(
            "Get \"http://127.0.0.1:{}/b\": stopped after 10 redirects",
            server.addr.port()
        )
    );
    assert_eq!(server.seen().len(), 11);
    // Each hop's connection was kept for the next request to its URL: eleven requests
    // between two URLs took two connections.
    assert_eq!(server.accepts.load(Ordering::SeqCst), 2);
}

/// What the proxy saw: each request's head (first line and headers).
type ProxyLog = Arc<Mutex<Vec<String>>>;

/// An HTTP proxy on 127.0.0.1 that sends every host to 127.0.0.1: `CONNECT` opens a
/// tunnel, any other request is passed on as written.
async fn proxy() -> (SocketAddr, ProxyLog) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: ProxyLog = Arc::default();
    let log2 = log.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log2.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let Ok(b) = client.read_u8().await else {
                        return;
                    };
                    head.push(b);
                }
                let text = String::from_utf8_lossy(&head).to_string();
                log.lock().unwrap().push(text.clone());
                let first = text.lines().next().unwrap_or_default().to_string();
                let mut parts = first.split(' ');
                let (method, target) = (parts.next().unwrap(), parts.next().unwrap());
                let authority = if method == "CONNECT" {
                    target.to_string()
                } else {
                    target
                        .strip_prefix("http://")
                        .unwrap()
                        .split('/')
                        .next()
                        .unwrap()
                        .to_string()
                };
                let port: u16 = authority.rsplit_once(':').unwrap().1.parse().unwrap();
                let mut upstream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .unwrap();
                if method == "CONNECT" {
                    client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .unwrap();
                } else {
                    upstream.write_all(&head).await.unwrap();
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, log)
}

#[tokio::test]
async fn plain_http_through_a_proxy_uses_absolute_targets_and_its_credentials() {
    let target = serve(fixed(ok("via 1\n")), None).await;
    let (proxy_addr, log) = proxy().await;
    let mut s = spec(format!(
        "http://exporter.test:{}/metrics?a=b",
        target.addr.port()
    ));
    s.http_client.proxy = ProxyConfig {
        proxy_url: Some(format!("http://pu:pp@{proxy_addr}")),
        ..ProxyConfig::default()
    };
    assert_eq!(body(HttpFetcher::new().fetch(&s).await), "via 1\n");
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 1);
    assert!(
        log[0].starts_with(&format!(
            "GET http://exporter.test:{}/metrics?a=b HTTP/1.1\r\n",
            target.addr.port()
        )),
        "{log:?}"
    );
    // base64("pu:pp")
    assert!(
        log[0].contains("proxy-authorization: Basic cHU6cHA=\r\n"),
        "{log:?}"
    );
    let seen = target.seen();
    assert_eq!(
        header_of(&seen[0], "host"),
        [format!("exporter.test:{}", target.addr.port())]
    );
}

#[tokio::test]
async fn https_through_a_proxy_is_a_connect_tunnel_with_the_connect_headers() {
    let pki = Pki::new(&["localhost"]);
    let target = serve(fixed(ok("tunnel 1\n")), Some(pki.server_config(false, &[]))).await;
    let (proxy_addr, log) = proxy().await;
    let mut s = spec(format!("https://localhost:{}/metrics", target.addr.port()));
    s.tls_config.ca = Some(pki.ca_pem.clone());
    let mut connect_headers = BTreeMap::new();
    connect_headers.insert("X-Tunnel-Token".to_string(), vec![Secret("tt-1".into())]);
    s.http_client.proxy = ProxyConfig {
        proxy_url: Some(format!("http://{proxy_addr}")),
        proxy_connect_header: connect_headers,
        ..ProxyConfig::default()
    };
    let fetcher = HttpFetcher::new();
    assert_eq!(body(fetcher.fetch(&s).await), "tunnel 1\n");
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 1);
    let port = target.addr.port();
    assert!(
        log[0].starts_with(&format!(
            "CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n"
        )),
        "{log:?}"
    );
    assert!(log[0].contains("x-tunnel-token: tt-1\r\n"), "{log:?}");
    // The scrape itself is inside the tunnel: the proxy never saw its path.
    assert!(!log[0].contains("/metrics"));
    assert!(target.seen()[0].target.ends_with("/metrics"));
}

#[tokio::test]
async fn no_proxy_and_loopback_are_reached_directly() {
    let target = serve(fixed(ok("direct 1\n")), None).await;
    let (proxy_addr, log) = proxy().await;
    let proxy = ProxyConfig {
        proxy_url: Some(format!("http://{proxy_addr}")),
        no_proxy: Some("skipped.test,.internal.test".into()),
        ..ProxyConfig::default()
    };
    let fetcher = HttpFetcher::new();
    // With no_proxy, loopback is direct (Go's httpproxy).
    let mut s = spec(format!("http://127.0.0.1:{}/m", target.addr.port()));
    s.http_client.proxy = proxy.clone();
    assert_eq!(body(fetcher.fetch(&s).await), "direct 1\n");
    assert!(log.lock().unwrap().is_empty());
    // A name not in no_proxy goes through the proxy.
    let mut s = spec(format!("http://other.test:{}/m", target.addr.port()));
    s.http_client.proxy = proxy.clone();
    assert_eq!(body(fetcher.fetch(&s).await), "direct 1\n");
    assert_eq!(log.lock().unwrap().len(), 1);
    // Names in no_proxy are dialed directly (and these do not resolve).
    for host in ["skipped.test", "a.internal.test"] {
        let mut s = spec(format!("http://{host}:{}/m", target.addr.port()));
        s.timeout = Duration::from_secs(3);
        s.http_client.proxy = proxy.clone();
        let e = error(fetcher.fetch(&s).await);
        assert!(!e.contains("proxyconnect"), "{e}");
        assert_eq!(log.lock().unwrap().len(), 1, "{host}: {e}");
    }
    // An unreachable proxy fails in Go's words.
    let mut s = spec("http://other.test:1/m".into());
    s.http_client.proxy.proxy_url = Some("http://127.0.0.1:1".into());
    assert_eq!(
        error(fetcher.fetch(&s).await),
        "Get \"http://other.test:1/m\": proxyconnect tcp: dial tcp 127.0.0.1:1: connect: connection refused"
    );
}

#[tokio::test]
async fn oauth2_tokens_are_kept_until_expiry_and_follow_the_secret_file() {
    // Each token request gets token `tok-N`; its lifetime is in the `life` query parameter's
    // place: the endpoint_param `life`.
    let tokens = serve(
        Arc::new(|seen, n| {
            let form: BTreeMap<String, String> = url::form_urlencoded::parse(&seen.body)
                .into_owned()
                .collect();
            let life = form.get("life").cloned().unwrap_or_default();
            (
                200,
                vec![("content-type".into(), "application/json".into())],
                format!(
                    r#"{{"access_token":"tok-{}","token_type":"bearer","expires_in":{life}}}"#,
                    n + 1
                ),
            )
        }),
        None,
    )
    .await;
    let target = serve(fixed(ok("o 1\n")), None).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "sec-1\n").unwrap();
    let mut s = spec(format!("http://127.0.0.1:{}/metrics", target.addr.port()));
    let mut params = BTreeMap::new();
    params.insert("life".to_string(), "3600".to_string());
    s.http_client.oauth2 = Some(OAuth2 {
        client_id: "cid".into(),
        client_secret: None,
        client_secret_file: Some(secret_file.display().to_string()),
        scopes: vec!["read".into(), "write".into()],
        token_url: format!("http://127.0.0.1:{}/token", tokens.addr.port()),
        endpoint_params: params,
        tls_config: TlsConfig::default(),
        proxy: ProxyConfig::default(),
    });
    let fetcher = HttpFetcher::new();
    for _ in 0..3 {
        assert_eq!(body(fetcher.fetch(&s).await), "o 1\n");
    }
    let asked = tokens.seen();
    assert_eq!(asked.len(), 1, "one token for three scrapes");
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&asked[0].body)
        .into_owned()
        .collect();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["scope"], "read write");
    assert_eq!(form["life"], "3600");
    assert_eq!(
        header_of(&asked[0], "authorization"),
        ["Basic Y2lkOnNlYy0x"]
    ); // cid:sec-1
    assert_eq!(
        header_of(&asked[0], "content-type"),
        ["application/x-www-form-urlencoded"]
    );
    for seen in target.seen() {
        assert_eq!(header_of(&seen, "authorization"), ["Bearer tok-1"]);
    }

    // A rotated secret file: a new token at once.
    std::fs::write(&secret_file, "sec-2").unwrap();
    assert_eq!(body(fetcher.fetch(&s).await), "o 1\n");
    let asked = tokens.seen();
    assert_eq!(asked.len(), 2);
    assert_eq!(
        header_of(&asked[1], "authorization"),
        ["Basic Y2lkOnNlYy0y"]
    ); // cid:sec-2
    assert_eq!(
        header_of(target.seen().last().unwrap(), "authorization"),
        ["Bearer tok-2"]
    );

    // A token of 11 s is used for 1 s (Go refreshes 10 s before expiry), then refreshed.
    s.http_client
        .oauth2
        .as_mut()
        .unwrap()
        .endpoint_params
        .insert("life".into(), "11".into());
    assert_eq!(body(fetcher.fetch(&s).await), "o 1\n");
    assert_eq!(body(fetcher.fetch(&s).await), "o 1\n");
    assert_eq!(tokens.seen().len(), 3);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(body(fetcher.fetch(&s).await), "o 1\n");
    assert_eq!(tokens.seen().len(), 4);
    assert_eq!(
        header_of(target.seen().last().unwrap(), "authorization"),
        ["Bearer tok-4"]
    );
}

#[tokio::test]
async fn oauth2_falls_back_to_form_credentials_and_reports_refusals() {
    // Basic refused, form credentials taken (Go's auto-detection).
    let tokens = serve(
        Arc::new(|seen, _| {
            let form: BTreeMap<String, String> = url::form_urlencoded::parse(&seen.body)
                .into_owned()
                .collect();
            if form.get("client_secret").map(String::as_str) == Some("s") {
                (
                    200,
                    vec![(
                        "content-type".into(),
                        "application/x-www-form-urlencoded".into(),
                    )],
                    "access_token=formtok&token_type=bearer".into(),
                )
            } else {
                (
                    401,
                    vec![("content-type".into(), "application/json".into())],
                    r#"{"error":"invalid_client","error_description":"no basic here"}"#.into(),
                )
            }
        }),
        None,
    )
    .await;
    let target = serve(fixed(ok("f 1\n")), None).await;
    let mut s = spec(format!("http://127.0.0.1:{}/metrics", target.addr.port()));
    let oauth2 = OAuth2 {
        client_id: "c".into(),
        client_secret: Some(Secret("s".into())),
        client_secret_file: None,
        scopes: Vec::new(),
        token_url: format!("http://127.0.0.1:{}/token", tokens.addr.port()),
        endpoint_params: BTreeMap::new(),
        tls_config: TlsConfig::default(),
        proxy: ProxyConfig::default(),
    };
    s.http_client.oauth2 = Some(oauth2.clone());
    let fetcher = HttpFetcher::new();
    assert_eq!(body(fetcher.fetch(&s).await), "f 1\n");
    assert_eq!(
        header_of(&target.seen()[0], "authorization"),
        ["Bearer formtok"]
    );
    assert_eq!(tokens.seen().len(), 2);
    // A wrong secret: the endpoint's error fails the scrape, in Go's words.
    s.http_client.oauth2 = Some(OAuth2 {
        client_secret: Some(Secret("wrong".into())),
        ..oauth2
    });
    assert_eq!(
        error(fetcher.fetch(&s).await),
        format!(
            "Get \"http://127.0.0.1:{}/metrics\": oauth2: \"invalid_client\" \"no basic here\"",
            target.addr.port()
        )
    );
    assert_eq!(target.seen().len(), 1, "no scrape without a token");
}

#[tokio::test]
async fn http_headers_send_values_secrets_and_files() {
    let target = serve(fixed(ok("h 1\n")), None).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("h");
    std::fs::write(&file, "  from-file-1 \n").unwrap();
    let mut s = spec(format!("http://127.0.0.1:{}/metrics", target.addr.port()));
    let mut headers = BTreeMap::new();
    headers.insert(
        "X-Multi".to_string(),
        HttpHeader {
            values: vec!["v1".into(), "v2".into()],
            secrets: vec![Secret("s1".into())],
            files: vec![file.display().to_string()],
        },
    );
    s.http_client.http_headers = headers;
    let fetcher = HttpFetcher::new();
    assert_eq!(body(fetcher.fetch(&s).await), "h 1\n");
    assert_eq!(
        header_of(&target.seen()[0], "x-multi"),
        ["v1", "v2", "s1", "from-file-1"]
    );
    // The file is read at every scrape.
    std::fs::write(&file, "from-file-2").unwrap();
    assert_eq!(body(fetcher.fetch(&s).await), "h 1\n");
    assert_eq!(header_of(&target.seen()[1], "x-multi")[3], "from-file-2");
    // An unreadable file fails the scrape, naming the file.
    std::fs::remove_file(&file).unwrap();
    let e = error(fetcher.fetch(&s).await);
    assert!(
        e.starts_with(&format!("unable to read headers file {}: ", file.display())),
        "{e}"
    );
}

/// A CA, a server certificate for `names` and a client certificate, all signed by the CA,
/// as PEM text.
struct Pki {
    ca_pem: String,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    server_certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
    client_pem: String,
    client_key_pem: String,
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
        let client = rcgen::CertificateParams::new(vec!["client".to_string()])
            .unwrap()
            .signed_by(&client_key, &ca, &ca_key)
            .unwrap();
        Pki {
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            server_certs: vec![server.der().clone()],
            server_key: rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
            client_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }

    /// A server configuration; `versions` empty: TLS 1.2 and 1.3. Offers `h2` and
    /// `http/1.1` by ALPN.
    fn server_config(
        &self,
        require_client_cert: bool,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions = if versions.is_empty() {
            rustls::DEFAULT_VERSIONS
        } else {
            versions
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
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
        let mut config = builder
            .with_single_cert(self.server_certs.clone(), self.server_key.clone_key())
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }
}

#[tokio::test]
async fn http2_is_negotiated_by_alpn_only_when_enabled_and_https_keeps_connections() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = serve(fixed(ok("h2 1\n")), Some(pki.server_config(false, &[]))).await;
    let mut s = spec(format!("https://127.0.0.1:{}/metrics", server.addr.port()));
    s.tls_config.ca = Some(pki.ca_pem.clone());
    let fetcher = HttpFetcher::new();
    for _ in 0..2 {
        assert_eq!(body(fetcher.fetch(&s).await), "h2 1\n");
    }
    let seen = server.seen();
    assert!(
        seen.iter().all(|r| r.version == hyper::Version::HTTP_2),
        "{seen:?}"
    );
    assert_eq!(
        seen[0].target,
        format!("https://127.0.0.1:{}/metrics", server.addr.port())
    );
    // Two scrapes, one TLS connection.
    assert_eq!(server.accepts.load(Ordering::SeqCst), 1);

    s.http_client.enable_http2 = false;
    for _ in 0..2 {
        assert_eq!(body(fetcher.fetch(&s).await), "h2 1\n");
    }
    let seen = server.seen();
    assert!(
        seen[2..]
            .iter()
            .all(|r| r.version == hyper::Version::HTTP_11),
        "{seen:?}"
    );
    assert_eq!(seen[2].target, "/metrics");
    // Other settings, another connection; kept alive in turn.
    assert_eq!(server.accepts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn tls_versions_are_enforced() {
    let pki = Pki::new(&["127.0.0.1"]);
    let tls12 = serve(
        fixed(ok("v 1\n")),
        Some(pki.server_config(false, &[&rustls::version::TLS12])),
    )
    .await;
    let tls13 = serve(
        fixed(ok("v 1\n")),
        Some(pki.server_config(false, &[&rustls::version::TLS13])),
    )
    .await;
    let fetcher = HttpFetcher::with_connector(scrapepool_adapters::http::TcpConnector);
    let at = |server: &Server, min: Option<TlsVersion>, max: Option<TlsVersion>| {
        let mut s = spec(format!("https://127.0.0.1:{}/metrics", server.addr.port()));
        s.tls_config.ca = Some(pki.ca_pem.clone());
        s.tls_config.min_version = min;
        s.tls_config.max_version = max;
        s
    };
    assert_eq!(body(fetcher.fetch(&at(&tls12, None, None)).await), "v 1\n");
    assert_eq!(body(fetcher.fetch(&at(&tls13, None, None)).await), "v 1\n");
    let e = error(
        fetcher
            .fetch(&at(&tls12, Some(TlsVersion::Tls13), None))
            .await,
    );
    assert!(e.contains("tls: "), "{e}");
    let e = error(
        fetcher
            .fetch(&at(&tls13, None, Some(TlsVersion::Tls12)))
            .await,
    );
    assert!(e.contains("tls: "), "{e}");
    assert_eq!(
        body(
            fetcher
                .fetch(&at(
                    &tls12,
                    Some(TlsVersion::Tls10),
                    Some(TlsVersion::Tls12)
                ))
                .await
        ),
        "v 1\n"
    );
    assert_eq!(
        error(
            fetcher
                .fetch(&at(&tls12, None, Some(TlsVersion::Tls11)))
                .await
        ),
        "tls_config: no TLS version from TLS12 to TLS11: scrapepool speaks only TLS12 and TLS13"
    );
}

#[tokio::test]
async fn inline_ca_cert_and_key_make_mutual_tls() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = serve(fixed(ok("mtls 1\n")), Some(pki.server_config(true, &[]))).await;
    let mut s = spec(format!("https://127.0.0.1:{}/metrics", server.addr.port()));
    s.tls_config = TlsConfig {
        ca: Some(pki.ca_pem.clone()),
        cert: Some(pki.client_pem.clone()),
        key: Some(Secret(pki.client_key_pem.clone())),
        ..TlsConfig::default()
    };
    let fetcher = HttpFetcher::new();
    assert_eq!(body(fetcher.fetch(&s).await), "mtls 1\n");
    // Without the client certificate the server refuses the handshake.
    s.tls_config.cert = None;
    s.tls_config.key = None;
    let e = error(fetcher.fetch(&s).await);
    assert!(e.starts_with("Get \""), "{e}");
    // A CA that is not PEM is named, not dialed.
    s.tls_config.ca = Some("not a certificate".into());
    assert_eq!(
        error(fetcher.fetch(&s).await),
        "unable to use specified CA cert inline: no certificate in it"
    );
}

#[tokio::test]
async fn proxy_from_environment_reads_http_proxy_and_no_proxy() {
    // Only this test of the binary reads the environment (proxy_from_environment).
    let target = serve(fixed(ok("env 1\n")), None).await;
    let (proxy_addr, log) = proxy().await;
    std::env::set_var("HTTP_PROXY", format!("http://{proxy_addr}"));
    std::env::set_var("NO_PROXY", "skipped.test");
    let fetcher = HttpFetcher::new();
    let at = |host: &str| {
        let mut s = spec(format!("http://{host}:{}/m", target.addr.port()));
        s.timeout = Duration::from_secs(3);
        s.http_client.proxy.proxy_from_environment = true;
        s
    };
    assert_eq!(body(fetcher.fetch(&at("via-env.test")).await), "env 1\n");
    assert_eq!(log.lock().unwrap().len(), 1);
    assert_eq!(body(fetcher.fetch(&at("127.0.0.1")).await), "env 1\n");
    let e = error(fetcher.fetch(&at("skipped.test")).await);
    assert_eq!(log.lock().unwrap().len(), 1, "{e}");
    // Without proxy_from_environment the variables are not read.
    let mut s = at("via-env.test");
    s.http_client.proxy.proxy_from_environment = false;
    let e = error(fetcher.fetch(&s).await);
    assert!(!e.contains("proxyconnect"), "{e}");
    assert_eq!(log.lock().unwrap().len(), 1, "{e}");
}
