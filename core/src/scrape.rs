//! Per-scrape processing: parse, attach target labels, metric relabeling, limits,
//! staleness, synthetic series, encoding. Pure and `Send`: drivers run it on worker threads.
//!
//! ## Semantics (Prometheus 3.16's scrape loop, `scrape/scrape.go`, unless noted)
//!
//! - The body is parsed in the format its Content-Type names, else in the job's
//!   `fallback_scrape_protocol` (Prometheus 3.16, [`crate::protocol::format_for`]); no format,
//!   or a parse error, fails the scrape.
//! - Names are checked after target labels and metric relabeling under the job's
//!   `metric_name_validation_scheme`; an invalid one fails the scrape (3.16).
//! - Target labels: with `honor_labels: false` a scraped label that clashes with a target
//!   label is renamed `exported_<name>` (again and again while that name is taken, shortest
//!   names first) and the target's value wins; with `honor_labels: true` the scraped value
//!   wins. Empty values mean "no label".
//! - `honor_timestamps: false` replaces exporter timestamps with the scrape's start.
//! - `metric_relabel_configs` run after the target labels; a dropped series is gone.
//! - Limits fail the whole scrape: no scraped sample is emitted and `up` is 0. The counts
//!   reported are what was counted when the scrape stopped: a label limit stops at the
//!   offending series, `sample_limit` at the first sample over it. (Prometheus parses on
//!   to the end after `sample_limit` to count the samples; scrapepool stops, so that an
//!   oversized body is neither parsed nor cached whole: without `metric_relabel_configs`
//!   the parser itself stops after `sample_limit + 1` samples, and such a body fails even
//!   when duplicates among its first samples would have kept Prometheus under the limit.)
//!   A parse error reports 0 scraped samples (our parser is not streaming, so nothing
//!   before the bad line is counted).
//! - The member's memory budget ([`scrape_caps`], ARCHITECTURE.md "Memory budget") caps
//!   every scrape: a job without `body_size_limit` gets the budget's default body limit
//!   (failing with Prometheus's "body size limit exceeded"), and no scrape builds more
//!   than the budget's samples per scrape ([`ScrapeError::SampleBudget`]). A failed
//!   scrape that more than doubled the target's cache (and added over 1024 series texts)
//!   gives that memory back: the target keeps only what it had before that scrape. A
//!   smaller one leaves its series texts cached, as Prometheus's scrape cache does, so the
//!   next scrape does not count them as added.
//! - A sample whose label names repeat fails the scrape as Prometheus's agent storage
//!   refuses it (`label name "a" is not unique: invalid sample`), unless metric relabeling
//!   dropped it.
//! - A series seen twice with one timestamp: the first sample is kept, later ones are
//!   dropped and counted (`duplicate_samples`, Prometheus's "Duplicate sample for
//!   timestamp"); an earlier timestamp than one already seen is dropped as out of order;
//!   a timestamp more than 10 minutes after the scrape's start is dropped as out of bounds.
//!   All of them still count in `scrape_samples_post_metric_relabeling`, as in Prometheus.
//! - Staleness: a series of the previous successful scrape that is absent now gets a
//!   StaleNaN at the scrape's start. A failed (or empty) scrape writes markers for every
//!   series of the previous successful scrape and forgets them, so a second failure writes
//!   none. (Prometheus, on a limit or parse failure, also skips markers for the series it
//!   had appended before failing — then rolls those samples back; we mark them all, as the
//!   design asks.) Series with an exporter timestamp are not tracked unless
//!   `track_timestamps_staleness` is set, as in Prometheus.
//! - Synthetic series: the five of [`REPORT_SERIES`], then with `extra_scrape_metrics` the
//!   three of [`EXTRA_REPORT_SERIES`], all at the scrape's start with the target labels.
//! - External labels: every series (scraped, synthetic, markers) gets each external label
//!   it lacks, after the label limits, as Prometheus's remote write adds them.
//!   A target removed from discovery: [`stale_markers`]; a target that merely moved to
//!   another member: no markers (the node just drops the cache).
//!
//! ## Speed
//!
//! The cache keeps, per distinct series text of the body (metric name and labels as
//! parsed), the series it became after target labels and relabeling, and per series its
//! encoded label block. A steady-state scrape therefore hashes each sample's text, finds
//! its series, and copies a pre-encoded label block: no label is allocated, merged,
//! relabeled or validated again (Prometheus caches the same way, keyed by the raw string).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use crate::config::{Authorization, BasicAuth, HttpClientOptions, TlsConfig};
use crate::encode::{self, EmitSpec, Encoding, Group, Record};
use crate::exposition::{self, Label, ParseOptions, ParsedSample};
use crate::histogram::Histogram;
use crate::labels::Labels;
use crate::protocol::{self, ExpositionSpec};
use crate::relabel::RelabelConfig;
use crate::sample::{is_stale_nan, stale_nan, Sample};
use crate::time::Timestamp;

mod error;
pub use error::ScrapeError;

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
    /// Most samples parsed from one body, from the member's memory budget ([`scrape_caps`]).
    pub samples_max: u64,
}

/// What a member's memory budget allows one scrape (ARCHITECTURE.md "Memory budget").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScrapeCaps {
    /// The body limit of a job that sets no `body_size_limit`.
    pub body_bytes: u64,
    /// The most samples one scrape may parse, whatever its job says.
    pub samples: u64,
}

/// One scrape may use at most this fraction (1/N) of the member's memory budget.
pub const SCRAPE_SHARE_DIVISOR: u64 = 16;

/// Working memory per parsed sample, high estimate: the parsed sample and its labels
/// (about 180 bytes), its output entry (24) and, for a series new to the target, its cache
/// entry (about 300).
pub const SAMPLE_WORKING_BYTES: u64 = 512;

/// The caps of one scrape under a memory budget of `memory_budget_bytes` (0: no budget, no
/// caps): a scrape's share is 1/[`SCRAPE_SHARE_DIVISOR`] of the budget, half of it for the
/// body and half for its samples at [`SAMPLE_WORKING_BYTES`] each.
pub fn scrape_caps(memory_budget_bytes: u64) -> ScrapeCaps {
    if memory_budget_bytes == 0 {
        return ScrapeCaps {
            body_bytes: 0,
            samples: 0,
        };
    }
    let half_share = (memory_budget_bytes / SCRAPE_SHARE_DIVISOR / 2).max(1);
    ScrapeCaps {
        body_bytes: half_share,
        samples: (half_share / SAMPLE_WORKING_BYTES).max(1),
    }
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
    /// Staleness markers for series with exporter timestamps too.
    pub track_timestamps_staleness: bool,
    /// Write [`EXTRA_REPORT_SERIES`] after the five synthetic series.
    pub extra_scrape_metrics: bool,
    /// Labels added to every series that lacks a label of the same name (`global:`
    /// `external_labels`, as remote write adds them).
    pub external_labels: Labels,
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
    /// The other HTTP client settings: redirects, HTTP/2, proxy, OAuth 2.0, custom headers.
    pub http_client: HttpClientOptions,
    /// How to encode for the bus.
    pub emit: EmitSpec,
    /// The `Accept` header, the fallback format and the name validation scheme.
    pub exposition: ExpositionSpec,
    /// What to do with native histograms.
    pub histograms: HistogramSpec,
}

/// What a target does with native histograms (its job's settings, or the target's
/// `__scrape_native_histograms__` and `__always_scrape_classic_histograms__` labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistogramSpec {
    /// Scrape native histograms (`scrape_native_histograms`); else a native histogram gives
    /// its classic series.
    pub native: bool,
    /// Also keep the classic series of a histogram that has classic buckets besides its
    /// native ones (`always_scrape_classic_histograms`).
    pub keep_classic: bool,
    /// `native_histogram_bucket_limit` (0: none).
    pub bucket_limit: u64,
    /// The finest schema kept (`native_histogram_min_bucket_factor`, through
    /// [`crate::histogram::max_schema_for_factor`]).
    pub max_schema: i32,
}

impl Default for HistogramSpec {
    /// Prometheus's defaults: no native histograms, no limit, no schema cap.
    fn default() -> Self {
        HistogramSpec {
            native: false,
            keep_classic: false,
            bucket_limit: 0,
            max_schema: crate::histogram::SCHEMA_MAX,
        }
    }
}

/// What fetching a target gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// A 200 response (decompressed).
    Body {
        /// The body.
        body: Vec<u8>,
        /// The response's Content-Type.
        content_type: Option<String>,
    },
    /// Anything else: connection error, timeout, a status other than 200, body too large, ...
    Failed {
        /// Why.
        error: ScrapeError,
    },
}

/// The synthetic series, in the order Prometheus appends them.
pub const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// The synthetic series `extra_scrape_metrics` adds, in Prometheus's order: the target's
/// timeout, its `sample_limit` (0 for none) and the bytes of the body (0 for a failed
/// scrape, -1 for one over `body_size_limit`).
pub const EXTRA_REPORT_SERIES: [&str; 3] = [
    "scrape_timeout_seconds",
    "scrape_sample_limit",
    "scrape_body_size_bytes",
];

/// Samples with a timestamp further than this after the scrape's start are refused
/// (Prometheus's `maxAheadTime`).
const AHEAD_MS_MAX: i64 = 10 * 60 * 1000;

/// Marks a raw entry whose series was dropped by metric relabeling.
const DROPPED: u32 = u32::MAX;

/// Marks a series reference as one of the five synthetic series.
const REPORT_FLAG: u32 = 1 << 31;

/// The memory of one target between scrapes: the series of its last successful scrape
/// (for staleness) and the label work already done for each series text (for speed).
///
/// Deterministic: its maps are keyed by xxh3 hashes with an identity hasher and are only
/// looked up, never iterated; everything iterated is a `Vec` in insertion order.
#[derive(Clone, Debug, Default)]
pub struct SeriesCache {
    /// What the cached label results were computed with; a different spec rebuilds them.
    basis: Option<Basis>,
    /// Scrape counter, to tell "seen in this scrape" apart.
    iter: u64,
    /// One entry per distinct series text seen (metric name and labels as written).
    raw: Vec<RawEntry>,
    /// xxh3 of the series text → index in `raw` (linear probing on collision).
    raw_index: HashMap<u64, u32, IdentityHash>,
    /// One entry per final series (after target labels and relabeling).
    series: Vec<SeriesEntry>,
    /// xxh3 of the final label set's canonical bytes → index in `series`.
    series_index: HashMap<u64, u32, IdentityHash>,
    /// The five synthetic series; empty until the first scrape.
    report: Vec<SeriesEntry>,
    /// Entries not seen in the last scrape must be swept once its output is encoded.
    sweep_pending: bool,
    /// The last scrape failed: the entries it added go once its output is encoded.
    forget_pending: bool,
    /// `raw` and `series` lengths when the scrape began.
    lens_at_begin: (usize, usize),
    /// Remote-write 2.0: the strings the series' label references and metadata point at.
    symbols: encode::Symbols,
    /// Remote-write v1: the hash of the metadata last sent, and when.
    metadata_sent: Option<(u64, i64)>,
}

/// Remote-write v1 sends a target's metadata again after this long unchanged (Prometheus's
/// `metadata_config.send_interval` default), and at once when it changes.
pub const METADATA_RESEND_MS: i64 = 60_000;

/// A symbols table is rebuilt from the live series once it holds more than this many
/// strings and more than twice what they use.
const SYMBOLS_REBUILT_ABOVE: usize = 1024;

/// Series texts a failed scrape may add to a target's cache and leave there (more than
/// this, and more than the cache held before it, and they are dropped).
const FAILED_SCRAPE_KEPT_MIN: usize = 1024;

/// The buffers one scrape's processing works in, kept between scrapes for their allocations
/// only (nothing in them outlives a call). One per worker thread, not per target: a
/// target's own memory is its [`SeriesCache`], and a body's worth of buffers for each of
/// thousands of targets would outweigh it.
#[derive(Debug, Default)]
pub struct Scratch {
    /// The series text of a sample.
    key: Vec<u8>,
    /// A new series' fragment.
    frag: Vec<u8>,
    /// The output list.
    outs: Vec<Out>,
    /// The native histograms of the output list (after limits), by [`Out::hist`].
    hists: Vec<Histogram>,
    /// Remote-write v1 metadata to send with this scrape (empty: none due).
    metadata: Vec<u8>,
    /// Points and groups for the remote-write encoder.
    points: Vec<(i64, f64)>,
    groups: Vec<Group<'static>>,
    /// Protobuf and snappy buffers.
    rw: encode::RwBuffers,
}

/// Most output entries a [`Scratch`] keeps room for between scrapes (24 MiB): one huge
/// scrape does not hold its worker thread's memory for good.
const SCRATCH_OUTS_KEPT_MAX: usize = 1 << 20;

impl Scratch {
    /// Gives back the memory of an unusually large scrape.
    fn trim(&mut self) {
        if self.outs.capacity() > SCRATCH_OUTS_KEPT_MAX {
            self.outs = Vec::new();
        }
        if self.points.capacity() > SCRATCH_OUTS_KEPT_MAX {
            self.points = Vec::new();
        }
    }
}

impl SeriesCache {
    /// How many series the last successful scrape left (those that would get staleness markers).
    pub fn len(&self) -> usize {
        self.series.iter().filter(|s| s.tracked_prev).count()
    }

    /// Whether no series would get staleness markers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The series of the last successful scrape (target labels attached), sorted.
    pub fn series(&self) -> Vec<Labels> {
        let mut out: Vec<Labels> = (0..self.series.len() as u32)
            .filter(|&i| self.series[i as usize].tracked_prev)
            .map(|i| self.labels_of(i))
            .collect();
        out.sort();
        out
    }

    /// Whether the target was scraped at least once (so removing it writes markers for
    /// its synthetic series too).
    pub fn has_scraped(&self) -> bool {
        !self.report.is_empty()
    }
}

impl PartialEq for SeriesCache {
    /// Two caches are equal when they would write the same staleness markers.
    fn eq(&self, other: &Self) -> bool {
        self.series() == other.series() && self.report.len() == other.report.len()
    }
}

/// The result of processing one scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScrapeReport {
    /// Whether the scrape succeeded (`up`).
    pub up: bool,
    /// Why it failed.
    pub error: Option<ScrapeError>,
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
    /// Later samples of a series already seen in this scrape at the same timestamp (dropped).
    pub duplicate_samples: u64,
    /// Samples with a timestamp before one already seen for their series (dropped).
    pub out_of_order_samples: u64,
    /// Samples more than 10 minutes in the future (dropped).
    pub out_of_bounds_samples: u64,
    /// Samples that fit in no message of `message_bytes_max` (dropped by the encoder).
    pub samples_unencodable: u64,
}

impl ScrapeReport {
    /// The samples this scrape dropped, by reason, as `(reason, count)` for the nonzero
    /// ones: `duplicate_timestamp`, `out_of_order`, `out_of_bounds`, `too_large_for_bus`.
    pub fn dropped(&self) -> Vec<(&'static str, u64)> {
        [
            ("duplicate_timestamp", self.duplicate_samples),
            ("out_of_order", self.out_of_order_samples),
            ("out_of_bounds", self.out_of_bounds_samples),
            ("too_large_for_bus", self.samples_unencodable),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
    }
}

/// Processes one scrape: returns the samples to emit (scraped, synthetic and stale markers)
/// and updates `cache`.
///
/// Order: scraped samples in body order, then staleness markers (sorted by labels), then
/// the five synthetic series.
pub fn process(
    spec: &ScrapeSpec,
    cache: &mut SeriesCache,
    started_at: Timestamp,
    duration: Duration,
    fetch: &FetchOutcome,
) -> (ScrapeReport, Vec<Sample>) {
    let mut scratch = Scratch::default();
    let (report, outs) = run(spec, cache, &mut scratch, started_at, duration, fetch);
    let samples = outs
        .iter()
        .map(|o| Sample {
            labels: cache.labels_of(o.series),
            timestamp_ms: o.ts,
            value: o.value,
            histogram: scratch
                .hists
                .get(o.hist as usize)
                .map(|h| Box::new(h.clone())),
        })
        .collect();
    cache.finish();
    (report, samples)
}

/// Staleness markers for every series in `cache`, at `at` (a target removed from discovery):
/// the series of its last successful scrape, sorted by labels, then its synthetic series.
pub fn stale_markers(cache: &SeriesCache, at: Timestamp) -> Vec<Sample> {
    let marker = |series: u32| Sample {
        labels: cache.labels_of(series),
        timestamp_ms: at.0,
        value: stale_nan(),
        histogram: None,
    };
    let mut out: Vec<Sample> = cache
        .sorted_by_labels(|s| s.tracked_prev)
        .into_iter()
        .map(marker)
        .collect();
    out.extend((0..cache.report.len() as u32).map(|i| marker(REPORT_FLAG | i)));
    out
}

/// Processes and encodes: the whole pure part of a scrape, for a worker thread.
///
/// Gives the same records as `encode(&spec.emit, &process(..).1)`, without building owned
/// samples: the encoder copies each series' cached label block. `scratch` is the calling
/// thread's working memory.
pub fn process_and_encode(
    spec: &ScrapeSpec,
    cache: &mut SeriesCache,
    scratch: &mut Scratch,
    started_at: Timestamp,
    duration: Duration,
    fetch: &FetchOutcome,
) -> (ScrapeReport, Vec<Record>) {
    let (mut report, outs) = run(spec, cache, scratch, started_at, duration, fetch);
    let records = encode_outs(&spec.emit, cache, scratch, &outs);
    let encoded: usize = records.iter().map(|r| r.samples).sum();
    report.samples_unencodable = (outs.len() - encoded) as u64;
    scratch.outs = outs;
    scratch.trim();
    cache.finish();
    (report, records)
}

// ---------------------------------------------------------------------------------------

/// Identity hasher for keys that already are xxh3 hashes.
#[derive(Default, Clone, Copy, Debug)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are used; fold anything else so the hasher stays total.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type IdentityHash = BuildHasherDefault<IdentityHasher>;

/// The parts of a spec that the cached label results depend on.
#[derive(Clone, Debug, PartialEq)]
struct Basis {
    target_labels: Labels,
    honor_labels: bool,
    label_limit: u64,
    label_name_length_limit: u64,
    label_value_length_limit: u64,
    metric_relabel_configs: Vec<RelabelConfig>,
    encoding: Encoding,
    extra_scrape_metrics: bool,
    external_labels: Labels,
}

impl Basis {
    fn matches(&self, spec: &ScrapeSpec) -> bool {
        self.honor_labels == spec.honor_labels
            && self.label_limit == spec.limits.label_limit
            && self.label_name_length_limit == spec.limits.label_name_length_limit
            && self.label_value_length_limit == spec.limits.label_value_length_limit
            && self.encoding == spec.emit.encoding
            && self.target_labels == spec.target_labels
            && self.metric_relabel_configs == spec.metric_relabel_configs
            && self.extra_scrape_metrics == spec.extra_scrape_metrics
            && self.external_labels == spec.external_labels
    }

    fn of(spec: &ScrapeSpec) -> Basis {
        Basis {
            target_labels: spec.target_labels.clone(),
            honor_labels: spec.honor_labels,
            label_limit: spec.limits.label_limit,
            label_name_length_limit: spec.limits.label_name_length_limit,
            label_value_length_limit: spec.limits.label_value_length_limit,
            metric_relabel_configs: spec.metric_relabel_configs.clone(),
            encoding: spec.emit.encoding,
            extra_scrape_metrics: spec.extra_scrape_metrics,
            external_labels: spec.external_labels.clone(),
        }
    }
}

#[derive(Clone, Debug)]
struct RawEntry {
    /// xxh3-128 of the series text (name, then `0xff name 0xfe value` per label, as
    /// written), low half first; the low half keys `raw_index`. The text itself is not kept:
    /// two texts of a target sharing 128 bits of hash is far less likely than a bit flip.
    hash: [u64; 2],
    /// Index in `series`, or [`DROPPED`].
    series: u32,
    /// Last scrape that saw this text.
    seen_iter: u64,
    /// Whether a sample of it was ever accepted (Prometheus caches only those; the others
    /// count as new series again).
    committed: bool,
}

#[derive(Clone, Debug)]
struct SeriesEntry {
    /// The series' labels, encoded for the basis' encoding (protobuf label block or JSON
    /// prefix): what every sample copies, and the series' identity (both encodings are
    /// canonical). The labels themselves are decoded from it on the cold paths.
    frag: Box<[u8]>,
    /// Last scrape that accepted a sample of it.
    seen_iter: u64,
    /// Timestamp of its last accepted sample in `seen_iter`.
    last_ts: i64,
    /// In the previous successful scrape, without an exporter timestamp: gets a marker when absent.
    tracked_prev: bool,
    /// Seen in this scrape without an exporter timestamp.
    tracked_now: bool,
    /// Remote-write 2.0 only (none for the other encodings, so they pay one pointer).
    v2: Option<Box<V2Series>>,
}

/// What remote-write 2.0 keeps per series.
#[derive(Clone, Debug, Default)]
struct V2Series {
    /// The series' label references in the cache's symbols table, made on its first
    /// encoding (and again after the table is rebuilt); empty until then.
    refs: Box<[u8]>,
    /// Its family's metadata in the last scrape that saw it, `[type, help_ref, unit_ref]`.
    meta: [u32; 3],
}

impl SeriesEntry {
    fn new(frag: &[u8]) -> SeriesEntry {
        SeriesEntry {
            frag: frag.into(),
            seen_iter: 0,
            last_ts: i64::MIN,
            tracked_prev: false,
            tracked_now: false,
            v2: None,
        }
    }

    fn labels(&self, encoding: Encoding) -> Labels {
        match encoding {
            Encoding::RemoteWrite | Encoding::RemoteWriteV2 => encode::labels_from_pb(&self.frag),
            Encoding::Json => encode::labels_from_json_prefix(&self.frag),
        }
    }
}

/// Encodes `labels` as a series fragment for `encoding` into `out` (cleared first).
fn encode_frag(labels: &Labels, encoding: Encoding, out: &mut Vec<u8>) {
    out.clear();
    let pairs = labels.iter().map(|l| (l.name.as_str(), l.value.as_str()));
    match encoding {
        Encoding::RemoteWrite | Encoding::RemoteWriteV2 => encode::put_labels_pb(pairs, out),
        Encoding::Json => encode::put_json_prefix(pairs, out),
    }
}

/// One output sample: a reference to a cache entry and a point.
#[derive(Clone, Copy, Debug)]
struct Out {
    series: u32,
    /// The native histogram's index in [`Scratch::hists`], or [`NO_HISTOGRAM`].
    hist: u32,
    ts: i64,
    value: f64,
}

/// [`Out::hist`] of a float sample.
const NO_HISTOGRAM: u32 = u32::MAX;

/// Finds `hash`'s entry satisfying `eq` by linear probing, or the free slot to insert at.
fn probe(
    index: &HashMap<u64, u32, IdentityHash>,
    hash: u64,
    mut eq: impl FnMut(u32) -> bool,
) -> Result<u32, u64> {
    let mut h = hash;
    loop {
        match index.get(&h) {
            None => return Err(h),
            Some(&i) if eq(i) => return Ok(i),
            Some(_) => h = h.wrapping_add(1),
        }
    }
}

impl SeriesCache {
    /// Gives `series` its remote-write 2.0 label references, if it has none yet.
    fn ensure_refs(&mut self, series: u32) {
        let entry = if series & REPORT_FLAG != 0 {
            &mut self.report[(series & !REPORT_FLAG) as usize]
        } else {
            &mut self.series[series as usize]
        };
        let v2 = entry.v2.get_or_insert_default();
        if v2.refs.is_empty() {
            let labels = encode::labels_from_pb(&entry.frag);
            let mut refs = Vec::new();
            let pairs = labels.iter().map(|l| (l.name.as_str(), l.value.as_str()));
            encode::put_label_refs(pairs, &mut self.symbols, &mut refs);
            v2.refs = refs.into();
        }
    }

    /// Rebuilds the symbols table when it holds mostly strings no live series uses: every
    /// series' references are made again on its next encoding, and its metadata on its
    /// next scrape.
    fn trim_symbols(&mut self) {
        let len = self.symbols.len();
        if len <= SYMBOLS_REBUILT_ABOVE {
            return;
        }
        let mut used = vec![false; len];
        for e in self.series.iter().chain(&self.report) {
            let Some(v2) = &e.v2 else { continue };
            let mut refs = &*v2.refs;
            while let Some((r, rest)) = encode::read_varint(refs) {
                used[(r as usize).min(len - 1)] = true;
                refs = rest;
            }
            for r in v2.meta[1..].iter() {
                used[(*r as usize).min(len - 1)] = true;
            }
        }
        if used.iter().filter(|u| **u).count() * 2 >= len {
            return;
        }
        self.symbols = encode::Symbols::default();
        for e in self.series.iter_mut().chain(self.report.iter_mut()) {
            e.v2 = None;
        }
    }

    fn entry(&self, series: u32) -> &SeriesEntry {
        if series & REPORT_FLAG != 0 {
            &self.report[(series & !REPORT_FLAG) as usize]
        } else {
            &self.series[series as usize]
        }
    }

    /// Starts a scrape: adopts `spec` (rebuilding label results if it changed) and bumps `iter`.
    fn begin(&mut self, spec: &ScrapeSpec) {
        self.finish();
        if !self.basis.as_ref().is_some_and(|b| b.matches(spec)) {
            // Series texts may now map elsewhere: forget them, keep the series (their
            // identity is their final labels, so staleness carries over exactly).
            self.raw.clear();
            self.raw_index.clear();
            let encoding = spec.emit.encoding;
            let mut frag = Vec::new();
            if let Some(old) = self
                .basis
                .as_ref()
                .map(|b| b.encoding)
                .filter(|e| *e != encoding)
            {
                for s in &mut self.series {
                    encode_frag(&s.labels(old), encoding, &mut frag);
                    s.frag = frag.as_slice().into();
                }
                self.reindex_series();
            }
            let extra: &[&str] = if spec.extra_scrape_metrics {
                &EXTRA_REPORT_SERIES
            } else {
                &[]
            };
            self.report = REPORT_SERIES
                .iter()
                .chain(extra)
                .map(|name| {
                    let mut l = spec.target_labels.clone();
                    l.set("__name__".to_string(), (*name).to_string());
                    add_external_labels(&mut l, &spec.external_labels);
                    encode_frag(&l, encoding, &mut frag);
                    SeriesEntry::new(&frag)
                })
                .collect();
            self.basis = Some(Basis::of(spec));
        }
        self.lens_at_begin = (self.raw.len(), self.series.len());
        self.iter += 1;
    }

    /// The series of `lset` (creating it if new); `frag` is scratch space.
    fn series_for(&mut self, lset: &Labels, encoding: Encoding, frag: &mut Vec<u8>) -> u32 {
        encode_frag(lset, encoding, frag);
        let series = &self.series;
        match probe(&self.series_index, xxh3_64(frag), |i| {
            *series[i as usize].frag == **frag
        }) {
            Ok(i) => i,
            Err(slot) => {
                let i = self.series.len() as u32;
                self.series.push(SeriesEntry::new(frag));
                self.series_index.insert(slot, i);
                i
            }
        }
    }

    /// The labels of a series, decoded from its fragment.
    fn labels_of(&self, series: u32) -> Labels {
        let encoding = self
            .basis
            .as_ref()
            .map_or(Encoding::RemoteWrite, |b| b.encoding);
        self.entry(series).labels(encoding)
    }

    /// The tracked series picked by `pick`, in label order (the order markers are written in).
    fn sorted_by_labels(&self, pick: impl Fn(&SeriesEntry) -> bool) -> Vec<u32> {
        let mut picked: Vec<(Labels, u32)> = (0..self.series.len() as u32)
            .filter(|&i| pick(&self.series[i as usize]))
            .map(|i| (self.labels_of(i), i))
            .collect();
        picked.sort();
        picked.into_iter().map(|(_, i)| i).collect()
    }

    /// Rebuilds `series_index` from the fragments.
    fn reindex_series(&mut self) {
        self.series_index.clear();
        for (i, s) in self.series.iter().enumerate() {
            let slot = probe(&self.series_index, xxh3_64(&s.frag), |_| false).unwrap_err();
            self.series_index.insert(slot, i as u32);
        }
    }

    /// Writes markers for every tracked series into `outs` and forgets them.
    fn mark_all_stale(&mut self, at: i64, outs: &mut Vec<Out>) -> u64 {
        let stale = self.sorted_by_labels(|s| s.tracked_prev);
        for &i in &stale {
            outs.push(Out {
                series: i,
                hist: NO_HISTOGRAM,
                ts: at,
                value: stale_nan(),
            });
        }
        for s in &mut self.series {
            s.tracked_prev = false;
            s.tracked_now = false;
        }
        stale.len() as u64
    }

    /// After a successful scrape: markers for series tracked before and not now.
    fn mark_gone_stale(&mut self, at: i64, outs: &mut Vec<Out>) -> u64 {
        let stale = self.sorted_by_labels(|s| s.tracked_prev && !s.tracked_now);
        for &i in &stale {
            outs.push(Out {
                series: i,
                hist: NO_HISTOGRAM,
                ts: at,
                value: stale_nan(),
            });
        }
        for s in &mut self.series {
            s.tracked_prev = s.tracked_now;
            s.tracked_now = false;
        }
        stale.len() as u64
    }

    /// Ends a scrape once its output is built: drops what the last scrape did not see, or
    /// after a failed scrape what it added (memory included).
    fn finish(&mut self) {
        if self.forget_pending {
            // What the failed scrape added is appended after what was there before it.
            self.forget_pending = false;
            self.sweep_pending = false;
            let (raw_kept, series_kept) = self.lens_at_begin;
            // Prometheus keeps in its scrape cache what a failed scrape added (its next
            // scrape does not count those series as added again); so does this cache, unless
            // the failed scrape more than doubled it: then that memory goes back.
            let grown = self.raw.len().saturating_sub(raw_kept);
            if grown > raw_kept.max(FAILED_SCRAPE_KEPT_MIN) {
                self.raw.truncate(raw_kept);
                self.series.truncate(series_kept);
                self.raw.shrink_to(raw_kept * 2);
                self.series.shrink_to(series_kept * 2);
                self.raw_index = HashMap::default();
                for (i, r) in self.raw.iter().enumerate() {
                    let slot = probe(&self.raw_index, r.hash[0], |_| false).unwrap_err();
                    self.raw_index.insert(slot, i as u32);
                }
                self.series_index = HashMap::default();
                self.reindex_series();
            }
            return;
        }
        if !self.sweep_pending {
            return;
        }
        self.sweep_pending = false;
        let iter = self.iter;
        let mut remap = vec![DROPPED; self.series.len()];
        let mut kept = 0u32;
        for (i, s) in self.series.iter().enumerate() {
            if s.seen_iter == iter || s.tracked_prev {
                remap[i] = kept;
                kept += 1;
            }
        }
        let mut i = 0;
        self.series.retain(|_| {
            let keep = remap[i] != DROPPED;
            i += 1;
            keep
        });
        self.raw.retain(|r| {
            r.seen_iter == iter && (r.series == DROPPED || remap[r.series as usize] != DROPPED)
        });
        for r in &mut self.raw {
            if r.series != DROPPED {
                r.series = remap[r.series as usize];
            }
        }
        self.raw_index.clear();
        for (i, r) in self.raw.iter().enumerate() {
            let slot = probe(&self.raw_index, r.hash[0], |_| false).unwrap_err();
            self.raw_index.insert(slot, i as u32);
        }
        self.reindex_series();
        self.trim_symbols();
    }

    /// Whether anything is left to sweep after a successful scrape.
    fn needs_sweep(&self) -> bool {
        let iter = self.iter;
        self.raw.iter().any(|r| r.seen_iter != iter)
            || self
                .series
                .iter()
                .any(|s| s.seen_iter != iter && !s.tracked_prev)
    }
}

/// Counts of one pass over a body, as Prometheus's `append` returns them.
#[derive(Default)]
struct Counts {
    total: u64,
    added: u64,
    series_added: u64,
    duplicates: u64,
    out_of_order: u64,
    out_of_bounds: u64,
}

/// Everything but encoding: returns the report and the output, leaving the cache to `finish`.
fn run(
    spec: &ScrapeSpec,
    cache: &mut SeriesCache,
    scratch: &mut Scratch,
    started_at: Timestamp,
    duration: Duration,
    fetch: &FetchOutcome,
) -> (ScrapeReport, Vec<Out>) {
    cache.begin(spec);
    let t0 = started_at.0;
    let mut outs = std::mem::take(&mut scratch.outs);
    outs.clear();
    scratch.metadata.clear();
    let mut counts = Counts::default(); // stays zero unless the body is parsed
    let mut stale = 0;
    let result: Result<(), ScrapeError> = match fetch {
        FetchOutcome::Failed { error } => Err(error.clone()),
        FetchOutcome::Body { body, .. }
            if spec.limits.body_size_limit_bytes > 0
                && body.len() as u64 >= spec.limits.body_size_limit_bytes =>
        {
            // Prometheus reads at most the limit and fails when it got that many bytes.
            Err(ScrapeError::BodySizeLimit)
        }
        FetchOutcome::Body { body, .. } if body.is_empty() => {
            // An empty 2xx body: Prometheus writes markers for everything and stays up.
            stale = cache.mark_all_stale(t0, &mut outs);
            Ok(())
        }
        FetchOutcome::Body { body, content_type } => {
            let (samples_max, over) = parse_stop(spec);
            match protocol::format_for(content_type.as_deref(), spec.exposition.fallback)
                .map_err(ScrapeError::ContentType)
                .and_then(|format| {
                    exposition::parse_with(
                        body,
                        format,
                        &ParseOptions {
                            keep_exemplars: false,
                            samples_max,
                            native_histograms: spec.histograms.native,
                            keep_classic_histograms: spec.histograms.keep_classic,
                        },
                    )
                    .map_err(ScrapeError::Parse)
                }) {
                Err(e) => Err(e),
                Ok(parsed) => {
                    let r = append(spec, cache, scratch, t0, &parsed, &mut counts, &mut outs);
                    if r.is_ok() && !parsed.truncated && spec.emit.encoding == Encoding::RemoteWrite
                    {
                        metadata_due(cache, &mut scratch.metadata, &parsed.metadata, t0);
                    }
                    // Samples were left unparsed: the scrape is over a limit, whatever
                    // the parsed ones gave.
                    let r = match r {
                        Ok(()) if parsed.truncated => Err(over),
                        r => r,
                    };
                    if r.is_ok() {
                        stale = cache.mark_gone_stale(t0, &mut outs);
                        cache.sweep_pending = cache.needs_sweep();
                    }
                    r
                }
            }
        }
    };
    let up = result.is_ok();
    if result.is_err() {
        outs.clear();
        stale = cache.mark_all_stale(t0, &mut outs);
        // Once the markers are encoded, what this scrape added goes if it was much (see
        // `SeriesCache::finish`).
        cache.forget_pending = true;
    }
    let report = ScrapeReport {
        up,
        error: result.err(),
        duration,
        samples_scraped: counts.total,
        samples_post_metric_relabeling: counts.added,
        series_added: counts.series_added,
        stale_markers: stale,
        duplicate_samples: counts.duplicates,
        out_of_order_samples: counts.out_of_order,
        out_of_bounds_samples: counts.out_of_bounds,
        samples_unencodable: 0,
    };
    // Prometheus's `bytesRead`: the body read, 0 when the fetch failed, -1 over the limit.
    let body_bytes = match (fetch, &report.error) {
        (_, Some(ScrapeError::BodySizeLimit)) => -1.0,
        (FetchOutcome::Body { body, .. }, _) => body.len() as f64,
        (FetchOutcome::Failed { .. }, _) => 0.0,
    };
    let values = [
        if up { 1.0 } else { 0.0 },
        duration.as_secs_f64(),
        report.samples_scraped as f64,
        report.samples_post_metric_relabeling as f64,
        report.series_added as f64,
        spec.timeout.as_secs_f64(),
        spec.limits.sample_limit as f64,
        body_bytes,
    ];
    let written = cache.report.len();
    for (i, v) in values.into_iter().take(written).enumerate() {
        outs.push(Out {
            series: REPORT_FLAG | i as u32,
            hist: NO_HISTOGRAM,
            ts: t0,
            value: v,
        });
    }
    (report, outs)
}

/// The append loop: one pass over the parsed samples. `Err` fails the scrape.
fn append(
    spec: &ScrapeSpec,
    cache: &mut SeriesCache,
    scratch: &mut Scratch,
    t0: i64,
    parsed: &exposition::Parsed<'_>,
    c: &mut Counts,
    outs: &mut Vec<Out>,
) -> Result<(), ScrapeError> {
    let iter = cache.iter;
    let sample_limit = spec.limits.sample_limit;
    let mut appended = 0u64;
    let mut sample_limit_hit = false;
    let mut label_error: Option<ScrapeError> = None;
    outs.reserve(parsed.samples.len() + 8);
    let key = &mut scratch.key;
    let hists = &mut scratch.hists;
    hists.clear();
    // Remote-write 2.0 carries each series' family metadata: families by name, and their
    // metadata references once needed.
    let families: Option<FamilyIndex<'_>> =
        (spec.emit.encoding == Encoding::RemoteWriteV2 && !parsed.metadata.is_empty()).then(|| {
            let mut f =
                FamilyIndex::with_capacity_and_hasher(parsed.metadata.len(), Default::default());
            for (i, m) in parsed.metadata.iter().enumerate() {
                f.entry(m.name.as_ref()).or_insert(i);
            }
            f
        });
    let mut family_meta: Vec<Option<[u32; 3]>> = vec![None; parsed.metadata.len()];
    // A family's samples come together: the last name's family is looked up once.
    let mut last_family: (&str, Option<usize>) = ("", None);
    // The values the parser normalised, as written: the series key is the text as written.
    let mut raw_values = parsed.raw_values.iter().peekable();
    for s in &parsed.samples {
        c.total += 1;
        let explicit_ts = if spec.honor_timestamps {
            s.timestamp_ms
        } else {
            None
        };
        let t = explicit_ts.unwrap_or(t0);
        let labels = parsed.labels_of(s);

        key.clear();
        key.extend_from_slice(s.name.as_bytes());
        while raw_values.next_if(|(i, _)| *i < s.labels.start).is_some() {}
        for (j, (n, v)) in labels.iter().enumerate() {
            let index = s.labels.start + j as u32;
            let written = raw_values.next_if(|(i, _)| *i == index).map(|(_, w)| w);
            key.push(0xff);
            key.extend_from_slice(n.as_bytes());
            key.push(0xfe);
            key.extend_from_slice(written.unwrap_or(v).as_bytes());
        }
        let h128 = xxh3_128(&key);
        let hash = [h128 as u64, (h128 >> 64) as u64];
        let raw = &cache.raw;
        let (raw_idx, raw_new) =
            match probe(&cache.raw_index, hash[0], |i| raw[i as usize].hash == hash) {
                Ok(i) => (i, !cache.raw[i as usize].committed),
                Err(slot) => {
                    let series = match resolve(spec, cache, &mut scratch.frag, s, labels) {
                        Ok(series) => series,
                        Err(e) => {
                            label_error = Some(e);
                            break;
                        }
                    };
                    let i = cache.raw.len() as u32;
                    cache.raw.push(RawEntry {
                        hash,
                        series,
                        seen_iter: iter,
                        committed: false,
                    });
                    cache.raw_index.insert(slot, i);
                    (i, true)
                }
            };
        let raw = &mut cache.raw[raw_idx as usize];
        raw.seen_iter = iter;
        if raw.series == DROPPED {
            continue;
        }
        let series_idx = raw.series;
        c.added += 1;
        if let Some(families) = &families {
            if last_family.0 != s.name {
                last_family = (&s.name, family_of(&s.name, families));
            }
            let meta = last_family.1.map_or([0; 3], |f| {
                *family_meta[f].get_or_insert_with(|| {
                    let m = &parsed.metadata[f];
                    [
                        encode::v2_type(m.kind),
                        m.help.as_deref().map_or(0, |h| cache.symbols.intern(h)),
                        m.unit.map_or(0, |u| cache.symbols.intern(u)),
                    ]
                })
            });
            cache.series[series_idx as usize]
                .v2
                .get_or_insert_default()
                .meta = meta;
        }
        let entry = &mut cache.series[series_idx as usize];
        if entry.seen_iter == iter {
            if t == entry.last_ts {
                c.duplicates += 1;
                continue;
            }
            if t < entry.last_ts {
                c.out_of_order += 1;
                continue;
            }
        }
        if t > t0 + AHEAD_MS_MAX {
            c.out_of_bounds += 1;
            continue;
        }
        if sample_limit > 0 && !is_stale_nan(s.value) {
            appended += 1;
            if appended > sample_limit {
                // Stop here: the rest would only be counted (module docs).
                sample_limit_hit = true;
                break;
            }
        }
        let hist = match &s.histogram {
            None => NO_HISTOGRAM,
            Some(h) => match limit_histogram(&spec.histograms, h) {
                Ok(h) => {
                    hists.push(h);
                    (hists.len() - 1) as u32
                }
                Err(e) => {
                    // Refused by the storage: not counted after relabeling (Prometheus
                    // counts a sample there once its append returned, or hit a limit).
                    if matches!(e, ScrapeError::InvalidHistogram(_)) {
                        c.added -= 1;
                    }
                    label_error = Some(e);
                    break;
                }
            },
        };
        entry.seen_iter = iter;
        entry.last_ts = t;
        entry.tracked_now |= explicit_ts.is_none() || spec.track_timestamps_staleness;
        cache.raw[raw_idx as usize].committed = true;
        if raw_new && !sample_limit_hit {
            c.series_added += 1;
        }
        outs.push(Out {
            series: series_idx,
            hist,
            ts: t,
            value: s.value,
        });
    }
    if let Some(e) = label_error {
        return Err(e);
    }
    if sample_limit_hit {
        return Err(ScrapeError::SampleLimit);
    }
    Ok(())
}

/// Remote-write v1 metadata of a successful scrape: every family's type, help and unit, into
/// `out`, when they changed since they were last sent or [`METADATA_RESEND_MS`] passed.
fn metadata_due(
    cache: &mut SeriesCache,
    out: &mut Vec<u8>,
    metadata: &[exposition::Metadata<'_>],
    t0: i64,
) {
    if metadata.is_empty() {
        return;
    }
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for m in metadata {
        h.update(m.name.as_bytes());
        h.update(&[0xff, encode::v2_type(m.kind) as u8, 0xff]);
        h.update(m.help.as_deref().unwrap_or_default().as_bytes());
        h.update(&[0xff]);
        h.update(m.unit.unwrap_or_default().as_bytes());
        h.update(&[0xfe]);
    }
    let hash = h.digest();
    if let Some((sent, at)) = cache.metadata_sent {
        if sent == hash && t0 - at < METADATA_RESEND_MS {
            return;
        }
    }
    for m in metadata {
        let help = m.help.as_deref().unwrap_or_default();
        encode::put_v1_metadata(out, m.kind, &m.name, help, m.unit.unwrap_or_default());
    }
    cache.metadata_sent = Some((hash, t0));
}

/// Metadata entries by family name (looked up, never iterated).
type FamilyIndex<'a> = HashMap<&'a str, usize, xxhash_rust::xxh3::Xxh3Builder>;

/// The family a sample named `name` belongs to: the metadata entry of that name, or of the
/// name without a suffix its type gives samples (`_total`, `_bucket`, `_count`, `_sum`,
/// `_created`, `_gcount`, `_gsum`, `_info`), as Prometheus's `isSeriesPartOfFamily`.
fn family_of(name: &str, families: &FamilyIndex<'_>) -> Option<usize> {
    if let Some(&f) = families.get(name) {
        return Some(f);
    }
    [
        "_total", "_bucket", "_count", "_sum", "_created", "_gcount", "_gsum", "_info",
    ]
    .iter()
    .find_map(|suffix| {
        name.strip_suffix(suffix)
            .and_then(|family| families.get(family).copied())
    })
}

/// A native histogram after the job's limits, in Prometheus's order: the schema capped by
/// `native_histogram_min_bucket_factor`, then lowered until `native_histogram_bucket_limit`
/// fits, then the agent storage's validation.
fn limit_histogram(spec: &HistogramSpec, h: &Histogram) -> Result<Histogram, ScrapeError> {
    let mut h = h.clone();
    if (crate::histogram::SCHEMA_MIN..=crate::histogram::SCHEMA_MAX).contains(&h.schema)
        && h.schema > spec.max_schema
    {
        h.reduce_resolution(spec.max_schema);
    }
    if spec.bucket_limit > 0 {
        h.fit_bucket_limit(spec.bucket_limit as usize)
            .map_err(|_| ScrapeError::BucketLimit)?;
    }
    h.validate().map_err(ScrapeError::InvalidHistogram)?;
    Ok(h)
}

/// The slow path for a series text not seen before: target labels, relabeling, checks.
fn resolve(
    spec: &ScrapeSpec,
    cache: &mut SeriesCache,
    frag: &mut Vec<u8>,
    s: &ParsedSample<'_>,
    labels: &[Label<'_>],
) -> Result<u32, ScrapeError> {
    let mut scraped = Labels::new();
    for (n, v) in labels {
        scraped.set(n.to_string(), v.to_string());
    }
    let repeated = (scraped.len() != labels.len())
        .then(|| repeated_label_name(labels))
        .flatten();
    scraped.set("__name__".to_string(), s.name.to_string());
    let lset = attach_target_labels(scraped, &spec.target_labels, spec.honor_labels);
    let lset = match crate::relabel::process(&spec.metric_relabel_configs, lset) {
        Some(l) if !l.is_empty() => l,
        _ => return Ok(DROPPED),
    };
    if let Some(name) = repeated {
        return Err(ScrapeError::DuplicateLabelName { name });
    }
    let name = match lset.get("__name__") {
        Some(n) => n,
        None => return Err(ScrapeError::MissingMetricName),
    };
    let scheme = spec.exposition.validation;
    if !scheme.is_valid_metric_name(name)
        || !lset.iter().all(|l| scheme.is_valid_label_name(&l.name))
    {
        return Err(ScrapeError::InvalidLabels(lset));
    }
    check_label_limits(&lset, &spec.limits)?;
    let mut lset = lset;
    add_external_labels(&mut lset, &spec.external_labels);
    Ok(cache.series_for(&lset, spec.emit.encoding, frag))
}

/// Remote write's `processExternalLabels`: each external label the series does not have.
fn add_external_labels(lset: &mut Labels, external: &Labels) {
    for l in external.iter() {
        if lset.get(&l.name).is_none() {
            lset.set(l.name.clone(), l.value.clone());
        }
    }
}

/// The first label name written twice in one sample (`labels` has a repeat).
fn repeated_label_name(labels: &[exposition::Label<'_>]) -> Option<String> {
    labels
        .iter()
        .enumerate()
        .find(|(i, (n, _))| labels[..*i].iter().any(|(m, _)| m == n))
        .map(|(_, (n, _))| n.to_string())
}

/// Where the parse of a body may stop, and the error of a body that goes on past it: the
/// memory budget's sample cap and, when no relabeling can drop samples, `sample_limit + 1`.
fn parse_stop(spec: &ScrapeSpec) -> (usize, ScrapeError) {
    let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let budget = match spec.limits.samples_max {
        0 => usize::MAX,
        n => to_usize(n),
    };
    let limit = spec.limits.sample_limit;
    if limit > 0 && spec.metric_relabel_configs.is_empty() && to_usize(limit) < budget {
        return (to_usize(limit).saturating_add(1), ScrapeError::SampleLimit);
    }
    (
        budget,
        ScrapeError::SampleBudget {
            samples: spec.limits.samples_max,
        },
    )
}

/// Merges target labels into scraped ones with Prometheus's `honor_labels` rules.
fn attach_target_labels(mut lset: Labels, target: &Labels, honor_labels: bool) -> Labels {
    if honor_labels {
        for l in target.iter() {
            if lset.get(&l.name).is_none() {
                lset.set(l.name.clone(), l.value.clone());
            }
        }
        return lset;
    }
    let mut conflicts: Vec<(String, String)> = Vec::new();
    for l in target.iter() {
        if let Some(v) = lset.get(&l.name) {
            conflicts.push((l.name.clone(), v.to_string()));
        }
        lset.set(l.name.clone(), l.value.clone());
    }
    // Shortest names first (stable), so `exported_a` is settled before `exported_exported_a`.
    conflicts.sort_by_key(|(n, _)| n.len());
    for (name, value) in conflicts {
        let mut new_name = name;
        loop {
            new_name = format!("exported_{new_name}");
            if lset.get(&new_name).is_none() {
                lset.set(new_name, value);
                break;
            }
        }
    }
    lset
}

/// Go's `%.50s`: at most 50 characters.
fn trunc50(s: &str) -> &str {
    match s.char_indices().nth(50) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Checks the label limits, with Prometheus's error texts.
fn check_label_limits(lset: &Labels, limits: &Limits) -> Result<(), ScrapeError> {
    let metric = || trunc50(lset.get("__name__").unwrap_or("")).to_string();
    if limits.label_limit > 0 && lset.len() as u64 > limits.label_limit {
        return Err(ScrapeError::LabelLimit {
            metric: metric(),
            labels: lset.len(),
            limit: limits.label_limit,
        });
    }
    for l in lset.iter() {
        if limits.label_name_length_limit > 0
            && l.name.len() as u64 > limits.label_name_length_limit
        {
            return Err(ScrapeError::LabelNameLengthLimit {
                metric: metric(),
                name: trunc50(&l.name).to_string(),
                length: l.name.len(),
                limit: limits.label_name_length_limit,
            });
        }
        if limits.label_value_length_limit > 0
            && l.value.len() as u64 > limits.label_value_length_limit
        {
            return Err(ScrapeError::LabelValueLengthLimit {
                metric: metric(),
                name: trunc50(&l.name).to_string(),
                value: trunc50(&l.value).to_string(),
                length: l.value.len(),
                limit: limits.label_value_length_limit,
            });
        }
    }
    Ok(())
}

/// Encodes the output of [`run`] from the cached label blocks.
fn encode_outs(
    emit: &EmitSpec,
    cache: &mut SeriesCache,
    scratch: &mut Scratch,
    outs: &[Out],
) -> Vec<Record> {
    let v2 = emit.encoding == Encoding::RemoteWriteV2;
    if v2 {
        for o in outs {
            cache.ensure_refs(o.series);
        }
    }
    if emit.encoding == Encoding::Json {
        let mut json = encode::JsonScratch::default();
        return outs
            .iter()
            .filter_map(|o| {
                let value = match scratch.hists.get(o.hist as usize) {
                    Some(h) => encode::JsonValue::Histogram(h),
                    None => encode::JsonValue::Float(o.value),
                };
                encode::json_record(emit, &cache.entry(o.series).frag, o.ts, value, &mut json)
            })
            .collect();
    }
    let mut points = std::mem::take(&mut scratch.points);
    points.clear();
    let mut bufs = std::mem::take(&mut scratch.rw);
    // Reuses the kept (empty) group list's allocation for this scrape's borrows: collecting
    // an empty `Vec` of the same layout in place allocates nothing.
    let mut groups: Vec<Group<'_>> = std::mem::take(&mut scratch.groups)
        .into_iter()
        .map(|_| unreachable!("kept empty"))
        .collect();
    let records = {
        let cache = &*cache;
        let mut hists: Vec<encode::HistogramPoint<'_>> = Vec::new();
        let mut prev = u32::MAX - 1;
        for o in outs {
            if o.series != prev {
                let entry = cache.entry(o.series);
                groups.push(Group {
                    labels_pb: &entry.frag,
                    refs: entry.v2.as_ref().map_or(&[][..], |v| &v.refs),
                    meta: entry.v2.as_ref().map_or([0; 3], |v| v.meta),
                    points: points.len()..points.len(),
                    hists: hists.len()..hists.len(),
                });
                prev = o.series;
            }
            let group = groups.last_mut().expect("a group for every output");
            match scratch.hists.get(o.hist as usize) {
                Some(h) => {
                    hists.push((o.ts, h));
                    group.hists.end = hists.len();
                }
                None => {
                    points.push((o.ts, o.value));
                    group.points.end = points.len();
                }
            }
        }
        let symbols = v2.then_some(&cache.symbols);
        let metadata = &scratch.metadata;
        encode::remote_write_records(emit, symbols, metadata, &groups, &points, &hists, &mut bufs)
    };
    groups.clear();
    scratch.groups = groups
        .into_iter()
        .map(|_| unreachable!("cleared"))
        .collect();
    scratch.points = points;
    scratch.rw = bufs;
    records
}

#[cfg(test)]
mod tests;
