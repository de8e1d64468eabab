//! A jobs file cut into one YAML text per job, the form `/jobs/<name>` stores and the
//! standalone daemon feeds its node.
//!
//! A file holding one `scrape_config` is kept verbatim (comments and all). A
//! `scrape_configs:` file is split into one text per job, each re-serialised from the parsed
//! tree: cutting an item's text out would lose anchors defined elsewhere in the file and the
//! `global:` defaults it inherits, so the parsed tree (aliases and merge keys resolved, key
//! order kept) is written instead, with every global setting a job inherits (interval,
//! timeout, limits, protocols, name schemes, histogram switches, ...) folded into the jobs
//! that do not set their own. The jobs of `scrape_config_files` follow, folded the same way.

use std::fmt;

use crate::config::{format_duration, parse_duration, ConfigFiles, GlobalConfig, TOP_LEVEL_KEYS};

/// Global settings folded as they are into each job that lacks them (or, for a limit, sets
/// it to 0, which Prometheus reads as unset too).
const INHERITED_GLOBALS: &[&str] = &[
    "scrape_interval",
    "body_size_limit",
    "sample_limit",
    "target_limit",
    "label_limit",
    "label_name_length_limit",
    "label_value_length_limit",
    "keep_dropped_targets",
    "scrape_failure_log_file",
    "scrape_protocols",
    "scrape_native_histograms",
    "extra_scrape_metrics",
    "convert_classic_histograms_to_nhcb",
    "always_scrape_classic_histograms",
    "metric_name_validation_scheme",
];

/// Splits a jobs document into `(job_name, one job's YAML)`: a single `scrape_config` is kept
/// verbatim; a `scrape_configs:` list is re-serialised job by job (see the module doc).
///
/// An empty or comment-only document holds no job, as `promtool check config` accepts an
/// empty configuration.
pub fn split_jobs(text: &str) -> Result<Vec<(String, String)>, String> {
    split_jobs_with(text, &mut |pattern| {
        Err(format!(
            "scrape_config_files {pattern:?}: not read here (no file system)"
        ))
    })
}

/// [`split_jobs`], with the jobs of `scrape_config_files` after the document's own, read
/// through `files` (as [`crate::config::load_config`] reads them) and given the document's
/// `global:` settings.
pub fn split_jobs_with(
    text: &str,
    files: ConfigFiles<'_>,
) -> Result<Vec<(String, String)>, String> {
    let blank = text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#')
    });
    if blank {
        return Ok(Vec::new());
    }
    let doc: Yaml = serde_saphyr::from_str(text).map_err(|e| {
        format!(
            "invalid YAML: {}",
            e.to_string().lines().next().unwrap_or("")
        )
    })?;
    if let Yaml::Null = doc {
        return Ok(Vec::new());
    }
    let Yaml::Map(top) = &doc else {
        return Err("expected a mapping: one scrape_config, or `scrape_configs:`".into());
    };
    let is_document = top
        .iter()
        .any(|(k, _)| k.as_str().is_some_and(|k| TOP_LEVEL_KEYS.contains(&k)));
    let Some(list) = get(top, "scrape_configs").filter(|_| is_document) else {
        if is_document {
            // A whole configuration without `scrape_configs:`: jobs only from its files.
            return split_files(top, files, Vec::new());
        }
        let name = get(top, "job_name")
            .and_then(Yaml::as_str)
            .ok_or("a single scrape_config needs a string job_name")?;
        return Ok(vec![(name.to_string(), text.to_string())]);
    };
    let out = split_list(top, list, "")?;
    split_files(top, files, out)
}

/// The jobs of a `scrape_configs:` list, with the globals of the document `top` folded in;
/// `file` names the list's file in errors (empty for the document itself).
fn split_list(
    top: &[(Yaml, Yaml)],
    list: &Yaml,
    file: &str,
) -> Result<Vec<(String, String)>, String> {
    let at = if file.is_empty() {
        String::new()
    } else {
        format!("{file}: ")
    };
    let items = match list {
        Yaml::Seq(items) => items.as_slice(),
        Yaml::Null => &[],
        _ => return Err(format!("{at}scrape_configs must be a list")),
    };
    let global: &[(Yaml, Yaml)] = match get(top, "global") {
        Some(Yaml::Map(g)) => g,
        _ => &[],
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Yaml::Map(fields) = item else {
            return Err(format!("{at}scrape_configs[{i}] must be a mapping"));
        };
        let name = get(fields, "job_name")
            .and_then(Yaml::as_str)
            .ok_or_else(|| format!("{at}scrape_configs[{i}] needs a string job_name"))?;
        let mut fields = fields.clone();
        for (k, v) in effective_globals(&fields, global) {
            fields.retain(|(own, _)| own.as_str() != Some(k));
            fields.push((Yaml::Str(k.into()), v));
        }
        let yaml = serde_saphyr::to_string(&Yaml::Map(fields))
            .map_err(|e| format!("{at}scrape_configs[{i}] ({name}): cannot serialise: {e}"))?;
        out.push((name.to_string(), yaml));
    }
    Ok(out)
}

/// Appends to `out` the jobs of every file of the document's `scrape_config_files`.
fn split_files(
    top: &[(Yaml, Yaml)],
    files: ConfigFiles<'_>,
    mut out: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, String> {
    let patterns = match get(top, "scrape_config_files") {
        Some(Yaml::Seq(p)) => p.iter().filter_map(Yaml::as_str).collect(),
        _ => Vec::new(),
    };
    for pattern in patterns {
        for (file, text) in files(pattern)? {
            let text = text.map_err(|e| format!("{file}: {e}"))?;
            let doc: Yaml = serde_saphyr::from_str(&text).map_err(|e| {
                let first = e.to_string();
                format!(
                    "{file}: invalid YAML: {}",
                    first.lines().next().unwrap_or("")
                )
            })?;
            let list = match &doc {
                Yaml::Map(m) => get(m, "scrape_configs").cloned().unwrap_or(Yaml::Null),
                Yaml::Null => Yaml::Null,
                _ => return Err(format!("{file}: expected a mapping with scrape_configs")),
            };
            out.extend(split_list(top, &list, &file)?);
        }
    }
    Ok(out)
}

/// The global settings a job inherits, as it must say them when stored alone: every key of
/// [`INHERITED_GLOBALS`] the job leaves unset; the timeout Prometheus would give it — the
/// global timeout, but never more than the job's own interval (config.go's rule), so a job
/// with `scrape_interval: 5s` under `global: {scrape_timeout: 10s}` is stored with
/// `scrape_timeout: 5s`, not made invalid; and the global escaping scheme, unless the job
/// sets its own validation scheme (then Prometheus infers the escaping from that).
fn effective_globals(
    fields: &[(Yaml, Yaml)],
    global: &[(Yaml, Yaml)],
) -> Vec<(&'static str, Yaml)> {
    let unset = |k: &str| match get(fields, k) {
        None | Some(Yaml::Null) => true,
        Some(Yaml::Int(0) | Yaml::UInt(0)) => true,
        Some(Yaml::Str(s)) => s.is_empty() || (k.ends_with("limit") && s == "0"),
        Some(_) => false,
    };
    let mut out = Vec::new();
    for &k in INHERITED_GLOBALS {
        if let (true, Some(v)) = (unset(k), get(global, k)) {
            if *v != Yaml::Null {
                out.push((k, v.clone()));
            }
        }
    }
    if unset("scrape_timeout") {
        if let Some(timeout) = get(global, "scrape_timeout").and_then(Yaml::as_str) {
            let interval = get(fields, "scrape_interval")
                .and_then(Yaml::as_str)
                .or(get(global, "scrape_interval").and_then(Yaml::as_str))
                .and_then(|i| parse_duration(i).ok())
                .unwrap_or(GlobalConfig::default().scrape_interval);
            let effective = match parse_duration(timeout) {
                Ok(t) if t > interval => format_duration(interval),
                _ => timeout.to_string(),
            };
            out.push(("scrape_timeout", Yaml::Str(effective)));
        }
    }
    if unset("metric_name_escaping_scheme") && unset("metric_name_validation_scheme") {
        if let Some(v) = get(global, "metric_name_escaping_scheme") {
            out.push(("metric_name_escaping_scheme", v.clone()));
        }
    }
    out
}

fn get<'a>(map: &'a [(Yaml, Yaml)], key: &str) -> Option<&'a Yaml> {
    map.iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// A YAML tree that keeps mapping order (so a job keeps `job_name` first when re-written).
#[derive(Clone, Debug, PartialEq)]
enum Yaml {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Yaml>),
    Map(Vec<(Yaml, Yaml)>),
}

impl Yaml {
    fn as_str(&self) -> Option<&str> {
        match self {
            Yaml::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl<'de> serde::Deserialize<'de> for Yaml {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Yaml;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Yaml, E> {
                Ok(Yaml::Null)
            }
            fn visit_none<E>(self) -> Result<Yaml, E> {
                Ok(Yaml::Null)
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
                serde::Deserialize::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Yaml, E> {
                Ok(Yaml::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Yaml, E> {
                Ok(Yaml::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Yaml, E> {
                Ok(Yaml::UInt(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Yaml, E> {
                Ok(Yaml::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Yaml, E> {
                Ok(Yaml::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Yaml, E> {
                Ok(Yaml::Str(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Yaml, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Yaml::Seq(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Yaml, A::Error> {
                let mut v = Vec::new();
                while let Some(kv) = a.next_entry()? {
                    v.push(kv);
                }
                Ok(Yaml::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl serde::Serialize for Yaml {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Yaml::Null => s.serialize_unit(),
            Yaml::Bool(b) => s.serialize_bool(*b),
            Yaml::Int(i) => s.serialize_i64(*i),
            Yaml::UInt(u) => s.serialize_u64(*u),
            Yaml::Float(f) => s.serialize_f64(*f),
            Yaml::Str(v) => s.serialize_str(v),
            Yaml::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Yaml::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_comment_only_document_holds_no_job() {
        for text in [
            "",
            "\n  \n",
            "# nothing yet\n\n  # still nothing\n",
            "---\n",
            "~\n",
        ] {
            assert_eq!(split_jobs(text), Ok(Vec::new()), "{text:?}");
            let (jobs, errors) = crate::config::load_jobs(text, "f", &GlobalConfig::default());
            assert!(jobs.is_empty() && errors.is_empty(), "{text:?}: {errors:?}");
        }
        assert!(split_jobs("[1]\n").is_err());
    }

    #[test]
    fn a_single_job_is_kept_verbatim() {
        let text =
            "# the node exporter\njob_name: node\nstatic_configs:\n  - targets: ['a:9100']\n";
        assert_eq!(
            split_jobs(text).unwrap(),
            vec![("node".to_string(), text.to_string())]
        );
    }

    #[test]
    fn scrape_configs_are_split_with_anchors_resolved_and_globals_folded_in() {
        let text = "\
global:
  scrape_interval: 30s
  evaluation_interval: 1m
defaults: &defaults
  metrics_path: /m
  scheme: https
scrape_configs:
  - job_name: a
    <<: *defaults
    static_configs:
      - targets: ['a:1']
  - job_name: b
    scrape_interval: 5s
    static_configs:
      - targets: ['b:1', 'yes']
";
        let jobs = split_jobs(text).unwrap();
        assert_eq!(
            jobs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let a: Yaml = serde_saphyr::from_str(&jobs[0].1).unwrap();
        let Yaml::Map(a) = a else {
            panic!("{}", jobs[0].1)
        };
        assert_eq!(
            a[0].0.as_str(),
            Some("job_name"),
            "job_name stays first:\n{}",
            jobs[0].1
        );
        assert_eq!(
            get(&a, "metrics_path").and_then(Yaml::as_str),
            Some("/m"),
            "{}",
            jobs[0].1
        );
        assert_eq!(get(&a, "scheme").and_then(Yaml::as_str), Some("https"));
        assert_eq!(
            get(&a, "scrape_interval").and_then(Yaml::as_str),
            Some("30s")
        );
        assert!(get(&a, "evaluation_interval").is_none());
        let b: Yaml = serde_saphyr::from_str(&jobs[1].1).unwrap();
        let Yaml::Map(b) = b else { panic!() };
        // The job's own interval wins over the global one.
        assert_eq!(
            get(&b, "scrape_interval").and_then(Yaml::as_str),
            Some("5s")
        );
        // A string that looks like a boolean stays a string after the round trip.
        let Some(Yaml::Seq(sc)) = get(&b, "static_configs") else {
            panic!()
        };
        let Yaml::Map(sc0) = &sc[0] else { panic!() };
        assert_eq!(
            get(sc0, "targets"),
            Some(&Yaml::Seq(vec![
                Yaml::Str("b:1".into()),
                Yaml::Str("yes".into())
            ])),
            "{}",
            jobs[1].1
        );
    }

    #[test]
    fn a_folded_global_timeout_never_exceeds_the_jobs_interval() {
        let text = "global:\n  scrape_timeout: 10s\nscrape_configs:\n  - job_name: fast\n    scrape_interval: 5s\n  - job_name: slow\n    scrape_interval: 1m\n";
        let jobs = split_jobs(text).unwrap();
        let fast = crate::config::load_job(&jobs[0].1, "fast", "fast").expect("valid alone");
        assert_eq!(fast.scrape_timeout, std::time::Duration::from_secs(5));
        let slow = crate::config::load_job(&jobs[1].1, "slow", "slow").expect("valid alone");
        assert_eq!(slow.scrape_timeout, std::time::Duration::from_secs(10));
    }

    #[test]
    fn a_job_stored_alone_loads_as_it_does_in_its_file() {
        let text = "\
global:
  scrape_interval: 20s
  scrape_timeout: 15s
  sample_limit: 100
  body_size_limit: 1KiB
  keep_dropped_targets: 3
  scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0]
  scrape_native_histograms: true
  extra_scrape_metrics: true
  always_scrape_classic_histograms: true
  convert_classic_histograms_to_nhcb: false
  metric_name_validation_scheme: legacy
  metric_name_escaping_scheme: dots
  scrape_failure_log_file: /f
scrape_config_files: ['more/*.yml']
scrape_configs:
  - job_name: inherits
  - job_name: zero_limit
    sample_limit: 0
    scrape_interval: 10s
  - job_name: own_scheme
    metric_name_validation_scheme: utf8
    scrape_native_histograms: false
";
        let mut files = |_: &str| -> Result<Vec<crate::config::ConfigFile>, String> {
            Ok(vec![(
                "more/a.yml".to_string(),
                Ok("scrape_configs:\n  - job_name: from_file\n".to_string()),
            )])
        };
        let (whole, errors) =
            crate::config::load_config(text, "f", &GlobalConfig::default(), &mut files);
        assert!(errors.is_empty(), "{errors:#?}");
        let split = split_jobs_with(text, &mut files).unwrap();
        assert_eq!(split.len(), whole.len());
        for ((name, yaml), job) in split.iter().zip(&whole) {
            let alone = crate::config::load_job(yaml, name, name)
                .unwrap_or_else(|e| panic!("{name}: {e:#?}\n{yaml}"));
            assert_eq!(&alone, job, "{name}:\n{yaml}");
        }
        assert_eq!(whole[1].sample_limit, 100);
        assert_eq!(whole[1].scrape_timeout, std::time::Duration::from_secs(10));
        assert_eq!(
            whole[2].metric_name_escaping_scheme,
            crate::config::NameEscapingScheme::AllowUtf8
        );
        assert_eq!(whole[3].job_name, "from_file");
    }

    #[test]
    fn a_whole_configuration_without_scrape_configs_holds_no_job() {
        for text in [
            "runtime:\n  gogc: 50\n",
            "global:\n  scrape_interval: 5s\n",
            "rule_files: []\n",
        ] {
            assert_eq!(split_jobs(text), Ok(Vec::new()), "{text}");
        }
        assert!(split_jobs("scrape_config_files: [a.yml]\n").is_err());
    }

    #[test]
    fn malformed_documents_are_errors() {
        assert!(split_jobs("- a\n- b\n").is_err());
        assert!(split_jobs("scrape_configs: 3\n").is_err());
        assert!(split_jobs("scrape_configs:\n  - static_configs: []\n")
            .unwrap_err()
            .contains("scrape_configs[0]"));
        assert!(split_jobs("static_configs: []\n").is_err());
        assert!(split_jobs("job_name: [\n").is_err());
    }
}
