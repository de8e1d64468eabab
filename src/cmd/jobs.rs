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
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use scrapepool_adapters::zk::{check_job_name, Applied, ZkJobs};
use scrapepool_core::config::{load_config, load_job, GlobalConfig};
use scrapepool_core::jobs_file::split_jobs_with;

/// Deadline of each ZooKeeper call the command makes.
const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `scrapepool jobs`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// ZooKeeper: `host:port[,host:port][/chroot]`.
    #[arg(long)]
    pub zookeeper: String,
    #[command(subcommand)]
    pub action: Action,
}

/// What to do with the jobs.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum Action {
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
pub(crate) fn run(args: Args) -> ExitCode {
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
pub(crate) struct JobText {
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
pub(crate) fn collect_jobs(path: &Path) -> Result<Vec<JobText>, Vec<String>> {
    let files = files(path).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let mut jobs: Vec<JobText> = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for file in files {
        let origin = file.display().to_string();
        let text = match super::read_jobs_file(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{origin}: {e}"));
                continue;
            }
        };
        let dir = file.parent().map(|d| d.to_path_buf()).unwrap_or_default();
        let (loaded, load_errors) = load_config(
            &text,
            &origin,
            &GlobalConfig::default(),
            &mut super::config_files(&dir),
        );
        if !load_errors.is_empty() {
            errors.extend(load_errors.iter().map(|e| e.to_string()));
            continue;
        }
        let split = match split_jobs_with(&text, &mut super::config_files(&dir)) {
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
