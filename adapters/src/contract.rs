//! The coordinator contract, as checks any [`Coordinator`] must pass: the ZooKeeper adapter
//! against a real server (adapters/tests/zk.rs) and the simulation's coordinator against its
//! ZooKeeper model (sim/tests/contract.rs) run the same checks, so the two cannot drift apart.
//!
//! A [`Probe`] drives one coordinator the way the core does — it registers on every
//! `SessionConnected` — and records what it saw. The checks panic with a message naming what
//! they waited for; every wait has the deadline [`WAIT`].

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scrapepool_core::member::{JobsSnapshot, MemberRecord, MemberState, MembersSnapshot};
use scrapepool_core::Event;
use tokio::sync::{mpsc, watch};

use crate::ports::{CoordRequest, Coordinator, EVENT_QUEUE_LEN_MAX};

/// Longest wait for anything a check expects to see.
pub const WAIT: Duration = Duration::from_secs(30);
/// Most requests waiting for a probed coordinator.
pub const PROBE_REQUESTS_LEN_MAX: usize = 16;

/// A pool under test: makes coordinators of one pool and writes its jobs.
pub trait CoordinatorFixture {
    /// The coordinator type.
    type Coordinator: Coordinator;
    /// A new coordinator of the pool (not yet running).
    fn coordinator(&self) -> Self::Coordinator;
    /// Creates or replaces job `name`.
    fn put_job(&self, name: &str, yaml: &str) -> impl Future<Output = ()>;
    /// Deletes job `name`.
    fn delete_job(&self, name: &str) -> impl Future<Output = ()>;
}

/// A member record for tests.
pub fn record(id: &str, state: MemberState) -> MemberRecord {
    MemberRecord {
        id: id.into(),
        state,
        version: "0.1.0".into(),
        web: "127.0.0.1:9000".into(),
        started_at: "2026-11-25T12:00:00Z".into(),
    }
}

/// The sorted ids of a snapshot's members.
pub fn ids(s: &MembersSnapshot) -> Vec<String> {
    let mut v: Vec<String> = s.members.iter().map(|m| m.id.clone()).collect();
    v.sort();
    v
}

/// One running coordinator, driven like the core drives it.
pub struct Probe {
    /// Requests to the coordinator (dropping the probe closes them, ending the coordinator).
    pub requests: mpsc::Sender<CoordRequest>,
    record: Arc<Mutex<MemberRecord>>,
    /// The latest members snapshot.
    pub members: watch::Receiver<MembersSnapshot>,
    /// The latest jobs snapshot.
    pub jobs: watch::Receiver<JobsSnapshot>,
    /// Session events in order: `connected`, `disconnected`, `expired`.
    pub log: Arc<Mutex<Vec<&'static str>>>,
    /// Snapshot versions that went down (must stay empty).
    pub regressions: Arc<Mutex<Vec<String>>>,
}

impl Probe {
    /// Runs `coordinator` on the current tokio runtime as member `me`.
    pub fn start(coordinator: impl Coordinator, me: MemberRecord) -> Probe {
        let (ev_tx, mut ev_rx) = mpsc::channel(EVENT_QUEUE_LEN_MAX);
        let (req_tx, req_rx) = mpsc::channel(PROBE_REQUESTS_LEN_MAX);
        tokio::spawn(coordinator.run(ev_tx, req_rx));
        let record = Arc::new(Mutex::new(me));
        let (members_tx, members) = watch::channel(MembersSnapshot::default());
        let (jobs_tx, jobs) = watch::channel(JobsSnapshot::default());
        let log = Arc::new(Mutex::new(Vec::new()));
        let regressions = Arc::new(Mutex::new(Vec::new()));
        // Weak, so that dropping the probe closes the request channel (ending the session).
        let (req, rec, lg, reg) = (
            req_tx.downgrade(),
            record.clone(),
            log.clone(),
            regressions.clone(),
        );
        tokio::spawn(async move {
            while let Some(ev) = ev_rx.recv().await {
                match ev {
                    Event::SessionConnected => {
                        lg.lock().unwrap().push("connected");
                        let r = rec.lock().unwrap().clone();
                        let Some(req) = req.upgrade() else { return };
                        if req.send(CoordRequest::Register(r)).await.is_err() {
                            return;
                        }
                    }
                    Event::SessionDisconnected => lg.lock().unwrap().push("disconnected"),
                    Event::SessionExpired => lg.lock().unwrap().push("expired"),
                    Event::MembersChanged(s) => {
                        let old = members_tx.borrow().version;
                        if s.version < old {
                            reg.lock()
                                .unwrap()
                                .push(format!("members {old} -> {}", s.version));
                        }
                        members_tx.send_replace(s);
                    }
                    Event::JobsChanged(s) => {
                        let old = jobs_tx.borrow().version;
                        if s.version < old {
                            reg.lock()
                                .unwrap()
                                .push(format!("jobs {old} -> {}", s.version));
                        }
                        jobs_tx.send_replace(s);
                    }
                    other => reg
                        .lock()
                        .unwrap()
                        .push(format!("unexpected event from a coordinator: {other:?}")),
                }
            }
        });
        Probe {
            requests: req_tx,
            record,
            members,
            jobs,
            log,
            regressions,
        }
    }

    /// Sends `Update(r)`; later re-registrations use `r` too.
    pub async fn update(&self, r: MemberRecord) {
        *self.record.lock().unwrap() = r.clone();
        self.requests
            .send(CoordRequest::Update(r))
            .await
            .expect("the coordinator runs");
    }

    /// Waits until the members snapshot satisfies `ok`; returns it.
    pub async fn wait_members(
        &mut self,
        what: &str,
        ok: impl Fn(&MembersSnapshot) -> bool,
    ) -> MembersSnapshot {
        let r: Option<MembersSnapshot> =
            match tokio::time::timeout(WAIT, self.members.wait_for(|s| ok(s))).await {
                Ok(Ok(s)) => Some(s.clone()),
                _ => None,
            };
        r.unwrap_or_else(|| {
            panic!(
                "timed out waiting for members: {what}; last: {:?}",
                *self.members.borrow()
            )
        })
    }

    /// Waits until the jobs snapshot satisfies `ok`; returns it.
    pub async fn wait_jobs(
        &mut self,
        what: &str,
        ok: impl Fn(&JobsSnapshot) -> bool,
    ) -> JobsSnapshot {
        let r: Option<JobsSnapshot> =
            match tokio::time::timeout(WAIT, self.jobs.wait_for(|s| ok(s))).await {
                Ok(Ok(s)) => Some(s.clone()),
                _ => None,
            };
        r.unwrap_or_else(|| {
            panic!(
                "timed out waiting for jobs: {what}; last: {:?}",
                *self.jobs.borrow()
            )
        })
    }

    /// Waits until the session event log satisfies `ok`.
    pub async fn wait_log(&self, what: &str, ok: impl Fn(&[&'static str]) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !ok(&self.log.lock().unwrap()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for session events: {what}; log: {:?}",
                self.log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fails if any snapshot version went down or an unexpected event came.
    pub fn assert_no_regressions(&self) {
        let r = self.regressions.lock().unwrap();
        assert!(
            r.is_empty(),
            "snapshot versions went down or unexpected events: {r:?}"
        );
    }
}

/// Members join and leave as snapshots, seen alike by every member; versions increase.
pub async fn check_membership<F: CoordinatorFixture>(f: &F) {
    let mut a = Probe::start(f.coordinator(), record("a", MemberState::Active));
    let first = a.wait_members("a registered", |s| ids(s) == ["a"]).await;
    assert_eq!(first.members[0], record("a", MemberState::Active));
    let mut b = Probe::start(f.coordinator(), record("b", MemberState::Active));
    let sa = a.wait_members("a sees b", |s| ids(s) == ["a", "b"]).await;
    let sb = b.wait_members("b sees a", |s| ids(s) == ["a", "b"]).await;
    assert!(
        sa.version > first.version,
        "a join must raise the version: {} then {}",
        first.version,
        sa.version
    );
    assert_eq!(
        sa.version, sb.version,
        "both saw the same state, so the same version"
    );
    b.requests
        .send(CoordRequest::Deregister)
        .await
        .expect("b runs");
    let after = a.wait_members("b deregistered", |s| ids(s) == ["a"]).await;
    assert!(after.version > sa.version);
    a.assert_no_regressions();
    b.assert_no_regressions();
}

/// A member's record update (draining) is seen by the others with a higher version.
pub async fn check_record_update<F: CoordinatorFixture>(f: &F) {
    let mut a = Probe::start(f.coordinator(), record("a", MemberState::Active));
    let mut b = Probe::start(f.coordinator(), record("b", MemberState::Active));
    a.wait_members("both", |s| ids(s) == ["a", "b"]).await;
    let before = b.wait_members("both", |s| ids(s) == ["a", "b"]).await;
    a.update(record("a", MemberState::Draining)).await;
    let after = b
        .wait_members("a draining", |s| {
            s.members
                .iter()
                .any(|m| m.id == "a" && m.state == MemberState::Draining)
        })
        .await;
    assert!(
        after.version > before.version,
        "a record update must raise the version: {} then {}",
        before.version,
        after.version
    );
    assert_eq!(ids(&after), ["a", "b"]);
    a.assert_no_regressions();
    b.assert_no_regressions();
}

/// Jobs created, changed and deleted arrive as whole snapshots with rising versions.
pub async fn check_jobs<F: CoordinatorFixture>(f: &F) {
    let mut a = Probe::start(f.coordinator(), record("a", MemberState::Active));
    a.wait_members("a registered", |s| ids(s) == ["a"]).await;
    let y1 = "job_name: one\nstatic_configs:\n  - targets: ['127.0.0.1:9100']\n";
    let y1b =
        "job_name: one\nscrape_interval: 5s\nstatic_configs:\n  - targets: ['127.0.0.1:9100']\n";
    let y2 = "job_name: two\nstatic_configs:\n  - targets: ['127.0.0.1:9200']\n";
    let pair = |n: &str, y: &str| (n.to_string(), y.to_string());
    let sorted = |s: &JobsSnapshot| {
        let mut j = s.jobs.clone();
        j.sort();
        j
    };
    f.put_job("one", y1).await;
    let s1 = a
        .wait_jobs("one created", |s| sorted(s) == [pair("one", y1)])
        .await;
    f.put_job("two", y2).await;
    let s2 = a
        .wait_jobs("two created", |s| {
            sorted(s) == [pair("one", y1), pair("two", y2)]
        })
        .await;
    f.put_job("one", y1b).await;
    let s3 = a
        .wait_jobs("one changed", |s| {
            sorted(s) == [pair("one", y1b), pair("two", y2)]
        })
        .await;
    f.delete_job("two").await;
    let s4 = a
        .wait_jobs("two deleted", |s| sorted(s) == [pair("one", y1b)])
        .await;
    assert!(
        s1.version < s2.version && s2.version < s3.version && s3.version < s4.version,
        "versions must rise: {} {} {} {}",
        s1.version,
        s2.version,
        s3.version,
        s4.version
    );
    // A member that starts later gets the whole current set at once.
    let mut b = Probe::start(f.coordinator(), record("b", MemberState::Active));
    let sb = b.wait_jobs("b sees the jobs", |s| !s.jobs.is_empty()).await;
    assert_eq!(sorted(&sb), [pair("one", y1b)]);
    a.assert_no_regressions();
    b.assert_no_regressions();
}

/// After every session is lost (`lose_sessions` makes the service drop them and then come
/// back), each member reports `SessionExpired`, then `SessionConnected` again, registers
/// again (as the core does), and sees the others back, with a higher version.
///
/// Returns the two probes, for checks particular to one implementation.
pub async fn check_session_loss<F: CoordinatorFixture>(
    f: &F,
    lose_sessions: impl Future<Output = ()>,
) -> (Probe, Probe) {
    let mut a = Probe::start(f.coordinator(), record("a", MemberState::Active));
    let mut b = Probe::start(f.coordinator(), record("b", MemberState::Active));
    a.wait_members("both", |s| ids(s) == ["a", "b"]).await;
    let before = b
        .wait_members("both", |s| ids(s) == ["a", "b"])
        .await
        .version;
    lose_sessions.await;
    for p in [&a, &b] {
        p.wait_log("expired, then connected again", |l| {
            l.iter()
                .position(|e| *e == "expired")
                .is_some_and(|i| l[i..].contains(&"connected"))
        })
        .await;
    }
    let sa = a
        .wait_members("both back", |s| ids(s) == ["a", "b"] && s.version > before)
        .await;
    let sb = b
        .wait_members("both back", |s| ids(s) == ["a", "b"] && s.version > before)
        .await;
    assert!(sa.version > before && sb.version > before);
    a.assert_no_regressions();
    b.assert_no_regressions();
    (a, b)
}
