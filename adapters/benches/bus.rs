//! The bus side of one member: how many samples per second the real [`KafkaSink`] publishes
//! to one local broker, what each costs in CPU, and whose CPU is the limit. Not run in CI.
//!
//! Run (the broker of `scripts/services.sh`):
//! `source /work/main/.services/env && cargo bench -p scrapepool-adapters --bench bus`, or,
//! reusing the release build, `cargo build --release -p scrapepool-adapters --bench bus` and
//! run `target/release/deps/bus-<hash> --bench` (`BUS_SECONDS`, default 20, sets how long it produces; `BUS_COMPRESSION` one of none,
//! gzip, snappy, lz4, zstd).
//!
//! The records are realistic: one node_exporter scrape (`testdata/exposition/
//! node_exporter-1.5.0.prom`, 507 samples + 5 synthetic) processed and encoded by
//! `scrape::process_and_encode` as remote-write, for 1000 targets (their own keys and
//! `instance` headers), at successive timestamps. They are encoded before the clock starts,
//! so what is measured is the sink alone: the ledger, librdkafka and the broker. The bench
//! submits as fast as the ledger admits (a rejected submission waits 1 ms and is tried
//! again), then waits until every record is acknowledged. CPU comes from `/proc`: this
//! process's utime + stime, per thread (the submitting thread, librdkafka's threads), and the
//! broker's (its pid from `$SCRAPEPOOL_KAFKA_DIR/pid`, when readable).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use scrapepool_adapters::kafka::{KafkaCompression, KafkaSink, KafkaSinkConfig};
use scrapepool_adapters::ports::Sink;
use scrapepool_core::encode::Record;
use scrapepool_core::member::{JobsSnapshot, MemberRecord, MemberState, MembersSnapshot};
use scrapepool_core::scrape::{FetchOutcome, Scratch};
use scrapepool_core::{Command, Event, Node, NodeConfig, Timestamp};

const TARGETS: usize = 1000;

/// Clock ticks per second of `/proc/*/stat` times.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a `/proc/.../stat` file, in ticks, with the thread or process name.
fn cpu_ticks(stat: &str) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(stat).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text[open + 1..close].to_string();
    let fields: Vec<&str> = text[close + 2..].split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15 (1-based, man 5 proc).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// Ticks per thread name of this process (threads of one name summed).
fn threads() -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = entry.expect("task entry").path().join("stat");
        if let Some((name, ticks)) = cpu_ticks(&path.to_string_lossy()) {
            *out.entry(name).or_default() += ticks;
        }
    }
    out
}

fn member(id: &str) -> MemberRecord {
    MemberRecord {
        id: id.into(),
        state: MemberState::Active,
        version: "bench".into(),
        web: "127.0.0.1:0".into(),
        started_at: "1970-01-01T00:00:00Z".into(),
    }
}

/// The records of one scrape of each of `TARGETS` node_exporter targets, through a node's
/// own scrape tasks (so the spec is exactly what the daemon would use).
fn records() -> (Vec<Vec<Record>>, u64) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/exposition/");
    let body = std::fs::read(format!("{root}node_exporter-1.5.0.prom")).expect("fixture");
    let mut yaml = String::from(
        "job_name: node\nscrape_interval: 10s\nscrape_timeout: 5s\nstatic_configs:\n  - targets:\n",
    );
    for i in 0..TARGETS {
        yaml.push_str(&format!("      - 'node-{i}.example:9100'\n"));
    }
    let mut node = Node::new(NodeConfig::for_tests("bench-0"), Timestamp(0));
    node.handle(Timestamp(0), Event::SessionConnected);
    node.handle(
        Timestamp(1),
        Event::MembersChanged(MembersSnapshot {
            version: 1,
            members: vec![member("bench-0")],
            ..Default::default()
        }),
    );
    node.handle(
        Timestamp(2),
        Event::JobsChanged(JobsSnapshot {
            version: 1,
            jobs: vec![("node".into(), yaml)],
            ..Default::default()
        }),
    );
    let mut tasks = Vec::new();
    let mut now = Timestamp(2);
    while tasks.len() < TARGETS {
        while let Some(c) = node.poll_command() {
            if let Command::Scrape(t) = c {
                tasks.push(t);
            }
        }
        if tasks.len() < TARGETS {
            let (wake, _) = node.poll_timeout().expect("scrapes are due");
            now = now.max(wake);
            node.handle(now, Event::Tick);
        }
    }
    let fetch = FetchOutcome::Body {
        body,
        content_type: Some("text/plain; version=0.0.4".into()),
    };
    let mut scratch = Scratch::default();
    let mut samples = 0;
    let out = tasks
        .into_iter()
        .map(|t| {
            let done = t.complete(&mut scratch, Duration::from_millis(3), &fetch);
            samples += done.records.iter().map(|r| r.samples as u64).sum::<u64>();
            done.records
        })
        .collect();
    (out, samples)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument other than ours means "not this one".
    if std::env::args()
        .skip(1)
        .any(|a| a != "--bench" && a != "bus")
    {
        return;
    }
    let Ok(brokers) = std::env::var("SCRAPEPOOL_KAFKA") else {
        eprintln!("bus bench: SCRAPEPOOL_KAFKA is not set (source /work/main/.services/env)");
        std::process::exit(2);
    };
    let seconds: u64 = std::env::var("BUS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let compression = match std::env::var("BUS_COMPRESSION") {
        Ok(c) => c
            .parse::<KafkaCompression>()
            .unwrap_or_else(|e| panic!("BUS_COMPRESSION: {e}")),
        Err(_) => KafkaCompression::default(),
    };
    let (scrapes, samples_per_round) = records();
    let bytes_per_round: usize = scrapes.iter().flatten().map(|r| r.payload.len()).sum();
    let records_per_round: usize = scrapes.iter().map(Vec::len).sum();
    println!(
        "records: {TARGETS} node_exporter scrapes = {records_per_round} records, {samples_per_round} samples, {:.1} MiB of remote-write payload ({:.1} B/sample), compression {compression:?}",
        bytes_per_round as f64 / (1 << 20) as f64,
        bytes_per_round as f64 / samples_per_round as f64
    );
    let topic = format!(
        "bus-bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let mut config = KafkaSinkConfig::new(brokers, topic.clone());
    config.compression = compression;
    let sink = KafkaSink::new(&config).expect("Kafka sink");

    // Warm-up: the topic is created on first use and the producer connects.
    sink.submit(scrapes[0].clone());
    let warm = Instant::now();
    while sink.counts().in_flight_records > 0 {
        assert!(
            warm.elapsed() < Duration::from_secs(60),
            "the broker never acknowledged"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(sink.counts().failed_records, 0, "warm-up record failed");

    let broker_pid = std::env::var("SCRAPEPOOL_KAFKA_DIR")
        .ok()
        .and_then(|d| std::fs::read_to_string(format!("{d}/pid")).ok())
        .and_then(|p| p.trim().parse::<u32>().ok());
    let broker_stat = broker_pid.map(|p| format!("/proc/{p}/stat"));
    let broker0 = broker_stat.as_deref().and_then(cpu_ticks).map(|(_, t)| t);
    let threads0 = threads();
    let base = sink.counts();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let (mut submitted, mut waits) = (0u64, 0u64);
    'produce: loop {
        for batch in &scrapes {
            if Instant::now() >= deadline {
                break 'produce;
            }
            loop {
                let before = sink.counts().rejected_samples;
                sink.submit(batch.clone());
                if sink.counts().rejected_samples == before {
                    break;
                }
                waits += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            submitted += batch.iter().map(|r| r.samples as u64).sum::<u64>();
        }
    }
    let produce_wall = start.elapsed();
    while sink.counts().in_flight_records > 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = start.elapsed();
    let end = sink.counts();
    let threads1 = threads();
    let broker1 = broker_stat.as_deref().and_then(cpu_ticks).map(|(_, t)| t);
    let hz = ticks_per_second();
    let delivered = end.delivered_samples - base.delivered_samples;
    let failed = end.failed_records - base.failed_records;
    assert_eq!(
        delivered, submitted,
        "every admitted sample is acknowledged"
    );
    assert_eq!(failed, 0, "no record failed");
    let per_thread: Vec<(String, f64)> = threads1
        .iter()
        .map(|(name, t)| {
            (
                name.clone(),
                (t - threads0.get(name).copied().unwrap_or(0)) as f64 / hz,
            )
        })
        .filter(|(_, s)| *s > 0.0)
        .collect();
    let process_cpu: f64 = per_thread.iter().map(|(_, s)| s).sum();
    let million = delivered as f64 / 1e6;
    println!(
        "delivered {delivered} samples in {:.1} s ({:.1} s producing, {waits} waits on a full ledger): {:.2} M samples/s; {:.1} MiB/s of payload",
        wall.as_secs_f64(),
        produce_wall.as_secs_f64(),
        million / wall.as_secs_f64(),
        (delivered as f64 / samples_per_round as f64) * bytes_per_round as f64
            / (1 << 20) as f64
            / wall.as_secs_f64()
    );
    println!(
        "producer process: {process_cpu:.2} CPU-s = {:.3} CPU-s per million samples ({:.0}% of one core)",
        process_cpu / million,
        100.0 * process_cpu / wall.as_secs_f64()
    );
    for (name, s) in &per_thread {
        println!(
            "  thread {name}: {s:.2} CPU-s ({:.0}% of one core)",
            100.0 * s / wall.as_secs_f64()
        );
    }
    match (broker0, broker1) {
        (Some(a), Some(b)) => {
            let s = (b - a) as f64 / hz;
            println!(
                "broker (pid {}): {s:.2} CPU-s = {:.3} CPU-s per million samples ({:.0}% of one core)",
                broker_pid.unwrap_or(0),
                s / million,
                100.0 * s / wall.as_secs_f64()
            );
        }
        _ => println!("broker CPU: not readable (no $SCRAPEPOOL_KAFKA_DIR/pid)"),
    }
    println!("topic {topic}");
}
