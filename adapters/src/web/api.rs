//! The JSON APIs, in Prometheus's response shape: `/api/v1/targets` (active and dropped
//! targets, with owners and replica rank) and `/api/v1/members`.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use scrapepool_core::config::format_duration;

use super::view::{rfc3339, View};
use super::{read_view, WebState};

/// Query of `/api/v1/targets`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct TargetsParams {
    /// `any` (default), `active` or `dropped`.
    pub state: Option<String>,
}

/// Go's zero time, which Prometheus shows for a target never scraped.
const NEVER: &str = "0001-01-01T00:00:00Z";

/// `/api/v1/targets`: Prometheus's shape, plus each target's owners and our replica rank.
pub(super) async fn targets_api(
    State(state): State<WebState>,
    Query(params): Query<TargetsParams>,
) -> Response {
    let view = match read_view(&state).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    // Prometheus: empty or `any` shows both; an unknown word shows neither.
    let wanted = params.state.as_deref().unwrap_or("").to_ascii_lowercase();
    let show_active = matches!(wanted.as_str(), "" | "any" | "active");
    let show_dropped = matches!(wanted.as_str(), "" | "any" | "dropped");
    let mut active = Vec::new();
    let mut dropped = Vec::new();
    let mut dropped_counts = serde_json::Map::new();
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
                    "lastDroppedSamples": t.last_dropped.iter().map(|(r, n)| ((*r).to_string(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
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
                dropped.push(serde_json::json!({ "discoveredLabels": d, "scrapePool": job.name }));
            }
            dropped_counts.insert(job.name.clone(), job.dropped_count.into());
        }
    }
    // Prometheus 3.16: the count of every job's dropped targets (also those not kept under
    // `keep_dropped_targets`) when dropped targets are asked for, else null.
    let counts = if show_dropped {
        serde_json::Value::Object(dropped_counts)
    } else {
        serde_json::Value::Null
    };
    let body = serde_json::json!({"status": "success", "data": {
        "activeTargets": active,
        "droppedTargets": dropped,
        "droppedTargetCounts": counts,
    }});
    json_response(&view, &body)
}

/// `/api/v1/members`: every member and its share of the targets.
pub(super) async fn members_api(State(state): State<WebState>) -> Response {
    let view = match read_view(&state).await {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
