//! The server-rendered HTML pages: `/` (the member at a glance), `/targets` and `/cluster`,
//! one stylesheet, no script.

use std::fmt::Write as _;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use scrapepool_core::config::format_duration;
use scrapepool_core::labels::Labels;
use scrapepool_core::member::MemberState;
use scrapepool_core::Timestamp;

use super::view::{rfc3339, session_str, View};
use super::{read_view, WebState};

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

/// `/`: what this member has, with links to the rest.
pub(super) async fn index_page(State(state): State<WebState>) -> Response {
    let view = match read_view(&state).await {
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

/// `/targets`: every job with its targets, their state here and their owners.
pub(super) async fn targets_page(State(state): State<WebState>) -> Response {
    let view = match read_view(&state).await {
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
                    error = e(&error_and_drops(t)),
                );
            }
            b.push_str("</table>");
        }
        if job.dropped_count > 0 {
            let _ = write!(b, "<p class=\"muted\">{} targets dropped by relabeling (see <a href=\"/api/v1/targets?state=dropped\">the API</a>).</p>", job.dropped_count);
        }
        b.push_str("</section>");
    }
    page(&view, "Targets", &b)
}

/// `/cluster`: this member, every member with its share, and the recent rebalances.
pub(super) async fn cluster_page(State(state): State<WebState>) -> Response {
    let view = match read_view(&state).await {
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

/// The wall clock, for "ago" and "left" on the pages.
fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(scrapepool_core::time::duration_ms(d))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_html_escapes_every_special_character() {
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}

/// A target's error cell: the last error, then the samples its last scrape dropped.
fn error_and_drops(t: &super::view::TargetSnapshot) -> String {
    let mut text = t.last_error.clone().unwrap_or_default();
    if !t.last_dropped.is_empty() {
        if !text.is_empty() {
            text.push_str("; ");
        }
        let parts: Vec<String> = t
            .last_dropped
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        text.push_str(&format!("{} samples dropped", parts.join(", ")));
    }
    text
}
