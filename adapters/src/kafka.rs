//! The Kafka sink: publishes records on one topic through librdkafka (rdkafka).
//!
//! # Guarantees
//! - Idempotent producer, `acks=all`: a broker outage or a retry never duplicates or
//!   reorders the records of one partition (one target's records share a key, so a partition).
//! - A sample counts as delivered only when the broker acknowledged its record. librdkafka
//!   retries on its own for `message_timeout_ms` (default 5 min), so an outage shorter than
//!   that loses nothing; after it the record is settled as failed.
//! - Every sample handed to [`KafkaSink::submit`] is counted exactly once in
//!   [`SinkMetricsSnapshot`]: delivered, failed, or not delivered because the queue was full.
//!
//! # Queue policy
//! The sink holds at most `queue_len_max` records and `queue_bytes_max` bytes that the broker
//! has not acknowledged yet. A submission that does not fit is **rejected whole, at once**:
//! its samples are counted in `not_delivered_queue_full_samples` and the driver gets a
//! `DeliveryFinished` with all of them failed. The records already queued keep their place
//! (they are older, and dropping them would make gaps in the middle of a series instead of
//! at its newest end). librdkafka's own queue is sized to the same bound as a backstop; if
//! it still refuses a record, that record alone is counted the same way.
//!
//! # Why a `ThreadedProducer` with a `ProducerContext`
//! Delivery reports arrive on librdkafka's polling thread, where the context's `delivery`
//! callback settles each record against its submission's shared counter and sends the one
//! `DeliveryFinished` when the last record settles. A `FutureProducer` would allocate a
//! oneshot channel per record and need a task per submission to await them; the callback
//! does the same bookkeeping with no task, no per-record channel and no tokio runtime.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use scrapepool_core::encode::Record;
use scrapepool_core::Event;

use crate::ports::{EventSender, Sink};
use crate::sink::{send_event, SinkMetrics, SinkMetricsSnapshot};

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
    /// How long librdkafka keeps retrying a record before it is settled as failed.
    pub message_timeout_ms: u64,
    /// Most records waiting for an acknowledgement; a submission beyond it is rejected.
    pub queue_len_max: usize,
    /// Most bytes (keys, headers, payloads) waiting for an acknowledgement.
    pub queue_bytes_max: usize,
    /// Pass-through librdkafka options (`--kafka-option key=value`: TLS, SASL, tuning),
    /// applied after the sink's own; [`RESERVED_OPTIONS`] are refused.
    pub options: Vec<(String, String)>,
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
            .set("message.timeout.ms", self.message_timeout_ms.to_string())
            // The sink's own admission check is the bound; librdkafka's queue is the same
            // size (plus 1 MiB of slack for its per-message overhead) as a backstop.
            .set(
                "queue.buffering.max.messages",
                self.queue_len_max.min(i32::MAX as usize).to_string(),
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
}

/// One `submit`: settled when `remaining` reaches zero.
struct Submission {
    delivery: u64,
    /// Records not yet settled, plus one held by `submit` until it has handed every record
    /// over, so that an early callback cannot finish the submission too soon.
    remaining: AtomicUsize,
    delivered_samples: AtomicU64,
    failed_samples: AtomicU64,
    events: EventSender,
}

impl Submission {
    fn settle(&self, samples: u64, delivered: bool) {
        if delivered {
            self.delivered_samples.fetch_add(samples, Ordering::Relaxed);
        } else {
            self.failed_samples.fetch_add(samples, Ordering::Relaxed);
        }
        self.release_hold();
    }

    /// Drops one hold (a settled record, or `submit`'s own); the last one sends the event.
    fn release_hold(&self) {
        // AcqRel: the last one sees every other settler's counts.
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            send_event(
                &self.events,
                Event::DeliveryFinished {
                    delivery: self.delivery,
                    delivered_samples: self.delivered_samples.load(Ordering::Relaxed),
                    failed_samples: self.failed_samples.load(Ordering::Relaxed),
                },
            );
        }
    }
}

/// What librdkafka hands back with a record's delivery report.
struct InFlight {
    submission: Arc<Submission>,
    samples: u64,
    size_bytes: usize,
}

/// Bytes and records handed over and not yet acknowledged (the sink's admission bound).
#[derive(Debug, Default)]
struct Queued {
    records: usize,
    size_bytes: usize,
}

/// The producer's context: settles records from librdkafka's delivery reports.
struct SinkContext {
    metrics: Arc<SinkMetrics>,
    queued: Arc<Mutex<Queued>>,
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
    type DeliveryOpaque = Box<InFlight>;

    fn delivery(&self, result: &DeliveryResult<'_>, in_flight: Self::DeliveryOpaque) {
        let delivered = match result {
            Ok(_) => true,
            Err((error, _)) => {
                tracing::warn!(delivery = in_flight.submission.delivery, %error, samples = in_flight.samples, "Kafka record not delivered");
                false
            }
        };
        release(&self.queued, in_flight.size_bytes);
        self.metrics.record_settled(in_flight.samples, delivered);
        in_flight.submission.settle(in_flight.samples, delivered);
    }
}

fn release(queued: &Mutex<Queued>, size_bytes: usize) {
    let mut q = queued.lock().unwrap_or_else(|p| p.into_inner());
    q.records -= 1;
    q.size_bytes -= size_bytes;
}

/// Publishes records on a Kafka topic; see the module doc for its guarantees and queue policy.
pub struct KafkaSink {
    producer: ThreadedProducer<SinkContext>,
    topic: String,
    queue_len_max: usize,
    queue_bytes_max: usize,
    queued: Arc<Mutex<Queued>>,
    metrics: Arc<SinkMetrics>,
}

impl KafkaSink {
    /// Creates the producer. It connects lazily: a broker that is down is not an error here
    /// (records wait in the queue until it is up, or until `message_timeout_ms`).
    pub fn new(config: &KafkaSinkConfig) -> Result<Self, KafkaSinkError> {
        let client_config = config.client_config()?;
        let metrics = Arc::new(SinkMetrics::default());
        let queued = Arc::new(Mutex::new(Queued::default()));
        let context = SinkContext {
            metrics: metrics.clone(),
            queued: queued.clone(),
        };
        let producer = client_config.create_with_context(context)?;
        Ok(Self {
            producer,
            topic: config.topic.clone(),
            queue_len_max: config.queue_len_max,
            queue_bytes_max: config.queue_bytes_max,
            queued,
            metrics,
        })
    }

    /// The sink's counters.
    pub fn metrics(&self) -> SinkMetricsSnapshot {
        self.metrics.snapshot()
    }

    /// Waits up to `timeout` for every queued record to be settled (at shutdown). Returns
    /// whether the queue is empty.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.producer.flush(timeout).is_ok()
    }

    /// Reserves room for a submission, or says it does not fit.
    fn admit(&self, records: usize, size_bytes: usize) -> bool {
        let mut q = self.queued.lock().unwrap_or_else(|p| p.into_inner());
        // An empty queue takes any submission, so that one larger than the byte bound is
        // still tried (librdkafka then refuses what is truly too big).
        let fits = q.records == 0
            || (q.records + records <= self.queue_len_max
                && q.size_bytes + size_bytes <= self.queue_bytes_max);
        if fits {
            q.records += records;
            q.size_bytes += size_bytes;
        }
        fits
    }
}

fn record_size_bytes(record: &Record) -> usize {
    record.key.len()
        + record.payload.len()
        + record
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

impl Sink for KafkaSink {
    fn submit(&self, delivery: u64, records: Vec<Record>, events: &EventSender) {
        let samples_total: u64 = records.iter().map(|r| r.samples as u64).sum();
        if records.is_empty() {
            send_event(
                events,
                Event::DeliveryFinished {
                    delivery,
                    delivered_samples: 0,
                    failed_samples: 0,
                },
            );
            return;
        }
        let size_bytes: usize = records.iter().map(record_size_bytes).sum();
        if !self.admit(records.len(), size_bytes) {
            tracing::warn!(
                delivery,
                samples = samples_total,
                "Kafka sink queue full: submission rejected"
            );
            self.metrics.record_queue_full(samples_total);
            send_event(
                events,
                Event::DeliveryFinished {
                    delivery,
                    delivered_samples: 0,
                    failed_samples: samples_total,
                },
            );
            return;
        }
        self.metrics
            .record_in_flight(records.len() as u64, samples_total);
        let submission = Arc::new(Submission {
            delivery,
            remaining: AtomicUsize::new(records.len() + 1),
            delivered_samples: AtomicU64::new(0),
            failed_samples: AtomicU64::new(0),
            events: events.clone(),
        });
        for record in &records {
            let samples = record.samples as u64;
            let size_bytes = record_size_bytes(record);
            let headers = record.headers.iter().fold(
                OwnedHeaders::new_with_capacity(record.headers.len()),
                |h, (key, value)| {
                    h.insert(Header {
                        key,
                        value: Some(value.as_str()),
                    })
                },
            );
            let in_flight = Box::new(InFlight {
                submission: submission.clone(),
                samples,
                size_bytes,
            });
            let base = BaseRecord::with_opaque_to(&self.topic, in_flight)
                .key(&record.key[..])
                .payload(&record.payload[..])
                .headers(headers);
            if let Err((error, base)) = self.producer.send(base) {
                // Refused before it was queued: settle it here, as its callback never comes.
                let queue_full = matches!(
                    error,
                    KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
                );
                tracing::warn!(delivery, %error, samples, "Kafka record refused by the client");
                release(&self.queued, base.delivery_opaque.size_bytes);
                if queue_full {
                    // The queue policy's counter, not a broker failure.
                    self.metrics.record_refused_queue_full(samples);
                } else {
                    self.metrics.record_settled(samples, false);
                }
                submission.settle(samples, false);
            }
        }
        // Release `submit`'s own hold: the submission finishes with its last record.
        submission.release_hold();
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
            Some("10")
        );
        assert_eq!(get(&c, "security.protocol").as_deref(), Some("ssl"));
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
