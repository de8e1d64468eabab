//! A model of the Kafka broker behind the `Sink` port: acknowledgements after a latency,
//! outages and per-scraper partitions. Each scraper's producer runs the production delivery
//! ledger (`scrapepool_core::delivery`): the ledger admits or rejects, decides when a record
//! whose attempt failed is retried and when it times out, and keeps every count; the model
//! only plays the broker's answers. It answers in order, as one partition does for an
//! idempotent producer: a record is acknowledged only with or after every record handed to
//! the producer before it, so each scraper's records of one target reach the bus in the
//! order they were produced.
//!
//! With a spool (`SimConfig::spool`) the production spool policy (`scrapepool_core::spool`)
//! stands in front of the ledger, as in `adapters::kafka`: what the memory queue cannot hold
//! is appended to the host's [`Disk`], which outlives a crash of the process, and replayed,
//! oldest first, whenever the ledger has room (after each submission and each settlement);
//! a spooling producer's records never time out, as in production.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scrapepool_adapters::ports::Sink;
use scrapepool_adapters::sink::SharedLedger;
use scrapepool_core::delivery::{Admission, DeliveryCounts, LedgerConfig, Produce, Retry};
use scrapepool_core::encode::Record;
use scrapepool_core::sample::is_stale_nan;
use scrapepool_core::spool::{decode_entry, EntryId, EntryMeta, Route, Spool, SpoolConfig};
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

/// Most bytes a scraper's spool holds.
pub const SPOOL_BYTES_MAX: u64 = 256 << 20;

/// The ledger of each scraper's producer in the simulation: `queue_len_max` records; with a
/// spool, no message timeout.
pub fn ledger_config(queue_len_max: usize, spool: bool) -> LedgerConfig {
    LedgerConfig {
        queue_len_max,
        queue_bytes_max: usize::MAX,
        message_timeout: if spool {
            Duration::MAX
        } else {
            MESSAGE_TIMEOUT
        },
        retry_backoff: RETRY_INTERVAL,
    }
}

/// A scraper host's disk: its spool's entries and cursor, kept across the process's crashes
/// and restarts. Appends are whole (the model has no torn writes; `adapters::spool`'s tests
/// cover those).
#[derive(Debug, Default)]
pub struct Disk {
    entries: BTreeMap<u64, Vec<u8>>,
    cursor: Option<u64>,
}

impl Disk {
    /// A spool of `config` over what the disk holds: every entry after the cursor, waiting.
    pub fn open(&self, config: SpoolConfig) -> Spool {
        let restored: Vec<EntryMeta> = self
            .entries
            .iter()
            .filter_map(|(id, bytes)| {
                let records = decode_entry(bytes).ok()?;
                Some(EntryMeta::of(EntryId(*id), &records, bytes.len()))
            })
            .collect();
        let next = self
            .entries
            .keys()
            .next_back()
            .copied()
            .or(self.cursor)
            .map_or(0, |id| id + 1);
        Spool::new(config, restored, EntryId(next))
    }

    fn release(&mut self, cursor: EntryId) {
        self.entries = self.entries.split_off(&(cursor.0 + 1));
        self.cursor = Some(cursor.0);
    }
}

/// A producer's spool: the policy and the host's disk.
pub struct SpoolSide {
    /// The policy.
    pub spool: Mutex<Spool>,
    /// The host's disk.
    pub disk: Arc<Mutex<Disk>>,
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
#[derive(Clone)]
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
    /// The spool in front of the ledger, if any.
    pub spool: Option<Arc<SpoolSide>>,
    /// Deliveries handed to the producer and not yet taken by its sender task.
    pub outbox: Arc<Outbox>,
}

/// A producer's deliveries (each one submission's or spool entry's records) in the order
/// they were produced, and whether its sender task runs.
#[derive(Default)]
pub struct Outbox(Mutex<(VecDeque<Vec<Produce>>, bool)>);

impl ModelSink {
    /// Hands one submission's (or spool entry's) records to the producer; the sender task
    /// answers them after everything handed before.
    fn deliver(&self, produces: Vec<Produce>) {
        let mut outbox = self.outbox.0.lock().expect("outbox lock");
        outbox.0.push_back(produces);
        if !outbox.1 {
            outbox.1 = true;
            tokio::spawn(self.clone().send());
        }
    }

    /// The sender: every round, after the broker's latency, acknowledges every waiting
    /// record in order, or (broker out of reach) counts a failed attempt for each and waits
    /// for the retry; a record the ledger gives up on leaves the queue. Each settled record
    /// is settled in the spool too, and then the spool may replay. Ends when nothing waits.
    async fn send(self) {
        let mut waiting: VecDeque<Vec<Produce>> = VecDeque::new();
        loop {
            {
                let mut outbox = self.outbox.0.lock().expect("outbox lock");
                waiting.extend(outbox.0.drain(..));
                if waiting.is_empty() {
                    outbox.1 = false;
                    return;
                }
            }
            tokio::time::sleep(ACK_LATENCY).await;
            if self.broker.accepts(&self.scraper) {
                for delivery in waiting.drain(..) {
                    for p in &delivery {
                        self.ledger.with(|l| l.acked(p.id));
                        self.settled(p.id);
                    }
                    let acked: Vec<&Record> = delivery.iter().map(|p| &p.record).collect();
                    note_acked(&self.trace, (self.now_ms)(), &self.scraper, &acked);
                }
                self.replay();
                continue;
            }
            let now = Timestamp((self.now_ms)());
            let mut retry_at = now;
            for delivery in &mut waiting {
                delivery.retain(
                    |p| match self.ledger.with(|l| l.attempt_failed(now, p.id)) {
                        Some(Retry::At(at)) => {
                            retry_at = retry_at.max(at);
                            true
                        }
                        Some(Retry::GaveUp) | None => {
                            self.settled(p.id);
                            false
                        }
                    },
                );
            }
            waiting.retain(|d| !d.is_empty());
            tokio::time::sleep(retry_at.since(now)).await;
        }
    }

    /// Writes entry `entry` (holding the records `d` read) to the host's disk, and says so in
    /// the trace.
    fn write_entry(
        &self,
        side: &SpoolSide,
        now: Timestamp,
        entry: EntryId,
        bytes: Vec<u8>,
        d: Delivery,
        journaled: bool,
    ) {
        self.trace.push(
            now.0,
            Seen::Spilled {
                scraper: self.scraper.clone(),
                target: d.target,
                samples: d.samples as u32,
                up_at_ms: d.up_at_ms,
                journaled,
            },
        );
        side.disk
            .lock()
            .expect("disk lock")
            .entries
            .insert(entry.0, bytes);
    }

    fn settled(&self, id: scrapepool_core::delivery::RecordId) {
        if let Some(side) = &self.spool {
            let cursor = side.spool.lock().expect("spool lock").settled(id);
            if let Some(cursor) = cursor {
                side.disk.lock().expect("disk lock").release(cursor);
            }
        }
    }

    /// Hands waiting spool entries to the ledger, oldest first, while it has room.
    fn replay(&self) {
        let Some(side) = &self.spool else { return };
        loop {
            let now = Timestamp((self.now_ms)());
            let mut spool = side.spool.lock().expect("spool lock");
            let Some(meta) = self.ledger.with(|l| spool.next_replay(l)) else {
                return;
            };
            let records = side
                .disk
                .lock()
                .expect("disk lock")
                .entries
                .get(&meta.id.0)
                .and_then(|bytes| decode_entry(bytes).ok());
            let Some(records) = records else {
                if let Ok(Some(cursor)) = spool.unreadable(meta.id) {
                    side.disk.lock().expect("disk lock").release(cursor);
                }
                continue;
            };
            let Ok(produces) = self.ledger.with(|l| spool.replay(l, now, meta.id, records)) else {
                return;
            };
            drop(spool);
            self.trace.push(
                now.0,
                Seen::Replayed {
                    scraper: self.scraper.clone(),
                    samples: produces.iter().map(|p| p.record.samples as u32).sum(),
                },
            );
            self.deliver(produces);
        }
    }
}

impl Sink for ModelSink {
    fn submit(&self, records: Vec<Record>) {
        let now = Timestamp((self.now_ms)());
        let Some(side) = &self.spool else {
            match self.ledger.with(|l| l.submit(now, records)) {
                Admission::Admitted(produces) if !produces.is_empty() => self.deliver(produces),
                // Rejected (counted by the ledger) or empty: nothing to produce.
                _ => {}
            }
            return;
        };
        {
            // Routing and appending under one lock, as in production.
            let mut spool = side.spool.lock().expect("spool lock");
            match self.ledger.with(|l| spool.submit(l, now, records)) {
                Route::Admitted(produces) => {
                    if !produces.is_empty() {
                        self.deliver(produces);
                    }
                }
                Route::Journaled {
                    entry,
                    bytes,
                    produces,
                } => {
                    let d = Delivery::of(produces.iter().map(|p| &p.record));
                    self.write_entry(side, now, entry, bytes, d, true);
                    self.deliver(produces);
                }
                Route::Spill { entry, bytes } => {
                    // Read back from the entry: the records moved into the policy.
                    let records = decode_entry(&bytes).unwrap_or_default();
                    let d = Delivery::of(records.iter());
                    self.write_entry(side, now, entry, bytes, d, false);
                }
                Route::Refused { samples, .. } => self.trace.push(
                    now.0,
                    Seen::SpoolRefused {
                        scraper: self.scraper.clone(),
                        samples: samples as u32,
                    },
                ),
            }
        }
        self.replay();
    }

    fn counts(&self) -> DeliveryCounts {
        self.ledger.counts()
    }
}

/// Writes the acknowledged records of one delivery (one target's) into the trace, with the
/// value of its `up` sample and every staleness marker they hold. The sim's scrapers publish
/// remote-write, as in production: each record's bytes are read back here once, by
/// [`scan_record`]; its exporters never serve NaN, so the staleness NaN is a marker. A record
/// that does not read back contributes neither an `up` value nor markers.
fn note_acked(trace: &Trace, at_ms: i64, scraper: &str, records: &[&Record]) {
    if records.is_empty() {
        return;
    }
    let Delivery {
        target,
        samples,
        up,
        up_at_ms,
        markers,
    } = Delivery::of(records.iter().copied());
    trace.push(
        at_ms,
        Seen::Acked {
            scraper: scraper.to_string(),
            target,
            samples: samples as u32,
            up,
            up_at_ms,
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

/// What the checkers read from the records of one delivery (one target's).
struct Delivery {
    target: u32,
    samples: usize,
    up: Option<bool>,
    up_at_ms: Option<i64>,
    markers: Vec<(String, i64)>,
}

impl Delivery {
    /// The target (from the first record's `instance` header), the samples, and what
    /// [`scan_record`] reads of each record (the last `up`, every marker).
    fn of<'a>(records: impl Iterator<Item = &'a Record>) -> Delivery {
        let mut d = Delivery {
            target: u32::MAX,
            samples: 0,
            up: None,
            up_at_ms: None,
            markers: Vec::new(),
        };
        for (i, record) in records.enumerate() {
            if i == 0 {
                let instance = record.headers.iter().find(|(k, _)| *k == "instance");
                d.target = crate::target_of_instance(instance.map_or("", |(_, v)| v.as_str()));
            }
            d.samples += record.samples;
            if let Ok(scan) = scan_record(&record.payload) {
                d.up = scan.up.or(d.up);
                d.up_at_ms = scan.up_at_ms.or(d.up_at_ms);
                d.markers.extend(scan.markers);
            }
        }
        d
    }
}

/// What the checkers read from one remote-write record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scan {
    /// The value of the last `up` sample (`== 1`), if the record holds one.
    pub up: Option<bool>,
    /// The timestamp of that `up` sample.
    pub up_at_ms: Option<i64>,
    /// Every staleness marker of a series other than `up`: the series as text
    /// (`name{k=...}` or `name`) and the marker's timestamp, in record order.
    pub markers: Vec<(String, i64)>,
}

thread_local! {
    /// The inflated bytes of the record being read, kept between records.
    static INFLATED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads one record's payload — a snappy block holding a `prometheus.WriteRequest` — off its
/// bytes, without building the message: the sim reads every record the broker acknowledges,
/// and only the `__name__` and `k` labels and the sample values and timestamps matter to it.
/// Fields it does not read are skipped by wire type, as any protobuf reader does; a payload
/// that is not snappy, not protobuf, a field of a known number with the wrong wire type or a
/// label that is not UTF-8 is an error.
pub fn scan_record(payload: &[u8]) -> Result<Scan, String> {
    INFLATED.with(|inflated| {
        let mut raw = inflated.borrow_mut();
        let len =
            snap::raw::decompress_len(payload).map_err(|e| format!("not a snappy block: {e}"))?;
        raw.resize(len, 0);
        let n = snap::raw::Decoder::new()
            .decompress(payload, &mut raw)
            .map_err(|e| format!("not a snappy block: {e}"))?;
        scan_write_request(&raw[..n]).map_err(|e| format!("not a WriteRequest: {e}"))
    })
}

fn scan_write_request(bytes: &[u8]) -> Result<Scan, &'static str> {
    let mut scan = Scan::default();
    let mut samples: Vec<(f64, i64)> = Vec::new();
    let mut request = Wire(bytes);
    while let Some((number, value)) = request.field()? {
        if number != 1 {
            continue;
        }
        // WriteRequest.timeseries = 1.
        let mut series = Wire(value.bytes()?);
        let (mut name, mut k) = (None, None);
        samples.clear();
        while let Some((number, value)) = series.field()? {
            match number {
                // TimeSeries.labels = 1: Label { name = 1, value = 2 }.
                1 => {
                    let mut label = Wire(value.bytes()?);
                    let (mut label_name, mut label_value) = ("", "");
                    while let Some((number, value)) = label.field()? {
                        match number {
                            1 => label_name = value.utf8()?,
                            2 => label_value = value.utf8()?,
                            _ => {}
                        }
                    }
                    match label_name {
                        "__name__" if name.is_none() => name = Some(label_value),
                        "k" if k.is_none() => k = Some(label_value),
                        _ => {}
                    }
                }
                // TimeSeries.samples = 2: Sample { double value = 1, int64 timestamp = 2 }.
                2 => {
                    let mut sample = Wire(value.bytes()?);
                    let (mut v, mut ts) = (0.0, 0);
                    while let Some((number, value)) = sample.field()? {
                        match (number, value) {
                            (1, Value::Fixed64(bits)) => v = f64::from_bits(bits),
                            (2, Value::Varint(n)) => ts = n as i64,
                            (1 | 2, _) => return Err("a sample field of the wrong wire type"),
                            _ => {}
                        }
                    }
                    samples.push((v, ts));
                }
                _ => {}
            }
        }
        let name = name.unwrap_or("");
        for &(v, ts) in &samples {
            if name == "up" {
                scan.up = Some(v == 1.0);
                scan.up_at_ms = Some(ts);
            } else if is_stale_nan(v) {
                let series = match k {
                    Some(k) => format!("{name}{{k={k}}}"),
                    None => name.to_string(),
                };
                scan.markers.push((series, ts));
            }
        }
    }
    Ok(scan)
}

/// Protobuf wire format, read front to back.
struct Wire<'a>(&'a [u8]);

/// One field's value, by wire type.
#[derive(Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Delimited(&'a [u8]),
    Fixed32,
}

impl<'a> Value<'a> {
    fn bytes(self) -> Result<&'a [u8], &'static str> {
        match self {
            Value::Delimited(b) => Ok(b),
            _ => Err("a message field of the wrong wire type"),
        }
    }

    fn utf8(self) -> Result<&'a str, &'static str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| "a label that is not UTF-8")
    }
}

impl<'a> Wire<'a> {
    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.0.split_first().ok_or("a truncated varint")?;
            self.0 = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("a varint longer than 10 bytes")
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], &'static str> {
        let n = usize::try_from(n).map_err(|_| "a field longer than its message")?;
        if n > self.0.len() {
            return Err("a field longer than its message");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    /// The next field's number and value; `None` at the end.
    fn field(&mut self) -> Result<Option<(u64, Value<'a>)>, &'static str> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let n = self.varint()?;
                Value::Delimited(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed32
            }
            _ => return Err("a group or an unknown wire type"),
        };
        if key >> 3 == 0 {
            return Err("field number 0");
        }
        Ok(Some((key >> 3, value)))
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use scrapepool_core::encode::{encode, EmitSpec, Encoding};
    use scrapepool_core::labels::Labels;
    use scrapepool_core::sample::{stale_nan, Sample};
    use scrapepool_core::testing::remote_write::{self, Label, TimeSeries, WriteRequest};

    use super::*;

    /// The reading through the schema decoder: what the scan must agree with.
    fn through_schema(payload: &[u8]) -> Result<Scan, String> {
        let request = remote_write::decode(payload)?;
        let mut scan = Scan::default();
        for series in &request.timeseries {
            let name = series.label("__name__").unwrap_or("");
            for sample in &series.samples {
                if name == "up" {
                    scan.up = Some(sample.value == 1.0);
                    scan.up_at_ms = Some(sample.timestamp);
                } else if is_stale_nan(sample.value) {
                    let text = match series.label("k") {
                        Some(k) => format!("{name}{{k={k}}}"),
                        None => name.to_string(),
                    };
                    scan.markers.push((text, sample.timestamp));
                }
            }
        }
        Ok(scan)
    }

    fn sample(name: &str, k: Option<&str>, ts: i64, value: f64) -> Sample {
        let mut pairs = vec![
            ("__name__", name.to_string()),
            ("instance", "t3".to_string()),
            ("job", "sim".to_string()),
        ];
        if let Some(k) = k {
            pairs.push(("k", k.to_string()));
        }
        Sample {
            labels: Labels::from_pairs(pairs),
            timestamp_ms: ts,
            value,
            histogram: None,
        }
    }

    fn records(samples: &[Sample], max: usize) -> Vec<Record> {
        let spec = EmitSpec {
            encoding: Encoding::RemoteWrite,
            message_bytes_max: max,
            scraper_id: "s0".into(),
            job: "sim".into(),
            instance: "t3".into(),
            key_hash: 7,
        };
        encode(&spec, samples)
    }

    #[test]
    fn the_scan_of_encoded_scrapes_agrees_with_the_schema_decoder() {
        let t = 1_704_067_200_000;
        let mut samples = vec![
            sample("sim_series", Some("0"), t, 3.0),
            sample("sim_series", Some("5"), t, stale_nan()),
            sample("sim_series", Some("6"), t, stale_nan()),
            sample("gone", None, t - 15_000, stale_nan()),
            sample("up", None, t, 1.0),
            sample("scrape_duration_seconds", None, t, 0.25),
        ];
        let whole = records(&samples, 0);
        assert_eq!(whole.len(), 1);
        let scan = scan_record(&whole[0].payload).expect("reads back");
        assert_eq!(scan, through_schema(&whole[0].payload).expect("decodes"));
        assert_eq!(scan.up, Some(true));
        assert_eq!(
            scan.markers,
            vec![
                ("sim_series{k=5}".to_string(), t),
                ("sim_series{k=6}".to_string(), t),
                ("gone".to_string(), t - 15_000),
            ]
        );
        // A failed scrape: up 0 and markers only; split into several small records.
        samples.retain(|s| s.value.is_nan());
        samples.push(sample("up", None, t, 0.0));
        let split = records(&samples, 120);
        assert!(split.len() > 1, "split into {} records", split.len());
        let mut markers = 0;
        for r in &split {
            let scan = scan_record(&r.payload).expect("reads back");
            assert_eq!(scan, through_schema(&r.payload).expect("decodes"));
            markers += scan.markers.len();
        }
        assert_eq!(markers, 3);
        assert_eq!(
            scan_record(&split.last().expect("records").payload)
                .expect("reads back")
                .up,
            Some(false)
        );
    }

    #[test]
    fn fields_it_does_not_read_are_skipped_and_labels_found_in_any_order() {
        // Labels out of order, an extra label, and the sample's fields in reverse order.
        let request = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![
                    Label {
                        name: "k".into(),
                        value: "2".into(),
                    },
                    Label {
                        name: "zone".into(),
                        value: "a".into(),
                    },
                    Label {
                        name: "__name__".into(),
                        value: "m".into(),
                    },
                ],
                samples: vec![remote_write::Sample {
                    value: stale_nan(),
                    timestamp: -5,
                }],
                histograms: vec![],
            }],
            metadata: vec![],
        };
        let mut raw = request.encode_to_vec();
        // An unknown varint field (number 9) and an unknown fixed32 field (number 10).
        raw.extend_from_slice(&[9 << 3, 0x96, 0x01, (10 << 3) | 5, 1, 2, 3, 4]);
        let payload = snap::raw::Encoder::new()
            .compress_vec(&raw)
            .expect("compresses");
        let scan = scan_record(&payload).expect("reads back");
        assert_eq!(scan, through_schema(&payload).expect("decodes"));
        assert_eq!(scan.markers, vec![("m{k=2}".to_string(), -5)]);
        assert_eq!(scan.up, None);
    }

    #[test]
    fn bad_bytes_are_errors() {
        assert!(scan_record(b"not snappy at all")
            .unwrap_err()
            .contains("snappy"));
        let compress = |raw: &[u8]| snap::raw::Encoder::new().compress_vec(raw).expect("ok");
        // A timeseries field claiming more bytes than there are.
        let err = scan_record(&compress(&[0x0a, 0x05, 0x0a])).unwrap_err();
        assert!(err.contains("longer than its message"), "{err}");
        // A timeseries field sent as a varint.
        let err = scan_record(&compress(&[0x08, 0x01])).unwrap_err();
        assert!(err.contains("wrong wire type"), "{err}");
        // A label name that is not UTF-8.
        let err =
            scan_record(&compress(&[0x0a, 0x06, 0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe])).unwrap_err();
        assert!(err.contains("UTF-8"), "{err}");
    }
}
