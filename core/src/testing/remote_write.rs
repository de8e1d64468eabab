//! An independent remote-write decoder for tests and the simulation: prost structs written
//! from Prometheus's `remote.proto` and `types.proto`, and ([`v2`]) from remote-write 2.0's
//! `io/prometheus/write/v2/types.proto`. The encoder (`crate::encode`) writes
//! the protobuf by hand; reading it back through prost checks it against the schema.

use prost::Message as _;

/// `prometheus.WriteRequest` (the fields scrapepool writes).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    /// One entry per series.
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    /// Metric family metadata.
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    #[prost(int32, tag = "1")]
    /// 0 unknown, 1 counter, 2 gauge, 3 histogram, 4 gauge histogram, 5 summary, 6 info,
    /// 7 stateset.
    pub r#type: i32,
    #[prost(string, tag = "2")]
    /// The family's name.
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    /// Its help text.
    pub help: String,
    #[prost(string, tag = "5")]
    /// Its unit.
    pub unit: String,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    /// Sorted by name, `__name__` among them.
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    /// Points in time order.
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "4")]
    /// Native histogram points in time order.
    pub histograms: Vec<Histogram>,
}

/// `prometheus.Histogram` (`count` and `zero_count` are `oneof`s: prost gives them as
/// optional fields, one of each pair set).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    #[prost(uint64, optional, tag = "1")]
    /// Observations, integer histogram.
    pub count_int: Option<u64>,
    #[prost(double, optional, tag = "2")]
    /// Observations, float histogram.
    pub count_float: Option<f64>,
    #[prost(double, tag = "3")]
    /// Sum of observations.
    pub sum: f64,
    #[prost(sint32, tag = "4")]
    /// Schema.
    pub schema: i32,
    #[prost(double, tag = "5")]
    /// Zero bucket width.
    pub zero_threshold: f64,
    #[prost(uint64, optional, tag = "6")]
    /// Zero bucket count, integer histogram.
    pub zero_count_int: Option<u64>,
    #[prost(double, optional, tag = "7")]
    /// Zero bucket count, float histogram.
    pub zero_count_float: Option<f64>,
    #[prost(message, repeated, tag = "8")]
    /// Negative spans.
    pub negative_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "9")]
    /// Negative bucket deltas (integer).
    pub negative_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "10")]
    /// Negative bucket counts (float).
    pub negative_counts: Vec<f64>,
    #[prost(message, repeated, tag = "11")]
    /// Positive spans.
    pub positive_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "12")]
    /// Positive bucket deltas (integer).
    pub positive_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "13")]
    /// Positive bucket counts (float).
    pub positive_counts: Vec<f64>,
    #[prost(int32, tag = "14")]
    /// Reset hint: 0 unknown, 1 yes, 2 no, 3 gauge.
    pub reset_hint: i32,
    #[prost(int64, tag = "15")]
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

/// `prometheus.BucketSpan`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BucketSpan {
    #[prost(sint32, tag = "1")]
    /// Gap to the previous span, or the first index.
    pub offset: i32,
    #[prost(uint32, tag = "2")]
    /// Buckets in the span.
    pub length: u32,
}

impl Histogram {
    /// A one-line rendering for comparisons: every field, buckets as written.
    pub fn show(&self) -> String {
        let spans = |s: &[BucketSpan]| {
            s.iter()
                .map(|s| format!("{}:{}", s.offset, s.length))
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "{{count={:?}/{:?} sum={} schema={} zt={} zc={:?}/{:?} neg=[{}] {:?}{:?} pos=[{}] {:?}{:?} hint={}}}",
            self.count_int,
            self.count_float,
            self.sum,
            self.schema,
            self.zero_threshold,
            self.zero_count_int,
            self.zero_count_float,
            spans(&self.negative_spans),
            self.negative_deltas,
            self.negative_counts,
            spans(&self.positive_spans),
            self.positive_deltas,
            self.positive_counts,
            self.reset_hint
        )
    }
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    /// Label name.
    pub name: String,
    #[prost(string, tag = "2")]
    /// Label value.
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    /// Sample value (staleness markers are Prometheus's NaN).
    pub value: f64,
    #[prost(int64, tag = "2")]
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

/// Decodes one record's payload: a snappy block holding a `WriteRequest`.
pub fn decode(payload: &[u8]) -> Result<WriteRequest, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(payload)
        .map_err(|e| format!("not a snappy block: {e}"))?;
    WriteRequest::decode(raw.as_slice()).map_err(|e| format!("not a WriteRequest: {e}"))
}

impl TimeSeries {
    /// The value of label `name`, if the series has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }
}

/// Remote-write 2.0 (`io.prometheus.write.v2`).
pub mod v2 {
    use prost::Message as _;

    /// `Request`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        #[prost(string, repeated, tag = "4")]
        /// The symbols table; `""` first.
        pub symbols: Vec<String>,
        #[prost(message, repeated, tag = "5")]
        /// The series.
        pub timeseries: Vec<TimeSeries>,
    }

    /// `TimeSeries`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(uint32, repeated, tag = "1")]
        /// Name and value references, in pairs.
        pub labels_refs: Vec<u32>,
        #[prost(message, repeated, tag = "2")]
        /// Float samples.
        pub samples: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        /// Native histogram samples (the fields v1 and 2.0 share).
        pub histograms: Vec<super::Histogram>,
        #[prost(message, optional, tag = "5")]
        /// The family's metadata.
        pub metadata: Option<Metadata>,
    }

    /// `Sample`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        /// The value.
        pub value: f64,
        #[prost(int64, tag = "2")]
        /// Milliseconds since the epoch.
        pub timestamp: i64,
        #[prost(int64, tag = "3")]
        /// When the counter started (0: unknown).
        pub start_timestamp: i64,
    }

    /// `Metadata`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metadata {
        #[prost(int32, tag = "1")]
        /// 1 counter, 2 gauge, 3 histogram, 4 gauge histogram, 5 summary, 6 info, 7 stateset.
        pub r#type: i32,
        #[prost(uint32, tag = "3")]
        /// Reference of the help text.
        pub help_ref: u32,
        #[prost(uint32, tag = "4")]
        /// Reference of the unit.
        pub unit_ref: u32,
    }

    /// Decodes one record's payload: a snappy block holding a `Request`.
    pub fn decode(payload: &[u8]) -> Result<Request, String> {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(payload)
            .map_err(|e| format!("not a snappy block: {e}"))?;
        Request::decode(raw.as_slice()).map_err(|e| format!("not a v2 Request: {e}"))
    }

    impl Request {
        /// The labels of `series`, resolved through the symbols table, sorted as written.
        pub fn labels(&self, series: &TimeSeries) -> Vec<(String, String)> {
            series
                .labels_refs
                .chunks(2)
                .map(|p| {
                    let at = |r: u32| self.symbols.get(r as usize).cloned().unwrap_or_default();
                    (at(p[0]), at(p[1]))
                })
                .collect()
        }

        /// The string a reference points at.
        pub fn symbol(&self, r: u32) -> &str {
            self.symbols.get(r as usize).map_or("", String::as_str)
        }
    }
}
