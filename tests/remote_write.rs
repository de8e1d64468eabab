//! The remote-write encoding read back by a real Prometheus.
//!
//! Starts Debian's `prometheus` (2.42) on loopback with its remote-write receiver, posts the
//! records `process_and_encode` makes for a scrape of the node_exporter fixture (plus a few
//! lines with escaped label values and a histogram with a `+Inf` bucket, which that fixture
//! lacks), split into several records by a small `message_bytes_max`, then reads series back
//! through the query API and checks their labels, values and timestamps. A second test posts
//! the native histograms of client_golang's protobuf answer to Prometheus 3.16 and reads
//! their counts, sums and buckets back.
//!
//! The binary is `$SCRAPEPOOL_PROMETHEUS_BIN`, else `prometheus` on `PATH`. Without it the
//! test prints `SKIPPED: ...` and passes, unless `SCRAPEPOOL_REQUIRE_SERVICES=1`.

#[path = "support/prometheus3.rs"]
mod prometheus3;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use scrapepool_core::config::TlsConfig;
use scrapepool_core::encode::{EmitSpec, Encoding};
use scrapepool_core::labels::Labels;
use scrapepool_core::scrape::{process_and_encode, FetchOutcome, Limits, ScrapeSpec, SeriesCache};
use scrapepool_core::Timestamp;

/// Remote-write v1 and 2.0 requests: Content-Type and protocol version.
const V1: (&str, &str) = ("application/x-protobuf", "0.1.0");
const V2: (&str, &str) = (
    "application/x-protobuf;proto=io.prometheus.write.v2.Request",
    "2.0.0",
);

/// How long Prometheus may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of each HTTP exchange with it.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Lines the node_exporter fixture lacks: escapes in label values and a histogram.
const EXTRA: &str = r#"# TYPE scrapepool_test_escaped gauge
scrapepool_test_escaped{path="C:\\dir\\\"quoted\"\nnext line",empty=""} 42.5
# TYPE scrapepool_test_latency_seconds histogram
scrapepool_test_latency_seconds_bucket{le="0.1"} 3
scrapepool_test_latency_seconds_bucket{le="1"} 7
scrapepool_test_latency_seconds_bucket{le="+Inf"} 9
scrapepool_test_latency_seconds_sum 4.25
scrapepool_test_latency_seconds_count 9
"#;

fn find_prometheus() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SCRAPEPOOL_PROMETHEUS_BIN").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
}

/// A Prometheus process, killed when dropped.
struct Prometheus {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(bin: &Path) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1m\n").expect("write config");
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let p = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok((200, _)) = http(&p.addr, "GET", "/-/ready", &[], &[]) {
                return p;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(p._dir.path().join("prometheus.log"))
                    .unwrap_or_default();
                panic!(
                    "prometheus at {} not ready after {READY_TIMEOUT:?}; its log:\n{log}",
                    p.addr
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Posts one remote-write body (`version`: its Content-Type and protocol version):
    /// status and answer.
    fn write(&self, payload: &[u8], version: (&str, &str)) -> (u16, Vec<u8>) {
        let (content_type, protocol) = version;
        http(
            &self.addr,
            "POST",
            "/api/v1/write",
            &[
                ("Content-Encoding", "snappy"),
                ("Content-Type", content_type),
                ("X-Prometheus-Remote-Write-Version", protocol),
            ],
            payload,
        )
        .expect("post")
    }

    /// Runs an instant query at `time_ms`, returning `(labels, timestamp_ms, value)` sorted.
    fn query(&self, q: &str, time_ms: i64) -> Vec<(Labels, i64, String)> {
        let path = format!(
            "/api/v1/query?query={}&time={}.{:03}",
            percent_encode(q),
            time_ms / 1000,
            time_ms % 1000
        );
        let (status, body) = http(&self.addr, "GET", &path, &[], &[]).expect("query");
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 200, "{q}: {text}");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON answer");
        let mut out: Vec<(Labels, i64, String)> = v["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{q}: no result in {text}"))
            .iter()
            .map(|r| {
                let labels: Labels = serde_json::from_value(r["metric"].clone()).expect("labels");
                let ts = (r["value"][0].as_f64().expect("time") * 1000.0).round() as i64;
                (
                    labels,
                    ts,
                    r["value"][1].as_str().expect("value").to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One HTTP/1.1 exchange over a fresh connection: (status, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))?;
    s.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let mut payload = resp[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        payload = dechunk(&payload);
    }
    Ok((status, payload))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&b[..eol])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

fn spec() -> ScrapeSpec {
    ScrapeSpec {
        url: "http://10.1.2.3:9100/metrics".into(),
        target_labels: Labels::from_pairs([("instance", "10.1.2.3:9100"), ("job", "node")]),
        interval: Duration::from_secs(15),
        timeout: Duration::from_secs(10),
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
            // Small, so the scrape is split into several records, each posted on its own.
            message_bytes_max: 8 * 1024,
            scraper_id: "scraper-1".into(),
            job: "node".into(),
            instance: "10.1.2.3:9100".into(),
            key_hash: 42,
        },
        exposition: Default::default(),
        histograms: Default::default(),
    }
}

#[test]
fn prometheus_reads_back_what_remote_write_encoding_wrote() {
    let Some(bin) = find_prometheus() else {
        if std::env::var("SCRAPEPOOL_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("prometheus binary not found (set SCRAPEPOOL_PROMETHEUS_BIN or put it on PATH) and SCRAPEPOOL_REQUIRE_SERVICES=1");
        }
        println!("SKIPPED: prometheus binary not found (set SCRAPEPOOL_PROMETHEUS_BIN or put it on PATH)");
        return;
    };
    let prom = Prometheus::start(&bin);

    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/exposition/node_exporter-1.5.0.prom"
    );
    let mut body = std::fs::read(fixture).expect("fixture");
    body.extend_from_slice(EXTRA.as_bytes());
    let fetch = FetchOutcome::Body {
        body,
        content_type: Some("text/plain; version=0.0.4; charset=utf-8".into()),
    };
    // A recent time, so the TSDB head accepts it; with a millisecond part to check precision.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t0 = now_ms - 60_000 + 123 - now_ms % 1000;
    let (report, records) = process_and_encode(
        &spec(),
        &mut SeriesCache::default(),
        &mut Default::default(),
        Timestamp(t0),
        Duration::from_millis(12),
        &fetch,
    );
    assert!(report.up, "{:?}", report.error);
    assert_eq!(report.samples_unencodable, 0);
    assert!(
        records.len() > 1,
        "expected the scrape to be split, got {} record(s)",
        records.len()
    );
    for (i, r) in records.iter().enumerate() {
        assert!(r.payload.len() <= 8 * 1024);
        let (status, answer) = prom.write(&r.payload, V1);
        assert_eq!(
            status,
            204,
            "record {i}: {}",
            String::from_utf8_lossy(&answer)
        );
    }

    let l = |pairs: &[(&str, &str)]| {
        let mut all = vec![("instance", "10.1.2.3:9100"), ("job", "node")];
        all.extend_from_slice(pairs);
        Labels::from_pairs(all)
    };
    let one = |q: &str| {
        let r = prom.query(q, t0);
        assert_eq!(r.len(), 1, "{q}: {r:?}");
        r.into_iter().next().unwrap()
    };

    assert_eq!(
        one("node_load1"),
        (l(&[("__name__", "node_load1")]), t0, "1.6".into())
    );
    assert_eq!(
        one(r#"go_gc_duration_seconds{quantile="0.5"}"#),
        (
            l(&[("__name__", "go_gc_duration_seconds"), ("quantile", "0.5")]),
            t0,
            "0.000027264".into()
        )
    );
    assert_eq!(
        one(r#"node_filesystem_size_bytes{mountpoint="/"}"#),
        (
            l(&[
                ("__name__", "node_filesystem_size_bytes"),
                ("device", "/dev/vda"),
                ("fstype", "ext4"),
                ("mountpoint", "/")
            ]),
            t0,
            "270553174016".into()
        )
    );
    // Escapes: the label value arrives unescaped; the empty label is absent.
    assert_eq!(
        one("scrapepool_test_escaped"),
        (
            l(&[
                ("__name__", "scrapepool_test_escaped"),
                ("path", "C:\\dir\\\"quoted\"\nnext line")
            ]),
            t0,
            "42.5".into()
        )
    );
    assert_eq!(
        one(r#"scrapepool_test_latency_seconds_bucket{le="+Inf"}"#),
        (
            l(&[
                ("__name__", "scrapepool_test_latency_seconds_bucket"),
                ("le", "+Inf")
            ]),
            t0,
            "9".into()
        )
    );
    // Synthetic series.
    assert_eq!(one("up").2, "1");
    assert_eq!(one("scrape_duration_seconds").2, "0.012");
    assert_eq!(
        one("scrape_samples_scraped").2,
        report.samples_scraped.to_string()
    );
    // Every series arrived: the scraped ones plus the five synthetic ones.
    assert_eq!(
        one(r#"count({job="node"})"#).2,
        (report.samples_post_metric_relabeling + 5).to_string()
    );
    println!(
        "prometheus read back {} series from {} records",
        report.samples_post_metric_relabeling + 5,
        records.len()
    );
}

/// Native histograms of client_golang's own protobuf answer, scraped with
/// `scrape_native_histograms`, posted to Prometheus 3.16's receiver (found as the
/// differential tests find it) and read back: count, sum
/// and the buckets' boundaries and counts of each, as its query API reports them.
#[test]
fn prometheus_reads_back_native_histograms() {
    let Some(bin) =
        prometheus3::reference_or_skip("prometheus_reads_back_native_histograms", "prometheus")
    else {
        return;
    };
    let prom = Prometheus::start(&bin);
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/exposition/go-exporter/client_golang-1.25.0.pb"
    ))
    .expect("fixture");
    let fetch = FetchOutcome::Body {
        body,
        content_type: Some(
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited".into(),
        ),
    };
    let mut s = spec();
    s.histograms.native = true;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t0 = now_ms - 60_000 - now_ms % 1000;
    let (report, records) = process_and_encode(
        &s,
        &mut SeriesCache::default(),
        &mut Default::default(),
        Timestamp(t0),
        Duration::from_millis(3),
        &fetch,
    );
    assert!(report.up, "{:?}", report.error);
    for r in &records {
        let (status, answer) = prom.write(&r.payload, V1);
        assert_eq!(status, 204, "{}", String::from_utf8_lossy(&answer));
    }
    let histogram = |q: &str| {
        let path = format!(
            "/api/v1/query?query={}&time={}",
            percent_encode(q),
            t0 / 1000
        );
        let (status, body) = http(&prom.addr, "GET", &path, &[], &[]).expect("query");
        assert_eq!(status, 200, "{q}: {}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let h = v["data"]["result"][0]["histogram"][1].clone();
        assert!(h.is_object(), "{q}: no histogram in {v}");
        h
    };
    // demo_native_seconds (client_golang's const native histogram, see
    // testdata/exposition/go-exporter/README.md): schema 3, zero bucket 3, positive spans
    // {-2,3} {3,2} with deltas 2 3 -4 2 4, negative spans {1,2} {3,1} with deltas 4 -3 1.
    let h = histogram("demo_native_seconds");
    assert_eq!(h["count"], "28");
    assert_eq!(h["sum"], "12.25");
    let buckets = h["buckets"].as_array().expect("buckets");
    // 3 positive + 2 + 3 negative buckets + the zero bucket: absolute counts 2, 5, 1, 3, 7
    // and 4, 1, 2 and 3.
    let mut counts: Vec<String> = buckets
        .iter()
        .map(|b| b[3].as_str().expect("count").to_string())
        .collect();
    counts.sort();
    let mut want: Vec<String> = ["2", "5", "1", "3", "7", "4", "1", "2", "3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    want.sort();
    assert_eq!(counts, want, "{buckets:?}");
    // The gauge histogram and the empty one arrive too.
    assert_eq!(histogram("demo_queue_wait_seconds")["count"], "6");
    assert_eq!(histogram("demo_empty_native_seconds")["count"], "0");
    println!(
        "prometheus read back native histograms from {} records",
        records.len()
    );
}

/// The remote-write 2.0 encoding posted to Prometheus 3.16's receiver (as a 2.0 request) and
/// read back: the node_exporter fixture's floats, and client_golang's native histograms.
#[test]
fn prometheus_reads_back_remote_write_v2() {
    let Some(bin) =
        prometheus3::reference_or_skip("prometheus_reads_back_remote_write_v2", "prometheus")
    else {
        return;
    };
    let prom = Prometheus::start(&bin);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t0 = now_ms - 60_000 - now_ms % 1000;
    let mut s = spec();
    s.emit.encoding = Encoding::RemoteWriteV2;
    // Small, so that the node_exporter scrape is split (references make 2.0 requests far
    // smaller than v1 ones).
    s.emit.message_bytes_max = 1500;
    s.histograms.native = true;
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/exposition/node_exporter-1.5.0.prom"
    ))
    .expect("fixture");
    let pb = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/exposition/go-exporter/client_golang-1.25.0.pb"
    ))
    .expect("fixture");
    let mut records = Vec::new();
    let mut scraped = 0;
    for (body, content_type, instance) in [
        (text, "text/plain; version=0.0.4", "10.1.2.3:9100"),
        (
            pb,
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
            "10.1.2.4:8080",
        ),
    ] {
        s.target_labels = Labels::from_pairs([("instance", instance), ("job", "node")]);
        let (report, r) = process_and_encode(
            &s,
            &mut SeriesCache::default(),
            &mut Default::default(),
            Timestamp(t0),
            Duration::from_millis(5),
            &FetchOutcome::Body {
                body,
                content_type: Some(content_type.into()),
            },
        );
        assert!(report.up, "{:?}", report.error);
        scraped += report.samples_post_metric_relabeling + 5;
        records.extend(r);
    }
    assert!(records.len() > 2, "the node_exporter scrape is split");
    for r in &records {
        assert_eq!(
            r.headers
                .iter()
                .find(|(k, _)| *k == "content-type")
                .map(|(_, v)| v.as_str()),
            Some("application/x-protobuf;proto=io.prometheus.write.v2.Request")
        );
        let (status, answer) = prom.write(&r.payload, V2);
        assert_eq!(status, 204, "{}", String::from_utf8_lossy(&answer));
    }
    let one = |q: &str| {
        let r = prom.query(q, t0);
        assert_eq!(r.len(), 1, "{q}: {r:?}");
        r.into_iter().next().unwrap().2
    };
    assert_eq!(one(r#"node_load1{instance="10.1.2.3:9100"}"#), "1.6");
    assert_eq!(
        one(r#"demo_requests_total{method="GET",code="200"}"#),
        "1027"
    );
    assert_eq!(one("histogram_count(demo_native_seconds)"), "28");
    assert_eq!(one("histogram_sum(demo_native_seconds)"), "12.25");
    // Every series arrived: the scraped ones plus five synthetic ones per target.
    assert_eq!(one(r#"count({job="node"})"#), scraped.to_string());
    println!(
        "prometheus read back {scraped} series from {} remote-write 2.0 records",
        records.len()
    );
}
