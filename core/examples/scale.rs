//! The cost of scale, in time and heap: ownership of 100k targets over 100 members (a full
//! computation, and the update after one join and after one leave), a node's memory per target
//! it owns and per target another member owns (100k targets over 10 members), the cost of a
//! rebalance on one join or leave (a node with 100k targets, 100 ↔ 101 members), and a
//! target's series cache per series.
//!
//! Run: `cargo run --release -p scrapepool-core --example scale`.
//!
//! Heap is counted by a global allocator that wraps the system one (live bytes and the peak
//! since a reset); times are the thread's CPU time (/proc/thread-self/schedstat), so that the
//! shared, loaded build machine inflates them less than wall time would. Each measurement is
//! repeated and the minimum reported.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use scrapepool_core::member::{JobsSnapshot, MemberRecord, MemberState, MembersSnapshot};
use scrapepool_core::node::ScrapeTask;
use scrapepool_core::ring::{key_hash, Ownership, Ring};
use scrapepool_core::scrape::FetchOutcome;
use scrapepool_core::{Command, Event, Node, NodeConfig, Timestamp};

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let live = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                    - layout.size();
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn reset_peak() -> usize {
    let l = live();
    PEAK.store(l, Ordering::Relaxed);
    l
}

fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// This thread's CPU time so far.
fn thread_cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("/proc/thread-self/schedstat");
    Duration::from_nanos(
        s.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("schedstat's first field"),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(b: usize) -> f64 {
    b as f64 / (1 << 20) as f64
}

const RUNS: usize = 7;

fn member(id: &str) -> MemberRecord {
    MemberRecord {
        id: id.into(),
        state: MemberState::Active,
        version: "bench".into(),
        web: "127.0.0.1:0".into(),
        started_at: "1970-01-01T00:00:00Z".into(),
    }
}

fn members(version: i64, n: usize) -> Event {
    Event::MembersChanged(MembersSnapshot {
        version,
        members: (0..n).map(|i| member(&format!("scraper-{i}"))).collect(),
        ..Default::default()
    })
}

fn static_job(targets: usize) -> String {
    let mut y = String::from("job_name: scale\nscrape_interval: 10s\nscrape_timeout: 5s\nstatic_configs:\n  - targets:\n");
    for i in 0..targets {
        y.push_str(&format!(
            "      - '10.{}.{}.{}:9100'\n",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
    }
    y
}

/// A node that is `scraper-0` in a pool of `n_members`, with one job of `targets` static targets.
/// Returns the node, how many targets it owns, and the scrapes it asked for (other commands
/// are dropped).
fn node_with(targets_yaml: &str, n_members: usize) -> (Node, usize, Vec<ScrapeTask>) {
    node_with_id(targets_yaml, n_members, "scraper-0")
}

/// [`node_with`] for a node with another id (one that is not among the members owns nothing).
fn node_with_id(targets_yaml: &str, n_members: usize, id: &str) -> (Node, usize, Vec<ScrapeTask>) {
    let mut node = Node::new(NodeConfig::for_tests(id), Timestamp(0));
    node.handle(Timestamp(0), Event::SessionConnected);
    node.handle(Timestamp(1), members(1, n_members));
    node.handle(
        Timestamp(2),
        Event::JobsChanged(JobsSnapshot {
            version: 1,
            jobs: vec![("scale".into(), targets_yaml.to_string())],
            ..Default::default()
        }),
    );
    let tasks = drain(&mut node, Timestamp(2));
    let owned = node.scraped_counts().0;
    (node, owned, tasks)
}

/// Carries out the node's commands as a driver whose sink drops every record; returns the
/// scrapes it asked for.
fn drain(node: &mut Node, now: Timestamp) -> Vec<ScrapeTask> {
    let _ = now;
    let mut tasks = Vec::new();
    while let Some(c) = node.poll_command() {
        if let Command::Scrape(t) = c {
            tasks.push(t);
        }
    }
    tasks
}

fn ownership() {
    let hashes: Vec<u64> = (0..100_000u64)
        .map(|i| key_hash(format!("job\0instance-{i}:9100").as_bytes()))
        .collect();
    let ids: Vec<String> = (0..100)
        .map(|i| format!("scraper-{i}.pool.example:8080"))
        .collect();
    for r in [1usize, 3] {
        let mut best = Duration::MAX;
        let (mut retained, mut peak_extra) = (0, 0);
        for _ in 0..RUNS {
            let base = reset_peak();
            let t0 = thread_cpu();
            let ring = Ring::new(ids.iter().map(String::as_str), r);
            let assignment = ring.assign(&hashes);
            best = best.min(thread_cpu() - t0);
            retained = live() - base;
            peak_extra = peak() - base;
            drop(assignment);
            drop(ring);
        }
        println!(
            "ownership 100k targets x 100 members R={r}: {:.1} ms CPU (min of {RUNS}); ring + assignment retain {:.2} MiB ({:.1} B/target), peak {:.2} MiB",
            ms(best),
            mib(retained),
            retained as f64 / 1e5,
            mib(peak_extra)
        );
    }
}

/// Heap of a node per target, 100k static targets over 10 members: a node that is not a member
/// holds only targets others own; a member holds its tenth as owner.
/// [`Ownership`] at 100k targets x 100 members: the update after one join (100 → 101) and
/// after one leave (101 → 100), against the full computation of the same owners.
fn ownership_incremental() {
    let hashes: Vec<u64> = (0..100_000u64)
        .map(|i| key_hash(format!("job\0instance-{i}:9100").as_bytes()))
        .collect();
    let ids: Vec<String> = (0..101)
        .map(|i| format!("scraper-{i}.pool.example:8080"))
        .collect();
    for r in [1usize, 3] {
        let ring = Ring::new(ids[..100].iter().map(String::as_str), r);
        let mut ownership = Ownership::new(&ring, &hashes);
        let (mut join, mut leave) = (Duration::ZERO, Duration::ZERO);
        let (mut joined, mut left) = (0, 0);
        // The thread's CPU clock advances in scheduler ticks, longer than one update: the
        // figure is the mean over many updates.
        const BATCH: u32 = 40;
        for _ in 0..RUNS {
            let (mut j, mut l) = (Duration::ZERO, Duration::ZERO);
            for _ in 0..BATCH {
                let t0 = thread_cpu();
                joined = ownership.join(&ids[100]).len();
                let t1 = thread_cpu();
                left = ownership.leave(&ids[100]).len();
                l += thread_cpu() - t1;
                j += t1 - t0;
            }
            join += j;
            leave += l;
        }
        // The mean over every update (see `rebalance`).
        let (join, leave) = (join / (BATCH * RUNS as u32), leave / (BATCH * RUNS as u32));
        let full = ring.assign(&hashes);
        assert!((0..hashes.len()).all(|i| ownership.owners(i).eq(full.owners(i))));
        println!(
            "ownership 100k targets x 100 members R={r}, Ownership update: one join {:.3} ms CPU ({joined} targets change), one leave {:.3} ms CPU ({left} change) (mean of {} each)",
            ms(join),
            ms(leave),
            BATCH * RUNS as u32
        );
    }
}

fn memory_pool() {
    const TARGETS: usize = 100_000;
    let yaml = static_job(TARGETS);
    let base = reset_peak();
    let (node, owned, tasks) = node_with_id(&yaml, 10, "observer");
    assert_eq!(owned, 0, "a non-member owns nothing");
    drop(tasks);
    let others = live() - base;
    drop(node);
    let base = reset_peak();
    let (node, owned, tasks) = node_with(&yaml, 10);
    drop(tasks);
    let member = live() - base;
    drop(node);
    let per_other = others as f64 / TARGETS as f64;
    // An owned target costs what any target costs plus what owning it adds.
    let per_owned = (member as f64 - per_other * (TARGETS - owned) as f64) / owned as f64;
    println!(
        "node with 100k static targets over 10 members: {per_other:.0} B per target another member owns (non-member node: heap {:.2} MiB); {per_owned:.0} B per owned target before a scrape ({owned} owned, heap {:.2} MiB)",
        mib(others),
        mib(member)
    );
}

fn memory_per_target() {
    let yaml = static_job(10_000);
    let mut scratch = scrapepool_core::scrape::Scratch::default();
    let base = reset_peak();
    let (node, owned, tasks) = node_with(&yaml, 1);
    drop(tasks);
    let grown = live() - base;
    println!(
        "node with 10k static targets, all owned ({owned}): heap {:.2} MiB = {:.0} B per owned target (before any scrape; peak while loading {:.2} MiB)",
        mib(grown),
        grown as f64 / owned as f64,
        mib(peak() - base)
    );
    drop(node);

    // After one scrape of each target (a 3-series body): the series caches come in.
    let base = reset_peak();
    let (mut node, owned, mut tasks) = node_with(&yaml, 1);
    let body = "# TYPE a gauge\na 1\nb{x=\"y\"} 2\nc_total 3\n";
    let mut now = Timestamp(2);
    let mut scraped = 0;
    let mut done = std::collections::BTreeSet::new();
    while done.len() < owned {
        if tasks.is_empty() {
            let Some((wake, _)) = node.poll_timeout() else {
                break;
            };
            now = now.max(wake);
            node.handle(now, Event::Tick);
            tasks = drain(&mut node, now);
        }
        for t in std::mem::take(&mut tasks) {
            done.insert(t.target.clone());
            let fetch = FetchOutcome::Body {
                body: body.as_bytes().to_vec(),
                content_type: Some("text/plain; version=0.0.4".into()),
            };
            let completed = t.complete(&mut scratch, Duration::from_millis(1), &fetch);
            node.handle(now, completed.event);
            scraped += 1;
            tasks.extend(drain(&mut node, now));
        }
    }
    let grown = live() - base;
    println!(
        "  after one scrape of each ({scraped} scrapes, 3 series + 5 synthetic each): heap {:.2} MiB = {:.0} B per owned target",
        mib(grown),
        grown as f64 / owned as f64
    );
    drop(node);
}

fn rebalance() {
    let yaml = static_job(10_000);
    // The mean, not the minimum: one rebalance can be shorter than a tick of the thread's CPU
    // clock, and the mean of many tick-quantized readings is not biased the way their
    // minimum is. Each timed join is undone by an untimed leave.
    const ROUNDS: u32 = 50;
    let (mut node, _, tasks) = node_with(&yaml, 10);
    drop(tasks);
    let before = node.scraped_counts();
    let mut total = Duration::ZERO;
    let (mut after, mut peak_extra) = ((0, 0), 0);
    for round in 0..ROUNDS as i64 {
        let base = reset_peak();
        let t0 = thread_cpu();
        node.handle(Timestamp(3), members(2 + 2 * round, 11));
        let more = drain(&mut node, Timestamp(3));
        total += thread_cpu() - t0;
        if round == 0 {
            peak_extra = peak() - base;
            after = node.scraped_counts();
        }
        drop(more);
        node.handle(Timestamp(3), members(3 + 2 * round, 10));
        drop(drain(&mut node, Timestamp(3)));
    }
    println!(
        "rebalance on one join, 10k targets, 10 -> 11 members, Node::handle(MembersChanged) + its commands: {:.3} ms CPU (mean of {ROUNDS}); (owned, handing off) {before:?} -> {after:?}; peak extra heap {:.2} MiB",
        ms(total / ROUNDS),
        mib(peak_extra)
    );
}

/// A node with 100k targets in a pool of 100 members: `Node::handle(MembersChanged)` and its
/// commands on one join (100 → 101) and one leave (101 → 100), alternated on one node.
fn rebalance_100k() {
    let yaml = static_job(100_000);
    let (mut node, _, tasks) = node_with(&yaml, 100);
    drop(tasks);
    // The mean of many (see `rebalance`).
    const ROUNDS: u32 = 20;
    let (mut join, mut leave) = (Duration::ZERO, Duration::ZERO);
    let mut counts = Vec::new();
    let mut version = 2;
    for _ in 0..ROUNDS {
        for (n, total) in [(101, &mut join), (100, &mut leave)] {
            let t0 = thread_cpu();
            node.handle(Timestamp(3), members(version, n));
            let more = drain(&mut node, Timestamp(3));
            *total += thread_cpu() - t0;
            version += 1;
            drop(more);
            counts.push(node.scraped_counts());
        }
    }
    println!(
        "rebalance, node with 100k targets, Node::handle(MembersChanged) + its commands: one join 100 -> 101 members {:.3} ms CPU, one leave 101 -> 100 {:.3} ms CPU (mean of {ROUNDS} each); (owned, handing off) after each: {:?}",
        ms(join / ROUNDS),
        ms(leave / ROUNDS),
        &counts[..2]
    );
}

fn series_cache() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/exposition/");
    for fixture in ["node_exporter-1.5.0.prom", "synthetic-heavy.prom"] {
        let body = std::fs::read(format!("{root}{fixture}")).expect("fixture");
        let (mut node, _, tasks) = node_with(&static_job(1), 1);
        let mut task = tasks.into_iter().next();
        while task.is_none() {
            let (wake, _) = node.poll_timeout().expect("a scrape is due");
            node.handle(wake, Event::Tick);
            task = drain(&mut node, wake).into_iter().next();
        }
        let mut task = task.expect("scrape");
        let spec = task.spec.clone();
        let mut cache = std::mem::take(&mut task.cache);
        let mut scratch = scrapepool_core::scrape::Scratch::default();
        let base = reset_peak();
        let fetch = FetchOutcome::Body {
            body: body.clone(),
            content_type: Some("text/plain; version=0.0.4".into()),
        };
        let (report, records) = scrapepool_core::scrape::process_and_encode(
            &spec,
            &mut cache,
            &mut scrapepool_core::scrape::Scratch::default(), // dropped: `retained` is the cache alone
            Timestamp(1_000),
            Duration::from_millis(1),
            &fetch,
        );
        let peak_first = peak() - base;
        drop(records);
        let retained = live() - base;
        let series = cache.len();
        // A steady-state scrape: CPU per sample.
        let mut best = Duration::MAX;
        // Batches of scrapes: the thread's CPU clock advances in scheduler ticks.
        const BATCH: usize = 50;
        for i in 0..RUNS {
            let t0 = thread_cpu();
            for j in 0..BATCH {
                let at = Timestamp(2_000 + (i * BATCH + j) as i64 * 1000);
                let (_, records) = scrapepool_core::scrape::process_and_encode(
                    &spec,
                    &mut cache,
                    &mut scratch,
                    at,
                    Duration::from_millis(1),
                    &fetch,
                );
                drop(records);
            }
            best = best.min((thread_cpu() - t0) / BATCH as u32);
        }
        println!(
            "series cache, {fixture}: {series} series retain {:.2} MiB = {:.0} B/series (peak during the first scrape {:.2} MiB); steady scrape process+encode {:.2} ms CPU = {:.0} ns/sample (samples {})",
            mib(retained),
            retained as f64 / series as f64,
            mib(peak_first),
            ms(best),
            best.as_nanos() as f64 / report.samples_scraped as f64,
            report.samples_scraped
        );
    }
}

fn main() {
    ownership();
    ownership_incremental();
    memory_pool();
    memory_per_target();
    rebalance();
    rebalance_100k();
    series_cache();
}
