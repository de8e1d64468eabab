//! (e) Each membership change moves at most about `R/N` of the targets.
//!
//! Movement is measured on the member sets the pool really went through (every distinct
//! active set of the run, in order), with the ownership function the nodes use. The bound is
//! DESIGN.md's `1.1 · R/N · T` plus three standard deviations of the binomial spread, since
//! a pool of a few hundred targets is too small for the 10k-target bound to hold exactly.

use std::collections::BTreeSet;

use scrapepool_core::ring::Ring;
use scrapepool_core::targets::TargetKey;

use super::{Summary, Violation};
use crate::faults::{Fault, State};
use crate::World;

/// Checks every change of the active member set.
pub fn check(world: &World, state: &State, summary: &mut Summary) -> Vec<Violation> {
    let cfg = &world.config;
    let r = cfg.replication_factor;
    // Keys of the initial targets, as the nodes compute them (the resolved URL and labels).
    let keys: Vec<u64> = (0..cfg.targets)
        .map(|t| {
            let labels = scrapepool_core::labels::Labels::from_pairs([
                ("instance", format!("t{t}")),
                ("job", "sim".to_string()),
            ]);
            TargetKey::new(
                "sim",
                &labels,
                &format!(
                    "http://exp-{}:{}/t/{t}",
                    t % cfg.exporters,
                    crate::exporter::PORT
                ),
            )
            .hash()
        })
        .collect();
    // The sequence of active sets: start, then every crash/leave/join/restart.
    let mut active: BTreeSet<String> = (0..cfg.scrapers).map(|i| format!("s{i}")).collect();
    let mut next = cfg.scrapers;
    let mut sets = vec![active.clone()];
    for (_, f) in &state.log {
        match f {
            Fault::Crash(h) | Fault::Leave(h) => {
                active.remove(h);
            }
            Fault::Restart(h) => {
                active.insert(h.clone());
            }
            Fault::Join => {
                active.insert(format!("s{next}"));
                next += 1;
            }
            _ => continue,
        }
        sets.push(active.clone());
    }
    let mut out = Vec::new();
    for w in sets.windows(2) {
        if w[0] == w[1] {
            continue;
        }
        let (a, b) = (
            Ring::new(w[0].iter().map(String::as_str), r),
            Ring::new(w[1].iter().map(String::as_str), r),
        );
        let moved = keys
            .iter()
            .filter(|k| a.owners(**k) != b.owners(**k))
            .count();
        let n = w[0].len().max(w[1].len()) as f64;
        let p = (r as f64 / n).min(1.0);
        let t = keys.len() as f64;
        let bound = (1.1 * p * t + 3.0 * (t * p * (1.0 - p)).sqrt()).ceil() as usize;
        if moved > summary.moved_max.0 {
            summary.moved_max = (moved, bound);
        }
        if moved > bound {
            out.push(Violation {
                invariant: "e-movement",
                at_ms: -1,
                detail: format!(
                    "{moved} of {} targets moved from {:?} to {:?}, bound {bound}",
                    keys.len(),
                    w[0],
                    w[1]
                ),
            });
        }
    }
    out
}
