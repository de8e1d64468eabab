use super::*;
use crate::labels::ValidationScheme;
use crate::protocol::ScrapeProtocol;
use crate::sample::STALE_NAN_BITS;

pub(crate) fn spec() -> ScrapeSpec {
    ScrapeSpec {
        url: "http://h:9100/metrics".into(),
        target_labels: Labels::from_pairs([("instance", "h:9100"), ("job", "node")]),
        interval: Duration::from_secs(15),
        timeout: Duration::from_secs(10),
        honor_labels: false,
        honor_timestamps: true,
        track_timestamps_staleness: false,
        extra_scrape_metrics: false,
        external_labels: Labels::new(),
        enable_compression: true,
        limits: Limits::default(),
        metric_relabel_configs: Vec::new(),
        basic_auth: None,
        authorization: None,
        tls_config: TlsConfig::default(),
        http_client: Default::default(),
        emit: EmitSpec {
            encoding: Encoding::RemoteWrite,
            message_bytes_max: 1 << 20,
            scraper_id: "s1".into(),
            job: "node".into(),
            instance: "h:9100".into(),
            key_hash: 7,
        },
        exposition: Default::default(),
        histograms: Default::default(),
    }
}

fn body(text: &str) -> FetchOutcome {
    FetchOutcome::Body {
        body: text.as_bytes().to_vec(),
        content_type: Some("text/plain; version=0.0.4".into()),
    }
}

fn failed() -> FetchOutcome {
    FetchOutcome::Failed {
        error: ScrapeError::Connect {
            url: "http://h:9100/metrics".into(),
            address: "h:9100".into(),
            reason: "connect: connection refused".into(),
        },
    }
}

/// The report's error as the operator sees it.
fn error_text(r: &ScrapeReport) -> Option<String> {
    r.error.as_ref().map(ToString::to_string)
}

const MS: Duration = Duration::from_millis(250);

/// The samples as `{labels} value@ts` lines, stale markers shown as `STALE`.
fn show(samples: &[Sample]) -> Vec<String> {
    samples
        .iter()
        .map(|s| {
            let v = if s.value.to_bits() == STALE_NAN_BITS {
                "STALE".to_string()
            } else {
                format!("{}", s.value)
            };
            format!("{} {v}@{}", s.labels, s.timestamp_ms)
        })
        .collect()
}

fn scraped(samples: &[Sample]) -> Vec<String> {
    show(samples)
        .into_iter()
        .filter(|l| {
            !REPORT_SERIES
                .iter()
                .any(|n| l.contains(&format!("__name__=\"{n}\"")))
        })
        .collect()
}

fn report_values(samples: &[Sample]) -> Vec<f64> {
    let n = samples.len();
    samples[n - 5..].iter().map(|s| s.value).collect()
}

#[test]
fn target_labels_win_and_conflicts_are_exported() {
    let mut cache = SeriesCache::default();
    let text = "a{job=\"app\",exported_job=\"x\",instance=\"\",zone=\"z\"} 1\n";
    let (r, out) = process(&spec(), &mut cache, Timestamp(1000), MS, &body(text));
    assert!(r.up, "{r:?}");
    assert_eq!(
        scraped(&out),
        vec![
            r#"{__name__="a", exported_exported_job="app", exported_job="x", instance="h:9100", job="node", zone="z"} 1@1000"#
        ]
    );
}

#[test]
fn conflicts_resolve_shortest_name_first() {
    let mut s = spec();
    s.target_labels = Labels::from_pairs([("a", "T"), ("exported_a", "U")]);
    let mut cache = SeriesCache::default();
    let (_, out) = process(
        &s,
        &mut cache,
        Timestamp(0),
        MS,
        &body("m{a=\"1\",exported_a=\"2\"} 1\n"),
    );
    // `a` is settled first: exported_a is taken (target), so exported_exported_a="1"; then
    // `exported_a`'s scraped value moves to exported_exported_exported_a.
    assert_eq!(
        scraped(&out),
        vec![
            r#"{__name__="m", a="T", exported_a="U", exported_exported_a="1", exported_exported_exported_a="2"} 1@0"#
        ]
    );
}

#[test]
fn honor_labels_keeps_scraped_values() {
    let mut s = spec();
    s.honor_labels = true;
    let mut cache = SeriesCache::default();
    let (_, out) = process(
        &s,
        &mut cache,
        Timestamp(5),
        MS,
        &body("a{job=\"app\"} 2\n"),
    );
    assert_eq!(
        scraped(&out),
        vec![r#"{__name__="a", instance="h:9100", job="app"} 2@5"#]
    );
}

#[test]
fn honor_timestamps_keeps_or_replaces_exporter_timestamps() {
    let text = "a 1 123\nb 2\n";
    let mut cache = SeriesCache::default();
    let (_, out) = process(&spec(), &mut cache, Timestamp(1000), MS, &body(text));
    assert_eq!(
        scraped(&out),
        vec![
            r#"{__name__="a", instance="h:9100", job="node"} 1@123"#,
            r#"{__name__="b", instance="h:9100", job="node"} 2@1000"#
        ]
    );
    let mut s = spec();
    s.honor_timestamps = false;
    let mut cache = SeriesCache::default();
    let (_, out) = process(&s, &mut cache, Timestamp(1000), MS, &body(text));
    assert_eq!(
        scraped(&out),
        vec![
            r#"{__name__="a", instance="h:9100", job="node"} 1@1000"#,
            r#"{__name__="b", instance="h:9100", job="node"} 2@1000"#
        ]
    );
}

#[test]
fn synthetic_series_carry_target_labels_and_prometheus_values() {
    // Go's Duration.Seconds(): whole seconds plus nanoseconds / 1e9, in float64.
    assert_eq!(1.0 + 500_250_000.0 / 1e9, 1.500_249_999_999_999_9);
    let mut cache = SeriesCache::default();
    let (r, out) = process(
        &spec(),
        &mut cache,
        Timestamp(1000),
        Duration::from_micros(1_500_250),
        &body("a 1\nb 2\nb 3\n"),
    );
    assert_eq!(
        show(&out[out.len() - 5..]),
        vec![
            r#"{__name__="up", instance="h:9100", job="node"} 1@1000"#,
            r#"{__name__="scrape_duration_seconds", instance="h:9100", job="node"} 1.5002499999999999@1000"#,
            r#"{__name__="scrape_samples_scraped", instance="h:9100", job="node"} 3@1000"#,
            r#"{__name__="scrape_samples_post_metric_relabeling", instance="h:9100", job="node"} 3@1000"#,
            r#"{__name__="scrape_series_added", instance="h:9100", job="node"} 2@1000"#,
        ]
    );
    assert_eq!(r.duplicate_samples, 1);
    // Second scrape of the same payload: nothing new.
    let (_, out) = process(
        &spec(),
        &mut cache,
        Timestamp(2000),
        MS,
        &body("a 1\nb 2\n"),
    );
    assert_eq!(report_values(&out), vec![1.0, 0.25, 2.0, 2.0, 0.0]);
}

#[test]
fn failed_fetch_reports_down_with_zero_counts() {
    let mut cache = SeriesCache::default();
    let (r, out) = process(&spec(), &mut cache, Timestamp(1000), MS, &failed());
    assert!(!r.up);
    assert_eq!(
        error_text(&r).as_deref(),
        Some("Get \"http://h:9100/metrics\": dial tcp h:9100: connect: connection refused")
    );
    assert_eq!(report_values(&out), vec![0.0, 0.25, 0.0, 0.0, 0.0]);
    assert_eq!(out.len(), 5);
}

#[test]
fn duplicate_series_keep_the_first_sample() {
    let mut cache = SeriesCache::default();
    // Same series written twice, the second time with labels in another order.
    let text = "a{x=\"1\",y=\"2\"} 1\na{y=\"2\",x=\"1\"} 2\na{x=\"1\",y=\"2\"} 3\n";
    let (r, out) = process(&spec(), &mut cache, Timestamp(1000), MS, &body(text));
    assert!(r.up);
    assert_eq!(
        scraped(&out),
        vec![r#"{__name__="a", instance="h:9100", job="node", x="1", y="2"} 1@1000"#]
    );
    assert_eq!(r.duplicate_samples, 2);
    assert_eq!(
        r.samples_post_metric_relabeling, 3,
        "duplicates still count, as in Prometheus"
    );
    // The reordered text is new, but its sample was not accepted: not counted (Prometheus).
    assert_eq!(r.series_added, 1);
}

#[test]
fn exporter_timestamps_out_of_order_and_too_far_ahead_are_dropped() {
    let mut cache = SeriesCache::default();
    let text = "a 1 2000\na 2 1500\nb 1 700000\n";
    let (r, out) = process(&spec(), &mut cache, Timestamp(1000), MS, &body(text));
    assert_eq!(
        scraped(&out),
        vec![r#"{__name__="a", instance="h:9100", job="node"} 1@2000"#]
    );
    assert_eq!((r.out_of_order_samples, r.out_of_bounds_samples), (1, 1));
}

#[test]
fn series_gone_from_a_successful_scrape_get_one_marker() {
    let mut cache = SeriesCache::default();
    let (_, _) = process(
        &spec(),
        &mut cache,
        Timestamp(1000),
        MS,
        &body("a 1\nb 1\nc 1\n"),
    );
    let (r, out) = process(&spec(), &mut cache, Timestamp(2000), MS, &body("b 2\n"));
    assert_eq!(r.stale_markers, 2);
    assert_eq!(
        scraped(&out),
        vec![
            r#"{__name__="b", instance="h:9100", job="node"} 2@2000"#,
            r#"{__name__="a", instance="h:9100", job="node"} STALE@2000"#,
            r#"{__name__="c", instance="h:9100", job="node"} STALE@2000"#,
        ]
    );
    let (r, out) = process(&spec(), &mut cache, Timestamp(3000), MS, &body("b 3\n"));
    assert_eq!(r.stale_markers, 0);
    assert_eq!(scraped(&out).len(), 1);
    assert_eq!(
        cache.series(),
        vec![Labels::from_pairs([
            ("__name__", "b"),
            ("instance", "h:9100"),
            ("job", "node")
        ])]
    );
}

#[test]
fn a_failed_scrape_marks_every_series_once() {
    let mut cache = SeriesCache::default();
    process(
        &spec(),
        &mut cache,
        Timestamp(1000),
        MS,
        &body("a 1\nb 1\n"),
    );
    let (r, out) = process(&spec(), &mut cache, Timestamp(2000), MS, &failed());
    assert_eq!(r.stale_markers, 2);
    assert_eq!(
        scraped(&out),
        vec![
            r#"{__name__="a", instance="h:9100", job="node"} STALE@2000"#,
            r#"{__name__="b", instance="h:9100", job="node"} STALE@2000"#
        ]
    );
    assert!(cache.is_empty());
    let (r, out) = process(&spec(), &mut cache, Timestamp(3000), MS, &failed());
    assert_eq!((r.stale_markers, out.len()), (0, 5), "no double markers");
    // Back up: the series texts are still cached, so as in Prometheus they are not "added".
    let (r, out) = process(&spec(), &mut cache, Timestamp(4000), MS, &body("a 1\n"));
    assert_eq!((r.stale_markers, r.series_added), (0, 0));
    assert_eq!(scraped(&out).len(), 1);
}

#[test]
fn series_with_exporter_timestamps_get_no_markers() {
    let mut cache = SeriesCache::default();
    process(
        &spec(),
        &mut cache,
        Timestamp(1000),
        MS,
        &body("a 1 900\nb 1\n"),
    );
    let (r, _) = process(&spec(), &mut cache, Timestamp(2000), MS, &body(""));
    assert!(r.up, "an empty body is a successful scrape in Prometheus");
    assert_eq!(r.stale_markers, 1);
}

#[test]
fn removed_target_markers_cover_series_and_synthetic_series() {
    let mut cache = SeriesCache::default();
    assert!(
        stale_markers(&cache, Timestamp(9)).is_empty(),
        "never scraped: nothing to mark"
    );
    process(
        &spec(),
        &mut cache,
        Timestamp(1000),
        MS,
        &body("z 1\na 1\n"),
    );
    let m = show(&stale_markers(&cache, Timestamp(5000)));
    assert_eq!(m.len(), 7);
    assert_eq!(
        m[0],
        r#"{__name__="a", instance="h:9100", job="node"} STALE@5000"#
    );
    assert_eq!(
        m[1],
        r#"{__name__="z", instance="h:9100", job="node"} STALE@5000"#
    );
    assert_eq!(
        m[2],
        r#"{__name__="up", instance="h:9100", job="node"} STALE@5000"#
    );
}

#[test]
fn sample_limit_fails_the_scrape_after_relabeling_counts() {
    let mut s = spec();
    s.limits.sample_limit = 2;
    let mut cache = SeriesCache::default();
    process(&s, &mut cache, Timestamp(1000), MS, &body("a 1\n"));
    let (r, out) = process(
        &s,
        &mut cache,
        Timestamp(2000),
        MS,
        &body("a 1\nb 1\nc 1\nd 1\n"),
    );
    assert!(!r.up);
    assert_eq!(error_text(&r).as_deref(), Some("sample limit exceeded"));
    // No scraped sample; the previous scrape's series is marked stale.
    assert_eq!(
        scraped(&out),
        vec![r#"{__name__="a", instance="h:9100", job="node"} STALE@2000"#]
    );
    // The parse stops at the first sample over the limit (c); series_added counts the new
    // series before the limit.
    assert_eq!(report_values(&out), vec![0.0, 0.25, 3.0, 3.0, 1.0]);
    // The failed scrape's few new series texts stay cached, as in Prometheus: the next
    // scrape does not count b as added again.
    let (r, _) = process(&s, &mut cache, Timestamp(3000), MS, &body("a 1\nb 1\n"));
    assert!(r.up);
    assert_eq!(r.series_added, 0);
}

#[test]
fn label_limits_fail_with_prometheus_wording() {
    let mut cache = SeriesCache::default();
    let mut s = spec();
    s.limits.label_limit = 3;
    let (r, out) = process(
        &s,
        &mut cache,
        Timestamp(0),
        MS,
        &body("ok 1\nm{a=\"1\"} 1\nlater 1\n"),
    );
    assert_eq!(
        error_text(&r).as_deref(),
        Some("label_limit exceeded (metric: m, number of labels: 4, limit: 3)")
    );
    assert_eq!(report_values(&out), vec![0.0, 0.25, 2.0, 1.0, 1.0]);

    let mut s = spec();
    s.limits.label_name_length_limit = 8;
    let (r, _) = process(
        &s,
        &mut SeriesCache::default(),
        Timestamp(0),
        MS,
        &body("m{long_name=\"1\"} 1\n"),
    );
    assert_eq!(error_text(&r).as_deref(), Some("label_name_length_limit exceeded (metric: m, label name: long_name, length: 9, limit: 8)"));

    let mut s = spec();
    s.limits.label_value_length_limit = 7;
    let (r, _) = process(
        &s,
        &mut SeriesCache::default(),
        Timestamp(0),
        MS,
        &body("m{a=\"abcdefgh\"} 1\n"),
    );
    assert_eq!(error_text(&r).as_deref(), Some("label_value_length_limit exceeded (metric: m, label name: a, value: \"abcdefgh\", length: 8, limit: 7)"));
}

#[test]
fn body_size_limit_fails_like_a_fetch_error() {
    let mut s = spec();
    s.limits.body_size_limit_bytes = 4;
    let (r, out) = process(
        &s,
        &mut SeriesCache::default(),
        Timestamp(0),
        MS,
        &body("a 1\n"),
    );
    assert_eq!(error_text(&r).as_deref(), Some("body size limit exceeded"));
    assert_eq!(report_values(&out), vec![0.0, 0.25, 0.0, 0.0, 0.0]);
    let (r, _) = process(
        &s,
        &mut SeriesCache::default(),
        Timestamp(0),
        MS,
        &body("a 1"),
    );
    assert!(r.up, "one byte under the limit passes");
}

#[test]
fn parse_errors_fail_the_scrape_with_a_position() {
    let mut cache = SeriesCache::default();
    process(&spec(), &mut cache, Timestamp(0), MS, &body("a 1\n"));
    let (r, out) = process(
        &spec(),
        &mut cache,
        Timestamp(10),
        MS,
        &body("a 1\nb{x=} 1\n"),
    );
    assert!(!r.up);
    assert!(
        matches!(&r.error, Some(ScrapeError::Parse(e)) if e.line() == Some(2)),
        "{:?}",
        r.error
    );
    assert!(error_text(&r).unwrap().starts_with("2:"), "{:?}", r.error);
    assert_eq!(
        scraped(&out),
        vec![r#"{__name__="a", instance="h:9100", job="node"} STALE@10"#]
    );
}

#[test]
fn openmetrics_content_type_selects_openmetrics() {
    let fetch = FetchOutcome::Body {
        body: b"# TYPE a counter\na_total 1 1.5\n# EOF\n".to_vec(),
        content_type: Some("application/openmetrics-text; version=1.0.0".into()),
    };
    let (r, out) = process(
        &spec(),
        &mut SeriesCache::default(),
        Timestamp(0),
        MS,
        &fetch,
    );
    assert!(r.up, "{r:?}");
    assert_eq!(
        scraped(&out),
        vec![r#"{__name__="a_total", instance="h:9100", job="node"} 1@1500"#]
    );
}

#[test]
fn a_changed_spec_keeps_staleness_by_final_labels() {
    let mut cache = SeriesCache::default();
    process(
        &spec(),
        &mut cache,
        Timestamp(0),
        MS,
        &body("a{x=\"1\"} 1\nb 1\n"),
    );
    let mut s = spec();
    s.honor_labels = true; // same labels here, but the cached texts must be resolved again
    s.emit.encoding = Encoding::Json;
    let (r, out) = process(&s, &mut cache, Timestamp(10), MS, &body("a{x=\"1\"} 2\n"));
    assert_eq!(r.stale_markers, 1);
    assert_eq!(r.series_added, 1, "texts were forgotten with the old spec");
    assert_eq!(
        scraped(&out)[1],
        r#"{__name__="b", instance="h:9100", job="node"} STALE@10"#
    );
}

#[test]
fn fast_encoding_equals_encoding_the_samples() {
    for encoding in [Encoding::RemoteWrite, Encoding::Json] {
        let mut s = spec();
        s.emit.encoding = encoding;
        let mut a = SeriesCache::default();
        let mut b = SeriesCache::default();
        let scrapes = [
            body("x 1\ny{l=\"q\\\"\"} 2\nz 3\n"),
            body("y{l=\"q\\\"\"} 2\nw 1 5\n"),
            failed(),
            body("x 1\n"),
        ];
        for (i, f) in scrapes.iter().enumerate() {
            let at = Timestamp(1000 * i as i64);
            let (ra, samples) = process(&s, &mut a, at, MS, f);
            let (rb, records) = process_and_encode(&s, &mut b, &mut Default::default(), at, MS, f);
            assert_eq!(ra, rb);
            assert_eq!(
                records,
                encode::encode(&s.emit, &samples),
                "scrape {i} ({encoding:?})"
            );
        }
    }
}

#[test]
fn cache_stays_bounded_under_churn() {
    let mut cache = SeriesCache::default();
    for i in 0..50 {
        let text = format!("a{{i=\"{i}\"}} 1\nb 1\n");
        process(&spec(), &mut cache, Timestamp(i * 1000), MS, &body(&text));
    }
    assert_eq!(cache.raw.len(), 2);
    assert_eq!(cache.series.len(), 2);
    assert_eq!(cache.len(), 2);
}

fn rule(
    source: &[&str],
    regex: &str,
    action: &str,
    target: Option<&str>,
    replacement: Option<&str>,
) -> RelabelConfig {
    RelabelConfig::from_spec(crate::relabel::RelabelSpec {
        source_labels: (!source.is_empty()).then(|| source.iter().map(|s| s.to_string()).collect()),
        regex: Some(regex.into()),
        action: Some(action.into()),
        target_label: target.map(Into::into),
        replacement: replacement.map(Into::into),
        ..Default::default()
    })
    .expect("valid rule")
}

#[test]
fn metric_relabeling_drops_and_rewrites_after_target_labels() {
    let mut s = spec();
    s.metric_relabel_configs = vec![
        rule(&["__name__"], "go_.*", "drop", None, None),
        // Sees the target label: relabeling runs after target labels are attached.
        rule(&["job"], "(.*)", "replace", Some("origin"), Some("from_$1")),
    ];
    s.limits.sample_limit = 2; // counted after relabeling: 2 kept of 4
    let mut cache = SeriesCache::default();
    let text = "go_a 1\ngo_b 1\nkeep 1\nkeep2 2\n";
    let (r, out) = process(&s, &mut cache, Timestamp(0), MS, &body(text));
    assert!(r.up, "{r:?}");
    assert_eq!(
        scraped(&out),
        vec![
            r#"{__name__="keep", instance="h:9100", job="node", origin="from_node"} 1@0"#,
            r#"{__name__="keep2", instance="h:9100", job="node", origin="from_node"} 2@0"#,
        ]
    );
    assert_eq!(report_values(&out), vec![1.0, 0.25, 4.0, 2.0, 2.0]);
    // Steady state (cached texts, dropped ones included) gives the same.
    let (_, again) = process(&s, &mut cache, Timestamp(10), MS, &body(text));
    assert_eq!(scraped(&again).len(), 2);
    assert_eq!(report_values(&again), vec![1.0, 0.25, 4.0, 2.0, 0.0]);
}

#[test]
fn relabeling_away_the_name_fails_the_scrape() {
    let mut s = spec();
    s.metric_relabel_configs = vec![rule(&[], "__name__", "labeldrop", None, None)];
    let (r, _) = process(
        &s,
        &mut SeriesCache::default(),
        Timestamp(0),
        MS,
        &body("a 1\n"),
    );
    assert_eq!(
        error_text(&r).as_deref(),
        Some("missing metric name (__name__ label)")
    );
}

#[test]
fn scrape_error_display_is_prometheus_wording() {
    use crate::exposition::{ParseError, Position};
    let url = || "http://h:9100/metrics".to_string();
    let cases: Vec<(ScrapeError, &str)> = vec![
        (
            ScrapeError::InvalidRequest {
                reason: "unable to read authorization credentials file /t: not found".into(),
            },
            "unable to read authorization credentials file /t: not found",
        ),
        (
            ScrapeError::Connect {
                url: url(),
                address: "h:9100".into(),
                reason: "connect: connection refused".into(),
            },
            "Get \"http://h:9100/metrics\": dial tcp h:9100: connect: connection refused",
        ),
        (
            ScrapeError::Tls {
                url: url(),
                reason: "invalid peer certificate: UnknownIssuer".into(),
            },
            "Get \"http://h:9100/metrics\": tls: invalid peer certificate: UnknownIssuer",
        ),
        (
            ScrapeError::Request {
                url: url(),
                reason: "connection closed before message completed".into(),
            },
            "Get \"http://h:9100/metrics\": connection closed before message completed",
        ),
        (
            ScrapeError::Timeout { url: url() },
            "Get \"http://h:9100/metrics\": context deadline exceeded",
        ),
        (
            ScrapeError::HttpStatus {
                code: 503,
                reason: "Service Unavailable".into(),
            },
            "server returned HTTP status 503 Service Unavailable",
        ),
        (
            ScrapeError::HttpStatus {
                code: 599,
                reason: String::new(),
            },
            "server returned HTTP status 599",
        ),
        (
            ScrapeError::ReadBody {
                reason: "unexpected EOF".into(),
            },
            "unexpected EOF",
        ),
        (ScrapeError::BodySizeLimit, "body size limit exceeded"),
        (
            ScrapeError::Decompression {
                reason: "invalid header".into(),
            },
            "gzip: invalid header",
        ),
        (
            ScrapeError::Parse(ParseError {
                at: Position::Text { line: 3, column: 7 },
                message: "expected value after metric".into(),
            }),
            "3:7: expected value after metric",
        ),
        (ScrapeError::SampleLimit, "sample limit exceeded"),
        (
            ScrapeError::LabelLimit {
                metric: "m".into(),
                labels: 4,
                limit: 3,
            },
            "label_limit exceeded (metric: m, number of labels: 4, limit: 3)",
        ),
        (
            ScrapeError::LabelNameLengthLimit {
                metric: "m".into(),
                name: "long_name".into(),
                length: 9,
                limit: 8,
            },
            "label_name_length_limit exceeded (metric: m, label name: long_name, length: 9, limit: 8)",
        ),
        (
            ScrapeError::LabelValueLengthLimit {
                metric: "m".into(),
                name: "a".into(),
                value: "abcdefgh".into(),
                length: 8,
                limit: 7,
            },
            "label_value_length_limit exceeded (metric: m, label name: a, value: \"abcdefgh\", length: 8, limit: 7)",
        ),
        (
            ScrapeError::MissingMetricName,
            "missing metric name (__name__ label)",
        ),
        (
            ScrapeError::InvalidLabels(Labels::from_pairs([("__name__", "1bad"), ("job", "j")])),
            "invalid metric name or label names: {__name__=\"1bad\", job=\"j\"}",
        ),
    ];
    for (error, text) in &cases {
        assert_eq!(error.to_string(), *text, "{error:?}");
        // A standard error: it can be boxed and chained.
        let boxed: Box<dyn std::error::Error> = Box::new(error.clone());
        assert_eq!(boxed.to_string(), *text);
    }
}

#[test]
fn label_limit_errors_cut_names_and_values_at_50_characters_like_go() {
    let long = "x".repeat(60);
    let mut s = spec();
    s.limits.label_value_length_limit = 10;
    let text = format!("{long}{{{long}=\"{long}\"}} 1\n");
    let (r, _) = process(
        &s,
        &mut SeriesCache::default(),
        Timestamp(0),
        MS,
        &body(&text),
    );
    let fifty = "x".repeat(50);
    // `__name__` sorts first, and its value is the 60-character metric name.
    assert_eq!(
        r.error,
        Some(ScrapeError::LabelValueLengthLimit {
            metric: fifty.clone(),
            name: "__name__".into(),
            value: fifty.clone(),
            length: 60,
            limit: 10,
        })
    );
    let mut s = spec();
    s.limits.label_name_length_limit = 55;
    let (r, _) = process(
        &s,
        &mut SeriesCache::default(),
        Timestamp(0),
        MS,
        &body(&text),
    );
    assert_eq!(
        r.error,
        Some(ScrapeError::LabelNameLengthLimit {
            metric: fifty.clone(),
            name: fifty.clone(),
            length: 60,
            limit: 55,
        })
    );
    let mut s = spec();
    s.limits.label_limit = 1;
    let (r, _) = process(
        &s,
        &mut SeriesCache::default(),
        Timestamp(0),
        MS,
        &body(&format!("{long} 1\n")),
    );
    assert_eq!(
        error_text(&r).as_deref(),
        Some(
            format!("label_limit exceeded (metric: {fifty}, number of labels: 3, limit: 1)")
                .as_str()
        )
    );
}

#[test]
fn invalid_names_after_relabeling_fail_the_scrape() {
    let mut s = spec();
    s.exposition.validation = ValidationScheme::Legacy;
    s.metric_relabel_configs = vec![rule(
        &["__name__"],
        "(.*)",
        "replace",
        Some("__name__"),
        Some("1bad"),
    )];
    let (r, _) = process(
        &s,
        &mut SeriesCache::default(),
        Timestamp(0),
        MS,
        &body("a 1\n"),
    );
    assert!(
        matches!(r.error, Some(ScrapeError::InvalidLabels(_))),
        "{:?}",
        r.error
    );
    assert_eq!(
        error_text(&r).as_deref(),
        Some("invalid metric name or label names: {__name__=\"1bad\", instance=\"h:9100\", job=\"node\"}")
    );
}

#[test]
fn extra_scrape_metrics_follow_the_five_as_in_prometheus_3() {
    let mut s = spec();
    s.extra_scrape_metrics = true;
    s.limits.sample_limit = 50;
    s.timeout = Duration::from_millis(2500);
    let mut cache = SeriesCache::default();
    let text = "a 1\nb 2\n";
    let (_, out) = process(&s, &mut cache, Timestamp(1000), MS, &body(text));
    assert_eq!(
        show(&out[out.len() - 8..]),
        vec![
            r#"{__name__="up", instance="h:9100", job="node"} 1@1000"#,
            r#"{__name__="scrape_duration_seconds", instance="h:9100", job="node"} 0.25@1000"#,
            r#"{__name__="scrape_samples_scraped", instance="h:9100", job="node"} 2@1000"#,
            r#"{__name__="scrape_samples_post_metric_relabeling", instance="h:9100", job="node"} 2@1000"#,
            r#"{__name__="scrape_series_added", instance="h:9100", job="node"} 2@1000"#,
            r#"{__name__="scrape_timeout_seconds", instance="h:9100", job="node"} 2.5@1000"#,
            r#"{__name__="scrape_sample_limit", instance="h:9100", job="node"} 50@1000"#,
            r#"{__name__="scrape_body_size_bytes", instance="h:9100", job="node"} 8@1000"#,
        ]
    );
    assert_eq!(out.len(), 10);
    // A failed fetch: 0 bytes; over body_size_limit: -1.
    let (_, out) = process(&s, &mut cache, Timestamp(2000), MS, &failed());
    assert_eq!(out.last().map(|s| s.value), Some(0.0));
    s.limits.body_size_limit_bytes = 4;
    let (_, out) = process(&s, &mut cache, Timestamp(3000), MS, &body(text));
    assert_eq!(out.last().map(|s| s.value), Some(-1.0));
    // A removed target's markers cover the eight synthetic series.
    let m = show(&stale_markers(&cache, Timestamp(4000)));
    assert_eq!(m.len(), 8, "{m:?}");
    assert_eq!(
        m[7],
        r#"{__name__="scrape_body_size_bytes", instance="h:9100", job="node"} STALE@4000"#
    );
    // Off (the default): five.
    let (_, out) = process(
        &spec(),
        &mut SeriesCache::default(),
        Timestamp(0),
        MS,
        &body(text),
    );
    assert_eq!(out.len(), 7);
}

#[test]
fn track_timestamps_staleness_marks_series_with_exporter_timestamps() {
    let mut s = spec();
    s.track_timestamps_staleness = true;
    let mut cache = SeriesCache::default();
    process(&s, &mut cache, Timestamp(1000), MS, &body("a 1 900\nb 1\n"));
    let (r, out) = process(&s, &mut cache, Timestamp(2000), MS, &body("b 1\n"));
    assert_eq!(r.stale_markers, 1);
    assert_eq!(
        scraped(&out),
        vec![
            r#"{__name__="b", instance="h:9100", job="node"} 1@2000"#,
            r#"{__name__="a", instance="h:9100", job="node"} STALE@2000"#,
        ]
    );
    // With honor_timestamps off the exporter's timestamp is gone: tracked anyway.
    let mut s = spec();
    s.honor_timestamps = false;
    let mut cache = SeriesCache::default();
    process(&s, &mut cache, Timestamp(1000), MS, &body("a 1 900\n"));
    let (r, _) = process(&s, &mut cache, Timestamp(2000), MS, &body("b 1\n"));
    assert_eq!(r.stale_markers, 1);
}

#[test]
fn external_labels_are_added_unless_the_series_has_the_label() {
    let mut s = spec();
    s.external_labels = Labels::from_pairs([("cluster", "c1"), ("job", "ext"), ("zone", "z")]);
    s.limits.label_limit = 4; // checked before the external labels, as in Prometheus
    let mut cache = SeriesCache::default();
    let (r, out) = process(
        &s,
        &mut cache,
        Timestamp(1000),
        MS,
        &body("a{zone=\"mine\"} 1\n"),
    );
    assert!(r.up, "{r:?}");
    assert_eq!(
        show(&out[..2]),
        vec![
            r#"{__name__="a", cluster="c1", instance="h:9100", job="node", zone="mine"} 1@1000"#,
            r#"{__name__="up", cluster="c1", instance="h:9100", job="node", zone="z"} 1@1000"#,
        ]
    );
    let (_, out) = process(&s, &mut cache, Timestamp(2000), MS, &body("b 1\n"));
    assert_eq!(
        show(&out[1..2]),
        vec![
            r#"{__name__="a", cluster="c1", instance="h:9100", job="node", zone="mine"} STALE@2000"#
        ]
    );
}

/// The final series of a successful scrape, as label sets in the order they came out.
fn series_of(s: &ScrapeSpec, fetch: &FetchOutcome) -> Vec<String> {
    let mut cache = SeriesCache::default();
    let (r, _) = process(s, &mut cache, Timestamp(0), MS, fetch);
    assert!(r.up, "{:?}", r.error);
    let mut out: Vec<String> = (0..cache.series.len() as u32)
        .map(|i| cache.labels_of(i).to_string())
        .collect();
    out.sort();
    out
}

fn typed(text: &str, content_type: Option<&str>) -> FetchOutcome {
    FetchOutcome::Body {
        body: text.as_bytes().to_vec(),
        content_type: content_type.map(str::to_string),
    }
}

#[test]
fn utf8_names_come_out_as_written_under_the_utf8_scheme() {
    let text = "# TYPE \"my.metric\" gauge\n{\"my.metric\", \"my.label\"=\"v\", le=\"1\"} 1\n{\"ünï cödé\"} 2\n";
    let om = "# TYPE \"my.metric\" gauge\n{\"my.metric\",\"my.label\"=\"v\",le=\"1\"} 1\n{\"ünï cödé\"} 2\n# EOF\n";
    let want = vec![
        r#"{__name__="my.metric", instance="h:9100", job="node", le="1", "my.label"="v"}"#
            .to_string(),
        r#"{__name__="ünï cödé", instance="h:9100", job="node"}"#.to_string(),
    ];
    let s = spec();
    assert_eq!(s.exposition.validation, ValidationScheme::Utf8);
    assert_eq!(
        series_of(
            &s,
            &typed(
                text,
                Some("text/plain; version=1.0.0; escaping=allow-utf-8")
            )
        ),
        want
    );
    assert_eq!(
        series_of(
            &s,
            &typed(om, Some("application/openmetrics-text; version=1.0.0"))
        ),
        want
    );
}

#[test]
fn legacy_scheme_fails_the_scrape_on_a_utf8_name() {
    let mut s = spec();
    s.exposition.validation = ValidationScheme::Legacy;
    for (text, shown) in [
        (
            "{\"my.metric\"} 1\n",
            r#"{__name__="my.metric", instance="h:9100", job="node"}"#,
        ),
        (
            "ok{\"my.label\"=\"v\"} 1\n",
            r#"{__name__="ok", instance="h:9100", job="node", "my.label"="v"}"#,
        ),
    ] {
        let (r, outs) = process(
            &s,
            &mut SeriesCache::default(),
            Timestamp(0),
            MS,
            &body(text),
        );
        assert!(!r.up);
        assert_eq!(
            error_text(&r),
            Some(format!("invalid metric name or label names: {shown}"))
        );
        assert_eq!(r.samples_scraped, 1);
        assert_eq!(outs.len(), 5, "only the synthetic series");
    }
    // A legacy name passes.
    assert_eq!(series_of(&s, &body("ok 1\n")).len(), 1);
}

#[test]
fn content_type_decides_the_parser_or_fails_the_scrape() {
    let s = spec();
    let run = |s: &ScrapeSpec, ct: Option<&str>| {
        process(
            s,
            &mut SeriesCache::default(),
            Timestamp(0),
            MS,
            &typed("a 1\n", ct),
        )
        .0
    };
    let r = run(&s, None);
    assert!(!r.up);
    assert_eq!(
        error_text(&r).as_deref(),
        Some("non-compliant scrape target sending blank Content-Type and no fallback_scrape_protocol specified for target")
    );
    let r = run(&s, Some("application/json"));
    assert_eq!(
        error_text(&r).as_deref(),
        Some("received unsupported Content-Type \"application/json\" and no fallback_scrape_protocol specified for target")
    );
    // A protobuf Content-Type selects the protobuf parser: this text body is no protobuf.
    let proto = Some("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited");
    let r = run(&s, proto);
    assert!(!r.up);
    assert_eq!(
        error_text(&r).as_deref(),
        Some("byte 0: clientpb: insufficient length of buffer, expected at least 98 bytes, got 4 bytes")
    );
    // A delimited `MetricFamily { name: "g", type: GAUGE, metric { gauge { value: 2 } } }`.
    let family = [
        0x0a, 0x01, b'g', 0x18, 0x01, 0x22, 0x0b, 0x12, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0, 0x40,
    ];
    let mut pb = vec![family.len() as u8];
    pb.extend_from_slice(&family);
    let (r, samples) = process(
        &s,
        &mut SeriesCache::default(),
        Timestamp(0),
        MS,
        &FetchOutcome::Body {
            body: pb,
            content_type: proto.map(String::from),
        },
    );
    assert!(r.up, "{:?}", r.error);
    assert_eq!(r.samples_scraped, 1);
    assert!(samples
        .iter()
        .any(|x| x.labels.get("__name__") == Some("g") && x.value == 2.0));
    // With a fallback, the same responses are read in its format.
    let mut with = spec();
    with.exposition.fallback = Some(ScrapeProtocol::PrometheusText0_0_4);
    assert!(run(&with, None).up);
    assert!(run(&with, Some("application/json")).up);
    // The OpenMetrics fallback reads the body as OpenMetrics: no `# EOF`, a parse error.
    with.exposition.fallback = Some(ScrapeProtocol::OpenMetricsText1_0_0);
    let r = run(&with, None);
    assert!(
        matches!(r.error, Some(ScrapeError::Parse(_))),
        "{:?}",
        r.error
    );
}

#[test]
fn sample_limit_stops_a_relabeled_scrape_at_the_limit() {
    let mut s = spec();
    s.limits.sample_limit = 2;
    s.metric_relabel_configs = vec![rule(&["__name__"], "drop_.*", "drop", None, None)];
    let text: String = (0..1000).map(|i| format!("m{i} 1\n")).collect();
    let mut cache = SeriesCache::default();
    let (r, _) = process(&s, &mut cache, Timestamp(0), MS, &body(&text));
    assert_eq!(r.error, Some(ScrapeError::SampleLimit));
    // Stopped at the third sample.
    assert_eq!(
        (r.samples_scraped, r.samples_post_metric_relabeling),
        (3, 3)
    );
}

#[test]
fn a_failed_scrape_that_floods_the_cache_gives_its_memory_back() {
    let mut s = spec();
    let mut cache = SeriesCache::default();
    let (r, _) = process(&s, &mut cache, Timestamp(0), MS, &body("a 1\nb 1\n"));
    assert!(r.up);
    s.limits.sample_limit = 5000;
    let flood: String = (0..6000).map(|i| format!("m{i} 1\n")).collect();
    let (r, _) = process(&s, &mut cache, Timestamp(1000), MS, &body(&flood));
    assert_eq!(r.error, Some(ScrapeError::SampleLimit));
    // Thousands of new series texts from a failed scrape: dropped, the cache is as before.
    assert_eq!(cache.raw.len(), 2);
    // A few are kept.
    let few: String = (0..6).map(|i| format!("n{i} 1\n")).collect();
    s.limits.sample_limit = 4;
    let (r, _) = process(&s, &mut cache, Timestamp(2000), MS, &body(&few));
    assert_eq!(r.error, Some(ScrapeError::SampleLimit));
    assert!(cache.raw.len() > 2, "{}", cache.raw.len());
}

#[test]
fn the_memory_budget_caps_the_samples_of_one_scrape() {
    let caps = scrape_caps(1 << 30);
    assert_eq!(caps.body_bytes, (1 << 30) / SCRAPE_SHARE_DIVISOR / 2);
    assert_eq!(caps.samples, caps.body_bytes / SAMPLE_WORKING_BYTES);
    assert_eq!(
        scrape_caps(0),
        ScrapeCaps {
            body_bytes: 0,
            samples: 0
        }
    );

    let mut s = spec();
    s.limits.samples_max = 3;
    let mut cache = SeriesCache::default();
    let (r, _) = process(&s, &mut cache, Timestamp(0), MS, &body("a 1\nb 1\nc 1\n"));
    assert!(r.up, "exactly the cap is fine: {r:?}");
    let (r, out) = process(
        &s,
        &mut cache,
        Timestamp(1000),
        MS,
        &body("a 1\nb 1\nc 1\nd 1\ne 1\n"),
    );
    assert_eq!(
        error_text(&r).as_deref(),
        Some("more than 3 samples in one scrape, the most the memory budget allows (--memory-budget)")
    );
    assert_eq!(r.samples_scraped, 3);
    // The previous scrape's series get their markers.
    assert_eq!(r.stale_markers, 3);
    assert_eq!(report_values(&out)[0], 0.0);
    // A sample_limit below the cap reports the sample limit instead.
    s.limits.sample_limit = 2;
    let (r, _) = process(
        &s,
        &mut cache,
        Timestamp(2000),
        MS,
        &body("a 1\nb 1\nc 1\nd 1\n"),
    );
    assert_eq!(r.error, Some(ScrapeError::SampleLimit));
}

#[test]
fn a_label_name_twice_fails_the_scrape_as_prometheus_storage_does() {
    let text = "ok 1\nm{a=\"1\",b=\"x\",a=\"2\"} 1\n";
    let (r, _) = process(
        &spec(),
        &mut SeriesCache::default(),
        Timestamp(0),
        MS,
        &body(text),
    );
    assert_eq!(
        error_text(&r).as_deref(),
        Some("label name \"a\" is not unique: invalid sample")
    );
    // Dropped by metric relabeling first: no error.
    let mut s = spec();
    s.metric_relabel_configs = vec![rule(&["__name__"], "m", "drop", None, None)];
    let (r, _) = process(
        &s,
        &mut SeriesCache::default(),
        Timestamp(0),
        MS,
        &body(text),
    );
    assert!(r.up, "{r:?}");
}

#[test]
fn dropped_samples_are_listed_by_reason() {
    let (r, _) = process(
        &spec(),
        &mut SeriesCache::default(),
        Timestamp(0),
        MS,
        &body("a 1\na 2\nb 1 5\nb 1 4\nc 1 999999999\n"),
    );
    assert!(r.up);
    assert_eq!(
        r.dropped(),
        vec![
            ("duplicate_timestamp", 1),
            ("out_of_order", 1),
            ("out_of_bounds", 1)
        ]
    );
    let mut stats = crate::node::Stats::default();
    stats.count_scrape(&r);
    assert_eq!(stats.samples_dropped.duplicate_timestamp, 1);
    assert_eq!(stats.samples_dropped.out_of_bounds, 1);
    let (clean, _) = process(
        &spec(),
        &mut SeriesCache::default(),
        Timestamp(0),
        MS,
        &body("a 1\n"),
    );
    assert!(clean.dropped().is_empty());
}

#[test]
fn a_series_is_known_by_its_text_as_written_as_in_prometheus_s_scrape_cache() {
    let mut cache = SeriesCache::default();
    let typed = "# TYPE s summary\ns{quantile=\"0\"} 1\n";
    let (_, out) = process(&spec(), &mut cache, Timestamp(1000), MS, &body(typed));
    assert_eq!(
        scraped(&out),
        vec![r#"{__name__="s", instance="h:9100", job="node", quantile="0.0"} 1@1000"#]
    );
    // Without the TYPE line the same text is the same series, with its labels as first read.
    let untyped = "s{quantile=\"0\"} 2\n";
    let (_, out) = process(&spec(), &mut cache, Timestamp(2000), MS, &body(untyped));
    assert_eq!(
        scraped(&out),
        vec![r#"{__name__="s", instance="h:9100", job="node", quantile="0.0"} 2@2000"#]
    );
    // A target that never saw it typed keeps the value as written.
    let (_, out) = process(
        &spec(),
        &mut SeriesCache::default(),
        Timestamp(3000),
        MS,
        &body(untyped),
    );
    assert_eq!(
        scraped(&out),
        vec![r#"{__name__="s", instance="h:9100", job="node", quantile="0"} 2@3000"#]
    );
}

// ---- native histograms ----------------------------------------------------------------

mod native {
    use super::*;
    use crate::histogram::{Counts, Span};
    use crate::testing::client_model::{
        encode_delimited, Bucket, BucketSpan, Histogram as PbHistogram, Metric, MetricFamily,
    };
    use crate::testing::remote_write;

    const PROTOBUF: &str =
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

    /// Schema 0, buckets at 0..3 with counts 1, 2, 3 and one empty bucket at 3 (compacted
    /// away), zero bucket 1, and two classic buckets.
    fn family(name: &str, count: u64) -> MetricFamily {
        MetricFamily {
            name: name.into(),
            help: String::new(),
            r#type: 4,
            metric: vec![Metric {
                histogram: Some(PbHistogram {
                    sample_count: count,
                    sample_sum: 12.5,
                    schema: 0,
                    zero_threshold: 1e-3,
                    zero_count: 1,
                    positive_span: vec![BucketSpan {
                        offset: 0,
                        length: 4,
                    }],
                    positive_delta: vec![1, 1, 1, -3],
                    bucket: vec![
                        Bucket {
                            cumulative_count: 2,
                            upper_bound: 1.0,
                            ..Bucket::default()
                        },
                        Bucket {
                            cumulative_count: 7,
                            upper_bound: 8.0,
                            ..Bucket::default()
                        },
                    ],
                    ..PbHistogram::default()
                }),
                ..Metric::default()
            }],
            unit: String::new(),
        }
    }

    fn fetch(families: &[MetricFamily]) -> FetchOutcome {
        FetchOutcome::Body {
            body: encode_delimited(families),
            content_type: Some(PROTOBUF.into()),
        }
    }

    fn native_spec() -> ScrapeSpec {
        let mut s = spec();
        s.histograms.native = true;
        s
    }

    fn expected() -> Histogram {
        Histogram {
            schema: 0,
            zero_threshold: 1e-3,
            sum: 12.5,
            positive_spans: vec![Span {
                offset: 0,
                length: 3,
            }],
            negative_spans: vec![],
            counts: Counts::Int {
                count: 7,
                zero_count: 1,
                positive: vec![1, 1, 1],
                negative: vec![],
            },
            gauge: false,
        }
    }

    #[test]
    fn a_native_histogram_is_one_sample_with_its_compacted_value() {
        let (r, samples) = process(
            &native_spec(),
            &mut SeriesCache::default(),
            Timestamp(1000),
            MS,
            &fetch(&[family("lat", 7)]),
        );
        assert!(r.up, "{:?}", r.error);
        // One histogram counts as one sample, as in Prometheus.
        assert_eq!((r.samples_scraped, r.series_added), (1, 1));
        let h: Vec<_> = samples.iter().filter(|s| s.histogram.is_some()).collect();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].labels.get("__name__"), Some("lat"));
        assert_eq!(h[0].histogram.as_deref(), Some(&expected()));
        // No classic series unless asked for.
        assert!(!samples
            .iter()
            .any(|s| s.labels.get("__name__") == Some("lat_count")));
    }

    #[test]
    fn always_scrape_classic_adds_the_classic_series_after_the_native_one() {
        let mut s = native_spec();
        s.histograms.keep_classic = true;
        let (r, samples) = process(
            &s,
            &mut SeriesCache::default(),
            Timestamp(1000),
            MS,
            &fetch(&[family("lat", 7)]),
        );
        let names: Vec<_> = samples
            .iter()
            .take(6)
            .map(|s| {
                let le = s
                    .labels
                    .get("le")
                    .map(|le| format!("{{le={le}}}"))
                    .unwrap_or_default();
                format!("{}{le}", s.labels.get("__name__").unwrap_or_default())
            })
            .collect();
        assert_eq!(
            names,
            [
                "lat",
                "lat_count",
                "lat_sum",
                "lat_bucket{le=1.0}",
                "lat_bucket{le=8.0}",
                "lat_bucket{le=+Inf}"
            ]
        );
        assert_eq!(r.samples_scraped, 6);
    }

    #[test]
    fn the_schema_is_capped_by_the_bucket_factor_and_the_bucket_limit() {
        let mut s = native_spec();
        // Factor 4: schema -1 at most; buckets 0, 1, 2 at schema 0 go to 0, 1, 1.
        s.histograms.max_schema = crate::histogram::max_schema_for_factor(4.0);
        let (_, samples) = process(
            &s,
            &mut SeriesCache::default(),
            Timestamp(0),
            MS,
            &fetch(&[family("lat", 7)]),
        );
        let h = samples[0].histogram.as_deref().expect("a histogram");
        assert_eq!(h.schema, -1);
        assert_eq!(
            h.positive_spans,
            vec![Span {
                offset: 0,
                length: 2
            }]
        );
        assert!(matches!(&h.counts, Counts::Int { positive, .. } if positive == &vec![1, 4]));
        // A limit of two buckets: one step down, to schema -1, is enough.
        let mut s = native_spec();
        s.histograms.bucket_limit = 2;
        let (r, samples) = process(
            &s,
            &mut SeriesCache::default(),
            Timestamp(0),
            MS,
            &fetch(&[family("lat", 7)]),
        );
        assert!(r.up);
        let h = samples[0].histogram.as_deref().expect("a histogram");
        assert_eq!((h.schema, h.bucket_count()), (-1, 2));
        // One bucket: indices 0 and 1 (the buckets just below and above 1) never merge, so
        // even schema -4 has two, and the scrape fails as Prometheus's does.
        s.histograms.bucket_limit = 1;
        let (r, _) = process(
            &s,
            &mut SeriesCache::default(),
            Timestamp(0),
            MS,
            &fetch(&[family("lat", 7)]),
        );
        assert!(!r.up);
        assert_eq!(
            error_text(&r).as_deref(),
            Some("histogram bucket limit exceeded")
        );
    }

    #[test]
    fn an_invalid_histogram_fails_the_scrape_with_prometheus_words() {
        let (r, _) = process(
            &native_spec(),
            &mut SeriesCache::default(),
            Timestamp(0),
            MS,
            &fetch(&[family("lat", 9)]),
        );
        assert!(!r.up);
        assert_eq!(
            error_text(&r).as_deref(),
            Some("7 observations found in buckets, but the Count field is 9: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)")
        );
    }

    #[test]
    fn a_histogram_series_that_goes_gets_a_float_staleness_marker() {
        let s = native_spec();
        let mut cache = SeriesCache::default();
        process(
            &s,
            &mut cache,
            Timestamp(1000),
            MS,
            &fetch(&[family("lat", 7), family("gone", 7)]),
        );
        let (r, samples) = process(
            &s,
            &mut cache,
            Timestamp(2000),
            MS,
            &fetch(&[family("lat", 7)]),
        );
        assert_eq!(r.stale_markers, 1);
        let marker = samples
            .iter()
            .find(|x| x.labels.get("__name__") == Some("gone"))
            .expect("a marker");
        assert!(marker.histogram.is_none() && is_stale_nan(marker.value));
    }

    #[test]
    fn remote_write_carries_the_histogram_as_prometheus_sends_it() {
        let s = native_spec();
        let mut cache = SeriesCache::default();
        let (_, records) = process_and_encode(
            &s,
            &mut cache,
            &mut Scratch::default(),
            Timestamp(1000),
            MS,
            &fetch(&[family("lat", 7)]),
        );
        let request = remote_write::decode(&records[0].payload).expect("decodes");
        let series = request
            .timeseries
            .iter()
            .find(|t| t.label("__name__") == Some("lat"))
            .expect("the histogram series");
        assert!(series.samples.is_empty());
        let h = &series.histograms[0];
        assert_eq!(
            (
                h.count_int,
                h.zero_count_int,
                h.sum,
                h.schema,
                h.zero_threshold,
                h.timestamp
            ),
            (Some(7), Some(1), 12.5, 0, 1e-3, 1000)
        );
        assert_eq!(h.positive_deltas, vec![1, 1, 1]);
        assert_eq!(
            (h.positive_spans[0].offset, h.positive_spans[0].length),
            (0, 3)
        );
        assert!(h.negative_spans.is_empty() && h.count_float.is_none());
        // The same through the owned-sample encoder.
        let (_, samples) = process(
            &s,
            &mut SeriesCache::default(),
            Timestamp(1000),
            MS,
            &fetch(&[family("lat", 7)]),
        );
        let again =
            remote_write::decode(&encode::encode(&s.emit, &samples)[0].payload).expect("decodes");
        // (The scrape's record also carries the family's metadata; owned samples have none.)
        assert_eq!(again.timeseries, request.timeseries);
        assert_eq!(request.metadata.len(), 1);
    }

    #[test]
    fn json_writes_absolute_buckets() {
        let mut s = native_spec();
        s.emit.encoding = Encoding::Json;
        let (_, records) = process_and_encode(
            &s,
            &mut SeriesCache::default(),
            &mut Scratch::default(),
            Timestamp(1000),
            MS,
            &fetch(&[family("lat", 7)]),
        );
        let text = String::from_utf8(records[0].payload.clone()).unwrap();
        assert_eq!(
            text,
            r#"{"labels":{"__name__":"lat","instance":"h:9100","job":"node"},"name":"lat","timestamp":"1970-01-01T00:00:01.000Z","histogram":{"count":"7","sum":"12.5","schema":0,"zero_threshold":"0.001","zero_count":"1","positive_spans":[{"offset":0,"length":3}],"positive_buckets":["1","2","3"],"negative_spans":[],"negative_buckets":[]}}"#
        );
        serde_json::from_str::<serde_json::Value>(&text).expect("valid JSON");
    }
}

// ---- remote-write 2.0 -----------------------------------------------------------------

mod v2 {
    use super::*;
    use crate::testing::remote_write::v2;

    fn v2_spec() -> ScrapeSpec {
        let mut s = spec();
        s.emit.encoding = Encoding::RemoteWriteV2;
        s
    }

    const BODY: &str = "# HELP req_total Requests served.\n# TYPE req_total counter\nreq_total{code=\"200\"} 7\n# TYPE lat histogram\n# HELP lat Latency.\nlat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 3\nlat_count 2\nplain 5\n";

    fn scrape(cache: &mut SeriesCache, scratch: &mut Scratch, at: i64, text: &str) -> v2::Request {
        let (r, records) =
            process_and_encode(&v2_spec(), cache, scratch, Timestamp(at), MS, &body(text));
        assert!(r.up, "{:?}", r.error);
        assert_eq!(records.len(), 1);
        v2::decode(&records[0].payload).expect("a v2 request")
    }

    /// Each series as `name{labels} [samples] type/help`.
    fn shown(req: &v2::Request) -> Vec<String> {
        let mut out: Vec<String> = req
            .timeseries
            .iter()
            .map(|t| {
                let labels = req.labels(t);
                let name = labels
                    .iter()
                    .find(|(n, _)| n == "__name__")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let rest: Vec<String> = labels
                    .iter()
                    .filter(|(n, _)| n != "__name__" && n != "instance" && n != "job")
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect();
                let values: Vec<String> = t
                    .samples
                    .iter()
                    .map(|s| format!("{}@{}", s.value, s.timestamp))
                    .collect();
                let meta = t.metadata.as_ref().map_or(String::new(), |m| {
                    format!(" type={} help={:?}", m.r#type, req.symbol(m.help_ref))
                });
                format!("{name}{{{}}} {}{meta}", rest.join(","), values.join(","))
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn series_carry_label_references_and_their_family_metadata() {
        let (mut cache, mut scratch) = (SeriesCache::default(), Scratch::default());
        let req = scrape(&mut cache, &mut scratch, 1000, BODY);
        // Help texts are interned first (metadata is found while appending), then the
        // labels as series are encoded (README, "The bus").
        assert_eq!(
            req.symbols[..5],
            ["", "Requests served.", "Latency.", "__name__", "req_total"]
        );
        let shown = shown(&req);
        let want = [
            "lat_bucket{le=+Inf} 2@1000 type=3 help=\"Latency.\"",
            "lat_bucket{le=1.0} 1@1000 type=3 help=\"Latency.\"",
            "lat_count{} 2@1000 type=3 help=\"Latency.\"",
            "lat_sum{} 3@1000 type=3 help=\"Latency.\"",
            "plain{} 5@1000",
            "req_total{code=200} 7@1000 type=1 help=\"Requests served.\"",
        ];
        for w in want {
            assert!(shown.contains(&w.to_string()), "{w} not in {shown:#?}");
        }
        // The synthetic series are there, without metadata.
        assert!(shown.iter().any(|s| s == "up{} 1@1000"), "{shown:#?}");
    }

    #[test]
    fn the_symbols_table_is_kept_across_scrapes_and_markers_resolve() {
        let (mut cache, mut scratch) = (SeriesCache::default(), Scratch::default());
        let first = scrape(&mut cache, &mut scratch, 1000, BODY);
        let second = scrape(&mut cache, &mut scratch, 2000, BODY);
        assert_eq!(
            first.symbols, second.symbols,
            "no new string, no new symbol"
        );
        // `plain` goes: its marker resolves through the same table.
        let third = scrape(
            &mut cache,
            &mut scratch,
            3000,
            &BODY.replace("plain 5\n", ""),
        );
        let marker = third
            .timeseries
            .iter()
            .find(|t| {
                third
                    .labels(t)
                    .iter()
                    .any(|(n, v)| n == "__name__" && v == "plain")
            })
            .expect("a marker for plain");
        assert!(is_stale_nan(marker.samples[0].value));
    }

    #[test]
    fn split_records_each_carry_the_strings_they_use() {
        let mut s = v2_spec();
        let fixture = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/exposition/node_exporter-1.5.0.prom"
        ))
        .unwrap();
        let fetch = FetchOutcome::Body {
            body: fixture,
            content_type: Some("text/plain; version=0.0.4".into()),
        };
        let series_of = |records: &[Record]| {
            let mut all: Vec<(Vec<(String, String)>, Vec<u64>, Option<i32>)> = Vec::new();
            for r in records {
                let req = v2::decode(&r.payload).expect("decodes");
                for t in &req.timeseries {
                    let help = t
                        .metadata
                        .as_ref()
                        .map(|m| req.symbol(m.help_ref).len() as i32);
                    all.push((
                        req.labels(t),
                        t.samples.iter().map(|x| x.value.to_bits()).collect(),
                        help,
                    ));
                }
            }
            all.sort();
            all
        };
        let whole = process_and_encode(
            &s,
            &mut SeriesCache::default(),
            &mut Scratch::default(),
            Timestamp(1000),
            MS,
            &fetch,
        )
        .1;
        assert_eq!(whole.len(), 1);
        s.emit.message_bytes_max = 1024;
        let parts = process_and_encode(
            &s,
            &mut SeriesCache::default(),
            &mut Scratch::default(),
            Timestamp(1000),
            MS,
            &fetch,
        )
        .1;
        assert!(parts.len() > 4, "{} records", parts.len());
        assert!(parts.iter().all(|r| r.payload.len() <= 1024));
        // Every part's table is its own: smaller than the whole one.
        let whole_symbols = v2::decode(&whole[0].payload).unwrap().symbols.len();
        assert!(parts
            .iter()
            .all(|r| v2::decode(&r.payload).unwrap().symbols.len() < whole_symbols));
        assert_eq!(series_of(&parts), series_of(&whole));
    }

    #[test]
    fn a_table_mostly_of_gone_strings_is_rebuilt() {
        let (mut cache, mut scratch) = (SeriesCache::default(), Scratch::default());
        // 2000 distinct label values, then none of them: the table is rebuilt small.
        let wide: String = (0..2000).map(|i| format!("w{{id=\"{i}\"}} 1\n")).collect();
        let big = scrape(&mut cache, &mut scratch, 1000, &wide);
        assert!(big.symbols.len() > 2000);
        scrape(&mut cache, &mut scratch, 2000, "plain 1\n"); // markers for the 2000
        let small = scrape(&mut cache, &mut scratch, 3000, "plain 1\n");
        assert!(small.symbols.len() < 20, "{} symbols", small.symbols.len());
        assert!(shown(&small).iter().any(|s| s == "plain{} 1@3000"));
    }
}

// ---- remote-write v1 metadata --------------------------------------------------------

mod metadata {
    use super::*;
    use crate::testing::remote_write;

    const BODY: &str = "# HELP req_total Requests served.\n# TYPE req_total counter\nreq_total 7\n# TYPE temp_celsius gauge\n# HELP temp_celsius Temperature.\ntemp_celsius 20\nbare 1\n";

    fn metadata_at(cache: &mut SeriesCache, at: i64, text: &str) -> Vec<(i32, String, String)> {
        let (_, records) = process_and_encode(
            &spec(),
            cache,
            &mut Scratch::default(),
            Timestamp(at),
            MS,
            &body(text),
        );
        records
            .iter()
            .flat_map(|r| remote_write::decode(&r.payload).expect("decodes").metadata)
            .map(|m| (m.r#type, m.metric_family_name, m.help))
            .collect()
    }

    #[test]
    fn sent_with_the_first_scrape_on_change_and_every_minute() {
        let mut cache = SeriesCache::default();
        let want = vec![
            (1, "req_total".to_string(), "Requests served.".to_string()),
            (2, "temp_celsius".to_string(), "Temperature.".to_string()),
        ];
        assert_eq!(metadata_at(&mut cache, 0, BODY), want);
        // Unchanged within the minute: not again.
        assert_eq!(metadata_at(&mut cache, 15_000, BODY), vec![]);
        // Changed: at once.
        let changed = BODY.replace("Temperature.", "Temperature, in Celsius.");
        assert_eq!(
            metadata_at(&mut cache, 30_000, &changed)[1].2,
            "Temperature, in Celsius."
        );
        assert_eq!(metadata_at(&mut cache, 45_000, &changed), vec![]);
        // A minute after it was last sent: again.
        assert_eq!(metadata_at(&mut cache, 90_000, &changed).len(), 2);
    }

    #[test]
    fn a_failed_scrape_sends_none_and_a_split_scrape_sends_it_alone() {
        let mut cache = SeriesCache::default();
        let (_, records) = process_and_encode(
            &spec(),
            &mut cache,
            &mut Scratch::default(),
            Timestamp(0),
            MS,
            &failed(),
        );
        assert!(records.iter().all(|r| remote_write::decode(&r.payload)
            .unwrap()
            .metadata
            .is_empty()));
        let mut s = spec();
        s.emit.message_bytes_max = 4096;
        let fixture = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/exposition/node_exporter-1.5.0.prom"
        ))
        .unwrap();
        let fetch = FetchOutcome::Body {
            body: fixture,
            content_type: Some("text/plain; version=0.0.4".into()),
        };
        let (r, records) = process_and_encode(
            &s,
            &mut SeriesCache::default(),
            &mut Scratch::default(),
            Timestamp(0),
            MS,
            &fetch,
        );
        assert_eq!(r.samples_unencodable, 0);
        // Samples first, then the metadata of all 283 families in records of their own.
        let split = records
            .iter()
            .position(|r| r.samples == 0)
            .expect("metadata records");
        assert!(records[..split].iter().all(|r| r.samples > 0
            && remote_write::decode(&r.payload)
                .unwrap()
                .metadata
                .is_empty()));
        let mut families = 0;
        for r in &records[split..] {
            assert!(r.samples == 0 && r.payload.len() <= 4096);
            let decoded = remote_write::decode(&r.payload).unwrap();
            assert!(decoded.timeseries.is_empty());
            families += decoded.metadata.len();
        }
        assert_eq!(families, 283);
    }
}
