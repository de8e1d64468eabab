//! Exposition formats: the Prometheus text format 0.0.4 and OpenMetrics 1.0 text.
//!
//! `parse` is the fuzz-friendly entry point: bytes in, samples or an
//! error with line and column out. Parsing borrows from the body and allocates only for
//! escaped label values.

use std::borrow::Cow;
use std::ops::Range;

mod lexer;
mod openmetrics;
mod prometheus;

/// Which text format a body is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    #[default]
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The format of a response, from its Content-Type, as Prometheus 2.42 chooses it.
    ///
    /// Like `textparse.New`: the media type (case-insensitive, parameters after `;`) picks
    /// OpenMetrics only when it is `application/openmetrics-text`; a missing header, any
    /// other type, and a header Go's `mime.ParseMediaType` would refuse (bad media type or
    /// malformed/duplicate parameters) all fall back to the Prometheus text format.
    pub fn from_content_type(content_type: Option<&str>) -> Format {
        match content_type.and_then(media_type) {
            Some(mt) if mt.eq_ignore_ascii_case("application/openmetrics-text") => {
                Format::OpenMetrics
            }
            _ => Format::Prometheus,
        }
    }
}

/// The media type of a Content-Type value, or `None` where Go's `mime.ParseMediaType` fails.
fn media_type(value: &str) -> Option<&str> {
    fn is_token(c: u8) -> bool {
        c > b' ' && c < 0x7f && !b"()<>@,;:\\\"/[]?=".contains(&c)
    }
    fn token(s: &[u8], mut i: usize) -> usize {
        while i < s.len() && is_token(s[i]) {
            i += 1;
        }
        i
    }
    fn skip_space(s: &[u8], mut i: usize) -> usize {
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    }
    let (base, mut rest) = value
        .split_once(';')
        .map_or((value, ""), |(b, _)| (b, &value[b.len()..]));
    let mt = base.trim();
    // `type` or `type/subtype`, each a non-empty token.
    let valid = |t: &str| !t.is_empty() && t.bytes().all(is_token);
    match mt.split_once('/') {
        Some((t, sub)) if valid(t) && valid(sub) => {}
        None if valid(mt) => {}
        _ => return None,
    }
    let mut names: Vec<String> = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Some(mt);
        }
        let s = rest.as_bytes();
        // `; name = value`, value a token or a quoted string.
        if s[0] != b';' {
            return None;
        }
        let mut i = skip_space(s, 1);
        let key_end = token(s, i);
        if key_end == i {
            // A trailing `;` is ignored; anything else is an error.
            return if rest[1..].trim().is_empty() {
                Some(mt)
            } else {
                None
            };
        }
        let key = rest[i..key_end].to_ascii_lowercase();
        i = skip_space(s, key_end);
        if i >= s.len() || s[i] != b'=' {
            return None;
        }
        i = skip_space(s, i + 1);
        if i < s.len() && s[i] == b'"' {
            i += 1;
            loop {
                match s.get(i) {
                    None => return None,
                    Some(b'"') => break,
                    Some(b'\\') => i += 2,
                    Some(_) => i += 1,
                }
            }
            i += 1;
        } else {
            let end = token(s, i);
            if end == i {
                return None;
            }
            i = end;
        }
        if names.contains(&key) {
            return None;
        }
        names.push(key);
        rest = &rest[i.min(rest.len())..];
    }
}

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
    /// The family name as written in the metadata line.
    pub name: &'a str,
    /// Its type, if a `# TYPE` line gave one.
    pub kind: Option<MetricType>,
    /// Its help text, unescaped, if a `# HELP` line gave one.
    pub help: Option<Cow<'a, str>>,
    /// Its unit, if a `# UNIT` line gave one (OpenMetrics).
    pub unit: Option<&'a str>,
}

impl<'a> Metadata<'a> {
    fn new(name: &'a str) -> Metadata<'a> {
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
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            keep_exemplars: true,
            samples_max: usize::MAX,
        }
    }
}

/// An exemplar attached to a sample (OpenMetrics).
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar<'a> {
    /// The exemplar's labels.
    pub labels: Vec<(&'a str, Cow<'a, str>)>,
    /// Its value.
    pub value: f64,
    /// Its timestamp in milliseconds, if given.
    pub timestamp_ms: Option<i64>,
}

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedSample<'a> {
    /// The metric name as written (`foo_total`, `foo_bucket`, ...).
    pub name: &'a str,
    /// Where this sample's labels are in [`Parsed::labels`].
    pub labels: Range<u32>,
    /// The value.
    pub value: f64,
    /// The timestamp in milliseconds, if the line gives one.
    pub timestamp_ms: Option<i64>,
    /// The exemplar, if any (OpenMetrics).
    pub exemplar: Option<Exemplar<'a>>,
}

/// A parsed body: its samples, and all their labels back to back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed<'a> {
    /// Samples in the order of the body.
    pub samples: Vec<ParsedSample<'a>>,
    /// Labels of all samples; each sample's `labels` range points into this.
    pub labels: Vec<(&'a str, Cow<'a, str>)>,
    /// Metadata of the families, in the order their first metadata line appears.
    pub metadata: Vec<Metadata<'a>>,
    /// The parse stopped at [`ParseOptions::samples_max`] with a sample line still to
    /// read: the rest of the body was neither parsed nor checked.
    pub truncated: bool,
}

impl<'a> Parsed<'a> {
    /// The labels of `sample`, in the order written (`__name__` not included).
    pub fn labels_of(&self, sample: &ParsedSample<'a>) -> &[(&'a str, Cow<'a, str>)] {
        &self.labels[sample.labels.start as usize..sample.labels.end as usize]
    }
}

/// Why a body could not be parsed, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in bytes).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses `body` in `format`, keeping exemplars.
pub fn parse(body: &[u8], format: Format) -> Result<Parsed<'_>, ParseError> {
    parse_with(body, format, &ParseOptions::default())
}

/// Parses `body` in `format` with `options`.
///
/// The text format is read as Prometheus 2.42's `textparse.PromParser` reads it. OpenMetrics
/// is read strictly, with the semantic rules of the OpenMetrics 1.0 specification
/// (grouping, histogram buckets, counter values, metadata placement, exemplar limits).
pub fn parse_with<'a>(
    body: &'a [u8],
    format: Format,
    options: &ParseOptions,
) -> Result<Parsed<'a>, ParseError> {
    let mut out = Parsed::default();
    let result = match format {
        Format::Prometheus => prometheus::parse(body, options, &mut out),
        Format::OpenMetrics => openmetrics::parse(body, options, &mut out),
    };
    match result {
        Ok(()) => Ok(out),
        Err(fail) => {
            let (line, column) = lexer::line_column(body, fail.at);
            Err(ParseError {
                line,
                column,
                message: fail.message.into_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests;
