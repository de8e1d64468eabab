//! Unit tests of both formats' rules and of the Content-Type choice.

use super::*;

fn prom(body: &str) -> Parsed<'_> {
    parse(body.as_bytes(), Format::Prometheus).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

fn prom_err(body: &str) -> ParseError {
    parse(body.as_bytes(), Format::Prometheus).expect_err(body)
}

fn om(body: &str) -> Parsed<'_> {
    parse(body.as_bytes(), Format::OpenMetrics).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

fn om_err(body: &str) -> ParseError {
    parse(body.as_bytes(), Format::OpenMetrics).expect_err(body)
}

#[test]
fn text_sample_with_labels_and_timestamp() {
    let p = prom("# HELP a_total Some \\\\ help\\n.\n# TYPE a_total counter\na_total{x=\"1\",y=\"two\"} 3.5 1700000000123\n");
    assert_eq!(p.samples.len(), 1);
    let s = &p.samples[0];
    assert_eq!(
        (&*s.name, s.value, s.timestamp_ms),
        ("a_total", 3.5, Some(1_700_000_000_123))
    );
    let labels = p.labels_of(s);
    assert_eq!(
        labels,
        &[
            (Cow::Borrowed("x"), Cow::Borrowed("1")),
            (Cow::Borrowed("y"), Cow::Borrowed("two"))
        ]
    );
    assert!(
        labels.iter().all(|(_, v)| matches!(v, Cow::Borrowed(_))),
        "no escapes, no allocation"
    );
    assert_eq!(p.metadata.len(), 1);
    assert_eq!(p.metadata[0].kind, Some(MetricType::Counter));
    assert_eq!(p.metadata[0].help.as_deref(), Some("Some \\ help\n."));
}

#[test]
fn text_label_value_escapes_allocate_only_when_present() {
    let p = prom("a{x=\"q\\\"uote\\\\back\\nline\\t\"} 1\n");
    let (_, v) = &p.labels_of(&p.samples[0])[0];
    assert!(matches!(v, Cow::Owned(_)));
    assert_eq!(v, "q\"uote\\back\nline\\t");
}

#[test]
fn text_is_as_lenient_as_prometheus() {
    // Blanks around tokens, no comma between labels, a trailing comma, `:` in names,
    // comments, blank lines, a missing final newline.
    let p = prom("\n  # a comment\n#HELP not metadata\nns:a  {  x = \"1\" y=\"2\" , }  1  \n\nb{} +Inf\nc -Inf 5\nd NaN");
    let names: Vec<_> = p.samples.iter().map(|s| &*s.name).collect();
    assert_eq!(names, ["ns:a", "b", "c", "d"]);
    assert_eq!(p.labels_of(&p.samples[0]).len(), 2);
    assert_eq!(p.samples[1].value, f64::INFINITY);
    assert_eq!(
        (p.samples[2].value, p.samples[2].timestamp_ms),
        (f64::NEG_INFINITY, Some(5))
    );
    assert_eq!(
        p.samples[3].value.to_bits(),
        lexer::NORMAL_NAN_BITS,
        "NaN is Prometheus's normal NaN"
    );
    assert!(p.metadata.is_empty());
}

#[test]
fn text_errors_name_line_column_and_reason() {
    let e = prom_err("a 1\nb{x=\"1\"} one\n");
    assert_eq!(
        e.at,
        Position::Text {
            line: 2,
            column: 10
        }
    );
    assert!(e.message.contains("invalid value \"one\""), "{}", e.message);

    let e = prom_err("# TYPE a countr\n");
    assert_eq!(
        e.at,
        Position::Text {
            line: 1,
            column: 10
        }
    );
    assert!(e.message.contains("invalid metric type"), "{}", e.message);

    let e = prom_err("a 1 -5\n");
    assert_eq!(e.at, Position::Text { line: 1, column: 5 });
    assert!(e.message.contains("timestamp"), "{}", e.message);

    let e = prom_err("a{x=\"1\",,} 1\n");
    assert_eq!(e.at, Position::Text { line: 1, column: 9 });
    assert!(e.message.contains("label name"), "{}", e.message);

    assert!(prom_err("a 1 99999999999999999999\n")
        .message
        .contains("out of range"));
    assert!(prom_err("a 1e999\n").message.contains("out of range"));
    assert!(prom_err("a 0x1p-3\n").message.contains("invalid value"));
    assert!(prom_err("a{x=\"1} 1\n").message.contains("unterminated"));
    assert!(prom_err("a 1 2 3\n").message.contains("after timestamp"));
    assert!(prom_err("# HELP 1a x\n").message.contains("metric name"));
    let invalid_utf8 = b"a{x=\"\xff\"} 1\n";
    assert!(parse(invalid_utf8, Format::Prometheus)
        .unwrap_err()
        .message
        .contains("UTF-8"));
}

#[test]
fn text_types_include_untyped() {
    let p = prom("# TYPE a untyped\na 1\n# TYPE b histogram\nb_bucket{le=\"+Inf\"} 1\n");
    assert_eq!(p.metadata[0].kind, Some(MetricType::Unknown));
    assert_eq!(p.metadata[1].kind, Some(MetricType::Histogram));
    assert!(prom_err("# TYPE a info\n")
        .message
        .contains("invalid metric type"));
}

#[test]
fn openmetrics_timestamps_are_seconds() {
    let p = om("a_total 1 1.5e3\na_total 2 1700000000.123\nb -1 -1.5\n# EOF\n");
    let ts: Vec<_> = p.samples.iter().map(|s| s.timestamp_ms).collect();
    assert_eq!(ts, [Some(1_500_000), Some(1_700_000_000_123), Some(-1500)]);
}

#[test]
fn openmetrics_exemplars_are_kept_or_dropped() {
    let body = "# TYPE a counter\na_total 1 # {trace_id=\"abc\"} 0.5 1.25\n# EOF";
    let p = om(body);
    let ex = p.samples[0].exemplar.as_ref().expect("exemplar kept");
    assert_eq!(
        ex.labels,
        vec![(Cow::Borrowed("trace_id"), Cow::Borrowed("abc"))]
    );
    assert_eq!((ex.value, ex.timestamp_ms), (0.5, Some(1250)));
    let dropped = parse_with(
        body.as_bytes(),
        Format::OpenMetrics,
        &ParseOptions {
            keep_exemplars: false,
            ..ParseOptions::default()
        },
    )
    .unwrap();
    assert_eq!(dropped.samples[0].exemplar, None);
    assert_eq!(dropped.samples[0].value, 1.0);
}

#[test]
fn openmetrics_metadata_carries_type_help_and_unit() {
    let p = om("# TYPE t_seconds gauge\n# UNIT t_seconds seconds\n# HELP t_seconds It \\\"is\\\".\nt_seconds 1\n# EOF\n");
    assert_eq!(
        p.metadata,
        vec![Metadata {
            name: "t_seconds".into(),
            kind: Some(MetricType::Gauge),
            help: Some(Cow::Owned("It \"is\".".into())),
            unit: Some("seconds"),
        }]
    );
}

#[test]
fn openmetrics_is_strict() {
    assert!(om_err("a 1\n").message.contains("# EOF"));
    assert!(om_err("a 1\n# EOF\n\n").message.contains("follow"));
    let e = om_err("a 1\n# comment\n# EOF\n");
    assert_eq!(e.at, Position::Text { line: 2, column: 1 });
    assert!(om_err("a  1\n# EOF\n").message.contains("value"));
    assert!(om_err("a{x=\"1\",} 1\n# EOF\n").message.contains("','"));
    let e = om_err("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n# EOF\n");
    assert_eq!(e.at, Position::Text { line: 3, column: 1 });
    assert!(e.message.contains("must not decrease"), "{}", e.message);
    assert!(om_err(
        "# TYPE c counter\nc_total{a=\"1\"} 1\nc_total{a=\"2\"} 1\nc_total{a=\"1\"} 2\n# EOF\n"
    )
    .message
    .contains("together"));
    assert!(om_err("a 1\nb 1\na 2\n# EOF\n")
        .message
        .contains("not contiguous"));
}

#[test]
fn openmetrics_accepts_every_type() {
    let body = "# TYPE c counter\nc_total 1\nc_created 1.7e9\n\
                # TYPE g gauge\ng 0.5\n\
                # TYPE h histogram\nh_bucket{le=\"0.1\"} 0\nh_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 0.3\n\
                # TYPE gh gaugehistogram\ngh_bucket{le=\"+Inf\"} 2\ngh_gcount 2\ngh_gsum 1\n\
                # TYPE s summary\ns{quantile=\"0.5\"} 1\ns_count 2\ns_sum 3\n\
                # TYPE i info\ni_info{version=\"1\"} 1\n\
                # TYPE st stateset\nst{st=\"on\"} 1\nst{st=\"off\"} 0\n\
                # TYPE u unknown\nu 7\n# EOF\n";
    let p = om(body);
    assert_eq!(p.samples.len(), 17);
    assert_eq!(p.metadata.len(), 8);
}

#[test]
fn content_type_is_chosen_as_prometheus_3_16_does() {
    use crate::protocol::format_for;
    let om_types = [
        "application/openmetrics-text",
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        "Application/OpenMetrics-Text;version=0.0.1",
        "  application/openmetrics-text ; charset=\"utf-8\"",
        "application/openmetrics-text;",
    ];
    for ct in om_types {
        assert_eq!(format_for(Some(ct), None), Ok(Format::OpenMetrics), "{ct}");
    }
    assert_eq!(
        format_for(Some("text/plain; version=0.0.4; charset=utf-8"), None),
        Ok(Format::Prometheus)
    );
    // Without a fallback, everything else fails the scrape.
    let refused = [
        "",
        "application/openmetrics-textx",
        "application/openmetrics-text; version",
        "application/openmetrics-text; a=1; a=2",
        "application/openmetrics-text; charset=\"utf-8",
        "application openmetrics-text",
    ];
    for ct in refused {
        assert!(format_for(Some(ct), None).is_err(), "{ct}");
    }
    assert!(format_for(None, None).is_err());
}

/// Every sample as `name{label=value,...}`, names and values unescaped.
fn shown(p: &Parsed<'_>) -> Vec<String> {
    p.samples
        .iter()
        .map(|s| {
            let labels: Vec<String> = p
                .labels_of(s)
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("{}{{{}}} {}", s.name, labels.join(","), s.value)
        })
        .collect()
}

#[test]
fn quoted_names_in_the_text_format() {
    let p = prom(concat!(
        "# HELP \"my.metric\" It is \\\\ dotted.\n",
        "# TYPE \"my.metric\" gauge\n",
        "{\"my.metric\", job=\"x\"} 1\n",
        "{ \"my.metric\" } 2\n",
        "{job=\"y\" \"my.metric\"} 3\n",
        "{\"my.metric\",} 4\n",
        "plain{\"my.label\"=\"v\", \"a\\\"b\\\\c\\nd\"=\"w\"} 5\n",
        "{\"quote\\\"d\"} 6\n",
        "{\"raw\nnewline\"} 7\n",
        "{\"ünï cödé\", \"ключ\"=\"значение\"} 8\n",
    ));
    assert_eq!(
        shown(&p),
        [
            "my.metric{job=x} 1",
            "my.metric{} 2",
            "my.metric{job=y} 3",
            "my.metric{} 4",
            "plain{my.label=v,a\"b\\c\nd=w} 5",
            "quote\"d{} 6",
            "raw\nnewline{} 7",
            "ünï cödé{ключ=значение} 8",
        ]
    );
    assert!(
        matches!(p.samples[0].name, Cow::Borrowed(_)),
        "no escape, no copy"
    );
    assert!(matches!(p.samples[5].name, Cow::Owned(_)));
    assert_eq!(p.metadata.len(), 1);
    assert_eq!(p.metadata[0].name, "my.metric");
    assert_eq!(p.metadata[0].kind, Some(MetricType::Gauge));
    assert_eq!(p.metadata[0].help.as_deref(), Some("It is \\ dotted."));
    // A quoted name followed by '=' is a label name even when it looks like a metric name.
    let p = prom("a{\"b\"=\"c\"} 1\n");
    assert_eq!(shown(&p), ["a{b=c} 1"]);
}

#[test]
fn quoted_name_errors_in_the_text_format() {
    let cases = [
        ("foo{\"bar\"} 1\n", 1, 5, "metric name already set"),
        ("{\"a\", \"b\"} 1\n", 1, 7, "metric name already set"),
        ("{job=\"x\"} 1\n", 1, 1, "metric name not set"),
        ("{} 1\n", 1, 1, "metric name not set"),
        ("{\"a\" x=\"y\"} 1\n", 1, 6, "expected '=' after label name"),
        ("{\"unterminated} 1\n", 1, 2, "unterminated quoted name"),
        (
            "{\"a\\\nb\"} 1\n",
            1,
            4,
            "unterminated escape in quoted name",
        ),
        ("# TYPE \"open gauge\n", 1, 8, "unterminated quoted name"),
        ("# TYPE \"a.b\" nonsense\n", 1, 14, "invalid metric type"),
        ("\"a\" 1\n", 1, 1, "expected a metric name"),
    ];
    for (body, line, column, message) in cases {
        let e = prom_err(body);
        assert_eq!(e.at, Position::Text { line, column }, "{body:?}: {e}");
        assert!(e.message.contains(message), "{body:?}: {e}");
    }
}

#[test]
fn quoted_names_in_openmetrics() {
    let p = om(concat!(
        "# TYPE \"my.counter\" counter\n",
        "# HELP \"my.counter\" Dotted \\\"counter\\\".\n",
        "{\"my.counter_total\",\"my.label\"=\"v\"} 1 # {\"trace.id\"=\"abc\"} 0.5\n",
        "{\"my.counter_created\",\"my.label\"=\"v\"} 1700000000\n",
        "# TYPE \"my.gauge\" gauge\n",
        "# UNIT \"my.gauge\" \n",
        "{\"my.gauge\"} 2\n",
        "{le=\"x\",\"my.gauge\"} 3\n",
        "# EOF\n",
    ));
    assert_eq!(
        shown(&p),
        [
            "my.counter_total{my.label=v} 1",
            "my.counter_created{my.label=v} 1700000000",
            "my.gauge{} 2",
            "my.gauge{le=x} 3",
        ]
    );
    let ex = p.samples[0].exemplar.as_ref().expect("exemplar");
    assert_eq!(ex.labels[0].0, "trace.id");
    let names: Vec<_> = p.metadata.iter().map(|m| (&*m.name, m.kind)).collect();
    assert_eq!(
        names,
        [
            ("my.counter", Some(MetricType::Counter)),
            ("my.gauge", Some(MetricType::Gauge))
        ]
    );
    assert_eq!(p.metadata[0].help.as_deref(), Some("Dotted \"counter\"."));
    // The family rules apply to quoted names as to bare ones.
    let e = om_err("# TYPE \"my.c\" counter\n{\"my.c_total\"} -1\n# EOF\n");
    assert!(e.message.contains("non-negative"), "{e}");
}

#[test]
fn quoted_name_errors_in_openmetrics() {
    let cases = [
        ("a{\"b\"} 1\n# EOF\n", 1, 3, "metric name already set"),
        ("{\"a\",\"b\"} 1\n# EOF\n", 1, 6, "metric name already set"),
        ("{x=\"y\"} 1\n# EOF\n", 1, 1, "metric name not set"),
        (
            "{\"a\", x=\"y\"} 1\n# EOF\n",
            1,
            5,
            "expected a label after ','",
        ),
        ("{\"a\",} 1\n# EOF\n", 1, 5, "expected a label after ','"),
        (
            "# TYPE a counter\na_total 1 # {\"m\"} 1\n# EOF\n",
            2,
            14,
            "in an exemplar",
        ),
        (
            "# TYPE \"a.b\"counter\n# EOF\n",
            1,
            13,
            "expected a space after the metric name",
        ),
    ];
    for (body, line, column, message) in cases {
        let e = om_err(body);
        assert_eq!(e.at, Position::Text { line, column }, "{body:?}: {e}");
        assert!(e.message.contains(message), "{body:?}: {e}");
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Text made of the bytes and fragments that matter to both grammars.
    fn exposition_like() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("a".to_string()),
            Just("_total".to_string()),
            Just("_bucket".to_string()),
            Just("{".to_string()),
            Just("}".to_string()),
            Just("le=\"+Inf\"".to_string()),
            Just("=".to_string()),
            Just("\"".to_string()),
            Just("\\".to_string()),
            Just(",".to_string()),
            Just(" ".to_string()),
            Just("\t".to_string()),
            Just("\n".to_string()),
            Just("# TYPE a counter\n".to_string()),
            Just("# TYPE a histogram\n".to_string()),
            Just("# HELP a x\n".to_string()),
            Just("# UNIT a_s s\n".to_string()),
            Just("# EOF".to_string()),
            Just(" # {x=\"y\"} 1".to_string()),
            "[0-9.eE+-]{1,6}",
            Just("NaN".to_string()),
            Just("Inf".to_string()),
            Just("é".to_string()),
        ];
        prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Any input gives samples or an error inside the body, never a panic.
        #[test]
        fn never_panics(text in exposition_like(), cut in 0usize..4) {
            for format in [Format::Prometheus, Format::OpenMetrics] {
                let mut bytes = text.clone().into_bytes();
                if cut == 0 && !bytes.is_empty() {
                    bytes[0] = 0xff; // invalid UTF-8 somewhere
                }
                match parse(&bytes, format) {
                    Ok(p) => {
                        for s in &p.samples {
                            prop_assert!(s.labels.end as usize <= p.labels.len());
                        }
                    }
                    Err(e) => {
                        let Position::Text { line, column } = e.at else {
                            panic!("a text body's error at a byte offset: {e:?}");
                        };
                        prop_assert!(line >= 1 && column >= 1);
                        prop_assert!(line <= bytes.iter().filter(|&&b| b == b'\n').count() + 1);
                    }
                }
            }
        }

        /// Samples written in the text format (with escapes) read back exactly.
        #[test]
        fn text_round_trip(
            samples in prop::collection::vec((
                "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
                prop::collection::vec(("[a-zA-Z_][a-zA-Z0-9_]{0,8}", "\\PC{0,12}"), 0..4),
                any::<f64>(),
                prop::option::of(0i64..i64::MAX),
            ), 0..20)
        ) {
            let mut body = String::new();
            for (name, labels, value, ts) in &samples {
                body.push_str(name);
                body.push('{');
                for (k, v) in labels {
                    let escaped = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                    body.push_str(&format!("{k}=\"{escaped}\","));
                }
                body.push_str("} ");
                body.push_str(&crate::format::float_string(*value));
                if let Some(ts) = ts {
                    body.push_str(&format!(" {ts}"));
                }
                body.push('\n');
            }
            let parsed = parse(body.as_bytes(), Format::Prometheus).map_err(|e| TestCaseError::fail(format!("{e}\n{body}")))?;
            prop_assert_eq!(parsed.samples.len(), samples.len());
            for (s, (name, labels, value, ts)) in parsed.samples.iter().zip(&samples) {
                prop_assert_eq!(&*s.name, name.as_str());
                prop_assert!(s.value == *value || (s.value.is_nan() && value.is_nan()));
                prop_assert_eq!(s.timestamp_ms, *ts);
                let got: Vec<(&str, &str)> = parsed.labels_of(s).iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
                let want: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}

#[test]
fn openmetrics_histogram_with_sum_and_count_first_parses() {
    // The order the Rust prometheus-client writes, and Prometheus accepts.
    let body = b"# TYPE d histogram\nd_sum 1.5\nd_count 2\nd_bucket{le=\"1.0\"} 1\nd_bucket{le=\"+Inf\"} 2\n# EOF\n";
    let parsed = parse(body, Format::OpenMetrics).expect("parses");
    assert_eq!(parsed.samples.len(), 4);
    // The count must still equal the +Inf bucket.
    let bad = b"# TYPE d histogram\nd_sum 1.5\nd_count 3\nd_bucket{le=\"+Inf\"} 2\n# EOF\n";
    assert!(parse(bad, Format::OpenMetrics).is_err());
}

#[test]
fn the_parse_stops_at_samples_max() {
    let options = ParseOptions {
        samples_max: 2,
        ..ParseOptions::default()
    };
    let p = parse_with(
        b"a 1\nb 1\n# HELP c x\nc 1\nd 1\n",
        Format::Prometheus,
        &options,
    )
    .unwrap();
    assert_eq!((p.samples.len(), p.truncated), (2, true));
    let p = parse_with(b"a 1\nb 1\n", Format::Prometheus, &options).unwrap();
    assert_eq!((p.samples.len(), p.truncated), (2, false));
    // The rest is not read: a bad line after the stop is not found.
    let p = parse_with(b"a 1\nb 1\n}}}\n", Format::Prometheus, &options).unwrap();
    assert!(p.truncated);
    let p = parse_with(b"a 1\nb 1\nc 1\n# EOF\n", Format::OpenMetrics, &options).unwrap();
    assert_eq!((p.samples.len(), p.truncated), (2, true));
    let p = parse_with(b"a 1\nb 1\n# EOF\n", Format::OpenMetrics, &options).unwrap();
    assert_eq!((p.samples.len(), p.truncated), (2, false));
}

#[test]
fn openmetrics_without_eof_fails_with_prometheus_words() {
    let e = parse(b"a 1\n", Format::OpenMetrics).unwrap_err();
    assert_eq!(e.message, "data does not end with # EOF");
}
