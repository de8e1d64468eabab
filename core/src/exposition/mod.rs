//! Exposition formats: the Prometheus text format (0.0.4 and 1.0.0) and OpenMetrics 1.0
//! text, with the quoted UTF-8 metric and label names of both grammars
//! (`{"my.metric", "my.label"="v"}`), and the Prometheus protobuf format (delimited
//! `MetricFamily` messages). Which one a response is in comes from its Content-Type
//! ([`crate::protocol::format_for`]).
//!
//! `parse` is the fuzz-friendly entry point: bytes in, samples or an error with its
//! position out (line and column in text, the byte offset in protobuf). Parsing borrows
//! from the body and allocates only for escaped label values and escaped quoted names, and
//! in protobuf for the suffixed names and magic labels (`_bucket`, `le`) of summaries and
//! histograms.

use std::borrow::Cow;
use std::ops::Range;

mod lexer;
mod normalize;
mod openmetrics;
mod prometheus;
mod protobuf;

/// Which exposition format a body is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// Prometheus text format 0.0.4 and 1.0.0 (`text/plain`).
    #[default]
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// The Prometheus protobuf format, delimited (`application/vnd.google.protobuf`).
    Protobuf,
}

/// A label as parsed: its name and its value, each borrowed from the body unless it had
/// escapes.
pub type Label<'a> = (Cow<'a, str>, Cow<'a, str>);

/// The type of a metric family, from its `# TYPE` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`.
    Histogram,
    /// `gaugehistogram` (OpenMetrics).
    GaugeHistogram,
    /// `summary`.
    Summary,
    /// `info` (OpenMetrics).
    Info,
    /// `stateset` (OpenMetrics).
    StateSet,
    /// `unknown` (OpenMetrics) or `untyped` (text format).
    Unknown,
}

/// What the comment lines say about one metric family.
#[derive(Clone, Debug, PartialEq)]
pub struct Metadata<'a> {
    /// The family name in the metadata line (unquoted and unescaped when written quoted).
    pub name: Cow<'a, str>,
    /// Its type, if a `# TYPE` line gave one.
    pub kind: Option<MetricType>,
    /// Its help text, unescaped, if a `# HELP` line gave one.
    pub help: Option<Cow<'a, str>>,
    /// Its unit, if a `# UNIT` line gave one (OpenMetrics).
    pub unit: Option<&'a str>,
}

impl<'a> Metadata<'a> {
    fn new(name: Cow<'a, str>) -> Metadata<'a> {
        Metadata {
            name,
            kind: None,
            help: None,
            unit: None,
        }
    }
}

/// How to parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseOptions {
    /// Keep exemplars in [`ParsedSample::exemplar`]; when false they are still checked
    /// but dropped, saving their allocation.
    pub keep_exemplars: bool,
    /// Most samples to build: the parse stops before the next sample line once this many
    /// are parsed and sets [`Parsed::truncated`] (a scrape that would fail at a limit
    /// anyway need not hold the rest of the body's samples in memory).
    pub samples_max: usize,
    /// Read native histograms (protobuf) as [`ParsedSample::histogram`]s, as Prometheus does
    /// with `scrape_native_histograms: true`; when false, a native histogram gives its
    /// classic series.
    pub native_histograms: bool,
    /// With `native_histograms`, also give the classic series of a histogram that has
    /// classic buckets besides its native ones (`always_scrape_classic_histograms`).
    pub keep_classic_histograms: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            keep_exemplars: true,
            samples_max: usize::MAX,
            native_histograms: false,
            keep_classic_histograms: false,
        }
    }
}

/// An exemplar attached to a sample (OpenMetrics).
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar<'a> {
    /// The exemplar's labels.
    pub labels: Vec<Label<'a>>,
    /// Its value.
    pub value: f64,
    /// Its timestamp in milliseconds, if given.
    pub timestamp_ms: Option<i64>,
}

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedSample<'a> {
    /// The metric name (`foo_total`, `foo_bucket`, ...; unquoted and unescaped when written
    /// quoted, `{"my.metric"}`).
    pub name: Cow<'a, str>,
    /// Where this sample's labels are in [`Parsed::labels`].
    pub labels: Range<u32>,
    /// The value.
    pub value: f64,
    /// The timestamp in milliseconds, if the line gives one.
    pub timestamp_ms: Option<i64>,
    /// The exemplar, if any (OpenMetrics).
    pub exemplar: Option<Exemplar<'a>>,
    /// A native histogram sample (protobuf with [`ParseOptions::native_histograms`]): its
    /// value, compacted; `value` is then 0 and unused.
    pub histogram: Option<Box<crate::histogram::Histogram>>,
}

/// A parsed body: its samples, and all their labels back to back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed<'a> {
    /// Samples in the order of the body.
    pub samples: Vec<ParsedSample<'a>>,
    /// Labels of all samples; each sample's `labels` range points into this.
    pub labels: Vec<Label<'a>>,
    /// Metadata of the families, in the order their first metadata line appears.
    pub metadata: Vec<Metadata<'a>>,
    /// The parse stopped at [`ParseOptions::samples_max`] with a sample line still to
    /// read: the rest of the body was neither parsed nor checked.
    pub truncated: bool,
    /// The `le` and `quantile` values the parser normalised, as written: (index in
    /// [`Parsed::labels`], value), in body order. A series is known by its text as written
    /// (Prometheus's scrape cache keys on it), its labels by the normalised values.
    pub raw_values: Vec<(u32, Cow<'a, str>)>,
}

impl<'a> Parsed<'a> {
    /// The labels of `sample`, in the order written (`__name__` not included).
    pub fn labels_of(&self, sample: &ParsedSample<'a>) -> &[Label<'a>] {
        &self.labels[sample.labels.start as usize..sample.labels.end as usize]
    }
}

/// Why a body could not be parsed, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct ParseError {
    /// Where the problem is.
    pub at: Position,
    /// What is wrong.
    pub message: String,
}

/// A place in a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// In a text body: 1-based line and 1-based column (in bytes); shown `line:column`.
    Text {
        /// The line.
        line: usize,
        /// The column.
        column: usize,
    },
    /// In a protobuf body, which has no lines: the 0-based byte offset; shown `byte N`.
    Byte(usize),
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Text { line, column } => write!(f, "{line}:{column}"),
            Position::Byte(offset) => write!(f, "byte {offset}"),
        }
    }
}

impl ParseError {
    /// The line of an error in a text body.
    pub fn line(&self) -> Option<usize> {
        match self.at {
            Position::Text { line, .. } => Some(line),
            Position::Byte(_) => None,
        }
    }
}

/// Parses `body` in `format`, keeping exemplars.
pub fn parse(body: &[u8], format: Format) -> Result<Parsed<'_>, ParseError> {
    parse_with(body, format, &ParseOptions::default())
}

/// Parses `body` in `format` with `options`.
///
/// The text format is read as Prometheus 3.16's `textparse.PromParser` reads it. OpenMetrics
/// is read strictly, with the semantic rules of the OpenMetrics 1.0 specification
/// (grouping, histogram buckets, counter values, metadata placement, exemplar limits).
/// Protobuf is read into the samples Prometheus 3.16's `textparse.ProtobufParser` gives a
/// scrape without native histograms (see `protobuf.rs`).
pub fn parse_with<'a>(
    body: &'a [u8],
    format: Format,
    options: &ParseOptions,
) -> Result<Parsed<'a>, ParseError> {
    let mut out = Parsed::default();
    let result = match format {
        Format::Prometheus => prometheus::parse(body, options, &mut out),
        Format::OpenMetrics => openmetrics::parse(body, options, &mut out),
        Format::Protobuf => protobuf::parse(body, options, &mut out),
    };
    match result {
        Ok(()) => Ok(out),
        Err(fail) => {
            let at = match format {
                Format::Protobuf => Position::Byte(fail.at),
                Format::Prometheus | Format::OpenMetrics => {
                    let (line, column) = lexer::line_column(body, fail.at);
                    Position::Text { line, column }
                }
            };
            Err(ParseError {
                at,
                message: fail.message.into_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests;
