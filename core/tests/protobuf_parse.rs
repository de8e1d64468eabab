//! The protobuf parser, sample by sample: bodies written with prost
//! (`scrapepool_core::testing::client_model`), the exact samples Prometheus 3.16's
//! `ProtobufParser` gives for them (native histograms not scraped), and its errors.

use scrapepool_core::exposition::{parse, Format, MetricType, ParseError, Parsed, Position};
use scrapepool_core::testing::client_model::{
    encode_delimited, Bucket, BucketSpan, Counter, Exemplar, Histogram, LabelPair, Metric,
    MetricFamily, Quantile, Summary, Timestamp, Value,
};

fn pair(name: &str, value: &str) -> LabelPair {
    LabelPair {
        name: name.into(),
        value: value.into(),
    }
}

fn family(name: &str, kind: i32, metric: Vec<Metric>) -> MetricFamily {
    MetricFamily {
        name: name.into(),
        help: format!("help of {name}"),
        r#type: kind,
        metric,
        unit: String::new(),
    }
}

/// Each sample as `name{labels} value [@ts]`, labels in the order given.
fn lines(parsed: &Parsed<'_>) -> Vec<String> {
    parsed
        .samples
        .iter()
        .map(|s| {
            let labels: Vec<String> = parsed
                .labels_of(s)
                .iter()
                .map(|(n, v)| format!("{n}={v:?}"))
                .collect();
            let ts = s.timestamp_ms.map(|t| format!(" @{t}")).unwrap_or_default();
            format!("{}{{{}}} {}{ts}", s.name, labels.join(","), s.value)
        })
        .collect()
}

fn ok(families: &[MetricFamily]) -> Vec<String> {
    let body = encode_delimited(families);
    lines(&parse(&body, Format::Protobuf).expect("parses"))
}

fn err(body: &[u8]) -> ParseError {
    parse(body, Format::Protobuf).expect_err("refused")
}

#[test]
fn counters_gauges_and_untyped_give_their_value_with_labels_sorted() {
    let counter = Metric {
        label: vec![pair("path", "/a"), pair("code", "200")],
        counter: Some(Counter {
            value: 7.0,
            ..Counter::default()
        }),
        timestamp_ms: 1_700_000_000_123,
        ..Metric::default()
    };
    let gauge = Metric {
        gauge: Some(Value { value: -1.5 }),
        ..Metric::default()
    };
    // A gauge family whose metric carries no gauge: 0, as Prometheus reads it.
    let empty = Metric::default();
    let untyped = Metric {
        untyped: Some(Value { value: 3.0 }),
        ..Metric::default()
    };
    assert_eq!(
        ok(&[
            family("requests_total", 0, vec![counter]),
            family("temp", 1, vec![gauge, empty]),
            family("thing", 3, vec![untyped]),
        ]),
        [
            r#"requests_total{code="200",path="/a"} 7 @1700000000123"#,
            "temp{} -1.5",
            "temp{} 0",
            "thing{} 3",
        ]
    );
}

#[test]
fn a_summary_gives_count_sum_then_quantiles() {
    let m = Metric {
        label: vec![pair("z", "1")],
        summary: Some(Summary {
            sample_count: 10,
            sample_sum: 4.5,
            quantile: vec![
                Quantile {
                    quantile: 0.5,
                    value: 0.25,
                },
                Quantile {
                    quantile: 1.0,
                    value: 2.0,
                },
            ],
            start_timestamp: Some(Timestamp {
                seconds: 1,
                nanos: 0,
            }),
        }),
        ..Metric::default()
    };
    let no_quantiles = Metric {
        summary: Some(Summary {
            sample_count: 1,
            sample_sum: 1.0,
            ..Summary::default()
        }),
        ..Metric::default()
    };
    assert_eq!(
        ok(&[family("rpc", 2, vec![m, no_quantiles])]),
        [
            r#"rpc_count{z="1"} 10"#,
            r#"rpc_sum{z="1"} 4.5"#,
            r#"rpc{quantile="0.5",z="1"} 0.25"#,
            r#"rpc{quantile="1.0",z="1"} 2"#,
            "rpc_count{} 1",
            "rpc_sum{} 1",
        ]
    );
}

fn bucket(upper_bound: f64, count: u64) -> Bucket {
    Bucket {
        cumulative_count: count,
        upper_bound,
        ..Bucket::default()
    }
}

#[test]
fn a_classic_histogram_gives_count_sum_buckets_and_an_inf_bucket_when_missing() {
    let m = Metric {
        label: vec![pair("a", "x")],
        histogram: Some(Histogram {
            sample_count: 5,
            sample_sum: 12.0,
            bucket: vec![bucket(0.1, 1), bucket(1.0, 3), bucket(1e6, 4)],
            ..Histogram::default()
        }),
        ..Metric::default()
    };
    assert_eq!(
        ok(&[family("lat", 4, vec![m])]),
        [
            r#"lat_count{a="x"} 5"#,
            r#"lat_sum{a="x"} 12"#,
            r#"lat_bucket{a="x",le="0.1"} 1"#,
            r#"lat_bucket{a="x",le="1.0"} 3"#,
            r#"lat_bucket{a="x",le="1e+06"} 4"#,
            r#"lat_bucket{a="x",le="+Inf"} 5"#,
        ]
    );
}

#[test]
fn buckets_stop_at_the_first_inf_and_float_counts_win_when_set() {
    let m = Metric {
        histogram: Some(Histogram {
            sample_count: 9,
            sample_count_float: 2.5,
            sample_sum: 1.0,
            bucket: vec![
                Bucket {
                    cumulative_count: 9,
                    cumulative_count_float: 1.5,
                    upper_bound: 1.0,
                    exemplar: None,
                },
                bucket(f64::INFINITY, 2),
                bucket(5.0, 3),
            ],
            ..Histogram::default()
        }),
        ..Metric::default()
    };
    // A gauge histogram reads the same way; the label `zz` sorts after `le`.
    let g = Metric {
        label: vec![pair("zz", "1")],
        histogram: Some(Histogram {
            sample_count: 1,
            bucket: vec![bucket(2.0, 1)],
            ..Histogram::default()
        }),
        ..Metric::default()
    };
    assert_eq!(
        ok(&[family("h", 4, vec![m]), family("g", 5, vec![g])]),
        [
            "h_count{} 2.5",
            "h_sum{} 1",
            r#"h_bucket{le="1.0"} 1.5"#,
            r#"h_bucket{le="+Inf"} 2"#,
            r#"g_count{zz="1"} 1"#,
            r#"g_sum{zz="1"} 0"#,
            r#"g_bucket{le="2.0",zz="1"} 1"#,
            r#"g_bucket{le="+Inf",zz="1"} 1"#,
        ]
    );
}

#[test]
fn a_native_histogram_reads_as_its_classic_part_without_native_scraping() {
    let native = Histogram {
        sample_count: 6,
        sample_sum: -3.0,
        schema: 3,
        zero_threshold: 1e-128,
        zero_count: 1,
        positive_span: vec![
            BucketSpan {
                offset: -2,
                length: 2,
            },
            BucketSpan {
                offset: 3,
                length: 1,
            },
        ],
        positive_delta: vec![1, 1, -1],
        negative_span: vec![BucketSpan {
            offset: 0,
            length: 1,
        }],
        negative_delta: vec![2],
        ..Histogram::default()
    };
    let both = Histogram {
        bucket: vec![bucket(1.0, 4)],
        ..native.clone()
    };
    let m = |h: Histogram| Metric {
        histogram: Some(h),
        ..Metric::default()
    };
    assert_eq!(
        ok(&[family("n", 4, vec![m(native), m(both)])]),
        [
            "n_count{} 6",
            "n_sum{} -3",
            r#"n_bucket{le="+Inf"} 6"#,
            "n_count{} 6",
            "n_sum{} -3",
            r#"n_bucket{le="1.0"} 4"#,
            r#"n_bucket{le="+Inf"} 6"#,
        ]
    );
}

#[test]
fn metadata_and_exemplars() {
    let ex = |value: f64, ts: Option<Timestamp>| Exemplar {
        label: vec![pair("trace_id", "abc"), pair("span", "1")],
        value,
        timestamp: ts,
    };
    let counter = Metric {
        counter: Some(Counter {
            value: 1.0,
            exemplar: Some(ex(
                0.5,
                Some(Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 250_000_000,
                }),
            )),
            start_timestamp: None,
        }),
        ..Metric::default()
    };
    let hist = Metric {
        histogram: Some(Histogram {
            sample_count: 1,
            bucket: vec![Bucket {
                exemplar: Some(ex(0.1, None)),
                ..bucket(1.0, 1)
            }],
            ..Histogram::default()
        }),
        ..Metric::default()
    };
    let mut with_unit = family("c_seconds_total", 0, vec![counter]);
    with_unit.unit = "seconds".into();
    // A family without metrics gives nothing, not even metadata.
    let empty = family("nothing", 1, vec![]);
    let body = encode_delimited(&[with_unit, empty, family("h", 4, vec![hist])]);
    let parsed = parse(&body, Format::Protobuf).expect("parses");
    let meta: Vec<_> = parsed
        .metadata
        .iter()
        .map(|m| (m.name.as_ref(), m.kind, m.help.as_deref(), m.unit))
        .collect();
    assert_eq!(
        meta,
        [
            (
                "c_seconds_total",
                Some(MetricType::Counter),
                Some("help of c_seconds_total"),
                Some("seconds")
            ),
            ("h", Some(MetricType::Histogram), Some("help of h"), None),
        ]
    );
    let exemplars: Vec<_> = parsed
        .samples
        .iter()
        .map(|s| {
            s.exemplar.as_ref().map(|e| {
                let labels: Vec<String> =
                    e.labels.iter().map(|(n, v)| format!("{n}={v}")).collect();
                (labels.join(","), e.value, e.timestamp_ms)
            })
        })
        .collect();
    let traced = |v: f64, ts: Option<i64>| Some(("span=1,trace_id=abc".to_string(), v, ts));
    assert_eq!(
        exemplars,
        [
            traced(0.5, Some(1_700_000_000_250)),
            None,              // h_count
            None,              // h_sum
            traced(0.1, None), // h_bucket{le="1.0"}
            None,              // h_bucket{le="+Inf"}, synthetic
        ]
    );
}

#[test]
fn a_parse_stops_at_samples_max() {
    let m = |v: f64| Metric {
        gauge: Some(Value { value: v }),
        ..Metric::default()
    };
    let body = encode_delimited(&[
        family("a", 1, vec![m(1.0), m(2.0)]),
        family("b", 1, vec![m(3.0)]),
    ]);
    let options = scrapepool_core::exposition::ParseOptions {
        samples_max: 2,
        ..Default::default()
    };
    let parsed =
        scrapepool_core::exposition::parse_with(&body, Format::Protobuf, &options).expect("parses");
    assert_eq!(lines(&parsed), ["a{} 1", "a{} 2"]);
    assert!(parsed.truncated);
}

#[test]
fn errors_say_what_and_at_which_byte() {
    let one = |f: MetricFamily| encode_delimited(&[f]);
    let gauge = || Metric {
        gauge: Some(Value { value: 1.0 }),
        ..Metric::default()
    };
    let e = err(&one(family("", 1, vec![gauge()])));
    assert_eq!(e.message, "invalid metric name: ");
    let e = err(&one(family("x", 7, vec![gauge()])));
    assert_eq!(
        (e.at, e.message.as_str()),
        (Position::Byte(1), "unknown metric type for metric \"x\": 7")
    );
    let unnamed = Metric {
        label: vec![pair("", "v")],
        ..gauge()
    };
    assert_eq!(
        err(&one(family("x", 1, vec![unnamed]))).message,
        "invalid label name: "
    );
    // A label value that is not UTF-8: prost writes strings, so patch the bytes.
    let mut body = one(family(
        "x",
        1,
        vec![Metric {
            label: vec![pair("k", "é")],
            ..gauge()
        }],
    ));
    let at = body
        .windows(2)
        .position(|w| w == "é".as_bytes())
        .expect("é in the body");
    body[at] = 0xff;
    let e = err(&body);
    assert_eq!(e.at, Position::Byte(at - 2));
    assert!(e.message.starts_with("invalid label value: "), "{e}");
    // A length prefix past the end of the body.
    let body = one(family("x", 1, vec![gauge()]));
    let e = err(&body[..body.len() - 1]);
    assert_eq!(e.at, Position::Byte(0));
    assert!(e.message.contains("insufficient length of buffer"), "{e}");
    // A prefix of six bytes is refused, as Prometheus refuses one over `MaxVarintLen32`.
    let e = err(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
    assert_eq!(e.message, "clientpb: invalid varint encountered");
    // The family's name written as a varint: a wrong wire type.
    let e = err(&[2, 0x08, 0x01]);
    assert_eq!(
        (e.at, e.message.as_str()),
        (
            Position::Byte(1),
            "proto: MetricFamily: wrong wire type for field name"
        )
    );
    assert_eq!(
        e.to_string(),
        "byte 1: proto: MetricFamily: wrong wire type for field name"
    );
}

#[test]
fn unknown_fields_and_groups_are_skipped_and_repeated_messages_merge() {
    // Family "g" (gauge) with one metric, followed by an unknown varint field 9, an unknown
    // group 10 holding a varint, and the metric's gauge written twice (merged: the second
    // value wins).
    let metric = [
        0x12, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // gauge { value: 1.0 }
        0x12, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0x00, 0x40, // gauge { value: 2.0 }
    ];
    let mut fam = vec![0x0a, 0x01, b'g', 0x18, 0x01, 0x22, metric.len() as u8];
    fam.extend_from_slice(&metric);
    fam.extend_from_slice(&[0x48, 0x05, 0x53, 0x08, 0x01, 0x54]);
    let mut body = vec![fam.len() as u8];
    body.extend_from_slice(&fam);
    let parsed = parse(&body, Format::Protobuf).expect("parses");
    assert_eq!(lines(&parsed), ["g{} 2"]);
    // The same reading from prost.
    assert!(scrapepool_core::testing::fuzz_parse_protobuf(&body));
}

/// A sample as `(name, labels sorted, value bits, timestamp)`.
type Flat = (String, Vec<(String, String)>, u64, Option<i64>);

/// Every sample of a body, flattened and sorted.
fn sample_set(parsed: &Parsed<'_>) -> Vec<Flat> {
    let mut set: Vec<_> = parsed
        .samples
        .iter()
        .map(|s| {
            let mut labels: Vec<(String, String)> = parsed
                .labels_of(s)
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            labels.sort();
            (
                s.name.to_string(),
                labels,
                s.value.to_bits(),
                s.timestamp_ms,
            )
        })
        .collect();
    set.sort();
    set
}

#[test]
fn protobuf_fixtures_give_the_samples_of_their_text_twins() {
    // `go-exporter text2pb` (client_golang's expfmt) wrote each text fixture as protobuf, and
    // client_golang answered each format for the same registry; the samples must be the
    // same whichever format carries them.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/exposition");
    let pairs = [
        (
            "node_exporter-1.5.0.prom",
            "go-exporter/node_exporter-1.5.0.pb",
        ),
        ("prometheus-2.42.0.prom", "go-exporter/prometheus-2.42.0.pb"),
        (
            "victoria-metrics-1.79.5.prom",
            "go-exporter/victoria-metrics-1.79.5.pb",
        ),
        ("synthetic-heavy.prom", "go-exporter/synthetic-heavy.pb"),
        (
            "go-exporter/client_golang-1.25.0.prom",
            "go-exporter/client_golang-1.25.0.pb",
        ),
        (
            "go-exporter/client_golang-1.25.0-utf8.prom",
            "go-exporter/client_golang-1.25.0-utf8.pb",
        ),
    ];
    for (text, pb) in pairs {
        let text_body = std::fs::read(dir.join(text)).expect("read the text fixture");
        let pb_body = std::fs::read(dir.join(pb)).expect("read the protobuf fixture");
        let from_text = parse(&text_body, Format::Prometheus).expect("text parses");
        let from_pb = parse(&pb_body, Format::Protobuf).unwrap_or_else(|e| panic!("{pb}: {e}"));
        let (a, b) = (sample_set(&from_text), sample_set(&from_pb));
        assert!(a.len() > 10, "{text}: {} samples", a.len());
        if a != b {
            let only_text: Vec<_> = a.iter().filter(|s| !b.contains(s)).take(3).collect();
            let only_pb: Vec<_> = b.iter().filter(|s| !a.contains(s)).take(3).collect();
            panic!(
                "{pb} vs {text}: {} vs {} samples; only in text: {only_text:?}; only in protobuf: {only_pb:?}",
                a.len(),
                b.len()
            );
        }
        // And the independent reading agrees on every one of them.
        assert!(
            scrapepool_core::testing::fuzz_parse_protobuf(&pb_body),
            "{pb}"
        );
    }
}

fn native_options() -> scrapepool_core::exposition::ParseOptions {
    scrapepool_core::exposition::ParseOptions {
        native_histograms: true,
        ..Default::default()
    }
}

#[test]
fn with_native_histograms_a_native_one_is_one_sample_float_or_integer() {
    use scrapepool_core::histogram::{Counts, Span};
    let span = |offset: i32, length: u32| BucketSpan { offset, length };
    let float = Metric {
        label: vec![pair("b", "2"), pair("a", "1")],
        histogram: Some(Histogram {
            sample_count_float: 3.5,
            sample_sum: 1.0,
            schema: -1,
            zero_threshold: 0.5,
            zero_count_float: 0.5,
            negative_span: vec![span(1, 2)],
            negative_count: vec![1.0, 2.0],
            ..Histogram::default()
        }),
        timestamp_ms: 5,
        ..Metric::default()
    };
    // Classic-only in a native scrape: still classic.
    let classic = Metric {
        histogram: Some(Histogram {
            sample_count: 1,
            bucket: vec![bucket(1.0, 1)],
            ..Histogram::default()
        }),
        ..Metric::default()
    };
    let body = encode_delimited(&[family("g", 5, vec![float, classic])]);
    let parsed =
        scrapepool_core::exposition::parse_with(&body, Format::Protobuf, &native_options())
            .expect("parses");
    let h = parsed.samples[0]
        .histogram
        .as_deref()
        .expect("a native histogram");
    assert_eq!(parsed.samples[0].name, "g");
    assert_eq!(parsed.samples[0].timestamp_ms, Some(5));
    let labels: Vec<_> = parsed
        .labels_of(&parsed.samples[0])
        .iter()
        .map(|(n, _)| n.as_ref())
        .collect();
    assert_eq!(labels, ["a", "b"]);
    assert!(h.gauge, "a gauge histogram");
    assert_eq!((h.schema, h.zero_threshold, h.sum), (-1, 0.5, 1.0));
    assert_eq!(
        h.negative_spans,
        vec![Span {
            offset: 1,
            length: 2
        }]
    );
    assert_eq!(
        h.counts,
        Counts::Float {
            count: 3.5,
            zero_count: 0.5,
            positive: vec![],
            negative: vec![1.0, 2.0]
        }
    );
    assert_eq!(
        lines(&parsed)[1..],
        [
            "g_count{} 1",
            "g_sum{} 0",
            r#"g_bucket{le="1.0"} 1"#,
            r#"g_bucket{le="+Inf"} 1"#
        ]
    );
}

#[test]
fn spans_that_do_not_fit_their_buckets_fail_the_parse() {
    let m = Metric {
        histogram: Some(Histogram {
            sample_count: 1,
            positive_span: vec![BucketSpan {
                offset: 0,
                length: 3,
            }],
            positive_delta: vec![1],
            ..Histogram::default()
        }),
        ..Metric::default()
    };
    let body = encode_delimited(&[family("h", 4, vec![m])]);
    let e = scrapepool_core::exposition::parse_with(&body, Format::Protobuf, &native_options())
        .expect_err("refused");
    assert_eq!(
        e.message,
        "histogram \"h\": positive side: spans require 3 buckets, have 1"
    );
    // Without native histograms the native part is not read, so not checked.
    assert!(parse(&body, Format::Protobuf).is_ok());
}
