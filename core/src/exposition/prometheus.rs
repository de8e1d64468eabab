//! The Prometheus text format 0.0.4 and 1.0.0, read as Prometheus 3.16's
//! `textparse.PromParser` does.
//!
//! What it accepts, line by line (spaces and tabs may separate every token):
//! - blank lines, and `#` comments that are not `# HELP` / `# TYPE`;
//! - `# HELP name text` and `# TYPE name counter|gauge|histogram|summary|untyped`, the name
//!   bare or quoted (`# TYPE "my.metric" gauge`);
//! - `name{label="value",...} value [timestamp_ms]`, where labels may be separated by a
//!   comma or not, one trailing comma is allowed, the value is a Go float without hex or
//!   underscores, and the timestamp is a non-negative integer of milliseconds;
//! - quoted names (text format 1.0.0): a label name may be quoted (`"my.label"="v"`), and
//!   a quoted string standing alone between the braces, followed by `,` or `}`, is the
//!   metric name (`{"my.metric", job="x"}`, `{"my.metric"}`), given at most once and then
//!   with no name before the brace. Quoted names are unescaped as label values are.
//!
//! `le` and `quantile` values are normalised as Prometheus 3 does ([`normalize`]).
//!
//! Unlike Prometheus, a last line without its newline is accepted (as client libraries'
//! own parsers do), and a NUL byte is an error rather than the end of the body.

use std::borrow::Cow;

use super::lexer::{
    ascii_in, parse_float, parse_int_digits, scan_label_value, scan_name, scan_quoted_name,
    unescape_help, Fail, NumberError, Scan, LABEL_CHAR, LABEL_START, METRIC_CHAR, METRIC_START,
};
use super::{normalize, Metadata, MetricType, ParseOptions, Parsed, ParsedSample};

#[inline]
fn skip_blank(body: &[u8], mut i: usize) -> usize {
    while i < body.len() && (body[i] == b' ' || body[i] == b'\t') {
        i += 1;
    }
    i
}

/// Parses a whole body into `out`.
pub(super) fn parse<'a>(body: &'a [u8], options: &ParseOptions, out: &mut Parsed<'a>) -> Scan<()> {
    // A rough guess that saves most regrowth: a sample line is rarely shorter than 40 bytes.
    out.samples
        .reserve((body.len() / 64).min(options.samples_max));
    out.labels
        .reserve((body.len() / 48).min(options.samples_max.saturating_mul(2)));
    // Validating the whole body once lets every name and label value be sliced from it
    // without checking again; a body with invalid UTF-8 (allowed in comments) falls back
    // to checking each slice.
    let text = std::str::from_utf8(body).ok();
    let mut i = 0;
    let n = body.len();
    // The type of the last `# TYPE` line, whatever family it named (Prometheus's parser
    // state): it decides the `le`/`quantile` normalisation.
    let mut last_type = None;
    while i < n {
        i = skip_blank(body, i);
        if i >= n {
            break;
        }
        match body[i] {
            b'\n' => i += 1,
            b'#' => i = comment(body, text, i, out, &mut last_type)?,
            _ if out.samples.len() >= options.samples_max => {
                out.truncated = true;
                break;
            }
            _ => {
                i = sample(body, text, i, out)?;
                normalize_last_sample(out, last_type);
            }
        }
    }
    Ok(())
}

/// Reads a comment line starting at `#`; returns the offset after its newline.
fn comment<'a>(
    body: &'a [u8],
    checked: Option<&'a str>,
    start: usize,
    out: &mut Parsed<'a>,
    last_type: &mut Option<MetricType>,
) -> Scan<usize> {
    let n = body.len();
    let eol = memchr::memchr(b'\n', &body[start..]).map_or(n, |p| start + p);
    let next = (eol + 1).min(n);
    let after_hash = skip_blank(body, start + 1);
    // `#` not followed by blanks, or not by HELP/TYPE and a blank: a plain comment.
    if after_hash == start + 1 || eol - after_hash < 5 {
        return Ok(next);
    }
    let keyword = &body[after_hash..after_hash + 4];
    let is_help = keyword == b"HELP";
    if !(is_help || keyword == b"TYPE") || !matches!(body[after_hash + 4], b' ' | b'\t') {
        return Ok(next);
    }
    let name_start = skip_blank(body, after_hash + 4);
    let (name, name_end) = if body.get(name_start) == Some(&b'"') {
        scan_quoted_name(body, checked, name_start + 1)?
    } else {
        let name_end = scan_name(body, name_start, &METRIC_START, &METRIC_CHAR);
        if name_end == name_start {
            let what = if is_help { "HELP" } else { "TYPE" };
            return Err(Fail::new(
                name_start,
                format!("expected metric name after {what}"),
            ));
        }
        (
            Cow::Borrowed(ascii_in(checked, body, name_start, name_end)),
            name_end,
        )
    };
    // A quoted name may hold a raw newline: the line then ends after it.
    let (eol, next) = if name_end > eol {
        let eol = memchr::memchr(b'\n', &body[name_end..]).map_or(n, |p| name_end + p);
        (eol, (eol + 1).min(n))
    } else {
        (eol, next)
    };
    // The text is the rest of the line less its first byte (the separating blank),
    // as Prometheus's lexer takes it.
    let text_start = (name_end + 1).min(eol);
    let text = &body[text_start..eol];
    let entry = metadata_entry(out, name);
    if is_help {
        entry.help = Some(unescape_help(
            text,
            checked.and_then(|t| t.get(text_start..eol)),
            text_start,
            false,
        )?);
    } else {
        *last_type = Some(match text {
            b"counter" => MetricType::Counter,
            b"gauge" => MetricType::Gauge,
            b"histogram" => MetricType::Histogram,
            b"summary" => MetricType::Summary,
            b"untyped" => MetricType::Unknown,
            _ => {
                let shown = String::from_utf8_lossy(text);
                return Err(Fail::new(
                    text_start,
                    format!("invalid metric type {shown:?}"),
                ));
            }
        });
        entry.kind = *last_type;
    }
    Ok(next)
}

/// Normalises the `le`/`quantile` values of the sample just read ([`normalize`]).
#[inline]
fn normalize_last_sample(out: &mut Parsed<'_>, last_type: Option<MetricType>) {
    if let (Some(kind @ (MetricType::Histogram | MetricType::Summary)), Some(s)) =
        (last_type, out.samples.last())
    {
        let range = s.labels.start as usize..s.labels.end as usize;
        normalize::normalize_sample(Some(kind), out, range);
    }
}

/// The metadata entry for `name`: the last one if it is for the same family, else a new one.
fn metadata_entry<'a, 'p>(out: &'p mut Parsed<'a>, name: Cow<'a, str>) -> &'p mut Metadata<'a> {
    if out.metadata.last().is_none_or(|m| m.name != name) {
        out.metadata.push(Metadata::new(name));
    }
    let last = out.metadata.len() - 1;
    &mut out.metadata[last]
}

/// Reads a sample line starting at its first non-blank byte; returns the offset after it.
#[inline]
fn sample<'a>(
    body: &'a [u8],
    text: Option<&'a str>,
    start: usize,
    out: &mut Parsed<'a>,
) -> Scan<usize> {
    let n = body.len();
    let name_end = scan_name(body, start, &METRIC_START, &METRIC_CHAR);
    let labels_start = out.labels.len() as u32;
    let (name, mut i) = if name_end > start {
        let name = Cow::Borrowed(ascii_in(text, body, start, name_end));
        let mut i = skip_blank(body, name_end);
        if i < n && body[i] == b'{' {
            let mut unused = None;
            i = labels(body, text, i + 1, out, &mut unused, true)?;
            i = skip_blank(body, i);
        }
        (name, i)
    } else if body[start] == b'{' {
        // No name before the brace: it must be quoted inside.
        let mut name = None;
        let i = labels(body, text, start + 1, out, &mut name, false)?;
        let Some(name) = name else {
            return Err(Fail::new(
                start,
                "metric name not set (no name before or inside the braces)",
            ));
        };
        (name, skip_blank(body, i))
    } else {
        return Err(Fail::new(
            start,
            format!(
                "expected a metric name, comment or blank line, got {}",
                shown_byte(body, start)
            ),
        ));
    };
    // The value: everything up to a blank, a brace or the end of the line.
    let value_start = i;
    while i < n && !matches!(body[i], b' ' | b'\t' | b'\n' | b'{') {
        i += 1;
    }
    if i == value_start {
        return Err(Fail::new(
            value_start,
            format!("expected value after metric, got {}", shown_byte(body, i)),
        ));
    }
    let value = match parse_float(&body[value_start..i]) {
        Ok(v) if v.is_nan() => f64::from_bits(super::lexer::NORMAL_NAN_BITS),
        Ok(v) => v,
        Err(NumberError::Range) => return Err(Fail::new(value_start, "value out of range")),
        Err(NumberError::Syntax) => {
            let shown = String::from_utf8_lossy(&body[value_start..i]);
            return Err(Fail::new(value_start, format!("invalid value {shown:?}")));
        }
    };
    i = skip_blank(body, i);
    let mut timestamp_ms = None;
    if i < n && body[i].is_ascii_digit() {
        let ts_start = i;
        while i < n && body[i].is_ascii_digit() {
            i += 1;
        }
        match parse_int_digits(&body[ts_start..i]) {
            Some(ts) => timestamp_ms = Some(ts),
            None => return Err(Fail::new(ts_start, "timestamp out of range")),
        }
        i = skip_blank(body, i);
        if i < n && body[i] != b'\n' {
            return Err(Fail::new(
                i,
                format!(
                    "expected end of line after timestamp, got {}",
                    shown_byte(body, i)
                ),
            ));
        }
    } else if i < n && body[i] != b'\n' {
        return Err(Fail::new(
            i,
            format!(
                "expected timestamp or end of line, got {}",
                shown_byte(body, i)
            ),
        ));
    }
    out.samples.push(ParsedSample {
        name,
        labels: labels_start..out.labels.len() as u32,
        value,
        timestamp_ms,
        exemplar: None,
        histogram: None,
    });
    Ok(i + 1)
}

/// Reads labels after `{`; returns the offset after `}`. A quoted string followed by `,` or
/// `}` is the metric name: stored in `name`, an error if `named` (a name before the brace)
/// or if one was already given.
#[inline]
fn labels<'a>(
    body: &'a [u8],
    text: Option<&'a str>,
    mut i: usize,
    out: &mut Parsed<'a>,
    name: &mut Option<Cow<'a, str>>,
    named: bool,
) -> Scan<usize> {
    let n = body.len();
    loop {
        i = skip_blank(body, i);
        if i < n && body[i] == b'}' {
            return Ok(i + 1);
        }
        let name_end = scan_name(body, i, &LABEL_START, &LABEL_CHAR);
        let label = if name_end > i {
            let label = Cow::Borrowed(ascii_in(text, body, i, name_end));
            i = skip_blank(body, name_end);
            label
        } else if i < n && body[i] == b'"' {
            let at = i;
            let (quoted, end) = scan_quoted_name(body, text, i + 1)?;
            i = skip_blank(body, end);
            if i < n && matches!(body[i], b',' | b'}') {
                if named || name.is_some() {
                    return Err(Fail::new(at, "metric name already set"));
                }
                *name = Some(quoted);
                if body[i] == b',' {
                    i += 1;
                }
                continue;
            }
            quoted
        } else {
            return Err(Fail::new(
                i,
                format!("expected label name, got {}", shown_byte(body, i)),
            ));
        };
        if i >= n || body[i] != b'=' {
            return Err(Fail::new(
                i,
                format!("expected '=' after label name, got {}", shown_byte(body, i)),
            ));
        }
        i = skip_blank(body, i + 1);
        if i >= n || body[i] != b'"' {
            return Err(Fail::new(
                i,
                format!("expected quoted label value, got {}", shown_byte(body, i)),
            ));
        }
        let (value, end) = scan_label_value(body, text, i + 1, true)?;
        out.labels.push((label, value));
        i = skip_blank(body, end);
        // Labels may be separated by a comma or not; one trailing comma is fine.
        if i < n && body[i] == b',' {
            i += 1;
        }
    }
}

/// Describes the byte at `i` for an error message.
pub(crate) fn shown_byte(body: &[u8], i: usize) -> Cow<'static, str> {
    match body.get(i) {
        None => "end of input".into(),
        Some(b'\n') => "end of line".into(),
        Some(&c) if c.is_ascii_graphic() || c == b' ' => format!("{:?}", c as char).into(),
        Some(&c) => format!("byte 0x{c:02x}").into(),
    }
}
