//! Session and membership: our member record, the ring of active members, and ownership
//! (`reconcile`: what we scrape follows what we own).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::targets::role_until;
use super::*;
use crate::ring::Ownership;

/// A target we newly own: key, job, its config, the target, our rank.
type NewTarget = (TargetKey, String, Arc<JobConfig>, Target, usize);

/// How [`Node::rebuild_ring`] changed the owners.
pub(super) enum RingChange {
    /// The ring is the same.
    Unchanged,
    /// Every job's owners were computed afresh.
    Recomputed,
    /// Per job, the indices of its active targets whose ranked owners changed, ascending
    /// (jobs without such targets left out).
    Moved(Vec<(String, Vec<usize>)>),
}

/// More member changes at once than this recompute each job's owners in full rather than one
/// join or leave at a time.
const OWNERSHIP_STEPS_MAX: usize = 8;

impl Node {
    pub(super) fn record(&self) -> MemberRecord {
        MemberRecord {
            id: self.config.id.clone(),
            state: if self.drain_until.is_some() {
                MemberState::Draining
            } else {
                MemberState::Active
            },
            version: self.config.version.clone(),
            web: self.config.web.clone(),
            started_at: self.config.started_at.clone(),
        }
    }

    pub(super) fn on_session_connected(&mut self, now: Timestamp) {
        let _ = now;
        self.session = SessionState::Connected;
        if !self.registered {
            self.registered = true;
            self.commands.push_back(Command::Register(self.record()));
        }
    }

    pub(super) fn on_session_expired(&mut self, now: Timestamp) {
        self.session = SessionState::Expired;
        self.registered = false;
        // A new session rebuilds its view: its first snapshots are taken whatever their
        // versions (a restored or re-created ensemble may number them lower).
        self.members_applied = false;
        self.jobs_applied = false;
        // Our ephemeral record is gone and the others have already taken our targets over:
        // drop ourselves from the view and stop scraping ours at once.
        self.rebuild_ring();
        self.reconcile(now, None, RebalanceCause::Session);
        self.prev_ring = None;
        self.first_view = true;
    }

    pub(super) fn on_members(&mut self, now: Timestamp, snapshot: MembersSnapshot) {
        if self.members_applied && snapshot.version < self.members.version {
            self.stats.stale_snapshots += 1;
            return;
        }
        self.members = snapshot;
        self.members_applied = true;
        self.build_timeline();
        match self.rebuild_ring() {
            RingChange::Unchanged => {}
            RingChange::Recomputed => self.reconcile(now, None, RebalanceCause::Members),
            RingChange::Moved(moved) => self.reconcile_moved(now, &moved),
        }
        self.prev_ring = None;
        self.end_first_view();
        if self.drain_until.is_some() {
            self.time_drain(now);
        }
    }

    /// A reconcile with both snapshots applied ends the first view of a session.
    pub(super) fn end_first_view(&mut self) {
        if self.members_applied && self.jobs_applied {
            self.first_view = false;
        }
    }

    /// Recomputes the ring from the snapshot and our own state, and the owners of every job's
    /// targets; says how they changed.
    pub(super) fn rebuild_ring(&mut self) -> RingChange {
        let me = self.config.id.as_str();
        let excluded_self = self.drain_until.is_some() || self.session == SessionState::Expired;
        let active = self
            .members
            .members
            .iter()
            .filter(|m| m.state == MemberState::Active && !(excluded_self && m.id == me))
            .map(|m| m.id.as_str());
        let ring = Ring::new(active, self.config.replication_factor);
        if ring == self.ring {
            return RingChange::Unchanged;
        }
        let old: BTreeSet<&str> = self.ring.members().collect();
        let new: BTreeSet<&str> = ring.members().collect();
        let left: Vec<&str> = old.difference(&new).copied().collect();
        let joined: Vec<&str> = new.difference(&old).copied().collect();
        let change = if left.len() + joined.len() > OWNERSHIP_STEPS_MAX {
            for job in self.jobs.values_mut() {
                let hashes: Vec<u64> = job.resolved.active.iter().map(|t| t.key.hash()).collect();
                job.ownership = Ownership::new(&ring, &hashes);
            }
            RingChange::Recomputed
        } else {
            let mut moved = Vec::new();
            for (name, job) in self.jobs.iter_mut() {
                let mut changed = BTreeSet::new();
                for m in &left {
                    changed.extend(job.ownership.leave(m));
                }
                for m in &joined {
                    changed.extend(job.ownership.join(m));
                }
                if !changed.is_empty() {
                    moved.push((name.clone(), changed.into_iter().collect()));
                }
            }
            RingChange::Moved(moved)
        };
        self.prev_ring = Some(std::mem::replace(&mut self.ring, ring));
        change
    }

    // ---- ownership -----------------------------------------------------------------

    /// Brings what we scrape in line with what we own: `only_job` limits the work to one
    /// job when nothing else changed.
    pub(super) fn reconcile(
        &mut self,
        now: Timestamp,
        only_job: Option<&str>,
        cause: RebalanceCause,
    ) {
        let me = self.config.id.clone();
        // What we should scrape as owner: key → (job, target, rank).
        let mut wanted: BTreeMap<TargetKey, (String, Arc<JobConfig>, &Target, usize)> =
            BTreeMap::new();
        // Every target still in discovery (of the jobs looked at), owned by us or not, with
        // its job.
        let mut present: BTreeMap<&TargetKey, (&str, &Target)> = BTreeMap::new();
        for (name, job) in &self.jobs {
            if only_job.is_some_and(|j| j != name) {
                continue;
            }
            let Some(config) = &job.config else { continue };
            for (i, t) in job.resolved.active.iter().enumerate() {
                present.insert(&t.key, (name, t));
                if job.resolved.limit_error.is_some() {
                    continue; // Prometheus scrapes none of a job over its target_limit
                }
                if let Some(rank) = job.ownership.rank_of(i, &me) {
                    wanted.insert(t.key.clone(), (name.clone(), config.clone(), t, rank));
                }
            }
        }
        let mut gained = 0;
        let mut lost = 0;
        let mut to_remove = Vec::new();
        let mut losing = Vec::new();
        let mut regained = Vec::new();
        for (key, s) in self.scraped.iter_mut() {
            if only_job.is_some_and(|j| j != s.job) {
                continue;
            }
            if let Some((_, _, _, rank)) = wanted.get(key) {
                if matches!(s.role, Role::HandingOff { .. }) {
                    gained += 1;
                    self.timers
                        .remove(&(role_until(s.role), Wake::HandoffEnd(key.clone())));
                    regained.push((key.clone(), role_until(s.role)));
                }
                s.role = Role::Owner { rank: *rank };
                s.rank = *rank;
                continue;
            }
            if !present.contains_key(key) {
                to_remove.push(key.clone());
                if matches!(s.role, Role::Owner { .. }) {
                    lost += 1;
                }
                continue;
            }
            if let Role::Owner { .. } = s.role {
                losing.push(key.clone());
            }
        }
        // A target back in discovery but owned by another member: its new owner carries
        // its series on, so the markers we were waiting to write are dropped.
        let timers = &mut self.timers;
        self.ending.retain(|key, e| {
            let back_elsewhere = present.contains_key(key) && !wanted.contains_key(key);
            if back_elsewhere {
                timers.remove(&(e.write_at, Wake::EndOfRun(key.clone())));
            }
            !back_elsewhere
        });
        let new: Vec<NewTarget> = wanted
            .into_iter()
            .filter(|(k, _)| !self.scraped.contains_key(k))
            .map(|(k, (job, config, target, rank))| (k, job, config, target.clone(), rank))
            .collect();
        // Specs follow job edits (limits, relabeling, auth) of targets we keep.
        let respec: Vec<(TargetKey, Arc<JobConfig>, Arc<ScrapeSpec>)> = self
            .scraped
            .iter()
            .filter(|(_, s)| only_job.is_none_or(|j| j == s.job))
            .filter_map(|(k, s)| {
                let job = self.jobs.get(&s.job)?;
                let config = job.config.as_ref()?;
                let target = present.get(k).filter(|(j, _)| *j == s.job)?.1;
                let same = Arc::ptr_eq(config, &s.config)
                    && target.scrape_interval == s.spec.interval
                    && target.scrape_timeout == s.spec.timeout;
                (!same).then(|| {
                    (
                        k.clone(),
                        config.clone(),
                        Arc::new(self.scrape_spec(config, target)),
                    )
                })
            })
            .collect();
        for (k, config, spec) in respec {
            if let Some(s) = self.scraped.get_mut(&k) {
                s.config = config;
                s.spec = spec;
            }
        }
        for key in to_remove {
            self.remove_scraped(now, &key, Orphan::MarkStale);
        }
        for key in losing {
            lost += usize::from(self.lose(now, &key));
        }
        for (key, until) in regained {
            self.regain(now, &key, until);
        }
        gained += new.len();
        self.own(now, new);
        self.record_rebalance(now, cause, gained, lost);
        self.end_first_view();
    }

    /// [`Node::reconcile`] after a change of members alone, on the targets whose owners
    /// changed (`moved`: per job, indices into its active targets, ascending): the same
    /// outcome, as every other target keeps its owners and discovery and jobs are as the last
    /// reconcile left them.
    pub(super) fn reconcile_moved(&mut self, now: Timestamp, moved: &[(String, Vec<usize>)]) {
        let me = self.config.id.as_str();
        let (mut gained, mut lost) = (0, 0);
        let mut new = Vec::new();
        let mut losing = Vec::new();
        let mut regained = Vec::new();
        for (name, indices) in moved {
            let Some(job) = self.jobs.get(name) else {
                continue;
            };
            let Some(config) = &job.config else { continue };
            for &i in indices {
                let t = &job.resolved.active[i];
                let rank = match job.resolved.limit_error {
                    Some(_) => None, // Prometheus scrapes none of a job over its target_limit
                    None => job.ownership.rank_of(i, me),
                };
                match (self.scraped.get_mut(&t.key), rank) {
                    (Some(s), Some(rank)) => {
                        if matches!(s.role, Role::HandingOff { .. }) {
                            gained += 1;
                            self.timers
                                .remove(&(role_until(s.role), Wake::HandoffEnd(t.key.clone())));
                            regained.push((t.key.clone(), role_until(s.role)));
                        }
                        s.role = Role::Owner { rank };
                        s.rank = rank;
                    }
                    (Some(s), None) => {
                        if let Role::Owner { .. } = s.role {
                            losing.push(t.key.clone());
                        }
                    }
                    (None, Some(rank)) => {
                        new.push((t.key.clone(), name.clone(), config.clone(), t.clone(), rank));
                    }
                    (None, None) => {}
                }
            }
        }
        // The full reconcile takes new and lost targets in key order.
        new.sort_by(|a, b| a.0.cmp(&b.0));
        losing.sort();
        for key in losing {
            lost += usize::from(self.lose(now, &key));
        }
        regained.sort();
        for (key, until) in regained {
            self.regain(now, &key, until);
        }
        gained += new.len();
        self.own(now, new);
        self.record_rebalance(now, RebalanceCause::Members, gained, lost);
        self.end_first_view();
    }

    /// Starts scraping targets we newly own: `(key, job, config, target, rank)`.
    fn own(&mut self, now: Timestamp, new: Vec<NewTarget>) {
        for (key, job, config, target, rank) in new {
            let spec = Arc::new(self.scrape_spec(&config, &target));
            let gain = self.gain(now, key.hash(), rank, spec.interval);
            let next_at = gain.first_at;
            self.timers.insert((next_at, Wake::Scrape(key.clone())));
            // A scrape of this target from before it left us may still be out: adopt it
            // rather than start a second one beside it (a target never has two scrapes in
            // flight), so its series memory comes back to the target and no markers end live
            // series.
            let adopted = self
                .orphans
                .iter()
                .find(|(_, (k, _, _))| *k == key)
                .map(|(id, _)| *id);
            if let Some(id) = adopted {
                self.orphans.remove(&id);
                self.orphan_stale_at.remove(&id);
            }
            // Back before its end-of-run markers: its series memory comes back with it.
            let ending = self.take_ending(&key);
            self.scraped.insert(
                key,
                Scraped {
                    job,
                    config,
                    spec,
                    role: Role::Owner { rank },
                    rank,
                    cache: ending.filter(|_| adopted.is_none()).map(Box::new),
                    in_flight: adopted,
                    next_at,
                    shift_until: gain.shift_until,
                    shift_ms: gain.shift_ms,
                    pause: None,
                    health: None,
                },
            );
        }
    }

    /// Counts a rebalance that gained or lost targets, and keeps it in the history.
    fn record_rebalance(
        &mut self,
        now: Timestamp,
        cause: RebalanceCause,
        gained: usize,
        lost: usize,
    ) {
        if gained + lost > 0 {
            self.stats.rebalances += 1;
            self.stats.targets_gained += gained as u64;
            self.stats.targets_lost += lost as u64;
            if self.rebalances.len() == REBALANCE_HISTORY_LEN_MAX {
                self.rebalances.pop_front();
            }
            self.rebalances.push_back(Rebalance {
                at: now,
                cause,
                members: self.ring.members().count(),
                gained,
                lost,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str) -> MemberRecord {
        MemberRecord {
            id: id.into(),
            state: MemberState::Active,
            version: "test".into(),
            web: "127.0.0.1:0".into(),
            started_at: "1970-01-01T00:00:00Z".into(),
        }
    }

    type Snapshot = (Vec<(TargetKey, Role, usize)>, BTreeSet<(Timestamp, Wake)>);

    fn snapshot(node: &Node) -> Snapshot {
        let scraped = node
            .scraped
            .iter()
            .map(|(k, s)| (k.clone(), s.role, s.rank))
            .collect();
        (scraped, node.timers.clone())
    }

    /// After the reconcile of a members change (on the moved targets only), a full reconcile
    /// finds nothing to do: both reach the same state.
    #[test]
    fn reconcile_moved_equals_the_full_reconcile() {
        let mut yaml = String::from("job_name: j\nstatic_configs:\n  - targets:\n");
        for i in 0..300 {
            yaml.push_str(&format!("      - 'host-{i}:9100'\n"));
        }
        // Member sets in turn: joins and leaves of one and of several, us leaving and
        // coming back, and a change larger than `OWNERSHIP_STEPS_MAX` (a full recompute).
        let pools: [&[usize]; 9] = [
            &[0, 1, 2],
            &[0, 1, 2, 3],
            &[0, 2, 3],
            &[0, 2, 3, 4, 5, 6],
            &[2, 3, 4, 5, 6],
            &[0, 2, 3, 4, 5, 6],
            &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13],
            &[0, 13],
            &[0],
        ];
        for r in [1, 2, 3] {
            let mut config = NodeConfig::for_tests("m-0");
            config.replication_factor = r;
            let mut node = Node::new(config, Timestamp(0));
            node.handle(Timestamp(0), Event::SessionConnected);
            node.handle(
                Timestamp(1),
                Event::JobsChanged(JobsSnapshot {
                    version: 1,
                    jobs: vec![("j".into(), yaml.clone())],
                    ..Default::default()
                }),
            );
            let mut checked = 0;
            for (step, pool) in pools.iter().enumerate() {
                let now = Timestamp(1_000 * (step as i64 + 2));
                node.handle(
                    now,
                    Event::MembersChanged(MembersSnapshot {
                        version: step as i64 + 1,
                        members: pool.iter().map(|i| member(&format!("m-{i}"))).collect(),
                        ..Default::default()
                    }),
                );
                while node.poll_command().is_some() {}
                let (rebalances, after_moved) = (node.stats.rebalances, snapshot(&node));
                node.reconcile(now, None, RebalanceCause::Members);
                assert_eq!(node.stats.rebalances, rebalances, "r={r} step {step}");
                assert!(node.poll_command().is_none(), "r={r} step {step}");
                assert!(snapshot(&node) == after_moved, "r={r} step {step}");
                checked += after_moved.0.len();
            }
            assert!(checked > 0, "r={r}: the node scraped something");
        }
    }
}
