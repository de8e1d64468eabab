//! What every sink shares: its delivery counters, the way it answers the driver, and the
//! standalone sink that writes JSON lines to stdout or a file.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use scrapepool_core::encode::Record;
use scrapepool_core::Event;

use crate::ports::{EventSender, Sink};

/// A sink's delivery counters, in samples (and messages where said). Every sample handed
/// to a sink ends in exactly one of `delivered_samples`, `failed_samples` or
/// `not_delivered_queue_full_samples`, or is still counted in `in_flight_samples`.
#[derive(Debug, Default)]
pub struct SinkMetrics {
    delivered_samples: AtomicU64,
    failed_samples: AtomicU64,
    not_delivered_queue_full_samples: AtomicU64,
    in_flight_samples: AtomicU64,
    in_flight_messages: AtomicU64,
}

/// A point-in-time copy of [`SinkMetrics`], for `/metrics` and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkMetricsSnapshot {
    /// Samples the destination acknowledged.
    pub delivered_samples: u64,
    /// Samples that were accepted but could not be delivered (timeout, broker error, write error).
    pub failed_samples: u64,
    /// Samples refused at once because the sink's queue was full (the queue policy).
    pub not_delivered_queue_full_samples: u64,
    /// Samples handed over and not yet settled.
    pub in_flight_samples: u64,
    /// Messages handed over and not yet settled.
    pub in_flight_messages: u64,
}

impl SinkMetrics {
    /// Copies the counters (each one atomically; the set is not one atomic view).
    pub fn snapshot(&self) -> SinkMetricsSnapshot {
        SinkMetricsSnapshot {
            delivered_samples: self.delivered_samples.load(Ordering::Relaxed),
            failed_samples: self.failed_samples.load(Ordering::Relaxed),
            not_delivered_queue_full_samples: self
                .not_delivered_queue_full_samples
                .load(Ordering::Relaxed),
            in_flight_samples: self.in_flight_samples.load(Ordering::Relaxed),
            in_flight_messages: self.in_flight_messages.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn record_in_flight(&self, messages: u64, samples: u64) {
        self.in_flight_messages
            .fetch_add(messages, Ordering::Relaxed);
        self.in_flight_samples.fetch_add(samples, Ordering::Relaxed);
    }

    /// One in-flight message settled: moves its samples to delivered or failed.
    pub(crate) fn record_settled(&self, samples: u64, delivered: bool) {
        self.in_flight_messages.fetch_sub(1, Ordering::Relaxed);
        self.in_flight_samples.fetch_sub(samples, Ordering::Relaxed);
        if delivered {
            self.delivered_samples.fetch_add(samples, Ordering::Relaxed);
        } else {
            self.failed_samples.fetch_add(samples, Ordering::Relaxed);
        }
    }

    /// One in-flight message refused by a full queue after all.
    pub(crate) fn record_refused_queue_full(&self, samples: u64) {
        self.in_flight_messages.fetch_sub(1, Ordering::Relaxed);
        self.in_flight_samples.fetch_sub(samples, Ordering::Relaxed);
        self.record_queue_full(samples);
    }

    /// A whole submission refused at once by the queue policy.
    pub(crate) fn record_queue_full(&self, samples: u64) {
        self.not_delivered_queue_full_samples
            .fetch_add(samples, Ordering::Relaxed);
    }
}

/// Sends `event` to the driver without blocking a tokio worker.
///
/// The queue is bounded ([`crate::ports::EVENT_QUEUE_LEN_MAX`]) and its senders wait when it
/// is full: inside a tokio runtime the wait happens in a spawned task (the caller must not
/// block the runtime); on a plain thread (librdkafka's delivery thread) the thread waits. A
/// closed channel means the driver is gone: the event has no reader and is dropped.
pub(crate) fn send_event(events: &EventSender, event: Event) {
    use tokio::sync::mpsc::error::TrySendError;
    match events.try_send(event) {
        Ok(()) | Err(TrySendError::Closed(_)) => {}
        Err(TrySendError::Full(event)) => match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let events = events.clone();
                handle.spawn(async move {
                    let _ = events.send(event).await;
                });
            }
            Err(_) => {
                let _ = events.blocking_send(event);
            }
        },
    }
}

/// The value of a record's `encoding` header, if any.
pub(crate) fn header<'a>(record: &'a Record, name: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.as_str())
}

/// The standalone sink: writes each `json`-encoded record's payload as JSON lines to stdout
/// or a file, and counts a record delivered once it is written and flushed.
///
/// Records in another encoding (remote-write is binary) cannot be written as lines: they are
/// counted as failed and logged, so a misconfigured run is loud rather than silent.
/// Writes are synchronous: standalone mode has one small output and no broker to wait for.
pub struct StdoutSink {
    out: Mutex<Box<dyn Write + Send>>,
    metrics: Arc<SinkMetrics>,
}

impl StdoutSink {
    /// A sink writing to the process's standard output.
    pub fn stdout() -> Self {
        Self::to_writer(Box::new(std::io::stdout()))
    }

    /// A sink appending to `path` (created if missing).
    pub fn to_file(path: &std::path::Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self::to_writer(Box::new(std::io::BufWriter::new(file))))
    }

    /// A sink writing to any writer (tests write to memory).
    pub fn to_writer(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: Mutex::new(out),
            metrics: Arc::new(SinkMetrics::default()),
        }
    }

    /// The sink's counters.
    pub fn metrics(&self) -> SinkMetricsSnapshot {
        self.metrics.snapshot()
    }

    fn write_record(out: &mut dyn Write, record: &Record) -> Result<(), String> {
        match header(record, "encoding") {
            Some("json") => {}
            other => {
                return Err(format!(
                    "the stdout sink writes only json-encoded records, got encoding {:?} (use --encoding json)",
                    other.unwrap_or("<none>")
                ))
            }
        }
        out.write_all(&record.payload).map_err(|e| e.to_string())?;
        // Each payload holds whole lines; the last one may lack its newline.
        if !record.payload.is_empty() && !record.payload.ends_with(b"\n") {
            out.write_all(b"\n").map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl Sink for StdoutSink {
    fn submit(&self, delivery: u64, records: Vec<Record>, events: &EventSender) {
        let mut delivered_samples = 0u64;
        let mut failed_samples = 0u64;
        {
            // A poisoned lock only means another submit panicked mid-write; the writer is
            // still usable.
            let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
            let mut written = Vec::with_capacity(records.len());
            for record in &records {
                let samples = record.samples as u64;
                self.metrics.record_in_flight(1, samples);
                match Self::write_record(&mut **out, record) {
                    Ok(()) => written.push(samples),
                    Err(error) => {
                        tracing::error!(delivery, %error, "stdout sink: record not written");
                        self.metrics.record_settled(samples, false);
                        failed_samples += samples;
                    }
                }
            }
            // Delivered means flushed: a record still in a buffer is not out yet.
            let flushed = out.flush();
            for samples in written {
                let ok = flushed.is_ok();
                self.metrics.record_settled(samples, ok);
                if ok {
                    delivered_samples += samples;
                } else {
                    failed_samples += samples;
                }
            }
            if let Err(error) = flushed {
                tracing::error!(delivery, %error, "stdout sink: flush failed");
            }
        }
        send_event(
            events,
            Event::DeliveryFinished {
                delivery,
                delivered_samples,
                failed_samples,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose bytes the test can read afterwards.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A writer that always fails.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn record(encoding: &str, payload: &str, samples: usize) -> Record {
        Record {
            key: [0, 0, 0, 0, 0, 0, 0, 1],
            headers: vec![("encoding", encoding.to_string()), ("job", "j".to_string())],
            payload: payload.as_bytes().to_vec(),
            samples,
        }
    }

    #[test]
    fn json_records_are_written_as_lines_and_counted_delivered() {
        let buf = Shared::default();
        let sink = StdoutSink::to_writer(Box::new(buf.clone()));
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        sink.submit(
            7,
            vec![
                record("json", "{\"a\":1}\n{\"a\":2}\n", 2),
                record("json", "{\"b\":3}", 1),
            ],
            &tx,
        );
        assert!(matches!(
            rx.try_recv().unwrap(),
            Event::DeliveryFinished {
                delivery: 7,
                delivered_samples: 3,
                failed_samples: 0
            }
        ));
        assert_eq!(
            String::from_utf8(buf.0.lock().unwrap().clone()).unwrap(),
            "{\"a\":1}\n{\"a\":2}\n{\"b\":3}\n"
        );
        let m = sink.metrics();
        assert_eq!(
            (
                m.delivered_samples,
                m.failed_samples,
                m.in_flight_samples,
                m.in_flight_messages
            ),
            (3, 0, 0, 0)
        );
    }

    #[test]
    fn remote_write_records_fail_loudly_and_others_still_go_out() {
        let buf = Shared::default();
        let sink = StdoutSink::to_writer(Box::new(buf.clone()));
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        sink.submit(
            1,
            vec![
                record("remote-write", "\u{1}binary", 5),
                record("json", "{}", 1),
            ],
            &tx,
        );
        assert!(matches!(
            rx.try_recv().unwrap(),
            Event::DeliveryFinished {
                delivery: 1,
                delivered_samples: 1,
                failed_samples: 5
            }
        ));
        assert_eq!(buf.0.lock().unwrap().as_slice(), b"{}\n");
        assert_eq!(sink.metrics().failed_samples, 5);
    }

    #[test]
    fn a_write_error_counts_the_samples_failed() {
        let sink = StdoutSink::to_writer(Box::new(Broken));
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        sink.submit(2, vec![record("json", "{}", 4)], &tx);
        assert!(matches!(
            rx.try_recv().unwrap(),
            Event::DeliveryFinished {
                delivery: 2,
                delivered_samples: 0,
                failed_samples: 4
            }
        ));
        assert_eq!(sink.metrics().delivered_samples, 0);
    }

    #[test]
    fn an_empty_submission_is_answered_at_once() {
        let sink = StdoutSink::to_writer(Box::new(Shared::default()));
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        sink.submit(3, Vec::new(), &tx);
        assert!(matches!(
            rx.try_recv().unwrap(),
            Event::DeliveryFinished {
                delivery: 3,
                delivered_samples: 0,
                failed_samples: 0
            }
        ));
    }
}

/// A sink's counters on `/metrics`: read once per request, so they are always current.
pub struct SinkSeries<F>(pub F);

impl<F: Fn() -> SinkMetricsSnapshot + Send + Sync + 'static> crate::web::ExtraMetrics
    for SinkSeries<F>
{
    fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let m = (self.0)();
        registry.register(
            "sink_delivered_samples",
            "Samples the bus acknowledged",
            ConstCounter::new(m.delivered_samples),
        );
        registry.register(
            "sink_failed_samples",
            "Samples accepted by the sink that could not be delivered",
            ConstCounter::new(m.failed_samples),
        );
        registry.register(
            "sink_not_delivered_queue_full_samples",
            "Samples refused at once because the sink's queue was full",
            ConstCounter::new(m.not_delivered_queue_full_samples),
        );
        registry.register(
            "sink_in_flight_samples",
            "Samples handed to the sink and not yet settled",
            ConstGauge::new(m.in_flight_samples as i64),
        );
        registry.register(
            "sink_in_flight_messages",
            "Messages handed to the sink and not yet settled",
            ConstGauge::new(m.in_flight_messages as i64),
        );
    }
}
