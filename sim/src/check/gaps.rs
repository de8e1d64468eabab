//! (b) Every live target is scraped every interval: graceful changes miss no interval; after
//! a crash-like fault a target's gap is at most the session timeout plus its detection plus
//! two intervals — counted from the gap's start, or from the last crash-like fault inside
//! it (the member that was to take the target over may crash before it does, and the wait
//! starts again).
//!
//! Soundness: no two consecutive scrapes of a live target are further apart than the bound.
//! Completeness: the same bound holds from the moment a target is live after the warm-up (or
//! is added by a job edit, allowing for the edit to reach the scrapers) to its first scrape,
//! and from its last scrape to its removal or the end of the run — so a target never
//! scraped, or one whose scraping stops, is a violation too.

use super::{Run, Scrapes, Summary, Violation};
use crate::faults::Fault;
use crate::EPOCH_MS;

/// Slack on every bound: step granularity, network latency and scheduling.
pub const SLACK_MS: i64 = 1_500;
/// How long after a job edit the scrapers may still be learning of it.
pub const EDIT_DELAY_MS_MAX: i64 = 5_000;
/// Scrapes start to be judged this long after the run began (the pool forms first).
pub const WARM_UP_MS: i64 = 60_000;

/// What one end of a judged gap is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Point {
    /// A scrape the exporter answered.
    Scrape,
    /// The target became live (warm-up over, or added by an edit at this time).
    Live { added: bool },
    /// The target stopped being live (removed, or the run ended).
    Gone { removed: bool },
}

/// Checks the gap between consecutive scrapes of every target.
pub fn check(run: &Run<'_>, scrapes: &Scrapes<'_>, summary: &mut Summary) -> Vec<Violation> {
    let cfg = run.config;
    let state = run.faults;
    let end_ms = run.end_ms;
    let interval = cfg.interval.as_millis() as i64;
    let graceful_bound = interval + SLACK_MS;
    // Scrape to scrape across a crash: up to one interval from the last scrape to the crash,
    // the session timeout, the time for the model to notice it (a heartbeat period) and for
    // the members to hear of it (their watch delay), then up to one interval until the new
    // owner's phase comes round — "session timeout + grace + interval" (ARCHITECTURE.md,
    // the simulation), the grace being that first interval, plus the detection delays.
    let session = cfg.session_timeout.as_millis() as i64;
    let crash_bound =
        session + session / 3 + crate::zk::WATCH_DELAY_MS_MAX as i64 + 2 * interval + SLACK_MS;
    let warm = EPOCH_MS + WARM_UP_MS;
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
    let mut out = Vec::new();
    let (mut slots, mut covered, mut total, mut duplicates) = (0u64, 0u64, 0u64, 0u64);
    let empty = Vec::new();
    let targets = (0..cfg.targets + cfg.targets / 5).filter(|t| {
        scrapes.contains_key(t) || !state.live_spans(*t, cfg.targets, end_ms).is_empty()
    });
    for target in targets {
        let list = scrapes.get(&target).unwrap_or(&empty);
        let mut times: Vec<i64> = list.iter().map(|(at, _, _)| *at).collect();
        times.sort_unstable();
        total += times.len() as u64;
        // A scrape within half an interval of the previous one is a duplicate (handoff overlap).
        duplicates += times
            .windows(2)
            .filter(|w| w[1] - w[0] < interval / 2)
            .count() as u64;
        for (from, to) in state.live_spans(target, cfg.targets, end_ms) {
            let added = from > EPOCH_MS;
            let from = from.max(warm);
            if from >= to {
                continue;
            }
            let mut points = vec![(from, Point::Live { added })];
            points.extend(
                times
                    .iter()
                    .filter(|t| **t > from && **t < to)
                    .map(|t| (*t, Point::Scrape)),
            );
            points.push((
                to,
                Point::Gone {
                    removed: to < end_ms,
                },
            ));
            for w in points.windows(2) {
                let ((a, pa), (b, pb)) = (w[0], w[1]);
                let gap = b - a;
                if pa == Point::Scrape && pb == Point::Scrape {
                    summary.max_gap_ms = summary.max_gap_ms.max(gap);
                }
                let edit = if pa == (Point::Live { added: true }) {
                    EDIT_DELAY_MS_MAX
                } else {
                    0
                };
                if gap <= graceful_bound + edit {
                    continue;
                }
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
                let bound = edit
                    + if disruptive {
                        crash_bound
                    } else {
                        graceful_bound
                    };
                // A crash bound counts from the last crash-like fault inside the gap, if any.
                let judged_from = match state.last_disruption_start(b) {
                    Some(start) if disruptive => start.max(a),
                    _ => a,
                };
                if b - judged_from <= bound {
                    continue;
                }
                let why = if disruptive {
                    "after a crash-like fault"
                } else {
                    "graceful changes only"
                };
                let secs = |ms: i64| ms as f64 / 1000.0;
                let detail = match (pa, pb) {
                    (Point::Live { added }, Point::Gone { .. }) => format!(
                        "t{target} never scraped in the {:.1}s it was live (from {:.1}s{}), bound {:.1}s ({why})",
                        secs(gap),
                        secs(a - EPOCH_MS),
                        if added { ", added by an edit" } else { "" },
                        secs(bound)
                    ),
                    (Point::Live { added }, _) => format!(
                        "t{target} first scraped {:.1}s after it was live (from {:.1}s{}), bound {:.1}s ({why})",
                        secs(gap),
                        secs(a - EPOCH_MS),
                        if added { ", added by an edit" } else { "" },
                        secs(bound)
                    ),
                    (_, Point::Gone { removed }) => format!(
                        "t{target} not scraped in the last {:.1}s before {} (from {:.1}s), bound {:.1}s ({why})",
                        secs(gap),
                        if removed { "its removal" } else { "the end" },
                        secs(a - EPOCH_MS),
                        secs(bound)
                    ),
                    _ => format!(
                        "t{target} not scraped for {:.1}s (from {:.1}s), bound {:.1}s ({why})",
                        secs(gap),
                        secs(a - EPOCH_MS),
                        secs(bound)
                    ),
                };
                out.push(Violation {
                    invariant: "b-gaps",
                    at_ms: a - EPOCH_MS,
                    detail,
                });
            }
            // Coverage: interval slots of the span with a scrape.
            let mut slot = from;
            let mut i = times.partition_point(|t| *t < from);
            while slot + interval <= to {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{at, config, scrape};
    use crate::faults::State;
    use crate::trace::Seen;

    /// Every target scraped every 15 s from the start to the end.
    fn good() -> (crate::SimConfig, Vec<(i64, Seen)>) {
        let cfg = config();
        let mut trace = Vec::new();
        for i in 0..40 {
            for t in 0..cfg.targets {
                trace.push(scrape(i as f64 * 15.0 + 1.0 + t as f64, t, "s0", true));
            }
        }
        (cfg, trace)
    }

    fn judge(cfg: &crate::SimConfig, trace: &[(i64, Seen)], faults: &State) -> Vec<Violation> {
        let run = Run {
            config: cfg,
            faults,
            trace,
            end_ms: at(600.0),
            owned: &[],
            live_members: &[],
        };
        check(&run, &run.scrapes(), &mut Summary::default())
    }

    #[test]
    fn a_target_scraped_every_interval_passes() {
        let (cfg, trace) = good();
        assert_eq!(judge(&cfg, &trace, &State::default()), vec![]);
    }

    #[test]
    fn a_missed_interval_between_two_scrapes_is_unsound() {
        let (cfg, mut trace) = good();
        trace.retain(|(t, s)| !(*t == at(301.0) && matches!(s, Seen::Scrape { target: 0, .. })));
        let v = judge(&cfg, &trace, &State::default());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.starts_with("t0 not scraped for 30.0s"), "{v:?}");
    }

    #[test]
    fn after_a_chain_of_crashes_the_bound_counts_from_the_last() {
        // The config's crash bound: 10 + 3.3 s session and detection, watch delay, 2 × 15 s.
        let (cfg, trace) = good();
        let gap_from = |trace: &[(i64, Seen)], from: f64, to: f64| -> Vec<(i64, Seen)> {
            trace
                .iter()
                .filter(|(t, s)| {
                    !(*t > at(from) && *t < at(to) && matches!(s, Seen::Scrape { target: 1, .. }))
                })
                .cloned()
                .collect()
        };
        let mut faults = State::default();
        faults.record(at(303.0), &Fault::Crash("s1".into()));
        faults.record(at(340.0), &Fault::Crash("s2".into()));
        // t1 scraped at 302 s, then at 377 s: 75 s, but 37 s after the second crash.
        let chained = gap_from(&trace, 302.0, 377.0);
        assert_eq!(judge(&cfg, &chained, &faults), vec![]);
        // Not again until 407 s: 67 s after the last crash, beyond the bound from it too.
        let v = judge(&cfg, &gap_from(&trace, 302.0, 407.0), &faults);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].detail.starts_with("t1 not scraped for 105.0s"),
            "{v:?}"
        );
        // With the first crash alone, the 75 s gap is beyond its bound.
        let mut one = State::default();
        one.record(at(303.0), &Fault::Crash("s1".into()));
        assert_eq!(judge(&cfg, &chained, &one).len(), 1);
    }

    #[test]
    fn scraping_that_stops_before_the_end_is_incomplete() {
        let (cfg, mut trace) = good();
        trace.retain(|(t, s)| !(*t > at(500.0) && matches!(s, Seen::Scrape { target: 2, .. })));
        let v = judge(&cfg, &trace, &State::default());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("before the end"), "{v:?}");
    }

    #[test]
    fn a_target_added_and_never_scraped_is_incomplete() {
        let (cfg, trace) = good();
        let mut faults = State::default();
        // t6 (beyond the initial six) is added at 200 s and never scraped.
        faults.record(at(200.0), &Fault::SetTargets((0..7).collect()));
        let v = judge(&cfg, &trace, &faults);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.starts_with("t6 never scraped"), "{v:?}");
    }

    #[test]
    fn a_removed_target_is_not_judged_after_its_removal() {
        let (cfg, mut trace) = good();
        let mut faults = State::default();
        faults.record(at(300.0), &Fault::SetTargets(vec![0, 1, 2, 3, 4]));
        trace.retain(|(t, s)| !(*t > at(300.0) && matches!(s, Seen::Scrape { target: 5, .. })));
        assert_eq!(judge(&cfg, &trace, &faults), vec![]);
    }
}
