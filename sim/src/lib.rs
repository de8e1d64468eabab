//! # scrapepool-sim
//!
//! Runs a pool of scrapers — the real [`Driver`] and [`Node`], the production HTTP code over
//! turmoil connections — against simulated exporters, a ZooKeeper model and a Kafka model,
//! from one seed. A run has two phases: **chaos** (crashes, graceful leaves, joins,
//! partitions, session expiries, slow links, exporter flaps, job edits), then **heal**, after
//! which the pool must converge within [`SimConfig::convergence_bound`]. Checkers, one module
//! each under [`check`], read the trace afterwards. The same seed gives a byte-identical trace.

pub mod check;
pub mod exporter;
pub mod faults;
pub mod kafka;
pub mod trace;
pub mod zk;

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use scrapepool_adapters::driver::{Driver, Ports, QueryHandle};
use scrapepool_adapters::http::{Connector, HttpFetcher};
use scrapepool_adapters::ports::{Clock, Coordinator, Discoverer, EventSender, Sink};
use scrapepool_adapters::sink::SharedLedger;
use scrapepool_core::config::SdConfig;
use scrapepool_core::encode::Record;
use scrapepool_core::node::ProviderId;
use scrapepool_core::spool::SpoolConfig;
use scrapepool_core::{Node, NodeConfig, Timestamp};

use crate::exporter::ExporterFaults;
use crate::faults::{Fault, Schedule};
use crate::kafka::{KafkaModel, ModelSink};
use crate::trace::{Seen, Trace};
use crate::zk::{ModelCoordinator, ZkModel};

/// Simulated time per step: the granularity of every timer in the run.
pub const TICK: Duration = Duration::from_millis(100);

/// The simulated wall clock starts here (2024-01-01T00:00:00Z), so timestamps look real.
pub const EPOCH_MS: i64 = 1_704_067_200_000;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed: everything random in the run derives from it.
    pub seed: u64,
    /// Scrapers at the start.
    pub scrapers: usize,
    /// Targets (spread over the exporter hosts).
    pub targets: u32,
    /// Exporter hosts.
    pub exporters: u32,
    /// Simulated duration of the whole run.
    pub duration: Duration,
    /// The chaos phase: the first `chaos` of the run.
    pub chaos: Duration,
    /// Scrape interval of the job.
    pub interval: Duration,
    /// ZooKeeper session timeout.
    pub session_timeout: Duration,
    /// Replication factor.
    pub replication_factor: usize,
    /// Mean simulated time between two faults in the chaos phase.
    pub fault_every: Duration,
    /// Which faults may happen.
    pub faults: faults::Kinds,
    /// Most records each scraper's memory queue holds (the ledger's bound).
    pub queue_records_max: usize,
    /// Whether each scraper spools to its host's disk what its memory queue cannot hold
    /// (`core::spool`); the disk outlives a crash of the process.
    pub spool: bool,
    /// With [`SimConfig::spool`]: every submission goes through the spool
    /// (`SpoolMode::WriteThrough`), so a crash loses nothing handed to the sink.
    pub spool_write_through: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            scrapers: 5,
            targets: 500,
            exporters: 5,
            duration: Duration::from_secs(30 * 60),
            chaos: Duration::from_secs(20 * 60),
            interval: Duration::from_secs(15),
            session_timeout: Duration::from_secs(10),
            replication_factor: 1,
            fault_every: Duration::from_secs(45),
            faults: faults::Kinds::all(),
            queue_records_max: kafka::QUEUE_LEN_MAX,
            spool: false,
            spool_write_through: false,
        }
    }
}

impl SimConfig {
    /// How long after the heal the pool has to converge: a session timeout (for the last
    /// crashed member's record to go), then a handoff margin and an interval, plus slack for
    /// restarts and watch delivery.
    pub fn convergence_bound(&self) -> Duration {
        self.session_timeout + 3 * self.interval + Duration::from_secs(5)
    }

    /// The command that reproduces this run: every setting, so the line parses back into
    /// this very configuration.
    pub fn reproduce_command(&self) -> String {
        format!(
            "cargo run --release -- sim --seed {} --scrapers {} --targets {} --exporters {} --duration {} --chaos {} --interval {} --session-timeout {} --replication-factor {} --fault-every {} --faults {} --queue-records-max {}{}{}",
            self.seed,
            self.scrapers,
            self.targets,
            self.exporters,
            duration_arg(self.duration),
            duration_arg(self.chaos),
            duration_arg(self.interval),
            duration_arg(self.session_timeout),
            self.replication_factor,
            duration_arg(self.fault_every),
            self.faults,
            self.queue_records_max,
            if self.spool { " --spool" } else { "" },
            if self.spool_write_through {
                " --spool-write-through"
            } else {
                ""
            },
        )
    }
}

/// A duration as the command line reads it, exactly (whole milliseconds).
fn duration_arg(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The shared world of one run.
pub struct World {
    /// The run's settings.
    pub config: SimConfig,
    /// ZooKeeper.
    pub zk: Arc<ZkModel>,
    /// Kafka.
    pub kafka: Arc<KafkaModel>,
    /// What happened.
    pub trace: Arc<Trace>,
    /// Exporter faults.
    pub exporter_faults: Arc<ExporterFaults>,
    /// Per running scraper: a sender of events into its driver and a read handle.
    pub scrapers: Mutex<BTreeMap<String, (EventSender, QueryHandle)>>,
    /// Per scraper (its latest start): its producer's delivery ledger, the one source of its
    /// delivery counts.
    pub ledgers: Mutex<BTreeMap<String, SharedLedger>>,
    /// Per scraper host: its disk, which its spool writes and a restart reads (only with
    /// [`SimConfig::spool`]).
    pub disks: Mutex<BTreeMap<String, Arc<Mutex<kafka::Disk>>>>,
}

/// Simulated milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    EPOCH_MS
        + turmoil::sim_elapsed()
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
}

/// The `Clock` port in the simulation.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimClock;

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        Timestamp(now_ms())
    }
}

/// Production HTTP over turmoil TCP.
#[derive(Clone, Copy, Debug, Default)]
pub struct TurmoilConnector;

impl Connector for TurmoilConnector {
    type Io = turmoil::net::TcpStream;

    async fn connect(&self, host: &str, port: u16) -> io::Result<Self::Io> {
        turmoil::net::TcpStream::connect((host, port)).await
    }
}

/// The sim's job uses static targets only; discovery is never started.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDiscovery;

impl Discoverer for NoDiscovery {
    async fn run(&self, _provider: ProviderId, _config: SdConfig, _events: EventSender) {}
}

/// The target number behind an `instance` label (`t17` → 17).
pub fn target_of_instance(instance: &str) -> u32 {
    instance
        .strip_prefix('t')
        .and_then(|n| n.parse().ok())
        .unwrap_or(u32::MAX)
}

/// The job every run scrapes: target `i` is `/t/i` on exporter host `exp-(i mod E)`.
pub fn job_yaml(config: &SimConfig, targets: impl Iterator<Item = u32>) -> String {
    let mut y = format!(
        "job_name: sim\nscrape_interval: {}s\nscrape_timeout: {}s\nstatic_configs:\n",
        config.interval.as_secs(),
        (config.interval.as_secs() / 3).max(1)
    );
    for t in targets {
        y.push_str(&format!(
            "  - targets: ['exp-{}:{}']\n    labels: {{instance: t{t}, __metrics_path__: /t/{t}}}\n",
            t % config.exporters,
            exporter::PORT
        ));
    }
    y
}

/// The sink port as the node sees it: writes each delivery into the trace, then hands it on.
pub struct TracedSink<S> {
    /// The scraper's host name.
    pub scraper: String,
    /// Where deliveries are written down.
    pub trace: Arc<Trace>,
    /// The sink behind.
    pub inner: S,
}

impl<S: Sink> Sink for TracedSink<S> {
    fn submit(&self, records: Vec<Record>) {
        if let Some(first) = records.first() {
            let instance = first
                .headers
                .iter()
                .find(|(k, _)| *k == "instance")
                .map(|(_, v)| v.as_str())
                .unwrap_or("");
            self.trace.push(
                now_ms(),
                Seen::Emitted {
                    scraper: self.scraper.clone(),
                    target: target_of_instance(instance),
                    samples: records.iter().map(|r| r.samples as u32).sum(),
                },
            );
        }
        self.inner.submit(records);
    }

    fn counts(&self) -> scrapepool_core::delivery::DeliveryCounts {
        self.inner.counts()
    }
}

async fn scraper_main(world: Arc<World>, name: String) -> Result<(), Box<dyn std::error::Error>> {
    world.trace.push(
        now_ms(),
        Seen::Started {
            scraper: name.clone(),
        },
    );
    let mut config = NodeConfig::for_tests(&name);
    config.replication_factor = world.config.replication_factor;
    config.web = format!("{name}:9091");
    let node = Node::new(config, SimClock.now());
    let ledger = SharedLedger::new(kafka::ledger_config(
        world.config.queue_records_max,
        world.config.spool,
    ));
    let spool = world.config.spool.then(|| {
        let disk = world
            .disks
            .lock()
            .expect("disks lock")
            .entry(name.clone())
            .or_default()
            .clone();
        let config = if world.config.spool_write_through {
            SpoolConfig::write_through(kafka::SPOOL_BYTES_MAX)
        } else {
            SpoolConfig::overflow(kafka::SPOOL_BYTES_MAX)
        };
        let spool = disk.lock().expect("disk lock").open(config);
        Arc::new(kafka::SpoolSide {
            spool: Mutex::new(spool),
            disk,
        })
    });
    world
        .ledgers
        .lock()
        .expect("ledgers lock")
        .insert(name.clone(), ledger.clone());
    let sink = TracedSink {
        scraper: name.clone(),
        trace: world.trace.clone(),
        inner: ModelSink {
            scraper: name.clone(),
            broker: world.kafka.clone(),
            trace: world.trace.clone(),
            ledger: ledger.clone(),
            now_ms,
            spool,
            outbox: Default::default(),
        },
    };
    let ports = Ports {
        fetcher: HttpFetcher::with_connector(TurmoilConnector).keep_alive(),
        discoverer: NoDiscovery,
        sink,
        clock: SimClock,
    };
    let mut driver = Driver::new(node, ports);
    let coordinator = ModelCoordinator::new(world.zk.clone(), &name, world.config.session_timeout);
    let requests = driver.coordinator_requests();
    tokio::spawn(coordinator.run(driver.events(), requests));
    world
        .scrapers
        .lock()
        .expect("scrapers lock")
        .insert(name.clone(), (driver.events(), driver.queries()));
    driver.run().await;
    world.scrapers.lock().expect("scrapers lock").remove(&name);
    let (emitted, delivered, not_delivered, in_flight) = counters(&ledger);
    world.trace.push(
        now_ms(),
        Seen::Counters {
            scraper: name,
            emitted,
            delivered,
            not_delivered,
            in_flight,
        },
    );
    Ok(())
}

/// A scraper's delivery counts, from its ledger: (emitted, delivered, not delivered, records
/// in flight).
fn counters(ledger: &SharedLedger) -> (u64, u64, u64, u64) {
    let c = ledger.counts();
    (
        c.emitted_samples(),
        c.delivered_samples,
        c.not_delivered_samples(),
        c.in_flight_records,
    )
}

/// The outcome of one run.
#[derive(Debug)]
pub struct Outcome {
    /// The settings.
    pub config: SimConfig,
    /// Digest of the trace.
    pub digest: u64,
    /// Every invariant violated, with when.
    pub violations: Vec<check::Violation>,
    /// Figures for the summary table.
    pub summary: check::Summary,
    /// Wall time the run took.
    pub wall: Duration,
    /// The whole trace, for explaining a violation.
    pub trace: Vec<(i64, Seen)>,
    /// Every fault injected, with when.
    pub faults: Vec<(i64, Fault)>,
}

/// Runs one seed and checks every invariant.
pub fn run(config: SimConfig) -> Outcome {
    let started = std::time::Instant::now();
    let mut sim = turmoil::Builder::new()
        .simulation_duration(config.duration + Duration::from_secs(60))
        .tick_duration(TICK)
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_millis(EPOCH_MS as u64))
        .min_message_latency(Duration::from_micros(200))
        .max_message_latency(Duration::from_millis(2))
        .rng_seed(config.seed)
        .build();
    let zk = ZkModel::new(Arc::new(|| turmoil::sim_elapsed().unwrap_or_default()));
    let world = Arc::new(World {
        config: config.clone(),
        zk,
        kafka: Arc::new(KafkaModel::default()),
        trace: Arc::new(Trace::default()),
        exporter_faults: Arc::new(ExporterFaults::default()),
        scrapers: Mutex::new(BTreeMap::new()),
        ledgers: Mutex::new(BTreeMap::new()),
        disks: Mutex::new(BTreeMap::new()),
    });
    world
        .zk
        .put_job("sim", &job_yaml(&config, 0..config.targets));
    for e in 0..config.exporters {
        let (trace, faults) = (world.trace.clone(), world.exporter_faults.clone());
        sim.host(format!("exp-{e}"), move || {
            exporter::serve(trace.clone(), faults.clone(), now_ms)
        });
    }
    let schedule = Schedule::generate(&config);
    let mut hosts: Vec<String> = Vec::new();
    for i in 0..config.scrapers {
        hosts.push(add_scraper(&mut sim, &world, i));
    }
    let mut faults = schedule.faults.into_iter().peekable();
    let mut state = faults::State::default();
    loop {
        let now = sim.elapsed();
        while faults.peek().is_some_and(|(at, _)| *at <= now) {
            let (_, fault) = faults.next().expect("peeked");
            world
                .trace
                .push(now_ms_of(now), Seen::Fault(format!("{fault:?}")));
            apply(&mut sim, &world, &mut state, &mut hosts, fault);
        }
        world.zk.tick();
        // `step` reports whether every *client* finished; this run has only hosts until the end.
        match sim.step() {
            Ok(_) => {}
            Err(e) => {
                // A host returned an error: the run is still judged on its trace.
                world.trace.push(
                    now_ms_of(sim.elapsed()),
                    Seen::Fault(format!("host error: {e}")),
                );
                break;
            }
        }
        if sim.elapsed() >= config.duration {
            break;
        }
    }
    // Counters of the scrapers still running, for the delivery checker.
    let end_ms = now_ms_of(sim.elapsed());
    let running: Vec<(String, QueryHandle, Option<SharedLedger>)> = world
        .scrapers
        .lock()
        .expect("scrapers lock")
        .iter()
        .map(|(n, (_, q))| {
            let ledger = world.ledgers.lock().expect("ledgers lock").get(n).cloned();
            (n.clone(), q.clone(), ledger)
        })
        .collect();
    let answers: Arc<Mutex<Vec<(String, Vec<(u32, bool)>)>>> = Default::default();
    let collected = answers.clone();
    let trace = world.trace.clone();
    sim.client("checker", async move {
        for (name, q, ledger) in running {
            let (trace, scraper) = (trace.clone(), name.clone());
            let answer = q
                .ask(move |node| {
                    // Written on the driver's loop, between two turns: the counters agree
                    // with every delivery the trace holds so far.
                    if let Some(ledger) = &ledger {
                        let (emitted, delivered, not_delivered, in_flight) = counters(ledger);
                        trace.push(
                            now_ms(),
                            Seen::Counters {
                                scraper,
                                emitted,
                                delivered,
                                not_delivered,
                                in_flight,
                            },
                        );
                    }
                    let owned: Vec<(u32, bool)> = node
                        .scraped_targets()
                        .filter_map(|(key, job, role)| {
                            let t = node
                                .job_targets(job)
                                .into_iter()
                                .find(|t| &t.target.key == key)?;
                            Some((
                                target_of_instance(t.target.labels.get("instance")?),
                                matches!(role, scrapepool_core::node::Role::Owner { .. }),
                            ))
                        })
                        .collect();
                    owned
                })
                .await;
            if let Some(owned) = answer {
                collected.lock().expect("answers lock").push((name, owned));
            }
        }
        Ok(())
    });
    let _ = sim.run();
    let owned = std::mem::take(&mut *answers.lock().expect("answers lock"));
    let live: Vec<String> = world.zk.member_ids();
    let trace = world.trace.take();
    let (violations, summary) = check::check_all(&check::Run {
        config: &config,
        faults: &state,
        trace: &trace,
        end_ms,
        owned: &owned,
        live_members: &live,
    });
    let digest = trace::digest(&trace);
    Outcome {
        digest,
        config,
        violations,
        summary,
        wall: started.elapsed(),
        trace,
        faults: state.log,
    }
}

fn now_ms_of(elapsed: Duration) -> i64 {
    EPOCH_MS + elapsed.as_millis() as i64
}

fn add_scraper(sim: &mut turmoil::Sim<'_>, world: &Arc<World>, i: usize) -> String {
    let name = format!("s{i}");
    let (w, n) = (world.clone(), name.clone());
    sim.host(name.clone(), move || scraper_main(w.clone(), n.clone()));
    name
}

fn apply(
    sim: &mut turmoil::Sim<'_>,
    world: &Arc<World>,
    state: &mut faults::State,
    hosts: &mut Vec<String>,
    fault: Fault,
) {
    state.record(now_ms_of(sim.elapsed()), &fault);
    match fault {
        Fault::Crash(h) => sim.crash(h.as_str()),
        Fault::Restart(h) => sim.bounce(h.as_str()),
        Fault::Leave(h) => {
            if let Some((tx, _)) = world.scrapers.lock().expect("scrapers lock").get(&h) {
                let _ = tx.try_send(scrapepool_core::Event::ShutdownRequested);
            }
        }
        Fault::Join => {
            let i = hosts.len();
            hosts.push(add_scraper(sim, world, i));
        }
        Fault::ZkPartition(h, cut) => world.zk.set_reachable(&h, !cut),
        Fault::KafkaPartition(h, cut) => {
            let mut u = world.kafka.unreachable.lock().expect("kafka lock");
            if cut {
                u.insert(h);
            } else {
                u.remove(&h);
            }
        }
        Fault::KafkaOutage(down) => *world.kafka.down.lock().expect("kafka lock") = down,
        Fault::ExporterPartition(h, e, cut) => {
            if cut {
                sim.partition(h.as_str(), format!("exp-{e}").as_str());
            } else {
                sim.repair(h.as_str(), format!("exp-{e}").as_str());
            }
        }
        Fault::Expire(h) => world.zk.expire_host(&h),
        Fault::SlowLink(h, e, ms) => sim.set_link_latency(
            h.as_str(),
            format!("exp-{e}").as_str(),
            Duration::from_millis(ms),
        ),
        Fault::Flap(t, on) => {
            let mut f = world.exporter_faults.failing.lock().expect("faults lock");
            if on {
                f.insert(t);
            } else {
                f.remove(&t);
            }
        }
        Fault::SetTargets(targets) => world
            .zk
            .put_job("sim", &job_yaml(&world.config, targets.into_iter())),
    }
}
