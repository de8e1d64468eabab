//! Rebalancing, property-tested: random sequences of operations driven through the same
//! interpreter as the `rebalance` fuzz target (`scrapepool_core::testing::rebalance`), which
//! checks the ownership invariants (ARCHITECTURE.md, "Ownership and hashing") after every
//! step and panics when one breaks.
//! Proptest shrinks a failing sequence to a short one; the panic message lists it.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngSeed};
use scrapepool_core::testing::{
    fuzz_rebalance, run_scenario, JobSpec, Operation, Outcome, Scenario,
};

/// Deterministic config: CI sees the same cases every run.
fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x7265_6261_6c61),
        failure_persistence: None,
        ..Config::default()
    }
}

fn job_spec() -> impl Strategy<Value = JobSpec> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<bool>(),
        any::<u8>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(interval, static_hosts, file_sd, team, other_path)| JobSpec {
                interval,
                static_hosts,
                file_sd,
                team,
                other_path,
            },
        )
}

fn operation() -> impl Strategy<Value = Operation> {
    let slot = 0u8..5;
    let job = 0u8..3;
    prop_oneof![
        4 => slot.clone().prop_map(Operation::Join),
        1 => slot.clone().prop_map(Operation::Leave),
        1 => slot.clone().prop_map(Operation::Drain),
        3 => (job.clone(), job_spec()).prop_map(|(j, s)| Operation::AddJob(j, s)),
        2 => (job.clone(), job_spec()).prop_map(|(j, s)| Operation::EditJob(j, s)),
        1 => job.clone().prop_map(Operation::BreakJob),
        1 => job.clone().prop_map(Operation::RemoveJob),
        2 => (job.clone(), any::<u8>()).prop_map(|(j, h)| Operation::AddTargets(j, h)),
        1 => (job.clone(), any::<u8>()).prop_map(|(j, h)| Operation::RemoveTargets(j, h)),
        1 => job.clone().prop_map(Operation::DiscoveryFailed),
        1 => slot.clone().prop_map(Operation::SessionLost),
        1 => slot.clone().prop_map(Operation::SessionExpired),
        2 => slot.clone().prop_map(Operation::SessionConnected),
        3 => (0u16..20_000).prop_map(Operation::Tick),
        2 => (slot.clone(), any::<u8>(), prop::bool::weighted(0.8)).prop_map(|(m, w, up)| Operation::ScrapeFinished(m, w, up)),
        1 => prop::bool::weighted(0.8).prop_map(Operation::AnswerAll),
        1 => Just(Operation::Settle),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        any::<u8>(),
        prop::option::of(any::<u16>()),
        prop::collection::vec(operation(), 1..48),
    )
        .prop_map(|(replication, handoff_margin_ms, operations)| Scenario {
            replication,
            handoff_margin_ms,
            operations,
        })
}

proptest! {
    #![proptest_config(config(192))]

    /// Structured scenarios: every invariant holds after every step.
    #[test]
    fn ownership_invariants_hold_after_every_operation(s in scenario()) {
        let outcome = run_scenario(&s);
        prop_assert_eq!(outcome.steps, s.operations.len() + 1);
    }

    /// Raw bytes through the fuzz target's own decoding: the same path libFuzzer takes.
    #[test]
    fn fuzz_body_holds_on_random_bytes(data in prop::collection::vec(any::<u8>(), 0..1024)) {
        let _ = fuzz_rebalance(&data);
    }
}

/// The random scenarios above are only worth something if they reach agreed states with
/// targets and moves; count what they exercised.
#[test]
fn random_scenarios_exercise_moves_and_removals() {
    let mut runner = proptest::test_runner::TestRunner::new(config(64));
    let mut total = Outcome::default();
    for _ in 0..64 {
        let s = scenario()
            .new_tree(&mut runner)
            .expect("a scenario")
            .current();
        let o = run_scenario(&s);
        total.agreed_steps += o.agreed_steps;
        total.moves += o.moves;
        total.removal_markers += o.removal_markers;
        total.scrapes_answered += o.scrapes_answered;
        total.targets_max = total.targets_max.max(o.targets_max);
        total.active_max = total.active_max.max(o.active_max);
    }
    println!("{total:?}");
    assert!(total.agreed_steps > 100, "{total:?}");
    assert!(total.moves > 10, "{total:?}");
    assert!(total.removal_markers > 0, "{total:?}");
    assert!(total.targets_max >= 8 && total.active_max >= 3, "{total:?}");
}

fn job(interval: u8, static_hosts: u8, file_sd: bool) -> JobSpec {
    JobSpec {
        interval,
        static_hosts,
        file_sd,
        team: 0,
        other_path: false,
    }
}

/// Three members, two jobs; one member drains and another dies: targets move and no marker
/// is written for them, and after settling the two left own everything.
#[test]
fn drain_and_death_move_targets_without_markers() {
    use Operation::*;
    let s = Scenario {
        replication: 1, // R = 2
        handoff_margin_ms: None,
        operations: vec![
            Join(0),
            Join(1),
            Join(2),
            AddJob(0, job(0, 0xff, false)),
            AddJob(1, job(2, 0x0f, true)),
            AddTargets(1, 0xff),
            Tick(5_000),
            AnswerAll(true),
            Tick(5_000),
            AnswerAll(true),
            Drain(1),
            Tick(3_000),
            AnswerAll(true),
            Leave(2),
            Settle,
            Join(3),
            Tick(2_000),
            AnswerAll(true),
        ],
    };
    let o = run_scenario(&s);
    assert_eq!(o.removal_markers, 0, "{o:?}");
    assert_eq!(o.targets_max, 8 + 4 + 8, "{o:?}");
    assert!(o.moves > 0, "{o:?}");
    assert!(o.agreed_steps >= 10, "{o:?}");
}

/// Targets that leave discovery or a removed job do get markers (and the checker accepts them).
#[test]
fn removed_targets_get_markers() {
    use Operation::*;
    let s = Scenario {
        replication: 0,
        handoff_margin_ms: Some(1_000),
        operations: vec![
            Join(0),
            Join(1),
            AddJob(0, job(0, 0x03, true)),
            AddTargets(0, 0x0f),
            Tick(3_000),
            AnswerAll(true),
            RemoveTargets(0, 0x03),
            RemoveJob(0),
        ],
    };
    let o = run_scenario(&s);
    // 6 targets, each with 2 body series and 5 synthetic ones.
    assert_eq!(o.removal_markers, 6 * 7, "{o:?}");
}

/// A target that comes back adopts its scrape still in flight: m2 scrapes h0 and the scrape
/// never returns; h0 moves to m1 and m2's handoff slot comes with the scrape still out (an
/// orphan); m1 drains and h0 comes back to m2, which must adopt the orphan rather than start
/// a second scrape of h0 beside it (a target never has two scrapes in flight).
#[test]
fn regression_target_coming_back_adopts_its_scrape_still_in_flight() {
    use Operation::*;
    let s = Scenario {
        replication: 114, // R = 1
        handoff_margin_ms: None,
        operations: vec![
            Join(2),
            AddJob(
                0,
                JobSpec {
                    interval: 0,
                    static_hosts: 1,
                    file_sd: false,
                    team: 61,
                    other_path: false,
                },
            ),
            Join(1),
            AddTargets(0, 0),
            Tick(1000),
            Drain(1),
            Tick(144),
        ],
    };
    let o = run_scenario(&s);
    assert_eq!(o.removal_markers, 0, "{o:?}");
}
