//! The ZooKeeper coordinator against a real ZooKeeper server.
//!
//! Each test works below its own chroot, so tests share one server without seeing each other;
//! the expiry test stops its own private server (SIGSTOP), never the shared one.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use scrapepool_adapters::ports::{CoordRequest, Coordinator, EVENT_QUEUE_LEN_MAX};
use scrapepool_adapters::zk::{ZkConfig, ZkCoordinator, ZkJobs};
use scrapepool_core::member::{JobsSnapshot, MemberRecord, MemberState, MembersSnapshot};
use scrapepool_core::Event;
use tokio::sync::{mpsc, watch};
use zookeeper_client as zk;

/// Longest wait for anything a test expects to see.
const WAIT: Duration = Duration::from_secs(30);

fn record(id: &str, state: MemberState) -> MemberRecord {
    MemberRecord {
        id: id.into(),
        state,
        version: "0.1.0".into(),
        web: "127.0.0.1:9000".into(),
        started_at: "2026-11-25T12:00:00Z".into(),
    }
}

/// One coordinator driven by a stand-in for the core: it registers on every
/// `SessionConnected` (as the node does) and records what it saw.
struct Member {
    requests: mpsc::Sender<CoordRequest>,
    record: Arc<Mutex<MemberRecord>>,
    members: watch::Receiver<MembersSnapshot>,
    jobs: watch::Receiver<JobsSnapshot>,
    /// Session events in order: "connected", "disconnected", "expired".
    log: Arc<Mutex<Vec<&'static str>>>,
    /// Snapshot versions that went down (must stay empty).
    regressions: Arc<Mutex<Vec<String>>>,
}

impl Member {
    fn start(connect: &str, me: MemberRecord, session_timeout: Duration) -> Member {
        let config = ZkConfig {
            connect: connect.to_string(),
            session_timeout,
            op_timeout: Duration::from_secs(2),
        };
        let coordinator = ZkCoordinator::new(config).unwrap();
        let (ev_tx, mut ev_rx) = mpsc::channel(EVENT_QUEUE_LEN_MAX);
        let (req_tx, req_rx) = mpsc::channel(16);
        tokio::spawn(coordinator.run(ev_tx, req_rx));
        let record = Arc::new(Mutex::new(me));
        let (members_tx, members) = watch::channel(MembersSnapshot::default());
        let (jobs_tx, jobs) = watch::channel(JobsSnapshot::default());
        let log = Arc::new(Mutex::new(Vec::new()));
        let regressions = Arc::new(Mutex::new(Vec::new()));
        let (req, rec, lg, reg) = (
            req_tx.clone(),
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
                    other => panic!("unexpected event from the coordinator: {other:?}"),
                }
            }
        });
        Member {
            requests: req_tx,
            record,
            members,
            jobs,
            log,
            regressions,
        }
    }

    async fn update(&self, r: MemberRecord) {
        *self.record.lock().unwrap() = r.clone();
        self.requests.send(CoordRequest::Update(r)).await.unwrap();
    }

    /// Waits until the members snapshot satisfies `ok`; returns it.
    async fn wait_members(
        &mut self,
        what: &str,
        ok: impl Fn(&MembersSnapshot) -> bool,
    ) -> MembersSnapshot {
        let r: Option<MembersSnapshot> =
            match tokio::time::timeout(WAIT, self.members.wait_for(|s| ok(s))).await {
                Ok(Ok(s)) => Some(s.clone()),
                _ => None,
            };
        match r {
            Some(s) => s,
            None => panic!(
                "timed out waiting for members: {what}; last: {:?}",
                *self.members.borrow()
            ),
        }
    }

    async fn wait_jobs(&mut self, what: &str, ok: impl Fn(&JobsSnapshot) -> bool) -> JobsSnapshot {
        let r: Option<JobsSnapshot> =
            match tokio::time::timeout(WAIT, self.jobs.wait_for(|s| ok(s))).await {
                Ok(Ok(s)) => Some(s.clone()),
                _ => None,
            };
        match r {
            Some(s) => s,
            None => panic!(
                "timed out waiting for jobs: {what}; last: {:?}",
                *self.jobs.borrow()
            ),
        }
    }

    async fn wait_log(&self, what: &str, ok: impl Fn(&[&'static str]) -> bool) {
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

    fn assert_no_regressions(&self) {
        assert!(
            self.regressions.lock().unwrap().is_empty(),
            "snapshot versions went down: {:?}",
            self.regressions.lock().unwrap()
        );
    }
}

fn ids(s: &MembersSnapshot) -> Vec<String> {
    let mut v: Vec<String> = s.members.iter().map(|m| m.id.clone()).collect();
    v.sort();
    v
}

/// The shared server with a fresh chroot, or `None` (skipped).
fn zk_chroot(test: &str) -> Option<String> {
    match support::shared_zk() {
        Ok(server) => Some(format!(
            "{}/{}",
            server.connect,
            support::unique("scrapepool-test")
        )),
        Err(why) => {
            support::skip(test, &why);
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_and_jobs_flow_as_snapshots() {
    let Some(connect) = zk_chroot("members_and_jobs_flow_as_snapshots") else {
        return;
    };
    let mut a = Member::start(
        &connect,
        record("a", MemberState::Active),
        Duration::from_secs(10),
    );
    let s = a.wait_members("a registered", |s| ids(s) == ["a"]).await;
    assert_eq!(s.members[0], record("a", MemberState::Active));
    let first_version = s.version;

    let admin = ZkJobs::connect(&connect, Duration::from_secs(5))
        .await
        .unwrap();
    let yaml1 = "job_name: node\nstatic_configs:\n  - targets: ['127.0.0.1:9100']\n";
    let yaml2 =
        "job_name: node\nscrape_interval: 5s\nstatic_configs:\n  - targets: ['127.0.0.1:9100']\n";
    assert_eq!(
        admin.apply("node", yaml1).await.unwrap(),
        scrapepool_adapters::zk::Applied::Created
    );
    let j1 = a
        .wait_jobs("node created", |s| {
            s.jobs == [("node".to_string(), yaml1.to_string())]
        })
        .await;
    assert_eq!(
        admin.apply("node", yaml1).await.unwrap(),
        scrapepool_adapters::zk::Applied::Unchanged
    );
    assert_eq!(
        admin.apply("node", yaml2).await.unwrap(),
        scrapepool_adapters::zk::Applied::Updated
    );
    let j2 = a
        .wait_jobs("node changed", |s| {
            s.jobs == [("node".to_string(), yaml2.to_string())]
        })
        .await;
    assert!(
        j2.version > j1.version,
        "a job change must raise the version: {} then {}",
        j1.version,
        j2.version
    );
    assert_eq!(admin.list().await.unwrap(), ["node"]);
    assert_eq!(admin.get("node").await.unwrap().as_deref(), Some(yaml2));
    assert!(admin.delete("node").await.unwrap());
    assert!(!admin.delete("node").await.unwrap());
    assert_eq!(admin.get("node").await.unwrap(), None);
    let j3 = a
        .wait_jobs("node deleted", |s| s.jobs.is_empty() && s.version > 0)
        .await;
    assert!(j3.version > j2.version);

    let mut b = Member::start(
        &connect,
        record("b", MemberState::Active),
        Duration::from_secs(10),
    );
    let sa = a.wait_members("a sees b", |s| ids(s) == ["a", "b"]).await;
    let sb = b.wait_members("b sees a", |s| ids(s) == ["a", "b"]).await;
    assert!(sa.version > first_version);
    assert_eq!(sa.version, sb.version, "both read the same tree");

    // Deregister removes the record at once (no waiting for the session to end).
    b.requests.send(CoordRequest::Deregister).await.unwrap();
    a.wait_members("b deregistered", |s| ids(s) == ["a"]).await;
    // Closing the request channel ends b's session: its ephemeral record is gone for good.
    a.assert_no_regressions();
    b.assert_no_regressions();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_record_update_is_seen_by_the_other() {
    let Some(connect) = zk_chroot("member_record_update_is_seen_by_the_other") else {
        return;
    };
    let mut a = Member::start(
        &connect,
        record("a", MemberState::Active),
        Duration::from_secs(10),
    );
    let mut b = Member::start(
        &connect,
        record("b", MemberState::Active),
        Duration::from_secs(10),
    );
    let before = b.wait_members("both", |s| ids(s) == ["a", "b"]).await;
    a.wait_members("both", |s| ids(s) == ["a", "b"]).await;
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
    b.assert_no_regressions();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_member_json_is_skipped() {
    let Some(connect) = zk_chroot("invalid_member_json_is_skipped") else {
        return;
    };
    let mut a = Member::start(
        &connect,
        record("a", MemberState::Active),
        Duration::from_secs(10),
    );
    a.wait_members("a", |s| ids(s) == ["a"]).await;
    let raw = zk::Client::connect(&connect).await.unwrap();
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    raw.create("/members/bogus", b"{not json", &opts)
        .await
        .unwrap();
    // Valid JSON, but its id does not match its znode name.
    let liar = serde_json::to_vec(&record("someone-else", MemberState::Active)).unwrap();
    raw.create("/members/liar", &liar, &opts).await.unwrap();
    let good = serde_json::to_vec(&record("c", MemberState::Active)).unwrap();
    raw.create("/members/c", &good, &opts).await.unwrap();
    // c was created last, so once it shows, the bad ones were read (and skipped) too.
    let s = a
        .wait_members("c", |s| ids(s).contains(&"c".to_string()))
        .await;
    assert_eq!(ids(&s), ["a", "c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chroot_holds_the_tree_and_isolates_pools() {
    let Some(connect) = zk_chroot("chroot_holds_the_tree_and_isolates_pools") else {
        return;
    };
    let (servers, chroot) = connect
        .split_once('/')
        .map(|(s, c)| (s.to_string(), format!("/{c}/pool")))
        .unwrap();
    let pool1 = format!("{servers}{chroot}");
    let pool2 = format!("{servers}{chroot}2");
    let mut a = Member::start(
        &pool1,
        record("a", MemberState::Active),
        Duration::from_secs(10),
    );
    let mut b = Member::start(
        &pool2,
        record("b", MemberState::Active),
        Duration::from_secs(10),
    );
    a.wait_members("a alone", |s| ids(s) == ["a"]).await;
    b.wait_members("b alone", |s| ids(s) == ["b"]).await;
    ZkJobs::connect(&pool1, Duration::from_secs(5))
        .await
        .unwrap()
        .apply("only-in-1", "job_name: only-in-1\n")
        .await
        .unwrap();
    a.wait_jobs("job in pool 1", |s| s.jobs.len() == 1).await;
    // The znodes really are below the chroot, seen from the server's root.
    let root = zk::Client::connect(&servers).await.unwrap();
    let (data, _) = root
        .get_data(&format!("{chroot}/jobs/only-in-1"))
        .await
        .unwrap();
    assert_eq!(data, b"job_name: only-in-1\n");
    let (data, stat) = root.get_data(&format!("{chroot}/members/a")).await.unwrap();
    assert_ne!(stat.ephemeral_owner, 0, "a member znode is ephemeral");
    assert_eq!(
        serde_json::from_slice::<MemberRecord>(&data).unwrap(),
        record("a", MemberState::Active)
    );
    // Pool 2 never sees pool 1's job or member; give it time to have read them if it could.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(b.jobs.borrow().jobs.is_empty());
    assert_eq!(ids(&b.members.borrow()), ["b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_is_survived() {
    const TEST: &str = "session_expiry_is_survived";
    // Stopping the server must not disturb the other tests: use a private one.
    let server = match support::start_zk() {
        Ok(s) => s,
        Err(why) => return support::skip(TEST, &why),
    };
    let session_timeout = Duration::from_secs(2);
    let mut a = Member::start(
        &server.connect,
        record("a", MemberState::Active),
        session_timeout,
    );
    let mut b = Member::start(
        &server.connect,
        record("b", MemberState::Active),
        session_timeout,
    );
    a.wait_members("both", |s| ids(s) == ["a", "b"]).await;
    b.wait_members("both", |s| ids(s) == ["a", "b"]).await;
    let before = a.members.borrow().version;

    server.pause();
    a.wait_log("disconnected while the server is stopped", |l| {
        l.ends_with(&["connected", "disconnected"])
    })
    .await;
    // Longer than the session timeout, so the server expires our sessions once it runs again.
    tokio::time::sleep(session_timeout * 3).await;
    server.resume();

    for m in [&a, &b] {
        m.wait_log("disconnected, expired, connected again", |l| {
            let i = l.iter().position(|e| *e == "disconnected");
            i.is_some_and(|i| {
                let rest = &l[i..];
                let e = rest.iter().position(|e| *e == "expired");
                e.is_some_and(|e| rest[e..].contains(&"connected"))
            })
        })
        .await;
    }
    // Both registered again with new sessions, and each sees the other back.
    let sa = a
        .wait_members("both back", |s| ids(s) == ["a", "b"] && s.version > before)
        .await;
    b.wait_members("both back", |s| ids(s) == ["a", "b"] && s.version > before)
        .await;
    assert!(sa.version > before);
    let root = zk::Client::connect(&server.connect).await.unwrap();
    let (_, stat) = root.get_data("/members/a").await.unwrap();
    assert_ne!(stat.ephemeral_owner, 0);
    eprintln!("session events of a: {:?}", a.log.lock().unwrap());
    a.assert_no_regressions();
    b.assert_no_regressions();
}
