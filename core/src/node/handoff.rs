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
pub const TIMESTAMP_BAND_MS: i64 = SHIFT_TAKEOVER_MAX + SHIFT_DISCONNECTED_MS + 1;

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
    /// The takeover shift.
    pub(super) shift_ms: i64,
}

/// The takeover window and shift of a takeover whose first slot is `first` (on the grid of
/// `interval`): the window ends within [`SHIFT_TAKEOVER_SLOTS`] intervals, the shift is
/// `1 + (slot index mod SHIFT_TAKEOVER_SLOTS)`, plus [`crash_shift`] for a crash takeover
/// (`crash`: the `/members` child version it read).
fn takeover(
    first: Timestamp,
    interval: Duration,
    window: Duration,
    crash: Option<i32>,
) -> (Timestamp, i64) {
    let interval_ms = crate::time::duration_ms(interval).max(1);
    let window = window.min(interval * SHIFT_TAKEOVER_SLOTS as u32);
    let index = first.0.div_euclid(interval_ms);
    let shift = 1 + index.rem_euclid(SHIFT_TAKEOVER_SLOTS) + crash.map_or(0, crash_shift);
    (first + window, shift)
}

/// What a crash takeover adds to its shift, from the `/members` child version `cversion` it
/// read: `SHIFT_TAKEOVER_SLOTS × (1 + (cversion mod SHIFT_CRASH_CHANGES))`, so that its
/// shifts lie above every graceful one and differ from those of a takeover the gone member
/// made itself in the same interval (which read a lower version: see
/// [`SHIFT_CRASH_CHANGES`]).
pub fn crash_shift(cversion: i32) -> i64 {
    SHIFT_TAKEOVER_SLOTS * (1 + i64::from(cversion).rem_euclid(SHIFT_CRASH_CHANGES))
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
    /// members change, in a first view the ring of every other member (active or draining:
    /// we take ourselves for the newest member), else the current ring's.
    fn previous_owners(&self, hash: u64) -> Vec<String> {
        if self.first_view {
            // Any member of the snapshot but us may have held it: a draining one too.
            let me = self.config.id.as_str();
            let without = Ring::new(
                self.members
                    .members
                    .iter()
                    .map(|m| m.id.as_str())
                    .filter(|m| *m != me),
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

    /// The owners over time as the snapshot tells them: for each record time, in order, the
    /// ring of the members active then (a member from its record's creation on, a draining
    /// one until its update to `draining`). Built once per snapshot.
    pub(super) fn build_timeline(&mut self) {
        let mut times: Vec<Timestamp> = self
            .members
            .members
            .iter()
            .flat_map(|m| {
                let joined = self.members.joined_at_of(&m.id).unwrap_or_default();
                [joined, self.record_time(&m.id)]
            })
            .collect();
        times.sort();
        times.dedup();
        let members = &self.members.members;
        self.timeline = times
            .into_iter()
            .map(|at| {
                let active = members.iter().filter(|m| {
                    let joined = self.members.joined_at_of(&m.id).unwrap_or_default();
                    match m.state {
                        MemberState::Active => joined <= at,
                        MemberState::Draining => joined <= at && self.record_time(&m.id) > at,
                    }
                });
                let ring = Ring::new(
                    active.map(|m| m.id.as_str()),
                    self.config.replication_factor,
                );
                (at, ring)
            })
            .collect();
    }

    /// The time of the change that moved a target, as both sides compute it from the record
    /// times alone: the start of the last stretch of the timeline over which `member` owns
    /// the target (`owns`) or does not (`!owns`), so that a snapshot reflecting several
    /// changes at once still names the one that moved it.
    fn change_time(&self, hash: u64, member: &str, owns: bool) -> Timestamp {
        self.stretch(hash, member, owns).0
    }

    /// The start of that last stretch, and whether a step of the timeline comes before it
    /// (its owners, then, are the ones the change took the target from).
    fn stretch(&self, hash: u64, member: &str, owns: bool) -> (Timestamp, bool) {
        let mut start = None;
        let mut before = false;
        for (at, ring) in self.timeline.iter().rev() {
            if ring.owners(hash).contains(&member) != owns {
                before = true;
                break;
            }
            start = Some(*at);
        }
        (start.unwrap_or_default(), before && start.is_some())
    }

    /// How we start on a target we gained at `rank`.
    pub(super) fn gain(&self, now: Timestamp, hash: u64, rank: usize, interval: Duration) -> Gain {
        let offset = schedule::offset(hash, rank, interval);
        let me = self.config.id.as_str();
        let (start, taken) = self.stretch(hash, me, true);
        let pending = taken && self.handoff_slot(start, hash, rank, interval) >= now;
        let owners: Vec<&str> = self.ring.owners(hash).to_vec();
        let previous = self.previous_owners(hash);
        let old: Vec<&str> = previous
            .iter()
            .map(String::as_str)
            .filter(|m| !owners.contains(m))
            .collect();
        if pending {
            // The snapshot itself names the change that gives it to us and a member still in
            // it that held it before, who computes the same slot, still to come.
            return self.graceful_gain(now, start, hash, rank, interval);
        }
        if old.is_empty() {
            // Nobody lost it (a new target, or the pool had fewer members than owners).
            return Gain {
                first_at: schedule::next_at(now, interval, offset),
                shift_until: Timestamp(i64::MIN),
                shift_ms: 0,
            };
        }
        let present: Vec<&str> = old.iter().copied().filter(|m| self.is_present(m)).collect();
        if present.is_empty() {
            // Its owners are gone (a crash or an expiry, or a drain we learned of after the
            // drainer left): nobody to agree with, we start at once. One of them may still be
            // scraping, unaware: the shift.
            // The shift is that of the slot after now, in the crash range: a graceful
            // takeover the gone owner made itself has a lower shift, a crash takeover it made
            // in an earlier slot a different slot part, one in this interval a different
            // child version.
            let first_at = catch_up_at(now, interval, offset);
            let slot = schedule::next_at(now + Duration::from_millis(1), interval, offset);
            let (shift_until, shift_ms) = takeover(
                slot,
                interval,
                self.config.handoff_window,
                Some(self.members.cversion),
            );
            return Gain {
                first_at,
                shift_until,
                shift_ms,
            };
        }
        self.graceful_gain(now, start, hash, rank, interval)
    }

    /// A gain from a member still in the snapshot, by a change at `change`.
    fn graceful_gain(
        &self,
        now: Timestamp,
        change: Timestamp,
        hash: u64,
        rank: usize,
        interval: Duration,
    ) -> Gain {
        let offset = schedule::offset(hash, rank, interval);
        let h = self.handoff_slot(change, hash, rank, interval);
        let first_at = if h >= now {
            h
        } else {
            catch_up_at(now, interval, offset)
        };
        // The window and the shift are H's; for a catch-up after H, those of the first slot
        // after now, as for a crash takeover.
        let first = if h >= now {
            h
        } else {
            schedule::next_at(now + Duration::from_millis(1), interval, offset)
        };
        let (shift_until, shift_ms) = takeover(first, interval, self.config.handoff_window, None);
        Gain {
            first_at,
            shift_until,
            shift_ms,
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
        let change = self.change_time(hash, me, false);
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

    /// `key`, which we were handing off until `until`, is ours again: when the change that
    /// brought it back gives a later slot than `until`, the member we were handing it to
    /// scrapes the slots in between (it keeps it until then), and we resume at that slot
    /// with its takeover shift.
    pub(super) fn regain(&mut self, now: Timestamp, key: &TargetKey, until: Timestamp) {
        let Some(s) = self.scraped.get(key) else {
            return;
        };
        let g = self.gain(now, key.hash(), s.rank, s.spec.interval);
        if g.first_at <= until {
            return;
        }
        if let Some(s) = self.scraped.get_mut(key) {
            s.pause = Some((until, g.first_at));
            s.shift_until = g.shift_until;
            s.shift_ms = g.shift_ms;
        }
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
            // A target already handed off for an earlier change keeps that change's slot.
            let until = self.lose_at(now, s, key.hash()).min(old);
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
            shift += s.shift_ms;
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
    fn takeovers_whose_windows_overlap_get_different_shifts() {
        let w = Duration::from_secs(60);
        let (until, first) = takeover(Timestamp(20_000), S10, w, None);
        assert_eq!(until, Timestamp(80_000), "the window, within 8 intervals");
        for k in 1..SHIFT_TAKEOVER_SLOTS {
            let (_, later) = takeover(Timestamp(20_000 + k * 10_000), S10, w, None);
            assert_ne!(first, later, "{k} slots apart");
            assert!((1..=SHIFT_TAKEOVER_SLOTS).contains(&later));
        }
        // A long window is cut to 8 intervals: a takeover 8 slots later may reuse the shift.
        let (until, _) = takeover(Timestamp(20_000), S10, Duration::from_secs(600), None);
        assert_eq!(until, Timestamp(100_000));
    }

    #[test]
    fn crash_takeovers_lie_above_graceful_ones_and_differ_in_a_chain() {
        let w = Duration::from_secs(60);
        let slot = Timestamp(20_000);
        let graceful: Vec<i64> = (0..SHIFT_TAKEOVER_SLOTS)
            .map(|k| takeover(slot + S10 * k as u32, S10, w, None).1)
            .collect();
        // A chain of crash takeovers of one target in one interval: each reads a higher
        // child version than the one before (at least the gone member's leave between).
        let mut seen = Vec::new();
        for cversion in 3..3 + SHIFT_CRASH_CHANGES as i32 {
            let (_, shift) = takeover(slot, S10, w, Some(cversion));
            assert!(shift > SHIFT_TAKEOVER_SLOTS && shift <= SHIFT_TAKEOVER_MAX);
            assert!(!graceful.contains(&shift), "{shift} is a graceful shift");
            assert!(!seen.contains(&shift), "{shift} twice in one chain");
            seen.push(shift);
        }
        // Crash takeovers in different slots of one window differ in their slot part.
        let (_, a) = takeover(slot, S10, w, Some(5));
        let (_, b) = takeover(slot + S10, S10, w, Some(5 + SHIFT_CRASH_CHANGES as i32));
        assert_ne!(a, b);
        // Disconnected members stamp above every connected one.
        assert!(SHIFT_DISCONNECTED_MS > SHIFT_TAKEOVER_MAX);
    }

    #[test]
    fn a_catch_up_keeps_out_of_every_slots_band() {
        let off = Duration::from_millis(3_000);
        // Well inside an interval: at once.
        assert_eq!(catch_up_at(Timestamp(25_000), S10, off), Timestamp(25_000));
        // On a slot, or within the band after it: that slot.
        assert_eq!(catch_up_at(Timestamp(23_000), S10, off), Timestamp(23_000));
        let band = TIMESTAMP_BAND_MS;
        assert_eq!(
            catch_up_at(Timestamp(23_000 + band - 1), S10, off),
            Timestamp(23_000)
        );
        assert_eq!(
            catch_up_at(Timestamp(23_000 + band), S10, off),
            Timestamp(23_000 + band)
        );
        // Within the band before the next slot: the next slot.
        let band = TIMESTAMP_BAND_MS;
        assert_eq!(
            catch_up_at(Timestamp(33_000 - band), S10, off),
            Timestamp(33_000)
        );
        assert_eq!(
            catch_up_at(Timestamp(33_000 - band - 1), S10, off),
            Timestamp(33_000 - band - 1)
        );
    }
}
