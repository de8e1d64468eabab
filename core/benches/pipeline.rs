//! Cost per sample of the whole pure part of a scrape: parse → target labels → metric
//! relabeling → limits/duplicates → staleness → encode, in steady state (the target's cache
//! is warm from a previous scrape of the same payload), for each bus encoding, on the text
//! fixtures and on a histogram-heavy protobuf payload (500 native histograms of 40 buckets
//! each, scraped with native histograms on). Before measuring it prints each payload's
//! bytes per sample on the bus, per encoding.
//!
//! Run: `cargo bench -p scrapepool-core --bench pipeline`.
//!
//! Time is the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), as in the parse
//! bench: on a shared machine wall time mostly measures the other processes. Throughput is
//! in samples of the payload (`scrape_samples_scraped`), so the time per element is the
//! cost per scraped sample.

use std::time::Duration;

use criterion::measurement::ValueFormatter;

mod cpu;
use cpu::ThreadCpu;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use scrapepool_core::config::TlsConfig;
use scrapepool_core::encode::{EmitSpec, Encoding};
use scrapepool_core::labels::Labels;
use scrapepool_core::scrape::{process_and_encode, FetchOutcome, Limits, ScrapeSpec, SeriesCache};
use scrapepool_core::Timestamp;

const FIXTURES: [&str; 4] = [
    "node_exporter-1.5.0.prom",
    "prometheus-2.42.0.prom",
    "victoria-metrics-1.79.5.prom",
    "synthetic-heavy.prom",
];

fn spec(encoding: Encoding) -> ScrapeSpec {
    ScrapeSpec {
        url: "http://10.0.0.1:9100/metrics".into(),
        target_labels: Labels::from_pairs([("instance", "10.0.0.1:9100"), ("job", "node")]),
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
            encoding,
            message_bytes_max: 1 << 20,
            scraper_id: "scraper-1".into(),
            job: "node".into(),
            instance: "10.0.0.1:9100".into(),
            key_hash: 0x1234,
        },
        exposition: Default::default(),
        histograms: Default::default(),
    }
}

/// Shows time per iteration in CPU µs and throughput as CPU ns per sample.
struct PerSample;

impl ValueFormatter for PerSample {
    fn scale_values(&self, _typical: f64, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|v| *v /= 1e3);
        "µs(cpu)"
    }
    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per_iteration = match *throughput {
            Throughput::Elements(e) => e as f64,
            _ => 1.0,
        };
        values.iter_mut().for_each(|v| *v /= per_iteration);
        "ns(cpu)/sample"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// 500 native histograms (integer, schema 3, 40 buckets in two spans), 10 label sets of 50.
fn histogram_heavy() -> Vec<u8> {
    use scrapepool_core::testing::client_model::{
        encode_delimited, BucketSpan, Histogram, LabelPair, Metric, MetricFamily,
    };
    let families: Vec<MetricFamily> = (0..10)
        .map(|f| MetricFamily {
            name: format!("rpc_duration_seconds_{f}"),
            help: "Latency of RPCs.".into(),
            r#type: 4,
            metric: (0..50)
                .map(|m| Metric {
                    label: vec![
                        LabelPair {
                            name: "method".into(),
                            value: format!("Method{m}"),
                        },
                        LabelPair {
                            name: "code".into(),
                            value: "OK".into(),
                        },
                    ],
                    histogram: Some(Histogram {
                        sample_count: 40 * 3 + 5,
                        sample_sum: 1234.5,
                        schema: 3,
                        zero_threshold: 1e-128,
                        zero_count: 5,
                        positive_span: vec![
                            BucketSpan {
                                offset: -10,
                                length: 20,
                            },
                            BucketSpan {
                                offset: 4,
                                length: 20,
                            },
                        ],
                        positive_delta: (0..40).map(|i| if i == 0 { 3 } else { 0 }).collect(),
                        ..Histogram::default()
                    }),
                    ..Metric::default()
                })
                .collect(),
            unit: String::new(),
        })
        .collect();
    encode_delimited(&families)
}

fn bench(c: &mut Criterion<ThreadCpu>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/exposition/");
    let mut group = c.benchmark_group("pipeline");
    let mut payloads: Vec<(&str, FetchOutcome, bool)> = FIXTURES
        .iter()
        .map(|name| {
            let body = std::fs::read(format!("{dir}{name}")).expect("fixture");
            let fetch = FetchOutcome::Body {
                body,
                content_type: Some("text/plain; version=0.0.4".into()),
            };
            (*name, fetch, false)
        })
        .collect();
    payloads.push((
        "histogram-heavy.pb",
        FetchOutcome::Body {
            body: histogram_heavy(),
            content_type: Some(
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited".into(),
            ),
        },
        true,
    ));
    for (name, fetch, native) in &payloads {
        let (name, native) = (*name, *native);
        for encoding in [
            Encoding::RemoteWrite,
            Encoding::RemoteWriteV2,
            Encoding::Json,
        ] {
            let mut spec = spec(encoding);
            spec.histograms.native = native;
            let mut cache = SeriesCache::default();
            let mut scratch = scrapepool_core::scrape::Scratch::default();
            let (report, _) = process_and_encode(
                &spec,
                &mut cache,
                &mut scratch,
                Timestamp(1_700_000_000_000),
                Duration::from_millis(3),
                fetch,
            );
            assert!(report.up, "{name}: {:?}", report.error);
            // Bytes per sample of a steady-state scrape (the second one).
            let (_, records) = process_and_encode(
                &spec,
                &mut cache,
                &mut scratch,
                Timestamp(1_700_000_015_000),
                Duration::from_millis(3),
                fetch,
            );
            let bytes: usize = records.iter().map(|r| r.payload.len()).sum();
            let samples: usize = records.iter().map(|r| r.samples).sum();
            eprintln!(
                "bytes/sample {name} {}: {:.2} ({bytes} bytes, {samples} samples, {} records)",
                encoding.as_str(),
                bytes as f64 / samples as f64,
                records.len()
            );
            group.throughput(Throughput::Elements(report.samples_scraped));
            let mut now = 1_700_000_015_000;
            group.bench_with_input(
                BenchmarkId::new(encoding.as_str(), name),
                fetch,
                |b, fetch| {
                    b.iter(|| {
                        now += 15_000;
                        process_and_encode(
                            &spec,
                            &mut cache,
                            &mut scratch,
                            Timestamp(now),
                            Duration::from_millis(3),
                            fetch,
                        )
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu(&PerSample)).sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
