//! A fake Consul agent speaking the part of Consul's HTTP API that discovery uses, built from
//! Consul's documented responses:
//!
//! - `GET /v1/agent/self` → `{"Config": {"Datacenter": ..., "NodeName": ...}, "Member": {...}}`
//! - `GET /v1/catalog/services` → `{"<service>": ["<tag>", ...]}` (tags deduplicated over the
//!   instances), honouring `node-meta=key:value` (repeatable) and `dc`.
//! - `GET /v1/health/service/<service>` → `[{"Node": {ID, Node, Address, Datacenter,
//!   TaggedAddresses, Meta, CreateIndex, ModifyIndex}, "Service": {ID, Service, Tags, Address,
//!   Meta, Port, Weights, EnableTagOverride, CreateIndex, ModifyIndex}, "Checks": [{Node,
//!   CheckID, Name, Status, Notes, Output, ServiceID, ServiceName, ServiceTags, ...}]}]`,
//!   honouring `tag` (repeatable: all must match), `node-meta`, `passing`, `dc`.
//! - Every answer carries `X-Consul-Index`, `X-Consul-KnownLeader` and `X-Consul-LastContact`.
//! - Blocking queries: with `index=N` (N > 0) the request waits until the endpoint's index
//!   exceeds N or `wait` (Go duration, default 5m, at most 10m) passes, then answers with the
//!   current state. The catalog's index moves on every service registration change; a
//!   service's health index moves when one of its instances, their nodes or checks change.
//! - ACLs: when a token is set, a request without `X-Consul-Token` equal to it gets
//!   `403 ACL not found` (the token is never echoed).
//! - An unknown `dc` gets `500 No path to datacenter`.
//! - Enterprise namespaces and admin partitions: an instance lives in one namespace and one
//!   partition (`default` when not given); `ns` and `partition` (each `default` when absent)
//!   select the instances both endpoints see, and an instance of a named namespace or
//!   partition carries `Namespace` and `Partition` in its `Service`.
//! - `filter` (Consul's filtering language) on both endpoints, the subset of it these tests
//!   write: clauses joined by `and`, each `<Selector> == "v"`, `<Selector> != "v"`,
//!   `"v" in <Selector>` or `"v" not in <Selector>`. The catalog's selectors are those of a
//!   catalog service node (`ServiceName`, `ServiceTags`, `ServicePort`, `ServiceAddress`,
//!   `ServiceMeta.<k>`, `Node`, `Address`, `NodeMeta.<k>`), the health endpoint's those of
//!   an entry (`Service.Service`, `Service.Tags`, `Service.Port`, `Service.Address`,
//!   `Service.Meta.<k>`, `Node.Node`, `Node.Address`, `Node.Meta.<k>`); anything else gets
//!   `400 Failed to create boolean expression evaluator`, as Consul answers a filter it
//!   cannot read. The catalog lists a service if any of its instances matches.
//! - Behind a reverse proxy: with a path prefix set, only paths under it are served (the
//!   prefix stripped), anything else gets `404`.
//!
//! Test hooks: mutate the catalog, rewind every index (a restored snapshot), make the server
//! answer index 0 (the bug Consul's docs warn about), and read the request log.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A node of the fake catalog.
#[derive(Clone, Debug, Default)]
pub(crate) struct FakeNode {
    /// Node name.
    pub name: String,
    /// Node address.
    pub address: String,
    /// Tagged addresses (`lan`, `wan`, ...).
    pub tagged_addresses: BTreeMap<String, String>,
    /// Node metadata.
    pub meta: BTreeMap<String, String>,
}

/// A service instance of the fake catalog.
#[derive(Clone, Debug, Default)]
pub(crate) struct FakeInstance {
    /// Instance id.
    pub id: String,
    /// Service name.
    pub service: String,
    /// Node it runs on.
    pub node: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Service address (empty: the node's).
    pub address: String,
    /// Port.
    pub port: u16,
    /// Service metadata.
    pub meta: BTreeMap<String, String>,
    /// Health checks: (check id, status).
    pub checks: Vec<(String, String)>,
    /// Namespace (Enterprise); empty is `default`.
    pub namespace: String,
    /// Admin partition (Enterprise); empty is `default`.
    pub partition: String,
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub(crate) struct LoggedRequest {
    /// Path.
    pub path: String,
    /// Query pairs, decoded.
    pub query: Vec<(String, String)>,
    /// The `X-Consul-Token` header, if any.
    pub token: Option<String>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    datacenter: String,
    token: Option<String>,
    index: u64,
    catalog_index: u64,
    service_index: BTreeMap<String, u64>,
    nodes: BTreeMap<String, FakeNode>,
    instances: BTreeMap<String, FakeInstance>,
    zero_index: bool,
    path_prefix: String,
    log: Vec<LoggedRequest>,
}

impl State {
    fn bump_service(&mut self, service: &str) {
        self.index += 1;
        self.service_index.insert(service.to_string(), self.index);
    }

    fn health_index(&self, service: &str) -> u64 {
        if self.zero_index {
            return 0;
        }
        self.service_index
            .get(service)
            .copied()
            .unwrap_or(self.catalog_index)
            .max(1)
    }

    fn catalog_index(&self) -> u64 {
        if self.zero_index {
            0
        } else {
            self.catalog_index.max(1)
        }
    }
}

/// The fake Consul agent; stops when dropped.
pub(crate) struct FakeConsul {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    changed: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeConsul {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeConsul {
    /// Starts a fake agent of datacenter `datacenter` on 127.0.0.1, any free port.
    pub(crate) async fn start(datacenter: &str) -> FakeConsul {
        FakeConsul::start_with_tls(datacenter, None).await
    }

    /// Starts a fake agent that speaks HTTPS with `tls` (plain HTTP when `None`).
    pub(crate) async fn start_with_tls(
        datacenter: &str,
        tls: Option<rustls::ServerConfig>,
    ) -> FakeConsul {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            datacenter: datacenter.to_string(),
            index: 1,
            catalog_index: 1,
            ..State::default()
        }));
        let (changed, _) = watch::channel(0u64);
        let (st, ch) = (state.clone(), changed.clone());
        let acceptor = tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (st, ch, acceptor) = (st.clone(), ch.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(st.clone(), ch.clone(), req));
                    match acceptor {
                        None => {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(acceptor) => {
                            // A client that rejects our certificate ends here.
                            let Ok(tls) = acceptor.accept(stream).await else {
                                return;
                            };
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(tls), service)
                                .await;
                        }
                    }
                });
            }
        });
        FakeConsul {
            addr,
            state,
            changed,
            task,
        }
    }

    /// `host:port` for the `server` setting.
    pub(crate) fn server(&self) -> String {
        self.addr.to_string()
    }

    fn mutate(&self, f: impl FnOnce(&mut State)) {
        let index = {
            let mut st = self.state.lock().unwrap();
            f(&mut st);
            st.index
        };
        self.changed.send_replace(index);
    }

    /// Requires `token` in `X-Consul-Token` from now on.
    pub(crate) fn require_token(&self, token: &str) {
        self.mutate(|st| st.token = Some(token.to_string()));
    }

    /// Stops requiring a token.
    pub(crate) fn clear_token(&self) {
        self.mutate(|st| st.token = None);
    }

    /// Adds or replaces a node (its services' health indexes move).
    pub(crate) fn put_node(&self, node: FakeNode) {
        self.mutate(|st| {
            let services: BTreeSet<String> = st
                .instances
                .values()
                .filter(|i| i.node == node.name)
                .map(|i| i.service.clone())
                .collect();
            st.nodes.insert(node.name.clone(), node);
            for s in services {
                st.bump_service(&s);
            }
            st.catalog_index = st.index;
        });
    }

    /// Registers (or replaces) a service instance.
    pub(crate) fn register(&self, instance: FakeInstance) {
        self.mutate(|st| {
            assert!(
                st.nodes.contains_key(&instance.node),
                "register the node {} first",
                instance.node
            );
            let old = st.instances.insert(instance.id.clone(), instance.clone());
            if let Some(old) = old {
                st.bump_service(&old.service);
            }
            st.bump_service(&instance.service);
            st.catalog_index = st.index;
        });
    }

    /// Deregisters the instance `id`.
    pub(crate) fn deregister(&self, id: &str) {
        self.mutate(|st| {
            if let Some(old) = st.instances.remove(id) {
                st.bump_service(&old.service);
                st.catalog_index = st.index;
            }
        });
    }

    /// Sets the status of check `check_id` of instance `id` (adding the check if needed).
    pub(crate) fn set_check(&self, id: &str, check_id: &str, status: &str) {
        self.mutate(|st| {
            let instance = st.instances.get_mut(id).expect("instance");
            match instance.checks.iter_mut().find(|(c, _)| c == check_id) {
                Some(c) => c.1 = status.to_string(),
                None => instance
                    .checks
                    .push((check_id.to_string(), status.to_string())),
            }
            let service = instance.service.clone();
            st.bump_service(&service);
        });
    }

    /// Rewinds every index to `index` (a snapshot restore on a new cluster): indexes go backwards.
    pub(crate) fn rewind_indexes(&self, index: u64) {
        self.mutate(|st| {
            st.index = index;
            st.catalog_index = index;
            for v in st.service_index.values_mut() {
                *v = index;
            }
        });
    }

    /// Serves the API under `prefix` only (a reverse proxy in front of the agent).
    pub(crate) fn set_path_prefix(&self, prefix: &str) {
        self.mutate(|st| st.path_prefix = prefix.to_string());
    }

    /// Makes every answer carry `X-Consul-Index: 0`.
    pub(crate) fn answer_zero_index(&self, on: bool) {
        self.mutate(|st| st.zero_index = on);
    }

    /// Every request received so far.
    pub(crate) fn requests(&self) -> Vec<LoggedRequest> {
        self.state.lock().unwrap().log.clone()
    }

    /// The current index of `service`'s health endpoint.
    pub(crate) fn service_index(&self, service: &str) -> u64 {
        self.state.lock().unwrap().health_index(service)
    }
}

fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = q else { return Vec::new() };
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Go duration as Consul accepts for `wait`: `<n>ms`, `<n>s`, `<n>m`.
fn parse_wait(s: &str) -> Option<Duration> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))?;
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(60 * n)),
        _ => None,
    }
}

fn respond(status: StatusCode, index: Option<u64>, body: String) -> Response<Full<Bytes>> {
    let mut b = Response::builder().status(status).header(
        "Content-Type",
        if status.is_success() {
            "application/json"
        } else {
            "text/plain"
        },
    );
    if let Some(i) = index {
        b = b
            .header("X-Consul-Index", i.to_string())
            .header("X-Consul-KnownLeader", "true")
            .header("X-Consul-LastContact", "0");
    }
    b.body(Full::new(Bytes::from(body))).unwrap()
}

fn node_matches(node: Option<&FakeNode>, node_meta: &[(String, String)]) -> bool {
    node_meta
        .iter()
        .all(|(k, v)| node.and_then(|n| n.meta.get(k)) == Some(v))
}

async fn handle(
    state: Arc<Mutex<State>>,
    changed: watch::Sender<u64>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let full_path = req.uri().path().to_string();
    let query = parse_query(req.uri().query());
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (token, authorization) = (header("X-Consul-Token"), header("Authorization"));
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let all = |k: &str| {
        query
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    let node_meta: Vec<(String, String)> = all("node-meta")
        .iter()
        .filter_map(|s| {
            s.split_once(':')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let namespace = get("ns").unwrap_or_else(|| "default".into());
    let partition = get("partition").unwrap_or_else(|| "default".into());
    let filter = get("filter");
    let path;
    {
        let mut st = state.lock().unwrap();
        st.log.push(LoggedRequest {
            path: full_path.clone(),
            query: query.clone(),
            token: token.clone(),
            authorization,
        });
        match full_path.strip_prefix(st.path_prefix.as_str()) {
            Some(rest) if rest.starts_with('/') => path = rest.to_string(),
            _ => {
                return Ok(respond(
                    StatusCode::NOT_FOUND,
                    None,
                    format!("404 page not found: {full_path}"),
                ))
            }
        }
        if let Some(want) = &st.token {
            if token.as_deref() != Some(want.as_str()) {
                return Ok(respond(StatusCode::FORBIDDEN, None, "ACL not found".into()));
            }
        }
        if let Some(dc) = get("dc") {
            if dc != st.datacenter {
                return Ok(respond(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    "No path to datacenter".into(),
                ));
            }
        }
    }
    if req.method() != hyper::Method::GET {
        return Ok(respond(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            "method not allowed".into(),
        ));
    }
    if path == "/v1/agent/self" {
        let st = state.lock().unwrap();
        let body = json!({"Config": {"Datacenter": st.datacenter, "NodeName": "fake-agent", "Server": true, "Version": "1.15.0"}, "Member": {"Name": "fake-agent", "Addr": "127.0.0.1", "Port": 8301}});
        return Ok(respond(StatusCode::OK, None, body.to_string()));
    }
    let service = if path == "/v1/catalog/services" {
        None
    } else if let Some(name) = path.strip_prefix("/v1/health/service/") {
        Some(decode(name))
    } else {
        return Ok(respond(
            StatusCode::NOT_FOUND,
            None,
            format!("Invalid URL path: not a recognized HTTP API endpoint: {path}"),
        ));
    };
    let index_of = |st: &State| match &service {
        None => st.catalog_index(),
        Some(s) => st.health_index(s),
    };
    let wanted: u64 = get("index").and_then(|v| v.parse().ok()).unwrap_or(0);
    let wait = get("wait")
        .and_then(|w| parse_wait(&w))
        .unwrap_or(Duration::from_secs(300))
        .min(Duration::from_secs(600));
    if wanted > 0 {
        let deadline = tokio::time::Instant::now() + wait;
        let mut rx = changed.subscribe();
        loop {
            if index_of(&state.lock().unwrap()) > wanted {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => break,
            }
        }
    }
    let st = state.lock().unwrap();
    let index = index_of(&st);
    let in_scope = |i: &FakeInstance| {
        let or_default = |s: &str| {
            if s.is_empty() {
                "default".to_string()
            } else {
                s.to_string()
            }
        };
        or_default(&i.namespace) == namespace && or_default(&i.partition) == partition
    };
    let body = match &service {
        None => {
            let mut services: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for i in st.instances.values().filter(|i| in_scope(i)) {
                let node = st.nodes.get(&i.node);
                if !node_matches(node, &node_meta) {
                    continue;
                }
                if let Some(filter) = &filter {
                    let node = node.cloned().unwrap_or_default();
                    match eval_filter(filter, |s| catalog_field(i, &node, s)) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => return Ok(respond(StatusCode::BAD_REQUEST, None, e)),
                    }
                }
                services
                    .entry(i.service.clone())
                    .or_default()
                    .extend(i.tags.iter().cloned());
            }
            json!(services).to_string()
        }
        Some(name) => {
            let tags = all("tag");
            let passing_only = get("passing").is_some();
            let mut entries = Vec::new();
            for i in st
                .instances
                .values()
                .filter(|i| &i.service == name && in_scope(i))
            {
                let node = st.nodes.get(&i.node);
                if !node_matches(node, &node_meta) || !tags.iter().all(|t| i.tags.contains(t)) {
                    continue;
                }
                if let Some(filter) = &filter {
                    let node = node.cloned().unwrap_or_default();
                    match eval_filter(filter, |s| health_field(i, &node, s)) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => return Ok(respond(StatusCode::BAD_REQUEST, None, e)),
                    }
                }
                if passing_only && i.checks.iter().any(|(_, s)| s != "passing") {
                    continue;
                }
                let node = node.cloned().unwrap_or_default();
                let checks: Vec<Value> = i
                    .checks
                    .iter()
                    .map(|(id, status)| {
                        let service_check = !id.starts_with("serf") && id != "_node_maintenance";
                        json!({"Node": node.name, "CheckID": id, "Name": format!("check {id}"), "Status": status, "Notes": "", "Output": "",
                               "ServiceID": if service_check { i.id.clone() } else { String::new() },
                               "ServiceName": if service_check { i.service.clone() } else { String::new() },
                               "ServiceTags": if service_check { i.tags.clone() } else { Vec::new() },
                               "Type": "", "CreateIndex": 1, "ModifyIndex": index})
                    })
                    .collect();
                let mut service = json!({"ID": i.id, "Service": i.service, "Tags": i.tags, "Address": i.address, "Meta": i.meta, "Port": i.port,
                                "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": false, "CreateIndex": 1, "ModifyIndex": index});
                if !i.namespace.is_empty() || !i.partition.is_empty() {
                    service["Namespace"] = json!(namespace);
                    service["Partition"] = json!(partition);
                }
                entries.push(json!({
                    "Node": {"ID": format!("id-{}", node.name), "Node": node.name, "Address": node.address, "Datacenter": st.datacenter,
                             "TaggedAddresses": node.tagged_addresses, "Meta": node.meta, "CreateIndex": 1, "ModifyIndex": index},
                    "Service": service,
                    "Checks": checks,
                }));
            }
            // Consul sorts by node name.
            entries.sort_by(|a, b| a["Node"]["Node"].as_str().cmp(&b["Node"]["Node"].as_str()));
            Value::Array(entries).to_string()
        }
    };
    Ok(respond(StatusCode::OK, Some(index), body))
}

/// A value a filter selector names: one string, or a list (tags).
enum Field {
    One(String),
    List(Vec<String>),
}

/// The selectors of a catalog service node.
fn catalog_field(i: &FakeInstance, node: &FakeNode, selector: &str) -> Option<Field> {
    if let Some(k) = selector.strip_prefix("NodeMeta.") {
        return Some(Field::One(node.meta.get(k).cloned().unwrap_or_default()));
    }
    if let Some(k) = selector.strip_prefix("ServiceMeta.") {
        return Some(Field::One(i.meta.get(k).cloned().unwrap_or_default()));
    }
    Some(match selector {
        "ServiceName" => Field::One(i.service.clone()),
        "ServiceTags" => Field::List(i.tags.clone()),
        "ServicePort" => Field::One(i.port.to_string()),
        "ServiceAddress" => Field::One(i.address.clone()),
        "Node" => Field::One(node.name.clone()),
        "Address" => Field::One(node.address.clone()),
        _ => return None,
    })
}

/// The selectors of a health entry.
fn health_field(i: &FakeInstance, node: &FakeNode, selector: &str) -> Option<Field> {
    if let Some(k) = selector.strip_prefix("Node.Meta.") {
        return Some(Field::One(node.meta.get(k).cloned().unwrap_or_default()));
    }
    if let Some(k) = selector.strip_prefix("Service.Meta.") {
        return Some(Field::One(i.meta.get(k).cloned().unwrap_or_default()));
    }
    Some(match selector {
        "Service.Service" => Field::One(i.service.clone()),
        "Service.Tags" => Field::List(i.tags.clone()),
        "Service.Port" => Field::One(i.port.to_string()),
        "Service.Address" => Field::One(i.address.clone()),
        "Node.Node" => Field::One(node.name.clone()),
        "Node.Address" => Field::One(node.address.clone()),
        _ => return None,
    })
}

/// Evaluates the subset of Consul's filter language in the module doc.
fn eval_filter(expr: &str, field: impl Fn(&str) -> Option<Field>) -> Result<bool, String> {
    let fail = |why: &str| format!("Failed to create boolean expression evaluator: {why}");
    let quoted = |s: &str| -> Option<String> {
        let s = s.trim();
        s.strip_prefix('"')?.strip_suffix('"').map(str::to_string)
    };
    let lookup = |selector: &str| {
        field(selector.trim())
            .ok_or_else(|| fail(&format!("Selector {:?} is not valid", selector.trim())))
    };
    for clause in expr.split(" and ") {
        let clause = clause.trim();
        let holds = if let Some((value, selector)) = clause.split_once(" not in ") {
            let value = quoted(value).ok_or_else(|| fail(clause))?;
            match lookup(selector)? {
                Field::List(l) => !l.contains(&value),
                Field::One(s) => !s.contains(&value),
            }
        } else if let Some((value, selector)) = clause.split_once(" in ") {
            let value = quoted(value).ok_or_else(|| fail(clause))?;
            match lookup(selector)? {
                Field::List(l) => l.contains(&value),
                Field::One(s) => s.contains(&value),
            }
        } else if let Some((selector, value)) = clause.split_once(" != ") {
            let value = quoted(value).ok_or_else(|| fail(clause))?;
            match lookup(selector)? {
                Field::One(s) => s != value,
                Field::List(_) => return Err(fail(clause)),
            }
        } else if let Some((selector, value)) = clause.split_once(" == ") {
            let value = quoted(value).ok_or_else(|| fail(clause))?;
            match lookup(selector)? {
                Field::One(s) => s == value,
                Field::List(_) => return Err(fail(clause)),
            }
        } else {
            return Err(fail(clause));
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}
