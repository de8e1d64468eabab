//! Prometheus 3's normalisation of `le` and `quantile` label values
//! (`textparse.normalizeFloatsInLabelValues`), applied by both parsers as a sample's labels
//! are read: under a `# TYPE … histogram` line every `le` value, and under a
//! `# TYPE … summary` line every `quantile` value, that reads as a float is written back in
//! OpenMetrics float form (`1` → `1.0`, `1e3` → `1000.0`, `0.50` → `0.5`). The type is that
//! of the last `# TYPE` line before the sample, whatever family it named, as Prometheus's
//! parsers keep it; a gauge histogram's `le` is left as written. A value that is not a
//! float (`abc`) stays as it is; so do the hexadecimal and `_`-separated spellings Go's
//! `strconv.ParseFloat` also reads, which the text parsers refuse as sample values.

use std::borrow::Cow;

use super::lexer::parse_float;
use super::MetricType;

/// Rewrites the `le` (histogram) or `quantile` (summary) values of a sample read under a
/// `# TYPE` line of type `kind`: its labels are `out.labels[range]`. Each value rewritten is
/// kept as written in `out.raw_values`, since a series is known by its text as written.
pub(super) fn normalize_sample<'a>(
    kind: Option<MetricType>,
    out: &mut super::Parsed<'a>,
    range: std::ops::Range<usize>,
) {
    let start = range.start;
    for (i, value) in normalize_float_labels(kind, &mut out.labels[range]) {
        out.raw_values.push(((start + i) as u32, value));
    }
}

/// Rewrites the `le` (histogram) or `quantile` (summary) values in `labels` for a sample
/// read under a `# TYPE` line of type `kind`; gives back each value rewritten, as written,
/// with its index in `labels`.
fn normalize_float_labels<'a>(
    kind: Option<MetricType>,
    labels: &mut [super::Label<'a>],
) -> Vec<(usize, Cow<'a, str>)> {
    let mut written = Vec::new();
    let name = match kind {
        Some(MetricType::Histogram) => "le",
        Some(MetricType::Summary) => "quantile",
        _ => return written,
    };
    for (i, (label, value)) in labels.iter_mut().enumerate() {
        if label.as_ref() != name {
            continue;
        }
        if let Ok(f) = parse_float(value.as_bytes()) {
            let normal = format_openmetrics_float(f);
            if normal != value.as_ref() {
                written.push((i, std::mem::replace(value, Cow::Owned(normal))));
            }
        }
    }
    written
}

/// Prometheus's `labels.FormatOpenMetricsFloat`: `1.0`, `0.0`, `-1.0`, `NaN`, `+Inf`,
/// `-Inf`, else Go's `strconv.FormatFloat(f, 'g', -1, 64)` with `.0` appended when that has
/// neither a `.` nor an `e`.
pub(super) fn format_openmetrics_float(f: f64) -> String {
    if f == 1.0 {
        return "1.0".into();
    }
    if f == 0.0 {
        return "0.0".into();
    }
    if f == -1.0 {
        return "-1.0".into();
    }
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let mut out = go_format_g_shortest(f);
    if !out.contains(['e', '.']) {
        out.push_str(".0");
    }
    out
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` for a finite, non-zero `f`: the shortest
/// digits that read back to `f`, in `%e` form when the decimal exponent is below -4 or at
/// least 6 (two exponent digits at least, signed), else in `%f` form.
fn go_format_g_shortest(f: f64) -> String {
    // Rust's `{:e}` writes the same shortest round-trip digits: `d[.ddd]e[-]x`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').expect("{:e} writes an exponent");
    let exp: i32 = exp.parse().expect("{:e} writes an integer exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if f < 0.0 {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
        return out;
    }
    // `%f` with exactly the digits there are: the point after `exp + 1` of them.
    let point = exp + 1;
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(&digits);
    } else if point as usize >= digits.len() {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', point as usize - digits.len()));
    } else {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_as_prometheus_formats_them() {
        // Each pair printed by Go 1.26: labels.FormatOpenMetricsFloat(strconv.ParseFloat(in)).
        let cases = [
            ("1", "1.0"),
            ("0", "0.0"),
            ("-0", "0.0"),
            ("-1", "-1.0"),
            ("0.5", "0.5"),
            ("1e3", "1000.0"),
            ("10.50", "10.5"),
            ("+Inf", "+Inf"),
            ("-inf", "-Inf"),
            ("Infinity", "+Inf"),
            ("NaN", "NaN"),
            ("123456", "123456.0"),
            ("1234567", "1.234567e+06"),
            ("1e21", "1e+21"),
            ("1e-4", "0.0001"),
            ("1e-5", "1e-05"),
            ("0.00012345", "0.00012345"),
            ("2.5e-10", "2.5e-10"),
            ("-3.75e+22", "-3.75e+22"),
            ("100000", "100000.0"),
            ("999999", "999999.0"),
            ("1000000", "1e+06"),
            (".5", "0.5"),
            ("5.", "5.0"),
            ("+5", "5.0"),
            ("2", "2.0"),
            ("0.1", "0.1"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("5e-324", "5e-324"),
        ];
        for (input, want) in cases {
            let f = parse_float(input.as_bytes()).unwrap_or_else(|e| panic!("{input}: {e:?}"));
            assert_eq!(format_openmetrics_float(f), want, "{input}");
        }
    }

    fn normalized(kind: Option<MetricType>, pairs: &[(&'static str, &'static str)]) -> Vec<String> {
        let mut labels: Vec<super::super::Label<'_>> = pairs
            .iter()
            .map(|(n, v)| (Cow::Borrowed(*n), Cow::Borrowed(*v)))
            .collect();
        let _ = normalize_float_labels(kind, &mut labels);
        labels
            .into_iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect()
    }

    #[test]
    fn only_le_of_histograms_and_quantile_of_summaries() {
        let pairs = [("le", "1"), ("quantile", "0.50"), ("x", "1")];
        assert_eq!(
            normalized(Some(MetricType::Histogram), &pairs),
            ["le=1.0", "quantile=0.50", "x=1"]
        );
        assert_eq!(
            normalized(Some(MetricType::Summary), &pairs),
            ["le=1", "quantile=0.5", "x=1"]
        );
        for kind in [
            None,
            Some(MetricType::Gauge),
            Some(MetricType::Counter),
            Some(MetricType::GaugeHistogram),
            Some(MetricType::Unknown),
        ] {
            assert_eq!(
                normalized(kind, &pairs),
                ["le=1", "quantile=0.50", "x=1"],
                "{kind:?}"
            );
        }
        // Not a float (or a spelling the parser refuses): as written.
        assert_eq!(
            normalized(Some(MetricType::Histogram), &[("le", "abc")]),
            ["le=abc"]
        );
        assert_eq!(
            normalized(Some(MetricType::Histogram), &[("le", "0x1p-2")]),
            ["le=0x1p-2"]
        );
    }

    /// The body of the check against Prometheus 3.16 (server mode, query API): each
    /// sample's name and labels as Prometheus stored them.
    const TEXT: &str = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"0.5\"} 0\nh_bucket{le=\"1e3\"} 2\nh_bucket{le=\"10.50\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_bucket{le=\"abc\"} 3\nh_sum 4\nh_count 3\n# TYPE s summary\ns{quantile=\"0\"} 1\ns{quantile=\"0.50\"} 2\ns{quantile=\"1\"} 3\ns_sum 6\ns_count 3\n# TYPE g gauge\ng{le=\"1\",quantile=\"1\"} 5\n# TYPE u untyped\nu_bucket{le=\"1\"} 1\n";

    fn series(parsed: &super::super::Parsed<'_>) -> Vec<String> {
        parsed
            .samples
            .iter()
            .map(|s| {
                let labels: Vec<String> = parsed
                    .labels_of(s)
                    .iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect();
                format!("{}{{{}}}", s.name, labels.join(","))
            })
            .collect()
    }

    const WANT: [&str; 15] = [
        "h_bucket{le=1.0}",
        "h_bucket{le=0.5}",
        "h_bucket{le=1000.0}",
        "h_bucket{le=10.5}",
        "h_bucket{le=+Inf}",
        "h_bucket{le=abc}",
        "h_sum{}",
        "h_count{}",
        "s{quantile=0.0}",
        "s{quantile=0.5}",
        "s{quantile=1.0}",
        "s_sum{}",
        "s_count{}",
        "g{le=1,quantile=1}",
        "u_bucket{le=1}",
    ];

    #[test]
    fn text_format_series_are_those_prometheus_3_16_stores() {
        let parsed =
            super::super::parse(TEXT.as_bytes(), super::super::Format::Prometheus).expect("valid");
        assert_eq!(series(&parsed), WANT);
        // The type of the last TYPE line counts, whatever family it named.
        let body = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nother{le=\"2\"} 1\n# HELP x help\nx{le=\"3\"} 1\n";
        let parsed =
            super::super::parse(body.as_bytes(), super::super::Format::Prometheus).expect("valid");
        assert_eq!(
            series(&parsed),
            ["h_bucket{le=1.0}", "other{le=2.0}", "x{le=3.0}"]
        );
    }

    #[test]
    fn openmetrics_series_are_those_prometheus_3_16_stores() {
        // The same families with the buckets in the order OpenMetrics requires.
        let body = "# TYPE h histogram\nh_bucket{le=\"0.5\"} 0\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"10.50\"} 2\nh_bucket{le=\"1e3\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_sum 4\nh_count 3\n# TYPE s summary\ns{quantile=\"0\"} 1\ns{quantile=\"0.50\"} 2\ns{quantile=\"1\"} 3\ns_sum 6\ns_count 3\n# TYPE g gauge\ng{le=\"1\",quantile=\"1\"} 5\n# TYPE u unknown\nu_bucket{le=\"1\"} 1\n# EOF\n";
        let parsed = super::super::parse(body.as_bytes(), super::super::Format::OpenMetrics)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut want: Vec<&str> = WANT
            .iter()
            .copied()
            .filter(|s| *s != "h_bucket{le=abc}")
            .collect();
        want[..5].copy_from_slice(&[
            "h_bucket{le=0.5}",
            "h_bucket{le=1.0}",
            "h_bucket{le=10.5}",
            "h_bucket{le=1000.0}",
            "h_bucket{le=+Inf}",
        ]);
        assert_eq!(series(&parsed), want);
        // A gauge histogram's buckets are left as written.
        let body = "# TYPE gh gaugehistogram\ngh_bucket{le=\"1\"} 1\ngh_bucket{le=\"+Inf\"} 1\ngh_gcount 1\ngh_gsum 1\n# EOF\n";
        let parsed = super::super::parse(body.as_bytes(), super::super::Format::OpenMetrics)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            series(&parsed),
            [
                "gh_bucket{le=1}",
                "gh_bucket{le=+Inf}",
                "gh_gcount{}",
                "gh_gsum{}"
            ]
        );
    }
}
