//! The state machine: membership, jobs, discovery and scrape results in; commands out.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, JobConfig, SdConfig, TargetGroup};
use crate::encode::{Encoding, Record};
use crate::labels::Labels;
use crate::member::{JobsSnapshot, MemberRecord, MemberState, MembersSnapshot};
use crate::ring::Ring;
use crate::scrape::{FetchOutcome, ScrapeReport, ScrapeSpec, SeriesCache};
use crate::targets::{ResolvedTargets, Target, TargetKey};
use crate::time::Timestamp;

mod drain;
mod handoff;
mod jobs;
mod membership;
mod stats;
mod targets;

pub use handoff::{catch_up_at, crash_shift, TIMESTAMP_BAND_MS};
pub use stats::{
    DurationHistogram, Rebalance, RebalanceCause, SamplesDropped, ScrapesRejected, Stats,
    REBALANCE_HISTORY_LEN_MAX, SCRAPE_DURATION_BUCKETS_US,
};

use jobs::Job;
use targets::{Orphan, Scraped};

/// Identifies one discovery provider: the job and the index of its `sd_configs` entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProviderId {
    /// The job.
    pub job: String,
    /// Index into the job's `sd_configs`.
    pub index: usize,
    /// Bumped each time the provider is restarted, so a late result of a stopped provider
    /// is recognised and ignored.
    pub generation: u64,
}

/// Everything that happens to a node.
#[derive(Debug)]
pub enum Event {
    /// The coordination session is (again) connected; the node may (re-)register.
    SessionConnected,
    /// The session lost its connection but has not expired: keep scraping, change nothing.
    SessionDisconnected,
    /// The session expired: our member record is gone; register again when connected.
    SessionExpired,
    /// The full set of members.
    MembersChanged(MembersSnapshot),
    /// The full set of jobs.
    JobsChanged(JobsSnapshot),
    /// A discovery provider's latest result (an error keeps its last good result).
    DiscoveryUpdated {
        /// Which provider.
        provider: ProviderId,
        /// Its target groups, or why discovery failed.
        result: Result<Vec<TargetGroup>, String>,
    },
    /// A scrape the node asked for has been fetched and processed.
    ScrapeFinished(ScrapeFinished),
    /// SIGTERM or SIGINT: drain and leave.
    ShutdownRequested,
    /// Time passed; the node checks its timers. A spurious tick is a no-op.
    Tick,
}

/// The outcome of one `Command::Scrape`, returned to the node with the target's cache.
/// It carries what the node keeps (the report: health, sample counts); the encoded records
/// went from the worker to the sink (see [`Completed`]).
#[derive(Debug)]
pub struct ScrapeFinished {
    /// The task it answers.
    pub task: ScrapeTask,
    /// What processing found.
    pub report: ScrapeReport,
}

/// A processed scrape, split between the sink and the node.
#[derive(Debug)]
#[must_use]
pub struct Completed {
    /// The encoded samples: the driver hands them to the sink on the thread that processed
    /// them, *before* it sends `event`, so that markers the node writes on taking the event
    /// back follow them on the bus.
    pub records: Vec<Record>,
    /// [`Event::ScrapeFinished`], for the node.
    pub event: Event,
}

/// One scrape to carry out: fetch `spec.url`, then run [`ScrapeTask::complete`] (on any thread).
#[derive(Debug)]
pub struct ScrapeTask {
    /// The target.
    pub target: TargetKey,
    /// Unique per node, increasing.
    pub scrape_id: u64,
    /// When the scrape was due: its slot, or for a new owner that learned of its target after
    /// the handoff slot, the moment it catches up (ARCHITECTURE.md, "Membership and handoff").
    pub scheduled_at: Timestamp,
    /// The timestamp of the scrape's samples (those without an exporter timestamp): the slot
    /// `scheduled_at` plus the handoff shift of 0–129 ms ([`SHIFT_TAKEOVER_SLOTS`],
    /// [`SHIFT_DISCONNECTED_MS`]), chosen by the node so that two members scraping one slot
    /// of a target never write the same timestamp.
    pub sample_at: Timestamp,
    /// How to scrape and process.
    pub spec: Arc<ScrapeSpec>,
    /// The target's memory of its previous scrape, lent to the task and returned with it.
    pub cache: SeriesCache,
}

impl ScrapeTask {
    /// The pure part of a scrape, after the fetch: processes and encodes, and gives back the
    /// records for the sink and the event for the node. The samples carry
    /// [`ScrapeTask::sample_at`]; `duration` is how long the fetch took.
    /// `scratch` is the calling thread's working memory (see [`crate::scrape::Scratch`]).
    pub fn complete(
        mut self,
        scratch: &mut crate::scrape::Scratch,
        duration: Duration,
        fetch: &FetchOutcome,
    ) -> Completed {
        let (report, records) = crate::scrape::process_and_encode(
            &self.spec,
            &mut self.cache,
            scratch,
            self.sample_at,
            duration,
            fetch,
        );
        Completed {
            records,
            event: Event::ScrapeFinished(ScrapeFinished { task: self, report }),
        }
    }
}

/// Everything a node asks its driver to do.
#[derive(Debug)]
#[must_use]
pub enum Command {
    /// Create our ephemeral member znode with this record (again, after an expiry).
    Register(MemberRecord),
    /// Replace our member record (e.g. `draining`).
    UpdateMember(MemberRecord),
    /// Delete our member znode.
    Deregister,
    /// Start (or restart with a new config) a discovery provider.
    StartDiscovery {
        /// Which provider.
        provider: ProviderId,
        /// Its configuration.
        config: SdConfig,
    },
    /// Stop a discovery provider.
    StopDiscovery {
        /// Which provider.
        provider: ProviderId,
    },
    /// Scrape a target.
    Scrape(ScrapeTask),
    /// Hand records to the sink: staleness markers of a target that left discovery (a
    /// scrape's own records go to the sink from the worker, see [`Completed`]). The sink's
    /// ledger settles and counts them; nothing comes back to the node.
    Emit(Vec<Record>),
    /// Draining is done: the process may exit.
    Exit,
}

/// Default [`NodeConfig::handoff_margin`]: covers a watch notification and the re-read of a
/// tree delayed by seconds (a busy ensemble, a pause), and the clock difference between the
/// ZooKeeper servers and the members; a longer margin only makes the old owner scrape longer.
pub const HANDOFF_MARGIN: Duration = Duration::from_secs(5);
/// Default [`NodeConfig::handoff_window`]: longer than a session timeout, the time a member
/// whose session expired while it was connected takes at most to hear of it, and than any
/// watch delay a connected member sees in practice.
pub const HANDOFF_WINDOW: Duration = Duration::from_secs(60);
/// Part of the default drain grace: how long the coordination tries to write a record
/// (40 attempts 250 ms apart) with some slack.
pub const DRAIN_RECORD_WAIT: Duration = Duration::from_secs(15);
/// A new owner's samples in its takeover window are stamped `1 + (k mod SHIFT_TAKEOVER_SLOTS)`
/// ms after their slot, `k` being the index (slot time div interval) of its first slot, the
/// handoff slot: an old owner still scraping the slot (it learned of the move late) stamps it
/// 0 ms or with its own takeover's shift, which differs, since two takeovers of one target
/// whose windows overlap are fewer than `SHIFT_TAKEOVER_SLOTS` slots apart (the window lasts
/// at most that many intervals). A crash takeover adds `SHIFT_TAKEOVER_SLOTS × (1 + (c mod
/// SHIFT_CRASH_CHANGES))`, `c` the `/members` child version it read ([`crash_shift`]).
pub const SHIFT_TAKEOVER_SLOTS: i64 = 8;
/// How many joins and leaves apart two crash takeovers of one target in one interval must be
/// to get the same shift: a member that takes a target over from a gone member read a higher
/// child version of `/members` than the gone member did when it took the target over (the
/// gone member's leave, at least, lies between), so their shifts differ unless the two
/// versions lie a multiple of this apart.
pub const SHIFT_CRASH_CHANGES: i64 = 7;
/// The largest takeover shift.
pub const SHIFT_TAKEOVER_MAX: i64 = SHIFT_TAKEOVER_SLOTS * (1 + SHIFT_CRASH_CHANGES);
/// Added to the sample timestamps of scrapes while the session is not connected: a member cut
/// off from ZooKeeper may be scraping targets the others have taken over.
pub const SHIFT_DISCONNECTED_MS: i64 = SHIFT_TAKEOVER_MAX + 1;

/// A node's fixed settings.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Our member id.
    pub id: String,
    /// How many members scrape each target.
    pub replication_factor: usize,
    /// The handoff margin: a target moved by a graceful change is scraped by its old owner
    /// up to, and by its new owner from, its first slot at or after the change's ZooKeeper
    /// time plus this margin (default [`HANDOFF_MARGIN`]).
    pub handoff_margin: Duration,
    /// How long after taking a target over the new owner's samples carry the takeover shift
    /// (default [`HANDOFF_WINDOW`]; at most [`SHIFT_TAKEOVER_SLOTS`] intervals).
    pub handoff_window: Duration,
    /// The longest a draining node waits for ZooKeeper to show its `draining` record (from
    /// which its handoff slots follow) before it leaves anyway; `None`: the margin plus the
    /// longest interval plus [`DRAIN_RECORD_WAIT`]. `Some(0)`: leave at once (nobody to hand
    /// targets to).
    pub drain_grace: Option<Duration>,
    /// `host:port` of our web server, for the member record.
    pub web: String,
    /// scrapepool's version, for the member record.
    pub version: String,
    /// When we started, RFC 3339, for the member record.
    pub started_at: String,
    /// Bus encoding.
    pub encoding: Encoding,
    /// Largest bus message.
    pub message_bytes_max: usize,
    /// Added to every series that lacks a label of the same name (`external_labels`).
    pub external_labels: Labels,
    /// The member's memory budget in bytes, from which every scrape's caps follow
    /// ([`crate::scrape::scrape_caps`]); 0: no budget.
    pub memory_budget_bytes: u64,
}

impl NodeConfig {
    /// Settings for tests and examples: replication 1, default margin, window and drain
    /// grace, remote-write.
    pub fn for_tests(id: &str) -> NodeConfig {
        NodeConfig {
            id: id.to_string(),
            replication_factor: 1,
            handoff_margin: HANDOFF_MARGIN,
            handoff_window: HANDOFF_WINDOW,
            drain_grace: None,
            web: "127.0.0.1:0".into(),
            version: "test".into(),
            started_at: "1970-01-01T00:00:00Z".into(),
            encoding: Encoding::RemoteWrite,
            message_bytes_max: 1 << 20,
            external_labels: Labels::new(),
            memory_budget_bytes: 0,
        }
    }
}

/// The coordination session as the node last heard of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// Never connected, or connection lost (not expired): keep scraping, change nothing.
    Disconnected,
    /// Connected.
    Connected,
    /// Expired: our member record is gone; the others have taken our targets.
    Expired,
}

/// Why a target is being scraped by this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "role")]
pub enum Role {
    /// We are one of its owners, at this replica rank.
    Owner {
        /// 0 for the highest rendezvous score.
        rank: usize,
    },
    /// It moved away; we scrape its slots before `until` (its handoff slot), none after.
    HandingOff {
        /// The handoff slot: the new owner's first.
        until: Timestamp,
    },
}

/// What we know of the last scrape of a target.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Health {
    /// When the last finished scrape started; `None` before the first.
    pub last_scrape: Option<Timestamp>,
    /// Its report.
    pub report: Option<ScrapeReport>,
}

/// The health of a target before its first scrape finishes.
static NO_HEALTH: Health = Health {
    last_scrape: None,
    report: None,
};

/// Why the node wants a `Tick`: one timer of its table (the next wake-up is the smallest).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wake {
    /// The handoff slot of this target (moved to another member) is reached: we stop
    /// scraping it (before its scrape due then, which is the new owner's).
    HandoffEnd(TargetKey),
    /// The next scrape of this target is due.
    Scrape(TargetKey),
    /// The drain ends (past the last handoff slot, or the drain grace if ZooKeeper never
    /// showed our `draining` record): we stop scraping and, once the scrapes still out have
    /// finished (or their timeout has passed), deregister and exit.
    DrainEnd,
    /// A target that left discovery is still gone one interval and a tenth after its next
    /// scrape would have been: its staleness markers are written (Prometheus's end-of-run
    /// staleness).
    EndOfRun(TargetKey),
}

/// A read-only view of one target of a job, for the targets API and pages.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetView<'a> {
    /// The target.
    pub target: &'a Target,
    /// Its owners, rank 0 first.
    pub owners: Vec<&'a str>,
    /// How this node scrapes it, if it does.
    pub role: Option<Role>,
    /// The last scrape, if this node scraped it.
    pub health: Option<&'a Health>,
}

/// A read-only view of one job.
#[derive(Clone, Debug)]
pub struct JobView<'a> {
    /// The job's name.
    pub name: &'a str,
    /// The configuration in force (the last valid one).
    pub config: Option<&'a JobConfig>,
    /// Why the latest text was rejected, if it was.
    pub errors: &'a [ConfigError],
    /// Per provider: the last error, if its last round failed.
    pub discovery_errors: Vec<&'a str>,
    /// Targets, owned or not.
    pub targets: &'a ResolvedTargets,
}

/// The state machine of one scraper. See the crate documentation for the run loop.
///
/// Methods fall into three groups: `handle` (feed an event), `poll_*` (drain what it wants),
/// and getters for the status pages and metrics (`&self`, no effect).
pub struct Node {
    config: NodeConfig,
    commands: VecDeque<Command>,
    timers: BTreeSet<(Timestamp, Wake)>,
    session: SessionState,
    /// Whether our member record exists in the current session (as far as we asked for it).
    registered: bool,
    /// Set once shutdown was requested: when draining ends.
    drain_until: Option<Timestamp>,
    /// Set when the drain grace is over but scrapes started before its end are still out:
    /// the node exits when the last one finishes, or at the `DrainEnd` timer set for then.
    finishing_drain: bool,
    exited: bool,
    members: MembersSnapshot,
    members_applied: bool,
    ring: Ring,
    /// The ring before the members change being reconciled (`None` outside one).
    prev_ring: Option<Ring>,
    /// Until a reconcile with both snapshots applied, in each session: the owners we take
    /// targets from are those of the ring without us (we are the newest member).
    first_view: bool,
    /// Whether the handoff slots of a drain were set from our `draining` record's time.
    drain_timed: bool,
    /// The rings over the record times of the members snapshot (see `handoff`).
    timeline: Vec<(Timestamp, Ring)>,
    jobs: BTreeMap<String, Job>,
    jobs_version: i64,
    jobs_applied: bool,
    scraped: BTreeMap<TargetKey, Scraped>,
    /// Scrapes in flight for targets we no longer scrape, by scrape id.
    orphans: BTreeMap<u64, (TargetKey, Arc<ScrapeSpec>, Orphan)>,
    /// For an orphan whose target left discovery: when its next scrape would have been.
    orphan_stale_at: BTreeMap<u64, Timestamp>,
    /// Targets that left discovery, waiting for their end-of-run staleness markers.
    ending: BTreeMap<TargetKey, targets::Ending>,
    next_scrape_id: u64,
    next_generation: u64,
    stats: Stats,
    rebalances: VecDeque<Rebalance>,
}

impl Node {
    /// A node that has seen nothing yet.
    pub fn new(config: NodeConfig, now: Timestamp) -> Node {
        let _ = now;
        let ring = Ring::new(std::iter::empty(), config.replication_factor);
        Node {
            config,
            commands: VecDeque::new(),
            timers: BTreeSet::new(),
            session: SessionState::Disconnected,
            registered: false,
            drain_until: None,
            finishing_drain: false,
            exited: false,
            members: MembersSnapshot::default(),
            members_applied: false,
            ring,
            prev_ring: None,
            first_view: true,
            drain_timed: false,
            timeline: Vec::new(),
            jobs: BTreeMap::new(),
            jobs_version: i64::MIN,
            jobs_applied: false,
            scraped: BTreeMap::new(),
            orphans: BTreeMap::new(),
            orphan_stale_at: BTreeMap::new(),
            ending: BTreeMap::new(),
            next_scrape_id: 1,
            next_generation: 1,
            stats: Stats::default(),
            rebalances: VecDeque::new(),
        }
    }

    /// Feeds one event at time `now`. Never fails: the world's failures are events too.
    pub fn handle(&mut self, now: Timestamp, event: Event) {
        if self.exited {
            return;
        }
        match event {
            Event::SessionConnected => self.on_session_connected(now),
            Event::SessionDisconnected => self.session = SessionState::Disconnected,
            Event::SessionExpired => self.on_session_expired(now),
            Event::MembersChanged(snapshot) => self.on_members(now, snapshot),
            Event::JobsChanged(snapshot) => self.on_jobs(now, snapshot),
            Event::DiscoveryUpdated { provider, result } => {
                self.on_discovery(now, provider, result)
            }
            Event::ScrapeFinished(finished) => self.on_scrape_finished(now, finished),
            Event::ShutdownRequested => self.on_shutdown(now),
            Event::Tick => {}
        }
        self.fire_timers(now);
    }

    /// The next command to carry out, if any. Drain until `None` after every `handle`.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// When the node next wants a `Tick`, and why; `None` when it waits only for events.
    /// Several timers may be due at that time: the reason is the first of them.
    pub fn poll_timeout(&self) -> Option<(Timestamp, Wake)> {
        if self.exited {
            return None;
        }
        self.timers.first().cloned()
    }

    // ---- getters -------------------------------------------------------------------

    /// Our settings.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The session state as last reported.
    pub fn session(&self) -> SessionState {
        self.session
    }

    /// Ready: registered in a connected session, and the first member and job snapshots applied.
    pub fn is_ready(&self) -> bool {
        self.registered
            && self.session == SessionState::Connected
            && self.members_applied
            && self.jobs_applied
    }

    /// Whether shutdown was requested.
    pub fn is_draining(&self) -> bool {
        self.drain_until.is_some()
    }

    /// The members snapshot in force.
    pub fn members(&self) -> &MembersSnapshot {
        &self.members
    }

    /// The ring of active members in force (ourselves excluded while draining or expired).
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Our counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Recent changes of what we own, oldest first.
    pub fn rebalances(&self) -> impl Iterator<Item = &Rebalance> {
        self.rebalances.iter()
    }

    /// How many targets we scrape, as owner and handing off.
    pub fn scraped_counts(&self) -> (usize, usize) {
        let owned = self
            .scraped
            .values()
            .filter(|s| matches!(s.role, Role::Owner { .. }))
            .count();
        (owned, self.scraped.len() - owned)
    }

    /// The keys of the targets we scrape, with our role for each.
    pub fn scraped_targets(&self) -> impl Iterator<Item = (&TargetKey, &str, Role)> {
        self.scraped
            .iter()
            .map(|(k, s)| (k, s.job.as_str(), s.role))
    }

    /// Every job, by name.
    pub fn jobs(&self) -> impl Iterator<Item = JobView<'_>> {
        self.jobs.iter().map(|(name, job)| JobView {
            name,
            config: job.config.as_deref(),
            errors: &job.errors,
            discovery_errors: job
                .providers
                .iter()
                .filter_map(|p| p.error.as_deref())
                .collect(),
            targets: &job.resolved,
        })
    }

    /// Every active target of `job` with its owners and, if we scrape it, our role and health.
    pub fn job_targets(&self, job: &str) -> Vec<TargetView<'_>> {
        let Some(j) = self.jobs.get(job) else {
            return Vec::new();
        };
        j.resolved
            .active
            .iter()
            .map(|t| {
                let scraped = self.scraped.get(&t.key);
                TargetView {
                    target: t,
                    owners: self.ring.owners(t.key.hash()).to_vec(),
                    role: scraped.map(|s| s.role),
                    health: scraped.map(|s| s.health.as_deref().unwrap_or(&NO_HEALTH)),
                }
            })
            .collect()
    }
}
