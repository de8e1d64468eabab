//! Runs every case of the OpenMetrics parser conformance suite (third-party data, not in
//! this repository): each `shouldParse: true` case must parse, each `shouldParse: false`
//! case must be rejected. Every failing case is reported by name.

use std::path::{Path, PathBuf};

use scrapepool_core::exposition::{parse, Format};

/// Where the suite is: `$SCRAPEPOOL_SHARED/fixtures/...`, else `<repo>/../shared/fixtures/...`.
fn suite_dir() -> PathBuf {
    match std::env::var_os("SCRAPEPOOL_SHARED") {
        Some(shared) => Path::new(&shared).join("fixtures/openmetrics-conformance"),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/openmetrics-conformance"),
    }
}

/// Reads `shouldParse` from a case's test.json.
fn should_parse(test_json: &str) -> Option<bool> {
    let value: serde_json::Value = serde_json::from_str(test_json).ok()?;
    value.get("shouldParse")?.as_bool()
}

#[test]
fn every_conformance_case_is_judged_as_the_suite_says() {
    let dir = suite_dir();
    println!("OpenMetrics conformance suite: {}", dir.display());
    if !dir.is_dir() {
        // The suite is third-party data that a clone does not carry: only CI, which lays it
        // beside the clone, asks for it (`.ci/run` sets SCRAPEPOOL_REQUIRE_CONFORMANCE=1).
        if std::env::var("SCRAPEPOOL_REQUIRE_CONFORMANCE").as_deref() == Ok("1") {
            panic!(
                "SCRAPEPOOL_REQUIRE_CONFORMANCE=1 but the OpenMetrics conformance suite is missing at {} \
                 (set SCRAPEPOOL_SHARED to the folder that holds fixtures/openmetrics-conformance)",
                dir.display()
            );
        }
        println!(
            "SKIPPED: the OpenMetrics conformance suite (third-party data, not in this repository) \
             is not at {}; set SCRAPEPOOL_SHARED to the folder that holds \
             fixtures/openmetrics-conformance to run it",
            dir.display()
        );
        return;
    }
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read the suite directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.join("test.json").is_file())
        .collect();
    cases.sort();
    let mut failures = Vec::new();
    let (mut good, mut bad) = (0, 0);
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let json = std::fs::read_to_string(case.join("test.json")).expect("read test.json");
        let Some(expected) = should_parse(&json) else {
            failures.push(format!("{name}: test.json has no boolean shouldParse"));
            continue;
        };
        let body = std::fs::read(case.join("metrics")).expect("read metrics");
        let result = parse(&body, Format::OpenMetrics);
        match (expected, result) {
            (true, Ok(_)) => good += 1,
            (false, Err(_)) => bad += 1,
            (true, Err(e)) => failures.push(format!("{name}: should parse, but: {e}")),
            (false, Ok(p)) => failures.push(format!(
                "{name}: should be rejected, but parsed {} samples",
                p.samples.len()
            )),
        }
    }
    println!(
        "{} cases: {good} parsed as they should, {bad} rejected as they should",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(
        cases.len(),
        211,
        "the suite at commit 296468bc has 211 cases"
    );
}
