//! Encodings for the metric bus: remote-write v1 (protobuf + snappy) and per-sample JSON.
//!
//! Protobuf is written by hand rather than through `prost` structs: the scrape pipeline
//! caches every series' encoded label block (`TimeSeries.labels`, field 1) in the target's
//! [`crate::scrape::SeriesCache`], so a steady-state scrape copies one pre-built byte slice
//! per series and writes only the sample. `prost` would re-encode every label string of
//! every series on every scrape (and need owned `String`s to do it). The tests decode the
//! output with `prost`-derived structs and check exact bytes of a request built from the
//! protobuf wire-format spec.
//!
//! The JSON layout is prometheus-kafka-adapter's: it marshals a Go map, so the keys come
//! out sorted (`labels`, `name`, `timestamp`, `value`), label names sorted too, strings
//! escaped as Go's `encoding/json` does (HTML-safe). The one intended difference is the
//! timestamp: RFC 3339 with milliseconds (the adapter truncates to seconds).

use std::ops::Range;

use crate::format;
use crate::histogram::{Counts, Histogram, Span};
use crate::labels::Labels;
use crate::sample::Sample;

/// How samples are written onto the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// One remote-write v1 `WriteRequest` (protobuf, snappy block) per scrape.
    #[default]
    RemoteWrite,
    /// One remote-write 2.0 `io.prometheus.write.v2.Request` (protobuf, snappy block) per
    /// scrape: a symbols table, series as label references, metadata per series.
    RemoteWriteV2,
    /// One JSON object per sample, prometheus-kafka-adapter's layout.
    Json,
}

impl Encoding {
    /// The value of the `encoding` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::RemoteWrite => "remote-write",
            Encoding::RemoteWriteV2 => "remote-write-v2",
            Encoding::Json => "json",
        }
    }

    /// The value of the `content-type` header: the payload's media type (remote write's
    /// own, whose bodies are snappy blocks).
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::RemoteWrite => "application/x-protobuf;proto=prometheus.WriteRequest",
            Encoding::RemoteWriteV2 => {
                "application/x-protobuf;proto=io.prometheus.write.v2.Request"
            }
            Encoding::Json => "application/json",
        }
    }
}

/// Who writes, and how: the parts of a message that do not depend on the samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmitSpec {
    /// The encoding.
    pub encoding: Encoding,
    /// Largest message in bytes; larger batches are split (0: no limit).
    pub message_bytes_max: usize,
    /// The scraper's member id (a header).
    pub scraper_id: String,
    /// The job (a header).
    pub job: String,
    /// The target's `instance` (a header).
    pub instance: String,
    /// The target key's hash: the message key, so a target's samples stay on one partition.
    pub key_hash: u64,
}

/// One message for the bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Message key: the target key's hash, 8 bytes big-endian.
    pub key: [u8; 8],
    /// Headers: `encoding`, `job`, `instance`, `scraper`.
    pub headers: Vec<(&'static str, String)>,
    /// The encoded samples.
    pub payload: Vec<u8>,
    /// How many samples the payload holds.
    pub samples: usize,
}

/// Encodes `samples` into one or more records no larger than `spec.message_bytes_max`.
///
/// A sample that cannot fit in a record of that size on its own is left out; callers see it
/// as the difference between `samples.len()` and the sum of [`Record::samples`].
pub fn encode(spec: &EmitSpec, samples: &[Sample]) -> Vec<Record> {
    match spec.encoding {
        Encoding::RemoteWrite | Encoding::RemoteWriteV2 => {
            // Consecutive samples of one series share a TimeSeries.
            let mut labels_pb = Vec::new();
            let mut label_ranges: Vec<Range<usize>> = Vec::new();
            let mut groups: Vec<(usize, Range<usize>, Range<usize>)> = Vec::new();
            let mut points = Vec::with_capacity(samples.len());
            let mut hists: Vec<(i64, &Histogram)> = Vec::new();
            for (i, s) in samples.iter().enumerate() {
                if i == 0 || samples[i - 1].labels != s.labels {
                    let start = labels_pb.len();
                    put_labels_pb(labels_iter(&s.labels), &mut labels_pb);
                    label_ranges.push(start..labels_pb.len());
                    groups.push((
                        label_ranges.len() - 1,
                        points.len()..points.len(),
                        hists.len()..hists.len(),
                    ));
                }
                let group = groups.last_mut().expect("a group for every sample");
                match &s.histogram {
                    Some(h) => {
                        hists.push((s.timestamp_ms, h));
                        group.2.end = hists.len();
                    }
                    None => {
                        points.push((s.timestamp_ms, s.value));
                        group.1.end = points.len();
                    }
                }
            }
            // Remote-write 2.0: a symbols table for these samples alone, no metadata.
            let mut symbols = Symbols::default();
            let refs: Vec<Vec<u8>> = if spec.encoding == Encoding::RemoteWriteV2 {
                label_ranges
                    .iter()
                    .map(|r| {
                        let mut out = Vec::new();
                        let labels = labels_from_pb(&labels_pb[r.clone()]);
                        put_label_refs(labels_iter(&labels), &mut symbols, &mut out);
                        out
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let groups: Vec<Group<'_>> = groups
                .into_iter()
                .map(|(l, points, hists)| Group {
                    labels_pb: &labels_pb[label_ranges[l].clone()],
                    refs: refs.get(l).map_or(&[][..], Vec::as_slice),
                    meta: [0; 3],
                    points,
                    hists,
                })
                .collect();
            let v2 = (spec.encoding == Encoding::RemoteWriteV2).then_some(&symbols);
            remote_write_records(
                spec,
                v2,
                &[],
                &groups,
                &points,
                &hists,
                &mut RwBuffers::default(),
            )
        }
        Encoding::Json => {
            let mut prefix = Vec::new();
            let mut scratch = JsonScratch::default();
            let mut out = Vec::with_capacity(samples.len());
            for (i, s) in samples.iter().enumerate() {
                if i == 0 || samples[i - 1].labels != s.labels {
                    prefix.clear();
                    put_json_prefix(labels_iter(&s.labels), &mut prefix);
                }
                let value = match &s.histogram {
                    Some(h) => JsonValue::Histogram(h),
                    None => JsonValue::Float(s.value),
                };
                if let Some(r) = json_record(spec, &prefix, s.timestamp_ms, value, &mut scratch) {
                    out.push(r);
                }
            }
            out
        }
    }
}

fn labels_iter(labels: &Labels) -> impl Iterator<Item = (&str, &str)> {
    labels.iter().map(|l| (l.name.as_str(), l.value.as_str()))
}

/// The headers every record of one target carries.
pub(crate) fn headers(spec: &EmitSpec) -> Vec<(&'static str, String)> {
    vec![
        ("encoding", spec.encoding.as_str().to_string()),
        ("job", spec.job.clone()),
        ("instance", spec.instance.clone()),
        ("scraper", spec.scraper_id.clone()),
        ("content-type", spec.encoding.content_type().to_string()),
    ]
}

// ---------------------------------------------------------------------------------------
// Protobuf (remote-write v1)
//
// WriteRequest { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
// TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
//                repeated Histogram histograms = 4; }
// Label        { string name = 1; string value = 2; }
// Sample       { double value = 1; int64 timestamp = 2; }
// (Histogram and MetricMetadata: see `put_histogram` and `put_v1_metadata`; 2.0's Request is
// written by `put_v2_series` and `Symbols`.)
// Scalars equal to their default (0) are left out, as Go's and prost's marshalers do.
// ---------------------------------------------------------------------------------------

/// Length-delimited field 1 / field 2 tags, and the fixed64 / varint tags of `Sample`.
const TAG_1_LEN: u8 = 0x0a;
const TAG_2_LEN: u8 = 0x12;
const TAG_SAMPLE_VALUE: u8 = 0x09;
const TAG_SAMPLE_TIMESTAMP: u8 = 0x10;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads one varint off the front of `bytes`: its value and the rest.
pub(crate) fn read_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some((v, &bytes[i + 1..]));
        }
    }
    None
}

fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 takes one byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends the `labels` field (field 1, repeated `Label`) of a `TimeSeries` for `labels`.
pub(crate) fn put_labels_pb<'a>(
    labels: impl Iterator<Item = (&'a str, &'a str)>,
    out: &mut Vec<u8>,
) {
    for (name, value) in labels {
        let mut len = 0;
        if !name.is_empty() {
            len += 1 + varint_len(name.len() as u64) + name.len();
        }
        if !value.is_empty() {
            len += 1 + varint_len(value.len() as u64) + value.len();
        }
        out.push(TAG_1_LEN);
        put_varint(out, len as u64);
        if !name.is_empty() {
            out.push(TAG_1_LEN);
            put_varint(out, name.len() as u64);
            out.extend_from_slice(name.as_bytes());
        }
        if !value.is_empty() {
            out.push(TAG_2_LEN);
            put_varint(out, value.len() as u64);
            out.extend_from_slice(value.as_bytes());
        }
    }
}

/// Reads back a label block written by [`put_labels_pb`]. The scrape cache keeps only the
/// encoded block of a series; this serves its cold paths (sorting markers, showing series).
pub(crate) fn labels_from_pb(mut block: &[u8]) -> Labels {
    fn field<'a>(buf: &mut &'a [u8]) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = buf.split_first()?;
        let (mut len, mut shift, mut i) = (0usize, 0, 0);
        loop {
            let b = *rest.get(i)?;
            len |= usize::from(b & 0x7f) << shift;
            i += 1;
            if b < 0x80 {
                break;
            }
            shift += 7;
        }
        let body = rest.get(i..i + len)?;
        *buf = &rest[i + len..];
        Some((tag, body))
    }
    let mut labels = Labels::new();
    while let Some((_, mut label)) = field(&mut block) {
        let (mut name, mut value) = ("", "");
        while let Some((tag, bytes)) = field(&mut label) {
            let text = std::str::from_utf8(bytes).unwrap_or_default();
            match tag {
                TAG_1_LEN => name = text,
                TAG_2_LEN => value = text,
                _ => {}
            }
        }
        labels.set(name.to_string(), value.to_string());
    }
    labels
}

/// Reads back the labels of a JSON prefix written by [`put_json_prefix`] (cold paths only).
pub(crate) fn labels_from_json_prefix(prefix: &[u8]) -> Labels {
    #[derive(serde::Deserialize)]
    struct Prefix {
        labels: Labels,
    }
    // The prefix stops inside the timestamp string: close it to read the object.
    let mut text = prefix.to_vec();
    text.extend_from_slice(b"\"}");
    serde_json::from_slice::<Prefix>(&text)
        .map(|p| p.labels)
        .unwrap_or_default()
}

fn sample_len(ts: i64, value: f64) -> usize {
    let mut len = 0;
    if value != 0.0 {
        len += 9;
    }
    if ts != 0 {
        len += 1 + varint_len(ts as u64);
    }
    len
}

fn put_sample(out: &mut Vec<u8>, ts: i64, value: f64) {
    out.push(TAG_2_LEN);
    put_varint(out, sample_len(ts, value) as u64);
    if value != 0.0 {
        out.push(TAG_SAMPLE_VALUE);
        out.extend_from_slice(&value.to_le_bytes());
    }
    if ts != 0 {
        out.push(TAG_SAMPLE_TIMESTAMP);
        put_varint(out, ts as u64);
    }
}

/// One `TimeSeries` to write: its encoded labels and ranges of the points and histograms.
#[derive(Clone, Debug)]
pub(crate) struct Group<'a> {
    /// Output of [`put_labels_pb`] for the series.
    pub labels_pb: &'a [u8],
    /// Remote-write 2.0: its `labels_refs`, packed ([`put_label_refs`]).
    pub refs: &'a [u8],
    /// Remote-write 2.0: its metadata, `[type, help_ref, unit_ref]` (all 0: none).
    pub meta: [u32; 3],
    /// Its samples, as a range of the `points` slice passed alongside.
    pub points: Range<usize>,
    /// Its native histogram samples, as a range of the `hists` slice passed alongside.
    pub hists: Range<usize>,
}

impl Group<'_> {
    fn samples(&self) -> usize {
        self.points.len() + self.hists.len()
    }
}

/// A native histogram sample: timestamp and value.
pub(crate) type HistogramPoint<'h> = (i64, &'h Histogram);

/// A remote-write 2.0 symbols table: `""` first, then each string once, its
/// `Request.symbols` fields (field 4) written as strings are added. Empty (allocating
/// nothing) until the first string is interned.
#[derive(Clone, Debug, Default)]
pub(crate) struct Symbols {
    index: std::collections::HashMap<Box<str>, u32, xxhash_rust::xxh3::Xxh3Builder>,
    pb: Vec<u8>,
    /// Where each string's text lies in `pb`, by reference.
    texts: Vec<(u32, u32)>,
}

impl Symbols {
    /// The reference of `text`, added if new.
    pub(crate) fn intern(&mut self, text: &str) -> u32 {
        if self.index.is_empty() {
            self.insert("");
        }
        match self.index.get(text) {
            Some(&i) => i,
            None => self.insert(text),
        }
    }

    fn insert(&mut self, text: &str) -> u32 {
        let i = self.index.len() as u32;
        self.index.insert(text.into(), i);
        self.pb.push(0x22);
        put_varint(&mut self.pb, text.len() as u64);
        self.texts.push((self.pb.len() as u32, text.len() as u32));
        self.pb.extend_from_slice(text.as_bytes());
        i
    }

    /// The text of reference `r` (`""` for one out of the table).
    fn text(&self, r: u32) -> &[u8] {
        self.texts.get(r as usize).map_or(&[][..], |&(at, len)| {
            &self.pb[at as usize..(at + len) as usize]
        })
    }

    /// Strings in the table.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// The table as `Request.symbols` fields.
    pub(crate) fn pb(&self) -> &[u8] {
        &self.pb
    }
}

/// Appends a series' `labels_refs` (name and value references, packed varints) for `labels`.
pub(crate) fn put_label_refs<'a>(
    labels: impl Iterator<Item = (&'a str, &'a str)>,
    symbols: &mut Symbols,
    out: &mut Vec<u8>,
) {
    for (name, value) in labels {
        put_varint(out, u64::from(symbols.intern(name)));
        put_varint(out, u64::from(symbols.intern(value)));
    }
}

/// Appends a `WriteRequest.metadata` field (remote-write v1 `MetricMetadata`: type, family
/// name, help, unit), as Prometheus's metadata watcher sends one per family.
pub(crate) fn put_v1_metadata(
    out: &mut Vec<u8>,
    kind: Option<crate::exposition::MetricType>,
    name: &str,
    help: &str,
    unit: &str,
) {
    let kind = v2_type(kind);
    let texts = [(TAG_2_LEN, name), (0x22, help), (0x2a, unit)];
    let text_len = |t: &str| 1 + varint_len(t.len() as u64) + t.len();
    let len = if kind != 0 { 2 } else { 0 }
        + texts
            .iter()
            .filter(|(_, t)| !t.is_empty())
            .map(|(_, t)| text_len(t))
            .sum::<usize>();
    out.push(0x1a);
    put_varint(out, len as u64);
    if kind != 0 {
        out.push(0x08);
        put_varint(out, u64::from(kind));
    }
    for (tag, text) in texts {
        if !text.is_empty() {
            out.push(tag);
            put_varint(out, text.len() as u64);
            out.extend_from_slice(text.as_bytes());
        }
    }
}

/// The remote-write 2.0 `Metadata.type` of a family's type (v1's `MetricMetadata.type`
/// numbers them the same way).
pub(crate) fn v2_type(kind: Option<crate::exposition::MetricType>) -> u32 {
    use crate::exposition::MetricType as T;
    match kind {
        Some(T::Counter) => 1,
        Some(T::Gauge) => 2,
        Some(T::Histogram) => 3,
        Some(T::GaugeHistogram) => 4,
        Some(T::Summary) => 5,
        Some(T::Info) => 6,
        Some(T::StateSet) => 7,
        Some(T::Unknown) | None => 0,
    }
}

fn put_write_request(
    v2: bool,
    groups: &[Group<'_>],
    points: &[(i64, f64)],
    hists: &[HistogramPoint<'_>],
    out: &mut Vec<u8>,
) {
    if v2 {
        return put_v2_series(groups, points, hists, out);
    }
    let mut hbuf = Vec::new();
    for g in groups {
        hbuf.clear();
        for &(ts, h) in &hists[g.hists.clone()] {
            put_histogram(&mut hbuf, 0x22, ts, h);
        }
        let mut len = g.labels_pb.len() + hbuf.len();
        for &(ts, v) in &points[g.points.clone()] {
            let l = sample_len(ts, v);
            len += 1 + varint_len(l as u64) + l;
        }
        out.push(TAG_1_LEN);
        put_varint(out, len as u64);
        out.extend_from_slice(g.labels_pb);
        for &(ts, v) in &points[g.points.clone()] {
            put_sample(out, ts, v);
        }
        out.extend_from_slice(&hbuf);
    }
}

/// Remote-write 2.0 `Request.timeseries` (field 5) for `groups`: label references, samples,
/// histograms, metadata.
fn put_v2_series(
    groups: &[Group<'_>],
    points: &[(i64, f64)],
    hists: &[HistogramPoint<'_>],
    out: &mut Vec<u8>,
) {
    let mut series = Vec::new();
    for g in groups {
        series.clear();
        series.push(TAG_1_LEN);
        put_varint(&mut series, g.refs.len() as u64);
        series.extend_from_slice(g.refs);
        for &(ts, v) in &points[g.points.clone()] {
            put_sample(&mut series, ts, v);
        }
        for &(ts, h) in &hists[g.hists.clone()] {
            put_histogram(&mut series, 0x1a, ts, h);
        }
        if g.meta != [0; 3] {
            let mut meta = Vec::with_capacity(12);
            for (tag, v) in [(0x08, g.meta[0]), (0x18, g.meta[1]), (0x20, g.meta[2])] {
                if v != 0 {
                    meta.push(tag);
                    put_varint(&mut meta, u64::from(v));
                }
            }
            series.push(0x2a);
            put_varint(&mut series, meta.len() as u64);
            series.extend_from_slice(&meta);
        }
        out.push(0x2a);
        put_varint(out, series.len() as u64);
        out.extend_from_slice(&series);
    }
}

/// Appends one histogram field (`tag`: v1's `TimeSeries.histograms`, field 4, or 2.0's,
/// field 3) as Prometheus's remote write sends it (`FromIntHistogram` /
/// `FromFloatHistogram`; the two versions share the fields written here): count and zero
/// count always written (they are `oneof`s), integer buckets as deltas, float ones
/// absolute, the reset hint `GAUGE` for a gauge histogram.
fn put_histogram(out: &mut Vec<u8>, tag: u8, ts: i64, h: &Histogram) {
    fn zigzag(v: i64) -> u64 {
        ((v << 1) ^ (v >> 63)) as u64
    }
    fn spans(m: &mut Vec<u8>, tag: u8, spans: &[Span]) {
        for s in spans {
            let mut span = Vec::with_capacity(12);
            if s.offset != 0 {
                span.push(0x08);
                put_varint(&mut span, zigzag(i64::from(s.offset)));
            }
            if s.length != 0 {
                span.push(0x10);
                put_varint(&mut span, u64::from(s.length));
            }
            m.push(tag);
            put_varint(m, span.len() as u64);
            m.extend_from_slice(&span);
        }
    }
    fn deltas(m: &mut Vec<u8>, tag: u8, values: &[i64]) {
        if values.is_empty() {
            return;
        }
        let mut packed = Vec::with_capacity(values.len() * 2);
        for &v in values {
            put_varint(&mut packed, zigzag(v));
        }
        m.push(tag);
        put_varint(m, packed.len() as u64);
        m.extend_from_slice(&packed);
    }
    fn counts(m: &mut Vec<u8>, tag: u8, values: &[f64]) {
        if values.is_empty() {
            return;
        }
        m.push(tag);
        put_varint(m, (values.len() * 8) as u64);
        for v in values {
            m.extend_from_slice(&v.to_le_bytes());
        }
    }
    let mut m = Vec::with_capacity(64);
    match &h.counts {
        Counts::Int { count, .. } => {
            m.push(0x08);
            put_varint(&mut m, *count);
        }
        Counts::Float { count, .. } => {
            m.push(0x11);
            m.extend_from_slice(&count.to_le_bytes());
        }
    }
    if h.sum != 0.0 {
        m.push(0x19);
        m.extend_from_slice(&h.sum.to_le_bytes());
    }
    if h.schema != 0 {
        m.push(0x20);
        put_varint(&mut m, zigzag(i64::from(h.schema)));
    }
    if h.zero_threshold != 0.0 {
        m.push(0x29);
        m.extend_from_slice(&h.zero_threshold.to_le_bytes());
    }
    match &h.counts {
        Counts::Int { zero_count, .. } => {
            m.push(0x30);
            put_varint(&mut m, *zero_count);
        }
        Counts::Float { zero_count, .. } => {
            m.push(0x39);
            m.extend_from_slice(&zero_count.to_le_bytes());
        }
    }
    spans(&mut m, 0x42, &h.negative_spans);
    match &h.counts {
        Counts::Int {
            positive, negative, ..
        } => {
            deltas(&mut m, 0x4a, negative);
            spans(&mut m, 0x5a, &h.positive_spans);
            deltas(&mut m, 0x62, positive);
        }
        Counts::Float {
            positive, negative, ..
        } => {
            counts(&mut m, 0x52, negative);
            spans(&mut m, 0x5a, &h.positive_spans);
            counts(&mut m, 0x6a, positive);
        }
    }
    if h.gauge {
        m.push(0x70);
        put_varint(&mut m, 3);
    }
    if ts != 0 {
        m.push(0x78);
        put_varint(&mut m, ts as u64);
    }
    out.push(tag);
    put_varint(out, m.len() as u64);
    out.extend_from_slice(&m);
}

/// Encodes `groups` as snappy-compressed `WriteRequest`s, split on series boundaries (and
/// inside a series when one alone is too large) so that no payload exceeds
/// `spec.message_bytes_max`. A single sample too large on its own is left out.
/// `metadata`: remote-write v1 `WriteRequest.metadata` fields ([`put_v1_metadata`]) to
/// send with the samples: in the record when the scrape fits in one, else in records of
/// their own after the others (they hold no sample).
///
/// `symbols`: for remote-write 2.0, the table the groups' references point into. A record
/// holding all the groups starts with the whole table; a part of a split scrape with a table
/// of the strings its own series use, renumbered, so that each record reads on its own and
/// none is larger than its series need.
pub(crate) fn remote_write_records(
    spec: &EmitSpec,
    symbols: Option<&Symbols>,
    metadata: &[u8],
    groups: &[Group<'_>],
    points: &[(i64, f64)],
    hists: &[HistogramPoint<'_>],
    bufs: &mut RwBuffers,
) -> Vec<Record> {
    let mut w = RwWriter {
        spec,
        symbols,
        metadata,
        points,
        hists,
        body: std::mem::take(&mut bufs.body),
        comp: std::mem::take(&mut bufs.comp),
        encoder: snap::raw::Encoder::new(),
        records: Vec::new(),
    };
    let records = w.write_all(groups);
    bufs.body = std::mem::take(&mut w.body);
    bufs.comp = std::mem::take(&mut w.comp);
    records
}

/// Buffers kept between scrapes, so a large scrape does not fault fresh pages in each time.
#[derive(Clone, Default)]
pub(crate) struct RwBuffers {
    body: Vec<u8>,
    comp: Vec<u8>,
}

impl std::fmt::Debug for RwBuffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RwBuffers({} + {} bytes)",
            self.body.capacity(),
            self.comp.capacity()
        )
    }
}

impl RwWriter<'_, '_> {
    fn write_all(&mut self, groups: &[Group<'_>]) -> Vec<Record> {
        let w = self;
        if groups.is_empty() {
            return Vec::new();
        }
        let limit = w.spec.message_bytes_max;
        w.put_request(groups, true);
        w.body.extend_from_slice(w.metadata);
        let total_points: usize = groups.iter().map(Group::samples).sum();
        let compressed = w.compress();
        if limit == 0 || compressed.len() <= limit {
            w.push(compressed, total_points);
            return std::mem::take(&mut w.records);
        }
        // Too large: cut into parts of about the size the observed ratio allows, with a 10%
        // margin, then let `emit` halve any part that still does not fit.
        let ratio = w.body.len() as f64 / compressed.len().max(1) as f64;
        let part_bytes = ((limit as f64 * ratio * 0.9) as usize).max(1);
        let mut start = 0;
        let mut acc = 0;
        for (i, g) in groups.iter().enumerate() {
            let size = g.labels_pb.len() + g.refs.len() + g.points.len() * 20 + g.hists.len() * 100;
            if acc > 0 && acc + size > part_bytes {
                w.emit(groups[start..i].to_vec());
                start = i;
                acc = 0;
            }
            acc += size;
        }
        w.emit(groups[start..].to_vec());
        // The metadata in records of their own, last: as many families per record as fit
        // uncompressed in 4/5 of the limit (snappy never grows a block by more than 1/6 and
        // 32 bytes). A family too large even alone is left out.
        let mut rest = w.metadata;
        w.body.clear();
        while !rest.is_empty() {
            let Some((len, tail)) = read_varint(&rest[1..]) else {
                break;
            };
            let field_len = rest.len() - tail.len() + len as usize;
            let (field, after) = rest.split_at(field_len.min(rest.len()));
            rest = after;
            if !w.body.is_empty() && (w.body.len() + field.len()) * 5 > limit * 4 {
                let part = w.compress();
                w.push(part, 0);
                w.body.clear();
            }
            if field.len() * 5 <= limit * 4 {
                w.body.extend_from_slice(field);
            }
        }
        if !w.body.is_empty() {
            let part = w.compress();
            w.push(part, 0);
        }
        std::mem::take(&mut w.records)
    }
}

struct RwWriter<'s, 'p> {
    spec: &'s EmitSpec,
    symbols: Option<&'p Symbols>,
    metadata: &'p [u8],
    points: &'p [(i64, f64)],
    hists: &'p [HistogramPoint<'p>],
    body: Vec<u8>,
    comp: Vec<u8>,
    encoder: snap::raw::Encoder,
    records: Vec<Record>,
}

impl RwWriter<'_, '_> {
    /// Writes the uncompressed request for `groups` (all of the scrape's, or a part) into
    /// `body`.
    fn put_request(&mut self, groups: &[Group<'_>], whole: bool) {
        self.body.clear();
        let Some(symbols) = self.symbols else {
            put_write_request(false, groups, self.points, self.hists, &mut self.body);
            return;
        };
        if whole {
            self.body.extend_from_slice(symbols.pb());
            put_write_request(true, groups, self.points, self.hists, &mut self.body);
            return;
        }
        // A part: only its strings, renumbered in order of first use.
        let mut local = Symbols::default();
        let mut renumber = |r: u32| {
            let text = std::str::from_utf8(symbols.text(r)).unwrap_or_default();
            local.intern(text)
        };
        let mut refs: Vec<Vec<u8>> = Vec::with_capacity(groups.len());
        let mut metas: Vec<[u32; 3]> = Vec::with_capacity(groups.len());
        for g in groups {
            let mut out = Vec::with_capacity(g.refs.len());
            let mut rest = g.refs;
            while let Some((r, tail)) = read_varint(rest) {
                put_varint(&mut out, u64::from(renumber(r as u32)));
                rest = tail;
            }
            refs.push(out);
            let [kind, help, unit] = g.meta;
            let local_ref = |r: u32, renumber: &mut dyn FnMut(u32) -> u32| {
                if r == 0 {
                    0
                } else {
                    renumber(r)
                }
            };
            metas.push([
                kind,
                local_ref(help, &mut renumber),
                local_ref(unit, &mut renumber),
            ]);
        }
        let parts: Vec<Group<'_>> = groups
            .iter()
            .zip(&refs)
            .zip(&metas)
            .map(|((g, refs), meta)| Group {
                refs,
                meta: *meta,
                ..g.clone()
            })
            .collect();
        self.body.extend_from_slice(local.pb());
        put_write_request(true, &parts, self.points, self.hists, &mut self.body);
    }

    fn compress(&mut self) -> Vec<u8> {
        let need = snap::raw::max_compress_len(self.body.len());
        if self.comp.len() < need {
            self.comp.resize(need, 0);
        }
        let n = self
            .encoder
            .compress(&self.body, &mut self.comp)
            .expect("snappy: output sized by max_compress_len");
        self.comp[..n].to_vec()
    }

    fn push(&mut self, payload: Vec<u8>, samples: usize) {
        self.records.push(Record {
            key: self.spec.key_hash.to_be_bytes(),
            headers: headers(self.spec),
            payload,
            samples,
        });
    }

    /// Writes `groups` as one record if it fits, else halves them (by series, then by sample).
    fn emit(&mut self, groups: Vec<Group<'_>>) {
        let limit = self.spec.message_bytes_max;
        let samples: usize = groups.iter().map(Group::samples).sum();
        if samples == 0 {
            return;
        }
        self.put_request(&groups, false);
        let compressed = self.compress();
        if compressed.len() <= limit {
            self.push(compressed, samples);
        } else if groups.len() > 1 {
            let mid = groups.len() / 2;
            self.emit(groups[..mid].to_vec());
            self.emit(groups[mid..].to_vec());
        } else if groups[0].samples() > 1 {
            // Halve the series: its float points, or its histograms when it has one point.
            let g = &groups[0];
            let (a, b) = if g.points.len() > 1 || g.hists.is_empty() {
                let mid = g.points.start + g.points.len() / 2;
                (
                    Group {
                        points: g.points.start..mid,
                        hists: g.hists.start..g.hists.start,
                        ..g.clone()
                    },
                    Group {
                        points: mid..g.points.end,
                        ..g.clone()
                    },
                )
            } else if g.points.is_empty() {
                let mid = g.hists.start + g.hists.len() / 2;
                (
                    Group {
                        hists: g.hists.start..mid,
                        ..g.clone()
                    },
                    Group {
                        hists: mid..g.hists.end,
                        ..g.clone()
                    },
                )
            } else {
                (
                    Group {
                        hists: g.hists.start..g.hists.start,
                        ..g.clone()
                    },
                    Group {
                        points: g.points.end..g.points.end,
                        ..g.clone()
                    },
                )
            };
            self.emit(vec![a]);
            self.emit(vec![b]);
        }
        // else: one sample that cannot fit in any record; left out (counted by the caller).
    }
}

// ---------------------------------------------------------------------------------------
// JSON (prometheus-kafka-adapter layout)
// ---------------------------------------------------------------------------------------

/// Appends `{"labels":{...},"name":"...","timestamp":"` for a series: everything of its
/// JSON records that does not depend on the sample.
pub(crate) fn put_json_prefix<'a>(
    labels: impl Iterator<Item = (&'a str, &'a str)>,
    out: &mut Vec<u8>,
) {
    let mut text = String::from("{\"labels\":{");
    let mut name = "";
    for (i, (n, v)) in labels.enumerate() {
        if i > 0 {
            text.push(',');
        }
        format::write_json_string(&mut text, n);
        text.push(':');
        format::write_json_string(&mut text, v);
        if n == "__name__" {
            name = v;
        }
    }
    text.push_str("},\"name\":");
    format::write_json_string(&mut text, name);
    text.push_str(",\"timestamp\":\"");
    out.extend_from_slice(text.as_bytes());
}

/// Reusable text buffers for JSON records; the timestamp text is kept, since the samples
/// of one scrape mostly share one timestamp.
#[derive(Debug)]
pub(crate) struct JsonScratch {
    ts: i64,
    ts_text: String,
    text: String,
}

impl Default for JsonScratch {
    fn default() -> Self {
        JsonScratch {
            ts: i64::MIN,
            ts_text: String::new(),
            text: String::new(),
        }
    }
}

/// What a JSON record carries.
#[derive(Clone, Copy, Debug)]
pub(crate) enum JsonValue<'h> {
    /// `"value":"<float>"`.
    Float(f64),
    /// `"histogram":{...}` (README, "Encodings").
    Histogram(&'h Histogram),
}

/// One JSON record, or `None` if it would exceed the message size limit.
pub(crate) fn json_record(
    spec: &EmitSpec,
    prefix: &[u8],
    ts: i64,
    value: JsonValue<'_>,
    scratch: &mut JsonScratch,
) -> Option<Record> {
    if scratch.ts != ts || scratch.ts_text.is_empty() {
        scratch.ts = ts;
        scratch.ts_text.clear();
        format::write_rfc3339_ms(&mut scratch.ts_text, ts);
    }
    let text = &mut scratch.text;
    text.clear();
    text.push_str(&scratch.ts_text);
    match value {
        JsonValue::Float(v) => {
            text.push_str("\",\"value\":\"");
            format::write_float(text, v);
            text.push_str("\"}");
        }
        JsonValue::Histogram(h) => {
            text.push_str("\",\"histogram\":");
            write_json_histogram(text, h);
            text.push('}');
        }
    }
    let len = prefix.len() + text.len();
    if spec.message_bytes_max != 0 && len > spec.message_bytes_max {
        return None;
    }
    let mut payload = Vec::with_capacity(len);
    payload.extend_from_slice(prefix);
    payload.extend_from_slice(text.as_bytes());
    Some(Record {
        key: spec.key_hash.to_be_bytes(),
        headers: headers(spec),
        payload,
        samples: 1,
    })
}

/// A native histogram as JSON: `{"count":"<float>","sum":"<float>","schema":<int>,
/// "zero_threshold":"<float>","zero_count":"<float>","positive_spans":[{"offset":<int>,
/// "length":<int>},...],"positive_buckets":["<float>",...],"negative_spans":[...],
/// "negative_buckets":[...]}`, bucket counts absolute (integer histograms' deltas summed),
/// floats written as the `value` of a float record is, and `"gauge":true` for a gauge
/// histogram.
fn write_json_histogram(out: &mut String, h: &Histogram) {
    use std::fmt::Write as _;
    fn floats(out: &mut String, values: impl Iterator<Item = f64>) {
        out.push('[');
        for (i, v) in values.enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            format::write_float(out, v);
            out.push('"');
        }
        out.push(']');
    }
    fn spans(out: &mut String, spans: &[Span]) {
        out.push('[');
        for (i, s) in spans.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{{\"offset\":{},\"length\":{}}}", s.offset, s.length);
        }
        out.push(']');
    }
    fn absolute(deltas: &[i64]) -> impl Iterator<Item = f64> + '_ {
        deltas.iter().scan(0i64, |running, d| {
            *running = running.wrapping_add(*d);
            Some(*running as f64)
        })
    }
    let (count, zero_count) = match &h.counts {
        Counts::Int {
            count, zero_count, ..
        } => (*count as f64, *zero_count as f64),
        Counts::Float {
            count, zero_count, ..
        } => (*count, *zero_count),
    };
    let field = |out: &mut String, name: &str, v: f64| {
        let _ = write!(out, "\"{name}\":\"");
        format::write_float(out, v);
        out.push_str("\",");
    };
    out.push('{');
    field(out, "count", count);
    field(out, "sum", h.sum);
    let _ = write!(out, "\"schema\":{},", h.schema);
    field(out, "zero_threshold", h.zero_threshold);
    field(out, "zero_count", zero_count);
    out.push_str("\"positive_spans\":");
    spans(out, &h.positive_spans);
    out.push_str(",\"positive_buckets\":");
    match &h.counts {
        Counts::Int { positive, .. } => floats(out, absolute(positive)),
        Counts::Float { positive, .. } => floats(out, positive.iter().copied()),
    }
    out.push_str(",\"negative_spans\":");
    spans(out, &h.negative_spans);
    out.push_str(",\"negative_buckets\":");
    match &h.counts {
        Counts::Int { negative, .. } => floats(out, absolute(negative)),
        Counts::Float { negative, .. } => floats(out, negative.iter().copied()),
    }
    if h.gauge {
        out.push_str(",\"gauge\":true");
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(encoding: Encoding, max: usize) -> EmitSpec {
        EmitSpec {
            encoding,
            message_bytes_max: max,
            scraper_id: "scraper-1".into(),
            job: "node".into(),
            instance: "h:9100".into(),
            key_hash: 0x0102_0304_0506_0708,
        }
    }

    fn sample(pairs: &[(&str, &str)], ts: i64, value: f64) -> Sample {
        Sample {
            labels: Labels::from_pairs(pairs.iter().copied()),
            timestamp_ms: ts,
            value,
            histogram: None,
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..Default::default() })]

        /// The scrape cache keeps only encoded label blocks: reading one back gives the labels
        /// it was written from, for every label name and any value (escapes, long values).
        #[test]
        fn label_blocks_read_back(pairs in proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,12}", "\\PC{1,200}", 0..8)) {
            let labels = Labels::from_pairs(pairs);
            let pairs = || labels.iter().map(|l| (l.name.as_str(), l.value.as_str()));
            let mut pb = Vec::new();
            put_labels_pb(pairs(), &mut pb);
            proptest::prop_assert_eq!(labels_from_pb(&pb), labels.clone());
            let mut json = Vec::new();
            put_json_prefix(pairs(), &mut json);
            proptest::prop_assert_eq!(labels_from_json_prefix(&json), labels.clone());
        }
    }

    use crate::testing::remote_write as pb;

    fn decode(r: &Record) -> pb::WriteRequest {
        pb::decode(&r.payload).expect("a remote-write payload")
    }

    #[test]
    fn tiny_request_has_exact_wire_bytes() {
        let s = [sample(&[("__name__", "up"), ("job", "a")], 1000, 1.0)];
        let records = encode(&spec(Encoding::RemoteWrite, 0), &s);
        assert_eq!(records.len(), 1);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&records[0].payload)
            .unwrap();
        // Built by hand from the protobuf encoding spec:
        let label1: &[u8] = &[
            0x0a, 0x0e, 0x0a, 0x08, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_', 0x12, 0x02,
            b'u', b'p',
        ];
        let label2: &[u8] = &[0x0a, 0x08, 0x0a, 0x03, b'j', b'o', b'b', 0x12, 0x01, b'a'];
        // Sample: 0x09 + 1.0f64 LE, 0x10 + varint(1000) = e8 07.
        let sample: &[u8] = &[
            0x12, 0x0c, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0xe8, 0x07,
        ];
        let mut ts = vec![0x0a, (label1.len() + label2.len() + sample.len()) as u8];
        ts.extend_from_slice(label1);
        ts.extend_from_slice(label2);
        ts.extend_from_slice(sample);
        assert_eq!(raw, ts);
        assert_eq!(records[0].key, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            records[0].headers,
            vec![
                ("encoding", "remote-write".to_string()),
                ("job", "node".to_string()),
                ("instance", "h:9100".to_string()),
                ("scraper", "scraper-1".to_string()),
                (
                    "content-type",
                    "application/x-protobuf;proto=prometheus.WriteRequest".to_string()
                )
            ]
        );
        assert_eq!(records[0].samples, 1);
    }

    #[test]
    fn a_v2_request_is_symbols_then_series_of_references() {
        let s = [
            sample(&[("__name__", "up"), ("job", "a")], 1000, 1.0),
            sample(&[("__name__", "up"), ("job", "b")], 1000, 0.0),
        ];
        let records = encode(&spec(Encoding::RemoteWriteV2, 0), &s);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&records[0].payload)
            .unwrap();
        // Symbols "", "__name__", "up", "job", "a", "b" (field 4), then two series (field 5):
        // label refs [1, 2, 3, 4] and [1, 2, 3, 5] (field 1, packed), a sample (field 2).
        let mut want: Vec<u8> = vec![0x22, 0x00];
        for text in ["__name__", "up", "job", "a", "b"] {
            want.push(0x22);
            want.push(text.len() as u8);
            want.extend_from_slice(text.as_bytes());
        }
        want.extend_from_slice(&[
            0x2a, 0x14, 0x0a, 0x04, 1, 2, 3, 4, 0x12, 0x0c, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f,
            0x10, 0xe8, 0x07,
        ]);
        want.extend_from_slice(&[
            0x2a, 0x0b, 0x0a, 0x04, 1, 2, 3, 5, 0x12, 0x03, 0x10, 0xe8, 0x07,
        ]);
        assert_eq!(raw, want);
        assert_eq!(
            records[0].headers.last(),
            Some(&(
                "content-type",
                "application/x-protobuf;proto=io.prometheus.write.v2.Request".to_string()
            ))
        );
        assert_eq!(records[0].headers[0].1, "remote-write-v2");
    }

    #[test]
    fn zero_value_and_zero_timestamp_are_left_out_as_proto3_does() {
        let s = [sample(&[("__name__", "z")], 0, 0.0)];
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&encode(&spec(Encoding::RemoteWrite, 0), &s)[0].payload)
            .unwrap();
        assert_eq!(
            raw,
            vec![
                0x0a, 0x11, 0x0a, 0x0d, 0x0a, 0x08, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_',
                0x12, 0x01, b'z', 0x12, 0x00
            ]
        );
    }

    #[test]
    fn remote_write_decodes_with_an_independent_decoder() {
        let s = vec![
            sample(
                &[("__name__", "a"), ("x", "q\"uo\\te\n")],
                1_700_000_000_123,
                1.5,
            ),
            sample(
                &[("__name__", "a"), ("x", "q\"uo\\te\n")],
                1_700_000_000_124,
                f64::INFINITY,
            ),
            sample(
                &[("__name__", "b_bucket"), ("le", "+Inf")],
                -5,
                crate::sample::stale_nan(),
            ),
        ];
        let records = encode(&spec(Encoding::RemoteWrite, 0), &s);
        let req = decode(&records[0]);
        assert_eq!(
            req.timeseries.len(),
            2,
            "consecutive samples of one series share a TimeSeries"
        );
        let t0 = &req.timeseries[0];
        assert_eq!(
            t0.labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str()))
                .collect::<Vec<_>>(),
            vec![("__name__", "a"), ("x", "q\"uo\\te\n")]
        );
        assert_eq!(
            t0.samples,
            vec![
                pb::Sample {
                    value: 1.5,
                    timestamp: 1_700_000_000_123
                },
                pb::Sample {
                    value: f64::INFINITY,
                    timestamp: 1_700_000_000_124
                }
            ]
        );
        let t1 = &req.timeseries[1];
        assert_eq!(t1.samples[0].timestamp, -5);
        assert_eq!(t1.samples[0].value.to_bits(), crate::sample::STALE_NAN_BITS);
    }

    #[test]
    fn split_never_exceeds_the_limit_and_keeps_every_sample() {
        // 300 series with distinct, poorly compressible label values.
        let mut s = Vec::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..300 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push(sample(
                &[
                    ("__name__", "m"),
                    ("id", &format!("{i}-{x:016x}{:016x}", x.rotate_left(11))),
                ],
                1000 + i,
                i as f64,
            ));
        }
        for limit in [600usize, 1000, 4096] {
            let records = encode(&spec(Encoding::RemoteWrite, limit), &s);
            assert!(records.len() > 1, "limit {limit} must split");
            let mut seen = Vec::new();
            for r in &records {
                assert!(
                    r.payload.len() <= limit,
                    "record of {} bytes over limit {limit}",
                    r.payload.len()
                );
                let req = decode(r);
                let n: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
                assert_eq!(n, r.samples);
                for t in req.timeseries {
                    for p in t.samples {
                        seen.push(p.timestamp);
                    }
                }
            }
            assert_eq!(
                seen,
                (1000..1300).collect::<Vec<_>>(),
                "all samples, in order, once"
            );
        }
    }

    #[test]
    fn a_series_too_large_alone_is_split_by_samples_and_an_impossible_sample_is_left_out() {
        let big = "v".repeat(50);
        let mut s: Vec<Sample> = (0..200)
            .map(|i| {
                sample(
                    &[("__name__", "m"), ("a", &big)],
                    1 + i * 7919,
                    (i * 31) as f64 + 0.1234567,
                )
            })
            .collect();
        let records = encode(&spec(Encoding::RemoteWrite, 300), &s);
        assert!(records.len() > 1);
        assert!(records.iter().all(|r| r.payload.len() <= 300));
        assert_eq!(records.iter().map(|r| r.samples).sum::<usize>(), 200);
        // A label value larger than the limit can never fit: that sample is left out.
        let mut x: u64 = 88_172_645_463_325_252;
        let noise: String = (0..400)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect();
        s.push(sample(&[("__name__", "huge"), ("a", &noise)], 5, 1.0));
        let records = encode(&spec(Encoding::RemoteWrite, 300), &s);
        assert!(records.iter().all(|r| r.payload.len() <= 300));
        assert_eq!(records.iter().map(|r| r.samples).sum::<usize>(), 200);
    }

    #[test]
    fn json_layout_is_byte_exact() {
        let s = [
            sample(
                &[
                    ("__name__", "foo"),
                    ("labelfoo", "label-bar"),
                    ("q", "a\"b\\c<d>&\n\u{1}\u{2028}é"),
                ],
                0,
                456.0,
            ),
            sample(
                &[("__name__", "foo"), ("labelfoo", "label-bar")],
                10_000,
                f64::INFINITY,
            ),
            sample(&[("__name__", "bar")], 1_677_628_800_250, 1e21),
            sample(&[("__name__", "bar")], 1_677_628_800_251, 0.000001),
            sample(&[("__name__", "bar")], -1, crate::sample::stale_nan()),
        ];
        let records = encode(&spec(Encoding::Json, 0), &s);
        let payloads: Vec<String> = records
            .iter()
            .map(|r| String::from_utf8(r.payload.clone()).unwrap())
            .collect();
        assert_eq!(
            payloads,
            vec![
                r#"{"labels":{"__name__":"foo","labelfoo":"label-bar","q":"a\"b\\c\u003cd\u003e\u0026\n\u0001\u2028é"},"name":"foo","timestamp":"1970-01-01T00:00:00.000Z","value":"456"}"#,
                r#"{"labels":{"__name__":"foo","labelfoo":"label-bar"},"name":"foo","timestamp":"1970-01-01T00:00:10.000Z","value":"+Inf"}"#,
                r#"{"labels":{"__name__":"bar"},"name":"bar","timestamp":"2023-03-01T00:00:00.250Z","value":"1000000000000000000000"}"#,
                r#"{"labels":{"__name__":"bar"},"name":"bar","timestamp":"2023-03-01T00:00:00.251Z","value":"0.000001"}"#,
                r#"{"labels":{"__name__":"bar"},"name":"bar","timestamp":"1969-12-31T23:59:59.999Z","value":"NaN"}"#,
            ]
        );
        for p in &payloads {
            serde_json::from_str::<serde_json::Value>(p).expect("valid JSON");
        }
        assert!(records
            .iter()
            .all(|r| r.samples == 1 && r.headers[0] == ("encoding", "json".to_string())));
    }

    #[test]
    fn json_record_over_the_limit_is_left_out() {
        let s = [
            sample(&[("__name__", "a")], 0, 1.0),
            sample(&[("__name__", "b"), ("x", &"y".repeat(200))], 0, 1.0),
        ];
        let records = encode(&spec(Encoding::Json, 150), &s);
        assert_eq!(records.len(), 1);
        assert!(records[0].payload.len() <= 150);
    }

    #[test]
    fn varint_lengths() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
        }
    }
}
