//! An independent reading of the Prometheus protobuf format, for the parser's tests and its
//! fuzz target: prost structs written from client_model's `metrics.proto`, and a plain
//! expansion of the decoded families into the samples Prometheus 3.16's `ProtobufParser`
//! gives without native histogram scraping. The parser (`crate::exposition`) decodes the
//! wire format by hand; this reads it through prost and expands it with none of the
//! parser's code. It can also write bodies ([`encode_delimited`]) for tests.

use prost::Message as _;

/// `io.prometheus.client.LabelPair`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPair {
    /// The name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Timestamp {
    /// Seconds since the epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `io.prometheus.client.Exemplar`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    /// Its labels.
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    /// Its value.
    #[prost(double, tag = "2")]
    pub value: f64,
    /// When it was observed.
    #[prost(message, optional, tag = "3")]
    pub timestamp: Option<Timestamp>,
}

/// `io.prometheus.client.Gauge` and `Untyped` (one field each, the same shape).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
}

/// `io.prometheus.client.Counter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Counter {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// An exemplar.
    #[prost(message, optional, tag = "2")]
    pub exemplar: Option<Exemplar>,
    /// When the counter started.
    #[prost(message, optional, tag = "3")]
    pub start_timestamp: Option<Timestamp>,
}

/// `io.prometheus.client.Quantile`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Quantile {
    /// The quantile.
    #[prost(double, tag = "1")]
    pub quantile: f64,
    /// Its value.
    #[prost(double, tag = "2")]
    pub value: f64,
}

/// `io.prometheus.client.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// Observations.
    #[prost(uint64, tag = "1")]
    pub sample_count: u64,
    /// Their sum.
    #[prost(double, tag = "2")]
    pub sample_sum: f64,
    /// The quantiles.
    #[prost(message, repeated, tag = "3")]
    pub quantile: Vec<Quantile>,
    /// When the summary started.
    #[prost(message, optional, tag = "4")]
    pub start_timestamp: Option<Timestamp>,
}

/// `io.prometheus.client.Bucket`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Bucket {
    /// Cumulative count.
    #[prost(uint64, tag = "1")]
    pub cumulative_count: u64,
    /// Cumulative count as a float (overrides the integer when non-zero).
    #[prost(double, tag = "4")]
    pub cumulative_count_float: f64,
    /// Inclusive upper bound.
    #[prost(double, tag = "2")]
    pub upper_bound: f64,
    /// An exemplar.
    #[prost(message, optional, tag = "3")]
    pub exemplar: Option<Exemplar>,
}

/// `io.prometheus.client.BucketSpan`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BucketSpan {
    /// Gap to the previous span, or the first index.
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    /// Buckets in the span.
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

/// `io.prometheus.client.Histogram`, classic and native fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// Observations.
    #[prost(uint64, tag = "1")]
    pub sample_count: u64,
    /// Observations as a float (overrides the integer when non-zero).
    #[prost(double, tag = "4")]
    pub sample_count_float: f64,
    /// Their sum.
    #[prost(double, tag = "2")]
    pub sample_sum: f64,
    /// Classic buckets.
    #[prost(message, repeated, tag = "3")]
    pub bucket: Vec<Bucket>,
    /// When the histogram started.
    #[prost(message, optional, tag = "15")]
    pub start_timestamp: Option<Timestamp>,
    /// Native: the schema.
    #[prost(sint32, tag = "5")]
    pub schema: i32,
    /// Native: the zero bucket's width.
    #[prost(double, tag = "6")]
    pub zero_threshold: f64,
    /// Native: the zero bucket's count.
    #[prost(uint64, tag = "7")]
    pub zero_count: u64,
    /// Native: the zero bucket's count as a float.
    #[prost(double, tag = "8")]
    pub zero_count_float: f64,
    /// Native: negative spans.
    #[prost(message, repeated, tag = "9")]
    pub negative_span: Vec<BucketSpan>,
    /// Native: negative bucket deltas.
    #[prost(sint64, repeated, tag = "10")]
    pub negative_delta: Vec<i64>,
    /// Native: negative bucket counts (float histograms).
    #[prost(double, repeated, tag = "11")]
    pub negative_count: Vec<f64>,
    /// Native: positive spans.
    #[prost(message, repeated, tag = "12")]
    pub positive_span: Vec<BucketSpan>,
    /// Native: positive bucket deltas.
    #[prost(sint64, repeated, tag = "13")]
    pub positive_delta: Vec<i64>,
    /// Native: positive bucket counts (float histograms).
    #[prost(double, repeated, tag = "14")]
    pub positive_count: Vec<f64>,
    /// Native: exemplars.
    #[prost(message, repeated, tag = "16")]
    pub exemplars: Vec<Exemplar>,
}

/// `io.prometheus.client.Metric`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    /// Its labels.
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    /// A gauge's value.
    #[prost(message, optional, tag = "2")]
    pub gauge: Option<Value>,
    /// A counter's value.
    #[prost(message, optional, tag = "3")]
    pub counter: Option<Counter>,
    /// A summary.
    #[prost(message, optional, tag = "4")]
    pub summary: Option<Summary>,
    /// An untyped value.
    #[prost(message, optional, tag = "5")]
    pub untyped: Option<Value>,
    /// A histogram.
    #[prost(message, optional, tag = "7")]
    pub histogram: Option<Histogram>,
    /// Milliseconds since the epoch; 0 means none.
    #[prost(int64, tag = "6")]
    pub timestamp_ms: i64,
}

/// `io.prometheus.client.MetricFamily`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricFamily {
    /// The family's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its help text.
    #[prost(string, tag = "2")]
    pub help: String,
    /// `MetricType`: 0 counter, 1 gauge, 2 summary, 3 untyped, 4 histogram, 5 gauge
    /// histogram.
    #[prost(int32, tag = "3")]
    pub r#type: i32,
    /// Its metrics.
    #[prost(message, repeated, tag = "4")]
    pub metric: Vec<Metric>,
    /// Its unit.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// Writes `families` as a delimited body.
pub fn encode_delimited(families: &[MetricFamily]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in families {
        f.encode_length_delimited(&mut out)
            .expect("a Vec grows as needed");
    }
    out
}

/// Reads a delimited body: the length prefix at most 5 bytes and within the body, as
/// Prometheus's decoder requires.
pub fn decode_delimited(mut body: &[u8]) -> Result<Vec<MetricFamily>, String> {
    let mut families = Vec::new();
    while !body.is_empty() {
        let prefix_len = body.iter().take(5).position(|b| b & 0x80 == 0);
        let Some(prefix_len) = prefix_len.map(|i| i + 1) else {
            return Err("invalid length prefix".into());
        };
        let len = prost::encoding::decode_varint(&mut &body[..prefix_len])
            .map_err(|e| e.to_string())? as usize;
        let rest = &body[prefix_len..];
        if len > rest.len() {
            return Err(format!("a {len}-byte message in {} bytes", rest.len()));
        }
        families.push(MetricFamily::decode(&rest[..len]).map_err(|e| e.to_string())?);
        body = &rest[len..];
    }
    Ok(families)
}

/// One sample as Prometheus's parser gives it: name, labels sorted by name (the magic
/// `le`/`quantile` among them), value bits, timestamp, and the exemplar (labels sorted,
/// value bits, timestamp) for counters and classic buckets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedSample {
    /// The sample's name.
    pub name: String,
    /// Its labels.
    pub labels: Vec<(String, String)>,
    /// Its value's bits.
    pub value_bits: u64,
    /// Its timestamp, when non-zero.
    pub timestamp_ms: Option<i64>,
    /// Its exemplar.
    pub exemplar: Option<ExpectedExemplar>,
}

/// An exemplar: labels sorted by name, value bits, timestamp.
pub type ExpectedExemplar = (Vec<(String, String)>, u64, Option<i64>);

/// One family's metadata: name, type code, help, unit.
pub type ExpectedMetadata = (String, i32, String, String);

/// What Prometheus 3.16's `ProtobufParser` (native histograms ignored) gives for `families`,
/// or why it fails.
pub fn expected(
    families: &[MetricFamily],
) -> Result<(Vec<ExpectedSample>, Vec<ExpectedMetadata>), String> {
    let mut samples = Vec::new();
    let mut metadata = Vec::new();
    for f in families {
        if f.metric.is_empty() {
            continue;
        }
        if f.name.is_empty() {
            return Err("invalid metric name".into());
        }
        if !(0..=5).contains(&f.r#type) {
            return Err(format!("unknown metric type {}", f.r#type));
        }
        metadata.push((f.name.clone(), f.r#type, f.help.clone(), f.unit.clone()));
        for m in &f.metric {
            if m.label.iter().any(|l| l.name.is_empty()) {
                return Err("invalid label name".into());
            }
            let ts = (m.timestamp_ms != 0).then_some(m.timestamp_ms);
            let mut sample =
                |name: String, magic: Option<(&str, String)>, v: f64, ex: Option<&Exemplar>| {
                    let mut labels: Vec<(String, String)> = m
                        .label
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect();
                    labels.extend(magic.map(|(n, v)| (n.to_string(), v)));
                    labels.sort_by(|a, b| a.0.cmp(&b.0));
                    samples.push(ExpectedSample {
                        name,
                        labels,
                        value_bits: v.to_bits(),
                        timestamp_ms: ts,
                        exemplar: ex.map(expected_exemplar),
                    });
                };
            let name = f.name.clone();
            match f.r#type {
                0 => {
                    let c = m.counter.clone().unwrap_or_default();
                    sample(name, None, c.value, c.exemplar.as_ref());
                }
                1 => sample(name, None, m.gauge.clone().unwrap_or_default().value, None),
                3 => sample(
                    name,
                    None,
                    m.untyped.clone().unwrap_or_default().value,
                    None,
                ),
                2 => {
                    let s = m.summary.clone().unwrap_or_default();
                    sample(format!("{name}_count"), None, s.sample_count as f64, None);
                    sample(format!("{name}_sum"), None, s.sample_sum, None);
                    for q in &s.quantile {
                        sample(
                            name.clone(),
                            Some(("quantile", om_float(q.quantile))),
                            q.value,
                            None,
                        );
                    }
                }
                _ => {
                    let h = m.histogram.clone().unwrap_or_default();
                    let count = if h.sample_count_float != 0.0 {
                        h.sample_count_float
                    } else {
                        h.sample_count as f64
                    };
                    sample(format!("{name}_count"), None, count, None);
                    sample(format!("{name}_sum"), None, h.sample_sum, None);
                    let mut saw_inf = false;
                    for b in &h.bucket {
                        let v = if b.cumulative_count_float != 0.0 {
                            b.cumulative_count_float
                        } else {
                            b.cumulative_count as f64
                        };
                        sample(
                            format!("{name}_bucket"),
                            Some(("le", om_float(b.upper_bound))),
                            v,
                            b.exemplar.as_ref(),
                        );
                        if b.upper_bound == f64::INFINITY {
                            saw_inf = true;
                            break;
                        }
                    }
                    if !saw_inf {
                        sample(
                            format!("{name}_bucket"),
                            Some(("le", "+Inf".into())),
                            count,
                            None,
                        );
                    }
                }
            }
        }
    }
    Ok((samples, metadata))
}

fn expected_exemplar(e: &Exemplar) -> ExpectedExemplar {
    let mut labels: Vec<(String, String)> = e
        .label
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    let ts = e.timestamp.as_ref().map(|t| {
        t.seconds
            .wrapping_mul(1000)
            .wrapping_add(i64::from(t.nanos / 1_000_000))
    });
    (labels, e.value.to_bits(), ts)
}

/// `labels.FormatOpenMetricsFloat`, written again from its definition: `1.0`, `0.0`, `-1.0`,
/// `NaN`, `±Inf`, else the shortest round-trip digits in Go's `%g` form with `.0` added
/// when there is neither a point nor an exponent.
fn om_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return "0.0".into();
    }
    // Go's shortest `%g` switches to `%e` when the decimal exponent is below -4 or at least
    // 6 (`strconv.FormatFloat`'s `eprec = 6` for the shortest form). Rust's `{:e}` and `{}`
    // give the same shortest round-trip digits in the two forms.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    let s = if !(-4..6).contains(&exp) {
        format!(
            "{mantissa}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    } else {
        format!("{f}")
    };
    if s.contains(['.', 'e']) {
        s
    } else {
        format!("{s}.0")
    }
}
