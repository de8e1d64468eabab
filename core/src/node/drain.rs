//! Draining: on shutdown the node marks itself `draining`; once ZooKeeper shows that record
//! it hands every target off at the target's handoff slot (from the record's time), then,
//! past the last slot (or after the drain grace if the record never shows), deregisters and
//! exits.

use std::time::Duration;

use super::*;

impl Node {
    pub(super) fn on_shutdown(&mut self, now: Timestamp) {
        if self.drain_until.is_some() {
            return;
        }
        let grace = self.config.drain_grace.unwrap_or_else(|| {
            let longest = self
                .scraped
                .values()
                .map(|s| s.spec.interval)
                .max()
                .unwrap_or(Duration::ZERO);
            self.config.handoff_margin + longest + super::DRAIN_RECORD_WAIT
        });
        // Until ZooKeeper shows our `draining` record, nobody takes our targets: we scrape
        // on, at most for the drain grace.
        let until = now + grace;
        self.drain_until = Some(until);
        if self.registered {
            self.commands
                .push_back(Command::UpdateMember(self.record()));
        }
        self.rebuild_ring();
        self.reconcile(now, None, RebalanceCause::Drain);
        self.prev_ring = None;
        self.timers.insert((until, Wake::DrainEnd));
        // A snapshot already showing us draining (a record left from before) times the drain.
        self.time_drain(now);
    }

    /// The drain grace is over: forget every target and start no scrape from now on. Scrapes
    /// still out finish and are delivered (a drain loses no scraped interval): the node says
    /// `Exit` when the last one is back, or once their timeout (plus a second for processing)
    /// has passed, whichever comes first.
    pub(super) fn end_drain(&mut self, now: Timestamp) {
        if !self.finishing_drain {
            self.finishing_drain = true;
            let keys: Vec<TargetKey> = self.scraped.keys().cloned().collect();
            for key in keys {
                self.remove_scraped(now, &key, Orphan::Forget);
            }
            // Nobody writes them after us: the markers of targets that left discovery now.
            self.flush_endings(now);
            self.timers.clear();
            let longest = self.orphans.values().map(|(_, spec, _)| spec.timeout).max();
            if let Some(timeout) = longest {
                let deadline = now + timeout + Duration::from_secs(1);
                self.timers.insert((deadline, Wake::DrainEnd));
                return;
            }
        }
        self.exit_now();
    }

    /// A scrape came back while the drain finishes: exit if it was the last one out.
    pub(super) fn on_drain_scrape_back(&mut self) {
        if self.finishing_drain && self.orphans.is_empty() {
            self.exit_now();
        }
    }

    fn exit_now(&mut self) {
        self.orphans.clear();
        if self.registered {
            self.commands.push_back(Command::Deregister);
        }
        self.commands.push_back(Command::Exit);
        self.exited = true;
        self.timers.clear();
    }
}
