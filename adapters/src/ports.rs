//! Ports: one trait per outside system. The driver is generic over them, so the production
//! daemon and the simulation run the same driver with different implementations.
//!
//! Every implementation puts a deadline on every await on the outside world, and reports
//! failures as core events (never as a panic or a process exit).

use std::future::Future;

use scrapepool_core::config::SdConfig;
use scrapepool_core::delivery::DeliveryCounts;
use scrapepool_core::encode::Record;
use scrapepool_core::node::ProviderId;
use scrapepool_core::scrape::{FetchOutcome, ScrapeSpec};
use scrapepool_core::{Event, Timestamp};

/// Where adapters send the events they observe. Bounded: see [`EVENT_QUEUE_LEN_MAX`].
pub type EventSender = tokio::sync::mpsc::Sender<Event>;

/// Most events waiting for the driver; senders wait (back-pressure) beyond it.
pub const EVENT_QUEUE_LEN_MAX: usize = 4096;

/// What the driver asks of the coordination service (the node's member commands).
pub use scrapepool_core::coord::MemberRequest as CoordRequest;

/// The coordination service (ZooKeeper in production, a model in the simulation).
///
/// `run` connects, creates `/jobs` and `/members` if missing, watches both and sends
/// `SessionConnected`/`SessionDisconnected`/`SessionExpired`, `MembersChanged` and
/// `JobsChanged` (full, versioned snapshots) to `events`, and carries out `requests`.
/// It returns only when `requests` is closed; a lost session is never a reason to return.
pub trait Coordinator: Send + 'static {
    /// Runs the coordinator until `requests` closes.
    fn run(
        self,
        events: EventSender,
        requests: tokio::sync::mpsc::Receiver<CoordRequest>,
    ) -> impl Future<Output = ()> + Send;
}

/// Fetches a target over HTTP(S).
pub trait Fetcher: Clone + Send + Sync + 'static {
    /// GETs `spec.url` with Prometheus's headers, auth, TLS, compression, timeout and body
    /// limit; never takes longer than `spec.timeout` (plus a small margin).
    fn fetch(&self, spec: &ScrapeSpec) -> impl Future<Output = FetchOutcome> + Send;
}

/// One discovery mechanism (DNS, Consul, files).
pub trait Discoverer: Clone + Send + Sync + 'static {
    /// Runs discovery for `provider` until dropped (the driver aborts the task on
    /// `StopDiscovery`), sending `Event::DiscoveryUpdated` whenever the result changes and an
    /// error result when a round fails (the core keeps the last good result).
    fn run(
        &self,
        provider: ProviderId,
        config: SdConfig,
        events: EventSender,
    ) -> impl Future<Output = ()> + Send;
}

/// Where records go (Kafka in production; stdout standalone; a model in the simulation).
///
/// Every sink runs a [`scrapepool_core::delivery::Ledger`] (see
/// [`crate::sink::SharedLedger`]): it submits each batch to the ledger, produces only what
/// the ledger admitted, and reports each record's settlement to it. The ledger is the one
/// owner of the delivery counts; the driver's exit and `/metrics` read them from here.
pub trait Sink: Send + Sync + 'static {
    /// Hands `records` (one scrape's, or one target's staleness markers) over without
    /// blocking: admitted whole or rejected whole by the ledger's bound, and counted. Called
    /// from runtime workers and from the driver's loop.
    fn submit(&self, records: Vec<Record>);

    /// The ledger's counts now.
    fn counts(&self) -> DeliveryCounts;
}

/// The wall clock, for sample timestamps and the core's `now`.
pub trait Clock: Clone + Send + Sync + 'static {
    /// Now, in milliseconds since the Unix epoch.
    fn now(&self) -> Timestamp;
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(scrapepool_core::time::duration_ms(d))
    }
}

/// A shared sink is a sink: the daemon keeps a handle for its metrics.
impl<S: Sink> Sink for std::sync::Arc<S> {
    fn submit(&self, records: Vec<Record>) {
        (**self).submit(records)
    }

    fn counts(&self) -> DeliveryCounts {
        (**self).counts()
    }
}
