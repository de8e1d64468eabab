//! (g) Slot handoff, judged on what reached the bus (every acknowledged scrape, by the
//! timestamp of its `up` sample).
//!
//! - `g-timestamps`, under every fault: no two scrapes of one target by two scrapers carry
//!   the same timestamp (a remote-write receiver refuses the second: `duplicate sample for
//!   timestamp`). Soundness only: nothing may ever break it.
//! - `g-slots`, in calm stretches (no fault but joins, leaves and job edits for a minute
//!   before and during the interval, so watch delays stay below the handoff margin): every
//!   interval slot of every live target holds exactly one scrape. Two is the old owner
//!   scraping past the handoff slot or the new owner before it (unsound); none is a gap
//!   (incomplete). Slots near a target's addition or removal, and the warm-up, are not
//!   judged (its owners learn of the edit at different times).
//!
//! A scrape belongs to the slot of its target (rank 0's phase, `core::schedule`) at or before
//! its timestamp: a new owner's shifted or catching-up scrape stays in its interval.

use std::collections::BTreeMap;
use std::time::Duration;

use scrapepool_core::schedule;
use scrapepool_core::Timestamp;

use super::gaps::{EDIT_DELAY_MS_MAX, WARM_UP_MS};
use super::{target_key, Run, Summary, Violation};
use crate::trace::Seen;
use crate::EPOCH_MS;

/// Per target: `(up timestamp, scraper)` of every acknowledged scrape, in trace order.
fn stamped<'a>(run: &'a Run<'_>) -> BTreeMap<u32, Vec<(i64, &'a str)>> {
    let mut out: BTreeMap<u32, Vec<(i64, &str)>> = BTreeMap::new();
    for (_, seen) in run.trace {
        if let Seen::Acked {
            scraper,
            target,
            up_at_ms: Some(ts),
            ..
        } = seen
        {
            out.entry(*target)
                .or_default()
                .push((*ts, scraper.as_str()));
        }
    }
    out
}

/// Checks timestamps and slots.
pub fn check(run: &Run<'_>, summary: &mut Summary) -> Vec<Violation> {
    let cfg = run.config;
    let interval = cfg.interval.as_millis() as i64;
    let mut out = Vec::new();
    let secs = |ms: i64| (ms - EPOCH_MS) as f64 / 1000.0;
    let (mut judged, mut exact) = (0u64, 0u64);
    for (target, mut list) in stamped(run) {
        list.sort_unstable();
        // A record acknowledged twice (a redelivery) is one scrape; two scrapers are two.
        list.dedup();
        for w in list.windows(2) {
            if w[0].0 == w[1].0 {
                out.push(Violation {
                    invariant: "g-timestamps",
                    at_ms: w[0].0 - EPOCH_MS,
                    detail: format!(
                        "t{target} scraped by {} and {} with the same timestamp {:.3}s",
                        w[0].1,
                        w[1].1,
                        secs(w[0].0)
                    ),
                });
            }
        }
        let offset = schedule::offset(target_key(cfg, target), 0, cfg.interval).as_millis() as i64;
        for (from, to) in run.faults.live_spans(target, cfg.targets, run.end_ms) {
            let edit = if from > EPOCH_MS {
                EDIT_DELAY_MS_MAX
            } else {
                0
            };
            let from = from.max(EPOCH_MS + WARM_UP_MS) + edit + interval;
            let to = if to < run.end_ms {
                to - EDIT_DELAY_MS_MAX - interval
            } else {
                to - interval
            };
            let mut slot = schedule::next_at(
                Timestamp(from),
                Duration::from_millis(interval as u64),
                Duration::from_millis(offset as u64),
            )
            .0;
            while slot + interval <= to {
                if !run
                    .faults
                    .disruptive_between(slot - 60_000, slot + interval)
                {
                    judged += 1;
                    let lo = list.partition_point(|(t, _)| *t < slot);
                    let hi = list.partition_point(|(t, _)| *t < slot + interval);
                    let n = hi - lo;
                    if n == 1 {
                        exact += 1;
                    } else {
                        let who: Vec<String> = list[lo..hi]
                            .iter()
                            .map(|(t, s)| format!("{s}@{:.3}s", secs(*t)))
                            .collect();
                        out.push(Violation {
                            invariant: "g-slots",
                            at_ms: slot - EPOCH_MS,
                            detail: format!(
                                "t{target}'s slot at {:.3}s has {n} scrapes, not one (graceful changes only): {who:?}",
                                secs(slot)
                            ),
                        });
                    }
                }
                slot += interval;
            }
        }
    }
    summary.slots_exact_pct = if judged == 0 {
        0.0
    } else {
        100.0 * exact as f64 / judged as f64
    };
    out.sort_by_key(|v| v.at_ms);
    out.truncate(20);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{at, config, owner};
    use crate::faults::{Fault, State};

    const INTERVAL: i64 = 15_000;

    fn acked(ts: i64, target: u32, scraper: &str) -> (i64, Seen) {
        (
            ts + 50,
            Seen::Acked {
                scraper: scraper.into(),
                target,
                samples: 7,
                up: Some(true),
                up_at_ms: Some(ts),
            },
        )
    }

    /// The slots of target `t` (rank 0's phase) in `[from, to)`, simulated seconds.
    fn slots(t: u32, from: f64, to: f64) -> Vec<i64> {
        let cfg = config();
        let off = schedule::offset(target_key(&cfg, t), 0, cfg.interval).as_millis() as i64;
        let first = schedule::next_at(
            Timestamp(at(from)),
            cfg.interval,
            Duration::from_millis(off as u64),
        )
        .0;
        (0..)
            .map(|i| first + i * INTERVAL)
            .take_while(|s| *s < at(to))
            .collect()
    }

    /// s0 and s1 from the start; s2 joins at 300 s. Each target is scraped at its slots by its
    /// owner; a target that moves to s2 is scraped by its old owner up to the slot before H
    /// and by s2, 1 ms late (the takeover shift), from H, with H its first slot at or after
    /// 305 s (the join plus the margin). `grace_bug`: the old owner scrapes one interval more
    /// at the same instant as the new one, as a grace period would.
    fn trace(grace_bug: bool, same_ms: bool) -> (State, Vec<(i64, Seen)>) {
        let cfg = config();
        let mut faults = State::default();
        faults.record(at(300.0), &Fault::Join);
        let mut trace = Vec::new();
        for t in 0..cfg.targets {
            let before = owner(&cfg, &["s0", "s1"], t);
            let after = owner(&cfg, &["s0", "s1", "s2"], t);
            for slot in slots(t, 0.0, 600.0) {
                if before == after || slot < at(305.0) {
                    trace.push(acked(slot, t, &before));
                    continue;
                }
                let h = slots(t, 305.0, 600.0)[0];
                let shift = if same_ms { 0 } else { 1 };
                trace.push(acked(slot + shift, t, &after));
                if grace_bug && slot < h + INTERVAL {
                    trace.push(acked(slot, t, &before));
                }
            }
        }
        trace.sort_by_key(|(t, _)| *t);
        (faults, trace)
    }

    fn judge(faults: &State, trace: &[(i64, Seen)]) -> Vec<Violation> {
        let cfg = config();
        let run = Run {
            config: &cfg,
            faults,
            trace,
            end_ms: at(600.0),
            owned: &[],
            live_members: &[],
        };
        check(&run, &mut Summary::default())
    }

    fn moved(cfg: &crate::SimConfig) -> usize {
        (0..cfg.targets)
            .filter(|t| owner(cfg, &["s0", "s1"], *t) != owner(cfg, &["s0", "s1", "s2"], *t))
            .count()
    }

    #[test]
    fn one_scrape_per_slot_through_a_join_passes() {
        let (faults, trace) = trace(false, false);
        assert!(moved(&config()) > 0, "the join moves a target");
        assert_eq!(judge(&faults, &trace), vec![]);
    }

    #[test]
    fn an_old_owner_scraping_on_for_a_grace_is_unsound() {
        let (faults, trace) = trace(true, false);
        let v = judge(&faults, &trace);
        assert_eq!(v.len(), moved(&config()), "one per moved target: {v:?}");
        assert!(
            v.iter()
                .all(|v| v.invariant == "g-slots" && v.detail.contains("has 2 scrapes")),
            "{v:?}"
        );
    }

    #[test]
    fn two_scrapers_on_one_millisecond_break_the_timestamps() {
        let (faults, trace) = trace(true, true);
        let v = judge(&faults, &trace);
        assert!(
            v.iter()
                .any(|v| v.invariant == "g-timestamps" && v.detail.contains("same timestamp")),
            "{v:?}"
        );
    }

    #[test]
    fn a_same_timestamp_counts_under_any_fault() {
        let (mut faults, mut trace) = trace(false, false);
        faults.record(at(100.0), &Fault::ZkPartition("s0".into(), true));
        trace.push(acked(at(200.0), 0, "s0"));
        trace.push(acked(at(200.0), 0, "s1"));
        let v = judge(&faults, &trace);
        assert_eq!(v.len(), 1, "slots are not judged under a partition: {v:?}");
        assert_eq!(v[0].invariant, "g-timestamps");
    }

    #[test]
    fn a_missed_slot_is_incomplete() {
        let (faults, mut trace) = trace(false, false);
        let gone = slots(2, 400.0, 600.0)[0];
        trace.retain(|(_, s)| !matches!(s, Seen::Acked { target: 2, up_at_ms: Some(ts), .. } if *ts >= gone && *ts < gone + 4));
        let v = judge(&faults, &trace);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("has 0 scrapes"), "{v:?}");
    }
}
