//! (h) The spool (`SimConfig::spool`): what a scraper's memory queue could not hold went to
//! its host's disk and reaches the bus once, through outages longer than the queue and
//! crashes in them.
//!
//! With `SimConfig::spool_write_through` every submission is an entry (a journaled one goes
//! to the broker at once as well), so a crash loses nothing handed to the sink.
//!
//! Soundness: no spooled scrape is acknowledged twice (a replay after a crash delivers an
//! entry again only if the broker had acknowledged part of it, and the sim's entries are one
//! record each).
//! Completeness: every scrape a scraper spooled is acknowledged, from that scraper (in the
//! life that spooled it or a later one on the same host), by the end of the run — judged
//! for the scrapers registered at the end, since a host that never came back never replays,
//! and for journaled scrapes older than [`SETTLE_GRACE_MS`] at the end. With write-through,
//! also: every sample a scraper handed to its sink went through the spool (journaled,
//! spilled or refused by it), so nothing reached the broker from memory alone.

use std::collections::BTreeMap;

use super::{Run, Summary, Violation};
use crate::trace::Seen;
use crate::EPOCH_MS;

/// How long a journaled scrape may still be on its way to the broker when the run ends.
pub const SETTLE_GRACE_MS: i64 = 5_000;

/// One spooled scrape, as the trace tells it.
struct Spooled {
    /// When it was spooled.
    at: i64,
    /// How often the broker acknowledged it from its scraper.
    acks: u32,
    samples: u32,
    /// Which process of its host spooled it (1: the first).
    life: u32,
    journaled: bool,
}

/// Checks every spooled scrape against the acknowledgements.
pub fn check(run: &Run<'_>, summary: &mut Summary) -> Vec<Violation> {
    // By (scraper, target, up timestamp).
    let mut spilled: BTreeMap<(&str, u32, i64), Spooled> = BTreeMap::new();
    // Per scraper host: how many processes it has started.
    let mut lives: BTreeMap<&str, u32> = BTreeMap::new();
    // Per scraper host: samples handed to the sink, and samples the spool took or refused.
    let mut handed: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (at, seen) in run.trace {
        match seen {
            Seen::Started { scraper } => *lives.entry(scraper.as_str()).or_default() += 1,
            Seen::Emitted {
                scraper, samples, ..
            } => handed.entry(scraper.as_str()).or_default().0 += u64::from(*samples),
            Seen::SpoolRefused { scraper, samples } => {
                handed.entry(scraper.as_str()).or_default().1 += u64::from(*samples)
            }
            Seen::Spilled {
                scraper,
                target,
                up_at_ms,
                samples,
                journaled,
            } => {
                handed.entry(scraper.as_str()).or_default().1 += u64::from(*samples);
                if !journaled {
                    summary.samples_spilled += u64::from(*samples);
                }
                let Some(up) = up_at_ms else { continue };
                let life = lives.get(scraper.as_str()).copied().unwrap_or(0);
                spilled.insert(
                    (scraper.as_str(), *target, *up),
                    Spooled {
                        at: *at,
                        acks: 0,
                        samples: *samples,
                        life,
                        journaled: *journaled,
                    },
                );
            }
            Seen::Acked {
                scraper,
                target,
                up_at_ms: Some(up),
                ..
            } => {
                if let Some(s) = spilled.get_mut(&(scraper.as_str(), *target, *up)) {
                    s.acks += 1;
                    if lives.get(scraper.as_str()).copied().unwrap_or(0) != s.life {
                        summary.samples_restored += u64::from(s.samples);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if run.config.spool_write_through {
        for (scraper, (to_sink, spooled)) in handed {
            if to_sink != spooled {
                out.push(Violation {
                    invariant: "h-spool",
                    at_ms: run.end_ms - EPOCH_MS,
                    detail: format!("{scraper} writes through its spool but handed its sink {to_sink} samples and its spool took or refused {spooled}"),
                });
            }
        }
    }
    for ((scraper, target, up), s) in spilled {
        let Spooled {
            at,
            acks,
            journaled,
            ..
        } = s;
        let how = if journaled { "journaled" } else { "spilled" };
        let detail = match acks {
            1 => continue,
            0 if !run.live_members.iter().any(|m| m == scraper) => continue,
            0 if journaled && at > run.end_ms - SETTLE_GRACE_MS => continue,
            0 => format!(
                "{scraper} {how} its scrape of t{target} at {:.3}s (at {:.1}s) and it never reached the bus",
                (up - EPOCH_MS) as f64 / 1000.0,
                (at - EPOCH_MS) as f64 / 1000.0
            ),
            n => format!(
                "{scraper}'s {how} scrape of t{target} at {:.3}s reached the bus {n} times",
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
    use crate::SimConfig;

    fn spooled(s: f64, scraper: &str, target: u32, up: f64, journaled: bool) -> (i64, Seen) {
        (
            at(s),
            Seen::Spilled {
                scraper: scraper.into(),
                target,
                samples: 12,
                up_at_ms: Some(at(up)),
                journaled,
            },
        )
    }

    fn spilled(s: f64, scraper: &str, target: u32, up: f64) -> (i64, Seen) {
        spooled(s, scraper, target, up, false)
    }

    fn journaled(s: f64, scraper: &str, target: u32, up: f64) -> (i64, Seen) {
        spooled(s, scraper, target, up, true)
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
        judge_with(config(), trace, live)
    }

    fn judge_with(cfg: SimConfig, trace: &[(i64, Seen)], live: &[&str]) -> Vec<Violation> {
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

    #[test]
    fn a_journaled_scrape_lost_with_a_crash_and_never_replayed_is_incomplete() {
        let trace = [
            journaled(100.0, "s0", 3, 99.9),
            journaled(100.0, "s0", 4, 99.9),
            acked(100.1, "s0", 4, 99.9),
        ];
        let v = judge(&trace, &["s0"]);
        // t4's journaled scrape was acknowledged; t3's never was.
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("journaled its scrape of t3"), "{v:?}");
        // One still on its way when the run ends is not judged.
        assert_eq!(judge(&[journaled(597.0, "s0", 3, 596.9)], &["s0"]), vec![]);
    }

    #[test]
    fn write_through_requires_every_sample_handed_to_the_sink_to_go_through_the_spool() {
        let emitted = |s: f64, target: u32| {
            (
                at(s),
                Seen::Emitted {
                    scraper: "s0".into(),
                    target,
                    samples: 12,
                },
            )
        };
        let wt = SimConfig {
            spool: true,
            spool_write_through: true,
            ..config()
        };
        let through = [
            emitted(100.0, 3),
            journaled(100.0, "s0", 3, 99.9),
            acked(100.1, "s0", 3, 99.9),
        ];
        assert_eq!(judge_with(wt.clone(), &through, &["s0"]), vec![]);
        // A submission that went to the broker from memory alone.
        let around = [
            emitted(100.0, 3),
            journaled(100.0, "s0", 3, 99.9),
            acked(100.1, "s0", 3, 99.9),
            emitted(115.0, 3),
            acked(115.1, "s0", 3, 114.9),
        ];
        let v = judge_with(wt, &around, &["s0"]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].detail
                .contains("handed its sink 24 samples and its spool took or refused 12"),
            "{v:?}"
        );
        // Without write-through only spilled scrapes are judged.
        assert_eq!(judge(&around, &["s0"]), vec![]);
    }
}
