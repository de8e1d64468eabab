//! The Kafka sink's spool across a `kill -9`: a process whose broker is unreachable spills
//! what its memory queue cannot hold (and, writing through, journals what it admits), is
//! killed, and a new process on the same spool directory delivers every spooled record to a
//! real broker (SCRAPEPOOL_KAFKA) exactly once, in order per key.
//!
//! Without SCRAPEPOOL_KAFKA the test prints `SKIPPED: ...` and returns, unless
//! SCRAPEPOOL_REQUIRE_SERVICES=1 (CI), where it fails.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;
use scrapepool_adapters::kafka::{KafkaSink, KafkaSinkConfig, SpoolMode, SpoolSinkConfig};
use scrapepool_adapters::ports::Sink;
use scrapepool_adapters::spool::StoreOptions;
use scrapepool_core::encode::Record;

const KEYS: u64 = 3;
const BATCHES: u32 = 30;
/// The first life's memory queue: this many records are admitted, the rest spill.
const QUEUE: usize = 2;

fn kafka_or_skip(test: &str) -> Option<String> {
    match std::env::var("SCRAPEPOOL_KAFKA") {
        Ok(brokers) if !brokers.is_empty() => Some(brokers),
        _ => {
            if std::env::var("SCRAPEPOOL_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("{test}: SCRAPEPOOL_KAFKA is not set and SCRAPEPOOL_REQUIRE_SERVICES=1");
            }
            println!(
                "SKIPPED: {test}: SCRAPEPOOL_KAFKA is not set (scripts/services.sh start sets it)"
            );
            None
        }
    }
}

fn record(seq: u32) -> Record {
    let key = u64::from(seq) % KEYS;
    Record {
        key: key.to_be_bytes(),
        headers: vec![
            ("encoding", "json".to_string()),
            ("job", "spool".to_string()),
        ],
        payload: format!("{key}:{seq}").into_bytes(),
        samples: 1,
    }
}

fn config(
    brokers: &str,
    topic: &str,
    dir: &std::path::Path,
    write_through: bool,
) -> KafkaSinkConfig {
    let mut c = KafkaSinkConfig::new(brokers, topic);
    c.queue_len_max = QUEUE;
    c.spool = Some(SpoolSinkConfig {
        dir: dir.to_path_buf(),
        bytes_max: 1 << 20,
        mode: if write_through {
            SpoolMode::WriteThrough
        } else {
            SpoolMode::Overflow
        },
        store: StoreOptions::default(),
    });
    c
}

/// The first life, run as a child process by `kill_9_then_replay`: submits every batch to a
/// sink whose broker is a dead port (writing through if SPOOL_WRITE_THROUGH=1), says what
/// its spool holds, and waits to be killed.
#[test]
#[ignore = "run as a child process by the kill -9 tests"]
fn spool_first_life() {
    let dir = std::env::var("SPOOL_TEST_DIR").expect("SPOOL_TEST_DIR");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    drop(listener);
    let write_through = std::env::var("SPOOL_WRITE_THROUGH").as_deref() == Ok("1");
    let sink =
        KafkaSink::new(&config(&dead, "unreachable", dir.as_ref(), write_through)).expect("sink");
    for seq in 0..BATCHES {
        sink.submit(vec![record(seq)]);
    }
    let (spool, _) = sink.spool_counts().expect("a spool");
    println!(
        "SPOOLED {} {}",
        spool.spilled_records, spool.journaled_samples
    );
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn spilled_records_survive_kill_9() {
    kill_9_then_replay("spilled_records_survive_kill_9", false);
}

#[test]
fn written_through_every_record_survives_kill_9() {
    kill_9_then_replay("written_through_every_record_survives_kill_9", true);
}

/// A first life spools and is `kill -9`'d; a second on the same directory delivers what is
/// on disk: the spilled records, and with write-through the admitted ones too.
fn kill_9_then_replay(test: &str, write_through: bool) {
    let Some(brokers) = kafka_or_skip(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "spool_first_life",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SPOOL_TEST_DIR", dir.path())
        .env("SPOOL_WRITE_THROUGH", if write_through { "1" } else { "0" })
        .stdout(Stdio::piped())
        .spawn()
        .expect("first life");
    let mut reported = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // libtest prints the test's name on the same line first.
        if let Some((_, n)) = line.split_once("SPOOLED ") {
            let (s, j) = n.trim().split_once(' ').expect("two counts");
            reported = Some((s.parse::<u64>().unwrap(), j.parse::<u64>().unwrap()));
            break;
        }
    }
    child.kill().expect("kill -9"); // SIGKILL: no drop, no flush
    child.wait().unwrap();
    let (spilled, journaled) = reported.expect("the first life reported what it spooled");
    assert_eq!(spilled, u64::from(BATCHES) - QUEUE as u64);
    assert_eq!(journaled, if write_through { QUEUE as u64 } else { 0 });
    // Without write-through the first QUEUE records, admitted in memory, die with the life.
    let first = if write_through { 0 } else { QUEUE as u32 };
    let spooled = spilled + journaled;

    // Second life: same directory, broker up.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let topic = format!("test-spool-{}-{nanos}", std::process::id());
    let started = Instant::now();
    let sink =
        KafkaSink::new(&config(&brokers, &topic, dir.path(), write_through)).expect("second life");
    let deadline = started + Duration::from_secs(60);
    loop {
        let (spool, _) = sink.spool_counts().unwrap();
        if spool.entries == 0 && sink.counts().in_flight_records == 0 {
            assert_eq!(spool.restored_samples, spooled);
            assert_eq!(spool.replayed_samples, spooled);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replay not done: {spool:?} {:?}",
            sink.counts()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let replay_time = started.elapsed();
    assert_eq!(sink.counts().delivered_records, spooled);
    println!("replayed {spooled} records in {replay_time:?}");

    // On the topic: every spooled record once, in order per key.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("{topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut got: Vec<String> = Vec::new();
    let read_deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_until: Option<Instant> = None;
    loop {
        if let Some(t) = quiet_until {
            if Instant::now() >= t {
                break;
            }
        } else if got.len() as u64 >= spooled {
            quiet_until = Some(Instant::now() + Duration::from_secs(1));
        }
        assert!(
            Instant::now() < read_deadline,
            "read {} of {spooled}",
            got.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consumer");
            got.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    let mut sorted = got.clone();
    sorted.sort();
    let mut expected: Vec<String> = (first..BATCHES)
        .map(|s| String::from_utf8(record(s).payload).unwrap())
        .collect();
    expected.sort();
    assert_eq!(sorted, expected, "every spooled record exactly once");
    for key in 0..KEYS {
        let seqs: Vec<u32> = got
            .iter()
            .filter_map(|p| p.split_once(':'))
            .filter(|(k, _)| k.parse::<u64>().unwrap() == key)
            .map(|(_, s)| s.parse().unwrap())
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "key {key} out of order: {seqs:?}"
        );
    }
}
