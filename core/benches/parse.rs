//! Parse throughput on the real exporter payloads, against the `prometheus-parse` crate as
//! a baseline measured in the same run on the same bytes.
//!
//! Run: `cargo bench -p scrapepool-core --bench parse`. Each payload gets two groups:
//! `parse_bytes/<payload>` (MB/s) and `parse_samples/<payload>` (samples/s), each with
//! `scrapepool` and `prometheus-parse`; `parse_samples` also has `scrapepool-protobuf`, the
//! same samples from the payload's protobuf twin (`testdata/exposition/go-exporter/*.pb`,
//! written by client_golang's encoder), whose MB/s is `parse_bytes/<payload>.pb`.
//!
//! Time is the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time: the
//! machine is shared, and wall time there mostly measures the other processes.

use std::hint::black_box;
use std::path::Path;

use criterion::measurement::ValueFormatter;

mod cpu;
use cpu::ThreadCpu;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use scrapepool_core::exposition::{parse, Format};

const PAYLOADS: [&str; 4] = [
    "node_exporter-1.5.0.prom",
    "prometheus-2.42.0.prom",
    "victoria-metrics-1.79.5.prom",
    "synthetic-heavy.prom",
];

fn load(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/exposition")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The baseline: prometheus-parse takes owned lines, so splitting into lines is part of its cost.
fn baseline(text: &str) -> usize {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines)
        .expect("baseline parses")
        .samples
        .len()
}

/// Shows CPU nanoseconds as µs, and throughput as MB/s (10^6 bytes) or M samples/s.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
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
        let (per_iteration, unit) = match *throughput {
            Throughput::Bytes(b) | Throughput::BytesDecimal(b) => (b as f64, "MB/s"),
            Throughput::Elements(e) => (e as f64, "Msamples/s"),
            _ => (1.0, "M/s"),
        };
        values
            .iter_mut()
            .for_each(|v| *v = per_iteration * 1e9 / *v / 1e6);
        unit
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn bench(c: &mut Criterion<ThreadCpu>) {
    for name in PAYLOADS {
        let body = load(name);
        let text = std::str::from_utf8(&body).expect("utf-8 payload");
        let samples = parse(&body, Format::Prometheus)
            .expect("parses")
            .samples
            .len();
        let short = name.trim_end_matches(".prom");
        let pb = load(&format!("go-exporter/{short}.pb"));
        let pb_samples = parse(&pb, Format::Protobuf).expect("parses").samples.len();
        assert_eq!(pb_samples, samples, "{short}: the twins differ");
        let protobuf = |b: &mut criterion::Bencher<'_, ThreadCpu>| {
            b.iter(|| {
                parse(black_box(&pb), Format::Protobuf)
                    .expect("parses")
                    .samples
                    .len()
            })
        };
        let mut group = c.benchmark_group(format!("parse_bytes/{short}.pb"));
        group.throughput(Throughput::Bytes(pb.len() as u64));
        group.bench_function("scrapepool-protobuf", protobuf);
        group.finish();
        for (group_name, throughput) in [
            ("parse_bytes", Throughput::Bytes(body.len() as u64)),
            ("parse_samples", Throughput::Elements(samples as u64)),
        ] {
            let mut group = c.benchmark_group(format!("{group_name}/{short}"));
            group.throughput(throughput);
            group.bench_function("scrapepool", |b| {
                b.iter(|| {
                    parse(black_box(&body), Format::Prometheus)
                        .expect("parses")
                        .samples
                        .len()
                })
            });
            group.bench_function("prometheus-parse", |b| b.iter(|| baseline(black_box(text))));
            if group_name == "parse_samples" {
                group.bench_function("scrapepool-protobuf", protobuf);
            }
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu(&CpuFormatter)).sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
