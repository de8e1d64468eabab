//! The operator's view, served by every daemon: `/metrics`, Prometheus-shaped APIs, health
//! checks and two server-rendered pages (`/targets`, `/cluster`).
//!
//! Handlers never keep a copy of the node's state: each request asks the driver's loop for a
//! [`View`] (an owned snapshot, taken between two events) and renders it off the loop.
//! Secrets (passwords, bearer credentials, Consul tokens) are never rendered: the core's
//! [`scrapepool_core::config::Secret`] prints `<secret>`, and as a second line of defence every
//! response body has each configured secret replaced by `<secret>` before it leaves.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use scrapepool_core::config::{format_duration, SdConfig};
use scrapepool_core::labels::Labels;
use scrapepool_core::member::{MemberRecord, MemberState};
use scrapepool_core::node::{
    DurationHistogram, Rebalance, Role, SessionState, Stats, SCRAPE_DURATION_BUCKETS_US,
};
use scrapepool_core::{Node, Timestamp};

use crate::driver::QueryHandle;

/// What stands in for a secret wherever one would have been shown.
pub const SECRET_PLACEHOLDER: &str = "<secret>";

/// Shortest configured secret the response filter replaces; shorter ones would mangle every
/// page (a one-letter password would replace every such letter), and the core never renders
/// secrets anyway.
pub const SECRET_FILTER_LEN_MIN: usize = 4;

/// Content type of `/metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Series an adapter adds to `/metrics` (the Kafka sink's queue and deliveries, the
/// ZooKeeper adapter's session details).
pub trait ExtraMetrics: Send + Sync + 'static {
    /// Registers this adapter's metrics in the registry built for one `/metrics` request.
    /// The registry's prefix is `scrapepool`, so names come out as `scrapepool_<name>`;
    /// register clones of long-lived metrics (prometheus-client's metrics share their value
    /// between clones) or a [`Collector`]. `Registry::register` ends help texts with a
    /// period itself.
    fn register(&self, registry: &mut Registry);
}

/// Adds nothing: for a daemon (or a test) without adapters that report their own series.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoExtraMetrics;

impl ExtraMetrics for NoExtraMetrics {
    fn register(&self, _registry: &mut Registry) {}
}

/// What every handler needs: a way to read the node, and the adapters' own metrics.
#[derive(Clone)]
pub struct WebState {
    /// Reads the node on the driver's loop.
    pub queries: QueryHandle,
    /// Series the adapters add to `/metrics`.
    pub extra: Arc<dyn ExtraMetrics>,
}

/// The web server's routes, for [`serve`] (or a test server).
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(index_page))
        .route("/targets", get(targets_page))
        .route("/cluster", get(cluster_page))
        .route("/metrics", get(metrics))
        .route("/api/v1/targets", get(targets_api))
        .route("/api/v1/members", get(members_api))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .with_state(state)
}

/// Binds `addr` (the daemon's `--listen`) and serves until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    state: WebState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(listener, state, shutdown).await
}

/// Serves on a listener already bound (tests bind port 0 and read the address first).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: WebState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

// ---- the snapshot ---------------------------------------------------------------------

/// Everything the pages, APIs and metrics show, copied out of the node on the driver's loop.
#[derive(Clone, Debug)]
pub struct View {
    /// Our member id.
    pub me: String,
    /// Our web address (`host:port`).
    pub web: String,
    /// Our version.
    pub version: String,
    /// Session state as last reported.
    pub session: SessionState,
    /// `Node::is_ready`.
    pub ready: bool,
    /// Whether we are draining.
    pub draining: bool,
    /// Replication factor.
    pub replication_factor: usize,
    /// Version of the members snapshot in force.
    pub members_version: i64,
    /// Counters.
    pub stats: Stats,
    /// Every member, sorted by id, with how many targets the ring gives it.
    pub members: Vec<MemberView>,
    /// Every job, by name.
    pub jobs: Vec<JobSnapshot>,
    /// Recent rebalances, oldest first.
    pub rebalances: Vec<Rebalance>,
    /// Every configured secret, for the response filter; never rendered.
    secrets: Vec<String>,
}

/// A member and its share of the targets.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MemberView {
    /// The member record.
    #[serde(flatten)]
    pub record: MemberRecord,
    /// Targets it owns (any rank) according to our ring.
    pub targets: usize,
    /// Whether this is us.
    #[serde(rename = "self")]
    pub is_self: bool,
}

/// One job as the pages show it.
#[derive(Clone, Debug)]
pub struct JobSnapshot {
    /// The job's name.
    pub name: String,
    /// Whether a valid configuration is in force.
    pub has_config: bool,
    /// Why the latest text was rejected (empty when it is valid).
    pub config_errors: Vec<String>,
    /// The last error of each failing discovery provider.
    pub discovery_errors: Vec<String>,
    /// Set when the job is over its `target_limit` (nothing is scraped).
    pub limit_error: Option<String>,
    /// Targets whose labels were invalid.
    pub target_errors: Vec<String>,
    /// Active targets (after relabeling), whoever owns them.
    pub total: usize,
    /// Targets we own (any rank).
    pub owned: usize,
    /// Targets that moved away and we still scrape for the handoff grace.
    pub handing_off: usize,
    /// Active targets, sorted by URL (empty in a [`View::capture_counts`] view).
    pub targets: Vec<TargetSnapshot>,
    /// Discovered labels of the targets relabeling dropped (empty in a counts-only view).
    pub dropped: Vec<Labels>,
}

impl JobSnapshot {
    /// Targets whose last scrape here succeeded.
    pub fn up(&self) -> usize {
        self.targets
            .iter()
            .filter(|t| t.health() == TargetHealth::Up)
            .count()
    }
}

/// The state of a target as this member knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetHealth {
    /// Its last scrape here succeeded.
    Up,
    /// Its last scrape here failed.
    Down,
    /// Not scraped here (yet): another member owns it, or the first scrape is pending.
    Unknown,
}

impl TargetHealth {
    /// `up`, `down`, `unknown` (Prometheus's words).
    pub fn as_str(self) -> &'static str {
        match self {
            TargetHealth::Up => "up",
            TargetHealth::Down => "down",
            TargetHealth::Unknown => "unknown",
        }
    }
}

/// One active target.
#[derive(Clone, Debug)]
pub struct TargetSnapshot {
    /// Labels before relabeling.
    pub discovered_labels: Labels,
    /// Final labels.
    pub labels: Labels,
    /// Scrape URL.
    pub url: String,
    /// Scrape interval.
    pub interval: Duration,
    /// Scrape timeout.
    pub timeout: Duration,
    /// Owners, rank 0 first.
    pub owners: Vec<String>,
    /// Our replica rank, if we own it.
    pub rank: Option<usize>,
    /// When we stop scraping it, if it moved away and we hand it off.
    pub handing_off_until: Option<Timestamp>,
    /// When our last finished scrape of it started.
    pub last_scrape: Option<Timestamp>,
    /// Whether that scrape succeeded.
    pub last_up: Option<bool>,
    /// How long it took.
    pub last_duration: Option<Duration>,
    /// Why it failed.
    pub last_error: Option<String>,
}

impl TargetSnapshot {
    /// Up, down or unknown.
    pub fn health(&self) -> TargetHealth {
        match self.last_up {
            Some(true) => TargetHealth::Up,
            Some(false) => TargetHealth::Down,
            None => TargetHealth::Unknown,
        }
    }
}

impl View {
    /// Copies what the web server shows out of `node` (runs on the driver's loop).
    pub fn capture(node: &Node) -> View {
        View::capture_with(node, true)
    }

    /// Like [`View::capture`] without the targets themselves (no target list, no dropped
    /// targets, no per-member target counts): what `/metrics` needs, cheap enough for the
    /// loop even with many thousands of targets.
    pub fn capture_counts(node: &Node) -> View {
        View::capture_with(node, false)
    }

    fn capture_with(node: &Node, with_targets: bool) -> View {
        let config = node.config();
        // Our own targets per job, from what we scrape (no ownership computed).
        let mut ours: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (_, job, role) in node.scraped_targets() {
            let entry = ours.entry(job).or_default();
            match role {
                Role::Owner { .. } => entry.0 += 1,
                Role::HandingOff { .. } => entry.1 += 1,
            }
        }
        let mut owned_by: BTreeMap<String, usize> = BTreeMap::new();
        let mut secrets = Vec::new();
        let mut jobs = Vec::new();
        for job in node.jobs() {
            if let Some(c) = job.config {
                collect_secrets(c, &mut secrets);
            }
            let (owned, handing_off) = ours.get(job.name).copied().unwrap_or_default();
            let views = if with_targets {
                node.job_targets(job.name)
            } else {
                Vec::new()
            };
            let targets: Vec<TargetSnapshot> = views
                .into_iter()
                .map(|v| {
                    let report = v.health.and_then(|h| h.report.as_ref());
                    TargetSnapshot {
                        discovered_labels: v.target.discovered_labels.clone(),
                        labels: v.target.labels.clone(),
                        url: v.target.url.clone(),
                        interval: v.target.scrape_interval,
                        timeout: v.target.scrape_timeout,
                        owners: v.owners.iter().map(|s| s.to_string()).collect(),
                        rank: match v.role {
                            Some(Role::Owner { rank }) => Some(rank),
                            _ => None,
                        },
                        handing_off_until: match v.role {
                            Some(Role::HandingOff { until }) => Some(until),
                            _ => None,
                        },
                        last_scrape: v.health.and_then(|h| h.last_scrape),
                        last_up: report.map(|r| r.up),
                        last_duration: report.map(|r| r.duration),
                        last_error: report.and_then(|r| r.error.clone()),
                    }
                })
                .collect::<Vec<_>>();
            // By URL, so every member lists a job's targets in the same, readable order.
            let mut targets = targets;
            targets.sort_by(|a, b| a.url.cmp(&b.url).then_with(|| a.labels.cmp(&b.labels)));
            // A job over its target_limit is scraped by nobody, so it counts for no member.
            if job.targets.limit_error.is_none() && job.config.is_some() {
                for t in &targets {
                    for o in &t.owners {
                        *owned_by.entry(o.clone()).or_default() += 1;
                    }
                }
            }
            jobs.push(JobSnapshot {
                name: job.name.to_string(),
                has_config: job.config.is_some(),
                total: job.targets.active.len(),
                owned,
                handing_off,
                config_errors: job.errors.iter().map(|e| e.to_string()).collect(),
                discovery_errors: job.discovery_errors.iter().map(|e| e.to_string()).collect(),
                limit_error: job.targets.limit_error.clone(),
                target_errors: job.targets.errors.clone(),
                targets,
                dropped: if with_targets {
                    job.targets
                        .dropped
                        .iter()
                        .map(|d| d.discovered_labels.clone())
                        .collect()
                } else {
                    Vec::new()
                },
            });
        }
        let mut members: Vec<MemberView> = node
            .members()
            .members
            .iter()
            .map(|m| MemberView {
                record: m.clone(),
                targets: owned_by.get(&m.id).copied().unwrap_or(0),
                is_self: m.id == config.id,
            })
            .collect();
        members.sort_by(|a, b| a.record.id.cmp(&b.record.id));
        secrets.retain(|s| s.len() >= SECRET_FILTER_LEN_MIN);
        secrets.sort();
        secrets.dedup();
        View {
            me: config.id.clone(),
            web: config.web.clone(),
            version: config.version.clone(),
            session: node.session(),
            ready: node.is_ready(),
            draining: node.is_draining(),
            replication_factor: node.ring().replication_factor(),
            members_version: node.members().version,
            stats: node.stats().clone(),
            members,
            jobs,
            rebalances: node.rebalances().cloned().collect(),
            secrets,
        }
    }

    /// The web address of member `id`, if it is in the snapshot.
    fn web_of(&self, id: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.record.id == id)
            .map(|m| m.record.web.as_str())
    }

    /// Replaces every configured secret in `body` by `<secret>`: as written, and as HTML,
    /// JSON and OpenMetrics escape it (a secret holding `"`, `&` or `\\` looks different there).
    fn redact(&self, mut body: String) -> String {
        for s in &self.secrets {
            let json = serde_json::to_string(s).unwrap_or_default();
            let json = json
                .get(1..json.len().saturating_sub(1))
                .unwrap_or_default()
                .to_string();
            for form in [s.clone(), escape_html(s), json] {
                if !form.is_empty() && body.contains(form.as_str()) {
                    body = body.replace(form.as_str(), SECRET_PLACEHOLDER);
                }
            }
        }
        body
    }
}

fn collect_secrets(c: &scrapepool_core::config::JobConfig, out: &mut Vec<String>) {
    if let Some(p) = c.basic_auth.as_ref().and_then(|b| b.password.as_ref()) {
        out.push(p.expose().to_string());
    }
    if let Some(p) = c
        .authorization
        .as_ref()
        .and_then(|a| a.credentials.as_ref())
    {
        out.push(p.expose().to_string());
    }
    for sd in &c.sd_configs {
        if let SdConfig::Consul(consul) = sd {
            if let Some(t) = &consul.token {
                out.push(t.expose().to_string());
            }
        }
    }
}

/// Reads a view from the loop, or answers 503 when the loop does not.
async fn view(state: &WebState) -> Result<View, Response> {
    ask_view(state, View::capture).await
}

async fn ask_view(state: &WebState, capture: fn(&Node) -> View) -> Result<View, Response> {
    state.queries.ask(capture).await.ok_or_else(|| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the driver's loop did not answer\n",
        )
            .into_response()
    })
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(scrapepool_core::time::duration_ms(d))
}

// ---- health -------------------------------------------------------------------------------

async fn healthy(State(state): State<WebState>) -> Response {
    match state.queries.ask(|_| ()).await {
        Some(()) => (StatusCode::OK, "scrapepool is Healthy.\n").into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the driver's loop did not answer\n",
        )
            .into_response(),
    }
}

async fn ready(State(state): State<WebState>) -> Response {
    let answer = state
        .queries
        .ask(|node| {
            (
                node.is_ready(),
                node.session(),
                node.members().members.len(),
            )
        })
        .await;
    match answer {
        Some((true, _, _)) => (StatusCode::OK, "scrapepool is Ready.\n").into_response(),
        Some((false, session, _)) => {
            let why = format!("scrapepool is not ready: session {}, or not registered yet, or the first member or job snapshot not applied\n", session_str(session));
            (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the driver's loop did not answer\n",
        )
            .into_response(),
    }
}

fn session_str(s: SessionState) -> &'static str {
    match s {
        SessionState::Disconnected => "disconnected",
        SessionState::Connected => "connected",
        SessionState::Expired => "expired",
    }
}

// ---- /metrics -----------------------------------------------------------------------------

async fn metrics(State(state): State<WebState>) -> Response {
    let view = match ask_view(&state, View::capture_counts).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut registry = Registry::with_prefix("scrapepool");
    register_node_metrics(&mut registry, &view);
    state.extra.register(&mut registry);
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &registry) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics failed: {e}\n"),
        )
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        view.redact(body),
    )
        .into_response()
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let g: Gauge = Gauge::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

type LabelPairs = Vec<(&'static str, String)>;

fn gauge_family(
    registry: &mut Registry,
    name: &'static str,
    help: &str,
    values: impl IntoIterator<Item = (LabelPairs, u64)>,
) {
    registry.register_collector(Box::new(OrderedFamily {
        name,
        help: format!("{help}."),
        metric_type: MetricType::Gauge,
        series: values.into_iter().collect(),
    }));
}

fn counter_family(
    registry: &mut Registry,
    name: &'static str,
    help: &str,
    values: impl IntoIterator<Item = (LabelPairs, u64)>,
) {
    registry.register_collector(Box::new(OrderedFamily {
        name,
        help: format!("{help}."),
        metric_type: MetricType::Counter,
        series: values.into_iter().collect(),
    }));
}

/// A family of series written in the order given (prometheus-client's `Family` writes
/// in hash order), so `/metrics` lists jobs and states the same way every time.
#[derive(Debug)]
struct OrderedFamily {
    name: &'static str,
    help: String,
    metric_type: MetricType,
    series: Vec<(LabelPairs, u64)>,
}

impl Collector for OrderedFamily {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family =
            encoder.encode_descriptor(self.name, &self.help, None, self.metric_type)?;
        for (labels, value) in &self.series {
            let metric = family.encode_family(labels)?;
            match self.metric_type {
                MetricType::Counter => ConstCounter::new(*value).encode(metric)?,
                _ => ConstGauge::new(i64::try_from(*value).unwrap_or(i64::MAX)).encode(metric)?,
            }
        }
        Ok(())
    }
}

fn register_node_metrics(r: &mut Registry, v: &View) {
    let s = &v.stats;
    gauge_family(
        r,
        "job_targets",
        "Active targets of each job after relabeling, whoever owns them",
        v.jobs
            .iter()
            .map(|j| (vec![("job", j.name.clone())], j.total as u64)),
    );
    gauge_family(
        r,
        "job_targets_owned",
        "Targets of each job this member owns (any replica rank)",
        v.jobs
            .iter()
            .map(|j| (vec![("job", j.name.clone())], j.owned as u64)),
    );
    gauge_family(
        r,
        "job_targets_handing_off",
        "Targets of each job that moved away and this member still scrapes for the handoff grace",
        v.jobs
            .iter()
            .map(|j| (vec![("job", j.name.clone())], j.handing_off as u64)),
    );
    gauge_family(
        r,
        "job_config_valid",
        "1 when the job's latest configuration was accepted, 0 when it was rejected",
        v.jobs.iter().map(|j| {
            (
                vec![("job", j.name.clone())],
                u64::from(j.config_errors.is_empty()),
            )
        }),
    );
    counter(
        r,
        "scrapes_started",
        "Scrapes handed to the HTTP client",
        s.scrapes_started,
    );
    counter(
        r,
        "scrapes_failed",
        "Scrapes that failed (up 0)",
        s.scrapes_failed,
    );
    counter(
        r,
        "scrapes_skipped",
        "Scrapes not started because the previous scrape of the target was still running",
        s.scrapes_skipped,
    );
    r.register_collector(Box::new(HistogramCollector {
        name: "scrape_duration",
        help: "How long fetching a target took.",
        histogram: s.scrape_durations.clone(),
    }));
    let active = v
        .members
        .iter()
        .filter(|m| m.record.state == MemberState::Active)
        .count() as u64;
    let draining = v
        .members
        .iter()
        .filter(|m| m.record.state == MemberState::Draining)
        .count() as u64;
    gauge_family(
        r,
        "members",
        "Members in the latest snapshot, by state",
        [
            (vec![("state", "active".to_string())], active),
            (vec![("state", "draining".to_string())], draining),
        ],
    );
    counter(
        r,
        "rebalances",
        "Ownership changes that changed what this member scrapes",
        s.rebalances,
    );
    counter_family(
        r,
        "targets_moved",
        "Targets that came to this member as owner (gained) or moved away from it (lost)",
        [
            (vec![("direction", "gained".to_string())], s.targets_gained),
            (vec![("direction", "lost".to_string())], s.targets_lost),
        ],
    );
    gauge_family(
        r,
        "zookeeper_session_state",
        "1 for the ZooKeeper session's current state, 0 for the others",
        [
            SessionState::Connected,
            SessionState::Disconnected,
            SessionState::Expired,
        ]
        .map(|st| {
            (
                vec![("state", session_str(st).to_string())],
                u64::from(st == v.session),
            )
        }),
    );
    gauge(
        r,
        "ready",
        "1 when registered in a connected session with the first member and job snapshots applied",
        u64::from(v.ready),
    );
    gauge(
        r,
        "draining",
        "1 while this member drains before leaving",
        u64::from(v.draining),
    );
    counter(
        r,
        "job_config_errors",
        "Job texts rejected as invalid",
        s.job_config_errors,
    );
    counter(
        r,
        "discovery_errors",
        "Failed discovery rounds (the last good result stays in force)",
        s.discovery_errors,
    );
    counter(
        r,
        "stale_snapshots",
        "Member or job snapshots ignored because they were older than the one applied",
        s.stale_snapshots,
    );
}

/// A histogram whose buckets were counted elsewhere (the node's stats), encoded as seconds.
#[derive(Debug)]
struct HistogramCollector {
    name: &'static str,
    help: &'static str,
    histogram: DurationHistogram,
}

impl Collector for HistogramCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let h = &self.histogram;
        let mut buckets: Vec<(f64, u64)> = SCRAPE_DURATION_BUCKETS_US
            .iter()
            .zip(h.buckets.iter())
            .map(|(&le, &n)| (le as f64 / 1e6, n))
            .collect();
        buckets.push((f64::INFINITY, h.buckets[SCRAPE_DURATION_BUCKETS_US.len()]));
        let metric = ConstHistogram {
            sum_seconds: h.sum_us as f64 / 1e6,
            count: h.count,
            buckets,
        };
        let m = encoder.encode_descriptor(
            self.name,
            self.help,
            Some(&Unit::Seconds),
            metric.metric_type(),
        )?;
        metric.encode(m)
    }
}

#[derive(Debug)]
struct ConstHistogram {
    sum_seconds: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for ConstHistogram {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum_seconds, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

// ---- APIs ---------------------------------------------------------------------------------

/// Query of `/api/v1/targets`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct TargetsParams {
    /// `any` (default), `active` or `dropped`.
    pub state: Option<String>,
}

/// Go's zero time, which Prometheus shows for a target never scraped.
const NEVER: &str = "0001-01-01T00:00:00Z";

async fn targets_api(
    State(state): State<WebState>,
    Query(params): Query<TargetsParams>,
) -> Response {
    let view = match view(&state).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    // Prometheus: empty or `any` shows both; an unknown word shows neither.
    let wanted = params.state.as_deref().unwrap_or("").to_ascii_lowercase();
    let show_active = matches!(wanted.as_str(), "" | "any" | "active");
    let show_dropped = matches!(wanted.as_str(), "" | "any" | "dropped");
    let mut active = Vec::new();
    let mut dropped = Vec::new();
    for job in &view.jobs {
        if show_active {
            for t in &job.targets {
                active.push(serde_json::json!({
                    "discoveredLabels": t.discovered_labels,
                    "labels": t.labels,
                    "scrapePool": job.name,
                    "scrapeUrl": t.url,
                    "globalUrl": global_url(&t.url, &view.web),
                    "lastError": t.last_error.as_deref().unwrap_or(""),
                    "lastScrape": t.last_scrape.map(rfc3339).unwrap_or_else(|| NEVER.to_string()),
                    "lastScrapeDuration": t.last_duration.map(|d| d.as_secs_f64()).unwrap_or(0.0),
                    "health": t.health().as_str(),
                    "scrapeInterval": format_duration(t.interval),
                    "scrapeTimeout": format_duration(t.timeout),
                    "owners": t.owners,
                    "replicaRank": t.rank,
                }));
            }
        }
        if show_dropped {
            for d in &job.dropped {
                dropped.push(serde_json::json!({ "discoveredLabels": d }));
            }
        }
    }
    let body = serde_json::json!({"status": "success", "data": {"activeTargets": active, "droppedTargets": dropped}});
    json_response(&view, &body)
}

async fn members_api(State(state): State<WebState>) -> Response {
    let view = match view(&state).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let body = serde_json::json!({"status": "success", "data": view.members});
    json_response(&view, &body)
}

fn json_response(view: &View, body: &serde_json::Value) -> Response {
    let text = serde_json::to_string(body)
        .unwrap_or_else(|e| format!("{{\"status\":\"error\",\"error\":\"{e}\"}}"));
    (
        [(header::CONTENT_TYPE, "application/json")],
        view.redact(text),
    )
        .into_response()
}

/// Prometheus's global URL: a loopback host is replaced by this member's host, so the link
/// works from elsewhere; other URLs stay as they are.
fn global_url(url: &str, our_web: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let (host, port) = split_host_port(authority);
    let (our_host, _) = split_host_port(our_web);
    if !is_loopback(host)
        || is_loopback(our_host)
        || our_host.is_empty()
        || our_host == "0.0.0.0"
        || our_host == "[::]"
    {
        return url.to_string();
    }
    match port {
        Some(p) => format!("{scheme}://{our_host}:{p}{path}"),
        None => format!("{scheme}://{our_host}{path}"),
    }
}

fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find("]:") {
            Some(i) => (&authority[..=i], Some(&authority[i + 2..])),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

// ---- time formatting ------------------------------------------------------------------------

/// RFC 3339 in UTC with milliseconds, trailing zeros trimmed (Go's RFC3339Nano shape, as
/// Prometheus's API writes times): the core's formatter, with the fraction shortened.
fn rfc3339(t: Timestamp) -> String {
    let full = scrapepool_core::format::rfc3339_ms(t.as_millis());
    let Some((whole, frac)) = full.strip_suffix('Z').and_then(|s| s.split_once('.')) else {
        return full;
    };
    match frac.trim_end_matches('0') {
        "" => format!("{whole}Z"),
        frac => format!("{whole}.{frac}Z"),
    }
}

/// "3.2s ago", "4m10s ago": how long before `now` `then` was.
fn ago(now: Timestamp, then: Timestamp) -> String {
    let d = now.since(then);
    if d < Duration::from_secs(1) {
        return format!("{}ms ago", d.as_millis());
    }
    if d < Duration::from_secs(60) {
        return format!("{:.1}s ago", d.as_secs_f64());
    }
    format!("{} ago", format_duration(Duration::from_secs(d.as_secs())))
}

fn short_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1}ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

// ---- pages ----------------------------------------------------------------------------------

/// HTML-escapes `s` for text and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

use self::escape_html as e;

const CSS: &str = "
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;color:#1f2328;background:#f6f8fa;font-size:14px}
header{background:#24292f;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:600}
header .me{margin-left:auto;color:#c9d1d9;font-size:13px}
main{padding:16px 24px;max-width:1400px}
h1{font-size:22px;margin:8px 0 12px}
h2{font-size:17px;margin:0 0 8px}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px 16px;margin-bottom:16px}
table{border-collapse:collapse;width:100%}
table.targets{table-layout:fixed}
th,td{text-align:left;padding:6px 8px;border-top:1px solid #eaeef2;vertical-align:top}
th{font-size:12px;color:#57606a;font-weight:600;border-top:none}
.count{font-weight:normal;color:#57606a;font-size:14px}
.state{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;white-space:nowrap;margin-bottom:2px}
.up,.active,.connected{background:#1a7f37}.down,.expired{background:#cf222e}.unknown{background:#8c959f}.draining,.disconnected,.handoff{background:#bf8700}
.label{display:inline-block;background:#ddf4ff;color:#0550ae;border-radius:4px;padding:0 5px;margin:1px 2px;font-size:12px;font-family:monospace}
.url{font-family:monospace;font-size:13px;word-break:break-all}
.err{color:#cf222e;font-family:monospace;font-size:12px;white-space:pre-wrap}
.banner{background:#ffebe9;border:1px solid #ff8182;border-radius:6px;padding:8px 12px;margin:6px 0;font-family:monospace;font-size:12px;white-space:pre-wrap}
.muted{color:#57606a}
.you{font-size:11px;color:#57606a}
";

fn page(view: &View, title: &str, body: &str) -> Response {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · scrapepool {me}</title><style>{CSS}</style></head><body>\
         <header><a href=\"/\">scrapepool</a><a href=\"/targets\">Targets</a><a href=\"/cluster\">Cluster</a><a href=\"/metrics\">Metrics</a>\
         <span class=\"me\">member {me} · {web} · version {version}</span></header><main>{body}</main></body></html>",
        title = e(title),
        me = e(&view.me),
        web = e(&view.web),
        version = e(&view.version),
    );
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        view.redact(html),
    )
        .into_response()
}

async fn index_page(State(state): State<WebState>) -> Response {
    let view = match view(&state).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let targets: usize = view.jobs.iter().map(|j| j.total).sum();
    let owned: usize = view.jobs.iter().map(|j| j.owned).sum();
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>scrapepool member {}</h1><section><ul>\
         <li><a href=\"/targets\">Targets</a>: {} jobs, {} targets, {} owned by this member</li>\
         <li><a href=\"/cluster\">Cluster</a>: {} members, session {}, {}</li>\
         <li><a href=\"/metrics\">Metrics</a> (OpenMetrics), <a href=\"/api/v1/targets\">/api/v1/targets</a>, <a href=\"/api/v1/members\">/api/v1/members</a>, <a href=\"/-/healthy\">/-/healthy</a>, <a href=\"/-/ready\">/-/ready</a></li>\
         </ul></section>",
        e(&view.me),
        view.jobs.len(),
        targets,
        owned,
        view.members.len(),
        session_str(view.session),
        if view.ready { "ready" } else { "not ready" },
    );
    page(&view, "Home", &b)
}

fn state_badge(class: &str, text: &str) -> String {
    format!("<span class=\"state {}\">{}</span>", e(class), e(text))
}

fn labels_html(labels: &Labels) -> String {
    let mut out = String::new();
    for l in labels.iter() {
        let _ = write!(
            out,
            "<span class=\"label\">{}=&quot;{}&quot;</span> ",
            e(&l.name),
            e(&l.value)
        );
    }
    out
}

/// A link to member `id`'s page `path`, if we know its web address; its id alone otherwise.
fn member_link(view: &View, id: &str, path: &str) -> String {
    match view.web_of(id) {
        Some(web) if !web.is_empty() => {
            format!("<a href=\"http://{}{}\">{}</a>", e(web), e(path), e(id))
        }
        _ => e(id),
    }
}

async fn targets_page(State(state): State<WebState>) -> Response {
    let view = match view(&state).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let now = now();
    let mut b = String::new();
    let total: usize = view.jobs.iter().map(|j| j.total).sum();
    let owned: usize = view.jobs.iter().map(|j| j.owned).sum();
    let _ = write!(
        b,
        "<h1>Targets</h1><p class=\"muted\">{} jobs, {} targets; member {} owns {}. State is known only for targets this member scrapes; follow the owner link for the others.</p>",
        view.jobs.len(),
        total,
        e(&view.me),
        owned
    );
    if view.jobs.is_empty() {
        b.push_str("<section><p class=\"muted\">No jobs yet.</p></section>");
    }
    for job in &view.jobs {
        let _ = write!(
            b,
            "<section id=\"job-{name}\"><h2>{name} <span class=\"count\">({up}/{total} up here · {owned} owned by this member)</span></h2>",
            name = e(&job.name),
            up = job.up(),
            total = job.targets.len(),
            owned = job.owned,
        );
        if !job.config_errors.is_empty() {
            let what = if job.has_config {
                "the latest configuration was rejected; the last valid one stays in force"
            } else {
                "the configuration was rejected; nothing of this job runs"
            };
            let _ = write!(
                b,
                "<div class=\"banner\">{}:\n{}</div>",
                e(what),
                e(&job.config_errors.join("\n"))
            );
        }
        for err in &job.discovery_errors {
            let _ = write!(b, "<div class=\"banner\">discovery failed (the last good result stays in force): {}</div>", e(err));
        }
        if let Some(err) = &job.limit_error {
            let _ = write!(b, "<div class=\"banner\">{}</div>", e(err));
        }
        for err in &job.target_errors {
            let _ = write!(b, "<div class=\"banner\">invalid target: {}</div>", e(err));
        }
        if job.targets.is_empty() {
            b.push_str("<p class=\"muted\">No active targets.</p>");
        } else {
            // Fixed column widths, so every job's table lines up with the others.
            b.push_str("<table class=\"targets\"><colgroup><col style=\"width:23%\"><col style=\"width:9%\"><col style=\"width:27%\"><col style=\"width:10%\"><col style=\"width:7%\"><col style=\"width:12%\"><col style=\"width:12%\"></colgroup>\
                        <tr><th>Endpoint</th><th>State</th><th>Labels</th><th>Last scrape</th><th>Duration</th><th>Error</th><th>Owner(s)</th></tr>");
            for t in &job.targets {
                let health = t.health();
                let mut state = state_badge(health.as_str(), health.as_str());
                if let Some(until) = t.handing_off_until {
                    // Short enough for the narrow column; the exact end is on hover.
                    let left = format_duration(Duration::from_secs(until.since(now).as_secs()));
                    let _ = write!(
                        state,
                        "<br><span class=\"state handoff\" title=\"until {}\">handing off</span><br><span class=\"muted\">{} left</span>",
                        e(&rfc3339(until)),
                        e(&left)
                    );
                }
                let last = match t.last_scrape {
                    Some(at) => format!(
                        "<span title=\"{}\">{}</span>",
                        e(&rfc3339(at)),
                        e(&ago(now, at))
                    ),
                    None => "<span class=\"muted\">never</span>".to_string(),
                };
                let duration = t.last_duration.map(short_duration).unwrap_or_default();
                let mut owners = String::new();
                for (rank, o) in t.owners.iter().enumerate() {
                    if rank > 0 {
                        owners.push_str("<br>");
                    }
                    owners.push_str(&member_link(&view, o, "/targets"));
                    if t.owners.len() > 1 {
                        let _ = write!(owners, " <span class=\"you\">rank {rank}</span>");
                    }
                    if *o == view.me {
                        owners.push_str(" <span class=\"you\">(this member)</span>");
                    }
                }
                if t.owners.is_empty() {
                    owners.push_str("<span class=\"muted\">no active member</span>");
                }
                let _ = write!(
                    b,
                    "<tr><td class=\"url\"><a href=\"{url}\">{url}</a></td><td>{state}</td><td>{labels}</td><td>{last}</td><td>{duration}</td><td class=\"err\">{error}</td><td>{owners}</td></tr>",
                    url = e(&t.url),
                    labels = labels_html(&t.labels),
                    duration = e(&duration),
                    error = e(t.last_error.as_deref().unwrap_or("")),
                );
            }
            b.push_str("</table>");
        }
        if !job.dropped.is_empty() {
            let _ = write!(b, "<p class=\"muted\">{} targets dropped by relabeling (see <a href=\"/api/v1/targets?state=dropped\">the API</a>).</p>", job.dropped.len());
        }
        b.push_str("</section>");
    }
    page(&view, "Targets", &b)
}

async fn cluster_page(State(state): State<WebState>) -> Response {
    let view = match view(&state).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let now = now();
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Cluster</h1><section><h2>This member</h2><p>{} · session {} · {} · replication factor {} · members snapshot version {}</p></section>",
        e(&view.me),
        state_badge(session_str(view.session), session_str(view.session)),
        if view.ready { state_badge("up", "ready") } else { state_badge("down", "not ready") },
        view.replication_factor,
        view.members_version,
    );
    let total: usize = view
        .jobs
        .iter()
        .filter(|j| j.limit_error.is_none() && j.has_config)
        .map(|j| j.targets.len())
        .sum();
    let _ = write!(
        b,
        "<section><h2>Members <span class=\"count\">({} active, {} draining; {} targets)</span></h2>",
        view.members.iter().filter(|m| m.record.state == MemberState::Active).count(),
        view.members.iter().filter(|m| m.record.state == MemberState::Draining).count(),
        total
    );
    if view.members.is_empty() {
        b.push_str("<p class=\"muted\">No member snapshot yet.</p>");
    } else {
        b.push_str("<table><tr><th>Member</th><th>State</th><th>Web</th><th>Version</th><th>Started</th><th>Targets owned</th></tr>");
        for m in &view.members {
            let state = match m.record.state {
                MemberState::Active => "active",
                MemberState::Draining => "draining",
            };
            let _ = write!(
                b,
                "<tr><td>{id}{you}</td><td>{state}</td><td>{web}</td><td>{version}</td><td>{started}</td><td>{targets}</td></tr>",
                id = e(&m.record.id),
                you = if m.is_self { " <span class=\"you\">(this member)</span>" } else { "" },
                state = state_badge(state, state),
                web = if m.record.web.is_empty() { String::new() } else { format!("<a href=\"http://{w}/cluster\">{w}</a>", w = e(&m.record.web)) },
                version = e(&m.record.version),
                started = e(&m.record.started_at),
                targets = m.targets,
            );
        }
        b.push_str("</table>");
    }
    b.push_str("</section>");
    let _ = write!(b, "<section><h2>Recent rebalances <span class=\"count\">(last {}, newest first; {} in all)</span></h2>", view.rebalances.len(), view.stats.rebalances);
    if view.rebalances.is_empty() {
        b.push_str("<p class=\"muted\">None yet.</p>");
    } else {
        b.push_str("<table><tr><th>When</th><th>Cause</th><th>Active members after</th><th>Targets moved in</th><th>Targets moved out</th></tr>");
        for r in view.rebalances.iter().rev() {
            let _ = write!(
                b,
                "<tr><td><span title=\"{at}\">{at}</span> <span class=\"muted\">({ago})</span></td><td>{cause}</td><td>{members}</td><td>{gained}</td><td>{lost}</td></tr>",
                at = e(&rfc3339(r.at)),
                ago = e(&ago(now, r.at)),
                cause = e(r.cause.as_str()),
                members = r.members,
                gained = r.gained,
                lost = r.lost,
            );
        }
        b.push_str("</table>");
    }
    b.push_str("</section>");
    page(&view, "Cluster", &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(Timestamp(951_782_400_000)), "2000-02-29T00:00:00Z");
        assert_eq!(
            rfc3339(Timestamp(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            rfc3339(Timestamp(1_700_000_000_500)),
            "2023-11-14T22:13:20.5Z"
        );
        assert_eq!(rfc3339(Timestamp(-1)), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            rfc3339(Timestamp(4_107_542_400_000)),
            "2100-03-01T00:00:00Z"
        );
    }

    #[test]
    fn escape_html_escapes_every_special_character() {
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn global_url_replaces_only_loopback_hosts() {
        assert_eq!(
            global_url("http://localhost:9100/metrics", "scraper1.example:8080"),
            "http://scraper1.example:9100/metrics"
        );
        assert_eq!(
            global_url("http://127.0.0.1:9100/metrics?a=b", "10.1.2.3:8080"),
            "http://10.1.2.3:9100/metrics?a=b"
        );
        assert_eq!(
            global_url("http://node1:9100/metrics", "10.1.2.3:8080"),
            "http://node1:9100/metrics"
        );
        assert_eq!(
            global_url("http://localhost:9100/metrics", "127.0.0.1:8080"),
            "http://localhost:9100/metrics"
        );
        assert_eq!(
            global_url("http://localhost:9100/metrics", "0.0.0.0:8080"),
            "http://localhost:9100/metrics"
        );
    }

    #[test]
    fn families_keep_their_order_and_counters_get_total() {
        let mut registry = Registry::with_prefix("scrapepool");
        let states = ["zeta", "alpha", "mid"].map(|s| (vec![("state", s.to_string())], 1));
        gauge_family(&mut registry, "things", "Things", states);
        counter_family(
            &mut registry,
            "moves",
            "Moves",
            [(vec![("direction", "gained".to_string())], 3)],
        );
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        let zeta = out.find("scrapepool_things{state=\"zeta\"} 1").expect(&out);
        let alpha = out
            .find("scrapepool_things{state=\"alpha\"} 1")
            .expect(&out);
        let mid = out.find("scrapepool_things{state=\"mid\"} 1").expect(&out);
        assert!(zeta < alpha && alpha < mid, "{out}");
        assert!(out.contains("# HELP scrapepool_things Things.\n"), "{out}");
        assert!(out.contains("# TYPE scrapepool_moves counter\n"), "{out}");
        assert!(
            out.contains("scrapepool_moves_total{direction=\"gained\"} 3\n"),
            "{out}"
        );
    }

    #[test]
    fn histogram_collector_encodes_cumulative_buckets_in_seconds() {
        let mut h = DurationHistogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(7));
        h.observe(Duration::from_secs(120));
        let mut registry = Registry::with_prefix("scrapepool");
        registry.register_collector(Box::new(HistogramCollector {
            name: "scrape_duration",
            help: "h",
            histogram: h,
        }));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(
            out.contains("# TYPE scrapepool_scrape_duration_seconds histogram"),
            "{out}"
        );
        assert!(
            out.contains("scrapepool_scrape_duration_seconds_count 3"),
            "{out}"
        );
        assert!(
            out.contains("scrapepool_scrape_duration_seconds_sum 120.01"),
            "{out}"
        );
        assert!(
            out.contains("scrapepool_scrape_duration_seconds_bucket{le=\"0.005\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("scrapepool_scrape_duration_seconds_bucket{le=\"0.01\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("scrapepool_scrape_duration_seconds_bucket{le=\"60.0\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("scrapepool_scrape_duration_seconds_bucket{le=\"+Inf\"} 3"),
            "{out}"
        );
    }
}
