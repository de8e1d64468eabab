//! `dns_sd_configs`: SRV, A, AAAA, MX and NS lookups, refreshed every `refresh_interval`.
//!
//! Labels are Prometheus 3.16's (`discovery/dns`): `__address__`, `__meta_dns_name`, and
//! by record type `__meta_dns_srv_record_target` (the record's target with its trailing dot)
//! and `__meta_dns_srv_record_port` for SRV, `__meta_dns_mx_record_target` for MX,
//! `__meta_dns_ns_record_target` for NS (each with its trailing dot). SRV targets take the
//! record's port; A, AAAA, MX and NS targets the entry's `port`, MX and NS with the named
//! host (its trailing dot removed). Prometheus sets the meta labels of the other types to
//! the empty string, which is the same as absent.
//! One group per name, its source the name. A name that does not exist (NXDOMAIN) or has no
//! record of the type gives an empty group, as in Prometheus.
//!
//! A name whose lookup fails (timeout, SERVFAIL, refused): Prometheus logs the error and
//! sends no group for that name, so its discovery manager keeps that name's previous group
//! while the other names update. We do the same and make the failure visible: the round's
//! groups (the failed name's previous group, none if it never resolved, and every other
//! name's fresh group) go out as `Ok` when they changed, followed by `Err` naming each failed
//! name, its record type and the servers asked. The core thus holds the freshest good groups
//! and shows the error until a round succeeds. A first round where every name failed sends
//! only the `Err`.
//!
//! Targets within a group are sorted: servers rotate the order of answers, and an unsorted
//! group would look changed on every round.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use scrapepool_core::config::{DnsRecordType, DnsSdConfig, SdConfig, TargetGroup};
use scrapepool_core::labels::Labels;
use scrapepool_core::node::ProviderId;

use super::{join_host_port, Reporter, ADDRESS_LABEL};
use crate::ports::{Discoverer, EventSender};

/// Longest one name's lookup may take, all retries and servers included.
pub const LOOKUP_DEADLINE: Duration = Duration::from_secs(10);
/// Timeout of one query to one server (the resolver retries within [`LOOKUP_DEADLINE`]).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Shortest wait between rounds, whatever `refresh_interval` says (guards against a 0 interval).
pub const REFRESH_INTERVAL_MIN: Duration = Duration::from_millis(100);

/// DNS discovery; `nameservers` overrides the system's resolv.conf (tests use a local server).
#[derive(Clone, Debug, Default)]
pub struct DnsDiscoverer {
    /// Servers to ask, UDP with TCP fallback; `None` reads `/etc/resolv.conf`.
    pub nameservers: Option<Vec<SocketAddr>>,
}

impl DnsDiscoverer {
    /// A discoverer that asks the given servers instead of the system's.
    pub fn with_nameservers(nameservers: Vec<SocketAddr>) -> DnsDiscoverer {
        DnsDiscoverer {
            nameservers: Some(nameservers),
        }
    }

    fn describe_servers(&self) -> String {
        match &self.nameservers {
            Some(servers) => {
                let list: Vec<String> = servers.iter().map(|s| s.to_string()).collect();
                format!("server {}", list.join(","))
            }
            None => "the servers of /etc/resolv.conf".to_string(),
        }
    }

    fn build_resolver(&self) -> Result<TokioResolver, String> {
        let builder = match &self.nameservers {
            Some(servers) => {
                let name_servers = servers
                    .iter()
                    .map(|s| {
                        let mut udp = ConnectionConfig::udp();
                        udp.port = s.port();
                        let mut tcp = ConnectionConfig::tcp();
                        tcp.port = s.port();
                        NameServerConfig::new(s.ip(), true, vec![udp, tcp])
                    })
                    .collect();
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(name_servers),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| format!("dns: reading /etc/resolv.conf: {e}"))?,
        };
        let mut builder = builder;
        // Only these options change: resolv.conf's own (ndots, ...) stay.
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.timeout = QUERY_TIMEOUT;
        opts.attempts = 2;
        // Prometheus asks DNS servers directly: no hosts file, and no answer kept between
        // rounds (the cache is also cleared before each round, see `run`).
        opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        opts.cache_size = 0;
        builder.build().map_err(|e| {
            format!(
                "dns: building resolver for {}: {e}",
                self.describe_servers()
            )
        })
    }
}

impl Discoverer for DnsDiscoverer {
    async fn run(&self, provider: ProviderId, config: SdConfig, events: EventSender) {
        let SdConfig::Dns(config) = config else {
            let mut reporter = Reporter::new(provider, events);
            reporter
                .report(Err("dns discoverer given a non-DNS sd_config".into()))
                .await;
            return;
        };
        let mut reporter = Reporter::new(provider, events);
        let interval = config.refresh_interval.max(REFRESH_INTERVAL_MIN);
        let resolver = loop {
            match self.build_resolver() {
                Ok(r) => break r,
                Err(message) => {
                    tracing::error!(%message, "dns discovery cannot start");
                    if !reporter.report(Err(message)).await {
                        return;
                    }
                    tokio::time::sleep(interval).await;
                }
            }
        };
        let servers = self.describe_servers();
        let mut previous: BTreeMap<String, TargetGroup> = BTreeMap::new();
        loop {
            resolver.clear_cache();
            let (groups, errors) = refresh(&resolver, &config, &servers, &mut previous).await;
            if !reporter.report_round(groups, errors).await {
                return;
            }
            tokio::time::sleep(interval).await;
        }
    }
}

/// One round: every name looked up concurrently; `previous` holds each name's last group.
async fn refresh(
    resolver: &TokioResolver,
    config: &DnsSdConfig,
    servers: &str,
    previous: &mut BTreeMap<String, TargetGroup>,
) -> (Vec<TargetGroup>, Vec<String>) {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, name) in config.names.iter().enumerate() {
        let resolver = resolver.clone();
        let name = name.clone();
        let record_type = config.record_type;
        let port = config.port.unwrap_or(0);
        tasks.spawn(async move {
            let outcome = match tokio::time::timeout(
                LOOKUP_DEADLINE,
                lookup(&resolver, &name, record_type, port),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {}s", LOOKUP_DEADLINE.as_secs())),
            };
            (i, name, outcome)
        });
    }
    let mut outcomes = Vec::with_capacity(config.names.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => outcomes.push((
                usize::MAX,
                String::new(),
                Err(format!("lookup task failed: {e}")),
            )),
        }
    }
    // Groups in the order the names are written, whatever order the lookups finished in.
    outcomes.sort_by_key(|(i, _, _)| *i);
    let mut groups = Vec::with_capacity(outcomes.len());
    let mut errors = Vec::new();
    for (_, name, outcome) in outcomes {
        match outcome {
            Ok(group) => {
                previous.insert(name, group.clone());
                groups.push(group);
            }
            Err(e) => {
                let message = format!(
                    "dns: looking up {name:?} ({:?}) at {servers}: {e}",
                    config.record_type
                );
                tracing::warn!(%message, "dns lookup failed; keeping the name's previous targets");
                errors.push(message);
                if let Some(group) = previous.get(&name) {
                    groups.push(group.clone());
                }
            }
        }
    }
    (groups, errors)
}

/// Looks `name` up and turns the answer into its target group.
async fn lookup(
    resolver: &TokioResolver,
    name: &str,
    record_type: DnsRecordType,
    port: u16,
) -> Result<TargetGroup, String> {
    let qtype = match record_type {
        DnsRecordType::Srv => RecordType::SRV,
        DnsRecordType::A => RecordType::A,
        DnsRecordType::Aaaa => RecordType::AAAA,
        DnsRecordType::Mx => RecordType::MX,
        DnsRecordType::Ns => RecordType::NS,
    };
    let mut targets = Vec::new();
    match resolver.lookup(name, qtype).await {
        Ok(answer) => {
            for record in answer.answers() {
                let labels = match &record.data {
                    RData::SRV(srv) => {
                        let target = srv.target.to_string();
                        // Prometheus strips the root dot from the address but not from the label.
                        let host = target.strip_suffix('.').unwrap_or(&target);
                        Labels::from_pairs([
                            (ADDRESS_LABEL, join_host_port(host, srv.port)),
                            ("__meta_dns_name", name.to_string()),
                            ("__meta_dns_srv_record_target", target.clone()),
                            ("__meta_dns_srv_record_port", srv.port.to_string()),
                        ])
                    }
                    RData::A(a) if record_type == DnsRecordType::A => Labels::from_pairs([
                        (ADDRESS_LABEL, join_host_port(&a.0.to_string(), port)),
                        ("__meta_dns_name", name.to_string()),
                    ]),
                    RData::AAAA(aaaa) if record_type == DnsRecordType::Aaaa => {
                        Labels::from_pairs([
                            (ADDRESS_LABEL, join_host_port(&aaaa.0.to_string(), port)),
                            ("__meta_dns_name", name.to_string()),
                        ])
                    }
                    RData::MX(mx) if record_type == DnsRecordType::Mx => {
                        let target = mx.exchange.to_string();
                        let host = target.strip_suffix('.').unwrap_or(&target);
                        Labels::from_pairs([
                            (ADDRESS_LABEL, join_host_port(host, port)),
                            ("__meta_dns_name", name.to_string()),
                            ("__meta_dns_mx_record_target", target.clone()),
                        ])
                    }
                    RData::NS(ns) if record_type == DnsRecordType::Ns => {
                        let target = ns.0.to_string();
                        let host = target.strip_suffix('.').unwrap_or(&target);
                        Labels::from_pairs([
                            (ADDRESS_LABEL, join_host_port(host, port)),
                            ("__meta_dns_name", name.to_string()),
                            ("__meta_dns_ns_record_target", target.clone()),
                        ])
                    }
                    // CNAMEs (and anything else) come along with the answer; not targets.
                    _ => continue,
                };
                targets.push(labels);
            }
        }
        // NXDOMAIN or no record of the type: an empty group, as Prometheus treats it.
        Err(NetError::Dns(DnsError::NoRecordsFound(_))) => {}
        Err(e) => return Err(e.to_string()),
    }
    targets.sort();
    targets.dedup();
    Ok(TargetGroup {
        targets,
        labels: Labels::new(),
        source: name.to_string(),
    })
}
