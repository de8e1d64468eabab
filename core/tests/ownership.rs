//! Property tests for ownership: every property that ARCHITECTURE.md ("Ownership and
//! hashing") lists for rendezvous hashing.
//!
//! The movement and balance bounds are statistical (they hold for almost every member set,
//! not for every one), so every proptest here runs from a fixed RNG seed: CI sees the same
//! cases every run. How much headroom the bounds have over random member sets is measured by
//! `cargo run --release -p scrapepool-core --example ring_headroom` (numbers in its doc).
//! In short, over 1000 random member sets per cell: the movement ratio / `min(1, R/N)` has
//! mean 1.000 and stays inside [0.9, 1.1] for every N ≤ 10 (worst: R=1, N=10, max 1.099,
//! min 0.909 — the bound is ~3.3 σ there), but leaves it for N ≥ 12 with R = 1 (0.3 % of sets
//! at N=12, 2.5 % at N=20); busiest/mean on 10 members has mean 1.049 and exceeds 1.1 in
//! 0.5 % of member sets for R = 1 (max 1.138), never for R = 2, 3 (max 1.075, 1.066). The
//! proptests therefore draw N ≤ 10 and use a fixed seed: the bounds are ARCHITECTURE.md's, and
//! they are statistical, not guaranteed for every member set.
//!
//! # Movement, defined
//!
//! Take two rings over the same 10 000 targets whose member sets differ by one member: `A`
//! with `N - 1` members and `B = A ∪ {x}` with `N`. A target *moved* if its owner set (as a
//! set, ignoring ranks) differs between the rings. The movement ratio is
//! `moved targets / targets`, compared with `min(1, R/N)` where `N` is the larger member count.
//!
//! What is expected: a target's owners in `B` are its top `R` of `N` scores. On a **join**
//! (`A → B`) its owner set changes exactly when `x` lands in the top `R` of `N` — and then
//! `x` replaces the `R`-th owner of `A` and nothing else changes. On a **leave** (`B → A`) it
//! changes exactly when `x` was in the top `R` — and then `A`'s `R`-th best enters. Scores
//! are independent and uniform, so both happen with probability `min(1, R/N)`, and the two
//! moved sets are the same targets. The test checks that exact structure (which has no
//! statistics in it) and that the ratio is within 10 % of `min(1, R/N)`.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use scrapepool_core::member::{MemberRecord, MemberState};
use scrapepool_core::ring::{key_hash, Ownership, Ring};

const TARGETS: usize = 10_000;

/// Deterministic config: the statistical bounds must not flake in CI.
fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x5eed_0f0e_1e1e),
        failure_persistence: None,
        ..Config::default()
    }
}

/// `n` distinct pseudo-random target hashes derived from `seed` (target keys are hashed with
/// the pinned key hash, as the real key bytes would be).
fn targets(seed: u64, n: usize) -> Vec<u64> {
    (0..n as u64)
        .map(|i| key_hash(format!("job-{seed}\0instance-{i}").as_bytes()))
        .collect()
}

fn member_id() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9.-]{0,20}"
}

fn members(range: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set(member_id(), range).prop_map(|s| s.into_iter().collect())
}

fn ring_of(ids: &[String], r: usize) -> Ring {
    Ring::new(ids.iter().map(String::as_str), r)
}

fn sorted<'a>(owners: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = owners.collect();
    v.sort_unstable();
    v
}

proptest! {
    #![proptest_config(config(256))]

    /// Every target has exactly `min(R, active members)` distinct owners, all members.
    #[test]
    fn every_target_has_min_r_n_distinct_owners(ids in members(0..=12), r in 1usize..=6, seed: u64) {
        let ring = ring_of(&ids, r);
        let expected = r.min(ids.len());
        for h in targets(seed, 300) {
            let owners = ring.owners(h);
            prop_assert_eq!(owners.len(), expected);
            let distinct = sorted(owners.iter().copied());
            prop_assert!(distinct.windows(2).all(|w| w[0] != w[1]), "duplicate owner: {:?}", owners);
            prop_assert!(owners.iter().all(|o| ids.iter().any(|m| m == o)));
        }
    }

    /// The owners depend neither on the order members were given nor on repetitions, and a
    /// target's owners do not depend on which other targets were assigned with it.
    #[test]
    fn owners_do_not_depend_on_member_or_target_order(
        (ids, shuffled) in members(1..=12).prop_flat_map(|ids| {
            // Each member once or twice, in any order.
            let doubled: Vec<String> = ids.iter().chain(ids.iter().step_by(2)).cloned().collect();
            (Just(ids), Just(doubled).prop_shuffle())
        }),
        r in 1usize..=4,
        seed: u64,
        rotate in 0usize..300,
    ) {
        let a = ring_of(&ids, r);
        let b = ring_of(&shuffled, r);
        prop_assert_eq!(&a, &b);
        let hashes = targets(seed, 300);
        let mut rotated = hashes.clone();
        rotated.rotate_left(rotate);
        let (x, y) = (a.assign(&hashes), b.assign(&rotated));
        for (i, &h) in hashes.iter().enumerate() {
            let j = (i + hashes.len() - rotate) % hashes.len();
            prop_assert_eq!(x.owners(i).collect::<Vec<_>>(), y.owners(j).collect::<Vec<_>>());
            prop_assert_eq!(x.owners(i).collect::<Vec<_>>(), a.owners(h).to_vec());
        }
    }

    /// Draining members own nothing: the ring built from a snapshot equals the ring of its
    /// active members alone.
    #[test]
    fn draining_members_are_filtered_out(
        states in prop::collection::btree_map(member_id(), any::<bool>(), 0..=10),
        r in 1usize..=3,
        seed: u64,
    ) {
        let records: Vec<MemberRecord> = states.iter().map(|(id, &active)| MemberRecord {
            id: id.clone(),
            state: if active { MemberState::Active } else { MemberState::Draining },
            version: "0".into(),
            web: "127.0.0.1:0".into(),
            started_at: "1970-01-01T00:00:00Z".into(),
        }).collect();
        let active: Vec<String> = states.iter().filter(|(_, &a)| a).map(|(id, _)| id.clone()).collect();
        let ring = Ring::from_records(&records, r);
        prop_assert_eq!(&ring, &ring_of(&active, r));
        for h in targets(seed, 100) {
            for owner in ring.owners(h).iter() {
                prop_assert!(states[*owner], "draining member {} owns a target", owner);
            }
        }
    }
}

proptest! {
    // 10k targets per case: fewer cases, still from a fixed seed.
    #![proptest_config(config(48))]

    /// One member joins (`A → B`) or leaves (`B → A`): only targets whose top R of B contain
    /// the changed member move, each by exactly that member, and the moved fraction is within
    /// 10 % of `min(1, R/N)`, `N = |B|` (see the module doc for why).
    #[test]
    fn join_or_leave_moves_about_r_over_n(
        (b_ids, x) in members(2..=10).prop_flat_map(|ids| { let n = ids.len(); (Just(ids), 0..n) }),
        r in 1usize..=3,
        seed: u64,
    ) {
        let changed = b_ids[x].clone();
        let a_ids: Vec<String> = b_ids.iter().filter(|m| **m != changed).cloned().collect();
        let n = b_ids.len();
        let hashes = targets(seed, TARGETS);
        let (ring_a, ring_b) = (ring_of(&a_ids, r), ring_of(&b_ids, r));
        let (a, b) = (ring_a.assign(&hashes), ring_b.assign(&hashes));

        let join = a.moved(&b);
        let leave = b.moved(&a);
        prop_assert_eq!(&join, &leave, "a join and the reverse leave move the same targets");
        for i in 0..hashes.len() {
            let before = sorted(a.owners(i));
            let after = sorted(b.owners(i));
            let x_owns = after.contains(&changed.as_str());
            prop_assert_eq!(join.binary_search(&i).is_ok(), x_owns);
            if x_owns {
                // Exactly the changed member came in, at most one old owner went out.
                let kept = before.iter().filter(|m| after.contains(m)).count();
                prop_assert!(kept + 1 == after.len(), "target {}: {:?} -> {:?}", i, before, after);
            } else {
                prop_assert_eq!(before, after);
            }
        }

        let expected = (r as f64 / n as f64).min(1.0);
        let ratio = join.len() as f64 / hashes.len() as f64;
        prop_assert!(ratio <= 1.1 * expected, "moved {ratio:.4} > 1.1 × {expected:.4} (N={n}, R={r})");
        prop_assert!(ratio >= 0.9 * expected, "moved {ratio:.4} < 0.9 × {expected:.4} (N={n}, R={r})");
    }

    /// With 10k targets on 10 members the busiest member owns at most 1.1 × the mean
    /// (`R · targets / members`), for every replication factor up to 3.
    #[test]
    fn busiest_member_is_within_ten_percent_of_the_mean(ids in members(10..=10), r in 1usize..=3, seed: u64) {
        let ring = ring_of(&ids, r);
        let load = ring.assign(&targets(seed, TARGETS)).load();
        prop_assert_eq!(load.iter().sum::<usize>(), r * TARGETS);
        let mean = (r * TARGETS) as f64 / ids.len() as f64;
        let busiest = *load.iter().max().unwrap() as f64;
        prop_assert!(busiest <= 1.1 * mean, "busiest {busiest} > 1.1 × mean {mean} (R={r}): {load:?}");
    }
}

/// One step of membership: a join or a leave of one member of a small pool of ids (so that
/// joins of members already in, leaves of members not in, and rejoins all happen).
#[derive(Clone, Debug)]
enum Step {
    Join(usize),
    Leave(usize),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            (0usize..12).prop_map(Step::Join),
            (0usize..12).prop_map(Step::Leave),
        ],
        0..40,
    )
}

proptest! {
    #![proptest_config(config(256))]

    /// Incremental ownership equals the full computation after every join and leave of any
    /// sequence, for every replication factor (also above the member count), and each update
    /// reports exactly the targets whose ranked owner list changed.
    #[test]
    fn incremental_ownership_equals_the_full_computation(
        initial in prop::collection::btree_set(0usize..12, 0..6),
        steps in steps(),
        r in 1usize..=5,
        seed: u64,
    ) {
        let name = |i: usize| format!("scraper-{i}");
        let hashes = targets(seed, 300);
        let mut current: std::collections::BTreeSet<usize> = initial;
        let ring = Ring::new(current.iter().map(|&i| name(i)).collect::<Vec<_>>().iter().map(String::as_str), r);
        let mut ownership = Ownership::new(&ring, &hashes);
        let mut previous = ring;
        for step in steps {
            let changed = match step {
                Step::Join(i) => {
                    current.insert(i);
                    ownership.join(&name(i))
                }
                Step::Leave(i) => {
                    current.remove(&i);
                    ownership.leave(&name(i))
                }
            };
            let ids: Vec<String> = current.iter().map(|&i| name(i)).collect();
            let ring = Ring::new(ids.iter().map(String::as_str), r);
            let full = ring.assign(&hashes);
            prop_assert_eq!(ownership.owner_count(), ring.owner_count());
            prop_assert!(ownership.members().eq(ring.members()));
            for i in 0..hashes.len() {
                let got: Vec<&str> = ownership.owners(i).collect();
                let want: Vec<&str> = full.owners(i).collect();
                prop_assert_eq!(&got, &want, "target {} after {:?}", i, step);
                for m in ring.members() {
                    prop_assert_eq!(ownership.rank_of(i, m), full.rank_of(i, m));
                }
            }
            prop_assert_eq!(changed, previous.assign(&hashes).reranked(&full), "after {:?}", step);
            previous = ring;
        }
    }
}
