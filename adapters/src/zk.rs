//! The ZooKeeper coordinator: a thin shell that runs [`Coordination`], the pure session
//! policy of `scrapepool_core::coord` (which decides sessions, watches, reads, writes of our
//! ephemeral member znode, retries and snapshot versions), over a zookeeper-client
//! connection; and [`ZkJobs`], the jobs admin of `scrapepool jobs`.
//!
//! Layout (ARCHITECTURE.md, "Coordination"): `/<chroot>/jobs/<job_name>` (persistent, one
//! job's YAML) and `/<chroot>/members/<member_id>` (ephemeral, JSON `MemberRecord`).

use std::time::Duration;

use std::collections::VecDeque;

use futures::future::join_all;
use scrapepool_core::coord::{
    Answer, Child, Coordination, Input, MemberOp, NodeStat, Note, Output, Settings, Tree, TreeRead,
};
use scrapepool_core::time::duration_ms;
use scrapepool_core::Timestamp;
use tokio::sync::mpsc::Receiver;
use tokio::time::{sleep_until, timeout, Instant};
use zookeeper_client as zk;

use crate::ports::{CoordRequest, Coordinator, EventSender};

pub use scrapepool_core::coord::{JOBS_PATH, MEMBERS_PATH};
/// Default ZooKeeper session timeout.
pub const SESSION_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Default deadline of one ZooKeeper call.
pub const OP_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
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

/// Reads every child of `parent` with its data, `mzxid` and the server's `ctime`/`mtime`
/// (ms since the epoch), and the parent's `pzxid` and `cversion`;
/// children deleted between the listing and their read are left out (the deletion raised
/// `pzxid` and its notification causes another read).
async fn read_tree(
    client: &zk::Client,
    parent: &str,
    op_timeout: Duration,
) -> Result<TreeRead, ZkError> {
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
    let mut children = Vec::with_capacity(names.len());
    for (name, result) in names.into_iter().zip(results) {
        match result {
            Ok((data, stat)) => children.push(Child {
                name,
                data,
                mzxid: stat.mzxid,
                ctime: Timestamp(stat.ctime),
                mtime: Timestamp(stat.mtime),
            }),
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
    Ok(TreeRead {
        pzxid: stat.pzxid,
        cversion: stat.cversion,
        children,
    })
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

/// One established session: its client, its state and its two persistent watches.
struct Live {
    client: zk::Client,
    state: zk::StateWatcher,
    watches: [Option<zk::PersistentWatcher>; 2],
}

fn tree_index(tree: Tree) -> usize {
    match tree {
        Tree::Members => 0,
        Tree::Jobs => 1,
    }
}

/// Waits for the next change of `watch`, or forever when there is none.
async fn watch_changed(watch: &mut Option<zk::PersistentWatcher>) -> zk::WatchedEvent {
    match watch {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}

/// What became of a watch notification.
fn notification(tree: Tree, ev: &zk::WatchedEvent) -> Option<Input> {
    if ev.event_type != zk::EventType::Session {
        Some(Input::Notified(tree))
    } else if ev.session_state.is_terminated() {
        // A watch may learn of the end before the state watcher does.
        tracing::warn!(state = ?ev.session_state, "ZooKeeper session lost; building a new one");
        Some(Input::Expired)
    } else {
        None
    }
}

/// ZooKeeper's answer to a member operation, as the policy reads it.
fn answer<T>(result: Result<T, ZkError>, ok: impl FnOnce(T) -> Answer) -> Answer {
    match result {
        Ok(v) => ok(v),
        Err(ZkError::Zk {
            source: zk::Error::NodeExists,
            ..
        }) => Answer::NodeExists,
        Err(ZkError::Zk {
            source: zk::Error::NoNode,
            ..
        }) => Answer::NoNode,
        Err(ZkError::Zk {
            source: zk::Error::BadVersion,
            ..
        }) => Answer::BadVersion,
        Err(e) => Answer::Failed(e.to_string()),
    }
}

/// Carries out one operation on our member znode.
async fn member_op(client: &zk::Client, request: &MemberOp, t: Duration) -> Answer {
    match request {
        MemberOp::Create { path, data } => answer(
            call("create", path, t, client.create(path, data, &ephemeral())).await,
            |_| Answer::Ok,
        ),
        MemberOp::Stat { path } => answer(
            call("check_stat", path, t, client.check_stat(path)).await,
            |stat| {
                Answer::Stat(stat.map(|s| NodeStat {
                    ephemeral_owner: s.ephemeral_owner,
                    version: s.version,
                }))
            },
        ),
        MemberOp::Set {
            path,
            data,
            version,
        } => answer(
            call(
                "set_data",
                path,
                t,
                client.set_data(path, data, Some(*version)),
            )
            .await,
            |_| Answer::Ok,
        ),
        MemberOp::Delete { path, version } => answer(
            call("delete", path, t, client.delete(path, *version)).await,
            |()| Answer::Ok,
        ),
    }
}

/// Logs what the policy noted, at the level it deserves.
fn log(note: &Note) {
    match note {
        Note::ReplacingStaleRecord { .. } => tracing::info!("{note}"),
        Note::WriteAbandoned { .. } => tracing::error!("{note}"),
        _ => tracing::warn!("{note}"),
    }
}

/// The shell around [`Coordination`]: it owns the zookeeper-client connection, carries out
/// the policy's outputs in order and turns answers, session states and watch notifications
/// into the policy's inputs. It decides nothing.
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
        let op_timeout = self.config.op_timeout;
        // The policy's clock: monotonic milliseconds since the start.
        let start = Instant::now();
        let now = || Timestamp(duration_ms(start.elapsed()));
        let at = |t: Timestamp| start + Duration::from_millis(t.as_millis().max(0) as u64);
        let mut policy = Coordination::new(Settings::default());
        let mut live: Option<Live> = None;
        let mut input = Input::Tick;
        loop {
            let mut queue: VecDeque<Output> = policy.handle(now(), input).into();
            while let Some(output) = queue.pop_front() {
                let answer = match output {
                    Output::Deliver(event) => {
                        if events.send(event.into()).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Output::Note(note) => {
                        log(&note);
                        continue;
                    }
                    Output::Connect => {
                        // Dropping the client closes the old session (and its ephemeral node).
                        live = None;
                        let open = open_client(
                            &connect,
                            self.config.session_timeout,
                            op_timeout,
                            &[JOBS_PATH, MEMBERS_PATH],
                            false,
                        );
                        tokio::pin!(open);
                        // Requests that arrive meanwhile go to the policy at once.
                        let opened = loop {
                            tokio::select! {
                                r = &mut open => break r,
                                req = requests.recv() => match req {
                                    None => return,
                                    Some(req) => queue.extend(policy.handle(now(), Input::Request(req))),
                                },
                            }
                        };
                        match opened {
                            Ok(client) => {
                                tracing::info!(session = %client.session_id(), timeout_ms = client.session_timeout().as_millis() as u64, "ZooKeeper session established");
                                let session = client.session_id().0;
                                live = Some(Live {
                                    state: client.state_watcher(),
                                    client,
                                    watches: [None, None],
                                });
                                Input::SessionStarted { session }
                            }
                            Err(e) => Input::ConnectFailed {
                                error: e.to_string(),
                            },
                        }
                    }
                    Output::Watch { op, tree } => {
                        let result = match &mut live {
                            None => Err("no session".to_string()),
                            Some(l) => match call(
                                "watch",
                                tree.path(),
                                op_timeout,
                                l.client
                                    .watch(tree.path(), zk::AddWatchMode::PersistentRecursive),
                            )
                            .await
                            {
                                Ok(w) => {
                                    l.watches[tree_index(tree)] = Some(w);
                                    Ok(())
                                }
                                Err(e) => Err(e.to_string()),
                            },
                        };
                        Input::WatchAnswered { op, result }
                    }
                    Output::Read { op, tree } => {
                        let result = match &live {
                            None => Err("no session".to_string()),
                            Some(l) => read_tree(&l.client, tree.path(), op_timeout)
                                .await
                                .map_err(|e| e.to_string()),
                        };
                        Input::ReadAnswered { op, result }
                    }
                    Output::Member { op, request } => {
                        let answer = match &live {
                            None => Answer::Failed("no session".to_string()),
                            Some(l) => member_op(&l.client, &request, op_timeout).await,
                        };
                        Input::MemberAnswered { op, answer }
                    }
                };
                queue.extend(policy.handle(now(), answer));
            }
            let wake = policy.next_wake().map(at);
            input = loop {
                let session = async {
                    match &mut live {
                        None => std::future::pending().await,
                        Some(l) => {
                            let [m, j] = &mut l.watches;
                            tokio::select! {
                                s = l.state.changed() => Some(match s {
                                    zk::SessionState::Disconnected => {
                                        tracing::warn!("ZooKeeper connection lost; session not expired yet");
                                        Input::Disconnected
                                    }
                                    zk::SessionState::SyncConnected
                                    | zk::SessionState::ConnectedReadOnly => {
                                        tracing::info!("ZooKeeper connection re-established within the session");
                                        Input::Reconnected
                                    }
                                    terminal => {
                                        tracing::warn!(state = ?terminal, "ZooKeeper session lost; building a new one");
                                        Input::Expired
                                    }
                                }),
                                ev = watch_changed(m) => notification(Tree::Members, &ev),
                                ev = watch_changed(j) => notification(Tree::Jobs, &ev),
                            }
                        }
                    }
                };
                tokio::select! {
                    s = session => if let Some(input) = s { break input },
                    req = requests.recv() => match req {
                        None => return,
                        Some(req) => break Input::Request(req),
                    },
                    _ = sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => break Input::Tick,
                }
            };
        }
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
