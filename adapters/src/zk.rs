//! The ZooKeeper coordinator: our ephemeral member znode, persistent recursive watches on
//! `/members` and `/jobs`, and full versioned snapshots of both for the core.
//!
//! Layout (DESIGN.md): `/<chroot>/jobs/<job_name>` (persistent, one job's YAML) and
//! `/<chroot>/members/<member_id>` (ephemeral, JSON [`MemberRecord`]).
//!
//! Snapshot versions are the highest zxid observed in the tree: the parent's `pzxid`
//! (the last child creation or deletion) and every child's `mzxid` (its last data change).
//! zxids are global and only grow, so every change to the tree (join, leave, record update)
//! raises the version — `cversion` or `pzxid` alone would miss record updates (draining).
//! The same holds across sessions, since zxids belong to the ensemble, not the session.

use std::time::Duration;

use futures::future::join_all;
use scrapepool_core::member::{JobsSnapshot, MemberRecord, MembersSnapshot};
use scrapepool_core::Event;
use tokio::sync::mpsc::Receiver;
use tokio::time::{sleep_until, timeout, Instant};
use zookeeper_client as zk;

use crate::ports::{CoordRequest, Coordinator, EventSender};

/// Where the member records live, below the chroot.
pub const MEMBERS_PATH: &str = "/members";
/// Where the jobs live, below the chroot.
pub const JOBS_PATH: &str = "/jobs";
/// Default ZooKeeper session timeout.
pub const SESSION_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Default deadline of one ZooKeeper call.
pub const OP_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
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

/// What went wrong talking to ZooKeeper.
#[derive(Debug, thiserror::Error)]
pub enum ZkError {
    /// The connect string is malformed.
    #[error("bad ZooKeeper connect string {connect:?}: {reason}")]
    BadConnectString {
        /// The string given.
        connect: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A call did not finish within its deadline.
    #[error("ZooKeeper {op} {path}: no answer within {timeout_ms} ms")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The znode (or the connect string).
        path: String,
        /// The deadline.
        timeout_ms: u128,
    },
    /// ZooKeeper answered with an error.
    #[error("ZooKeeper {op} {path}: {source}")]
    Zk {
        /// The operation.
        op: &'static str,
        /// The znode (or the connect string).
        path: String,
        /// ZooKeeper's error.
        source: zk::Error,
    },
    /// A member id that cannot be a znode name.
    #[error("member id {0:?} cannot be a znode name (empty or contains `/`)")]
    BadMemberId(String),
    /// A job name that cannot be a znode name.
    #[error("job name {0:?} cannot be a znode name (empty, `.`, `..`, or contains `/` or a control character)")]
    BadJobName(String),
}

impl ZkError {
    /// The ZooKeeper error code, when ZooKeeper answered.
    pub fn zk_error(&self) -> Option<&zk::Error> {
        match self {
            ZkError::Zk { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Runs `fut` (ZooKeeper call `op` on `path`) under `deadline`, naming both in any error.
async fn call<T>(
    op: &'static str,
    path: &str,
    deadline: Duration,
    fut: impl std::future::Future<Output = Result<T, zk::Error>>,
) -> Result<T, ZkError> {
    match timeout(deadline, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(ZkError::Zk {
            op,
            path: path.to_string(),
            source,
        }),
        Err(_) => Err(ZkError::Timeout {
            op,
            path: path.to_string(),
            timeout_ms: deadline.as_millis(),
        }),
    }
}

/// A connect string split into its servers and its chroot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectString {
    /// `host:port[,host:port]...`
    pub servers: String,
    /// The chroot (`/a/b`), if any.
    pub chroot: Option<String>,
}

impl ConnectString {
    /// Parses `host:port[,host:port][/chroot]`.
    ///
    /// zookeeper-client accepts the chroot inside the connect string too, but then requires
    /// the chroot znode to exist already; we split it off so we can create it first.
    pub fn parse(s: &str) -> Result<ConnectString, ZkError> {
        let bad = |reason: &str| ZkError::BadConnectString {
            connect: s.to_string(),
            reason: reason.to_string(),
        };
        let (servers, chroot) = match s.find('/') {
            Some(i) => (&s[..i], Some(&s[i..])),
            None => (s, None),
        };
        if servers.is_empty() {
            return Err(bad("no server"));
        }
        for server in servers.split(',') {
            let Some((host, port)) = server.rsplit_once(':') else {
                return Err(bad(&format!("server {server:?} is not host:port")));
            };
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad(&format!("server {server:?} is not host:port")));
            }
        }
        let chroot = match chroot {
            None | Some("/") => None,
            Some(c) => {
                if c.ends_with('/')
                    || c.contains("//")
                    || c.split('/').any(|p| p == "." || p == "..")
                {
                    return Err(bad("the chroot must be an absolute path without a trailing `/`, `//`, `.` or `..`"));
                }
                Some(c.to_string())
            }
        };
        Ok(ConnectString {
            servers: servers.to_string(),
            chroot,
        })
    }
}

/// Settings of the ZooKeeper coordinator.
#[derive(Clone, Debug)]
pub struct ZkConfig {
    /// `host:port[,host:port][/chroot]`.
    pub connect: String,
    /// The session timeout asked of the server (the server may clamp it).
    pub session_timeout: Duration,
    /// Deadline of every single ZooKeeper call.
    pub op_timeout: Duration,
}

impl ZkConfig {
    /// Settings with the default timeouts.
    pub fn new(connect: impl Into<String>) -> ZkConfig {
        ZkConfig {
            connect: connect.into(),
            session_timeout: SESSION_TIMEOUT_DEFAULT,
            op_timeout: OP_TIMEOUT_DEFAULT,
        }
    }
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

fn ephemeral() -> zk::CreateOptions<'static> {
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())
}

/// Opens a session, creates the chroot (if any) and `dirs` below it, and returns a client
/// rooted at the chroot.
async fn open_client(
    connect: &ConnectString,
    session_timeout: Duration,
    op_timeout: Duration,
    dirs: &[&str],
    fail_eagerly: bool,
) -> Result<zk::Client, ZkError> {
    let mut connector = zk::Client::connector().with_session_timeout(session_timeout);
    if fail_eagerly {
        // One pass over the servers, for a command line tool that should fail fast.
        connector = connector.with_fail_eagerly();
    }
    // The library keeps trying the servers for about one session timeout; our deadline is a
    // little longer so that its own, more precise error wins when it has one.
    let root = call(
        "connect",
        &connect.servers,
        session_timeout + op_timeout,
        connector.connect(&connect.servers),
    )
    .await?;
    let client = match &connect.chroot {
        None => root,
        Some(chroot) => {
            call(
                "mkdir",
                chroot,
                op_timeout,
                root.mkdir(chroot, &persistent()),
            )
            .await?;
            root.chroot(chroot.clone())
                .map_err(|_| ZkError::BadConnectString {
                    connect: connect.servers.clone(),
                    reason: format!("bad chroot {chroot:?}"),
                })?
        }
    };
    for dir in dirs {
        // Another member may create it at the same moment: NodeExists is success.
        match call(
            "create",
            dir,
            op_timeout,
            client.create(dir, &[], &persistent()),
        )
        .await
        {
            Ok(_) => {}
            Err(ZkError::Zk {
                source: zk::Error::NodeExists,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(client)
}

/// Reads every child of `parent` with its data and stat; children deleted meanwhile are left
/// out. Returns the tree's version (see the module doc) and `(name, data)` sorted by name.
async fn read_tree(
    client: &zk::Client,
    parent: &str,
    op_timeout: Duration,
) -> Result<(i64, Vec<(String, Vec<u8>)>), ZkError> {
    let (mut names, stat) = call(
        "get_children",
        parent,
        op_timeout,
        client.get_children(parent),
    )
    .await?;
    names.sort();
    // Requests are ordered when their futures are created, so they are pipelined on the one
    // connection and the whole read costs about one round trip.
    let reads: Vec<_> = names
        .iter()
        .map(|n| client.get_data(&format!("{parent}/{n}")))
        .collect();
    let results = call("get_data", parent, op_timeout, async {
        Ok(join_all(reads).await)
    })
    .await?;
    let mut version = stat.pzxid;
    let mut out = Vec::with_capacity(names.len());
    for (name, result) in names.into_iter().zip(results) {
        match result {
            Ok((data, stat)) => {
                version = version.max(stat.mzxid);
                out.push((name, data));
            }
            // Deleted between the listing and the read: the deletion raised pzxid and its
            // notification triggers another read.
            Err(zk::Error::NoNode) => {}
            Err(source) => {
                return Err(ZkError::Zk {
                    op: "get_data",
                    path: format!("{parent}/{name}"),
                    source,
                })
            }
        }
    }
    Ok((version, out))
}

/// Reads `/members` into a snapshot, skipping (with a warning) records that are not valid.
pub async fn read_members(
    client: &zk::Client,
    op_timeout: Duration,
) -> Result<MembersSnapshot, ZkError> {
    let (version, children) = read_tree(client, MEMBERS_PATH, op_timeout).await?;
    let mut members = Vec::with_capacity(children.len());
    for (name, data) in children {
        match serde_json::from_slice::<MemberRecord>(&data) {
            Ok(record) if record.id == name => members.push(record),
            Ok(record) => {
                tracing::warn!(znode = %format!("{MEMBERS_PATH}/{name}"), id = %record.id, "member record skipped: its id differs from its znode name")
            }
            Err(e) => {
                tracing::warn!(znode = %format!("{MEMBERS_PATH}/{name}"), error = %e, "member record skipped: invalid JSON")
            }
        }
    }
    Ok(MembersSnapshot { version, members })
}

/// Reads `/jobs` into a snapshot of `(name, yaml)`.
pub async fn read_jobs(client: &zk::Client, op_timeout: Duration) -> Result<JobsSnapshot, ZkError> {
    let (version, children) = read_tree(client, JOBS_PATH, op_timeout).await?;
    let jobs = children
        .into_iter()
        .map(|(name, data)| {
            // Not UTF-8 cannot be YAML; the lossy text keeps the job visible to the core,
            // which validates it (and rejects it alone) rather than silently dropping it.
            let yaml = match String::from_utf8(data) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(job = %name, "job znode is not UTF-8; invalid bytes replaced");
                    String::from_utf8_lossy(e.as_bytes()).into_owned()
                }
            };
            (name, yaml)
        })
        .collect();
    Ok(JobsSnapshot { version, jobs })
}

/// The coordinator on ZooKeeper; see [`Coordinator`].
#[derive(Clone, Debug)]
pub struct ZkCoordinator {
    config: ZkConfig,
}

impl ZkCoordinator {
    /// A coordinator with these settings (nothing is connected before `run`).
    pub fn new(config: ZkConfig) -> Result<ZkCoordinator, ZkError> {
        ConnectString::parse(&config.connect)?;
        Ok(ZkCoordinator { config })
    }
}

/// The member record the core last asked for, and whether ZooKeeper has it yet.
struct MemberIntent {
    /// `Some` after Register/Update, `None` after Deregister (or a new session).
    record: Option<MemberRecord>,
    /// The id of the last record asked for (what Deregister deletes).
    id: Option<String>,
    /// Whether `record` still has to be written (or deleted).
    pending: bool,
    /// Attempts so far for the pending write in this session.
    attempts: u32,
}

/// Why a session ended.
enum SessionEnd {
    /// The session is gone (expired, closed, auth failed): build a new one.
    Lost,
    /// `requests` closed: stop.
    Stopped,
}

impl Coordinator for ZkCoordinator {
    async fn run(self, events: EventSender, mut requests: Receiver<CoordRequest>) {
        let connect = match ConnectString::parse(&self.config.connect) {
            Ok(c) => c,
            Err(e) => {
                // `new` validated it; still, never panic: report and wait for the end.
                tracing::error!(error = %e, "ZooKeeper coordinator cannot start");
                while requests.recv().await.is_some() {}
                return;
            }
        };
        let mut intent = MemberIntent {
            record: None,
            id: None,
            pending: false,
            attempts: 0,
        };
        let mut delay = RECONNECT_DELAY_MIN;
        loop {
            // Requests that arrive while the session is being built are remembered (and
            // carried out once it is up) without restarting the attempt.
            let opened = {
                let open = open_client(
                    &connect,
                    self.config.session_timeout,
                    self.config.op_timeout,
                    &[JOBS_PATH, MEMBERS_PATH],
                    false,
                );
                tokio::pin!(open);
                loop {
                    tokio::select! {
                        r = &mut open => break r,
                        req = requests.recv() => match req {
                            None => return,
                            Some(req) => intent.apply_request(req),
                        },
                    }
                }
            };
            let client = match opened {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "ZooKeeper session could not be built");
                    let wake = Instant::now() + delay;
                    loop {
                        tokio::select! {
                            _ = sleep_until(wake) => break,
                            req = requests.recv() => match req {
                                None => return,
                                Some(req) => intent.apply_request(req),
                            },
                        }
                    }
                    delay = (delay * 2).min(RECONNECT_DELAY_MAX);
                    continue;
                }
            };
            tracing::info!(session = %client.session_id(), timeout_ms = client.session_timeout().as_millis() as u64, "ZooKeeper session established");
            match self
                .serve_session(&client, &events, &mut requests, &mut intent)
                .await
            {
                SessionEnd::Stopped => return,
                SessionEnd::Lost => {
                    // Our ephemeral record died with the session; the core registers again
                    // after the next SessionConnected.
                    intent = MemberIntent {
                        record: None,
                        id: None,
                        pending: false,
                        attempts: 0,
                    };
                    delay = RECONNECT_DELAY_MIN;
                }
            }
        }
    }
}

impl MemberIntent {
    fn apply_request(&mut self, req: CoordRequest) {
        self.record = match req {
            CoordRequest::Register(r) | CoordRequest::Update(r) => {
                self.id = Some(r.id.clone());
                Some(r)
            }
            CoordRequest::Deregister => None,
        };
        self.pending = true;
        self.attempts = 0;
    }
}

impl ZkCoordinator {
    /// Serves one session until it is lost or `requests` closes.
    async fn serve_session(
        &self,
        client: &zk::Client,
        events: &EventSender,
        requests: &mut Receiver<CoordRequest>,
        intent: &mut MemberIntent,
    ) -> SessionEnd {
        let op_timeout = self.config.op_timeout;
        let mut state = client.state_watcher();
        // Watches first, then reads: a change between the two is never missed.
        let watches = async {
            let m = call(
                "watch",
                MEMBERS_PATH,
                op_timeout,
                client.watch(MEMBERS_PATH, zk::AddWatchMode::PersistentRecursive),
            )
            .await?;
            let j = call(
                "watch",
                JOBS_PATH,
                op_timeout,
                client.watch(JOBS_PATH, zk::AddWatchMode::PersistentRecursive),
            )
            .await?;
            Ok::<_, ZkError>((m, j))
        };
        let (mut members_watch, mut jobs_watch) = match watches.await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "ZooKeeper watches could not be set; building a new session");
                return SessionEnd::Lost;
            }
        };
        let _ = events.send(Event::SessionConnected).await;
        let now = Instant::now();
        // Due times of work waiting: re-reading a tree, writing our record.
        let mut members_due = Some(now);
        let mut jobs_due = Some(now);
        let mut intent_due = intent.pending.then_some(now);
        loop {
            let next_read = [members_due, jobs_due].into_iter().flatten().min();
            tokio::select! {
                s = state.changed() => match s {
                    zk::SessionState::Disconnected => {
                        tracing::warn!("ZooKeeper connection lost; session not expired yet");
                        let _ = events.send(Event::SessionDisconnected).await;
                    }
                    zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                        tracing::info!("ZooKeeper connection re-established within the session");
                        let _ = events.send(Event::SessionConnected).await;
                        // Notifications during the disconnection can be lost (ZOOKEEPER-4698):
                        // re-read both trees.
                        let now = Instant::now();
                        members_due = Some(now);
                        jobs_due = Some(now);
                        if intent.pending {
                            intent_due = Some(now);
                        }
                    }
                    terminal => {
                        tracing::warn!(state = ?terminal, "ZooKeeper session lost; building a new one");
                        let _ = events.send(Event::SessionExpired).await;
                        return SessionEnd::Lost;
                    }
                },
                ev = members_watch.changed() => {
                    if ev.event_type == zk::EventType::Session {
                        if ev.session_state.is_terminated() {
                            // Either watch may learn of the end before the state watcher does.
                            tracing::warn!(state = ?ev.session_state, "ZooKeeper session lost; building a new one");
                            let _ = events.send(Event::SessionExpired).await;
                            return SessionEnd::Lost;
                        }
                    } else if members_due.is_none() {
                        members_due = Some(Instant::now() + COALESCE_DELAY);
                    }
                }
                ev = jobs_watch.changed() => {
                    if ev.event_type == zk::EventType::Session {
                        if ev.session_state.is_terminated() {
                            // Either watch may learn of the end before the state watcher does.
                            tracing::warn!(state = ?ev.session_state, "ZooKeeper session lost; building a new one");
                            let _ = events.send(Event::SessionExpired).await;
                            return SessionEnd::Lost;
                        }
                    } else if jobs_due.is_none() {
                        jobs_due = Some(Instant::now() + COALESCE_DELAY);
                    }
                }
                req = requests.recv() => match req {
                    None => return SessionEnd::Stopped,
                    Some(req) => {
                        intent.apply_request(req);
                        intent_due = Some(Instant::now());
                    }
                },
                _ = sleep_until(next_read.unwrap_or_else(Instant::now)), if next_read.is_some() => {
                    let now = Instant::now();
                    if members_due.is_some_and(|t| t <= now) {
                        match read_members(client, op_timeout).await {
                            Ok(snapshot) => {
                                members_due = None;
                                let _ = events.send(Event::MembersChanged(snapshot)).await;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "reading members failed; retrying");
                                members_due = Some(Instant::now() + RETRY_DELAY);
                            }
                        }
                    }
                    if jobs_due.is_some_and(|t| t <= now) {
                        match read_jobs(client, op_timeout).await {
                            Ok(snapshot) => {
                                jobs_due = None;
                                let _ = events.send(Event::JobsChanged(snapshot)).await;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "reading jobs failed; retrying");
                                jobs_due = Some(Instant::now() + RETRY_DELAY);
                            }
                        }
                    }
                }
                _ = sleep_until(intent_due.unwrap_or_else(Instant::now)), if intent_due.is_some() => {
                    intent_due = None;
                    let result = match &intent.record {
                        Some(record) => put_member(client, record, op_timeout).await,
                        None => delete_member(client, intent.id.as_deref(), op_timeout).await,
                    };
                    match result {
                        Ok(()) => intent.pending = false,
                        Err(e) => {
                            intent.attempts += 1;
                            if intent.attempts < REQUEST_ATTEMPTS_MAX {
                                tracing::warn!(error = %e, attempt = intent.attempts, "member record write failed; retrying");
                                intent_due = Some(Instant::now() + RETRY_DELAY);
                            } else {
                                tracing::error!(error = %e, attempts = intent.attempts, "member record write failed; giving up until the next request or session");
                                intent.pending = false;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Writes `record` as our ephemeral `/members/<id>`: creates it, or sets its data when it is
/// already ours (this session's), or deletes and recreates it when an earlier session of ours
/// left it behind (it would vanish with that session's expiry otherwise).
async fn put_member(
    client: &zk::Client,
    record: &MemberRecord,
    op_timeout: Duration,
) -> Result<(), ZkError> {
    let path = format!("{MEMBERS_PATH}/{}", record.id);
    if record.id.is_empty() || record.id.contains('/') {
        return Err(ZkError::BadMemberId(record.id.clone()));
    }
    let data = serde_json::to_vec(record).expect("a MemberRecord always serializes");
    let me = client.session_id().0;
    // Bounded: each round either succeeds or removes a stale node another session created.
    for _ in 0..3 {
        match call(
            "create",
            &path,
            op_timeout,
            client.create(&path, &data, &ephemeral()),
        )
        .await
        {
            Ok(_) => return Ok(()),
            Err(ZkError::Zk {
                source: zk::Error::NodeExists,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        let stat = match call("check_stat", &path, op_timeout, client.check_stat(&path)).await? {
            Some(stat) => stat,
            None => continue,
        };
        if stat.ephemeral_owner == me {
            match call(
                "set_data",
                &path,
                op_timeout,
                client.set_data(&path, &data, Some(stat.version)),
            )
            .await
            {
                Ok(_) => return Ok(()),
                Err(ZkError::Zk {
                    source: zk::Error::NoNode | zk::Error::BadVersion,
                    ..
                }) => continue,
                Err(e) => return Err(e),
            }
        }
        tracing::info!(znode = %path, owner = stat.ephemeral_owner, "removing our member record left by an earlier session");
        match call(
            "delete",
            &path,
            op_timeout,
            client.delete(&path, Some(stat.version)),
        )
        .await
        {
            Ok(())
            | Err(ZkError::Zk {
                source: zk::Error::NoNode | zk::Error::BadVersion,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
    }
    Err(ZkError::Zk {
        op: "create",
        path,
        source: zk::Error::NodeExists,
    })
}

/// Deletes our member record (Deregister): `/members/<id>` of the last record written.
async fn delete_member(
    client: &zk::Client,
    id: Option<&str>,
    op_timeout: Duration,
) -> Result<(), ZkError> {
    let Some(id) = id else { return Ok(()) };
    let path = format!("{MEMBERS_PATH}/{id}");
    match call("delete", &path, op_timeout, client.delete(&path, None)).await {
        Ok(())
        | Err(ZkError::Zk {
            source: zk::Error::NoNode,
            ..
        }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The jobs in ZooKeeper, for `scrapepool jobs`: one znode per job under `/jobs`.
pub struct ZkJobs {
    client: zk::Client,
    op_timeout: Duration,
}

/// What [`ZkJobs::apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The job was new.
    Created,
    /// The job existed with other YAML.
    Updated,
    /// The job existed with the same YAML.
    Unchanged,
}

/// Checks that `name` can be a znode name below `/jobs`.
pub fn check_job_name(name: &str) -> Result<(), ZkError> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.chars().any(char::is_control)
    {
        return Err(ZkError::BadJobName(name.to_string()));
    }
    Ok(())
}

impl ZkJobs {
    /// Connects (`host:port[,host:port][/chroot]`), creating the chroot and `/jobs` if missing.
    pub async fn connect(connect: &str, op_timeout: Duration) -> Result<ZkJobs, ZkError> {
        let connect = ConnectString::parse(connect)?;
        let client = open_client(
            &connect,
            SESSION_TIMEOUT_DEFAULT,
            op_timeout,
            &[JOBS_PATH],
            true,
        )
        .await?;
        Ok(ZkJobs { client, op_timeout })
    }

    fn path(name: &str) -> Result<String, ZkError> {
        check_job_name(name)?;
        Ok(format!("{JOBS_PATH}/{name}"))
    }

    /// Creates or replaces job `name` with `yaml`.
    pub async fn apply(&self, name: &str, yaml: &str) -> Result<Applied, ZkError> {
        let path = Self::path(name)?;
        let t = self.op_timeout;
        // Bounded: a concurrent delete or create flips us between the two branches at most once.
        for _ in 0..3 {
            match call("get_data", &path, t, self.client.get_data(&path)).await {
                Ok((data, _)) if data == yaml.as_bytes() => return Ok(Applied::Unchanged),
                Ok((_, stat)) => match call(
                    "set_data",
                    &path,
                    t,
                    self.client
                        .set_data(&path, yaml.as_bytes(), Some(stat.version)),
                )
                .await
                {
                    Ok(_) => return Ok(Applied::Updated),
                    Err(ZkError::Zk {
                        source: zk::Error::NoNode | zk::Error::BadVersion,
                        ..
                    }) => continue,
                    Err(e) => return Err(e),
                },
                Err(ZkError::Zk {
                    source: zk::Error::NoNode,
                    ..
                }) => match call(
                    "create",
                    &path,
                    t,
                    self.client.create(&path, yaml.as_bytes(), &persistent()),
                )
                .await
                {
                    Ok(_) => return Ok(Applied::Created),
                    Err(ZkError::Zk {
                        source: zk::Error::NodeExists,
                        ..
                    }) => continue,
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
        Err(ZkError::Zk {
            op: "apply",
            path,
            source: zk::Error::BadVersion,
        })
    }

    /// Names of every job, sorted.
    pub async fn list(&self) -> Result<Vec<String>, ZkError> {
        let mut names = call(
            "list_children",
            JOBS_PATH,
            self.op_timeout,
            self.client.list_children(JOBS_PATH),
        )
        .await?;
        names.sort();
        Ok(names)
    }

    /// The YAML of job `name`, or `None` when there is no such job.
    pub async fn get(&self, name: &str) -> Result<Option<String>, ZkError> {
        let path = Self::path(name)?;
        match call(
            "get_data",
            &path,
            self.op_timeout,
            self.client.get_data(&path),
        )
        .await
        {
            Ok((data, _)) => Ok(Some(String::from_utf8_lossy(&data).into_owned())),
            Err(ZkError::Zk {
                source: zk::Error::NoNode,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes job `name`; `false` when there was no such job.
    pub async fn delete(&self, name: &str) -> Result<bool, ZkError> {
        let path = Self::path(name)?;
        match call(
            "delete",
            &path,
            self.op_timeout,
            self.client.delete(&path, None),
        )
        .await
        {
            Ok(()) => Ok(true),
            Err(ZkError::Zk {
                source: zk::Error::NoNode,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The underlying client (for tests and tools).
    pub fn client(&self) -> &zk::Client {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_string_splits_servers_and_chroot() {
        let c = ConnectString::parse("a:2181,b:2182/scrape/pool").unwrap();
        assert_eq!(c.servers, "a:2181,b:2182");
        assert_eq!(c.chroot.as_deref(), Some("/scrape/pool"));
        let c = ConnectString::parse("127.0.0.1:2181").unwrap();
        assert_eq!(c.chroot, None);
        assert_eq!(
            ConnectString::parse("127.0.0.1:2181/").unwrap().chroot,
            None
        );
    }

    #[test]
    fn connect_string_rejects_garbage() {
        for bad in [
            "",
            "/x",
            "host",
            "host:notaport",
            "a:1/x/",
            "a:1/x//y",
            "a:1/x/../y",
            "a:1,:2",
        ] {
            assert!(ConnectString::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn job_names_that_cannot_be_znodes_are_rejected() {
        for bad in ["", ".", "..", "a/b", "a\nb"] {
            assert!(check_job_name(bad).is_err(), "{bad:?} accepted");
        }
        check_job_name("node-exporter.prod").unwrap();
    }
}
