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
