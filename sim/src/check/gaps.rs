//! (b) Graceful changes miss no scrape interval of any target; after a crash a target's gap
//! is at most the session timeout plus the handoff grace plus one interval.

use std::collections::BTreeMap;

use super::{Summary, Violation};
use crate::faults::{Fault, State};
use crate::{World, EPOCH_MS};

/// Slack on every bound: step granularity, network latency and scheduling.
pub const SLACK_MS: i64 = 1_500;

/// Checks the gap between consecutive scrapes of every target.
pub fn check(
    world: &World,
    state: &State,
    end_ms: i64,
    scrapes: &BTreeMap<u32, Vec<(i64, &str, bool)>>,
    summary: &mut Summary,
) -> Vec<Violation> {
    let cfg = &world.config;
    let interval = cfg.interval.as_millis() as i64;
    let graceful_bound = interval + SLACK_MS;
    // Scrape to scrape across a crash: up to one interval from the last scrape to the crash,
    // the session timeout, the time for the model to notice it (a heartbeat period) and for
    // the members to hear of it (their watch delay), then up to one interval until the new
    // owner's phase comes round — DESIGN.md's "session timeout + grace + interval", with the
    // grace being that first interval, plus the detection delays.
    let session = cfg.session_timeout.as_millis() as i64;
    let crash_bound =
        session + session / 3 + crate::zk::WATCH_DELAY_MS_MAX as i64 + 2 * interval + SLACK_MS;
    let warm = EPOCH_MS + 60_000;
    let mut out = Vec::new();
    let mut slots = 0u64;
    let mut covered = 0u64;
    let mut total = 0u64;
    let mut duplicates = 0u64;
    for (target, list) in scrapes {
        let mut times: Vec<i64> = list.iter().map(|(at, _, _)| *at).collect();
        times.sort_unstable();
        total += times.len() as u64;
        // A scrape within half an interval of the previous one is a duplicate (handoff overlap).
        duplicates += times
            .windows(2)
            .filter(|w| w[1] - w[0] < interval / 2)
            .count() as u64;
        for w in times.windows(2) {
            let (a, b) = (w[0], w[1]);
            let gap = b - a;
            if a < warm {
                continue;
            }
            // The target was not live all along (removed and added back): not a gap.
            let live_throughout = state.targets_at(a, cfg.targets).contains(target)
                && state
                    .log
                    .iter()
                    .filter(|(t, _)| *t >= a && *t <= b)
                    .all(|(_, f)| !matches!(f, Fault::SetTargets(ts) if !ts.contains(target)));
            if !live_throughout
                || state
                    .removed_at(*target, b, cfg.targets)
                    .is_some_and(|r| r >= a)
            {
                continue;
            }
            summary.max_gap_ms = summary.max_gap_ms.max(gap);
            if gap <= graceful_bound {
                continue;
            }
            // Unreachable or slow exporters make gaps nobody can close: not judged.
            let exporter_trouble = |at: i64| {
                state.in_force(
                    at,
                    |f| {
                        matches!(f, Fault::ExporterPartition(_, _, true))
                            || matches!(f, Fault::SlowLink(_, _, ms) if *ms > 1)
                    },
                    |f| {
                        matches!(f, Fault::ExporterPartition(_, _, false))
                            || matches!(f, Fault::SlowLink(_, _, 1))
                    },
                )
            };
            if exporter_trouble(a)
                || exporter_trouble(b)
                || state.log.iter().any(|(t, f)| {
                    *t >= a
                        && *t <= b
                        && matches!(f, Fault::ExporterPartition(..) | Fault::SlowLink(..))
                })
            {
                continue;
            }
            let disruptive = state.disruptive_between(a, b);
            let bound = if disruptive {
                crash_bound
            } else {
                graceful_bound
            };
            if gap > bound {
                out.push(Violation {
                    invariant: "b-gaps",
                    at_ms: a - EPOCH_MS,
                    detail: format!(
                        "target t{target} not scraped for {:.1}s (from {:.1}s), bound {:.1}s ({})",
                        gap as f64 / 1000.0,
                        (a - EPOCH_MS) as f64 / 1000.0,
                        bound as f64 / 1000.0,
                        if disruptive {
                            "after a crash-like fault"
                        } else {
                            "graceful changes only"
                        }
                    ),
                });
            }
        }
        // Coverage: interval slots after warm-up, while the target was live, with a scrape.
        let first = warm.max(times.first().copied().unwrap_or(end_ms));
        let mut slot = first;
        let mut i = 0;
        while slot + interval <= end_ms {
            let live = state.targets_at(slot, cfg.targets).contains(target)
                && state
                    .targets_at(slot + interval, cfg.targets)
                    .contains(target);
            if !live {
                slot += interval;
                continue;
            }
            slots += 1;
            while i < times.len() && times[i] < slot {
                i += 1;
            }
            if i < times.len() && times[i] < slot + interval {
                covered += 1;
            }
            slot += interval;
        }
    }
    summary.coverage_pct = if slots == 0 {
        0.0
    } else {
        100.0 * covered as f64 / slots as f64
    };
    summary.duplicate_pct = if total == 0 {
        0.0
    } else {
        100.0 * duplicates as f64 / total as f64
    };
    out.sort_by_key(|v| v.at_ms);
    out.truncate(20);
    out
}
