//! The state machine: membership, jobs, discovery and scrape results in; commands out.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, JobConfig, SdConfig, TargetGroup};
use crate::encode::{EmitSpec, Encoding, Record};
use crate::member::{JobsSnapshot, MemberRecord, MemberState, MembersSnapshot};
use crate::ring::Ring;
use crate::schedule;
use crate::scrape::{FetchOutcome, Limits, ScrapeReport, ScrapeSpec, SeriesCache};
use crate::targets::{ResolvedTargets, Target, TargetKey};
use crate::time::Timestamp;

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
    /// The sink has settled an `Emit`.
    DeliveryFinished {
        /// The `Emit`'s id.
        delivery: u64,
        /// Samples the broker acknowledged.
        delivered_samples: u64,
        /// Samples that will never be delivered (each counted in the metrics).
        failed_samples: u64,
    },
    /// SIGTERM or SIGINT: drain and leave.
    ShutdownRequested,
    /// Time passed; the node checks its timers. A spurious tick is a no-op.
    Tick,
}

/// The outcome of one `Command::Scrape`, returned to the node with the target's cache.
#[derive(Debug)]
pub struct ScrapeFinished {
    /// The task it answers.
    pub task: ScrapeTask,
    /// What processing found.
    pub report: ScrapeReport,
    /// The encoded samples, ready to emit.
    pub records: Vec<Record>,
}

/// One scrape to carry out: fetch `spec.url`, then run [`ScrapeTask::complete`] (on any thread).
#[derive(Debug)]
pub struct ScrapeTask {
    /// The target.
    pub target: TargetKey,
    /// Unique per node, increasing.
    pub scrape_id: u64,
    /// When the scrape was due.
    pub scheduled_at: Timestamp,
    /// How to scrape and process.
    pub spec: Arc<ScrapeSpec>,
    /// The target's memory of its previous scrape, lent to the task and returned with it.
    pub cache: SeriesCache,
}

impl ScrapeTask {
    /// The pure part of a scrape, after the fetch: processes and encodes, and gives back the
    /// event for the node. `started_at` is when the fetch began, `duration` how long it took.
    /// `scratch` is the calling thread's working memory (see [`crate::scrape::Scratch`]).
    pub fn complete(
        mut self,
        scratch: &mut crate::scrape::Scratch,
        started_at: Timestamp,
        duration: Duration,
        fetch: &FetchOutcome,
    ) -> Event {
        let (report, records) = crate::scrape::process_and_encode(
            &self.spec,
            &mut self.cache,
            scratch,
            started_at,
            duration,
            fetch,
        );
        Event::ScrapeFinished(ScrapeFinished {
            task: self,
            report,
            records,
        })
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
    /// Publish records on the bus; answer with `Event::DeliveryFinished`.
    Emit {
        /// Id for the answer.
        delivery: u64,
        /// The records.
        records: Vec<Record>,
    },
    /// Draining is done: the process may exit.
    Exit,
}

/// A node's fixed settings.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Our member id.
    pub id: String,
    /// How many members scrape each target.
    pub replication_factor: usize,
    /// How long a previous owner keeps scraping a moved target; `None`: one scrape interval
    /// of that target.
    pub handoff_grace: Option<Duration>,
    /// How long a draining node scrapes on before leaving; `None`: the longest interval.
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
}

impl NodeConfig {
    /// Settings for tests and examples: replication 1, default graces, remote-write.
    pub fn for_tests(id: &str) -> NodeConfig {
        NodeConfig {
            id: id.to_string(),
            replication_factor: 1,
            handoff_grace: None,
            drain_grace: None,
            web: "127.0.0.1:0".into(),
            version: "test".into(),
            started_at: "1970-01-01T00:00:00Z".into(),
            encoding: Encoding::RemoteWrite,
            message_bytes_max: 1 << 20,
        }
    }
}

/// Most rebalances remembered for the status page.
pub const REBALANCE_HISTORY_LEN_MAX: usize = 32;

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
    /// It moved away; we scrape on until the handoff grace ends.
    HandingOff {
        /// When we stop.
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

/// A target this node scrapes.
#[derive(Debug)]
struct Scraped {
    job: String,
    /// The job configuration `spec` was made from; a job edit makes a new `Arc`.
    config: Arc<JobConfig>,
    spec: Arc<ScrapeSpec>,
    role: Role,
    /// Rank whose phase the schedule follows; the phase changes only after the pending
    /// scrape, so a rank change never stretches the gap beyond one interval.
    rank: usize,
    /// `None` while a scrape is in flight (the task holds it).
    cache: Option<SeriesCache>,
    in_flight: Option<u64>,
    next_at: Timestamp,
    health: Health,
}

/// What to do with a scrape that returns after its target left us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Orphan {
    /// It moved to another member: emit what was scraped, forget the series.
    Forget,
    /// It left discovery: emit what was scraped, then staleness markers for its series.
    MarkStale,
}

/// One discovery provider of a job.
#[derive(Debug)]
struct Provider {
    config: SdConfig,
    generation: u64,
    groups: Vec<TargetGroup>,
    error: Option<String>,
}

/// A job as this node knows it.
#[derive(Debug)]
struct Job {
    /// The text last seen in the snapshot, valid or not.
    text: String,
    /// The last valid configuration, if any.
    config: Option<Arc<JobConfig>>,
    /// Why the text last seen is invalid.
    errors: Vec<ConfigError>,
    providers: Vec<Provider>,
    resolved: ResolvedTargets,
}

/// A timer in the node's table; the next wake-up is the smallest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Scrape(TargetKey),
    HandoffEnd(TargetKey),
    DrainEnd,
}

/// Counters for the node's own metrics. They only grow.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Scrapes handed to the driver.
    pub scrapes_started: u64,
    /// Scrapes that came back failed (`up` 0).
    pub scrapes_failed: u64,
    /// Scrapes not started because the previous one of the same target was still running.
    pub scrapes_skipped: u64,
    /// Samples handed to the sink.
    pub samples_emitted: u64,
    /// Samples the broker acknowledged.
    pub samples_delivered: u64,
    /// Samples that will never be delivered.
    pub samples_not_delivered: u64,
    /// Records handed to the sink and not yet settled.
    pub deliveries_in_flight: u64,
    /// Ownership recomputations that changed what this node scrapes.
    pub rebalances: u64,
    /// Targets that came to this node as owner.
    pub targets_gained: u64,
    /// Targets that moved away from this node.
    pub targets_lost: u64,
    /// Job texts rejected.
    pub job_config_errors: u64,
    /// Failed discovery rounds.
    pub discovery_errors: u64,
    /// Snapshots ignored because they were older than the one applied.
    pub stale_snapshots: u64,
    /// How long the fetches of finished scrapes took.
    pub scrape_durations: DurationHistogram,
}

/// Upper bounds (inclusive, microseconds) of [`DurationHistogram`]'s buckets: Prometheus's
/// default buckets from 5ms to 10s, plus 30s and 60s for slow exporters.
pub const SCRAPE_DURATION_BUCKETS_US: [u64; 13] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000, 30_000_000, 60_000_000,
];

/// A histogram of durations in fixed buckets, in integers (microseconds) so it stays exact
/// and comparable; the metrics endpoint turns it into seconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DurationHistogram {
    /// Observations per bucket of [`SCRAPE_DURATION_BUCKETS_US`] (not cumulative); the last
    /// entry counts those above the largest bound.
    pub buckets: [u64; SCRAPE_DURATION_BUCKETS_US.len() + 1],
    /// Number of observations.
    pub count: u64,
    /// Sum of the observations, in microseconds.
    pub sum_us: u64,
}

impl DurationHistogram {
    /// Counts one observation.
    pub fn observe(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let bucket = SCRAPE_DURATION_BUCKETS_US
            .iter()
            .position(|&le| us <= le)
            .unwrap_or(SCRAPE_DURATION_BUCKETS_US.len());
        self.buckets[bucket] += 1;
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }
}

/// One change of what this node owns.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Rebalance {
    /// When.
    pub at: Timestamp,
    /// Why: `members`, `jobs`, `discovery`, `session`, `drain`.
    pub cause: &'static str,
    /// Active members after the change.
    pub members: usize,
    /// Targets we started owning.
    pub gained: usize,
    /// Targets we stopped owning (handed off or removed).
    pub lost: usize,
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
    timers: BTreeSet<(Timestamp, Timer)>,
    session: SessionState,
    /// Whether our member record exists in the current session (as far as we asked for it).
    registered: bool,
    /// Set once shutdown was requested: when draining ends.
    drain_until: Option<Timestamp>,
    exited: bool,
    members: MembersSnapshot,
    members_applied: bool,
    ring: Ring,
    jobs: BTreeMap<String, Job>,
    jobs_version: i64,
    jobs_applied: bool,
    scraped: BTreeMap<TargetKey, Scraped>,
    /// Scrapes in flight for targets we no longer scrape, by scrape id.
    orphans: BTreeMap<u64, (TargetKey, Arc<ScrapeSpec>, Orphan)>,
    next_scrape_id: u64,
    next_delivery: u64,
    next_generation: u64,
    in_flight_deliveries: BTreeMap<u64, u64>,
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
            exited: false,
            members: MembersSnapshot::default(),
            members_applied: false,
            ring,
            jobs: BTreeMap::new(),
            jobs_version: i64::MIN,
            jobs_applied: false,
            scraped: BTreeMap::new(),
            orphans: BTreeMap::new(),
            next_scrape_id: 1,
            next_delivery: 1,
            next_generation: 1,
            in_flight_deliveries: BTreeMap::new(),
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
            Event::DeliveryFinished {
                delivery,
                delivered_samples,
                failed_samples,
            } => self.on_delivery(delivery, delivered_samples, failed_samples),
            Event::ShutdownRequested => self.on_shutdown(now),
            Event::Tick => {}
        }
        self.fire_timers(now);
    }

    /// After `Exit`: accounts a `DeliveryFinished` (the only event an exited node takes), so
    /// the driver can wait for the sink to settle before the process ends.
    pub fn settle(&mut self, now: Timestamp, event: Event) {
        let _ = now;
        if let Event::DeliveryFinished {
            delivery,
            delivered_samples,
            failed_samples,
        } = event
        {
            self.on_delivery(delivery, delivered_samples, failed_samples);
        }
    }

    /// The next command to carry out, if any. Drain until `None` after every `handle`.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// When the node next wants a `Tick`; `None` when it waits only for events.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        if self.exited {
            return None;
        }
        self.timers.first().map(|(at, _)| *at)
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
                    health: scraped.map(|s| &s.health),
                }
            })
            .collect()
    }

    // ---- session and membership ----------------------------------------------------

    fn record(&self) -> MemberRecord {
        MemberRecord {
            id: self.config.id.clone(),
            state: if self.drain_until.is_some() {
                MemberState::Draining
            } else {
                MemberState::Active
            },
            version: self.config.version.clone(),
            web: self.config.web.clone(),
            started_at: self.config.started_at.clone(),
        }
    }

    fn on_session_connected(&mut self, now: Timestamp) {
        let _ = now;
        self.session = SessionState::Connected;
        if !self.registered {
            self.registered = true;
            self.commands.push_back(Command::Register(self.record()));
        }
    }

    fn on_session_expired(&mut self, now: Timestamp) {
        self.session = SessionState::Expired;
        self.registered = false;
        // A new session rebuilds its view: its first snapshots are taken whatever their
        // versions (a restored or re-created ensemble may number them lower).
        self.members_applied = false;
        self.jobs_applied = false;
        // Our ephemeral record is gone and the others have already taken our targets over:
        // drop ourselves from the view so that ours are handed off rather than kept forever.
        self.rebuild_ring();
        self.reconcile(now, None, "session");
    }

    fn on_members(&mut self, now: Timestamp, snapshot: MembersSnapshot) {
        if self.members_applied && snapshot.version < self.members.version {
            self.stats.stale_snapshots += 1;
            return;
        }
        self.members = snapshot;
        self.members_applied = true;
        if self.rebuild_ring() {
            self.reconcile(now, None, "members");
        }
    }

    /// Recomputes the ring from the snapshot and our own state; whether it changed.
    fn rebuild_ring(&mut self) -> bool {
        let me = self.config.id.as_str();
        let excluded_self = self.drain_until.is_some() || self.session == SessionState::Expired;
        let active = self
            .members
            .members
            .iter()
            .filter(|m| m.state == MemberState::Active && !(excluded_self && m.id == me))
            .map(|m| m.id.as_str());
        let ring = Ring::new(active, self.config.replication_factor);
        let changed = ring != self.ring;
        self.ring = ring;
        changed
    }

    fn on_shutdown(&mut self, now: Timestamp) {
        if self.drain_until.is_some() {
            return;
        }
        let grace = self.config.drain_grace.unwrap_or_else(|| {
            self.scraped
                .values()
                .map(|s| s.spec.interval)
                .max()
                .unwrap_or(Duration::ZERO)
        });
        let until = now + grace;
        self.drain_until = Some(until);
        if self.registered {
            self.commands
                .push_back(Command::UpdateMember(self.record()));
        }
        self.rebuild_ring();
        self.reconcile(now, None, "drain");
        // Every target we scrape is now handing off; none may outlive the drain.
        for s in self.scraped.values_mut() {
            if let Role::HandingOff { until: u } = &mut s.role {
                *u = (*u).min(until);
            }
        }
        self.timers.insert((until, Timer::DrainEnd));
    }

    // ---- jobs and discovery --------------------------------------------------------

    fn on_jobs(&mut self, now: Timestamp, snapshot: JobsSnapshot) {
        if self.jobs_applied && snapshot.version < self.jobs_version {
            self.stats.stale_snapshots += 1;
            return;
        }
        self.jobs_version = snapshot.version;
        self.jobs_applied = true;
        let texts: BTreeMap<String, String> = snapshot.jobs.into_iter().collect();
        let removed: Vec<String> = self
            .jobs
            .keys()
            .filter(|name| !texts.contains_key(*name))
            .cloned()
            .collect();
        let mut changed = Vec::new();
        for name in removed {
            if let Some(job) = self.jobs.remove(&name) {
                self.stop_providers(&name, &job);
                changed.push(name);
            }
        }
        for (name, text) in texts {
            if self.jobs.get(&name).is_some_and(|j| j.text == text) {
                continue;
            }
            let origin = format!("/jobs/{name}");
            match crate::config::load_job(&text, &origin, &name) {
                Ok(config) => self.apply_job(name.clone(), text, config),
                Err(errors) => {
                    self.stats.job_config_errors += 1;
                    let job = self.jobs.entry(name.clone()).or_insert_with(|| Job {
                        text: String::new(),
                        config: None,
                        errors: Vec::new(),
                        providers: Vec::new(),
                        resolved: ResolvedTargets::default(),
                    });
                    // Keep the last valid version running; only remember the rejection.
                    job.text = text;
                    job.errors = errors;
                }
            }
            changed.push(name);
        }
        for name in &changed {
            self.resolve_job(name);
        }
        if !changed.is_empty() {
            self.reconcile(now, None, "jobs");
        }
    }

    fn apply_job(&mut self, name: String, text: String, config: JobConfig) {
        let same_sd = self
            .jobs
            .get(&name)
            .and_then(|j| j.config.as_ref())
            .is_some_and(|c| c.sd_configs == config.sd_configs);
        if !same_sd {
            if let Some(old) = self.jobs.remove(&name) {
                self.stop_providers(&name, &old);
            }
        }
        let job = self.jobs.entry(name.clone()).or_insert_with(|| Job {
            text: String::new(),
            config: None,
            errors: Vec::new(),
            providers: Vec::new(),
            resolved: ResolvedTargets::default(),
        });
        job.text = text;
        job.errors.clear();
        if !same_sd {
            job.providers = config
                .sd_configs
                .iter()
                .map(|sd| {
                    let generation = self.next_generation;
                    self.next_generation += 1;
                    Provider {
                        config: sd.clone(),
                        generation,
                        groups: Vec::new(),
                        error: None,
                    }
                })
                .collect();
            for (index, p) in job.providers.iter().enumerate() {
                let provider = ProviderId {
                    job: name.clone(),
                    index,
                    generation: p.generation,
                };
                self.commands.push_back(Command::StartDiscovery {
                    provider,
                    config: p.config.clone(),
                });
            }
        }
        job.config = Some(Arc::new(config));
    }

    fn stop_providers(&mut self, name: &str, job: &Job) {
        for (index, p) in job.providers.iter().enumerate() {
            let provider = ProviderId {
                job: name.to_string(),
                index,
                generation: p.generation,
            };
            self.commands.push_back(Command::StopDiscovery { provider });
        }
    }

    fn on_discovery(
        &mut self,
        now: Timestamp,
        provider: ProviderId,
        result: Result<Vec<TargetGroup>, String>,
    ) {
        let Some(job) = self.jobs.get_mut(&provider.job) else {
            return;
        };
        let Some(p) = job.providers.get_mut(provider.index) else {
            return;
        };
        if p.generation != provider.generation {
            return; // a late word from a provider we already stopped
        }
        match result {
            Ok(groups) => {
                p.error = None;
                if p.groups == groups {
                    return;
                }
                p.groups = groups;
            }
            Err(error) => {
                self.stats.discovery_errors += 1;
                p.error = Some(error);
                return; // the last good result stays in force
            }
        }
        self.resolve_job(&provider.job);
        self.reconcile(now, Some(&provider.job), "discovery");
    }

    fn resolve_job(&mut self, name: &str) {
        let Some(job) = self.jobs.get_mut(name) else {
            return;
        };
        let Some(config) = job.config.clone() else {
            job.resolved = ResolvedTargets::default();
            return;
        };
        let groups: Vec<TargetGroup> = config
            .static_configs
            .iter()
            .cloned()
            .chain(job.providers.iter().flat_map(|p| p.groups.iter().cloned()))
            .collect();
        job.resolved = crate::targets::resolve(&config, &groups);
    }

    // ---- ownership -----------------------------------------------------------------

    /// Brings what we scrape in line with what we own: `only_job` limits the work to one
    /// job when nothing else changed.
    fn reconcile(&mut self, now: Timestamp, only_job: Option<&str>, cause: &'static str) {
        let me = self.config.id.clone();
        // What we should scrape as owner: key → (job, target, rank).
        let mut wanted: BTreeMap<TargetKey, (String, Arc<JobConfig>, &Target, usize)> =
            BTreeMap::new();
        // Every target still in discovery (of the jobs looked at), owned by us or not.
        let mut present: BTreeSet<&TargetKey> = BTreeSet::new();
        for (name, job) in &self.jobs {
            if only_job.is_some_and(|j| j != name) {
                continue;
            }
            let Some(config) = &job.config else { continue };
            for t in &job.resolved.active {
                present.insert(&t.key);
                if job.resolved.limit_error.is_some() {
                    continue; // Prometheus scrapes none of a job over its target_limit
                }
                if let Some(rank) = self.ring.rank_of(t.key.hash(), &me) {
                    wanted.insert(t.key.clone(), (name.clone(), config.clone(), t, rank));
                }
            }
        }
        let mut gained = 0;
        let mut lost = 0;
        let mut to_remove = Vec::new();
        for (key, s) in self.scraped.iter_mut() {
            if only_job.is_some_and(|j| j != s.job) {
                continue;
            }
            if let Some((_, _, _, rank)) = wanted.get(key) {
                if matches!(s.role, Role::HandingOff { .. }) {
                    gained += 1;
                    self.timers
                        .remove(&(role_until(s.role), Timer::HandoffEnd(key.clone())));
                }
                s.role = Role::Owner { rank: *rank };
                s.rank = *rank;
                continue;
            }
            if !present.contains(key) {
                to_remove.push(key.clone());
                if matches!(s.role, Role::Owner { .. }) {
                    lost += 1;
                }
                continue;
            }
            if let Role::Owner { .. } = s.role {
                lost += 1;
                let grace = self.config.handoff_grace.unwrap_or(s.spec.interval);
                let until = match self.drain_until {
                    Some(d) => (now + grace).min(d),
                    None => now + grace,
                };
                s.role = Role::HandingOff { until };
                self.timers.insert((until, Timer::HandoffEnd(key.clone())));
            }
        }
        let new: Vec<(TargetKey, String, Arc<JobConfig>, Target, usize)> = wanted
            .into_iter()
            .filter(|(k, _)| !self.scraped.contains_key(k))
            .map(|(k, (job, config, target, rank))| (k, job, config, target.clone(), rank))
            .collect();
        // Specs follow job edits (limits, relabeling, auth) of targets we keep.
        let respec: Vec<(TargetKey, Arc<JobConfig>, Arc<ScrapeSpec>)> = self
            .scraped
            .iter()
            .filter(|(_, s)| only_job.is_none_or(|j| j == s.job))
            .filter_map(|(k, s)| {
                let job = self.jobs.get(&s.job)?;
                let config = job.config.as_ref()?;
                let target = job.resolved.active.iter().find(|t| &t.key == k)?;
                let same = Arc::ptr_eq(config, &s.config)
                    && target.scrape_interval == s.spec.interval
                    && target.scrape_timeout == s.spec.timeout;
                (!same).then(|| {
                    (
                        k.clone(),
                        config.clone(),
                        Arc::new(self.scrape_spec(config, target)),
                    )
                })
            })
            .collect();
        for (k, config, spec) in respec {
            if let Some(s) = self.scraped.get_mut(&k) {
                s.config = config;
                s.spec = spec;
            }
        }
        for key in to_remove {
            self.remove_scraped(now, &key, Orphan::MarkStale);
        }
        for (key, job, config, target, rank) in new {
            gained += 1;
            let spec = Arc::new(self.scrape_spec(&config, &target));
            let next_at = schedule::next_at(
                now,
                spec.interval,
                schedule::offset(key.hash(), rank, spec.interval),
            );
            self.timers.insert((next_at, Timer::Scrape(key.clone())));
            // A scrape of this target from before it left us may still be out: adopt it
            // rather than start a second one beside it (found by the `rebalance` fuzz target),
            // so its series memory comes back to the target and no markers end live series.
            let adopted = self
                .orphans
                .iter()
                .find(|(_, (k, _, _))| *k == key)
                .map(|(id, _)| *id);
            if let Some(id) = adopted {
                self.orphans.remove(&id);
            }
            self.scraped.insert(
                key,
                Scraped {
                    job,
                    config,
                    spec,
                    role: Role::Owner { rank },
                    rank,
                    cache: if adopted.is_some() {
                        None
                    } else {
                        Some(SeriesCache::default())
                    },
                    in_flight: adopted,
                    next_at,
                    health: Health::default(),
                },
            );
        }
        if gained + lost > 0 {
            self.stats.rebalances += 1;
            self.stats.targets_gained += gained as u64;
            self.stats.targets_lost += lost as u64;
            if self.rebalances.len() == REBALANCE_HISTORY_LEN_MAX {
                self.rebalances.pop_front();
            }
            self.rebalances.push_back(Rebalance {
                at: now,
                cause,
                members: self.ring.members().count(),
                gained,
                lost,
            });
        }
    }

    fn scrape_spec(&self, job: &JobConfig, target: &Target) -> ScrapeSpec {
        ScrapeSpec {
            url: target.url.clone(),
            target_labels: target.labels.clone(),
            interval: target.scrape_interval,
            timeout: target.scrape_timeout,
            honor_labels: job.honor_labels,
            honor_timestamps: job.honor_timestamps,
            enable_compression: job.enable_compression,
            limits: Limits {
                sample_limit: job.sample_limit,
                label_limit: job.label_limit,
                label_name_length_limit: job.label_name_length_limit,
                label_value_length_limit: job.label_value_length_limit,
                body_size_limit_bytes: job.body_size_limit_bytes,
            },
            metric_relabel_configs: job.metric_relabel_configs.clone(),
            basic_auth: job.basic_auth.clone(),
            authorization: job.authorization.clone(),
            tls_config: job.tls_config.clone(),
            emit: EmitSpec {
                encoding: self.config.encoding,
                message_bytes_max: self.config.message_bytes_max,
                scraper_id: self.config.id.clone(),
                job: job.job_name.clone(),
                instance: target
                    .labels
                    .get("instance")
                    .unwrap_or_default()
                    .to_string(),
                key_hash: target.key.hash(),
            },
        }
    }

    /// Stops scraping `key`. `how` says whether its series end (left discovery) or live on
    /// with another owner (moved). A scrape in flight is settled when it returns.
    fn remove_scraped(&mut self, now: Timestamp, key: &TargetKey, how: Orphan) {
        let Some(s) = self.scraped.remove(key) else {
            return;
        };
        self.timers.remove(&(s.next_at, Timer::Scrape(key.clone())));
        if let Role::HandingOff { until } = s.role {
            self.timers.remove(&(until, Timer::HandoffEnd(key.clone())));
        }
        match (s.in_flight, s.cache) {
            (Some(id), _) => {
                self.orphans.insert(id, (key.clone(), s.spec, how));
            }
            (None, Some(cache)) if how == Orphan::MarkStale => {
                let markers = crate::scrape::stale_markers(&cache, now);
                self.emit(crate::encode::encode(&s.spec.emit, &markers));
            }
            _ => {}
        }
    }

    // ---- scraping ------------------------------------------------------------------

    fn fire_timers(&mut self, now: Timestamp) {
        while let Some((at, _)) = self.timers.first() {
            if *at > now {
                break;
            }
            let (at, timer) = self.timers.pop_first().expect("first exists");
            match timer {
                Timer::Scrape(key) => self.start_scrape(at, key),
                Timer::HandoffEnd(key) => {
                    if self
                        .scraped
                        .get(&key)
                        .is_some_and(|s| s.role == Role::HandingOff { until: at })
                    {
                        self.remove_scraped(now, &key, Orphan::Forget);
                    }
                }
                Timer::DrainEnd => {
                    let keys: Vec<TargetKey> = self.scraped.keys().cloned().collect();
                    for key in keys {
                        self.remove_scraped(now, &key, Orphan::Forget);
                    }
                    if self.registered {
                        self.commands.push_back(Command::Deregister);
                    }
                    self.commands.push_back(Command::Exit);
                    self.exited = true;
                    self.timers.clear();
                    return;
                }
            }
        }
    }

    fn start_scrape(&mut self, due: Timestamp, key: TargetKey) {
        let Some(s) = self.scraped.get_mut(&key) else {
            return;
        };
        // The next one keeps the phase of the rank we own now; it is always within one
        // interval of this one, so a rank change never widens a gap.
        let offset = schedule::offset(key.hash(), s.rank, s.spec.interval);
        let next_at = schedule::next_at(due + Duration::from_millis(1), s.spec.interval, offset);
        s.next_at = next_at;
        self.timers.insert((next_at, Timer::Scrape(key.clone())));
        let Some(cache) = s.cache.take() else {
            self.stats.scrapes_skipped += 1;
            return;
        };
        let scrape_id = self.next_scrape_id;
        self.next_scrape_id += 1;
        s.in_flight = Some(scrape_id);
        self.stats.scrapes_started += 1;
        self.commands.push_back(Command::Scrape(ScrapeTask {
            target: key,
            scrape_id,
            scheduled_at: due,
            spec: s.spec.clone(),
            cache,
        }));
    }

    fn on_scrape_finished(&mut self, now: Timestamp, finished: ScrapeFinished) {
        let ScrapeFinished {
            task,
            report,
            records,
        } = finished;
        if !report.up {
            self.stats.scrapes_failed += 1;
        }
        self.stats.scrape_durations.observe(report.duration);
        self.emit(records);
        if let Some((_, spec, how)) = self.orphans.remove(&task.scrape_id) {
            if how == Orphan::MarkStale {
                let markers = crate::scrape::stale_markers(&task.cache, now);
                self.emit(crate::encode::encode(&spec.emit, &markers));
            }
            return;
        }
        let Some(s) = self.scraped.get_mut(&task.target) else {
            return;
        };
        if s.in_flight != Some(task.scrape_id) {
            return;
        }
        s.in_flight = None;
        s.cache = Some(task.cache);
        s.health = Health {
            last_scrape: Some(task.scheduled_at),
            report: Some(report),
        };
    }

    fn on_delivery(&mut self, delivery: u64, delivered_samples: u64, failed_samples: u64) {
        if self.in_flight_deliveries.remove(&delivery).is_some() {
            self.stats.deliveries_in_flight = self.in_flight_deliveries.len() as u64;
        }
        self.stats.samples_delivered += delivered_samples;
        self.stats.samples_not_delivered += failed_samples;
    }

    fn emit(&mut self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        let samples: u64 = records.iter().map(|r| r.samples as u64).sum();
        let delivery = self.next_delivery;
        self.next_delivery += 1;
        self.stats.samples_emitted += samples;
        self.in_flight_deliveries.insert(delivery, samples);
        self.stats.deliveries_in_flight = self.in_flight_deliveries.len() as u64;
        self.commands.push_back(Command::Emit { delivery, records });
    }
}

fn role_until(role: Role) -> Timestamp {
    match role {
        Role::HandingOff { until } => until,
        Role::Owner { .. } => Timestamp(i64::MIN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_histogram_counts_each_observation_in_its_bucket() {
        let mut h = DurationHistogram::default();
        h.observe(Duration::from_millis(5)); // on the bound: inclusive
        h.observe(Duration::from_micros(5_001));
        h.observe(Duration::from_secs(61));
        assert_eq!(h.buckets[0], 1);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[SCRAPE_DURATION_BUCKETS_US.len()], 1);
        assert_eq!(h.buckets.iter().sum::<u64>(), 3);
        assert_eq!(h.count, 3);
        assert_eq!(h.sum_us, 5_000 + 5_001 + 61_000_000);
    }
}
