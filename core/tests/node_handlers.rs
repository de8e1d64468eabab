//! Handler tests: each feeds events to a `Node` and asserts the exact commands it produces.

use std::time::Duration;

use scrapepool_core::member::{JobsSnapshot, MemberRecord, MemberState, MembersSnapshot};
use scrapepool_core::node::{RebalanceCause, Role, ScrapeTask, Wake};
use scrapepool_core::scrape::{FetchOutcome, ScrapeError};
use scrapepool_core::{Command, Event, Node, NodeConfig, Timestamp};

const T0: i64 = 1_700_000_000_000;

fn member(id: &str, state: MemberState) -> MemberRecord {
    MemberRecord {
        id: id.into(),
        state,
        version: "test".into(),
        web: "127.0.0.1:0".into(),
        started_at: "1970-01-01T00:00:00Z".into(),
    }
}

fn members(version: i64, ids: &[(&str, MemberState)]) -> Event {
    Event::MembersChanged(MembersSnapshot {
        version,
        members: ids.iter().map(|(id, s)| member(id, *s)).collect(),
        ..Default::default()
    })
}

/// A members snapshot whose records changed at the given times (ms after T0).
fn members_at(version: i64, ids: &[(&str, MemberState, i64)]) -> Event {
    Event::MembersChanged(MembersSnapshot {
        version,
        changed_at: Timestamp(T0 + ids.iter().map(|m| m.2).max().unwrap_or(0)),
        members: ids.iter().map(|(id, s, _)| member(id, *s)).collect(),
        changed: ids
            .iter()
            .map(|(id, _, at)| (id.to_string(), Timestamp(T0 + at)))
            .collect(),
        ..Default::default()
    })
}

/// The handoff slot (ms after T0) of a target with key hash `hash` and a 10 s interval for a
/// change at `change_ms`: its first slot at or after the change plus the default margin.
fn handoff_slot(hash: u64, change_ms: i64) -> i64 {
    let interval = Duration::from_secs(10);
    scrapepool_core::schedule::next_at(
        Timestamp(T0 + change_ms) + scrapepool_core::node::HANDOFF_MARGIN,
        interval,
        scrapepool_core::schedule::offset(hash, 0, interval),
    )
    .0 - T0
}

fn jobs(version: i64, jobs: &[(&str, &str)]) -> Event {
    Event::JobsChanged(JobsSnapshot {
        version,
        jobs: jobs
            .iter()
            .map(|(n, y)| (n.to_string(), y.to_string()))
            .collect(),
        ..Default::default()
    })
}

fn static_job(name: &str, interval: &str, targets: &[&str]) -> String {
    let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    format!("job_name: {name}\nscrape_interval: {interval}\nscrape_timeout: 1s\nstatic_configs:\n  - targets: [{}]\n", list.join(", "))
}

const BODY: &str = "# TYPE a gauge\na 1\nb{x=\"y\"} 2\n";

/// A test harness: a node plus the commands it produced, scrapes answered at once.
struct Harness {
    node: Node,
    now: Timestamp,
    log: Vec<String>,
    /// Scrapes not yet answered (when `auto_answer` is off).
    pending: Vec<ScrapeTask>,
    auto_answer: Option<FetchOutcome>,
    /// Each `Emit` command's payloads, with when it came (ms after T0).
    emitted: Vec<(i64, Vec<String>)>,
}

impl Harness {
    fn new(id: &str) -> Harness {
        Harness::with_config(NodeConfig::for_tests(id))
    }

    fn with_config(config: NodeConfig) -> Harness {
        Harness {
            node: Node::new(config, Timestamp(T0)),
            now: Timestamp(T0),
            log: Vec::new(),
            pending: Vec::new(),
            auto_answer: Some(FetchOutcome::Body {
                body: BODY.as_bytes().to_vec(),
                content_type: Some("text/plain; version=0.0.4".into()),
            }),
            emitted: Vec::new(),
        }
    }

    /// Feeds `event` now and returns the commands it produced, rendered.
    fn feed(&mut self, event: Event) -> Vec<String> {
        self.node.handle(self.now, event);
        self.drain()
    }

    fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(c) = self.node.poll_command() {
            out.push(render(&c));
            if let Command::Emit(records) = &c {
                let payloads = records
                    .iter()
                    .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
                    .collect();
                self.emitted.push((self.now.0 - T0, payloads));
            }
            if let Command::Scrape(task) = c {
                match self.auto_answer.clone() {
                    Some(fetch) => {
                        let completed = task.complete(
                            &mut Default::default(),
                            Duration::from_millis(5),
                            &fetch,
                        );
                        // What the driver hands to the sink from the worker, logged as such.
                        out.push(format!("sink {} samples", samples(&completed.records)));
                        self.node.handle(self.now, completed.event);
                    }
                    None => self.pending.push(task),
                }
            }
        }
        self.log.extend(out.iter().cloned());
        out
    }

    /// Advances time to `until` (ms after T0), ticking at every timeout on the way.
    fn run_until(&mut self, until_ms: i64) -> Vec<String> {
        let until = Timestamp(T0 + until_ms);
        let mut out = Vec::new();
        while let Some((at, _)) = self.node.poll_timeout() {
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            self.node.handle(self.now, Event::Tick);
            out.extend(self.drain());
        }
        self.now = until;
        out
    }

    fn up(&mut self, id: &str) -> Vec<String> {
        let mut out = self.feed(Event::SessionConnected);
        out.extend(self.feed(members(1, &[(id, MemberState::Active)])));
        out
    }
}

/// A compact, exact rendering of a command.
fn render(c: &Command) -> String {
    match c {
        Command::Register(r) => format!("register {} {:?}", r.id, r.state),
        Command::UpdateMember(r) => format!("update {} {:?}", r.id, r.state),
        Command::Deregister => "deregister".into(),
        Command::StartDiscovery { provider, .. } => format!(
            "start-discovery {}#{} gen{}",
            provider.job, provider.index, provider.generation
        ),
        Command::StopDiscovery { provider } => format!(
            "stop-discovery {}#{} gen{}",
            provider.job, provider.index, provider.generation
        ),
        Command::Scrape(t) => format!(
            "scrape {} @{}",
            t.spec.target_labels.get("instance").unwrap_or("?"),
            t.scheduled_at.0 - T0
        ),
        Command::Emit(records) => format!("emit {} samples", samples(records)),
        Command::Exit => "exit".into(),
    }
}

fn samples(records: &[scrapepool_core::encode::Record]) -> usize {
    records.iter().map(|r| r.samples).sum()
}

/// The first lines of a log, for assertion messages.
fn short(log: &[String]) -> &[String] {
    &log[..log.len().min(20)]
}

fn scrapes_of(log: &[String], instance: &str) -> Vec<i64> {
    log.iter()
        .filter_map(|l| l.strip_prefix(&format!("scrape {instance} @")))
        .map(|t| t.parse().unwrap())
        .collect()
}

#[test]
fn registers_once_per_session() {
    let mut h = Harness::new("a");
    assert_eq!(h.feed(Event::SessionConnected), vec!["register a Active"]);
    assert_eq!(h.feed(Event::SessionDisconnected), Vec::<String>::new());
    // Same session back: the ephemeral record still exists.
    assert_eq!(h.feed(Event::SessionConnected), Vec::<String>::new());
    assert_eq!(h.feed(Event::SessionExpired), Vec::<String>::new());
    assert_eq!(h.feed(Event::SessionConnected), vec!["register a Active"]);
}

#[test]
fn owned_target_is_scraped_every_interval_at_a_fixed_phase() {
    let mut h = Harness::new("a");
    h.up("a");
    assert_eq!(
        h.feed(jobs(1, &[("j", &static_job("j", "10s", &["h:1"]))])),
        Vec::<String>::new()
    );
    let log = h.run_until(35_000);
    let at = scrapes_of(&log, "h:1");
    assert_eq!(
        at.len(),
        3 + usize::from(at[0] < 5_000),
        "one scrape per interval: {:?}",
        short(&log)
    );
    assert!(at[0] >= 0 && at[0] < 10_000);
    for w in at.windows(2) {
        assert_eq!(w[1] - w[0], 10_000, "fixed phase");
    }
    // The phase is the same on the wall clock whoever owns it: (T0 + at) mod interval.
    let phase = (T0 + at[0]).rem_euclid(10_000);
    assert_eq!(phase, (T0 + at[1]).rem_euclid(10_000));
}

#[test]
fn every_scrape_is_emitted() {
    let mut h = Harness::new("a");
    h.up("a");
    h.feed(jobs(1, &[("j", &static_job("j", "10s", &["h:1"]))]));
    let log = h.run_until(10_000);
    let i = log
        .iter()
        .position(|l| l.starts_with("scrape h:1"))
        .expect("scraped");
    // The body's two samples plus the five synthetic series, from the worker to the sink.
    assert_eq!(log[i + 1], "sink 7 samples", "{:?}", short(&log));
}

#[test]
fn targets_are_split_between_members_and_moved_ones_handed_off() {
    let targets: Vec<String> = (0..40).map(|i| format!("h:{i}")).collect();
    let refs: Vec<&str> = targets.iter().map(String::as_str).collect();
    let job = static_job("j", "10s", &refs);
    let mut h = Harness::new("a");
    h.up("a");
    h.feed(jobs(1, &[("j", &job)]));
    h.run_until(10_000);
    assert_eq!(h.node.scraped_counts(), (40, 0));
    // b joins at 10 s: some targets move to b, each at its handoff slot H (its first slot
    // at or after the join's ZooKeeper time plus the margin); we scrape every slot before H.
    let joined_at = 10_000;
    h.feed(members_at(
        2,
        &[
            ("a", MemberState::Active, 0),
            ("b", MemberState::Active, joined_at),
        ],
    ));
    let (owned, handing_off) = h.node.scraped_counts();
    assert!(
        owned > 5 && handing_off > 5 && owned + handing_off == 40,
        "{owned} {handing_off}"
    );
    let moved: Vec<(String, u64)> = h
        .node
        .scraped_targets()
        .filter(|(_, _, r)| matches!(r, Role::HandingOff { .. }))
        .map(|(k, _, _)| k.clone())
        .map(|k| {
            let inst = h
                .node
                .job_targets("j")
                .into_iter()
                .find(|t| t.target.key == k)
                .unwrap()
                .target
                .labels
                .get("instance")
                .unwrap()
                .to_string();
            (inst, k.hash())
        })
        .collect();
    let log = h.run_until(joined_at + 30_000);
    for (inst, hash) in &moved {
        let slot = handoff_slot(*hash, joined_at);
        let at = scrapes_of(&h.log, inst);
        assert_eq!(
            at.last(),
            Some(&(slot - 10_000)),
            "{inst}: the last scrape is the slot before H = {slot}: {at:?}"
        );
    }
    assert_eq!(h.node.scraped_counts(), (owned, 0));
    // Moving is not ending: no staleness markers for moved targets, only scrapes' records.
    let emits: Vec<&String> = log.iter().filter(|l| l.starts_with("emit")).collect();
    assert_eq!(emits, Vec::<&String>::new());
    let sunk: Vec<&String> = log.iter().filter(|l| l.starts_with("sink")).collect();
    assert!(
        !sunk.is_empty() && sunk.iter().all(|e| *e == "sink 7 samples"),
        "{sunk:?}"
    );
}

fn json_harness() -> Harness {
    Harness::with_config(NodeConfig {
        encoding: scrapepool_core::encode::Encoding::Json,
        ..NodeConfig::for_tests("a")
    })
}

/// `scrapepool_core::format::rfc3339_ms` of `ms` after T0, as the JSON records write it.
fn json_time(ms: i64) -> String {
    format!(
        "\"timestamp\":\"{}\"",
        scrapepool_core::format::rfc3339_ms(T0 + ms)
    )
}

#[test]
fn target_removed_from_discovery_gets_staleness_markers() {
    let mut h = json_harness();
    h.up("a");
    h.feed(jobs(1, &[("j", &static_job("j", "10s", &["h:1", "h:2"]))]));
    let log = h.run_until(20_000);
    let next = scrapes_of(&log, "h:2").last().expect("scraped") + 10_000;
    let out = h.feed(jobs(2, &[("j", &static_job("j", "10s", &["h:1"]))]));
    assert_eq!(out, Vec::<String>::new(), "nothing is written at once");
    assert_eq!(h.node.scraped_counts(), (1, 0));
    // Prometheus's end-of-run staleness: markers at the time of the next scrape, written
    // one interval and a tenth after it (the target may come back meanwhile).
    h.emitted.clear();
    h.run_until(next + 11_000 - 1);
    assert_eq!(h.emitted, Vec::<(i64, Vec<String>)>::new());
    h.run_until(next + 11_000);
    let [(at, payloads)] = &h.emitted[..] else {
        panic!("one emit: {:?}", h.emitted)
    };
    assert_eq!(*at, next + 11_000);
    // Every series of h:2 ends: its two scraped series and its five synthetic series.
    assert_eq!(payloads.len(), 7, "{payloads:?}");
    for p in payloads {
        assert!(p.contains("\"instance\":\"h:2\""), "{p}");
        assert!(p.contains(&json_time(next)), "{p} at {next}");
        assert!(p.contains("\"value\":\"NaN\""), "{p}");
    }
}

#[test]
fn a_target_back_before_its_end_of_run_markers_gets_none_and_keeps_its_series() {
    let mut h = json_harness();
    h.up("a");
    let both = static_job("j", "10s", &["h:1", "h:2"]);
    h.feed(jobs(1, &[("j", &both)]));
    let log = h.run_until(20_000);
    let next = scrapes_of(&log, "h:2").last().expect("scraped") + 10_000;
    h.feed(jobs(2, &[("j", &static_job("j", "10s", &["h:1"]))]));
    h.run_until(next + 5_000);
    h.feed(jobs(3, &[("j", &both)]));
    h.emitted.clear();
    let log = h.run_until(next + 60_000);
    assert!(
        scrapes_of(&log, "h:2").len() >= 4,
        "scraped again: {:?}",
        short(&log)
    );
    assert_eq!(
        h.emitted,
        Vec::<(i64, Vec<String>)>::new(),
        "no markers for a target that came back"
    );
    // Its series memory came back with it: a series gone since its last scrape still ends.
    h.auto_answer = Some(FetchOutcome::Body {
        body: b"a 1\n".to_vec(),
        content_type: Some("text/plain; version=0.0.4".into()),
    });
    let log = h.run_until(next + 70_000);
    assert!(
        log.iter().any(|l| l == "sink 7 samples"),
        "h:2's scrape: a, a marker for b, five synthetic: {log:?}"
    );
}

#[test]
fn a_target_back_on_another_member_before_its_markers_gets_none_from_us() {
    let mut h = json_harness();
    h.up("a");
    let targets: Vec<String> = (1..=20).map(|i| format!("h:{i}")).collect();
    let refs: Vec<&str> = targets.iter().map(String::as_str).collect();
    h.feed(jobs(1, &[("j", &static_job("j", "10s", &refs))]));
    h.run_until(20_000);
    // Every target leaves; b joins; they all come back, about half of them now b's.
    h.feed(jobs(2, &[("j", &static_job("j", "10s", &[]))]));
    h.feed(members(
        2,
        &[("a", MemberState::Active), ("b", MemberState::Active)],
    ));
    h.feed(jobs(3, &[("j", &static_job("j", "10s", &refs))]));
    let (ours, _) = h.node.scraped_counts();
    assert!(ours > 0 && ours < 20, "{ours}");
    h.emitted.clear();
    h.run_until(80_000);
    assert_eq!(h.emitted, Vec::<(i64, Vec<String>)>::new());
}

#[test]
fn invalid_job_keeps_last_valid_version_and_spares_the_others() {
    let mut h = Harness::new("a");
    h.up("a");
    h.feed(jobs(
        1,
        &[
            ("j", &static_job("j", "10s", &["h:1"])),
            ("k", &static_job("k", "10s", &["h:9"])),
        ],
    ));
    let out = h.feed(jobs(
        2,
        &[
            ("j", "job_name: j\nscrape_interval: banana\n"),
            ("k", &static_job("k", "10s", &["h:9", "h:10"])),
        ],
    ));
    assert_eq!(out, Vec::<String>::new());
    let views: Vec<_> = h
        .node
        .jobs()
        .map(|j| (j.name.to_string(), j.errors.len(), j.targets.active.len()))
        .collect();
    assert_eq!(views[0].0, "j");
    assert!(views[0].1 >= 1, "the error is visible");
    assert_eq!(views[0].2, 1, "j keeps its last valid version");
    assert_eq!(views[1], ("k".to_string(), 0, 2), "k moved on");
    assert_eq!(h.node.scraped_counts(), (3, 0));
    assert_eq!(h.node.stats().job_config_errors, 1);
}

#[test]
fn older_snapshots_are_ignored() {
    let mut h = Harness::new("a");
    h.up("a");
    h.feed(jobs(5, &[("j", &static_job("j", "10s", &["h:1"]))]));
    assert_eq!(h.feed(jobs(4, &[])), Vec::<String>::new());
    assert_eq!(h.node.scraped_counts(), (1, 0));
    h.feed(members(0, &[]));
    assert_eq!(h.node.scraped_counts(), (1, 0));
    assert_eq!(h.node.stats().stale_snapshots, 2);
}

#[test]
fn expired_session_stops_at_once_and_registers_again() {
    let mut h = Harness::new("a");
    h.up("a");
    h.feed(members(
        2,
        &[("a", MemberState::Active), ("b", MemberState::Active)],
    ));
    let targets: Vec<String> = (0..20).map(|i| format!("h:{i}")).collect();
    let refs: Vec<&str> = targets.iter().map(String::as_str).collect();
    h.feed(jobs(1, &[("j", &static_job("j", "10s", &refs))]));
    let (owned, _) = h.node.scraped_counts();
    assert!(owned > 0);
    assert_eq!(h.feed(Event::SessionExpired), Vec::<String>::new());
    // b took everything over when our record went (no old owner to agree with): we stop at
    // once.
    assert_eq!(
        h.node.scraped_counts(),
        (0, 0),
        "no old targets kept after expiry"
    );
    assert_eq!(scrapes_of(&h.run_until(20_000), "h:1"), Vec::<i64>::new());
    assert_eq!(h.feed(Event::SessionConnected), vec!["register a Active"]);
    h.feed(members(
        3,
        &[("a", MemberState::Active), ("b", MemberState::Active)],
    ));
    assert_eq!(h.node.scraped_counts(), (owned, 0));
}

#[test]
fn disconnection_changes_nothing() {
    let mut h = Harness::new("a");
    h.up("a");
    h.feed(jobs(1, &[("j", &static_job("j", "10s", &["h:1"]))]));
    h.feed(Event::SessionDisconnected);
    let log = h.run_until(60_000);
    assert_eq!(scrapes_of(&log, "h:1").len(), 6);
}

#[test]
fn shutdown_drains_then_leaves() {
    let mut h = Harness::new("a");
    h.up("a");
    h.feed(jobs(1, &[("j", &static_job("j", "10s", &["h:1"]))]));
    h.run_until(10_000);
    let hash = key_of(&h, "h:1").hash();
    assert_eq!(h.feed(Event::ShutdownRequested), vec!["update a Draining"]);
    assert_eq!(h.node.scraped_counts(), (0, 1));
    // ZooKeeper shows our draining record (changed at 10 s) a moment later: h:1 changes hands
    // at its handoff slot, the drain ends there.
    h.now = Timestamp(T0 + 10_050);
    h.feed(members_at(2, &[("a", MemberState::Draining, 10_000)]));
    let slot = handoff_slot(hash, 10_000);
    assert_eq!(
        h.node.poll_timeout().map(|(at, _)| at.0 - T0),
        Some(slot - 10_000),
        "the slot before H is still ours"
    );
    let log = h.run_until(40_000);
    assert_eq!(
        scrapes_of(&h.log, "h:1").last(),
        Some(&(slot - 10_000)),
        "the last scrape is the slot before H: {:?}",
        short(&log)
    );
    assert_eq!(&log[log.len() - 2..], ["deregister", "exit"]);
    assert_eq!(h.node.poll_timeout(), None);
    assert_eq!(
        h.feed(Event::Tick),
        Vec::<String>::new(),
        "an exited node does nothing"
    );
}

#[test]
fn a_drain_waits_for_its_last_scrape_and_delivers_it() {
    let mut h = Harness::new("a");
    h.auto_answer = None;
    h.up("a");
    h.feed(jobs(1, &[("j", &static_job("j", "10s", &["h:1"]))]));
    h.run_until(10_000);
    let hash = key_of(&h, "h:1").hash();
    assert_eq!(h.pending.len(), 1, "one scrape is out");
    assert_eq!(h.feed(Event::ShutdownRequested), vec!["update a Draining"]);
    h.feed(members_at(2, &[("a", MemberState::Draining, 10_000)]));
    // The drain ends at the handoff slot with the scrape still out: no exit yet.
    let slot = handoff_slot(hash, 10_000);
    let log = h.run_until(slot + 500);
    assert!(
        !log.iter().any(|c| c == "exit"),
        "exited with a scrape out: {log:?}"
    );
    let (at, wake) = h
        .node
        .poll_timeout()
        .expect("a deadline for the scrape still out");
    assert_eq!(wake, Wake::DrainEnd);
    assert_eq!(
        at,
        Timestamp(T0 + slot + 1_000 + 1_000),
        "its timeout (1 s), plus a second"
    );
    // It comes back: its records go to the sink (from the worker), then the node leaves.
    let task = h.pending.pop().unwrap();
    let completed = task.complete(
        &mut Default::default(),
        Duration::from_millis(3),
        &FetchOutcome::Body {
            body: BODY.as_bytes().to_vec(),
            content_type: Some("text/plain; version=0.0.4".into()),
        },
    );
    assert!(
        samples(&completed.records) > 5,
        "the scraped samples are delivered"
    );
    assert_eq!(h.feed(completed.event), vec!["deregister", "exit"]);
    assert_eq!(h.node.poll_timeout(), None);
}

#[test]
fn a_drain_gives_up_a_scrape_that_never_returns_after_its_timeout() {
    let mut h = Harness::new("a");
    h.auto_answer = None;
    h.up("a");
    h.feed(jobs(1, &[("j", &static_job("j", "10s", &["h:1"]))]));
    h.run_until(10_000);
    let hash = key_of(&h, "h:1").hash();
    h.feed(Event::ShutdownRequested);
    h.feed(members_at(2, &[("a", MemberState::Draining, 10_000)]));
    let deadline = handoff_slot(hash, 10_000) + 2_000;
    assert!(!h.run_until(deadline - 1).iter().any(|c| c == "exit"));
    assert_eq!(h.run_until(deadline), vec!["deregister", "exit"]);
    let task = h.pending.pop().unwrap();
    let error = ScrapeError::Timeout {
        url: task.spec.url.clone(),
    };
    let completed = task.complete(
        &mut Default::default(),
        Duration::ZERO,
        &FetchOutcome::Failed { error },
    );
    assert_eq!(
        h.feed(completed.event),
        Vec::<String>::new(),
        "an answer after the exit changes nothing"
    );
}

#[test]
fn a_draining_member_owns_nothing() {
    let mut h = Harness::new("a");
    h.up("a");
    h.feed(jobs(
        1,
        &[("j", &static_job("j", "10s", &["h:1", "h:2", "h:3"]))],
    ));
    h.feed(members(
        2,
        &[("a", MemberState::Active), ("b", MemberState::Draining)],
    ));
    assert_eq!(h.node.scraped_counts(), (3, 0));
    assert_eq!(h.node.ring().members().collect::<Vec<_>>(), vec!["a"]);
}

#[test]
fn a_scrape_in_flight_is_never_doubled() {
    let mut h = Harness::new("a");
    h.auto_answer = None;
    h.up("a");
    h.feed(jobs(1, &[("j", &static_job("j", "10s", &["h:1"]))]));
    let log = h.run_until(35_000);
    assert_eq!(
        scrapes_of(&log, "h:1").len(),
        1,
        "the first never came back: {:?}",
        short(&log)
    );
    assert!(h.node.stats().scrapes_skipped >= 2);
    let task = h.pending.pop().unwrap();
    let fetch = FetchOutcome::Failed {
        error: ScrapeError::Timeout {
            url: task.spec.url.clone(),
        },
    };
    let completed = task.complete(&mut Default::default(), Duration::from_millis(3), &fetch);
    assert_eq!(
        samples(&completed.records),
        5,
        "a failed scrape still reports its synthetic series"
    );
    assert_eq!(h.feed(completed.event), Vec::<String>::new());
    assert_eq!(h.node.stats().scrapes_failed, 1);
}

#[test]
fn discovery_providers_follow_job_edits() {
    let mut h = Harness::new("a");
    h.up("a");
    let dns = |name: &str| {
        format!("job_name: d\nscrape_interval: 10s\nscrape_timeout: 1s\ndns_sd_configs:\n  - names: ['{name}']\n    type: A\n    port: 9100\n")
    };
    assert_eq!(
        h.feed(jobs(1, &[("d", &dns("x.test"))])),
        vec!["start-discovery d#0 gen1"]
    );
    // Same discovery config, other fields changed: the provider keeps running.
    let edited = dns("x.test").replace("10s", "20s");
    assert_eq!(h.feed(jobs(2, &[("d", &edited)])), Vec::<String>::new());
    assert_eq!(
        h.feed(jobs(3, &[("d", &dns("y.test"))])),
        vec!["stop-discovery d#0 gen1", "start-discovery d#0 gen2"]
    );
    assert_eq!(h.feed(jobs(4, &[])), vec!["stop-discovery d#0 gen2"]);
}

#[test]
fn discovery_results_become_targets_and_errors_keep_the_last_good_ones() {
    use scrapepool_core::config::TargetGroup;
    use scrapepool_core::labels::Labels;
    use scrapepool_core::node::ProviderId;
    let mut h = Harness::new("a");
    h.up("a");
    h.feed(jobs(1, &[("d", "job_name: d\nscrape_interval: 10s\nscrape_timeout: 1s\nfile_sd_configs:\n  - files: ['/x.json']\n")]));
    let provider = ProviderId {
        job: "d".into(),
        index: 0,
        generation: 1,
    };
    let group = |addrs: &[&str]| TargetGroup {
        targets: addrs
            .iter()
            .map(|a| Labels::from_pairs([("__address__", *a)]))
            .collect(),
        labels: Labels::new(),
        source: "/x.json:0".into(),
    };
    h.feed(Event::DiscoveryUpdated {
        provider: provider.clone(),
        result: Ok(vec![group(&["h:1", "h:2"])]),
    });
    assert_eq!(h.node.scraped_counts(), (2, 0));
    h.feed(Event::DiscoveryUpdated {
        provider: provider.clone(),
        result: Err("file /x.json: line 3: bad".into()),
    });
    assert_eq!(h.node.scraped_counts(), (2, 0));
    assert_eq!(
        h.node.jobs().next().unwrap().discovery_errors,
        vec!["file /x.json: line 3: bad"]
    );
    // A late answer from an earlier generation is ignored.
    h.feed(Event::DiscoveryUpdated {
        provider: ProviderId {
            generation: 0,
            ..provider.clone()
        },
        result: Ok(vec![]),
    });
    assert_eq!(h.node.scraped_counts(), (2, 0));
    h.feed(Event::DiscoveryUpdated {
        provider,
        result: Ok(vec![group(&["h:1"])]),
    });
    assert_eq!(h.node.scraped_counts(), (1, 0));
}

/// The same recorded events fed to two fresh nodes give identical command logs.
#[test]
fn same_events_same_commands() {
    fn run() -> Vec<String> {
        let targets: Vec<String> = (0..50).map(|i| format!("10.0.0.{i}:9100")).collect();
        let refs: Vec<&str> = targets.iter().map(String::as_str).collect();
        let mut h = Harness::new("b");
        h.up("b");
        h.feed(jobs(
            1,
            &[
                ("j", &static_job("j", "15s", &refs)),
                ("k", &static_job("k", "7s", &refs[..10])),
            ],
        ));
        h.run_until(20_000);
        h.feed(members(
            2,
            &[
                ("a", MemberState::Active),
                ("b", MemberState::Active),
                ("c", MemberState::Active),
            ],
        ));
        h.run_until(40_000);
        h.feed(members(
            3,
            &[("b", MemberState::Active), ("c", MemberState::Draining)],
        ));
        h.run_until(60_000);
        h.feed(Event::ShutdownRequested);
        h.run_until(120_000);
        h.log
    }
    let (a, b) = (run(), run());
    assert!(a.len() > 100, "a meaningful log: {}", a.len());
    assert_eq!(a, b);
}

#[test]
fn a_new_session_takes_its_snapshots_whatever_their_versions() {
    let mut h = Harness::new("a");
    h.up("a");
    h.feed(jobs(50, &[("j", &static_job("j", "10s", &["h:1"]))]));
    h.feed(members(
        60,
        &[("a", MemberState::Active), ("b", MemberState::Active)],
    ));
    h.feed(Event::SessionExpired);
    h.feed(Event::SessionConnected);
    // A re-created ensemble numbers from scratch: the new session's view still counts.
    h.feed(members(2, &[("a", MemberState::Active)]));
    h.feed(jobs(3, &[("j", &static_job("j", "10s", &["h:1", "h:2"]))]));
    assert_eq!(h.node.scraped_counts().0, 2);
    assert_eq!(h.node.stats().stale_snapshots, 0);
}

/// The key of the target with `instance` among those the node scrapes.
fn key_of(h: &Harness, instance: &str) -> scrapepool_core::targets::TargetKey {
    h.node
        .scraped_targets()
        .map(|(k, job, _)| (k.clone(), job.to_string()))
        .find(|(k, job)| {
            h.node
                .job_targets(job)
                .iter()
                .any(|t| &t.target.key == k && t.target.labels.get("instance") == Some(instance))
        })
        .map(|(k, _)| k)
        .unwrap_or_else(|| panic!("{instance} is not scraped"))
}

#[test]
fn poll_timeout_says_which_scrape_is_next() {
    let mut h = Harness::new("a");
    h.up("a");
    assert_eq!(
        h.node.poll_timeout(),
        None,
        "nothing to scrape, nothing to wait for"
    );
    h.feed(jobs(1, &[("j", &static_job("j", "10s", &["h:1"]))]));
    let key = key_of(&h, "h:1");
    let (at, wake) = h.node.poll_timeout().expect("a scrape is due");
    assert_eq!(wake, Wake::Scrape(key.clone()));
    assert!(
        at > h.now && at <= h.now + Duration::from_secs(10),
        "{at:?}"
    );
    // Woken then, it scrapes that target and wants the same one an interval later.
    h.now = at;
    assert_eq!(
        h.feed(Event::Tick),
        vec![
            format!("scrape h:1 @{}", at.0 - T0),
            "sink 7 samples".into()
        ]
    );
    assert_eq!(
        h.node.poll_timeout(),
        Some((at + Duration::from_secs(10), Wake::Scrape(key)))
    );
}

#[test]
fn poll_timeout_says_when_a_handoff_ends() {
    let mut h = Harness::new("a");
    h.up("a");
    h.feed(jobs(1, &[("j", &static_job("j", "10s", &["h:1"]))]));
    let key = key_of(&h, "h:1");
    // b, which beats us for h:1, joins at 1 s: we hand h:1 over at its slot.
    let b = ["b", "c", "d", "e", "f", "g"]
        .into_iter()
        .find(|b| scrapepool_core::ring::Ring::new(["a", *b], 1).owners(key.hash())[0] == *b)
        .unwrap();
    h.run_until(1_000);
    h.feed(members_at(
        2,
        &[
            ("a", MemberState::Active, 0),
            (b, MemberState::Active, 1_000),
        ],
    ));
    let slot = Timestamp(T0 + handoff_slot(key.hash(), 1_000));
    let (at, wake) = h.node.poll_timeout().unwrap();
    if at < slot {
        assert_eq!(wake, Wake::Scrape(key.clone()), "scrapes before H");
        h.run_until(at.0 - T0);
    }
    assert_eq!(
        h.node.poll_timeout(),
        Some((slot, Wake::HandoffEnd(key.clone())))
    );
    assert_eq!(
        h.run_until(slot.0 - T0),
        Vec::<String>::new(),
        "no scrape at H, and a move writes no markers"
    );
    assert_eq!(h.node.scraped_counts(), (0, 0));
    assert_eq!(h.node.poll_timeout(), None);
}

#[test]
fn poll_timeout_says_when_the_drain_ends() {
    let mut config = NodeConfig::for_tests("a");
    config.drain_grace = Some(Duration::from_secs(5));
    let mut h = Harness::with_config(config);
    h.up("a");
    assert_eq!(h.feed(Event::ShutdownRequested), vec!["update a Draining"]);
    assert_eq!(
        h.node.poll_timeout(),
        Some((h.now + Duration::from_secs(5), Wake::DrainEnd))
    );
    assert_eq!(h.run_until(5_000), vec!["deregister", "exit"]);
    assert_eq!(h.node.poll_timeout(), None);
}

#[test]
fn each_rebalance_names_its_cause() {
    let mut h = Harness::new("a");
    h.up("a");
    let targets: Vec<String> = (0..12).map(|i| format!("h:{i}")).collect();
    let refs: Vec<&str> = targets.iter().map(String::as_str).collect();
    h.feed(jobs(1, &[("j", &static_job("j", "10s", &refs))]));
    h.feed(members(
        2,
        &[
            ("a", MemberState::Active),
            ("b", MemberState::Active),
            ("c", MemberState::Active),
        ],
    ));
    h.feed(Event::SessionExpired);
    h.feed(Event::SessionConnected);
    h.feed(members(3, &[("a", MemberState::Active)]));
    h.feed(Event::ShutdownRequested);
    let causes: Vec<RebalanceCause> = h.node.rebalances().map(|r| r.cause).collect();
    assert_eq!(
        causes,
        vec![
            RebalanceCause::Jobs,
            RebalanceCause::Members,
            RebalanceCause::Session,
            RebalanceCause::Members,
            RebalanceCause::Drain
        ]
    );
    assert_eq!(RebalanceCause::Session.to_string(), "session");
}
