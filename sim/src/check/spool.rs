//! (h) The spool (`SimConfig::spool`): what a scraper's memory queue could not hold went to
//! its host's disk and reaches the bus once, through outages longer than the queue and
//! crashes in them.
//!
//! Soundness: no spilled scrape is acknowledged twice (a replay after a crash delivers an
//! entry again only if the broker had acknowledged part of it, and the sim's entries are one
//! record each).
//! Completeness: every scrape a scraper spilled is acknowledged, from that scraper (in the
//! life that spilled it or a later one on the same host), by the end of the run — judged
//! for the scrapers registered at the end, since a host that never came back never replays.

use std::collections::BTreeMap;

use super::{Run, Summary, Violation};
use crate::trace::Seen;
use crate::EPOCH_MS;

/// Checks every spilled scrape against the acknowledgements.
pub fn check(run: &Run<'_>, summary: &mut Summary) -> Vec<Violation> {
    // (scraper, target, up timestamp) → (when spilled, acknowledgements, samples, life).
    let mut spilled: BTreeMap<(&str, u32, i64), (i64, u32, u32, u32)> = BTreeMap::new();
    // Per scraper host: how many processes it has started.
    let mut lives: BTreeMap<&str, u32> = BTreeMap::new();
    for (at, seen) in run.trace {
        match seen {
            Seen::Started { scraper } => *lives.entry(scraper.as_str()).or_default() += 1,
            Seen::Spilled {
                scraper,
                target,
                up_at_ms: Some(up),
                samples,
            } => {
                summary.samples_spilled += u64::from(*samples);
                let life = lives.get(scraper.as_str()).copied().unwrap_or(0);
                spilled.insert((scraper.as_str(), *target, *up), (*at, 0, *samples, life));
            }
            Seen::Acked {
                scraper,
                target,
                up_at_ms: Some(up),
                ..
            } => {
                if let Some((_, n, samples, life)) =
                    spilled.get_mut(&(scraper.as_str(), *target, *up))
                {
                    *n += 1;
                    if lives.get(scraper.as_str()).copied().unwrap_or(0) != *life {
                        summary.samples_restored += u64::from(*samples);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for ((scraper, target, up), (at, acks, _, _)) in spilled {
        let detail = match acks {
            1 => continue,
            0 if !run.live_members.iter().any(|m| m == scraper) => continue,
            0 => format!(
                "{scraper} spilled its scrape of t{target} at {:.3}s (at {:.1}s) and it never reached the bus",
                (up - EPOCH_MS) as f64 / 1000.0,
                (at - EPOCH_MS) as f64 / 1000.0
            ),
            n => format!(
                "{scraper}'s spilled scrape of t{target} at {:.3}s reached the bus {n} times",
                (up - EPOCH_MS) as f64 / 1000.0
            ),
        };
        out.push(Violation {
            invariant: "h-spool",
            at_ms: at - EPOCH_MS,
            detail,
        });
    }
    out.truncate(20);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{at, config};
    use crate::faults::State;

    fn spilled(s: f64, scraper: &str, target: u32, up: f64) -> (i64, Seen) {
        (
            at(s),
            Seen::Spilled {
                scraper: scraper.into(),
                target,
                samples: 12,
                up_at_ms: Some(at(up)),
            },
        )
    }

    fn acked(s: f64, scraper: &str, target: u32, up: f64) -> (i64, Seen) {
        (
            at(s),
            Seen::Acked {
                scraper: scraper.into(),
                target,
                samples: 12,
                up: Some(true),
                up_at_ms: Some(at(up)),
            },
        )
    }

    fn judge(trace: &[(i64, Seen)], live: &[&str]) -> Vec<Violation> {
        let cfg = config();
        let faults = State::default();
        let live: Vec<String> = live.iter().map(|s| s.to_string()).collect();
        let run = Run {
            config: &cfg,
            faults: &faults,
            trace,
            end_ms: at(600.0),
            owned: &[],
            live_members: &live,
        };
        check(&run, &mut Summary::default())
    }

    #[test]
    fn a_spilled_scrape_replayed_once_passes() {
        let trace = [spilled(100.0, "s0", 3, 99.9), acked(200.0, "s0", 3, 99.9)];
        assert_eq!(judge(&trace, &["s0"]), vec![]);
    }

    #[test]
    fn a_spilled_scrape_never_delivered_by_a_live_scraper_is_incomplete() {
        let trace = [
            spilled(100.0, "s0", 3, 99.9),
            // Another scraper's scrape of the same slot does not count.
            acked(200.0, "s1", 3, 99.9),
        ];
        let v = judge(&trace, &["s0", "s1"]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("never reached the bus"), "{v:?}");
        // A host that never came back is not judged.
        assert_eq!(judge(&trace, &["s1"]), vec![]);
    }

    #[test]
    fn a_spilled_scrape_delivered_twice_is_unsound() {
        let trace = [
            spilled(100.0, "s0", 3, 99.9),
            acked(200.0, "s0", 3, 99.9),
            acked(210.0, "s0", 3, 99.9),
        ];
        let v = judge(&trace, &["s0"]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("2 times"), "{v:?}");
    }
}
