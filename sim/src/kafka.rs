//! A model of the Kafka broker behind the `Sink` port: acknowledgements after a latency,
//! outages and per-scraper partitions (records wait, then time out), a bounded queue.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scrapepool_adapters::ports::{EventSender, Sink};
use scrapepool_core::encode::Record;
use scrapepool_core::sample::is_stale_nan;
use scrapepool_core::testing::remote_write;
use scrapepool_core::Event;

use crate::trace::{Seen, Trace};

/// How long the broker takes to acknowledge a record.
pub const ACK_LATENCY: Duration = Duration::from_millis(20);
/// How long a record may wait for the broker before it counts as not delivered.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a waiting record retries.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// Most records a scraper may have waiting; beyond it a submission is refused at once.
pub const QUEUE_LEN_MAX: usize = 20_000;

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
    /// Records waiting, for the bound.
    pub queued: Arc<Mutex<usize>>,
    /// Simulated milliseconds.
    pub now_ms: fn() -> i64,
}

impl Sink for ModelSink {
    fn submit(&self, delivery: u64, records: Vec<Record>, events: &EventSender) {
        let samples: u64 = records.iter().map(|r| r.samples as u64).sum();
        {
            let mut queued = self.queued.lock().expect("queue lock");
            if *queued + records.len() > QUEUE_LEN_MAX {
                // The written policy: refuse the newest at once, counted as not delivered.
                let _ = events.try_send(Event::DeliveryFinished {
                    delivery,
                    delivered_samples: 0,
                    failed_samples: samples,
                });
                return;
            }
            *queued += records.len();
        }
        let (broker, trace, queued, events, scraper, now_ms) = (
            self.broker.clone(),
            self.trace.clone(),
            self.queued.clone(),
            events.clone(),
            self.scraper.clone(),
            self.now_ms,
        );
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut delivered = 0u64;
            let mut failed = 0u64;
            let mut acked: Vec<&Record> = Vec::with_capacity(records.len());
            for record in &records {
                loop {
                    tokio::time::sleep(ACK_LATENCY).await;
                    if broker.accepts(&scraper) {
                        delivered += record.samples as u64;
                        acked.push(record);
                        break;
                    }
                    if started.elapsed() > MESSAGE_TIMEOUT {
                        failed += record.samples as u64;
                        break;
                    }
                    tokio::time::sleep(RETRY_INTERVAL).await;
                }
            }
            note_acked(&trace, now_ms(), &scraper, &acked);
            *queued.lock().expect("queue lock") -= records.len();
            let _ = events
                .send(Event::DeliveryFinished {
                    delivery,
                    delivered_samples: delivered,
                    failed_samples: failed,
                })
                .await;
        });
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
