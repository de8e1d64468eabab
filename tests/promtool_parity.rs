//! `scrapepool check` beside the real `promtool check config` (Prometheus 3.16) on every file
//! of `testdata/config-corpus/` (the files of `included/` are read through
//! `scrape_config_files`, not checked alone).
//!
//! The comparison rule, per file (both tools run in the corpus directory on the same
//! relative path):
//!
//! 1. The file's name says what it is: `ok-*` must pass promtool, `bad-*` must fail it, so
//!    the corpus checks what it claims to.
//! 2. Verdict: scrapepool passes exactly when promtool does — except the files of
//!    [`KEPT_DIFFERENCES`] (promtool passes, scrapepool refuses on purpose: every one of its
//!    errors must contain the listed phrase, and the README's "What scrapepool does
//!    differently from Prometheus 3.16" says why) and of [`PENDING`] (keys another part of
//!    scrapepool is adding: either the verdicts agree, or every error names a pending key).
//! 3. Message, for a file promtool fails: promtool's message is the text after `FAILED: `,
//!    without `parsing YAML file F: ` and `error loading scrape configs: "F": `; for
//!    `yaml: unmarshal errors:` it is the first `line N: ` line's text. scrapepool's
//!    output (every error it found, each with its position, job and field) must contain
//!    that message, with three rewritings for Go's YAML library's wording, whose type names
//!    mean nothing to a user: `field K not found in type T` is `unknown field "K"`;
//!    `cannot unmarshal X into T` must match up to `into`; a YAML syntax error
//!    (`yaml: line N: ...`) must be an `invalid YAML` error of scrapepool's at line N. The
//!    files of [`MESSAGE_DIFFERENCES`] are compared to the phrase listed there instead.
//!
//! `ok-dumped-from-prometheus-3.16.yml` is what `GET /api/v1/status/config` of a Prometheus
//! 3.16 started on `ok-rich-source-of-the-dump.yml` answered (its `data.yaml`, unchanged).
//!
//! promtool is `$SCRAPEPOOL_PROMTOOL_BIN` (set by scripts/services.sh), else `promtool` on
//! `PATH`; without it the test prints `SKIPPED`, unless `SCRAPEPOOL_REQUIRE_SERVICES=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Files promtool accepts and scrapepool refuses on purpose: (file, phrase every error of
/// scrapepool's contains). The reasons are in the README.
const KEPT_DIFFERENCES: &[(&str, &str)] = &[
    (
        "ok-job-scheme-ftp.yml",
        r#"scheme must be "http" or "https""#,
    ),
    ("ok-sd-azure.yml", "is not supported by scrapepool"),
    ("ok-sd-digitalocean.yml", "is not supported by scrapepool"),
    ("ok-sd-docker.yml", "is not supported by scrapepool"),
    ("ok-sd-dockerswarm.yml", "is not supported by scrapepool"),
    ("ok-sd-ec2.yml", "is not supported by scrapepool"),
    ("ok-sd-eureka.yml", "is not supported by scrapepool"),
    ("ok-sd-gce.yml", "is not supported by scrapepool"),
    ("ok-sd-hetzner.yml", "is not supported by scrapepool"),
    ("ok-sd-ionos.yml", "is not supported by scrapepool"),
    ("ok-sd-kubernetes.yml", "is not supported by scrapepool"),
    ("ok-sd-kuma.yml", "is not supported by scrapepool"),
    ("ok-sd-lightsail.yml", "is not supported by scrapepool"),
    ("ok-sd-linode.yml", "is not supported by scrapepool"),
    ("ok-sd-marathon.yml", "is not supported by scrapepool"),
    ("ok-sd-nerve.yml", "is not supported by scrapepool"),
    ("ok-sd-nomad.yml", "is not supported by scrapepool"),
    ("ok-sd-openstack.yml", "is not supported by scrapepool"),
    ("ok-sd-ovhcloud.yml", "is not supported by scrapepool"),
    ("ok-sd-puppetdb.yml", "is not supported by scrapepool"),
    ("ok-sd-scaleway.yml", "is not supported by scrapepool"),
    ("ok-sd-serverset.yml", "is not supported by scrapepool"),
    ("ok-sd-stackit.yml", "is not supported by scrapepool"),
    ("ok-sd-triton.yml", "is not supported by scrapepool"),
    ("ok-sd-uyuni.yml", "is not supported by scrapepool"),
    ("ok-sd-vultr.yml", "is not supported by scrapepool"),
    (
        "ok-job-native-histograms.yml",
        "convert_classic_histograms_to_nhcb: true",
    ),
    (
        "ok-global-all.yml",
        "convert_classic_histograms_to_nhcb: true",
    ),
    (
        "ok-rich-source-of-the-dump.yml",
        "convert_classic_histograms_to_nhcb: true",
    ),
    (
        "ok-dumped-from-prometheus-3.16.yml",
        "convert_classic_histograms_to_nhcb: true",
    ),
];

/// Files whose verdict waits for keys another part of scrapepool adds (the HTTP client's
/// `follow_redirects` and `enable_http2`, HTTP discovery): (file, the keys).
const PENDING: &[(&str, &[&str])] = &[];

/// Bad files whose message is not promtool's: (file, what scrapepool's says instead).
const MESSAGE_DIFFERENCES: &[(&str, &str)] = &[
    // Go's regexp and Rust's regex word their errors differently; the regex is named.
    (
        "bad-job-regex.yml",
        r#"invalid regex "(oops": unclosed group"#,
    ),
];

fn promtool() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("SCRAPEPOOL_PROMTOOL_BIN").filter(|b| !b.is_empty()) {
        return Some(PathBuf::from(bin));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|p| p.join("promtool"))
        .find(|p| p.is_file())
}

/// promtool's message for a failed check (see the module doc).
fn promtool_message(output: &str) -> String {
    let failed = output
        .split_once("FAILED: ")
        .map(|(_, m)| m)
        .unwrap_or_else(|| panic!("no FAILED in promtool's output:\n{output}"));
    let mut message = failed.trim_end().to_string();
    if let Some((_, rest)) = message.split_once("parsing YAML file ") {
        message = rest.split_once(": ").map(|(_, m)| m.to_string()).unwrap();
    }
    if let Some(rest) = message.strip_prefix("error loading scrape configs: \"") {
        message = rest.split_once("\": ").map(|(_, m)| m.to_string()).unwrap();
    }
    if message.starts_with("yaml: unmarshal errors:") {
        let line = message
            .lines()
            .find_map(|l| l.trim().strip_prefix("line "))
            .unwrap();
        message = line.split_once(": ").unwrap().1.to_string();
    }
    message
}

/// What scrapepool's output must contain for promtool's `message`: a phrase, or a YAML
/// syntax error at a line.
enum Expected {
    Contains(String),
    SyntaxErrorAtLine(usize),
}

fn expected(message: &str) -> Expected {
    if let Some(rest) = message.strip_prefix("yaml: line ") {
        let line = rest.split(':').next().unwrap().parse().unwrap();
        return Expected::SyntaxErrorAtLine(line);
    }
    if let Some(rest) = message.strip_prefix("field ") {
        if let Some((key, _)) = rest.split_once(" not found in type ") {
            return Expected::Contains(format!("unknown field {key:?}"));
        }
    }
    if message.starts_with("cannot unmarshal ") {
        if let Some((head, _)) = message.split_once(" into ") {
            return Expected::Contains(format!("{head} into "));
        }
    }
    Expected::Contains(message.to_string())
}

#[test]
fn check_agrees_with_promtool_on_the_corpus() {
    let Some(promtool) = promtool() else {
        assert!(
            std::env::var("SCRAPEPOOL_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "no promtool and SCRAPEPOOL_REQUIRE_SERVICES=1"
        );
        println!("SKIPPED: no promtool (set SCRAPEPOOL_PROMTOOL_BIN or put promtool on PATH)");
        return;
    };
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/config-corpus");
    let mut files: Vec<String> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    files.sort();
    assert!(files.len() > 100, "corpus too small: {}", files.len());
    let listed = KEPT_DIFFERENCES
        .iter()
        .map(|(f, _)| *f)
        .chain(PENDING.iter().map(|(f, _)| *f))
        .chain(MESSAGE_DIFFERENCES.iter().map(|(f, _)| *f));
    for file in listed {
        assert!(
            files.iter().any(|f| f == file),
            "{file} is not in the corpus"
        );
    }
    let mut failures = Vec::new();
    for file in &files {
        let theirs = Command::new(&promtool)
            .args(["check", "config", file])
            .current_dir(&corpus)
            .output()
            .unwrap();
        let theirs_text = String::from_utf8_lossy(&theirs.stdout).to_string()
            + &String::from_utf8_lossy(&theirs.stderr);
        let ours = Command::new(env!("CARGO_BIN_EXE_scrapepool"))
            .args(["check", file])
            .current_dir(&corpus)
            .output()
            .unwrap();
        let ours_text = String::from_utf8_lossy(&ours.stderr).to_string();
        let ours_errors: Vec<&str> = ours_text
            .lines()
            .filter(|l| !l.starts_with("FAILED: "))
            .collect();
        let promtool_ok = theirs.status.success();
        if promtool_ok != file.starts_with("ok-") {
            failures.push(format!(
                "{file}: promtool's verdict is not the name's:\n{theirs_text}"
            ));
            continue;
        }
        let ours_ok = ours.status.success();
        if let Some((_, phrase)) = KEPT_DIFFERENCES.iter().find(|(f, _)| f == file) {
            if ours_ok || ours_errors.iter().any(|e| !e.contains(phrase)) {
                failures.push(format!(
                    "{file}: a kept difference, every error must say {phrase:?}:\n{ours_text}"
                ));
            }
            continue;
        }
        if let Some((_, keys)) = PENDING.iter().find(|(f, _)| f == file) {
            let only_pending = ours_errors
                .iter()
                .all(|e| keys.iter().any(|k| e.contains(&format!("{k:?}"))));
            if ours_ok != promtool_ok && !only_pending {
                failures.push(format!(
                    "{file}: errors other than the pending keys {keys:?}:\n{ours_text}"
                ));
            }
            continue;
        }
        if ours_ok != promtool_ok {
            failures.push(format!(
                "{file}: promtool {}, scrapepool {}:\n{theirs_text}\n{ours_text}",
                if promtool_ok { "passes" } else { "fails" },
                if ours_ok { "passes" } else { "fails" },
            ));
            continue;
        }
        if promtool_ok {
            continue;
        }
        let message = promtool_message(&theirs_text);
        let expected = match MESSAGE_DIFFERENCES.iter().find(|(f, _)| f == file) {
            Some((_, ours)) => Expected::Contains(ours.to_string()),
            None => expected(&message),
        };
        let found = match &expected {
            Expected::Contains(phrase) => ours_errors.iter().any(|e| e.contains(phrase.as_str())),
            Expected::SyntaxErrorAtLine(line) => ours_errors
                .iter()
                .any(|e| e.contains("invalid YAML") && e.contains(&format!(":{line}:"))),
        };
        if !found {
            failures.push(format!(
                "{file}:\n  promtool:   {message}\n  scrapepool: {ours_text}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} files:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn the_comparison_rule_rewrites_only_gos_yaml_wording() {
    let out = "Checking f.yml\n  FAILED: parsing YAML file f.yml: yaml: unmarshal errors:\n  line 3: field sample_limt not found in type config.ScrapeConfig\n";
    let message = promtool_message(out);
    assert_eq!(
        message,
        "field sample_limt not found in type config.ScrapeConfig"
    );
    assert!(
        matches!(expected(&message), Expected::Contains(p) if p == "unknown field \"sample_limt\"")
    );
    let out = "  FAILED: error loading scrape configs: \"/a/b.yml\": found multiple scrape configs with job name \"a\", first found in main config file";
    assert_eq!(
        promtool_message(out),
        "found multiple scrape configs with job name \"a\", first found in main config file"
    );
    assert!(matches!(
        expected("yaml: line 7: did not find expected node content"),
        Expected::SyntaxErrorAtLine(7)
    ));
    assert!(
        matches!(expected("cannot unmarshal !!str `x` into bool"), Expected::Contains(p) if p == "cannot unmarshal !!str `x` into ")
    );
    assert!(
        matches!(expected("job_name is empty"), Expected::Contains(p) if p == "job_name is empty")
    );
}
