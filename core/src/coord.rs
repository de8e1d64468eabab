//! The coordination policy: one member's ZooKeeper sessions as a pure state machine.
//!
//! [`Coordination`] decides everything about talking to ZooKeeper — when to build a session
//! and how long to back off, which watches to set, when to read `/members` and `/jobs`
//! (after the watches, after a reconnection, after a notification, after a failed read), how
//! to write our ephemeral member znode (create; set it if this session owns it; delete and
//! recreate it if an earlier session left it), when to retry a failed write and when to give
//! up, re-registration in every new session, and which snapshots reach the node (versions are
//! zxids; an older snapshot than the one delivered in the session is dropped).
//!
//! A shell carries out its [`Output`]s and turns what happens into [`Input`]s: the
//! zookeeper-client shell in production (`adapters::zk`) and the ZooKeeper model in the
//! simulation (`sim::zk`). Time is an argument; [`Coordination::next_wake`] says when to
//! hand in [`Input::Tick`]. Each operation carries an [`OpId`] that its answer echoes, so a
//! late answer from an operation the policy no longer waits for (an older session) is ignored.
//!
//! Layout (ARCHITECTURE.md, "Coordination"): `/jobs/<job_name>` (persistent, one job's
//! YAML) and `/members/<member_id>` (ephemeral, JSON [`MemberRecord`]).
//!
//! Snapshot versions are the highest zxid observed in the tree: the parent's `pzxid` (the
//! last child creation or deletion) and every child's `mzxid` (its last data change). zxids
//! are global to the ensemble and only grow, so every change to the tree (join, leave, record
//! update) raises the version — `cversion` or `pzxid` alone would miss record updates
//! (draining) — and versions rise across sessions too.
//!
//! Snapshots also carry the server's times of the changes they reflect (each child's
//! `ctime`/`mtime`): the node computes handoff slots from them (ARCHITECTURE.md,
//! "Membership and handoff").

use std::fmt;
use std::time::Duration;

use crate::member::{JobsSnapshot, MemberRecord, MembersSnapshot};
use crate::node::Event;
use crate::time::Timestamp;

/// Where the member records live, below the chroot.
pub const MEMBERS_PATH: &str = "/members";
/// Where the jobs live, below the chroot.
pub const JOBS_PATH: &str = "/jobs";
/// First delay before building a new session after a failed attempt.
pub const RECONNECT_DELAY_MIN: Duration = Duration::from_millis(100);
/// Longest delay between attempts to build a session (the delay doubles up to it; attempts
/// never stop, since a member must never give up on its session).
pub const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(5);
/// How long notifications are gathered before a tree is re-read (coalesces bursts; a later
/// notification never pushes the read further out, so the delay is bounded).
pub const COALESCE_DELAY: Duration = Duration::from_millis(20);
/// Delay before a failed snapshot read or member write is tried again.
pub const RETRY_DELAY: Duration = Duration::from_millis(250);
/// Most attempts to carry out one member request within one session.
pub const REQUEST_ATTEMPTS_MAX: u32 = 40;
/// Rounds of create / stat / set-or-delete within one attempt to write our record: each
/// round either succeeds or removes a node an earlier session left.
pub const PUT_ROUNDS_MAX: u32 = 3;

/// One of the two trees a member watches and reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tree {
    /// `/members`.
    Members,
    /// `/jobs`.
    Jobs,
}

impl Tree {
    /// The tree's path below the chroot.
    pub fn path(self) -> &'static str {
        match self {
            Tree::Members => MEMBERS_PATH,
            Tree::Jobs => JOBS_PATH,
        }
    }

    fn index(self) -> usize {
        match self {
            Tree::Members => 0,
            Tree::Jobs => 1,
        }
    }
}

/// Names one operation the policy asked for; its answer carries the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

/// What the node asks of the coordination service (its member commands).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberRequest {
    /// Create our ephemeral member record (again, after an expiry).
    Register(MemberRecord),
    /// Replace our member record.
    Update(MemberRecord),
    /// Delete our member record.
    Deregister,
}

/// One child of a tree as read: its name, data, `mzxid` and the server's times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    /// The znode's name (not its path).
    pub name: String,
    /// Its data.
    pub data: Vec<u8>,
    /// The zxid of its last data change.
    pub mzxid: i64,
    /// The server's time of its creation (`Stat.ctime`, ms since the epoch).
    pub ctime: Timestamp,
    /// The server's time of its last data change (`Stat.mtime`; its creation if none).
    pub mtime: Timestamp,
}

impl Child {
    /// The time of the latest change to the znode: the later of `ctime` and `mtime`.
    pub fn changed_at(&self) -> Timestamp {
        self.ctime.max(self.mtime)
    }
}

/// A tree as read: the parent's `pzxid` and `cversion` and every child still there when its
/// data was read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeRead {
    /// The zxid of the parent's last child creation or deletion.
    pub pzxid: i64,
    /// The parent's child version: how many children have been created and deleted in it.
    pub cversion: i32,
    /// The children, any order (a child deleted between the listing and its read is left out).
    pub children: Vec<Child>,
}

impl TreeRead {
    /// The tree's version: the highest zxid in it (see the module doc).
    pub fn version(&self) -> i64 {
        self.children
            .iter()
            .map(|c| c.mzxid)
            .fold(self.pzxid, i64::max)
    }
}

/// The parts of a znode's stat the policy uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeStat {
    /// The session that owns the (ephemeral) node; 0 for a persistent one.
    pub ephemeral_owner: i64,
    /// The data version (for conditional set and delete).
    pub version: i32,
}

/// An operation on our member znode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberOp {
    /// Create the ephemeral znode `path` with `data`.
    Create {
        /// The znode.
        path: String,
        /// JSON [`MemberRecord`].
        data: Vec<u8>,
    },
    /// Read the stat of `path` (`None` if it does not exist).
    Stat {
        /// The znode.
        path: String,
    },
    /// Set the data of `path` if its version is still `version`.
    Set {
        /// The znode.
        path: String,
        /// JSON [`MemberRecord`].
        data: Vec<u8>,
        /// The expected data version.
        version: i32,
    },
    /// Delete `path` (if its version is still `version`, when given).
    Delete {
        /// The znode.
        path: String,
        /// The expected data version; `None` deletes whatever version.
        version: Option<i32>,
    },
}

/// ZooKeeper's answer to a [`MemberOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Done (create, set, delete).
    Ok,
    /// The stat asked for; `None` when the node does not exist.
    Stat(Option<NodeStat>),
    /// Create: the node exists.
    NodeExists,
    /// Set, delete: the node does not exist.
    NoNode,
    /// Set, delete: the node's version is not the one given.
    BadVersion,
    /// Anything else (connection loss, timeout, ...), with ZooKeeper's or the shell's words.
    Failed(String),
}

/// What happens to the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Time passed: the policy carries out what is due. A spurious tick is a no-op.
    Tick,
    /// The node's member command.
    Request(MemberRequest),
    /// The session asked for by [`Output::Connect`] is established, with this id.
    SessionStarted {
        /// The session id (what ephemeral nodes it creates name as their owner).
        session: i64,
    },
    /// [`Output::Connect`] failed.
    ConnectFailed {
        /// Why.
        error: String,
    },
    /// The connection was lost; the session has not expired (yet).
    Disconnected,
    /// The connection is back within the same session.
    Reconnected,
    /// The session is gone (expired, closed, refused): its ephemeral nodes with it.
    Expired,
    /// The answer to [`Output::Watch`].
    WatchAnswered {
        /// The operation.
        op: OpId,
        /// `Err` with the reason when the watch could not be set.
        result: Result<(), String>,
    },
    /// A watch notification: a node below `tree` was created, changed or deleted.
    Notified(Tree),
    /// The answer to [`Output::Read`].
    ReadAnswered {
        /// The operation.
        op: OpId,
        /// The tree, or why it could not be read.
        result: Result<TreeRead, String>,
    },
    /// The answer to [`Output::Member`].
    MemberAnswered {
        /// The operation.
        op: OpId,
        /// ZooKeeper's answer.
        answer: Answer,
    },
}

/// What the policy asks its shell to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Close the current session, if any, and build a new one (chroot, `/jobs`, `/members`);
    /// answer [`Input::SessionStarted`] or [`Input::ConnectFailed`].
    Connect,
    /// Set a persistent recursive watch on `tree`; answer [`Input::WatchAnswered`], then
    /// send [`Input::Notified`] for every change below it.
    Watch {
        /// The operation.
        op: OpId,
        /// Which tree.
        tree: Tree,
    },
    /// Read every child of `tree` with its data and stat; answer [`Input::ReadAnswered`].
    Read {
        /// The operation.
        op: OpId,
        /// Which tree.
        tree: Tree,
    },
    /// Carry out `request` on our member znode; answer [`Input::MemberAnswered`].
    Member {
        /// The operation.
        op: OpId,
        /// What to do.
        request: MemberOp,
    },
    /// Hand this event to the node.
    Deliver(CoordEvent),
    /// Something worth a log line.
    Note(Note),
}

/// What the coordination service tells the node: an [`Event`] of its own kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoordEvent {
    /// [`Event::SessionConnected`].
    SessionConnected,
    /// [`Event::SessionDisconnected`].
    SessionDisconnected,
    /// [`Event::SessionExpired`].
    SessionExpired,
    /// [`Event::MembersChanged`].
    MembersChanged(MembersSnapshot),
    /// [`Event::JobsChanged`].
    JobsChanged(JobsSnapshot),
}

impl From<CoordEvent> for Event {
    fn from(e: CoordEvent) -> Event {
        match e {
            CoordEvent::SessionConnected => Event::SessionConnected,
            CoordEvent::SessionDisconnected => Event::SessionDisconnected,
            CoordEvent::SessionExpired => Event::SessionExpired,
            CoordEvent::MembersChanged(s) => Event::MembersChanged(s),
            CoordEvent::JobsChanged(s) => Event::JobsChanged(s),
        }
    }
}

/// What the policy tells the shell to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// A session could not be built; the next attempt is in `retry_in`.
    ConnectFailed {
        /// Why.
        error: String,
        /// The backoff.
        retry_in: Duration,
    },
    /// A watch could not be set; a new session is built after `retry_in`.
    WatchFailed {
        /// Why.
        error: String,
        /// The backoff.
        retry_in: Duration,
    },
    /// A tree could not be read; it is read again after [`RETRY_DELAY`].
    ReadFailed {
        /// Which tree.
        tree: Tree,
        /// Why.
        error: String,
    },
    /// A read answered an older version than the one delivered in this session: dropped.
    StaleRead {
        /// Which tree.
        tree: Tree,
        /// The version read.
        version: i64,
        /// The version delivered.
        delivered: i64,
    },
    /// A member znode that is not a valid record of its name: left out of the snapshot.
    MemberSkipped {
        /// The znode's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A job znode that is not UTF-8: its invalid bytes were replaced.
    JobNotUtf8 {
        /// The job.
        name: String,
    },
    /// Our member znode was left by an earlier session (owner `owner`): it is deleted and
    /// created again, since it would vanish with that session.
    ReplacingStaleRecord {
        /// The znode.
        path: String,
        /// The session that owns it.
        owner: i64,
    },
    /// Writing our record failed; it is tried again after [`RETRY_DELAY`].
    WriteFailed {
        /// Why.
        error: String,
        /// Attempts so far for this request in this session.
        attempt: u32,
    },
    /// Writing our record failed too often (or cannot succeed); no more attempts until the
    /// next request or session.
    WriteAbandoned {
        /// Why.
        error: String,
        /// Attempts made.
        attempts: u32,
    },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::ConnectFailed { error, retry_in } => write!(
                f,
                "ZooKeeper session could not be built: {error}; retrying in {} ms",
                retry_in.as_millis()
            ),
            Note::WatchFailed { error, retry_in } => write!(
                f,
                "ZooKeeper watches could not be set: {error}; new session in {} ms",
                retry_in.as_millis()
            ),
            Note::ReadFailed { tree, error } => {
                write!(f, "reading {} failed: {error}; retrying", tree.path())
            }
            Note::StaleRead {
                tree,
                version,
                delivered,
            } => write!(
                f,
                "read of {} at version {version} is older than the delivered {delivered}; dropped",
                tree.path()
            ),
            Note::MemberSkipped { name, reason } => {
                write!(f, "member record {MEMBERS_PATH}/{name} skipped: {reason}")
            }
            Note::JobNotUtf8 { name } => {
                write!(f, "job znode {JOBS_PATH}/{name} is not UTF-8; invalid bytes replaced")
            }
            Note::ReplacingStaleRecord { path, owner } => write!(
                f,
                "removing our member record {path} left by an earlier session ({owner:#x})"
            ),
            Note::WriteFailed { error, attempt } => write!(
                f,
                "member record write failed (attempt {attempt}): {error}; retrying"
            ),
            Note::WriteAbandoned { error, attempts } => write!(
                f,
                "member record write failed {attempts} times: {error}; giving up until the next request or session"
            ),
        }
    }
}

/// The policy's timings and bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// See [`RECONNECT_DELAY_MIN`].
    pub reconnect_delay_min: Duration,
    /// See [`RECONNECT_DELAY_MAX`].
    pub reconnect_delay_max: Duration,
    /// See [`COALESCE_DELAY`].
    pub coalesce_delay: Duration,
    /// See [`RETRY_DELAY`].
    pub retry_delay: Duration,
    /// See [`REQUEST_ATTEMPTS_MAX`].
    pub request_attempts_max: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            reconnect_delay_min: RECONNECT_DELAY_MIN,
            reconnect_delay_max: RECONNECT_DELAY_MAX,
            coalesce_delay: COALESCE_DELAY,
            retry_delay: RETRY_DELAY,
            request_attempts_max: REQUEST_ATTEMPTS_MAX,
        }
    }
}

/// The session as the policy knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// No session; a new one is built at `at`.
    Down { at: Timestamp },
    /// [`Output::Connect`] is being carried out.
    Connecting,
    /// A session exists.
    Up {
        session: i64,
        /// The connection is up (not lost within the session).
        connected: bool,
        /// Both watches are set and the node was told `SessionConnected`.
        ready: bool,
    },
}

/// One tree's reading.
#[derive(Clone, Debug, Default)]
struct TreeState {
    /// The watch being set.
    watch: Option<OpId>,
    /// The read in flight.
    read: Option<OpId>,
    /// A notification came while a read was in flight: read again after it.
    dirty: bool,
    /// When the next read is due.
    due: Option<Timestamp>,
    /// The version last delivered in this session.
    delivered: Option<i64>,
}

/// What our member znode should be.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Wanted {
    /// Never asked for.
    Nothing,
    /// This record.
    Record(MemberRecord),
    /// Gone (the id of the last record asked for, if any).
    Gone(Option<String>),
}

/// The step of a write in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Create { round: u32 },
    Stat { round: u32 },
    Set { round: u32 },
    DeleteStale { round: u32 },
    Remove,
}

/// Our member znode's write state.
#[derive(Clone, Debug)]
struct Member {
    wanted: Wanted,
    /// Bumped by every request that changes `wanted`.
    generation: u64,
    /// ZooKeeper holds `wanted` in this session.
    synced: bool,
    /// A write is wanted and not abandoned.
    pending: bool,
    /// When the next write attempt is due.
    due: Option<Timestamp>,
    /// The operation in flight, its step and the generation it writes.
    op: Option<(OpId, Step, u64)>,
    /// Failed attempts for this generation in this session.
    attempts: u32,
}

/// The coordination policy of one member; see the module doc.
#[derive(Clone, Debug)]
pub struct Coordination {
    settings: Settings,
    next_op: u64,
    link: Link,
    reconnect_delay: Duration,
    trees: [TreeState; 2],
    member: Member,
}

impl Coordination {
    /// A policy with no session yet; the first [`Input::Tick`] asks for one.
    pub fn new(settings: Settings) -> Coordination {
        Coordination {
            reconnect_delay: settings.reconnect_delay_min,
            settings,
            next_op: 0,
            link: Link::Down {
                at: Timestamp(i64::MIN),
            },
            trees: Default::default(),
            member: Member {
                wanted: Wanted::Nothing,
                generation: 0,
                synced: true,
                pending: false,
                due: None,
                op: None,
                attempts: 0,
            },
        }
    }

    /// When the policy next wants an [`Input::Tick`]; `None` when it waits only for inputs.
    pub fn next_wake(&self) -> Option<Timestamp> {
        match self.link {
            Link::Down { at } => Some(at),
            Link::Connecting => None,
            Link::Up {
                connected: true,
                ready: true,
                ..
            } => self
                .trees
                .iter()
                .filter(|t| t.read.is_none())
                .filter_map(|t| t.due)
                .chain(self.member.due.filter(|_| self.member.op.is_none()))
                .min(),
            Link::Up { .. } => None,
        }
    }

    /// Whether a session is established and its watches are set.
    pub fn is_ready(&self) -> bool {
        matches!(self.link, Link::Up { ready: true, .. })
    }

    /// The id of the current session, if any.
    pub fn session(&self) -> Option<i64> {
        match self.link {
            Link::Up { session, .. } => Some(session),
            _ => None,
        }
    }

    /// Handles one input at `now`; returns what to do, in order.
    pub fn handle(&mut self, now: Timestamp, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Tick => {}
            Input::Request(request) => self.on_request(now, request),
            Input::SessionStarted { session } => self.on_session_started(session, &mut out),
            Input::ConnectFailed { error } => {
                if self.link == Link::Connecting {
                    let retry_in = self.backoff();
                    self.link = Link::Down { at: now + retry_in };
                    out.push(Output::Note(Note::ConnectFailed { error, retry_in }));
                }
            }
            Input::Disconnected => {
                if let Link::Up {
                    connected: connected @ true,
                    ready,
                    ..
                } = &mut self.link
                {
                    *connected = false;
                    if *ready {
                        out.push(Output::Deliver(CoordEvent::SessionDisconnected));
                    }
                }
            }
            Input::Reconnected => self.on_reconnected(now, &mut out),
            Input::Expired => self.on_expired(now, &mut out),
            Input::WatchAnswered { op, result } => self.on_watch(now, op, result, &mut out),
            Input::Notified(tree) => self.on_notified(now, tree),
            Input::ReadAnswered { op, result } => self.on_read(now, op, result, &mut out),
            Input::MemberAnswered { op, answer } => {
                self.on_member_answer(now, op, answer, &mut out)
            }
        }
        self.drive(now, &mut out);
        out
    }

    fn op(&mut self) -> OpId {
        self.next_op += 1;
        OpId(self.next_op)
    }

    /// The current reconnect delay; doubles the next one, up to the maximum.
    fn backoff(&mut self) -> Duration {
        let d = self.reconnect_delay;
        self.reconnect_delay = (d * 2).min(self.settings.reconnect_delay_max);
        d
    }

    /// Forgets everything of the current session.
    fn reset_session(&mut self) {
        for t in &mut self.trees {
            *t = TreeState::default();
        }
        self.member.op = None;
        self.member.due = None;
    }

    // ---- session ------------------------------------------------------------------

    fn on_session_started(&mut self, session: i64, out: &mut Vec<Output>) {
        if self.link != Link::Connecting {
            return;
        }
        self.reset_session();
        self.link = Link::Up {
            session,
            connected: true,
            ready: false,
        };
        // The ephemeral record of any earlier session is gone (or going): write ours anew.
        self.member.synced = !matches!(self.member.wanted, Wanted::Record(_));
        self.member.pending = !self.member.synced;
        self.member.attempts = 0;
        // Watches first, then reads: a change between the two is never missed.
        for tree in [Tree::Members, Tree::Jobs] {
            let op = self.op();
            self.trees[tree.index()].watch = Some(op);
            out.push(Output::Watch { op, tree });
        }
    }

    fn on_watch(
        &mut self,
        now: Timestamp,
        op: OpId,
        result: Result<(), String>,
        out: &mut Vec<Output>,
    ) {
        let Some(t) = self.trees.iter_mut().find(|t| t.watch == Some(op)) else {
            return;
        };
        t.watch = None;
        if let Err(error) = result {
            // Without both watches the view could go stale unnoticed: start over.
            self.reset_session();
            let retry_in = self.backoff();
            self.link = Link::Down { at: now + retry_in };
            out.push(Output::Note(Note::WatchFailed { error, retry_in }));
            return;
        }
        if self.trees.iter().any(|t| t.watch.is_some()) {
            return;
        }
        if let Link::Up {
            ready, connected, ..
        } = &mut self.link
        {
            *ready = true;
            self.reconnect_delay = self.settings.reconnect_delay_min;
            if *connected {
                out.push(Output::Deliver(CoordEvent::SessionConnected));
            }
        }
        self.all_due(now);
    }

    fn on_reconnected(&mut self, now: Timestamp, out: &mut Vec<Output>) {
        let Link::Up {
            connected: connected @ false,
            ready,
            ..
        } = &mut self.link
        else {
            return;
        };
        *connected = true;
        if *ready {
            out.push(Output::Deliver(CoordEvent::SessionConnected));
            // Notifications during the disconnection can be lost (ZOOKEEPER-4698): re-read.
            self.all_due(now);
        }
    }

    fn on_expired(&mut self, now: Timestamp, out: &mut Vec<Output>) {
        match self.link {
            Link::Up { ready, .. } => {
                self.reset_session();
                if ready {
                    out.push(Output::Deliver(CoordEvent::SessionExpired));
                }
                self.reconnect_delay = self.settings.reconnect_delay_min;
                self.link = Link::Down { at: now };
            }
            Link::Down { .. } | Link::Connecting => {}
        }
    }

    /// Both reads due now, and our record if it waits for a write.
    fn all_due(&mut self, now: Timestamp) {
        for t in &mut self.trees {
            t.due = Some(now);
        }
        if self.member.pending && self.member.op.is_none() {
            self.member.due = Some(now);
        }
    }

    // ---- reads ----------------------------------------------------------------------

    fn on_notified(&mut self, now: Timestamp, tree: Tree) {
        if !self.is_ready() {
            return;
        }
        let t = &mut self.trees[tree.index()];
        if t.read.is_some() {
            t.dirty = true;
        } else if t.due.is_none() {
            t.due = Some(now + self.settings.coalesce_delay);
        }
    }

    fn on_read(
        &mut self,
        now: Timestamp,
        op: OpId,
        result: Result<TreeRead, String>,
        out: &mut Vec<Output>,
    ) {
        let Some(tree) = [Tree::Members, Tree::Jobs]
            .into_iter()
            .find(|t| self.trees[t.index()].read == Some(op))
        else {
            return;
        };
        let (coalesce, retry) = (self.settings.coalesce_delay, self.settings.retry_delay);
        let t = &mut self.trees[tree.index()];
        t.read = None;
        let read = match result {
            Ok(read) => read,
            Err(error) => {
                t.due = Some(now + retry);
                t.dirty = false;
                out.push(Output::Note(Note::ReadFailed { tree, error }));
                return;
            }
        };
        if std::mem::take(&mut t.dirty) && t.due.is_none() {
            t.due = Some(now + coalesce);
        }
        let version = read.version();
        match t.delivered {
            Some(delivered) if version < delivered => {
                out.push(Output::Note(Note::StaleRead {
                    tree,
                    version,
                    delivered,
                }));
                return;
            }
            // The same version is the same tree: nothing new for the node.
            Some(delivered) if version == delivered => return,
            _ => t.delivered = Some(version),
        }
        let event = match tree {
            Tree::Members => CoordEvent::MembersChanged(members_snapshot(
                version,
                read.cversion,
                read.children,
                out,
            )),
            Tree::Jobs => CoordEvent::JobsChanged(jobs_snapshot(version, read.children, out)),
        };
        out.push(Output::Deliver(event));
    }

    // ---- our member record ------------------------------------------------------------

    fn on_request(&mut self, now: Timestamp, request: MemberRequest) {
        let wanted = match request {
            MemberRequest::Register(r) | MemberRequest::Update(r) => Wanted::Record(r),
            MemberRequest::Deregister => Wanted::Gone(match &self.member.wanted {
                Wanted::Record(r) => Some(r.id.clone()),
                Wanted::Gone(id) => id.clone(),
                Wanted::Nothing => None,
            }),
        };
        let m = &mut self.member;
        if m.wanted == wanted && (m.synced || m.pending) {
            return;
        }
        m.wanted = wanted;
        m.generation += 1;
        m.synced = false;
        m.pending = true;
        m.attempts = 0;
        if m.op.is_none() {
            m.due = Some(now);
        }
    }

    fn member_path(id: &str) -> String {
        format!("{MEMBERS_PATH}/{id}")
    }

    /// Starts a write of `wanted` (its first step), or finds there is nothing to do.
    fn start_write(&mut self, out: &mut Vec<Output>) {
        self.member.due = None;
        match self.member.wanted.clone() {
            Wanted::Nothing | Wanted::Gone(None) => self.write_done(),
            Wanted::Gone(Some(id)) => {
                let path = Self::member_path(&id);
                self.issue(
                    Step::Remove,
                    MemberOp::Delete {
                        path,
                        version: None,
                    },
                    out,
                );
            }
            Wanted::Record(r) => {
                if r.id.is_empty() || r.id.contains('/') {
                    let error = format!("member id {:?} cannot be a znode name", r.id);
                    self.member.pending = false;
                    out.push(Output::Note(Note::WriteAbandoned { error, attempts: 0 }));
                    return;
                }
                self.create(&r, 0, out);
            }
        }
    }

    fn create(&mut self, r: &MemberRecord, round: u32, out: &mut Vec<Output>) {
        let path = Self::member_path(&r.id);
        let data = serde_json::to_vec(r).expect("a MemberRecord always serializes");
        self.issue(Step::Create { round }, MemberOp::Create { path, data }, out);
    }

    fn issue(&mut self, step: Step, request: MemberOp, out: &mut Vec<Output>) {
        let op = self.op();
        self.member.op = Some((op, step, self.member.generation));
        out.push(Output::Member { op, request });
    }

    fn write_done(&mut self) {
        self.member.synced = true;
        self.member.pending = false;
    }

    fn on_member_answer(
        &mut self,
        now: Timestamp,
        op: OpId,
        answer: Answer,
        out: &mut Vec<Output>,
    ) {
        let Some((current, step, generation)) = self.member.op else {
            return;
        };
        if current != op {
            return;
        }
        self.member.op = None;
        let Link::Up { session, .. } = self.link else {
            return;
        };
        if generation != self.member.generation {
            // A newer request came meanwhile: write that one at once.
            self.member.due = Some(now);
            return;
        }
        let record = match &self.member.wanted {
            Wanted::Record(r) => Some(r.clone()),
            _ => None,
        };
        let next_round = |round: u32| (round + 1 < PUT_ROUNDS_MAX).then_some(round + 1);
        let failure = match (step, answer, record) {
            (Step::Remove, Answer::Ok | Answer::NoNode, _) => return self.write_done(),
            (Step::Create { .. } | Step::Set { .. }, Answer::Ok, _) => return self.write_done(),
            (Step::Create { round }, Answer::NodeExists, Some(r)) => {
                let path = Self::member_path(&r.id);
                return self.issue(Step::Stat { round }, MemberOp::Stat { path }, out);
            }
            (Step::Stat { round }, Answer::Stat(None), Some(r)) => match next_round(round) {
                Some(round) => return self.create(&r, round, out),
                None => "create: the node exists".to_string(),
            },
            (Step::Stat { round }, Answer::Stat(Some(stat)), Some(r)) => {
                let path = Self::member_path(&r.id);
                if stat.ephemeral_owner == session {
                    let data = serde_json::to_vec(&r).expect("a MemberRecord always serializes");
                    let version = stat.version;
                    let request = MemberOp::Set {
                        path,
                        data,
                        version,
                    };
                    return self.issue(Step::Set { round }, request, out);
                }
                out.push(Output::Note(Note::ReplacingStaleRecord {
                    path: path.clone(),
                    owner: stat.ephemeral_owner,
                }));
                let request = MemberOp::Delete {
                    path,
                    version: Some(stat.version),
                };
                return self.issue(Step::DeleteStale { round }, request, out);
            }
            (
                Step::Set { round } | Step::DeleteStale { round },
                Answer::NoNode | Answer::BadVersion,
                Some(r),
            )
            | (Step::DeleteStale { round }, Answer::Ok, Some(r)) => match next_round(round) {
                Some(round) => return self.create(&r, round, out),
                None => "create: the node exists".to_string(),
            },
            (_, Answer::Failed(error), _) => error,
            (step, answer, _) => format!("unexpected answer {answer:?} to {step:?}"),
        };
        self.member.attempts += 1;
        let attempt = self.member.attempts;
        if attempt < self.settings.request_attempts_max {
            self.member.due = Some(now + self.settings.retry_delay);
            out.push(Output::Note(Note::WriteFailed {
                error: failure,
                attempt,
            }));
        } else {
            self.member.pending = false;
            out.push(Output::Note(Note::WriteAbandoned {
                error: failure,
                attempts: attempt,
            }));
        }
    }

    // ---- carrying out what is due ----------------------------------------------------------

    fn drive(&mut self, now: Timestamp, out: &mut Vec<Output>) {
        match self.link {
            Link::Down { at } if at <= now => {
                self.link = Link::Connecting;
                out.push(Output::Connect);
            }
            Link::Up {
                connected: true,
                ready: true,
                ..
            } => {
                // Our record first, then the reads: a read after our write sees it.
                if self.member.op.is_none() && self.member.due.is_some_and(|at| at <= now) {
                    self.start_write(out);
                }
                for tree in [Tree::Members, Tree::Jobs] {
                    let t = &self.trees[tree.index()];
                    if t.read.is_none() && t.due.is_some_and(|at| at <= now) {
                        let op = self.op();
                        let t = &mut self.trees[tree.index()];
                        t.due = None;
                        t.read = Some(op);
                        out.push(Output::Read { op, tree });
                    }
                }
            }
            _ => {}
        }
    }
}

/// The members snapshot of a read: valid records whose id is their znode's name.
fn members_snapshot(
    version: i64,
    cversion: i32,
    children: Vec<Child>,
    out: &mut Vec<Output>,
) -> MembersSnapshot {
    let mut members = Vec::with_capacity(children.len());
    let mut changed = std::collections::BTreeMap::new();
    let mut joined = std::collections::BTreeMap::new();
    let changed_at = latest_change(&children);
    for child in children {
        match serde_json::from_slice::<MemberRecord>(&child.data) {
            Ok(record) if record.id == child.name => {
                changed.insert(record.id.clone(), child.changed_at());
                joined.insert(record.id.clone(), child.ctime);
                members.push(record)
            }
            Ok(record) => out.push(Output::Note(Note::MemberSkipped {
                reason: format!("its id {:?} differs from its znode name", record.id),
                name: child.name,
            })),
            Err(e) => out.push(Output::Note(Note::MemberSkipped {
                name: child.name,
                reason: format!("invalid JSON: {e}"),
            })),
        }
    }
    members.sort_by(|a, b| a.id.cmp(&b.id));
    MembersSnapshot {
        version,
        cversion,
        changed_at,
        members,
        changed,
        joined,
    }
}

/// The latest `ctime`/`mtime` among `children` (the epoch when there are none).
fn latest_change(children: &[Child]) -> Timestamp {
    children
        .iter()
        .map(Child::changed_at)
        .max()
        .unwrap_or_default()
}

/// The jobs snapshot of a read, sorted by name. A job that is not UTF-8 cannot be YAML; its
/// lossy text keeps it visible to the node, which rejects it alone rather than silently
/// dropping it.
fn jobs_snapshot(version: i64, children: Vec<Child>, out: &mut Vec<Output>) -> JobsSnapshot {
    let changed_at = latest_change(&children);
    let mut jobs: Vec<(String, String)> = children
        .into_iter()
        .map(|child| {
            let yaml = match String::from_utf8(child.data) {
                Ok(s) => s,
                Err(e) => {
                    out.push(Output::Note(Note::JobNotUtf8 {
                        name: child.name.clone(),
                    }));
                    String::from_utf8_lossy(e.as_bytes()).into_owned()
                }
            };
            (child.name, yaml)
        })
        .collect();
    jobs.sort();
    JobsSnapshot {
        version,
        changed_at,
        jobs,
    }
}
