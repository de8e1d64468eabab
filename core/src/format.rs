//! Text forms shared by the JSON outputs (the `json` bus encoding and `scrapepool parse`):
//! floats as Go's `strconv.FormatFloat(v, 'f', -1, 64)`, timestamps as RFC 3339 with
//! milliseconds in UTC, and JSON strings escaped as Go's `encoding/json` escapes them, so
//! the output matches prometheus-kafka-adapter's byte for byte. Pure functions, no clock.

use std::fmt::Write;

/// Appends `v` as Go's `strconv.FormatFloat(v, 'f', -1, 64)`: the shortest decimal that
/// reads back to `v`, never in exponent form; `NaN`, `+Inf`, `-Inf` for the specials.
pub fn write_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        // Rust's Display for f64 is the shortest round-trip form without exponent, as
        // Go's 'f' with precision -1 (and it keeps the sign of -0 as Go does).
        let _ = write!(out, "{v}");
    }
}

/// `v` as Go's `strconv.FormatFloat(v, 'f', -1, 64)`; see [`write_float`].
pub fn float_string(v: f64) -> String {
    let mut s = String::new();
    write_float(&mut s, v);
    s
}

/// The civil date (year, month 1-12, day 1-31) of a count of days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`, valid for every i64 day count we can get from ms).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Appends `timestamp_ms` (milliseconds since the Unix epoch) as RFC 3339 in UTC with
/// exactly three fraction digits, e.g. `2024-01-02T03:04:05.678Z`.
pub fn write_rfc3339_ms(out: &mut String, timestamp_ms: i64) {
    let seconds = timestamp_ms.div_euclid(1000);
    let ms = timestamp_ms.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (in_day / 3600, in_day % 3600 / 60, in_day % 60);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z"
    );
}

/// `timestamp_ms` as RFC 3339 with milliseconds; see [`write_rfc3339_ms`].
pub fn rfc3339_ms(timestamp_ms: i64) -> String {
    let mut s = String::with_capacity(24);
    write_rfc3339_ms(&mut s, timestamp_ms);
    s
}

/// Appends `s` as a quoted JSON string escaped as Go's `encoding/json` does by default:
/// `"` and `\`, control characters (`\n`, `\r`, `\t`, else `\u00XX`), the HTML-sensitive
/// `<`, `>`, `&` as `\u003c`, `\u003e`, `\u0026`, and U+2028/U+2029.
pub fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut plain_from = 0;
    for (i, c) in s.char_indices() {
        let escape: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '<' => Some("\\u003c"),
            '>' => Some("\\u003e"),
            '&' => Some("\\u0026"),
            '\u{2028}' => Some("\\u2028"),
            '\u{2029}' => Some("\\u2029"),
            c if (c as u32) < 0x20 => None,
            _ => continue,
        };
        out.push_str(&s[plain_from..i]);
        match escape {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
        plain_from = i + c.len_utf8();
    }
    out.push_str(&s[plain_from..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_as_go_formatfloat_f_minus_one() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1e21, "1000000000000000000000"),
            (1.5e-7, "0.00000015"),
            (2.7264e-05, "0.000027264"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (f64::from_bits(0x7ff0_0000_0000_0002), "NaN"),
            (123456789.125, "123456789.125"),
        ];
        for (v, want) in cases {
            assert_eq!(float_string(*v), *want, "{v:e}");
        }
        // The largest float: 17 significant digits, then 292 zeros (309 digits in all).
        assert_eq!(float_string(f64::MAX), format!("17976931348623157{}", "0".repeat(292)));
    }

    #[test]
    fn timestamps_are_rfc3339_with_milliseconds() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_704_164_645_678), "2024-01-02T03:04:05.678Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn civil_dates_round_trip_over_centuries() {
        // Day by day from 1600 to 2400 the date advances by exactly one calendar day.
        let mut prev = civil_from_days(-135_140); // 1600-01-01
        assert_eq!(prev, (1600, 1, 1));
        for days in -135_139..157_000 {
            let cur = civil_from_days(days);
            let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = match prev.1 {
                2 if leap(prev.0) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let want = if prev.2 < month_len {
                (prev.0, prev.1, prev.2 + 1)
            } else if prev.1 < 12 {
                (prev.0, prev.1 + 1, 1)
            } else {
                (prev.0 + 1, 1, 1)
            };
            assert_eq!(cur, want, "day {days}");
            prev = cur;
        }
    }

    #[test]
    fn json_strings_are_escaped_as_go_does() {
        let mut s = String::new();
        write_json_string(&mut s, "a\"b\\c\nd\te\u{1}<f>&g\u{2028}é");
        assert_eq!(s, r#""a\"b\\c\nd\te\u0001\u003cf\u003e\u0026g\u2028é""#);
    }
}
