//! Invariant checkers, one module each. They read the trace and the fault log after a run,
//! through [`Run`], so each can be fed a hand-made trace in its tests.
//!
//! Every checker judges both ways: *soundness* (nothing happened that must not: a marker
//! without a reason, a sample counted delivered that the broker never acknowledged, a target
//! with too many owners) and *completeness* (everything happened that must: every removed
//! target's series end, every scrape's records reach the sink, every live target is scraped
//! by exactly its owners at the end).

pub mod delivery;
pub mod gaps;
pub mod movement;
pub mod ownership;
pub mod slots;
pub mod spool;
pub mod staleness;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use scrapepool_core::labels::Labels;
use scrapepool_core::targets::TargetKey;

use crate::faults::{Fault, State};
use crate::trace::Seen;
use crate::SimConfig;

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant (`a-ownership`, `a-convergence`, `b-gaps`, `c-delivery`,
    /// `d-staleness`, `e-movement`, `g-timestamps`, `g-slots`, `h-spool`; `f-determinism` is judged in
    /// `sim/tests`).
    pub invariant: &'static str,
    /// Simulated time, ms since the run began (-1: not tied to one moment).
    pub at_ms: i64,
    /// What exactly.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {:.1}s: {}",
            self.invariant,
            self.at_ms as f64 / 1000.0,
            self.detail
        )
    }
}

/// Figures of one run, for the summary table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Share of (target, interval) slots after the warm-up with at least one scrape, in %.
    pub coverage_pct: f64,
    /// Share of scrapes beyond one per target and interval, in %.
    pub duplicate_pct: f64,
    /// Share of the slots judged by the slot checker that hold exactly one scrape, in %.
    pub slots_exact_pct: f64,
    /// Longest gap between two scrapes of one target, ms.
    pub max_gap_ms: i64,
    /// Most targets that changed owner on one membership change, and the bound it was held to.
    pub moved_max: (usize, usize),
    /// Time from the heal to the last ownership change, ms.
    pub convergence_ms: i64,
    /// Samples acknowledged by the Kafka model.
    pub samples_delivered: u64,
    /// Samples counted as not delivered.
    pub samples_not_delivered: u64,
    /// Samples the scrapers' spools took in (0 without a spool).
    pub samples_spilled: u64,
    /// Of those, samples that reached the bus from a later process on the same host (spilled,
    /// then a crash or a leave, then replayed after the restart).
    pub samples_restored: u64,
    /// Scrapes the exporters answered.
    pub scrapes: usize,
}

/// What the nodes alive at the end said they scrape: name, then each target (by number) and
/// whether it owns it (else it is handing it off).
pub type Owned = [(String, Vec<(u32, bool)>)];

/// Everything the checkers read about one run.
pub struct Run<'a> {
    /// The run's settings.
    pub config: &'a SimConfig,
    /// Every fault injected, with when.
    pub faults: &'a State,
    /// The trace, in order.
    pub trace: &'a [(i64, Seen)],
    /// When the run ended (ms since the epoch).
    pub end_ms: i64,
    /// The nodes' own views at the end.
    pub owned: &'a Owned,
    /// The members registered in ZooKeeper at the end.
    pub live_members: &'a [String],
}

/// Per target: every exporter answer `(when, scraper, 200?)`, in order.
pub type Scrapes<'a> = BTreeMap<u32, Vec<(i64, &'a str, bool)>>;

impl Run<'_> {
    /// The exporters' answers by target.
    pub fn scrapes(&self) -> Scrapes<'_> {
        let mut scrapes: Scrapes<'_> = BTreeMap::new();
        for (at, seen) in self.trace {
            if let Seen::Scrape {
                target,
                scraper,
                ok,
            } = seen
            {
                scrapes
                    .entry(*target)
                    .or_default()
                    .push((*at, scraper.as_str(), *ok));
            }
        }
        scrapes
    }

    /// The scrape timeout of the job the sim writes.
    pub fn timeout_ms(&self) -> i64 {
        (self.config.interval.as_millis() as i64 / 3).max(1000)
    }
}

/// Runs every checker.
pub fn check_all(run: &Run<'_>) -> (Vec<Violation>, Summary) {
    let scrapes = run.scrapes();
    let mut summary = Summary {
        scrapes: scrapes.values().map(Vec::len).sum(),
        ..Summary::default()
    };
    let mut violations = Vec::new();
    violations.extend(ownership::check(run, &scrapes, &mut summary));
    violations.extend(gaps::check(run, &scrapes, &mut summary));
    violations.extend(delivery::check(run, &mut summary));
    violations.extend(staleness::check(run, &scrapes));
    violations.extend(movement::check(run, &mut summary));
    violations.extend(slots::check(run, &mut summary));
    violations.extend(spool::check(run, &mut summary));
    (violations, summary)
}

/// The key hash of target `t`, as the nodes compute it (the resolved URL and labels).
pub fn target_key(config: &SimConfig, t: u32) -> u64 {
    let labels = Labels::from_pairs([("instance", format!("t{t}")), ("job", "sim".to_string())]);
    TargetKey::new(
        "sim",
        &labels,
        &format!(
            "http://exp-{}:{}/t/{t}",
            t % config.exporters,
            crate::exporter::PORT
        ),
    )
    .hash()
}

/// The active member sets the pool went through, from the fault log: the first at the start,
/// then one after every crash, leave, join or restart (repeats included).
pub fn member_sets(config: &SimConfig, faults: &State) -> Vec<(i64, BTreeSet<String>)> {
    let mut active: BTreeSet<String> = (0..config.scrapers).map(|i| format!("s{i}")).collect();
    let mut next = config.scrapers;
    let mut sets = vec![(crate::EPOCH_MS, active.clone())];
    for (at, f) in &faults.log {
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
        sets.push((*at, active.clone()));
    }
    sets
}

/// Test helpers: a small config and trace builders.
#[cfg(test)]
pub(crate) mod testing {
    use std::time::Duration;

    use super::*;

    /// 3 scrapers, 6 targets on 2 exporters, 10 minutes, 15 s interval.
    pub(crate) fn config() -> SimConfig {
        SimConfig {
            scrapers: 3,
            targets: 6,
            exporters: 2,
            duration: Duration::from_secs(600),
            chaos: Duration::from_secs(300),
            ..SimConfig::default()
        }
    }

    /// Simulated second `s` as trace time.
    pub(crate) fn at(s: f64) -> i64 {
        crate::EPOCH_MS + (s * 1000.0) as i64
    }

    pub(crate) fn scrape(s: f64, target: u32, scraper: &str, ok: bool) -> (i64, Seen) {
        (
            at(s),
            Seen::Scrape {
                target,
                scraper: scraper.into(),
                ok,
            },
        )
    }

    /// The owner of each target among `members` (R = 1).
    pub(crate) fn owner(config: &SimConfig, members: &[&str], t: u32) -> String {
        scrapepool_core::ring::Ring::new(members.iter().copied(), 1).owners(target_key(config, t))
            [0]
        .to_string()
    }
}
