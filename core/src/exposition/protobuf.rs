//! The Prometheus protobuf format (`application/vnd.google.protobuf;
//! proto=io.prometheus.client.MetricFamily; encoding=delimited`): `MetricFamily` messages of
//! client_model's `metrics.proto`, each preceded by its length as a varint, read into the
//! samples Prometheus 3.16's `textparse.ProtobufParser` gives a scrape that does not scrape
//! native histograms (`scrape_native_histograms: false`, its default):
//!
//! - every family with at least one metric gives its metadata (name, type, help — empty when
//!   unset —, unit when set); a family without metrics gives nothing and is not checked;
//! - counters, gauges and untyped metrics give one sample each, the value of their typed
//!   field (0 when it is absent);
//! - a summary gives `_count`, `_sum`, then one sample per quantile with a `quantile` label;
//! - a histogram or gauge histogram gives `_count` (`sample_count_float` when non-zero, else
//!   `sample_count`), `_sum`, then `_bucket` per bucket with an `le` label (likewise the
//!   float cumulative count when non-zero), up to the first `+Inf` bucket, and a
//!   `_bucket{le="+Inf"}` worth `_count` when there is none. Native buckets are decoded and
//!   checked, not used: a native-only histogram gives `_count`, `_sum` and the `+Inf` bucket,
//!   as Prometheus gives it without native histogram scraping;
//! - `quantile` and `le` values are written as Prometheus's `FormatOpenMetricsFloat` writes
//!   them (`1.0`, `0.25`, `+Inf`); a metric's labels are given sorted by name, the magic
//!   label among them, as Prometheus sorts them;
//! - `timestamp_ms` is the samples' timestamp when non-zero (proto3 cannot tell an unset one
//!   from 0, and Prometheus reads 0 as unset);
//! - exemplars: a counter's, and each classic bucket's on its `_bucket` sample, labels sorted;
//! - created timestamps are decoded and checked but give no sample (Prometheus uses them
//!   only behind a feature flag).
//!
//! Checks, as Prometheus's decoder makes them: a family's name must be non-empty, its help
//! valid UTF-8, its type one of the six; a label name non-empty and a label value valid
//! UTF-8; a length prefix at most 5 bytes and within the body; every known field in its wire
//! type (repeated scalars packed or not); unknown fields are skipped, groups included.
//! Unlike Prometheus's gogo decoder, every string field must be valid UTF-8 (proto3 requires
//! it; Go's gogo-generated code checks only the four above), so a unit or an exemplar label
//! that is not fails the parse; and a varint whose tenth byte sets bits past the 64th fails
//! it too (gogo drops those bits; Go's `protowire` and prost refuse it).
//!
//! Decoded by hand, borrowing every name and label value from the body: prost would build
//! owned `String`s and `Vec`s for each label and metric (ARCHITECTURE.md, "Exposition
//! formats").

use std::borrow::Cow;
use std::ops::Range;

use super::lexer::{Fail, Scan};
use super::normalize::format_openmetrics_float;
use super::{Exemplar, Label, Metadata, MetricType, ParseOptions, Parsed, ParsedSample};
use crate::histogram::{Counts, Histogram, Span};

/// Longest length prefix Prometheus accepts (`binary.MaxVarintLen32`).
const PREFIX_MAX: usize = 5;

/// A field's payload, by wire type.
#[derive(Clone, Copy, Debug)]
enum Value {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: the payload's byte range in the body.
    Bytes(usize, usize),
    /// Wire type 5.
    Fixed32,
    /// Wire type 3, already skipped to its end.
    Group,
}

/// A reader of the fields of one message: the range `pos..end` of the body.
struct Fields<'a> {
    body: &'a [u8],
    pos: usize,
    end: usize,
    /// The message's name, for errors.
    message: &'static str,
}

impl<'a> Fields<'a> {
    fn new(body: &'a [u8], range: (usize, usize), message: &'static str) -> Fields<'a> {
        Fields {
            body,
            pos: range.0,
            end: range.1,
            message,
        }
    }

    fn varint(&mut self) -> Scan<u64> {
        let start = self.pos;
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            if shift >= 64 {
                return Err(Fail::new(start, "proto: integer overflow"));
            }
            let Some(&b) = self.body[..self.end].get(self.pos) else {
                return Err(Fail::new(start, "proto: unexpected end of message"));
            };
            self.pos += 1;
            // The tenth byte holds bit 63 only.
            if shift == 63 && b > 1 {
                return Err(Fail::new(start, "proto: integer overflow"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
            shift += 7;
        }
    }

    fn take(&mut self, n: usize) -> Scan<usize> {
        let start = self.pos;
        if self.end - self.pos < n {
            return Err(Fail::new(start, "proto: unexpected end of message"));
        }
        self.pos += n;
        Ok(start)
    }

    fn fixed64(&mut self) -> Scan<u64> {
        let at = self.take(8)?;
        let bytes: [u8; 8] = self.body[at..at + 8].try_into().expect("8 bytes taken");
        Ok(u64::from_le_bytes(bytes))
    }

    /// The next field: its number, payload and offset, or `None` at the message's end.
    fn next(&mut self) -> Scan<Option<(u32, Value, usize)>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let at = self.pos;
        let key = self.varint()?;
        let (field, wire) = (key >> 3, key & 7);
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(Fail::new(
                at,
                format!(
                    "proto: {}: illegal tag {field} (wire type {wire})",
                    self.message
                ),
            ));
        }
        let value = match wire {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(self.fixed64()?),
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len)
                    .map_err(|_| Fail::new(at, "proto: negative length found"))?;
                let start = self.take(len)?;
                Value::Bytes(start, start + len)
            }
            3 => {
                self.skip_group(at, field)?;
                Value::Group
            }
            4 => {
                return Err(Fail::new(
                    at,
                    format!("proto: {}: wiretype end group for non-group", self.message),
                ))
            }
            5 => {
                self.take(4)?;
                Value::Fixed32
            }
            _ => return Err(Fail::new(at, format!("proto: illegal wireType {wire}"))),
        };
        Ok(Some((field as u32, value, at)))
    }

    /// Skips a group to its end-group key (groups nest).
    fn skip_group(&mut self, at: usize, field: u64) -> Scan<()> {
        let mut open = vec![field];
        while let Some(&top) = open.last() {
            if self.pos >= self.end {
                return Err(Fail::new(at, "proto: unexpected end of group"));
            }
            let key = self.varint()?;
            match key & 7 {
                0 => drop(self.varint()?),
                1 => drop(self.take(8)?),
                2 => {
                    let len = self.varint()?;
                    let len = usize::try_from(len)
                        .map_err(|_| Fail::new(at, "proto: negative length found"))?;
                    self.take(len)?;
                }
                3 => open.push(key >> 3),
                4 if key >> 3 == top => drop(open.pop()),
                4 => return Err(Fail::new(at, "proto: unexpected end of group")),
                5 => drop(self.take(4)?),
                wire => return Err(Fail::new(at, format!("proto: illegal wireType {wire}"))),
            }
        }
        Ok(())
    }

    fn wrong(&self, at: usize, field: &str) -> Fail {
        Fail::new(
            at,
            format!("proto: {}: wrong wire type for field {field}", self.message),
        )
    }

    fn string(&self, value: Value, at: usize, field: &str) -> Scan<&'a str> {
        let bytes = self.bytes(value, at, field)?;
        std::str::from_utf8(bytes).map_err(|_| {
            Fail::new(
                at,
                format!("proto: {}: field {field} is not valid UTF-8", self.message),
            )
        })
    }

    fn bytes(&self, value: Value, at: usize, field: &str) -> Scan<&'a [u8]> {
        match value {
            Value::Bytes(a, b) => Ok(&self.body[a..b]),
            _ => Err(self.wrong(at, field)),
        }
    }

    fn range(&self, value: Value, at: usize, field: &str) -> Scan<(usize, usize)> {
        match value {
            Value::Bytes(a, b) => Ok((a, b)),
            _ => Err(self.wrong(at, field)),
        }
    }

    fn uint(&self, value: Value, at: usize, field: &str) -> Scan<u64> {
        match value {
            Value::Varint(v) => Ok(v),
            _ => Err(self.wrong(at, field)),
        }
    }

    fn double(&self, value: Value, at: usize, field: &str) -> Scan<f64> {
        match value {
            Value::Fixed64(v) => Ok(f64::from_bits(v)),
            _ => Err(self.wrong(at, field)),
        }
    }

    /// A repeated varint field, packed or not: each value to `push`.
    fn packed_varints(
        &self,
        value: Value,
        at: usize,
        field: &str,
        mut push: impl FnMut(u64),
    ) -> Scan<()> {
        match value {
            Value::Varint(v) => {
                push(v);
                Ok(())
            }
            Value::Bytes(a, b) => {
                let mut inner = Fields::new(self.body, (a, b), self.message);
                while inner.pos < inner.end {
                    push(inner.varint()?);
                }
                Ok(())
            }
            _ => Err(self.wrong(at, field)),
        }
    }

    /// A repeated double field, packed or not: each value to `push`.
    fn packed_doubles(
        &self,
        value: Value,
        at: usize,
        field: &str,
        mut push: impl FnMut(f64),
    ) -> Scan<()> {
        match value {
            Value::Fixed64(v) => {
                push(f64::from_bits(v));
                Ok(())
            }
            Value::Bytes(a, b) if (b - a) % 8 == 0 => {
                for chunk in self.body[a..b].chunks_exact(8) {
                    push(f64::from_le_bytes(chunk.try_into().expect("8 bytes")));
                }
                Ok(())
            }
            Value::Bytes(..) => Err(Fail::new(at, "proto: unexpected end of packed doubles")),
            _ => Err(self.wrong(at, field)),
        }
    }
}

/// A `sint32`'s zigzag varint (its low 32 bits, as Go decodes it).
fn zigzag32(v: u64) -> i32 {
    let v = v as u32;
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

/// A `sint64`'s zigzag varint.
fn zigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A decoded `Exemplar` (fields merged as protobuf merges a repeated singular message).
#[derive(Default)]
struct RawExemplar<'a> {
    labels: Vec<(&'a str, &'a str)>,
    value: f64,
    timestamp_ms: Option<i64>,
}

/// A classic bucket.
struct Bucket<'a> {
    count: u64,
    count_float: f64,
    upper_bound: f64,
    exemplar: Option<RawExemplar<'a>>,
}

/// One `Metric` as decoded: every typed field, as Prometheus's decoder keeps them all and
/// reads the one its family's type names.
#[derive(Default)]
struct Metric<'a> {
    labels: Vec<(&'a str, &'a str)>,
    timestamp_ms: i64,
    gauge: f64,
    untyped: f64,
    counter: f64,
    counter_exemplar: Option<RawExemplar<'a>>,
    summary_count: u64,
    summary_sum: f64,
    quantiles: Vec<(f64, f64)>,
    histogram_count: u64,
    histogram_count_float: f64,
    histogram_sum: f64,
    buckets: Vec<Bucket<'a>>,
    native: Native,
}

/// The native fields of a `Histogram`.
#[derive(Default)]
struct Native {
    schema: i32,
    zero_threshold: f64,
    zero_count: u64,
    zero_count_float: f64,
    positive_spans: Vec<Span>,
    negative_spans: Vec<Span>,
    positive_deltas: Vec<i64>,
    negative_deltas: Vec<i64>,
    positive_counts: Vec<f64>,
    negative_counts: Vec<f64>,
}

impl Native {
    /// Prometheus's `isNativeHistogram`: any span, a zero threshold or a zero count.
    fn present(&self) -> bool {
        !self.positive_spans.is_empty()
            || !self.negative_spans.is_empty()
            || self.zero_threshold > 0.0
            || self.zero_count > 0
    }

    /// Resets every field, keeping the vectors' memory.
    fn clear(&mut self) {
        self.schema = 0;
        self.zero_threshold = 0.0;
        self.zero_count = 0;
        self.zero_count_float = 0.0;
        self.positive_spans.clear();
        self.negative_spans.clear();
        self.positive_deltas.clear();
        self.negative_deltas.clear();
        self.positive_counts.clear();
        self.negative_counts.clear();
    }

    /// Prometheus's `checkNativeHistogramConsistency`: each side's spans cover as many
    /// buckets as it has.
    fn check(&self, is_float: bool) -> Result<(), String> {
        let (p, n) = if is_float {
            (self.positive_counts.len(), self.negative_counts.len())
        } else {
            (self.positive_deltas.len(), self.negative_deltas.len())
        };
        for (side, spans, have) in [
            ("positive", &self.positive_spans, p),
            ("negative", &self.negative_spans, n),
        ] {
            let need: u64 = spans.iter().map(|s| u64::from(s.length)).sum();
            if need != have as u64 {
                return Err(format!(
                    "{side} side: spans require {need} buckets, have {have}"
                ));
            }
        }
        Ok(())
    }

    /// The histogram, compacted as Prometheus's parser compacts it.
    fn histogram(&self, count: u64, count_float: f64, sum: f64, gauge: bool) -> Histogram {
        let counts = if self.is_float(count_float) {
            Counts::Float {
                count: count_float,
                zero_count: self.zero_count_float,
                positive: self.positive_counts.clone(),
                negative: self.negative_counts.clone(),
            }
        } else {
            Counts::Int {
                count,
                zero_count: self.zero_count,
                positive: self.positive_deltas.clone(),
                negative: self.negative_deltas.clone(),
            }
        };
        let mut h = Histogram {
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            sum,
            positive_spans: self.positive_spans.clone(),
            negative_spans: self.negative_spans.clone(),
            counts,
            gauge,
        };
        h.compact();
        h
    }

    /// Prometheus's `isFloatHistogram`.
    fn is_float(&self, count_float: f64) -> bool {
        count_float > 0.0
            || self.zero_count_float > 0.0
            || !self.positive_counts.is_empty()
            || !self.negative_counts.is_empty()
    }
}

impl Metric<'_> {
    /// Resets every field, keeping the vectors' memory.
    fn clear(&mut self) {
        let mut labels = std::mem::take(&mut self.labels);
        let mut quantiles = std::mem::take(&mut self.quantiles);
        let mut buckets = std::mem::take(&mut self.buckets);
        let mut native = std::mem::take(&mut self.native);
        native.clear();
        labels.clear();
        quantiles.clear();
        buckets.clear();
        *self = Metric {
            labels,
            quantiles,
            buckets,
            native,
            ..Metric::default()
        };
    }
}

/// The protobuf `MetricType`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Summary,
    Untyped,
    Histogram,
    GaugeHistogram,
}

impl Kind {
    fn of(v: u64) -> Option<Kind> {
        Some(match v {
            0 => Kind::Counter,
            1 => Kind::Gauge,
            2 => Kind::Summary,
            3 => Kind::Untyped,
            4 => Kind::Histogram,
            5 => Kind::GaugeHistogram,
            _ => return None,
        })
    }

    /// The type Prometheus reports for it (`ProtobufParser.Type`).
    fn metric_type(self) -> MetricType {
        match self {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
            Kind::Summary => MetricType::Summary,
            Kind::Untyped => MetricType::Unknown,
            Kind::Histogram => MetricType::Histogram,
            Kind::GaugeHistogram => MetricType::GaugeHistogram,
        }
    }
}

/// Parses a whole body into `out`.
pub(super) fn parse<'a>(body: &'a [u8], options: &ParseOptions, out: &mut Parsed<'a>) -> Scan<()> {
    let mut pos = 0;
    let mut metrics = Vec::new();
    let mut metric = Metric::default();
    while pos < body.len() && !out.truncated {
        let (len, prefix) = length_prefix(&body[pos..])
            .ok_or_else(|| Fail::new(pos, "clientpb: invalid varint encountered"))?;
        let start = pos + prefix;
        if len > body.len() - start {
            return Err(Fail::new(
                pos,
                format!(
                    "clientpb: insufficient length of buffer, expected at least {} bytes, got {} bytes",
                    prefix as u64 + len as u64,
                    body.len() - pos
                ),
            ));
        }
        family(
            body,
            (start, start + len),
            options,
            out,
            &mut metrics,
            &mut metric,
        )?;
        pos = start + len;
    }
    Ok(())
}

/// A delimited message's length and the bytes its prefix took, or `None` for a prefix that
/// is cut short or longer than [`PREFIX_MAX`].
fn length_prefix(b: &[u8]) -> Option<(usize, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(PREFIX_MAX) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return usize::try_from(v).ok().map(|v| (v, i + 1));
        }
    }
    None
}

fn family<'a>(
    body: &'a [u8],
    range: (usize, usize),
    options: &ParseOptions,
    out: &mut Parsed<'a>,
    metrics: &mut Vec<(usize, usize)>,
    metric: &mut Metric<'a>,
) -> Scan<()> {
    let mut f = Fields::new(body, range, "MetricFamily");
    let (mut name, mut help, mut kind, mut unit) = ("", "", 0u64, "");
    let mut name_at = range.0;
    metrics.clear();
    while let Some((field, value, at)) = f.next()? {
        match field {
            1 => {
                name = f.string(value, at, "name")?;
                name_at = at;
            }
            2 => help = f.string(value, at, "help")?,
            // An enum is an int32: the varint's low 32 bits.
            3 => kind = f.uint(value, at, "type")? & 0xffff_ffff,
            4 => metrics.push(f.range(value, at, "metric")?),
            5 => unit = f.string(value, at, "unit")?,
            _ => {}
        }
    }
    if metrics.is_empty() {
        return Ok(());
    }
    if name.is_empty() {
        return Err(Fail::new(name_at, "invalid metric name: "));
    }
    let kind = Kind::of(kind).ok_or_else(|| {
        Fail::new(
            range.0,
            format!("unknown metric type for metric {name:?}: {}", kind as i32),
        )
    })?;
    out.metadata.push(Metadata {
        name: Cow::Borrowed(name),
        kind: Some(kind.metric_type()),
        help: Some(Cow::Borrowed(help)),
        unit: (!unit.is_empty()).then_some(unit),
    });
    for &m in metrics.iter() {
        metric.clear();
        decode_metric(body, m, metric)?;
        metric.labels.sort_by(|a, b| a.0.cmp(b.0));
        emit(name, kind, metric, m.0, options, out)?;
        if out.truncated {
            break;
        }
    }
    Ok(())
}

fn decode_metric<'a>(body: &'a [u8], range: (usize, usize), m: &mut Metric<'a>) -> Scan<()> {
    let mut f = Fields::new(body, range, "Metric");
    while let Some((field, value, at)) = f.next()? {
        match field {
            1 => m
                .labels
                .push(label_pair(body, f.range(value, at, "label")?, true)?),
            2 => {
                let mut g = Fields::new(body, f.range(value, at, "gauge")?, "Gauge");
                while let Some((field, value, at)) = g.next()? {
                    if field == 1 {
                        m.gauge = g.double(value, at, "value")?;
                    }
                }
            }
            3 => decode_counter(body, f.range(value, at, "counter")?, m)?,
            4 => decode_summary(body, f.range(value, at, "summary")?, m)?,
            5 => {
                let mut u = Fields::new(body, f.range(value, at, "untyped")?, "Untyped");
                while let Some((field, value, at)) = u.next()? {
                    if field == 1 {
                        m.untyped = u.double(value, at, "value")?;
                    }
                }
            }
            // int64: the varint's bits as two's complement.
            6 => m.timestamp_ms = f.uint(value, at, "timestamp_ms")? as i64,
            7 => decode_histogram(body, f.range(value, at, "histogram")?, m)?,
            _ => {}
        }
    }
    Ok(())
}

/// A `LabelPair`; `checked` applies Prometheus's checks of a metric's labels (a non-empty
/// name), which exemplar labels do not get.
fn label_pair(body: &[u8], range: (usize, usize), checked: bool) -> Scan<(&str, &str)> {
    let mut f = Fields::new(body, range, "LabelPair");
    let (mut name, mut value) = ("", "");
    while let Some((field, v, at)) = f.next()? {
        let (slot, what) = match field {
            1 => (&mut name, "name"),
            2 => (&mut value, "value"),
            _ => continue,
        };
        let bytes = f.bytes(v, at, what)?;
        *slot = std::str::from_utf8(bytes).map_err(|_| {
            let shown = String::from_utf8_lossy(bytes);
            Fail::new(at, format!("invalid label {what}: {shown}"))
        })?;
    }
    if checked && name.is_empty() {
        return Err(Fail::new(range.0, "invalid label name: "));
    }
    Ok((name, value))
}

fn decode_counter<'a>(body: &'a [u8], range: (usize, usize), m: &mut Metric<'a>) -> Scan<()> {
    let mut f = Fields::new(body, range, "Counter");
    while let Some((field, value, at)) = f.next()? {
        match field {
            1 => m.counter = f.double(value, at, "value")?,
            2 => {
                let r = f.range(value, at, "exemplar")?;
                decode_exemplar(body, r, m.counter_exemplar.get_or_insert_default())?;
            }
            3 => drop(timestamp(body, f.range(value, at, "start_timestamp")?)?),
            _ => {}
        }
    }
    Ok(())
}

fn decode_summary<'a>(body: &'a [u8], range: (usize, usize), m: &mut Metric<'a>) -> Scan<()> {
    let mut f = Fields::new(body, range, "Summary");
    while let Some((field, value, at)) = f.next()? {
        match field {
            1 => m.summary_count = f.uint(value, at, "sample_count")?,
            2 => m.summary_sum = f.double(value, at, "sample_sum")?,
            3 => {
                let mut q = Fields::new(body, f.range(value, at, "quantile")?, "Quantile");
                let (mut quantile, mut v) = (0.0, 0.0);
                while let Some((field, value, at)) = q.next()? {
                    match field {
                        1 => quantile = q.double(value, at, "quantile")?,
                        2 => v = q.double(value, at, "value")?,
                        _ => {}
                    }
                }
                m.quantiles.push((quantile, v));
            }
            4 => drop(timestamp(body, f.range(value, at, "start_timestamp")?)?),
            _ => {}
        }
    }
    Ok(())
}

fn decode_histogram<'a>(body: &'a [u8], range: (usize, usize), m: &mut Metric<'a>) -> Scan<()> {
    let mut f = Fields::new(body, range, "Histogram");
    while let Some((field, value, at)) = f.next()? {
        match field {
            1 => m.histogram_count = f.uint(value, at, "sample_count")?,
            2 => m.histogram_sum = f.double(value, at, "sample_sum")?,
            3 => {
                let bucket = decode_bucket(body, f.range(value, at, "bucket")?)?;
                m.buckets.push(bucket);
            }
            4 => m.histogram_count_float = f.double(value, at, "sample_count_float")?,
            5 => m.native.schema = zigzag32(f.uint(value, at, "schema")?),
            6 => m.native.zero_threshold = f.double(value, at, "zero_threshold")?,
            7 => m.native.zero_count = f.uint(value, at, "zero_count")?,
            8 => m.native.zero_count_float = f.double(value, at, "zero_count_float")?,
            9 | 12 => {
                let mut s = Fields::new(body, f.range(value, at, "span")?, "BucketSpan");
                let mut span = Span {
                    offset: 0,
                    length: 0,
                };
                while let Some((field, value, at)) = s.next()? {
                    match field {
                        1 => span.offset = zigzag32(s.uint(value, at, "offset")?),
                        2 => span.length = s.uint(value, at, "length")? as u32,
                        _ => {}
                    }
                }
                let n = &mut m.native;
                if field == 9 {
                    &mut n.negative_spans
                } else {
                    &mut n.positive_spans
                }
                .push(span);
            }
            10 | 13 => {
                let n = &mut m.native;
                let deltas = if field == 10 {
                    &mut n.negative_deltas
                } else {
                    &mut n.positive_deltas
                };
                f.packed_varints(value, at, "delta", |v| deltas.push(zigzag64(v)))?;
            }
            11 | 14 => {
                let n = &mut m.native;
                let counts = if field == 11 {
                    &mut n.negative_counts
                } else {
                    &mut n.positive_counts
                };
                f.packed_doubles(value, at, "count", |v| counts.push(v))?;
            }
            15 => drop(timestamp(body, f.range(value, at, "start_timestamp")?)?),
            16 => {
                let r = f.range(value, at, "exemplars")?;
                decode_exemplar(body, r, &mut RawExemplar::default())?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn decode_bucket(body: &[u8], range: (usize, usize)) -> Scan<Bucket<'_>> {
    let mut f = Fields::new(body, range, "Bucket");
    let mut b = Bucket {
        count: 0,
        count_float: 0.0,
        upper_bound: 0.0,
        exemplar: None,
    };
    while let Some((field, value, at)) = f.next()? {
        match field {
            1 => b.count = f.uint(value, at, "cumulative_count")?,
            2 => b.upper_bound = f.double(value, at, "upper_bound")?,
            3 => {
                let r = f.range(value, at, "exemplar")?;
                decode_exemplar(body, r, b.exemplar.get_or_insert_default())?;
            }
            4 => b.count_float = f.double(value, at, "cumulative_count_float")?,
            _ => {}
        }
    }
    Ok(b)
}

fn decode_exemplar<'a>(body: &'a [u8], range: (usize, usize), e: &mut RawExemplar<'a>) -> Scan<()> {
    let mut f = Fields::new(body, range, "Exemplar");
    while let Some((field, value, at)) = f.next()? {
        match field {
            1 => e
                .labels
                .push(label_pair(body, f.range(value, at, "label")?, false)?),
            2 => e.value = f.double(value, at, "value")?,
            3 => {
                let (seconds, nanos) = timestamp(body, f.range(value, at, "timestamp")?)?;
                e.timestamp_ms = Some(
                    seconds
                        .wrapping_mul(1000)
                        .wrapping_add(i64::from(nanos / 1_000_000)),
                );
            }
            _ => {}
        }
    }
    Ok(())
}

/// A `google.protobuf.Timestamp`: seconds and nanoseconds.
fn timestamp(body: &[u8], range: (usize, usize)) -> Scan<(i64, i32)> {
    let mut f = Fields::new(body, range, "Timestamp");
    let (mut seconds, mut nanos) = (0i64, 0i32);
    while let Some((field, value, at)) = f.next()? {
        match field {
            1 => seconds = f.uint(value, at, "seconds")? as i64,
            2 => nanos = f.uint(value, at, "nanos")? as i32,
            _ => {}
        }
    }
    Ok((seconds, nanos))
}

/// Appends the samples of one decoded metric; `at` is its offset, for errors.
fn emit<'a>(
    name: &'a str,
    kind: Kind,
    m: &Metric<'a>,
    at: usize,
    options: &ParseOptions,
    out: &mut Parsed<'a>,
) -> Scan<()> {
    let timestamp_ms = (m.timestamp_ms != 0).then_some(m.timestamp_ms);
    // Appends one sample; false once `samples_max` is reached.
    let push = |out: &mut Parsed<'a>,
                sample_name: Cow<'a, str>,
                magic: Option<(&'static str, String)>,
                value: f64,
                exemplar: Option<&RawExemplar<'a>>,
                histogram: Option<Box<Histogram>>| {
        if out.samples.len() >= options.samples_max {
            out.truncated = true;
            return false;
        }
        let start = out.labels.len() as u32;
        let mut magic = magic;
        for &(n, v) in &m.labels {
            if let Some((mn, _)) = &magic {
                if *mn < n {
                    let (mn, mv) = magic.take().expect("checked");
                    out.labels.push((Cow::Borrowed(mn), Cow::Owned(mv)));
                }
            }
            out.labels.push((Cow::Borrowed(n), Cow::Borrowed(v)));
        }
        if let Some((mn, mv)) = magic {
            out.labels.push((Cow::Borrowed(mn), Cow::Owned(mv)));
        }
        let end = out.labels.len() as u32;
        out.samples.push(ParsedSample {
            name: sample_name,
            labels: Range { start, end },
            value,
            timestamp_ms,
            exemplar: exemplar.filter(|_| options.keep_exemplars).map(exemplar_of),
            histogram,
        });
        true
    };
    let suffixed = |suffix: &str| Cow::Owned(format!("{name}{suffix}"));
    match kind {
        Kind::Counter => {
            push(
                out,
                Cow::Borrowed(name),
                None,
                m.counter,
                m.counter_exemplar.as_ref(),
                None,
            );
        }
        Kind::Gauge => {
            push(out, Cow::Borrowed(name), None, m.gauge, None, None);
        }
        Kind::Untyped => {
            push(out, Cow::Borrowed(name), None, m.untyped, None, None);
        }
        Kind::Summary => {
            if !push(
                out,
                suffixed("_count"),
                None,
                m.summary_count as f64,
                None,
                None,
            ) || !push(out, suffixed("_sum"), None, m.summary_sum, None, None)
            {
                return Ok(());
            }
            for &(q, v) in &m.quantiles {
                let magic = Some(("quantile", format_openmetrics_float(q)));
                if !push(out, Cow::Borrowed(name), magic, v, None, None) {
                    return Ok(());
                }
            }
        }
        Kind::Histogram | Kind::GaugeHistogram => {
            if options.native_histograms && m.native.present() {
                let n = &m.native;
                n.check(n.is_float(m.histogram_count_float))
                    .map_err(|e| Fail::new(at, format!("histogram {name:?}: {e}")))?;
                let h = n.histogram(
                    m.histogram_count,
                    m.histogram_count_float,
                    m.histogram_sum,
                    kind == Kind::GaugeHistogram,
                );
                if !push(out, Cow::Borrowed(name), None, 0.0, None, Some(Box::new(h))) {
                    return Ok(());
                }
                if !options.keep_classic_histograms || m.buckets.is_empty() {
                    return Ok(());
                }
            }
            let count = if m.histogram_count_float != 0.0 {
                m.histogram_count_float
            } else {
                m.histogram_count as f64
            };
            if !push(out, suffixed("_count"), None, count, None, None)
                || !push(out, suffixed("_sum"), None, m.histogram_sum, None, None)
            {
                return Ok(());
            }
            let bucket_name = format!("{name}_bucket");
            for b in &m.buckets {
                let v = if b.count_float != 0.0 {
                    b.count_float
                } else {
                    b.count as f64
                };
                let magic = Some(("le", format_openmetrics_float(b.upper_bound)));
                let bucket = Cow::Owned(bucket_name.clone());
                if !push(out, bucket, magic, v, b.exemplar.as_ref(), None) {
                    return Ok(());
                }
                if b.upper_bound == f64::INFINITY {
                    return Ok(());
                }
            }
            let magic = Some(("le", "+Inf".to_string()));
            push(out, Cow::Owned(bucket_name), magic, count, None, None);
        }
    }
    Ok(())
}

fn exemplar_of<'a>(e: &RawExemplar<'a>) -> Exemplar<'a> {
    let mut labels: Vec<Label<'a>> = e
        .labels
        .iter()
        .map(|&(n, v)| (Cow::Borrowed(n), Cow::Borrowed(v)))
        .collect();
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    Exemplar {
        labels,
        value: e.value,
        timestamp_ms: e.timestamp_ms,
    }
}
