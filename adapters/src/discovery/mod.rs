//! Service discovery: DNS, Consul, file and HTTP providers behind one [`Discoverer`].
//!
//! Each provider runs as one task per `sd_configs` entry until the driver aborts it. A round
//! that succeeds sends `Event::DiscoveryUpdated { result: Ok(groups) }` when the groups differ
//! from the last ones sent (the first result is always sent); a round that fails sends
//! `Err(message)` naming what failed, and the core keeps the last good result.

pub mod consul;
pub mod dns;
pub mod file;
pub mod http;

use scrapepool_core::config::{SdConfig, TargetGroup};
use scrapepool_core::node::ProviderId;
use scrapepool_core::Event;

use crate::ports::{Discoverer, EventSender};

pub use consul::ConsulDiscoverer;
pub use dns::DnsDiscoverer;
pub use file::FileDiscoverer;
pub use http::HttpDiscoverer;

/// The label holding a target's `host:port`.
pub const ADDRESS_LABEL: &str = "__address__";

/// All discovery mechanisms in one, so the driver holds a single [`Discoverer`].
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    /// DNS discovery (`dns_sd_configs`).
    pub dns: DnsDiscoverer,
    /// Consul discovery (`consul_sd_configs`).
    pub consul: ConsulDiscoverer,
    /// File discovery (`file_sd_configs`).
    pub file: FileDiscoverer,
    /// HTTP discovery (`http_sd_configs`).
    pub http: HttpDiscoverer,
}

impl Discoverer for Discovery {
    async fn run(&self, provider: ProviderId, config: SdConfig, events: EventSender) {
        match config {
            SdConfig::Dns(c) => self.dns.run(provider, SdConfig::Dns(c), events).await,
            SdConfig::Consul(c) => self.consul.run(provider, SdConfig::Consul(c), events).await,
            SdConfig::File(c) => self.file.run(provider, SdConfig::File(c), events).await,
            SdConfig::Http(c) => self.http.run(provider, SdConfig::Http(c), events).await,
        }
    }
}

/// Sends a provider's results to the driver, skipping results equal to the last one sent.
pub(crate) struct Reporter {
    provider: ProviderId,
    events: EventSender,
    /// The last result sent.
    last_sent: Option<Result<Vec<TargetGroup>, String>>,
    /// The last `Ok` sent (the core's "last good result").
    last_ok: Option<Vec<TargetGroup>>,
}

impl Reporter {
    /// A reporter that has sent nothing yet.
    pub(crate) fn new(provider: ProviderId, events: EventSender) -> Reporter {
        Reporter {
            provider,
            events,
            last_sent: None,
            last_ok: None,
        }
    }

    /// Sends `result` unless it equals the last result sent; false once the driver is gone.
    pub(crate) async fn report(&mut self, result: Result<Vec<TargetGroup>, String>) -> bool {
        if self.last_sent.as_ref() == Some(&result) {
            return !self.events.is_closed();
        }
        if let Ok(groups) = &result {
            self.last_ok = Some(groups.clone());
        }
        self.last_sent = Some(result.clone());
        let event = Event::DiscoveryUpdated {
            provider: self.provider.clone(),
            result,
        };
        self.events.send(event).await.is_ok()
    }

    /// Reports a round that may have partly failed: `groups` is the best result (failed
    /// parts keep their previous groups), `errors` what failed.
    ///
    /// The groups go out as `Ok` when they changed (or to clear an earlier error), then the
    /// errors as one `Err`, so the core holds the freshest good groups and shows the error.
    /// A first round in which everything failed sends only the `Err`.
    pub(crate) async fn report_round(
        &mut self,
        groups: Vec<TargetGroup>,
        errors: Vec<String>,
    ) -> bool {
        let nothing_good_yet = self.last_ok.is_none() && groups.is_empty() && !errors.is_empty();
        let groups_changed = self.last_ok.as_ref() != Some(&groups);
        let clears_error = errors.is_empty() && !matches!(self.last_sent, Some(Ok(_)));
        if !nothing_good_yet && (groups_changed || clears_error) {
            // `report` skips it only if it equals the last thing sent, which then is this Ok.
            self.last_sent = None;
            if !self.report(Ok(groups)).await {
                return false;
            }
        }
        if errors.is_empty() {
            return !self.events.is_closed();
        }
        self.report(Err(errors.join("; "))).await
    }
}

/// Replaces every character not allowed in a Prometheus label name with `_`
/// (Prometheus's `strutil.SanitizeLabelName`: `[^a-zA-Z0-9_]` → `_`).
pub fn sanitize_label_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `host:port`, with IPv6 literals in brackets (Go's `net.JoinHostPort`).
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scrapepool_core::labels::Labels;

    fn group(source: &str) -> TargetGroup {
        TargetGroup {
            targets: vec![Labels::from_pairs([(ADDRESS_LABEL, "a:1")])],
            labels: Labels::new(),
            source: source.into(),
        }
    }

    fn drain(rx: &mut tokio::sync::mpsc::Receiver<Event>) -> Vec<Result<Vec<TargetGroup>, String>> {
        let mut out = Vec::new();
        while let Ok(Event::DiscoveryUpdated { result, .. }) = rx.try_recv() {
            out.push(result);
        }
        out
    }

    #[tokio::test]
    async fn reporter_sends_changes_and_errors_after_the_good_groups() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let mut r = Reporter::new(
            ProviderId {
                job: "j".into(),
                index: 0,
                generation: 1,
            },
            tx,
        );
        // First round, everything failed: only the error.
        assert!(r.report_round(vec![], vec!["x failed".into()]).await);
        assert_eq!(drain(&mut rx), vec![Err("x failed".to_string())]);
        // Same failure again: nothing.
        assert!(r.report_round(vec![], vec!["x failed".into()]).await);
        assert_eq!(drain(&mut rx), vec![]);
        // Partial success: the groups, then the error.
        assert!(
            r.report_round(vec![group("a")], vec!["x failed".into()])
                .await
        );
        assert_eq!(
            drain(&mut rx),
            vec![Ok(vec![group("a")]), Err("x failed".to_string())]
        );
        // Recovery with the same groups: an Ok clears the error.
        assert!(r.report_round(vec![group("a")], vec![]).await);
        assert_eq!(drain(&mut rx), vec![Ok(vec![group("a")])]);
        // No change: nothing.
        assert!(r.report_round(vec![group("a")], vec![]).await);
        assert_eq!(drain(&mut rx), vec![]);
        // A change: the new groups.
        assert!(r.report_round(vec![group("a"), group("b")], vec![]).await);
        assert_eq!(drain(&mut rx), vec![Ok(vec![group("a"), group("b")])]);
        // The driver went away: report says so.
        drop(rx);
        assert!(!r.report_round(vec![], vec![]).await);
    }

    #[test]
    fn sanitize_replaces_invalid_characters() {
        assert_eq!(sanitize_label_name("rack-id.v2"), "rack_id_v2");
        assert_eq!(sanitize_label_name("ok_Name9"), "ok_Name9");
        assert_eq!(sanitize_label_name("ü"), "_");
    }

    #[test]
    fn join_host_port_brackets_ipv6() {
        assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
        assert_eq!(join_host_port("::1", 9100), "[::1]:9100");
        assert_eq!(
            join_host_port("db.example.com", 5432),
            "db.example.com:5432"
        );
    }
}
