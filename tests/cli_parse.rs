//! `scrapepool parse` run as a built binary on small files.

use std::process::Command;

fn run(args: &[&str], body: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("payload.txt");
    std::fs::write(&file, body).expect("write payload");
    let mut all: Vec<&str> = vec!["parse"];
    all.extend_from_slice(args);
    let file_arg = file.to_str().expect("utf-8 path").to_string();
    all.push(&file_arg);
    let out = Command::new(env!("CARGO_BIN_EXE_scrapepool"))
        .args(&all)
        .output()
        .expect("run scrapepool");
    let stderr = String::from_utf8(out.stderr)
        .unwrap()
        .replace(&file_arg, "FILE");
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        stderr,
    )
}

#[test]
fn prints_one_json_object_per_sample() {
    let body = "# TYPE up gauge\nup{job=\"node\",Zone=\"a<b\"} 1\nrate 0.000027264 1704164645678\nweird{x=\"q\\\"\\n\"} NaN\nbig +Inf\n";
    let (ok, stdout, stderr) = run(&[], body);
    assert!(ok, "{stderr}");
    let want = [
        r#"{"value":"1","name":"up","labels":{"Zone":"a\u003cb","__name__":"up","job":"node"}}"#,
        r#"{"timestamp":"2024-01-02T03:04:05.678Z","value":"0.000027264","name":"rate","labels":{"__name__":"rate"}}"#,
        r#"{"value":"NaN","name":"weird","labels":{"__name__":"weird","x":"q\"\n"}}"#,
        r#"{"value":"+Inf","name":"big","labels":{"__name__":"big"}}"#,
    ];
    assert_eq!(stdout.lines().collect::<Vec<_>>(), want);
    for line in stdout.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("valid JSON");
    }
}

#[test]
fn reads_openmetrics_with_the_flag() {
    let body = "# TYPE a counter\na_total 3 1.5 # {id=\"x\"} 1\n# EOF\n";
    let (ok, stdout, stderr) = run(&["--format", "openmetrics"], body);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "{\"timestamp\":\"1970-01-01T00:00:01.500Z\",\"value\":\"3\",\"name\":\"a_total\",\"labels\":{\"__name__\":\"a_total\"}}\n");
    // The same body is not valid text format (the exemplar), so the default flag refuses it.
    let (ok, _, stderr) = run(&[], body);
    assert!(!ok);
    assert!(stderr.starts_with("FILE:2:"), "{stderr}");
}

#[test]
fn invalid_input_exits_non_zero_with_file_line_column() {
    let (ok, stdout, stderr) = run(&[], "a 1\nb{x=\"1\"} one\n");
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.trim_end(), "FILE:2:10: invalid value \"one\"");

    let (ok, _, stderr) = run(&["--format", "openmetrics"], "a 1\n");
    assert!(!ok);
    assert_eq!(stderr.trim_end(), "FILE:2:1: data does not end with # EOF");
}

#[test]
fn a_missing_file_is_reported() {
    let out = Command::new(env!("CARGO_BIN_EXE_scrapepool"))
        .args(["parse", "/nonexistent/x.prom"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("/nonexistent/x.prom: "));
}
