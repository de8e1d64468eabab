//! The Kafka sink against a real Apache Kafka broker (scripts/services.sh starts one and
//! sets SCRAPEPOOL_KAFKA), and against a dead port (no broker needed).
//!
//! Without SCRAPEPOOL_KAFKA the broker tests print `SKIPPED: ...` and return, unless
//! SCRAPEPOOL_REQUIRE_SERVICES=1 (CI), where they fail.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use scrapepool_adapters::kafka::{KafkaCompression, KafkaSink, KafkaSinkConfig};
use scrapepool_adapters::ports::Sink;
use scrapepool_core::delivery::{DeliveryCounts, FailReason};
use scrapepool_core::encode::Record;

/// Tests that take the broker away hold this lock, and so do the tests that need it up, so
/// that one test's outage cannot eat into another's deadlines (tests run in parallel).
/// (A test that panics while holding it has its outage undone by `Outage`'s drop.)
static BROKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The broker's address, or `None` after printing why the test is skipped.
fn kafka_or_skip(test: &str) -> Option<String> {
    match std::env::var("SCRAPEPOOL_KAFKA") {
        Ok(brokers) if !brokers.is_empty() => Some(brokers),
        _ => {
            if std::env::var("SCRAPEPOOL_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("{test}: SCRAPEPOOL_KAFKA is not set and SCRAPEPOOL_REQUIRE_SERVICES=1 (run scripts/services.sh start)");
            }
            println!(
                "SKIPPED: {test}: SCRAPEPOOL_KAFKA is not set (scripts/services.sh start sets it)"
            );
            None
        }
    }
}

/// A topic no other test (or earlier run) wrote to; the broker creates it on first use.
fn unique_topic(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("test-{test}-{}-{nanos}", std::process::id())
}

/// A loopback port with nothing listening on it.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn record(key: u64, instance: &str, payload: &[u8], samples: usize) -> Record {
    Record {
        key: key.to_be_bytes(),
        headers: vec![
            ("encoding", "remote-write".to_string()),
            ("job", "node".to_string()),
            ("instance", instance.to_string()),
            ("scraper", "scraper-1".to_string()),
        ],
        payload: payload.to_vec(),
        samples,
    }
}

/// Waits until the sink's ledger counts satisfy `done`, failing after `within`.
async fn until(
    sink: &KafkaSink,
    within: Duration,
    what: &str,
    done: impl Fn(&DeliveryCounts) -> bool,
) -> DeliveryCounts {
    let deadline = Instant::now() + within;
    loop {
        let c = sink.counts();
        if done(&c) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not within {within:?}: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until nothing is in flight.
async fn settled(sink: &KafkaSink, within: Duration) -> DeliveryCounts {
    until(sink, within, "every record settled", |c| {
        c.in_flight_records == 0
    })
    .await
}

/// A message as read back: key, headers, payload, partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ReadBack {
    key: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    payload: Vec<u8>,
    partition: i32,
}

/// Reads the topic from the start until `n` messages arrived (failing after `within`), then
/// one more second to catch any extra (duplicate) message.
fn read_topic(brokers: &str, topic: &str, n: usize, within: Duration) -> Vec<ReadBack> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut extra_deadline: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if let Some(t) = extra_deadline {
            if now >= t {
                break;
            }
        } else if got.len() >= n {
            extra_deadline = Some(now + Duration::from_secs(1));
        } else if now >= deadline {
            panic!(
                "read {} of {n} messages from {topic} within {within:?}",
                got.len()
            );
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => panic!("consumer error: {e}"),
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                got.push(ReadBack {
                    key: m.key().unwrap_or_default().to_vec(),
                    headers,
                    payload: m.payload().unwrap_or_default().to_vec(),
                    partition: m.partition(),
                });
            }
        }
    }
    got
}

/// A message as compared: key, headers, payload.
type Message3 = (Vec<u8>, Vec<(String, Vec<u8>)>, Vec<u8>);

fn expected(r: &Record) -> Message3 {
    (
        r.key.to_vec(),
        r.headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
        r.payload.clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_read_back_equal_what_was_submitted() {
    let Some(brokers) = kafka_or_skip("records_read_back_equal_what_was_submitted") else {
        return;
    };
    let _broker = BROKER.lock().await;
    let topic = unique_topic("roundtrip");
    let mut config = KafkaSinkConfig::new(&brokers, &topic);
    config.compression = KafkaCompression::Zstd;
    let sink = KafkaSink::new(&config).expect("sink");

    // Binary payloads (every byte value), several records per key and several keys.
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let submissions = vec![
        (
            1u64,
            vec![
                record(0xA, "a:9100", b"a-first", 3),
                record(0xA, "a:9100", &all_bytes, 4),
            ],
        ),
        (2, vec![record(0xB, "b:9100", b"b-only", 5)]),
        (
            3,
            vec![
                record(0xC, "c:9100", b"c1", 1),
                record(0xC, "c:9100", b"c2", 1),
                record(0xA, "a:9100", b"a-third", 2),
            ],
        ),
    ];
    for (_, records) in &submissions {
        sink.submit(records.clone());
    }

    let c = settled(&sink, Duration::from_secs(60)).await;
    assert_eq!(
        (
            c.admitted_records,
            c.delivered_records,
            c.delivered_samples,
            c.failed_samples.total(),
            c.rejected_samples
        ),
        (6, 6, 16, 0, 0)
    );
    assert_eq!((c.in_flight_samples, c.in_flight_bytes), (0, 0));

    let sent: Vec<Record> = submissions
        .iter()
        .flat_map(|(_, rs)| rs.iter().cloned())
        .collect();
    let read = read_topic(&brokers, &topic, sent.len(), Duration::from_secs(60));
    assert_eq!(
        read.len(),
        sent.len(),
        "exactly the records sent, no duplicates: {read:?}"
    );
    let mut want: Vec<_> = sent.iter().map(expected).collect();
    let mut have: Vec<_> = read
        .iter()
        .map(|r| (r.key.clone(), r.headers.clone(), r.payload.clone()))
        .collect();
    want.sort();
    have.sort();
    assert_eq!(have, want);

    // One key, one partition, in submission order.
    for key in [0xAu64, 0xB, 0xC] {
        let key = key.to_be_bytes().to_vec();
        let of_key: Vec<&ReadBack> = read.iter().filter(|r| r.key == key).collect();
        assert!(
            of_key.windows(2).all(|w| w[0].partition == w[1].partition),
            "key {key:?} spread over partitions"
        );
        let order: Vec<&[u8]> = of_key.iter().map(|r| r.payload.as_slice()).collect();
        let sent_order: Vec<&[u8]> = sent
            .iter()
            .filter(|r| r.key.to_vec() == key)
            .map(|r| r.payload.as_slice())
            .collect();
        assert_eq!(order, sent_order, "key {key:?} out of order");
    }
}

/// A broker outage made with scripts/kafka.sh (SCRAPEPOOL_KAFKA_CTL): `begin` runs
/// `action` (pause, stop), dropping it runs `undo` (resume, restart), so that a failing test
/// does not leave the broker down.
struct Outage {
    ctl: String,
    dir: String,
    undo: &'static str,
}

impl Outage {
    /// The script and state dir from the environment, or `None` after printing why not.
    fn hook_or_skip(test: &str) -> Option<(String, String)> {
        match (
            std::env::var("SCRAPEPOOL_KAFKA_CTL"),
            std::env::var("SCRAPEPOOL_KAFKA_DIR"),
        ) {
            (Ok(ctl), Ok(dir)) => Some((ctl, dir)),
            _ => {
                if std::env::var("SCRAPEPOOL_REQUIRE_SERVICES").as_deref() == Ok("1") {
                    panic!("{test}: SCRAPEPOOL_KAFKA_CTL/SCRAPEPOOL_KAFKA_DIR not set");
                }
                println!("SKIPPED: {test}: SCRAPEPOOL_KAFKA_CTL/SCRAPEPOOL_KAFKA_DIR not set (scripts/services.sh sets them)");
                None
            }
        }
    }

    fn begin(ctl: &str, dir: &str, action: &str, undo: &'static str) -> Self {
        Self::run(ctl, action, dir);
        Self {
            ctl: ctl.to_string(),
            dir: dir.to_string(),
            undo,
        }
    }

    fn run(ctl: &str, action: &str, dir: &str) {
        let status = std::process::Command::new(ctl)
            .args([action, dir])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run SCRAPEPOOL_KAFKA_CTL");
        assert!(status.success(), "{ctl} {action} {dir} failed: {status}");
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        Self::run(&self.ctl, self.undo, &self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_broker_gets_everything_once_it_is_back() {
    let test = "a_paused_broker_gets_everything_once_it_is_back";
    let Some(brokers) = kafka_or_skip(test) else {
        return;
    };
    let Some((ctl, dir)) = Outage::hook_or_skip(test) else {
        return;
    };
    let _broker = BROKER.lock().await;
    let topic = unique_topic("paused");
    let sink = KafkaSink::new(&KafkaSinkConfig::new(&brokers, &topic)).expect("sink");

    // Connected, topic created, producer id assigned.
    sink.submit(vec![record(1, "x:1", b"before", 2)]);
    assert_eq!(
        settled(&sink, Duration::from_secs(60))
            .await
            .delivered_samples,
        2
    );

    let paused = Outage::begin(&ctl, &dir, "pause", "resume");
    sink.submit(vec![
        record(1, "x:1", b"during-1", 3),
        record(2, "y:1", b"during-2", 4),
    ]);
    // The broker cannot acknowledge anything: nothing may be reported delivered.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let c = sink.counts();
    assert_eq!(
        (
            c.delivered_samples,
            c.failed_samples.total(),
            c.in_flight_samples,
            c.in_flight_records
        ),
        (2, 0, 7, 2),
        "settled while the broker was stopped"
    );
    drop(paused); // resume

    let c = settled(&sink, Duration::from_secs(90)).await;
    assert_eq!(
        (
            c.delivered_samples,
            c.failed_samples.total(),
            c.in_flight_samples
        ),
        (9, 0, 0)
    );
    let read = read_topic(&brokers, &topic, 3, Duration::from_secs(60));
    let mut payloads: Vec<&[u8]> = read.iter().map(|r| r.payload.as_slice()).collect();
    payloads.sort();
    assert_eq!(
        payloads,
        vec![&b"before"[..], b"during-1", b"during-2"],
        "each record exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_broker_delivers_nothing_and_fails_after_the_message_timeout() {
    let mut config = KafkaSinkConfig::new(format!("127.0.0.1:{}", dead_port()), "nowhere");
    config.message_timeout_ms = 3_000;
    let sink = KafkaSink::new(&config).expect("sink");
    let started = Instant::now();
    sink.submit(vec![
        record(1, "x:1", b"one", 2),
        record(2, "y:1", b"two", 3),
    ]);

    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let c = sink.counts();
    assert_eq!(
        (
            c.delivered_samples,
            c.failed_samples.total(),
            c.in_flight_samples
        ),
        (0, 0, 5),
        "settled before the message timeout"
    );

    let c = settled(&sink, Duration::from_secs(30)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(2_500),
        "failed after {:?}, before the 3 s timeout",
        started.elapsed()
    );
    assert_eq!(
        (
            c.delivered_samples,
            c.failed_samples.get(FailReason::TimedOut),
            c.failed_samples.total(),
            c.failed_records,
            c.in_flight_samples
        ),
        (0, 5, 5, 2, 0),
        "both records timed out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_rejects_the_newest_submission_at_once() {
    let mut config = KafkaSinkConfig::new(format!("127.0.0.1:{}", dead_port()), "nowhere");
    config.message_timeout_ms = 2_000;
    config.queue_len_max = 2;
    let sink = KafkaSink::new(&config).expect("sink");

    sink.submit(vec![record(1, "x:1", b"a", 1), record(1, "x:1", b"b", 2)]);
    // The queue holds 2 records: the next submission is rejected at once, and counted.
    sink.submit(vec![record(2, "y:1", b"c", 4)]);
    let c = sink.counts();
    assert_eq!(
        (
            c.rejected_samples,
            c.in_flight_samples,
            c.failed_samples.total(),
            c.not_delivered_samples()
        ),
        (4, 3, 0, 4)
    );

    // The older records keep their place and settle by their own timeout.
    let c = settled(&sink, Duration::from_secs(30)).await;
    assert_eq!(c.failed_samples.get(FailReason::TimedOut), 3);
    // Room again: a new submission is queued, not rejected.
    sink.submit(vec![record(3, "z:1", b"d", 5)]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = sink.counts();
    assert_eq!(
        (
            c.rejected_samples,
            c.failed_samples.total(),
            c.in_flight_samples,
            c.emitted_samples()
        ),
        (4, 3, 5, 12)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_broker_gets_everything_submitted_while_it_was_down() {
    let test = "a_restarted_broker_gets_everything_submitted_while_it_was_down";
    let Some(brokers) = kafka_or_skip(test) else {
        return;
    };
    let Some((ctl, dir)) = Outage::hook_or_skip(test) else {
        return;
    };
    let _broker = BROKER.lock().await;
    let topic = unique_topic("restarted");
    let sink = KafkaSink::new(&KafkaSinkConfig::new(&brokers, &topic)).expect("sink");

    sink.submit(vec![record(1, "x:1", b"before", 2)]);
    assert_eq!(
        settled(&sink, Duration::from_secs(60))
            .await
            .delivered_samples,
        2
    );

    // A real shutdown: the process is gone and the port refuses connections.
    let down = Outage::begin(&ctl, &dir, "stop", "restart");
    sink.submit(vec![record(1, "x:1", b"down-1", 3)]);
    sink.submit(vec![record(2, "y:1", b"down-2", 4)]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c = sink.counts();
    assert_eq!(
        (
            c.delivered_samples,
            c.failed_samples.total(),
            c.in_flight_samples
        ),
        (2, 0, 7),
        "settled while the broker was down"
    );
    drop(down); // restart: same ports, same data

    let c = settled(&sink, Duration::from_secs(120)).await;
    assert_eq!((c.delivered_samples, c.failed_samples.total()), (9, 0));
    let read = read_topic(&brokers, &topic, 3, Duration::from_secs(60));
    let mut payloads: Vec<&[u8]> = read.iter().map(|r| r.payload.as_slice()).collect();
    payloads.sort();
    assert_eq!(
        payloads,
        vec![&b"before"[..], b"down-1", b"down-2"],
        "each record exactly once"
    );
}
