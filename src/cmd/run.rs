//! `scrapepool run`: the daemon. Standalone (jobs from a file, samples to stdout) without
//! `--zookeeper`; a member of the pool (jobs and members in ZooKeeper, samples to Kafka) with it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use scrapepool_adapters::discovery::Discovery;
use scrapepool_adapters::driver::{Driver, Exit, Ports};
use scrapepool_adapters::http::HttpFetcher;
use scrapepool_adapters::kafka::{
    parse_kafka_option, KafkaSink, KafkaSinkConfig, SpoolMode, SpoolSinkConfig,
};
use scrapepool_adapters::ports::{Clock, Coordinator, Sink, SystemClock};
use scrapepool_adapters::sink::{DeliverySeries, StdoutSink};
use scrapepool_adapters::spool::{MetricsPair, SpoolSeries, StoreOptions};
use scrapepool_adapters::web::{self, ExtraMetrics, WebState};
use scrapepool_adapters::zk::{ZkConfig, ZkCoordinator};
use scrapepool_core::encode::Encoding;
use scrapepool_core::member::{JobsSnapshot, MemberRecord, MemberState, MembersSnapshot};
use scrapepool_core::{Event, Node, NodeConfig};

/// The jobs a standalone daemon runs when no `--jobs` is given: it scrapes its own metrics.
pub(crate) const DEFAULT_JOBS: &str = include_str!("../../examples/jobs.yml");

/// Arguments of `scrapepool run`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Jobs file for standalone mode (default: a built-in job scraping our own /metrics).
    #[arg(long)]
    pub jobs: Option<PathBuf>,
    /// Standalone: write samples here (JSON lines) instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// ZooKeeper, `host:port[,host:port][/chroot]`: join the pool.
    #[arg(long, requires_all = ["kafka", "topic"])]
    pub zookeeper: Option<String>,
    /// Kafka bootstrap brokers, `host:port[,host:port]`.
    #[arg(long)]
    pub kafka: Option<String>,
    /// The Kafka topic (the metric bus).
    #[arg(long)]
    pub topic: Option<String>,
    /// A librdkafka option passed through, `key=value` (TLS, SASL, ...); repeatable.
    #[arg(long = "kafka-option", value_parser = parse_kafka_option)]
    pub kafka_options: Vec<(String, String)>,
    /// Most records the memory queue holds (not yet acknowledged by the broker); beyond it a
    /// scrape's records go to the spool, or are refused (`queue_full`) without one.
    #[arg(long, default_value_t = scrapepool_adapters::kafka::QUEUE_LEN_MAX_DEFAULT, requires = "kafka", value_parser = parse_positive)]
    pub queue_records_max: usize,
    /// Most bytes the memory queue holds; beyond it as for `--queue-records-max`.
    #[arg(long, default_value_t = scrapepool_adapters::kafka::QUEUE_BYTES_MAX_DEFAULT, requires = "kafka", value_parser = parse_positive)]
    pub queue_bytes_max: usize,
    /// Spool directory: records the memory queue cannot hold go to disk in `<dir>/<id>`
    /// and are replayed in order, also after a restart with the same `--id`.
    #[arg(long, requires = "kafka")]
    pub spool_dir: Option<PathBuf>,
    /// Most bytes the spool holds; a submission beyond it is refused (`spool_full`).
    #[arg(long, default_value_t = 1 << 30, requires = "spool_dir")]
    pub spool_bytes_max: u64,
    /// Write every scrape's records to the spool before producing them, not only what the
    /// memory queue cannot hold: a `kill -9` then loses nothing handed to the sink (one
    /// unsynced write per scrape, and one cursor update per acknowledgement).
    #[arg(long, requires = "spool_dir")]
    pub spool_write_through: bool,
    /// Our member id (default: host name and listen port).
    #[arg(long)]
    pub id: Option<String>,
    /// Address of the web server (/metrics, /targets, /cluster, APIs).
    #[arg(long, default_value = "127.0.0.1:9091")]
    pub listen: SocketAddr,
    /// How many members scrape each target.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: usize,
    /// Handoff margin: a moved target changes hands at its first slot at or after the
    /// change's ZooKeeper time plus this (default 5s).
    #[arg(long, value_parser = parse_duration)]
    pub handoff_margin: Option<Duration>,
    /// Bus encoding: `remote-write`, `remote-write-v2` or `json` (standalone always writes
    /// JSON lines).
    #[arg(long, default_value = "remote-write", value_parser = parse_encoding)]
    pub encoding: Encoding,
    /// ZooKeeper session timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub session_timeout: Duration,
    /// TLS, client certificates, basic auth, headers and a rate limit for the web server, in
    /// the web config format of Prometheus and its exporters (exporter-toolkit).
    #[arg(long = "web.config.file")]
    pub web_config_file: Option<PathBuf>,
    /// Most connections the web server keeps open at once.
    #[arg(long = "web.max-connections", default_value_t = 512)]
    pub web_max_connections: usize,
    /// Longest TLS handshake, request header read or silence on a web connection.
    #[arg(long = "web.read-timeout", default_value = "30s", value_parser = parse_duration)]
    pub web_read_timeout: Duration,
    /// A Prometheus configuration whose `global.external_labels` every series gets
    /// (default: standalone, the `--jobs` file's; in a pool, none).
    #[arg(long)]
    pub global_config: Option<PathBuf>,
    /// Memory this member may use, as Prometheus writes sizes (`2GiB`, `512MB`: powers of
    /// 1024); every scrape gets 1/16 of it, half for the body (the body limit of a job
    /// without `body_size_limit`) and half for its samples. Default: the cgroup's
    /// memory.max, else the machine's memory. `0`: no budget, no caps.
    #[arg(long, value_parser = parse_size)]
    pub memory_budget: Option<u64>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    scrapepool_core::config::parse_base2_bytes(s)
}

/// A count or size of at least 1.
fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// The default memory budget: the cgroup v2 limit (`memory.max`, unless `max`), else
/// `MemTotal` of `/proc/meminfo`; the smaller when both are known.
pub(crate) fn default_memory_budget(cgroup_max: Option<&str>, meminfo: Option<&str>) -> u64 {
    let cgroup = cgroup_max.and_then(|t| t.trim().parse::<u64>().ok());
    let total = meminfo.and_then(|t| {
        let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        kib.checked_mul(1024)
    });
    match (cgroup, total) {
        (Some(c), Some(t)) => c.min(t),
        (Some(n), None) | (None, Some(n)) => n,
        (None, None) => 0,
    }
}

fn memory_budget(flag: Option<u64>) -> u64 {
    flag.unwrap_or_else(|| {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        default_memory_budget(
            read("/sys/fs/cgroup/memory.max").as_deref(),
            read("/proc/meminfo").as_deref(),
        )
    })
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    scrapepool_core::config::parse_duration(s)
}

fn parse_encoding(s: &str) -> Result<Encoding, String> {
    match s {
        "remote-write" => Ok(Encoding::RemoteWrite),
        "remote-write-v2" => Ok(Encoding::RemoteWriteV2),
        "json" => Ok(Encoding::Json),
        other => Err(format!(
            "unknown encoding {other:?}: remote-write, remote-write-v2 or json"
        )),
    }
}

/// Runs the daemon until it has drained (SIGTERM, SIGINT) or fails to start.
pub(crate) fn run(args: Args) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scrapepool run: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(daemon(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("scrapepool run: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn default_id(listen: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "scrapepool".into());
    format!("{host}-{}", listen.port())
}

async fn daemon(args: Args) -> anyhow::Result<ExitCode> {
    let clock = SystemClock;
    let id = args.id.clone().unwrap_or_else(|| default_id(args.listen));
    let standalone = args.zookeeper.is_none();
    let global_source = args
        .global_config
        .clone()
        .or_else(|| args.jobs.clone().filter(|_| standalone));
    let external_labels = match &global_source {
        Some(path) => {
            let origin = path.display().to_string();
            let text = super::read_jobs_file(path)
                .map_err(|e| anyhow::anyhow!("cannot read {origin}: {e}"))?;
            match scrapepool_core::config::load_global(&text, &origin) {
                Ok(global) => scrapepool_core::labels::Labels::from_pairs(global.external_labels),
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        None => Default::default(),
    };
    let config = NodeConfig {
        id: id.clone(),
        replication_factor: args.replication_factor.max(1),
        handoff_margin: args
            .handoff_margin
            .unwrap_or(scrapepool_core::node::HANDOFF_MARGIN),
        handoff_window: scrapepool_core::node::HANDOFF_WINDOW,
        // Alone there is nobody to hand targets to: leave at once.
        drain_grace: standalone.then_some(Duration::ZERO),
        web: args.listen.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: scrapepool_core::format::rfc3339_ms(clock.now().as_millis()),
        encoding: if standalone {
            Encoding::Json
        } else {
            args.encoding
        },
        message_bytes_max: 1 << 20,
        external_labels,
        memory_budget_bytes: memory_budget(args.memory_budget),
    };
    let caps = scrapepool_core::scrape::scrape_caps(config.memory_budget_bytes);
    tracing::info!(
        memory_budget_bytes = config.memory_budget_bytes,
        default_body_size_limit_bytes = caps.body_bytes,
        samples_per_scrape_max = caps.samples,
        "memory budget"
    );
    let node = Node::new(config, clock.now());
    let web_config = match &args.web_config_file {
        Some(path) => Some(Arc::new(web::WebConfigSource::open(path)?)),
        None => None,
    };
    if let Some(warning) = web::exposure_warning(
        args.listen,
        web_config.as_ref().map(|c| c.current()).as_deref(),
    ) {
        tracing::warn!("{warning}");
    }
    let web_options = web::ServeOptions {
        max_connections: args.web_max_connections,
        read_timeout: args.web_read_timeout,
        web_config,
    };
    let fetcher = HttpFetcher::new();
    let discoverer = Discovery::default();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let web_shutdown = {
        let mut rx = shutdown_rx.clone();
        async move {
            let _ = rx.wait_for(|done| *done).await;
        }
    };

    let exit = if standalone {
        let sink = Arc::new(match &args.output {
            Some(path) => StdoutSink::to_file(path)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
            None => StdoutSink::stdout(),
        });
        let (origin, text) = match &args.jobs {
            Some(path) => (
                path.display().to_string(),
                super::read_jobs_file(path)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
            ),
            None => (
                "built-in jobs".to_string(),
                DEFAULT_JOBS.replace("127.0.0.1:9091", &args.listen.to_string()),
            ),
        };
        // A `scrape_config_files` pattern is relative to the jobs file's directory.
        let dir = args
            .jobs
            .as_deref()
            .and_then(|p| p.parent())
            .map(|d| d.to_path_buf())
            .unwrap_or_default();
        let (_, errors) = scrapepool_core::config::load_config(
            &text,
            &origin,
            &Default::default(),
            &mut super::config_files(&dir),
        );
        if !errors.is_empty() {
            for e in &errors {
                eprintln!("{e}");
            }
            return Ok(ExitCode::FAILURE);
        }
        let jobs =
            scrapepool_core::jobs_file::split_jobs_with(&text, &mut super::config_files(&dir))
                .map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        let metrics = sink.clone();
        let extra: Arc<dyn ExtraMetrics> = Arc::new(DeliverySeries(move || metrics.counts()));
        let driver = Driver::new(
            node,
            Ports {
                fetcher,
                discoverer,
                sink,
                clock,
            },
        );
        let events = driver.events();
        // Standalone: a pool of one, always connected, with the file's jobs.
        let me = MemberRecord {
            id: id.clone(),
            state: MemberState::Active,
            version: env!("CARGO_PKG_VERSION").into(),
            web: args.listen.to_string(),
            started_at: String::new(),
        };
        events.send(Event::SessionConnected).await?;
        events
            .send(Event::MembersChanged(MembersSnapshot {
                version: 1,
                members: vec![me],
                ..Default::default()
            }))
            .await?;
        events
            .send(Event::JobsChanged(JobsSnapshot {
                version: 1,
                jobs,
                ..Default::default()
            }))
            .await?;
        serve(driver, listener, web_options, extra, web_shutdown).await
    } else {
        let (brokers, topic) = (
            args.kafka.clone().unwrap_or_default(),
            args.topic.clone().unwrap_or_default(),
        );
        let mut kafka = KafkaSinkConfig::new(brokers, topic);
        kafka.options = args.kafka_options.clone();
        kafka.queue_len_max = args.queue_records_max;
        kafka.queue_bytes_max = args.queue_bytes_max;
        if let Some(dir) = &args.spool_dir {
            if id.is_empty() || id.contains('/') || id == "." || id == ".." {
                anyhow::bail!("--spool-dir: member id {id:?} cannot name a directory");
            }
            kafka.spool = Some(SpoolSinkConfig {
                dir: dir.join(&id),
                bytes_max: args.spool_bytes_max,
                mode: if args.spool_write_through {
                    SpoolMode::WriteThrough
                } else {
                    SpoolMode::Overflow
                },
                store: StoreOptions::default(),
            });
        }
        let sink = Arc::new(KafkaSink::new(&kafka)?);
        let metrics = sink.clone();
        let delivery: Arc<dyn ExtraMetrics> = Arc::new(DeliverySeries(move || metrics.counts()));
        let extra: Arc<dyn ExtraMetrics> = if sink.spool_counts().is_some() {
            let spooled = sink.clone();
            let spool: Arc<dyn ExtraMetrics> = Arc::new(SpoolSeries(
                move || spooled.spool_counts().map(|c| c.0).unwrap_or_default(),
                sink.spool_counts().map(|c| c.1).unwrap_or(0),
            ));
            Arc::new(MetricsPair(delivery, spool))
        } else {
            delivery
        };
        let mut zk = ZkConfig::new(args.zookeeper.clone().unwrap_or_default());
        zk.session_timeout = args.session_timeout;
        let coordinator = ZkCoordinator::new(zk)?;
        let mut driver = Driver::new(
            node,
            Ports {
                fetcher,
                discoverer,
                sink,
                clock,
            },
        );
        let requests = driver.coordinator_requests();
        tokio::spawn(coordinator.run(driver.events(), requests));
        // The driver's exit waits for the sink's ledger to settle: the one flush.
        serve(driver, listener, web_options, extra, web_shutdown).await
    };
    let _ = shutdown_tx.send(true);
    if let Exit::DrainedWithUnsettled(records) = exit {
        tracing::warn!(
            records,
            "the sink still held unacknowledged records at exit"
        );
    }
    tracing::info!(?exit, "scrapepool stopped");
    Ok(match exit {
        Exit::Drained => ExitCode::SUCCESS,
        Exit::DrainedWithUnsettled(_) | Exit::EventsClosed => ExitCode::FAILURE,
    })
}

/// Runs the web server and the driver; SIGTERM/SIGINT start the drain, a second one exits.
async fn serve<F, D, S, K>(
    driver: Driver<F, D, S, K>,
    listener: tokio::net::TcpListener,
    web_options: web::ServeOptions,
    extra: Arc<dyn ExtraMetrics>,
    web_shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Exit
where
    F: scrapepool_adapters::ports::Fetcher,
    D: scrapepool_adapters::ports::Discoverer,
    S: scrapepool_adapters::ports::Sink,
    K: Clock,
{
    let state = WebState {
        queries: driver.queries(),
        extra,
    };
    tokio::spawn(async move {
        if let Err(e) = web::serve_with(listener, state, web_options, web_shutdown).await {
            tracing::error!("web server stopped: {e}");
        }
    });
    let events = driver.events();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("cannot watch SIGTERM: {e}");
                    return;
                }
            };
        let mut signals = 0;
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            signals += 1;
            if signals > 1 {
                eprintln!("scrapepool: second signal, exiting without draining");
                std::process::exit(130);
            }
            tracing::info!("shutdown requested: draining");
            let _ = events.send(Event::ShutdownRequested).await;
        }
    });
    driver.run().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_bounds_are_at_least_one() {
        assert_eq!(parse_positive("5"), Ok(5));
        assert!(parse_positive("0").is_err());
        assert!(parse_positive("-1").is_err());
    }

    #[test]
    fn the_default_budget_is_the_cgroup_limit_else_the_machine() {
        let meminfo = "MemTotal:       24683656 kB\nMemFree:  1 kB\n";
        assert_eq!(default_memory_budget(None, Some(meminfo)), 24683656 * 1024);
        assert_eq!(
            default_memory_budget(Some("1073741824\n"), Some(meminfo)),
            1 << 30
        );
        // `max`: no cgroup limit.
        assert_eq!(
            default_memory_budget(Some("max\n"), Some(meminfo)),
            24683656 * 1024
        );
        // A cgroup limit above the machine's memory: the machine.
        assert_eq!(
            default_memory_budget(Some("999999999999999\n"), Some(meminfo)),
            24683656 * 1024
        );
        assert_eq!(default_memory_budget(None, None), 0);
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("512MB"), Ok(512 << 20));
    }
}
