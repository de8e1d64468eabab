//! The rebalancing interpreter: sequences of [`Operation`]s driven through a small cluster
//! of [`Node`]s, checked after every step against the ownership invariants
//! (ARCHITECTURE.md, "Ownership and hashing").
//!
//! One interpreter serves the `rebalance` fuzz target ([`fuzz_rebalance`]), the proptest
//! (`core/tests/rebalance_props.rs`) and the stable corpus run (`core/tests/fuzz_bodies.rs`).
//!
//! The harness plays every part of the outside world the way the driver and ZooKeeper would:
//! a coordinator holding member records and job texts, each change bumping a snapshot
//! version and delivered as a full snapshot to every *connected* node (a node whose session
//! expired loses its record, so it drops out of the others' snapshots); discovery results
//! delivered to every node that runs a provider for the job (discovery does not depend on
//! the session); scrapes answered with `task.complete(..)`; deliveries acknowledged.
//!
//! Checked after every step, panicking with the scenario's history when broken:
//! - a node never has two scrapes in flight for one target;
//! - a draining node, and a node whose session expired, owns nothing;
//! - a node owns only targets of its own view of the jobs (modelled independently here: the
//!   last valid text of each job it was sent, the static targets and the discovered ones);
//! - no node emits staleness markers for a target that only moved: a marker outside a scrape's
//!   own output is allowed only for a target that left the node's view (now, or since the
//!   scrape that carried it was started);
//! - once every node is connected and has seen the latest snapshots (and they agree on the
//!   targets), every target is owned (`Role::Owner`) by exactly `min(R, active members)`
//!   nodes, the ones a [`Ring`] built here from the coordinator's active records names, each
//!   at its rank;
//! - after [`Operation::Settle`] (every session back, time advanced past every grace), the
//!   cluster is in that agreed state and no node is still handing a target off.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};

use crate::config::{load_job, TargetGroup};
use crate::encode::{Encoding, Record};
use crate::labels::Labels;
use crate::member::{JobsSnapshot, MemberRecord, MemberState, MembersSnapshot};
use crate::node::{Command, Event, Node, NodeConfig, ProviderId, Role, ScrapeTask, SessionState};
use crate::ring::Ring;
use crate::scrape::{FetchOutcome, ScrapeError};
use crate::targets::resolve;
use crate::time::Timestamp;

/// Member slots of the model cluster (`m0` … `m4`).
pub const MEMBERS_MAX: usize = 5;
/// Job names of the model (`j0` … `j2`).
pub const JOBS_MAX: usize = 3;
/// Operations of one scenario beyond which the rest of the input is ignored.
pub const OPERATIONS_MAX: usize = 48;
/// Longest `Tick`, in milliseconds: long enough for handoffs to end (with the settle's
/// advance), short enough that one input stays cheap (every timer firing is a step).
pub const TICK_MS_MAX: u64 = 10_000;
/// Scrape intervals a job may have, in seconds.
pub const INTERVALS_S: [u64; 4] = [1, 2, 5, 15];
/// Longest handoff margin a scenario may set, in milliseconds.
pub const HANDOFF_MARGIN_MS_MAX: u64 = 20_000;
/// Timer firings of one `Tick` beyond which the timers are deemed not to advance.
const FIRINGS_PER_TICK_MAX: usize = 200_000;
const T0: i64 = 1_700_000_000_000;
const BODY: &str = "# TYPE a gauge\na 1\nb{x=\"y\"} 2\n";

/// A job's text, as the operations write it.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct JobSpec {
    /// Index into [`INTERVALS_S`] (modulo).
    pub interval: u8,
    /// Static targets: bit `i` is `h{i}:9100`.
    pub static_hosts: u8,
    /// Whether the job has a `file_sd_configs` entry (fed by `AddTargets`/`RemoveTargets`).
    pub file_sd: bool,
    /// A `team` label on the static group (part of the target key: changing it moves keys).
    pub team: u8,
    /// The other metrics path (part of the scrape URL, hence of the key).
    pub other_path: bool,
}

impl JobSpec {
    fn yaml(&self, name: &str) -> String {
        let interval = INTERVALS_S[self.interval as usize % INTERVALS_S.len()];
        let mut y = format!("job_name: {name}\nscrape_interval: {interval}s\nscrape_timeout: 1s\n");
        if self.other_path {
            y.push_str("metrics_path: /other\n");
        }
        if self.static_hosts != 0 {
            let hosts: Vec<String> = (0..8)
                .filter(|i| self.static_hosts & (1 << i) != 0)
                .map(|i| format!("'h{i}:9100'"))
                .collect();
            let _ = write!(
                y,
                "static_configs:\n  - targets: [{}]\n    labels: {{team: t{}}}\n",
                hosts.join(", "),
                self.team % 3
            );
        }
        if self.file_sd {
            let _ = writeln!(y, "file_sd_configs:\n  - files: ['/sd/{name}.json']");
        }
        y
    }
}

/// One thing that happens to the cluster.
#[derive(Arbitrary, Clone, Debug)]
pub enum Operation {
    /// A member (slot modulo [`MEMBERS_MAX`]) starts, connects and registers; a no-op if it runs.
    Join(u8),
    /// A member dies: its record goes, its scrapes are never answered.
    Leave(u8),
    /// A member is asked to shut down (SIGTERM): it drains and leaves.
    Drain(u8),
    /// A job (modulo [`JOBS_MAX`]) is created; a no-op if it exists.
    AddJob(u8, JobSpec),
    /// A job's text is replaced; a no-op if it does not exist.
    EditJob(u8, JobSpec),
    /// A job's text is replaced by invalid YAML: nodes keep its last valid version.
    BreakJob(u8),
    /// A job is deleted.
    RemoveJob(u8),
    /// Discovery of a job finds more targets: bit `i` is `h{8+i}:9100`.
    AddTargets(u8, u8),
    /// Discovery of a job loses targets.
    RemoveTargets(u8, u8),
    /// A discovery round of a job fails (the last good result stays).
    DiscoveryFailed(u8),
    /// A member's session loses its connection (not expired).
    SessionLost(u8),
    /// A member's session expires: its record is deleted.
    SessionExpired(u8),
    /// A member's session is (re)connected; it re-registers if it must and reads snapshots.
    SessionConnected(u8),
    /// Time passes (milliseconds, modulo [`TICK_MS_MAX`] + 1); every node is ticked at each
    /// of its timeouts on the way.
    Tick(u16),
    /// A pending scrape of a member (index modulo its pending ones) returns, up or failed.
    ScrapeFinished(u8, u8, bool),
    /// Every pending scrape returns.
    AnswerAll(bool),
    /// Every session back, every scrape answered, time past every grace: then full check.
    Settle,
}

/// A whole scenario: the cluster's settings and its operations.
#[derive(Arbitrary, Clone, Debug)]
pub struct Scenario {
    /// Replication factor, `1 + r % 3`.
    pub replication: u8,
    /// Handoff margin: `None` (the default) or milliseconds modulo [`HANDOFF_MARGIN_MS_MAX`].
    pub handoff_margin_ms: Option<u16>,
    /// The operations, in order (at most [`OPERATIONS_MAX`] are run).
    pub operations: Vec<Operation>,
}

/// What a run did, for tests that must know their inputs exercised something.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Operations run.
    pub steps: usize,
    /// Steps after which the full ownership check applied (the cluster agreed).
    pub agreed_steps: usize,
    /// Most targets owned at an agreed step.
    pub targets_max: usize,
    /// Most active members at an agreed step.
    pub active_max: usize,
    /// Scrapes answered.
    pub scrapes_answered: usize,
    /// Staleness markers seen outside scrape output (all for targets that left).
    pub removal_markers: usize,
    /// Targets that changed owner set between agreed steps.
    pub moves: usize,
}

/// The body of the `rebalance` fuzz target: decodes a [`Scenario`] and runs it. Inputs that
/// do not decode are ignored (libFuzzer keeps exploring from the ones that do).
pub fn fuzz_rebalance(data: &[u8]) -> Outcome {
    match decode(data) {
        Some(scenario) => run_scenario(&scenario),
        None => Outcome::default(),
    }
}

/// A scenario from fuzz bytes: the settings, then operations until the bytes run out (a
/// derived `Vec` would read a length first and stop after a handful of operations).
pub fn decode(data: &[u8]) -> Option<Scenario> {
    let mut u = Unstructured::new(data);
    let replication = u8::arbitrary(&mut u).ok()?;
    let handoff_margin_ms = Option::<u16>::arbitrary(&mut u).ok()?;
    let mut operations = Vec::new();
    while !u.is_empty() && operations.len() < OPERATIONS_MAX {
        match Operation::arbitrary(&mut u) {
            Ok(op) => operations.push(op),
            Err(_) => break,
        }
    }
    Some(Scenario {
        replication,
        handoff_margin_ms,
        operations,
    })
}

/// Runs a scenario (then a final [`Operation::Settle`]), checking the invariants after every step.
pub fn run_scenario(scenario: &Scenario) -> Outcome {
    let mut cluster = Cluster::new(
        1 + scenario.replication as usize % 3,
        scenario
            .handoff_margin_ms
            .map(|ms| Duration::from_millis(ms as u64 % HANDOFF_MARGIN_MS_MAX))
            .unwrap_or(crate::node::HANDOFF_MARGIN),
    );
    for op in scenario
        .operations
        .iter()
        .take(OPERATIONS_MAX)
        .chain(std::iter::once(&Operation::Settle))
    {
        cluster.history.push(format!("{op:?}"));
        cluster.apply(op);
        cluster.check_step();
        cluster.outcome.steps += 1;
    }
    cluster.outcome
}

/// A scrape handed out and not answered yet.
struct Pending {
    task: ScrapeTask,
    /// How often its target had left the node's view when the scrape started.
    removals_at_start: u64,
}

/// One running member: the node and what the harness knows of it.
struct Member {
    id: String,
    node: Node,
    /// Whether the session is connected (as the harness told the node).
    connected: bool,
    members_seen: i64,
    jobs_seen: i64,
    pending: Vec<Pending>,
    /// Job → its discovery provider as the node last started it.
    providers: BTreeMap<String, ProviderId>,
    /// Job → the last valid text the node was sent (None: never a valid one).
    valid_jobs: BTreeMap<String, Option<String>>,
    /// Key hash of every target in the node's view of the jobs.
    view: BTreeSet<u64>,
    /// Key hash → how often it left the node's view.
    removals: BTreeMap<u64, u64>,
    exited: bool,
}

/// The context of a node's command drain: whether it answers a scrape.
#[derive(Clone, Default)]
struct Answering {
    /// Whether the drain follows a scrape's return (the scrape's own records, and their
    /// markers, went to the sink from the worker; they are not the node's commands).
    answers_scrape: bool,
    target_hash: u64,
    removals_at_start: u64,
}

struct Cluster {
    now: Timestamp,
    replication: usize,
    handoff_margin: Duration,
    slots: Vec<Option<Member>>,
    records: BTreeMap<String, MemberRecord>,
    /// The coordinator's time of each record's last change (ZooKeeper's `mtime`).
    record_times: BTreeMap<String, Timestamp>,
    members_version: i64,
    jobs: BTreeMap<String, String>,
    jobs_version: i64,
    /// Job → discovered hosts (bit `i`: `h{8+i}`).
    discovered: BTreeMap<String, u8>,
    /// Job text → whether it loads (a cache: loading YAML is the slow part of a run).
    validity: BTreeMap<String, bool>,
    /// (job text, discovered hosts) → key hashes of its targets (a cache, as `validity`).
    resolved: BTreeMap<(String, u8), Vec<u64>>,
    /// Owners of every target at the last agreed step.
    last_owners: BTreeMap<u64, Vec<String>>,
    history: Vec<String>,
    outcome: Outcome,
}

fn discovered_groups(job: &str, hosts: u8) -> Vec<TargetGroup> {
    let targets: Vec<Labels> = (0..8)
        .filter(|i| hosts & (1 << i) != 0)
        .map(|i| Labels::from_pairs([("__address__", format!("h{}:9100", 8 + i))]))
        .collect();
    vec![TargetGroup {
        targets,
        labels: Labels::new(),
        source: format!("/sd/{job}.json"),
    }]
}

/// Whether a JSON-encoded record is a staleness marker (the scrapes here never return NaN).
fn is_marker(record: &Record) -> bool {
    let v: serde_json::Value =
        serde_json::from_slice(&record.payload).expect("a JSON record is JSON");
    let value = v["value"]
        .as_str()
        .expect("a JSON record has a string value");
    value
        .parse::<f64>()
        .map(f64::is_nan)
        .unwrap_or(value.eq_ignore_ascii_case("nan"))
}

impl Cluster {
    fn new(replication: usize, handoff_margin: Duration) -> Cluster {
        Cluster {
            now: Timestamp(T0),
            replication,
            handoff_margin,
            slots: (0..MEMBERS_MAX).map(|_| None).collect(),
            records: BTreeMap::new(),
            record_times: BTreeMap::new(),
            members_version: 0,
            jobs: BTreeMap::new(),
            jobs_version: 0,
            discovered: BTreeMap::new(),
            validity: BTreeMap::new(),
            resolved: BTreeMap::new(),
            last_owners: BTreeMap::new(),
            history: Vec::new(),
            outcome: Outcome::default(),
        }
    }

    fn fail(&self, what: String) -> ! {
        panic!("rebalance invariant broken: {what}\n--- operations (replication {}, handoff margin {:?}) ---\n{}", self.replication, self.handoff_margin, self.history.join("\n"));
    }

    fn live(&self, slot: usize) -> bool {
        self.slots[slot].as_ref().is_some_and(|m| !m.exited)
    }

    fn live_slots(&self) -> Vec<usize> {
        (0..MEMBERS_MAX).filter(|&i| self.live(i)).collect()
    }

    fn job_name(job: u8) -> String {
        format!("j{}", job as usize % JOBS_MAX)
    }

    fn apply(&mut self, op: &Operation) {
        match op {
            Operation::Join(m) => {
                let slot = *m as usize % MEMBERS_MAX;
                if self.live(slot) {
                    return;
                }
                let id = format!("m{slot}");
                let config = NodeConfig {
                    replication_factor: self.replication,
                    handoff_margin: self.handoff_margin,
                    encoding: Encoding::Json,
                    ..NodeConfig::for_tests(&id)
                };
                self.slots[slot] = Some(Member {
                    id,
                    node: Node::new(config, self.now),
                    connected: false,
                    members_seen: i64::MIN,
                    jobs_seen: i64::MIN,
                    pending: Vec::new(),
                    providers: BTreeMap::new(),
                    valid_jobs: BTreeMap::new(),
                    view: BTreeSet::new(),
                    removals: BTreeMap::new(),
                    exited: false,
                });
                self.connect(slot);
            }
            Operation::Leave(m) => {
                let slot = *m as usize % MEMBERS_MAX;
                if let Some(member) = self.slots[slot].take() {
                    // Its ephemeral record dies with its session.
                    self.record_times.remove(&member.id);
                    if self.records.remove(&member.id).is_some() {
                        self.members_version += 1;
                    }
                    self.broadcast();
                }
            }
            Operation::Drain(m) => {
                let slot = *m as usize % MEMBERS_MAX;
                if self.live(slot) {
                    self.feed(slot, Event::ShutdownRequested, Answering::default());
                    self.broadcast();
                }
            }
            Operation::AddJob(j, spec) | Operation::EditJob(j, spec) => {
                let name = Self::job_name(*j);
                if self.jobs.contains_key(&name) != matches!(op, Operation::EditJob(..)) {
                    return;
                }
                let text = spec.yaml(&name);
                if self.jobs.get(&name) != Some(&text) {
                    self.jobs.insert(name, text);
                    self.jobs_version += 1;
                    self.broadcast();
                }
            }
            Operation::BreakJob(j) => {
                let name = Self::job_name(*j);
                if let Some(text) = self.jobs.get_mut(&name) {
                    *text = format!("job_name: {name}\nscrape_interval: [broken\n");
                    self.jobs_version += 1;
                    self.broadcast();
                }
            }
            Operation::RemoveJob(j) => {
                if self.jobs.remove(&Self::job_name(*j)).is_some() {
                    self.jobs_version += 1;
                    self.broadcast();
                }
            }
            Operation::AddTargets(j, hosts) | Operation::RemoveTargets(j, hosts) => {
                let name = Self::job_name(*j);
                let entry = self.discovered.entry(name.clone()).or_insert(0);
                let before = *entry;
                if matches!(op, Operation::AddTargets(..)) {
                    *entry |= hosts;
                } else {
                    *entry &= !hosts;
                }
                if *entry != before {
                    let hosts = *entry;
                    self.discover(&name, Ok(discovered_groups(&name, hosts)));
                }
            }
            Operation::DiscoveryFailed(j) => {
                self.discover(&Self::job_name(*j), Err("fuzz: discovery failed".into()))
            }
            Operation::SessionLost(m) => {
                let slot = *m as usize % MEMBERS_MAX;
                if self.live(slot) && self.member(slot).connected {
                    self.member_mut(slot).connected = false;
                    self.feed(slot, Event::SessionDisconnected, Answering::default());
                }
            }
            Operation::SessionExpired(m) => {
                let slot = *m as usize % MEMBERS_MAX;
                if self.live(slot) {
                    self.member_mut(slot).connected = false;
                    let id = self.member(slot).id.clone();
                    self.record_times.remove(&id);
                    if self.records.remove(&id).is_some() {
                        self.members_version += 1;
                    }
                    self.feed(slot, Event::SessionExpired, Answering::default());
                    self.broadcast();
                }
            }
            Operation::SessionConnected(m) => {
                let slot = *m as usize % MEMBERS_MAX;
                if self.live(slot) && !self.member(slot).connected {
                    self.connect(slot);
                }
            }
            Operation::Tick(ms) => {
                self.advance(Duration::from_millis(*ms as u64 % (TICK_MS_MAX + 1)))
            }
            Operation::ScrapeFinished(m, which, up) => {
                let slot = *m as usize % MEMBERS_MAX;
                if self.live(slot) && !self.member(slot).pending.is_empty() {
                    let n = self.member(slot).pending.len();
                    let p = self.member_mut(slot).pending.remove(*which as usize % n);
                    self.answer(slot, p, *up);
                }
            }
            Operation::AnswerAll(up) => self.answer_all(*up),
            Operation::Settle => self.settle(),
        }
    }

    fn member(&self, slot: usize) -> &Member {
        self.slots[slot].as_ref().expect("a member in the slot")
    }

    fn member_mut(&mut self, slot: usize) -> &mut Member {
        self.slots[slot].as_mut().expect("a member in the slot")
    }

    fn connect(&mut self, slot: usize) {
        self.member_mut(slot).connected = true;
        self.feed(slot, Event::SessionConnected, Answering::default());
        self.broadcast();
    }

    fn discover(&mut self, job: &str, result: Result<Vec<TargetGroup>, String>) {
        for slot in self.live_slots() {
            let Some(provider) = self.member(slot).providers.get(job).cloned() else {
                continue;
            };
            if result.is_ok() {
                self.update_view(slot);
            }
            self.feed(
                slot,
                Event::DiscoveryUpdated {
                    provider,
                    result: result.clone(),
                },
                Answering::default(),
            );
        }
        self.broadcast();
    }

    fn answer(&mut self, slot: usize, p: Pending, up: bool) {
        let fetch = if up {
            FetchOutcome::Body {
                body: BODY.as_bytes().to_vec(),
                content_type: Some("text/plain; version=0.0.4".into()),
            }
        } else {
            FetchOutcome::Failed {
                error: ScrapeError::Connect {
                    url: p.task.spec.url.clone(),
                    address: "fuzz".into(),
                    reason: "connect: connection refused".into(),
                },
            }
        };
        let target_hash = p.task.target.hash();
        let completed = p
            .task
            .complete(&mut Default::default(), Duration::from_millis(3), &fetch);
        self.outcome.scrapes_answered += 1;
        self.feed(
            slot,
            completed.event,
            Answering {
                answers_scrape: true,
                target_hash,
                removals_at_start: p.removals_at_start,
            },
        );
        self.broadcast();
    }

    fn answer_all(&mut self, up: bool) {
        for slot in self.live_slots() {
            let pending = std::mem::take(&mut self.member_mut(slot).pending);
            for p in pending {
                if self.live(slot) {
                    self.answer(slot, p, up);
                }
            }
        }
    }

    /// Advances time by `by`, ticking each node at its timeouts in time order.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        for _ in 0..FIRINGS_PER_TICK_MAX {
            let next = self
                .live_slots()
                .into_iter()
                .filter_map(|s| self.member(s).node.poll_timeout().map(|(at, _)| (at, s)))
                .filter(|(at, _)| *at <= until)
                .min();
            let Some((at, slot)) = next else {
                self.now = until;
                return;
            };
            self.now = self.now.max(at);
            self.feed(slot, Event::Tick, Answering::default());
            self.broadcast();
        }
        self.fail(format!(
            "timers do not advance: over {FIRINGS_PER_TICK_MAX} firings in {by:?}"
        ));
    }

    fn settle(&mut self) {
        for slot in self.live_slots() {
            if self.live(slot) && !self.member(slot).connected {
                self.connect(slot);
            }
        }
        self.answer_all(true);
        let interval_max = Duration::from_secs(INTERVALS_S[INTERVALS_S.len() - 1]);
        // A handoff ends within a margin and an interval of its change, a drain waits at most
        // its grace for its record; then one more interval so every owner has scraped.
        self.advance(
            self.handoff_margin
                + crate::node::DRAIN_RECORD_WAIT
                + 3 * interval_max
                + Duration::from_millis(1),
        );
        self.answer_all(true);
        if let Some(why) = self.disagreement() {
            // Members that first saw a job while its text was invalid run none of it, while
            // older ones keep its last valid version (ARCHITECTURE.md, "Membership and
            // handoff"): their views may differ then.
            let broken = self
                .jobs
                .iter()
                .any(|(name, text)| self.validity.get(text) == Some(&false) && !name.is_empty());
            if !(broken && why.contains("view")) {
                self.fail(format!(
                    "after Settle the members do not agree on snapshots and targets: {why}"
                ));
            }
        }
        for slot in self.live_slots() {
            let m = self.member(slot);
            if let Some((key, _, role)) = m
                .node
                .scraped_targets()
                .find(|(_, _, r)| matches!(r, Role::HandingOff { .. }))
            {
                self.fail(format!(
                    "{} still hands off {key:?} ({role:?}) after every grace passed",
                    m.id
                ));
            }
        }
    }

    /// Delivers the latest snapshots to every connected node that has not seen them.
    fn broadcast(&mut self) {
        loop {
            let Some(slot) = self.live_slots().into_iter().find(|&s| {
                let m = self.member(s);
                m.connected
                    && (m.members_seen < self.members_version || m.jobs_seen < self.jobs_version)
            }) else {
                return;
            };
            if self.member(slot).members_seen < self.members_version {
                self.member_mut(slot).members_seen = self.members_version;
                let snapshot = MembersSnapshot {
                    version: self.members_version,
                    changed_at: self
                        .record_times
                        .values()
                        .copied()
                        .max()
                        .unwrap_or_default(),
                    members: self.records.values().cloned().collect(),
                    changed: self.record_times.clone(),
                    ..Default::default()
                };
                self.feed(slot, Event::MembersChanged(snapshot), Answering::default());
            } else {
                self.member_mut(slot).jobs_seen = self.jobs_version;
                let jobs: Vec<(String, String)> = self
                    .jobs
                    .iter()
                    .map(|(n, t)| (n.clone(), t.clone()))
                    .collect();
                self.set_valid_jobs(slot, &jobs);
                self.feed(
                    slot,
                    Event::JobsChanged(JobsSnapshot {
                        version: self.jobs_version,
                        jobs,
                        ..Default::default()
                    }),
                    Answering::default(),
                );
            }
        }
    }

    fn is_valid(&mut self, name: &str, text: &str) -> bool {
        if let Some(&v) = self.validity.get(text) {
            return v;
        }
        let v = load_job(text, &format!("/jobs/{name}"), name).is_ok();
        self.validity.insert(text.to_string(), v);
        v
    }

    /// The model of a node's job state: the last valid text of each job it was sent.
    fn set_valid_jobs(&mut self, slot: usize, jobs: &[(String, String)]) {
        let mut next: BTreeMap<String, Option<String>> = BTreeMap::new();
        for (name, text) in jobs {
            let valid = self.is_valid(name, text);
            let kept = self.member(slot).valid_jobs.get(name).cloned().flatten();
            next.insert(name.clone(), if valid { Some(text.clone()) } else { kept });
        }
        self.member_mut(slot).valid_jobs = next;
        self.update_view(slot);
    }

    /// Recomputes the node's view of the targets from the model, counting targets that left.
    fn update_view(&mut self, slot: usize) {
        let mut view = BTreeSet::new();
        let jobs: Vec<(String, String)> = self
            .member(slot)
            .valid_jobs
            .iter()
            .filter_map(|(n, t)| Some((n.clone(), t.clone()?)))
            .collect();
        for (name, text) in jobs {
            let hosts = self.discovered.get(&name).copied().unwrap_or(0);
            let entry = (text, hosts);
            if !self.resolved.contains_key(&entry) {
                let config =
                    load_job(&entry.0, &format!("/jobs/{name}"), &name).expect("checked valid");
                let mut groups = config.static_configs.clone();
                // A provider exists for every valid job with file SD, and got the latest result.
                if !config.sd_configs.is_empty() {
                    groups.extend(discovered_groups(&name, hosts));
                }
                let keys = resolve(&config, &groups)
                    .active
                    .iter()
                    .map(|t| t.key.hash())
                    .collect();
                self.resolved.insert(entry.clone(), keys);
            }
            view.extend(self.resolved[&entry].iter().copied());
        }
        let m = self.member_mut(slot);
        for gone in m.view.difference(&view) {
            *m.removals.entry(*gone).or_insert(0) += 1;
        }
        m.view = view;
    }

    /// Feeds one event to a node and carries out every command it produces (recursively:
    /// a discovery start is answered at once, an emit acknowledged).
    fn feed(&mut self, slot: usize, event: Event, answering: Answering) {
        let now = self.now;
        self.member_mut(slot).node.handle(now, event);
        let mut follow_ups: VecDeque<Event> = VecDeque::new();
        while let Some(command) = self.member_mut(slot).node.poll_command() {
            match command {
                Command::Register(record) => {
                    self.record_times.insert(record.id.clone(), now);
                    self.records.insert(record.id.clone(), record);
                    self.members_version += 1;
                }
                Command::UpdateMember(record) => {
                    if let Some(r) = self.records.get_mut(&record.id) {
                        self.record_times.insert(record.id.clone(), now);
                        *r = record;
                        self.members_version += 1;
                    }
                }
                Command::Deregister => {
                    let id = self.member(slot).id.clone();
                    if self.records.remove(&id).is_some() {
                        self.record_times.remove(&id);
                        self.members_version += 1;
                    }
                }
                Command::StartDiscovery { provider, .. } => {
                    let hosts = self.discovered.get(&provider.job).copied().unwrap_or(0);
                    let groups = discovered_groups(&provider.job, hosts);
                    self.member_mut(slot)
                        .providers
                        .insert(provider.job.clone(), provider.clone());
                    follow_ups.push_back(Event::DiscoveryUpdated {
                        provider,
                        result: Ok(groups),
                    });
                }
                Command::StopDiscovery { provider } => {
                    let m = self.member_mut(slot);
                    if m.providers.get(&provider.job) == Some(&provider) {
                        m.providers.remove(&provider.job);
                    }
                }
                Command::Scrape(task) => {
                    let m = self.member(slot);
                    if let Some(other) = m.pending.iter().find(|p| p.task.target == task.target) {
                        self.fail(format!(
                            "{} has two scrapes in flight for {:?}: #{} and #{}",
                            m.id, task.target, other.task.scrape_id, task.scrape_id
                        ));
                    }
                    let removals_at_start =
                        m.removals.get(&task.target.hash()).copied().unwrap_or(0);
                    self.member_mut(slot).pending.push(Pending {
                        task,
                        removals_at_start,
                    });
                }
                Command::Emit(records) => self.check_markers(slot, &records, &answering),
                Command::Exit => {
                    let m = self.member_mut(slot);
                    m.exited = true;
                    // Its scrapes will never be answered: the process is gone.
                    m.pending.clear();
                }
            }
        }
        for event in follow_ups {
            if self.member(slot).exited {
                continue;
            }
            self.feed(slot, event, Answering::default());
        }
    }

    /// Markers the node emitted on its own (not a scrape's output) must be for targets that
    /// left its view: now, or since the scrape whose return carried them started.
    fn check_markers(&mut self, slot: usize, records: &[Record], answering: &Answering) {
        for record in records.iter().filter(|r| is_marker(r)) {
            let hash = u64::from_be_bytes(record.key);
            let m = self.member(slot);
            let left_now = !m.view.contains(&hash);
            let left_since_scrape = answering.answers_scrape
                && answering.target_hash == hash
                && m.removals.get(&hash).copied().unwrap_or(0) > answering.removals_at_start;
            if !(left_now || left_since_scrape) {
                self.fail(format!(
                    "{} emitted a staleness marker for target {hash:#x}, which only moved: {}",
                    m.id,
                    String::from_utf8_lossy(&record.payload)
                ));
            }
            self.outcome.removal_markers += 1;
        }
    }

    /// Whether every running node is connected, has seen the latest snapshots, and its view
    /// of the targets is the same as every other's.
    fn agreed(&self) -> bool {
        self.disagreement().is_none()
    }

    /// Why the running nodes do not agree yet, if they do not.
    fn disagreement(&self) -> Option<String> {
        let live = self.live_slots();
        let &first = live.first()?;
        live.iter().find_map(|&s| {
            let m = self.member(s);
            let why = if !m.connected || m.node.session() != SessionState::Connected {
                format!("session {:?}", m.node.session())
            } else if m.members_seen != self.members_version || m.jobs_seen != self.jobs_version {
                format!(
                    "saw members v{} jobs v{} of v{} v{}",
                    m.members_seen, m.jobs_seen, self.members_version, self.jobs_version
                )
            } else if m.view != self.member(first).view {
                format!(
                    "its view has {} targets, {}'s {}",
                    m.view.len(),
                    self.member(first).id,
                    self.member(first).view.len()
                )
            } else {
                return None;
            };
            Some(format!("{}: {why}", m.id))
        })
    }

    fn check_step(&mut self) {
        let live = self.live_slots();
        let mut owners: BTreeMap<u64, Vec<(usize, String)>> = BTreeMap::new();
        for &slot in &live {
            let m = self.member(slot);
            let excluded = m.node.is_draining() || m.node.session() == SessionState::Expired;
            for (key, job, role) in m.node.scraped_targets() {
                let Role::Owner { rank } = role else { continue };
                if excluded {
                    self.fail(format!(
                        "{} owns {key:?} of {job} while draining or expired",
                        m.id
                    ));
                }
                if !m.view.contains(&key.hash()) {
                    self.fail(format!(
                        "{} owns {key:?} of {job}, which is not in its view of the jobs",
                        m.id
                    ));
                }
                owners
                    .entry(key.hash())
                    .or_default()
                    .push((rank, m.id.clone()));
            }
        }
        if !self.agreed() {
            return;
        }
        let Some(&first) = live.first() else { return };
        let active: Vec<&str> = self
            .records
            .values()
            .filter(|r| r.state == MemberState::Active)
            .map(|r| r.id.as_str())
            .collect();
        let ring = Ring::new(active.iter().copied(), self.replication);
        let expected_count = self.replication.min(active.len());
        let mut now_owners: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for &hash in &self.member(first).view {
            let mut actual = owners.remove(&hash).unwrap_or_default();
            actual.sort();
            let expected: Vec<(usize, String)> = ring
                .owners(hash)
                .iter()
                .enumerate()
                .map(|(rank, id)| (rank, id.to_string()))
                .collect();
            if actual.len() != expected_count || actual != expected {
                self.fail(format!("target {hash:#x} is owned by {actual:?} (rank, member); the ring of active members {active:?} says {expected:?}"));
            }
            now_owners.insert(hash, expected.into_iter().map(|(_, id)| id).collect());
        }
        if let Some((hash, who)) = owners.into_iter().next() {
            self.fail(format!(
                "target {hash:#x} is owned by {who:?} but is in nobody's view"
            ));
        }
        self.outcome.moves += now_owners
            .iter()
            .filter(|(h, o)| self.last_owners.get(*h).is_some_and(|before| before != *o))
            .count();
        self.outcome.agreed_steps += 1;
        self.outcome.targets_max = self.outcome.targets_max.max(now_owners.len());
        self.outcome.active_max = self.outcome.active_max.max(active.len());
        self.last_owners = now_owners;
    }
}
