//! A model of ZooKeeper as scrapepool uses it: sessions timed on simulated time, ephemeral
//! member nodes removed when their session expires, versioned reads, change notifications,
//! and per-host reachability (a partition between a scraper and ZooKeeper).
//!
//! [`ModelCoordinator`] drives the model through the same `Coordinator` port as the real
//! ZooKeeper adapter, with the same session semantics: a lost connection is reported as
//! `SessionDisconnected` and changes nothing; an expired session is reported as
//! `SessionExpired` and followed by a new session, a new registration and fresh snapshots.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scrapepool_adapters::ports::{CoordRequest, Coordinator, EventSender};
use scrapepool_core::member::{JobsSnapshot, MemberRecord, MembersSnapshot};
use scrapepool_core::Event;
use tokio::sync::{mpsc, watch};

/// Reads simulated time: the model's only clock.
pub type ModelClock = Arc<dyn Fn() -> Duration + Send + Sync>;

/// Why a model operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZkError {
    /// The caller's host cannot reach ZooKeeper.
    Unreachable,
    /// The session has expired.
    Expired,
    /// A node with that name exists and belongs to another live session.
    NodeExists,
}

#[derive(Debug)]
struct Session {
    host: String,
    last_heard: Duration,
    timeout: Duration,
    expired: bool,
}

#[derive(Debug)]
struct Ephemeral {
    data: String,
    session: u64,
}

#[derive(Debug, Default)]
struct Inner {
    zxid: i64,
    sessions: BTreeMap<u64, Session>,
    members: BTreeMap<String, Ephemeral>,
    members_version: i64,
    jobs: BTreeMap<String, String>,
    jobs_version: i64,
    unreachable: BTreeSet<String>,
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

    fn with<R>(
        &self,
        host: Option<&str>,
        f: impl FnOnce(&mut Inner, Duration) -> Result<R, ZkError>,
    ) -> Result<R, ZkError> {
        let now = (self.clock)();
        let mut inner = self.inner.lock().expect("zk model lock");
        let before = inner.zxid;
        Self::expire(&mut inner, now);
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

    fn expire(inner: &mut Inner, now: Duration) {
        let expired: Vec<u64> = inner
            .sessions
            .iter()
            .filter(|(_, s)| !s.expired && now.saturating_sub(s.last_heard) > s.timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            Self::end_session(inner, id);
        }
    }

    fn end_session(inner: &mut Inner, id: u64) {
        if let Some(s) = inner.sessions.get_mut(&id) {
            s.expired = true;
        }
        let before = inner.members.len();
        inner.members.retain(|_, e| e.session != id);
        if inner.members.len() != before {
            inner.zxid += 1;
            inner.members_version = inner.zxid;
        }
    }

    /// Opens a session for `host`.
    pub fn connect(&self, host: &str, timeout: Duration) -> Result<u64, ZkError> {
        self.with(Some(host), |inner, now| {
            inner.zxid += 1;
            let id = inner.zxid as u64;
            inner.sessions.insert(
                id,
                Session {
                    host: host.to_string(),
                    last_heard: now,
                    timeout,
                    expired: false,
                },
            );
            Ok(id)
        })
    }

    /// Keeps `session` alive.
    pub fn heartbeat(&self, host: &str, session: u64) -> Result<(), ZkError> {
        self.with(Some(host), |inner, now| {
            match inner.sessions.get_mut(&session) {
                Some(s) if !s.expired => {
                    s.last_heard = now;
                    Ok(())
                }
                _ => Err(ZkError::Expired),
            }
        })
    }

    fn live(inner: &Inner, session: u64) -> Result<(), ZkError> {
        match inner.sessions.get(&session) {
            Some(s) if !s.expired => Ok(()),
            _ => Err(ZkError::Expired),
        }
    }

    /// Creates the ephemeral `/members/<id>`; one left by an older session of the same host
    /// is replaced (as the real adapter does), one of a live other session is `NodeExists`.
    pub fn create_member(
        &self,
        host: &str,
        session: u64,
        id: &str,
        data: String,
    ) -> Result<(), ZkError> {
        self.with(Some(host), |inner, now| {
            Self::live(inner, session)?;
            inner.sessions.get_mut(&session).expect("live").last_heard = now;
            if let Some(e) = inner.members.get(id) {
                let same_host = inner
                    .sessions
                    .get(&e.session)
                    .is_some_and(|s| s.host == host);
                if e.session != session && !same_host {
                    return Err(ZkError::NodeExists);
                }
            }
            inner
                .members
                .insert(id.to_string(), Ephemeral { data, session });
            inner.zxid += 1;
            inner.members_version = inner.zxid;
            Ok(())
        })
    }

    /// Replaces the data of our member node.
    pub fn set_member(
        &self,
        host: &str,
        session: u64,
        id: &str,
        data: String,
    ) -> Result<(), ZkError> {
        self.with(Some(host), |inner, _| {
            Self::live(inner, session)?;
            match inner.members.get_mut(id) {
                Some(e) if e.session == session => e.data = data,
                _ => return Ok(()),
            }
            inner.zxid += 1;
            inner.members_version = inner.zxid;
            Ok(())
        })
    }

    /// Deletes our member node.
    pub fn delete_member(&self, host: &str, session: u64, id: &str) -> Result<(), ZkError> {
        self.with(Some(host), |inner, _| {
            Self::live(inner, session)?;
            if inner.members.get(id).is_some_and(|e| e.session == session) {
                inner.members.remove(id);
                inner.zxid += 1;
                inner.members_version = inner.zxid;
            }
            Ok(())
        })
    }

    /// Reads `/members` as one snapshot; records that are not valid JSON are skipped.
    pub fn members(&self, host: &str) -> Result<MembersSnapshot, ZkError> {
        self.with(Some(host), |inner, _| {
            let members = inner
                .members
                .values()
                .filter_map(|e| serde_json::from_str::<MemberRecord>(&e.data).ok())
                .collect();
            Ok(MembersSnapshot {
                version: inner.members_version,
                members,
            })
        })
    }

    /// Reads `/jobs` as one snapshot.
    pub fn jobs(&self, host: &str) -> Result<JobsSnapshot, ZkError> {
        self.with(Some(host), |inner, _| {
            Ok(JobsSnapshot {
                version: inner.jobs_version,
                jobs: inner
                    .jobs
                    .iter()
                    .map(|(n, t)| (n.clone(), t.clone()))
                    .collect(),
            })
        })
    }

    /// Writes a job (the operator's `jobs apply`).
    pub fn put_job(&self, name: &str, text: &str) {
        let _ = self.with(None, |inner, _| {
            if inner.jobs.get(name).map(String::as_str) != Some(text) {
                inner.jobs.insert(name.to_string(), text.to_string());
                inner.zxid += 1;
                inner.jobs_version = inner.zxid;
            }
            Ok(())
        });
    }

    /// Deletes a job.
    pub fn delete_job(&self, name: &str) {
        let _ = self.with(None, |inner, _| {
            if inner.jobs.remove(name).is_some() {
                inner.zxid += 1;
                inner.jobs_version = inner.zxid;
            }
            Ok(())
        });
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
            let ids: Vec<u64> = inner
                .sessions
                .iter()
                .filter(|(_, s)| s.host == host && !s.expired)
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                Self::end_session(inner, id);
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
            .keys()
            .cloned()
            .collect()
    }

    /// A receiver that changes whenever anything in the model changes.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.changed.subscribe()
    }
}

/// Longest delay between a change in ZooKeeper and a member re-reading it (watch delivery
/// and the read itself). Each member gets its own delay per change, so members learn of a
/// change at different times, as they do in a real ensemble.
pub const WATCH_DELAY_MS_MAX: u64 = 2_000;

/// The delay before `host` re-reads after the change to `zxid`: a fixed function of both,
/// so one seed gives one run.
fn watch_delay(host: &str, zxid: i64) -> std::time::Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in host.bytes().chain(zxid.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    std::time::Duration::from_millis(h % (WATCH_DELAY_MS_MAX + 1))
}

/// How often a connected coordinator pings, as a fraction of the session timeout.
const HEARTBEATS_PER_TIMEOUT: u32 = 3;
/// How long a disconnected coordinator waits between attempts.
pub const RECONNECT_INTERVAL: Duration = Duration::from_millis(500);

/// The `Coordinator` port over the model.
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
}

/// What our member record should be; reconciled with the model whenever connected, so a
/// request made while disconnected is carried out on reconnection.
#[derive(Clone, Debug, PartialEq)]
enum Wanted {
    Nothing,
    Record(MemberRecord),
    Gone,
}

impl Coordinator for ModelCoordinator {
    async fn run(self, events: EventSender, mut requests: mpsc::Receiver<CoordRequest>) {
        let heartbeat = self.session_timeout / HEARTBEATS_PER_TIMEOUT;
        let mut changes = self.model.subscribe();
        let mut session: Option<u64> = None;
        let mut connected = false;
        let mut wanted = Wanted::Nothing;
        let mut written: Option<(u64, Wanted)> = None;
        let mut sent_versions = (i64::MIN, i64::MIN);
        loop {
            // Connection state.
            match session {
                None => match self.model.connect(&self.host, self.session_timeout) {
                    Ok(id) => {
                        session = Some(id);
                        connected = true;
                        sent_versions = (i64::MIN, i64::MIN);
                        if events.send(Event::SessionConnected).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => connected = false,
                },
                Some(id) => match self.model.heartbeat(&self.host, id) {
                    Ok(()) if !connected => {
                        connected = true;
                        if events.send(Event::SessionConnected).await.is_err() {
                            return;
                        }
                    }
                    Ok(()) => {}
                    Err(ZkError::Unreachable) => {
                        if connected {
                            connected = false;
                            if events.send(Event::SessionDisconnected).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(_) => {
                        session = None;
                        connected = false;
                        written = None;
                        if events.send(Event::SessionExpired).await.is_err() {
                            return;
                        }
                        continue;
                    }
                },
            }
            if let (true, Some(id)) = (connected, session) {
                // Our record, as last asked.
                if written.as_ref() != Some(&(id, wanted.clone())) {
                    let result = match &wanted {
                        Wanted::Nothing => Ok(()),
                        Wanted::Record(r) => {
                            let data = serde_json::to_string(r).expect("record serializes");
                            if matches!(written, Some((s, Wanted::Record(_))) if s == id) {
                                self.model.set_member(&self.host, id, &r.id, data)
                            } else {
                                self.model.create_member(&self.host, id, &r.id, data)
                            }
                        }
                        Wanted::Gone => match &written {
                            Some((_, Wanted::Record(r))) => {
                                self.model.delete_member(&self.host, id, &r.id)
                            }
                            _ => Ok(()),
                        },
                    };
                    if result.is_ok() {
                        written = Some((id, wanted.clone()));
                    }
                }
                // Snapshots, whenever a version moved.
                if let (Ok(m), Ok(j)) =
                    (self.model.members(&self.host), self.model.jobs(&self.host))
                {
                    if m.version != sent_versions.0 {
                        sent_versions.0 = m.version;
                        if events.send(Event::MembersChanged(m)).await.is_err() {
                            return;
                        }
                    }
                    if j.version != sent_versions.1 {
                        sent_versions.1 = j.version;
                        if events.send(Event::JobsChanged(j)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let wait = if connected {
                heartbeat
            } else {
                RECONNECT_INTERVAL
            };
            // Biased: an unbiased select draws its branch order from tokio's unseeded RNG.
            tokio::select! {
                biased;
                request = requests.recv() => match request {
                    Some(CoordRequest::Register(r)) | Some(CoordRequest::Update(r)) => wanted = Wanted::Record(r),
                    Some(CoordRequest::Deregister) => wanted = Wanted::Gone,
                    None => return,
                },
                _ = changes.changed() => {
                    let zxid = *changes.borrow_and_update();
                    tokio::time::sleep(watch_delay(&self.host, zxid)).await;
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
