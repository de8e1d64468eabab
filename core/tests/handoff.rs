//! Slot handoff handler tests: nodes of one pool (`scrapepool_core::testing::handoff`) fed
//! member changes with ZooKeeper times, each asserting the exact scrapes (slot, timestamp)
//! on both sides of a move (ARCHITECTURE.md, "Membership and handoff").

use scrapepool_core::node::{
    crash_shift, HANDOFF_MARGIN, SHIFT_DISCONNECTED_MS, SHIFT_TAKEOVER_SLOTS,
};
use scrapepool_core::ring::Ring;
use scrapepool_core::schedule;
use scrapepool_core::testing::handoff::{Pool, Scrape, INTERVAL, T0};
use scrapepool_core::{Event, NodeConfig, Timestamp};

const I: i64 = 5_000;

/// The handoff slot of `hash` for a change at `change` (ms since the epoch).
fn slot_h(hash: u64, change: i64) -> i64 {
    schedule::next_at(
        Timestamp(change) + HANDOFF_MARGIN,
        INTERVAL,
        schedule::offset(hash, 0, INTERVAL),
    )
    .0
}

/// The first slot of `hash` after `t`.
fn next_slot(hash: u64, t: i64) -> i64 {
    schedule::next_at(
        Timestamp(t + 1),
        INTERVAL,
        schedule::offset(hash, 0, INTERVAL),
    )
    .0
}

/// The takeover shift of a takeover at slot `h`.
fn shift(h: i64) -> i64 {
    1 + (h / I).rem_euclid(SHIFT_TAKEOVER_SLOTS)
}

/// A pool where `b`'s notifications take `b_ms` and everyone else's `other_ms`.
fn pool(b_ms: i64, other_ms: i64) -> Pool {
    Pool::new(NodeConfig::for_tests("x"), move |id| {
        if id == "b" {
            b_ms
        } else {
            other_ms
        }
    })
}

/// The targets (instance, hash) that `to` owns among `members` and `from` owned before.
fn moved(p: &Pool, from: &[&str], to: &[&str], new: &str) -> Vec<(String, u64)> {
    let mut seen: Vec<(String, u64)> = p
        .scrapes
        .iter()
        .map(|s| (s.instance.clone(), s.hash))
        .collect();
    seen.sort();
    seen.dedup();
    seen.into_iter()
        .filter(|(_, h)| {
            Ring::new(to.iter().copied(), 1).owners(*h)[0] == new
                && Ring::new(from.iter().copied(), 1).owners(*h)[0] != new
        })
        .collect()
}

fn by<'a>(p: &'a Pool, member: &str, instance: &str) -> Vec<&'a Scrape> {
    p.scrapes_of(instance)
        .into_iter()
        .filter(|s| s.member == member)
        .collect()
}

#[test]
fn a_join_the_old_owner_scrapes_up_to_the_slot_before_h_the_new_one_from_h() {
    let mut p = pool(100, 300);
    p.join("a");
    p.run_until(T0 + 20_000);
    p.join("b");
    let joined = p.now;
    p.run_until(T0 + 60_000);
    let moved = moved(&p, &["a"], &["a", "b"], "b");
    assert!(!moved.is_empty(), "the change moves targets");
    for (inst, hash) in &moved {
        let h = slot_h(*hash, joined);
        let a = by(&p, "a", inst);
        let b = by(&p, "b", inst);
        assert_eq!(
            a.last().unwrap().due,
            h - I,
            "{inst}: a's last is the slot before H"
        );
        assert!(
            a.iter().all(|s| s.sample_at == s.due),
            "a's are on the slot"
        );
        assert_eq!(b[0].due, h, "{inst}: b's first is H");
        assert_eq!(b[0].sample_at, h + shift(h), "the takeover shift");
    }
    assert_eq!(p.slots_not_once(T0 + I, T0 + 60_000 - I), vec![]);
    assert!(p.same_timestamps().is_empty());
}

#[test]
fn a_drain_hands_each_target_over_at_its_slot_and_leaves_past_the_last() {
    let mut p = pool(400, 200);
    p.join("a");
    p.join("b");
    p.run_until(T0 + 20_000);
    p.drain("a");
    let drained = p.now;
    assert!(
        p.nodes.contains_key("a"),
        "a scrapes on until ZooKeeper shows it draining"
    );
    p.run_until(T0 + 60_000);
    assert!(!p.nodes.contains_key("a"), "a left");
    let moved = moved(&p, &["a", "b"], &["b"], "b");
    assert!(!moved.is_empty(), "the change moves targets");
    for (inst, hash) in &moved {
        let h = slot_h(*hash, drained);
        assert_eq!(by(&p, "a", inst).last().unwrap().due, h - I, "{inst}");
        let b: Vec<&Scrape> = by(&p, "b", inst)
            .into_iter()
            .filter(|s| s.due >= drained)
            .collect();
        assert_eq!((b[0].due, b[0].sample_at), (h, h + shift(h)), "{inst}");
    }
    assert_eq!(p.slots_not_once(T0 + 10_000, T0 + 60_000 - I), vec![]);
    assert!(p.same_timestamps().is_empty());
}

#[test]
fn a_new_owner_that_learns_after_h_scrapes_at_once_and_the_old_one_stopped_at_h() {
    // b hears of a's drain 12 s late (after a has left); a reads its own record at once.
    let mut p = pool(12_000, 100);
    p.join("a");
    p.join("b");
    p.run_until(T0 + 20_000);
    p.drain("a");
    let drained = p.now;
    p.run_until(T0 + 60_000);
    let learned = drained + 12_000;
    let moved = moved(&p, &["a", "b"], &["b"], "b");
    assert!(!moved.is_empty(), "the drain moves targets");
    for (inst, hash) in moved {
        let h = slot_h(hash, drained);
        assert!(h < learned);
        assert_eq!(by(&p, "a", &inst).last().unwrap().due, h - I, "{inst}");
        let first = by(&p, "b", &inst)
            .into_iter()
            .find(|s| s.due >= drained)
            .unwrap()
            .clone();
        let catch_up = scrapepool_core::node::catch_up_at(
            Timestamp(learned),
            INTERVAL,
            schedule::offset(hash, 0, INTERVAL),
        )
        .0;
        assert_eq!(first.due, catch_up, "{inst}: at once (a late first scrape)");
        // a has left by then: no old owner in b's snapshot, a crash takeover's shift of the
        // slot after now (records: a and b created, a deleted: child version 3).
        assert!(!p.nodes.contains_key("a"));
        assert_eq!(
            first.sample_at,
            catch_up + shift(next_slot(hash, learned)) + crash_shift(3)
        );
    }
    assert!(p.same_timestamps().is_empty());
}

#[test]
fn an_old_owner_that_learns_after_h_stops_at_once_and_never_shares_a_timestamp() {
    let mut p = Pool::new(NodeConfig::for_tests("x"), |id| {
        if id == "a" {
            12_000
        } else {
            100
        }
    });
    p.join("a");
    p.run_until(T0 + 20_000);
    p.join("b");
    let joined = p.now;
    p.run_until(T0 + 60_000);
    let learned = joined + 12_000;
    let mut doubled = 0;
    for (inst, hash) in moved(&p, &["a"], &["a", "b"], "b") {
        let h = slot_h(hash, joined);
        let a = by(&p, "a", &inst);
        assert!(
            a.iter().all(|s| s.due <= learned),
            "{inst}: a stops once it knows"
        );
        assert_eq!(
            a.last().unwrap().due,
            Pool::slot_of(hash, learned),
            "{inst}"
        );
        let b = by(&p, "b", &inst);
        assert_eq!((b[0].due, b[0].sample_at), (h, h + shift(h)));
        doubled += a.iter().filter(|s| s.due >= h).count();
    }
    assert!(
        doubled > 0,
        "the late old owner scraped slots that were b's"
    );
    assert_eq!(p.same_timestamps(), Vec::<(&Scrape, &Scrape)>::new());
}

#[test]
fn a_crash_is_taken_over_at_once_with_the_takeover_shift() {
    let mut p = pool(100, 100);
    p.join("a");
    p.join("b");
    p.run_until(T0 + 20_000);
    p.crash("b");
    let crashed = p.now;
    p.run_until(T0 + 40_000);
    for (inst, hash) in moved(&p, &["a", "b"], &["a"], "a") {
        let first = by(&p, "a", &inst)
            .into_iter()
            .find(|s| s.due > crashed)
            .unwrap()
            .clone();
        let at_once = scrapepool_core::node::catch_up_at(
            Timestamp(crashed + 100),
            INTERVAL,
            schedule::offset(hash, 0, INTERVAL),
        )
        .0;
        let slot = next_slot(hash, crashed + 100);
        // Three records created and one deleted: the child version `a` reads is 3.
        assert_eq!(
            (first.due, first.sample_at),
            (at_once, at_once + shift(slot) + crash_shift(3)),
            "{inst}"
        );
    }
}

#[test]
fn a_chain_of_crash_takeovers_in_one_interval_stamps_each_scrape_apart() {
    // y crashes; one of x and z takes some of y's targets over and then, within the same
    // interval, its session expires while it scrapes on unaware; the last member takes them
    // over from it. Both scrape the next slot of those targets, each with a crash
    // takeover's shift of that slot.
    let mut p = pool(100, 100);
    for m in ["x", "y", "z"] {
        p.join(m);
    }
    p.run_until(T0 + 20_000);
    p.crash("y");
    let crashed = p.now;
    p.run_until(crashed + 200);
    let gained = |m: &str| moved(&p, &["x", "y", "z"], &["x", "z"], m);
    let (middle, last) = if gained("x").len() >= gained("z").len() {
        ("x", "z")
    } else {
        ("z", "x")
    };
    let chained: Vec<(String, u64)> = gained(middle)
        .into_iter()
        .filter(|(_, h)| next_slot(*h, crashed + 100) > crashed + 400)
        .collect();
    assert!(!chained.is_empty(), "the test needs a target moved twice");
    p.expire(middle);
    p.run_until(crashed + 20_000);
    let mut doubled = 0;
    for (inst, hash) in &chained {
        let slot = next_slot(*hash, crashed + 400);
        let on_slot = |m: &str| by(&p, m, inst).into_iter().find(|s| s.due == slot).cloned();
        if let (Some(a), Some(b)) = (on_slot(middle), on_slot(last)) {
            doubled += 1;
            assert_ne!(a.sample_at, b.sample_at, "{inst}: {a:?} {b:?}");
        }
    }
    assert!(
        doubled > 0,
        "the unaware member and the last one scraped the same slots"
    );
    assert_eq!(p.same_timestamps(), Vec::<(&Scrape, &Scrape)>::new());
}

#[test]
fn a_disconnected_member_stamps_its_scrapes_apart() {
    let mut p = pool(100, 100);
    p.join("a");
    p.run_until(T0 + 10_000);
    p.feed("a", Event::SessionDisconnected);
    let from = p.scrapes.len();
    p.run_until(T0 + 20_000);
    let after = &p.scrapes[from..];
    assert!(!after.is_empty());
    assert!(
        after
            .iter()
            .all(|s| s.sample_at == s.due + SHIFT_DISCONNECTED_MS),
        "{after:?}"
    );
}
