//! An independent remote-write decoder for tests and the simulation: prost structs written
//! from Prometheus's `remote.proto` and `types.proto`. The encoder (`crate::encode`) writes
//! the protobuf by hand; reading it back through prost checks it against the schema.

use prost::Message as _;

/// `prometheus.WriteRequest` (the fields scrapepool writes).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    /// One entry per series.
    pub timeseries: Vec<TimeSeries>,
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
