//! (a) After convergence every live target has exactly `min(R, active members)` owners, and
//! in the last interval no target is scraped by more members than that.

use std::collections::{BTreeMap, BTreeSet};

use super::{Answers, Summary, Violation};
use crate::faults::State;
use crate::{World, EPOCH_MS};

/// Checks ownership at the end of the run.
pub fn check(world: &World, state: &State, end_ms: i64, answers: &Answers, live_members: &[String], scrapes: &BTreeMap<u32, Vec<(i64, &str, bool)>>, _summary: &mut Summary) -> Vec<Violation> {
    let cfg = &world.config;
    let mut out = Vec::new();
    let live = state.targets_at(end_ms, cfg.targets);
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
            out.push(Violation { invariant: "a-ownership", at_ms: end_ms - EPOCH_MS, detail: format!("target t{t} has {n} owners after convergence, want {want}") });
        }
    }
    // Black-box: what the exporters saw in the last interval.
    let from = end_ms - cfg.interval.as_millis() as i64;
    for t in &live {
        let by: BTreeSet<&str> = scrapes.get(t).map(|v| v.iter().filter(|(at, _, _)| *at >= from).map(|(_, s, _)| *s).collect()).unwrap_or_default();
        if by.len() > want {
            out.push(Violation { invariant: "a-ownership", at_ms: end_ms - EPOCH_MS, detail: format!("target t{t} scraped by {by:?} in the last interval, want {want} scraper(s)") });
        }
    }
    out.truncate(20);
    out
}
