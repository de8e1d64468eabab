//! The web server against real drivers: two members with fake ports (fixture fetcher, silent
//! discovery, a sink that acknowledges at once, the system clock), read over HTTP and in
//! headless Chromium.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use scrapepool_adapters::driver::{Driver, Ports};
use scrapepool_adapters::ports::{Clock, Discoverer, EventSender, Fetcher, Sink, SystemClock};
use scrapepool_adapters::sink::{DeliverySeries, SharedLedger};
use scrapepool_adapters::web::{self, ExtraMetrics, NoExtraMetrics, WebState};
use scrapepool_core::config::SdConfig;
use scrapepool_core::delivery::{Admission, DeliveryCounts, LedgerConfig};
use scrapepool_core::encode::Record;
use scrapepool_core::member::{JobsSnapshot, MemberRecord, MemberState, MembersSnapshot};
use scrapepool_core::node::ProviderId;
use scrapepool_core::scrape::{FetchOutcome, ScrapeError, ScrapeSpec};
use scrapepool_core::{Event, Node, NodeConfig};
use serde_json::Value;

/// Every fetch of a URL with this port fails with [`FETCH_ERROR`].
const FAILING_PORT: &str = "19199";
const FETCH_ERROR: &str = "connection refused (test fetcher)";
/// Every fetch of a URL with this port fails with an error that quotes the bearer credentials.
const ECHOING_PORT: &str = "19132";
/// As [`ECHOING_PORT`], for the job with `oauth2`.
const ECHOING_OAUTH2_PORT: &str = "19135";

#[derive(Clone)]
struct FixtureFetcher {
    body: Arc<Vec<u8>>,
}

impl Fetcher for FixtureFetcher {
    async fn fetch(&self, spec: &ScrapeSpec) -> FetchOutcome {
        if spec.url.contains(FAILING_PORT) {
            return FetchOutcome::Failed {
                error: ScrapeError::Connect {
                    url: spec.url.clone(),
                    address: FAILING_PORT.into(),
                    reason: FETCH_ERROR.into(),
                },
            };
        }
        if spec.url.contains(ECHOING_PORT) || spec.url.contains(ECHOING_OAUTH2_PORT) {
            // A careless exporter (or proxy) that quotes the credentials it was sent.
            let http = &spec.http_client;
            let credentials: Vec<String> = spec
                .authorization
                .as_ref()
                .and_then(|a| a.credentials.as_ref())
                .into_iter()
                .chain(http.oauth2.as_ref().and_then(|o| o.client_secret.as_ref()))
                .chain(http.http_headers.values().flat_map(|h| &h.secrets))
                .chain(http.proxy.proxy_connect_header.values().flatten())
                .chain(spec.tls_config.key.as_ref())
                .map(|c| c.expose().to_string())
                .collect();
            let credentials = credentials.join(" ");
            return FetchOutcome::Failed {
                error: ScrapeError::Request {
                    url: spec.url.clone(),
                    reason: format!("401 Unauthorized: token {credentials} is not valid"),
                },
            };
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        FetchOutcome::Body {
            body: self.body.to_vec(),
            content_type: Some("text/plain; version=0.0.4; charset=utf-8".into()),
        }
    }
}

#[derive(Clone)]
struct SilentDiscoverer;

impl Discoverer for SilentDiscoverer {
    async fn run(&self, _provider: ProviderId, _config: SdConfig, _events: EventSender) {
        std::future::pending::<()>().await
    }
}

/// A sink whose broker acknowledges every record at once, through the delivery ledger.
struct AckingSink(SharedLedger);

impl Sink for AckingSink {
    fn submit(&self, records: Vec<Record>) {
        self.0.with(|l| {
            if let Admission::Admitted(produces) = l.submit(SystemClock.now(), records) {
                for p in produces {
                    l.acked(p.id);
                }
            }
        });
    }

    fn counts(&self) -> DeliveryCounts {
        self.0.counts()
    }
}

/// The test's own series plus the sink's delivery series, as the daemon registers them.
struct WithDeliveries {
    extra: Arc<dyn ExtraMetrics>,
    ledger: SharedLedger,
}

impl ExtraMetrics for WithDeliveries {
    fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        self.extra.register(registry);
        let ledger = self.ledger.clone();
        DeliverySeries(move || ledger.counts()).register(registry);
    }
}

fn fixture_body() -> Arc<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/exposition/node_exporter-1.5.0.prom");
    Arc::new(std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())))
}

/// One running member: a driver on its own task and its web server.
struct Member {
    id: String,
    addr: SocketAddr,
    events: EventSender,
    driver: tokio::task::JoinHandle<()>,
    server: tokio::task::JoinHandle<()>,
}

impl Member {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.driver.abort();
        self.server.abort();
    }
}

fn record(id: &str, addr: SocketAddr) -> MemberRecord {
    MemberRecord {
        id: id.into(),
        state: MemberState::Active,
        version: "0.1.0-test".into(),
        web: addr.to_string(),
        started_at: "2026-11-25T12:00:00Z".into(),
    }
}

/// Starts a member on `listener`; it sees no event until the test sends some.
fn start(id: &str, listener: tokio::net::TcpListener) -> Member {
    start_with(id, listener, Arc::new(NoExtraMetrics))
}

/// The handoff margin in these tests: a moved target's old owner scrapes it for at least this
/// long after the change, long enough for a test to see the handoff.
const HANDOFF_MARGIN: Duration = Duration::from_secs(60);

fn start_with(id: &str, listener: tokio::net::TcpListener, extra: Arc<dyn ExtraMetrics>) -> Member {
    let fetcher = FixtureFetcher {
        body: fixture_body(),
    };
    start_with_fetcher(id, listener, extra, fetcher)
}

fn start_with_fetcher<F: Fetcher>(
    id: &str,
    listener: tokio::net::TcpListener,
    extra: Arc<dyn ExtraMetrics>,
    fetcher: F,
) -> Member {
    let addr = listener.local_addr().unwrap();
    let mut config = NodeConfig::for_tests(id);
    config.handoff_margin = HANDOFF_MARGIN;
    config.web = addr.to_string();
    config.version = "0.1.0-test".into();
    config.started_at = "2026-11-25T12:00:00Z".into();
    let node = Node::new(config, SystemClock.now());
    let ledger = SharedLedger::new(LedgerConfig::unbounded());
    let ports = Ports {
        fetcher,
        discoverer: SilentDiscoverer,
        sink: AckingSink(ledger.clone()),
        clock: SystemClock,
    };
    let driver = Driver::new(node, ports);
    let events = driver.events();
    let state = WebState {
        queries: driver.queries(),
        extra: Arc::new(WithDeliveries { extra, ledger }),
    };
    let driver = tokio::spawn(async move {
        driver.run().await;
    });
    let server = tokio::spawn(async move {
        web::serve_on(listener, state, std::future::pending())
            .await
            .expect("web server failed");
    });
    Member {
        id: id.into(),
        addr,
        events,
        driver,
        server,
    }
}

async fn bind() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()
}

const NODE_TARGETS: [&str; 6] = [
    "127.0.0.1:19101",
    "127.0.0.1:19102",
    "127.0.0.1:19103",
    "127.0.0.1:19104",
    "127.0.0.1:19105",
    "127.0.0.1:19106",
];
const APP_TARGETS: [&str; 3] = ["127.0.0.1:19111", "127.0.0.1:19112", "127.0.0.1:19199"];

fn static_job(name: &str, targets: &[&str]) -> String {
    let list = targets
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("job_name: {name}\nscrape_interval: 1s\nscrape_timeout: 500ms\nstatic_configs:\n  - targets: [{list}]\n    labels:\n      env: test\n")
}

/// A job text the loader must reject.
const BROKEN_JOB: &str = "job_name: broken\nscrape_interval: not-a-duration\nstatic_configs:\n  - targets: ['127.0.0.1:19120']\n";

fn jobs() -> Vec<(String, String)> {
    vec![
        ("node".into(), static_job("node", &NODE_TARGETS)),
        ("app".into(), static_job("app", &APP_TARGETS)),
        ("broken".into(), BROKEN_JOB.into()),
    ]
}

/// Two members `scraper-a` and `scraper-b` that know each other, with the jobs above.
async fn pool(jobs: Vec<(String, String)>) -> (Member, Member) {
    let (la, lb) = (bind().await, bind().await);
    let members = vec![
        record("scraper-a", la.local_addr().unwrap()),
        record("scraper-b", lb.local_addr().unwrap()),
    ];
    let (a, b) = (start("scraper-a", la), start("scraper-b", lb));
    for m in [&a, &b] {
        m.events.send(Event::SessionConnected).await.unwrap();
        m.events
            .send(Event::MembersChanged(MembersSnapshot {
                version: 1,
                members: members.clone(),
                ..Default::default()
            }))
            .await
            .unwrap();
        m.events
            .send(Event::JobsChanged(JobsSnapshot {
                version: 1,
                jobs: jobs.clone(),
                ..Default::default()
            }))
            .await
            .unwrap();
    }
    (a, b)
}

async fn get(url: &str) -> (u16, String, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = tokio::time::timeout(Duration::from_secs(10), client.get(url.parse().unwrap()))
        .await
        .expect("GET timed out")
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

async fn get_json(url: &str) -> Value {
    let (status, content_type, body) = get(url).await;
    assert_eq!(status, 200, "GET {url}: {body}");
    assert_eq!(content_type, "application/json", "GET {url}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"))
}

fn active_targets(v: &Value) -> &Vec<Value> {
    assert_eq!(v["status"], "success");
    v["data"]["activeTargets"]
        .as_array()
        .expect("activeTargets is an array")
}

/// Waits until every target the member owns has been scraped once; returns the targets API.
async fn wait_scraped(m: &Member, expected_targets: usize) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let v = get_json(&m.url("/api/v1/targets")).await;
        let targets = active_targets(&v);
        let pending = targets
            .iter()
            .filter(|t| t["replicaRank"].is_number() && t["health"] == "unknown")
            .count();
        if targets.len() == expected_targets && pending == 0 {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "member {}: {} targets (want {expected_targets}), {pending} owned and not scraped yet after 15s: {v:#}", m.id, targets.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn instance(t: &Value) -> &str {
    t["labels"]["instance"].as_str().expect("instance label")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_api_has_prometheus_shape_and_each_target_has_one_owner_across_the_pool() {
    let (a, b) = pool(jobs()).await;
    let total = NODE_TARGETS.len() + APP_TARGETS.len();
    let va = wait_scraped(&a, total).await;
    let vb = wait_scraped(&b, total).await;
    let (ta, tb) = (active_targets(&va), active_targets(&vb));
    assert_eq!(va["data"]["droppedTargets"], serde_json::json!([]));
    let mut scraped_somewhere = 0;
    for t in ta {
        let inst = instance(t);
        let other = tb
            .iter()
            .find(|o| instance(o) == inst && o["scrapePool"] == t["scrapePool"])
            .unwrap_or_else(|| panic!("{inst} missing on scraper-b"));
        // Every member computes the same owner.
        assert_eq!(t["owners"], other["owners"], "{inst}");
        let owners = t["owners"].as_array().unwrap();
        assert_eq!(owners.len(), 1, "replication factor 1: {t}");
        let owner = owners[0].as_str().unwrap();
        let (mine, theirs) = if owner == "scraper-a" {
            (t, other)
        } else {
            (other, t)
        };
        assert!(owner == "scraper-a" || owner == "scraper-b", "{t}");
        assert_eq!(mine["replicaRank"], 0, "{mine}");
        assert_eq!(theirs["replicaRank"], Value::Null, "{theirs}");
        assert_eq!(theirs["health"], "unknown", "{theirs}");
        assert_eq!(theirs["lastScrape"], "0001-01-01T00:00:00Z", "{theirs}");
        assert_eq!(theirs["lastScrapeDuration"], 0.0, "{theirs}");
        assert_ne!(mine["lastScrape"], "0001-01-01T00:00:00Z", "{mine}");
        assert!(
            mine["lastScrape"].as_str().unwrap().ends_with('Z'),
            "{mine}"
        );
        if inst.ends_with(FAILING_PORT) {
            assert_eq!(mine["health"], "down", "{mine}");
            assert!(
                mine["lastError"].as_str().unwrap().contains(FETCH_ERROR),
                "{mine}"
            );
        } else {
            assert_eq!(mine["health"], "up", "{mine}");
            assert_eq!(mine["lastError"], "", "{mine}");
            assert!(mine["lastScrapeDuration"].as_f64().unwrap() > 0.0, "{mine}");
        }
        scraped_somewhere += 1;
        // Prometheus's fields, as Prometheus fills them.
        let job = t["scrapePool"].as_str().unwrap();
        assert!(job == "node" || job == "app", "{t}");
        assert_eq!(t["scrapeUrl"], format!("http://{inst}/metrics"));
        assert_eq!(
            t["globalUrl"],
            format!("http://{inst}/metrics"),
            "loopback targets of a loopback member keep their URL"
        );
        assert_eq!(t["labels"]["job"], job);
        assert_eq!(t["labels"]["env"], "test");
        assert_eq!(t["discoveredLabels"]["__address__"], inst);
        assert_eq!(t["scrapeInterval"], "1s");
        assert_eq!(t["scrapeTimeout"], "500ms");
    }
    assert_eq!(scraped_somewhere, total);
    let instances: Vec<&str> = ta.iter().map(instance).collect();
    for t in NODE_TARGETS.iter().chain(APP_TARGETS.iter()) {
        assert!(instances.contains(t), "{t} missing from {instances:?}");
    }

    let active_only = get_json(&a.url("/api/v1/targets?state=active")).await;
    assert_eq!(active_targets(&active_only).len(), total);
    assert_eq!(active_only["data"]["droppedTargets"], serde_json::json!([]));
    let dropped_only = get_json(&a.url("/api/v1/targets?state=dropped")).await;
    assert_eq!(active_targets(&dropped_only).len(), 0);
    assert!(dropped_only["data"]["droppedTargets"].is_array());
    // Prometheus 3.16: every job's count of dropped targets, only when they are asked for.
    assert_eq!(active_only["data"]["droppedTargetCounts"], Value::Null);
    let counts = dropped_only["data"]["droppedTargetCounts"]
        .as_object()
        .expect("droppedTargetCounts is an object");
    assert!(!counts.is_empty(), "{dropped_only:#}");
    assert!(counts.values().all(|c| c == 0), "{dropped_only:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_api_lists_each_member_with_its_share_of_the_targets() {
    let (a, b) = pool(jobs()).await;
    let total = NODE_TARGETS.len() + APP_TARGETS.len();
    let targets = wait_scraped(&a, total).await;
    let v = get_json(&a.url("/api/v1/members")).await;
    assert_eq!(v["status"], "success");
    let members = v["data"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{v}");
    for (m, member) in members.iter().zip([&a, &b]) {
        assert_eq!(m["id"], member.id.as_str());
        assert_eq!(m["state"], "active");
        assert_eq!(m["web"], member.addr.to_string());
        assert_eq!(m["version"], "0.1.0-test");
        assert_eq!(m["started_at"], "2026-11-25T12:00:00Z");
        assert_eq!(m["self"], member.id == "scraper-a");
        let owned = active_targets(&targets)
            .iter()
            .filter(|t| t["owners"][0] == member.id.as_str())
            .count();
        assert_eq!(m["targets"], owned, "{m}");
    }
    assert_eq!(
        members
            .iter()
            .map(|m| m["targets"].as_u64().unwrap())
            .sum::<u64>(),
        total as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_while_the_loop_runs_and_ready_waits_for_registration_and_snapshots() {
    let m = start("lonely", bind().await);
    let (status, _, _) = get(&m.url("/-/healthy")).await;
    assert_eq!(status, 200);
    let (status, _, body) = get(&m.url("/-/ready")).await;
    assert_eq!(status, 503, "not registered, no snapshot yet: {body}");
    m.events.send(Event::SessionConnected).await.unwrap();
    m.events
        .send(Event::MembersChanged(MembersSnapshot {
            version: 1,
            members: vec![record("lonely", m.addr)],
            ..Default::default()
        }))
        .await
        .unwrap();
    let (status, _, _) = get(&m.url("/-/ready")).await;
    assert_eq!(status, 503, "no job snapshot yet");
    m.events
        .send(Event::JobsChanged(JobsSnapshot {
            version: 1,
            jobs: vec![],
            ..Default::default()
        }))
        .await
        .unwrap();
    let (status, _, body) = get(&m.url("/-/ready")).await;
    assert_eq!(status, 200, "{body}");
    m.events.send(Event::SessionDisconnected).await.unwrap();
    let (status, _, body) = get(&m.url("/-/ready")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("disconnected"), "{body}");
    // The loop is gone: nothing answers any more.
    m.driver.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _, _) = get(&m.url("/-/healthy")).await;
    assert_eq!(status, 503);
    let (status, _, _) = get(&m.url("/api/v1/targets")).await;
    assert_eq!(status, 503);
}

/// The value of the series `name` exactly (labels included) in an OpenMetrics text.
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '))
            .map(|v| v.trim().parse().unwrap())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_targets_scrapes_samples_members_session_and_config_errors() {
    let (a, _b) = pool(jobs()).await;
    let total = NODE_TARGETS.len() + APP_TARGETS.len();
    let targets = wait_scraped(&a, total).await;
    let owned = |job: &str| {
        active_targets(&targets)
            .iter()
            .filter(|t| t["scrapePool"] == job && t["owners"][0] == "scraper-a")
            .count() as f64
    };
    // Deliveries are acknowledged at once; wait until the counters agree.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let (status, content_type, text) = get(&a.url("/metrics")).await;
        assert_eq!(status, 200);
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        let emitted = series(&text, "scrapepool_samples_emitted_total").unwrap();
        let delivered = series(&text, "scrapepool_samples_delivered_total").unwrap();
        if emitted == delivered && series(&text, "scrapepool_deliveries_in_flight") == Some(0.0) {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries never settled:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    assert_eq!(
        series(&text, "scrapepool_job_targets{job=\"node\"}"),
        Some(NODE_TARGETS.len() as f64),
        "{text}"
    );
    assert_eq!(
        series(&text, "scrapepool_job_targets{job=\"app\"}"),
        Some(APP_TARGETS.len() as f64),
        "{text}"
    );
    assert_eq!(
        series(&text, "scrapepool_job_targets_owned{job=\"node\"}"),
        Some(owned("node")),
        "{text}"
    );
    assert_eq!(
        series(&text, "scrapepool_job_targets_owned{job=\"app\"}"),
        Some(owned("app")),
        "{text}"
    );
    assert_eq!(
        series(&text, "scrapepool_job_config_valid{job=\"node\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series(&text, "scrapepool_job_config_valid{job=\"broken\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        series(&text, "scrapepool_job_config_errors_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series(&text, "scrapepool_discovery_errors_total"),
        Some(0.0),
        "{text}"
    );
    let started = series(&text, "scrapepool_scrapes_started_total").unwrap();
    assert!(started >= owned("node") + owned("app"), "{text}");
    let failing_here = active_targets(&targets)
        .iter()
        .any(|t| instance(t).ends_with(FAILING_PORT) && t["owners"][0] == "scraper-a");
    let failed = series(&text, "scrapepool_scrapes_failed_total").unwrap();
    assert_eq!(failed > 0.0, failing_here, "{text}");
    let count = series(&text, "scrapepool_scrape_duration_seconds_count").unwrap();
    assert!(count > 0.0 && count <= started, "{text}");
    assert_eq!(
        series(
            &text,
            "scrapepool_scrape_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        Some(count),
        "{text}"
    );
    assert!(
        series(&text, "scrapepool_samples_emitted_total").unwrap() > 0.0,
        "{text}"
    );
    assert_eq!(
        series(&text, "scrapepool_samples_not_delivered_total"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        series(&text, "scrapepool_members{state=\"active\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        series(&text, "scrapepool_members{state=\"draining\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            "scrapepool_zookeeper_session_state{state=\"connected\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            "scrapepool_zookeeper_session_state{state=\"expired\"}"
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(series(&text, "scrapepool_ready"), Some(1.0), "{text}");
    assert!(
        series(&text, "scrapepool_rebalances_total").unwrap() >= 1.0,
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            "scrapepool_targets_moved_total{direction=\"gained\"}"
        ),
        Some(owned("node") + owned("app")),
        "{text}"
    );
    assert_eq!(
        series(&text, "scrapepool_targets_moved_total{direction=\"lost\"}"),
        Some(0.0),
        "{text}"
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.starts_with("scrapepool_"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_jobs_targets_states_owners_members_and_rebalances() {
    let (a, b) = pool(jobs()).await;
    let total = NODE_TARGETS.len() + APP_TARGETS.len();
    let targets = wait_scraped(&a, total).await;
    wait_scraped(&b, total).await;

    let (status, content_type, index) = get(&a.url("/")).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"));
    assert!(
        index.contains("href=\"/targets\"") && index.contains("href=\"/cluster\""),
        "{index}"
    );

    let (status, _, html) = get(&a.url("/targets")).await;
    assert_eq!(status, 200);
    for job in ["node", "app", "broken"] {
        assert!(
            html.contains(&format!("id=\"job-{job}\"")),
            "section of {job} missing"
        );
    }
    assert!(
        html.contains("scrape_interval"),
        "the broken job's error names the field: {html}"
    );
    for t in active_targets(&targets) {
        let url = t["scrapeUrl"].as_str().unwrap();
        assert!(html.contains(&format!(">{url}</a>")), "{url} missing");
        if t["owners"][0] == "scraper-b" {
            assert!(
                html.contains(&format!(
                    "<a href=\"http://{}/targets\">scraper-b</a>",
                    b.addr
                )),
                "link to scraper-b missing"
            );
        }
    }
    let up = active_targets(&targets)
        .iter()
        .filter(|t| t["health"] == "up")
        .count();
    let down = active_targets(&targets)
        .iter()
        .filter(|t| t["health"] == "down")
        .count();
    let unknown = active_targets(&targets)
        .iter()
        .filter(|t| t["health"] == "unknown")
        .count();
    assert_eq!(
        html.matches("<span class=\"state up\">up</span>").count(),
        up
    );
    assert_eq!(
        html.matches("<span class=\"state down\">down</span>")
            .count(),
        down
    );
    assert_eq!(
        html.matches("<span class=\"state unknown\">unknown</span>")
            .count(),
        unknown
    );

    let (status, _, html) = get(&a.url("/cluster")).await;
    assert_eq!(status, 200);
    for m in [&a, &b] {
        assert!(html.contains(&format!("<td>{}", m.id)), "{} missing", m.id);
        assert!(
            html.contains(&format!("href=\"http://{}/cluster\"", m.addr)),
            "web link of {} missing",
            m.id
        );
    }
    assert!(
        html.contains("<td>members</td>") || html.contains("<td>jobs</td>"),
        "a rebalance with its cause: {html}"
    );
}

/// Secrets in three forms: basic_auth password, authorization credentials, Consul token; and
/// one more in a job the loader rejects.
/// The bearer credentials hold characters that HTML and JSON escape, so a leak in escaped
/// form is caught too.
const SECRETS: [&str; 8] = [
    "hunter2-basic-pw",
    "s3cr3t&\"bearer<cred>",
    "consul-acl-token-0042",
    "rejected-job-pw-77",
    "header-secret-0815",
    "proxy-connect-secret-31",
    "inline-tls-key-secret-9",
    "oauth2-client-secret-64",
];

/// `secret` as written and as HTML and JSON write it.
fn secret_forms(secret: &str) -> Vec<String> {
    let html = secret
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let json = serde_json::to_string(secret).unwrap();
    vec![
        secret.to_string(),
        html,
        json[1..json.len() - 1].to_string(),
    ]
}

fn secret_jobs() -> Vec<(String, String)> {
    vec![
        (
            "basic".into(),
            format!("job_name: basic\nscrape_interval: 1s\nscrape_timeout: 500ms\nbasic_auth:\n  username: scraper\n  password: {}\nstatic_configs:\n  - targets: ['127.0.0.1:19131']\n", SECRETS[0]),
        ),
        (
            "bearer".into(),
            format!(
                "job_name: bearer\nscrape_interval: 1s\nscrape_timeout: 500ms\nauthorization:\n  credentials: '{}'\nconsul_sd_configs:\n  - server: 127.0.0.1:18500\n    token: {}\nhttp_headers:\n  X-Api-Key: {{secrets: [{}]}}\nproxy_url: http://127.0.0.1:3128\nproxy_connect_header:\n  X-Tunnel: [{}]\ntls_config: {{cert: not-pem, key: {}}}\nstatic_configs:\n  - targets: ['127.0.0.1:19132']\n",
                SECRETS[1], SECRETS[2], SECRETS[4], SECRETS[5], SECRETS[6]
            ),
        ),
        (
            "oauth".into(),
            format!(
                "job_name: oauth\nscrape_interval: 1s\nscrape_timeout: 500ms\noauth2:\n  client_id: c\n  client_secret: {}\n  token_url: http://127.0.0.1:1/token\nstatic_configs:\n  - targets: ['127.0.0.1:{ECHOING_OAUTH2_PORT}']\n",
                SECRETS[7]
            ),
        ),
        ("rejected".into(), format!("job_name: rejected\nbasic_auth:\n  username: x\n  password: {}\n  no_such_field: 1\nstatic_configs:\n  - targets: ['127.0.0.1:19133']\n", SECRETS[3])),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_any_endpoint() {
    let (a, b) = pool(secret_jobs()).await;
    let mut echoed = 0;
    for m in [&a, &b] {
        let targets = wait_scraped(m, 3).await;
        // The echoing target's owner scraped it, and its error (which quoted the credentials)
        // is shown with the credentials replaced.
        for t in active_targets(&targets)
            .iter()
            .filter(|t| instance(t).ends_with(ECHOING_PORT) && t["owners"][0] == m.id.as_str())
        {
            // The pipeline may wrap the fetch error; the credentials must be replaced inside it.
            assert!(
                t["lastError"].as_str().unwrap().contains(
                    "401 Unauthorized: token <secret> <secret> <secret> <secret> is not valid"
                ),
                "{t}"
            );
            echoed += 1;
        }
        for path in [
            "/",
            "/targets",
            "/cluster",
            "/metrics",
            "/api/v1/targets",
            "/api/v1/targets?state=dropped",
            "/api/v1/members",
            "/-/healthy",
            "/-/ready",
        ] {
            let (status, _, body) = get(&m.url(path)).await;
            assert_eq!(status, 200, "{path}: {body}");
            for form in SECRETS.iter().flat_map(|s| secret_forms(s)) {
                assert!(
                    !body.contains(&form),
                    "{} {path} shows the secret {form:?}:\n{body}",
                    m.id
                );
            }
        }
    }
    assert_eq!(
        echoed, 1,
        "the echoing target is scraped by exactly one member"
    );
    // The jobs are there (so the check above looked at pages that show them).
    let (_, _, html) = get(&a.url("/targets")).await;
    assert!(
        html.contains("id=\"job-basic\"")
            && html.contains("id=\"job-bearer\"")
            && html.contains("id=\"job-rejected\"")
            && html.contains("id=\"job-oauth\""),
        "{html}"
    );
}

/// An exporter that answers every scrape with a body quoting the `Authorization` token it
/// was sent (on `/header`) or the `user:password` inside it (elsewhere): not valid
/// exposition, so the scrape error quotes it.
async fn echoing_exporter() -> SocketAddr {
    use base64::Engine as _;
    let listener = bind().await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let header = req
                            .headers()
                            .get("authorization")
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default();
                        let decoded = header
                            .strip_prefix("Basic ")
                            .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
                            .map(|b| String::from_utf8_lossy(&b).to_string())
                            .unwrap_or_default();
                        // The parser quotes the value it could not read: the echoed text.
                        let body = if req.uri().path() == "/header" {
                            format!("denied {}\n", header.trim_start_matches("Basic "))
                        } else {
                            format!("denied {decoded}\n")
                        };
                        // A text body, said so: Prometheus 3 refuses a body without a type.
                        let mut response =
                            hyper::Response::new(http_body_util::Full::new(Bytes::from(body)));
                        response.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
                        );
                        Ok::<_, std::convert::Infallible>(response)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_read_from_files_are_filtered_like_inline_ones() {
    use base64::Engine as _;
    const PASSWORD: &str = "pw-from-a-file-9917";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let exporter = echoing_exporter().await;
    let listener = bind().await;
    let me = record("scraper-a", listener.local_addr().unwrap());
    let m = start_with_fetcher(
        "scraper-a",
        listener,
        Arc::new(NoExtraMetrics),
        scrapepool_adapters::http::HttpFetcher::new(),
    );
    let job = format!(
        "job_name: filed\nscrape_interval: 1s\nscrape_timeout: 500ms\nbasic_auth:\n  username: scraper\n  password_file: {}\nstatic_configs:\n  - targets: ['{exporter}']\n    labels: {{__metrics_path__: /header, echo: header}}\n  - targets: ['{exporter}']\n    labels: {{echo: password}}\n",
        file.display()
    );
    m.events.send(Event::SessionConnected).await.unwrap();
    m.events
        .send(Event::MembersChanged(MembersSnapshot {
            version: 1,
            members: vec![me],
            ..Default::default()
        }))
        .await
        .unwrap();
    m.events
        .send(Event::JobsChanged(JobsSnapshot {
            version: 1,
            jobs: vec![("filed".into(), job)],
            ..Default::default()
        }))
        .await
        .unwrap();
    let targets = wait_scraped(&m, 2).await;
    // The exporter did quote them; the API shows neither.
    let mut errors: Vec<String> = active_targets(&targets)
        .iter()
        .map(|t| t["lastError"].as_str().unwrap().to_string())
        .collect();
    errors.sort();
    assert_eq!(
        errors,
        vec![
            "1:8: invalid value \"<secret>\"".to_string(),
            "1:8: invalid value \"scraper:<secret>\"".to_string(),
        ]
    );
    let token = base64::engine::general_purpose::STANDARD.encode(format!("scraper:{PASSWORD}"));
    for path in ["/", "/targets", "/api/v1/targets", "/metrics"] {
        let (status, _, body) = get(&m.url(path)).await;
        assert_eq!(status, 200, "{path}");
        for leak in [PASSWORD, token.as_str()] {
            assert!(!body.contains(leak), "{path} shows {leak:?}:\n{body}");
        }
    }
    let (_, _, html) = get(&m.url("/targets")).await;
    assert!(
        html.contains("&lt;secret&gt;") || html.contains("<secret>"),
        "{html}"
    );
}

// ---- headless Chromium ----------------------------------------------------------------------

fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SCRAPEPOOL_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Most time one Chromium run may take.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs headless Chromium with `args` then `url`; its standard output.
fn run_chromium(binary: &Path, args: &[String], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
        out
    });
    let deadline = std::time::Instant::now() + CHROMIUM_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium exited with {status} for {url}");
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish {url} within {CHROMIUM_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

async fn dump_dom(binary: &Path, url: String) -> String {
    let binary = binary.to_path_buf();
    tokio::task::spawn_blocking(move || run_chromium(&binary, &["--dump-dom".to_string()], &url))
        .await
        .unwrap()
}

/// Text content of the DOM, tags dropped, entities for `"` `'` `&` decoded, whitespace squeezed.
fn text_of(dom: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in dom.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_in_headless_chromium() {
    let Some(binary) = chromium() else {
        assert!(
            std::env::var("SCRAPEPOOL_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "chromium is required (SCRAPEPOOL_REQUIRE_SERVICES=1) but not installed"
        );
        println!(
            "SKIPPED: chromium not found (install Debian's chromium or set SCRAPEPOOL_CHROMIUM)"
        );
        return;
    };
    let (a, b) = pool(jobs()).await;
    let total = NODE_TARGETS.len() + APP_TARGETS.len();
    let targets = wait_scraped(&a, total).await;
    wait_scraped(&b, total).await;

    let dom = dump_dom(&binary, a.url("/targets")).await;
    assert!(dom.contains("</html>"), "no document: {dom}");
    let text = text_of(&dom);
    for job in ["node", "app", "broken"] {
        assert!(
            text.contains(&format!("{job} (")),
            "job {job} missing: {text}"
        );
    }
    for t in active_targets(&targets) {
        let url = t["scrapeUrl"].as_str().unwrap();
        let owner = t["owners"][0].as_str().unwrap();
        let health = t["health"].as_str().unwrap();
        // The row reads: endpoint, state, labels ..., owner.
        let row_start = text
            .find(url)
            .unwrap_or_else(|| panic!("{url} not shown: {text}"));
        let row = &text[row_start..];
        let row = &row[..row[url.len()..]
            .find("http://127.0.0.1:191")
            .map(|i| i + url.len())
            .unwrap_or(row.len())];
        assert!(
            row.starts_with(&format!("{url} {health} ")),
            "{url} should show {health}: {row}"
        );
        assert!(
            row.contains(owner),
            "{url} should name its owner {owner}: {row}"
        );
        assert!(
            row.contains(&format!("instance=\"{}\"", instance(t))),
            "{row}"
        );
    }

    let dom = dump_dom(&binary, a.url("/cluster")).await;
    let text = text_of(&dom);
    for m in [&a, &b] {
        let owned = active_targets(&targets)
            .iter()
            .filter(|t| t["owners"][0] == m.id.as_str())
            .count();
        let row_start = text
            .find(&format!("{} ", m.id))
            .unwrap_or_else(|| panic!("{} not shown: {text}", m.id));
        let row = &text[row_start..];
        assert!(
            row.contains(&format!(
                "active {} 0.1.0-test 2026-11-25T12:00:00Z {owned}",
                m.addr
            )),
            "{}: {row}",
            m.id
        );
    }
    assert!(text.contains("Recent rebalances"), "{text}");

    // Screenshots for a person to look at, when asked for.
    if let Ok(dir) = std::env::var("SCRAPEPOOL_SCREENSHOT_DIR") {
        for page in ["targets", "cluster"] {
            let file = Path::new(&dir).join(format!("{page}.png"));
            let args = vec![
                format!("--screenshot={}", file.display()),
                "--window-size=1280,900".to_string(),
                "--hide-scrollbars".to_string(),
            ];
            let binary = binary.clone();
            let url = a.url(&format!("/{page}"));
            tokio::task::spawn_blocking(move || run_chromium(&binary, &args, &url))
                .await
                .unwrap();
            assert!(file.exists(), "{} not written", file.display());
        }
    }
}

/// What the Kafka sink will do: keep its metrics and register clones per request.
struct QueueMetrics {
    depth: prometheus_client::metrics::gauge::Gauge,
}

impl ExtraMetrics for QueueMetrics {
    fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "sink_queue_depth",
            "Records waiting in the sink's queue.",
            self.depth.clone(),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapters_add_their_own_series_to_metrics() {
    let depth = prometheus_client::metrics::gauge::Gauge::default();
    let m = start_with(
        "lonely",
        bind().await,
        Arc::new(QueueMetrics {
            depth: depth.clone(),
        }),
    );
    depth.set(7);
    let (_, _, text) = get(&m.url("/metrics")).await;
    assert_eq!(
        series(&text, "scrapepool_sink_queue_depth"),
        Some(7.0),
        "{text}"
    );
    depth.set(3);
    let (_, _, text) = get(&m.url("/metrics")).await;
    assert_eq!(
        series(&text, "scrapepool_sink_queue_depth"),
        Some(3.0),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joining_shows_as_handoff_and_rebalance() {
    let (a, b) = pool(jobs()).await;
    let total = NODE_TARGETS.len() + APP_TARGETS.len();
    let before = [wait_scraped(&a, total).await, wait_scraped(&b, total).await];
    // scraper-0 joins (it runs no daemon here; its id sorts first, which matters to no real ring); some targets move to it.
    let new_web: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let members = vec![
        record("scraper-a", a.addr),
        record("scraper-b", b.addr),
        record("scraper-0", new_web),
    ];
    for m in [&a, &b] {
        m.events
            .send(Event::MembersChanged(MembersSnapshot {
                version: 2,
                members: members.clone(),
                // scraper-0 joined now: the moved targets change hands a margin from now.
                changed: [("scraper-0".to_string(), SystemClock.now())].into(),
                ..Default::default()
            }))
            .await
            .unwrap();
    }
    let mut moved_to_new = 0;
    let mut lost_by = std::collections::BTreeMap::new();
    for (m, before) in [&a, &b].into_iter().zip(before.iter()) {
        let after = get_json(&m.url("/api/v1/targets")).await;
        for t in active_targets(&after) {
            let was = active_targets(before)
                .iter()
                .find(|o| o["scrapeUrl"] == t["scrapeUrl"])
                .unwrap();
            let owner = t["owners"][0].as_str().unwrap();
            if owner == "scraper-0" && was["owners"][0] == m.id.as_str() {
                // We owned it and it moved: we scrape on (health known) without a rank.
                assert_eq!(t["replicaRank"], Value::Null, "{t}");
                assert_ne!(t["health"], "unknown", "{t}");
                *lost_by.entry(m.id.clone()).or_insert(0) += 1;
                moved_to_new += 1;
            } else if owner == m.id.as_str() {
                assert_eq!(t["replicaRank"], 0, "{t}");
                assert_eq!(
                    was["owners"][0],
                    m.id.as_str(),
                    "a join never moves a target between the old members: {t}"
                );
            }
        }
        let (_, _, html) = get(&m.url("/targets")).await;
        let lost = lost_by.get(&m.id).copied().unwrap_or(0);
        assert_eq!(
            html.matches(">handing off</span>").count(),
            lost,
            "{}",
            m.id
        );
        let (_, _, text) = get(&m.url("/metrics")).await;
        let handing_off: f64 = ["node", "app"]
            .iter()
            .map(|j| {
                series(
                    &text,
                    &format!("scrapepool_job_targets_handing_off{{job=\"{j}\"}}"),
                )
                .unwrap()
            })
            .sum();
        assert_eq!(handing_off, lost as f64, "{text}");
        assert_eq!(
            series(&text, "scrapepool_targets_moved_total{direction=\"lost\"}"),
            Some(lost as f64),
            "{text}"
        );
        assert_eq!(
            series(&text, "scrapepool_members{state=\"active\"}"),
            Some(3.0),
            "{text}"
        );
        let (_, _, html) = get(&m.url("/cluster")).await;
        assert!(html.contains("scraper-0"), "{html}");
        if lost > 0 {
            assert!(
                html.contains(&format!(
                    "<td>members</td><td>3</td><td>0</td><td>{lost}</td>"
                )),
                "{}: {html}",
                m.id
            );
        }
    }
    assert!(moved_to_new > 0, "with 9 targets a third member takes some");
    let members = get_json(&a.url("/api/v1/members")).await;
    let c = members["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "scraper-0")
        .unwrap();
    assert_eq!(c["targets"], moved_to_new, "{members}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_addresses_are_shown_as_invalid_targets_with_the_reason() {
    let job = "job_name: ports\nscrape_interval: 1s\nscrape_timeout: 500ms\nstatic_configs:\n  - targets: ['127.0.0.1:19101', '127.0.0.1:70000', '127.0.0.1:', ':9100']\n";
    let (a, _b) = pool(vec![("ports".into(), job.into())]).await;
    let targets = wait_scraped(&a, 1).await;
    // Only the valid one is a target; nothing scrapes port 80 in place of 70000.
    let urls: Vec<&str> = active_targets(&targets)
        .iter()
        .map(|t| t["scrapeUrl"].as_str().unwrap())
        .collect();
    assert_eq!(urls, vec!["http://127.0.0.1:19101/metrics"]);
    let (_, _, html) = get(&a.url("/targets")).await;
    for reason in [
        "instance 1 in group 0: &quot;127.0.0.1:70000&quot; is not a valid address: invalid port &quot;70000&quot; (above 65535)",
        "instance 2 in group 0: &quot;127.0.0.1:&quot; is not a valid address: missing port",
        "instance 3 in group 0: &quot;:9100&quot; is not a valid address: empty host",
    ] {
        assert!(
            html.contains(&format!("<div class=\"banner\">invalid target: {reason}</div>")),
            "{reason}\n{html}"
        );
    }
}

/// Answers every scrape with one duplicate sample and one 20 minutes ahead.
#[derive(Clone)]
struct DroppingFetcher;

impl Fetcher for DroppingFetcher {
    async fn fetch(&self, _spec: &ScrapeSpec) -> FetchOutcome {
        let ahead = SystemClock.now().as_millis() + 20 * 60 * 1000;
        FetchOutcome::Body {
            body: format!("a 1\na 2\nb 1 {ahead}\nc 1\n").into_bytes(),
            content_type: Some("text/plain; version=0.0.4".into()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_samples_are_counted_by_reason_on_metrics_and_on_the_target_row() {
    let listener = bind().await;
    let addr = listener.local_addr().unwrap();
    let m = start_with_fetcher("solo", listener, Arc::new(NoExtraMetrics), DroppingFetcher);
    m.events.send(Event::SessionConnected).await.unwrap();
    m.events
        .send(Event::MembersChanged(MembersSnapshot {
            version: 1,
            members: vec![record("solo", addr)],
            ..Default::default()
        }))
        .await
        .unwrap();
    m.events
        .send(Event::JobsChanged(JobsSnapshot {
            version: 1,
            jobs: vec![("d".into(), static_job("d", &["127.0.0.1:19140"]))],
            ..Default::default()
        }))
        .await
        .unwrap();
    let v = wait_scraped(&m, 1).await;
    let t = &active_targets(&v)[0];
    assert_eq!(t["health"], "up", "{t}");
    assert_eq!(t["lastDroppedSamples"]["duplicate_timestamp"], 1, "{t}");
    assert_eq!(t["lastDroppedSamples"]["out_of_bounds"], 1, "{t}");
    let (_, _, text) = get(&m.url("/metrics")).await;
    let dup = series(
        &text,
        "scrapepool_samples_dropped_total{reason=\"duplicate_timestamp\"}",
    );
    assert!(dup.is_some_and(|n| n >= 1.0), "{text}");
    let oob = series(
        &text,
        "scrapepool_samples_dropped_total{reason=\"out_of_bounds\"}",
    );
    assert!(oob.is_some_and(|n| n >= 1.0), "{text}");
    assert_eq!(
        series(
            &text,
            "scrapepool_scrapes_rejected_total{reason=\"sample_limit\"}"
        ),
        Some(0.0),
        "{text}"
    );
    let (_, _, page) = get(&m.url("/targets")).await;
    assert!(
        page.contains("1 duplicate_timestamp, 1 out_of_bounds samples dropped"),
        "{page}"
    );
}
