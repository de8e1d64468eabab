//! A model of the ZooKeeper server as scrapepool uses it — sessions timed on simulated time,
//! ephemeral nodes deleted when their session ends, znode stats (`mzxid`, `pzxid`, data
//! version, ephemeral owner, `ctime`/`mtime` in simulated wall-clock time), persistent recursive watches per session, and per-host
//! reachability (a partition between a scraper and ZooKeeper) — and [`ModelCoordinator`],
//! the `Coordinator` port over it.
//!
//! The port runs the production policy, [`Coordination`] from `scrapepool_core::coord`, as
//! the zookeeper-client shell does: the model answers the policy's operations and the shell
//! plays the client library (pings, noticing a lost connection or an expired session,
//! delivering watch notifications, late by 0–[`WATCH_DELAY_MS_MAX`] ms).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scrapepool_adapters::ports::{CoordRequest, Coordinator, EventSender};
use scrapepool_core::coord::{
    Answer, Child, Coordination, Input, MemberOp, NodeStat, Output, Settings, Tree, TreeRead,
    JOBS_PATH, MEMBERS_PATH,
};
use scrapepool_core::time::duration_ms;
use scrapepool_core::Timestamp;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Reads simulated time: the model's only clock.
pub type ModelClock = Arc<dyn Fn() -> Duration + Send + Sync>;

/// Why a model operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZkError {
    /// The caller's host cannot reach ZooKeeper.
    Unreachable,
    /// The session has expired (or was closed).
    Expired,
    /// Create: the node exists.
    NodeExists,
    /// The node does not exist (or its parent is not one the model keeps).
    NoNode,
    /// The node's version is not the one given.
    BadVersion,
}

#[derive(Debug)]
struct Session {
    host: String,
    last_heard: Duration,
    timeout: Duration,
    expired: bool,
    watches: BTreeSet<Tree>,
}

#[derive(Debug)]
struct Znode {
    data: Vec<u8>,
    mzxid: i64,
    /// Creation time, simulated ms since the Unix epoch (the server's `ctime`).
    ctime: Timestamp,
    /// Last data change (the server's `mtime`; the creation until the first set).
    mtime: Timestamp,
    version: i32,
    /// The owning session of an ephemeral node; 0 for a persistent one.
    owner: i64,
}

/// `/members` or `/jobs`: its children, its `pzxid`, and the zxid of the last change below.
#[derive(Debug, Default)]
struct Dir {
    pzxid: i64,
    cversion: i32,
    children: BTreeMap<String, Znode>,
    changed: i64,
}

#[derive(Debug, Default)]
struct Inner {
    zxid: i64,
    sessions: BTreeMap<i64, Session>,
    members: Dir,
    jobs: Dir,
    unreachable: BTreeSet<String>,
}

impl Inner {
    fn dir(&mut self, tree: Tree) -> &mut Dir {
        match tree {
            Tree::Members => &mut self.members,
            Tree::Jobs => &mut self.jobs,
        }
    }

    /// The directory and child name of `path` (`/members/<id>` or `/jobs/<name>`).
    fn node(&mut self, path: &str) -> Result<(Tree, String), ZkError> {
        let (parent, name) = path.rsplit_once('/').ok_or(ZkError::NoNode)?;
        let tree = match parent {
            MEMBERS_PATH => Tree::Members,
            JOBS_PATH => Tree::Jobs,
            _ => return Err(ZkError::NoNode),
        };
        if name.is_empty() {
            return Err(ZkError::NoNode);
        }
        Ok((tree, name.to_string()))
    }

    fn next_zxid(&mut self) -> i64 {
        self.zxid += 1;
        self.zxid
    }

    fn create(
        &mut self,
        tree: Tree,
        name: &str,
        data: Vec<u8>,
        owner: i64,
        now: Duration,
    ) -> Result<(), ZkError> {
        if self.dir(tree).children.contains_key(name) {
            return Err(ZkError::NodeExists);
        }
        let zxid = self.next_zxid();
        let dir = self.dir(tree);
        dir.children.insert(
            name.to_string(),
            Znode {
                data,
                mzxid: zxid,
                ctime: server_time(now),
                mtime: server_time(now),
                version: 0,
                owner,
            },
        );
        dir.pzxid = zxid;
        dir.cversion += 1;
        dir.changed = zxid;
        Ok(())
    }

    fn set(
        &mut self,
        tree: Tree,
        name: &str,
        data: Vec<u8>,
        version: Option<i32>,
        now: Duration,
    ) -> Result<(), ZkError> {
        let zxid = self.zxid + 1;
        let dir = self.dir(tree);
        let node = dir.children.get_mut(name).ok_or(ZkError::NoNode)?;
        if version.is_some_and(|v| v != node.version) {
            return Err(ZkError::BadVersion);
        }
        node.data = data;
        node.mzxid = zxid;
        node.mtime = server_time(now);
        node.version += 1;
        dir.changed = zxid;
        self.zxid = zxid;
        Ok(())
    }

    fn delete(&mut self, tree: Tree, name: &str, version: Option<i32>) -> Result<(), ZkError> {
        let node = self.dir(tree).children.get(name).ok_or(ZkError::NoNode)?;
        if version.is_some_and(|v| v != node.version) {
            return Err(ZkError::BadVersion);
        }
        let zxid = self.next_zxid();
        let dir = self.dir(tree);
        dir.children.remove(name);
        dir.pzxid = zxid;
        dir.cversion += 1;
        dir.changed = zxid;
        Ok(())
    }

    fn live(&mut self, session: i64, now: Duration) -> Result<&mut Session, ZkError> {
        match self.sessions.get_mut(&session) {
            Some(s) if !s.expired => {
                // Every request counts as a heartbeat.
                s.last_heard = now;
                Ok(s)
            }
            _ => Err(ZkError::Expired),
        }
    }

    fn expire(&mut self, now: Duration) {
        let expired: Vec<i64> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.expired && now.saturating_sub(s.last_heard) > s.timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.end_session(id);
        }
    }

    /// Ends session `id`: its ephemeral nodes go, one deletion (and zxid) each.
    fn end_session(&mut self, id: i64) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.expired = true;
            s.watches.clear();
        }
        for tree in [Tree::Members, Tree::Jobs] {
            let owned: Vec<String> = self
                .dir(tree)
                .children
                .iter()
                .filter(|(_, n)| n.owner == id)
                .map(|(name, _)| name.clone())
                .collect();
            for name in owned {
                let _ = self.delete(tree, &name, None);
            }
        }
    }
}

/// The server's clock: simulated time since the run began, as ms since the Unix epoch (the
/// scrapers' clock, [`crate::SimClock`], reads the same time).
fn server_time(since_start: Duration) -> Timestamp {
    Timestamp(crate::EPOCH_MS + duration_ms(since_start))
}

/// The ZooKeeper model, shared by every simulated host.
pub struct ZkModel {
    inner: Mutex<Inner>,
    clock: ModelClock,
    changed: watch::Sender<i64>,
}

impl ZkModel {
    /// An empty ensemble reading time from `clock`.
    pub fn new(clock: ModelClock) -> Arc<ZkModel> {
        Arc::new(ZkModel {
            inner: Mutex::new(Inner::default()),
            clock,
            changed: watch::channel(0).0,
        })
    }

    /// Runs `f` at the current time, after expiring the sessions due, as a request from
    /// `host` (refused when the host is cut off), and tells subscribers of any change.
    fn with<R>(
        &self,
        host: Option<&str>,
        f: impl FnOnce(&mut Inner, Duration) -> Result<R, ZkError>,
    ) -> Result<R, ZkError> {
        let now = (self.clock)();
        let mut inner = self.inner.lock().expect("zk model lock");
        let before = inner.zxid;
        inner.expire(now);
        let result = match host {
            Some(h) if inner.unreachable.contains(h) => Err(ZkError::Unreachable),
            _ => f(&mut inner, now),
        };
        let after = inner.zxid;
        drop(inner);
        if after != before {
            self.changed.send_replace(after);
        }
        result
    }

    /// Opens a session for `host`; returns its id.
    pub fn connect(&self, host: &str, timeout: Duration) -> Result<i64, ZkError> {
        self.with(Some(host), |inner, now| {
            let id = inner.next_zxid();
            inner.sessions.insert(
                id,
                Session {
                    host: host.to_string(),
                    last_heard: now,
                    timeout,
                    expired: false,
                    watches: BTreeSet::new(),
                },
            );
            Ok(id)
        })
    }

    /// Keeps `session` alive (the client library's ping).
    pub fn heartbeat(&self, host: &str, session: i64) -> Result<(), ZkError> {
        self.with(Some(host), |inner, now| {
            inner.live(session, now).map(|_| ())
        })
    }

    /// Closes `session` (its ephemeral nodes go at once).
    pub fn close(&self, host: &str, session: i64) -> Result<(), ZkError> {
        self.with(Some(host), |inner, now| {
            inner.live(session, now)?;
            inner.end_session(session);
            Ok(())
        })
    }

    /// Sets a persistent recursive watch on `tree` for `session`; returns the zxid of the
    /// last change below it (notifications are for later ones).
    pub fn watch(&self, host: &str, session: i64, tree: Tree) -> Result<i64, ZkError> {
        self.with(Some(host), |inner, now| {
            inner.live(session, now)?.watches.insert(tree);
            Ok(inner.dir(tree).changed)
        })
    }

    /// The zxid of the last change below each tree `session` watches.
    pub fn watched_changes(&self, session: i64) -> Vec<(Tree, i64)> {
        let inner = self.inner.lock().expect("zk model lock");
        let Some(s) = inner.sessions.get(&session).filter(|s| !s.expired) else {
            return Vec::new();
        };
        s.watches
            .iter()
            .map(|t| {
                let dir = match t {
                    Tree::Members => &inner.members,
                    Tree::Jobs => &inner.jobs,
                };
                (*t, dir.changed)
            })
            .collect()
    }

    /// Reads `tree`: every child with its data and `mzxid`, and the `pzxid`.
    pub fn read(&self, host: &str, session: i64, tree: Tree) -> Result<TreeRead, ZkError> {
        self.with(Some(host), |inner, now| {
            inner.live(session, now)?;
            let dir = inner.dir(tree);
            Ok(TreeRead {
                pzxid: dir.pzxid,
                cversion: dir.cversion,
                children: dir
                    .children
                    .iter()
                    .map(|(name, n)| Child {
                        name: name.clone(),
                        data: n.data.clone(),
                        mzxid: n.mzxid,
                        ctime: n.ctime,
                        mtime: n.mtime,
                    })
                    .collect(),
            })
        })
    }

    /// Creates the ephemeral node `path` owned by `session`.
    pub fn create_ephemeral(
        &self,
        host: &str,
        session: i64,
        path: &str,
        data: Vec<u8>,
    ) -> Result<(), ZkError> {
        self.with(Some(host), |inner, now| {
            inner.live(session, now)?;
            let (tree, name) = inner.node(path)?;
            inner.create(tree, &name, data, session, now)
        })
    }

    /// The stat of `path`, `None` if it does not exist.
    pub fn stat(&self, host: &str, session: i64, path: &str) -> Result<Option<NodeStat>, ZkError> {
        self.with(Some(host), |inner, now| {
            inner.live(session, now)?;
            let (tree, name) = inner.node(path)?;
            Ok(inner.dir(tree).children.get(&name).map(|n| NodeStat {
                ephemeral_owner: n.owner,
                version: n.version,
            }))
        })
    }

    /// Sets the data of `path` if its version is `version`.
    pub fn set(
        &self,
        host: &str,
        session: i64,
        path: &str,
        data: Vec<u8>,
        version: i32,
    ) -> Result<(), ZkError> {
        self.with(Some(host), |inner, now| {
            inner.live(session, now)?;
            let (tree, name) = inner.node(path)?;
            inner.set(tree, &name, data, Some(version), now)
        })
    }

    /// Deletes `path` (if its version is `version`, when given).
    pub fn delete(
        &self,
        host: &str,
        session: i64,
        path: &str,
        version: Option<i32>,
    ) -> Result<(), ZkError> {
        self.with(Some(host), |inner, now| {
            inner.live(session, now)?;
            let (tree, name) = inner.node(path)?;
            inner.delete(tree, &name, version)
        })
    }

    /// Writes a job (the operator's `jobs apply`: unchanged text is no write).
    pub fn put_job(&self, name: &str, text: &str) {
        let _ = self.with(None, |inner, now| match inner.jobs.children.get(name) {
            Some(n) if n.data == text.as_bytes() => Ok(()),
            Some(_) => inner.set(Tree::Jobs, name, text.as_bytes().to_vec(), None, now),
            None => inner.create(Tree::Jobs, name, text.as_bytes().to_vec(), 0, now),
        });
    }

    /// Deletes a job.
    pub fn delete_job(&self, name: &str) {
        let _ = self.with(None, |inner, _| inner.delete(Tree::Jobs, name, None));
    }

    /// Cuts (`false`) or restores (`true`) `host`'s link to ZooKeeper.
    pub fn set_reachable(&self, host: &str, reachable: bool) {
        let mut inner = self.inner.lock().expect("zk model lock");
        if reachable {
            inner.unreachable.remove(host);
        } else {
            inner.unreachable.insert(host.to_string());
        }
    }

    /// Expires every live session of `host` now (as the server would after a long pause).
    pub fn expire_host(&self, host: &str) {
        let _ = self.with(None, |inner, _| {
            let ids: Vec<i64> = inner
                .sessions
                .iter()
                .filter(|(_, s)| s.host == host && !s.expired)
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                inner.end_session(id);
            }
            Ok(())
        });
    }

    /// Runs expiry at the current time (the server's own session tick).
    pub fn tick(&self) {
        let _ = self.with(None, |_, _| Ok(()));
    }

    /// Ids of the members registered now.
    pub fn member_ids(&self) -> Vec<String> {
        self.inner
            .lock()
            .expect("zk model lock")
            .members
            .children
            .keys()
            .cloned()
            .collect()
    }

    /// A receiver that changes whenever anything in the model changes.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.changed.subscribe()
    }
}

/// Longest delay between a change in ZooKeeper and a member's notification of it. Each
/// member gets its own delay per change, so members learn of a change at different times, as
/// they do in a real ensemble.
pub const WATCH_DELAY_MS_MAX: u64 = 2_000;

/// The delay before `host` is notified of the change to `zxid`: a fixed function of both,
/// so one seed gives one run.
fn watch_delay(host: &str, zxid: i64) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in host.bytes().chain(zxid.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Duration::from_millis(h % (WATCH_DELAY_MS_MAX + 1))
}

/// How often a connected client pings, as a fraction of the session timeout.
const HEARTBEATS_PER_TIMEOUT: u32 = 3;
/// How often a disconnected client tries the server again.
pub const RECONNECT_INTERVAL: Duration = Duration::from_millis(500);

/// The `Coordinator` port over the model, running the production policy.
pub struct ModelCoordinator {
    model: Arc<ZkModel>,
    host: String,
    session_timeout: Duration,
}

impl ModelCoordinator {
    /// A coordinator for `host` with the given session timeout.
    pub fn new(model: Arc<ZkModel>, host: &str, session_timeout: Duration) -> Self {
        ModelCoordinator {
            model,
            host: host.to_string(),
            session_timeout,
        }
    }

    fn answer(result: Result<(), ZkError>) -> Answer {
        match result {
            Ok(()) => Answer::Ok,
            Err(ZkError::NodeExists) => Answer::NodeExists,
            Err(ZkError::NoNode) => Answer::NoNode,
            Err(ZkError::BadVersion) => Answer::BadVersion,
            Err(e) => Answer::Failed(format!("{e:?}")),
        }
    }

    /// Carries out one output of the policy against the model: the input it answers with.
    fn carry_out(&self, output: Output, client: &mut Client) -> Option<Input> {
        let host = self.host.as_str();
        let model = &self.model;
        let Some(session) = client.session else {
            return match output {
                Output::Connect => Some(client.connect(self)),
                Output::Watch { op, .. } => Some(Input::WatchAnswered {
                    op,
                    result: Err("no session".into()),
                }),
                Output::Read { op, .. } => Some(Input::ReadAnswered {
                    op,
                    result: Err("no session".into()),
                }),
                Output::Member { op, .. } => Some(Input::MemberAnswered {
                    op,
                    answer: Answer::Failed("no session".into()),
                }),
                Output::Deliver(_) | Output::Note(_) => None,
            };
        };
        Some(match output {
            Output::Connect => {
                let _ = model.close(host, session);
                client.connect(self)
            }
            Output::Watch { op, tree } => Input::WatchAnswered {
                op,
                result: match model.watch(host, session, tree) {
                    Ok(zxid) => {
                        client.seen.insert(tree, zxid);
                        Ok(())
                    }
                    Err(e) => Err(format!("{e:?}")),
                },
            },
            Output::Read { op, tree } => Input::ReadAnswered {
                op,
                result: model
                    .read(host, session, tree)
                    .map_err(|e| format!("{e:?}")),
            },
            Output::Member { op, request } => Input::MemberAnswered {
                op,
                answer: match request {
                    MemberOp::Create { path, data } => {
                        Self::answer(model.create_ephemeral(host, session, &path, data))
                    }
                    MemberOp::Stat { path } => match model.stat(host, session, &path) {
                        Ok(stat) => Answer::Stat(stat),
                        Err(e) => Self::answer(Err(e)),
                    },
                    MemberOp::Set {
                        path,
                        data,
                        version,
                    } => Self::answer(model.set(host, session, &path, data, version)),
                    MemberOp::Delete { path, version } => {
                        Self::answer(model.delete(host, session, &path, version))
                    }
                },
            },
            Output::Deliver(_) | Output::Note(_) => return None,
        })
    }
}

/// What the client library knows: its session, whether it is connected, when it pings next,
/// the last change of each watched tree it was told of, and notifications on their way.
struct Client {
    session: Option<i64>,
    connected: bool,
    next_ping: Instant,
    seen: BTreeMap<Tree, i64>,
    notifications: VecDeque<(Instant, Tree)>,
}

impl Client {
    fn connect(&mut self, c: &ModelCoordinator) -> Input {
        self.seen.clear();
        self.notifications.clear();
        match c.model.connect(&c.host, c.session_timeout) {
            Ok(session) => {
                self.session = Some(session);
                self.connected = true;
                self.next_ping = Instant::now() + c.session_timeout / HEARTBEATS_PER_TIMEOUT;
                Input::SessionStarted { session }
            }
            Err(e) => {
                self.session = None;
                self.connected = false;
                Input::ConnectFailed {
                    error: format!("{e:?}"),
                }
            }
        }
    }

    /// Pings when due: what the ping found out, if anything new.
    fn ping(&mut self, c: &ModelCoordinator, now: Instant) -> Option<Input> {
        let session = self.session?;
        if now < self.next_ping {
            return None;
        }
        let result = c.model.heartbeat(&c.host, session);
        let interval = if result.is_ok() {
            c.session_timeout / HEARTBEATS_PER_TIMEOUT
        } else {
            RECONNECT_INTERVAL
        };
        self.next_ping = now + interval;
        match result {
            Ok(()) if !self.connected => {
                self.connected = true;
                Some(Input::Reconnected)
            }
            Ok(()) => None,
            Err(ZkError::Unreachable) if self.connected => {
                self.connected = false;
                Some(Input::Disconnected)
            }
            Err(ZkError::Unreachable) => None,
            Err(_) => {
                self.session = None;
                self.connected = false;
                self.notifications.clear();
                Some(Input::Expired)
            }
        }
    }

    /// Queues a notification for every watched tree that changed since the last one.
    fn changes(&mut self, c: &ModelCoordinator, now: Instant) {
        let Some(session) = self.session else { return };
        for (tree, zxid) in c.model.watched_changes(session) {
            let seen = self.seen.entry(tree).or_insert(zxid);
            if zxid > *seen {
                *seen = zxid;
                self.notifications
                    .push_back((now + watch_delay(&c.host, zxid), tree));
            }
        }
        self.notifications.make_contiguous().sort();
    }

    /// Notifications due at `now`; those due while disconnected are lost, as they can be.
    fn due_notifications(&mut self, now: Instant) -> Vec<Input> {
        let mut out = Vec::new();
        while self.notifications.front().is_some_and(|(at, _)| *at <= now) {
            let (_, tree) = self.notifications.pop_front().expect("front");
            if self.connected {
                out.push(Input::Notified(tree));
            }
        }
        out
    }
}

impl Coordinator for ModelCoordinator {
    async fn run(self, events: EventSender, mut requests: mpsc::Receiver<CoordRequest>) {
        let start = Instant::now();
        let now = || Timestamp(duration_ms(start.elapsed()));
        let at = |t: Timestamp| start + Duration::from_millis(t.as_millis().max(0) as u64);
        let mut changes = self.model.subscribe();
        let mut policy = Coordination::new(Settings::default());
        let mut client = Client {
            session: None,
            connected: false,
            next_ping: start,
            seen: BTreeMap::new(),
            notifications: VecDeque::new(),
        };
        let mut inputs = vec![Input::Tick];
        loop {
            for input in inputs.drain(..) {
                let mut queue: VecDeque<Output> = policy.handle(now(), input).into();
                while let Some(output) = queue.pop_front() {
                    if let Output::Deliver(event) = output {
                        if events.send(event.into()).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    if let Output::Note(note) = &output {
                        tracing::debug!(host = %self.host, "{note}");
                    }
                    if let Some(answer) = self.carry_out(output, &mut client) {
                        queue.extend(policy.handle(now(), answer));
                    }
                }
            }
            let wake = [
                policy.next_wake().map(at),
                client.session.map(|_| client.next_ping),
                client.notifications.front().map(|(at, _)| *at),
            ]
            .into_iter()
            .flatten()
            .min();
            // Biased: an unbiased select draws its branch order from tokio's unseeded RNG.
            tokio::select! {
                biased;
                request = requests.recv() => match request {
                    Some(r) => inputs.push(Input::Request(r)),
                    None => {
                        // Dropping the client closes its session.
                        if let Some(session) = client.session {
                            let _ = self.model.close(&self.host, session);
                        }
                        return;
                    }
                },
                _ = changes.changed() => {
                    changes.borrow_and_update();
                    client.changes(&self, Instant::now());
                }
                _ = tokio::time::sleep_until(wake.unwrap_or(start)), if wake.is_some() => {
                    let t = Instant::now();
                    inputs.extend(client.ping(&self, t));
                    inputs.extend(client.due_notifications(t));
                    inputs.push(Input::Tick);
                }
            }
        }
    }
}
