//! `scrapepool targets` against a real Prometheus reading the same file: the stable fields of
//! `/api/v1/targets?state=any` must be equal (health, scrape times and errors, and
//! `globalUrl`, which depends on the server's external URL, are left out).
//!
//! Finds Prometheus through `SCRAPEPOOL_PROMETHEUS_BIN` (set by scripts/services.sh) or on
//! `PATH`; prints `SKIPPED` when there is none, unless `SCRAPEPOOL_REQUIRE_SERVICES=1`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long Prometheus may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of one HTTP request to it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn prometheus_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("SCRAPEPOOL_PROMETHEUS_BIN").filter(|b| !b.is_empty()) {
        return Some(PathBuf::from(bin));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("prometheus"))
            .find(|p| p.is_file())
    })
}

/// A plain HTTP/1.0 GET on loopback: status and body.
fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
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

/// Drops the fields that depend on time, on scrapes or on the server, and sorts what
/// Prometheus lists in map order.
fn normalize(mut v: serde_json::Value) -> serde_json::Value {
    let data = &mut v["data"];
    let mut active = data["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for t in &mut active {
        let t = t.as_object_mut().unwrap();
        for volatile in [
            "health",
            "lastScrape",
            "lastScrapeDuration",
            "lastError",
            "globalUrl",
        ] {
            assert!(t.remove(volatile).is_some(), "field {volatile} missing");
        }
    }
    active.sort_by_key(|t| {
        (
            t["scrapePool"].to_string(),
            t["scrapeUrl"].to_string(),
            t["labels"].to_string(),
        )
    });
    let mut dropped = data["droppedTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    dropped.sort_by_key(|t| t.to_string());
    data["activeTargets"] = active.into();
    data["droppedTargets"] = dropped.into();
    v
}

#[test]
fn targets_match_a_real_prometheus() {
    let Some(bin) = prometheus_bin() else {
        assert!(
            std::env::var("SCRAPEPOOL_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "no prometheus binary and SCRAPEPOOL_REQUIRE_SERVICES=1"
        );
        println!("SKIPPED: no prometheus binary (set SCRAPEPOOL_PROMETHEUS_BIN or put prometheus on PATH)");
        return;
    };
    let jobs = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/jobs/parity.yml");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data_dir = tempfile::tempdir().unwrap();
    let child = Command::new(&bin)
        .arg(format!("--config.file={}", jobs.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--storage.tsdb.path={}", data_dir.path().display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let _prometheus = KillOnDrop(child);

    let started = Instant::now();
    loop {
        if let Ok((200, _)) = get(port, "/-/ready") {
            break;
        }
        assert!(
            started.elapsed() < READY_TIMEOUT,
            "prometheus not ready after {READY_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Target discovery runs after ready: wait until every pool shows up.
    let expected_active = 5;
    let theirs = loop {
        let (status, body) = get(port, "/api/v1/targets?state=any").expect("targets API");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON from prometheus");
        if v["data"]["activeTargets"].as_array().map_or(0, Vec::len) >= expected_active {
            break v;
        }
        assert!(
            started.elapsed() < READY_TIMEOUT,
            "prometheus shows too few targets: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    let ours = Command::new(env!("CARGO_BIN_EXE_scrapepool"))
        .arg("targets")
        .arg(&jobs)
        .output()
        .unwrap();
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let ours: serde_json::Value = serde_json::from_slice(&ours.stdout).unwrap();

    let (theirs, ours) = (normalize(theirs), normalize(ours));
    assert_eq!(
        ours["data"]["activeTargets"].as_array().unwrap().len(),
        expected_active
    );
    assert_eq!(
        serde_json::to_string_pretty(&ours).unwrap(),
        serde_json::to_string_pretty(&theirs).unwrap(),
        "scrapepool (left) and prometheus (right) differ"
    );
}

/// Job bodies with one error each, whose message must be Prometheus's own.
const ONE_ERROR_JOBS: &[&str] = &[
    "    scrape_interval: 1.5s",
    "    scrape_interval: 10s\n    scrape_timeout: 11s",
    "    honor_labels: maybe",
    "    sample_limit: -1",
    "    body_size_limit: 100",
    "    relabel_configs:\n      - action: hashmod\n        target_label: t",
    "    relabel_configs:\n      - source_labels: [a]",
    "    relabel_configs:\n      - action: labeldrop\n        regex: x\n        target_label: t",
    "    relabel_configs:\n      - action: keepequal\n        source_labels: [a]\n        target_label: b\n        regex: (.*)",
    "    relabel_configs:\n      - action: lowercase\n        source_labels: [a]\n        target_label: b\n        replacement: x",
    "    metric_name_validation_scheme: legacy\n    relabel_configs:\n      - action: labelmap\n        replacement: a-b",
    "    metric_name_validation_scheme: legacy\n    relabel_configs:\n      - target_label: 1abc",
    "    metric_name_validation_scheme: legacy\n    relabel_configs:\n      - target_label: a-$1",
    "    relabel_configs:\n      - action: explode",
    "    bearer_token: a\n    bearer_token_file: b",
    "    authorization: {type: basic, credentials: x}",
    "    static_configs:\n      - targets: ['http://a/b']",
    "    dns_sd_configs:\n      - names: [a]\n        type: A",
    "    dns_sd_configs:\n      - names: [a]\n        type: TXT",
    "    file_sd_configs:\n      - files: [a.txt]",
    // An absolute path: Prometheus joins relative ones to the file's directory, scrapepool does not.
    "    tls_config: {cert_file: /a}",
];

#[test]
fn check_messages_match_promtool() {
    let Some(promtool) = prometheus_bin()
        .map(|p| p.with_file_name("promtool"))
        .filter(|p| p.is_file())
    else {
        assert!(
            std::env::var("SCRAPEPOOL_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "no promtool and SCRAPEPOOL_REQUIRE_SERVICES=1"
        );
        println!("SKIPPED: no promtool next to the prometheus binary");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (i, body) in ONE_ERROR_JOBS.iter().enumerate() {
        let file = dir.path().join(format!("case{i}.yml"));
        std::fs::write(&file, format!("scrape_configs:\n  - job_name: j\n{body}\n")).unwrap();
        let theirs = Command::new(&promtool)
            .args(["check", "config"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            !theirs.status.success(),
            "promtool accepted case {i}: {body}"
        );
        // promtool: "FAILED: parsing YAML file F: <message>" or "...unmarshal errors:\n  line N: <message>".
        let text = String::from_utf8_lossy(&theirs.stderr).to_string()
            + &String::from_utf8_lossy(&theirs.stdout);
        let last = text
            .lines()
            .rev()
            .find(|l| l.contains("FAILED") || l.trim_start().starts_with("line "))
            .unwrap_or_else(|| panic!("case {i}: {text}"));
        let message = last
            .rsplit_once(": ")
            .map(|(_, m)| m)
            .unwrap_or(last)
            .trim();
        let message = if last.contains("FAILED: parsing YAML file") {
            last.split_once(".yml: ").unwrap().1.trim()
        } else {
            message
        };
        let ours = Command::new(env!("CARGO_BIN_EXE_scrapepool"))
            .arg("check")
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(ours.status.code(), Some(1), "case {i}");
        let ours = String::from_utf8_lossy(&ours.stderr)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        assert!(
            ours.contains(message),
            "case {i} ({body}):\n  promtool:   {message}\n  scrapepool: {ours}"
        );
    }
}
