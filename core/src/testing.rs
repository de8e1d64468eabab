//! Fuzz bodies and their helpers, shared by the cargo-fuzz targets in `fuzz/` and by the
//! ordinary tests that run the same bodies on stable (`core/tests/fuzz_bodies.rs`).
//!
//! Only built with the `testing` feature. Every body panics when the
//! property it checks is broken, and returns normally for any input that keeps it:
//!
//! - [`fuzz_parse`]: parsing never panics; an error has a nonzero line and column; whatever
//!   parses renders back to text ([`render`]) that parses again to the same samples,
//!   labels, exemplars and metadata (floats compared by bits, so NaN payloads count).
//! - [`fuzz_config`]: loading a jobs document never panics and every error has a nonzero
//!   line and column.
//! - [`fuzz_rebalance`]: a cluster of nodes driven through a sequence of operations keeps
//!   the ownership invariants of ARCHITECTURE.md's "Ownership and hashing" after every
//!   step (see [`rebalance`]).
//!
//! [`remote_write`] is an independent decoder of the bus's remote-write records (prost structs
//! written from Prometheus's protos), for the encoder's tests, the daemon test and the
//! simulation's Kafka model.

use std::borrow::Cow;
use std::fmt::Write;

use crate::config::{load_job, load_jobs, ConfigError, GlobalConfig};
use crate::exposition::{
    parse, Exemplar, Format, Metadata, MetricType, ParseError, Parsed, Position,
};
use crate::labels::{is_valid_label_name, is_valid_metric_name};

pub mod client_model;
pub mod handoff;
pub mod rebalance;
pub mod remote_write;

pub use rebalance::{decode, fuzz_rebalance, run_scenario, JobSpec, Operation, Outcome, Scenario};

/// The body of the `parse_prometheus` and `parse_openmetrics` fuzz targets. Returns whether
/// the input parsed (so a stable run can tell that it exercised the round trip).
pub fn fuzz_parse(data: &[u8], format: Format) -> bool {
    let parsed = match parse(data, format) {
        Ok(parsed) => parsed,
        Err(e) => {
            check_parse_error(&e, data);
            return false;
        }
    };
    let text = render(&parsed, format);
    let again = match parse(text.as_bytes(), format) {
        Ok(again) => again,
        Err(e) => panic!(
            "the rendering of a parsed body does not parse: {e}\n--- input ---\n{}\n--- rendered ---\n{text}",
            String::from_utf8_lossy(data)
        ),
    };
    if let Err(difference) = same_parse(&parsed, &again) {
        panic!(
            "the rendering parses to something else: {difference}\n--- input ---\n{}\n--- rendered ---\n{text}",
            String::from_utf8_lossy(data)
        );
    }
    true
}

/// The body of the `parse_protobuf` fuzz target: the parser and an independent reading
/// ([`client_model`]: prost, and a plain expansion into samples) agree on every input —
/// both refuse it, or both give the same samples (values by bits), labels, timestamps,
/// exemplars and metadata; an error's byte offset lies within the body (its end included).
/// Returns whether the input parsed.
pub fn fuzz_parse_protobuf(data: &[u8]) -> bool {
    let ours = crate::exposition::parse(data, Format::Protobuf);
    let theirs = client_model::decode_delimited(data).and_then(|f| client_model::expected(&f));
    match (ours, theirs) {
        (Err(e), Err(_)) => {
            check_parse_error(&e, data);
            false
        }
        (Err(e), Ok(_)) => panic!("the parser refuses what prost reads: {e}\n{data:?}"),
        (Ok(_), Err(why)) => {
            // prost limits the nesting of skipped groups; the parser does not.
            assert!(
                why.contains("recursion limit"),
                "the parser reads what the reference refuses ({why})\n{data:?}"
            );
            false
        }
        (Ok(parsed), Ok((samples, metadata))) => {
            let got: Vec<client_model::ExpectedSample> = parsed
                .samples
                .iter()
                .map(|s| client_model::ExpectedSample {
                    name: s.name.to_string(),
                    labels: owned_labels(parsed.labels_of(s)),
                    value_bits: s.value.to_bits(),
                    timestamp_ms: s.timestamp_ms,
                    exemplar: s
                        .exemplar
                        .as_ref()
                        .map(|e| (owned_labels(&e.labels), e.value.to_bits(), e.timestamp_ms)),
                })
                .collect();
            assert_eq!(got, samples, "samples differ\n{data:?}");
            let got: Vec<client_model::ExpectedMetadata> = parsed
                .metadata
                .iter()
                .map(|m| {
                    let code = match m.kind {
                        Some(MetricType::Counter) => 0,
                        Some(MetricType::Gauge) => 1,
                        Some(MetricType::Summary) => 2,
                        Some(MetricType::Histogram) => 4,
                        Some(MetricType::GaugeHistogram) => 5,
                        _ => 3,
                    };
                    (
                        m.name.to_string(),
                        code,
                        m.help.as_deref().unwrap_or_default().to_string(),
                        m.unit.unwrap_or_default().to_string(),
                    )
                })
                .collect();
            assert_eq!(got, metadata, "metadata differs\n{data:?}");
            true
        }
    }
}

fn owned_labels(labels: &[crate::exposition::Label<'_>]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// The body of the `config_load` fuzz target: the input as a jobs document (invalid UTF-8
/// replaced, as a znode's bytes would be read), and as a single-job znode. Returns how
/// many errors the document load reported.
pub fn fuzz_config(data: &[u8]) -> usize {
    let text = String::from_utf8_lossy(data);
    let (_jobs, errors) = load_jobs(&text, "fuzz.yml", &GlobalConfig::default());
    for e in &errors {
        check_config_error(e, &text);
    }
    if let Err(errors) = load_job(&text, "/jobs/fuzz", "fuzz") {
        for e in &errors {
            check_config_error(e, &text);
        }
    }
    errors.len()
}

fn check_parse_error(e: &ParseError, data: &[u8]) {
    match e.at {
        Position::Text { line, column } => {
            assert!(
                line >= 1 && column >= 1,
                "parse error without a position: {e:?}\n--- input ---\n{}",
                String::from_utf8_lossy(data)
            );
            // A line past the end of the body points nowhere a user could look.
            let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
            assert!(
                line <= lines,
                "parse error on line {line} of a {lines}-line body: {e:?}"
            );
        }
        // The body's end is a place too: where a cut-short message stops.
        Position::Byte(offset) => assert!(
            offset <= data.len(),
            "parse error at byte {offset} of a {}-byte body: {e:?}",
            data.len()
        ),
    }
}

fn check_config_error(e: &ConfigError, text: &str) {
    assert!(
        e.position.line >= 1 && e.position.column >= 1,
        "config error without a position: {e} ({e:?})\n--- input ---\n{text}"
    );
    // Display must not panic either: it is what `scrapepool check` prints.
    let _ = e.to_string();
}

/// Writes `parsed` back as text in `format`: metadata lines, then samples in their order
/// (OpenMetrics: each family's metadata just before its first sample, families without
/// samples at the end, then `# EOF`). There is no protobuf writer: `Format::Protobuf`
/// writes the text format.
pub fn render(parsed: &Parsed<'_>, format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Prometheus | Format::Protobuf => {
            for m in &parsed.metadata {
                write_metadata(&mut out, m, format);
            }
            for s in &parsed.samples {
                write_sample(&mut out, parsed, s, format);
            }
        }
        Format::OpenMetrics => {
            let mut written = vec![false; parsed.metadata.len()];
            let mut current: Option<usize> = None;
            for s in &parsed.samples {
                let family = family_of(parsed, &s.name, current);
                if let Some(f) = family {
                    if !written[f] {
                        write_metadata(&mut out, &parsed.metadata[f], format);
                        written[f] = true;
                    }
                }
                current = family;
                write_sample(&mut out, parsed, s, format);
            }
            for (m, done) in parsed.metadata.iter().zip(&written) {
                if !done {
                    write_metadata(&mut out, m, format);
                }
            }
            out.push_str("# EOF\n");
        }
    }
    out
}

/// The metadata entry of the OpenMetrics family a sample named `name` belongs to: the one
/// whose name plus a suffix its type allows is `name`, preferring the current family.
fn family_of(parsed: &Parsed<'_>, name: &str, current: Option<usize>) -> Option<usize> {
    let fits = |m: &Metadata<'_>| {
        name.strip_prefix(&*m.name)
            .is_some_and(|suffix| suffixes(m.kind).contains(&suffix))
    };
    if let Some(c) = current {
        if fits(&parsed.metadata[c]) {
            return Some(c);
        }
    }
    parsed.metadata.iter().position(fits)
}

/// The sample-name suffixes an OpenMetrics family of this type has.
fn suffixes(kind: Option<MetricType>) -> &'static [&'static str] {
    match kind {
        Some(MetricType::Counter) => &["_total", "_created"],
        Some(MetricType::Histogram) => &["_bucket", "_count", "_sum", "_created"],
        Some(MetricType::GaugeHistogram) => &["_bucket", "_gcount", "_gsum"],
        Some(MetricType::Summary) => &["", "_count", "_sum", "_created"],
        Some(MetricType::Info) => &["_info"],
        Some(MetricType::Gauge | MetricType::StateSet | MetricType::Unknown) | None => &[""],
    }
}

fn type_name(kind: MetricType, format: Format) -> &'static str {
    match kind {
        MetricType::Counter => "counter",
        MetricType::Gauge => "gauge",
        MetricType::Histogram => "histogram",
        MetricType::GaugeHistogram => "gaugehistogram",
        MetricType::Summary => "summary",
        MetricType::Info => "info",
        MetricType::StateSet => "stateset",
        MetricType::Unknown if format == Format::Prometheus => "untyped",
        MetricType::Unknown => "unknown",
    }
}

/// `name` as a metadata line or a label list writes it: bare when `legacy` says it may be,
/// else quoted and escaped (the text format 1.0.0 and OpenMetrics grammar).
fn name_text(name: &str, legacy: fn(&str) -> bool) -> Cow<'_, str> {
    if legacy(name) {
        return Cow::Borrowed(name);
    }
    let mut q = String::with_capacity(name.len() + 2);
    q.push('"');
    for c in name.chars() {
        match c {
            '\\' => q.push_str("\\\\"),
            '"' => q.push_str("\\\""),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    Cow::Owned(q)
}

fn write_metadata(out: &mut String, m: &Metadata<'_>, format: Format) {
    let name = name_text(&m.name, is_valid_metric_name);
    if let Some(kind) = m.kind {
        let _ = writeln!(out, "# TYPE {name} {}", type_name(kind, format));
    }
    if let Some(unit) = m.unit {
        let _ = writeln!(out, "# UNIT {name} {unit}");
    }
    if let Some(help) = &m.help {
        let _ = write!(out, "# HELP {name} ");
        for c in help.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '"' if format == Format::OpenMetrics => out.push_str("\\\""),
                c => out.push(c),
            }
        }
        out.push('\n');
    }
}

/// Writes `{labels}`, or `{"metric.name",labels}` when `metric` is given.
fn write_labels<'a>(
    out: &mut String,
    metric: Option<&str>,
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    out.push('{');
    if let Some(metric) = metric {
        out.push_str(&name_text(metric, |_| false));
    }
    for (i, (name, value)) in labels.into_iter().enumerate() {
        if i > 0 || metric.is_some() {
            out.push(',');
        }
        out.push_str(&name_text(name, is_valid_label_name));
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

fn write_sample(
    out: &mut String,
    parsed: &Parsed<'_>,
    s: &crate::exposition::ParsedSample<'_>,
    format: Format,
) {
    let labels = parsed.labels_of(s);
    let pairs = labels.iter().map(|(n, v)| (n.as_ref(), v.as_ref()));
    if is_valid_metric_name(&s.name) {
        out.push_str(&s.name);
        if !labels.is_empty() {
            write_labels(out, None, pairs);
        }
    } else {
        write_labels(out, Some(&s.name), pairs);
    }
    out.push(' ');
    crate::format::write_float(out, s.value);
    if let Some(ts) = s.timestamp_ms {
        out.push(' ');
        write_timestamp(out, ts, format);
    }
    if let Some(e) = &s.exemplar {
        write_exemplar(out, e, format);
    }
    out.push('\n');
}

fn write_exemplar(out: &mut String, e: &Exemplar<'_>, format: Format) {
    out.push_str(" # ");
    write_labels(
        out,
        None,
        e.labels.iter().map(|(n, v)| (n.as_ref(), v.as_ref())),
    );
    out.push(' ');
    crate::format::write_float(out, e.value);
    if let Some(ts) = e.timestamp_ms {
        out.push(' ');
        write_timestamp(out, ts, format);
    }
}

/// Text format: integer milliseconds. OpenMetrics: seconds, which the parser turns into
/// `trunc(seconds × 1000)`; so write a float `x` near `ms / 1000` for which that gives `ms`
/// back exactly (the shortest such decimal; a few ulps around `ms / 1000` always hold one,
/// since the parser got `ms` from some such `x`).
fn write_timestamp(out: &mut String, ms: i64, format: Format) {
    if format == Format::Prometheus {
        let _ = write!(out, "{ms}");
        return;
    }
    let guess = ms as f64 / 1000.0;
    let mut candidates = vec![guess];
    let (mut up, mut down) = (guess, guess);
    for _ in 0..64 {
        up = next_toward(up, f64::INFINITY);
        down = next_toward(down, f64::NEG_INFINITY);
        candidates.push(up);
        candidates.push(down);
    }
    let x = candidates
        .into_iter()
        .find(|x| (x * 1000.0) as i64 == ms)
        .unwrap_or(guess);
    crate::format::write_float(out, x);
}

/// The adjacent float of a finite `x` in the direction of `target`.
fn next_toward(x: f64, target: f64) -> f64 {
    if x == 0.0 {
        return if target > 0.0 {
            f64::from_bits(1)
        } else {
            -f64::from_bits(1)
        };
    }
    let bits = x.to_bits();
    // Away from zero is one step up in magnitude, toward zero one step down.
    if (target > x) == (x > 0.0) {
        f64::from_bits(bits + 1)
    } else {
        f64::from_bits(bits - 1)
    }
}

/// Whether two parses hold the same samples (values by bits), labels, exemplars and
/// metadata (compared by name: an OpenMetrics rendering moves families without samples).
pub fn same_parse(a: &Parsed<'_>, b: &Parsed<'_>) -> Result<(), String> {
    if a.samples.len() != b.samples.len() {
        return Err(format!(
            "{} samples, then {}",
            a.samples.len(),
            b.samples.len()
        ));
    }
    for (i, (x, y)) in a.samples.iter().zip(&b.samples).enumerate() {
        let same = x.name == y.name
            && a.labels_of(x) == b.labels_of(y)
            && x.value.to_bits() == y.value.to_bits()
            && x.timestamp_ms == y.timestamp_ms
            && same_exemplar(x.exemplar.as_ref(), y.exemplar.as_ref());
        if !same {
            return Err(format!(
                "sample {i}: {} {:?} {} ({:#x}) @{:?} {:?} became {} {:?} {} ({:#x}) @{:?} {:?}",
                x.name,
                a.labels_of(x),
                x.value,
                x.value.to_bits(),
                x.timestamp_ms,
                x.exemplar,
                y.name,
                b.labels_of(y),
                y.value,
                y.value.to_bits(),
                y.timestamp_ms,
                y.exemplar,
            ));
        }
    }
    let sorted = |p: &Parsed<'_>| {
        let mut m: Vec<String> = p
            .metadata
            .iter()
            .map(|m| format!("{} {:?} {:?} {:?}", m.name, m.kind, m.help, m.unit))
            .collect();
        m.sort();
        m
    };
    let (ma, mb) = (sorted(a), sorted(b));
    if ma != mb {
        return Err(format!("metadata {ma:?} became {mb:?}"));
    }
    Ok(())
}

fn same_exemplar(a: Option<&Exemplar<'_>>, b: Option<&Exemplar<'_>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            x.labels == y.labels
                && x.value.to_bits() == y.value.to_bits()
                && x.timestamp_ms == y.timestamp_ms
        }
        _ => false,
    }
}

/// A small seeded generator (splitmix64) for the stable runs of the fuzz bodies.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Bytes that matter to the exposition formats and to YAML, for mutations to insert.
const INTERESTING: &[&[u8]] = &[
    b"{",
    b"}",
    b"\"",
    b"\\",
    b"\n",
    b"#",
    b" ",
    b"=",
    b",",
    b":",
    b"-",
    b"'",
    b"*",
    b"&",
    b"<<: ",
    b"# EOF\n",
    b"# TYPE ",
    b"# HELP ",
    b"# UNIT ",
    b"NaN",
    b"+Inf",
    b"-Inf",
    b"0",
    b"1e308",
    b"_total",
    b"_bucket",
    b"le=\"+Inf\"",
    b"quantile=",
    b" # {a=\"b\"} 1 ",
    b"\t",
    b"\xff",
    b"\xc3\xa9",
    b"0.5",
    b"-1",
    b"9223372036854775807",
    b"job_name: ",
    b"[",
    b"]",
    b"- ",
    b"  ",
    b"~",
    b"null",
    b"yes",
    b"10s",
    b"1m30s",
    b"regex: ",
    b"(",
    b")",
];

/// A mutation of `input`: up to four edits (flip, insert an interesting token, delete or
/// repeat a range, splice in part of `other`, truncate), like a fuzzer's havoc stage.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = data.len();
        match rng.below(7) {
            0 if len > 0 => {
                let at = rng.below(len);
                data[at] ^= 1 << rng.below(8);
            }
            1 => {
                let token = INTERESTING[rng.below(INTERESTING.len())];
                let at = rng.below(len + 1);
                data.splice(at..at, token.iter().copied());
            }
            2 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(16)).min(len);
                data.drain(at..end);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(64)).min(len);
                let piece = data[at..end].to_vec();
                data.splice(end..end, piece);
            }
            4 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(128)).min(other.len());
                let at = rng.below(len + 1);
                data.splice(at..at, other[from..end].iter().copied());
            }
            5 if len > 0 => data.truncate(rng.below(len)),
            _ => {
                let at = rng.below(len + 1);
                data.insert(at, rng.next_u64() as u8);
            }
        }
    }
    data
}
