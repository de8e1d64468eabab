//! Every real exporter payload in testdata/exposition/ parses in the text format, with the
//! sample count and metadata counts counted independently of the parser.

use std::path::Path;

use scrapepool_core::exposition::{parse, Format, MetricType};

/// Reads `testdata/exposition/<name>` from the repository root.
fn payload(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/exposition")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Parses `name` and checks its counts.
///
/// `samples`: `grep -v '^#' FILE | grep -vc '^[[:space:]]*$'` (lines that are neither
/// comments nor blank). `types` / `helps`: `grep -c '^# TYPE' FILE` / `grep -c '^# HELP' FILE`.
fn check(name: &str, samples: usize, types: usize, helps: usize) {
    let body = payload(name);
    let parsed = parse(&body, Format::Prometheus).unwrap_or_else(|e| panic!("{name}:{e}"));
    assert_eq!(parsed.samples.len(), samples, "{name}: samples");
    assert_eq!(
        parsed.metadata.iter().filter(|m| m.kind.is_some()).count(),
        types,
        "{name}: TYPE lines"
    );
    assert_eq!(
        parsed.metadata.iter().filter(|m| m.help.is_some()).count(),
        helps,
        "{name}: HELP lines"
    );
    // No payload has timestamps or exemplars (`grep -v '^#' FILE | awk 'NF > 2'` is empty).
    assert!(
        parsed
            .samples
            .iter()
            .all(|s| s.timestamp_ms.is_none() && s.exemplar.is_none()),
        "{name}"
    );
    // Every label range points inside the label table, and label names are never empty.
    for s in &parsed.samples {
        assert!(
            parsed.labels_of(s).iter().all(|(k, _)| !k.is_empty()),
            "{name}: {}",
            s.name
        );
    }
}

#[test]
fn node_exporter_payload_parses() {
    check("node_exporter-1.5.0.prom", 507, 283, 283);
}

#[test]
fn prometheus_payload_parses() {
    check("prometheus-2.42.0.prom", 351, 169, 169);
}

#[test]
fn synthetic_heavy_payload_parses() {
    check("synthetic-heavy.prom", 7480, 4, 4);
}

#[test]
fn victoria_metrics_payload_parses() {
    check("victoria-metrics-1.79.5.prom", 636, 0, 0);
}

#[test]
fn node_exporter_first_samples_are_read_exactly() {
    let body = payload("node_exporter-1.5.0.prom");
    let parsed = parse(&body, Format::Prometheus).unwrap();
    // The first sample line of the file, checked against the text.
    let text = std::str::from_utf8(&body).unwrap();
    let first_line = text.lines().find(|l| !l.starts_with('#')).unwrap();
    let first = &parsed.samples[0];
    assert!(
        first_line.starts_with(&*first.name),
        "{first_line} vs {}",
        first.name
    );
    let value_text = first_line.rsplit(' ').next().unwrap();
    assert_eq!(first.value, value_text.parse::<f64>().unwrap());
    let meta = parsed
        .metadata
        .iter()
        .find(|m| m.name == "go_gc_duration_seconds");
    assert_eq!(meta.and_then(|m| m.kind), Some(MetricType::Summary));
}
