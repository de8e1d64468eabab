//! `scrapepool run` as an operator runs it: the built binary, pool members as child processes
//! on free loopback ports, against the real ZooKeeper and Apache Kafka that
//! scripts/services.sh starts (SCRAPEPOOL_ZK, SCRAPEPOOL_KAFKA, SCRAPEPOOL_KAFKA_CTL/_DIR).
//! Exporters are small HTTP servers in this process (fixture payloads, scrape counters) and
//! Debian's prometheus-node-exporter.
//!
//! Each test has its own ZooKeeper chroot and its own Kafka topic. The one test that stops the
//! broker holds `BROKER` for writing; the tests that need the broker up hold it for reading.
//! Without the services the tests print `SKIPPED: ...` and return, unless
//! SCRAPEPOOL_REQUIRE_SERVICES=1 (CI), where they fail.

#[path = "../adapters/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;

/// Held for writing by the test that stops the broker, for reading by the tests that need it.
static BROKER: RwLock<()> = RwLock::new(());

/// Session timeout of every daemon here: short, so that a killed member is noticed quickly.
const SESSION_TIMEOUT_S: u64 = 4;

/// The synthetic series every scrape adds (Prometheus's names).
const SYNTHETIC: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

// ---- services -----------------------------------------------------------------------------

/// Where ZooKeeper and Kafka are.
struct Services {
    zk: String,
    kafka: String,
}

impl Services {
    /// The services from the environment, or `None` after printing why the test is skipped.
    fn or_skip(test: &str) -> Option<Services> {
        let zk = match support::shared_zk() {
            Ok(server) => server.connect.clone(),
            Err(why) => {
                support::skip(test, &why);
                return None;
            }
        };
        match std::env::var("SCRAPEPOOL_KAFKA") {
            Ok(kafka) if !kafka.is_empty() => Some(Services { zk, kafka }),
            _ => {
                support::skip(
                    test,
                    "SCRAPEPOOL_KAFKA is not set (scripts/services.sh start sets it)",
                );
                None
            }
        }
    }

    /// A connect string with a chroot of its own.
    fn chroot(&self, test: &str) -> String {
        format!("{}/{}", self.zk, support::unique(&format!("daemon-{test}")))
    }
}

/// A topic nobody else writes to (the broker creates it on first use).
fn unique_topic(test: &str) -> String {
    support::unique(&format!("daemon-{test}"))
}

fn broker_up() -> std::sync::RwLockReadGuard<'static, ()> {
    BROKER.read().unwrap_or_else(|e| e.into_inner())
}

// ---- HTTP ---------------------------------------------------------------------------------

/// A GET over a fresh connection: `(status, body)`.
fn http_get(addr: &str, path: &str, accept: Option<&str>) -> std::io::Result<(u16, String)> {
    let sock = addr
        .parse()
        .map_err(|e| std::io::Error::other(format!("{addr}: {e}")))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

/// Polls `f` every 200 ms until it returns `Some`, or panics with `what` after `within`.
fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---- exporters ----------------------------------------------------------------------------

/// What an exporter serves for its `n`-th scrape (1-based).
type Body = Arc<dyn Fn(u64) -> String + Send + Sync>;

/// An HTTP server on a free loopback port that serves `body` and logs when each scrape came.
struct Exporter {
    addr: String,
    /// When each scrape's request arrived, with its number.
    log: Arc<Mutex<Vec<(Instant, u64)>>>,
    served: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    fn start(body: Body) -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
        let served = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (log, served, stop) = (log.clone(), served.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut conn) = conn else { continue };
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut req = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    if !req.starts_with(b"GET ") {
                        continue;
                    }
                    // Numbered and logged under one lock, so the log is in scrape order.
                    let n = {
                        let mut log = log.lock().unwrap();
                        let n = served.fetch_add(1, Ordering::SeqCst) + 1;
                        log.push((Instant::now(), n));
                        n
                    };
                    let text = body(n);
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    );
                }
            })
        };
        Exporter {
            addr,
            log,
            served,
            stop,
            thread: Some(thread),
        }
    }

    /// Serves `text` on every scrape.
    fn fixed(text: String) -> Exporter {
        Exporter::start(Arc::new(move |_| text.clone()))
    }

    /// Serves one gauge, `daemon_it_seq`, whose value is the scrape's number.
    fn counting() -> Exporter {
        Exporter::start(Arc::new(|n| {
            format!("# TYPE daemon_it_seq gauge\ndaemon_it_seq {n}\n")
        }))
    }

    fn times(&self) -> Vec<Instant> {
        self.log.lock().unwrap().iter().map(|(t, _)| *t).collect()
    }

    /// When value `n` was served.
    fn served_at(&self, n: u64) -> Option<Instant> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|(_, m)| *m == n)
            .map(|(t, _)| *t)
    }

    fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    fn scrapes_between(&self, from: Instant, to: Instant) -> usize {
        self.times()
            .into_iter()
            .filter(|t| *t >= from && *t < to)
            .count()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr); // wakes the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Debian's prometheus-node-exporter on a free port, killed on drop.
struct NodeExporter {
    addr: String,
    child: Child,
}

impl NodeExporter {
    /// Starts it, or `None` after printing why the test is skipped.
    fn start_or_skip(test: &str) -> Option<NodeExporter> {
        let bin = std::env::var("SCRAPEPOOL_NODE_EXPORTER_BIN")
            .ok()
            .filter(|b| !b.is_empty())
            .or_else(|| {
                let default = "/usr/bin/prometheus-node-exporter";
                Path::new(default).exists().then(|| default.to_string())
            });
        let Some(bin) = bin else {
            support::skip(
                test,
                "no prometheus-node-exporter (SCRAPEPOOL_NODE_EXPORTER_BIN)",
            );
            return None;
        };
        let addr = format!("127.0.0.1:{}", support::free_port());
        let child = Command::new(&bin)
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        let ne = NodeExporter { addr, child };
        eventually(Duration::from_secs(20), "node-exporter serves", || {
            http_get(&ne.addr, "/metrics", None)
                .ok()
                .filter(|(s, _)| *s == 200)
        });
        Some(ne)
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- the daemon ---------------------------------------------------------------------------

/// One `scrapepool run` pool member; killed on drop (its log printed when the test failed).
struct Daemon {
    id: String,
    web: String,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(zk: &str, kafka: &str, topic: &str, id: &str, encoding: &str) -> Daemon {
        Daemon::start_with(zk, kafka, topic, id, encoding, &[])
    }

    /// A member with `extra` arguments to `run`.
    fn start_with(
        zk: &str,
        kafka: &str,
        topic: &str,
        id: &str,
        encoding: &str,
        extra: &[&str],
    ) -> Daemon {
        let web = format!("127.0.0.1:{}", support::free_port());
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("daemon.log");
        let out = File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_scrapepool"))
            .args([
                "-v",
                "run",
                "--zookeeper",
                zk,
                "--kafka",
                kafka,
                "--topic",
                topic,
            ])
            .args(["--id", id, "--listen", &web, "--encoding", encoding])
            .args(["--session-timeout", &format!("{SESSION_TIMEOUT_S}s")])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("the scrapepool binary runs");
        Daemon {
            id: id.to_string(),
            web,
            child,
            log,
            _dir: dir,
        }
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(&self.web, path, None).ok()
    }

    fn wait_ready(&self, within: Duration) {
        eventually(within, &format!("{} ready", self.id), || {
            self.get("/-/ready").filter(|(s, _)| *s == 200)
        });
    }

    /// `/api/v1/targets`' active targets.
    fn targets(&self) -> Vec<serde_json::Value> {
        let (status, body) = self
            .get("/api/v1/targets")
            .expect("/api/v1/targets answers");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        v["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Member ids on `/api/v1/members`, with their state.
    fn members(&self) -> Vec<(String, String)> {
        let (status, body) = self
            .get("/api/v1/members")
            .expect("/api/v1/members answers");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap().to_string(),
                    m["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The value of the series `series` (name and labels as /metrics writes them).
    fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines().find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {}", self.id);
    }

    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {within:?}",
                self.id
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- log of daemon {} ----\n{}", self.id, self.log_tail());
        }
    }
}

/// `scrapepool jobs --zookeeper ZK ARGS...`, which must succeed.
fn jobs_cli(zk: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_scrapepool"))
        .args(["jobs", "--zookeeper", zk])
        .args(args)
        .output()
        .expect("the scrapepool binary runs");
    assert!(
        out.status.success(),
        "scrapepool jobs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Applies a `scrape_configs:` file with `jobs apply`.
fn apply_jobs(zk: &str, yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.yml");
    std::fs::write(&file, yaml).unwrap();
    jobs_cli(zk, &["apply", file.to_str().unwrap()]);
}

/// One job of static targets.
fn job_yaml(name: &str, interval: &str, timeout: &str, targets: &[&str]) -> String {
    let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    format!(
        "  - job_name: {name}\n    scrape_interval: {interval}\n    scrape_timeout: {timeout}\n    static_configs:\n      - targets: [{}]\n",
        list.join(", ")
    )
}

// ---- reading the topic --------------------------------------------------------------------

/// A message as read back.
#[derive(Clone, Debug)]
struct Msg {
    key: Vec<u8>,
    headers: BTreeMap<String, String>,
    payload: Vec<u8>,
}

/// One sample as decoded from a message.
#[derive(Clone, Debug, PartialEq)]
struct Sample {
    labels: BTreeMap<String, String>,
    timestamp_ms: i64,
    value: f64,
}

/// Reads a topic from its start.
struct TopicReader {
    consumer: BaseConsumer,
    msgs: Vec<Msg>,
}

impl TopicReader {
    fn open(brokers: &str, topic: &str) -> TopicReader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("{topic}-reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        TopicReader {
            consumer,
            msgs: Vec::new(),
        }
    }

    /// Reads what arrives within `d`.
    fn poll_for(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while Instant::now() < deadline {
            // Errors (the topic not created yet, a broker restart) are retried by polling on.
            if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(100)) {
                let headers = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.msgs.push(Msg {
                    key: m.key().unwrap_or_default().to_vec(),
                    headers,
                    payload: m.payload().unwrap_or_default().to_vec(),
                });
            }
        }
    }

    /// Reads until `done(messages)` holds; panics with `what` after `within`.
    fn read_until(&mut self, within: Duration, what: &str, done: impl Fn(&[Msg]) -> bool) {
        let deadline = Instant::now() + within;
        while !done(&self.msgs) {
            assert!(
                Instant::now() < deadline,
                "not within {within:?}: {what} ({} messages read)",
                self.msgs.len()
            );
            self.poll_for(Duration::from_millis(500));
        }
    }
}

/// The samples of one message, by its `encoding` header.
fn decode(m: &Msg) -> Vec<Sample> {
    match m.headers.get("encoding").map(String::as_str) {
        Some("remote-write") => {
            // The daemon encodes by hand; the core's prost structs read it independently.
            let req = scrapepool_core::testing::remote_write::decode(&m.payload)
                .expect("a remote-write payload");
            let mut out = Vec::new();
            for ts in req.timeseries {
                let labels: BTreeMap<String, String> =
                    ts.labels.into_iter().map(|l| (l.name, l.value)).collect();
                for s in ts.samples {
                    out.push(Sample {
                        labels: labels.clone(),
                        timestamp_ms: s.timestamp,
                        value: s.value,
                    });
                }
            }
            out
        }
        Some("json") => {
            let v: serde_json::Value = serde_json::from_slice(&m.payload).expect("JSON");
            let labels: BTreeMap<String, String> = v["labels"]
                .as_object()
                .expect("labels")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            assert_eq!(
                v["name"].as_str(),
                labels.get("__name__").map(String::as_str),
                "name and __name__ of {v}"
            );
            vec![Sample {
                labels,
                timestamp_ms: parse_rfc3339_ms(v["timestamp"].as_str().expect("timestamp")),
                value: v["value"]
                    .as_str()
                    .expect("value as string")
                    .parse()
                    .unwrap(),
            }]
        }
        other => panic!("unknown encoding header {other:?}"),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` as Unix milliseconds.
fn parse_rfc3339_ms(s: &str) -> i64 {
    assert!(s.len() == 24 && s.ends_with('Z'), "timestamp {s:?}");
    let n = |a: usize, b: usize| -> i64 { s[a..b].parse().unwrap() };
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + n(11, 13)) * 60 + n(14, 16)) * 60_000 + n(17, 19) * 1000 + n(20, 23)
}

/// Samples of `instance`, grouped by timestamp (one group per scrape).
fn scrapes_of(msgs: &[Msg], instance: &str) -> BTreeMap<i64, Vec<Sample>> {
    let mut out: BTreeMap<i64, Vec<Sample>> = BTreeMap::new();
    for m in msgs {
        if m.headers.get("instance").map(String::as_str) != Some(instance) {
            continue;
        }
        for s in decode(m) {
            out.entry(s.timestamp_ms).or_default().push(s);
        }
    }
    out
}

// ---- the text format, parsed independently ------------------------------------------------

/// A sample as compared: sorted labels (with `__name__`) and the value's bits (NaN as one).
type Comparable = (Vec<(String, String)>, u64);

fn comparable(labels: &BTreeMap<String, String>, value: f64) -> Comparable {
    let bits = if value.is_nan() {
        f64::NAN.to_bits()
    } else {
        value.to_bits()
    };
    // `le` and `quantile` compared as numbers: Prometheus 3 (and so scrapepool) writes
    // `le="1"` of a histogram as `1.0`.
    let canonical = |k: &str, v: &String| match (k, v.parse::<f64>()) {
        ("le" | "quantile", Ok(f)) => f.to_string(),
        _ => v.clone(),
    };
    (
        labels
            .iter()
            .map(|(k, v)| (k.clone(), canonical(k, v)))
            .collect(),
        bits,
    )
}

/// The samples of a Prometheus text-format payload, with `extra` labels added.
fn parse_exposition(text: &str, extra: &[(&str, &str)]) -> BTreeSet<Comparable> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).expect("a sample line");
        let mut labels = BTreeMap::new();
        labels.insert("__name__".to_string(), line[..name_end].to_string());
        let mut rest = &line[name_end..];
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let end;
            loop {
                while let Some((_, ',' | ' ')) = chars.peek() {
                    chars.next();
                }
                let (i, c) = chars.next().expect("closing brace");
                if c == '}' {
                    end = i + 1;
                    break;
                }
                let mut name = String::from(c);
                for (_, c) in chars.by_ref() {
                    if c == '=' {
                        break;
                    }
                    name.push(c);
                }
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                let mut value = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('n') => value.push('\n'),
                            Some(other) => value.push(other),
                            None => panic!("{line}"),
                        },
                        c => value.push(c),
                    }
                }
                // An empty label value is no label (Prometheus drops it).
                if !value.is_empty() {
                    labels.insert(name.trim().to_string(), value);
                }
            }
            rest = &body[end..];
        }
        let value: f64 = rest
            .split_whitespace()
            .next()
            .expect("a value")
            .parse()
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        for (k, v) in extra {
            labels.insert(k.to_string(), v.to_string());
        }
        out.insert(comparable(&labels, value));
    }
    out
}

/// Checks one scrape read back against the payload served: the same samples (labels, values)
/// plus the synthetic series, `up` 1, `scrape_samples_scraped` the payload's count.
fn assert_scrape_equals(scrape: &[Sample], served: &str, job: &str, instance: &str) {
    let expected = parse_exposition(served, &[("job", job), ("instance", instance)]);
    let mut got = BTreeSet::new();
    let mut synthetic = BTreeMap::new();
    for s in scrape {
        assert_eq!(s.labels.get("job").map(String::as_str), Some(job), "{s:?}");
        assert_eq!(
            s.labels.get("instance").map(String::as_str),
            Some(instance),
            "{s:?}"
        );
        let name = s.labels["__name__"].as_str();
        if SYNTHETIC.contains(&name) {
            synthetic.insert(name.to_string(), s.value);
        } else {
            assert!(
                got.insert(comparable(&s.labels, s.value)),
                "sample twice in one scrape: {s:?}"
            );
        }
    }
    let missing: Vec<_> = expected.difference(&got).take(5).collect();
    let extra: Vec<_> = got.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{instance}: {} served, {} read back; missing e.g. {missing:?}; not served e.g. {extra:?}",
        expected.len(),
        got.len()
    );
    assert_eq!(synthetic.get("up"), Some(&1.0), "{instance}: {synthetic:?}");
    assert_eq!(
        synthetic.get("scrape_samples_scraped"),
        Some(&(expected.len() as f64)),
        "{instance}"
    );
    assert_eq!(
        synthetic.len(),
        SYNTHETIC.len(),
        "{instance}: {synthetic:?}"
    );
}

// ---- 1. members and jobs through ZooKeeper ------------------------------------------------

#[test]
fn jobs_and_members_flow_through_zookeeper() {
    let test = "jobs_and_members_flow_through_zookeeper";
    let Some(svc) = Services::or_skip(test) else {
        return;
    };
    let zk = svc.chroot("flow");
    let topic = unique_topic("flow");
    let (a, b) = (Exporter::counting(), Exporter::counting());

    let d1 = Daemon::start(&zk, &svc.kafka, &topic, "m1", "remote-write");
    d1.wait_ready(Duration::from_secs(30));
    assert!(d1.targets().is_empty(), "no jobs yet: {:?}", d1.targets());
    assert_eq!(d1.members(), vec![("m1".to_string(), "active".to_string())]);

    // A second member appears in the first one's view, and goes when it leaves.
    let mut d2 = Daemon::start(&zk, &svc.kafka, &topic, "m2", "remote-write");
    d2.wait_ready(Duration::from_secs(30));
    eventually(Duration::from_secs(10), "m1 sees m2", || {
        (d1.members().len() == 2).then_some(())
    });
    d2.signal("TERM");
    assert!(d2.wait_exit(Duration::from_secs(20)).success());
    eventually(Duration::from_secs(10), "m1 sees m2 gone", || {
        (d1.members() == vec![("m1".to_string(), "active".to_string())]).then_some(())
    });

    // A job applied with the CLI: its targets appear, owned and scraped by m1.
    apply_jobs(
        &zk,
        &format!(
            "scrape_configs:\n{}",
            job_yaml("web", "1s", "1s", &[&a.addr, &b.addr])
        ),
    );
    let targets = eventually(Duration::from_secs(15), "both targets up", || {
        let t = d1.targets();
        (t.len() == 2 && t.iter().all(|t| t["health"] == "up")).then_some(t)
    });
    let mut instances: Vec<&str> = targets
        .iter()
        .map(|t| {
            assert_eq!(t["scrapePool"], "web");
            assert_eq!(t["labels"]["job"], "web");
            assert_eq!(t["owners"], serde_json::json!(["m1"]));
            t["labels"]["instance"].as_str().unwrap()
        })
        .collect();
    instances.sort();
    let mut want = vec![a.addr.as_str(), b.addr.as_str()];
    want.sort();
    assert_eq!(instances, want);
    assert!(a.served() >= 1 && b.served() >= 1);

    // Deleted: the targets go, and nobody scrapes them any more.
    jobs_cli(&zk, &["delete", "web"]);
    eventually(Duration::from_secs(10), "targets removed", || {
        d1.targets().is_empty().then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500)); // a scrape in flight may still finish
    let (na, nb) = (a.served(), b.served());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        (a.served(), b.served()),
        (na, nb),
        "scraped after the job was deleted"
    );
}

// ---- 2. samples read back equal what was served --------------------------------------------

/// Runs one daemon with `encoding` over the node_exporter fixture and a real node-exporter
/// (behind a recording proxy), and compares the first scrape of each read back from Kafka
/// with what was served.
fn samples_round_trip(test: &str, encoding: &str) {
    let Some(svc) = Services::or_skip(test) else {
        return;
    };
    let Some(node) = NodeExporter::start_or_skip(test) else {
        return;
    };
    let _broker = broker_up();
    let zk = svc.chroot(encoding);
    let topic = unique_topic(encoding);

    let fixture_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/exposition/node_exporter-1.5.0.prom"),
    )
    .unwrap();
    let fixture = Exporter::fixed(fixture_text.clone());
    // The real node-exporter's answers change from scrape to scrape: a proxy records each.
    let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
    let proxy = {
        let (bodies, upstream) = (bodies.clone(), node.addr.clone());
        Exporter::start(Arc::new(move |_| {
            let (status, body) = http_get(&upstream, "/metrics", Some("text/plain;version=0.0.4"))
                .expect("node-exporter answers");
            assert_eq!(status, 200);
            bodies.lock().unwrap().push(body.clone());
            body
        }))
    };
    apply_jobs(
        &zk,
        &format!(
            "scrape_configs:\n{}{}",
            job_yaml("fixture", "2s", "2s", &[&fixture.addr]),
            job_yaml("node", "2s", "2s", &[&proxy.addr])
        ),
    );
    let id = format!("rt-{encoding}");
    let daemon = Daemon::start(&zk, &svc.kafka, &topic, &id, encoding);
    daemon.wait_ready(Duration::from_secs(30));

    let mut reader = TopicReader::open(&svc.kafka, &topic);
    // Three scrapes of each target: the first two are then complete (a target's messages
    // are on one partition, in order).
    reader.read_until(
        Duration::from_secs(60),
        "three scrapes of each target",
        |msgs| {
            scrapes_of(msgs, &fixture.addr).len() >= 3 && scrapes_of(msgs, &proxy.addr).len() >= 3
        },
    );
    for m in &reader.msgs {
        assert_eq!(
            m.headers.get("encoding").map(String::as_str),
            Some(encoding)
        );
        assert_eq!(m.headers.get("scraper"), Some(&id));
        assert_eq!(m.key.len(), 8, "key = the target key's 8-byte hash");
    }
    for (instance, job) in [(&fixture.addr, "fixture"), (&proxy.addr, "node")] {
        let keys: BTreeSet<&Vec<u8>> = reader
            .msgs
            .iter()
            .filter(|m| m.headers.get("instance") == Some(instance))
            .inspect(|m| assert_eq!(m.headers.get("job").map(String::as_str), Some(job)))
            .map(|m| &m.key)
            .collect();
        assert_eq!(keys.len(), 1, "{instance}: one key per target");
    }

    let scrapes = scrapes_of(&reader.msgs, &fixture.addr);
    for scrape in scrapes.values().take(2) {
        assert_scrape_equals(scrape, &fixture_text, "fixture", &fixture.addr);
    }
    let scrapes = scrapes_of(&reader.msgs, &proxy.addr);
    let first = scrapes.values().next().unwrap();
    let served = bodies.lock().unwrap()[0].clone();
    assert!(
        served.lines().filter(|l| !l.starts_with('#')).count() > 50,
        "node-exporter served little: {served}"
    );
    assert_scrape_equals(first, &served, "node", &proxy.addr);
}

#[test]
fn remote_write_samples_read_back_equal_what_exporters_served() {
    samples_round_trip(
        "remote_write_samples_read_back_equal_what_exporters_served",
        "remote-write",
    );
}

#[test]
fn json_samples_read_back_equal_what_exporters_served() {
    samples_round_trip("json_samples_read_back_equal_what_exporters_served", "json");
}

// ---- 3. three daemons share 30 targets ----------------------------------------------------

/// Scrape interval of the pool tests.
const POOL_INTERVAL: Duration = Duration::from_secs(2);

/// Who owns each target (by instance), as `daemon` reports it on `/api/v1/targets`.
fn owners_seen_by(daemon: &Daemon) -> BTreeMap<String, Vec<String>> {
    daemon
        .targets()
        .iter()
        .map(|t| {
            let owners = t["owners"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_str().unwrap().to_string())
                .collect();
            (
                t["labels"]["instance"].as_str().unwrap().to_string(),
                owners,
            )
        })
        .collect()
}

/// The owner of every target, once every daemon in `daemons` reports the same single owner
/// for each of `n` targets, all among `daemons`.
/// SIGTERM to every member, then each drains and exits 0.
fn drain_all(daemons: &mut [Daemon]) {
    for d in daemons.iter() {
        d.signal("TERM");
    }
    for d in daemons.iter_mut() {
        let status = d.wait_exit(Duration::from_secs(60));
        assert!(
            status.success(),
            "{} exits 0 after draining: {status}",
            d.id
        );
    }
}

/// The owners of `n` targets once every member agrees on them and each member owns some.
fn agreed_shares(daemons: &[Daemon], n: usize, what: &str) -> BTreeMap<String, String> {
    let all: Vec<&Daemon> = daemons.iter().collect();
    eventually(Duration::from_secs(60), what, || {
        agreed_owners(&all, n).filter(|o| {
            let owners: BTreeSet<&str> = o.values().map(String::as_str).collect();
            owners.len() == all.len()
        })
    })
}

fn agreed_owners(daemons: &[&Daemon], n: usize) -> Option<BTreeMap<String, String>> {
    let ids: BTreeSet<&str> = daemons.iter().map(|d| d.id.as_str()).collect();
    let first = owners_seen_by(daemons[0]);
    if first.len() != n {
        return None;
    }
    for d in &daemons[1..] {
        if owners_seen_by(d) != first {
            return None;
        }
    }
    first
        .into_iter()
        .map(|(t, o)| (o.len() == 1 && ids.contains(o[0].as_str())).then(|| (t, o[0].clone())))
        .collect()
}

/// The longest gap between consecutive scrapes of `times` within `[from, to]`, counting the
/// edges of the window.
fn max_gap(times: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut prev = from;
    let mut gap = Duration::ZERO;
    for &t in times.iter().filter(|t| **t >= from && **t <= to) {
        gap = gap.max(t - prev);
        prev = t;
    }
    gap.max(to - prev)
}

#[test]
fn three_daemons_share_thirty_targets_and_survive_kill_and_sigterm() {
    let test = "three_daemons_share_thirty_targets_and_survive_kill_and_sigterm";
    let Some(svc) = Services::or_skip(test) else {
        return;
    };
    let _broker = broker_up();
    let zk = svc.chroot("pool");
    let topic = unique_topic("pool");
    let exporters: Vec<Exporter> = (0..30).map(|_| Exporter::counting()).collect();
    let by_addr: BTreeMap<&str, &Exporter> =
        exporters.iter().map(|e| (e.addr.as_str(), e)).collect();
    let addrs: Vec<&str> = exporters.iter().map(|e| e.addr.as_str()).collect();
    apply_jobs(
        &zk,
        &format!("scrape_configs:\n{}", job_yaml("pool", "2s", "1s", &addrs)),
    );
    let mut daemons: Vec<Daemon> = (1..=3)
        .map(|i| Daemon::start(&zk, &svc.kafka, &topic, &format!("p{i}"), "remote-write"))
        .collect();
    for d in &daemons {
        d.wait_ready(Duration::from_secs(30));
    }
    let all: Vec<&Daemon> = daemons.iter().collect();
    let owners = eventually(
        Duration::from_secs(20),
        "three members agree on 30 owners",
        || agreed_owners(&all, 30),
    );
    let mut shares: BTreeMap<&str, usize> = BTreeMap::new();
    for o in owners.values() {
        *shares.entry(o.as_str()).or_default() += 1;
    }
    println!("{test}: targets per member {shares:?}");
    assert_eq!(
        shares.len(),
        3,
        "every member owns some of 30 targets: {shares:?}"
    );

    // Steady state (after the start-up handoffs end): each target about once per interval,
    // and every sample of a target in the window comes from one scraper, its owner.
    std::thread::sleep(POOL_INTERVAL * 2);
    let window_start = Instant::now();
    let window_start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    std::thread::sleep(POOL_INTERVAL * 4);
    let window_end = Instant::now();
    for e in &exporters {
        let n = e.scrapes_between(window_start, window_end);
        assert!(
            (3..=5).contains(&n),
            "{}: {n} scrapes in 4 intervals (one scraper makes 4)",
            e.addr
        );
    }
    let mut reader = TopicReader::open(&svc.kafka, &topic);
    let window_end_ms = window_start_ms + (POOL_INTERVAL * 4).as_millis() as i64;
    reader.read_until(
        Duration::from_secs(30),
        "messages after the window",
        |msgs| {
            let mut late: BTreeSet<&str> = BTreeSet::new();
            for m in msgs {
                if decode(m).iter().any(|s| s.timestamp_ms > window_end_ms) {
                    late.insert(m.headers["instance"].as_str());
                }
            }
            late.len() == 30
        },
    );
    let mut scrapers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &reader.msgs {
        let in_window = decode(m)
            .iter()
            .any(|s| s.timestamp_ms >= window_start_ms && s.timestamp_ms < window_end_ms);
        if in_window {
            scrapers
                .entry(m.headers["instance"].clone())
                .or_default()
                .insert(m.headers["scraper"].clone());
        }
    }
    assert_eq!(scrapers.len(), 30, "every target scraped in the window");
    for (instance, who) in &scrapers {
        assert_eq!(
            who,
            &BTreeSet::from([owners[instance].clone()]),
            "{instance}: scraped by exactly its owner"
        );
    }

    // kill -9 one member: the others take its targets over within the session timeout plus
    // one interval.
    let victim = daemons.iter().position(|d| d.id == "p1").unwrap();
    let orphans: Vec<&str> = owners
        .iter()
        .filter(|(_, o)| o.as_str() == "p1")
        .map(|(t, _)| t.as_str())
        .collect();
    daemons[victim].signal("KILL");
    let killed_at = Instant::now();
    daemons[victim].wait_exit(Duration::from_secs(5));
    let bound = Duration::from_secs(SESSION_TIMEOUT_S) + POOL_INTERVAL;
    let slack = Duration::from_millis(1500);
    let mut failover = Duration::ZERO;
    for t in &orphans {
        let first = eventually(
            bound + slack * 4,
            &format!("{t} scraped after the kill"),
            || by_addr[t].times().into_iter().find(|x| *x > killed_at),
        );
        failover = failover.max(first - killed_at);
    }
    println!(
        "{test}: failover after kill -9: {} orphaned targets, all scraped again within {:.2} s (bound {:.1} s)",
        orphans.len(),
        failover.as_secs_f64(),
        bound.as_secs_f64()
    );
    assert!(
        failover <= bound + slack,
        "failover took {failover:?}, more than session timeout + interval ({bound:?}) + {slack:?}"
    );
    let survivors: Vec<&Daemon> = daemons.iter().filter(|d| d.id != "p1").collect();
    let owners = eventually(Duration::from_secs(10), "two members agree", || {
        agreed_owners(&survivors, 30)
    });

    // SIGTERM one more: it drains and hands off; no interval of any target is missed.
    std::thread::sleep(POOL_INTERVAL * 2); // past the failover's gaps
    let leaving = daemons.iter().position(|d| d.id == "p2").unwrap();
    let term_at = Instant::now();
    daemons[leaving].signal("TERM");
    let status = daemons[leaving].wait_exit(Duration::from_secs(30));
    assert!(status.success(), "a drained member exits 0: {status}");
    std::thread::sleep(POOL_INTERVAL * 3);
    let observed_to = Instant::now();
    let from = term_at - POOL_INTERVAL * 2;
    let mut worst = (Duration::ZERO, "");
    for e in &exporters {
        let gap = max_gap(&e.times(), from, observed_to);
        if gap > worst.0 {
            worst = (gap, e.addr.as_str());
        }
    }
    let moved = owners.values().filter(|o| o.as_str() == "p2").count();
    println!(
        "{test}: SIGTERM of p2 ({moved} targets moved): longest gap between scrapes of any target {:.2} s (interval {:.1} s)",
        worst.0.as_secs_f64(),
        POOL_INTERVAL.as_secs_f64()
    );
    assert!(
        worst.0 <= POOL_INTERVAL + Duration::from_millis(700),
        "{}: a gap of {:?} around the SIGTERM (interval {POOL_INTERVAL:?})",
        worst.1,
        worst.0
    );
    let last: Vec<&Daemon> = daemons.iter().filter(|d| d.id == "p3").collect();
    let owners = eventually(Duration::from_secs(10), "p3 owns all", || {
        agreed_owners(&last, 30)
    });
    assert!(owners.values().all(|o| o == "p3"));
}

/// Per target (instance), the `up` sample timestamps of every scrape that reached the bus.
fn up_times(msgs: &[Msg]) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for m in msgs {
        for s in decode(m) {
            if s.labels.get("__name__").map(String::as_str) == Some("up") {
                out.entry(m.headers["instance"].clone())
                    .or_default()
                    .push(s.timestamp_ms);
            }
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// Counts, over `[from_ms, to_ms]`, the intervals of a target scraped twice (two scrapes
/// less than half an interval apart) and missed (two consecutive scrapes more than one and a
/// half intervals apart: one missed per interval beyond the first).
fn doubled_and_missed(times: &[i64], from_ms: i64, to_ms: i64, interval_ms: i64) -> (u64, u64) {
    let inside: Vec<i64> = times
        .iter()
        .copied()
        .filter(|t| (from_ms..=to_ms).contains(t))
        .collect();
    let (mut doubled, mut missed) = (0, 0);
    for w in inside.windows(2) {
        let gap = w[1] - w[0];
        if gap < interval_ms / 2 {
            doubled += 1;
        } else if gap > interval_ms + interval_ms / 2 {
            missed += ((gap + interval_ms / 2) / interval_ms - 1) as u64;
        }
    }
    (doubled, missed)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The rolling restart of issue "exactly one scrape per interval": a pool of three with 200
/// targets @10s; each member in turn is sent SIGTERM, drains, exits 0 and is started again
/// with the same id. On the bus, no interval of any target is missed and none is scraped
/// twice, and no two scrapes of a target carry the same timestamp.
#[test]
fn a_rolling_restart_of_every_member_scrapes_each_interval_exactly_once() {
    let test = "a_rolling_restart_of_every_member_scrapes_each_interval_exactly_once";
    let Some(svc) = Services::or_skip(test) else {
        return;
    };
    let _broker = broker_up();
    const TARGETS: usize = 200;
    let interval = Duration::from_secs(10);
    let interval_ms = interval.as_millis() as i64;
    let zk = svc.chroot("rolling");
    let topic = unique_topic("rolling");
    let exporters: Vec<Exporter> = (0..TARGETS).map(|_| Exporter::counting()).collect();
    let addrs: Vec<&str> = exporters.iter().map(|e| e.addr.as_str()).collect();
    apply_jobs(
        &zk,
        &format!(
            "scrape_configs:\n{}",
            job_yaml("rolling", "10s", "5s", &addrs)
        ),
    );
    let ids = ["r1", "r2", "r3"];
    let start = |id: &str| Daemon::start(&zk, &svc.kafka, &topic, id, "remote-write");
    let mut daemons: Vec<Daemon> = ids.iter().map(|id| start(id)).collect();
    for d in &daemons {
        d.wait_ready(Duration::from_secs(30));
    }
    agreed_shares(&daemons, TARGETS, "three members agree on every owner");
    // Past the start-up handoffs.
    std::thread::sleep(interval * 2);
    let from_ms = now_ms();
    let mut drains = Vec::new();
    for i in 0..daemons.len() {
        let began = Instant::now();
        daemons[i].signal("TERM");
        let status = daemons[i].wait_exit(Duration::from_secs(60));
        assert!(
            status.success(),
            "{} drained and exited 0: {status}",
            ids[i]
        );
        drains.push(began.elapsed());
        daemons[i] = start(ids[i]);
        daemons[i].wait_ready(Duration::from_secs(30));
        agreed_shares(
            &daemons,
            TARGETS,
            &format!("{} back and owning its share", ids[i]),
        );
        // Past its join's handoff slots before the next member goes.
        std::thread::sleep(interval + Duration::from_secs(6));
    }
    let to_ms = now_ms();
    let mut reader = TopicReader::open(&svc.kafka, &topic);
    reader.read_until(
        Duration::from_secs(60),
        "a scrape of every target after the rolling restart",
        |msgs| {
            let up = up_times(msgs);
            up.len() == TARGETS && up.values().all(|v| v.last().is_some_and(|t| *t > to_ms))
        },
    );
    let up = up_times(&reader.msgs);
    let (mut doubled, mut missed, mut intervals, mut same) = (0, 0, 0, 0);
    let mut worst: Vec<String> = Vec::new();
    for (instance, times) in &up {
        let (d, m) = doubled_and_missed(
            times,
            from_ms - interval_ms,
            to_ms + interval_ms,
            interval_ms,
        );
        same += times.windows(2).filter(|w| w[0] == w[1]).count();
        intervals += times
            .iter()
            .filter(|t| (from_ms..to_ms).contains(*t))
            .count();
        if d + m > 0 && worst.len() < 5 {
            let around: Vec<i64> = times
                .iter()
                .filter(|t| (from_ms - interval_ms..=to_ms + interval_ms).contains(*t))
                .map(|t| t - from_ms)
                .collect();
            worst.push(format!(
                "{instance}: {d} doubled, {m} missed, scrapes at {around:?} ms"
            ));
        }
        doubled += d;
        missed += m;
    }
    println!(
        "{test}: rolling restart of 3 members, {TARGETS} targets @10s over {:.0} s ({intervals} target-intervals; drains took {:?}): {missed} missed, {doubled} doubled, {same} same-timestamp pairs",
        (to_ms - from_ms) as f64 / 1000.0,
        drains.iter().map(|d| format!("{:.1}s", d.as_secs_f64())).collect::<Vec<_>>()
    );
    assert_eq!(same, 0, "no two scrapes of a target carry one timestamp");
    assert_eq!((missed, doubled), (0, 0), "{}", worst.join("\n"));
}

// ---- hostile exporters cannot hurt the pool -----------------------------------------------

/// An HTTP server on a free loopback port that answers every request with `head` (status
/// line and headers, ending in the blank line) and then `body(conn)`, one thread per
/// connection; `body` stops when the client goes away.
struct RawExporter {
    addr: String,
    stop: Arc<AtomicBool>,
}

impl RawExporter {
    fn start(head: &'static str, body: Arc<dyn Fn(&mut TcpStream) + Send + Sync>) -> RawExporter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let body = body.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
                    let mut req = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    if conn.write_all(head.as_bytes()).is_ok() {
                        body(&mut conn);
                    }
                });
            }
        });
        RawExporter { addr, stop }
    }

    /// A gzip bomb: `members` gzip members of 64 MiB of zeros each (64 KiB compressed).
    fn gzip_bomb(members: usize) -> RawExporter {
        let member = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..64 {
                e.write_all(&zeros).unwrap();
            }
            e.finish().unwrap()
        };
        let bomb: Arc<Vec<u8>> = Arc::new(member.repeat(members));
        let head: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bomb.len()
            )
            .into_boxed_str(),
        );
        RawExporter::start(
            head,
            Arc::new(move |conn| {
                let _ = conn.write_all(&bomb);
            }),
        )
    }

    /// A body that never ends (valid sample lines, no length, until the client leaves).
    fn endless() -> RawExporter {
        let chunk: Arc<Vec<u8>> = Arc::new(
            (0..4096)
                .map(|i| format!("endless_series{{i=\"{i}\"}} 1\n"))
                .collect::<String>()
                .into_bytes(),
        );
        RawExporter::start(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nConnection: close\r\n\r\n",
            Arc::new(move |conn| while conn.write_all(&chunk).is_ok() {}),
        )
    }
}

impl Drop for RawExporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

/// The peak resident memory of a process (`VmHWM` of /proc/PID/status), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

#[test]
fn a_gzip_bomb_and_an_endless_body_take_no_member_down() {
    let test = "a_gzip_bomb_and_an_endless_body_take_no_member_down";
    let Some(svc) = Services::or_skip(test) else {
        return;
    };
    let _broker = broker_up();
    let zk = svc.chroot("hostile");
    let topic = unique_topic("hostile");
    let healthy: Vec<Exporter> = (0..6).map(|_| Exporter::counting()).collect();
    // 16 members: 1 GiB inflated from 1 MiB on the wire.
    let bomb = RawExporter::gzip_bomb(16);
    let endless = RawExporter::endless();
    let mut addrs: Vec<&str> = healthy.iter().map(|e| e.addr.as_str()).collect();
    addrs.push(&bomb.addr);
    addrs.push(&endless.addr);
    apply_jobs(
        &zk,
        &format!(
            "scrape_configs:\n{}",
            job_yaml("hostile", "2s", "1s", &addrs)
        ),
    );
    // Every member owns every target (replication 3): each scrapes both bad ones. A budget
    // of 512 MiB caps each body at 16 MiB.
    let daemons: Vec<Daemon> = (1..=3)
        .map(|i| {
            Daemon::start_with(
                &zk,
                &svc.kafka,
                &topic,
                &format!("h{i}"),
                "remote-write",
                &["--replication-factor", "3", "--memory-budget", "512MiB"],
            )
        })
        .collect();
    for d in &daemons {
        d.wait_ready(Duration::from_secs(30));
    }
    let bad = [bomb.addr.as_str(), endless.addr.as_str()];
    for d in &daemons {
        eventually(
            Duration::from_secs(20),
            &format!("{}: both bad targets down with the reason", d.id),
            || {
                let targets = d.targets();
                let down = targets
                    .iter()
                    .filter(|t| bad.contains(&t["labels"]["instance"].as_str().unwrap_or("")))
                    .filter(|t| t["health"] == "down")
                    .filter(|t| t["lastError"] == "body size limit exceeded")
                    .count();
                (targets.len() == 8 && down == 2).then_some(())
            },
        );
    }
    let window_start = Instant::now();
    std::thread::sleep(POOL_INTERVAL * 5);
    let window_end = Instant::now();
    for d in &daemons {
        let (status, page) = d.get("/targets").expect("/targets answers");
        assert_eq!(status, 200);
        assert_eq!(
            page.matches("body size limit exceeded").count(),
            2,
            "{}: both bad targets show the reason on /targets",
            d.id
        );
        let rejected = d
            .metric("scrapepool_scrapes_rejected_total{reason=\"body_size_limit\"}")
            .unwrap_or(0.0);
        assert!(
            rejected >= 4.0,
            "{}: {rejected} body-limit rejections",
            d.id
        );
        let peak = peak_rss(d.child.id());
        println!("{test}: {} peak RSS {} MiB", d.id, peak >> 20);
        assert!(
            peak < 400 << 20,
            "{}: peak RSS {} MiB under a 512 MiB budget",
            d.id,
            peak >> 20
        );
    }
    let mut daemons = daemons;
    for d in &mut daemons {
        assert!(
            d.child.try_wait().unwrap().is_none(),
            "{} is still running",
            d.id
        );
    }
    // The healthy targets missed no interval: three owners each, so at least one scrape in
    // every interval, and about three per interval.
    for e in &healthy {
        let gap = max_gap(&e.times(), window_start, window_end);
        assert!(
            gap <= POOL_INTERVAL + Duration::from_millis(700),
            "{}: a gap of {gap:?} (interval {POOL_INTERVAL:?})",
            e.addr
        );
        let n = e.scrapes_between(window_start, window_end);
        assert!(
            (12..=18).contains(&n),
            "{}: {n} scrapes in 5 intervals by 3 owners",
            e.addr
        );
    }
}

// ---- 4. a Kafka outage loses nothing ------------------------------------------------------

/// A broker outage made with scripts/kafka.sh (SCRAPEPOOL_KAFKA_CTL): `begin` stops the
/// broker, dropping the guard starts it again, so that a failing test leaves it running.
struct Outage {
    ctl: String,
    dir: String,
}

impl Outage {
    /// The script and the broker's state dir, or `None` after printing why not.
    fn hook_or_skip(test: &str) -> Option<(String, String)> {
        match (
            std::env::var("SCRAPEPOOL_KAFKA_CTL"),
            std::env::var("SCRAPEPOOL_KAFKA_DIR"),
        ) {
            (Ok(ctl), Ok(dir)) if !ctl.is_empty() && !dir.is_empty() => Some((ctl, dir)),
            _ => {
                support::skip(
                    test,
                    "SCRAPEPOOL_KAFKA_CTL/SCRAPEPOOL_KAFKA_DIR not set (scripts/services.sh sets them)",
                );
                None
            }
        }
    }

    fn begin(ctl: &str, dir: &str) -> Outage {
        Outage::run(ctl, "stop", dir);
        Outage {
            ctl: ctl.to_string(),
            dir: dir.to_string(),
        }
    }

    fn run(ctl: &str, action: &str, dir: &str) {
        let status = Command::new(ctl)
            .args([action, dir])
            .stdout(Stdio::null())
            .status()
            .expect("run SCRAPEPOOL_KAFKA_CTL");
        assert!(status.success(), "{ctl} {action} {dir} failed: {status}");
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        Outage::run(&self.ctl, "restart", &self.dir);
    }
}

/// How long the broker stays down.
const OUTAGE: Duration = Duration::from_secs(30);

/// Per counting exporter, the values it served (1..=served) that are not in `msgs` (lost,
/// as exporter address and value), how many are in it more than once (duplicated); and how
/// many samples `msgs` hold.
fn lost_and_duplicated(msgs: &[Msg], exporters: &[Exporter]) -> (Vec<(String, u64)>, u64, usize) {
    let mut seen: BTreeMap<(String, i64), u32> = BTreeMap::new();
    let mut samples = 0;
    for m in msgs {
        for s in decode(m) {
            samples += 1;
            if s.labels["__name__"] == "daemon_it_seq" {
                *seen
                    .entry((s.labels["instance"].clone(), s.value as i64))
                    .or_default() += 1;
            }
        }
    }
    let mut lost = Vec::new();
    for e in exporters {
        lost.extend(
            (1..=e.served())
                .filter(|n| !seen.contains_key(&(e.addr.clone(), *n as i64)))
                .map(|n| (e.addr.clone(), n)),
        );
    }
    let dups = seen.values().map(|c| u64::from(c - 1)).sum();
    (lost, dups, samples)
}

#[test]
fn samples_scraped_while_kafka_is_down_arrive_once_it_is_back() {
    let test = "samples_scraped_while_kafka_is_down_arrive_once_it_is_back";
    let Some(svc) = Services::or_skip(test) else {
        return;
    };
    let Some((ctl, dir)) = Outage::hook_or_skip(test) else {
        return;
    };
    let _broker = BROKER.write().unwrap_or_else(|e| e.into_inner());
    let zk = svc.chroot("outage");
    let topic = unique_topic("outage");
    let exporters: Vec<Exporter> = (0..5).map(|_| Exporter::counting()).collect();
    let addrs: Vec<&str> = exporters.iter().map(|e| e.addr.as_str()).collect();
    apply_jobs(
        &zk,
        &format!(
            "scrape_configs:\n{}",
            job_yaml("outage", "1s", "1s", &addrs)
        ),
    );
    let mut daemons: Vec<Daemon> = (1..=2)
        .map(|i| Daemon::start(&zk, &svc.kafka, &topic, &format!("o{i}"), "json"))
        .collect();
    for d in &daemons {
        d.wait_ready(Duration::from_secs(30));
    }
    let delivered = |d: &Daemon| {
        d.metric("scrapepool_samples_delivered_total")
            .unwrap_or_else(|| panic!("{}: no scrapepool_samples_delivered_total", d.id))
    };
    // Both members agree who owns what, and each that owns a target had samples delivered.
    let pool: Vec<&Daemon> = daemons.iter().collect();
    let owners = eventually(Duration::from_secs(20), "two members agree", || {
        agreed_owners(&pool, exporters.len())
    });
    eventually(Duration::from_secs(60), "first samples delivered", || {
        daemons
            .iter()
            .filter(|d| owners.values().any(|o| *o == d.id))
            .all(|d| delivered(d) > 0.0)
            .then_some(())
    });

    let down = Outage::begin(&ctl, &dir);
    let stopped_at = Instant::now();
    let served_at_stop: u64 = exporters.iter().map(Exporter::served).sum();
    // Acknowledgements already on the wire may still land just after the stop.
    std::thread::sleep(Duration::from_secs(2));
    let frozen: Vec<f64> = daemons.iter().map(delivered).collect();
    while stopped_at.elapsed() < OUTAGE {
        let now: Vec<f64> = daemons.iter().map(delivered).collect();
        assert_eq!(
            now, frozen,
            "samples reported delivered while the broker was down"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let served_while_down = exporters.iter().map(Exporter::served).sum::<u64>() - served_at_stop;
    drop(down); // restart: same ports, same data
    let restarted_at = Instant::now();
    assert!(
        served_while_down > 0,
        "nothing scraped while the broker was down"
    );

    // Everything queued is acknowledged; then the members leave (they flush on exit).
    eventually(Duration::from_secs(120), "the queues empty", || {
        daemons
            .iter()
            .all(|d| d.metric("scrapepool_deliveries_in_flight") == Some(0.0))
            .then_some(())
    });
    let caught_up = restarted_at.elapsed();
    let reported: f64 = daemons.iter().map(delivered).sum();
    drain_all(&mut daemons);

    // Per target: every value the exporter served (1..=served) read back, exactly once.
    let mut reader = TopicReader::open(&svc.kafka, &topic);
    let complete = |msgs: &[Msg]| lost_and_duplicated(msgs, &exporters);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !complete(&reader.msgs).0.is_empty() && Instant::now() < deadline {
        reader.poll_for(Duration::from_millis(500));
    }
    reader.poll_for(Duration::from_secs(1)); // any duplicate behind
    let (lost, dups, samples) = complete(&reader.msgs);
    let lost = lost.len();
    let served: u64 = exporters.iter().map(Exporter::served).sum();
    let failed_scrapes = reader
        .msgs
        .iter()
        .flat_map(decode)
        .filter(|s| s.labels["__name__"] == "up" && s.value == 0.0)
        .count();
    println!(
        "{test}: broker down {:.0} s; {served_while_down} scrapes served meanwhile, {served} in all; \
         lost {lost}, duplicated {dups}, failed scrapes {failed_scrapes}; queues empty {:.1} s after the restart; \
         {samples} samples in the topic, {reported} reported delivered before the exit",
        OUTAGE.as_secs_f64(),
        caught_up.as_secs_f64()
    );
    assert_eq!(lost, 0, "scraped values that never reached the topic");
    assert_eq!(dups, 0, "scraped values in the topic twice");
    assert!(
        samples as f64 >= reported,
        "{reported} samples reported delivered, only {samples} in the topic"
    );
}

/// A broker outage with a disk spool behind a small memory queue, and a member `kill -9`'d
/// and started again (same `--id`, same spool) during it: what it spilled before the kill
/// is replayed after the broker is back, in order per target; nothing arrives twice; what
/// is lost is at most what its memory queue held and what it was scraping at the kill.
/// `SCRAPEPOOL_OUTAGE_S` sets the outage (default 40 s; the README's figure: 600).
#[test]
fn a_member_killed_during_an_outage_replays_its_spool_after_a_restart() {
    killed_during_an_outage(
        "a_member_killed_during_an_outage_replays_its_spool_after_a_restart",
        false,
    );
}

/// As above with `--spool-write-through`: the memory queue's records are on disk too, so
/// the kill loses only the scrapes in flight at it (served, not yet handed to the sink).
#[test]
fn a_member_killed_during_an_outage_writing_through_loses_only_its_scrapes_in_flight() {
    killed_during_an_outage(
        "a_member_killed_during_an_outage_writing_through_loses_only_its_scrapes_in_flight",
        true,
    );
}

fn killed_during_an_outage(test: &str, write_through: bool) {
    let Some(svc) = Services::or_skip(test) else {
        return;
    };
    let Some((ctl, dir)) = Outage::hook_or_skip(test) else {
        return;
    };
    let outage = Duration::from_secs(
        std::env::var("SCRAPEPOOL_OUTAGE_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(40),
    );
    const QUEUE: usize = 5;
    let _broker = BROKER.write().unwrap_or_else(|e| e.into_inner());
    let zk = svc.chroot("spool");
    let topic = unique_topic("spool");
    let exporters: Vec<Exporter> = (0..10).map(|_| Exporter::counting()).collect();
    let addrs: Vec<&str> = exporters.iter().map(|e| e.addr.as_str()).collect();
    apply_jobs(
        &zk,
        &format!("scrape_configs:\n{}", job_yaml("spool", "1s", "1s", &addrs)),
    );
    let spool_dir = tempfile::tempdir().unwrap();
    let spool = spool_dir.path().to_str().unwrap().to_string();
    let queue = QUEUE.to_string();
    let mut args = vec!["--spool-dir", &spool, "--queue-records-max", &queue];
    if write_through {
        args.push("--spool-write-through");
    }
    let start = |id: &str| Daemon::start_with(&zk, &svc.kafka, &topic, id, "json", &args);
    let mut daemons: Vec<Daemon> = ["k1", "k2"].iter().map(|id| start(id)).collect();
    for d in &daemons {
        d.wait_ready(Duration::from_secs(30));
    }
    let owners = agreed_shares(
        &daemons,
        exporters.len(),
        "two members agree, each owning some",
    );
    let victim_targets = owners.values().filter(|o| o.as_str() == "k1").count();
    let spooled = |d: &Daemon| {
        d.metric("scrapepool_spool_spilled_samples_total")
            .unwrap_or(0.0)
    };
    let spool_bytes = |d: &Daemon| d.metric("scrapepool_spool_bytes").unwrap_or(0.0);
    eventually(Duration::from_secs(60), "first samples delivered", || {
        daemons
            .iter()
            .all(|d| {
                d.metric("scrapepool_samples_delivered_total")
                    .unwrap_or(0.0)
                    > 0.0
            })
            .then_some(())
    });

    let down = Outage::begin(&ctl, &dir);
    let began = Instant::now();
    let mut peak_bytes = 0.0f64;
    // Kill k1 once it has spilled, within the first half of the outage.
    while began.elapsed() < outage / 2 || spooled(&daemons[0]) == 0.0 {
        assert!(
            began.elapsed() < outage,
            "k1 spilled nothing during the outage"
        );
        peak_bytes = peak_bytes.max(spool_bytes(&daemons[0]) + spool_bytes(&daemons[1]));
        std::thread::sleep(Duration::from_millis(500));
    }
    let spilled_before_kill = spooled(&daemons[0]);
    let replayed_before_kill = daemons[0]
        .metric("scrapepool_spool_replayed_samples_total")
        .unwrap_or(0.0);
    daemons[0].signal("KILL");
    let killed_at = Instant::now();
    daemons[0].wait_exit(Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(2));
    daemons[0] = start("k1");
    daemons[0].wait_ready(Duration::from_secs(30));
    let restored = daemons[0]
        .metric("scrapepool_spool_restored_samples_total")
        .unwrap_or(0.0);
    while began.elapsed() < outage {
        peak_bytes = peak_bytes.max(spool_bytes(&daemons[0]) + spool_bytes(&daemons[1]));
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(down);
    let back = Instant::now();
    // The replay is bound by the tiny memory queue (one acknowledgement round trip per
    // QUEUE records), so it may take longer than the outage.
    let replay_within = Duration::from_secs(120) + outage * 2;
    eventually(replay_within, "queues and spools empty", || {
        daemons
            .iter()
            .all(|d| {
                d.metric("scrapepool_deliveries_in_flight") == Some(0.0)
                    && d.metric("scrapepool_spool_entries") == Some(0.0)
            })
            .then_some(())
    });
    let replay = back.elapsed();
    drain_all(&mut daemons);
    let mut reader = TopicReader::open(&svc.kafka, &topic);
    // Writing through, only the scrapes in flight at the kill (one per target k1 owned).
    let bound = if write_through {
        victim_targets
    } else {
        QUEUE + victim_targets
    } as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while lost_and_duplicated(&reader.msgs, &exporters).0.len() as u64 > bound
        && Instant::now() < deadline
    {
        reader.poll_for(Duration::from_millis(500));
    }
    reader.poll_for(Duration::from_secs(2));
    let (lost_values, dups, _) = lost_and_duplicated(&reader.msgs, &exporters);
    let lost = lost_values.len() as u64;
    // Each lost value, by when it was served relative to the kill: a scrape in flight at the
    // kill was served within its timeout (1 s) before it.
    let lost_ms: Vec<(String, i64)> = lost_values
        .iter()
        .map(|(addr, n)| {
            let e = exporters
                .iter()
                .find(|e| e.addr == *addr)
                .expect("an exporter");
            let at = e.served_at(*n).expect("served");
            let ms = if at >= killed_at {
                (at - killed_at).as_millis() as i64
            } else {
                -((killed_at - at).as_millis() as i64)
            };
            (format!("{addr} #{n}"), ms)
        })
        .collect();
    let lost_at: Vec<String> = lost_ms
        .iter()
        .map(|(v, ms)| format!("{v} served {ms} ms from the kill"))
        .collect();
    println!("{test}: lost: {lost_at:?}");
    // Per scraper and target, the values in the order the topic holds them.
    let mut order: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for m in &reader.msgs {
        for smp in decode(m) {
            if smp.labels["__name__"] == "daemon_it_seq" {
                order
                    .entry((m.headers["scraper"].clone(), smp.labels["instance"].clone()))
                    .or_default()
                    .push(smp.value as i64);
            }
        }
    }
    let out_of_order: Vec<&(String, String)> = order
        .iter()
        .filter(|(_, v)| v.windows(2).any(|w| w[0] > w[1]))
        .map(|(k, _)| k)
        .collect();
    let served: u64 = exporters.iter().map(Exporter::served).sum();
    println!(
        "{test}: write-through {write_through}; broker down {:.0} s, k1 kill -9'd after spilling {spilled_before_kill} samples ({replayed_before_kill} of them replayed) and restarted ({restored} restored from its spool); \
         spool peak {:.1} KiB over both members; queues and spools empty {:.1} s after the broker came back; \
         {served} scrapes served, lost {lost} (bound {bound}: {victim_targets} scrapes in flight, plus the memory queue of {QUEUE} unless writing through), duplicated {dups}",
        outage.as_secs_f64(),
        peak_bytes / 1024.0,
        replay.as_secs_f64()
    );
    // Entries replayed into the memory queue stay on disk until the broker settles them, so
    // all that was spilled and not yet replayed before the kill, at least, is restored.
    assert!(
        restored >= spilled_before_kill - replayed_before_kill,
        "the restart restored {restored} samples; k1 had spilled {spilled_before_kill}, replayed {replayed_before_kill}"
    );
    assert!(
        lost <= bound,
        "{lost} values lost, more than the bound {bound}"
    );
    if write_through {
        // A scrape in flight at the kill was served within its timeout (1 s) before it;
        // anything older had been handed to the sink, so it was on disk.
        let old: Vec<&(String, i64)> = lost_ms.iter().filter(|(_, ms)| *ms < -1_500).collect();
        assert!(
            old.is_empty(),
            "lost values served before the scrapes in flight at the kill: {old:?}"
        );
    }
    assert_eq!(dups, 0, "values in the topic twice");
    assert!(
        out_of_order.is_empty(),
        "out of order per scraper and target: {out_of_order:?}"
    );
}

// ---- 5. an invalid job is rejected alone --------------------------------------------------

#[test]
fn an_invalid_job_written_into_zookeeper_is_rejected_alone() {
    let test = "an_invalid_job_written_into_zookeeper_is_rejected_alone";
    let Some(svc) = Services::or_skip(test) else {
        return;
    };
    let zk = svc.chroot("invalid");
    let topic = unique_topic("invalid");
    let (good, kept) = (Exporter::counting(), Exporter::counting());
    apply_jobs(
        &zk,
        &format!(
            "scrape_configs:\n{}{}",
            job_yaml("good", "1s", "1s", &[&good.addr]),
            job_yaml("kept", "1s", "1s", &[&kept.addr])
        ),
    );
    let daemon = Daemon::start(&zk, &svc.kafka, &topic, "v1", "remote-write");
    daemon.wait_ready(Duration::from_secs(30));
    eventually(Duration::from_secs(15), "both targets up", || {
        let t = daemon.targets();
        (t.len() == 2 && t.iter().all(|t| t["health"] == "up")).then_some(())
    });

    // Straight into ZooKeeper, past `jobs apply`'s validation: a new job that is not YAML,
    // and a valid job replaced by text that is not YAML.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let jobs = scrapepool_adapters::zk::ZkJobs::connect(&zk, Duration::from_secs(10))
            .await
            .expect("connect");
        jobs.apply(
            "broken",
            "job_name: broken\nstatic_configs: [{targets: ['x:1'\n",
        )
        .await
        .expect("write broken");
        jobs.apply("kept", "job_name: kept\nscrape_interval: [1s\n")
            .await
            .expect("overwrite kept");
    });

    eventually(Duration::from_secs(15), "the errors on /metrics", || {
        let valid =
            |job: &str| daemon.metric(&format!("scrapepool_job_config_valid{{job=\"{job}\"}}"));
        let errors = daemon.metric("scrapepool_job_config_errors_total")?;
        (valid("broken") == Some(0.0)
            && valid("kept") == Some(0.0)
            && valid("good") == Some(1.0)
            && errors >= 2.0)
            .then_some(())
    });
    // The good job goes on, and the overwritten one keeps its last valid version.
    let targets = daemon.targets();
    let mut jobs: Vec<&str> = targets
        .iter()
        .map(|t| t["scrapePool"].as_str().unwrap())
        .collect();
    jobs.sort();
    assert_eq!(jobs, ["good", "kept"], "{targets:?}");
    let (g, k) = (good.served(), kept.served());
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        good.served() >= g + 2 && kept.served() >= k + 2,
        "scrapes stopped: good {g} -> {}, kept {k} -> {}",
        good.served(),
        kept.served()
    );
    assert!(targets.iter().all(|t| t["health"] == "up"), "{targets:?}");
}

// ---- 6. a session expiry is survived ------------------------------------------------------

#[test]
fn a_session_expired_by_a_stopped_zookeeper_is_survived() {
    let test = "a_session_expired_by_a_stopped_zookeeper_is_survived";
    let Some(svc) = Services::or_skip(test) else {
        return;
    };
    // A private server: stopping the shared one would disturb the other tests.
    let server = match support::start_zk() {
        Ok(s) => s,
        Err(why) => {
            support::skip(test, &why);
            return;
        }
    };
    let zk = format!("{}/expiry", server.connect);
    let topic = unique_topic("expiry");
    let (before, after) = (Exporter::counting(), Exporter::counting());
    apply_jobs(
        &zk,
        &format!(
            "scrape_configs:\n{}",
            job_yaml("before", "1s", "1s", &[&before.addr])
        ),
    );
    let mut daemon = Daemon::start(&zk, &svc.kafka, &topic, "x1", "remote-write");
    daemon.wait_ready(Duration::from_secs(30));
    eventually(Duration::from_secs(15), "the target up", || {
        let t = daemon.targets();
        (t.len() == 1 && t[0]["health"] == "up").then_some(())
    });

    // Stopped for twice the session timeout: the session expires; meanwhile the member keeps
    // scraping what it has.
    server.pause();
    let served = before.served();
    std::thread::sleep(Duration::from_secs(2 * SESSION_TIMEOUT_S));
    let served_while_stopped = before.served() - served;
    server.resume();
    assert!(
        served_while_stopped >= 2 * SESSION_TIMEOUT_S - 3,
        "{served_while_stopped} scrapes in {}s with ZooKeeper stopped (interval 1 s)",
        2 * SESSION_TIMEOUT_S
    );

    // A new session, registered again, everything re-read: a job applied now is run.
    eventually(
        Duration::from_secs(30),
        "the session lost and rebuilt",
        || {
            let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
            log.contains("ZooKeeper session lost").then_some(())
        },
    );
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon exited"
    );
    daemon.wait_ready(Duration::from_secs(30));
    apply_jobs(
        &zk,
        &format!(
            "scrape_configs:\n{}",
            job_yaml("after", "1s", "1s", &[&after.addr])
        ),
    );
    eventually(
        Duration::from_secs(20),
        "both jobs up after the expiry",
        || {
            let t = daemon.targets();
            (t.len() == 2 && t.iter().all(|t| t["health"] == "up")).then_some(())
        },
    );
    assert_eq!(
        daemon.members(),
        vec![("x1".to_string(), "active".to_string())]
    );
    let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
    let sessions = log.matches("ZooKeeper session established").count();
    println!(
        "{test}: {served_while_stopped} scrapes while ZooKeeper was stopped; {sessions} sessions"
    );
    assert!(sessions >= 2, "no new session after the expiry:\n{log}");
}
