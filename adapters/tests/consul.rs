//! Consul discovery against the fake Consul agent (tests/support/fake_consul.rs): labels,
//! blocking queries, filters, health, index resets, tokens and errors.

#[path = "support/fake_consul.rs"]
mod fake_consul;

use std::collections::BTreeMap;
use std::time::Duration;

use fake_consul::{FakeConsul, FakeInstance, FakeNode};
use scrapepool_adapters::discovery::ConsulDiscoverer;
use scrapepool_adapters::ports::Discoverer;
use scrapepool_core::config::{
    load_job, ConsulSdConfig, HttpClientConfig, Scheme, SdConfig, Secret, TargetGroup,
};
use scrapepool_core::labels::Labels;
use scrapepool_core::node::ProviderId;
use scrapepool_core::Event;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Longest we wait for an expected event.
const EVENT_WAIT: Duration = Duration::from_secs(5);
/// What "promptly" means for a change seen through a blocking query: far below the wait.
const PROMPT: Duration = Duration::from_millis(1500);

type Update = Result<Vec<TargetGroup>, String>;

fn config(server: &str) -> ConsulSdConfig {
    ConsulSdConfig {
        server: server.to_string(),
        path_prefix: None,
        scheme: Scheme::Http,
        datacenter: None,
        namespace: None,
        partition: None,
        token: None,
        services: vec![],
        tags: vec![],
        node_meta: BTreeMap::new(),
        filter: None,
        health_filter: None,
        tag_separator: ",".into(),
        allow_stale: true,
        refresh_interval: Duration::from_millis(20),
        http_client: HttpClientConfig::default(),
    }
}

/// Runs a discoverer whose blocking queries wait `wait` (long, so only a wake-up on change
/// can explain a prompt update) and which retries after 100ms.
fn start(
    config: ConsulSdConfig,
    wait: Duration,
) -> (mpsc::Receiver<Event>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(64);
    let discoverer = ConsulDiscoverer {
        wait,
        retry_interval: Duration::from_millis(100),
    };
    let provider = ProviderId {
        job: "consul".into(),
        index: 2,
        generation: 1,
    };
    let task =
        tokio::spawn(async move { discoverer.run(provider, SdConfig::Consul(config), tx).await });
    (rx, task)
}

async fn next_within(rx: &mut mpsc::Receiver<Event>, limit: Duration) -> Update {
    match tokio::time::timeout(limit, rx.recv()).await {
        Ok(Some(Event::DiscoveryUpdated { provider, result })) => {
            assert_eq!(
                provider,
                ProviderId {
                    job: "consul".into(),
                    index: 2,
                    generation: 1
                }
            );
            result
        }
        Ok(Some(other)) => panic!("unexpected event {other:?}"),
        Ok(None) => panic!("discoverer stopped"),
        Err(_) => panic!("no discovery update within {limit:?}"),
    }
}

async fn next(rx: &mut mpsc::Receiver<Event>) -> Update {
    next_within(rx, EVENT_WAIT).await
}

/// Waits for the next Ok update satisfying `want`, skipping intermediate ones.
async fn until(
    rx: &mut mpsc::Receiver<Event>,
    limit: Duration,
    want: impl Fn(&[TargetGroup]) -> bool,
) -> Vec<TargetGroup> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(groups) = next_within(rx, left).await {
            if want(&groups) {
                return groups;
            }
        }
    }
}

fn node(name: &str, address: &str, meta: &[(&str, &str)]) -> FakeNode {
    FakeNode {
        name: name.into(),
        address: address.into(),
        tagged_addresses: [
            ("lan".to_string(), address.to_string()),
            (
                "wan".to_string(),
                format!("203.0.113.{}", &address[address.len() - 1..]),
            ),
        ]
        .into(),
        meta: meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn instance(id: &str, service: &str, node: &str, tags: &[&str], port: u16) -> FakeInstance {
    FakeInstance {
        id: id.into(),
        service: service.into(),
        node: node.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        address: String::new(),
        port,
        meta: BTreeMap::new(),
        checks: vec![("serfHealth".into(), "passing".into())],
        namespace: String::new(),
        partition: String::new(),
    }
}

fn addresses(groups: &[TargetGroup], service: &str) -> Vec<String> {
    groups
        .iter()
        .filter(|g| g.source == service)
        .flat_map(|g| {
            g.targets
                .iter()
                .map(|t| t.get("__address__").unwrap().to_string())
        })
        .collect()
}

fn sources(groups: &[TargetGroup]) -> Vec<&str> {
    groups.iter().map(|g| g.source.as_str()).collect()
}

#[tokio::test]
async fn labels_are_prometheus_and_changes_arrive_promptly() {
    let consul = FakeConsul::start("dc-test").await;
    consul.put_node(node("n1", "10.0.0.1", &[("rack-id", "r1")]));
    consul.put_node(node("n2", "10.0.0.2", &[]));
    let mut web1 = instance("web-1", "web", "n1", &["prod", "v2"], 8080);
    web1.meta = [("build.sha".to_string(), "abc".to_string())].into();
    consul.register(web1);
    let mut web2 = instance("web-2", "web", "n2", &[], 8081);
    web2.address = "fd00::2".into();
    consul.register(web2);
    consul.register(instance("db-1", "db", "n2", &["primary"], 5432));

    let (mut rx, task) = start(config(&consul.server()), Duration::from_secs(30));
    let groups = next(&mut rx).await.expect("first result");
    assert_eq!(sources(&groups), vec!["db", "web"]);
    let web = &groups[1];
    assert_eq!(
        web.labels,
        Labels::from_pairs([
            ("__meta_consul_service", "web"),
            ("__meta_consul_dc", "dc-test")
        ])
    );
    let expected_web1 = Labels::from_pairs([
        ("__address__", "10.0.0.1:8080"),
        ("__meta_consul_address", "10.0.0.1"),
        ("__meta_consul_node", "n1"),
        ("__meta_consul_tags", ",prod,v2,"),
        ("__meta_consul_service_port", "8080"),
        ("__meta_consul_service_id", "web-1"),
        ("__meta_consul_health", "passing"),
        ("__meta_consul_metadata_rack_id", "r1"),
        ("__meta_consul_service_metadata_build_sha", "abc"),
        ("__meta_consul_tagged_address_lan", "10.0.0.1"),
        ("__meta_consul_tagged_address_wan", "203.0.113.1"),
    ]);
    let expected_web2 = Labels::from_pairs([
        ("__address__", "[fd00::2]:8081"),
        ("__meta_consul_address", "10.0.0.2"),
        ("__meta_consul_node", "n2"),
        ("__meta_consul_tags", ",,"),
        ("__meta_consul_service_address", "fd00::2"),
        ("__meta_consul_service_port", "8081"),
        ("__meta_consul_service_id", "web-2"),
        ("__meta_consul_health", "passing"),
        ("__meta_consul_tagged_address_lan", "10.0.0.2"),
        ("__meta_consul_tagged_address_wan", "203.0.113.2"),
    ]);
    assert_eq!(web.targets, vec![expected_web1, expected_web2]);
    // The datacenter came from /v1/agent/self and is sent on every query; stale is allowed.
    let reqs = consul.requests();
    assert_eq!(reqs[0].path, "/v1/agent/self");
    let health = reqs
        .iter()
        .find(|r| r.path == "/v1/health/service/web")
        .expect("health query");
    assert!(
        health.query.contains(&("dc".into(), "dc-test".into())),
        "{:?}",
        health.query
    );
    assert!(
        health.query.iter().any(|(k, _)| k == "stale"),
        "{:?}",
        health.query
    );

    // Let the watchers settle into their blocking queries, then change the catalog.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let blocked = consul.requests().iter().any(|r| {
        r.path == "/v1/health/service/web" && r.query.iter().any(|(k, v)| k == "index" && v != "0")
    });
    assert!(blocked, "the watcher must use blocking queries");
    let t0 = Instant::now();
    consul.register(instance("web-3", "web", "n2", &["prod"], 9000));
    let groups = until(&mut rx, PROMPT, |g| addresses(g, "web").len() == 3).await;
    assert!(t0.elapsed() < PROMPT);
    assert_eq!(
        addresses(&groups, "web"),
        vec!["10.0.0.1:8080", "10.0.0.2:9000", "[fd00::2]:8081"]
    );

    // A service leaving the catalog takes its group with it; a new one appears.
    consul.deregister("db-1");
    let groups = until(&mut rx, PROMPT, |g| !sources(g).contains(&"db")).await;
    assert_eq!(sources(&groups), vec!["web"]);
    consul.register(instance("cache-1", "cache", "n1", &[], 6379));
    let groups = until(&mut rx, PROMPT, |g| sources(g).contains(&"cache")).await;
    assert_eq!(addresses(&groups, "cache"), vec!["10.0.0.1:6379"]);
    task.abort();
}

#[tokio::test]
async fn tags_and_node_meta_filter_services_and_instances() {
    let consul = FakeConsul::start("dc1").await;
    consul.put_node(node("n1", "10.0.0.1", &[("rack", "r1")]));
    consul.put_node(node("n2", "10.0.0.2", &[("rack", "r2")]));
    consul.register(instance("web-1", "web", "n1", &["prod", "http"], 80));
    consul.register(instance("web-2", "web", "n2", &["prod", "http"], 80)); // wrong rack
    consul.register(instance("web-3", "web", "n1", &["http"], 81)); // lacks "prod"
    consul.register(instance("batch-1", "batch", "n1", &["http"], 90)); // service lacks "prod"

    let mut cfg = config(&consul.server());
    cfg.tags = vec!["prod".into(), "http".into()];
    cfg.node_meta = [("rack".to_string(), "r1".to_string())].into();
    cfg.datacenter = Some("dc1".into());
    let (mut rx, task) = start(cfg, Duration::from_secs(30));
    let groups = next(&mut rx).await.unwrap();
    assert_eq!(sources(&groups), vec!["web"]);
    assert_eq!(addresses(&groups, "web"), vec!["10.0.0.1:80"]);
    let reqs = consul.requests();
    assert!(
        reqs.iter().all(|r| r.path != "/v1/agent/self"),
        "a configured datacenter needs no agent lookup"
    );
    assert!(
        reqs.iter().all(|r| r.path != "/v1/health/service/batch"),
        "a service without the tags is not watched"
    );
    let catalog = reqs
        .iter()
        .find(|r| r.path == "/v1/catalog/services")
        .unwrap();
    assert!(
        catalog
            .query
            .contains(&("node-meta".into(), "rack:r1".into())),
        "{:?}",
        catalog.query
    );
    let health = reqs
        .iter()
        .find(|r| r.path == "/v1/health/service/web")
        .unwrap();
    let tags: Vec<&str> = health
        .query
        .iter()
        .filter(|(k, _)| k == "tag")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(tags, vec!["prod", "http"]);
    task.abort();
}

#[tokio::test]
async fn listed_services_without_tags_skip_the_catalog() {
    let consul = FakeConsul::start("dc1").await;
    consul.put_node(node("n1", "10.0.0.1", &[]));
    consul.register(instance("a-1", "a", "n1", &[], 1));
    consul.register(instance("b-1", "b", "n1", &[], 2));
    let mut cfg = config(&consul.server());
    cfg.services = vec!["a".into(), "missing".into()];
    cfg.allow_stale = false;
    let (mut rx, task) = start(cfg, Duration::from_secs(30));
    let groups = next(&mut rx).await.unwrap();
    // A listed service with no instances is an empty group, as in Prometheus.
    assert_eq!(sources(&groups), vec!["a", "missing"]);
    assert_eq!(addresses(&groups, "a"), vec!["10.0.0.1:1"]);
    assert!(groups[1].targets.is_empty());
    let reqs = consul.requests();
    assert!(reqs.iter().all(|r| r.path != "/v1/catalog/services"));
    assert!(
        reqs.iter()
            .all(|r| !r.query.iter().any(|(k, _)| k == "stale")),
        "allow_stale: false sends no stale"
    );
    task.abort();
}

#[tokio::test]
async fn health_is_aggregated_as_prometheus_reports_it() {
    let consul = FakeConsul::start("dc1").await;
    consul.put_node(node("n1", "10.0.0.1", &[]));
    consul.register(instance("web-1", "web", "n1", &[], 80));
    let (mut rx, task) = start(config(&consul.server()), Duration::from_secs(30));
    let health = |g: &[TargetGroup]| {
        g.iter()
            .flat_map(|g| g.targets.iter())
            .map(|t| t.get("__meta_consul_health").unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    let groups = next(&mut rx).await.unwrap();
    assert_eq!(health(&groups), vec!["passing"]);
    tokio::time::sleep(Duration::from_millis(100)).await;

    consul.set_check("web-1", "service:web-1", "warning");
    until(&mut rx, PROMPT, |g| health(g) == vec!["warning"]).await;
    consul.set_check("web-1", "serfHealth", "critical");
    until(&mut rx, PROMPT, |g| health(g) == vec!["critical"]).await;
    consul.set_check("web-1", "_service_maintenance:web-1", "critical");
    until(&mut rx, PROMPT, |g| health(g) == vec!["maintenance"]).await;
    task.abort();
}

#[tokio::test]
async fn index_going_backwards_resets_the_watch() {
    let consul = FakeConsul::start("dc1").await;
    consul.put_node(node("n1", "10.0.0.1", &[]));
    for i in 0..20 {
        consul.register(instance(&format!("w-{i}"), "web", "n1", &[], 1000 + i));
    }
    // A short wait, so that the first answer after the rewind comes within the test.
    let wait = Duration::from_secs(4);
    let (mut rx, task) = start(config(&consul.server()), wait);
    assert_eq!(addresses(&next(&mut rx).await.unwrap(), "web").len(), 20);
    assert!(consul.service_index("web") > 20);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A restored snapshot: every index is now lower than the one the watcher blocks on.
    consul.rewind_indexes(3);
    consul.deregister("w-0");
    // The watcher blocks on its old, higher index until the wait ends, then sees the lower one.
    let groups = until(&mut rx, wait + PROMPT, |g| addresses(g, "web").len() == 19).await;
    assert_eq!(addresses(&groups, "web").len(), 19);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Having reset, it blocks on the new, low index: the next change arrives promptly, not
    // after another full wait.
    let t0 = Instant::now();
    consul.deregister("w-1");
    until(&mut rx, wait, |g| addresses(g, "web").len() == 18).await;
    assert!(
        t0.elapsed() < Duration::from_millis(2000),
        "took {:?}: the watch did not reset",
        t0.elapsed()
    );
    task.abort();
}

#[tokio::test]
async fn zero_index_does_not_turn_into_a_busy_loop() {
    let consul = FakeConsul::start("dc1").await;
    consul.put_node(node("n1", "10.0.0.1", &[]));
    consul.register(instance("web-1", "web", "n1", &[], 80));
    consul.answer_zero_index(true);
    let mut cfg = config(&consul.server());
    cfg.services = vec!["web".into()];
    cfg.refresh_interval = Duration::from_millis(10);
    let (mut rx, task) = start(cfg, Duration::from_secs(30));
    assert_eq!(
        addresses(&next(&mut rx).await.unwrap(), "web"),
        vec!["10.0.0.1:80"]
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let count = consul
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/health/service/web")
        .count();
    // Treating 0 as 1 makes the second request block; with index 0 it would return at once
    // and repeat every 10ms (about 60 requests here).
    assert!(
        count <= 3,
        "{count} requests in 600ms: index 0 was used for blocking"
    );
    task.abort();
}

#[tokio::test]
async fn token_is_sent_in_the_header_and_never_shown() {
    let consul = FakeConsul::start("dc1").await;
    consul.put_node(node("n1", "10.0.0.1", &[]));
    consul.register(instance("web-1", "web", "n1", &[], 80));
    consul.require_token("right-token-123");

    let mut cfg = config(&consul.server());
    cfg.token = Some(Secret("wrong-token-456".into()));
    let (mut rx, task) = start(cfg.clone(), Duration::from_secs(30));
    let error = next(&mut rx).await.expect_err("a wrong token is refused");
    assert!(
        error.contains(&consul.server()),
        "error names the server: {error}"
    );
    assert!(error.contains("403"), "{error}");
    assert!(
        !error.contains("wrong-token-456"),
        "the token leaked into: {error}"
    );
    assert!(
        !format!("{cfg:?}").contains("wrong-token-456"),
        "the config's Debug shows the token"
    );
    task.abort();

    cfg.token = Some(Secret("right-token-123".into()));
    let (mut rx, task) = start(cfg, Duration::from_secs(30));
    assert_eq!(
        addresses(&next(&mut rx).await.unwrap(), "web"),
        vec!["10.0.0.1:80"]
    );
    let last = consul.requests().pop().unwrap();
    assert_eq!(last.token.as_deref(), Some("right-token-123"));
    assert!(
        consul
            .requests()
            .iter()
            .all(|r| r.query.iter().all(|(_, v)| !v.contains("token"))),
        "the token must not go in the URL"
    );
    task.abort();
}

#[tokio::test]
async fn errors_name_server_and_what_failed_and_recovery_clears_them() {
    // Nothing listens on this port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let server = format!("127.0.0.1:{port}");
    let (mut rx, task) = start(config(&server), Duration::from_secs(30));
    let error = next(&mut rx).await.expect_err("nothing listens");
    assert!(
        error.contains(&server) && error.contains("/v1/agent/self"),
        "{error}"
    );
    task.abort();

    let consul = FakeConsul::start("dc1").await;
    consul.put_node(node("n1", "10.0.0.1", &[]));
    consul.register(instance("web-1", "web", "n1", &[], 80));
    let mut cfg = config(&consul.server());
    cfg.datacenter = Some("elsewhere".into());
    let (mut rx, task) = start(cfg, Duration::from_secs(30));
    let error = next(&mut rx).await.expect_err("unknown datacenter");
    assert!(
        error.contains(&consul.server())
            && error.contains("No path to datacenter")
            && error.contains("/v1/catalog/services"),
        "{error}"
    );
    task.abort();

    // A token that starts being required mid-watch: error, then recovery when it is dropped.
    let (mut rx, task) = start(config(&consul.server()), Duration::from_secs(30));
    assert!(next(&mut rx).await.is_ok());
    tokio::time::sleep(Duration::from_millis(100)).await;
    consul.require_token("t");
    consul.register(instance("web-2", "web", "n1", &[], 81));
    // The blocked queries answer with the change (they passed the ACL check on arrival);
    // the next ones are refused.
    let error = loop {
        if let Err(e) = next(&mut rx).await {
            break e;
        }
    };
    assert!(
        error.contains("403") && error.contains(&consul.server()),
        "{error}"
    );
    // The token requirement goes away: the watchers retry and the error clears.
    consul.clear_token();
    let groups = until(&mut rx, PROMPT, |_| true).await;
    assert_eq!(
        addresses(&groups, "web"),
        vec!["10.0.0.1:80", "10.0.0.1:81"]
    );
    task.abort();
}

/// A test CA and a server certificate for 127.0.0.1 signed by it; the CA's PEM in a file.
struct Pki {
    dir: tempfile::TempDir,
    server_certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "fake consul CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let names = vec!["127.0.0.1".to_string(), "consul.test".to_string()];
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki {
            dir,
            server_certs: vec![cert.der().clone()],
            server_key: rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        }
    }

    fn ca_file(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }

    fn server_config(&self) -> rustls::ServerConfig {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(self.server_certs.clone(), self.server_key.clone_key())
            .unwrap()
    }
}

#[tokio::test]
async fn https_with_the_configured_ca_works_and_an_unknown_ca_is_an_error() {
    let pki = Pki::new();
    let consul = FakeConsul::start_with_tls("dc1", Some(pki.server_config())).await;
    consul.put_node(node("n1", "10.0.0.1", &[]));
    consul.register(instance("web-1", "web", "n1", &[], 80));

    // Without the CA: the certificate is refused, and the error says so and names the server.
    let mut cfg = config(&consul.server());
    cfg.scheme = Scheme::Https;
    let (mut rx, task) = start(cfg.clone(), Duration::from_secs(30));
    let error = next(&mut rx).await.expect_err("unknown CA");
    assert!(
        error.contains(&consul.server()) && error.contains("tls") && error.contains("certificate"),
        "{error}"
    );
    task.abort();
    assert!(consul.requests().is_empty(), "no request got through TLS");

    // With the CA (and a blocking watch over TLS that sees a change).
    cfg.http_client.tls_config.ca_file = Some(pki.ca_file());
    let (mut rx, task) = start(cfg.clone(), Duration::from_secs(30));
    assert_eq!(
        addresses(&next(&mut rx).await.unwrap(), "web"),
        vec!["10.0.0.1:80"]
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    consul.register(instance("web-2", "web", "n1", &[], 81));
    let groups = until(&mut rx, PROMPT, |g| addresses(g, "web").len() == 2).await;
    assert_eq!(
        addresses(&groups, "web"),
        vec!["10.0.0.1:80", "10.0.0.1:81"]
    );
    task.abort();

    // server_name overrides the name checked against the certificate.
    cfg.http_client.tls_config.server_name = Some("not-in-the-cert.test".into());
    let (mut rx, task) = start(cfg, Duration::from_secs(30));
    let error = next(&mut rx).await.expect_err("wrong server name");
    assert!(error.contains("certificate"), "{error}");
    task.abort();
}

#[tokio::test]
async fn an_unreadable_ca_file_is_an_error_naming_it() {
    let mut cfg = config("127.0.0.1:1");
    cfg.scheme = Scheme::Https;
    cfg.http_client.tls_config.ca_file = Some("/nonexistent/ca.pem".into());
    let (mut rx, task) = start(cfg, Duration::from_secs(30));
    let error = next(&mut rx).await.expect_err("missing CA file");
    assert!(
        error.contains("/nonexistent/ca.pem") && error.contains("127.0.0.1:1"),
        "{error}"
    );
    task.abort();
}

#[tokio::test]
async fn a_token_that_cannot_be_a_header_is_an_error_that_hides_it() {
    let consul = FakeConsul::start("dc1").await;
    let mut cfg = config(&consul.server());
    cfg.token = Some(Secret("bad\ntoken-789".into()));
    let (mut rx, task) = start(cfg, Duration::from_secs(30));
    let error = next(&mut rx).await.expect_err("unusable token");
    assert!(
        error.contains("token") && error.contains(&consul.server()),
        "{error}"
    );
    assert!(
        !error.contains("token-789"),
        "the token leaked into: {error}"
    );
    assert!(
        consul.requests().is_empty(),
        "no request goes out without the token"
    );
    task.abort();
}

#[test]
fn consul_tls_config_is_read_from_the_job_yaml() {
    let yaml = "job_name: c\nconsul_sd_configs:\n  - server: 127.0.0.1:8501\n    scheme: https\n    tls_config:\n      ca_file: /etc/consul/ca.pem\n      server_name: consul.test\n";
    let (jobs, errors) = scrapepool_core::config::load_jobs(
        yaml,
        "test.yml",
        &scrapepool_core::config::GlobalConfig::default(),
    );
    assert!(errors.is_empty(), "{errors:?}");
    let SdConfig::Consul(c) = &jobs[0].sd_configs[0] else {
        panic!("not consul: {:?}", jobs[0].sd_configs)
    };
    assert_eq!(c.scheme, Scheme::Https);
    assert_eq!(
        c.http_client.tls_config.ca_file.as_deref(),
        Some("/etc/consul/ca.pem")
    );
    assert_eq!(
        c.http_client.tls_config.server_name.as_deref(),
        Some("consul.test")
    );
}

#[tokio::test]
async fn namespace_and_partition_select_instances_and_label_them() {
    let consul = FakeConsul::start("dc1").await;
    consul.put_node(node("n1", "10.0.0.1", &[]));
    let mut team = instance("web-a", "web", "n1", &[], 8080);
    team.namespace = "team-a".into();
    team.partition = "part-1".into();
    consul.register(team);
    consul.register(instance("web-default", "web", "n1", &[], 9090));
    let mut cfg = config(&consul.server());
    cfg.namespace = Some("team-a".into());
    cfg.partition = Some("part-1".into());
    let (mut rx, task) = start(cfg, Duration::from_secs(30));
    let groups = next(&mut rx).await.expect("first result");
    assert_eq!(addresses(&groups, "web"), vec!["10.0.0.1:8080"]);
    let target = &groups[0].targets[0];
    assert_eq!(target.get("__meta_consul_namespace"), Some("team-a"));
    assert_eq!(target.get("__meta_consul_partition"), Some("part-1"));
    // Every request named the namespace and the partition.
    let requests = consul.requests();
    assert!(requests.len() >= 2, "{requests:?}");
    for r in requests.iter().filter(|r| r.path != "/v1/agent/self") {
        let has = |k: &str, v: &str| r.query.iter().any(|(a, b)| a == k && b == v);
        assert!(has("ns", "team-a") && has("partition", "part-1"), "{r:?}");
    }
    task.abort();

    // Without them, the default namespace's instance, with no namespace label.
    let (mut rx, task) = start(config(&consul.server()), Duration::from_secs(30));
    let groups = next(&mut rx).await.expect("first result");
    assert_eq!(addresses(&groups, "web"), vec!["10.0.0.1:9090"]);
    assert_eq!(groups[0].targets[0].get("__meta_consul_namespace"), None);
    task.abort();
}

#[tokio::test]
async fn filter_selects_services_and_health_filter_selects_instances() {
    let consul = FakeConsul::start("dc1").await;
    consul.put_node(node("n1", "10.0.0.1", &[("env", "prod")]));
    consul.register(instance("web-1", "web", "n1", &["http"], 8080));
    consul.register(instance("web-2", "web", "n1", &["http", "canary"], 8081));
    consul.register(instance("db-1", "db", "n1", &["sql"], 5432));
    let mut cfg = config(&consul.server());
    cfg.filter = Some("\"http\" in ServiceTags and NodeMeta.env == \"prod\"".into());
    cfg.health_filter = Some("\"canary\" not in Service.Tags".into());
    let (mut rx, task) = start(cfg.clone(), Duration::from_secs(30));
    let groups = next(&mut rx).await.expect("first result");
    assert_eq!(sources(&groups), vec!["web"]);
    assert_eq!(addresses(&groups, "web"), vec!["10.0.0.1:8080"]);
    let requests = consul.requests();
    let filters = |path: &str| -> Vec<String> {
        requests
            .iter()
            .filter(|r| r.path.starts_with(path))
            .flat_map(|r| {
                r.query
                    .iter()
                    .filter(|(k, _)| k == "filter")
                    .map(|(_, v)| v.clone())
            })
            .collect()
    };
    assert!(filters("/v1/catalog/services")
        .iter()
        .all(|f| *f == cfg.filter.clone().unwrap()));
    assert!(!filters("/v1/catalog/services").is_empty());
    assert!(filters("/v1/health/service/")
        .iter()
        .all(|f| *f == cfg.health_filter.clone().unwrap()));
    assert!(!filters("/v1/health/service/").is_empty());
    task.abort();

    // With `services` and a filter, the catalog is still watched (as Prometheus does), so
    // a listed service the filter excludes gets no group.
    let mut cfg = config(&consul.server());
    cfg.services = vec!["web".into(), "db".into()];
    cfg.filter = Some("ServiceName != \"db\"".into());
    let (mut rx, task) = start(cfg, Duration::from_secs(30));
    let groups = next(&mut rx).await.expect("first result");
    assert_eq!(sources(&groups), vec!["web"]);
    task.abort();

    // A filter Consul cannot read: its answer is the error.
    let mut cfg = config(&consul.server());
    cfg.filter = Some("Bogus == \"x\"".into());
    let (mut rx, task) = start(cfg, Duration::from_secs(30));
    let e = next(&mut rx).await.unwrap_err();
    assert!(
        e.contains("service list") && e.contains("status 400") && e.contains("Bogus"),
        "{e}"
    );
    task.abort();
}

#[tokio::test]
async fn path_prefix_and_basic_auth_from_username_and_password() {
    let consul = FakeConsul::start("dc1").await;
    consul.set_path_prefix("/consul");
    consul.put_node(node("n1", "10.0.0.1", &[]));
    consul.register(instance("web-1", "web", "n1", &[], 8080));
    let text = format!(
        "job_name: c\nconsul_sd_configs:\n  - server: '{}'\n    path_prefix: consul\n    username: admin\n    password: s3cret\n    refresh_interval: 20ms\n",
        consul.server()
    );
    let job = load_job(&text, "c.yml", "c").unwrap();
    let [SdConfig::Consul(cfg)] = job.sd_configs.as_slice() else {
        panic!("{:?}", job.sd_configs)
    };
    let (mut rx, task) = start(cfg.clone(), Duration::from_secs(30));
    let groups = next(&mut rx).await.expect("first result");
    assert_eq!(addresses(&groups, "web"), vec!["10.0.0.1:8080"]);
    let requests = consul.requests();
    assert!(
        requests.iter().all(|r| r.path.starts_with("/consul/v1/")),
        "{requests:?}"
    );
    // base64("admin:s3cret")
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Basic YWRtaW46czNjcmV0")),
        "{requests:?}"
    );
    task.abort();

    // Without the prefix the proxy answers 404, named in the error.
    let mut cfg = config(&consul.server());
    cfg.datacenter = Some("dc1".into());
    let (mut rx, task) = start(cfg, Duration::from_secs(30));
    let e = next(&mut rx).await.unwrap_err();
    assert!(
        e.contains("GET /v1/catalog/services") && e.contains("404"),
        "{e}"
    );
    task.abort();
}

#[tokio::test]
async fn authorization_header_and_token_travel_together() {
    let consul = FakeConsul::start("dc1").await;
    consul.require_token("acl-1");
    consul.put_node(node("n1", "10.0.0.1", &[]));
    consul.register(instance("web-1", "web", "n1", &[], 8080));
    let mut cfg = config(&consul.server());
    cfg.token = Some(Secret("acl-1".into()));
    cfg.http_client.basic_auth = Some(scrapepool_core::config::BasicAuth {
        username: "proxy".into(),
        password: Some(Secret("pw".into())),
        password_file: None,
    });
    let (mut rx, task) = start(cfg, Duration::from_secs(30));
    let groups = next(&mut rx).await.expect("first result");
    assert_eq!(addresses(&groups, "web"), vec!["10.0.0.1:8080"]);
    for r in consul.requests() {
        assert_eq!(r.token.as_deref(), Some("acl-1"));
        assert_eq!(r.authorization.as_deref(), Some("Basic cHJveHk6cHc="));
    }
    task.abort();
}
