//! The read models every endpoint renders: [`View`], an owned snapshot of the node taken on
//! the driver's loop from its query answers (jobs, targets, members, rebalances, counters),
//! with the secrets to redact from each response; and the words and time format the pages,
//! APIs and metrics share.

use std::collections::BTreeMap;
use std::time::Duration;

use scrapepool_core::config::SdConfig;
use scrapepool_core::labels::Labels;
use scrapepool_core::member::MemberRecord;
use scrapepool_core::node::{Rebalance, Role, SessionState, Stats};
use scrapepool_core::{Node, Timestamp};

use super::pages::escape_html;
use super::{SECRET_FILTER_LEN_MIN, SECRET_PLACEHOLDER};

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
    /// Every configured secret, every secret read from a file and every Basic token sent,
    /// for the response filter; never rendered.
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
    /// Targets that moved away and we still scrape until their handoff slot.
    pub handing_off: usize,
    /// Active targets, sorted by URL (empty in a [`View::capture_counts`] view).
    pub targets: Vec<TargetSnapshot>,
    /// Discovered labels of the targets relabeling dropped, at most `keep_dropped_targets`
    /// (empty in a counts-only view).
    pub dropped: Vec<Labels>,
    /// How many targets relabeling dropped, kept or not.
    pub dropped_count: usize,
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
    /// The samples that scrape dropped, by reason (`ScrapeReport::dropped`).
    pub last_dropped: Vec<(&'static str, u64)>,
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
                        last_error: report.and_then(|r| r.error.as_ref().map(ToString::to_string)),
                        last_dropped: report.map(|r| r.dropped()).unwrap_or_default(),
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
                dropped_count: job.targets.dropped_count,
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
        // Secrets read from files (and Basic tokens) are not in the configuration.
        secrets.extend(crate::http::client::remembered_secrets());
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
    pub(super) fn web_of(&self, id: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.record.id == id)
            .map(|m| m.record.web.as_str())
    }

    /// Replaces every configured secret in `body` by `<secret>`: as written, and as HTML,
    /// JSON and OpenMetrics escape it (a secret holding `"`, `&` or `\\` looks different there).
    pub(super) fn redact(&self, mut body: String) -> String {
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
    let http = &c.http_client;
    let tls_keys = std::iter::once(&c.tls_config)
        .chain(http.oauth2.as_ref().map(|o| &o.tls_config))
        .filter_map(|t| t.key.as_ref());
    let client_secrets = http.oauth2.as_ref().and_then(|o| o.client_secret.as_ref());
    let header_secrets = http.http_headers.values().flat_map(|h| &h.secrets);
    let proxy_headers = std::iter::once(&http.proxy)
        .chain(http.oauth2.as_ref().map(|o| &o.proxy))
        .flat_map(|p| p.proxy_connect_header.values().flatten());
    for s in tls_keys
        .chain(client_secrets)
        .chain(header_secrets)
        .chain(proxy_headers)
    {
        out.push(s.expose().to_string());
    }
    for sd in &c.sd_configs {
        let http = match sd {
            SdConfig::Consul(consul) => {
                if let Some(t) = &consul.token {
                    out.push(t.expose().to_string());
                }
                &consul.http_client
            }
            SdConfig::Http(http) => &http.http_client,
            SdConfig::Dns(_) | SdConfig::File(_) => continue,
        };
        if let Some(p) = http.basic_auth.as_ref().and_then(|b| b.password.as_ref()) {
            out.push(p.expose().to_string());
        }
        if let Some(p) = http
            .authorization
            .as_ref()
            .and_then(|a| a.credentials.as_ref())
        {
            out.push(p.expose().to_string());
        }
    }
}

/// `connected`, `disconnected`, `expired`: a session state as every endpoint writes it.
pub(super) fn session_str(s: SessionState) -> &'static str {
    match s {
        SessionState::Disconnected => "disconnected",
        SessionState::Connected => "connected",
        SessionState::Expired => "expired",
    }
}

/// RFC 3339 in UTC with milliseconds, trailing zeros trimmed (Go's RFC3339Nano shape, as
/// Prometheus's API writes times): the core's formatter, with the fraction shortened.
pub(super) fn rfc3339(t: Timestamp) -> String {
    let full = scrapepool_core::format::rfc3339_ms(t.as_millis());
    let Some((whole, frac)) = full.strip_suffix('Z').and_then(|s| s.split_once('.')) else {
        return full;
    };
    match frac.trim_end_matches('0') {
        "" => format!("{whole}Z"),
        frac => format!("{whole}.{frac}Z"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_of_consul_and_http_discovery_are_collected() {
        let text = "job_name: s
consul_sd_configs:
  - {token: consul-token, username: u, password: consul-pw}
http_sd_configs:
  - {url: 'http://sd/', authorization: {credentials: http-cred}}
  - {url: 'http://sd/', basic_auth: {username: u, password: http-pw}}
";
        let job = scrapepool_core::config::load_job(text, "s.yml", "s").unwrap();
        let mut secrets = Vec::new();
        collect_secrets(&job, &mut secrets);
        secrets.sort();
        assert_eq!(
            secrets,
            ["consul-pw", "consul-token", "http-cred", "http-pw"]
        );
    }

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
}
