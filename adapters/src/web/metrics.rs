//! `/metrics` in OpenMetrics text: the node's series, declared once each in
//! [`NODE_METRICS`] and read from a counts-only [`View`], then each adapter's
//! [`ExtraMetrics`](super::ExtraMetrics).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use scrapepool_core::member::MemberState;
use scrapepool_core::node::{DurationHistogram, SessionState, SCRAPE_DURATION_BUCKETS_US};

use super::view::{session_str, JobSnapshot, View};
use super::{ask_view, WebState, OPENMETRICS_CONTENT_TYPE};

/// `/metrics`: the node's series, then the adapters', in OpenMetrics text.
pub(super) async fn metrics(State(state): State<WebState>) -> Response {
    let view = match ask_view(&state, View::capture_counts).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut registry = Registry::with_prefix("scrapepool");
    register_node_metrics(&mut registry, &view);
    state.extra.register(&mut registry);
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &registry) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics failed: {e}\n"),
        )
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        view.redact(body),
    )
        .into_response()
}

/// Label pairs of one series, in the order they are written.
type LabelPairs = Vec<(&'static str, String)>;

/// How one of the node's metrics reads its value(s) from the view.
enum Read {
    /// One counter.
    Counter(fn(&View) -> u64),
    /// One gauge.
    Gauge(fn(&View) -> u64),
    /// One gauge per job, labelled `job`, in the view's job order.
    PerJob(fn(&JobSnapshot) -> u64),
    /// Labelled series of one type, in the order given.
    Family(MetricType, fn(&View) -> Vec<(LabelPairs, u64)>),
    /// A duration histogram, in seconds.
    Histogram(fn(&View) -> &DurationHistogram),
}

/// The node's metrics, in the order `/metrics` registers them: name (after the
/// `scrapepool_` prefix), how it is read, help text (the period is added).
#[rustfmt::skip]
static NODE_METRICS: &[(&str, Read, &str)] = &[
    ("job_targets", Read::PerJob(|j| j.total as u64), "Active targets of each job after relabeling, whoever owns them"),
    ("job_targets_owned", Read::PerJob(|j| j.owned as u64), "Targets of each job this member owns (any replica rank)"),
    ("job_targets_handing_off", Read::PerJob(|j| j.handing_off as u64), "Targets of each job that moved away and this member still scrapes until their handoff slot"),
    ("job_config_valid", Read::PerJob(|j| u64::from(j.config_errors.is_empty())), "1 when the job's latest configuration was accepted, 0 when it was rejected"),
    ("scrapes_started", Read::Counter(|v| v.stats.scrapes_started), "Scrapes handed to the HTTP client"),
    ("scrapes_failed", Read::Counter(|v| v.stats.scrapes_failed), "Scrapes that failed (up 0)"),
    ("scrapes_skipped", Read::Counter(|v| v.stats.scrapes_skipped), "Scrapes not started because the previous scrape of the target was still running"),
    ("scrape_duration", Read::Histogram(|v| &v.stats.scrape_durations), "How long fetching a target took"),
    ("samples_dropped", Read::Family(MetricType::Counter, samples_dropped), "Samples dropped from scrapes that went on, by reason: duplicate_timestamp, out_of_order, out_of_bounds (more than 10 minutes ahead), too_large_for_bus (fits in no bus message)"),
    ("scrapes_rejected", Read::Family(MetricType::Counter, scrapes_rejected), "Scrapes failed whole (up 0) by a limit or an invalid series, by reason: sample_limit, body_size_limit, memory_budget, label_limit, invalid_series"),
    ("members", Read::Family(MetricType::Gauge, members_by_state), "Members in the latest snapshot, by state"),
    ("rebalances", Read::Counter(|v| v.stats.rebalances), "Ownership changes that changed what this member scrapes"),
    ("targets_moved", Read::Family(MetricType::Counter, targets_moved), "Targets that came to this member as owner (gained) or moved away from it (lost)"),
    ("zookeeper_session_state", Read::Family(MetricType::Gauge, session_states), "1 for the ZooKeeper session's current state, 0 for the others"),
    ("ready", Read::Gauge(|v| u64::from(v.ready)), "1 when registered in a connected session with the first member and job snapshots applied"),
    ("draining", Read::Gauge(|v| u64::from(v.draining)), "1 while this member drains before leaving"),
    ("job_config_errors", Read::Counter(|v| v.stats.job_config_errors), "Job texts rejected as invalid"),
    ("discovery_errors", Read::Counter(|v| v.stats.discovery_errors), "Failed discovery rounds (the last good result stays in force)"),
    ("stale_snapshots", Read::Counter(|v| v.stats.stale_snapshots), "Member or job snapshots ignored because they were older than the one applied"),
];

fn members_by_state(v: &View) -> Vec<(LabelPairs, u64)> {
    [MemberState::Active, MemberState::Draining]
        .into_iter()
        .map(|state| {
            let n = v.members.iter().filter(|m| m.record.state == state).count();
            let word = match state {
                MemberState::Active => "active",
                MemberState::Draining => "draining",
            };
            (vec![("state", word.to_string())], n as u64)
        })
        .collect()
}

fn reasons(counts: &[(&str, u64)]) -> Vec<(LabelPairs, u64)> {
    counts
        .iter()
        .map(|(reason, n)| (vec![("reason", (*reason).to_string())], *n))
        .collect()
}

fn samples_dropped(v: &View) -> Vec<(LabelPairs, u64)> {
    let d = &v.stats.samples_dropped;
    reasons(&[
        ("duplicate_timestamp", d.duplicate_timestamp),
        ("out_of_order", d.out_of_order),
        ("out_of_bounds", d.out_of_bounds),
        ("too_large_for_bus", d.too_large_for_bus),
    ])
}

fn scrapes_rejected(v: &View) -> Vec<(LabelPairs, u64)> {
    let r = &v.stats.scrapes_rejected;
    reasons(&[
        ("sample_limit", r.sample_limit),
        ("body_size_limit", r.body_size_limit),
        ("memory_budget", r.memory_budget),
        ("label_limit", r.label_limit),
        ("invalid_series", r.invalid_series),
    ])
}

fn targets_moved(v: &View) -> Vec<(LabelPairs, u64)> {
    vec![
        (
            vec![("direction", "gained".to_string())],
            v.stats.targets_gained,
        ),
        (
            vec![("direction", "lost".to_string())],
            v.stats.targets_lost,
        ),
    ]
}

fn session_states(v: &View) -> Vec<(LabelPairs, u64)> {
    [
        SessionState::Connected,
        SessionState::Disconnected,
        SessionState::Expired,
    ]
    .into_iter()
    .map(|st| {
        (
            vec![("state", session_str(st).to_string())],
            u64::from(st == v.session),
        )
    })
    .collect()
}

fn register_node_metrics(r: &mut Registry, v: &View) {
    for (name, read, help) in NODE_METRICS {
        register(r, name, help, read, v);
    }
}

/// Registers one of the node's metrics with its value(s) read from `v`.
fn register(r: &mut Registry, name: &'static str, help: &str, read: &Read, v: &View) {
    match read {
        Read::Counter(value) => {
            let c: Counter = Counter::default();
            c.inc_by(value(v));
            r.register(name, help, c);
        }
        Read::Gauge(value) => {
            let g: Gauge = Gauge::default();
            g.set(i64::try_from(value(v)).unwrap_or(i64::MAX));
            r.register(name, help, g);
        }
        Read::PerJob(value) => {
            let series = v
                .jobs
                .iter()
                .map(|j| (vec![("job", j.name.clone())], value(j)));
            family(r, name, help, MetricType::Gauge, series.collect());
        }
        Read::Family(metric_type, series) => family(r, name, help, *metric_type, series(v)),
        Read::Histogram(histogram) => r.register_collector(Box::new(HistogramCollector {
            name,
            help: format!("{help}."),
            histogram: histogram(v).clone(),
        })),
    }
}

/// Registers labelled series written in the order given.
fn family(
    r: &mut Registry,
    name: &'static str,
    help: &str,
    metric_type: MetricType,
    series: Vec<(LabelPairs, u64)>,
) {
    r.register_collector(Box::new(OrderedFamily {
        name,
        help: format!("{help}."),
        metric_type,
        series,
    }));
}

/// A family of series written in the order given (prometheus-client's `Family` writes
/// in hash order), so `/metrics` lists jobs and states the same way every time.
#[derive(Debug)]
struct OrderedFamily {
    name: &'static str,
    help: String,
    metric_type: MetricType,
    series: Vec<(LabelPairs, u64)>,
}

impl Collector for OrderedFamily {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family =
            encoder.encode_descriptor(self.name, &self.help, None, self.metric_type)?;
        for (labels, value) in &self.series {
            let metric = family.encode_family(labels)?;
            match self.metric_type {
                MetricType::Counter => ConstCounter::new(*value).encode(metric)?,
                _ => ConstGauge::new(i64::try_from(*value).unwrap_or(i64::MAX)).encode(metric)?,
            }
        }
        Ok(())
    }
}

/// A histogram whose buckets were counted elsewhere (the node's stats), encoded as seconds.
#[derive(Debug)]
struct HistogramCollector {
    name: &'static str,
    help: String,
    histogram: DurationHistogram,
}

impl Collector for HistogramCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let h = &self.histogram;
        let mut buckets: Vec<(f64, u64)> = SCRAPE_DURATION_BUCKETS_US
            .iter()
            .zip(h.buckets.iter())
            .map(|(&le, &n)| (le as f64 / 1e6, n))
            .collect();
        buckets.push((f64::INFINITY, h.buckets[SCRAPE_DURATION_BUCKETS_US.len()]));
        let metric = ConstHistogram {
            sum_seconds: h.sum_us as f64 / 1e6,
            count: h.count,
            buckets,
        };
        let m = encoder.encode_descriptor(
            self.name,
            &self.help,
            Some(&Unit::Seconds),
            metric.metric_type(),
        )?;
        metric.encode(m)
    }
}

#[derive(Debug)]
struct ConstHistogram {
    sum_seconds: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for ConstHistogram {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum_seconds, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn families_keep_their_order_and_counters_get_total() {
        let mut registry = Registry::with_prefix("scrapepool");
        let states = ["zeta", "alpha", "mid"].map(|s| (vec![("state", s.to_string())], 1));
        family(
            &mut registry,
            "things",
            "Things",
            MetricType::Gauge,
            states.into(),
        );
        family(
            &mut registry,
            "moves",
            "Moves",
            MetricType::Counter,
            vec![(vec![("direction", "gained".to_string())], 3)],
        );
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        let zeta = out.find("scrapepool_things{state=\"zeta\"} 1").expect(&out);
        let alpha = out
            .find("scrapepool_things{state=\"alpha\"} 1")
            .expect(&out);
        let mid = out.find("scrapepool_things{state=\"mid\"} 1").expect(&out);
        assert!(zeta < alpha && alpha < mid, "{out}");
        assert!(out.contains("# HELP scrapepool_things Things.\n"), "{out}");
        assert!(out.contains("# TYPE scrapepool_moves counter\n"), "{out}");
        assert!(
            out.contains("scrapepool_moves_total{direction=\"gained\"} 3\n"),
            "{out}"
        );
    }

    #[test]
    fn histogram_collector_encodes_cumulative_buckets_in_seconds() {
        let mut h = DurationHistogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(7));
        h.observe(Duration::from_secs(120));
        let mut registry = Registry::with_prefix("scrapepool");
        registry.register_collector(Box::new(HistogramCollector {
            name: "scrape_duration",
            help: "h".into(),
            histogram: h,
        }));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(
            out.contains("# TYPE scrapepool_scrape_duration_seconds histogram"),
            "{out}"
        );
        assert!(
            out.contains("scrapepool_scrape_duration_seconds_count 3"),
            "{out}"
        );
        assert!(
            out.contains("scrapepool_scrape_duration_seconds_sum 120.01"),
            "{out}"
        );
        assert!(
            out.contains("scrapepool_scrape_duration_seconds_bucket{le=\"0.005\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("scrapepool_scrape_duration_seconds_bucket{le=\"0.01\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("scrapepool_scrape_duration_seconds_bucket{le=\"60.0\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("scrapepool_scrape_duration_seconds_bucket{le=\"+Inf\"} 3"),
            "{out}"
        );
    }
}
