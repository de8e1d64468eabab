//! A model of the Kafka broker behind the `Sink` port: acknowledgements after a latency,
//! outages and per-scraper partitions. Each scraper's producer runs the production delivery
//! ledger (`scrapepool_core::delivery`): the ledger admits or rejects, decides when a record
//! whose attempt failed is retried and when it times out, and keeps every count; the model
//! only plays the broker's answers.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scrapepool_adapters::ports::Sink;
use scrapepool_adapters::sink::SharedLedger;
use scrapepool_core::delivery::{Admission, DeliveryCounts, LedgerConfig, Retry};
use scrapepool_core::encode::Record;
use scrapepool_core::sample::is_stale_nan;
use scrapepool_core::testing::remote_write;
use scrapepool_core::Timestamp;

use crate::trace::{Seen, Trace};

/// How long the broker takes to acknowledge a record.
pub const ACK_LATENCY: Duration = Duration::from_millis(20);
/// How long a record may wait for the broker before it counts as not delivered.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a waiting record retries.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// Most records a scraper may have waiting; beyond it a submission is refused at once.
pub const QUEUE_LEN_MAX: usize = 20_000;

/// The ledger of each scraper's producer in the simulation.
pub fn ledger_config() -> LedgerConfig {
    LedgerConfig {
        queue_len_max: QUEUE_LEN_MAX,
        queue_bytes_max: usize::MAX,
        message_timeout: MESSAGE_TIMEOUT,
        retry_backoff: RETRY_INTERVAL,
    }
}

/// The broker, shared by every scraper.
#[derive(Default)]
pub struct KafkaModel {
    /// Whether the whole broker is down.
    pub down: Mutex<bool>,
    /// Scrapers cut off from the broker.
    pub unreachable: Mutex<BTreeSet<String>>,
}

impl KafkaModel {
    fn accepts(&self, scraper: &str) -> bool {
        !*self.down.lock().expect("kafka lock")
            && !self
                .unreachable
                .lock()
                .expect("kafka lock")
                .contains(scraper)
    }
}

/// One scraper's producer.
pub struct ModelSink {
    /// The scraper's host name.
    pub scraper: String,
    /// The broker.
    pub broker: Arc<KafkaModel>,
    /// Where acknowledged records are written down.
    pub trace: Arc<Trace>,
    /// The producer's delivery ledger.
    pub ledger: SharedLedger,
    /// Simulated milliseconds.
    pub now_ms: fn() -> i64,
}

impl Sink for ModelSink {
    fn submit(&self, records: Vec<Record>) {
        let now_ms = self.now_ms;
        let produces = match self.ledger.with(|l| l.submit(Timestamp(now_ms()), records)) {
            Admission::Admitted(produces) if !produces.is_empty() => produces,
            // Rejected (counted by the ledger) or empty: nothing to produce.
            _ => return,
        };
        let (broker, trace, ledger, scraper) = (
            self.broker.clone(),
            self.trace.clone(),
            self.ledger.clone(),
            self.scraper.clone(),
        );
        tokio::spawn(async move {
            // One submission's records in order, as one partition delivers them.
            let mut acked: Vec<&Record> = Vec::with_capacity(produces.len());
            for p in &produces {
                loop {
                    tokio::time::sleep(ACK_LATENCY).await;
                    if broker.accepts(&scraper) {
                        ledger.with(|l| l.acked(p.id));
                        acked.push(&p.record);
                        break;
                    }
                    let now = Timestamp(now_ms());
                    match ledger.with(|l| l.attempt_failed(now, p.id)) {
                        Some(Retry::At(at)) => tokio::time::sleep(at.since(now)).await,
                        Some(Retry::GaveUp) | None => break,
                    }
                }
            }
            note_acked(&trace, now_ms(), &scraper, &acked);
        });
    }

    fn counts(&self) -> DeliveryCounts {
        self.ledger.counts()
    }
}

/// Writes the acknowledged records of one delivery (one target's) into the trace, with the
/// value of its `up` sample and every staleness marker they hold. The sim's scrapers publish
/// remote-write, as in production: each record is read back here with the core's
/// independent decoder; its exporters never serve NaN, so the staleness NaN is a marker.
fn note_acked(trace: &Trace, at_ms: i64, scraper: &str, records: &[&Record]) {
    let Some(first) = records.first() else { return };
    let instance = first
        .headers
        .iter()
        .find(|(k, _)| *k == "instance")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let target = crate::target_of_instance(instance);
    let samples: usize = records.iter().map(|r| r.samples).sum();
    let mut up = None;
    let mut markers = Vec::new();
    for record in records {
        let Ok(request) = remote_write::decode(&record.payload) else {
            continue;
        };
        for series in &request.timeseries {
            let name = series.label("__name__").unwrap_or("");
            for sample in &series.samples {
                if name == "up" {
                    up = Some(sample.value == 1.0);
                } else if is_stale_nan(sample.value) {
                    let series = match series.label("k") {
                        Some(k) => format!("{name}{{k={k}}}"),
                        None => name.to_string(),
                    };
                    markers.push((series, sample.timestamp));
                }
            }
        }
    }
    trace.push(
        at_ms,
        Seen::Acked {
            scraper: scraper.to_string(),
            target,
            samples: samples as u32,
            up,
        },
    );
    for (series, at) in markers {
        trace.push(
            at_ms,
            Seen::Marker {
                scraper: scraper.to_string(),
                target,
                series,
                at_ms: at,
            },
        );
    }
}
