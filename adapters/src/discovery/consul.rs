//! `consul_sd_configs`: services from Consul's catalog, their instances from the health
//! endpoint, both with blocking queries — as Prometheus 3.16's `discovery/consul` does.
//!
//! - The datacenter is the configured one, or the agent's own (`/v1/agent/self`).
//! - Unless `services` is given without `tags` and without `filter`, `/v1/catalog/services`
//!   is watched (with `node-meta` and `filter`) and every service whose name is in
//!   `services` (or any, when empty) and whose tags include all of `tags` gets a watcher; a
//!   watcher stops when its service leaves the catalog. With `services` and neither `tags`
//!   nor `filter`, exactly those services are watched.
//! - Each watcher blocks on `/v1/health/service/<name>` (with `tag`, `node-meta` and
//!   `health_filter` as `filter`; every instance, whatever its health), one request at most
//!   every `refresh_interval`, as Prometheus's ticker does.
//! - Every request carries `dc`, `ns` (`namespace`) and `partition` when set, `stale` with
//!   `allow_stale`, and goes to `<scheme>://<server><path_prefix><API path>`.
//! - `X-Consul-Index`: an unchanged index means the wait expired with no change; an index
//!   lower than the last one resets the watch to 0 (the next request does not block and
//!   reads the current state afresh); an index of 0 is taken as 1, as Consul's documentation
//!   asks, so a buggy server cannot turn blocking queries into a busy loop.
//! - Labels, per instance: `__address__` (service address, else node address, with the
//!   service port), `__meta_consul_address`, `__meta_consul_node`, `__meta_consul_tags`
//!   (tags joined by the separator, with one before and one after), `__meta_consul_service_address`,
//!   `__meta_consul_service_port`, `__meta_consul_service_id`, `__meta_consul_health`
//!   (Consul's aggregated status), `__meta_consul_namespace` and `__meta_consul_partition`
//!   (Enterprise; absent when empty), `__meta_consul_metadata_<key>`,
//!   `__meta_consul_service_metadata_<key>`, `__meta_consul_tagged_address_<key>` (keys
//!   sanitized); per group: `__meta_consul_service` and `__meta_consul_dc`; source = service.
//!
//! Errors (a request that fails, times out or answers non-2xx) are sent as `Err` naming the
//! server, the endpoint and the service; the watcher retries after `retry_interval`. The ACL
//! token travels only in the `X-Consul-Token` header and never appears in a log or an error;
//! `basic_auth` (also from `username` and `password`) and `authorization` give the
//! `Authorization` header, their files read at each request. Requests go through the HTTP
//! adapter's client stack (`http::client`, as scrapes do): tokio TCP, and for
//! `scheme: https` rustls with the entry's `tls_config` (CA, client certificate,
//! `server_name`, `insecure_skip_verify`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use hyper::{Request, Uri};
use scrapepool_core::config::{
    Authorization, BasicAuth, ConsulSdConfig, Scheme, SdConfig, TargetGroup,
};
use scrapepool_core::labels::Labels;
use scrapepool_core::node::ProviderId;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use super::{join_host_port, sanitize_label_name, Reporter, ADDRESS_LABEL};
use crate::http::client::{self, Client, ConnectError, Connection};
use crate::http::TcpConnector;
use crate::ports::{Discoverer, EventSender};

/// How long a blocking query may wait on the server (Prometheus's `watchTimeout`).
pub const WATCH_WAIT: Duration = Duration::from_secs(120);
/// Pause after a failed request (Prometheus's `retryInterval`).
pub const RETRY_INTERVAL: Duration = Duration::from_secs(15);
/// Extra time a request may take beyond its wait (Consul adds up to wait/16 of jitter).
pub const REQUEST_MARGIN: Duration = Duration::from_secs(15);
/// Largest response body read from Consul.
pub const BODY_SIZE_BYTES_MAX: usize = 64 << 20;
/// Most watcher messages waiting for the provider's main loop.
pub const WATCH_QUEUE_LEN_MAX: usize = 256;
/// Shortest pause between two requests of one watcher, whatever `refresh_interval` says.
pub const REFRESH_INTERVAL_MIN: Duration = Duration::from_millis(10);
/// Longest part of an error response's body quoted in an error message.
const ERROR_BODY_CHARS_MAX: usize = 200;

/// Consul discovery. `wait` and `retry_interval` are Prometheus's constants by default;
/// tests shorten them.
#[derive(Clone, Debug)]
pub struct ConsulDiscoverer {
    /// How long each blocking query waits on the server.
    pub wait: Duration,
    /// Pause after a failed request.
    pub retry_interval: Duration,
}

impl Default for ConsulDiscoverer {
    fn default() -> Self {
        ConsulDiscoverer {
            wait: WATCH_WAIT,
            retry_interval: RETRY_INTERVAL,
        }
    }
}

impl Discoverer for ConsulDiscoverer {
    async fn run(&self, provider: ProviderId, config: SdConfig, events: EventSender) {
        let mut reporter = Reporter::new(provider, events);
        let SdConfig::Consul(config) = config else {
            reporter
                .report(Err("consul discoverer given a non-Consul sd_config".into()))
                .await;
            return;
        };
        let api = match Api::new(&config, self.wait) {
            Ok(api) => api,
            Err(message) => {
                reporter.report(Err(message)).await;
                // Only a new configuration can fix this; wait to be aborted.
                std::future::pending::<()>().await;
                return;
            }
        };
        run_provider(api, config, self.retry_interval, reporter).await;
    }
}

/// What watchers tell the provider's main loop.
enum Message {
    /// The catalog's services (name → tags), or why they could not be read.
    Services(Result<BTreeMap<String, Vec<String>>, String>),
    /// One service's group, or why it could not be read.
    Service(String, Result<TargetGroup, String>),
}

async fn run_provider(
    api: Api,
    config: ConsulSdConfig,
    retry_interval: Duration,
    mut reporter: Reporter,
) {
    let dc = match &config.datacenter {
        Some(dc) => dc.clone(),
        None => loop {
            match api.agent_datacenter().await {
                Ok(dc) => break dc,
                Err(message) => {
                    tracing::error!(%message, "consul: cannot learn the agent's datacenter");
                    if !reporter.report(Err(message)).await {
                        return;
                    }
                    tokio::time::sleep(retry_interval).await;
                }
            }
        },
    };
    let api = Api {
        dc: Some(dc.clone()),
        ..api
    };
    let interval = config.refresh_interval.max(REFRESH_INTERVAL_MIN);
    let (tx, mut rx) = mpsc::channel(WATCH_QUEUE_LEN_MAX);
    // Dropping the JoinSet (when the driver aborts this task) aborts every watcher with it.
    let mut watchers: JoinSet<()> = JoinSet::new();
    let mut handles: BTreeMap<String, AbortHandle> = BTreeMap::new();
    let mut groups: BTreeMap<String, TargetGroup> = BTreeMap::new();
    // Services whose first answer we are still waiting for: no report until they answered,
    // so a new catalog never shows up as "every service empty" for a moment.
    let mut pending: BTreeSet<String> = BTreeSet::new();
    let watch_catalog =
        config.services.is_empty() || !config.tags.is_empty() || config.filter.is_some();
    if watch_catalog {
        watchers.spawn(watch_services(
            api.clone(),
            interval,
            retry_interval,
            tx.clone(),
        ));
    } else {
        for name in &config.services {
            if handles.contains_key(name) {
                continue;
            }
            pending.insert(name.clone());
            let handle = watchers.spawn(watch_service(
                api.clone(),
                name.clone(),
                config.tags.clone(),
                dc.clone(),
                config.tag_separator.clone(),
                interval,
                retry_interval,
                tx.clone(),
            ));
            handles.insert(name.clone(), handle);
        }
    }
    let mut catalog_seen = !watch_catalog;
    while let Some(message) = rx.recv().await {
        let failure = match message {
            Message::Services(Err(e)) => Some(e),
            Message::Services(Ok(services)) => {
                catalog_seen = true;
                for (name, tags) in &services {
                    if handles.contains_key(name) || !should_watch(&config, name, tags) {
                        continue;
                    }
                    pending.insert(name.clone());
                    let handle = watchers.spawn(watch_service(
                        api.clone(),
                        name.clone(),
                        config.tags.clone(),
                        dc.clone(),
                        config.tag_separator.clone(),
                        interval,
                        retry_interval,
                        tx.clone(),
                    ));
                    handles.insert(name.clone(), handle);
                }
                // As Prometheus: a watcher stops only when its service leaves the catalog.
                let gone: Vec<String> = handles
                    .keys()
                    .filter(|n| !services.contains_key(*n))
                    .cloned()
                    .collect();
                for name in gone {
                    if let Some(handle) = handles.remove(&name) {
                        handle.abort();
                    }
                    groups.remove(&name);
                    pending.remove(&name);
                }
                None
            }
            Message::Service(name, result) => {
                if !handles.contains_key(&name) {
                    continue; // A late answer from a watcher just stopped.
                }
                pending.remove(&name);
                match result {
                    Ok(group) => {
                        groups.insert(name, group);
                        None
                    }
                    Err(e) => Some(e),
                }
            }
        };
        let result = match failure {
            Some(message) => {
                tracing::warn!(%message, "consul discovery round failed");
                Err(message)
            }
            None if !catalog_seen || !pending.is_empty() => continue,
            None => Ok(groups.values().cloned().collect()),
        };
        if !reporter.report(result).await {
            return;
        }
    }
}

/// Prometheus's `shouldWatch`: the name is listed (or none are) and every wanted tag is present.
fn should_watch(config: &ConsulSdConfig, name: &str, tags: &[String]) -> bool {
    (config.services.is_empty() || config.services.iter().any(|s| s == name))
        && config.tags.iter().all(|t| tags.contains(t))
}

/// The index to send next, given the last one sent and the one the server returned.
///
/// Returns `None` when nothing changed (the wait expired), else the index to use next.
pub fn next_index(last: u64, returned: u64) -> Option<u64> {
    if returned == last && last != 0 {
        return None;
    }
    if returned < last {
        // Gone backwards (a restored snapshot, a new leader): restart the watch afresh.
        return Some(0);
    }
    // Never block with index 0: Consul would answer at once, every time.
    Some(returned.max(1))
}

/// Waits until `interval` has passed since `started`.
async fn pace(started: Instant, interval: Duration) {
    tokio::time::sleep_until(started + interval).await;
}

async fn watch_services(
    api: Api,
    interval: Duration,
    retry_interval: Duration,
    tx: mpsc::Sender<Message>,
) {
    let mut index = 0u64;
    loop {
        let started = Instant::now();
        match api.catalog_services(index).await {
            Ok((services, returned)) => {
                if let Some(next) = next_index(index, returned) {
                    index = next;
                    if tx.send(Message::Services(Ok(services))).await.is_err() {
                        return;
                    }
                }
                pace(started, interval).await;
            }
            Err(e) => {
                // Forget the index: the next answer must come at once and clear the error.
                index = 0;
                if tx.send(Message::Services(Err(e))).await.is_err() {
                    return;
                }
                tokio::time::sleep(retry_interval).await;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn watch_service(
    api: Api,
    name: String,
    tags: Vec<String>,
    dc: String,
    separator: String,
    interval: Duration,
    retry_interval: Duration,
    tx: mpsc::Sender<Message>,
) {
    let mut index = 0u64;
    loop {
        let started = Instant::now();
        match api.health_service(&name, &tags, index).await {
            Ok((entries, returned)) => {
                if let Some(next) = next_index(index, returned) {
                    index = next;
                    let group = service_group(&name, &dc, &separator, &entries);
                    if tx
                        .send(Message::Service(name.clone(), Ok(group)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                pace(started, interval).await;
            }
            Err(e) => {
                // Forget the index: the next answer must come at once and clear the error.
                index = 0;
                if tx
                    .send(Message::Service(name.clone(), Err(e)))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(retry_interval).await;
            }
        }
    }
}

/// One entry of `/v1/health/service/<name>`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceEntry {
    /// The node the instance runs on.
    pub node: Node,
    /// The instance.
    pub service: AgentService,
    /// The node's and the instance's health checks.
    pub checks: Option<Vec<HealthCheck>>,
}

/// A Consul node, as the health endpoint returns it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Node {
    /// Node name.
    pub node: String,
    /// Node address.
    pub address: String,
    /// Node datacenter.
    pub datacenter: String,
    /// Addresses by tag (`lan`, `wan`, ...).
    pub tagged_addresses: Option<BTreeMap<String, String>>,
    /// Node metadata.
    pub meta: Option<BTreeMap<String, String>>,
}

/// A service instance, as the health endpoint returns it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AgentService {
    /// Instance id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Service name.
    pub service: String,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// Service address; empty means the node's.
    pub address: String,
    /// Service metadata.
    pub meta: Option<BTreeMap<String, String>>,
    /// Port.
    pub port: u16,
    /// Namespace (Enterprise).
    pub namespace: Option<String>,
    /// Admin partition (Enterprise).
    pub partition: Option<String>,
}

/// A health check result.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthCheck {
    /// Check id; maintenance checks have reserved ids.
    #[serde(rename = "CheckID")]
    pub check_id: String,
    /// `passing`, `warning` or `critical`.
    pub status: String,
}

/// Consul's `HealthChecks.AggregatedStatus`: maintenance, else critical, else warning, else
/// passing; an unknown status makes the whole status empty.
pub fn aggregated_status(checks: &[HealthCheck]) -> &'static str {
    let (mut warning, mut critical, mut maintenance) = (false, false, false);
    for check in checks {
        if check.check_id == "_node_maintenance"
            || check.check_id.starts_with("_service_maintenance:")
        {
            maintenance = true;
            continue;
        }
        match check.status.as_str() {
            "passing" => {}
            "warning" => warning = true,
            "critical" => critical = true,
            _ => return "",
        }
    }
    if maintenance {
        "maintenance"
    } else if critical {
        "critical"
    } else if warning {
        "warning"
    } else {
        "passing"
    }
}

/// Turns one service's health entries into its target group, with Prometheus's labels.
pub fn service_group(
    name: &str,
    dc: &str,
    separator: &str,
    entries: &[ServiceEntry],
) -> TargetGroup {
    let mut targets = Vec::with_capacity(entries.len());
    for entry in entries {
        let (node, service) = (&entry.node, &entry.service);
        let tags = service.tags.as_deref().unwrap_or_default();
        // Separators on both ends, so relabel regexes need not care where a tag sits.
        let joined = format!("{separator}{}{separator}", tags.join(separator));
        let host = if service.address.is_empty() {
            &node.address
        } else {
            &service.address
        };
        let mut labels = Labels::from_pairs([
            (
                ADDRESS_LABEL.to_string(),
                join_host_port(host, service.port),
            ),
            ("__meta_consul_address".into(), node.address.clone()),
            ("__meta_consul_node".into(), node.node.clone()),
            (
                "__meta_consul_namespace".into(),
                service.namespace.clone().unwrap_or_default(),
            ),
            (
                "__meta_consul_partition".into(),
                service.partition.clone().unwrap_or_default(),
            ),
            ("__meta_consul_tags".into(), joined),
            (
                "__meta_consul_service_address".into(),
                service.address.clone(),
            ),
            (
                "__meta_consul_service_port".into(),
                service.port.to_string(),
            ),
            ("__meta_consul_service_id".into(), service.id.clone()),
            (
                "__meta_consul_health".into(),
                aggregated_status(entry.checks.as_deref().unwrap_or_default()).to_string(),
            ),
        ]);
        for (k, v) in node.meta.iter().flatten() {
            labels.set(
                format!("__meta_consul_metadata_{}", sanitize_label_name(k)),
                v.clone(),
            );
        }
        for (k, v) in service.meta.iter().flatten() {
            labels.set(
                format!("__meta_consul_service_metadata_{}", sanitize_label_name(k)),
                v.clone(),
            );
        }
        for (k, v) in node.tagged_addresses.iter().flatten() {
            labels.set(
                format!("__meta_consul_tagged_address_{}", sanitize_label_name(k)),
                v.clone(),
            );
        }
        targets.push(labels);
    }
    // Consul's order is by node; sorting makes equal catalogs give equal groups.
    targets.sort();
    TargetGroup {
        targets,
        labels: Labels::from_pairs([("__meta_consul_service", name), ("__meta_consul_dc", dc)]),
        source: name.to_string(),
    }
}

/// The Consul HTTP API, as much of it as discovery needs.
#[derive(Clone)]
struct Api {
    /// `http` or `https`.
    scheme: &'static str,
    /// Connects to the server, over TLS for `https`.
    client: Client<TcpConnector>,
    server: String,
    /// Put before every API path (`path_prefix`), with its leading `/`; empty when unset.
    path_prefix: String,
    token: Option<HeaderValue>,
    /// `basic_auth` (or `username` and `password`) and `authorization`, turned into the
    /// `Authorization` header at each request so rotated files are followed.
    basic_auth: Option<BasicAuth>,
    authorization: Option<Authorization>,
    dc: Option<String>,
    namespace: Option<String>,
    partition: Option<String>,
    filter: Option<String>,
    health_filter: Option<String>,
    stale: bool,
    node_meta: Vec<(String, String)>,
    wait: Duration,
}

impl Api {
    /// Errors when the token cannot be sent (the message never shows the token) or the TLS
    /// settings are unusable.
    fn new(config: &ConsulSdConfig, wait: Duration) -> Result<Api, String> {
        let tls = match config.scheme {
            Scheme::Http => None,
            Scheme::Https => Some(&config.http_client.tls_config),
        };
        let client = Client::new(TcpConnector, tls)
            .map_err(|e| format!("consul: server {}: tls_config: {e}", config.server))?;
        let token = match &config.token {
            None => None,
            Some(t) => Some(
                client::header(t.expose().to_string(), "the token")
                    .map_err(|e| format!("consul: server {}: {e}", config.server))?,
            ),
        };
        // Go's consul client joins the prefix and the path as they are; a URL's path
        // always starts with `/`.
        let path_prefix = match config.path_prefix.as_deref() {
            None | Some("") => String::new(),
            Some(p) if p.starts_with('/') => p.to_string(),
            Some(p) => format!("/{p}"),
        };
        Ok(Api {
            scheme: config.scheme.as_str(),
            client,
            server: config.server.clone(),
            path_prefix,
            token,
            basic_auth: config.http_client.basic_auth.clone(),
            authorization: config.http_client.authorization.clone(),
            dc: config.datacenter.clone(),
            namespace: config.namespace.clone(),
            partition: config.partition.clone(),
            filter: config.filter.clone(),
            health_filter: config.health_filter.clone(),
            stale: config.allow_stale,
            node_meta: config
                .node_meta
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            wait,
        })
    }

    /// The agent's datacenter (`Config.Datacenter` of `/v1/agent/self`).
    async fn agent_datacenter(&self) -> Result<String, String> {
        let (body, _) = self
            .get("/v1/agent/self", Vec::new(), "agent self", Duration::ZERO)
            .await?;
        let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            self.describe(
                "/v1/agent/self",
                "agent self",
                &format!("invalid JSON: {e}"),
            )
        })?;
        match value.pointer("/Config/Datacenter").and_then(|v| v.as_str()) {
            Some(dc) => Ok(dc.to_string()),
            None => Err(self.describe(
                "/v1/agent/self",
                "agent self",
                "no Config.Datacenter in the answer",
            )),
        }
    }

    async fn catalog_services(
        &self,
        index: u64,
    ) -> Result<(BTreeMap<String, Vec<String>>, u64), String> {
        let path = "/v1/catalog/services";
        let mut query = self.common_query(index);
        for (k, v) in &self.node_meta {
            query.push(("node-meta", format!("{k}:{v}")));
        }
        if let Some(filter) = &self.filter {
            query.push(("filter", filter.clone()));
        }
        let wait = if index > 0 { self.wait } else { Duration::ZERO };
        let (body, returned) = self.get(path, query, "service list", wait).await?;
        let services: BTreeMap<String, Option<Vec<String>>> = serde_json::from_slice(&body)
            .map_err(|e| self.describe(path, "service list", &format!("invalid JSON: {e}")))?;
        Ok((
            services
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect(),
            returned,
        ))
    }

    async fn health_service(
        &self,
        name: &str,
        tags: &[String],
        index: u64,
    ) -> Result<(Vec<ServiceEntry>, u64), String> {
        let path = format!("/v1/health/service/{}", percent_encode(name));
        let what = format!("service {name:?}");
        let mut query = self.common_query(index);
        for tag in tags {
            query.push(("tag", tag.clone()));
        }
        for (k, v) in &self.node_meta {
            query.push(("node-meta", format!("{k}:{v}")));
        }
        if let Some(filter) = &self.health_filter {
            query.push(("filter", filter.clone()));
        }
        let wait = if index > 0 { self.wait } else { Duration::ZERO };
        let (body, returned) = self.get(&path, query, &what, wait).await?;
        let entries: Option<Vec<ServiceEntry>> = serde_json::from_slice(&body)
            .map_err(|e| self.describe(&path, &what, &format!("invalid JSON: {e}")))?;
        Ok((entries.unwrap_or_default(), returned))
    }

    fn common_query(&self, index: u64) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let Some(dc) = &self.dc {
            query.push(("dc", dc.clone()));
        }
        if let Some(ns) = &self.namespace {
            query.push(("ns", ns.clone()));
        }
        if let Some(partition) = &self.partition {
            query.push(("partition", partition.clone()));
        }
        if self.stale {
            query.push(("stale", String::new()));
        }
        if index > 0 {
            query.push(("index", index.to_string()));
            query.push(("wait", format!("{}ms", self.wait.as_millis())));
        }
        query
    }

    fn describe(&self, path: &str, what: &str, error: &str) -> String {
        format!(
            "consul: server {}: {what} (GET {}{path}): {error}",
            self.server, self.path_prefix
        )
    }

    /// GETs `path`; returns the body and `X-Consul-Index` (0 when absent). Never takes
    /// longer than `wait` plus [`REQUEST_MARGIN`].
    async fn get(
        &self,
        path: &str,
        query: Vec<(&str, String)>,
        what: &str,
        wait: Duration,
    ) -> Result<(Bytes, u64), String> {
        let mut uri = format!(
            "{}://{}{}{path}",
            self.scheme, self.server, self.path_prefix
        );
        for (i, (k, v)) in query.iter().enumerate() {
            uri.push(if i == 0 { '?' } else { '&' });
            uri.push_str(k);
            if !v.is_empty() {
                uri.push('=');
                uri.push_str(&percent_encode(v));
            }
        }
        let uri: Uri = uri
            .parse()
            .map_err(|e| self.describe(path, what, &format!("invalid URL: {e}")))?;
        let mut request = Request::get(uri).header(ACCEPT, "application/json");
        if let Some(token) = &self.token {
            request = request.header("X-Consul-Token", token.clone());
        }
        let auth = client::authorization(self.basic_auth.as_ref(), self.authorization.as_ref())
            .map_err(|e| self.describe(path, what, &e))?;
        if let Some(auth) = auth {
            request = request.header(AUTHORIZATION, auth);
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| self.describe(path, what, &e.to_string()))?;
        let deadline = wait + wait / 16 + REQUEST_MARGIN;
        let exchange = async {
            let (status, index, body) = self.send(request).await?;
            if !status.is_success() {
                let text = String::from_utf8_lossy(&body);
                let text: String = text.trim().chars().take(ERROR_BODY_CHARS_MAX).collect();
                return Err(format!("status {status}: {text}"));
            }
            Ok((body, index))
        };
        match tokio::time::timeout(deadline, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(self.describe(path, what, &e)),
            Err(_) => Err(self.describe(
                path,
                what,
                &format!("no answer within {}ms", deadline.as_millis()),
            )),
        }
    }
}

impl Api {
    /// Connects (TCP, then TLS for `https`) and exchanges one request on a fresh connection.
    ///
    /// One connection per request: a watcher sends one request per change or per wait, so
    /// pooling would save little, and a fresh connection never reuses a half-dead one.
    async fn send(
        &self,
        request: Request<Empty<Bytes>>,
    ) -> Result<(hyper::StatusCode, u64, Bytes), String> {
        let uri = request.uri();
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri
            .port_u16()
            .unwrap_or(if self.client.is_https() { 443 } else { 80 });
        let connection = self
            .client
            .connect(&host, port)
            .await
            .map_err(|e| match e {
                ConnectError::Dial(e) => format!("connecting to {host}:{port}: {e}"),
                ConnectError::Proxy(why) => format!("connecting to {host}:{port}: {why}"),
                ConnectError::ServerName(name) => format!("invalid TLS server name {name:?}"),
                ConnectError::Tls(e) => format!("tls: {e}"),
                ConnectError::Handshake(e) => format!("request failed: {}", error_chain(&e)),
            })?;
        exchange(connection, request).await
    }
}

/// Sends `request` over `connection`; returns the status, `X-Consul-Index` (0 when absent)
/// and the body, read up to [`BODY_SIZE_BYTES_MAX`].
async fn exchange(
    connection: Connection,
    request: Request<Empty<Bytes>>,
) -> Result<(hyper::StatusCode, u64, Bytes), String> {
    let Connection {
        mut sender,
        task: _task,
        ..
    } = connection;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {}", error_chain(&e)))?;
    let status = response.status();
    let index = response
        .headers()
        .get("X-Consul-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let body = http_body_util::Limited::new(response.into_body(), BODY_SIZE_BYTES_MAX)
        .collect()
        .await
        .map_err(|e| format!("reading the body: {e}"))?
        .to_bytes();
    Ok((status, index, body))
}

/// An error and its causes, `a: b: c` (hyper's top-level messages alone are vague).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str, status: &str) -> HealthCheck {
        HealthCheck {
            check_id: id.into(),
            status: status.into(),
        }
    }

    #[test]
    fn aggregated_status_is_consuls() {
        assert_eq!(aggregated_status(&[]), "passing");
        assert_eq!(
            aggregated_status(&[check("a", "passing"), check("b", "warning")]),
            "warning"
        );
        assert_eq!(
            aggregated_status(&[check("a", "critical"), check("b", "warning")]),
            "critical"
        );
        assert_eq!(
            aggregated_status(&[
                check("_node_maintenance", "critical"),
                check("b", "passing")
            ]),
            "maintenance"
        );
        assert_eq!(
            aggregated_status(&[check("_service_maintenance:web-1", "critical")]),
            "maintenance"
        );
        assert_eq!(aggregated_status(&[check("a", "bogus")]), "");
    }

    #[test]
    fn index_rules() {
        assert_eq!(next_index(0, 7), Some(7));
        assert_eq!(next_index(7, 7), None, "same index: the wait expired");
        assert_eq!(next_index(7, 9), Some(9));
        assert_eq!(next_index(9, 3), Some(0), "backwards: reset");
        assert_eq!(next_index(0, 0), Some(1), "zero is taken as one");
    }

    #[test]
    fn percent_encoding_keeps_unreserved() {
        assert_eq!(percent_encode("rack:a b/c"), "rack%3Aa%20b%2Fc");
        assert_eq!(percent_encode("web-1_x.y~"), "web-1_x.y~");
    }

    #[test]
    fn labels_are_prometheus() {
        let entry: ServiceEntry = serde_json::from_str(
            r#"{"Node":{"Node":"n1","Address":"10.0.0.1","Datacenter":"dc1","TaggedAddresses":{"lan":"10.0.0.1","wan-ip":"1.2.3.4"},"Meta":{"rack-id":"r1"}},
                "Service":{"ID":"web-1","Service":"web","Tags":["a","b"],"Address":"","Meta":{"version":"2"},"Port":8080},
                "Checks":[{"CheckID":"serfHealth","Status":"passing"},{"CheckID":"svc","Status":"warning"}]}"#,
        )
        .unwrap();
        let group = service_group("web", "dc1", ",", &[entry]);
        assert_eq!(group.source, "web");
        assert_eq!(
            group.labels,
            Labels::from_pairs([
                ("__meta_consul_service", "web"),
                ("__meta_consul_dc", "dc1")
            ])
        );
        let expected = Labels::from_pairs([
            ("__address__", "10.0.0.1:8080"),
            ("__meta_consul_address", "10.0.0.1"),
            ("__meta_consul_node", "n1"),
            ("__meta_consul_tags", ",a,b,"),
            ("__meta_consul_service_port", "8080"),
            ("__meta_consul_service_id", "web-1"),
            ("__meta_consul_health", "warning"),
            ("__meta_consul_metadata_rack_id", "r1"),
            ("__meta_consul_service_metadata_version", "2"),
            ("__meta_consul_tagged_address_lan", "10.0.0.1"),
            ("__meta_consul_tagged_address_wan_ip", "1.2.3.4"),
        ]);
        assert_eq!(group.targets, vec![expected]);
    }

    #[test]
    fn service_address_wins_and_ipv6_is_bracketed() {
        let mut entry = ServiceEntry::default();
        entry.node.address = "10.0.0.1".into();
        entry.service.address = "fd00::5".into();
        entry.service.port = 9100;
        let group = service_group("s", "dc1", ";", &[entry]);
        assert_eq!(group.targets[0].get("__address__"), Some("[fd00::5]:9100"));
        assert_eq!(group.targets[0].get("__meta_consul_tags"), Some(";;"));
        assert_eq!(
            group.targets[0].get("__meta_consul_service_address"),
            Some("fd00::5")
        );
    }
}
