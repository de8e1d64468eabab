//! Slot handoff (ARCHITECTURE.md, "Membership and handoff"): when a target changes hands,
//! the old and the new owner compute the same handoff slot `H` from the ZooKeeper times of
//! the change, the old owner scrapes every slot before `H` and the new one `H` and every
//! slot after; and the timestamp every scrape's samples carry.

use std::time::Duration;

use super::targets::Scraped;
use super::*;
use crate::schedule;

/// Sample timestamps of one slot lie in `[slot, slot + TIMESTAMP_BAND_MS)`: a scrape that is
/// not on a slot (a late new owner catching up) keeps out of every slot's band.
pub const TIMESTAMP_BAND_MS: i64 = SHIFT_TAKEOVER_MS + SHIFT_DISCONNECTED_MS + 1;

/// When a new owner that learned of its target after the handoff slot scrapes first, at
/// `now`: at once, except that within a band of a slot it takes that slot (the one just
/// passed: fired at once, stamped with the slot; the one about to come: when it comes), so
/// that its timestamp never falls into a slot's band.
pub fn catch_up_at(now: Timestamp, interval: Duration, offset: Duration) -> Timestamp {
    let next = schedule::next_at(now, interval, offset);
    if next == now {
        return now;
    }
    let prev = next - interval;
    if now.0 - prev.0 < TIMESTAMP_BAND_MS {
        prev
    } else if next.0 - now.0 <= TIMESTAMP_BAND_MS {
        next
    } else {
        now
    }
}

/// How we start scraping a target we gained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Gain {
    /// The first scrape: the handoff slot, or a catch-up when we learned late.
    pub(super) first_at: Timestamp,
    /// Slots before this carry the takeover shift.
    pub(super) shift_until: Timestamp,
}

impl Node {
    /// The time ZooKeeper gives `id`'s record's last change; the epoch (long past) when the
    /// snapshot does not say.
    fn record_time(&self, id: &str) -> Timestamp {
        self.members.changed_at_of(id).unwrap_or_default()
    }

    fn is_present(&self, id: &str) -> bool {
        self.members.members.iter().any(|m| m.id == id)
    }

    /// Our `draining` record's time, once ZooKeeper shows it.
    pub(super) fn own_drain_time(&self) -> Option<Timestamp> {
        let me = self.config.id.as_str();
        self.members
            .members
            .iter()
            .any(|m| m.id == me && m.state == MemberState::Draining)
            .then(|| self.record_time(me))
    }

    /// The owners of `hash` before the change being reconciled: the previous ring's during a
    /// members change, the ring without us in a first view, else the current ring's.
    fn previous_owners(&self, hash: u64) -> Vec<String> {
        if self.first_view {
            let me = self.config.id.as_str();
            let without = Ring::new(
                self.ring.members().filter(|m| *m != me),
                self.config.replication_factor,
            );
            return without.owners(hash).iter().map(|m| m.to_string()).collect();
        }
        let ring = self.prev_ring.as_ref().unwrap_or(&self.ring);
        ring.owners(hash).iter().map(|m| m.to_string()).collect()
    }

    /// The handoff slot for a change at `change`: the first slot of the target (at `rank`)
    /// at or after `change` plus the margin.
    pub(super) fn handoff_slot(
        &self,
        change: Timestamp,
        hash: u64,
        rank: usize,
        interval: Duration,
    ) -> Timestamp {
        schedule::next_at(
            change + self.config.handoff_margin,
            interval,
            schedule::offset(hash, rank, interval),
        )
    }

    /// The time of the change that moved a target, as both sides compute it: the latest
    /// record time among the target's owners now and `others` (the old owners for the new
    /// owner, ourselves for the old one). For R = 1 both sides take the same two members.
    fn change_time(&self, hash: u64, others: &[&str]) -> Timestamp {
        self.ring
            .owners(hash)
            .iter()
            .copied()
            .chain(others.iter().copied())
            .map(|m| self.record_time(m))
            .max()
            .unwrap_or_default()
    }

    /// How we start on a target we gained at `rank`.
    pub(super) fn gain(&self, now: Timestamp, hash: u64, rank: usize, interval: Duration) -> Gain {
        let offset = schedule::offset(hash, rank, interval);
        let owners: Vec<&str> = self.ring.owners(hash).to_vec();
        let previous = self.previous_owners(hash);
        let old: Vec<&str> = previous
            .iter()
            .map(String::as_str)
            .filter(|m| !owners.contains(m))
            .collect();
        if old.is_empty() {
            // Nobody lost it (a new target, or the pool had fewer members than owners).
            return Gain {
                first_at: schedule::next_at(now, interval, offset),
                shift_until: Timestamp(i64::MIN),
            };
        }
        let present: Vec<&str> = old.iter().copied().filter(|m| self.is_present(m)).collect();
        if present.is_empty() {
            // Its owners are gone without a drain (crash, expiry): nobody to agree with, we
            // start at once. One of them may still be scraping, unaware: the shift.
            let first_at = schedule::next_at(now, interval, offset);
            return Gain {
                first_at,
                shift_until: first_at + self.config.handoff_window,
            };
        }
        let h = self.handoff_slot(self.change_time(hash, &present), hash, rank, interval);
        let first_at = if h >= now {
            h
        } else {
            catch_up_at(now, interval, offset)
        };
        Gain {
            first_at,
            shift_until: first_at.max(h) + self.config.handoff_window,
        }
    }

    /// When we stop scraping a target we lost (we scrape its slots before that): its handoff
    /// slot, or `now` or earlier to stop at once.
    pub(super) fn lose_at(&self, now: Timestamp, s: &Scraped, hash: u64) -> Timestamp {
        if self.session == SessionState::Expired {
            // The others took our targets over when our record went.
            return now;
        }
        let me = self.config.id.as_str();
        if let Some(drain) = self.drain_until {
            if self.own_drain_time().is_none() {
                // Nobody moves our targets before ZooKeeper shows us draining.
                return drain;
            }
        }
        if !self.is_present(me) {
            return now;
        }
        let change = self.change_time(hash, &[me]);
        self.handoff_slot(change, hash, s.rank, s.spec.interval)
    }

    /// Hands `key` off (or stops it at once when its handoff slot has passed). Returns
    /// whether we were scraping it as an owner.
    pub(super) fn lose(&mut self, now: Timestamp, key: &TargetKey) -> bool {
        let Some(s) = self.scraped.get(key) else {
            return false;
        };
        if !matches!(s.role, Role::Owner { .. }) {
            return false;
        }
        let until = self.lose_at(now, s, key.hash());
        if until <= now {
            self.remove_scraped(now, key, targets::Orphan::Forget);
        } else if let Some(s) = self.scraped.get_mut(key) {
            s.role = Role::HandingOff { until };
            self.timers.insert((until, Wake::HandoffEnd(key.clone())));
        }
        true
    }

    /// Our `draining` record is in the snapshot: every target we still scrape is handed off
    /// at its slot, and the drain ends past the last one.
    pub(super) fn time_drain(&mut self, now: Timestamp) {
        if self.drain_timed || self.own_drain_time().is_none() {
            return;
        }
        self.drain_timed = true;
        let keys: Vec<TargetKey> = self.scraped.keys().cloned().collect();
        let mut end = now;
        for key in keys {
            let Some(s) = self.scraped.get(&key) else {
                continue;
            };
            let Role::HandingOff { until: old } = s.role else {
                continue;
            };
            let until = self.lose_at(now, s, key.hash());
            self.timers.remove(&(old, Wake::HandoffEnd(key.clone())));
            if until <= now {
                self.remove_scraped(now, &key, targets::Orphan::Forget);
                continue;
            }
            end = end.max(until);
            if let Some(s) = self.scraped.get_mut(&key) {
                s.role = Role::HandingOff { until };
            }
            self.timers.insert((until, Wake::HandoffEnd(key)));
        }
        if let Some(old) = self.drain_until.replace(end) {
            self.timers.remove(&(old, Wake::DrainEnd));
        }
        self.timers.insert((end, Wake::DrainEnd));
    }

    /// The timestamp of the samples of a scrape of `s` due at `due`.
    pub(super) fn sample_time(&self, s: &Scraped, due: Timestamp) -> Timestamp {
        let mut shift = 0;
        if due < s.shift_until {
            shift += SHIFT_TAKEOVER_MS;
        }
        if self.session != SessionState::Connected {
            shift += SHIFT_DISCONNECTED_MS;
        }
        Timestamp(due.0.saturating_add(shift))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S10: Duration = Duration::from_secs(10);

    #[test]
    fn a_catch_up_keeps_out_of_every_slots_band() {
        let off = Duration::from_millis(3_000);
        // Well inside an interval: at once.
        assert_eq!(catch_up_at(Timestamp(25_000), S10, off), Timestamp(25_000));
        // On a slot, or within the band after it: that slot.
        assert_eq!(catch_up_at(Timestamp(23_000), S10, off), Timestamp(23_000));
        assert_eq!(catch_up_at(Timestamp(23_003), S10, off), Timestamp(23_000));
        assert_eq!(catch_up_at(Timestamp(23_004), S10, off), Timestamp(23_004));
        // Within the band before the next slot: the next slot.
        assert_eq!(catch_up_at(Timestamp(32_996), S10, off), Timestamp(33_000));
        assert_eq!(catch_up_at(Timestamp(32_995), S10, off), Timestamp(32_995));
    }
}
