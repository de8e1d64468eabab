//! Loading whole documents: defaults, Go YAML typing, every error with its full path.

use std::time::Duration;

use super::*;

fn load(text: &str) -> (Vec<JobConfig>, Vec<ConfigError>) {
    load_jobs(text, "jobs.yml", &GlobalConfig::default())
}

fn one(text: &str) -> JobConfig {
    let (mut jobs, errors) = load(text);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(jobs.len(), 1);
    jobs.remove(0)
}

fn errors(text: &str) -> Vec<ConfigError> {
    load(text).1
}

fn at(e: &ConfigError) -> (usize, usize) {
    (e.position.line, e.position.column)
}

#[test]
fn prometheus_defaults() {
    let j = one("job_name: a\n");
    assert_eq!(j.scrape_interval, Duration::from_secs(60));
    assert_eq!(j.scrape_timeout, Duration::from_secs(10));
    assert_eq!(j.metrics_path, "/metrics");
    assert_eq!(j.scheme, Scheme::Http);
    assert!(!j.honor_labels && j.honor_timestamps && j.enable_compression);
    assert_eq!(
        (j.sample_limit, j.target_limit, j.body_size_limit_bytes),
        (0, 0, 0)
    );
    assert!(j.basic_auth.is_none() && j.authorization.is_none());
}

#[test]
fn timeout_defaults_to_the_interval_when_the_interval_is_shorter() {
    // Prometheus: an unset timeout is min(global timeout, job interval).
    let j = one("job_name: a\nscrape_interval: 5s\n");
    assert_eq!(j.scrape_timeout, Duration::from_secs(5));
    let (jobs, errs) = load("global:\n  scrape_interval: 3s\nscrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_interval: 20s\n");
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(
        (jobs[0].scrape_interval, jobs[0].scrape_timeout),
        (Duration::from_secs(3), Duration::from_secs(3))
    );
    // The global timeout was derived as 3s; job b inherits it.
    assert_eq!(
        (jobs[1].scrape_interval, jobs[1].scrape_timeout),
        (Duration::from_secs(20), Duration::from_secs(3))
    );
    let (jobs, _) = load("global:\n  scrape_timeout: 30s\n  scrape_interval: 2m\nscrape_configs:\n  - job_name: a\n    scrape_interval: 15s\n");
    assert_eq!(jobs[0].scrape_timeout, Duration::from_secs(15));
}

#[test]
fn timeout_greater_than_interval_is_an_error_at_the_timeout() {
    let e = errors("job_name: a\nscrape_interval: 10s\nscrape_timeout: 11s\n");
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].job.as_str(), e[0].field.as_str(), at(&e[0])),
        ("a", "scrape_timeout", (3, 17))
    );
    assert_eq!(
        e[0].message,
        "scrape timeout greater than scrape interval for scrape config with job name \"a\""
    );
    let e = errors("global:\n  scrape_interval: 5s\n  scrape_timeout: 6s\nscrape_configs: []\n");
    assert_eq!(
        (e[0].field.as_str(), e[0].message.as_str()),
        (
            "global.scrape_timeout",
            "global scrape timeout greater than scrape interval"
        )
    );
}

#[test]
fn body_size_limit_is_base_2() {
    assert_eq!(
        one("job_name: a\nbody_size_limit: 10MB\n").body_size_limit_bytes,
        10_485_760
    );
    let e = errors("job_name: a\nbody_size_limit: 100\n");
    assert_eq!(
        (e[0].field.as_str(), at(&e[0])),
        ("body_size_limit", (2, 18))
    );
}

#[test]
fn merge_keys_and_yaml_1_1_booleans_as_go_yaml() {
    let text = "\
scrape_configs:
  - &base
    job_name: a
    scrape_interval: 30s
    honor_labels: yes
    enable_compression: off
  - <<: *base
    job_name: b
    honor_labels: no
";
    let (jobs, errs) = load(text);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(jobs.len(), 2);
    assert!(jobs[0].honor_labels && !jobs[0].enable_compression);
    assert_eq!(jobs[1].job_name, "b");
    assert_eq!(jobs[1].scrape_interval, Duration::from_secs(30));
    // The explicit key wins over the merged one.
    assert!(!jobs[1].honor_labels);
    assert!(!jobs[1].enable_compression);
    // A quoted "yes" is a string, not a bool, as in Go.
    let e = errors("job_name: a\nhonor_labels: 'yes'\n");
    assert_eq!(e[0].message, "cannot unmarshal !!str `yes` into bool");
    // Go reads `y` as a bool in a bool field, and keeps its text in a string field.
    let j = one(
        "job_name: a\nhonor_labels: y\nstatic_configs:\n  - targets: ['h:1']\n    labels: {y: n}\n",
    );
    assert!(j.honor_labels);
    assert_eq!(j.static_configs[0].labels.get("y"), Some("n"));
}

#[test]
fn integers_as_go_yaml() {
    assert_eq!(one("job_name: a\nsample_limit: 0x10\n").sample_limit, 16);
    assert_eq!(one("job_name: a\nsample_limit: 010\n").sample_limit, 8);
    assert_eq!(one("job_name: a\nsample_limit: 1_000\n").sample_limit, 1000);
    let e = errors("job_name: a\nsample_limit: -1\n");
    assert_eq!(e[0].message, "cannot unmarshal !!int `-1` into uint");
    let e = errors("job_name: a\nlabel_limit: abc\n");
    assert_eq!(
        (e[0].field.as_str(), e[0].message.as_str(), at(&e[0])),
        (
            "label_limit",
            "cannot unmarshal !!str `abc` into uint",
            (2, 14)
        )
    );
    // Numbers keep their spelling in string fields.
    assert_eq!(one("job_name: 010\n").job_name, "010");
}

#[test]
fn every_field_is_read() {
    let j = one("\
job_name: full
scrape_interval: 30s
scrape_timeout: 20s
metrics_path: /m
scheme: https
params: {module: [a, b]}
honor_labels: true
honor_timestamps: false
enable_compression: false
sample_limit: 1
label_limit: 2
label_name_length_limit: 3
label_value_length_limit: 4
body_size_limit: 1KB
target_limit: 5
basic_auth: {username: u, password_file: /p}
tls_config: {ca_file: /ca, cert_file: /c, key_file: /k, server_name: s, insecure_skip_verify: true}
metric_relabel_configs:
  - source_labels: [__name__]
    regex: go_.*
    action: drop
dns_sd_configs:
  - names: [_x._tcp.example]
  - names: [a.example]
    type: a
    port: 9100
    refresh_interval: 1m
consul_sd_configs:
  - services: [web]
file_sd_configs:
  - files: [/etc/targets/*.json]
");
    assert_eq!(
        (j.scrape_interval, j.scrape_timeout),
        (Duration::from_secs(30), Duration::from_secs(20))
    );
    assert_eq!((j.metrics_path.as_str(), j.scheme), ("/m", Scheme::Https));
    assert_eq!(j.params["module"], vec!["a".to_string(), "b".to_string()]);
    assert!(j.honor_labels && !j.honor_timestamps && !j.enable_compression);
    assert_eq!(
        (
            j.sample_limit,
            j.label_limit,
            j.label_name_length_limit,
            j.label_value_length_limit,
            j.body_size_limit_bytes,
            j.target_limit
        ),
        (1, 2, 3, 4, 1024, 5)
    );
    assert_eq!(
        j.basic_auth,
        Some(BasicAuth {
            username: "u".into(),
            password: None,
            password_file: Some("/p".into())
        })
    );
    assert_eq!(
        j.tls_config,
        TlsConfig {
            ca_file: Some("/ca".into()),
            cert_file: Some("/c".into()),
            key_file: Some("/k".into()),
            server_name: Some("s".into()),
            insecure_skip_verify: true,
            ..TlsConfig::default()
        }
    );
    assert_eq!(
        j.metric_relabel_configs[0].action,
        crate::relabel::Action::Drop
    );
    assert_eq!(j.sd_configs.len(), 4);
    match &j.sd_configs[0] {
        SdConfig::Dns(d) => {
            assert_eq!(
                (d.record_type, d.port, d.refresh_interval),
                (DnsRecordType::Srv, None, Duration::from_secs(30))
            );
        }
        other => panic!("{other:?}"),
    }
    match &j.sd_configs[1] {
        SdConfig::Dns(d) => assert_eq!(
            (d.record_type, d.port, d.refresh_interval),
            (DnsRecordType::A, Some(9100), Duration::from_secs(60))
        ),
        other => panic!("{other:?}"),
    }
    match &j.sd_configs[2] {
        SdConfig::Consul(c) => {
            assert_eq!(c.server, "localhost:8500");
            assert_eq!(c.scheme, Scheme::Http);
            assert_eq!(c.tag_separator, ",");
            assert!(c.allow_stale);
            assert_eq!(c.refresh_interval, Duration::from_secs(30));
            assert_eq!(c.services, vec!["web".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    match &j.sd_configs[3] {
        SdConfig::File(f) => assert_eq!(f.refresh_interval, Duration::from_secs(300)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn legacy_bearer_token_becomes_authorization() {
    let j = one("job_name: a\nbearer_token: t0k3n\n");
    let auth = j.authorization.unwrap();
    assert_eq!(
        (
            auth.kind.as_str(),
            auth.credentials.as_ref().map(Secret::expose)
        ),
        ("Bearer", Some("t0k3n"))
    );
    let j = one("job_name: a\nbearer_token_file: /t\n");
    assert_eq!(
        j.authorization.unwrap().credentials_file.as_deref(),
        Some("/t")
    );
    let j = one("job_name: a\nauthorization: {credentials: c}\n");
    assert_eq!(j.authorization.unwrap().kind, "Bearer");
    let e = errors("job_name: a\nbearer_token: t\nbearer_token_file: /t\n");
    assert_eq!(
        e[0].message,
        "at most one of bearer_token & bearer_token_file must be configured"
    );
    let e = errors("job_name: a\nbearer_token: t\nauthorization: {credentials: c}\n");
    assert_eq!(
        e[0].message,
        "authorization is not compatible with bearer_token & bearer_token_file"
    );
    let e = errors("job_name: a\nbasic_auth: {username: u}\nauthorization: {credentials: c}\n");
    assert_eq!(
        e[0].message,
        "at most one of basic_auth, oauth2 & authorization must be configured"
    );
    let e = errors("job_name: a\nauthorization: {type: Basic, credentials: c}\n");
    assert_eq!(
        (e[0].field.as_str(), at(&e[0])),
        ("authorization.type", (2, 23))
    );
}

#[test]
fn secrets_never_print() {
    let text = "job_name: a\nbasic_auth: {username: u, password: hunter2}\nconsul_sd_configs: [{token: tok3n}]\n";
    let j = one(text);
    let debug = format!("{j:?}");
    let json = serde_json::to_string(&j).unwrap();
    for shown in [debug, json] {
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok3n"),
            "{shown}"
        );
        assert!(shown.contains("<secret>"));
    }
    // A secret of the wrong type: the error does not echo it.
    let e = errors("job_name: a\nbearer_token: [hunter2]\n");
    assert!(!e[0].to_string().contains("hunter2"), "{}", e[0]);
}

#[test]
fn errors_name_job_field_and_position() {
    let text = "\
job_name: web
scrape_interval: 1.5s
relabel_configs:
  - source_labels: [a]
    target_label: b
  - source_labels: [a]
    regex: '(unclosed'
    target_label: c
static_configs:
  - targets: ['h:1']
    labels:
      \"\": x
sample_limt: 5
";
    let e = errors(text);
    let got: Vec<_> = e
        .iter()
        .map(|e| (e.job.as_str(), e.field.as_str(), at(e)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("web", "scrape_interval", (2, 18)),
            ("web", "relabel_configs[1].regex", (7, 12)),
            ("web", "static_configs[0].labels.", (12, 7)),
            ("web", "sample_limt", (13, 1)),
        ]
    );
    assert_eq!(
        e[0].to_string(),
        "jobs.yml:2:18: job \"web\": scrape_interval: unknown unit \".\" in duration \"1.5s\""
    );
    assert_eq!(e[1].message, "invalid regex \"(unclosed\": unclosed group");
    assert_eq!(e[2].message, "\"\" is not a valid label name");
    assert_eq!(e[3].message, "unknown field \"sample_limt\"");
}

#[test]
fn one_bad_job_hides_no_other() {
    let text = "\
scrape_configs:
  - job_name: a
    scrape_interval: nope
  - job_name: b
  - job_name: c
    honor_labels: [x]
  - job_name: b
  - scrape_interval: 1m
  - ~
  - job_name: d
";
    let (jobs, e) = load(text);
    let names: Vec<_> = jobs.iter().map(|j| j.job_name.as_str()).collect();
    assert_eq!(names, vec!["b", "d"]);
    let got: Vec<_> = e
        .iter()
        .map(|e| (e.job.as_str(), e.field.as_str(), at(e)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", "scrape_configs[0].scrape_interval", (3, 22)),
            ("c", "scrape_configs[2].honor_labels", (6, 19)),
            ("b", "scrape_configs[3].job_name", (7, 15)),
            ("", "scrape_configs[4].job_name", (8, 5)),
            ("", "scrape_configs[5]", (9, 5)),
        ]
    );
    assert_eq!(
        e[2].message,
        "found multiple scrape configs with job name \"b\" (first at line 4)"
    );
    assert_eq!(e[3].message, "job_name is empty");
    assert_eq!(e[4].message, "empty or null scrape config section");
}

#[test]
fn relabel_errors_point_at_the_field() {
    let e = errors("job_name: a\nrelabel_configs:\n  - action: hashmod\n    target_label: t\n");
    assert_eq!(
        (e[0].field.as_str(), at(&e[0])),
        ("relabel_configs[0].modulus", (3, 5))
    );
    let e = errors(
        "job_name: a\nrelabel_configs:\n  - action: labeldrop\n    regex: x\n    target_label: t\n",
    );
    assert_eq!(
        (e[0].field.as_str(), at(&e[0])),
        ("relabel_configs[0].target_label", (5, 19))
    );
    let e =
        errors("job_name: a\nrelabel_configs:\n  - source_labels: [ok, \"\"]\n    action: keep\n");
    assert_eq!(
        (e[0].field.as_str(), at(&e[0])),
        ("relabel_configs[0].source_labels[1]", (3, 25))
    );
    let e = errors("job_name: a\nmetric_relabel_configs:\n  - action: explode\n");
    assert_eq!(
        (e[0].field.as_str(), e[0].message.as_str()),
        (
            "metric_relabel_configs[0].action",
            "unknown relabel action \"explode\""
        )
    );
}

#[test]
fn static_configs_as_prometheus() {
    let j = one("job_name: a\nstatic_configs:\n  - targets: ['h:1', 'h:2']\n    labels: {env: prod}\n  - targets: ['h:3']\n");
    assert_eq!(j.static_configs.len(), 2);
    assert_eq!(j.static_configs[0].source, "0");
    assert_eq!(j.static_configs[1].source, "1");
    assert_eq!(
        j.static_configs[0].targets[1].get("__address__"),
        Some("h:2")
    );
    assert_eq!(j.static_configs[0].labels.get("env"), Some("prod"));
    // A URL as a target is rejected unless relabeling may rewrite it.
    let e = errors("job_name: a\nstatic_configs:\n  - targets: ['http://h:1/metrics']\n");
    assert_eq!(
        (e[0].field.as_str(), e[0].message.as_str()),
        (
            "static_configs[0].targets[0]",
            "\"http://h:1/metrics\" is not a valid hostname"
        )
    );
    let j = one("job_name: a\nstatic_configs:\n  - targets: ['http://h:1/x']\nrelabel_configs:\n  - target_label: __address__\n    replacement: h:1\n");
    assert_eq!(j.static_configs[0].targets.len(), 1);
}

#[test]
fn discovery_validation() {
    let e = errors("job_name: a\ndns_sd_configs:\n  - names: [x.example]\n    type: A\n");
    assert_eq!(
        (e[0].field.as_str(), e[0].message.as_str()),
        (
            "dns_sd_configs[0].port",
            "a port is required in DNS-SD configs for all record types except SRV"
        )
    );
    let e = errors("job_name: a\ndns_sd_configs:\n  - names: []\n");
    assert_eq!(
        e[0].message,
        "DNS-SD config must contain at least one SRV record name"
    );
    let e = errors("job_name: a\ndns_sd_configs:\n  - names: [x]\n    type: TXT\n");
    assert_eq!(e[0].message, "invalid DNS-SD records type TXT");
    let e = errors("job_name: a\nconsul_sd_configs:\n  - server: ' '\n");
    assert_eq!(
        e[0].message,
        "consul SD configuration requires a server address"
    );
    let e = errors("job_name: a\nfile_sd_configs:\n  - files: [targets.txt]\n");
    assert_eq!(
        e[0].message,
        "path name \"targets.txt\" is not valid for file discovery"
    );
    let e = errors("job_name: a\nfile_sd_configs:\n  - refresh_interval: 1m\n");
    assert_eq!(
        e[0].message,
        "file service discovery config must contain at least one path name"
    );
    let e = errors("job_name: a\nkubernetes_sd_configs: []\nscrape_protocols: []\n");
    assert_eq!(
        e[0].message,
        "field \"kubernetes_sd_configs\" is not supported by scrapepool"
    );
    assert_eq!(
        e[1].message,
        "scrape_protocols cannot be empty for scrape config with job name \"a\""
    );
    let e = errors("job_name: a\nconsul_sd_configs: [{proxy_url: 'http://p:1'}]\n");
    assert_eq!(
        e[0].message,
        "field \"proxy_url\" is not supported by scrapepool"
    );
}

#[test]
fn yaml_errors_have_a_position() {
    let e = errors("job_name: a\nstatic_configs:\n  - targets: ['h:1'\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].position.line >= 3, "{:?}", e[0]);
    assert!(e[0].message.starts_with("invalid YAML"), "{}", e[0].message);
    let e = errors("job_name: a\nsample_limit: 1\nsample_limit: 2\n");
    assert_eq!((e[0].field.as_str(), at(&e[0])), ("sample_limit", (3, 1)));
    assert!(e[0].message.contains("already set"), "{}", e[0].message);
}

#[test]
fn wrong_shapes_are_type_errors() {
    let e = errors("job_name: a\nstatic_configs: {targets: []}\n");
    assert_eq!(
        (e[0].field.as_str(), e[0].message.as_str()),
        ("static_configs", "cannot unmarshal !!map into a list")
    );
    let e = errors("job_name: a\nparams: {module: http_2xx}\n");
    assert_eq!(
        (e[0].field.as_str(), e[0].message.as_str()),
        (
            "params.module",
            "cannot unmarshal !!str `http_2xx` into a list"
        )
    );
    let e = errors("job_name: [a]\n");
    assert_eq!(e[0].field, "job_name");
    let e = errors("- a\n- b\n");
    assert_eq!(e.len(), 1);
}

#[test]
fn load_job_checks_the_name() {
    assert!(load_job("job_name: a\n", "/jobs/a", "a").is_ok());
    let e = load_job("job_name: b\n", "/jobs/a", "a").unwrap_err();
    assert_eq!(e[0].field, "job_name");
    let e = load_job("job_name: a\nscrape_interval: x\n", "/jobs/a", "a").unwrap_err();
    assert_eq!((e[0].origin.as_str(), e[0].job.as_str()), ("/jobs/a", "a"));
}

#[test]
fn no_prefix_of_a_real_file_panics() {
    // Every truncation of the fixtures: an editor saving half a file, a torn znode.
    for fixture in [
        include_str!("../../../testdata/jobs/good.yml"),
        include_str!("../../../testdata/jobs/bad.yml"),
    ] {
        // Every fifth character keeps the test quick in debug builds.
        let mut ends: Vec<usize> = fixture.char_indices().map(|(i, _)| i).step_by(5).collect();
        ends.push(fixture.len());
        for end in ends {
            let (jobs, errs) = load(&fixture[..end]);
            for e in &errs {
                assert!(
                    e.position.line >= 1 && e.position.column >= 1,
                    "{e:?} at {end}"
                );
            }
            assert!(jobs.len() <= 4);
        }
    }
}

#[test]
fn whole_prometheus_files_are_accepted() {
    let text = "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\nrule_files: [a.yml]\nalerting: {}\nscrape_configs:\n  - job_name: p\n";
    let j = one(text);
    assert_eq!(j.scrape_interval, Duration::from_secs(15));
    let e = errors("scrape_configs: []\nbogus: 1\n");
    assert_eq!(
        (e[0].field.as_str(), e[0].message.as_str()),
        ("bogus", "unknown field \"bogus\"")
    );
}

#[test]
fn nested_errors_carry_their_full_path() {
    let text = "\
scrape_configs:
  - job_name: a
  - job_name: b
    consul_sd_configs:
      - services: [web]
      - tls_config:
          ca_file: [x]
          cert_file: /c
    basic_auth:
      username: u
      password_file: [p]
    relabel_configs:
      - action: keep
        regex: x
      - regex: '(oops'
    static_configs:
      - targets: ['h:1']
      - targets: ['h:2']
        labels:
          \"\": x
          env: [prod]
";
    let e = errors(text);
    let got: Vec<_> = e
        .iter()
        .map(|e| (e.job.as_str(), e.field.as_str(), at(e), e.message.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "b",
                "scrape_configs[1].consul_sd_configs[1].tls_config.key_file",
                (7, 11),
                "exactly one of key or key_file must be configured when a client certificate is configured"
            ),
            (
                "b",
                "scrape_configs[1].consul_sd_configs[1].tls_config.ca_file",
                (7, 20),
                "cannot unmarshal !!seq into string"
            ),
            (
                "b",
                "scrape_configs[1].basic_auth.password_file",
                (11, 22),
                "cannot unmarshal !!seq into string"
            ),
            (
                "b",
                "scrape_configs[1].relabel_configs[1].regex",
                (15, 16),
                "invalid regex \"(oops\": unclosed group"
            ),
            (
                "b",
                "scrape_configs[1].static_configs[1].labels.",
                (20, 11),
                "\"\" is not a valid label name"
            ),
            (
                "b",
                "scrape_configs[1].static_configs[1].labels.env",
                (21, 16),
                "cannot unmarshal !!seq into string"
            ),
        ]
    );
    // A job that stands alone (a znode) is the root: its paths start at its own keys.
    let e = errors("job_name: a\nconsul_sd_configs:\n  - tls_config: {insecure_skip_verify: 3}\n");
    assert_eq!(
        (e[0].field.as_str(), e[0].message.as_str()),
        (
            "consul_sd_configs[0].tls_config.insecure_skip_verify",
            "cannot unmarshal !!int `3` into bool"
        )
    );
    assert_eq!(
        e[0].to_string(),
        "jobs.yml:3:40: job \"a\": consul_sd_configs[0].tls_config.insecure_skip_verify: cannot unmarshal !!int `3` into bool"
    );
}

#[test]
fn unknown_keys_are_named_by_their_full_path() {
    let e = errors("scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: [a.json]\n        refresh: 1m\n    dns_sd_configs:\n      - names: [x]\n        oauth2: {}\n");
    let got: Vec<_> = e
        .iter()
        .map(|e| (e.field.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "scrape_configs[0].file_sd_configs[0].refresh",
                "unknown field \"refresh\""
            ),
            (
                "scrape_configs[0].dns_sd_configs[0].oauth2",
                "unknown field \"oauth2\""
            ),
        ]
    );
}

#[test]
fn secrets_display_as_prometheus_shows_them() {
    let secret = Secret("hunter2".into());
    assert_eq!(
        (format!("{secret}"), format!("{secret:?}")),
        ("<secret>".to_string(), "<secret>".to_string())
    );
    assert_eq!(secret.expose(), "hunter2");
}

/// The one error of a job body: its field, position and message.
fn only_error(text: &str) -> (String, (usize, usize), String) {
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    (e[0].field.clone(), at(&e[0]), e[0].message.clone())
}

#[test]
fn http_client_defaults_are_prometheus_s() {
    let j = one("job_name: a\n");
    assert!(j.http_client.follow_redirects && j.http_client.enable_http2);
    assert_eq!(j.http_client, HttpClientOptions::default());
    assert!(!j.http_client.proxy.is_set() && j.http_client.oauth2.is_none());
    assert!(j.http_client.http_headers.is_empty());
    assert_eq!(
        (j.tls_config.min_version, j.tls_config.max_version),
        (None, None)
    );
    let j = one("job_name: a\nfollow_redirects: false\nenable_http2: no\n");
    assert!(!j.http_client.follow_redirects && !j.http_client.enable_http2);
    assert_eq!(
        only_error("job_name: a\nfollow_redirects: maybe\n"),
        (
            "follow_redirects".into(),
            (2, 19),
            "cannot unmarshal !!str `maybe` into bool".into()
        )
    );
    assert_eq!(
        only_error("job_name: a\nenable_http2: 3\n").2,
        "cannot unmarshal !!int `3` into bool"
    );
}

#[test]
fn tls_inline_pem_and_versions() {
    let j = one("job_name: a\ntls_config: {ca: CA, cert: C, key: K, min_version: TLS12, max_version: TLS13}\n");
    let t = &j.tls_config;
    assert_eq!(
        (t.ca.as_deref(), t.cert.as_deref()),
        (Some("CA"), Some("C"))
    );
    assert_eq!(t.key.as_ref().map(|k| k.expose()), Some("K"));
    assert_eq!(
        (t.min_version, t.max_version),
        (Some(TlsVersion::Tls12), Some(TlsVersion::Tls13))
    );
    assert!(!format!("{j:?}").contains("\"K\""));
    let cases = [
        ("{ca: x, ca_file: /a}", "tls_config.ca_file", "at most one of ca, ca_file & ca_ref must be configured"),
        ("{cert: x, cert_file: /a, key_file: /k}", "tls_config.cert_file", "at most one of cert, cert_file & cert_ref must be configured"),
        ("{key: x, key_file: /a, cert_file: /c}", "tls_config.key_file", "at most one of key and key_file must be configured"),
        ("{cert: x}", "tls_config.key_file", "exactly one of key or key_file must be configured when a client certificate is configured"),
        ("{key: x}", "tls_config.cert_file", "exactly one of cert or cert_file must be configured when a client key is configured"),
        ("{min_version: TLS14}", "tls_config.min_version", "unknown TLS version: TLS14"),
        ("{min_version: TLS13, max_version: TLS12}", "tls_config.max_version", "tls_config.max_version must be greater than or equal to tls_config.min_version if both are specified"),
        ("{ca_ref: x}", "tls_config.ca_ref", "field \"ca_ref\" is not supported by scrapepool"),
    ];
    for (tls, field, message) in cases {
        let (f, _, m) = only_error(&format!("job_name: a\ntls_config: {tls}\n"));
        assert_eq!((f.as_str(), m.as_str()), (field, message), "{tls}");
    }
    assert_eq!(
        at(&errors("job_name: a\ntls_config: {max_version: TLS1}\n")[0]),
        (2, 27)
    );
}

#[test]
fn proxy_keys_and_their_rules() {
    let j = one("job_name: a\nproxy_url: http://proxy:3128\nno_proxy: internal,10.0.0.0/8\nproxy_connect_header: {Proxy-Authorization: [Basic abc, second]}\n");
    let p = &j.http_client.proxy;
    assert_eq!(p.proxy_url.as_deref(), Some("http://proxy:3128"));
    assert_eq!(p.no_proxy.as_deref(), Some("internal,10.0.0.0/8"));
    let h = &p.proxy_connect_header["Proxy-Authorization"];
    assert_eq!(
        h.iter().map(|s| s.expose()).collect::<Vec<_>>(),
        ["Basic abc", "second"]
    );
    let shown = format!("{j:?}") + &serde_json::to_string(&j).unwrap();
    assert!(!shown.contains("Basic abc"), "{shown}");
    let j = one("job_name: a\nproxy_from_environment: true\n");
    assert!(j.http_client.proxy.proxy_from_environment && j.http_client.proxy.is_set());
    let cases = [
        ("proxy_url: '://x'", "proxy_url", "parse \"://x\": missing protocol scheme"),
        ("proxy_url: 'http://a:b'", "proxy_url", "parse \"http://a:b\": invalid port \":b\" after host"),
        ("proxy_url: 'socks5://a:1'", "proxy_url", "proxy_url scheme \"socks5\" is not supported by scrapepool (only http)"),
        ("no_proxy: a", "no_proxy", "if no_proxy is configured, proxy_url must also be configured"),
        ("proxy_from_environment: true\nproxy_url: http://a:1", "proxy_url", "if proxy_from_environment is configured, proxy_url must not be configured"),
        ("proxy_from_environment: true\nno_proxy: a", "no_proxy", "if proxy_from_environment is configured, no_proxy must not be configured"),
        ("proxy_connect_header: {A: [b]}", "proxy_connect_header", "if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured"),
    ];
    for (body, field, message) in cases {
        let (f, _, m) = only_error(&format!("job_name: a\n{body}\n"));
        assert_eq!((f.as_str(), m.as_str()), (field, message), "{body}");
    }
    assert_eq!(only_error("job_name: a\nno_proxy: a\n").1, (2, 11));
}

#[test]
fn http_headers_values_secrets_files() {
    let j = one("job_name: a\nhttp_headers:\n  X-Tenant: {values: [a, b], secrets: [s3cr3t-h], files: [/h]}\n  cookie: {values: [c=1]}\n");
    let h = &j.http_client.http_headers;
    assert_eq!(h["X-Tenant"].values, ["a", "b"]);
    assert_eq!(h["X-Tenant"].secrets[0].expose(), "s3cr3t-h");
    assert_eq!(h["X-Tenant"].files, ["/h"]);
    assert_eq!(h["cookie"].values, ["c=1"]);
    let shown = format!("{j:?}") + &serde_json::to_string(&j).unwrap();
    assert!(!shown.contains("s3cr3t-h"), "{shown}");
    assert_eq!(
        only_error("job_name: a\nhttp_headers: {Authorization: {values: [a]}}\n"),
        (
            "http_headers.Authorization".into(),
            (2, 16),
            "setting header \"Authorization\" is not allowed".into()
        )
    );
    assert_eq!(
        only_error("job_name: a\nhttp_headers: {user-agent: {values: [a]}}\n").2,
        "setting header \"User-Agent\" is not allowed"
    );
    assert_eq!(
        only_error(
            "job_name: a\nhttp_headers: {x-prometheus-scrape-timeout-seconds: {values: [1]}}\n"
        )
        .2,
        "setting header \"X-Prometheus-Scrape-Timeout-Seconds\" is not allowed"
    );
    assert_eq!(
        only_error("job_name: a\nhttp_headers: {'a b': {values: [a]}}\n").2,
        "net/http: invalid header field name \"a b\""
    );
    assert_eq!(
        only_error("job_name: a\nhttp_headers: {X: {bogus: [a]}}\n"),
        (
            "http_headers.X.bogus".into(),
            (2, 20),
            "unknown field \"bogus\"".into()
        )
    );
    assert_eq!(
        only_error("job_name: a\nhttp_headers: {X: {secrets: [[hunter2]]}}\n").2,
        "cannot unmarshal !!seq into a secret string"
    );
}

#[test]
fn oauth2_client_credentials_and_their_rules() {
    let j = one("job_name: a
oauth2:
  client_id: id
  client_secret: s3cr3t-o
  scopes: [read, write]
  token_url: https://auth/token
  endpoint_params: {audience: x}
  tls_config: {insecure_skip_verify: true}
  proxy_url: http://p:1
");
    let o = j.http_client.oauth2.clone().unwrap();
    assert_eq!(
        (o.client_id.as_str(), o.token_url.as_str()),
        ("id", "https://auth/token")
    );
    assert_eq!(
        o.client_secret.as_ref().map(|s| s.expose()),
        Some("s3cr3t-o")
    );
    assert_eq!(o.scopes, ["read", "write"]);
    assert_eq!(o.endpoint_params["audience"], "x");
    assert!(o.tls_config.insecure_skip_verify);
    assert_eq!(o.proxy.proxy_url.as_deref(), Some("http://p:1"));
    assert!(
        !j.http_client.proxy.is_set(),
        "the token endpoint's proxy only"
    );
    let shown = format!("{j:?}") + &serde_json::to_string(&j).unwrap();
    assert!(!shown.contains("s3cr3t-o"), "{shown}");
    let o = one("job_name: a\noauth2: {client_id: i, client_secret_file: /f, token_url: http://t, grant_type: client_credentials}\n")
        .http_client
        .oauth2
        .unwrap();
    assert_eq!(o.client_secret_file.as_deref(), Some("/f"));
    let ok = "client_id: a, token_url: http://a";
    let cases = [
        ("oauth2: {token_url: http://a}".to_string(), "oauth2.client_id", "oauth2 client_id must be configured"),
        ("oauth2: {client_id: a}".into(), "oauth2.token_url", "oauth2 token_url must be configured"),
        (format!("oauth2: {{{ok}, client_secret: s, client_secret_file: /f}}"), "oauth2.client_secret_file", "at most one of oauth2 client_secret, client_secret_file & client_secret_ref must be configured using grant-type=client_credentials"),
        (format!("oauth2: {{{ok}}}\nbasic_auth: {{username: u}}"), "oauth2", "at most one of basic_auth, oauth2 & authorization must be configured"),
        (format!("oauth2: {{{ok}}}\nauthorization: {{credentials: c}}"), "authorization", "at most one of basic_auth, oauth2 & authorization must be configured"),
        (format!("oauth2: {{{ok}}}\nbearer_token: t"), "oauth2", "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"),
        (format!("oauth2: {{{ok}, no_proxy: x}}"), "oauth2.no_proxy", "if no_proxy is configured, proxy_url must also be configured"),
        (format!("oauth2: {{{ok}, grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer'}}"), "oauth2.grant_type", "grant_type \"urn:ietf:params:oauth:grant-type:jwt-bearer\" is not supported by scrapepool"),
        (format!("oauth2: {{{ok}, audience: x}}"), "oauth2.audience", "field \"audience\" is not supported by scrapepool"),
        (format!("oauth2: {{{ok}, tls_config: {{min_version: x}}}}"), "oauth2.tls_config.min_version", "unknown TLS version: x"),
    ];
    for (body, field, message) in cases {
        let (f, _, m) = only_error(&format!("job_name: a\n{body}\n"));
        assert_eq!((f.as_str(), m.as_str()), (field, message), "{body}");
    }
}

#[test]
fn prometheus_3_defaults_of_the_new_keys() {
    let j = one("job_name: a\n");
    assert_eq!(j.scrape_protocols, ScrapeProtocol::DEFAULT.to_vec());
    assert_eq!(j.fallback_scrape_protocol, None);
    assert_eq!(j.metric_name_validation_scheme, NameValidationScheme::Utf8);
    assert_eq!(j.metric_name_escaping_scheme, NameEscapingScheme::AllowUtf8);
    assert!(!j.track_timestamps_staleness && !j.scrape_native_histograms);
    assert!(!j.always_scrape_classic_histograms && !j.convert_classic_histograms_to_nhcb);
    assert!(!j.extra_scrape_metrics && j.scrape_failure_log_file.is_none());
    // Classic-to-custom-bucket conversion is refused; native histograms and protobuf are not.
    let e = errors("job_name: a\nconvert_classic_histograms_to_nhcb: true\n");
    assert_eq!(
        (e[0].field.as_str(), e[0].message.as_str()),
        ("convert_classic_histograms_to_nhcb", "convert_classic_histograms_to_nhcb: true for scrape config with job name \"a\" is not supported by scrapepool: it converts no classic histograms to custom-bucket ones")
    );
    let j = one("job_name: a\nscrape_native_histograms: true\n");
    assert_eq!(j.scrape_protocols, ScrapeProtocol::PROTO_FIRST.to_vec());
    let j = one("job_name: a\nscrape_protocols: [PrometheusProto, PrometheusText0.0.4]\nfallback_scrape_protocol: PrometheusProto\n");
    assert_eq!(
        j.scrape_protocols,
        [
            ScrapeProtocol::PrometheusProto,
            ScrapeProtocol::PrometheusText0_0_4
        ]
    );
    assert_eq!(
        j.fallback_scrape_protocol,
        Some(ScrapeProtocol::PrometheusProto)
    );
    // A legacy job asks for underscores unless it says otherwise.
    let j = one("job_name: a\nmetric_name_validation_scheme: legacy\n");
    assert_eq!(
        j.metric_name_escaping_scheme,
        NameEscapingScheme::Underscores
    );
    let j = one(
        "job_name: a\nmetric_name_validation_scheme: legacy\nmetric_name_escaping_scheme: dots\n",
    );
    assert_eq!(j.metric_name_escaping_scheme, NameEscapingScheme::Dots);
}

#[test]
fn jobs_inherit_the_global_limits_and_switches() {
    let text = "\
global:
  sample_limit: 100
  body_size_limit: 1KiB
  label_limit: 3
  keep_dropped_targets: 7
  scrape_protocols: [PrometheusText0.0.4]
  scrape_native_histograms: false
  extra_scrape_metrics: true
  always_scrape_classic_histograms: true
  metric_name_validation_scheme: legacy
  metric_name_escaping_scheme: values
  scrape_failure_log_file: /var/log/f
  external_labels: {cluster: a}
scrape_configs:
  - job_name: inherits
  - job_name: own
    sample_limit: 5
    scrape_native_histograms: false
    metric_name_validation_scheme: utf8
    scrape_protocols: [OpenMetricsText1.0.0]
";
    let (jobs, errors) = load(text);
    assert!(errors.is_empty(), "{errors:#?}");
    let (a, b) = (&jobs[0], &jobs[1]);
    assert_eq!(
        (a.sample_limit, a.body_size_limit_bytes, a.label_limit),
        (100, 1024, 3)
    );
    assert_eq!(a.keep_dropped_targets, 7);
    assert_eq!(
        a.scrape_protocols,
        vec![ScrapeProtocol::PrometheusText0_0_4]
    );
    assert!(!a.scrape_native_histograms && a.extra_scrape_metrics);
    // A job inheriting the conversion to custom buckets asks for what scrapepool does not do.
    let (jobs, errors) = load(
        "global:\n  convert_classic_histograms_to_nhcb: true\nscrape_configs:\n  - job_name: n\n",
    );
    assert!(jobs.is_empty());
    assert!(
        errors[0].message.starts_with(
            "convert_classic_histograms_to_nhcb: true for scrape config with job name \"n\" is not supported by scrapepool"
        ),
        "{errors:#?}"
    );
    // Native histograms are inherited, and put protobuf first.
    let (jobs, errors) =
        load("global:\n  scrape_native_histograms: true\nscrape_configs:\n  - job_name: n\n");
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(jobs[0].scrape_native_histograms);
    assert_eq!(jobs[0].scrape_protocols[0], ScrapeProtocol::PrometheusProto);
    assert!(a.always_scrape_classic_histograms);
    assert_eq!(
        a.metric_name_validation_scheme,
        NameValidationScheme::Legacy
    );
    assert_eq!(a.metric_name_escaping_scheme, NameEscapingScheme::Values);
    assert_eq!(a.scrape_failure_log_file.as_deref(), Some("/var/log/f"));
    assert_eq!(b.sample_limit, 5);
    assert!(!b.scrape_native_histograms);
    assert_eq!(
        b.scrape_protocols,
        vec![ScrapeProtocol::OpenMetricsText1_0_0]
    );
    // Its own validation scheme: the escaping follows it, not the global one.
    assert_eq!(b.metric_name_escaping_scheme, NameEscapingScheme::AllowUtf8);
}

#[test]
fn new_keys_are_validated_in_prometheus_words() {
    let cases = [
        (
            "job_name: j\nscrape_protocols: []\n",
            "scrape_protocols cannot be empty for scrape config with job name \"j\"",
        ),
        (
            "job_name: j\nscrape_protocols: [PrometheusProto, prometheusproto]\n",
            "duplicated protocol in scrape_protocols, got [PrometheusProto prometheusproto] for scrape config with job name \"j\"",
        ),
        (
            "job_name: j\nscrape_protocols: [Text]\n",
            "scrape_protocols: unknown scrape protocol Text, supported: [OpenMetricsText0.0.1 OpenMetricsText1.0.0 OpenMetricsText2.0.0 PrometheusProto PrometheusText0.0.4 PrometheusText1.0.0] for scrape config with job name \"j\"",
        ),
        (
            "job_name: j\nfallback_scrape_protocol: x\n",
            "invalid fallback_scrape_protocol for scrape config with job name \"j\": unknown scrape protocol x, supported: [OpenMetricsText0.0.1 OpenMetricsText1.0.0 OpenMetricsText2.0.0 PrometheusProto PrometheusText0.0.4 PrometheusText1.0.0]",
        ),
        (
            "job_name: j\nmetric_name_validation_scheme: ascii\n",
            "unrecognized ValidationScheme: \"ascii\"",
        ),
        (
            "job_name: j\nmetric_name_escaping_scheme: x\n",
            "unknown scrape config name escaping method specified, must be one of 'allow-utf-8', 'underscores', 'dots', or 'values', got \"x\"",
        ),
        (
            "job_name: j\nmetric_name_validation_scheme: legacy\nmetric_name_escaping_scheme: allow-utf-8\n",
            "utf8 metric names requested but validation scheme is not set to UTF8",
        ),
        (
            "global:\n  metric_name_escaping_scheme: x\nscrape_configs:\n  - job_name: j\n",
            "unknown global name escaping method specified, must be one of 'allow-utf-8', 'underscores', 'dots', or 'values', got \"x\"",
        ),
        (
            "global:\n  scrape_protocols: [A]\n",
            "scrape_protocols: unknown scrape protocol A, supported: [OpenMetricsText0.0.1 OpenMetricsText1.0.0 OpenMetricsText2.0.0 PrometheusProto PrometheusText0.0.4 PrometheusText1.0.0] for global config",
        ),
        (
            "global:\n  metric_name_validation_scheme: legacy\n  external_labels: {a-b: x}\n",
            "\"a-b\" is not a valid label name",
        ),
        ("runtime:\n  log_level: loud\n", "unrecognized log level loud"),
        ("runtime:\n  gogc: many\n", "cannot unmarshal !!str `many` into int"),
        (
            "otlp:\n  translation_strategy: Nope\n",
            "unsupported OTLP translation strategy \"Nope\"",
        ),
        (
            "otlp:\n  ignore_resource_attributes: [a]\n",
            "'ignore_resource_attributes' cannot be configured unless 'promote_all_resource_attributes' is true",
        ),
        ("rule_files: ['a/*/b.yml']\n", "invalid rule file path \"a/*/b.yml\""),
        (
            "scrape_config_files: ['a/*/b.yml']\n",
            "invalid scrape config file path \"a/*/b.yml\"",
        ),
        (
            "job_name: j\nrelabel_configs:\n  - target_label: 1abc\nmetric_name_validation_scheme: legacy\n",
            "\"1abc\" is invalid 'target_label' for replace action",
        ),
    ];
    for (text, message) in cases {
        let e = errors(text);
        assert_eq!(e.len(), 1, "{text}: {e:#?}");
        assert_eq!(e[0].message, message, "{text}");
    }
    // Valid in Prometheus 3 (UTF-8 names), and a bad global escaping with no job to apply it to.
    for text in [
        "job_name: j\nrelabel_configs:\n  - target_label: 1abc\n",
        "job_name: j\nstatic_configs:\n  - targets: ['a:1']\n    labels: {0bad: x}\n",
        "global:\n  metric_name_escaping_scheme: x\n",
        "global:\n  external_labels: {a-b: x}\n",
        "job_name: j\nscrape_protocols: [OpenMetricsText2.0.0]\n",
    ] {
        assert!(errors(text).is_empty(), "{text}: {:#?}", errors(text));
    }
}

#[test]
fn a_whole_configuration_without_scrape_configs_holds_no_job() {
    for text in [
        "runtime:\n  gogc: 50\n",
        "rule_files: [a.yml]\n",
        "remote_write:\n  - url: http://a/\nstorage:\n  tsdb: {}\n",
        "otlp:\n  translation_strategy: NoTranslation\n",
    ] {
        let (jobs, errors) = load(text);
        assert!(jobs.is_empty() && errors.is_empty(), "{text}: {errors:#?}");
    }
}

#[test]
fn scrape_config_files_are_read_through_the_caller() {
    let text = "global:\n  sample_limit: 9\nscrape_config_files: ['jobs/*.yml']\nscrape_configs:\n  - job_name: main\n";
    let mut asked = Vec::new();
    let (jobs, errors) = load_config(text, "p.yml", &GlobalConfig::default(), &mut |p| {
        asked.push(p.to_string());
        Ok(vec![
            (
                "jobs/a.yml".into(),
                Ok("scrape_configs:\n  - job_name: a\n".into()),
            ),
            (
                "jobs/b.yml".into(),
                Ok(
                    "scrape_configs:\n  - job_name: main\n  - job_name: b\n    sample_limt: 1\n"
                        .into(),
                ),
            ),
            ("jobs/c.yml".into(), Err("permission denied".into())),
        ])
    });
    assert_eq!(asked, ["jobs/*.yml"]);
    let names: Vec<&str> = jobs.iter().map(|j| j.job_name.as_str()).collect();
    assert_eq!(names, ["main", "a"]);
    // The main file's globals apply.
    assert_eq!(jobs[1].sample_limit, 9);
    let e: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.origin.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        e,
        [
            (
                "jobs/b.yml",
                "found multiple scrape configs with job name \"main\", first found in main config file"
            ),
            ("jobs/b.yml", "unknown field \"sample_limt\""),
            ("jobs/c.yml", "permission denied"),
        ]
    );
    // Without a file system, the key is refused, saying why.
    let e = load(text).1;
    assert!(e[0].message.contains("is not read here"), "{e:#?}");
}

#[test]
fn global_external_labels_are_read_with_their_errors() {
    let g = load_global(
        "global:\n  scrape_interval: 15s\n  external_labels:\n    cluster: c1\n    region: eu\nscrape_configs: []\n",
        "prometheus.yml",
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        g.external_labels,
        std::collections::BTreeMap::from([
            ("cluster".into(), "c1".into()),
            ("region".into(), "eu".into())
        ])
    );
    assert_eq!(g.scrape_interval, Duration::from_secs(15));
    assert_eq!(
        load_global("scrape_configs: []\n", "p.yml"),
        Ok(GlobalConfig::default())
    );
    let e = load_global(
        "global:\n  metric_name_validation_scheme: legacy\n  external_labels:\n    ok: x\n    'bad-name': y\n",
        "p.yml",
    )
    .expect_err("invalid name");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].to_string()
            .contains("\"bad-name\" is not a valid label name"),
        "{}",
        e[0]
    );
    // Jobs are read as before beside it.
    let (jobs, errs) =
        load("global:\n  external_labels: {a: b}\nscrape_configs:\n  - job_name: j\n");
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(jobs.len(), 1);
}

#[test]
fn prometheus_3_scrape_keys_are_read() {
    let j = one("job_name: a\nkeep_dropped_targets: 5\ntrack_timestamps_staleness: true\nextra_scrape_metrics: true\n");
    assert_eq!(j.keep_dropped_targets, 5);
    assert!(j.track_timestamps_staleness && j.extra_scrape_metrics);
    let j = one("job_name: a\n");
    assert_eq!(j.keep_dropped_targets, 0);
    assert!(!j.track_timestamps_staleness && !j.extra_scrape_metrics);
}
