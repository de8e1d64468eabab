//! HTTP discovery against a small HTTP server of the test's own on 127.0.0.1 whose answer
//! (status, content type, body, delay) changes between refreshes: targets and labels,
//! changes, errors (bad JSON, wrong content type, 500, timeout) with the last good groups
//! kept, the request's headers, and the keys read from a job's YAML.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use scrapepool_adapters::discovery::HttpDiscoverer;
use scrapepool_adapters::ports::Discoverer;
use scrapepool_core::config::{
    load_job, Authorization, HttpClientConfig, HttpSdConfig, SdConfig, Secret, TargetGroup,
};
use scrapepool_core::labels::Labels;
use scrapepool_core::node::ProviderId;
use scrapepool_core::Event;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Longest we wait for an expected event.
const EVENT_WAIT: Duration = Duration::from_secs(5);
/// Refresh interval of the discoverers under test (also their request timeout).
const REFRESH: Duration = Duration::from_millis(300);

type Update = Result<Vec<TargetGroup>, String>;

/// What the server answers.
#[derive(Clone)]
struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
    delay: Duration,
}

/// One request the server received: path and query, and its headers.
#[derive(Clone, Debug)]
struct Logged {
    target: String,
    headers: Vec<(String, String)>,
}

impl Logged {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Server {
    addr: SocketAddr,
    answer: Arc<Mutex<Answer>>,
    log: Arc<Mutex<Vec<Logged>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start(body: &str) -> Server {
        Server::start_with_tls(body, None).await
    }

    /// A server speaking HTTPS with `tls` (plain HTTP when `None`).
    async fn start_with_tls(body: &str, tls: Option<rustls::ServerConfig>) -> Server {
        let acceptor = tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(Answer {
            status: StatusCode::OK,
            content_type: "application/json".into(),
            body: body.into(),
            delay: Duration::ZERO,
        }));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (a, l) = (answer.clone(), log.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (a, l, acceptor) = (a.clone(), l.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (a, l) = (a.clone(), l.clone());
                        async move {
                            l.lock().unwrap().push(Logged {
                                target: req.uri().to_string(),
                                headers: req
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.to_string(), v.to_str().unwrap_or("").to_string())
                                    })
                                    .collect(),
                            });
                            let answer = a.lock().unwrap().clone();
                            tokio::time::sleep(answer.delay).await;
                            let response = Response::builder()
                                .status(answer.status)
                                .header("Content-Type", answer.content_type)
                                .body(Full::new(Bytes::from(answer.body)))
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    match acceptor {
                        None => {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(acceptor) => {
                            // A client that rejects our certificate ends here.
                            let Ok(tls) = acceptor.accept(stream).await else {
                                return;
                            };
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(tls), service)
                                .await;
                        }
                    }
                });
            }
        });
        Server {
            addr,
            answer,
            log,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn set(&self, f: impl FnOnce(&mut Answer)) {
        f(&mut self.answer.lock().unwrap());
    }

    fn requests(&self) -> Vec<Logged> {
        self.log.lock().unwrap().clone()
    }
}

fn config(url: &str) -> HttpSdConfig {
    HttpSdConfig {
        url: url.to_string(),
        refresh_interval: REFRESH,
        http_client: HttpClientConfig::default(),
    }
}

fn start(config: HttpSdConfig) -> (mpsc::Receiver<Event>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(64);
    let provider = ProviderId {
        job: "http".into(),
        index: 0,
        generation: 1,
    };
    let task = tokio::spawn(async move {
        HttpDiscoverer
            .run(provider, SdConfig::Http(config), tx)
            .await
    });
    (rx, task)
}

async fn next(rx: &mut mpsc::Receiver<Event>) -> Update {
    match tokio::time::timeout(EVENT_WAIT, rx.recv()).await {
        Ok(Some(Event::DiscoveryUpdated { provider, result })) => {
            assert_eq!(provider.job, "http");
            result
        }
        Ok(Some(other)) => panic!("unexpected event {other:?}"),
        Ok(None) => panic!("discoverer stopped"),
        Err(_) => panic!("no update within {EVENT_WAIT:?}"),
    }
}

fn addresses(groups: &[TargetGroup]) -> Vec<Vec<&str>> {
    groups
        .iter()
        .map(|g| {
            g.targets
                .iter()
                .map(|t| t.get("__address__").unwrap())
                .collect()
        })
        .collect()
}

/// Asserts no update arrives over a few refreshes.
async fn quiet(rx: &mut mpsc::Receiver<Event>) {
    if let Ok(Some(ev)) = tokio::time::timeout(REFRESH * 4, rx.recv()).await {
        panic!("update without a change: {ev:?}");
    }
}

#[tokio::test]
async fn targets_labels_sources_and_changes() {
    let server = Server::start(
        r#"[{"targets": ["a:9100", "b:9100"], "labels": {"env": "prod"}},
            {"targets": ["c:8080"]}]"#,
    )
    .await;
    let url = server.url("/sd?team=infra");
    let (mut rx, task) = start(config(&url));

    let groups = next(&mut rx).await.unwrap();
    assert_eq!(
        addresses(&groups),
        vec![vec!["a:9100", "b:9100"], vec!["c:8080"]]
    );
    assert_eq!(groups[0].source, format!("{url}:0"));
    assert_eq!(groups[1].source, format!("{url}:1"));
    assert_eq!(
        groups[0].labels,
        Labels::from_pairs([("env", "prod"), ("__meta_url", url.as_str())])
    );
    assert_eq!(
        groups[1].labels,
        Labels::from_pairs([("__meta_url", url.as_str())])
    );
    // Unchanged answers: no update.
    quiet(&mut rx).await;

    // A change: the second group goes, the first changes.
    server.set(|a| a.body = r#"[{"targets": ["a:9100"], "labels": {"env": "dev"}}]"#.into());
    let groups = next(&mut rx).await.unwrap();
    assert_eq!(addresses(&groups), vec![vec!["a:9100"]]);
    assert_eq!(groups[0].labels.get("env"), Some("dev"));

    // Charset in the content type, any case: accepted.
    server.set(|a| {
        a.content_type = "Application/JSON; charset=UTF-8".into();
        a.body = "[]".into();
    });
    assert_eq!(next(&mut rx).await.unwrap(), vec![]);
    task.abort();
}

#[tokio::test]
async fn the_request_carries_prometheus_headers_and_authorization() {
    let server = Server::start("[]").await;
    let mut cfg = config(&server.url("/targets?x=1"));
    cfg.refresh_interval = Duration::from_millis(1500);
    cfg.http_client.authorization = Some(Authorization {
        kind: "Bearer".into(),
        credentials: Some(Secret("sd-token".into())),
        credentials_file: None,
    });
    let (mut rx, task) = start(cfg);
    assert_eq!(next(&mut rx).await.unwrap(), vec![]);
    let request = server.requests().remove(0);
    assert_eq!(request.target, "/targets?x=1");
    assert_eq!(
        request.header("X-Prometheus-Refresh-Interval-Seconds"),
        Some("1.5")
    );
    assert_eq!(request.header("Accept"), Some("application/json"));
    assert_eq!(request.header("Authorization"), Some("Bearer sd-token"));
    assert_eq!(
        request.header("User-Agent"),
        Some(scrapepool_adapters::http::USER_AGENT_VALUE)
    );
    assert_eq!(
        request.header("Host"),
        Some(server.addr.to_string().as_str())
    );
    task.abort();
}

#[tokio::test]
async fn each_failure_is_an_error_naming_the_url_and_the_last_good_groups_stay() {
    let server = Server::start(r#"[{"targets": ["a:1"]}]"#).await;
    let url = server.url("/sd");
    let (mut rx, task) = start(config(&url));
    let good = next(&mut rx).await.unwrap();
    assert_eq!(addresses(&good), vec![vec!["a:1"]]);

    type Change = Box<dyn Fn(&mut Answer)>;
    let cases: Vec<(Change, String)> = vec![
        (
            Box::new(|a| {
                a.status = StatusCode::INTERNAL_SERVER_ERROR;
                a.content_type = "text/plain".into();
                a.body = "db down".into();
            }),
            "server returned HTTP status 500 Internal Server Error: db down".into(),
        ),
        (
            Box::new(|a| a.content_type = "text/plain".into()),
            "unsupported content type \"text/plain\"".into(),
        ),
        (
            Box::new(|a| a.body = "[{\"targets\": [\"a:1\"]".into()),
            "invalid JSON: EOF while parsing an object at line 1 column 20".into(),
        ),
        (
            Box::new(|a| a.body = r#"[{"targets": ["a:1"], "label": {}}]"#.into()),
            "invalid JSON: unknown field `label`, expected `targets` or `labels` at line 1 column 29"
                .into(),
        ),
        (
            Box::new(|a| a.delay = REFRESH * 3),
            format!("no answer within {}ms", REFRESH.as_millis()),
        ),
    ];
    for (set, message) in cases {
        server.set(|a| {
            *a = Answer {
                status: StatusCode::OK,
                content_type: "application/json".into(),
                body: r#"[{"targets": ["a:1"]}]"#.into(),
                delay: Duration::ZERO,
            };
            set(a);
        });
        // Only the error: the core keeps the last good groups in force.
        assert_eq!(
            next(&mut rx).await,
            Err(format!("http_sd: GET {url}: {message}"))
        );
        // The same failure again is not sent again.
        quiet(&mut rx).await;
        // Recovery with the same groups: an Ok clears the error.
        server.set(|a| {
            *a = Answer {
                status: StatusCode::OK,
                content_type: "application/json".into(),
                body: r#"[{"targets": ["a:1"]}]"#.into(),
                delay: Duration::ZERO,
            };
        });
        assert_eq!(next(&mut rx).await, Ok(good.clone()));
    }
    task.abort();
}

#[tokio::test]
async fn a_server_that_is_down_is_an_error_naming_the_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/sd");
    let (mut rx, task) = start(config(&url));
    let e = next(&mut rx).await.unwrap_err();
    assert!(
        e.starts_with(&format!(
            "http_sd: GET {url}: connecting to 127.0.0.1:{}: ",
            addr.port()
        )),
        "{e}"
    );
    task.abort();
}

#[test]
fn http_sd_configs_are_read_from_the_job_yaml() {
    let text = "job_name: h
http_sd_configs:
  - url: https://sd.example/targets
    refresh_interval: 2m
    basic_auth: {username: u, password: pw}
    tls_config: {server_name: sd.internal}
";
    let job = load_job(text, "h.yml", "h").unwrap();
    let [SdConfig::Http(c)] = job.sd_configs.as_slice() else {
        panic!("{:?}", job.sd_configs)
    };
    assert_eq!(c.url, "https://sd.example/targets");
    assert_eq!(c.refresh_interval, Duration::from_secs(120));
    assert_eq!(c.http_client.basic_auth.as_ref().unwrap().username, "u");
    assert_eq!(
        c.http_client.tls_config.server_name.as_deref(),
        Some("sd.internal")
    );
    let e = load_job(
        "job_name: h\nhttp_sd_configs: [{url: 'ftp://x/'}]\n",
        "h.yml",
        "h",
    )
    .unwrap_err();
    assert_eq!(
        e[0].to_string(),
        "h.yml:2:25: job \"h\": http_sd_configs[0].url: URL scheme must be 'http' or 'https'"
    );
}

/// A test CA and a server certificate for 127.0.0.1 and `sd.test` signed by it; the CA's
/// PEM in a file.
struct Pki {
    dir: tempfile::TempDir,
    server: rustls::ServerConfig,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "sd.test".into()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        Pki { dir, server }
    }

    fn ca_file(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }
}

#[tokio::test]
async fn https_with_the_configured_ca_works_and_an_unknown_ca_is_an_error() {
    let pki = Pki::new();
    let server =
        Server::start_with_tls(r#"[{"targets": ["a:1"]}]"#, Some(pki.server.clone())).await;
    let url = format!("https://{}/sd", server.addr);

    // Without the CA: the certificate is refused, and the error says why.
    let (mut rx, task) = start(config(&url));
    let e = next(&mut rx).await.unwrap_err();
    assert!(
        e.starts_with(&format!("http_sd: GET {url}: tls: ")) && e.contains("unknown authority"),
        "{e}"
    );
    task.abort();
    assert!(server.requests().is_empty(), "no request got through TLS");

    // With the CA and a server name the certificate carries.
    let mut cfg = config(&url);
    cfg.http_client.tls_config.ca_file = Some(pki.ca_file());
    cfg.http_client.tls_config.server_name = Some("sd.test".into());
    let (mut rx, task) = start(cfg);
    let groups = next(&mut rx).await.unwrap();
    assert_eq!(addresses(&groups), vec![vec!["a:1"]]);
    task.abort();
}
