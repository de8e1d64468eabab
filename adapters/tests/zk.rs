//! The ZooKeeper coordinator against a real ZooKeeper server.
//!
//! Each test works below its own chroot, so tests share one server without seeing each other;
//! the expiry test stops its own private server (SIGSTOP), never the shared one.

mod support;

use std::time::Duration;

use scrapepool_adapters::contract::{self, ids, record, CoordinatorFixture, Probe};
use scrapepool_adapters::ports::CoordRequest;
use scrapepool_adapters::zk::{ZkConfig, ZkCoordinator, ZkJobs};
use scrapepool_core::member::{MemberRecord, MemberState};
use zookeeper_client as zk;

/// A coordinator on `connect` with this session timeout, driven by a probe as member `me`.
fn start(connect: &str, me: MemberRecord, session_timeout: Duration) -> Probe {
    let config = ZkConfig {
        connect: connect.to_string(),
        session_timeout,
        op_timeout: Duration::from_secs(2),
    };
    Probe::start(ZkCoordinator::new(config).unwrap(), me)
}

/// The contract fixture: a pool below one chroot of a real server.
struct ZkPool {
    connect: String,
    admin: ZkJobs,
    session_timeout: Duration,
}

impl CoordinatorFixture for ZkPool {
    type Coordinator = ZkCoordinator;

    fn coordinator(&self) -> ZkCoordinator {
        let config = ZkConfig {
            session_timeout: self.session_timeout,
            ..ZkConfig::new(self.connect.clone())
        };
        ZkCoordinator::new(config).unwrap()
    }

    async fn put_job(&self, name: &str, yaml: &str) {
        self.admin.apply(name, yaml).await.unwrap();
    }

    async fn delete_job(&self, name: &str) {
        assert!(self.admin.delete(name).await.unwrap());
    }
}

async fn pool(test: &str) -> Option<ZkPool> {
    let connect = zk_chroot(test)?;
    let admin = ZkJobs::connect(&connect, Duration::from_secs(5))
        .await
        .unwrap();
    Some(ZkPool {
        connect,
        admin,
        session_timeout: Duration::from_secs(10),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_membership() {
    let Some(pool) = pool("contract_membership").await else {
        return;
    };
    contract::check_membership(&pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_record_update() {
    let Some(pool) = pool("contract_record_update").await else {
        return;
    };
    contract::check_record_update(&pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_jobs() {
    let Some(pool) = pool("contract_jobs").await else {
        return;
    };
    contract::check_jobs(&pool).await;
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
    let mut a = start(
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

    let mut b = start(
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
    a.assert_no_regressions();
    b.assert_no_regressions();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_requests_ends_the_session_and_its_record() {
    let Some(connect) = zk_chroot("closing_the_requests_ends_the_session_and_its_record") else {
        return;
    };
    // A long session timeout: the record must go because the session is closed, not expired.
    let mut a = start(
        &connect,
        record("a", MemberState::Active),
        Duration::from_secs(30),
    );
    let b = start(
        &connect,
        record("b", MemberState::Active),
        Duration::from_secs(30),
    );
    a.wait_members("both", |s| ids(s) == ["a", "b"]).await;
    drop(b);
    let started = std::time::Instant::now();
    a.wait_members("b gone", |s| ids(s) == ["a"]).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "b's record outlived its closed session: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_waits_for_a_server_that_is_not_up_yet() {
    const TEST: &str = "coordinator_waits_for_a_server_that_is_not_up_yet";
    let port = support::free_port();
    let connect = format!("127.0.0.1:{port}/late");
    let mut a = start(
        &connect,
        record("a", MemberState::Active),
        Duration::from_secs(5),
    );
    // Nothing listens yet: the coordinator keeps trying (and says nothing to the core).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        a.log.lock().unwrap().is_empty(),
        "{:?}",
        a.log.lock().unwrap()
    );
    let server = match tokio::task::spawn_blocking(move || support::start_zk_on(port))
        .await
        .unwrap()
    {
        Ok(s) => s,
        Err(why) => return support::skip(TEST, &why),
    };
    a.wait_members("a registered once the server is up", |s| ids(s) == ["a"])
        .await;
    assert_eq!(a.log.lock().unwrap().first(), Some(&"connected"));
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_member_json_is_skipped() {
    let Some(connect) = zk_chroot("invalid_member_json_is_skipped") else {
        return;
    };
    let mut a = start(
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
    let mut a = start(
        &pool1,
        record("a", MemberState::Active),
        Duration::from_secs(10),
    );
    let mut b = start(
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
    let admin = ZkJobs::connect(&server.connect, Duration::from_secs(5))
        .await
        .unwrap();
    let pool = ZkPool {
        connect: server.connect.clone(),
        admin,
        session_timeout,
    };
    let lose_sessions = async {
        server.pause();
        // Longer than the session timeout, so the server expires our sessions once it runs again.
        tokio::time::sleep(session_timeout * 3).await;
        server.resume();
    };
    let (a, b) = contract::check_session_loss(&pool, lose_sessions).await;
    // ZooKeeper also reports the lost connection before the expiry.
    for p in [&a, &b] {
        let log = p.log.lock().unwrap().clone();
        let d = log.iter().position(|e| *e == "disconnected");
        let e = log.iter().position(|e| *e == "expired");
        assert!(
            d.is_some() && d < e,
            "disconnected must come before expired: {log:?}"
        );
    }
    let root = zk::Client::connect(&server.connect).await.unwrap();
    for id in ["a", "b"] {
        let (_, stat) = root.get_data(&format!("/members/{id}")).await.unwrap();
        assert_ne!(stat.ephemeral_owner, 0, "{id} is ephemeral again");
    }
    eprintln!("session events of a: {:?}", a.log.lock().unwrap());
}
