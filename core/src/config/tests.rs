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
            insecure_skip_verify: true
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
      '': x
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
        "jobs.yml:2:18: job \"web\": scrape_interval: not a valid duration string: \"1.5s\""
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
        errors("job_name: a\nrelabel_configs:\n  - source_labels: [ok, '']\n    action: keep\n");
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
    let e = errors("job_name: a\nkubernetes_sd_configs: []\noauth2: {}\n");
    assert_eq!(
        e[0].message,
        "field \"kubernetes_sd_configs\" is not supported by scrapepool"
    );
    assert_eq!(
        e[1].message,
        "field \"oauth2\" is not supported by scrapepool"
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
          '': x
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
                "client cert file \"/c\" specified without client key file"
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
                "field \"oauth2\" is not supported by scrapepool"
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

mod names_and_protocols {
    //! `scrape_protocols`, `fallback_scrape_protocol`, `metric_name_validation_scheme` and
    //! `metric_name_escaping_scheme`, with Prometheus 3.16's defaults and promtool 3.16's
    //! messages (checked against `promtool check config`).

    use super::*;
    use crate::labels::{EscapingScheme, ValidationScheme};
    use crate::protocol::{ScrapeProtocol, DEFAULT_SCRAPE_PROTOCOLS};

    fn schemes(j: &JobConfig) -> (ValidationScheme, EscapingScheme) {
        (
            j.metric_name_validation_scheme,
            j.metric_name_escaping_scheme,
        )
    }

    fn messages(text: &str) -> Vec<String> {
        errors(text).into_iter().map(|e| e.message).collect()
    }

    #[test]
    fn defaults_are_prometheus_3_16s() {
        let j = one("job_name: a\n");
        assert_eq!(j.scrape_protocols, DEFAULT_SCRAPE_PROTOCOLS);
        assert_eq!(j.fallback_scrape_protocol, None);
        assert_eq!(
            schemes(&j),
            (ValidationScheme::Utf8, EscapingScheme::AllowUtf8)
        );
    }

    #[test]
    fn schemes_resolve_as_prometheus_does() {
        let legacy = one("job_name: a\nmetric_name_validation_scheme: legacy\n");
        assert_eq!(
            schemes(&legacy),
            (ValidationScheme::Legacy, EscapingScheme::Underscores)
        );
        let dots = one("job_name: a\nmetric_name_validation_scheme: legacy\nmetric_name_escaping_scheme: dots\n");
        assert_eq!(
            schemes(&dots),
            (ValidationScheme::Legacy, EscapingScheme::Dots)
        );
        let empty = one("job_name: a\nmetric_name_validation_scheme: ''\n");
        assert_eq!(
            schemes(&empty),
            (ValidationScheme::Utf8, EscapingScheme::AllowUtf8)
        );
        // From `global:`: the job inherits the scheme, and the escaping follows it.
        let doc = |global: &str, job: &str| {
            one(&format!(
                "global:\n{global}scrape_configs:\n  - job_name: a\n{job}"
            ))
        };
        let j = doc("  metric_name_validation_scheme: legacy\n", "");
        assert_eq!(
            schemes(&j),
            (ValidationScheme::Legacy, EscapingScheme::Underscores)
        );
        let j = doc(
            "  metric_name_validation_scheme: legacy\n  metric_name_escaping_scheme: values\n",
            "",
        );
        assert_eq!(
            schemes(&j),
            (ValidationScheme::Legacy, EscapingScheme::Values)
        );
        // A job's own scheme takes its own default escaping, not the global one.
        let j = doc(
            "  metric_name_escaping_scheme: dots\n",
            "    metric_name_validation_scheme: utf8\n",
        );
        assert_eq!(
            schemes(&j),
            (ValidationScheme::Utf8, EscapingScheme::AllowUtf8)
        );
        let j = doc(
            "  scrape_protocols: [PrometheusText1.0.0]\n",
            "    fallback_scrape_protocol: OpenMetricsText1.0.0\n",
        );
        assert_eq!(j.scrape_protocols, [ScrapeProtocol::PrometheusText1_0_0]);
        assert_eq!(
            j.fallback_scrape_protocol,
            Some(ScrapeProtocol::OpenMetricsText1_0_0)
        );
        let j = doc(
            "  scrape_protocols: [PrometheusText1.0.0]\n",
            "    scrape_protocols: [OpenMetricsText0.0.1, PrometheusText0.0.4]\n",
        );
        assert_eq!(
            j.scrape_protocols,
            [
                ScrapeProtocol::OpenMetricsText0_0_1,
                ScrapeProtocol::PrometheusText0_0_4
            ]
        );
    }

    #[test]
    fn bad_values_have_promtools_messages() {
        let supported = "supported: [OpenMetricsText0.0.1 OpenMetricsText1.0.0 OpenMetricsText2.0.0 PrometheusProto PrometheusText0.0.4 PrometheusText1.0.0]";
        let cases: Vec<(&str, String)> = vec![
            (
                "metric_name_validation_scheme: legacy\nmetric_name_escaping_scheme: allow-utf-8\n",
                "utf8 metric names requested but validation scheme is not set to UTF8".into(),
            ),
            (
                "scrape_protocols: [PrometheusText0.0.4, prometheustext0.0.4]\n",
                "duplicated protocol in scrape_protocols, got [PrometheusText0.0.4 prometheustext0.0.4] for scrape config with job name \"c\"".into(),
            ),
            (
                "scrape_protocols: [Foo]\n",
                format!("scrape_protocols: unknown scrape protocol Foo, {supported} for scrape config with job name \"c\""),
            ),
            (
                "fallback_scrape_protocol: Foo\n",
                format!("invalid fallback_scrape_protocol for scrape config with job name \"c\": unknown scrape protocol Foo, {supported}"),
            ),
            (
                "metric_name_escaping_scheme: bogus\n",
                "unknown scrape config name escaping method specified, must be one of 'allow-utf-8', 'underscores', 'dots', or 'values', got \"bogus\"".into(),
            ),
            (
                "metric_name_validation_scheme: bogus\n",
                "unrecognized ValidationScheme: \"bogus\"".into(),
            ),
            (
                "scrape_protocols: []\n",
                "scrape_protocols cannot be empty for scrape config with job name \"c\"".into(),
            ),
            (
                "metric_name_validation_scheme: legacy\nrelabel_configs:\n  - source_labels: [a]\n    target_label: my.target\n",
                "\"my.target\" is invalid 'target_label' for replace action".into(),
            ),
        ];
        for (job, want) in cases {
            let got = messages(&format!("job_name: c\n{job}"));
            assert_eq!(got, [want], "{job}");
        }
        assert_eq!(
            messages("global:\n  metric_name_escaping_scheme: bogus\nscrape_configs:\n  - job_name: c\n"),
            ["unknown global name escaping method specified, must be one of 'allow-utf-8', 'underscores', 'dots', or 'values', got \"bogus\""]
        );
        assert_eq!(
            messages("global:\n  metric_name_validation_scheme: legacy\n  metric_name_escaping_scheme: allow-utf-8\nscrape_configs:\n  - job_name: c\n"),
            ["utf8 metric names requested but validation scheme is not set to UTF8"]
        );
        assert_eq!(
            messages("global:\n  metric_name_validation_scheme: legacy\n  external_labels:\n    my.ext: x\n"),
            ["\"my.ext\" is not a valid label name"]
        );
        // Protobuf: a real protocol, refused because scrapepool cannot parse it.
        for job in [
            "scrape_protocols: [PrometheusProto]\n",
            "fallback_scrape_protocol: PrometheusProto\n",
        ] {
            let got = messages(&format!("job_name: c\n{job}"));
            assert!(
                got.len() == 1 && got[0].contains("PrometheusProto is not supported by scrapepool"),
                "{got:?}"
            );
        }
    }

    #[test]
    fn errors_point_at_the_field() {
        let e = errors("job_name: a\nmetric_name_validation_scheme: legacy\nmetric_relabel_configs:\n  - source_labels: [a]\n    target_label: x\n  - source_labels: [a]\n    target_label: my.target\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(
            (e[0].field.as_str(), at(&e[0])),
            ("metric_relabel_configs[1].target_label", (7, 19))
        );
        let e = errors("job_name: a\nscrape_protocols: [PrometheusText0.0.4, Nope]\n");
        assert_eq!(
            (e[0].field.as_str(), at(&e[0])),
            ("scrape_protocols[1]", (2, 41))
        );
        let e = errors("global:\n  metric_name_validation_scheme: legacy\n  external_labels:\n    ok: x\n    my.ext: y\n");
        assert_eq!(
            (e[0].field.as_str(), at(&e[0])),
            ("global.external_labels.my.ext", (5, 5))
        );
    }

    #[test]
    fn utf8_names_are_valid_where_prometheus_3_16_takes_them() {
        let j = one("job_name: a\nrelabel_configs:\n  - source_labels: [my.source]\n    target_label: my.target\n  - regex: (.*)\n    replacement: x-$1\n    action: labelmap\nstatic_configs:\n  - targets: ['h:1']\n    labels:\n      my.label: v\n");
        assert_eq!(j.relabel_configs[0].target_label, "my.target");
        assert_eq!(
            j.relabel_configs[0].name_validation_scheme,
            ValidationScheme::Utf8
        );
        assert_eq!(j.static_configs[0].labels.get("my.label"), Some("v"));
        // Under legacy, static labels and source labels still take any name (as 3.16), the
        // relabel rules carry the scheme.
        let j = one("job_name: a\nmetric_name_validation_scheme: legacy\nrelabel_configs:\n  - source_labels: [my.source]\n    action: keep\nstatic_configs:\n  - targets: ['h:1']\n    labels:\n      my.label: v\n");
        assert_eq!(
            j.relabel_configs[0].name_validation_scheme,
            ValidationScheme::Legacy
        );
        one("global:\n  external_labels:\n    my.ext: x\nscrape_configs:\n  - job_name: a\n");
    }
}
