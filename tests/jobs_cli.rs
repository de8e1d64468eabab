//! `scrapepool jobs` against a real ZooKeeper, run as a user runs it: the built binary.

#[path = "../adapters/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use scrapepool_core::config::{load_job, load_jobs, GlobalConfig};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn jobs(zk: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scrapepool"))
        .arg("jobs")
        .arg("--zookeeper")
        .arg(zk)
        .args(args)
        .output()
        .expect("the scrapepool binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// A fresh chroot on the shared server, or `None` (skipped).
fn zk_chroot(test: &str) -> Option<String> {
    match support::shared_zk() {
        Ok(server) => Some(format!(
            "{}/{}",
            server.connect,
            support::unique("scrapepool-cli")
        )),
        Err(why) => {
            support::skip(test, &why);
            None
        }
    }
}

#[test]
fn apply_splits_a_scrape_configs_file_into_equivalent_jobs() {
    let Some(zk) = zk_chroot("apply_splits_a_scrape_configs_file_into_equivalent_jobs") else {
        return;
    };
    let file = fixture("testdata/jobs/good.yml");
    let out = jobs(&zk, &["apply", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches(": created").count(), 3, "{stdout}");

    let list = jobs(&zk, &["list"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert_eq!(text(&list.stdout), "blackbox\nnode\nsharded\n");

    // Each stored job loads, on its own, into exactly the job the whole file defines
    // (global defaults and merge keys included).
    let (expected, errors) = load_jobs(
        &std::fs::read_to_string(&file).unwrap(),
        "good.yml",
        &GlobalConfig::default(),
    );
    assert!(errors.is_empty(), "{errors:?}");
    for job in &expected {
        let got = jobs(&zk, &["get", &job.job_name]);
        assert!(got.status.success(), "{}", text(&got.stderr));
        let stored = text(&got.stdout);
        let loaded =
            load_job(&stored, "znode", &job.job_name).unwrap_or_else(|e| panic!("{e:?}\n{stored}"));
        assert_eq!(&loaded, job, "job {} as stored:\n{stored}", job.job_name);
    }

    // Applying the same file again changes nothing.
    let again = jobs(&zk, &["apply", file.to_str().unwrap()]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(
        text(&again.stdout).matches(": unchanged").count(),
        3,
        "{}",
        text(&again.stdout)
    );
}

#[test]
fn apply_writes_nothing_when_any_file_is_invalid() {
    let Some(zk) = zk_chroot("apply_writes_nothing_when_any_file_is_invalid") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("testdata/jobs/good.yml"),
        dir.path().join("a-good.yml"),
    )
    .unwrap();
    std::fs::copy(
        fixture("testdata/jobs/bad.yml"),
        dir.path().join("b-bad.yaml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a jobs file").unwrap();
    let out = jobs(&zk, &["apply", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("b-bad.yaml") && stderr.contains("nothing written"),
        "{stderr}"
    );
    let list = jobs(&zk, &["list"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert_eq!(
        text(&list.stdout),
        "",
        "the good file's jobs must not have been written"
    );

    // The same job name in two files is an error too.
    let dup = tempfile::tempdir().unwrap();
    std::fs::write(
        dup.path().join("1.yml"),
        "job_name: x\nstatic_configs: [{targets: ['a:1']}]\n",
    )
    .unwrap();
    std::fs::write(
        dup.path().join("2.yml"),
        "job_name: x\nstatic_configs: [{targets: ['b:1']}]\n",
    )
    .unwrap();
    let out = jobs(&zk, &["apply", dup.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("also defined in"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn single_job_file_is_stored_verbatim_and_get_delete_work() {
    let Some(zk) = zk_chroot("single_job_file_is_stored_verbatim_and_get_delete_work") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let yaml = "# the node exporter on this host\njob_name: node\nscrape_interval: 5s\nstatic_configs:\n  - targets: ['127.0.0.1:9100']\n";
    let file = dir.path().join("node.yml");
    std::fs::write(&file, yaml).unwrap();
    let out = jobs(&zk, &["apply", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("job node: created"),
        "{}",
        text(&out.stdout)
    );
    let got = jobs(&zk, &["get", "node"]);
    assert_eq!(text(&got.stdout), yaml);

    let del = jobs(&zk, &["delete", "node"]);
    assert!(del.status.success(), "{}", text(&del.stderr));
    let got = jobs(&zk, &["get", "node"]);
    assert!(!got.status.success());
    assert!(
        text(&got.stderr).contains("no job \"node\""),
        "{}",
        text(&got.stderr)
    );
    assert!(!jobs(&zk, &["delete", "node"]).status.success());
}

#[test]
fn unreachable_zookeeper_fails_fast_with_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let out = jobs(&format!("127.0.0.1:{port}"), &["list"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&format!("127.0.0.1:{port}")),
        "{}",
        text(&out.stderr)
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
