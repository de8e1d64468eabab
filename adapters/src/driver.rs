//! The driver: one event loop that feeds events into the core and carries out its commands.
//!
//! It holds no policy. Each turn: drain `poll_command`, then wait for the next event or the
//! node's next timeout, whichever comes first. Fetches, the pure per-scrape processing and
//! the hand-over of a scrape's records to the sink run on spawned tasks (the multi-thread
//! runtime's workers, i.e. every core), never on the loop: the node takes back only the
//! scrape's report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use scrapepool_core::node::ProviderId;
use scrapepool_core::{Command, Event, Node};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ports::{
    Clock, CoordRequest, Discoverer, EventSender, Fetcher, Sink, EVENT_QUEUE_LEN_MAX,
};

/// Most member requests waiting for the coordinator.
pub const COORD_QUEUE_LEN_MAX: usize = 64;

/// How long the driver waits, after the node said `Exit`, for the sink to settle what it holds.
pub const EXIT_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the driver reads the sink's ledger while it waits at exit.
pub const EXIT_FLUSH_POLL: Duration = Duration::from_millis(10);

/// How the driver ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The node drained and said `Exit`; the sink settled every record.
    Drained,
    /// The node said `Exit` but the sink still had this many records in flight after
    /// [`EXIT_FLUSH_TIMEOUT`].
    DrainedWithUnsettled(u64),
    /// Every event sender was dropped (nothing can happen any more).
    EventsClosed,
}

/// Most queries from the web server waiting for the loop.
pub const QUERY_QUEUE_LEN_MAX: usize = 64;

/// A read of the node, run on the driver's loop between two events.
pub type Query = Box<dyn FnOnce(&Node) + Send>;

/// Asks the driver's loop to read the node: status pages, APIs and metrics use it, so they
/// always see the node's current state without a copy of it being kept up to date.
#[derive(Clone)]
pub struct QueryHandle {
    tx: mpsc::Sender<Query>,
}

impl QueryHandle {
    /// Runs `read` with the node on the loop and returns its result; `None` if the loop is gone
    /// or does not answer within `QUERY_TIMEOUT`.
    pub async fn ask<R: Send + 'static>(
        &self,
        read: impl FnOnce(&Node) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let query: Query = Box::new(move |node| {
            let _ = tx.send(read(node));
        });
        tokio::time::timeout(QUERY_TIMEOUT, async {
            self.tx.send(query).await.ok()?;
            rx.await.ok()
        })
        .await
        .ok()
        .flatten()
    }
}

/// How long a query waits for the loop.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The ports a driver carries commands out with (the coordinator runs on its own task and
/// only exchanges channels with the driver).
pub struct Ports<F, D, S, K> {
    /// HTTP(S) fetches.
    pub fetcher: F,
    /// Service discovery.
    pub discoverer: D,
    /// The bus.
    pub sink: S,
    /// The wall clock.
    pub clock: K,
}

/// One node and its ports.
pub struct Driver<F, D, S, K> {
    node: Node,
    fetcher: F,
    discoverer: D,
    /// Shared with the scrape tasks, which submit their records from the worker.
    sink: Arc<S>,
    clock: K,
    events_tx: EventSender,
    events_rx: mpsc::Receiver<Event>,
    coord_tx: Option<mpsc::Sender<CoordRequest>>,
    queries_tx: mpsc::Sender<Query>,
    queries_rx: mpsc::Receiver<Query>,
    discovery: BTreeMap<(String, usize), JoinHandle<()>>,
}

impl<F: Fetcher, D: Discoverer, S: Sink, K: Clock> Driver<F, D, S, K> {
    /// A driver for `node`. Events come from the returned driver's [`Driver::events`] sender
    /// (give clones to the coordinator and to signal handlers).
    pub fn new(node: Node, ports: Ports<F, D, S, K>) -> Self {
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE_LEN_MAX);
        let (queries_tx, queries_rx) = mpsc::channel(QUERY_QUEUE_LEN_MAX);
        let Ports {
            fetcher,
            discoverer,
            sink,
            clock,
        } = ports;
        Driver {
            node,
            fetcher,
            discoverer,
            sink: Arc::new(sink),
            clock,
            events_tx,
            events_rx,
            coord_tx: None,
            queries_tx,
            queries_rx,
            discovery: BTreeMap::new(),
        }
    }

    /// A sender of events into this driver.
    pub fn events(&self) -> EventSender {
        self.events_tx.clone()
    }

    /// A handle for reading the node from other tasks (the web server).
    pub fn queries(&self) -> QueryHandle {
        QueryHandle {
            tx: self.queries_tx.clone(),
        }
    }

    /// Connects a coordinator: returns the receiver of member requests to hand to
    /// [`crate::ports::Coordinator::run`] together with [`Driver::events`].
    pub fn coordinator_requests(&mut self) -> mpsc::Receiver<CoordRequest> {
        let (tx, rx) = mpsc::channel(COORD_QUEUE_LEN_MAX);
        self.coord_tx = Some(tx);
        rx
    }

    /// The node, read-only.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Runs until the node exits or every event sender is gone.
    pub async fn run(mut self) -> Exit {
        loop {
            if let Some(exit) = self.drain_commands().await {
                return exit;
            }
            let wait = self
                .node
                .poll_timeout()
                .map(|(at, _)| at.since(self.clock.now()));
            let event = tokio::select! {
                biased;
                event = self.events_rx.recv() => event,
                Some(query) = self.queries_rx.recv() => {
                    query(&self.node);
                    continue;
                }
                _ = sleep_or_forever(wait) => Some(Event::Tick),
            };
            let Some(event) = event else {
                self.stop_all_discovery();
                return Exit::EventsClosed;
            };
            let now = self.clock.now();
            self.node.handle(now, event);
        }
    }

    /// Carries out every pending command; `Some` when the node said `Exit`.
    async fn drain_commands(&mut self) -> Option<Exit> {
        while let Some(command) = self.node.poll_command() {
            match command {
                Command::Register(record) => {
                    self.to_coordinator(CoordRequest::Register(record)).await
                }
                Command::UpdateMember(record) => {
                    self.to_coordinator(CoordRequest::Update(record)).await
                }
                Command::Deregister => self.to_coordinator(CoordRequest::Deregister).await,
                Command::StartDiscovery { provider, config } => {
                    let key = (provider.job.clone(), provider.index);
                    if let Some(old) = self.discovery.remove(&key) {
                        old.abort();
                    }
                    let discoverer = self.discoverer.clone();
                    let events = self.events_tx.clone();
                    let handle =
                        tokio::spawn(async move { discoverer.run(provider, config, events).await });
                    self.discovery.insert(key, handle);
                }
                Command::StopDiscovery { provider } => self.stop_discovery(&provider),
                Command::Scrape(task) => {
                    let fetcher = self.fetcher.clone();
                    let events = self.events_tx.clone();
                    let sink = self.sink.clone();
                    tokio::spawn(async move {
                        // The samples carry the timestamp the node chose (`task.sample_at`:
                        // the slot and its handoff shift), not this task's start.
                        let t0 = tokio::time::Instant::now();
                        // Boxed: the fetch's state (connection, TLS, hyper) is kilobytes, and
                        // tokio moves a task's future by value as it spawns and finishes it.
                        let outcome = Box::pin(fetcher.fetch(&task.spec)).await;
                        let duration = t0.elapsed();
                        // The pure, CPU-bound part runs here, on a runtime worker, not on the loop.
                        let completed = SCRATCH.with(|scratch| {
                            task.complete(&mut scratch.borrow_mut(), duration, &outcome)
                        });
                        if let Event::ScrapeFinished(f) = &completed.event {
                            log_dropped(&f.task.spec.url, &f.report);
                        }
                        // The records go to the sink from here, before the node hears of the
                        // scrape: markers it writes on taking the scrape back follow them.
                        sink.submit(completed.records);
                        // The loop may be gone (shutdown); nothing to do then.
                        let _ = events.send(completed.event).await;
                    });
                }
                Command::Emit(records) => self.sink.submit(records),
                Command::Exit => return Some(self.exit().await),
            }
        }
        None
    }

    async fn to_coordinator(&mut self, request: CoordRequest) {
        if let Some(tx) = &self.coord_tx {
            // Bounded wait: a coordinator that does not take requests must not stall scraping.
            if tokio::time::timeout(Duration::from_secs(5), tx.send(request))
                .await
                .is_err()
            {
                tracing::warn!("coordinator did not take a member request within 5s; dropped it");
            }
        }
    }

    fn stop_discovery(&mut self, provider: &ProviderId) {
        if let Some(handle) = self
            .discovery
            .remove(&(provider.job.clone(), provider.index))
        {
            handle.abort();
        }
    }

    fn stop_all_discovery(&mut self) {
        for (_, handle) in std::mem::take(&mut self.discovery) {
            handle.abort();
        }
    }

    /// After `Exit`: stop discovery, then wait, within [`EXIT_FLUSH_TIMEOUT`], until the sink's
    /// ledger has settled every record (the process's one flush at exit).
    async fn exit(&mut self) -> Exit {
        self.stop_all_discovery();
        self.coord_tx = None;
        let deadline = tokio::time::Instant::now() + EXIT_FLUSH_TIMEOUT;
        loop {
            let in_flight = self.sink.counts().in_flight_records;
            if in_flight == 0 {
                return Exit::Drained;
            }
            if tokio::time::Instant::now() >= deadline {
                return Exit::DrainedWithUnsettled(in_flight);
            }
            tokio::time::sleep(EXIT_FLUSH_POLL).await;
        }
    }
}

thread_local! {
    /// Each runtime worker's working memory for processing scrapes (see `Scratch`).
    static SCRATCH: std::cell::RefCell<scrapepool_core::scrape::Scratch> = Default::default();
}

async fn sleep_or_forever(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

/// Logs a scrape's dropped samples as Prometheus's scrape loop does (one warning per
/// reason, with the count), naming the target.
fn log_dropped(url: &str, report: &scrapepool_core::scrape::ScrapeReport) {
    for (reason, n) in report.dropped() {
        let what = match reason {
            "duplicate_timestamp" => {
                "Error on ingesting samples with different value but same timestamp"
            }
            "out_of_order" => "Error on ingesting out-of-order samples",
            "out_of_bounds" => {
                "Error on ingesting samples that are too old or are too far into the future"
            }
            _ => "Samples too large for any bus message",
        };
        tracing::warn!(target_url = url, num_dropped = n, "{what}");
    }
}
