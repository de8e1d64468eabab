//! File discovery against real temporary files: formats, globs, labels, change pickup and
//! errors that name the file and line while the other files' groups stay.

use std::path::Path;
use std::time::Duration;

use scrapepool_adapters::discovery::FileDiscoverer;
use scrapepool_adapters::ports::Discoverer;
use scrapepool_core::config::{FileSdConfig, SdConfig, TargetGroup};
use scrapepool_core::labels::Labels;
use scrapepool_core::node::ProviderId;
use scrapepool_core::Event;
use tokio::sync::mpsc;

/// Longest we wait for an expected event (the discoverer polls every 20ms).
const EVENT_WAIT: Duration = Duration::from_secs(5);

type Update = Result<Vec<TargetGroup>, String>;

fn start(
    files: Vec<String>,
    refresh_interval: Duration,
) -> (mpsc::Receiver<Event>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(64);
    let discoverer = FileDiscoverer {
        poll_interval: Duration::from_millis(20),
        read_deadline: Duration::from_secs(2),
    };
    let config = SdConfig::File(FileSdConfig {
        files,
        refresh_interval,
    });
    let provider = ProviderId {
        job: "files".into(),
        index: 0,
        generation: 1,
    };
    let task = tokio::spawn(async move { discoverer.run(provider, config, tx).await });
    (rx, task)
}

async fn next(rx: &mut mpsc::Receiver<Event>) -> Update {
    match tokio::time::timeout(EVENT_WAIT, rx.recv()).await {
        Ok(Some(Event::DiscoveryUpdated { provider, result })) => {
            assert_eq!(
                provider,
                ProviderId {
                    job: "files".into(),
                    index: 0,
                    generation: 1
                }
            );
            result
        }
        Ok(Some(other)) => panic!("unexpected event {other:?}"),
        Ok(None) => panic!("discoverer stopped"),
        Err(_) => panic!("no discovery update within {EVENT_WAIT:?}"),
    }
}

async fn assert_quiet(rx: &mut mpsc::Receiver<Event>, for_how_long: Duration) {
    if let Ok(Some(ev)) = tokio::time::timeout(for_how_long, rx.recv()).await {
        panic!("expected no update, got {ev:?}");
    }
}

fn write(path: &Path, text: &str) {
    // Write then rename, as config management tools do; the stamp (inode) changes.
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn addresses(group: &TargetGroup) -> Vec<&str> {
    group
        .targets
        .iter()
        .map(|t| t.get("__address__").unwrap())
        .collect()
}

#[tokio::test]
async fn json_and_yaml_groups_with_filepath_label_and_sources() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("a.json");
    let yaml = dir.path().join("b.yml");
    write(
        &json,
        r#"[{"targets": ["10.0.0.1:9100", "10.0.0.2:9100"], "labels": {"env": "prod"}}, {"targets": ["10.0.0.3:9100"]}]"#,
    );
    write(&yaml, "- targets: ['db:9187']\n  labels:\n    team: data\n");
    let (mut rx, task) = start(
        vec![json.display().to_string(), yaml.display().to_string()],
        Duration::from_secs(300),
    );

    let groups = next(&mut rx).await.expect("groups");
    assert_eq!(groups.len(), 3);
    let j = json.display().to_string();
    let y = yaml.display().to_string();
    assert_eq!(groups[0].source, format!("{j}:0"));
    assert_eq!(
        groups[0].labels,
        Labels::from_pairs([("env", "prod"), ("__meta_filepath", j.as_str())])
    );
    assert_eq!(
        addresses(&groups[0]),
        vec!["10.0.0.1:9100", "10.0.0.2:9100"]
    );
    assert_eq!(groups[1].source, format!("{j}:1"));
    assert_eq!(
        groups[1].labels,
        Labels::from_pairs([("__meta_filepath", j.as_str())])
    );
    assert_eq!(groups[2].source, format!("{y}:0"));
    assert_eq!(
        groups[2].labels,
        Labels::from_pairs([("team", "data"), ("__meta_filepath", y.as_str())])
    );
    assert_eq!(addresses(&groups[2]), vec!["db:9187"]);
    // Nothing changed: no further update.
    assert_quiet(&mut rx, Duration::from_millis(200)).await;
    task.abort();
}

#[tokio::test]
async fn glob_picks_up_new_changed_and_removed_files() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("*.yaml").display().to_string();
    write(&dir.path().join("one.yaml"), "- targets: ['a:1']\n");
    write(
        &dir.path().join("ignored.json"),
        r#"[{"targets": ["nope:1"]}]"#,
    );
    let (mut rx, task) = start(vec![pattern], Duration::from_secs(300));

    let groups = next(&mut rx).await.unwrap();
    assert_eq!(
        groups.iter().flat_map(addresses).collect::<Vec<_>>(),
        vec!["a:1"]
    );

    write(&dir.path().join("two.yaml"), "- targets: ['b:2']\n");
    let groups = next(&mut rx).await.unwrap();
    assert_eq!(
        groups.iter().flat_map(addresses).collect::<Vec<_>>(),
        vec!["a:1", "b:2"]
    );

    write(&dir.path().join("one.yaml"), "- targets: ['a:1', 'c:3']\n");
    let groups = next(&mut rx).await.unwrap();
    assert_eq!(
        groups.iter().flat_map(addresses).collect::<Vec<_>>(),
        vec!["a:1", "c:3", "b:2"]
    );

    std::fs::remove_file(dir.path().join("two.yaml")).unwrap();
    let groups = next(&mut rx).await.unwrap();
    assert_eq!(
        groups.iter().flat_map(addresses).collect::<Vec<_>>(),
        vec!["a:1", "c:3"]
    );
    task.abort();
}

#[tokio::test]
async fn invalid_file_keeps_its_previous_groups_and_reports_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    let bad = dir.path().join("bad.json");
    write(&good, r#"[{"targets": ["g:1"]}]"#);
    write(&bad, r#"[{"targets": ["b:1"]}]"#);
    let (mut rx, task) = start(
        vec![dir.path().join("*.json").display().to_string()],
        Duration::from_secs(300),
    );
    let groups = next(&mut rx).await.unwrap();
    assert_eq!(
        groups.iter().flat_map(addresses).collect::<Vec<_>>(),
        vec!["b:1", "g:1"]
    );

    // Break one file (line 3) and change the other in the same instant.
    write(
        &bad,
        "[\n  {\"targets\": [\"b:1\"]},\n  {\"targets\": [oops]}\n]",
    );
    write(&good, r#"[{"targets": ["g:2"]}]"#);
    let mut saw_fresh_good = false;
    let error = loop {
        match next(&mut rx).await {
            Ok(groups) => {
                // The bad file's previous group stays; the good file's new one is there.
                let all: Vec<&str> = groups.iter().flat_map(addresses).collect();
                if all == vec!["b:1", "g:2"] {
                    saw_fresh_good = true;
                }
            }
            Err(e) => break e,
        }
    };
    assert!(
        saw_fresh_good,
        "the good file's change must go out despite the bad file"
    );
    let bad_shown = bad.display().to_string();
    assert!(
        error.contains(&format!("{bad_shown}:3:")),
        "error must name file and line: {error}"
    );
    assert!(!error.contains("good.json"), "{error}");

    // Fixing the file clears the error.
    write(&bad, r#"[{"targets": ["b:9"]}]"#);
    let groups = next(&mut rx).await.expect("fixed file gives groups again");
    assert_eq!(
        groups.iter().flat_map(addresses).collect::<Vec<_>>(),
        vec!["b:9", "g:2"]
    );
    task.abort();
}

#[tokio::test]
async fn yaml_errors_name_line_and_unknown_fields_and_extensions_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("t.yml");
    write(
        &yaml,
        "- targets: ['a:1']\n- targets: ['b:1']\n  lables: {x: y}\n",
    );
    let txt = dir.path().join("t.txt");
    write(&txt, "a:1\n");
    let (mut rx, task) = start(
        vec![yaml.display().to_string(), txt.display().to_string()],
        Duration::from_secs(300),
    );
    let error = next(&mut rx)
        .await
        .expect_err("both files are bad: only an error");
    let y = yaml.display().to_string();
    assert!(
        error.contains(&format!("{y}:3:")),
        "YAML error must name file and line 3: {error}"
    );
    assert!(error.contains("lables"), "{error}");
    assert!(
        error.contains("t.txt") && error.contains("unknown extension"),
        "{error}"
    );
    task.abort();
}

#[tokio::test]
async fn invalid_label_name_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("l.json");
    write(
        &json,
        r#"[{"targets": ["a:1"], "labels": {"bad-name": "x"}}]"#,
    );
    let (mut rx, task) = start(vec![json.display().to_string()], Duration::from_secs(300));
    let error = next(&mut rx).await.expect_err("invalid label name");
    assert!(
        error.contains("l.json") && error.contains("bad-name"),
        "{error}"
    );
    task.abort();
}

#[tokio::test]
async fn refresh_interval_rereads_even_without_a_visible_change() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    write(&json, r#"[{"targets": ["a:1"]}]"#);
    let (mut rx, task) = start(vec![json.display().to_string()], Duration::from_millis(300));
    assert_eq!(
        next(&mut rx)
            .await
            .unwrap()
            .iter()
            .flat_map(addresses)
            .collect::<Vec<_>>(),
        vec!["a:1"]
    );
    // Same size, same inode, and the old modification time restored: only the periodic
    // re-read can see this change.
    let modified = std::fs::metadata(&json).unwrap().modified().unwrap();
    std::fs::write(&json, r#"[{"targets": ["b:1"]}]"#).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&json)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let groups = next(&mut rx).await.unwrap();
    assert_eq!(
        groups.iter().flat_map(addresses).collect::<Vec<_>>(),
        vec!["b:1"]
    );
    task.abort();
}

#[tokio::test]
async fn missing_file_is_no_groups_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("later.json");
    let (mut rx, task) = start(vec![json.display().to_string()], Duration::from_secs(300));
    assert_eq!(next(&mut rx).await, Ok(vec![]));
    write(&json, r#"[{"targets": ["x:1"]}]"#);
    let groups = next(&mut rx).await.unwrap();
    assert_eq!(
        groups.iter().flat_map(addresses).collect::<Vec<_>>(),
        vec!["x:1"]
    );
    task.abort();
}

#[tokio::test]
async fn the_combined_discovery_dispatches_on_the_config() {
    use scrapepool_adapters::discovery::Discovery;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("d.json");
    write(&json, r#"[{"targets": ["d:1"]}]"#);
    let (tx, mut rx) = mpsc::channel(8);
    let discovery = Discovery {
        file: FileDiscoverer {
            poll_interval: Duration::from_millis(20),
            ..FileDiscoverer::default()
        },
        ..Discovery::default()
    };
    let provider = ProviderId {
        job: "files".into(),
        index: 0,
        generation: 1,
    };
    let config = SdConfig::File(FileSdConfig {
        files: vec![json.display().to_string()],
        refresh_interval: Duration::from_secs(300),
    });
    let task = tokio::spawn(async move { discovery.run(provider, config, tx).await });
    let groups = next(&mut rx).await.unwrap();
    assert_eq!(
        groups.iter().flat_map(addresses).collect::<Vec<_>>(),
        vec!["d:1"]
    );
    task.abort();
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
}

#[tokio::test]
async fn fifos_and_devices_are_errors_naming_the_file_and_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("a.json");
    write(&good, r#"[{"targets": ["a:1"]}]"#);
    // A FIFO nobody writes to: opening it for reading would block, reading it too.
    let fifo = dir.path().join("b.json");
    mkfifo(&fifo);
    // A symlink to /dev/zero: endless, with a metadata size of 0.
    let zero = dir.path().join("c.yml");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let started = std::time::Instant::now();
    for files in [
        vec![dir.path().join("*").display().to_string()],
        vec![
            good.display().to_string(),
            fifo.display().to_string(),
            zero.display().to_string(),
        ],
    ] {
        let (mut rx, task) = start(files, Duration::from_secs(300));
        let groups = next(&mut rx).await.unwrap();
        assert_eq!(
            groups.iter().flat_map(addresses).collect::<Vec<_>>(),
            vec!["a:1"]
        );
        let error = next(&mut rx).await.unwrap_err();
        assert_eq!(
            error,
            format!(
                "file_sd: {}: a named pipe, not a regular file; not read; file_sd: {}: a device, not a regular file; not read",
                fifo.display(),
                zero.display()
            )
        );
        task.abort();
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn reads_stop_at_the_cap_whatever_the_metadata_says() {
    use scrapepool_adapters::discovery::file::read_capped;
    let dir = tempfile::tempdir().unwrap();
    // /dev/zero has no size to trust: read through the cap, then refused.
    let e = read_capped(Path::new("/dev/zero"), 1024, false).unwrap_err();
    assert_eq!(e, "larger than the 1024 bytes allowed; not read");
    let e = read_capped(Path::new("/dev/zero"), 1024, true).unwrap_err();
    assert_eq!(e, "a device, not a regular file; not read");
    // A regular file exactly at the cap is read; one byte more is not.
    let at = dir.path().join("at.json");
    std::fs::write(&at, vec![b' '; 1024]).unwrap();
    assert_eq!(read_capped(&at, 1024, true).unwrap().len(), 1024);
    std::fs::write(&at, vec![b' '; 1025]).unwrap();
    assert_eq!(
        read_capped(&at, 1024, true).unwrap_err(),
        "larger than the 1024 bytes allowed; not read"
    );
    // A pipe with a writer (as `/dev/stdin` can be) is read when allowed, through the cap.
    let fifo = dir.path().join("p.yml");
    mkfifo(&fifo);
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            let _ = f.write_all(b"job_name: a\n");
        })
    };
    assert_eq!(read_capped(&fifo, 1024, false).unwrap(), "job_name: a\n");
    writer.join().unwrap();
}
