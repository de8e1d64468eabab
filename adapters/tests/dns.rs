//! DNS discovery against a real dnsmasq on a free 127.0.0.1 port, whose records change
//! between refreshes.
//!
//! dnsmasq is `SCRAPEPOOL_DNSMASQ_BIN`, else `dnsmasq` on PATH, else `/usr/sbin/dnsmasq`.
//! When it is absent the tests print `SKIPPED: ...` and pass, unless
//! `SCRAPEPOOL_REQUIRE_SERVICES=1`, when they fail.
//!
//! How records change: `--srv-host` and `--host-record` live in the configuration file,
//! which dnsmasq reads only at start (SIGHUP re-reads hosts files, `--addn-hosts` among them,
//! not the configuration), so SRV changes restart dnsmasq on the same port; A/AAAA changes
//! rewrite an `--addn-hosts` file and send SIGHUP. MX records are `--mx-host`; NS records
//! come from a zone dnsmasq serves authoritatively (`--auth-zone`, `--auth-server` on the
//! test's address, `--auth-sec-servers`); both change by a restart.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use scrapepool_adapters::discovery::DnsDiscoverer;
use scrapepool_adapters::ports::Discoverer;
use scrapepool_core::config::{DnsRecordType, DnsSdConfig, SdConfig, TargetGroup};
use scrapepool_core::labels::Labels;
use scrapepool_core::node::ProviderId;
use scrapepool_core::Event;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Longest we wait for an expected update (dnsmasq start plus a few refreshes).
const UPDATE_WAIT: Duration = Duration::from_secs(10);
/// Refresh interval of the discoverers under test.
const REFRESH: Duration = Duration::from_millis(200);

fn dnsmasq_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SCRAPEPOOL_DNSMASQ_BIN") {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("dnsmasq"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| Some(PathBuf::from("/usr/sbin/dnsmasq")).filter(|p| p.is_file()))
}

/// The binary, or `None` after printing why the test is skipped (panics if services are required).
fn require_dnsmasq() -> Option<PathBuf> {
    match dnsmasq_bin() {
        Some(p) => Some(p),
        None if std::env::var("SCRAPEPOOL_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!(
                "dnsmasq not found (set SCRAPEPOOL_DNSMASQ_BIN) and SCRAPEPOOL_REQUIRE_SERVICES=1"
            )
        }
        None => {
            println!("SKIPPED: dnsmasq not found (apt-get install dnsmasq, or set SCRAPEPOOL_DNSMASQ_BIN)");
            None
        }
    }
}

/// A dnsmasq serving `records` (configuration lines) and an `--addn-hosts` file.
struct Dnsmasq {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Dnsmasq {
    fn start(bin: PathBuf, records: &[&str], hosts: &str) -> Dnsmasq {
        let dir = tempfile::tempdir().unwrap();
        // dnsmasq may drop privileges to `nobody` and must still read the hosts file on SIGHUP.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let port = free_port();
        let mut d = Dnsmasq {
            bin,
            dir,
            port,
            child: None,
        };
        d.write_hosts(hosts);
        d.restart(records);
        d
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn hosts_path(&self) -> PathBuf {
        self.dir.path().join("hosts")
    }

    fn write_hosts(&self, hosts: &str) {
        write_readable(&self.hosts_path(), hosts);
    }

    /// (Re)starts dnsmasq with `records`, on the same port.
    fn restart(&mut self, records: &[&str]) {
        self.stop();
        let conf = self.dir.path().join("dnsmasq.conf");
        let mut text = format!(
            "port={}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\nlocal=/example.test/\naddn-hosts={}\n",
            self.port,
            self.hosts_path().display()
        );
        for r in records {
            text.push_str(r);
            text.push('\n');
        }
        write_readable(&conf, &text);
        let child = Command::new(&self.bin)
            .arg("--no-daemon")
            .arg("--no-resolv")
            .arg("--no-hosts")
            .arg(format!("--conf-file={}", conf.display()))
            .arg("--pid-file=")
            .arg("--log-facility=-")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        self.child = Some(child);
    }

    /// Asks dnsmasq to re-read its hosts files.
    fn sighup(&self) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .arg("-HUP")
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_readable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// A port free for both UDP and TCP on 127.0.0.1 (at the moment of asking).
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn start(
    nameserver: SocketAddr,
    names: &[&str],
    record_type: DnsRecordType,
    port: Option<u16>,
) -> (mpsc::Receiver<Event>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(64);
    let discoverer = DnsDiscoverer::with_nameservers(vec![nameserver]);
    let config = SdConfig::Dns(DnsSdConfig {
        names: names.iter().map(|s| s.to_string()).collect(),
        record_type,
        port,
        refresh_interval: REFRESH,
    });
    let provider = ProviderId {
        job: "dns".into(),
        index: 0,
        generation: 1,
    };
    let task = tokio::spawn(async move { discoverer.run(provider, config, tx).await });
    (rx, task)
}

async fn next(rx: &mut mpsc::Receiver<Event>, limit: Duration) -> Result<Vec<TargetGroup>, String> {
    match tokio::time::timeout(limit, rx.recv()).await {
        Ok(Some(Event::DiscoveryUpdated { provider, result })) => {
            assert_eq!(provider.job, "dns");
            result
        }
        Ok(Some(other)) => panic!("unexpected event {other:?}"),
        Ok(None) => panic!("discoverer stopped"),
        Err(_) => panic!("no update within {limit:?}"),
    }
}

/// The next Ok update satisfying `want`; errors in between (dnsmasq restarting) are skipped.
async fn until(
    rx: &mut mpsc::Receiver<Event>,
    want: impl Fn(&[TargetGroup]) -> bool,
) -> Vec<TargetGroup> {
    let deadline = Instant::now() + UPDATE_WAIT;
    let mut last = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            panic!("no matching update within {UPDATE_WAIT:?}; last: {last:?}");
        }
        match tokio::time::timeout(left, next(rx, left)).await {
            Ok(Ok(groups)) if want(&groups) => return groups,
            Ok(other) => last = Some(other),
            Err(_) => panic!("no matching update within {UPDATE_WAIT:?}; last: {last:?}"),
        }
    }
}

fn addresses(groups: &[TargetGroup], source: &str) -> Vec<String> {
    groups
        .iter()
        .filter(|g| g.source == source)
        .flat_map(|g| {
            g.targets
                .iter()
                .map(|t| t.get("__address__").unwrap().to_string())
        })
        .collect()
}

#[tokio::test]
async fn srv_records_with_prometheus_labels_and_changes_after_restart() {
    let Some(bin) = require_dnsmasq() else { return };
    let srv = "_web._tcp.example.test";
    let mut dnsmasq = Dnsmasq::start(
        bin,
        &[
            "srv-host=_web._tcp.example.test,web1.example.test,8080",
            "srv-host=_web._tcp.example.test,web2.example.test,8081,1,5",
        ],
        "",
    );
    let (mut rx, task) = start(dnsmasq.addr(), &[srv], DnsRecordType::Srv, None);

    let groups = until(&mut rx, |g| addresses(g, srv).len() == 2).await;
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].source, srv);
    assert_eq!(groups[0].labels, Labels::new());
    assert_eq!(
        groups[0].targets,
        vec![
            Labels::from_pairs([
                ("__address__", "web1.example.test:8080"),
                ("__meta_dns_name", srv),
                ("__meta_dns_srv_record_target", "web1.example.test."),
                ("__meta_dns_srv_record_port", "8080"),
            ]),
            Labels::from_pairs([
                ("__address__", "web2.example.test:8081"),
                ("__meta_dns_name", srv),
                ("__meta_dns_srv_record_target", "web2.example.test."),
                ("__meta_dns_srv_record_port", "8081"),
            ]),
        ]
    );

    // Unchanged records: no update over several refreshes.
    if let Ok(Some(ev)) = tokio::time::timeout(REFRESH * 4, rx.recv()).await {
        panic!("update without a change: {ev:?}");
    }

    // New records: web2 leaves, web3 arrives.
    dnsmasq.restart(&[
        "srv-host=_web._tcp.example.test,web1.example.test,8080",
        "srv-host=_web._tcp.example.test,web3.example.test,9090",
    ]);
    let groups = until(&mut rx, |g| {
        addresses(g, srv) == vec!["web1.example.test:8080", "web3.example.test:9090"]
    })
    .await;
    assert_eq!(
        groups[0].targets[1].get("__meta_dns_srv_record_port"),
        Some("9090")
    );
    task.abort();
}

#[tokio::test]
async fn a_and_aaaa_records_with_port_follow_hosts_file_changes_on_sighup() {
    let Some(bin) = require_dnsmasq() else { return };
    let dnsmasq = Dnsmasq::start(
        bin,
        &["host-record=fixed.example.test,10.9.0.1,fd00::9"],
        "10.0.0.1 app.example.test\nfd00::1 app.example.test\n",
    );
    let (mut rx_a, task_a) = start(
        dnsmasq.addr(),
        &["app.example.test", "fixed.example.test"],
        DnsRecordType::A,
        Some(9100),
    );
    let (mut rx_aaaa, task_aaaa) = start(
        dnsmasq.addr(),
        &["app.example.test", "fixed.example.test"],
        DnsRecordType::Aaaa,
        Some(9100),
    );

    let groups = until(&mut rx_a, |g| {
        addresses(g, "app.example.test").len() == 1 && addresses(g, "fixed.example.test").len() == 1
    })
    .await;
    assert_eq!(
        groups.iter().map(|g| g.source.as_str()).collect::<Vec<_>>(),
        vec!["app.example.test", "fixed.example.test"]
    );
    assert_eq!(
        groups[0].targets,
        vec![Labels::from_pairs([
            ("__address__", "10.0.0.1:9100"),
            ("__meta_dns_name", "app.example.test")
        ])]
    );
    assert_eq!(
        addresses(&groups, "fixed.example.test"),
        vec!["10.9.0.1:9100"]
    );
    let groups = until(&mut rx_aaaa, |g| {
        addresses(g, "app.example.test").len() == 1
    })
    .await;
    assert_eq!(
        groups[0].targets,
        vec![Labels::from_pairs([
            ("__address__", "[fd00::1]:9100"),
            ("__meta_dns_name", "app.example.test")
        ])]
    );
    assert_eq!(
        addresses(&groups, "fixed.example.test"),
        vec!["[fd00::9]:9100"]
    );

    dnsmasq.write_hosts(
        "10.0.0.1 app.example.test\n10.0.0.2 app.example.test\nfd00::2 app.example.test\n",
    );
    dnsmasq.sighup();
    let groups = until(&mut rx_a, |g| addresses(g, "app.example.test").len() == 2).await;
    assert_eq!(
        addresses(&groups, "app.example.test"),
        vec!["10.0.0.1:9100", "10.0.0.2:9100"]
    );
    let groups = until(&mut rx_aaaa, |g| {
        addresses(g, "app.example.test") == vec!["[fd00::2]:9100"]
    })
    .await;
    assert_eq!(
        addresses(&groups, "fixed.example.test"),
        vec!["[fd00::9]:9100"]
    );
    task_a.abort();
    task_aaaa.abort();
}

#[tokio::test]
async fn unknown_name_is_an_empty_group_and_a_dead_server_keeps_groups_and_reports() {
    let Some(bin) = require_dnsmasq() else { return };
    let mut dnsmasq = Dnsmasq::start(bin, &[], "10.0.0.1 app.example.test\n");
    let (mut rx, task) = start(
        dnsmasq.addr(),
        &["app.example.test", "nothing.example.test"],
        DnsRecordType::A,
        Some(80),
    );
    let groups = until(&mut rx, |g| addresses(g, "app.example.test").len() == 1).await;
    // NXDOMAIN: an empty group for that name, as Prometheus.
    let nothing: Vec<&TargetGroup> = groups
        .iter()
        .filter(|g| g.source == "nothing.example.test")
        .collect();
    assert_eq!(nothing.len(), 1);
    assert!(nothing[0].targets.is_empty());

    // The server goes away: the round fails; the error names the names and the server, and
    // no Ok without the targets is sent (the core keeps the last good result).
    dnsmasq.stop();
    let error = loop {
        match next(&mut rx, Duration::from_secs(30)).await {
            Err(e) => break e,
            Ok(groups) => assert_eq!(
                addresses(&groups, "app.example.test"),
                vec!["10.0.0.1:80"],
                "targets must not vanish"
            ),
        }
    };
    let server = dnsmasq.addr().to_string();
    assert!(
        error.contains("app.example.test") && error.contains(&server),
        "{error}"
    );
    task.abort();
}

#[tokio::test]
async fn one_failing_name_leaves_the_others_updating_and_is_reported() {
    let Some(bin) = require_dnsmasq() else { return };
    let dnsmasq = Dnsmasq::start(bin, &[], "10.0.0.1 app.example.test\n");
    // dnsmasq has no upstream server: a name outside example.test is refused.
    let (mut rx, task) = start(
        dnsmasq.addr(),
        &["app.example.test", "svc.elsewhere.test"],
        DnsRecordType::A,
        Some(80),
    );
    let groups = until(&mut rx, |g| addresses(g, "app.example.test").len() == 1).await;
    assert!(
        groups.iter().all(|g| g.source != "svc.elsewhere.test"),
        "a name that never resolved has no group"
    );
    let error = next(&mut rx, UPDATE_WAIT)
        .await
        .expect_err("the failing name is reported after the good groups");
    assert!(
        error.contains("svc.elsewhere.test") && !error.contains("app.example.test"),
        "{error}"
    );

    // The good name still follows its records; each round's error follows its groups.
    dnsmasq.write_hosts("10.0.0.7 app.example.test\n");
    dnsmasq.sighup();
    let groups = until(&mut rx, |g| {
        addresses(g, "app.example.test") == vec!["10.0.0.7:80"]
    })
    .await;
    assert_eq!(groups.len(), 1);
    let error = next(&mut rx, UPDATE_WAIT).await.expect_err("still failing");
    assert!(error.contains("svc.elsewhere.test"), "{error}");
    task.abort();
}

#[tokio::test]
async fn mx_and_ns_records_with_port_and_prometheus_labels() {
    let Some(bin) = require_dnsmasq() else { return };
    // NS records: dnsmasq answers them for a zone it serves authoritatively, naming its
    // `auth-server` and the `auth-sec-servers`.
    let zone = [
        "auth-server=ns1.sd.test,127.0.0.1",
        "auth-zone=sd.test",
        "auth-sec-servers=ns2.sd.test",
    ];
    let mut records: Vec<&str> = zone.to_vec();
    records.extend([
        "mx-host=mail.sd.test,mx1.sd.test,10",
        "mx-host=mail.sd.test,mx2.sd.test,20",
    ]);
    let mut dnsmasq = Dnsmasq::start(bin, &records, "");
    let (mut rx_mx, task_mx) = start(
        dnsmasq.addr(),
        &["mail.sd.test"],
        DnsRecordType::Mx,
        Some(25),
    );
    let (mut rx_ns, task_ns) = start(dnsmasq.addr(), &["sd.test"], DnsRecordType::Ns, Some(9153));

    let groups = until(&mut rx_mx, |g| addresses(g, "mail.sd.test").len() == 2).await;
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].source, "mail.sd.test");
    assert_eq!(
        groups[0].targets,
        vec![
            Labels::from_pairs([
                ("__address__", "mx1.sd.test:25"),
                ("__meta_dns_name", "mail.sd.test"),
                ("__meta_dns_mx_record_target", "mx1.sd.test."),
            ]),
            Labels::from_pairs([
                ("__address__", "mx2.sd.test:25"),
                ("__meta_dns_name", "mail.sd.test"),
                ("__meta_dns_mx_record_target", "mx2.sd.test."),
            ]),
        ]
    );

    let groups = until(&mut rx_ns, |g| addresses(g, "sd.test").len() == 2).await;
    assert_eq!(
        groups[0].targets,
        vec![
            Labels::from_pairs([
                ("__address__", "ns1.sd.test:9153"),
                ("__meta_dns_name", "sd.test"),
                ("__meta_dns_ns_record_target", "ns1.sd.test."),
            ]),
            Labels::from_pairs([
                ("__address__", "ns2.sd.test:9153"),
                ("__meta_dns_name", "sd.test"),
                ("__meta_dns_ns_record_target", "ns2.sd.test."),
            ]),
        ]
    );

    // The records change: mx2 leaves, mx3 arrives; a third name server is added.
    let mut records: Vec<&str> = vec![
        "auth-server=ns1.sd.test,127.0.0.1",
        "auth-zone=sd.test",
        "auth-sec-servers=ns2.sd.test,ns3.sd.test",
    ];
    records.extend([
        "mx-host=mail.sd.test,mx1.sd.test,10",
        "mx-host=mail.sd.test,mx3.sd.test,30",
    ]);
    dnsmasq.restart(&records);
    until(&mut rx_mx, |g| {
        addresses(g, "mail.sd.test") == vec!["mx1.sd.test:25", "mx3.sd.test:25"]
    })
    .await;
    until(&mut rx_ns, |g| {
        addresses(g, "sd.test") == vec!["ns1.sd.test:9153", "ns2.sd.test:9153", "ns3.sd.test:9153"]
    })
    .await;
    task_mx.abort();
    task_ns.abort();
}
