//! The offline commands, run as a user runs them: the built binary on fixture files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn scrapepool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scrapepool"))
        .args(args)
        .output()
        .expect("the scrapepool binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

#[test]
fn check_accepts_the_good_fixture_and_the_example() {
    for file in ["testdata/jobs/good.yml", "examples/jobs.yml"] {
        let path = fixture(file);
        let out = scrapepool(&["check", path.to_str().unwrap()]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{file}: {}", text(&out.stderr));
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        let jobs = if file.contains("good") { 3 } else { 1 };
        assert!(
            stdout.starts_with("SUCCESS: ") && stdout.contains(&format!("{jobs} job(s)")),
            "{stdout}"
        );
    }
}

#[test]
fn check_reports_every_error_with_job_field_and_position() {
    let path = fixture("testdata/jobs/bad.yml");
    let p = path.to_str().unwrap();
    let out = scrapepool(&["check", p]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let expected = [
        format!("{p}:4:22: job \"alpha\": scrape_configs[0].scrape_interval: unknown unit \".\" in duration \"1.5s\""),
        format!("{p}:5:19: job \"alpha\": scrape_configs[0].honor_labels: cannot unmarshal !!str `maybe` into bool"),
        format!("{p}:10:16: job \"alpha\": scrape_configs[0].relabel_configs[1].regex: invalid regex \"(unclosed\": unclosed group"),
        format!("{p}:19:21: job \"beta\": scrape_configs[2].scrape_timeout: scrape timeout greater than scrape interval for scrape config with job name \"beta\""),
        format!("{p}:23:11: job \"beta\": scrape_configs[2].static_configs[0].labels.: \"\" is not a valid label name"),
        format!("{p}:24:5: job \"beta\": scrape_configs[2].sample_limt: unknown field \"sample_limt\""),
        format!("{p}:26:15: job \"alpha\": scrape_configs[3].job_name: found multiple scrape configs with job name \"alpha\" (first at line 3)"),
        format!("{p}:28:19: job \"alpha\": scrape_configs[3].static_configs[0].targets[0]: \"http://127.0.0.1:9100/metrics\" is not a valid hostname"),
        format!("{p}:30:5: scrape_configs[4].job_name: job_name is empty"),
        format!("FAILED: 9 error(s) in {p} (1 valid job(s))"),
    ];
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn check_fails_on_a_missing_file() {
    let out = scrapepool(&["check", "/nonexistent/jobs.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/jobs.yml: cannot read"));
}

#[test]
fn targets_prints_the_prometheus_api_shape() {
    let path = fixture("testdata/jobs/good.yml");
    let out = scrapepool(&["targets", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    // Go's encoding/json escapes `&`: the query strings must show it as \u0026.
    assert!(
        stdout.contains("probe?module=http_2xx\\u0026target=https%3A%2F%2Fexample.org"),
        "{stdout}"
    );
    let body: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(body["status"], "success");
    let active = body["data"]["activeTargets"].as_array().unwrap();
    let dropped = body["data"]["droppedTargets"].as_array().unwrap();

    // Field set and order of Prometheus 2.42's api/v1 Target.
    let first = stdout.find("{\"discoveredLabels\"").unwrap();
    let fields = [
        "\"discoveredLabels\":",
        "\"labels\":",
        "\"scrapePool\":",
        "\"scrapeUrl\":",
        "\"globalUrl\":",
        "\"lastError\":",
        "\"lastScrape\":",
        "\"lastScrapeDuration\":",
        "\"health\":",
        "\"scrapeInterval\":",
        "\"scrapeTimeout\":",
    ];
    let mut at = first;
    for f in fields {
        let i = stdout[at..]
            .find(f)
            .unwrap_or_else(|| panic!("{f} missing after byte {at}"))
            + at;
        at = i;
    }
    for t in active {
        assert_eq!(t.as_object().unwrap().len(), fields.len(), "{t}");
        assert_eq!(t["health"], "unknown");
        assert_eq!(t["lastScrape"], "0001-01-01T00:00:00Z");
        assert_eq!(t["lastScrapeDuration"], 0);
        assert_eq!(t["lastError"], "");
        assert_eq!(t["globalUrl"], t["scrapeUrl"]);
    }

    // Pools in name order: blackbox (2), node (2 kept, 1 dropped), sharded (3 kept, 1 dropped).
    let pools: Vec<&str> = active
        .iter()
        .map(|t| t["scrapePool"].as_str().unwrap())
        .collect();
    assert_eq!(
        pools,
        ["blackbox", "blackbox", "node", "node", "sharded", "sharded", "sharded"]
    );

    let probe = active
        .iter()
        .find(|t| t["labels"]["instance"] == "https://example.org")
        .expect("probe target");
    assert_eq!(
        probe["scrapeUrl"],
        "http://127.0.0.1:9115/probe?module=http_2xx&target=https%3A%2F%2Fexample.org"
    );
    assert_eq!(
        probe["labels"],
        serde_json::json!({"instance": "https://example.org", "job": "blackbox"})
    );
    assert_eq!(
        probe["discoveredLabels"]["__address__"],
        "https://example.org"
    );
    assert_eq!(probe["discoveredLabels"]["__param_module"], "http_2xx");
    // blackbox merges node's defaults: interval 30s; timeout the global 5s.
    assert_eq!(probe["scrapeInterval"], "30s");
    assert_eq!(probe["scrapeTimeout"], "5s");

    let node = active
        .iter()
        .find(|t| t["labels"]["instance"] == "127.0.0.1:9100")
        .expect("node target");
    assert_eq!(
        node["labels"],
        serde_json::json!({"env": "prod", "host": "127.0.0.1", "instance": "127.0.0.1:9100", "job": "node"})
    );
    assert_eq!(node["scrapeUrl"], "http://127.0.0.1:9100/metrics");

    // hashmod with modulus 2 keeps shard 0: 10.0.0.1..3 (md5 checked in relabel's tests), not .4.
    let sharded: Vec<&str> = active
        .iter()
        .filter(|t| t["scrapePool"] == "sharded")
        .map(|t| t["labels"]["instance"].as_str().unwrap())
        .collect();
    let mut sharded_sorted = sharded.clone();
    sharded_sorted.sort();
    assert_eq!(
        sharded_sorted,
        ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"]
    );
    let sharded_timeout = active
        .iter()
        .find(|t| t["scrapePool"] == "sharded")
        .unwrap();
    assert_eq!(
        (
            sharded_timeout["scrapeInterval"].as_str(),
            sharded_timeout["scrapeTimeout"].as_str()
        ),
        (Some("1m"), Some("20s"))
    );

    let dropped_addresses: Vec<&str> = dropped
        .iter()
        .map(|d| d["discoveredLabels"]["__address__"].as_str().unwrap())
        .collect();
    assert_eq!(dropped_addresses, ["node-c.example", "10.0.0.4:8080"]);
    // Prometheus 3.16's dropped target: its discovered labels and its scrape pool.
    for d in dropped {
        let mut keys: Vec<&String> = d.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["discoveredLabels", "scrapePool"], "{d}");
    }
    assert_eq!(body["data"]["droppedTargetCounts"]["node"], 1);
    assert_eq!(dropped[0]["discoveredLabels"]["env"], "dev");
    assert_eq!(dropped[0]["discoveredLabels"]["job"], "node");

    // The basic_auth password never leaves the process.
    assert!(!stdout.contains("s3cret"), "{stdout}");
}

#[test]
fn targets_prints_valid_jobs_and_fails_on_errors() {
    let path = fixture("testdata/jobs/bad.yml");
    let out = scrapepool(&["targets", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let active = body["data"]["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["scrapePool"], "good");
    assert!(text(&out.stderr).contains("sample_limt: unknown field"));
}

#[test]
fn unreachable_static_addresses_fail_check_and_are_invalid_in_targets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.yml");
    std::fs::write(
        &path,
        "job_name: node\nstatic_configs:\n  - targets: ['ok:9100', 'h:70000', 'h:', ':9100', 'h o:1']\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let reasons = [
        "instance 1 in group 0: \"h:70000\" is not a valid address: invalid port \"70000\" (above 65535)",
        "instance 2 in group 0: \"h:\" is not a valid address: missing port",
        "instance 3 in group 0: \":9100\" is not a valid address: empty host",
        "instance 4 in group 0: \"h o:1\" is not a valid address: invalid character \" \" in host name",
    ];
    let expected: Vec<String> = reasons
        .iter()
        .map(|r| format!("{p}: job \"node\": {r}"))
        .collect();

    let out = scrapepool(&["check", p]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let mut want = expected.clone();
    want.push(format!("FAILED: 4 error(s) in {p} (1 valid job(s))"));
    assert_eq!(stderr.lines().collect::<Vec<_>>(), want);

    let out = scrapepool(&["targets", p]);
    assert_eq!(text(&out.stderr).lines().collect::<Vec<_>>(), expected);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let active = v["data"]["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{v}");
    assert_eq!(active[0]["scrapeUrl"], "http://ok:9100/metrics");
}

#[test]
fn jobs_files_from_pipes_are_read_and_devices_are_capped() {
    use std::io::Write as _;
    // A pipe (`/dev/stdin`) is read.
    let mut child = Command::new(env!("CARGO_BIN_EXE_scrapepool"))
        .args(["check", "/dev/stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"job_name: a\nstatic_configs:\n  - targets: ['h:1']\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "SUCCESS: /dev/stdin is valid: 1 job(s)\n"
    );
    // An endless device is read through the cap and refused, for every command.
    let started = std::time::Instant::now();
    for command in ["check", "targets"] {
        let out = scrapepool(&[command, "/dev/zero"]);
        assert_eq!(out.status.code(), Some(1), "{command}");
        assert_eq!(
            text(&out.stderr),
            "/dev/zero: cannot read: larger than the 268435456 bytes allowed; not read\n",
            "{command}"
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn scrape_config_files_are_found_beside_the_configuration_wherever_check_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("jobs.d")).unwrap();
    let main = dir.path().join("prometheus.yml");
    std::fs::write(
        &main,
        "global:\n  sample_limit: 5\nscrape_config_files: ['jobs.d/*.yml']\nscrape_configs:\n  - job_name: main\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("jobs.d/a.yml"),
        "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['a:1']\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("jobs.d/skip.txt"), "not: yaml: [").unwrap();
    // From another directory: the pattern is the configuration's, not the working directory's.
    let out = scrapepool(&["check", main.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("2 job(s)"),
        "{}",
        text(&out.stdout)
    );
    // `targets` reads them too, under the main file's globals.
    let out = scrapepool(&["targets", main.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pools: Vec<&str> = body["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["scrapePool"].as_str().unwrap())
        .collect();
    assert_eq!(pools, ["a"]);
    // A file of the pattern with an error fails the check, naming that file.
    std::fs::write(
        dir.path().join("jobs.d/b.yml"),
        "scrape_configs:\n  - job_name: main\n",
    )
    .unwrap();
    let out = scrapepool(&["check", main.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("jobs.d/b.yml:2:15:")
            && stderr.contains(
                "found multiple scrape configs with job name \"main\", first found in main config file"
            ),
        "{stderr}"
    );
}

#[test]
fn spool_flags_need_the_kafka_sink() {
    let out = scrapepool(&["run", "--spool-dir", "/nonexistent/spool"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("--kafka"), "{err}");
    let out = scrapepool(&["run", "--spool-bytes-max", "1000"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("--spool-dir"), "{err}");
}
