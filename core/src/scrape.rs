//! Per-scrape processing: parse, attach target labels, metric relabeling, limits,
//! staleness, synthetic series, encoding. Pure and `Send`: drivers run it on worker threads.
//!
//! OWNER: pipeline helper.

use std::time::Duration;

use crate::config::{Authorization, BasicAuth, TlsConfig};
use crate::encode::{EmitSpec, Record};
use crate::labels::Labels;
use crate::relabel::RelabelConfig;
use crate::sample::Sample;
use crate::time::Timestamp;

/// Limits of one scrape; 0 means no limit. Exceeding one fails the whole scrape, as in Prometheus.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Most samples after metric relabeling.
    pub sample_limit: u64,
    /// Most labels per sample.
    pub label_limit: u64,
    /// Longest label name.
    pub label_name_length_limit: u64,
    /// Longest label value.
    pub label_value_length_limit: u64,
    /// Largest body in bytes (enforced while reading by the HTTP adapter, checked again here).
    pub body_size_limit_bytes: u64,
}

/// Everything needed to scrape one target and process what it returns; shared by its scrapes.
#[derive(Clone, Debug)]
pub struct ScrapeSpec {
    /// The scrape URL.
    pub url: String,
    /// Final target labels (job, instance, ...).
    pub target_labels: Labels,
    /// Scrape interval.
    pub interval: Duration,
    /// Scrape timeout.
    pub timeout: Duration,
    /// Prefer scraped labels over target labels on conflict.
    pub honor_labels: bool,
    /// Keep exporter timestamps.
    pub honor_timestamps: bool,
    /// Ask for gzip.
    pub enable_compression: bool,
    /// Limits.
    pub limits: Limits,
    /// Metric relabeling.
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Basic auth for the request.
    pub basic_auth: Option<BasicAuth>,
    /// Authorization header for the request.
    pub authorization: Option<Authorization>,
    /// TLS settings for the request.
    pub tls_config: TlsConfig,
    /// How to encode for the bus.
    pub emit: EmitSpec,
}

/// What fetching a target gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// A 2xx response (decompressed).
    Body {
        /// The body.
        body: Vec<u8>,
        /// The response's Content-Type.
        content_type: Option<String>,
    },
    /// Anything else: connection error, timeout, non-2xx status, body too large.
    Failed {
        /// Why, in words for the operator.
        error: String,
    },
}

/// The memory of one target between scrapes: the series of its last successful scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesCache {
    /// Series of the last successful scrape (with target labels attached), sorted.
    pub series: Vec<Labels>,
}

/// The result of processing one scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScrapeReport {
    /// Whether the scrape succeeded (`up`).
    pub up: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// How long the fetch took.
    pub duration: Duration,
    /// Samples in the body.
    pub samples_scraped: u64,
    /// Samples after metric relabeling.
    pub samples_post_metric_relabeling: u64,
    /// Series not in the previous scrape.
    pub series_added: u64,
    /// Staleness markers written.
    pub stale_markers: u64,
}

/// Processes one scrape: returns the samples to emit (scraped, synthetic and stale markers)
/// and updates `cache`.
pub fn process(spec: &ScrapeSpec, cache: &mut SeriesCache, started_at: Timestamp, duration: Duration, fetch: &FetchOutcome) -> (ScrapeReport, Vec<Sample>) {
    let _ = (spec, cache, started_at, duration, fetch);
    (ScrapeReport::default(), Vec::new())
}

/// Staleness markers for every series in `cache`, at `at` (a target removed from discovery).
pub fn stale_markers(cache: &SeriesCache, at: Timestamp) -> Vec<Sample> {
    let _ = (cache, at);
    Vec::new()
}

/// Processes and encodes: the whole pure part of a scrape, for a worker thread.
pub fn process_and_encode(spec: &ScrapeSpec, cache: &mut SeriesCache, started_at: Timestamp, duration: Duration, fetch: &FetchOutcome) -> (ScrapeReport, Vec<Record>) {
    let (report, samples) = process(spec, cache, started_at, duration, fetch);
    (report, crate::encode::encode(&spec.emit, &samples))
}
