//! A jobs file cut into one YAML text per job, the form `/jobs/<name>` stores and the
//! standalone daemon feeds its node.
//!
//! A file holding one `scrape_config` is kept verbatim (comments and all). A
//! `scrape_configs:` file is split into one text per job, each re-serialised from the parsed
//! tree: cutting an item's text out would lose anchors defined elsewhere in the file and the
//! `global:` defaults it inherits, so the parsed tree (aliases and merge keys resolved, key
//! order kept) is written instead, with the global interval and timeout folded into jobs
//! that do not set their own.

use std::fmt;

use crate::config::{format_duration, parse_duration, GlobalConfig};

/// Global settings folded into each job of a `scrape_configs:` file that lacks them.
const INHERITED_GLOBALS: [&str; 2] = ["scrape_interval", "scrape_timeout"];

/// Splits a jobs document into `(job_name, one job's YAML)`: a single `scrape_config` is kept
/// verbatim; a `scrape_configs:` list is re-serialised job by job (see the module doc).
///
/// An empty or comment-only document holds no job, as `promtool check config` accepts an
/// empty configuration.
pub fn split_jobs(text: &str) -> Result<Vec<(String, String)>, String> {
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
    let Some(list) = get(top, "scrape_configs") else {
        let name = get(top, "job_name")
            .and_then(Yaml::as_str)
            .ok_or("a single scrape_config needs a string job_name")?;
        return Ok(vec![(name.to_string(), text.to_string())]);
    };
    let Yaml::Seq(items) = list else {
        return Err("scrape_configs must be a list".into());
    };
    let globals: Vec<(&str, &str)> = match get(top, "global") {
        Some(Yaml::Map(g)) => INHERITED_GLOBALS
            .iter()
            .filter_map(|k| get(g, k).and_then(Yaml::as_str).map(|v| (*k, v)))
            .collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Yaml::Map(fields) = item else {
            return Err(format!("scrape_configs[{i}] must be a mapping"));
        };
        let name = get(fields, "job_name")
            .and_then(Yaml::as_str)
            .ok_or_else(|| format!("scrape_configs[{i}] needs a string job_name"))?;
        let mut fields = fields.clone();
        for (k, v) in effective_globals(&fields, &globals) {
            fields.push((Yaml::Str(k.into()), Yaml::Str(v)));
        }
        let yaml = serde_saphyr::to_string(&Yaml::Map(fields))
            .map_err(|e| format!("scrape_configs[{i}] ({name}): cannot serialise: {e}"))?;
        out.push((name.to_string(), yaml));
    }
    Ok(out)
}

/// The global settings a job inherits, as it must say them when stored alone: the global
/// interval, and the timeout Prometheus would give it — the global timeout, but never more
/// than the job's own interval (config.go's rule), so a job with `scrape_interval: 5s` under
/// `global: {scrape_timeout: 10s}` is stored with `scrape_timeout: 5s`, not made invalid.
fn effective_globals(
    fields: &[(Yaml, Yaml)],
    globals: &[(&str, &str)],
) -> Vec<(&'static str, String)> {
    let own = |k: &str| get(fields, k).and_then(Yaml::as_str);
    let global = |k: &str| globals.iter().find(|(g, _)| *g == k).map(|(_, v)| *v);
    let mut out = Vec::new();
    if own("scrape_interval").is_none() {
        if let Some(v) = global("scrape_interval") {
            out.push(("scrape_interval", v.to_string()));
        }
    }
    if own("scrape_timeout").is_none() {
        if let Some(timeout) = global("scrape_timeout") {
            let interval = own("scrape_interval")
                .or(global("scrape_interval"))
                .and_then(|i| parse_duration(i).ok())
                .unwrap_or(GlobalConfig::default().scrape_interval);
            let effective = match parse_duration(timeout) {
                Ok(t) if t > interval => format_duration(interval),
                _ => timeout.to_string(),
            };
            out.push(("scrape_timeout", effective));
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
