//! Samples as the core emits them: owned, labeled, timestamped.

use crate::labels::Labels;

/// The bit pattern Prometheus writes as a staleness marker (a NaN no exporter produces).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is the staleness marker (compared by bits: NaN != NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One sample of one series, ready for the bus.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series' labels, `__name__` included.
    pub labels: Labels,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The value; [`stale_nan`] marks the end of a series. 0 for a native histogram.
    pub value: f64,
    /// A native histogram sample's value.
    pub histogram: Option<Box<crate::histogram::Histogram>>,
}
