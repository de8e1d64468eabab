//! The operator's view, served by every daemon: `/metrics`, Prometheus-shaped APIs, health
//! checks and two server-rendered pages (`/targets`, `/cluster`).
//!
//! Handlers never keep a copy of the node's state: each request asks the driver's loop for a
//! [`View`] (an owned snapshot, taken between two events) and renders it off the loop.
//! Secrets (passwords, bearer credentials, Consul tokens) are never rendered: the core's
//! [`scrapepool_core::config::Secret`] prints `<secret>`, and as a second line of defence every
//! response body has each configured secret replaced by `<secret>` before it leaves.
//!
//! The module `view` holds the snapshot and the words and time format every endpoint shares;
//! `api` the JSON APIs, `pages` the HTML pages, `metrics` `/metrics`; this module the router,
//! the server, the state every handler gets and the health checks.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use scrapepool_core::Node;

use crate::driver::QueryHandle;

mod api;
mod metrics;
mod pages;
mod server;
mod view;
mod web_config;

pub use api::TargetsParams;
pub use pages::escape_html;
pub use server::{exposure_warning, serve_router, ServeOptions};
pub use view::{JobSnapshot, MemberView, TargetHealth, TargetSnapshot, View};
pub use web_config::{parse_go_duration, RateLimit, WebConfig, WebConfigError, WebConfigSource};

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
    /// between clones) or a [`Collector`](prometheus_client::collector::Collector).
    /// `Registry::register` ends help texts with a period itself.
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
        .route("/", get(pages::index_page))
        .route("/targets", get(pages::targets_page))
        .route("/cluster", get(pages::cluster_page))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/targets", get(api::targets_api))
        .route("/api/v1/members", get(api::members_api))
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

/// Serves on a listener already bound (tests bind port 0 and read the address first), with
/// the default [`ServeOptions`]: plain HTTP, no auth, the default connection cap and timeout.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: WebState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, ServeOptions::default(), shutdown).await
}

/// Serves on a listener already bound, with `options` (the web config, the connection cap
/// and the read timeout).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: WebState,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, router(state), options, shutdown).await
}

/// Reads a view from the loop, or answers 503 when the loop does not.
async fn read_view(state: &WebState) -> Result<View, Response> {
    ask_view(state, View::capture).await
}

/// Like [`read_view`], with the snapshot taken by `capture`.
async fn ask_view(state: &WebState, capture: fn(&Node) -> View) -> Result<View, Response> {
    state.queries.ask(capture).await.ok_or_else(|| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the driver's loop did not answer\n",
        )
            .into_response()
    })
}

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
            let why = format!("scrapepool is not ready: session {}, or not registered yet, or the first member or job snapshot not applied\n", view::session_str(session));
            (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the driver's loop did not answer\n",
        )
            .into_response(),
    }
}
