//! Slot handoff, property-tested on the pool of `scrapepool_core::testing::handoff`: random
//! joins, drains (and crashes) at random times, every member notified of every change after
//! a delay of its own.
//!
//! - With graceful changes only and every delay below the handoff margin, every slot of
//!   every target holds exactly one scrape.
//! - With crashes too, delays far beyond the margin (up to the margin plus half the takeover
//!   window), and membership changes at least a margin and an interval apart, no two scrapes
//!   of one target carry the same timestamp. Closer changes, or longer delays, reach the
//!   failure cases ARCHITECTURE.md lists under "Membership and handoff".

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use scrapepool_core::node::{HANDOFF_MARGIN, SHIFT_TAKEOVER_SLOTS};
use scrapepool_core::testing::handoff::{Pool, INTERVAL, T0};
use scrapepool_core::NodeConfig;

fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x6861_6e64_6f66),
        failure_persistence: None,
        ..Config::default()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Join(u8),
    Drain(u8),
    Crash(u8),
    Wait(u16),
}

fn op(crashes: bool) -> impl Strategy<Value = Op> {
    let graceful = prop_oneof![
        3 => (0u8..5).prop_map(Op::Join),
        2 => (0u8..5).prop_map(Op::Drain),
        4 => (0u16..20_000).prop_map(Op::Wait),
    ];
    if crashes {
        prop_oneof![9 => graceful, 1 => (0u8..5).prop_map(Op::Crash)].boxed()
    } else {
        graceful.boxed()
    }
}

/// Runs `ops` on a pool whose notification delays cycle through `delays` (ms). Keeps at
/// least one active member: a drain or crash of the last one is skipped. With `spaced`, a
/// membership change comes at least a margin and an interval after the one before.
fn run(ops: &[Op], delays: Vec<u64>, spaced: bool) -> Pool {
    let mut i = 0usize;
    let mut pool = Pool::new(NodeConfig::for_tests("x"), move |_| {
        i += 1;
        delays[i % delays.len()] as i64
    });
    pool.join("m0");
    pool.run_until(T0 + 10_000);
    let gap = (HANDOFF_MARGIN + INTERVAL).as_millis() as i64 + 1;
    for op in ops {
        if spaced && !matches!(op, Op::Wait(_)) {
            let until = pool.now + gap;
            pool.run_until(until);
        }
        let active = pool.nodes.iter().filter(|(_, n)| !n.is_draining()).count();
        match op {
            Op::Join(m) => pool.join(&format!("m{m}")),
            Op::Drain(m) if active > 1 => pool.drain(&format!("m{m}")),
            Op::Crash(m) if active > 1 => pool.crash(&format!("m{m}")),
            Op::Wait(ms) => {
                let until = pool.now + i64::from(*ms);
                pool.run_until(until);
            }
            _ => {}
        }
    }
    let end = pool.now + 60_000;
    pool.run_until(end);
    pool
}

/// The takeover window: 8 intervals of the harness's job (shorter than the default window).
fn window_ms() -> u64 {
    SHIFT_TAKEOVER_SLOTS as u64 * INTERVAL.as_millis() as u64
}

fn margin_ms() -> u64 {
    HANDOFF_MARGIN.as_millis() as u64
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn graceful_changes_scrape_every_slot_exactly_once(
        ops in prop::collection::vec(op(false), 1..24),
        delays in prop::collection::vec(0..margin_ms() - 200, 1..8),
    ) {
        let pool = run(&ops, delays, true);
        let i = INTERVAL.as_millis() as i64;
        let wrong = pool.slots_not_once(T0 + 2 * i, pool.now - 60_000);
        prop_assert!(wrong.is_empty(), "slots not scraped once: {:?}", &wrong[..wrong.len().min(8)]);
    }

    #[test]
    fn no_two_scrapes_of_a_target_share_a_timestamp(
        ops in prop::collection::vec(op(true), 1..24),
        delays in prop::collection::vec(0..margin_ms() + window_ms() / 2, 1..8),
    ) {
        let pool = run(&ops, delays, true);
        let same = pool.same_timestamps();
        prop_assert!(same.is_empty(), "{:?}", &same[..same.len().min(4)]);
        prop_assert!(pool.scrapes.len() > 10);
    }
}
