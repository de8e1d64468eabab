//! `scrapepool run` standalone — the README's first command — scrapes its own /metrics
//! successfully (our OpenMetrics output must parse with our own parser) and exits on SIGINT.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn standalone_run_scrapes_itself_and_stops_on_sigint() {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_scrapepool"))
        .args(["run", "--listen", &listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("scrapepool starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The built-in job scrapes every 15 s at a fixed phase: the first scrape is within 15 s.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut up = None;
    while Instant::now() < deadline && up.is_none() {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        let v: serde_json::Value =
            serde_json::from_str(&line).expect("every stdout line is a JSON sample");
        if v["name"] == "up" {
            assert_eq!(v["labels"]["job"], "scrapepool");
            assert_eq!(v["labels"]["instance"], listen.as_str());
            up = Some(v["value"].as_str().unwrap().to_string());
        }
    }
    // SIGINT: a standalone daemon has nobody to hand over to, so it leaves at once.
    unsafe { libc_kill(child.id() as i32, 2) };
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        up.as_deref(),
        Some("1"),
        "scraping its own /metrics must succeed"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "exits cleanly after SIGINT: {status:?}"
    );
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Runs `scrapepool run --jobs FILE` standalone for a moment; `Ok(status)` when it exited by
/// itself within `wait`, `Err(())` when it was still running (then it is stopped by SIGINT,
/// and must exit cleanly).
fn run_with_jobs(file: &std::path::Path, wait: Duration) -> Result<std::process::ExitStatus, ()> {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_scrapepool"))
        .args(["run", "--listen", &listen, "--jobs", file.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("scrapepool starts");
    let started = Instant::now();
    while started.elapsed() < wait {
        if let Some(status) = child.try_wait().unwrap() {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe { libc_kill(child.id() as i32, 2) };
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exits cleanly after SIGINT: {status:?}");
            return Err(());
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no exit after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn check_and_run_agree_on_empty_comment_only_and_broken_files() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("empty.yml", "", true),
        ("comments.yml", "# no jobs yet\n\n# still none\n", true),
        ("document-marker.yml", "---\n", true),
        ("broken.yml", "job_name: [unclosed\n", false),
        ("list.yml", "- job_name: a\n", false),
    ];
    for (name, text, valid) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let check = Command::new(env!("CARGO_BIN_EXE_scrapepool"))
            .args(["check", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(
            check.status.success(),
            valid,
            "check {name}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        if valid {
            assert_eq!(
                String::from_utf8_lossy(&check.stdout).trim(),
                format!("SUCCESS: {} is valid: 0 job(s)", path.display())
            );
        }
        // A valid file keeps the daemon running (serving its pages, scraping nothing); an
        // invalid one stops it at once with a failure.
        match run_with_jobs(&path, Duration::from_secs(3)) {
            Err(()) => assert!(valid, "run {name}: kept running on an invalid file"),
            Ok(status) => {
                assert!(!valid, "run {name}: exited ({status:?}) on a valid file");
                assert!(!status.success(), "run {name}: {status:?}");
            }
        }
    }
}

/// A plain HTTP/1.0 GET with an optional `Authorization` header: the status code.
fn status_of(listen: &str, path: &str, authorization: Option<&str>) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(listen).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n{auth}\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split(' ').nth(1)?.parse().ok()
}

#[test]
fn the_web_config_file_puts_basic_auth_in_front_of_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  alice: {hash}\n")).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_scrapepool"))
        .args(["run", "--listen", &listen, "--web.config.file"])
        .arg(&web)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("scrapepool starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut without = None;
    while Instant::now() < deadline && without.is_none() {
        without = status_of(&listen, "/-/healthy", None);
        std::thread::sleep(Duration::from_millis(100));
    }
    // "alice:wrong" and "alice:s3cret", base64.
    let wrong = status_of(&listen, "/targets", Some("Basic YWxpY2U6d3Jvbmc="));
    let right = status_of(&listen, "/-/healthy", Some("Basic YWxpY2U6czNjcmV0"));
    unsafe { libc_kill(child.id() as i32, 2) };
    let _ = child.wait();
    assert_eq!(without, Some(401));
    assert_eq!(wrong, Some(401));
    assert_eq!(right, Some(200));
}

#[test]
fn a_web_config_file_that_does_not_load_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "basic_auth_users:\n  alice: plaintext\n").unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_scrapepool"))
        .args(["run", "--listen", &listen, "--web.config.file"])
        .arg(&web)
        .output()
        .expect("scrapepool runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&web.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("\"alice\"") && stderr.contains("bcrypt"),
        "{stderr}"
    );
}
