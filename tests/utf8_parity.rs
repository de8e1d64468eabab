//! UTF-8 names against a real Prometheus 3.16 (server mode, query API): one exporter of the
//! test's own serves quoted UTF-8 metric and label names in the text format 1.0.0 and in
//! OpenMetrics; Prometheus and scrapepool's fetcher + scrape processing scrape it with the
//! same jobs, and must agree on
//! - the `Accept` header, byte for byte (default `scrape_protocols`, `utf8` and `legacy`);
//! - the series that come out (names unquoted and unescaped, labels as written);
//! - under `metric_name_validation_scheme: legacy`, the scrape error.
//!
//! Prometheus is `$SCRAPEPOOL_PROMETHEUS_BIN` unless its version is 1.x or 2.x, else
//! `~/.cache/scrapepool/go/prometheus-v0.316.0/prometheus` (`scripts/go-tools.sh`). Without
//! either the test prints `SKIPPED: ...` and passes, unless `SCRAPEPOOL_REQUIRE_SERVICES=1`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scrapepool_adapters::http::HttpFetcher;
use scrapepool_adapters::ports::Fetcher;
use scrapepool_core::config::{load_jobs, GlobalConfig, TlsConfig};
use scrapepool_core::encode::{EmitSpec, Encoding};
use scrapepool_core::labels::Labels;
use scrapepool_core::protocol::ExpositionSpec;
use scrapepool_core::scrape::{process, Limits, ScrapeSpec, SeriesCache};
use scrapepool_core::Timestamp;

const TEXT_BODY: &str = r#"# HELP "my.metric" A metric with a dotted name.
# TYPE "my.metric" gauge
{"my.metric","my.label"="ü","other"="x"} 1
{"my.metric", "my.label"="two"} 2
legacy_metric{"dotted.label"="v"} 3
{"esc\"aped\\name"} 4
"#;

const OM_BODY: &str = r#"# TYPE "om.gauge" gauge
{"om.gauge","my.label"="ü"} 5
# EOF
"#;

/// The jobs both scrapers run; `PORT` is replaced by the exporter's.
const JOBS: &str = r#"
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: utf8-text
    metrics_path: /text
    static_configs: [{targets: ['127.0.0.1:PORT']}]
  - job_name: utf8-om
    metrics_path: /om
    static_configs: [{targets: ['127.0.0.1:PORT']}]
  - job_name: utf8-legacy
    metrics_path: /text
    metric_name_validation_scheme: legacy
    static_configs: [{targets: ['127.0.0.1:PORT']}]
"#;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `bin --version` runs and names no 1.x or 2.x release (the go-tools build names
/// an empty version).
fn is_prometheus_3(bin: &Path) -> bool {
    Command::new(bin).arg("--version").output().is_ok_and(|o| {
        let text =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        let first = text.lines().next().unwrap_or("");
        !first.contains("version 1.") && !first.contains("version 2.")
    })
}

fn prometheus_3() -> Option<PathBuf> {
    let from_env = std::env::var_os("SCRAPEPOOL_PROMETHEUS_BIN")
        .filter(|b| !b.is_empty())
        .map(PathBuf::from);
    let cached = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/scrapepool/go/prometheus-v0.316.0/prometheus"));
    from_env
        .into_iter()
        .chain(cached)
        .find(|p| p.is_file() && is_prometheus_3(p))
}

/// Each request the exporter saw: (path, User-Agent, Accept).
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// Serves `/text` and `/om` on loopback until the process ends.
fn exporter() -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind exporter");
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let log = log.clone();
            std::thread::spawn(move || serve_one(stream, &log));
        }
    });
    (port, seen)
}

fn serve_one(mut stream: TcpStream, seen: &Seen) {
    let _ = stream.set_read_timeout(Some(HTTP_TIMEOUT));
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let path = text.split(' ').nth(1).unwrap_or("").to_string();
    let header = |name: &str| {
        text.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    seen.lock()
        .unwrap()
        .push((path.clone(), header("user-agent"), header("accept")));
    let (content_type, body) = match path.as_str() {
        "/om" => (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            OM_BODY,
        ),
        _ => ("text/plain; version=1.0.0; escaping=allow-utf-8", TEXT_BODY),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The scraped series Prometheus stored for `job` (its synthetic series left out), sorted.
fn prometheus_series(port: u16, job: &str) -> Vec<Labels> {
    let matcher = format!("{{job={job:?}}}");
    let (status, body) = get(
        port,
        &format!("/api/v1/series?match[]={}", encode(&matcher)),
    )
    .expect("series query");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let mut out: Vec<Labels> = v["data"]
        .as_array()
        .expect("series list")
        .iter()
        .map(|s| serde_json::from_value::<Labels>(s.clone()).expect("labels"))
        .filter(|l| {
            let name = l.get("__name__").unwrap_or("");
            name != "up" && !name.starts_with("scrape_")
        })
        .collect();
    out.sort();
    out
}

/// `lastError` of each target of Prometheus, by job.
fn prometheus_errors(port: u16) -> BTreeMap<String, String> {
    let (_, body) = get(port, "/api/v1/targets").expect("targets");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    v["data"]["activeTargets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["labels"]["job"].as_str().unwrap_or("").to_string(),
                t["lastError"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// scrapepool's side: each job's spec from the same YAML, fetched and processed once.
/// Returns, per job, its series or its scrape error.
fn scrapepool_scrapes(jobs_yaml: &str, port: u16) -> BTreeMap<String, Result<Vec<Labels>, String>> {
    let (jobs, errors) = load_jobs(jobs_yaml, "jobs.yml", &GlobalConfig::default());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(jobs.len(), 3);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut out = BTreeMap::new();
    for job in jobs {
        let instance = format!("127.0.0.1:{port}");
        let spec = ScrapeSpec {
            url: format!("http://{instance}{}", job.metrics_path),
            target_labels: Labels::from_pairs([
                ("instance", instance.as_str()),
                ("job", &job.job_name),
            ]),
            interval: job.scrape_interval,
            timeout: job.scrape_timeout,
            honor_labels: job.honor_labels,
            honor_timestamps: job.honor_timestamps,
            track_timestamps_staleness: job.track_timestamps_staleness,
            extra_scrape_metrics: job.extra_scrape_metrics,
            external_labels: Labels::new(),
            enable_compression: job.enable_compression,
            limits: Limits::default(),
            metric_relabel_configs: job.metric_relabel_configs.clone(),
            basic_auth: None,
            authorization: None,
            tls_config: TlsConfig::default(),
            http_client: Default::default(),
            emit: EmitSpec {
                encoding: Encoding::RemoteWrite,
                message_bytes_max: 1 << 20,
                scraper_id: "t".into(),
                job: job.job_name.clone(),
                instance: instance.clone(),
                key_hash: 0,
            },
            exposition: ExpositionSpec::new(
                &job.scrape_protocols,
                job.metric_name_escaping_scheme,
                job.fallback_scrape_protocol,
                job.metric_name_validation_scheme,
            ),
            histograms: Default::default(),
        };
        let fetched = runtime.block_on(HttpFetcher::new().fetch(&spec));
        let mut cache = SeriesCache::default();
        let (report, _) = process(&spec, &mut cache, Timestamp(0), Duration::ZERO, &fetched);
        let result = match report.error {
            None => Ok(cache.series()),
            Some(e) => Err(e.to_string()),
        };
        out.insert(job.job_name, result);
    }
    out
}

#[test]
fn utf8_names_come_out_as_prometheus_3_16_makes_them() {
    let Some(bin) = prometheus_3() else {
        assert!(
            std::env::var("SCRAPEPOOL_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "no Prometheus 3 binary (SCRAPEPOOL_PROMETHEUS_BIN or scripts/go-tools.sh)"
        );
        eprintln!("SKIPPED: no Prometheus 3 binary");
        return;
    };
    let (port, seen) = exporter();
    let jobs = JOBS.replace("PORT", &port.to_string());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, &jobs).unwrap();
    let web_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = KillOnDrop(
        Command::new(&bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web_port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );

    let ours = scrapepool_scrapes(&jobs, port);

    let deadline = Instant::now() + READY_TIMEOUT;
    while !matches!(get(web_port, "/-/ready"), Ok((200, _))) {
        assert!(
            Instant::now() < deadline,
            "Prometheus not ready within {READY_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Wait until Prometheus has scraped every job at least once.
    let deadline = Instant::now() + READY_TIMEOUT;
    let errors = loop {
        let done = ["utf8-text", "utf8-om"]
            .iter()
            .all(|job| !prometheus_series(web_port, job).is_empty())
            && prometheus_errors(web_port)
                .get("utf8-legacy")
                .is_some_and(|e| !e.is_empty());
        if done {
            break prometheus_errors(web_port);
        }
        if Instant::now() > deadline {
            let log =
                std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
            panic!("Prometheus did not scrape every job within {READY_TIMEOUT:?}; its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    .into_iter()
    .collect::<BTreeMap<_, _>>();

    for job in ["utf8-text", "utf8-om"] {
        let theirs = prometheus_series(web_port, job);
        assert_eq!(ours[job].as_ref(), Ok(&theirs), "series of {job}");
    }
    // What the series are, so the comparison cannot pass on two empty or equally wrong sides.
    let text: Vec<String> = prometheus_series(web_port, "utf8-text")
        .iter()
        .map(ToString::to_string)
        .collect();
    let instance = format!("127.0.0.1:{port}");
    assert_eq!(
        text,
        [
            format!(r#"{{__name__="esc\"aped\\name", instance="{instance}", job="utf8-text"}}"#),
            format!(
                r#"{{__name__="legacy_metric", "dotted.label"="v", instance="{instance}", job="utf8-text"}}"#
            ),
            format!(
                r#"{{__name__="my.metric", instance="{instance}", job="utf8-text", "my.label"="two"}}"#
            ),
            format!(
                r#"{{__name__="my.metric", instance="{instance}", job="utf8-text", "my.label"="ü", other="x"}}"#
            ),
        ]
    );
    eprintln!("legacy scrape error: {:?}", errors.get("utf8-legacy"));
    assert_eq!(
        ours["utf8-legacy"].as_ref().err(),
        errors.get("utf8-legacy"),
        "legacy scrape error"
    );

    // The Accept header of each job, Prometheus's against ours.
    let seen = seen.lock().unwrap().clone();
    for path in ["/text", "/om"] {
        let accept = |ua: &str| -> Vec<String> {
            let mut v: Vec<String> = seen
                .iter()
                .filter(|(p, agent, _)| p == path && agent.starts_with(ua))
                .map(|(_, _, a)| a.clone())
                .collect();
            v.sort();
            v.dedup();
            v
        };
        eprintln!("Accept on {path}: {:?}", accept("Prometheus/"));
        assert_eq!(
            accept("scrapepool/"),
            accept("Prometheus/"),
            "Accept on {path}"
        );
        assert!(!accept("Prometheus/").is_empty());
    }
}
