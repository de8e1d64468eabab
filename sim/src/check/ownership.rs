//! (a) Ownership converges to exactly the right owners.
//!
//! Soundness: at the end no live target has more than `min(R, active)` owners in the nodes'
//! own views, no node owns a target that is not live, and in the last interval no target is
//! scraped by a member that is not one of its owners.
//! Completeness: at the end every member that should be up is registered, every live target
//! is owned by exactly the owners the ring of those members gives it, and each of them
//! scraped it in the last interval; after the heal the pool settles (every scrape comes from
//! a final owner) within [`crate::SimConfig::convergence_bound`].

use std::collections::{BTreeMap, BTreeSet};

use scrapepool_core::ring::Ring;

use super::{member_sets, target_key, Run, Scrapes, Summary, Violation};
use crate::EPOCH_MS;

/// Checks ownership at the end of the run.
pub fn check(run: &Run<'_>, scrapes: &Scrapes<'_>, summary: &mut Summary) -> Vec<Violation> {
    let cfg = run.config;
    let end_ms = run.end_ms;
    let at_end = end_ms - EPOCH_MS;
    let mut out = Vec::new();
    let live = run.faults.targets_at(end_ms, cfg.targets);
    let expected: BTreeSet<String> = member_sets(cfg, run.faults)
        .pop()
        .map(|(_, s)| s)
        .unwrap_or_default();
    let registered: BTreeSet<String> = run.live_members.iter().cloned().collect();
    if registered != expected {
        out.push(Violation {
            invariant: "a-ownership",
            at_ms: at_end,
            detail: format!(
                "members registered at the end {registered:?}, want every member up {expected:?}"
            ),
        });
    }
    let ring = Ring::new(expected.iter().map(String::as_str), cfg.replication_factor);
    let want = ring.owner_count();
    let mut owners: BTreeMap<u32, BTreeSet<&str>> = BTreeMap::new();
    for (name, targets) in run.owned {
        for (t, owned) in targets {
            if *owned {
                owners.entry(*t).or_default().insert(name.as_str());
            }
        }
    }
    for (t, by) in &owners {
        if !live.contains(t) {
            out.push(Violation {
                invariant: "a-ownership",
                at_ms: at_end,
                detail: format!("t{t} is not live at the end but {by:?} own it"),
            });
        }
    }
    let right_owners =
        |t: u32| -> BTreeSet<&str> { ring.owners(target_key(cfg, t)).iter().copied().collect() };
    let from = end_ms - cfg.interval.as_millis() as i64;
    for &t in &live {
        let right = right_owners(t);
        let got = owners.get(&t).cloned().unwrap_or_default();
        if got.len() > want {
            out.push(Violation {
                invariant: "a-ownership",
                at_ms: at_end,
                detail: format!(
                    "t{t} has {} owners {got:?} at the end, want {want}",
                    got.len()
                ),
            });
        } else if got != right {
            out.push(Violation {
                invariant: "a-ownership",
                at_ms: at_end,
                detail: format!("t{t} is owned by {got:?} at the end, want {right:?}"),
            });
        }
        // Black-box: what the exporters saw in the last interval.
        let by: BTreeSet<&str> = scrapes
            .get(&t)
            .into_iter()
            .flatten()
            .filter(|(at, _, _)| *at >= from)
            .map(|(_, s, _)| *s)
            .collect();
        let strangers: Vec<&&str> = by.difference(&right).collect();
        if !strangers.is_empty() {
            out.push(Violation {
                invariant: "a-ownership",
                at_ms: at_end,
                detail: format!(
                    "t{t} scraped by {strangers:?} in the last interval, not its owners {right:?}"
                ),
            });
        }
        let missing: Vec<&&str> = right.difference(&by).collect();
        if !missing.is_empty() {
            out.push(Violation {
                invariant: "a-ownership",
                at_ms: at_end,
                detail: format!(
                    "t{t} not scraped by its owner(s) {missing:?} in the last interval"
                ),
            });
        }
    }
    // Liveness: after the heal the pool must settle within the stated bound. It has settled
    // when every live target is scraped only by its right owners.
    let heal = EPOCH_MS + cfg.chaos.as_millis() as i64;
    let mut settled = heal;
    for &t in &live {
        let right = right_owners(t);
        for (at, by, _) in scrapes.get(&t).into_iter().flatten() {
            if *at > heal && !right.contains(by) {
                settled = settled.max(*at);
            }
        }
    }
    summary.convergence_ms = settled - heal;
    let bound = cfg.convergence_bound().as_millis() as i64;
    if settled - heal > bound {
        out.push(Violation {
            invariant: "a-convergence",
            at_ms: settled - EPOCH_MS,
            detail: format!(
                "the pool took {:.1}s after the heal to settle, bound {:.1}s",
                (settled - heal) as f64 / 1000.0,
                bound as f64 / 1000.0
            ),
        });
    }
    out.truncate(20);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{at, config, owner, scrape};
    use crate::check::Owned;
    use crate::faults::State;
    use crate::trace::Seen;

    const MEMBERS: [&str; 3] = ["s0", "s1", "s2"];

    /// A calm run: every target scraped by its owner every 15 s up to the end.
    fn good() -> (
        crate::SimConfig,
        Vec<(i64, Seen)>,
        Vec<(String, Vec<(u32, bool)>)>,
    ) {
        let cfg = config();
        let mut trace = Vec::new();
        for s in (0..40).map(|i| i as f64 * 15.0) {
            for t in 0..cfg.targets {
                trace.push(scrape(s + 1.0, t, &owner(&cfg, &MEMBERS, t), true));
            }
        }
        let owned = MEMBERS
            .iter()
            .map(|m| {
                let mine = (0..cfg.targets)
                    .filter(|t| owner(&cfg, &MEMBERS, *t) == *m)
                    .map(|t| (t, true))
                    .collect();
                (m.to_string(), mine)
            })
            .collect();
        (cfg, trace, owned)
    }

    fn judge(
        cfg: &crate::SimConfig,
        trace: &[(i64, Seen)],
        owned: &Owned,
        live: &[&str],
    ) -> Vec<Violation> {
        let faults = State::default();
        let live: Vec<String> = live.iter().map(|s| s.to_string()).collect();
        let run = Run {
            config: cfg,
            faults: &faults,
            trace,
            end_ms: at(600.0),
            owned,
            live_members: &live,
        };
        check(&run, &run.scrapes(), &mut Summary::default())
    }

    #[test]
    fn a_pool_owning_and_scraping_by_the_ring_passes() {
        let (cfg, trace, owned) = good();
        assert_eq!(judge(&cfg, &trace, &owned, &MEMBERS), vec![]);
    }

    #[test]
    fn a_target_with_two_owners_is_unsound() {
        let (cfg, trace, mut owned) = good();
        let t = owned[0].1[0].0;
        owned[1].1.push((t, true));
        let v = judge(&cfg, &trace, &owned, &MEMBERS);
        assert!(v.iter().any(|v| v.detail.contains("has 2 owners")), "{v:?}");
    }

    #[test]
    fn a_stranger_scraping_in_the_last_interval_is_unsound() {
        let (cfg, mut trace, owned) = good();
        let stranger = MEMBERS
            .iter()
            .find(|m| owner(&cfg, &MEMBERS, 0) != **m)
            .unwrap();
        trace.push(scrape(595.0, 0, stranger, true));
        let v = judge(&cfg, &trace, &owned, &MEMBERS);
        assert!(
            v.iter().any(|v| v.detail.contains("not its owners")),
            "{v:?}"
        );
        assert!(v.iter().any(|v| v.invariant == "a-convergence"), "{v:?}");
    }

    #[test]
    fn an_unowned_target_is_incomplete() {
        let (cfg, trace, mut owned) = good();
        let lost = owned[0].1.pop().unwrap().0;
        let v = judge(&cfg, &trace, &owned, &MEMBERS);
        assert!(
            v.iter()
                .any(|v| v.detail.starts_with(&format!("t{lost} is owned by {{}}"))),
            "{v:?}"
        );
    }

    #[test]
    fn a_member_not_registered_again_is_incomplete() {
        let (cfg, trace, owned) = good();
        let v = judge(&cfg, &trace, &owned, &MEMBERS[..2]);
        assert!(
            v.iter().any(|v| v.detail.starts_with("members registered")),
            "{v:?}"
        );
    }

    #[test]
    fn an_owner_that_stopped_scraping_is_incomplete() {
        let (cfg, mut trace, owned) = good();
        trace.retain(|(t, s)| !(*t > at(580.0) && matches!(s, Seen::Scrape { target: 3, .. })));
        let v = judge(&cfg, &trace, &owned, &MEMBERS);
        assert!(
            v.iter()
                .any(|v| v.detail.starts_with("t3 not scraped by its owner")),
            "{v:?}"
        );
    }
}
