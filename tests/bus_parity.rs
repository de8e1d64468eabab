//! The bus equals Prometheus 3.16: a differential test of everything a scrape writes.
//!
//! Method. Two scrapers run the same job against exporters of this test: Prometheus 3.16 in
//! agent mode, remote-writing to a receiver of the test's own, and a `scrapepool run` pool
//! member (real ZooKeeper and Kafka, `--encoding remote-write`) whose topic is read back.
//! Both sides are decoded by one decoder (`scrapepool_core::testing::remote_write`, prost
//! structs from Prometheus's proto files). Each scraper has its own exporter instances, and
//! each exporter serves a scripted sequence (the k-th request of `/metrics` gets reply k,
//! the last one repeating), so both see the same bodies in the same order:
//!
//! - `fixtures`: the node_exporter, Prometheus and VictoriaMetrics fixtures of `testdata/`,
//!   one after the other (hundreds of series disappear at once), through
//!   `metric_relabel_configs` that drop some;
//! - `utf8-text`, `utf8-om`: quoted UTF-8 metric and label names (text 1.0.0 and
//!   OpenMetrics 1.0.0), UTF-8 label values, a series that disappears, `_created` lines;
//! - `histsum`: a histogram with `le="1"`/`"1e3"`, a summary with `quantile="1"`, and a
//!   gauge with an `le` label, alternately in the text format and in OpenMetrics;
//! - `stamped`: explicit timestamps (ms in text, seconds in OpenMetrics' `utf8-om`), one
//!   such series disappearing (no marker expected: Prometheus does not track them), then
//!   an HTTP 503 after a success;
//! - `churn`: a series that goes, comes back and goes, a body whose first line does not
//!   parse, an HTTP 503, recovery (`scrape_series_added` after failures), an empty body;
//! - `protobuf`: the protobuf format — counter, gauge, summary, classic histograms with and
//!   without `+Inf`, a gauge histogram, float counts, a native-only histogram (its classic
//!   part, as Prometheus reads it without native histogram scraping), labels out of order,
//!   a series that comes and goes — and every third body client_golang's own answer
//!   (`testdata/exposition/go-exporter/client_golang-1.25.0.pb`);
//! - `native`: a fourth job with `scrape_native_histograms: true`,
//!   `always_scrape_classic_histograms: true` and `native_histogram_min_bucket_factor: 1.1`:
//!   integer, float and gauge native histograms, one above the schema cap, one that comes
//!   and goes, and client_golang's answer (native, mixed, empty and classic histograms);
//! - `content-type`: no Content-Type, then an unknown one, then the text format;
//! - `labels`: target labels clashing with scraped ones (`exported_*`), an empty label
//!   value, a series twice in one body, NaN, ±Inf, -0, escapes in a label value;
//! - `limited`: a second job with `sample_limit: 2`, over it in the first two bodies;
//! - `honor`: a third job with `honor_labels: true` and `honor_timestamps: false`;
//! - `redirect`: the metrics path answers 302 to `/metrics`;
//! - `gone`: removed from the file SD after three scrapes: end-of-run markers.
//!
//! Left out on purpose: the one staleness difference `core::scrape` documents (after a limit
//! or a parse error *inside* a body, Prometheus writes no markers for the series it appended
//! before failing; scrapepool marks them all). The failures scripted here come after a
//! failed scrape or fail on the first line, where both write the same markers.
//! Also left out: an explicit timestamp repeated from one scrape to the next (Prometheus's
//! storage refuses it as out of order; a bus has no storage to refuse it).
//!
//! Comparison, per target and **per scrape**: the two scrapers' timestamps differ, so the
//! scrapes of a target are aligned by order (the n-th `up` sample of each side). A sample
//! belongs to the scrape whose timestamp it carries; a sample with an explicit timestamp
//! belongs to the scrape of the body that carried it (the script knows which) and its
//! timestamp is compared with its value; a staleness marker after a target's last scrape
//! is an end-of-run marker. Per scrape the label sets (with `instance` replaced by a
//! placeholder: the two sides' exporters listen on different ports) and values must be
//! identical, staleness markers included; `scrape_duration_seconds` is compared for
//! presence only. End-of-run markers must name the same series, and lie the same number of
//! intervals after the last scrape (Prometheus writes them at the next scheduled scrape).
//! The last two scrapes of each target are left out (the run may stop while one side's
//! copy of them is in flight). On failure the test prints every difference, once per
//! distinct line, with the scrapes it occurs in.
//!
//! Prometheus: `$SCRAPEPOOL_PROMETHEUS_BIN` when it is 3.x, else
//! `~/.cache/scrapepool/go/prometheus-v0.316.0/prometheus` (`scripts/go-tools.sh
//! prometheus`). ZooKeeper and Kafka: `SCRAPEPOOL_ZK`, `SCRAPEPOOL_KAFKA`. Without them the
//! test prints `SKIPPED: ...` and passes, unless `SCRAPEPOOL_REQUIRE_SERVICES=1`.

#[path = "../adapters/tests/support/mod.rs"]
mod support;

#[path = "support/prometheus3.rs"]
mod prometheus3;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use scrapepool_core::sample::STALE_NAN_BITS;

const TEST: &str = "bus_equals_prometheus";
/// The job's scrape interval.
const INTERVAL_MS: i64 = 1000;
/// Scrapes at the end of a run left out of the comparison (possibly still in flight).
const TAIL: usize = 2;
/// Longest the scraping phase may last.
const RUN_DEADLINE: Duration = Duration::from_secs(45);
/// How far an end-of-run marker may lie off the interval grid of its target's scrapes.
const GRID_TOLERANCE_MS: i64 = 50;
/// Most difference lines printed per target.
const LINES_PER_TARGET: usize = 80;

const TEXT_004: &str = "text/plain; version=0.0.4; charset=utf-8";
const TEXT_100_UTF8: &str = "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8";
const OM_100: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const OM_100_UTF8: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8";

/// Replies scripted per target (the last one repeats beyond).
const REPLIES: usize = 90;

// ---- the script ---------------------------------------------------------------------------

/// One answer of an exporter's `/metrics`.
#[derive(Clone, Debug)]
enum Reply {
    /// 200 with this Content-Type (none when empty) and body.
    Body(&'static str, String),
    /// 200 with this Content-Type and a binary body.
    Bytes(&'static str, Vec<u8>),
    /// This status, with a short text body.
    Status(u16),
}

/// One target: its name (the `name` label of its file SD group), its metrics path, its
/// replies, and how many scrapes of it both sides must make.
struct Script {
    name: &'static str,
    path: &'static str,
    replies: Vec<Reply>,
    scrapes: usize,
    /// Metrics Prometheus must deliver (a value, not a marker) in the compared scrapes: a
    /// script whose bodies the reference rejected would compare nothing.
    reference: &'static [&'static str],
}

/// Explicit timestamps: body `k`'s samples carry `base + k·1000 + offset`, `offset` < 1000,
/// later than any scrape's own timestamp (so a timestamp names its body) and within
/// Prometheus's 10 minutes ahead. Not earlier than the run: Prometheus's remote write
/// sends no sample older than its own start.
#[derive(Clone, Copy)]
struct Stamps {
    base_ms: i64,
}

impl Stamps {
    fn at(self, k: usize, offset: i64) -> i64 {
        self.base_ms + k as i64 * 1000 + offset
    }

    /// The body (1-based) a timestamp belongs to, if it is an explicit one.
    fn body_of(self, ts: i64) -> Option<usize> {
        let d = ts - self.base_ms;
        (1000..(REPLIES as i64 + 1) * 1000)
            .contains(&d)
            .then_some((d / 1000) as usize)
    }
}

fn fixture(file: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/exposition")
            .join(file),
    )
    .unwrap_or_else(|e| panic!("fixture {file}: {e}"))
}

/// The protobuf Content-Type client_golang answers with.
const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// The k-th body of the `protobuf` script (see there).
fn protobuf_body(k: usize) -> Vec<u8> {
    use scrapepool_core::testing::client_model::{
        encode_delimited, Bucket, BucketSpan, Counter, Histogram, LabelPair, Metric, MetricFamily,
        Quantile, Summary, Value,
    };
    let v = k as f64;
    let pair = |name: &str, value: &str| LabelPair {
        name: name.into(),
        value: value.into(),
    };
    let family = |name: &str, kind: i32, metric: Vec<Metric>| MetricFamily {
        name: name.into(),
        help: format!("{name} help"),
        r#type: kind,
        metric,
        unit: String::new(),
    };
    let bucket = |upper_bound: f64, count: u64| Bucket {
        cumulative_count: count,
        upper_bound,
        ..Bucket::default()
    };
    let histogram = |h: Histogram| Metric {
        histogram: Some(h),
        ..Metric::default()
    };
    let mut temps = vec![Metric {
        label: vec![pair("room", "a")],
        gauge: Some(Value { value: v / 2.0 }),
        ..Metric::default()
    }];
    if k % 4 == 1 {
        temps.push(Metric {
            label: vec![pair("room", "b")],
            gauge: Some(Value { value: -v }),
            ..Metric::default()
        });
    }
    encode_delimited(&[
        family(
            "pb_requests_total",
            0,
            vec![Metric {
                label: vec![pair("method", "GET"), pair("code", "200")],
                counter: Some(Counter {
                    value: v,
                    ..Counter::default()
                }),
                ..Metric::default()
            }],
        ),
        family("pb_temp", 1, temps),
        family(
            "pb_rpc",
            2,
            vec![Metric {
                summary: Some(Summary {
                    sample_count: k as u64,
                    sample_sum: v * 1.5,
                    quantile: vec![
                        Quantile {
                            quantile: 0.5,
                            value: v,
                        },
                        Quantile {
                            quantile: 0.99,
                            value: 2.0 * v,
                        },
                    ],
                    start_timestamp: None,
                }),
                ..Metric::default()
            }],
        ),
        family(
            "pb_lat",
            4,
            vec![histogram(Histogram {
                sample_count: 3 * k as u64,
                sample_sum: v,
                bucket: vec![bucket(0.1, k as u64), bucket(1.0, 2 * k as u64)],
                ..Histogram::default()
            })],
        ),
        family(
            "pb_queue",
            5,
            vec![histogram(Histogram {
                sample_count: 9,
                sample_sum: 4.0,
                bucket: vec![bucket(1.0, 3), bucket(f64::INFINITY, 9), bucket(5.0, 7)],
                ..Histogram::default()
            })],
        ),
        family(
            "pb_float",
            4,
            vec![histogram(Histogram {
                sample_count_float: v + 0.5,
                sample_sum: 1.0,
                bucket: vec![Bucket {
                    cumulative_count_float: v,
                    ..bucket(2.5, 0)
                }],
                ..Histogram::default()
            })],
        ),
        family(
            "pb_native",
            4,
            vec![histogram(Histogram {
                sample_count: 4 + k as u64,
                sample_sum: -v,
                schema: 2,
                zero_threshold: 1e-128,
                zero_count: 1,
                positive_span: vec![BucketSpan {
                    offset: -1,
                    length: 2,
                }],
                positive_delta: vec![k as i64, 1],
                ..Histogram::default()
            })],
        ),
    ])
}

/// The k-th body of the `native` script (see there).
fn native_body(k: usize) -> Vec<u8> {
    use scrapepool_core::testing::client_model::{
        encode_delimited, Bucket, BucketSpan, Histogram, Metric, MetricFamily,
    };
    let n = k as u64;
    let span = |offset: i32, length: u32| BucketSpan { offset, length };
    let family = |name: &str, kind: i32, h: Histogram| MetricFamily {
        name: name.into(),
        help: format!("{name} help"),
        r#type: kind,
        metric: vec![Metric {
            histogram: Some(h),
            ..Metric::default()
        }],
        unit: String::new(),
    };
    let mut families = vec![
        // Integer, both sides, a gap between spans, an empty bucket (compacted away), and
        // classic buckets beside the native ones.
        family(
            "nh_int",
            4,
            Histogram {
                // Buckets n, n, 0, 2 and n + 4, zero bucket 1.
                sample_count: 3 * n + 7,
                sample_sum: 1.5 * k as f64,
                schema: 1,
                zero_threshold: 1e-4,
                zero_count: 1,
                positive_span: vec![span(-1, 3), span(2, 1)],
                positive_delta: vec![n as i64, 0, -(n as i64), 2],
                negative_span: vec![span(0, 1)],
                negative_delta: vec![n as i64 + 4],
                bucket: vec![Bucket {
                    cumulative_count: n,
                    upper_bound: 1.0,
                    ..Bucket::default()
                }],
                ..Histogram::default()
            },
        ),
        // Float counts, schema 4: capped at schema 2.
        family(
            "nh_float",
            4,
            Histogram {
                sample_count_float: 6.5 + k as f64,
                sample_sum: -2.0,
                schema: 4,
                zero_threshold: 0.001,
                zero_count_float: 0.5,
                positive_span: vec![span(3, 4)],
                positive_count: vec![1.0, k as f64, 2.0, 3.0],
                ..Histogram::default()
            },
        ),
        // A gauge histogram.
        family(
            "nh_gauge",
            5,
            Histogram {
                sample_count: n,
                schema: 0,
                zero_threshold: 0.1,
                zero_count: n,
                ..Histogram::default()
            },
        ),
    ];
    if k % 4 == 1 {
        families.push(family(
            "nh_sometimes",
            4,
            Histogram {
                sample_count: 1,
                schema: 0,
                positive_span: vec![span(0, 1)],
                positive_delta: vec![1],
                ..Histogram::default()
            },
        ));
    }
    encode_delimited(&families)
}

fn replies(f: impl Fn(usize) -> Reply) -> Vec<Reply> {
    (1..=REPLIES).map(f).collect()
}

fn scripts(stamps: Stamps) -> Vec<Script> {
    let node = fixture("node_exporter-1.5.0.prom");
    let prom = fixture("prometheus-2.42.0.prom");
    let vm = fixture("victoria-metrics-1.79.5.prom");
    let go_exporter = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/exposition/go-exporter/client_golang-1.25.0.pb"),
    )
    .expect("the client_golang protobuf fixture");
    vec![
        Script {
            name: "fixtures",
            path: "/metrics",
            replies: replies(|k| match k {
                1 | 2 => Reply::Body(TEXT_004, node.clone()),
                3 => Reply::Body(TEXT_004, prom.clone()),
                _ => Reply::Body(TEXT_004, vm.clone()),
            }),
            scrapes: 5,
            reference: &["node_load1", "prometheus_build_info", "vm_active_merges"],
        },
        Script {
            name: "utf8-text",
            path: "/metrics",
            replies: replies(|k| {
                let mut b = format!(
                    r#"# HELP "utf8.requests.total" Requests, under a UTF-8 name.
# TYPE "utf8.requests.total" counter
{{"utf8.requests.total","http.method"="GET",code="200"}} {k}
{{"utf8.requests.total","http.method"="POST",code="200"}} {}
# TYPE "utf8.latency.seconds" histogram
{{"utf8.latency.seconds_bucket",le="1"}} {k}
{{"utf8.latency.seconds_bucket",le="+Inf"}} {}
{{"utf8.latency.seconds_sum"}} 0.5
{{"utf8.latency.seconds_count"}} {}
# TYPE legacy_with_utf8_values gauge
legacy_with_utf8_values{{path="/ü/€/日本",emoji="🦀"}} 1
"#,
                    2 * k,
                    k + 1,
                    k + 1
                );
                if k <= 2 {
                    b.push_str("{\"utf8.gone.soon\",\"ä.b\"=\"c\"} 1\n");
                }
                Reply::Body(TEXT_100_UTF8, b)
            }),
            scrapes: 4,
            reference: &[
                "utf8.requests.total",
                "utf8.gone.soon",
                "legacy_with_utf8_values",
            ],
        },
        Script {
            name: "utf8-om",
            path: "/metrics",
            replies: replies(|k| {
                let ts = stamps.at(k, 500);
                let mut b = format!(
                    r#"# TYPE "om.utf8.events" counter
{{"om.utf8.events_total","span.kind"="server"}} {k}
# TYPE om_requests counter
om_requests_total 3
om_requests_created 1700000000.25
# TYPE om_stamped gauge
om_stamped{{a="b"}} 1.5 {}.{:03}
"#,
                    ts / 1000,
                    ts % 1000
                );
                if k <= 2 {
                    b.push_str("# TYPE \"om.gone\" gauge\n{\"om.gone\"} 1\n");
                }
                b.push_str("# EOF\n");
                Reply::Body(OM_100_UTF8, b)
            }),
            scrapes: 4,
            reference: &["om.utf8.events_total", "om_requests_created", "om_stamped"],
        },
        Script {
            name: "histsum",
            path: "/metrics",
            replies: replies(|k| {
                let mut b = format!(
                    r#"# TYPE hs_latency_seconds histogram
hs_latency_seconds_bucket{{le="0.5"}} {k}
hs_latency_seconds_bucket{{le="1"}} {}
hs_latency_seconds_bucket{{le="1e3"}} {}
hs_latency_seconds_bucket{{le="+Inf"}} {}
hs_latency_seconds_sum {k}.5
hs_latency_seconds_count {}
# TYPE hs_rpc_seconds summary
hs_rpc_seconds{{quantile="0.5"}} 0.25
hs_rpc_seconds{{quantile="1"}} 2
hs_rpc_seconds_sum {k}
hs_rpc_seconds_count {k}
# TYPE hs_gauge_with_le gauge
hs_gauge_with_le{{le="1"}} 7
"#,
                    2 * k,
                    3 * k,
                    3 * k,
                    3 * k
                );
                if k % 2 == 0 {
                    b.push_str("# EOF\n");
                    Reply::Body(OM_100, b)
                } else {
                    Reply::Body(TEXT_004, b)
                }
            }),
            scrapes: 4,
            reference: &[
                "hs_latency_seconds_bucket",
                "hs_rpc_seconds",
                "hs_gauge_with_le",
            ],
        },
        Script {
            name: "stamped",
            path: "/metrics",
            replies: replies(|k| {
                let mut b = format!(
                    "# TYPE st_explicit gauge\nst_explicit{{kind=\"a\"}} {k} {}\n",
                    stamps.at(k, 0)
                );
                if k <= 3 {
                    let _ = writeln!(b, "st_explicit{{kind=\"b\"}} {} {}", 2 * k, stamps.at(k, 1));
                }
                let _ = write!(b, "# TYPE st_implicit gauge\nst_implicit {k}\n");
                // A failure after a success: markers only for the series without a timestamp.
                if k == 6 {
                    return Reply::Status(503);
                }
                Reply::Body(TEXT_004, b)
            }),
            scrapes: 7,
            reference: &["st_explicit", "st_implicit"],
        },
        Script {
            name: "churn",
            path: "/metrics",
            replies: replies(|k| {
                let flaky = matches!(k, 1 | 2 | 5 | 8) || k >= 10;
                match k {
                    // The first sample line does not parse.
                    6 => Reply::Body(TEXT_004, "ch_stay{broken 1\nch_flaky 2\n".into()),
                    7 => Reply::Status(503),
                    // An empty 200.
                    9 => Reply::Body(TEXT_004, String::new()),
                    _ => {
                        let mut b = format!("# TYPE ch_stay gauge\nch_stay {k}\n");
                        if flaky {
                            let _ =
                                write!(b, "# TYPE ch_flaky gauge\nch_flaky{{phase=\"x\"}} {k}\n");
                        }
                        Reply::Body(TEXT_004, b)
                    }
                }
            }),
            scrapes: 10,
            reference: &["ch_stay", "ch_flaky"],
        },
        Script {
            // The protobuf format: every metric type, labels out of order, a classic
            // histogram without `+Inf`, a gauge histogram with one in the middle, float
            // counts, a native-only histogram (read as its classic part), a series that
            // comes and goes; every third body client_golang's own answer.
            name: "protobuf",
            path: "/metrics",
            replies: replies(|k| {
                if k % 3 == 0 {
                    Reply::Bytes(PROTOBUF, go_exporter.clone())
                } else {
                    Reply::Bytes(PROTOBUF, protobuf_body(k))
                }
            }),
            scrapes: 7,
            reference: &["pb_requests_total", "pb_lat_bucket", "demo_requests_total"],
        },
        Script {
            // Its job scrapes native histograms, keeps classic series beside them, and caps
            // the schema at 2 (bucket factor 1.1): integer and float histograms, one of
            // schema 4 (reduced), one that comes and goes (a histogram series' marker),
            // classic-only ones, and every third body client_golang's own answer (native,
            // mixed, gauge, empty and classic histograms).
            name: NATIVE,
            path: "/metrics",
            replies: replies(|k| {
                if k % 3 == 0 {
                    Reply::Bytes(PROTOBUF, go_exporter.clone())
                } else {
                    Reply::Bytes(PROTOBUF, native_body(k))
                }
            }),
            scrapes: 7,
            reference: &["nh_int", "nh_float", "nh_int_bucket", "demo_native_seconds"],
        },
        Script {
            // No Content-Type, then an unknown one, then the text format.
            name: "content-type",
            path: "/metrics",
            replies: replies(|k| {
                let body = format!("# TYPE ct_value gauge\nct_value {k}\n");
                match k {
                    1 => Reply::Body("", body),
                    2 => Reply::Body("application/json", body),
                    _ => Reply::Body(TEXT_004, body),
                }
            }),
            scrapes: 3,
            reference: &["ct_value"],
        },
        Script {
            name: "labels",
            path: "/metrics",
            replies: replies(|k| {
                Reply::Body(
                    TEXT_004,
                    format!(
                        r#"# TYPE lb_conflict gauge
lb_conflict{{job="exporter-job",instance="elsewhere",exported_job="taken"}} {k}
# TYPE lb_empty gauge
lb_empty{{a="",b="x"}} 2
# TYPE lb_dup gauge
lb_dup 1
lb_dup 2
# TYPE lb_special gauge
lb_special{{v="nan"}} NaN
lb_special{{v="inf"}} +Inf
lb_special{{v="-inf"}} -Inf
lb_special{{v="neg0"}} -0
lb_special{{v="tiny"}} 1.5e-300
lb_escaped{{path="C:\\dir\\\"q\"\nnext"}} 1
"#
                    ),
                )
            }),
            scrapes: 3,
            reference: &[
                "lb_conflict",
                "lb_empty",
                "lb_dup",
                "lb_special",
                "lb_escaped",
            ],
        },
        Script {
            // Over its job's `sample_limit` in its first two bodies (after no successful
            // scrape, so there are no markers to write either way).
            name: LIMITED,
            path: "/metrics",
            replies: replies(|k| {
                let mut b = "lm_a 1\nlm_b 2\n".to_string();
                if k <= 2 {
                    b.push_str("lm_c 3\n");
                }
                Reply::Body(TEXT_004, b)
            }),
            scrapes: 4,
            reference: &["lm_a", "lm_b"],
        },
        Script {
            // Its job has `honor_labels: true` and `honor_timestamps: false`.
            name: HONOR,
            path: "/metrics",
            replies: replies(|k| {
                Reply::Body(
                    TEXT_004,
                    format!(
                        "hn_conflict{{job=\"mine\",instance=\"theirs\"}} {k}\nhn_plain {k}\nhn_stamped {k} {}\n",
                        stamps.at(k, 2)
                    ),
                )
            }),
            scrapes: 3,
            reference: &["hn_conflict", "hn_plain", "hn_stamped"],
        },
        Script {
            name: "redirect",
            path: "/moved",
            replies: replies(|k| {
                Reply::Body(TEXT_004, format!("# TYPE rd_value gauge\nrd_value {k}\n"))
            }),
            scrapes: 3,
            reference: &["rd_value"],
        },
        Script {
            name: GONE,
            path: "/metrics",
            replies: replies(|_| Reply::Body(TEXT_004, "gone_a 1\ngone_b{x=\"y\"} 2\n".into())),
            scrapes: GONE_SCRAPES,
            reference: &["gone_a", "gone_b"],
        },
    ]
}

/// The target removed from discovery once both sides scraped it `GONE_SCRAPES` times.
const GONE: &str = "gone";
const GONE_SCRAPES: usize = 3;

/// The target of the job `limited` (a static target with `sample_limit: 2`).
const LIMITED: &str = "limited";
/// The target of the job `honor` (a static target with `honor_labels: true` and
/// `honor_timestamps: false`).
const HONOR: &str = "honor";
/// The target of the job `native` (a static target with `scrape_native_histograms: true`,
/// `always_scrape_classic_histograms: true` and `native_histogram_min_bucket_factor: 1.1`).
const NATIVE: &str = "native";

/// The jobs both scrapers run (Prometheus's `scrape_configs` entries, scrapepool's jobs):
/// `parity` over the side's file SD file, `limited` and `honor` with the side's own
/// exporters as static targets (their `name` label says which script they serve).
fn job_yaml(side: &Side) -> String {
    format!(
        r#"  - job_name: parity
    scrape_interval: 1s
    scrape_timeout: 900ms
    file_sd_configs:
      - files: ['{}']
        refresh_interval: 1s
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: 'node_scrape_collector_.*|vm_cache_.*'
        action: drop
  - job_name: {LIMITED}
    scrape_interval: 1s
    scrape_timeout: 900ms
    sample_limit: 2
    static_configs:
      - targets: ['{}']
        labels: {{name: {LIMITED}}}
  - job_name: {HONOR}
    scrape_interval: 1s
    scrape_timeout: 900ms
    honor_labels: true
    honor_timestamps: false
    static_configs:
      - targets: ['{}']
        labels: {{name: {HONOR}}}
  - job_name: {NATIVE}
    scrape_interval: 1s
    scrape_timeout: 900ms
    scrape_native_histograms: true
    always_scrape_classic_histograms: true
    native_histogram_min_bucket_factor: 1.1
    static_configs:
      - targets: ['{}']
        labels: {{name: {NATIVE}}}
"#,
        side.sd_file.display(),
        side.address_of(LIMITED).expect("a limited exporter"),
        side.address_of(HONOR).expect("an honor exporter"),
        side.address_of(NATIVE).expect("a native exporter")
    )
}

// ---- exporters ----------------------------------------------------------------------------

/// An HTTP server on a free loopback port serving one script: `/metrics` answers reply k
/// to its k-th request, `/moved` redirects there.
struct Exporter {
    addr: String,
    /// Requests of the target's own metrics path (scrapes tried).
    attempts: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    fn start(entry: &'static str, replies: Vec<Reply>) -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        // Replies served by `/metrics`.
        let served = AtomicU64::new(0);
        let attempts = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (attempts, stop) = (attempts.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut conn) = conn else { continue };
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    let Some((head, _)) = read_head(&mut conn, &mut Vec::new()) else {
                        continue;
                    };
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    if path == entry {
                        attempts.fetch_add(1, Ordering::SeqCst);
                    }
                    let (status, content_type, body, location) = match path.as_str() {
                        "/moved" => (302, "text/plain", Vec::new(), Some("/metrics")),
                        "/metrics" => {
                            let k = served.fetch_add(1, Ordering::SeqCst) as usize + 1;
                            match &replies[k.min(replies.len()) - 1] {
                                Reply::Body(ct, text) => (200, *ct, text.clone().into(), None),
                                Reply::Bytes(ct, bytes) => (200, *ct, bytes.clone(), None),
                                Reply::Status(s) => {
                                    (*s, "text/plain", b"unavailable\n".to_vec(), None)
                                }
                            }
                        }
                        _ => (404, "text/plain", b"not found\n".to_vec(), None),
                    };
                    let location = location
                        .map(|l| format!("Location: {l}\r\n"))
                        .unwrap_or_default();
                    let content_type = if content_type.is_empty() {
                        String::new()
                    } else {
                        format!("Content-Type: {content_type}\r\n")
                    };
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {status} {}\r\n{content_type}{location}Content-Length: {}\r\nConnection: close\r\n\r\n",
                        reason(status),
                        body.len()
                    )
                    .and_then(|()| conn.write_all(&body));
                }
            })
        };
        Exporter {
            addr,
            attempts,
            stop,
            thread: Some(thread),
        }
    }

    fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst) as usize
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        302 => "Found",
        400 => "Bad Request",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Reads one request or response head (through `\r\n\r\n`); `buf` keeps what was read
/// past it. `None` on EOF or error before a whole head.
fn read_head(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let rest = buf[end + 4..].to_vec();
            buf.clear();
            return Some((head, rest));
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

// ---- samples --------------------------------------------------------------------------

/// One decoded sample.
#[derive(Clone, Debug)]
struct Sample {
    labels: BTreeMap<String, String>,
    ts: i64,
    value: f64,
    /// A native histogram sample: every field of it, as one line.
    histogram: Option<String>,
}

impl Sample {
    /// A staleness marker: a float one, or a histogram whose sum is the marker.
    fn is_stale(&self) -> bool {
        self.value.to_bits() == STALE_NAN_BITS
    }
}

/// A family's metadata as a v1 request carries it: name, type, help, unit.
type Family = (String, i32, String, String);

fn decode(payload: &[u8]) -> Result<(Vec<Sample>, Vec<Family>), String> {
    let req = scrapepool_core::testing::remote_write::decode(payload)?;
    let families = req
        .metadata
        .iter()
        .map(|m| {
            (
                m.metric_family_name.clone(),
                m.r#type,
                m.help.clone(),
                m.unit.clone(),
            )
        })
        .collect();
    let mut out = Vec::new();
    for ts in req.timeseries {
        let labels: BTreeMap<String, String> =
            ts.labels.into_iter().map(|l| (l.name, l.value)).collect();
        for s in ts.samples {
            out.push(Sample {
                labels: labels.clone(),
                ts: s.timestamp,
                value: s.value,
                histogram: None,
            });
        }
        for h in ts.histograms {
            out.push(Sample {
                labels: labels.clone(),
                ts: h.timestamp,
                // A histogram marker is a marker too (its kind still shows in the text).
                value: h.sum,
                histogram: Some(h.show()),
            });
        }
    }
    Ok((out, families))
}

/// What one side delivered: samples, and any payload that did not decode.
#[derive(Default)]
struct Received {
    samples: Vec<Sample>,
    /// Every family's metadata ever sent.
    families: BTreeSet<Family>,
    errors: Vec<String>,
}

type Shared = Arc<Mutex<Received>>;

/// Whether `received` holds a staleness marker of target `name`.
fn has_marker_of(received: &Shared, name: &str) -> bool {
    received
        .lock()
        .unwrap()
        .samples
        .iter()
        .any(|s| s.is_stale() && s.labels.get("name").map(String::as_str) == Some(name))
}

// ---- Prometheus's side: a remote-write receiver -------------------------------------------

/// A remote-write receiver: HTTP/1.1 with keep-alive, one thread per connection.
struct Receiver {
    addr: String,
    received: Shared,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let received: Shared = Arc::default();
        let shared = received.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || serve_remote_write(conn, &shared));
            }
        });
        Receiver { addr, received }
    }
}

fn serve_remote_write(mut conn: TcpStream, received: &Shared) {
    let mut buf = Vec::new();
    loop {
        let Some((head, mut body)) = read_head(&mut conn, &mut buf) else {
            return;
        };
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut chunk = [0u8; 65536];
        while body.len() < length {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        buf = body.split_off(length);
        let status = match decode(&body) {
            Ok((samples, families)) => {
                let mut r = received.lock().unwrap();
                r.samples.extend(samples);
                r.families.extend(families);
                204
            }
            Err(e) => {
                received.lock().unwrap().errors.push(format!("{head}: {e}"));
                400
            }
        };
        if write!(
            conn,
            "HTTP/1.1 {status} {}\r\nContent-Length: 0\r\n\r\n",
            reason(status)
        )
        .is_err()
        {
            return;
        }
    }
}

// ---- processes ----------------------------------------------------------------------------

/// A child process, killed on drop; its log's tail is printed when the test fails.
struct Proc {
    what: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(what: &'static str, cmd: &mut Command, log: PathBuf) -> Proc {
        let out = File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        Proc { what, child, log }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- log of {} ----\n{}", self.what, self.log_tail());
        }
    }
}

/// `GET path` on `addr`: the status.
fn get_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let (head, _) = read_head(&mut s, &mut Vec::new())?;
    head.split(' ').nth(1)?.parse().ok()
}

/// `GET path` on `addr`: the body of a 200 answer.
fn get_body(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let (head, mut body) = read_head(&mut s, &mut Vec::new())?;
    s.read_to_end(&mut body).ok()?;
    if head.split(' ').nth(1) != Some("200") {
        return None;
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let (mut rest, mut plain) = (body.as_slice(), Vec::new());
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size =
                usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16).ok()?;
            if size == 0 {
                break;
            }
            plain.extend_from_slice(rest.get(eol + 2..eol + 2 + size)?);
            rest = rest.get(eol + 4 + size..)?;
        }
        body = plain;
    }
    String::from_utf8(body).ok()
}

/// The `lastError` of each active target of a scrapepool member, by its `name` label.
fn last_errors(web: &str) -> BTreeMap<String, String> {
    let Some(body) = get_body(web, "/api/v1/targets") else {
        return BTreeMap::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["data"]["activeTargets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let name = t["labels"]["name"].as_str()?;
            let error = t["lastError"].as_str().filter(|e| !e.is_empty())?;
            Some((name.to_string(), error.to_string()))
        })
        .collect()
}

fn wait_ready(addr: &str, what: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while get_status(addr, "/-/ready") != Some(200) {
        assert!(
            Instant::now() < deadline,
            "{what} not ready within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Writes a file SD file atomically (a rename), so no reader sees half of it.
fn write_sd(file: &Path, groups: &serde_json::Value) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(groups).unwrap()).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

/// One side's exporters and file SD file.
struct Side {
    /// Per target: its name, metrics path and exporter.
    exporters: Vec<(&'static str, &'static str, Exporter)>,
    sd_file: PathBuf,
}

impl Side {
    fn start(scripts: &[Script], sd_file: PathBuf) -> Side {
        let exporters = scripts
            .iter()
            .map(|s| (s.name, s.path, Exporter::start(s.path, s.replies.clone())))
            .collect();
        let side = Side { exporters, sd_file };
        side.write_sd(true);
        side
    }

    fn write_sd(&self, with_gone: bool) {
        let groups: Vec<serde_json::Value> = self
            .exporters
            .iter()
            .filter(|(name, _, _)| {
                ![LIMITED, HONOR, NATIVE].contains(name) && (with_gone || *name != GONE)
            })
            .map(|(name, path, e)| {
                let mut labels = serde_json::json!({ "name": name });
                if *path != "/metrics" {
                    labels["__metrics_path__"] = (*path).into();
                }
                serde_json::json!({ "targets": [e.addr], "labels": labels })
            })
            .collect();
        write_sd(&self.sd_file, &serde_json::Value::Array(groups));
    }

    /// Scrapes of target `name` tried so far.
    fn attempts(&self, name: &str) -> usize {
        self.exporters
            .iter()
            .find(|(n, _, _)| *n == name)
            .map_or(0, |(_, _, e)| e.attempts())
    }

    fn address_of(&self, name: &str) -> Option<&str> {
        self.exporters
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, e)| e.addr.as_str())
    }
}

/// Reads a Kafka topic from its start on a thread, decoding remote-write records.
struct BusReader {
    received: Shared,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BusReader {
    fn start(brokers: &str, topic: &str) -> BusReader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("{topic}-reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            // The topic appears with the daemon's first record: notice it soon.
            .set("topic.metadata.refresh.interval.ms", "1000")
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let received: Shared = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (received, stop) = (received.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    // Errors (topic not created yet) are retried by polling on.
                    let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                        continue;
                    };
                    let encoding = m.headers().and_then(|hs| {
                        hs.iter().find(|h| h.key == "encoding").map(|h| {
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()
                        })
                    });
                    let mut r = received.lock().unwrap();
                    if encoding.as_deref() != Some("remote-write") {
                        r.errors
                            .push(format!("a record with encoding {encoding:?}"));
                        continue;
                    }
                    match decode(m.payload().unwrap_or_default()) {
                        Ok((samples, families)) => {
                            r.samples.extend(samples);
                            r.families.extend(families);
                        }
                        Err(e) => r.errors.push(e),
                    }
                }
            })
        };
        BusReader {
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Shared {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.received.clone()
    }
}

// ---- cutting samples into scrapes -----------------------------------------------------

/// One scrape as compared: series key → value text(s).
#[derive(Debug, Default)]
struct Scrape {
    samples: BTreeMap<String, Vec<String>>,
}

/// One side's view of one target.
#[derive(Debug, Default)]
struct TargetRun {
    scrapes: Vec<Scrape>,
    /// End-of-run markers: series key → milliseconds after the last scrape.
    end_markers: BTreeMap<String, i64>,
    /// Samples that belong to no scrape.
    unplaced: Vec<String>,
}

fn value_text(name: &str, s: &Sample) -> String {
    if let Some(h) = &s.histogram {
        if s.is_stale() {
            return "StaleNaN (a histogram)".into();
        }
        return h.clone();
    }
    if s.is_stale() {
        "StaleNaN".into()
    } else if s.value.is_nan() {
        "NaN".into()
    } else if name == "scrape_duration_seconds" {
        "<any duration>".into()
    } else {
        format!("{:?}", s.value)
    }
}

/// `name{labels}`, labels sorted, `instance` replaced by a placeholder when it is the
/// side's own exporter address for the target.
fn series_key(s: &Sample, address: Option<&str>) -> String {
    let name = s
        .labels
        .get("__name__")
        .map_or("<no __name__>", String::as_str);
    let mut out = format!("{name:?}{{");
    let mut first = true;
    for (k, v) in &s.labels {
        if k == "__name__" {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        let v = if k == "instance" && Some(v.as_str()) == address {
            "<exporter address>"
        } else {
            v
        };
        let _ = write!(out, "{k}={v:?}");
    }
    out.push('}');
    out
}

/// Cuts one side's samples into targets and scrapes.
fn cut(
    received: &Received,
    side: &Side,
    stamps: Stamps,
) -> (BTreeMap<String, TargetRun>, Vec<String>) {
    let mut by_target: BTreeMap<String, Vec<&Sample>> = BTreeMap::new();
    let mut unattributed = Vec::new();
    for s in &received.samples {
        match s.labels.get("name") {
            Some(n) => by_target.entry(n.clone()).or_default().push(s),
            None => unattributed.push(format!(
                "{} {} @{}",
                series_key(s, None),
                value_text("", s),
                s.ts
            )),
        }
    }
    let mut out = BTreeMap::new();
    for (name, samples) in by_target {
        let address = side.address_of(&name);
        let up_ts: Vec<i64> = samples
            .iter()
            .filter(|s| s.labels.get("__name__").map(String::as_str) == Some("up") && !s.is_stale())
            .map(|s| s.ts)
            .collect::<BTreeSet<i64>>()
            .into_iter()
            .collect();
        let mut run = TargetRun {
            scrapes: up_ts.iter().map(|_| Scrape::default()).collect(),
            ..Default::default()
        };
        let last = up_ts.last().copied();
        for s in samples {
            let metric = s.labels.get("__name__").map_or("", String::as_str);
            let key = series_key(s, address);
            let value = value_text(metric, s);
            if let Ok(i) = up_ts.binary_search(&s.ts) {
                run.scrapes[i].samples.entry(key).or_default().push(value);
            } else if let Some(k) = stamps.body_of(s.ts) {
                match run.scrapes.get_mut(k - 1) {
                    Some(scrape) => scrape
                        .samples
                        .entry(key)
                        .or_default()
                        .push(format!("{value} @{}", s.ts)),
                    None => run
                        .unplaced
                        .push(format!("{key} {value} @{} (explicit, body {k})", s.ts)),
                }
            } else if s.is_stale() && last.is_some_and(|l| s.ts > l) {
                let offset = s.ts - last.unwrap();
                if let Some(old) = run.end_markers.insert(key.clone(), offset) {
                    run.unplaced.push(format!(
                        "{key}: two end-of-run markers, {old} and {offset} ms after the last scrape"
                    ));
                }
            } else {
                run.unplaced.push(format!("{key} {value} @{}", s.ts));
            }
        }
        out.insert(name, run);
    }
    (out, unattributed)
}

// ---- comparing ----------------------------------------------------------------------------

/// Differences of one target. A difference in a scrape is keyed by its kind and series and
/// keeps the value text of each scrape it occurs in, so one difference is one line however
/// many scrapes show it; a difference of the whole run is a line of its own.
#[derive(Default)]
struct Diffs {
    in_scrapes: BTreeMap<(String, String), Vec<(usize, String)>>,
    whole_run: BTreeSet<String>,
}

impl Diffs {
    /// A difference in scrape `scrape` (1-based): `kind` (`only prometheus`, ...), the
    /// series, and the value(s) in question.
    fn add(&mut self, scrape: usize, kind: &str, series: &str, values: String) {
        self.in_scrapes
            .entry((kind.to_string(), series.to_string()))
            .or_default()
            .push((scrape, values));
    }

    fn add_run(&mut self, line: String) {
        self.whole_run.insert(line);
    }

    fn len(&self) -> usize {
        self.in_scrapes.len() + self.whole_run.len()
    }

    fn render(&self, out: &mut String) {
        let mut lines: Vec<(usize, String)> = self
            .in_scrapes
            .iter()
            .map(|((kind, series), occ)| {
                let scrapes: Vec<usize> = occ.iter().map(|(s, _)| *s).collect();
                let values = if occ.iter().all(|(_, v)| *v == occ[0].1) {
                    occ[0].1.clone()
                } else {
                    let shown: Vec<String> = occ
                        .iter()
                        .take(3)
                        .map(|(s, v)| format!("{v} (scrape {s})"))
                        .collect();
                    let more = if occ.len() > 3 { ", ..." } else { "" };
                    format!("{}{more}", shown.join(", "))
                };
                (
                    scrapes[0],
                    format!("{kind}: {series} {values}  [scrapes {}]", ranges(&scrapes)),
                )
            })
            .collect();
        lines.sort();
        let all: Vec<&String> = self
            .whole_run
            .iter()
            .chain(lines.iter().map(|(_, l)| l))
            .collect();
        for line in all.iter().take(LINES_PER_TARGET) {
            let _ = writeln!(out, "    {line}");
        }
        if all.len() > LINES_PER_TARGET {
            let _ = writeln!(
                out,
                "    ... and {} more lines",
                all.len() - LINES_PER_TARGET
            );
        }
    }
}

/// `1-3,5`: sorted scrape numbers as ranges.
fn ranges(scrapes: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < scrapes.len() {
        let mut j = i;
        while j + 1 < scrapes.len() && scrapes[j + 1] == scrapes[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            scrapes[i].to_string()
        } else {
            format!("{}-{}", scrapes[i], scrapes[j])
        });
        i = j + 1;
    }
    out.join(",")
}

fn compare_target(script: &Script, theirs: Option<&TargetRun>, ours: Option<&TargetRun>) -> Diffs {
    let mut d = Diffs::default();
    let empty = TargetRun::default();
    let (p, o) = (theirs.unwrap_or(&empty), ours.unwrap_or(&empty));
    let removed = script.name == GONE;
    // A removed target's scrapes are all complete (its end-of-run markers came after them).
    let required = if removed {
        script.scrapes
    } else {
        script.scrapes + TAIL
    };
    for (who, run) in [("prometheus", p), ("scrapepool", o)] {
        if run.scrapes.len() < required {
            d.add_run(format!(
                "{who} made {} scrapes, {required} needed",
                run.scrapes.len()
            ));
        }
        for u in &run.unplaced {
            d.add_run(format!("{who}: a sample in no scrape: {u}"));
        }
    }
    let n = p.scrapes.len().min(o.scrapes.len());
    let n = if removed { n } else { n.saturating_sub(TAIL) };
    for i in 0..n {
        let (ps, os) = (&p.scrapes[i].samples, &o.scrapes[i].samples);
        for (key, pv) in ps {
            match os.get(key) {
                None => d.add(i + 1, "only prometheus", key, pv.join(" & ")),
                Some(ov) if ov != pv => d.add(
                    i + 1,
                    "value differs",
                    key,
                    format!(
                        "prometheus {}, scrapepool {}",
                        pv.join(" & "),
                        ov.join(" & ")
                    ),
                ),
                Some(_) => {}
            }
        }
        for (key, ov) in os {
            if !ps.contains_key(key) {
                d.add(i + 1, "only scrapepool", key, ov.join(" & "));
            }
        }
    }
    // End-of-run markers: the same series, the same number of intervals after the last scrape.
    let grid = |offset: i64| -> Result<i64, String> {
        let n = (offset + INTERVAL_MS / 2) / INTERVAL_MS;
        if (offset - n * INTERVAL_MS).abs() <= GRID_TOLERANCE_MS {
            Ok(n)
        } else {
            Err(format!("{offset} ms (off the interval grid)"))
        }
    };
    let show = |r: Result<i64, String>| match r {
        Ok(n) => format!("{n} interval(s)"),
        Err(e) => e,
    };
    for (key, &po) in &p.end_markers {
        match o.end_markers.get(key) {
            None => d.add_run(format!("end-of-run marker only from prometheus: {key}")),
            Some(&oo) => {
                let (pg, og) = (grid(po), grid(oo));
                if pg.is_err() || pg != og {
                    d.add_run(
                        format!(
                            "end-of-run marker timing: prometheus {} after the last scrape, scrapepool {}",
                            show(pg),
                            show(og)
                        ),
                    );
                }
            }
        }
    }
    for key in o.end_markers.keys() {
        if !p.end_markers.contains_key(key) {
            d.add_run(format!("end-of-run marker only from scrapepool: {key}"));
        }
    }
    for metric in script.reference {
        let prefix = format!("{metric:?}{{");
        let delivered = p.scrapes[..n].iter().any(|scrape| {
            scrape
                .samples
                .iter()
                .any(|(k, v)| k.starts_with(&prefix) && v.iter().any(|v| v != "StaleNaN"))
        });
        if !delivered {
            d.add_run(format!(
                "prometheus delivered no {metric} in the compared scrapes: the script tests nothing there"
            ));
        }
    }
    if removed && p.end_markers.is_empty() {
        d.add_run("prometheus wrote no end-of-run markers for the removed target".into());
    }
    d
}

// ---- the test -----------------------------------------------------------------------------

#[test]
fn bus_equals_prometheus() {
    let Some(prometheus) = prometheus3::reference_or_skip(TEST, "prometheus") else {
        return;
    };
    let zk = match support::shared_zk() {
        Ok(server) => server.connect.clone(),
        Err(why) => return support::skip(TEST, &why),
    };
    let kafka = match std::env::var("SCRAPEPOOL_KAFKA") {
        Ok(k) if !k.is_empty() => k,
        _ => {
            return support::skip(
                TEST,
                "SCRAPEPOOL_KAFKA is not set (scripts/services.sh start sets it)",
            )
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let stamps = Stamps {
        base_ms: now_ms - now_ms % 1000 + 180_000,
    };
    let scripts = scripts(stamps);

    // Prometheus 3.16, agent mode.
    let receiver = Receiver::start();
    let theirs = Side::start(&scripts, dir.path().join("prometheus-targets.json"));
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n{}\
             remote_write:\n  - url: http://{}/api/v1/write\n    send_native_histograms: true\n    queue_config:\n      \
             batch_send_deadline: 100ms\n      min_backoff: 50ms\n      max_backoff: 200ms\n    \
             metadata_config:\n      send: true\n      send_interval: 1s\n",
            job_yaml(&theirs),
            receiver.addr
        ),
    )
    .unwrap();
    let web = format!("127.0.0.1:{}", support::free_port());
    let prom = Proc::spawn(
        "prometheus",
        Command::new(&prometheus)
            .arg("--agent")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.agent.path={}",
                dir.path().join("agent").display()
            ))
            .arg(format!("--web.listen-address={web}")),
        dir.path().join("prometheus.log"),
    );

    // scrapepool: one pool member, jobs in ZooKeeper, records on a topic of its own.
    let ours = Side::start(&scripts, dir.path().join("scrapepool-targets.json"));
    let chroot = format!("{zk}/{}", support::unique("bus-parity"));
    let topic = support::unique("bus-parity");
    let jobs = dir.path().join("jobs.yml");
    std::fs::write(&jobs, format!("scrape_configs:\n{}", job_yaml(&ours))).unwrap();
    let apply = Command::new(env!("CARGO_BIN_EXE_scrapepool"))
        .args(["jobs", "--zookeeper", &chroot, "apply"])
        .arg(&jobs)
        .output()
        .unwrap();
    assert!(
        apply.status.success(),
        "scrapepool jobs apply: {}",
        String::from_utf8_lossy(&apply.stderr)
    );
    let listen = format!("127.0.0.1:{}", support::free_port());
    let bus = BusReader::start(&kafka, &topic);
    let daemon = Proc::spawn(
        "scrapepool",
        Command::new(env!("CARGO_BIN_EXE_scrapepool")).args([
            "-v",
            "run",
            "--zookeeper",
            &chroot,
            "--kafka",
            &kafka,
            "--topic",
            &topic,
            "--id",
            "bus-parity",
            "--listen",
            &listen,
            "--encoding",
            "remote-write",
        ]),
        dir.path().join("scrapepool.log"),
    );
    wait_ready(&web, "prometheus", Duration::from_secs(30));
    wait_ready(&listen, "scrapepool", Duration::from_secs(30));

    // Run until both sides served every script (plus the tail), `gone` was removed and both
    // wrote its end-of-run markers; or until the deadline, then compare what there is.
    let started = Instant::now();
    let mut removed_at = None;
    loop {
        let both = |name: &str| theirs.attempts(name).min(ours.attempts(name));
        if removed_at.is_none() && both(GONE) >= GONE_SCRAPES {
            theirs.write_sd(false);
            ours.write_sd(false);
            removed_at = Some(Instant::now());
        }
        let scripted = scripts
            .iter()
            .filter(|s| s.name != GONE)
            .all(|s| both(s.name) > s.scrapes + TAIL);
        let markers = removed_at.is_some()
            && has_marker_of(&receiver.received, GONE)
            && has_marker_of(&bus.received, GONE);
        if (scripted && markers) || started.elapsed() > RUN_DEADLINE {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // What is in flight arrives (remote-write batches every 100 ms; Kafka acknowledges).
    std::thread::sleep(Duration::from_millis(1500));
    let errors = last_errors(&listen);
    drop(prom);
    drop(daemon);
    std::thread::sleep(Duration::from_millis(500));
    let bus_received = bus.finish();

    let theirs_received = receiver.received.lock().unwrap();
    let ours_received = bus_received.lock().unwrap();
    assert!(
        theirs_received.errors.is_empty() && ours_received.errors.is_empty(),
        "undecodable payloads: prometheus {:?}, scrapepool {:?}",
        theirs_received.errors,
        ours_received.errors
    );
    let (p_runs, p_unattributed) = cut(&theirs_received, &theirs, stamps);
    let (o_runs, o_unattributed) = cut(&ours_received, &ours, stamps);

    let mut report = String::new();
    let mut differing = 0;
    for (who, lines) in [
        ("prometheus", &p_unattributed),
        ("scrapepool", &o_unattributed),
    ] {
        if !lines.is_empty() {
            differing += 1;
            let _ = writeln!(
                report,
                "  {who}: {} samples without a `name` label, first: {}",
                lines.len(),
                lines[0]
            );
        }
    }
    let mut summary = Vec::new();
    for script in &scripts {
        let (p, o) = (p_runs.get(script.name), o_runs.get(script.name));
        summary.push(format!(
            "{} {}/{}",
            script.name,
            p.map_or(0, |r| r.scrapes.len()),
            o.map_or(0, |r| r.scrapes.len())
        ));
        let d = compare_target(script, p, o);
        if d.len() > 0 {
            differing += 1;
            let error = errors
                .get(script.name)
                .map(|e| format!(" (scrapepool's last scrape error: {e})"))
                .unwrap_or_default();
            let _ = writeln!(
                report,
                "  target {:?}: {} difference line(s){error}",
                script.name,
                d.len()
            );
            d.render(&mut report);
        }
    }
    // Metadata: every family either side ever sent, with its type, help and unit.
    let (theirs_f, ours_f) = (&theirs_received.families, &ours_received.families);
    let only: Vec<String> = theirs_f
        .difference(ours_f)
        .map(|f| format!("    only prometheus: {f:?}"))
        .chain(
            ours_f
                .difference(theirs_f)
                .map(|f| format!("    only scrapepool: {f:?}")),
        )
        .collect();
    if !only.is_empty() {
        differing += 1;
        let _ = writeln!(report, "  metadata: {} difference line(s)", only.len());
        for line in only.iter().take(LINES_PER_TARGET) {
            let _ = writeln!(report, "{line}");
        }
    }
    assert!(
        theirs_f.iter().any(|f| f.0 == "node_load1"),
        "prometheus sent no metadata of the fixtures: the metadata comparison tests nothing"
    );
    let names: BTreeSet<&String> = p_runs.keys().chain(o_runs.keys()).collect();
    for name in names {
        if !scripts.iter().any(|s| s.name == name) {
            differing += 1;
            let _ = writeln!(report, "  samples of an unknown target {name:?}");
        }
    }
    println!(
        "scrapes (prometheus/scrapepool): {}; samples: prometheus {}, scrapepool {}; metadata of {} and {} families",
        summary.join(", "),
        theirs_received.samples.len(),
        ours_received.samples.len(),
        theirs_received.families.len(),
        ours_received.families.len()
    );
    assert!(
        differing == 0,
        "scrapepool's bus differs from Prometheus 3.16 ({}) in {differing} place(s):\n{report}",
        prometheus.display()
    );
}
