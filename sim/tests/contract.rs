//! The coordinator contract (`scrapepool_adapters::contract`) against the ZooKeeper model:
//! the same checks adapters/tests/zk.rs runs against a real server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scrapepool_adapters::contract::{self, CoordinatorFixture};
use scrapepool_sim::zk::{ModelCoordinator, ZkModel};

/// A pool on one model, each coordinator on a host of its own.
struct ModelPool {
    model: Arc<ZkModel>,
    hosts: Mutex<Vec<String>>,
    next: AtomicUsize,
    session_timeout: Duration,
}

impl ModelPool {
    fn new() -> ModelPool {
        let start = tokio::time::Instant::now();
        ModelPool {
            model: ZkModel::new(Arc::new(move || start.elapsed())),
            hosts: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
            session_timeout: Duration::from_secs(2),
        }
    }
}

impl CoordinatorFixture for ModelPool {
    type Coordinator = ModelCoordinator;

    fn coordinator(&self) -> ModelCoordinator {
        let host = format!("h{}", self.next.fetch_add(1, Ordering::Relaxed));
        self.hosts.lock().unwrap().push(host.clone());
        ModelCoordinator::new(self.model.clone(), &host, self.session_timeout)
    }

    async fn put_job(&self, name: &str, yaml: &str) {
        self.model.put_job(name, yaml);
    }

    async fn delete_job(&self, name: &str) {
        self.model.delete_job(name);
    }
}

#[tokio::test(start_paused = true)]
async fn contract_membership() {
    contract::check_membership(&ModelPool::new()).await;
}

#[tokio::test(start_paused = true)]
async fn contract_record_update() {
    contract::check_record_update(&ModelPool::new()).await;
}

#[tokio::test(start_paused = true)]
async fn contract_jobs() {
    contract::check_jobs(&ModelPool::new()).await;
}

/// Every host cut off from the model for longer than the session timeout: each member sees
/// its connection lost, then its session expired, then a new session where it registers again.
#[tokio::test(start_paused = true)]
async fn contract_session_loss() {
    let pool = ModelPool::new();
    let lose_sessions = async {
        let hosts = pool.hosts.lock().unwrap().clone();
        for h in &hosts {
            pool.model.set_reachable(h, false);
        }
        tokio::time::sleep(pool.session_timeout * 3).await;
        for h in &hosts {
            pool.model.set_reachable(h, true);
        }
    };
    let (a, b) = contract::check_session_loss(&pool, lose_sessions).await;
    for p in [&a, &b] {
        let log = p.log.lock().unwrap().clone();
        let d = log.iter().position(|e| *e == "disconnected");
        let e = log.iter().position(|e| *e == "expired");
        assert!(
            d.is_some() && d < e,
            "disconnected must come before expired: {log:?}"
        );
    }
    let mut ids = pool.model.member_ids();
    ids.sort();
    assert_eq!(ids, ["a", "b"]);
}

/// The member re-registers after an expiry on its own, without the node asking again: the
/// policy keeps the record it was last asked for.
#[tokio::test(start_paused = true)]
async fn an_expired_member_registers_again_without_being_asked() {
    let pool = ModelPool::new();
    let coordinator = pool.coordinator();
    let (events_tx, mut events) = tokio::sync::mpsc::channel(1024);
    let (requests, requests_rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(scrapepool_adapters::ports::Coordinator::run(
        coordinator,
        events_tx,
        requests_rx,
    ));
    let me = contract::record("a", scrapepool_core::member::MemberState::Active);
    requests
        .send(scrapepool_adapters::ports::CoordRequest::Register(me))
        .await
        .unwrap();
    let registered = |model: &ZkModel| model.member_ids() == ["a"];
    let wait = |what: &'static str, model: Arc<ZkModel>, want: bool| async move {
        for _ in 0..200 {
            if registered(&model) == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for: {what}");
    };
    wait("registered", pool.model.clone(), true).await;
    pool.model.expire_host("h0");
    assert!(!registered(&pool.model));
    wait("registered again", pool.model.clone(), true).await;
    let mut seen = Vec::new();
    while let Ok(ev) = events.try_recv() {
        seen.push(format!("{ev:?}").split('(').next().unwrap().to_string());
    }
    let e = seen
        .iter()
        .position(|e| e == "SessionExpired")
        .expect("expiry reported");
    assert!(
        seen[e..].contains(&"SessionConnected".to_string()),
        "{seen:?}"
    );
    drop(requests);
}
