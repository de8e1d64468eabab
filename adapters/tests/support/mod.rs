//! Test support: finding (or starting) the outside services the integration tests need.
//!
//! ZooKeeper comes from `SCRAPEPOOL_ZK` (set by scripts/services.sh) when set; otherwise the
//! tests start a standalone server from Debian's `zookeeper` package on a free loopback port.
//! When neither is possible a test prints `SKIPPED: <why>` and returns, unless
//! `SCRAPEPOOL_REQUIRE_SERVICES=1`, when it fails.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The jar of Debian's `zookeeper` package.
pub(crate) const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";
/// Longest wait for a started server to serve.
pub(crate) const ZK_START_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether missing services are a failure rather than a skip.
pub(crate) fn services_required() -> bool {
    std::env::var("SCRAPEPOOL_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Reports a test that cannot run: a failure when services are required, else a skip line.
pub(crate) fn skip(test: &str, why: &str) {
    if services_required() {
        panic!("{test}: required service missing: {why}");
    }
    println!("SKIPPED: {test}: {why}");
}

/// A running ZooKeeper server.
pub(crate) struct ZkServer {
    /// `127.0.0.1:<port>`.
    pub connect: String,
    /// The server's pid (for SIGSTOP/SIGCONT), when known.
    pub pid: Option<u32>,
    /// The watchdog shell that owns the JVM (absent for an outside server).
    child: Option<Child>,
    /// Its data and log directory.
    _dir: Option<tempfile::TempDir>,
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.filter(|_| self.child.is_some()) {
            // Resume first: a stopped JVM does not die of SIGTERM until continued.
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl ZkServer {
    /// Stops the server process (SIGSTOP): clients see no answer, sessions time out.
    pub(crate) fn pause(&self) {
        let pid = self.pid.expect("pause needs the server's pid");
        assert!(Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .unwrap()
            .success());
    }

    /// Resumes a paused server (SIGCONT).
    pub(crate) fn resume(&self) {
        let pid = self.pid.expect("resume needs the server's pid");
        assert!(Command::new("kill")
            .args(["-CONT", &pid.to_string()])
            .status()
            .unwrap()
            .success());
    }
}

/// Whether the server at `connect` serves requests: its `srvr` four-letter word reports a
/// mode (`ruok` alone answers `imok` before the server accepts sessions).
pub(crate) fn zk_ok(connect: &str) -> bool {
    let Ok(addr) = connect.parse() else {
        return false;
    };
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"srvr").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.contains("Mode: ")
}

/// A loopback port nobody listens on (free when asked; small race with other processes).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a private standalone ZooKeeper server (Debian's package), or says why it can't.
///
/// The JVM runs under a small watchdog shell that kills it when this test process is gone,
/// so no server outlives the tests even when they are killed.
pub(crate) fn start_zk() -> Result<ZkServer, String> {
    start_zk_on(free_port())
}

/// Starts a private standalone ZooKeeper server on `port`; see [`start_zk`].
pub(crate) fn start_zk_on(port: u16) -> Result<ZkServer, String> {
    if !Path::new(ZK_JAR).exists() {
        return Err(format!("{ZK_JAR} not found (apt-get install zookeeper)"));
    }
    if Command::new("java")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        return Err("no `java` on PATH".into());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n\
             4lw.commands.whitelist=ruok,srvr\nminSessionTimeout=1000\nmaxSessionTimeout=60000\n",
            data.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let pidfile = dir.path().join("pid");
    let script = format!(
        "java -Xmx256m -Dzookeeper.log.dir={log} -cp {dir}:{ZK_JAR} org.apache.zookeeper.server.quorum.QuorumPeerMain {cfg} >{log}/server.log 2>&1 &\n\
         j=$!; echo $j >{pidfile}\n\
         while kill -0 {parent} 2>/dev/null && kill -0 $j 2>/dev/null; do sleep 0.5; done\n\
         kill -CONT $j 2>/dev/null; kill -9 $j 2>/dev/null\n",
        log = dir.path().display(),
        dir = dir.path().display(),
        cfg = cfg.display(),
        pidfile = pidfile.display(),
        parent = std::process::id(),
    );
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let connect = format!("127.0.0.1:{port}");
    let mut server = ZkServer {
        connect: connect.clone(),
        pid: None,
        child: Some(child),
        _dir: None,
    };
    let started = Instant::now();
    while started.elapsed() < ZK_START_TIMEOUT {
        if server.pid.is_none() {
            server.pid = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok());
        }
        if server.pid.is_some() && zk_ok(&connect) {
            server._dir = Some(dir);
            return Ok(server);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
    Err(format!(
        "ZooKeeper did not serve (srvr) on {connect} within {ZK_START_TIMEOUT:?}; log:\n{log}"
    ))
}

/// The ZooKeeper server shared by the tests of this process: `SCRAPEPOOL_ZK` when set,
/// else one private server started on first use. `Err` says why there is none.
pub(crate) fn shared_zk() -> Result<&'static ZkServer, String> {
    static SHARED: OnceLock<Result<ZkServer, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| match std::env::var("SCRAPEPOOL_ZK") {
            Ok(connect) if !connect.is_empty() => {
                let pid = std::env::var("SCRAPEPOOL_ZK_PID")
                    .ok()
                    .and_then(|p| p.parse().ok());
                Ok(ZkServer {
                    connect,
                    pid,
                    child: None,
                    _dir: None,
                })
            }
            _ => start_zk(),
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A name unique within this machine's test runs (for chroots).
pub(crate) fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{t}-{n}", std::process::id())
}
