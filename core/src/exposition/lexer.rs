//! Byte-level scanning shared by both text formats: character classes, label values,
//! numbers and the internal error type.
//!
//! Everything here works on byte offsets into the body; line and column are computed only
//! when an error is reported, so the hot path never counts lines.

use std::borrow::Cow;

/// A parse failure at a byte offset of the body; turned into line and column at the edge.
#[derive(Debug)]
pub(crate) struct Fail {
    /// Byte offset into the body where the problem is.
    pub(crate) at: usize,
    /// What is wrong.
    pub(crate) message: Cow<'static, str>,
}

impl Fail {
    /// A failure at `at` saying `message`.
    pub(crate) fn new(at: usize, message: impl Into<Cow<'static, str>>) -> Fail {
        Fail {
            at,
            message: message.into(),
        }
    }
}

/// The result type of the scanners.
pub(crate) type Scan<T> = Result<T, Fail>;

const fn class_table(kind: u8) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let alpha = c.is_ascii_alphabetic() || c == b'_';
        let digit = c.is_ascii_digit();
        table[i] = match kind {
            // Metric name, first byte: [a-zA-Z_:]
            0 => alpha || c == b':',
            // Metric name, later bytes: [a-zA-Z0-9_:]
            1 => alpha || digit || c == b':',
            // Label name, first byte: [a-zA-Z_]
            2 => alpha,
            // Label name, later bytes: [a-zA-Z0-9_]
            _ => alpha || digit,
        };
        i += 1;
    }
    table
}

/// Bytes that may start a metric name.
pub(crate) static METRIC_START: [bool; 256] = class_table(0);
/// Bytes that may continue a metric name.
pub(crate) static METRIC_CHAR: [bool; 256] = class_table(1);
/// Bytes that may start a label name.
pub(crate) static LABEL_START: [bool; 256] = class_table(2);
/// Bytes that may continue a label name.
pub(crate) static LABEL_CHAR: [bool; 256] = class_table(3);

/// The NaN Prometheus stores for a scraped NaN (`value.NormalNaN`), distinct from the
/// staleness marker's NaN.
pub(crate) const NORMAL_NAN_BITS: u64 = 0x7ff8_0000_0000_0001;

/// Converts an ASCII-only slice (names, type keywords) to `&str`.
///
/// The callers have checked every byte against an ASCII class table, so this cannot fail;
/// the check is kept (it is cheap for short ASCII) to stay free of `unsafe`.
#[inline]
pub(crate) fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("")
}

/// `body[a..b]` as text, where both ends are known to be ASCII boundaries: sliced from
/// `text` (the whole body, when it is valid UTF-8) without another validation.
#[inline]
pub(crate) fn ascii_in<'a>(text: Option<&'a str>, body: &'a [u8], a: usize, b: usize) -> &'a str {
    match text.and_then(|t| t.get(a..b)) {
        Some(s) => s,
        None => ascii(&body[a..b]),
    }
}

/// Scans a name of the class `start`/`rest` at `pos`; returns its end (== `pos` if none).
#[inline]
pub(crate) fn scan_name(body: &[u8], pos: usize, start: &[bool; 256], rest: &[bool; 256]) -> usize {
    if pos >= body.len() || !start[body[pos] as usize] {
        return pos;
    }
    // An iterator over the tail, not indexing: no bounds check per byte.
    let tail = &body[pos + 1..];
    pos + 1
        + tail
            .iter()
            .position(|&c| !rest[c as usize])
            .unwrap_or(tail.len())
}

/// Scans a quoted label value whose opening quote is at `pos - 1`.
///
/// Returns the value (borrowed unless it has escapes) and the offset just past the closing
/// quote. `\\`, `\"` and `\n` are unescaped; any other escaped byte is kept with its
/// backslash, as Prometheus does. `newline_ok` says whether a raw newline may appear inside
/// the quotes (the Prometheus text lexer allows it, OpenMetrics does not).
#[inline]
pub(crate) fn scan_label_value<'a>(
    body: &'a [u8],
    text: Option<&'a str>,
    pos: usize,
    newline_ok: bool,
) -> Scan<(Cow<'a, str>, usize)> {
    scan_quoted(body, text, pos, newline_ok, "label value")
}

/// Scans a quoted metric or label name (the text format 1.0.0 and OpenMetrics grammar
/// `"(\\.|[^\\"])*"`) whose opening quote is at `pos - 1`; unescaped as label values are
/// (Prometheus's `unreplace`). A raw newline may appear inside the quotes, as both lexers
/// allow.
#[inline]
pub(crate) fn scan_quoted_name<'a>(
    body: &'a [u8],
    text: Option<&'a str>,
    pos: usize,
) -> Scan<(Cow<'a, str>, usize)> {
    scan_quoted(body, text, pos, true, "quoted name")
}

/// A quoted string whose opening quote is at `pos - 1`; `what` names it in errors.
#[inline]
fn scan_quoted<'a>(
    body: &'a [u8],
    text: Option<&'a str>,
    pos: usize,
    newline_ok: bool,
    what: &'static str,
) -> Scan<(Cow<'a, str>, usize)> {
    let rest = &body[pos..];
    let Some(first) = memchr::memchr2(b'"', b'\\', rest) else {
        return Err(Fail::new(
            pos.saturating_sub(1),
            format!("unterminated {what}"),
        ));
    };
    if rest[first] == b'"' {
        let raw = &rest[..first];
        if !newline_ok && memchr::memchr(b'\n', raw).is_some() {
            return Err(Fail::new(
                pos.saturating_sub(1),
                format!("newline inside {what}"),
            ));
        }
        if let Some(s) = text.and_then(|t| t.get(pos..pos + first)) {
            return Ok((Cow::Borrowed(s), pos + first + 1));
        }
        return match std::str::from_utf8(raw) {
            Ok(s) => Ok((Cow::Borrowed(s), pos + first + 1)),
            Err(e) => Err(Fail::new(
                pos + e.valid_up_to(),
                format!("invalid UTF-8 in {what}"),
            )),
        };
    }
    // Escapes: build the unescaped value.
    let mut owned: Vec<u8> = Vec::with_capacity(rest.len().min(first + 32));
    let mut i = 0;
    loop {
        let Some(off) = memchr::memchr2(b'"', b'\\', &rest[i..]) else {
            return Err(Fail::new(
                pos.saturating_sub(1),
                format!("unterminated {what}"),
            ));
        };
        owned.extend_from_slice(&rest[i..i + off]);
        i += off;
        if rest[i] == b'"' {
            break;
        }
        // A backslash: look at the escaped byte.
        match rest.get(i + 1) {
            Some(b'\\') => owned.push(b'\\'),
            Some(b'"') => owned.push(b'"'),
            Some(b'n') => owned.push(b'\n'),
            Some(b'\n') | None => {
                return Err(Fail::new(pos + i, format!("unterminated escape in {what}")))
            }
            Some(&other) => {
                owned.push(b'\\');
                owned.push(other);
            }
        }
        i += 2;
    }
    if !newline_ok && memchr::memchr(b'\n', &rest[..i]).is_some() {
        return Err(Fail::new(
            pos.saturating_sub(1),
            format!("newline inside {what}"),
        ));
    }
    match String::from_utf8(owned) {
        Ok(s) => Ok((Cow::Owned(s), pos + i + 1)),
        Err(_) => Err(Fail::new(pos, format!("invalid UTF-8 in {what}"))),
    }
}

/// Unescapes HELP text: `\\` and `\n` in both formats, and `\"` in OpenMetrics; other
/// backslashes stay as written.
pub(crate) fn unescape_help<'a>(
    raw: &'a [u8],
    checked: Option<&'a str>,
    at: usize,
    quote_escape: bool,
) -> Scan<Cow<'a, str>> {
    let text = match checked.map_or_else(|| std::str::from_utf8(raw), Ok) {
        Ok(s) => s,
        Err(e) => {
            return Err(Fail::new(
                at + e.valid_up_to(),
                "help text is not valid UTF-8",
            ))
        }
    };
    if memchr::memchr(b'\\', raw).is_none() {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.clone().next() {
            Some('\\') => {
                out.push('\\');
                chars.next();
            }
            Some('n') => {
                out.push('\n');
                chars.next();
            }
            Some('"') if quote_escape => {
                out.push('"');
                chars.next();
            }
            _ => out.push('\\'),
        }
    }
    Ok(Cow::Owned(out))
}

/// Why a number was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NumberError {
    /// Not a number in Go's decimal float syntax.
    Syntax,
    /// Well formed but beyond the range of f64 (Go's `ErrRange`).
    Range,
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses a float as Prometheus does: Go's `strconv.ParseFloat(s, 64)` without the hex
/// and underscore forms Prometheus refuses ("pre-Go 1.13 float formats").
///
/// Accepts `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?` and, ignoring case,
/// `[+-]?inf`, `[+-]?infinity` and `nan` (no sign). Values that fit the exact fast path
/// (at most 19 significant digits, mantissa below 2^53, power of ten within ±22) are
/// computed directly; the rest go to the standard library's correctly rounded parser.
#[inline]
pub(crate) fn parse_float(s: &[u8]) -> Result<f64, NumberError> {
    let n = s.len();
    let mut i = 0;
    let mut negative = false;
    if n > 0 && (s[0] == b'+' || s[0] == b'-') {
        negative = s[0] == b'-';
        i = 1;
    }
    let mut mantissa: u64 = 0;
    let mut digits = 0u32;
    let mut exp10: i64 = 0;
    let mut truncated = false;
    let mut any_digit = false;
    while i < n && s[i].is_ascii_digit() {
        let d = (s[i] - b'0') as u64;
        any_digit = true;
        if mantissa == 0 && d == 0 {
            // Leading zero: no significance.
        } else if digits < 19 {
            mantissa = mantissa * 10 + d;
            digits += 1;
        } else {
            truncated |= d != 0;
            exp10 += 1;
        }
        i += 1;
    }
    if i < n && s[i] == b'.' {
        i += 1;
        while i < n && s[i].is_ascii_digit() {
            let d = (s[i] - b'0') as u64;
            any_digit = true;
            if mantissa == 0 && d == 0 {
                exp10 -= 1;
            } else if digits < 19 {
                mantissa = mantissa * 10 + d;
                digits += 1;
                exp10 -= 1;
            } else {
                truncated |= d != 0;
            }
            i += 1;
        }
    }
    if !any_digit {
        return special(s);
    }
    if i < n && (s[i] == b'e' || s[i] == b'E') {
        i += 1;
        let mut exp_negative = false;
        if i < n && (s[i] == b'+' || s[i] == b'-') {
            exp_negative = s[i] == b'-';
            i += 1;
        }
        if i >= n || !s[i].is_ascii_digit() {
            return Err(NumberError::Syntax);
        }
        let mut e: i64 = 0;
        while i < n && s[i].is_ascii_digit() {
            // Saturate: anything this large is ±Inf or 0 anyway.
            e = (e * 10 + (s[i] - b'0') as i64).min(1_000_000);
            i += 1;
        }
        exp10 += if exp_negative { -e } else { e };
    }
    if i != n {
        return Err(NumberError::Syntax);
    }
    if mantissa == 0 {
        return Ok(if negative { -0.0 } else { 0.0 });
    }
    if !truncated && mantissa < (1 << 53) && (-22..=22).contains(&exp10) {
        // Clinger's fast path: both operands are exact, so one IEEE operation rounds once.
        let m = mantissa as f64;
        let v = if exp10 >= 0 {
            m * POW10[exp10 as usize]
        } else {
            m / POW10[(-exp10) as usize]
        };
        return Ok(if negative { -v } else { v });
    }
    // The syntax is checked above and is a subset of what std accepts.
    let text = std::str::from_utf8(s).map_err(|_| NumberError::Syntax)?;
    let v: f64 = text.parse().map_err(|_| NumberError::Syntax)?;
    if v.is_infinite() {
        return Err(NumberError::Range);
    }
    Ok(v)
}

#[cold]
fn special(s: &[u8]) -> Result<f64, NumberError> {
    let (negative, signed, body) = match s.first() {
        Some(b'+') => (false, true, &s[1..]),
        Some(b'-') => (true, true, &s[1..]),
        _ => (false, false, s),
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Ok(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if !signed && body.eq_ignore_ascii_case(b"nan") {
        return Ok(f64::from_bits(NORMAL_NAN_BITS));
    }
    Err(NumberError::Syntax)
}

/// Parses a non-negative decimal integer of digits only (the text format's timestamp).
#[inline]
pub(crate) fn parse_int_digits(s: &[u8]) -> Option<i64> {
    let mut v: i64 = 0;
    for &c in s {
        v = v.checked_mul(10)?.checked_add((c - b'0') as i64)?;
    }
    Some(v)
}

/// Line and column (1-based, column in bytes) of byte offset `at` in `body`.
pub(crate) fn line_column(body: &[u8], at: usize) -> (usize, usize) {
    let at = at.min(body.len());
    let before = &body[..at];
    let line = memchr::memchr_iter(b'\n', before).count() + 1;
    let line_start = memchr::memrchr(b'\n', before).map_or(0, |p| p + 1);
    (line, at - line_start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_follow_go_parse_float() {
        let ok: &[(&str, f64)] = &[
            ("1", 1.0),
            ("-1.5", -1.5),
            ("1.", 1.0),
            (".5", 0.5),
            ("1e3", 1000.0),
            ("1E-3", 0.001),
            ("+2.5e+2", 250.0),
            ("0000000000000000000000000000000000000000001.2e-1", 0.12),
            ("9223372036854775808", 9223372036854775808.0),
            ("0.013300656000000001", 0.013300656000000001),
            ("2.478268416e+09", 2.478268416e9),
            ("1e-400", 0.0),
            ("+Inf", f64::INFINITY),
            ("-inf", f64::NEG_INFINITY),
            ("Infinity", f64::INFINITY),
        ];
        for (text, want) in ok {
            assert_eq!(parse_float(text.as_bytes()), Ok(*want), "{text}");
        }
        assert!(parse_float(b"NaN").unwrap().is_nan());
        assert!(parse_float(b"nan").unwrap().is_nan());
        for bad in [
            "", ".", "1e", "e3", "+nan", "0x1p-3", "1_2", "0b1", "0o1", "1.1.1", "1z", "- 1",
            "infx",
        ] {
            assert_eq!(
                parse_float(bad.as_bytes()),
                Err(NumberError::Syntax),
                "{bad}"
            );
        }
        assert_eq!(parse_float(b"1e400"), Err(NumberError::Range));
    }

    #[test]
    fn fast_path_agrees_with_std() {
        let cases = [
            "0.1",
            "123456789012345678",
            "1.7976931348623157e308",
            "4.9e-324",
            "3.14159",
            "1e22",
            "1e23",
        ];
        for c in cases {
            assert_eq!(
                parse_float(c.as_bytes()).unwrap(),
                c.parse::<f64>().unwrap(),
                "{c}"
            );
        }
    }

    #[test]
    fn label_values_unescape() {
        let body = br#"a\\b\"c\nd\ze" rest"#;
        let (v, end) = scan_label_value(body, None, 0, false).unwrap();
        assert_eq!(v, "a\\b\"c\nd\\ze");
        assert_eq!(&body[end..], b" rest");
        assert!(matches!(
            scan_label_value(b"plain\"", None, 0, false).unwrap().0,
            Cow::Borrowed("plain")
        ));
        assert!(scan_label_value(b"open", None, 1, false).is_err());
    }

    #[test]
    fn line_and_column_are_one_based() {
        assert_eq!(line_column(b"ab\ncd", 0), (1, 1));
        assert_eq!(line_column(b"ab\ncd", 4), (2, 2));
    }
}
