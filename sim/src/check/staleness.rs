//! (d) Staleness markers exactly where Prometheus puts them: a series gone from a
//! successful scrape, every series of a failed scrape, every series of a target removed from
//! discovery — and never for a target that merely moved to another member.
//!
//! Soundness: every marker that reached the bus has one of those reasons.
//! Completeness: in calm stretches (no membership change, no crash-like fault, Kafka in
//! reach), every series a scraper's successful scrape served and its next one did not gets a
//! marker from it, and every target removed by a job edit gets a marker, from each scraper
//! that last scraped it, for every series of that scraper's last scrape (when it succeeded).

use std::collections::{BTreeMap, BTreeSet};

use super::{Run, Scrapes, Violation};
use crate::exporter::series_at;
use crate::faults::{Fault, State};
use crate::trace::Seen;
use crate::EPOCH_MS;

/// How long after a scrape's start its request reaches the exporter, at most: on a new
/// connection the handshake and then the request each cross the link, and a slow link holds
/// each crossing for at most 800 ms; plus a step.
const REQUEST_DELAY_MS_MAX: i64 = 2 * 800 + 200;
/// How long after a job edit the scrapers may still be learning of it.
const EDIT_DELAY_MS_MAX: i64 = super::gaps::EDIT_DELAY_MS_MAX;
/// How far from the moment it is due a marker's sample time may lie: the step and the
/// network (a series-gone marker carries the scrape's start, a little before the exporter's
/// answer).
const MARKER_SLACK_MS: i64 = 2_000;

/// The series name the Kafka model writes for series `k` of the simulated exporters.
fn series_name(k: u32) -> String {
    format!("sim_series{{k={k}}}")
}

/// Whether nothing happened in `[from, to]` that may rightly change which markers a scraper
/// writes: a membership change (a move, a restart's fresh memory), a crash-like fault or a
/// fault still in force, or trouble between `scraper` and Kafka until the markers are due to
/// be acknowledged.
fn calm(state: &State, scraper: &str, from: i64, to: i64) -> bool {
    let kafka_until = to + crate::kafka::MESSAGE_TIMEOUT.as_millis() as i64 + 10_000;
    !state.disruptive_between(from, to)
        && !state.log.iter().any(|(t, f)| {
            let membership = matches!(
                f,
                Fault::Crash(_) | Fault::Leave(_) | Fault::Join | Fault::Restart(_)
            ) && *t >= from
                && *t <= to;
            let kafka = (matches!(f, Fault::KafkaOutage(true))
                || matches!(f, Fault::KafkaPartition(h, true) if h == scraper))
                && *t >= from
                && *t <= kafka_until;
            membership || kafka
        })
}

/// Checks every marker that reached the bus.
pub fn check(run: &Run<'_>, scrapes: &Scrapes<'_>) -> Vec<Violation> {
    let cfg = run.config;
    let state = run.faults;
    let mut out = Vec::new();
    // Marker sample times by (scraper, target, series), for the completeness checks.
    let mut markers: BTreeMap<(&str, u32, &str), Vec<i64>> = BTreeMap::new();
    for (_, seen) in run.trace {
        let Seen::Marker {
            scraper,
            target,
            series,
            at_ms,
        } = seen
        else {
            continue;
        };
        let at = *at_ms;
        markers
            .entry((scraper.as_str(), *target, series.as_str()))
            .or_default()
            .push(at);
        // Removed from discovery around then.
        let removed = state.log.iter().any(|(t, f)| {
            *t <= at + 1
                && *t >= at - EDIT_DELAY_MS_MAX
                && matches!(f, Fault::SetTargets(ts) if !ts.contains(target))
        }) || !state.targets_at(at, cfg.targets).contains(target);
        if removed {
            continue;
        }
        // The scrape the marker belongs to: this scraper's request around `at`. The node
        // stamps a scrape with its slot plus a shift, or a catch-up on a slot just passed
        // with that slot, so the request lies within a timestamp band of the stamp.
        let band = scrapepool_core::node::TIMESTAMP_BAND_MS;
        let scrape = scrapes.get(target).and_then(|v| {
            v.iter().find(|(t, s, _)| {
                *s == scraper.as_str() && *t >= at - band && *t <= at + band + REQUEST_DELAY_MS_MAX
            })
        });
        // A partition between this scraper and the target's exporter host that was in force
        // during the scrape, or began before its timeout ran out, may have swallowed the
        // answer: the scrape failed. (A slow link only delays it: three crossings of at most
        // 800 ms stay well inside the timeout, so its scrape is found above.)
        let timeout_ms = run.timeout_ms();
        let exporter = target % cfg.exporters;
        let cut = |f: &Fault| matches!(f, Fault::ExporterPartition(h, e, true) if h == scraper && *e == exporter);
        let healed = |f: &Fault| matches!(f, Fault::ExporterPartition(h, e, false) if h == scraper && *e == exporter);
        let cut_off = state.in_force(at, cut, healed)
            || state
                .log
                .iter()
                .any(|(t, f)| *t >= at && *t <= at + timeout_ms && cut(f));
        let justified = cut_off
            || match scrape {
                Some((_, _, false)) => true, // a failed scrape ends every series
                Some((t, _, true)) => {
                    // A series gone from a successful scrape (synthetic series never go).
                    match series
                        .strip_prefix("sim_series{k=")
                        .and_then(|k| k.strip_suffix('}'))
                        .and_then(|k| k.parse::<u32>().ok())
                    {
                        Some(k) => !series_at(*target, *t / 1000).any(|j| j == k),
                        None => false,
                    }
                }
                // No request reached the exporter and nothing cut the link: no reason.
                None => false,
            };
        if !justified {
            out.push(Violation {
                invariant: "d-staleness",
                at_ms: at - EPOCH_MS,
                detail: format!("{scraper} wrote a staleness marker for {series} of t{target} at {:.1}s with no reason (target live, series present, scrape fine)", (at - EPOCH_MS) as f64 / 1000.0),
            });
        }
    }
    out.extend(completeness(run, scrapes, &markers));
    out.sort_by_key(|v| v.at_ms);
    out.truncate(20);
    out
}

/// Every series that ended has its marker.
fn completeness(
    run: &Run<'_>,
    scrapes: &Scrapes<'_>,
    markers: &BTreeMap<(&str, u32, &str), Vec<i64>>,
) -> Vec<Violation> {
    let cfg = run.config;
    let state = run.faults;
    let interval = cfg.interval.as_millis() as i64;
    let slack = super::gaps::SLACK_MS;
    let timeout = run.timeout_ms();
    let warm = EPOCH_MS + super::gaps::WARM_UP_MS;
    let marked = |scraper: &str, target: u32, k: u32, from: i64, to: i64| {
        markers
            .get(&(scraper, target, series_name(k).as_str()))
            .is_some_and(|ts| ts.iter().any(|t| *t >= from && *t <= to))
    };
    let secs = |ms: i64| (ms - EPOCH_MS) as f64 / 1000.0;
    let mut out = Vec::new();
    for (&target, list) in scrapes {
        // Series gone between two consecutive successful scrapes of one scraper.
        let mut by: BTreeMap<&str, Vec<(i64, bool)>> = BTreeMap::new();
        for (at, s, ok) in list {
            by.entry(*s).or_default().push((*at, *ok));
        }
        for (s, seen) in &by {
            for w in seen.windows(2) {
                let ((a, a_ok), (b, b_ok)) = (w[0], w[1]);
                if !(a_ok && b_ok) || a < warm || b - a > interval + slack {
                    continue;
                }
                if b + 30_000 > run.end_ms || !calm(state, s, a - interval, b + timeout) {
                    continue;
                }
                let now: BTreeSet<u32> = series_at(target, b / 1000).collect();
                for k in series_at(target, a / 1000).filter(|k| !now.contains(k)) {
                    if !marked(s, target, k, b - MARKER_SLACK_MS, b + MARKER_SLACK_MS) {
                        out.push(Violation {
                            invariant: "d-staleness",
                            at_ms: b - EPOCH_MS,
                            detail: format!("{s} wrote no staleness marker for {} of t{target}, gone between its scrapes at {:.1}s and {:.1}s", series_name(k), secs(a), secs(b)),
                        });
                    }
                }
            }
        }
        // A target removed by a job edit: its last scrapers end its series.
        for (_, removed) in state.live_spans(target, cfg.targets, run.end_ms) {
            // Prometheus's end-of-run staleness: the markers carry the time of the next
            // scrape (at most an interval after the scraper learnt of the edit, or the end
            // of a scrape still out), and are written an interval and a tenth after that.
            let due = removed + EDIT_DELAY_MS_MAX + interval.max(timeout) + MARKER_SLACK_MS;
            let written = due + interval + interval / 10;
            if removed >= run.end_ms || removed < warm || written + 30_000 > run.end_ms {
                continue;
            }
            let last: BTreeSet<&str> = list
                .iter()
                .filter(|(t, _, _)| *t > removed - interval - slack && *t <= removed)
                .map(|(_, s, _)| *s)
                .collect();
            for s in last {
                if !calm(state, s, removed - 2 * interval, written) {
                    continue;
                }
                let first_marker = markers
                    .range((s, target, "")..)
                    .take_while(|((m, t, _), _)| *m == s && *t == target)
                    .flat_map(|(_, ts)| ts.iter())
                    .filter(|t| **t >= removed - MARKER_SLACK_MS && **t <= due)
                    .min()
                    .copied();
                // The series are those of the last scrape before the node let the target go.
                let Some(&(at, _, ok)) = list
                    .iter()
                    .filter(|(t, by, _)| *by == s && *t <= first_marker.unwrap_or(due))
                    .last()
                else {
                    continue;
                };
                if !ok {
                    continue; // a failed scrape already ended every series
                }
                let missing: Vec<String> = series_at(target, at / 1000)
                    .filter(|k| !marked(s, target, *k, removed - MARKER_SLACK_MS, due))
                    .map(series_name)
                    .collect();
                if !missing.is_empty() {
                    out.push(Violation {
                        invariant: "d-staleness",
                        at_ms: removed - EPOCH_MS,
                        detail: format!("t{target} was removed at {:.1}s but {s}, which scraped it last, wrote no staleness markers for {missing:?}", secs(removed)),
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{at, config, scrape};

    fn marker(ms: i64, scraper: &str, target: u32, k: u32) -> (i64, Seen) {
        (
            ms + 20,
            Seen::Marker {
                scraper: scraper.into(),
                target,
                series: series_name(k),
                at_ms: ms,
            },
        )
    }

    fn series(target: u32, ms: i64) -> Vec<u32> {
        series_at(target, ms / 1000).collect()
    }

    /// t1 is removed at 110 s after s0 scraped it at 100 s, and s0 ends its series; t3 loses
    /// a series between s1's scrapes at 170 s and 185 s, and s1 ends it.
    fn good() -> (Vec<(i64, Seen)>, State) {
        let mut trace = vec![scrape(100.0, 1, "s0", true)];
        for k in series(1, at(100.0)) {
            trace.push(marker(at(110.5), "s0", 1, k));
        }
        trace.push(scrape(170.0, 3, "s1", true));
        trace.push(scrape(185.0, 3, "s1", true));
        let now = series(3, at(185.0));
        let gone: Vec<u32> = series(3, at(170.0))
            .into_iter()
            .filter(|k| !now.contains(k))
            .collect();
        assert!(!gone.is_empty(), "the test needs a series that goes");
        for k in gone {
            trace.push(marker(at(184.9), "s1", 3, k));
        }
        trace.sort_by_key(|(t, _)| *t);
        let mut faults = State::default();
        faults.record(at(110.0), &Fault::SetTargets(vec![0, 2, 3, 4, 5]));
        (trace, faults)
    }

    fn judge(trace: &[(i64, Seen)], faults: &State) -> Vec<Violation> {
        let cfg = config();
        let run = Run {
            config: &cfg,
            faults,
            trace,
            end_ms: at(600.0),
            owned: &[],
            live_members: &[],
        };
        check(&run, &run.scrapes())
    }

    #[test]
    fn markers_for_a_removal_and_a_gone_series_pass() {
        let (trace, faults) = good();
        assert_eq!(judge(&trace, &faults), vec![]);
    }

    #[test]
    fn a_marker_for_a_live_series_is_unsound() {
        let (mut trace, faults) = good();
        trace.push(scrape(300.0, 2, "s0", true));
        trace.push(marker(at(299.9), "s0", 2, 0));
        let v = judge(&trace, &faults);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("with no reason"), "{v:?}");
    }

    #[test]
    fn a_removed_target_without_markers_is_incomplete() {
        let (mut trace, faults) = good();
        trace.retain(|(_, s)| !matches!(s, Seen::Marker { target: 1, .. }));
        let v = judge(&trace, &faults);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].detail
                .starts_with("t1 was removed at 110.0s but s0, which scraped it last, wrote no staleness markers"),
            "{v:?}"
        );
    }

    #[test]
    fn a_gone_series_without_a_marker_is_incomplete() {
        let (mut trace, faults) = good();
        trace.retain(|(_, s)| !matches!(s, Seen::Marker { target: 3, .. }));
        let v = judge(&trace, &faults);
        assert!(!v.is_empty());
        assert!(
            v.iter().all(|v| v
                .detail
                .starts_with("s1 wrote no staleness marker for sim_series")),
            "{v:?}"
        );
    }

    #[test]
    fn a_removal_during_a_crash_is_not_judged() {
        let (mut trace, mut faults) = good();
        trace.retain(|(_, s)| !matches!(s, Seen::Marker { target: 1, .. }));
        faults.log.insert(0, (at(95.0), Fault::Crash("s2".into())));
        assert_eq!(judge(&trace, &faults), vec![]);
    }
}
