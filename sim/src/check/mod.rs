//! Invariant checkers, one module each. They read the trace and the fault log after a run.

pub mod delivery;
pub mod gaps;
pub mod movement;
pub mod ownership;
pub mod staleness;

use std::collections::BTreeMap;
use std::fmt;

use crate::faults::State;
use crate::trace::Seen;
use crate::World;

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant (`a-ownership`, `b-gaps`, `c-delivery`, `d-staleness`, `e-movement`, `f-determinism`).
    pub invariant: &'static str,
    /// Simulated time, ms since the run began.
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
    /// Scrapes the exporters answered.
    pub scrapes: usize,
}

/// What the run's surviving nodes said at the end: name, counters, targets (and whether owned).
pub type Answers = [(String, (u64, u64, u64, u64), Vec<(u32, bool)>)];

/// Runs every checker.
pub fn check_all(
    world: &World,
    state: &State,
    end_ms: i64,
    answers: &Answers,
    live_members: &[String],
) -> (Vec<Violation>, Summary) {
    let trace = world.trace.snapshot();
    let mut scrapes: BTreeMap<u32, Vec<(i64, &str, bool)>> = BTreeMap::new();
    for (at, seen) in &trace {
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
    let mut summary = Summary {
        scrapes: scrapes.values().map(Vec::len).sum(),
        ..Summary::default()
    };
    let mut violations = Vec::new();
    violations.extend(ownership::check(
        world,
        state,
        end_ms,
        answers,
        live_members,
        &scrapes,
        &mut summary,
    ));
    violations.extend(gaps::check(world, state, end_ms, &scrapes, &mut summary));
    violations.extend(delivery::check(&trace, answers, &mut summary));
    violations.extend(staleness::check(world, state, &trace, &scrapes));
    violations.extend(movement::check(world, state, &mut summary));
    (violations, summary)
}
