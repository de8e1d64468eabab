//! Targets: from discovered target groups to scrape targets, exactly as Prometheus does it.
//!
//! The [`TargetKey`] encoding ([`TargetKey::new`]) is pinned, like its hash ([`crate::ring`]):
//! every member must derive the same key, and so the same owners, for a target.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{format_duration, parse_duration, JobConfig, TargetGroup};
use crate::labels::Labels;
use crate::relabel;
use crate::ring;

/// The identity of a target across the fleet: job name, final labels and scrape URL in one
/// canonical byte encoding, plus its pinned hash (the ownership and Kafka key).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetKey {
    hash: u64,
    bytes: Arc<[u8]>,
}

impl TargetKey {
    /// Builds the key: `job 0xfe labels(canonical) 0xfe url`.
    pub fn new(job: &str, labels: &Labels, url: &str) -> TargetKey {
        let mut bytes = Vec::with_capacity(job.len() + url.len() + 16 * labels.len());
        bytes.extend_from_slice(job.as_bytes());
        bytes.push(0xfe);
        labels.encode_canonical(&mut bytes);
        bytes.push(0xfe);
        bytes.extend_from_slice(url.as_bytes());
        TargetKey {
            hash: ring::key_hash(&bytes),
            bytes: bytes.into(),
        }
    }

    /// The pinned 64-bit hash of the canonical bytes.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The canonical bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A target to scrape: what discovery found, after relabeling.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Fleet-wide identity.
    pub key: TargetKey,
    /// Final labels (job, instance, ...; no `__` labels).
    pub labels: Labels,
    /// Labels as discovered, before relabeling (for display).
    pub discovered_labels: Labels,
    /// The scrape URL, with params.
    pub url: String,
    /// Scrape interval (per-target `__scrape_interval__` or the job's).
    pub scrape_interval: Duration,
    /// Scrape timeout (per-target `__scrape_timeout__` or the job's).
    pub scrape_timeout: Duration,
    /// Scrape native histograms (per-target `__scrape_native_histograms__` or the job's).
    pub scrape_native_histograms: bool,
    /// Keep classic series beside native ones (per-target
    /// `__always_scrape_classic_histograms__` or the job's).
    pub always_scrape_classic_histograms: bool,
}

/// A target that relabeling dropped, kept for display.
#[derive(Clone, Debug, PartialEq)]
pub struct DroppedTarget {
    /// Labels as discovered.
    pub discovered_labels: Labels,
}

/// The targets of one job.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ResolvedTargets {
    /// Targets to scrape, sorted by key.
    pub active: Vec<Target>,
    /// Targets dropped by relabeling, the first `keep_dropped_targets` of them (all when 0).
    pub dropped: Vec<DroppedTarget>,
    /// How many targets relabeling dropped, kept or not.
    pub dropped_count: usize,
    /// Set when the job has more targets than `target_limit`: none is scraped, as in Prometheus.
    pub limit_error: Option<String>,
    /// Targets whose labels were invalid (bad `__scrape_interval__`, no address, ...): what and why.
    pub errors: Vec<String>,
}

/// Turns target groups into targets for `job`, as Prometheus 3.16's `TargetsFromGroup`,
/// `PopulateLabels` and the scrape pool's `Sync` do.
///
/// A target's labels are its group's labels overridden by its own; `job`, `__scheme__`,
/// `__metrics_path__`, `__scrape_interval__`, `__scrape_timeout__` and the three histogram
/// switches (`false`: scrapepool scrapes no native histograms) are added when absent, and
/// `__param_<name>` (the param's first value) for each job param the target does not set
/// itself. Relabeling then runs; a dropped target is kept with these discovered labels, at
/// most `keep_dropped_targets` of them when that is not 0 (all are counted). Targets with
/// the same key are one target: the first one's labels and URL, the last one's discovered
/// labels, as Prometheus's scrape pool keeps them.
pub fn resolve(job: &JobConfig, groups: &[TargetGroup]) -> ResolvedTargets {
    let mut out = ResolvedTargets::default();
    let mut active: std::collections::BTreeMap<TargetKey, Target> =
        std::collections::BTreeMap::new();
    for group in groups {
        for (i, target_labels) in group.targets.iter().enumerate() {
            let mut labels = group.labels.clone();
            for l in target_labels.iter() {
                labels.set(l.name.clone(), l.value.clone());
            }
            match populate(job, labels) {
                Ok(Populated::Active(target)) => match active.entry(target.key.clone()) {
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(target);
                    }
                    std::collections::btree_map::Entry::Occupied(mut first) => {
                        first.get_mut().discovered_labels = target.discovered_labels;
                    }
                },
                Ok(Populated::Dropped(discovered_labels)) => {
                    out.dropped_count += 1;
                    if job.keep_dropped_targets == 0
                        || (out.dropped.len() as u64) < job.keep_dropped_targets
                    {
                        out.dropped.push(DroppedTarget { discovered_labels })
                    }
                }
                Err(e) => out
                    .errors
                    .push(format!("instance {i} in group {}: {e}", group.source)),
            }
        }
    }
    out.active = active.into_values().collect();
    if job.target_limit > 0 && out.active.len() as u64 > job.target_limit {
        out.limit_error = Some(format!(
            "target_limit exceeded (number of targets: {}, limit: {})",
            out.active.len(),
            job.target_limit
        ));
    }
    out
}

enum Populated {
    Active(Target),
    Dropped(Labels),
}

/// One target: Prometheus's `PopulateLabels` followed by the target's URL and key.
fn populate(job: &JobConfig, mut labels: Labels) -> Result<Populated, String> {
    let defaults = [
        ("job", job.job_name.clone()),
        ("__scrape_interval__", format_duration(job.scrape_interval)),
        ("__scrape_timeout__", format_duration(job.scrape_timeout)),
        ("__metrics_path__", job.metrics_path.clone()),
        ("__scheme__", job.scheme.as_str().to_string()),
        // Prometheus 3 sets its histogram switches on every target, from its job; relabeling
        // may change them per target.
        (
            "__convert_classic_histograms_to_nhcb__",
            job.convert_classic_histograms_to_nhcb.to_string(),
        ),
        (
            "__always_scrape_classic_histograms__",
            job.always_scrape_classic_histograms.to_string(),
        ),
        (
            "__scrape_native_histograms__",
            job.scrape_native_histograms.to_string(),
        ),
    ];
    for (name, value) in defaults {
        if labels.get(name).is_none() {
            labels.set(name.to_string(), value);
        }
    }
    for (name, values) in &job.params {
        let label = format!("__param_{name}");
        match values.first() {
            // The target's own `__param_<name>` wins over the job's.
            Some(first) if labels.get(&label).is_none() => labels.set(label, first.clone()),
            _ => {}
        }
    }
    let discovered = labels.clone();
    let Some(mut labels) = relabel::process(&job.relabel_configs, labels) else {
        return Ok(Populated::Dropped(discovered));
    };
    // An address without a port stays as it is (Prometheus 3); only the dial uses the
    // scheme's default port.
    let Some(address) = labels.get("__address__").map(str::to_string) else {
        return Err("no address".into());
    };
    if address.contains('/') {
        return Err(format!("{address:?} is not a valid hostname"));
    }
    check_host_port(&address)?;
    let interval_text = labels.get("__scrape_interval__").unwrap_or("").to_string();
    let scrape_interval = parse_duration(&interval_text)
        .map_err(|e| format!("error parsing scrape interval: {e}"))?;
    if scrape_interval.is_zero() {
        return Err("scrape interval cannot be 0".into());
    }
    let timeout_text = labels.get("__scrape_timeout__").unwrap_or("").to_string();
    let scrape_timeout =
        parse_duration(&timeout_text).map_err(|e| format!("error parsing scrape timeout: {e}"))?;
    if scrape_timeout.is_zero() {
        return Err("scrape timeout cannot be 0".into());
    }
    if scrape_timeout > scrape_interval {
        return Err(format!("scrape timeout cannot be greater than scrape interval ({timeout_text:?} > {interval_text:?})"));
    }
    let switch =
        |name: &str, default: bool| labels.get(name).and_then(go_parse_bool).unwrap_or(default);
    let scrape_native_histograms =
        switch("__scrape_native_histograms__", job.scrape_native_histograms);
    let always_scrape_classic_histograms = switch(
        "__always_scrape_classic_histograms__",
        job.always_scrape_classic_histograms,
    );
    labels.retain(|l| !l.name.starts_with("__meta_"));
    if labels.get("instance").is_none() {
        labels.set("instance".into(), address.clone());
    }
    let url = scrape_url(job, &labels);
    let mut public = labels;
    public.retain(|l| !l.name.starts_with("__"));
    let key = TargetKey::new(&job.job_name, &public, &url);
    Ok(Populated::Active(Target {
        key,
        labels: public,
        discovered_labels: discovered,
        url,
        scrape_interval,
        scrape_timeout,
        scrape_native_histograms,
        always_scrape_classic_histograms,
    }))
}

/// Go's `strconv.ParseBool`, as Prometheus reads a target's boolean labels (anything else
/// means "use the job's setting").
fn go_parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Rejects a `host:port` address no scrape could reach, before its URL is built: an empty
/// host, a character Go's `net/url` refuses in a host name (space, `@`, `?`, `#`, ...), an
/// invalid bracketed IPv6 literal, and an empty, non-numeric or out-of-range port.
/// Prometheus accepts these and fails every scrape; here the target is invalid, with the
/// reason. An address that is not `host:port` at all (a bare IPv6 literal) is left to the
/// scrape, as in Prometheus.
fn check_host_port(address: &str) -> Result<(), String> {
    let Some((host, port)) = split_host_port(address) else {
        return Ok(());
    };
    let invalid = |why: String| Err(format!("{address:?} is not a valid address: {why}"));
    if host.is_empty() {
        return invalid("empty host".into());
    }
    if address.starts_with('[') {
        let ip = host.split_once('%').map_or(host, |(ip, _zone)| ip);
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return invalid(format!("invalid IPv6 address {host:?}"));
        }
    } else if let Some(c) = host.chars().find(|&c| {
        c.is_ascii()
            && !(c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '-' | '.'
                        | '_'
                        | '~'
                        | '!'
                        | '$'
                        | '&'
                        | '\''
                        | '('
                        | ')'
                        | '*'
                        | '+'
                        | ','
                        | ';'
                        | '='
                ))
    }) {
        return invalid(format!(
            "invalid character {:?} in host name",
            c.to_string()
        ));
    }
    if port.is_empty() {
        return invalid("missing port".into());
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return invalid(format!("invalid port {port:?}"));
    }
    match port.parse::<u16>() {
        Ok(_) => Ok(()),
        Err(_) => invalid(format!("invalid port {port:?} (above 65535)")),
    }
}

/// Go's `net.SplitHostPort`: `host:port` or `[v6]:port`; `None` where Go returns an error.
pub fn split_host_port(hostport: &str) -> Option<(&str, &str)> {
    let colon = hostport.rfind(':')?;
    let (host, inner_start, inner_end) = if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        if end + 1 != colon {
            return None;
        }
        (&hostport[1..end], 1, end + 1)
    } else {
        let host = &hostport[..colon];
        if host.contains(':') {
            return None;
        }
        (host, 0, 0)
    };
    if hostport[inner_start..].contains('[') || hostport[inner_end..].contains(']') {
        return None;
    }
    Some((host, &hostport[colon + 1..]))
}

/// The scrape URL as Prometheus's `Target.URL().String()`: the job's params, each one's first
/// value replaced by its `__param_<name>` label, encoded sorted by name (Go's `url.Values`).
pub fn scrape_url(job: &JobConfig, labels: &Labels) -> String {
    let mut params = job.params.clone();
    for l in labels.iter() {
        if let Some(name) = l.name.strip_prefix("__param_") {
            let values = params.entry(name.to_string()).or_default();
            match values.first_mut() {
                Some(first) => *first = l.value.clone(),
                None => values.push(l.value.clone()),
            }
        }
    }
    let scheme = labels.get("__scheme__").unwrap_or("");
    let host = labels.get("__address__").unwrap_or("");
    let path = labels.get("__metrics_path__").unwrap_or("");
    let mut url = String::new();
    if !scheme.is_empty() {
        url.push_str(scheme);
        url.push(':');
    }
    if !scheme.is_empty() || !host.is_empty() {
        if !host.is_empty() || !path.is_empty() {
            url.push_str("//");
        }
        escape_into(&mut url, host, Mode::Host);
    }
    if !path.is_empty() && !path.starts_with('/') && !host.is_empty() {
        url.push('/');
    }
    escape_into(&mut url, path, Mode::Path);
    let mut first = true;
    for (name, values) in &params {
        for value in values {
            url.push(if first { '?' } else { '&' });
            first = false;
            escape_into(&mut url, name, Mode::Query);
            url.push('=');
            escape_into(&mut url, value, Mode::Query);
        }
    }
    url
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Host,
    Path,
    Query,
}

/// Percent-encodes as Go's `net/url` does for a host, a path or a query component.
fn escape_into(out: &mut String, s: &str, mode: Mode) {
    for c in s.chars() {
        if !c.is_ascii() {
            // Go leaves non-ASCII bytes of a host alone and escapes them elsewhere.
            if mode == Mode::Host {
                out.push(c);
            } else {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            continue;
        }
        let b = c as u8;
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || match mode {
                Mode::Host => matches!(
                    b,
                    b'!' | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'['
                        | b']'
                        | b'<'
                        | b'>'
                        | b'"'
                ),
                Mode::Path => matches!(
                    b,
                    b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'@'
                ),
                Mode::Query => false,
            };
        if keep {
            out.push(c);
        } else if c == ' ' && mode == Mode::Query {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::load_job;

    fn job(yaml: &str) -> JobConfig {
        load_job(yaml, "test.yml", "j").unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn group(source: &str, addresses: &[&str], labels: &[(&str, &str)]) -> TargetGroup {
        TargetGroup {
            targets: addresses
                .iter()
                .map(|a| Labels::from_pairs([("__address__", *a)]))
                .collect(),
            labels: Labels::from_pairs(labels.iter().copied()),
            source: source.into(),
        }
    }

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn adds_job_labels_and_defaults_instance() {
        let j = job("job_name: j\nscrape_interval: 30s\n");
        let r = resolve(&j, &[group("0", &["h:9100"], &[("env", "prod")])]);
        assert!(r.errors.is_empty() && r.dropped.is_empty(), "{r:?}");
        let t = &r.active[0];
        assert_eq!(
            t.discovered_labels,
            l(&[
                ("__address__", "h:9100"),
                ("__always_scrape_classic_histograms__", "false"),
                ("__convert_classic_histograms_to_nhcb__", "false"),
                ("__metrics_path__", "/metrics"),
                ("__scheme__", "http"),
                ("__scrape_interval__", "30s"),
                ("__scrape_native_histograms__", "false"),
                ("__scrape_timeout__", "10s"),
                ("env", "prod"),
                ("job", "j"),
            ])
        );
        assert_eq!(
            t.labels,
            l(&[("env", "prod"), ("instance", "h:9100"), ("job", "j")])
        );
        assert_eq!(t.url, "http://h:9100/metrics");
        assert_eq!(t.scrape_interval, Duration::from_secs(30));
        assert_eq!(t.scrape_timeout, Duration::from_secs(10));
        assert_eq!(t.key, TargetKey::new("j", &t.labels, &t.url));
    }

    #[test]
    fn target_labels_win_over_group_labels_and_discovered_labels_over_defaults() {
        let j = job("job_name: j\n");
        let mut g = group(
            "0",
            &[],
            &[("env", "group"), ("__scheme__", "https"), ("job", "other")],
        );
        g.targets.push(l(&[
            ("__address__", "h:1"),
            ("env", "target"),
            ("__metrics_path__", "/m"),
        ]));
        let r = resolve(&j, &[g]);
        let t = &r.active[0];
        assert_eq!(
            t.labels,
            l(&[("env", "target"), ("instance", "h:1"), ("job", "other")])
        );
        assert_eq!(t.url, "https://h:1/m");
    }

    #[test]
    fn params_become_labels_and_url_query() {
        let j = job("job_name: j\nparams:\n  module: [http_2xx, second]\n  b: ['x y&z']\n");
        let r = resolve(&j, &[group("0", &["h:1"], &[])]);
        let t = &r.active[0];
        assert_eq!(t.discovered_labels.get("__param_module"), Some("http_2xx"));
        assert_eq!(t.discovered_labels.get("__param_b"), Some("x y&z"));
        // Sorted by name; each value of a list; query escaping as Go's url.QueryEscape.
        assert_eq!(
            t.url,
            "http://h:1/metrics?b=x+y%26z&module=http_2xx&module=second"
        );
        // A relabeled __param_ label replaces the first value.
        let j = job("job_name: j\nparams:\n  module: [a, b]\nrelabel_configs:\n  - target_label: __param_module\n    replacement: c\n  - target_label: __param_target\n    replacement: 'http://x/'\n");
        let r = resolve(&j, &[group("0", &["h:1"], &[])]);
        assert_eq!(
            r.active[0].url,
            "http://h:1/metrics?module=c&module=b&target=http%3A%2F%2Fx%2F"
        );
        assert_eq!(r.active[0].labels, l(&[("instance", "h:1"), ("job", "j")]));
    }

    #[test]
    fn dropped_targets_keep_their_discovered_labels() {
        let j = job("job_name: j\nrelabel_configs:\n  - source_labels: [env]\n    regex: dev\n    action: drop\n");
        let r = resolve(
            &j,
            &[
                group("0", &["a:1"], &[("env", "dev")]),
                group("1", &["b:1"], &[("env", "prod")]),
            ],
        );
        assert_eq!(r.active.len(), 1);
        assert_eq!(r.dropped.len(), 1);
        assert_eq!(
            r.dropped[0].discovered_labels.get("__address__"),
            Some("a:1")
        );
        assert_eq!(r.dropped[0].discovered_labels.get("job"), Some("j"));
        assert_eq!(r.dropped[0].discovered_labels.get("env"), Some("dev"));
    }

    #[test]
    fn missing_address_and_paths_are_errors() {
        let j = job("job_name: j\nrelabel_configs:\n  - source_labels: [x]\n    regex: drop-address\n    target_label: __address__\n    replacement: ''\n");
        let r = resolve(&j, &[group("0", &["h:1"], &[("x", "drop-address")])]);
        assert!(r.active.is_empty() && r.dropped.is_empty());
        assert_eq!(
            r.errors,
            vec!["instance 0 in group 0: no address".to_string()]
        );
        let j = job("job_name: j\nrelabel_configs:\n  - target_label: env\n    replacement: x\n");
        let r = resolve(&j, &[group("g", &["ok:1", "http://h:1/metrics"], &[])]);
        assert_eq!(r.active.len(), 1);
        assert_eq!(
            r.errors,
            vec![
                "instance 1 in group g: \"http://h:1/metrics\" is not a valid hostname".to_string()
            ]
        );
    }

    #[test]
    fn unreachable_addresses_are_invalid_targets_with_the_reason() {
        let j = job("job_name: j\n");
        let cases = [
            (
                "h:70000",
                "\"h:70000\" is not a valid address: invalid port \"70000\" (above 65535)",
            ),
            (
                "h:99999999999999999999",
                "\"h:99999999999999999999\" is not a valid address: invalid port \"99999999999999999999\" (above 65535)",
            ),
            ("h:9x", "\"h:9x\" is not a valid address: invalid port \"9x\""),
            ("h:+80", "\"h:+80\" is not a valid address: invalid port \"+80\""),
            ("h:", "\"h:\" is not a valid address: missing port"),
            (":9100", "\":9100\" is not a valid address: empty host"),
            ("[]:9100", "\"[]:9100\" is not a valid address: empty host"),
            (
                "h o:1",
                "\"h o:1\" is not a valid address: invalid character \" \" in host name",
            ),
            (
                "user@h:1",
                "\"user@h:1\" is not a valid address: invalid character \"@\" in host name",
            ),
            (
                "h?x:1",
                "\"h?x:1\" is not a valid address: invalid character \"?\" in host name",
            ),
            (
                "[::g]:1",
                "\"[::g]:1\" is not a valid address: invalid IPv6 address \"::g\"",
            ),
            ("http://h:1", "\"http://h:1\" is not a valid hostname"),
            ("h:1/metrics", "\"h:1/metrics\" is not a valid hostname"),
        ];
        for (address, want) in cases {
            let r = resolve(&j, &[group("g", &[address], &[])]);
            assert!(r.active.is_empty(), "{address}: {r:?}");
            assert_eq!(r.errors, vec![format!("instance 0 in group g: {want}")]);
        }
        for ok in [
            "h:65535",
            "h:1",
            "h:0",
            "[::1]:9100",
            "[fe80::1%eth0]:9100",
            "bücher.de:80",
            "a_b-c.d:9",
        ] {
            let r = resolve(&j, &[group("g", &[ok], &[])]);
            assert!(r.errors.is_empty(), "{ok}: {r:?}");
            assert_eq!(r.active[0].labels.get("instance"), Some(ok));
        }
    }

    #[test]
    fn no_default_port_is_added_as_in_prometheus_3() {
        let http = job("job_name: j\n");
        let https = job("job_name: j\nscheme: https\n");
        let cases = [
            (&http, "example.com", "http://example.com/metrics"),
            (&https, "example.com", "https://example.com/metrics"),
            (&http, "example.com:8080", "http://example.com:8080/metrics"),
            (&http, "[::1]", "http://[::1]/metrics"),
            (&http, "[::1]:9090", "http://[::1]:9090/metrics"),
            (&http, "::1", "http://::1/metrics"),
        ];
        for (j, address, url) in cases {
            let r = resolve(j, &[group("0", &[address], &[])]);
            assert!(r.errors.is_empty(), "{address}: {r:?}");
            let t = &r.active[0];
            assert_eq!(t.labels.get("instance"), Some(address), "{address}");
            assert_eq!(t.url, url, "{address}");
            assert_eq!(t.discovered_labels.get("__address__"), Some(address));
        }
    }

    #[test]
    fn a_targets_own_param_label_wins_over_the_jobs_param() {
        let j = job("job_name: j\nparams:\n  module: [a, b]\n  other: [o]\n");
        let mut g = group("0", &[], &[]);
        g.targets
            .push(l(&[("__address__", "h:1"), ("__param_module", "mine")]));
        g.targets.push(l(&[("__address__", "h:2")]));
        let r = resolve(&j, &[g]);
        assert!(r.errors.is_empty(), "{r:?}");
        let [first, second] = &r.active[..] else {
            panic!("{r:?}")
        };
        let (mine, default) = if first.url.contains("h:1") {
            (first, second)
        } else {
            (second, first)
        };
        assert_eq!(mine.discovered_labels.get("__param_module"), Some("mine"));
        assert_eq!(mine.discovered_labels.get("__param_other"), Some("o"));
        assert_eq!(mine.url, "http://h:1/metrics?module=mine&module=b&other=o");
        assert_eq!(default.discovered_labels.get("__param_module"), Some("a"));
        assert_eq!(default.url, "http://h:2/metrics?module=a&module=b&other=o");
    }

    #[test]
    fn discovered_labels_carry_prometheus_3_histogram_switches() {
        let j = job("job_name: j\n");
        let r = resolve(&j, &[group("0", &["h:1"], &[])]);
        let d = &r.active[0].discovered_labels;
        for name in [
            "__always_scrape_classic_histograms__",
            "__convert_classic_histograms_to_nhcb__",
            "__scrape_native_histograms__",
        ] {
            assert_eq!(d.get(name), Some("false"), "{name}");
        }
        // Internal labels never reach the target's labels.
        assert_eq!(r.active[0].labels, l(&[("instance", "h:1"), ("job", "j")]));
    }

    #[test]
    fn keep_dropped_targets_keeps_the_first_n_and_counts_all() {
        let yaml = "job_name: j\nrelabel_configs:\n  - source_labels: [__address__]\n    regex: 'd.*'\n    action: drop\n";
        let groups = [group("0", &["d1:1", "a:1", "d2:1", "d3:1"], &[])];
        let all = resolve(&job(yaml), &groups);
        assert_eq!(all.dropped.len(), 3);
        assert_eq!(all.dropped_count, 3);
        let kept = resolve(&job(&format!("{yaml}keep_dropped_targets: 2\n")), &groups);
        assert_eq!(kept.active.len(), 1);
        assert_eq!(kept.dropped_count, 3);
        let addresses: Vec<_> = kept
            .dropped
            .iter()
            .map(|d| d.discovered_labels.get("__address__").unwrap_or(""))
            .collect();
        assert_eq!(addresses, ["d1:1", "d2:1"]);
    }

    #[test]
    fn per_target_interval_and_timeout() {
        let j = job("job_name: j\nrelabel_configs:\n  - source_labels: [slow]\n    regex: 'yes'\n    target_label: __scrape_interval__\n    replacement: 2m\n  - source_labels: [bad]\n    regex: (.+)\n    target_label: __scrape_timeout__\n");
        let r = resolve(
            &j,
            &[
                group("0", &["a:1"], &[("slow", "yes")]),
                group("1", &["b:1"], &[("bad", "5m")]),
                group("2", &["c:1"], &[("bad", "1.5s")]),
            ],
        );
        assert_eq!(r.active.len(), 1);
        assert_eq!(r.active[0].scrape_interval, Duration::from_secs(120));
        assert_eq!(r.active[0].scrape_timeout, Duration::from_secs(10));
        assert_eq!(
            r.errors,
            vec![
                "instance 0 in group 1: scrape timeout cannot be greater than scrape interval (\"5m\" > \"1m\")".to_string(),
                "instance 0 in group 2: error parsing scrape timeout: unknown unit \".\" in duration \"1.5s\"".to_string(),
            ]
        );
    }

    #[test]
    fn reserved_labels_are_removed_and_meta_labels_never_reach_the_url() {
        let j = job(
            "job_name: j\nrelabel_configs:\n  - source_labels: [__meta_x]\n    target_label: x\n",
        );
        let mut g = group("0", &[], &[]);
        g.targets.push(l(&[
            ("__address__", "h:1"),
            ("__meta_x", "m"),
            ("__tmp", "t"),
        ]));
        let r = resolve(&j, &[g]);
        assert_eq!(
            r.active[0].labels,
            l(&[("instance", "h:1"), ("job", "j"), ("x", "m")])
        );
        assert_eq!(r.active[0].discovered_labels.get("__meta_x"), Some("m"));
    }

    #[test]
    fn duplicates_merge_and_active_is_sorted_by_key() {
        let j = job("job_name: j\n");
        let r = resolve(&j, &[group("0", &["c:1", "a:1", "b:1", "a:1"], &[])]);
        assert_eq!(r.active.len(), 3);
        let keys: Vec<_> = r.active.iter().map(|t| t.key.clone()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn duplicates_after_relabeling_are_one_target_with_the_last_discovered_labels() {
        // What Prometheus 3.16 shows for this job: one target, labels {a, instance, job},
        // discovered labels those of the third (with b="x").
        let j = job("job_name: j\nrelabel_configs:\n  - regex: b\n    action: labeldrop\n");
        let r = resolve(
            &j,
            &[
                group("0", &["h:1", "h:1"], &[("a", "1")]),
                group("1", &["h:1"], &[("a", "1"), ("b", "x")]),
            ],
        );
        assert!(r.errors.is_empty() && r.dropped.is_empty(), "{r:?}");
        assert_eq!(r.active.len(), 1, "{r:?}");
        let t = &r.active[0];
        assert_eq!(
            t.labels,
            l(&[("a", "1"), ("instance", "h:1"), ("job", "j")])
        );
        assert_eq!(t.discovered_labels.get("b"), Some("x"));
        assert_eq!(t.url, "http://h:1/metrics");
        // A different URL is a different target, even with the same labels.
        let j = job(
            "job_name: j\nrelabel_configs:\n  - target_label: instance\n    replacement: same\n",
        );
        let r = resolve(&j, &[group("0", &["h:1", "h:2"], &[])]);
        assert_eq!(r.active.len(), 2);
    }

    #[test]
    fn target_limit_is_worded_as_prometheus() {
        let j = job("job_name: j\ntarget_limit: 2\n");
        let r = resolve(&j, &[group("0", &["a:1", "b:1"], &[])]);
        assert_eq!(r.limit_error, None);
        let r = resolve(&j, &[group("0", &["a:1", "b:1", "c:1"], &[])]);
        assert_eq!(
            r.limit_error.as_deref(),
            Some("target_limit exceeded (number of targets: 3, limit: 2)")
        );
    }

    #[test]
    fn url_escaping_as_go_net_url() {
        let mut j = job("job_name: j\nmetrics_path: '/a b/ü?x'\n");
        j.params = BTreeMap::from([("q".to_string(), vec!["ä/~".to_string()])]);
        let r = resolve(&j, &[group("0", &["h:1"], &[])]);
        assert_eq!(r.active[0].url, "http://h:1/a%20b/%C3%BC%3Fx?q=%C3%A4%2F~");
        let j = job("job_name: j\nmetrics_path: 'relative'\n");
        let r = resolve(&j, &[group("0", &["h:1"], &[])]);
        assert_eq!(r.active[0].url, "http://h:1/relative");
    }

    #[test]
    fn split_host_port_as_go() {
        assert_eq!(split_host_port("h:1"), Some(("h", "1")));
        assert_eq!(split_host_port("[::1]:2"), Some(("::1", "2")));
        assert_eq!(split_host_port("h"), None);
        assert_eq!(split_host_port("::1"), None);
        assert_eq!(split_host_port("[::1]"), None);
        assert_eq!(split_host_port("a]:1"), None);
    }
}
