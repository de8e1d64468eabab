//! `scrapepool jobs apply|list|get|delete`: the jobs in ZooKeeper, one znode per job.
//!
//! `apply` validates every file before it writes anything. A file holding one
//! `scrape_config` is stored verbatim (comments and all). A `scrape_configs:` file is split
//! into one znode per job, each re-serialised from the parsed tree: cutting an item's text
//! out would lose anchors defined elsewhere in the file and the `global:` defaults it
//! inherits, so the parsed tree (aliases and merge keys resolved) is written instead, with
//! the global `scrape_interval`/`scrape_timeout` folded into jobs that do not set their own.
//! Every znode text is validated again as a single job before anything is written.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use scrapepool_adapters::zk::{check_job_name, Applied, ZkJobs};
use scrapepool_core::config::{load_job, load_jobs, GlobalConfig};

/// Deadline of each ZooKeeper call the command makes.
const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `scrapepool jobs`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// ZooKeeper: `host:port[,host:port][/chroot]`.
    #[arg(long)]
    pub zookeeper: String,
    #[command(subcommand)]
    pub action: Action,
}

/// What to do with the jobs.
#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Validate FILE (or every *.yml/*.yaml in DIR) and write its jobs, one znode per job.
    Apply {
        /// A jobs file or a directory of them.
        path: PathBuf,
    },
    /// Print the name of every job.
    List,
    /// Print one job's YAML.
    Get {
        /// The job name.
        name: String,
    },
    /// Delete one job.
    Delete {
        /// The job name.
        name: String,
    },
}

/// Runs the command.
pub fn run(args: Args) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scrapepool jobs: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run_async(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("scrapepool jobs: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_async(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Apply { path } => {
            // Everything is validated before connecting, so nothing is written on an error.
            let jobs = match collect_jobs(&path) {
                Ok(jobs) => jobs,
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    eprintln!(
                        "scrapepool jobs apply: {} error(s); nothing written",
                        errors.len()
                    );
                    return Ok(ExitCode::FAILURE);
                }
            };
            let zk = ZkJobs::connect(&args.zookeeper, OP_TIMEOUT).await?;
            for job in &jobs {
                let applied = zk.apply(&job.name, &job.yaml).await?;
                let what = match applied {
                    Applied::Created => "created",
                    Applied::Updated => "updated",
                    Applied::Unchanged => "unchanged",
                };
                println!("job {}: {what} (from {})", job.name, job.origin);
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::List => {
            let zk = ZkJobs::connect(&args.zookeeper, OP_TIMEOUT).await?;
            for name in zk.list().await? {
                println!("{name}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Get { name } => {
            let zk = ZkJobs::connect(&args.zookeeper, OP_TIMEOUT).await?;
            match zk.get(&name).await? {
                Some(yaml) => {
                    print!("{yaml}");
                    if !yaml.ends_with('\n') {
                        println!();
                    }
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("scrapepool jobs get: no job {name:?}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Action::Delete { name } => {
            let zk = ZkJobs::connect(&args.zookeeper, OP_TIMEOUT).await?;
            if zk.delete(&name).await? {
                println!("job {name}: deleted");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("scrapepool jobs delete: no job {name:?}");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// One job ready to be written: its znode name and text, and the file it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobText {
    /// The job name (the znode's name).
    pub name: String,
    /// The znode's text: one `scrape_config`.
    pub yaml: String,
    /// The file it came from.
    pub origin: String,
}

/// The files `path` names: itself, or every `*.yml`/`*.yaml` in it, sorted.
fn files(path: &Path) -> Result<Vec<PathBuf>, String> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for entry in entries {
        let p = entry
            .map_err(|e| format!("{}: {e}", path.display()))?
            .path();
        if p.is_file() && p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
            out.push(p);
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(format!(
            "{}: no *.yml or *.yaml file in this directory",
            path.display()
        ));
    }
    Ok(out)
}

/// Reads and validates every job under `path`; every error when anything is wrong.
pub fn collect_jobs(path: &Path) -> Result<Vec<JobText>, Vec<String>> {
    let files = files(path).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let mut jobs: Vec<JobText> = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for file in files {
        let origin = file.display().to_string();
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{origin}: {e}"));
                continue;
            }
        };
        let (loaded, load_errors) = load_jobs(&text, &origin, &GlobalConfig::default());
        if !load_errors.is_empty() {
            errors.extend(load_errors.iter().map(|e| e.to_string()));
            continue;
        }
        let split = match split_jobs(&text) {
            Ok(s) => s,
            Err(e) => {
                errors.push(format!("{origin}: {e}"));
                continue;
            }
        };
        let mut loaded_names: Vec<&str> = loaded.iter().map(|j| j.job_name.as_str()).collect();
        let mut split_names: Vec<&str> = split.iter().map(|(n, _)| n.as_str()).collect();
        loaded_names.sort();
        split_names.sort();
        if loaded_names != split_names {
            errors.push(format!("{origin}: the jobs found ({split_names:?}) differ from the jobs loaded ({loaded_names:?})"));
            continue;
        }
        for (name, yaml) in split {
            if let Err(e) = check_job_name(&name) {
                errors.push(format!("{origin}: {e}"));
                continue;
            }
            if let Some(first) = seen.get(&name) {
                errors.push(format!("{origin}: job {name:?} is also defined in {first}"));
                continue;
            }
            // The text the members will read must load on its own as this one job.
            if let Err(errs) = load_job(&yaml, &format!("{origin} (job {name} as stored)"), &name) {
                errors.extend(errs.iter().map(|e| e.to_string()));
                continue;
            }
            seen.insert(name.clone(), origin.clone());
            jobs.push(JobText {
                name,
                yaml,
                origin: origin.clone(),
            });
        }
    }
    if errors.is_empty() {
        Ok(jobs)
    } else {
        Err(errors)
    }
}

/// Global settings folded into each job of a `scrape_configs:` file that lacks them.
const INHERITED_GLOBALS: [&str; 2] = ["scrape_interval", "scrape_timeout"];

/// Splits a jobs document into `(job_name, one job's YAML)`: a single `scrape_config` is kept
/// verbatim; a `scrape_configs:` list is re-serialised job by job (see the module doc).
pub fn split_jobs(text: &str) -> Result<Vec<(String, String)>, String> {
    let doc: Yaml = serde_saphyr::from_str(text).map_err(|e| {
        format!(
            "invalid YAML: {}",
            e.to_string().lines().next().unwrap_or("")
        )
    })?;
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
    let globals: Vec<(Yaml, Yaml)> = match get(top, "global") {
        Some(Yaml::Map(g)) => INHERITED_GLOBALS
            .iter()
            .filter_map(|k| get(g, k).map(|v| (Yaml::Str((*k).into()), v.clone())))
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
        for (k, v) in &globals {
            if !fields.iter().any(|(fk, _)| fk == k) {
                fields.push((k.clone(), v.clone()));
            }
        }
        let yaml = serde_saphyr::to_string(&Yaml::Map(fields))
            .map_err(|e| format!("scrape_configs[{i}] ({name}): cannot serialise: {e}"))?;
        out.push((name.to_string(), yaml));
    }
    Ok(out)
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
