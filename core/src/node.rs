//! The state machine: membership, jobs, discovery and scrape results in; commands out.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{SdConfig, TargetGroup};
use crate::encode::{Encoding, Record};
use crate::member::{JobsSnapshot, MemberRecord, MembersSnapshot};
use crate::scrape::{FetchOutcome, ScrapeReport, ScrapeSpec, SeriesCache};
use crate::targets::TargetKey;
use crate::time::Timestamp;

/// Identifies one discovery provider: the job and the index of its `sd_configs` entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProviderId {
    /// The job.
    pub job: String,
    /// Index into the job's `sd_configs`.
    pub index: usize,
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
    pub fn complete(mut self, started_at: Timestamp, duration: Duration, fetch: &FetchOutcome) -> Event {
        let (report, records) = crate::scrape::process_and_encode(&self.spec, &mut self.cache, started_at, duration, fetch);
        Event::ScrapeFinished(ScrapeFinished { task: self, report, records })
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

/// The state machine of one scraper. See the crate documentation for the run loop.
pub struct Node {
    config: NodeConfig,
    commands: std::collections::VecDeque<Command>,
}

impl Node {
    /// A node that has seen nothing yet.
    pub fn new(config: NodeConfig, now: Timestamp) -> Node {
        let _ = now;
        Node { config, commands: Default::default() }
    }

    /// Feeds one event at time `now`.
    pub fn handle(&mut self, now: Timestamp, event: Event) {
        let _ = (now, event, &self.config);
    }

    /// The next command to carry out, if any.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// When the node next wants a `Tick`.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        None
    }
}
