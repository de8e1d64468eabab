//! (f) One seed, one run: the same seed gives a byte-identical trace (its digest), twice.

use std::time::Duration;

use scrapepool_sim::{run, SimConfig};

fn small(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        targets: 60,
        duration: Duration::from_secs(6 * 60),
        chaos: Duration::from_secs(4 * 60),
        fault_every: Duration::from_secs(20),
        ..SimConfig::default()
    }
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in [7, 8] {
        let (a, b) = (run(small(seed)), run(small(seed)));
        assert!(
            a.trace.len() > 1000,
            "a meaningful run: {} entries",
            a.trace.len()
        );
        assert_eq!(
            a.digest,
            b.digest,
            "seed {seed} ran differently twice; reproduce with: {}",
            a.config.reproduce_command()
        );
        assert!(a.violations.is_empty(), "seed {seed}: {:?}", a.violations);
    }
}

#[test]
fn different_seeds_give_different_runs() {
    assert_ne!(run(small(1)).digest, run(small(2)).digest);
}

#[test]
fn graceful_changes_miss_no_interval() {
    let mut config = small(3);
    config.faults = scrapepool_sim::faults::Kinds::graceful();
    let outcome = run(config);
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert!(outcome.summary.coverage_pct > 99.0, "{:?}", outcome.summary);
}
