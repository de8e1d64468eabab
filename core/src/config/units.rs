//! Units of the configuration: Prometheus durations, Go's base-2 byte sizes, and integers
//! spelled as Go's `yaml.v2` reads them.

use std::time::Duration;

/// Parses a duration in Prometheus syntax: `1y2w3d4h5m6s7ms` (each unit at most once, in
/// that order), or `0`. Fractions, signs and other units are rejected with the messages of
/// Prometheus 3.16's `model.ParseDuration`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    /// Unit, its rank (units go from the lowest rank up), nanoseconds.
    const UNITS: [(&str, u8, u64); 7] = [
        ("y", 1, 365 * 86_400_000_000_000),
        ("w", 2, 7 * 86_400_000_000_000),
        ("d", 3, 86_400_000_000_000),
        ("h", 4, 3_600_000_000_000),
        ("m", 5, 60_000_000_000),
        ("s", 6, 1_000_000_000),
        ("ms", 7, 1_000_000),
    ];
    match s {
        "0" => return Ok(Duration::ZERO),
        "" => return Err("empty duration string".into()),
        _ => {}
    }
    let invalid = || format!("not a valid duration string: {s:?}");
    let out_of_range = || "duration out of range".to_string();
    let mut rest = s;
    let mut last_rank = 0;
    let mut total_ns: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        // The unit: every byte up to the next digit (digits are ASCII, so this is a char
        // boundary).
        let letters = rest.bytes().take_while(|b| !b.is_ascii_digit()).count();
        if letters == 0 {
            return Err(invalid());
        }
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let Some(&(_, rank, unit_ns)) = UNITS.iter().find(|(u, _, _)| *u == unit) else {
            return Err(format!("unknown unit {unit:?} in duration {s:?}"));
        };
        if rank <= last_rank {
            return Err(invalid());
        }
        last_rank = rank;
        if n > (1u64 << 63) / unit_ns {
            return Err(out_of_range());
        }
        total_ns = total_ns
            .checked_add(n * unit_ns)
            .filter(|ns| *ns < 1u64 << 63)
            .ok_or_else(out_of_range)?;
    }
    Ok(Duration::from_nanos(total_ns))
}

/// Parses a byte size as Prometheus's `body_size_limit` does (Go's `units.Base2Bytes`):
/// a number (fractions allowed) and a unit `B`, `KB`/`KiB`, `MB`/`MiB`, `GB`/`GiB`,
/// `TB`/`TiB`, `PB`/`PiB`, `EB`/`EiB`, every prefix a power of 1024; parts may repeat
/// (`1MB512KB`); `0` alone needs no unit.
pub fn parse_base2_bytes(s: &str) -> Result<u64, String> {
    let invalid = || format!("units: invalid {s}");
    let mut rest = s;
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    } else if rest.starts_with('-') {
        return Err(format!("{s:?} is negative; a size must be 0 or more"));
    }
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let number = &rest[..number_len];
        if number.bytes().filter(|b| *b == b'.').count() > 1 || number.is_empty() || number == "." {
            return Err(invalid());
        }
        rest = &rest[number_len..];
        let unit_len = rest
            .bytes()
            .take_while(|b| !b.is_ascii_digit() && *b != b'.')
            .count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let power = match unit {
            "B" => 0,
            "KB" | "KiB" => 1,
            "MB" | "MiB" => 2,
            "GB" | "GiB" => 3,
            "TB" | "TiB" => 4,
            "PB" | "PiB" => 5,
            "EB" | "EiB" => 6,
            _ => return Err(format!("units: unknown unit {unit} in {s}")),
        };
        let value: f64 = if number.starts_with('.') {
            format!("0{number}")
        } else {
            number.to_string()
        }
        .parse()
        .map_err(|_| invalid())?;
        total += value * 1024f64.powi(power);
    }
    if total > i64::MAX as f64 {
        return Err("units: overflow parsing unit".into());
    }
    // Go converts with int64(f): truncation toward zero.
    Ok(total as u64)
}

/// Parses an integer as Go's YAML parser resolves a plain scalar (`strconv.ParseInt(s, 0, 64)`
/// after removing `_`): decimal, `0x` hex, `0o`/leading-`0` octal, `0b` binary.
pub(super) fn parse_go_int(s: &str) -> Option<i128> {
    let s = s.replace('_', "");
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, &s[..]),
    };
    let (radix, digits) = if let Some(d) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, d)
    } else if let Some(d) = digits
        .strip_prefix("0o")
        .or_else(|| digits.strip_prefix("0O"))
    {
        (8, d)
    } else if let Some(d) = digits
        .strip_prefix("0b")
        .or_else(|| digits.strip_prefix("0B"))
    {
        (2, d)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let value = i128::from_str_radix(digits, radix).ok()?;
    let value = if negative { -value } else { value };
    (i64::MIN as i128..=i64::MAX as i128)
        .contains(&value)
        .then_some(value)
}

/// Serializes a duration in Prometheus syntax (`1m30s`).
pub fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// Formats a duration as Prometheus's `model.Duration.String()` does: `1h30m`, `15s`,
/// `500ms`, `0s`; years and weeks only when they divide the duration exactly (`90d`, `2w`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len, exact) in [
        ("y", 365 * 86_400_000u64, true),
        ("w", 7 * 86_400_000, true),
        ("d", 86_400_000, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ] {
        // `is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
        #[allow(clippy::manual_is_multiple_of)]
        if exact && ms % len != 0 {
            continue;
        }
        if ms >= len {
            out.push_str(&format!("{}{}", ms / len, unit));
            ms %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_prometheus_syntax() {
        let ok = [
            ("1m30s", 90_000),
            ("500ms", 500),
            ("1h", 3_600_000),
            ("2d", 172_800_000),
            ("1w", 604_800_000),
            ("1y", 31_536_000_000),
            ("0", 0),
            ("0s", 0),
            ("1h0m5s10ms", 3_605_010),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in [
            "1.5s", "-1s", "", "10", "30s1m", "1m1m", "1 m", "1S", "ms", "1sms",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} must be rejected");
        }
        assert_eq!(parse_duration(""), Err("empty duration string".into()));
        assert_eq!(
            parse_duration("1.5s"),
            Err("unknown unit \".\" in duration \"1.5s\"".into())
        );
        assert_eq!(
            parse_duration("30s1m"),
            Err("not a valid duration string: \"30s1m\"".into())
        );
        assert_eq!(
            parse_duration("soon"),
            Err("not a valid duration string: \"soon\"".into())
        );
        assert_eq!(
            parse_duration("1S"),
            Err("unknown unit \"S\" in duration \"1S\"".into())
        );
        assert_eq!(parse_duration("300y"), Err("duration out of range".into()));
    }

    #[test]
    fn durations_format_as_prometheus() {
        let cases = [
            (90_000, "1m30s"),
            (8 * 86_400_000, "8d"),
            (14 * 86_400_000, "2w"),
            (365 * 86_400_000, "1y"),
            (1500, "1s500ms"),
            (0, "0s"),
        ];
        for (ms, text) in cases {
            assert_eq!(format_duration(Duration::from_millis(ms)), text);
        }
    }

    #[test]
    fn body_size_limit_is_base_2() {
        let cases = [
            ("10MB", 10 << 20),
            ("10MiB", 10 << 20),
            ("1KB", 1024),
            ("1.5KB", 1536),
            ("2GB", 2 << 30),
            ("100B", 100),
            ("0", 0),
            ("1MB512KB", (1 << 20) + (512 << 10)),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_base2_bytes(text), Ok(bytes), "{text}");
        }
        for bad in ["100", "10mb", "10kB", "MB", "-1MB", "1.2.3MB"] {
            assert!(parse_base2_bytes(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn integers_as_go_strconv() {
        for (text, value) in [
            ("10", 10),
            ("0x10", 16),
            ("010", 8),
            ("0o10", 8),
            ("0b11", 3),
            ("1_000", 1000),
            ("-5", -5),
        ] {
            assert_eq!(parse_go_int(text), Some(value), "{text}");
        }
        for bad in ["", "1.5", "08", "0x", "abc", "9223372036854775808"] {
            assert_eq!(parse_go_int(bad), None, "{bad:?}");
        }
    }
}
