//! (a) After convergence every scraper still running is a member, every live target has
//! exactly `min(R, active members)` owners, and in the last interval no target is scraped by
//! more members than that.

use std::collections::{BTreeMap, BTreeSet};

use super::{Answers, Summary, Violation};
use crate::faults::State;
use crate::{World, EPOCH_MS};

/// Checks ownership at the end of the run.
pub fn check(
    world: &World,
    state: &State,
    end_ms: i64,
    answers: &Answers,
    live_members: &[String],
    scrapes: &BTreeMap<u32, Vec<(i64, &str, bool)>>,
    summary: &mut Summary,
) -> Vec<Violation> {
    let cfg = &world.config;
    let mut out = Vec::new();
    let live = state.targets_at(end_ms, cfg.targets);
    // Completeness: every scraper still running at the end is a member (else the pool
    // would pass with one member fewer, e.g. one that never registers again after an expiry).
    for (name, _, _) in answers {
        if !live_members.contains(name) {
            out.push(Violation {
                invariant: "a-ownership",
                at_ms: end_ms - EPOCH_MS,
                detail: format!(
                    "scraper {name} runs but has no member record after convergence (members: {live_members:?})"
                ),
            });
        }
    }
    let want = cfg.replication_factor.min(live_members.len());
    let mut owners: BTreeMap<u32, usize> = BTreeMap::new();
    for (_, _, targets) in answers {
        for (t, owned) in targets {
            if *owned {
                *owners.entry(*t).or_default() += 1;
            }
        }
    }
    for t in &live {
        let n = owners.get(t).copied().unwrap_or(0);
        if n != want {
            out.push(Violation {
                invariant: "a-ownership",
                at_ms: end_ms - EPOCH_MS,
                detail: format!("target t{t} has {n} owners after convergence, want {want}"),
            });
        }
    }
    // Black-box: what the exporters saw in the last interval.
    let from = end_ms - cfg.interval.as_millis() as i64;
    for t in &live {
        let by: BTreeSet<&str> = scrapes
            .get(t)
            .map(|v| {
                v.iter()
                    .filter(|(at, _, _)| *at >= from)
                    .map(|(_, s, _)| *s)
                    .collect()
            })
            .unwrap_or_default();
        if by.len() > want {
            out.push(Violation {
                invariant: "a-ownership",
                at_ms: end_ms - EPOCH_MS,
                detail: format!(
                    "target t{t} scraped by {by:?} in the last interval, want {want} scraper(s)"
                ),
            });
        }
    }
    // Liveness: after the heal, the pool must settle within the stated bound. It has settled
    // when every live target is scraped only by its final owners.
    let heal = EPOCH_MS + cfg.chaos.as_millis() as i64;
    let final_owners: BTreeMap<u32, BTreeSet<&str>> = answers
        .iter()
        .flat_map(|(name, _, targets)| {
            targets
                .iter()
                .filter(|(_, owned)| *owned)
                .map(move |(t, _)| (*t, name.as_str()))
        })
        .fold(BTreeMap::new(), |mut m, (t, n)| {
            m.entry(t).or_insert_with(BTreeSet::new).insert(n);
            m
        });
    let mut settled = heal;
    for t in &live {
        let owners = final_owners.get(t);
        for (at, by, _) in scrapes.get(t).into_iter().flatten() {
            if *at > heal && !owners.is_some_and(|o| o.contains(by)) {
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
