//! (e) Each membership change moves about `R/N` of the targets, and only those it must.
//!
//! Judged on the member sets the pool really went through (every distinct active set of the
//! run, in order), with the ownership function the nodes use.
//! Soundness: a change moves at most `1.1 · R/N · T` targets plus three standard deviations
//! of the binomial spread (a pool of a few hundred targets is too small for the plain bound
//! to hold exactly), and a target moves only when it must: when a member leaves, no target
//! loses an owner that stays; when one joins, no target gains an owner other than it.
//! Completeness: in every set each member owns at least its share, `0.9 · R/N · T` less
//! four standard deviations — no member is left idle while others carry its targets.

use std::collections::BTreeSet;

use scrapepool_core::ring::Ring;

use super::{member_sets, target_key, Run, Summary, Violation};

/// Checks every change of the active member set.
pub fn check(run: &Run<'_>, summary: &mut Summary) -> Vec<Violation> {
    let cfg = run.config;
    let keys: Vec<u64> = (0..cfg.targets).map(|t| target_key(cfg, t)).collect();
    let sets: Vec<BTreeSet<String>> = member_sets(cfg, run.faults)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    judge(&keys, &sets, cfg.replication_factor, summary, |m, k| {
        Ring::new(m.iter().map(String::as_str), cfg.replication_factor)
            .owners(k)
            .iter()
            .map(|s| s.to_string())
            .collect()
    })
}

/// The judgement, over any ownership function `owners(members, key)`.
pub fn judge(
    keys: &[u64],
    sets: &[BTreeSet<String>],
    r: usize,
    summary: &mut Summary,
    owners: impl Fn(&BTreeSet<String>, u64) -> BTreeSet<String>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let t = keys.len() as f64;
    let mut balanced: Vec<&BTreeSet<String>> = Vec::new();
    let mut violation = |detail: String| {
        out.push(Violation {
            invariant: "e-movement",
            at_ms: -1,
            detail,
        })
    };
    let mut previous: Option<(&BTreeSet<String>, Vec<BTreeSet<String>>)> = None;
    for set in sets {
        if previous.as_ref().is_some_and(|(p, _)| *p == set) || set.is_empty() {
            continue;
        }
        let now: Vec<BTreeSet<String>> = keys.iter().map(|k| owners(set, *k)).collect();
        if !balanced.contains(&set) {
            balanced.push(set);
            let n = set.len() as f64;
            let p = (r as f64 / n).min(1.0);
            let floor = (0.9 * p * t - 4.0 * (t * p * (1.0 - p)).sqrt())
                .floor()
                .max(0.0) as usize;
            for m in set {
                let load = now.iter().filter(|o| o.contains(m)).count();
                if load < floor {
                    violation(format!(
                        "{m} owns {load} of {} targets in {set:?}, its share is at least {floor}",
                        keys.len()
                    ));
                }
            }
        }
        if let Some((before_set, before)) = &previous {
            let moved = before.iter().zip(&now).filter(|(a, b)| a != b).count();
            let n = before_set.len().max(set.len()) as f64;
            let p = (r as f64 / n).min(1.0);
            let bound = (1.1 * p * t + 3.0 * (t * p * (1.0 - p)).sqrt()).ceil() as usize;
            if moved > summary.moved_max.0 {
                summary.moved_max = (moved, bound);
            }
            if moved > bound {
                violation(format!(
                    "{moved} of {} targets moved from {before_set:?} to {set:?}, bound {bound}",
                    keys.len()
                ));
            }
            let left: BTreeSet<&String> = before_set.difference(set).collect();
            let joined: BTreeSet<&String> = set.difference(before_set).collect();
            // Losing an owner that stays is right only when a joiner takes its place;
            // gaining one that was there is right only when it replaces a leaver.
            let needless = before
                .iter()
                .zip(&now)
                .filter(|(a, b)| {
                    let lost_stayer = a.iter().any(|m| !b.contains(m) && !left.contains(m));
                    let gained_joiner = b.iter().any(|m| !a.contains(m) && joined.contains(m));
                    let gained_old = b.iter().any(|m| !a.contains(m) && !joined.contains(m));
                    let lost_leaver = a.iter().any(|m| !b.contains(m) && left.contains(m));
                    (lost_stayer && !gained_joiner) || (gained_old && !lost_leaver)
                })
                .count();
            if needless > 0 {
                violation(format!(
                    "{needless} targets moved between members that stayed, from {before_set:?} to {set:?}"
                ));
            }
        }
        previous = Some((set, now));
    }
    out.truncate(20);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ms: &[&str]) -> BTreeSet<String> {
        ms.iter().map(|s| s.to_string()).collect()
    }

    fn keys() -> Vec<u64> {
        (0..400u64)
            .map(|i| scrapepool_core::ring::key_hash(&i.to_be_bytes()))
            .collect()
    }

    fn sets() -> Vec<BTreeSet<String>> {
        vec![
            set(&["s0", "s1", "s2", "s3"]),
            set(&["s0", "s1", "s3"]),
            set(&["s0", "s1", "s3", "s4"]),
        ]
    }

    fn ring(m: &BTreeSet<String>, k: u64) -> BTreeSet<String> {
        Ring::new(m.iter().map(String::as_str), 1)
            .owners(k)
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn the_rings_ownership_passes() {
        let v = judge(&keys(), &sets(), 1, &mut Summary::default(), ring);
        assert_eq!(v, vec![]);
    }

    #[test]
    fn a_hash_that_reshuffles_everything_is_unsound() {
        // Salting each key with the member count moves nearly everything on every change.
        let v = judge(&keys(), &sets(), 1, &mut Summary::default(), |m, k| {
            ring(m, k ^ (m.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        });
        assert!(v.iter().any(|v| v.detail.contains("bound")), "{v:?}");
        assert!(
            v.iter()
                .any(|v| v.detail.contains("between members that stayed")),
            "{v:?}"
        );
    }

    #[test]
    fn a_member_left_without_a_share_is_incomplete() {
        // Modulo placement over the first three members only: the fourth owns nothing.
        let v = judge(&keys(), &sets(), 1, &mut Summary::default(), |m, k| {
            let ms: Vec<&String> = m.iter().take(3).collect();
            set(&[ms[(k % 3) as usize].as_str()])
        });
        assert!(
            v.iter().any(|v| v.detail.starts_with("s3 owns 0 of 400")),
            "{v:?}"
        );
    }
}
