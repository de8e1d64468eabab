//! Scrape phase: when within each interval a target is scraped.
//!
//! # The pinned definition
//!
//! Replica `rank` of a target with hash `target_hash` (see [`crate::ring`]) scrapes at
//! `offset` milliseconds past every multiple of the interval, counted from the Unix epoch:
//!
//! `offset_ms = xxh3_64(target_hash.to_le_bytes() ‖ (rank as u64).to_le_bytes(), HASH_SEED)
//! mod interval_ms`
//!
//! (16 input bytes, both numbers little-endian, seed [`HASH_SEED`]; an interval of 0 ms gives
//! offset 0). The offset depends on the target and the rank only, never on the member, so a
//! target keeps its phase when it changes owner and two replicas of one target do not hit it
//! at the same instant.
//!
//! Test vectors (asserted in `tests::pinned_test_vectors`, checked against the Python
//! `xxhash` package), with `target_hash = key_hash(b"job\0up") = 0x1847_342a_2485_4d4e`:
//! - `phase_hash(0, 0) = 0x52af_7cce_83c0_cb56`
//! - `phase_hash(target_hash, 1) = 0x24b4_a2ca_cff4_b201`
//! - `offset(target_hash, rank 0, 15 s) = 9715 ms`; `offset(target_hash, rank 1, 15 s) = 7345 ms`

use std::time::Duration;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::ring::HASH_SEED;
use crate::time::{duration_ms, Timestamp};

/// The pinned phase hash of replica `rank` of a target, before the `mod interval`.
pub fn phase_hash(target_hash: u64, rank: usize) -> u64 {
    let mut input = [0u8; 16];
    input[..8].copy_from_slice(&target_hash.to_le_bytes());
    input[8..].copy_from_slice(&(rank as u64).to_le_bytes());
    xxh3_64_with_seed(&input, HASH_SEED)
}

/// The offset past each interval boundary at which replica `rank` of a target scrapes:
/// `phase_hash(target hash, rank) mod interval_ms`, pinned like the ring.
pub fn offset(target_hash: u64, rank: usize, interval: Duration) -> Duration {
    let interval_ms = duration_ms(interval) as u64;
    if interval_ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(phase_hash(target_hash, rank) % interval_ms)
}

/// The first scrape time at or after `now` for a target with this `offset` and `interval`:
/// the smallest `t ≥ now` with `t ≡ offset (mod interval)` in ms since the epoch. An interval
/// of 0 gives `now`; an offset of an interval or more counts modulo the interval.
///
/// Saturates at `Timestamp(i64::MAX)` if the next slot lies beyond it.
pub fn next_at(now: Timestamp, interval: Duration, offset: Duration) -> Timestamp {
    let interval_ms = i128::from(duration_ms(interval));
    if interval_ms == 0 {
        return now;
    }
    let offset_ms = i128::from(duration_ms(offset)) % interval_ms;
    let now_ms = i128::from(now.0);
    // rem_euclid: times before the epoch still land on the same grid.
    let ahead_ms = (offset_ms - now_ms.rem_euclid(interval_ms)).rem_euclid(interval_ms);
    Timestamp(i64::try_from(now_ms + ahead_ms).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::key_hash;

    const S10: Duration = Duration::from_secs(10);

    #[test]
    fn pinned_test_vectors() {
        // Changing any of these moves every target's phase in a mixed-version fleet.
        assert_eq!(phase_hash(0, 0), 0x52af_7cce_83c0_cb56);
        assert_eq!(phase_hash(key_hash(b"job\0up"), 1), 0x24b4_a2ca_cff4_b201);
        assert_eq!(
            offset(key_hash(b"job\0up"), 0, Duration::from_secs(15)),
            Duration::from_millis(9_715)
        );
        assert_eq!(
            offset(key_hash(b"job\0up"), 1, Duration::from_secs(15)),
            Duration::from_millis(7_345)
        );
    }

    #[test]
    fn phase_input_is_target_then_rank_little_endian() {
        let bytes = [8, 7, 6, 5, 4, 3, 2, 1, 3, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            phase_hash(0x0102_0304_0506_0708, 3),
            xxh3_64_with_seed(&bytes, HASH_SEED)
        );
    }

    #[test]
    fn offset_is_below_the_interval_and_depends_on_rank() {
        let mut differs = 0;
        for t in 0..1000u64 {
            let h = key_hash(&t.to_le_bytes());
            let a = offset(h, 0, S10);
            let b = offset(h, 1, S10);
            assert!(a < S10 && b < S10);
            assert_eq!(a.subsec_nanos() % 1_000_000, 0, "whole milliseconds");
            differs += usize::from(a != b);
        }
        // Two ranks collide with probability 1/10000 per target.
        assert!(
            differs >= 990,
            "ranks share a phase too often: {differs}/1000 differ"
        );
    }

    #[test]
    fn offset_of_zero_interval_is_zero() {
        assert_eq!(offset(123, 0, Duration::ZERO), Duration::ZERO);
        // Sub-millisecond intervals are 0 ms on the millisecond grid.
        assert_eq!(offset(123, 0, Duration::from_micros(900)), Duration::ZERO);
    }

    #[test]
    fn offsets_spread_over_the_interval() {
        // 10k targets into 10 one-second buckets of a 10 s interval: each near 1000.
        let mut buckets = [0usize; 10];
        for t in 0..10_000u64 {
            let ms = offset(key_hash(&t.to_le_bytes()), 0, S10).as_millis() as usize;
            buckets[ms / 1000] += 1;
        }
        assert!(
            buckets.iter().all(|&b| (850..=1150).contains(&b)),
            "{buckets:?}"
        );
    }

    #[test]
    fn next_at_is_now_when_on_the_slot() {
        assert_eq!(
            next_at(Timestamp(20_000), S10, Duration::ZERO),
            Timestamp(20_000)
        );
        assert_eq!(
            next_at(Timestamp(23_456), S10, Duration::from_millis(3_456)),
            Timestamp(23_456)
        );
    }

    #[test]
    fn next_at_moves_to_the_slot_in_this_or_the_next_interval() {
        let off = Duration::from_millis(3_000);
        assert_eq!(next_at(Timestamp(20_000), S10, off), Timestamp(23_000));
        assert_eq!(next_at(Timestamp(22_999), S10, off), Timestamp(23_000));
        assert_eq!(next_at(Timestamp(23_001), S10, off), Timestamp(33_000));
        assert_eq!(next_at(Timestamp(29_999), S10, off), Timestamp(33_000));
        assert_eq!(
            next_at(Timestamp(0), S10, Duration::from_millis(9_999)),
            Timestamp(9_999)
        );
        assert_eq!(
            next_at(Timestamp(1), S10, Duration::ZERO),
            Timestamp(10_000)
        );
    }

    #[test]
    fn next_at_with_zero_interval_is_now() {
        assert_eq!(
            next_at(Timestamp(12_345), Duration::ZERO, Duration::from_millis(7)),
            Timestamp(12_345)
        );
    }

    #[test]
    fn next_at_takes_an_offset_beyond_the_interval_modulo() {
        assert_eq!(
            next_at(Timestamp(20_000), S10, Duration::from_millis(13_000)),
            Timestamp(23_000)
        );
    }

    #[test]
    fn next_at_before_the_epoch_stays_on_the_grid() {
        assert_eq!(
            next_at(Timestamp(-1), S10, Duration::from_millis(3_000)),
            Timestamp(3_000)
        );
        assert_eq!(
            next_at(Timestamp(-7_500), S10, Duration::from_millis(3_000)),
            Timestamp(-7_000)
        );
        assert_eq!(
            next_at(Timestamp(-10_000), S10, Duration::ZERO),
            Timestamp(-10_000)
        );
    }

    #[test]
    fn next_at_saturates_at_the_end_of_time() {
        assert_eq!(
            next_at(Timestamp(i64::MAX - 1), S10, Duration::from_millis(0)),
            Timestamp(i64::MAX)
        );
        // i64::MAX = 9223372036854775807 ≡ 5807 (mod 10 000): that slot is reachable exactly.
        assert_eq!(
            next_at(Timestamp(i64::MAX - 100), S10, Duration::from_millis(5_807)),
            Timestamp(i64::MAX)
        );
    }

    #[test]
    fn next_at_is_the_smallest_congruent_time_not_before_now() {
        // Exhaustive over a small grid: the brute-force definition.
        for interval_ms in [1u64, 2, 7, 1000] {
            let interval = Duration::from_millis(interval_ms);
            for offset_ms in 0..interval_ms.min(20) {
                for now in -50i64..50 {
                    let t = next_at(Timestamp(now), interval, Duration::from_millis(offset_ms));
                    let brute = (now..)
                        .find(|t| t.rem_euclid(interval_ms as i64) == offset_ms as i64)
                        .unwrap();
                    assert_eq!(
                        t,
                        Timestamp(brute),
                        "now={now} interval={interval_ms} offset={offset_ms}"
                    );
                }
            }
        }
    }
}
