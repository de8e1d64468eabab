//! The slot handoff harness: a pool of [`Node`]s sharing one static job, a coordinator that
//! stamps every member record change with its time (ZooKeeper's `mtime`) and notifies each
//! node after a delay of its own, and a record of every scrape: which member, which target,
//! its slot and its sample timestamp. Shared by the handler tests (`core/tests/handoff.rs`)
//! and the proptests (`core/tests/handoff_props.rs`).
//!
//! A notified node reads the tree as it is when its notification arrives (as the coordination
//! re-reads the tree after a notification); the writer of a change reads it at once. Scrapes
//! are answered at once. A crash removes a node and its record at once (its session ends).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::member::{JobsSnapshot, MemberRecord, MembersSnapshot};
use crate::node::{Command, Event, Node, NodeConfig};
use crate::schedule;
use crate::scrape::FetchOutcome;
use crate::time::Timestamp;

/// Start of every run.
pub const T0: i64 = 1_700_000_000_000;
/// The job's scrape interval.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// Targets of the job (`h0:9100` …).
pub const TARGETS: usize = 16;

/// One scrape a node asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scrape {
    /// The member.
    pub member: String,
    /// The target's `instance`.
    pub instance: String,
    /// The target's key hash.
    pub hash: u64,
    /// When it was due (ms since the epoch).
    pub due: i64,
    /// Its samples' timestamp.
    pub sample_at: i64,
}

/// The pool.
pub struct Pool {
    /// Now, ms since the epoch.
    pub now: i64,
    /// Running nodes by id.
    pub nodes: BTreeMap<String, Node>,
    records: BTreeMap<String, (MemberRecord, Timestamp)>,
    joined: BTreeMap<String, Timestamp>,
    version: i64,
    /// Records created and deleted (ZooKeeper's child version of `/members`).
    cversion: i32,
    /// Per node: when it is next notified of a members change.
    notify: BTreeMap<String, Vec<i64>>,
    /// Per node: the version it last read.
    seen: BTreeMap<String, i64>,
    /// Every scrape, in order.
    pub scrapes: Vec<Scrape>,
    /// The delay of node `id`'s notification of the change it is given (ms).
    delay: Box<dyn FnMut(&str) -> i64>,
    config: NodeConfig,
}

/// The job every node runs.
pub fn job_yaml() -> String {
    let mut y = format!(
        "job_name: j\nscrape_interval: {}s\nscrape_timeout: 1s\nstatic_configs:\n  - targets: [",
        INTERVAL.as_secs()
    );
    let list: Vec<String> = (0..TARGETS).map(|i| format!("'h{i}:9100'")).collect();
    y.push_str(&list.join(", "));
    y.push_str("]\n");
    y
}

impl Pool {
    /// An empty pool at [`T0`] whose nodes take `config` (the id replaced) and are notified
    /// of each change after `delay(node)` ms.
    pub fn new(config: NodeConfig, delay: impl FnMut(&str) -> i64 + 'static) -> Pool {
        Pool {
            now: T0,
            nodes: BTreeMap::new(),
            records: BTreeMap::new(),
            joined: BTreeMap::new(),
            version: 0,
            cversion: 0,
            notify: BTreeMap::new(),
            seen: BTreeMap::new(),
            scrapes: Vec::new(),
            delay: Box::new(delay),
            config,
        }
    }

    fn snapshot(&self) -> MembersSnapshot {
        MembersSnapshot {
            version: self.version,
            cversion: self.cversion,
            changed_at: self
                .records
                .values()
                .map(|(_, t)| *t)
                .max()
                .unwrap_or_default(),
            members: self.records.values().map(|(r, _)| r.clone()).collect(),
            changed: self
                .records
                .iter()
                .map(|(id, (_, t))| (id.clone(), *t))
                .collect(),
            joined: self.joined.clone(),
        }
    }

    /// A record changed now: every node is notified after its delay, the writer at once.
    fn changed(&mut self, writer: Option<&str>) {
        self.version += 1;
        let ids: Vec<String> = self.nodes.keys().cloned().collect();
        for id in ids {
            let at = self.now + (self.delay)(&id).max(0);
            self.notify.entry(id).or_default().push(at);
        }
        // The writer reads the tree after its own write.
        if let Some(id) = writer {
            if self.nodes.contains_key(id) {
                self.notify
                    .entry(id.to_string())
                    .or_default()
                    .push(self.now);
            }
        }
    }

    /// Feeds `event` to node `id` now and carries out what it asks.
    pub fn feed(&mut self, id: &str, event: Event) {
        let now = Timestamp(self.now);
        let Some(node) = self.nodes.get_mut(id) else {
            return;
        };
        node.handle(now, event);
        let mut back = Vec::new();
        let mut exited = false;
        let mut changed = false;
        while let Some(c) = node.poll_command() {
            match c {
                Command::Register(r) | Command::UpdateMember(r) => {
                    if !self.records.contains_key(&r.id) {
                        self.joined.insert(r.id.clone(), now);
                        self.cversion += 1;
                    }
                    self.records.insert(r.id.clone(), (r, now));
                    changed = true;
                }
                Command::Deregister => {
                    if self.records.remove(id).is_some() {
                        self.cversion += 1;
                    }
                    self.joined.remove(id);
                    changed = true;
                }
                Command::Scrape(task) => {
                    self.scrapes.push(Scrape {
                        member: id.to_string(),
                        instance: task
                            .spec
                            .target_labels
                            .get("instance")
                            .unwrap_or_default()
                            .to_string(),
                        hash: task.target.hash(),
                        due: task.scheduled_at.0,
                        sample_at: task.sample_at.0,
                    });
                    let fetch = FetchOutcome::Body {
                        body: b"a 1\n".to_vec(),
                        content_type: Some("text/plain; version=0.0.4".into()),
                    };
                    back.push(
                        task.complete(&mut Default::default(), Duration::ZERO, &fetch)
                            .event,
                    );
                }
                Command::Exit => exited = true,
                Command::StartDiscovery { .. }
                | Command::StopDiscovery { .. }
                | Command::Emit(_) => {}
            }
        }
        for event in back {
            self.feed(id, event);
        }
        if exited {
            self.nodes.remove(id);
            self.notify.remove(id);
        }
        if changed {
            self.changed(Some(id));
        }
    }

    /// Starts member `id` now: it connects, registers, reads the jobs (and, once notified of
    /// its own record, the members).
    pub fn join(&mut self, id: &str) {
        if self.nodes.contains_key(id) {
            return;
        }
        let config = NodeConfig {
            id: id.to_string(),
            ..self.config.clone()
        };
        self.nodes
            .insert(id.to_string(), Node::new(config, Timestamp(self.now)));
        self.seen.insert(id.to_string(), 0);
        self.feed(id, Event::SessionConnected);
        self.feed(
            id,
            Event::JobsChanged(JobsSnapshot {
                version: 1,
                changed_at: Timestamp(T0),
                jobs: vec![("j".into(), job_yaml())],
            }),
        );
    }

    /// SIGTERM to `id`.
    pub fn drain(&mut self, id: &str) {
        self.feed(id, Event::ShutdownRequested);
    }

    /// `id` dies: its record goes with its session.
    pub fn crash(&mut self, id: &str) {
        if self.nodes.remove(id).is_some() {
            self.notify.remove(id);
            if self.records.remove(id).is_some() {
                self.cversion += 1;
            }
            self.joined.remove(id);
            self.changed(None);
        }
    }

    /// `id`'s session expires while it goes on unaware (a process that was paused, or whose
    /// next request to the server has not gone out yet): its record goes and the others are
    /// notified; `id` itself hears nothing and scrapes on.
    pub fn expire(&mut self, id: &str) {
        if self.records.remove(id).is_some() {
            self.cversion += 1;
            self.joined.remove(id);
            self.changed(None);
            if let Some(pending) = self.notify.get_mut(id) {
                pending.pop();
            }
        }
    }

    /// Runs every node's timers and notifications up to `until` (ms since the epoch), in
    /// time order.
    pub fn run_until(&mut self, until: i64) {
        loop {
            let timer = self
                .nodes
                .iter()
                .filter_map(|(id, n)| n.poll_timeout().map(|(at, _)| (at.0, 1, id.clone())));
            let note = self
                .notify
                .iter()
                .filter_map(|(id, at)| at.iter().min().map(|at| (*at, 0, id.clone())));
            let Some((at, kind, id)) = timer.chain(note).filter(|(at, _, _)| *at <= until).min()
            else {
                break;
            };
            self.now = self.now.max(at);
            if kind == 1 {
                self.feed(&id, Event::Tick);
                continue;
            }
            let list = self.notify.get_mut(&id).expect("listed");
            let i = list.iter().position(|t| *t == at).expect("listed");
            list.remove(i);
            if self.seen.get(&id).copied().unwrap_or(0) < self.version {
                self.seen.insert(id.clone(), self.version);
                let snapshot = self.snapshot();
                self.feed(&id, Event::MembersChanged(snapshot));
            }
        }
        self.now = self.now.max(until);
    }

    /// The slot (ms since the epoch) a scrape of target `hash` with sample time `t` belongs
    /// to: rank 0's slot at or before `t`.
    pub fn slot_of(hash: u64, t: i64) -> i64 {
        let offset = schedule::offset(hash, 0, INTERVAL);
        let next = schedule::next_at(Timestamp(t), INTERVAL, offset).0;
        if next == t {
            t
        } else {
            next - INTERVAL.as_millis() as i64
        }
    }

    /// Scrapes of `instance`.
    pub fn scrapes_of(&self, instance: &str) -> Vec<&Scrape> {
        self.scrapes
            .iter()
            .filter(|s| s.instance == instance)
            .collect()
    }

    /// Every pair of scrapes of one target with the same sample timestamp.
    pub fn same_timestamps(&self) -> Vec<(&Scrape, &Scrape)> {
        let mut by: BTreeMap<(u64, i64), &Scrape> = BTreeMap::new();
        let mut out = Vec::new();
        for s in &self.scrapes {
            if let Some(first) = by.insert((s.hash, s.sample_at), s) {
                out.push((first, s));
            }
        }
        out
    }

    /// Per target and slot in `[from, to)` (slots of rank 0): how many scrapes it holds,
    /// listing the slots that do not hold exactly one.
    pub fn slots_not_once(&self, from: i64, to: i64) -> Vec<(String, i64, usize)> {
        let mut count: BTreeMap<(String, i64), usize> = BTreeMap::new();
        let mut hashes: BTreeMap<String, u64> = BTreeMap::new();
        for s in &self.scrapes {
            hashes.insert(s.instance.clone(), s.hash);
            *count
                .entry((s.instance.clone(), Self::slot_of(s.hash, s.sample_at)))
                .or_default() += 1;
        }
        let mut out = Vec::new();
        for (instance, hash) in hashes {
            let mut slot = schedule::next_at(
                Timestamp(from),
                INTERVAL,
                schedule::offset(hash, 0, INTERVAL),
            )
            .0;
            while slot + INTERVAL.as_millis() as i64 <= to {
                let n = count.get(&(instance.clone(), slot)).copied().unwrap_or(0);
                if n != 1 {
                    out.push((instance.clone(), slot, n));
                }
                slot += INTERVAL.as_millis() as i64;
            }
        }
        out
    }
}
