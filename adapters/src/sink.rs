//! What every sink shares: the delivery ledger behind a lock, the delivery series on
//! `/metrics`, and the standalone sink that writes JSON lines to stdout or a file.

use std::io::Write;
use std::sync::{Arc, Mutex};

use scrapepool_core::delivery::{
    Admission, DeliveryCounts, FailReason, Ledger, LedgerConfig, Produce,
};
use scrapepool_core::encode::Record;

use crate::ports::{Clock, Sink, SystemClock};

/// A sink's [`Ledger`], shared by the threads that submit (runtime workers, the driver's
/// loop) and the one that settles (librdkafka's delivery thread, the model broker's tasks).
/// The lock is held only for a ledger call, never across I/O.
#[derive(Clone, Debug)]
pub struct SharedLedger(Arc<Mutex<Ledger>>);

impl SharedLedger {
    /// An empty ledger with `config`.
    pub fn new(config: LedgerConfig) -> Self {
        Self(Arc::new(Mutex::new(Ledger::new(config))))
    }

    /// Runs `f` on the ledger. A poisoned lock only means another caller panicked between
    /// two ledger calls; the ledger is whole.
    pub fn with<R>(&self, f: impl FnOnce(&mut Ledger) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The ledger's counts now.
    pub fn counts(&self) -> DeliveryCounts {
        self.with(|l| l.counts())
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
/// or a file, and settles a record delivered once it is written and flushed.
///
/// Records in another encoding (remote-write is binary) cannot be written as lines: they are
/// settled as refused and logged, so a misconfigured run is loud rather than silent.
/// Writes are synchronous: standalone mode has one small output and no broker to wait for,
/// so its ledger is unbounded and never retries.
pub struct StdoutSink {
    out: Mutex<Box<dyn Write + Send>>,
    ledger: SharedLedger,
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
            ledger: SharedLedger::new(LedgerConfig::unbounded()),
        }
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
    fn submit(&self, records: Vec<Record>) {
        let produces = match self.ledger.with(|l| l.submit(SystemClock.now(), records)) {
            Admission::Admitted(produces) => produces,
            // Unbounded: never rejected; counted by the ledger if it were.
            Admission::Rejected { .. } => return,
        };
        // A poisoned lock only means another submit panicked mid-write; the writer is
        // still usable.
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let mut written = Vec::with_capacity(produces.len());
        for Produce { id, record } in &produces {
            match Self::write_record(&mut **out, record) {
                Ok(()) => written.push(*id),
                Err(error) => {
                    tracing::error!(%error, "stdout sink: record not written");
                    self.ledger.with(|l| l.failed(*id, FailReason::Refused));
                }
            }
        }
        // Delivered means flushed: a record still in a buffer is not out yet.
        let flushed = out.flush();
        if let Err(error) = &flushed {
            tracing::error!(%error, "stdout sink: flush failed");
        }
        self.ledger.with(|l| {
            for id in written {
                if flushed.is_ok() {
                    l.acked(id);
                } else {
                    l.failed(id, FailReason::Refused);
                }
            }
        });
    }

    fn counts(&self) -> DeliveryCounts {
        self.ledger.counts()
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
        sink.submit(vec![
            record("json", "{\"a\":1}\n{\"a\":2}\n", 2),
            record("json", "{\"b\":3}", 1),
        ]);
        assert_eq!(
            String::from_utf8(buf.0.lock().unwrap().clone()).unwrap(),
            "{\"a\":1}\n{\"a\":2}\n{\"b\":3}\n"
        );
        let c = sink.counts();
        assert_eq!(
            (
                c.emitted_samples(),
                c.delivered_samples,
                c.not_delivered_samples(),
                c.in_flight_samples,
                c.in_flight_records
            ),
            (3, 3, 0, 0, 0)
        );
    }

    #[test]
    fn remote_write_records_fail_loudly_and_others_still_go_out() {
        let buf = Shared::default();
        let sink = StdoutSink::to_writer(Box::new(buf.clone()));
        sink.submit(vec![
            record("remote-write", "\u{1}binary", 5),
            record("json", "{}", 1),
        ]);
        assert_eq!(buf.0.lock().unwrap().as_slice(), b"{}\n");
        let c = sink.counts();
        assert_eq!(
            (
                c.delivered_samples,
                c.failed_samples.get(FailReason::Refused)
            ),
            (1, 5)
        );
    }

    #[test]
    fn a_write_error_counts_the_samples_failed() {
        let sink = StdoutSink::to_writer(Box::new(Broken));
        sink.submit(vec![record("json", "{}", 4)]);
        let c = sink.counts();
        assert_eq!(
            (
                c.delivered_samples,
                c.failed_samples.total(),
                c.in_flight_samples
            ),
            (0, 4, 0)
        );
    }

    #[test]
    fn an_empty_submission_counts_nothing() {
        let sink = StdoutSink::to_writer(Box::new(Shared::default()));
        sink.submit(Vec::new());
        assert_eq!(sink.counts(), DeliveryCounts::default());
    }

    #[test]
    fn the_delivery_series_come_from_the_ledger() {
        use crate::web::ExtraMetrics;
        let sink = StdoutSink::to_writer(Box::new(Broken));
        sink.submit(vec![record("json", "{}", 4)]);
        let counts = sink.counts();
        let mut registry = prometheus_client::registry::Registry::with_prefix("scrapepool");
        DeliverySeries(move || counts).register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "scrapepool_samples_emitted_total 4",
            "scrapepool_samples_delivered_total 0",
            "scrapepool_samples_not_delivered_total 4",
            "scrapepool_samples_not_delivered_by_reason_total{reason=\"refused\"} 4",
            "scrapepool_samples_not_delivered_by_reason_total{reason=\"queue_full\"} 0",
            "scrapepool_deliveries_in_flight 0",
            "scrapepool_samples_in_flight 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}

/// The delivery series on `/metrics`, read from a sink's ledger once per request (the
/// ledger is their only source).
pub struct DeliverySeries<F>(pub F);

impl<F: Fn() -> DeliveryCounts + Send + Sync + 'static> crate::web::ExtraMetrics
    for DeliverySeries<F>
{
    fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        use prometheus_client::metrics::counter::{ConstCounter, Counter};
        use prometheus_client::metrics::family::Family;
        use prometheus_client::metrics::gauge::ConstGauge;
        let c = (self.0)();
        registry.register(
            "samples_emitted",
            "Samples handed to the sink",
            ConstCounter::new(c.emitted_samples()),
        );
        registry.register(
            "samples_delivered",
            "Samples the broker acknowledged",
            ConstCounter::new(c.delivered_samples),
        );
        registry.register(
            "samples_not_delivered",
            "Samples that will never be delivered (queue full, refused, timed out)",
            ConstCounter::new(c.not_delivered_samples()),
        );
        let by_reason = Family::<Vec<(String, String)>, Counter>::default();
        let reasons = std::iter::once(("queue_full", c.rejected_samples)).chain(
            FailReason::ALL
                .iter()
                .map(|r| (r.as_str(), c.failed_samples.get(*r))),
        );
        for (reason, samples) in reasons {
            by_reason
                .get_or_create(&vec![("reason".to_string(), reason.to_string())])
                .inc_by(samples);
        }
        registry.register(
            "samples_not_delivered_by_reason",
            "Samples that will never be delivered: queue_full (rejected at admission), client_queue_full, timed_out, refused",
            by_reason,
        );
        registry.register(
            "deliveries_in_flight",
            "Records handed to the sink and not yet settled",
            ConstGauge::new(c.in_flight_records as i64),
        );
        registry.register(
            "samples_in_flight",
            "Samples handed to the sink and not yet settled",
            ConstGauge::new(c.in_flight_samples as i64),
        );
    }
}
