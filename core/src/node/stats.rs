//! The node's counters and its memory of recent rebalances, for metrics and status pages.

use std::time::Duration;

use crate::time::Timestamp;

/// Most rebalances remembered for the status page.
pub const REBALANCE_HISTORY_LEN_MAX: usize = 32;

/// Counters for the node's own metrics. They only grow.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Scrapes handed to the driver.
    pub scrapes_started: u64,
    /// Scrapes that came back failed (`up` 0).
    pub scrapes_failed: u64,
    /// Scrapes not started because the previous one of the same target was still running.
    pub scrapes_skipped: u64,
    /// Ownership recomputations that changed what this node scrapes.
    pub rebalances: u64,
    /// Targets that came to this node as owner.
    pub targets_gained: u64,
    /// Targets that moved away from this node.
    pub targets_lost: u64,
    /// Job texts rejected.
    pub job_config_errors: u64,
    /// Failed discovery rounds.
    pub discovery_errors: u64,
    /// Snapshots ignored because they were older than the one applied.
    pub stale_snapshots: u64,
    /// How long the fetches of finished scrapes took.
    pub scrape_durations: DurationHistogram,
    /// Samples dropped from scrapes that succeeded, by reason.
    pub samples_dropped: SamplesDropped,
    /// Scrapes failed by a limit or an invalid series, by reason.
    pub scrapes_rejected: ScrapesRejected,
}

/// Samples dropped from scrapes that went on (Prometheus's
/// `prometheus_target_scrapes_sample_*_total`), plus those no bus record could hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SamplesDropped {
    /// A second sample of a series in one scrape with the same timestamp.
    pub duplicate_timestamp: u64,
    /// A timestamp before one already seen for the series in the scrape.
    pub out_of_order: u64,
    /// A timestamp more than 10 minutes ahead of the scrape.
    pub out_of_bounds: u64,
    /// Too large for any message of `message_bytes_max`.
    pub too_large_for_bus: u64,
}

/// Scrapes that failed at a limit or at a series no storage would take.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScrapesRejected {
    /// Over `sample_limit` (Prometheus's `prometheus_target_scrapes_exceeded_sample_limit_total`).
    pub sample_limit: u64,
    /// Over the body limit, the job's or the memory budget's default.
    pub body_size_limit: u64,
    /// Over the memory budget's samples per scrape.
    pub memory_budget: u64,
    /// Over a label limit.
    pub label_limit: u64,
    /// A series invalid after relabeling: no name, invalid names, a label name twice.
    pub invalid_series: u64,
}

impl Stats {
    /// Counts what one finished scrape dropped or why it was rejected.
    pub fn count_scrape(&mut self, report: &crate::scrape::ScrapeReport) {
        use crate::scrape::ScrapeError as E;
        let d = &mut self.samples_dropped;
        d.duplicate_timestamp += report.duplicate_samples;
        d.out_of_order += report.out_of_order_samples;
        d.out_of_bounds += report.out_of_bounds_samples;
        d.too_large_for_bus += report.samples_unencodable;
        let r = &mut self.scrapes_rejected;
        match &report.error {
            Some(E::SampleLimit) => r.sample_limit += 1,
            Some(E::BodySizeLimit) => r.body_size_limit += 1,
            Some(E::SampleBudget { .. }) => r.memory_budget += 1,
            Some(
                E::LabelLimit { .. }
                | E::LabelNameLengthLimit { .. }
                | E::LabelValueLengthLimit { .. },
            ) => r.label_limit += 1,
            Some(E::MissingMetricName | E::InvalidLabels(_) | E::DuplicateLabelName { .. }) => {
                r.invalid_series += 1
            }
            _ => {}
        }
    }
}

/// Upper bounds (inclusive, microseconds) of [`DurationHistogram`]'s buckets: Prometheus's
/// default buckets from 5ms to 10s, plus 30s and 60s for slow exporters.
pub const SCRAPE_DURATION_BUCKETS_US: [u64; 13] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000, 30_000_000, 60_000_000,
];

/// A histogram of durations in fixed buckets, in integers (microseconds) so it stays exact
/// and comparable; the metrics endpoint turns it into seconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DurationHistogram {
    /// Observations per bucket of [`SCRAPE_DURATION_BUCKETS_US`] (not cumulative); the last
    /// entry counts those above the largest bound.
    pub buckets: [u64; SCRAPE_DURATION_BUCKETS_US.len() + 1],
    /// Number of observations.
    pub count: u64,
    /// Sum of the observations, in microseconds.
    pub sum_us: u64,
}

impl DurationHistogram {
    /// Counts one observation.
    pub fn observe(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let bucket = SCRAPE_DURATION_BUCKETS_US
            .iter()
            .position(|&le| us <= le)
            .unwrap_or(SCRAPE_DURATION_BUCKETS_US.len());
        self.buckets[bucket] += 1;
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }
}

/// Why the node recomputed what it owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RebalanceCause {
    /// A new members snapshot changed the ring.
    Members,
    /// A new jobs snapshot changed a job.
    Jobs,
    /// A discovery provider's targets changed.
    Discovery,
    /// Our session expired: our record is gone, so we own nothing.
    Session,
    /// We started draining: we own nothing.
    Drain,
}

impl RebalanceCause {
    /// Its name on the status page and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RebalanceCause::Members => "members",
            RebalanceCause::Jobs => "jobs",
            RebalanceCause::Discovery => "discovery",
            RebalanceCause::Session => "session",
            RebalanceCause::Drain => "drain",
        }
    }
}

impl std::fmt::Display for RebalanceCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change of what this node owns.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Rebalance {
    /// When.
    pub at: Timestamp,
    /// Why.
    pub cause: RebalanceCause,
    /// Active members after the change.
    pub members: usize,
    /// Targets we started owning.
    pub gained: usize,
    /// Targets we stopped owning (handed off or removed).
    pub lost: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_histogram_counts_each_observation_in_its_bucket() {
        let mut h = DurationHistogram::default();
        h.observe(Duration::from_millis(5)); // on the bound: inclusive
        h.observe(Duration::from_micros(5_001));
        h.observe(Duration::from_secs(61));
        assert_eq!(h.buckets[0], 1);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[SCRAPE_DURATION_BUCKETS_US.len()], 1);
        assert_eq!(h.buckets.iter().sum::<u64>(), 3);
        assert_eq!(h.count, 3);
        assert_eq!(h.sum_us, 5_000 + 5_001 + 61_000_000);
    }
}
