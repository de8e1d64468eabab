//! OpenMetrics 1.0 text, read strictly: the syntax of the specification's ABNF and the
//! semantic rules its conformance suite checks.
//!
//! Syntax: single spaces between tokens, no blank lines, no comments other than
//! `# HELP`, `# TYPE`, `# UNIT`, and a final `# EOF` (optionally followed by one newline)
//! with nothing after it. Timestamps are seconds, possibly fractional or negative; they are
//! converted to milliseconds as Prometheus does (`int64(seconds * 1000)`).
//!
//! Semantics (checked by [`Validator`]): metadata before the family's samples and never
//! repeated; a family's samples contiguous and each metric's samples together; names no
//! family may reuse; per-type sample names, labels and values (counters, histogram buckets,
//! summary quantiles, info and stateset values); exemplars only where allowed and at most
//! 128 code points of labels; a repeated series only with non-decreasing timestamps.
//! Then `le` and `quantile` values are normalised as Prometheus 3 does ([`normalize`]).
//!
//! Quoted names, as Prometheus 3.16 reads them: a metadata line's name may be quoted
//! (`# TYPE "my.metric" gauge`), a label name may be quoted (`"my.label"="v"`, in exemplars
//! too), and a quoted string alone between a sample's braces, followed by `,` or `}`, is
//! its metric name (`{"my.metric",job="x"}`), given at most once and then with no name
//! before the brace.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use super::lexer::{
    ascii, parse_float, scan_label_value, scan_name, scan_quoted_name, unescape_help, Fail,
    NumberError, Scan, LABEL_CHAR, LABEL_START, METRIC_CHAR, METRIC_START, NORMAL_NAN_BITS,
};
use super::prometheus::shown_byte;
use super::{normalize, Exemplar, Label, Metadata, MetricType, ParseOptions, Parsed, ParsedSample};

/// The most code points an exemplar's label names and values may have together.
const EXEMPLAR_RUNES_MAX: usize = 128;

/// Parses a whole body into `out`.
pub(super) fn parse<'a>(body: &'a [u8], options: &ParseOptions, out: &mut Parsed<'a>) -> Scan<()> {
    let n = body.len();
    let mut validator = Validator::default();
    let mut scratch: Vec<Label<'a>> = Vec::new();
    // The type of the last `# TYPE` line, whatever family it named (Prometheus's parser
    // state): it decides the `le`/`quantile` normalisation ([`normalize`]).
    let mut last_type = None;
    let mut i = 0;
    loop {
        if i >= n {
            return Err(Fail::new(n, "data does not end with # EOF"));
        }
        match body[i] {
            b'#' if body[i..].starts_with(b"# EOF") => {
                let after = i + 5;
                if after == n || (body[after] == b'\n' && after + 1 == n) {
                    validator.close_family(out)?;
                    return Ok(());
                }
                return Err(Fail::new(after, "nothing may follow \"# EOF\""));
            }
            b'#' => {
                let is_type = body[i..].starts_with(b"# TYPE ");
                i = metadata(body, i, out, &mut validator)?;
                if is_type {
                    last_type = out.metadata.last().and_then(|m| m.kind);
                }
            }
            b'\n' => return Err(Fail::new(i, "blank line")),
            _ if out.samples.len() >= options.samples_max => {
                out.truncated = true;
                return Ok(());
            }
            _ => {
                i = sample(body, i, options, out, &mut validator, &mut scratch)?;
                // After the checks, which read the values as written.
                if let (Some(MetricType::Histogram | MetricType::Summary), Some(s)) =
                    (last_type, out.samples.last())
                {
                    let range = s.labels.start as usize..s.labels.end as usize;
                    normalize::normalize_sample(last_type, out, range);
                }
            }
        }
    }
}

/// The end of the line starting at or before `i`: the offset of its newline, or the body's end.
fn end_of_line(body: &[u8], i: usize) -> usize {
    memchr::memchr(b'\n', &body[i..]).map_or(body.len(), |p| i + p)
}

/// Which metadata line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Meta {
    Help,
    Type,
    Unit,
}

/// Reads `# HELP|TYPE|UNIT name text`; returns the offset after its newline.
fn metadata<'a>(
    body: &'a [u8],
    start: usize,
    out: &mut Parsed<'a>,
    v: &mut Validator<'a>,
) -> Scan<usize> {
    let eol = end_of_line(body, start);
    let line = &body[start..eol];
    let kind = if line.starts_with(b"# HELP ") {
        Meta::Help
    } else if line.starts_with(b"# TYPE ") {
        Meta::Type
    } else if line.starts_with(b"# UNIT ") {
        Meta::Unit
    } else {
        return Err(Fail::new(start, "expected \"# HELP\", \"# TYPE\", \"# UNIT\" or \"# EOF\" (other comments are not allowed)"));
    };
    let name_start = start + 7;
    let (name, name_end) = if body.get(name_start) == Some(&b'"') {
        scan_quoted_name(body, None, name_start + 1)?
    } else {
        let name_end = scan_name(body, name_start, &METRIC_START, &METRIC_CHAR);
        if name_end == name_start {
            return Err(Fail::new(name_start, "expected a metric name"));
        }
        (Cow::Borrowed(ascii(&body[name_start..name_end])), name_end)
    };
    // A quoted name may hold a raw newline: the line then ends after it.
    let eol = if name_end > eol {
        end_of_line(body, name_end)
    } else {
        eol
    };
    if name_end >= eol || body[name_end] != b' ' {
        return Err(Fail::new(
            name_end,
            format!(
                "expected a space after the metric name, got {}",
                shown_byte(body, name_end)
            ),
        ));
    }
    let text_start = name_end + 1;
    let text = &body[text_start..eol];
    v.on_metadata(kind, name, start, out)?;
    let entry = out
        .metadata
        .last_mut()
        .expect("on_metadata opened an entry");
    match kind {
        Meta::Help => entry.help = Some(unescape_help(text, None, text_start, true)?),
        Meta::Type => {
            let kind = match text {
                b"counter" => MetricType::Counter,
                b"gauge" => MetricType::Gauge,
                b"histogram" => MetricType::Histogram,
                b"gaugehistogram" => MetricType::GaugeHistogram,
                b"summary" => MetricType::Summary,
                b"info" => MetricType::Info,
                b"stateset" => MetricType::StateSet,
                b"unknown" => MetricType::Unknown,
                _ => {
                    let shown = String::from_utf8_lossy(text);
                    return Err(Fail::new(
                        text_start,
                        format!("invalid metric type {shown:?}"),
                    ));
                }
            };
            entry.kind = Some(kind);
            v.set_type(kind, start)?;
        }
        Meta::Unit => {
            if let Some(p) = text.iter().position(|&c| !METRIC_CHAR[c as usize]) {
                return Err(Fail::new(
                    text_start + p,
                    format!(
                        "invalid character {} in unit",
                        shown_byte(body, text_start + p)
                    ),
                ));
            }
            let unit = ascii(text);
            entry.unit = Some(unit);
            v.set_unit(unit, start)?;
        }
    }
    Ok((eol + 1).min(body.len()))
}

/// Reads a value or timestamp token at `i` (up to a space or newline); returns its end.
fn token_end(body: &[u8], mut i: usize) -> usize {
    while i < body.len() && body[i] != b' ' && body[i] != b'\n' {
        i += 1;
    }
    i
}

fn number(body: &[u8], start: usize, end: usize, what: &str) -> Scan<f64> {
    if start == end {
        return Err(Fail::new(
            start,
            format!("expected {what}, got {}", shown_byte(body, start)),
        ));
    }
    match parse_float(&body[start..end]) {
        Ok(v) if v.is_nan() => Ok(f64::from_bits(NORMAL_NAN_BITS)),
        Ok(v) => Ok(v),
        Err(NumberError::Range) => Err(Fail::new(start, format!("{what} out of range"))),
        Err(NumberError::Syntax) => {
            let shown = String::from_utf8_lossy(&body[start..end]);
            Err(Fail::new(start, format!("invalid {what} {shown:?}")))
        }
    }
}

/// A timestamp in seconds at `start..end`, as milliseconds.
fn timestamp(body: &[u8], start: usize, end: usize) -> Scan<i64> {
    let seconds = number(body, start, end, "timestamp")?;
    if !seconds.is_finite() {
        return Err(Fail::new(start, "timestamp must be a finite number"));
    }
    // As Prometheus converts it: truncation towards zero, saturating.
    Ok((seconds * 1000.0) as i64)
}

/// How a label list may give the metric name.
enum NameSlot<'s, 'a> {
    /// Not at all (exemplars).
    Refused,
    /// Already given before the brace.
    Given,
    /// Possibly, as a quoted string followed by `,` or `}`.
    Open(&'s mut Option<Cow<'a, str>>),
}

/// Reads strict labels after `{` into `sink`; returns the offset after `}`.
fn labels<'a>(
    body: &'a [u8],
    mut i: usize,
    sink: &mut Vec<Label<'a>>,
    first: usize,
    mut slot: NameSlot<'_, 'a>,
) -> Scan<usize> {
    let n = body.len();
    if i < n && body[i] == b'}' {
        return Ok(i + 1);
    }
    loop {
        let at = i;
        let name_end = scan_name(body, i, &LABEL_START, &LABEL_CHAR);
        let name = if name_end > i {
            i = name_end;
            Cow::Borrowed(ascii(&body[at..name_end]))
        } else if i < n && body[i] == b'"' {
            let (quoted, end) = scan_quoted_name(body, None, i + 1)?;
            i = end;
            if matches!(body.get(i), Some(b',' | b'}')) {
                match &mut slot {
                    NameSlot::Refused => {
                        return Err(Fail::new(
                            at,
                            "expected a label name, not a metric name, in an exemplar",
                        ))
                    }
                    NameSlot::Given => return Err(Fail::new(at, "metric name already set")),
                    NameSlot::Open(name) if name.is_some() => {
                        return Err(Fail::new(at, "metric name already set"))
                    }
                    NameSlot::Open(name) => **name = Some(quoted),
                }
                if body[i] == b'}' {
                    return Ok(i + 1);
                }
                if !next_is_label(body, i + 1) {
                    return Err(Fail::new(
                        i,
                        format!(
                            "expected a label after ',', got {}",
                            shown_byte(body, i + 1)
                        ),
                    ));
                }
                i += 1;
                continue;
            }
            quoted
        } else {
            return Err(Fail::new(
                i,
                format!("expected label name, got {}", shown_byte(body, i)),
            ));
        };
        if sink[first..].iter().any(|(l, _)| *l == name) {
            return Err(Fail::new(at, format!("duplicate label name {name:?}")));
        }
        if i >= n || body[i] != b'=' {
            return Err(Fail::new(
                i,
                format!("expected '=' after label name, got {}", shown_byte(body, i)),
            ));
        }
        i += 1;
        if i >= n || body[i] != b'"' {
            return Err(Fail::new(
                i,
                format!("expected quoted label value, got {}", shown_byte(body, i)),
            ));
        }
        let (value, end) = scan_label_value(body, None, i + 1, false)?;
        sink.push((name, value));
        i = end;
        match body.get(i) {
            Some(b'}') => return Ok(i + 1),
            Some(b',') if next_is_label(body, i + 1) => i += 1,
            _ => {
                return Err(Fail::new(
                    i,
                    format!(
                        "expected ',' and a label or '}}', got {}",
                        shown_byte(body, i)
                    ),
                ))
            }
        }
    }
}

/// Whether a label (a bare or quoted name) starts at `i`.
fn next_is_label(body: &[u8], i: usize) -> bool {
    body.get(i)
        .is_some_and(|&c| LABEL_START[c as usize] || c == b'"')
}

/// Reads a sample line; returns the offset after its newline.
fn sample<'a>(
    body: &'a [u8],
    start: usize,
    options: &ParseOptions,
    out: &mut Parsed<'a>,
    v: &mut Validator<'a>,
    scratch: &mut Vec<Label<'a>>,
) -> Scan<usize> {
    let n = body.len();
    let name_end = scan_name(body, start, &METRIC_START, &METRIC_CHAR);
    let labels_start = out.labels.len();
    let (name, mut i) = if name_end > start {
        let name = Cow::Borrowed(ascii(&body[start..name_end]));
        let mut i = name_end;
        if i < n && body[i] == b'{' {
            i = labels(body, i + 1, &mut out.labels, labels_start, NameSlot::Given)?;
        }
        (name, i)
    } else if body[start] == b'{' {
        // No name before the brace: it must be quoted inside.
        let mut name = None;
        let i = labels(
            body,
            start + 1,
            &mut out.labels,
            labels_start,
            NameSlot::Open(&mut name),
        )?;
        let Some(name) = name else {
            return Err(Fail::new(
                start,
                "metric name not set (no name before or inside the braces)",
            ));
        };
        (name, i)
    } else {
        return Err(Fail::new(
            start,
            format!(
                "expected a metric name or \"#\", got {}",
                shown_byte(body, start)
            ),
        ));
    };
    if i >= n || body[i] != b' ' {
        return Err(Fail::new(
            i,
            format!("expected a space and a value, got {}", shown_byte(body, i)),
        ));
    }
    i += 1;
    let value_end = token_end(body, i);
    let value = number(body, i, value_end, "value")?;
    i = value_end;
    let mut timestamp_ms = None;
    let mut exemplar = None;
    let mut has_exemplar = false;
    if i < n && body[i] == b' ' {
        i += 1;
        if i < n && body[i] != b'#' {
            let ts_end = token_end(body, i);
            timestamp_ms = Some(timestamp(body, i, ts_end)?);
            i = ts_end;
            if i < n && body[i] == b' ' {
                i += 1;
                if i >= n || body[i] != b'#' {
                    return Err(Fail::new(
                        i,
                        format!(
                            "expected \"# \" and an exemplar, got {}",
                            shown_byte(body, i)
                        ),
                    ));
                }
            }
        }
        if i < n && body[i] == b'#' {
            has_exemplar = true;
            let (ex, end) = parse_exemplar(body, i, scratch)?;
            if options.keep_exemplars {
                exemplar = Some(ex);
            }
            i = end;
        }
    }
    if i >= n {
        return Err(Fail::new(i, "data does not end with # EOF"));
    }
    if body[i] != b'\n' {
        return Err(Fail::new(
            i,
            format!("expected end of line, got {}", shown_byte(body, i)),
        ));
    }
    out.samples.push(ParsedSample {
        name,
        labels: labels_start as u32..out.labels.len() as u32,
        value,
        timestamp_ms,
        exemplar,
        histogram: None,
    });
    v.on_sample(out, start, has_exemplar)?;
    Ok(i + 1)
}

/// Reads ` # {labels} value [timestamp]` starting at `#`; returns it and the end offset.
fn parse_exemplar<'a>(
    body: &'a [u8],
    start: usize,
    scratch: &mut Vec<Label<'a>>,
) -> Scan<(Exemplar<'a>, usize)> {
    let n = body.len();
    if !body[start..].starts_with(b"# {") {
        return Err(Fail::new(start, "expected \"# {\" to start an exemplar"));
    }
    scratch.clear();
    let mut i = labels(body, start + 3, scratch, 0, NameSlot::Refused)?;
    let runes: usize = scratch
        .iter()
        .map(|(k, v)| k.chars().count() + v.chars().count())
        .sum();
    if runes > EXEMPLAR_RUNES_MAX {
        return Err(Fail::new(
            start,
            format!("exemplar labels have {runes} code points, more than {EXEMPLAR_RUNES_MAX}"),
        ));
    }
    if i >= n || body[i] != b' ' {
        return Err(Fail::new(
            i,
            format!(
                "expected a space and the exemplar value, got {}",
                shown_byte(body, i)
            ),
        ));
    }
    i += 1;
    let value_end = token_end(body, i);
    let value = number(body, i, value_end, "exemplar value")?;
    i = value_end;
    let mut timestamp_ms = None;
    if i < n && body[i] == b' ' {
        let ts_end = token_end(body, i + 1);
        timestamp_ms = Some(timestamp(body, i + 1, ts_end)?);
        i = ts_end;
    }
    Ok((
        Exemplar {
            labels: scratch.clone(),
            value,
            timestamp_ms,
        },
        i,
    ))
}

/// One metric family being read.
#[derive(Debug)]
struct Family<'a> {
    name: Cow<'a, str>,
    kind: MetricType,
    typed: bool,
    helped: bool,
    unit: Option<&'a str>,
    has_samples: bool,
    /// Body offset of the family's first line, for errors about the family as a whole.
    start: usize,
}

impl Family<'_> {
    /// The suffixes a sample name may add to the family name, by type.
    fn suffixes(&self) -> &'static [&'static str] {
        match self.kind {
            MetricType::Counter => &["_total", "_created"],
            MetricType::Histogram => &["_bucket", "_count", "_sum", "_created"],
            MetricType::GaugeHistogram => &["_bucket", "_gcount", "_gsum"],
            MetricType::Summary => &["", "_count", "_sum", "_created"],
            MetricType::Info => &["_info"],
            MetricType::Gauge | MetricType::StateSet | MetricType::Unknown => &[""],
        }
    }

    /// The suffix `sample_name` adds to this family's name, if it belongs to the family.
    fn suffix_of<'s>(&self, sample_name: &'s str) -> Option<&'s str> {
        let rest = sample_name.strip_prefix(&*self.name)?;
        self.suffixes().contains(&rest).then_some(rest)
    }
}

/// The state of one metric point (the samples of one label set) of a family.
#[derive(Debug, Default)]
struct Point {
    /// The first sample of the group.
    first: usize,
    /// Body offset of that sample's line.
    start: usize,
    buckets: u32,
    last_le: f64,
    last_bucket: f64,
    inf_bucket: Option<f64>,
    negative_bucket: bool,
    after_buckets: bool,
    sum: Option<f64>,
    count: Option<f64>,
    total: bool,
}

/// Checks the semantic rules of OpenMetrics as samples and metadata arrive.
#[derive(Debug, Default)]
struct Validator<'a> {
    family: Option<Family<'a>>,
    /// Names claimed by finished families (their names and every sample name they may use).
    used: HashSet<String>,
    /// Metric points already finished in the current family: hash of the label set →
    /// first sample of each such point (to confirm a hash match).
    done: HashMap<u64, Vec<usize>>,
    point: Option<Point>,
}

/// The label that tells the samples of one point apart, for a sample of `kind` with `suffix`.
fn special_label<'f>(kind: MetricType, suffix: &str, family: &'f str) -> Option<&'f str> {
    match (kind, suffix) {
        (MetricType::Histogram | MetricType::GaugeHistogram, "_bucket") => Some("le"),
        (MetricType::Summary, "") => Some("quantile"),
        (MetricType::StateSet, _) => Some(family),
        _ => None,
    }
}

/// Whether two label lists are the same set, ignoring the label `skip_a` in `a` and `skip_b` in `b`.
fn same_labels(
    a: &[Label<'_>],
    skip_a: Option<&str>,
    b: &[Label<'_>],
    skip_b: Option<&str>,
) -> bool {
    let a_len = a.iter().filter(|(k, _)| Some(&**k) != skip_a).count();
    let b_len = b.iter().filter(|(k, _)| Some(&**k) != skip_b).count();
    a_len == b_len
        && a.iter()
            .filter(|(k, _)| Some(&**k) != skip_a)
            .all(|(k, v)| b.iter().any(|(bk, bv)| bk == k && bv == v))
}

/// An order-independent hash of a label list without `skip`.
fn labels_hash(labels: &[Label<'_>], skip: Option<&str>) -> u64 {
    labels
        .iter()
        .filter(|(k, _)| Some(&**k) != skip)
        .fold(0u64, |acc, (k, v)| {
            let h = xxhash_rust::xxh3::xxh3_64_with_seed(
                v.as_bytes(),
                xxhash_rust::xxh3::xxh3_64(k.as_bytes()),
            );
            acc.wrapping_add(h)
        })
}

fn label<'s>(labels: &'s [Label<'_>], name: &str) -> Option<&'s str> {
    labels
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_ref())
}

impl<'a> Validator<'a> {
    /// A metadata line for `name` at `at`: continues the current family or opens a new one,
    /// leaving its entry last in `out.metadata`.
    fn on_metadata(
        &mut self,
        kind: Meta,
        name: Cow<'a, str>,
        at: usize,
        out: &mut Parsed<'a>,
    ) -> Scan<()> {
        let what = match kind {
            Meta::Help => "HELP",
            Meta::Type => "TYPE",
            Meta::Unit => "UNIT",
        };
        if let Some(f) = &mut self.family {
            if f.name == name {
                if f.has_samples {
                    return Err(Fail::new(
                        at,
                        format!("{what} for {name} after its samples"),
                    ));
                }
                let repeated = match kind {
                    Meta::Help => std::mem::replace(&mut f.helped, true),
                    Meta::Type => f.typed,
                    Meta::Unit => f.unit.is_some(),
                };
                if repeated {
                    return Err(Fail::new(at, format!("repeated {what} for {name}")));
                }
                return Ok(());
            }
        }
        self.open_family(name.clone(), at, out)?;
        out.metadata.push(Metadata::new(name));
        if kind == Meta::Help {
            self.family.as_mut().expect("just opened").helped = true;
        }
        Ok(())
    }

    fn set_type(&mut self, kind: MetricType, at: usize) -> Scan<()> {
        let f = self.family.as_mut().expect("metadata opened a family");
        f.kind = kind;
        f.typed = true;
        Self::check_unit_type(f, at)
    }

    fn set_unit(&mut self, unit: &'a str, at: usize) -> Scan<()> {
        let f = self.family.as_mut().expect("metadata opened a family");
        f.unit = Some(unit);
        let name = &f.name;
        if !unit.is_empty()
            && !name
                .strip_suffix(unit)
                .is_some_and(|rest| rest.ends_with('_'))
        {
            return Err(Fail::new(
                at,
                format!("metric name {name} must end with its unit \"_{unit}\""),
            ));
        }
        Self::check_unit_type(f, at)
    }

    fn check_unit_type(f: &Family<'_>, at: usize) -> Scan<()> {
        if f.unit.is_some_and(|u| !u.is_empty())
            && matches!(f.kind, MetricType::Info | MetricType::StateSet)
        {
            return Err(Fail::new(
                at,
                format!("{} of type {:?} may not have a unit", f.name, f.kind),
            ));
        }
        Ok(())
    }

    /// Finishes the current family (if any) and starts family `name` at `at`.
    fn open_family(&mut self, name: Cow<'a, str>, at: usize, out: &Parsed<'a>) -> Scan<()> {
        self.close_family(out)?;
        if self.used.contains(&*name) {
            return Err(Fail::new(
                at,
                format!("metric family {name} is not contiguous or clashes with an earlier family"),
            ));
        }
        self.family = Some(Family {
            name,
            kind: MetricType::Unknown,
            typed: false,
            helped: false,
            unit: None,
            has_samples: false,
            start: at,
        });
        Ok(())
    }

    /// Finishes the current family: checks its last point and claims its names.
    fn close_family(&mut self, out: &Parsed<'a>) -> Scan<()> {
        self.close_point()?;
        self.done.clear();
        let Some(f) = self.family.take() else {
            return Ok(());
        };
        let mut names: Vec<String> = vec![f.name.to_string()];
        names.extend(
            f.suffixes()
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| format!("{}{s}", f.name)),
        );
        for name in names {
            if !self.used.insert(name.clone()) {
                return Err(Fail::new(
                    f.start,
                    format!(
                        "metric family {} clashes with an earlier family on {name}",
                        f.name
                    ),
                ));
            }
        }
        let _ = out;
        Ok(())
    }

    /// Checks the rules that need a whole metric point.
    fn close_point(&mut self) -> Scan<()> {
        let (Some(p), Some(f)) = (self.point.take(), &self.family) else {
            return Ok(());
        };
        let at = p.start;
        match f.kind {
            MetricType::Counter if !p.total => {
                return Err(Fail::new(
                    at,
                    format!("counter {} has no {}_total sample", f.name, f.name),
                ));
            }
            MetricType::Histogram | MetricType::GaugeHistogram => {
                let (sum, count) = if f.kind == MetricType::Histogram {
                    ("_sum", "_count")
                } else {
                    ("_gsum", "_gcount")
                };
                let Some(inf) = p.inf_bucket else {
                    return Err(Fail::new(
                        at,
                        format!("{} has no bucket with le=\"+Inf\"", f.name),
                    ));
                };
                if p.sum.is_some() != p.count.is_some() {
                    return Err(Fail::new(
                        at,
                        format!("{} must have both {sum} and {count}, or neither", f.name),
                    ));
                }
                if p.count.is_some_and(|c| c != inf) {
                    return Err(Fail::new(
                        at,
                        format!("{}{count} must equal the +Inf bucket", f.name),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks the sample just pushed last onto `out.samples`, whose line starts at `at`.
    fn on_sample(&mut self, out: &Parsed<'a>, at: usize, has_exemplar: bool) -> Scan<()> {
        let index = out.samples.len() - 1;
        let sample = &out.samples[index];
        let labels = out.labels_of(sample);
        let suffix = match self.family.as_ref().and_then(|f| f.suffix_of(&sample.name)) {
            Some(s) => s,
            None => {
                self.open_family(sample.name.clone(), at, out)?;
                ""
            }
        };
        let f = self.family.as_mut().expect("family opened above");
        f.has_samples = true;
        let (kind, family) = (f.kind, f.name.clone());
        let family = &*family;
        let special = special_label(kind, suffix, family);

        // Which metric point: a new label set closes the previous point.
        let same_point = self.point.as_ref().is_some_and(|p| {
            let first = &out.samples[p.first];
            let first_suffix = &first.name[family.len()..];
            same_labels(
                out.labels_of(first),
                special_label(kind, first_suffix, family),
                labels,
                special,
            )
        });
        if !same_point {
            self.close_point()?;
            let hash = labels_hash(labels, special);
            if let Some(firsts) = self.done.get(&hash) {
                for &first in firsts {
                    let s = &out.samples[first];
                    if same_labels(
                        out.labels_of(s),
                        special_label(kind, &s.name[family.len()..], family),
                        labels,
                        special,
                    ) {
                        return Err(Fail::new(
                            at,
                            format!("samples of one {family} metric must be together"),
                        ));
                    }
                }
            }
            self.done.entry(hash).or_default().push(index);
            self.point = Some(Point {
                first: index,
                start: at,
                ..Point::default()
            });
        } else if index > 0 {
            // The same series again: allowed only with timestamps that do not go back.
            let prev = &out.samples[index - 1];
            if prev.name == sample.name && same_labels(out.labels_of(prev), None, labels, None) {
                match (prev.timestamp_ms, sample.timestamp_ms) {
                    (Some(a), Some(b)) if b < a => {
                        return Err(Fail::new(
                            at,
                            "timestamps of a series must not go backwards",
                        ));
                    }
                    (Some(_), Some(_)) => {}
                    _ => {
                        return Err(Fail::new(
                            at,
                            "a repeated series needs timestamps on every sample",
                        ))
                    }
                }
            }
        }
        let p = self.point.as_mut().expect("point opened above");

        let value = sample.value;
        let bad = |message: String| Err(Fail::new(at, message));
        let exemplar_ok = matches!(
            (kind, suffix),
            (MetricType::Counter, "_total")
                | (
                    MetricType::Histogram | MetricType::GaugeHistogram,
                    "_bucket"
                )
        );
        if has_exemplar && !exemplar_ok {
            return bad(format!(
                "exemplars are not allowed on {} samples of a {kind:?}",
                sample.name
            ));
        }
        let negative_or_nan = value.is_nan() || value < 0.0;
        match (kind, suffix) {
            (MetricType::Counter, "_total") => {
                if negative_or_nan {
                    return bad(format!(
                        "counter {} must be a non-negative number",
                        sample.name
                    ));
                }
                p.total = true;
            }
            (MetricType::Histogram | MetricType::GaugeHistogram, "_bucket") => {
                let Some(le_text) = label(labels, "le") else {
                    return bad(format!("{} needs an le label", sample.name));
                };
                let le = match parse_float(le_text.as_bytes()) {
                    Ok(le) if le.is_nan() => return bad(format!("le {le_text:?} is NaN")),
                    Ok(le) if le == f64::INFINITY && le_text != "+Inf" => {
                        return bad(format!(
                            "the infinite bucket must be written le=\"+Inf\", not {le_text:?}"
                        ));
                    }
                    Ok(le) => le,
                    Err(_) => return bad(format!("invalid le {le_text:?}")),
                };
                if negative_or_nan {
                    return bad(format!(
                        "bucket {} must be a non-negative number",
                        sample.name
                    ));
                }
                // `_sum`/`_count` may come before the buckets: Prometheus accepts that
                // order and the Rust prometheus-client writes it. Interleaved label sets and
                // a `_count` unequal to the `+Inf` bucket are still rejected.
                if p.buckets > 0 && le <= p.last_le {
                    return bad(format!(
                        "buckets of {family} must be in increasing le order"
                    ));
                }
                if p.buckets > 0 && value < p.last_bucket {
                    return bad(format!("bucket counts of {family} must not decrease"));
                }
                p.buckets += 1;
                p.last_le = le;
                p.last_bucket = value;
                p.negative_bucket |= le < 0.0;
                if le == f64::INFINITY {
                    p.inf_bucket = Some(value);
                }
            }
            (MetricType::Histogram, "_count") | (MetricType::GaugeHistogram, "_gcount") => {
                if negative_or_nan {
                    return bad(format!("{} must be a non-negative number", sample.name));
                }
                p.after_buckets = true;
                p.count = Some(value);
            }
            (MetricType::Histogram, "_sum") => {
                if negative_or_nan {
                    return bad(format!("{} must be a non-negative number", sample.name));
                }
                if p.negative_bucket {
                    return bad(format!(
                        "{} may not have a _sum, it has negative buckets",
                        family
                    ));
                }
                p.after_buckets = true;
                p.sum = Some(value);
            }
            (MetricType::GaugeHistogram, "_gsum") => {
                if value.is_nan() {
                    return bad(format!("{} must be a number", sample.name));
                }
                if value < 0.0 && !p.negative_bucket {
                    return bad(format!(
                        "{} may be negative only with negative buckets",
                        sample.name
                    ));
                }
                p.after_buckets = true;
                p.sum = Some(value);
            }
            (MetricType::Histogram, "_created") => p.after_buckets = true,
            (MetricType::Summary, "") => {
                let Some(q_text) = label(labels, "quantile") else {
                    return bad(format!(
                        "summary sample {} needs a quantile label",
                        sample.name
                    ));
                };
                match parse_float(q_text.as_bytes()) {
                    Ok(q) if (0.0..=1.0).contains(&q) => {}
                    _ => {
                        return bad(format!(
                            "quantile {q_text:?} is not a number between 0 and 1"
                        ))
                    }
                }
                if value < 0.0 {
                    return bad(format!(
                        "quantile value of {} must not be negative",
                        sample.name
                    ));
                }
            }
            (MetricType::Summary, "_sum" | "_count") if negative_or_nan => {
                return bad(format!("{} must be a non-negative number", sample.name));
            }
            (MetricType::Info, _) if value != 1.0 => {
                return bad(format!("info {} must have the value 1", sample.name));
            }
            (MetricType::StateSet, _) => {
                if label(labels, family).is_none() {
                    return bad(format!(
                        "stateset sample {} needs a label named {family}",
                        sample.name
                    ));
                }
                if value != 0.0 && value != 1.0 {
                    return bad(format!(
                        "stateset {} must have the value 0 or 1",
                        sample.name
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}
