//! `scrapepool targets` against a real Prometheus 3.16 reading the same file
//! (`testdata/jobs/parity.yml`: every relabel action, keep/drop, hashmod, labelmap, dropped
//! targets, targets that become duplicates after relabeling): the stable fields of
//! `/api/v1/targets?state=any` must be equal (health, scrape times and errors, and
//! `globalUrl`, which depends on the server's external URL, are left out).
//!
//! Finds Prometheus 3.16 through `tests/support/prometheus3.rs` (`SCRAPEPOOL_PROMETHEUS_BIN`
//! when it is 3.x, else the build of `scripts/go-tools.sh prometheus`), and promtool through
//! `SCRAPEPOOL_PROMTOOL_BIN` (the 3.16 build, set by scripts/services.sh), else on `PATH`;
//! prints `SKIPPED` when one is missing, unless `SCRAPEPOOL_REQUIRE_SERVICES=1`.

#[path = "support/prometheus3.rs"]
mod prometheus3;

use std::collections::BTreeSet;
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

/// The binary named by `var`, else `name` on `PATH`.
fn find_bin(var: &str, name: &str) -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os(var).filter(|b| !b.is_empty()) {
        return Some(PathBuf::from(bin));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
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
    let Some(bin) = prometheus3::reference_or_skip("targets_match_a_real_prometheus", "prometheus")
    else {
        return;
    };
    let jobs = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/jobs/parity.yml");
    let job_names: BTreeSet<String> = std::fs::read_to_string(&jobs)
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.trim()
                .split_once("job_name: ")
                .map(|(_, n)| n.trim().to_string())
        })
        .collect();
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
    // Target discovery runs after ready: wait until every job shows up, as a pool of active
    // or dropped targets (one update carries all static targets).
    let theirs = loop {
        let (status, body) = get(port, "/api/v1/targets?state=any").expect("targets API");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON from prometheus");
        let pools: BTreeSet<String> = ["activeTargets", "droppedTargets"]
            .iter()
            .flat_map(|k| v["data"][k].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t["scrapePool"].as_str().map(str::to_string))
            .chain(
                v["data"]["droppedTargetCounts"]
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.keys().cloned()),
            )
            .collect();
        if pools == job_names {
            break v;
        }
        assert!(
            started.elapsed() < READY_TIMEOUT,
            "prometheus shows the pools {pools:?}, not {job_names:?}: {body}"
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
    let differences = differences(&ours, &theirs);
    assert!(
        differences.is_empty(),
        "scrapepool targets and Prometheus 3.16's /api/v1/targets differ ({} line(s)):\n{}",
        differences.len(),
        differences.join("\n")
    );
    assert_eq!(
        ours, theirs,
        "no difference found line by line, yet unequal"
    );
}

/// `{a="1", b="2"}` of a JSON object of strings, or the JSON text of anything else.
fn show(v: Option<&serde_json::Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(serde_json::Value::Object(m)) if m.values().all(|v| v.is_string()) => {
            let pairs: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap()))
                .collect();
            format!("{{{}}}", pairs.join(", "))
        }
        Some(v) => v.to_string(),
    }
}

/// The differences between two normalized answers, one line each: targets only one side
/// lists (active ones matched by scrape pool and discovered `__address__`, dropped ones by
/// their whole text), and field by field (label by label for label sets) for matched ones.
fn differences(ours: &serde_json::Value, theirs: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let keys = |v: &serde_json::Value| -> BTreeSet<String> {
        v["data"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    for k in keys(ours).symmetric_difference(&keys(theirs)) {
        out.push(format!(
            "data.{k}: scrapepool {}, prometheus {}",
            show(ours["data"].get(k)),
            show(theirs["data"].get(k))
        ));
    }
    for k in keys(ours).intersection(&keys(theirs)) {
        if k != "activeTargets" && k != "droppedTargets" && ours["data"][k] != theirs["data"][k] {
            out.push(format!(
                "data.{k}: scrapepool {}, prometheus {}",
                show(ours["data"].get(k)),
                show(theirs["data"].get(k))
            ));
        }
    }
    type Groups = std::collections::BTreeMap<(String, String), Vec<serde_json::Value>>;
    let group = |v: &serde_json::Value| -> Groups {
        let mut g = Groups::new();
        for t in v["data"]["activeTargets"].as_array().into_iter().flatten() {
            let pool = t["scrapePool"].as_str().unwrap_or("").to_string();
            let addr = t["discoveredLabels"]["__address__"]
                .as_str()
                .unwrap_or("")
                .to_string();
            g.entry((pool, addr)).or_default().push(t.clone());
        }
        g
    };
    let (og, tg) = (group(ours), group(theirs));
    let all: BTreeSet<&(String, String)> = og.keys().chain(tg.keys()).collect();
    for key @ (pool, addr) in all {
        let empty = Vec::new();
        let (o, t) = (og.get(key).unwrap_or(&empty), tg.get(key).unwrap_or(&empty));
        for i in 0..o.len().max(t.len()) {
            let at = format!("active {pool} {addr}");
            match (o.get(i), t.get(i)) {
                (Some(a), None) => out.push(format!(
                    "{at}: only scrapepool lists it: {}",
                    show(a.get("labels"))
                )),
                (None, Some(b)) => out.push(format!(
                    "{at}: only prometheus lists it: {}",
                    show(b.get("labels"))
                )),
                (Some(a), Some(b)) => {
                    let fields: BTreeSet<&String> = a
                        .as_object()
                        .into_iter()
                        .chain(b.as_object())
                        .flat_map(|m| m.keys())
                        .collect();
                    for f in fields {
                        let (x, y) = (a.get(f), b.get(f));
                        if x == y {
                            continue;
                        }
                        match (x.and_then(|v| v.as_object()), y.and_then(|v| v.as_object())) {
                            (Some(xm), Some(ym)) => {
                                let names: BTreeSet<&String> = xm.keys().chain(ym.keys()).collect();
                                for n in names {
                                    if xm.get(n) != ym.get(n) {
                                        out.push(format!(
                                            "{at}: {f}.{n}: scrapepool {}, prometheus {}",
                                            show(xm.get(n)),
                                            show(ym.get(n))
                                        ));
                                    }
                                }
                            }
                            _ => out.push(format!(
                                "{at}: {f}: scrapepool {}, prometheus {}",
                                show(x),
                                show(y)
                            )),
                        }
                    }
                }
                (None, None) => {}
            }
        }
    }
    let dropped = |v: &serde_json::Value| -> BTreeSet<String> {
        v["data"]["droppedTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                format!(
                    "pool {} {}",
                    show(t.get("scrapePool")),
                    show(t.get("discoveredLabels"))
                )
            })
            .collect()
    };
    let (od, td) = (dropped(ours), dropped(theirs));
    for d in od.difference(&td) {
        out.push(format!("dropped: only scrapepool lists {d}"));
    }
    for d in td.difference(&od) {
        out.push(format!("dropped: only prometheus lists {d}"));
    }
    out
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
    "    static_configs:\n      - targets: ['a:1']\n        labels: {'': x}",
    "    dns_sd_configs:\n      - names: [a]\n        type: A",
    "    dns_sd_configs:\n      - names: [a]\n        type: TXT",
    "    file_sd_configs:\n      - files: [a.txt]",
    // An absolute path: Prometheus joins relative ones to the file's directory, scrapepool does not.
    "    tls_config: {cert_file: /a}",
    "    tls_config: {key_file: /a}",
    "    tls_config: {ca: x, ca_file: /a}",
    "    tls_config: {cert: x, cert_file: /a, key_file: /k}",
    "    tls_config: {key: x, key_file: /a, cert_file: /c}",
    "    tls_config: {min_version: TLS14}",
    "    proxy_url: '://x'",
    "    proxy_url: 'http://a:b'",
    "    no_proxy: a",
    "    proxy_from_environment: true\n    proxy_url: http://a:1",
    "    proxy_from_environment: true\n    no_proxy: a",
    "    proxy_connect_header: {A: [b]}",
    "    follow_redirects: maybe",
    "    enable_http2: 3",
    "    http_headers: {Authorization: {values: [a]}}",
    "    http_headers: {user-agent: {values: [a]}}",
    "    oauth2: {token_url: http://a}",
    "    oauth2: {client_id: a}",
    "    oauth2: {client_id: a, token_url: http://a, client_secret: s, client_secret_file: /f}",
    "    oauth2: {client_id: a, token_url: http://a}\n    basic_auth: {username: u}",
    "    oauth2: {client_id: a, token_url: http://a}\n    authorization: {credentials: c}",
    "    oauth2: {client_id: a, token_url: http://a}\n    bearer_token: t",
    "    oauth2: {client_id: a, token_url: http://a, no_proxy: x}",
];

#[test]
fn check_messages_match_promtool() {
    let Some(promtool) = find_bin("SCRAPEPOOL_PROMTOOL_BIN", "promtool").filter(|p| p.is_file())
    else {
        assert!(
            std::env::var("SCRAPEPOOL_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "no promtool and SCRAPEPOOL_REQUIRE_SERVICES=1"
        );
        println!("SKIPPED: no promtool (set SCRAPEPOOL_PROMTOOL_BIN or put promtool on PATH)");
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
