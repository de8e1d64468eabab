//! Scrape phase: when within each interval a target is scraped.
//!
//! OWNER: ring helper.

use std::time::Duration;

use crate::time::Timestamp;

/// The offset past each interval boundary at which replica `rank` of a target scrapes:
/// `hash(target hash, rank) mod interval`, pinned like the ring.
pub fn offset(target_hash: u64, rank: usize, interval: Duration) -> Duration {
    let _ = (target_hash, rank);
    let _ = interval;
    Duration::ZERO
}

/// The first scrape time at or after `now` for a target with this `offset` and `interval`.
pub fn next_at(now: Timestamp, interval: Duration, offset: Duration) -> Timestamp {
    let _ = (interval, offset);
    now
}
