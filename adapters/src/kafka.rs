//! The Kafka sink: publishes records on one topic through librdkafka (rdkafka), as the
//! delivery ledger (`scrapepool_core::delivery`) says.
//!
//! # Guarantees
//! - Idempotent producer, `acks=all`: a broker outage or a retry never duplicates or
//!   reorders the records of one partition (one target's records share a key, so a partition).
//! - A sample counts as delivered only when the broker acknowledged its record. librdkafka
//!   retries on its own for `message_timeout_ms` (default 5 min), so an outage shorter than
//!   that loses nothing; after it the record is settled as timed out. With a spool a record
//!   never times out: it waits in the memory queue or on disk, within their bounds, for as
//!   long as the broker is away ([`KafkaSinkConfig::effective_message_timeout_ms`]).
//! - Every sample handed to [`KafkaSink::submit`] is counted exactly once by the ledger:
//!   delivered, failed (by reason), rejected because the queue was full, or in flight.
//!
//! # Queue policy
//! The ledger's: at most `queue_len_max` records and `queue_bytes_max` bytes in flight; a
//! submission that does not fit is rejected whole, at once, and counted (the records already
//! queued keep their place). librdkafka's own queue is sized to the same bound as a
//! backstop; if it still refuses a record, that record alone is settled as
//! `ClientQueueFull`.
//!
//! # Spool
//! With [`KafkaSinkConfig::spool`], the policy of `scrapepool_core::spool` stands in front
//! of the ledger (ARCHITECTURE.md, "The spool"): a submission the queue cannot admit is
//! appended to the store (`crate::spool`) instead of being rejected, and a replay thread
//! hands spooled entries to the producer, oldest first, whenever the ledger has room (woken
//! by each delivery report, and every 100 ms). Routing, appending and producing happen under
//! one lock, so the producer sees records in the order they were submitted. A submission
//! that spills waits for its append and `fdatasync` (milliseconds; ARCHITECTURE.md, "The
//! spool") — the one case where [`KafkaSink::submit`](Sink::submit) waits on I/O.
//!
//! # Why a `ThreadedProducer` with a `ProducerContext`
//! Delivery reports arrive on librdkafka's polling thread, where the context's `delivery`
//! callback settles each record in the ledger by the id it was produced with. A
//! `FutureProducer` would allocate a oneshot channel per record and need a task per
//! submission to await them; the callback does the same bookkeeping with no task, no
//! per-record channel and no tokio runtime.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use scrapepool_core::delivery::Produce;
use scrapepool_core::delivery::{Admission, DeliveryCounts, FailReason, LedgerConfig, RecordId};
use scrapepool_core::encode::Record;
pub use scrapepool_core::spool::SpoolMode;
use scrapepool_core::spool::{Route, Spool, SpoolConfig, SpoolCounts};

use crate::ports::{Clock, Sink, SystemClock};
use crate::sink::SharedLedger;
use crate::spool::{SpoolStore, StoreError, StoreOptions};

/// Default for [`KafkaSinkConfig::message_timeout_ms`]: rides out a broker restart or a
/// network blip of a few minutes.
pub const MESSAGE_TIMEOUT_MS_DEFAULT: u64 = 300_000;
/// Default for [`KafkaSinkConfig::queue_len_max`] (records not yet acknowledged).
pub const QUEUE_LEN_MAX_DEFAULT: usize = 100_000;
/// Default for [`KafkaSinkConfig::queue_bytes_max`] (bytes not yet acknowledged).
pub const QUEUE_BYTES_MAX_DEFAULT: usize = 512 * 1024 * 1024;

/// Client options the sink sets itself and that `--kafka-option` may not override: they
/// carry the delivery guarantee and the queue policy.
pub const RESERVED_OPTIONS: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "queue.buffering.max.messages",
    "queue.buffering.max.kbytes",
    "compression.codec",
    "compression.type",
];

/// Compression of the produced record batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KafkaCompression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4: cheap on the CPU; remote-write payloads are already snappy-compressed.
    #[default]
    Lz4,
    /// Zstandard: the best ratio, for JSON payloads.
    Zstd,
}

impl KafkaCompression {
    /// librdkafka's name for it (`compression.codec`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

impl std::str::FromStr for KafkaCompression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "none" => Self::None,
            "gzip" => Self::Gzip,
            "snappy" => Self::Snappy,
            "lz4" => Self::Lz4,
            "zstd" => Self::Zstd,
            other => {
                return Err(format!(
                    "unknown Kafka compression {other:?} (none, gzip, snappy, lz4, zstd)"
                ))
            }
        })
    }
}

/// How to reach the broker and how to bound the sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaSinkConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The topic every record goes to.
    pub topic: String,
    /// Compression of record batches.
    pub compression: KafkaCompression,
    /// How long librdkafka keeps retrying a record before it is settled as failed (without a
    /// spool; see [`KafkaSinkConfig::effective_message_timeout_ms`]).
    pub message_timeout_ms: u64,
    /// Most records waiting for an acknowledgement; a submission beyond it is rejected.
    pub queue_len_max: usize,
    /// Most bytes (keys, headers, payloads) waiting for an acknowledgement.
    pub queue_bytes_max: usize,
    /// Pass-through librdkafka options (`--kafka-option key=value`: TLS, SASL, tuning),
    /// applied after the sink's own; [`RESERVED_OPTIONS`] are refused.
    pub options: Vec<(String, String)>,
    /// A disk spool behind the memory queue (none: a full queue rejects).
    pub spool: Option<SpoolSinkConfig>,
}

/// Where and how large the sink's disk spool is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolSinkConfig {
    /// The spool directory of this member (`--spool-dir`/`<id>`).
    pub dir: PathBuf,
    /// Most bytes of entries not released (`--spool-bytes-max`).
    pub bytes_max: u64,
    /// What goes to disk: only what the memory queue cannot admit, or every submission
    /// before it is produced (`--spool-write-through`).
    pub mode: SpoolMode,
    /// How the store writes.
    pub store: StoreOptions,
}

impl KafkaSinkConfig {
    /// A config with the defaults for everything but the brokers and the topic.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic: topic.into(),
            compression: KafkaCompression::default(),
            message_timeout_ms: MESSAGE_TIMEOUT_MS_DEFAULT,
            queue_len_max: QUEUE_LEN_MAX_DEFAULT,
            queue_bytes_max: QUEUE_BYTES_MAX_DEFAULT,
            options: Vec::new(),
            spool: None,
        }
    }

    /// The message timeout in force: `message_timeout_ms`, or 0 (never) with a spool. A
    /// spooling sink bounds what it holds by space, not time: a record that timed out in the
    /// memory queue could only be dropped (it cannot go to the spool behind newer records of
    /// its key without breaking their order), so it waits for the broker like those on disk.
    pub fn effective_message_timeout_ms(&self) -> u64 {
        if self.spool.is_some() {
            0
        } else {
            self.message_timeout_ms
        }
    }

    /// The librdkafka client configuration this sink runs with.
    pub fn client_config(&self) -> Result<ClientConfig, KafkaSinkError> {
        if self.brokers.trim().is_empty() {
            return Err(KafkaSinkError::Config("the broker list is empty".into()));
        }
        if self.topic.is_empty() {
            return Err(KafkaSinkError::Config("the topic is empty".into()));
        }
        if self.queue_len_max == 0 || self.queue_bytes_max == 0 {
            return Err(KafkaSinkError::Config(
                "queue_len_max and queue_bytes_max must be positive".into(),
            ));
        }
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.codec", self.compression.as_str())
            .set(
                "message.timeout.ms",
                self.effective_message_timeout_ms().to_string(),
            )
            // The sink's own admission check is the bound; librdkafka's queue is the same
            // size plus slack as a backstop: 1 MiB for its per-message overhead, and 1024
            // records because it frees a record's slot only after the delivery report that
            // lets the ledger admit the next one.
            .set(
                "queue.buffering.max.messages",
                self.queue_len_max
                    .saturating_add(1024)
                    .min(i32::MAX as usize)
                    .to_string(),
            )
            .set(
                "queue.buffering.max.kbytes",
                (self.queue_bytes_max / 1024 + 1024)
                    .min(i32::MAX as usize)
                    .to_string(),
            )
            // Batch for 50 ms: scrapes finish a few at a time, all through the interval, and
            // each produce request wakes the broker thread. 5 ms cost 18% more CPU per sample
            // than 50 (bench/peers.py, node_exporter x200 @1s); 200 gained nothing more.
            .set("linger.ms", "50")
            .set("client.id", "scrapepool");
        for (key, value) in &self.options {
            if RESERVED_OPTIONS.contains(&key.as_str()) {
                return Err(KafkaSinkError::ReservedOption(key.clone()));
            }
            config.set(key, value);
        }
        config.set_log_level(RDKafkaLogLevel::Warning);
        Ok(config)
    }
}

/// Parses one `--kafka-option key=value` (for clap's `value_parser`): the value may hold
/// `=`; the key may not be empty.
pub fn parse_kafka_option(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected key=value, got {arg:?}")),
    }
}

/// Why a [`KafkaSink`] could not be created.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSinkError {
    /// The sink's own settings are invalid.
    #[error("Kafka sink: {0}")]
    Config(String),
    /// A `--kafka-option` tried to override a setting the delivery guarantee depends on.
    #[error("Kafka option {0:?} is set by scrapepool itself and cannot be overridden")]
    ReservedOption(String),
    /// librdkafka refused the configuration (an unknown or invalid option).
    #[error("Kafka client: {0}")]
    Client(#[from] KafkaError),
    /// The spool could not be opened.
    #[error(transparent)]
    Spool(#[from] StoreError),
}

/// The policy and its store, under one lock: routing, appending and producing happen while
/// it is held, so the producer sees records in submission order.
struct SpoolState {
    spool: Spool,
    store: SpoolStore,
}

/// The spool side of a sink: its state, and the replay thread's wake-up.
struct SpoolSide {
    state: Mutex<SpoolState>,
    wake: Condvar,
    stop: AtomicBool,
    corrupt_at_open: u64,
}

impl SpoolSide {
    fn lock(&self) -> std::sync::MutexGuard<'_, SpoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record `id` was settled: the policy may release entries, the store persists the cursor.
    fn settled(&self, id: RecordId) {
        let mut st = self.lock();
        if let Some(cursor) = st.spool.settled(id) {
            if let Err(e) = st.store.release(cursor) {
                tracing::error!("{e}");
            }
        }
        drop(st);
        self.wake.notify_one();
    }
}

/// The producer's context: settles records in the ledger from librdkafka's delivery reports.
struct SinkContext {
    ledger: SharedLedger,
    spool: Option<Arc<SpoolSide>>,
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", fac, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", fac, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Connection errors are expected during an outage; librdkafka retries by itself.
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

impl ProducerContext for SinkContext {
    /// The record's [`RecordId`] in the ledger.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        let id = RecordId(id as u64);
        match result {
            Ok(_) => {
                self.ledger.with(|l| l.acked(id));
            }
            Err((error, _)) => {
                let reason = match error {
                    KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut) => {
                        FailReason::TimedOut
                    }
                    _ => FailReason::Refused,
                };
                tracing::warn!(record = id.0, %error, "Kafka record not delivered");
                self.ledger.with(|l| l.failed(id, reason));
            }
        }
        if let Some(spool) = &self.spool {
            spool.settled(id);
        }
    }
}

/// Publishes records on a Kafka topic; see the module doc for its guarantees and queue policy.
pub struct KafkaSink {
    producer: Arc<ThreadedProducer<SinkContext>>,
    topic: String,
    ledger: SharedLedger,
    spool: Option<Arc<SpoolSide>>,
}

impl KafkaSink {
    /// Creates the producer, and opens the spool if one is configured (its entries are
    /// replayed as the ledger has room). It connects lazily: a broker that is down is not an
    /// error here (records wait in the queue until it is up, or until the message timeout).
    pub fn new(config: &KafkaSinkConfig) -> Result<Self, KafkaSinkError> {
        let client_config = config.client_config()?;
        let ledger = SharedLedger::new(LedgerConfig {
            queue_len_max: config.queue_len_max,
            queue_bytes_max: config.queue_bytes_max,
            // librdkafka retries inside the client for this long and reports only the end.
            message_timeout: match config.effective_message_timeout_ms() {
                0 => Duration::MAX,
                ms => Duration::from_millis(ms),
            },
            retry_backoff: Duration::ZERO,
        });
        let spool = match &config.spool {
            None => None,
            Some(c) => {
                let (store, opened) = SpoolStore::open(&c.dir, c.store)?;
                let restored: u64 = opened.restored.iter().map(|m| m.samples).sum();
                tracing::info!(
                    dir = %c.dir.display(),
                    entries = opened.restored.len(),
                    samples = restored,
                    corrupt_regions = opened.corrupt_regions.len(),
                    "spool opened"
                );
                let spool = Spool::new(
                    SpoolConfig {
                        bytes_max: c.bytes_max,
                        mode: c.mode,
                    },
                    opened.restored,
                    opened.next_entry,
                );
                Some(Arc::new(SpoolSide {
                    state: Mutex::new(SpoolState { spool, store }),
                    wake: Condvar::new(),
                    stop: AtomicBool::new(false),
                    corrupt_at_open: opened.corrupt_regions.len() as u64,
                }))
            }
        };
        let context = SinkContext {
            ledger: ledger.clone(),
            spool: spool.clone(),
        };
        let producer = Arc::new(client_config.create_with_context(context)?);
        let sink = Self {
            producer,
            topic: config.topic.clone(),
            ledger,
            spool,
        };
        if let Some(side) = &sink.spool {
            let (side, producer, topic, ledger) = (
                side.clone(),
                sink.producer.clone(),
                sink.topic.clone(),
                sink.ledger.clone(),
            );
            std::thread::Builder::new()
                .name("spool-replay".into())
                .spawn(move || replay_loop(&side, &producer, &topic, &ledger))
                .map_err(|e| {
                    KafkaSinkError::Config(format!("cannot start the spool replay thread: {e}"))
                })?;
        }
        Ok(sink)
    }

    /// The spool's counts, and the corrupt regions skipped when it was opened; `None`
    /// without a spool.
    pub fn spool_counts(&self) -> Option<(SpoolCounts, u64)> {
        let side = self.spool.as_ref()?;
        let counts = side.lock().spool.counts();
        Some((counts, side.corrupt_at_open))
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        if let Some(side) = &self.spool {
            side.stop.store(true, Ordering::Relaxed);
            side.wake.notify_one();
        }
    }
}

/// Hands spooled entries to the producer, oldest first, while the ledger has room.
fn replay_loop(
    side: &SpoolSide,
    producer: &ThreadedProducer<SinkContext>,
    topic: &str,
    ledger: &SharedLedger,
) {
    let mut st = side.lock();
    while !side.stop.load(Ordering::Relaxed) {
        while let Some(meta) = ledger.with(|l| st.spool.next_replay(l)) {
            match st.store.read(meta.id) {
                Ok(records) => {
                    let now = SystemClock.now();
                    let state = &mut *st;
                    match ledger.with(|l| state.spool.replay(l, now, meta.id, records)) {
                        Ok(produces) => send_all(producer, topic, ledger, Some(state), &produces),
                        Err(e) => {
                            tracing::error!("{e}");
                            break;
                        }
                    }
                }
                Err(e) => {
                    tracing::error!("{e}; the entry is skipped");
                    let state = &mut *st;
                    if let Ok(Some(cursor)) = state.spool.unreadable(meta.id) {
                        if let Err(e) = state.store.release(cursor) {
                            tracing::error!("{e}");
                        }
                    }
                }
            }
        }
        st = side
            .wake
            .wait_timeout(st, Duration::from_millis(100))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// Produces each record; one the client refuses at once is settled here (its callback never
/// comes), in the ledger and, with a spool, in the policy.
fn send_all(
    producer: &ThreadedProducer<SinkContext>,
    topic: &str,
    ledger: &SharedLedger,
    mut spool: Option<&mut SpoolState>,
    produces: &[Produce],
) {
    for p in produces {
        let record = &p.record;
        let headers = record.headers.iter().fold(
            OwnedHeaders::new_with_capacity(record.headers.len()),
            |h, (key, value)| {
                h.insert(Header {
                    key,
                    value: Some(value.as_str()),
                })
            },
        );
        let base = BaseRecord::with_opaque_to(topic, p.id.0 as usize)
            .key(&record.key[..])
            .payload(&record.payload[..])
            .headers(headers);
        if let Err((error, _)) = producer.send(base) {
            let reason = match error {
                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => {
                    FailReason::ClientQueueFull
                }
                _ => FailReason::Refused,
            };
            tracing::warn!(record = p.id.0, %error, samples = record.samples, "Kafka record refused by the client");
            ledger.with(|l| l.failed(p.id, reason));
            if let Some(st) = spool.as_deref_mut() {
                if let Some(cursor) = st.spool.settled(p.id) {
                    if let Err(e) = st.store.release(cursor) {
                        tracing::error!("{e}");
                    }
                }
            }
        }
    }
}

impl Sink for KafkaSink {
    fn submit(&self, records: Vec<Record>) {
        let Some(side) = &self.spool else {
            let produces = match self.ledger.with(|l| l.submit(SystemClock.now(), records)) {
                Admission::Admitted(produces) => produces,
                Admission::Rejected { records, samples } => {
                    tracing::warn!(
                        records,
                        samples,
                        "Kafka sink queue full: submission rejected"
                    );
                    return;
                }
            };
            send_all(&self.producer, &self.topic, &self.ledger, None, &produces);
            return;
        };
        let mut st = side.lock();
        let now = SystemClock.now();
        let state = &mut *st;
        match self.ledger.with(|l| state.spool.submit(l, now, records)) {
            Route::Admitted(produces) => send_all(
                &self.producer,
                &self.topic,
                &self.ledger,
                Some(state),
                &produces,
            ),
            Route::Journaled {
                entry,
                bytes,
                produces,
            } => {
                if let Err(e) = state.store.journal(entry, &bytes) {
                    // The records still go to the broker; a crash before its answer loses them.
                    tracing::error!("{e}");
                }
                send_all(
                    &self.producer,
                    &self.topic,
                    &self.ledger,
                    Some(state),
                    &produces,
                );
            }
            Route::Spill { entry, bytes } => {
                if let Err(e) = state.store.append(entry, &bytes) {
                    // The policy counted it spilled; reading it back finds it missing, and it
                    // is counted as an entry that could not be read.
                    tracing::error!("{e}");
                }
            }
            Route::Refused { records, samples } => {
                tracing::warn!(records, samples, "spool full: submission refused");
            }
        }
    }

    fn counts(&self) -> DeliveryCounts {
        self.ledger.counts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(config: &ClientConfig, key: &str) -> Option<String> {
        config.get(key).map(str::to_string)
    }

    #[test]
    fn client_config_carries_the_delivery_guarantee() {
        let mut config = KafkaSinkConfig::new("127.0.0.1:9092", "metrics");
        config.compression = KafkaCompression::Zstd;
        config.message_timeout_ms = 1234;
        config.queue_len_max = 10;
        config
            .options
            .push(("security.protocol".into(), "ssl".into()));
        let c = config.client_config().unwrap();
        assert_eq!(
            get(&c, "bootstrap.servers").as_deref(),
            Some("127.0.0.1:9092")
        );
        assert_eq!(get(&c, "enable.idempotence").as_deref(), Some("true"));
        assert_eq!(get(&c, "acks").as_deref(), Some("all"));
        assert_eq!(get(&c, "compression.codec").as_deref(), Some("zstd"));
        assert_eq!(get(&c, "message.timeout.ms").as_deref(), Some("1234"));
        assert_eq!(
            get(&c, "queue.buffering.max.messages").as_deref(),
            Some("1034")
        );
        assert_eq!(get(&c, "security.protocol").as_deref(), Some("ssl"));
    }

    #[test]
    fn a_spooling_sink_never_times_records_out() {
        let mut config = KafkaSinkConfig::new("127.0.0.1:9092", "metrics");
        config.message_timeout_ms = 1234;
        config.spool = Some(SpoolSinkConfig {
            dir: std::path::PathBuf::from("/nonexistent"),
            bytes_max: 1 << 20,
            mode: SpoolMode::Overflow,
            store: StoreOptions::default(),
        });
        let c = config.client_config().unwrap();
        assert_eq!(get(&c, "message.timeout.ms").as_deref(), Some("0"));
        config.spool = None;
        let c = config.client_config().unwrap();
        assert_eq!(get(&c, "message.timeout.ms").as_deref(), Some("1234"));
    }

    #[test]
    fn reserved_options_are_refused() {
        for key in ["acks", "enable.idempotence", "queue.buffering.max.messages"] {
            let mut config = KafkaSinkConfig::new("127.0.0.1:9092", "metrics");
            config.options.push((key.into(), "1".into()));
            match config.client_config() {
                Err(KafkaSinkError::ReservedOption(k)) => assert_eq!(k, key),
                other => panic!("{key}: expected ReservedOption, got {other:?}"),
            }
        }
    }

    #[test]
    fn empty_brokers_or_topic_are_refused() {
        assert!(matches!(
            KafkaSinkConfig::new(" ", "t").client_config(),
            Err(KafkaSinkError::Config(_))
        ));
        assert!(matches!(
            KafkaSinkConfig::new("h:1", "").client_config(),
            Err(KafkaSinkError::Config(_))
        ));
    }

    #[test]
    fn an_unknown_client_option_is_a_creation_error() {
        let mut config = KafkaSinkConfig::new("127.0.0.1:9", "metrics");
        config.options.push(("no.such.option".into(), "x".into()));
        let err = KafkaSink::new(&config)
            .err()
            .expect("librdkafka must refuse an unknown option");
        assert!(err.to_string().contains("no.such.option"), "{err}");
    }

    #[test]
    fn kafka_options_parse_as_key_value() {
        assert_eq!(
            parse_kafka_option("sasl.jaas.config=a=b").unwrap(),
            ("sasl.jaas.config".to_string(), "a=b".to_string())
        );
        assert_eq!(
            parse_kafka_option("security.protocol=").unwrap(),
            ("security.protocol".to_string(), String::new())
        );
        assert!(parse_kafka_option("novalue").is_err());
        assert!(parse_kafka_option("=x").is_err());
    }

    #[test]
    fn compression_names_round_trip() {
        for c in [
            KafkaCompression::None,
            KafkaCompression::Gzip,
            KafkaCompression::Snappy,
            KafkaCompression::Lz4,
            KafkaCompression::Zstd,
        ] {
            assert_eq!(c.as_str().parse::<KafkaCompression>().unwrap(), c);
        }
        assert!("brotli".parse::<KafkaCompression>().is_err());
    }
}
