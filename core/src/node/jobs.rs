//! Jobs and discovery: job texts from the snapshot, their providers, resolved targets.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::ring::Ownership;

/// One discovery provider of a job.
#[derive(Debug)]
pub(super) struct Provider {
    pub(super) config: SdConfig,
    pub(super) generation: u64,
    pub(super) groups: Vec<TargetGroup>,
    pub(super) error: Option<String>,
}

/// A job as this node knows it.
#[derive(Debug)]
pub(super) struct Job {
    /// The text last seen in the snapshot, valid or not.
    pub(super) text: String,
    /// The last valid configuration, if any.
    pub(super) config: Option<Arc<JobConfig>>,
    /// Why the text last seen is invalid.
    pub(super) errors: Vec<ConfigError>,
    pub(super) providers: Vec<Provider>,
    pub(super) resolved: ResolvedTargets,
    /// The owners of `resolved.active`, in its order, on the node's ring.
    pub(super) ownership: Ownership,
}

impl Node {
    pub(super) fn on_jobs(&mut self, now: Timestamp, snapshot: JobsSnapshot) {
        if self.jobs_applied && snapshot.version < self.jobs_version {
            self.stats.stale_snapshots += 1;
            return;
        }
        self.jobs_version = snapshot.version;
        self.jobs_applied = true;
        let texts: BTreeMap<String, String> = snapshot.jobs.into_iter().collect();
        let removed: Vec<String> = self
            .jobs
            .keys()
            .filter(|name| !texts.contains_key(*name))
            .cloned()
            .collect();
        let mut changed = Vec::new();
        for name in removed {
            if let Some(job) = self.jobs.remove(&name) {
                self.stop_providers(&name, &job);
                changed.push(name);
            }
        }
        for (name, text) in texts {
            if self.jobs.get(&name).is_some_and(|j| j.text == text) {
                continue;
            }
            let origin = format!("/jobs/{name}");
            match crate::config::load_job(&text, &origin, &name) {
                Ok(config) => self.apply_job(name.clone(), text, config),
                Err(errors) => {
                    self.stats.job_config_errors += 1;
                    let job = self.jobs.entry(name.clone()).or_insert_with(|| Job {
                        text: String::new(),
                        config: None,
                        errors: Vec::new(),
                        providers: Vec::new(),
                        resolved: ResolvedTargets::default(),
                        ownership: Ownership::default(),
                    });
                    // Keep the last valid version running; only remember the rejection.
                    job.text = text;
                    job.errors = errors;
                }
            }
            changed.push(name);
        }
        for name in &changed {
            self.resolve_job(name);
        }
        if !changed.is_empty() {
            self.reconcile(now, None, RebalanceCause::Jobs);
        }
    }

    pub(super) fn apply_job(&mut self, name: String, text: String, config: JobConfig) {
        let same_sd = self
            .jobs
            .get(&name)
            .and_then(|j| j.config.as_ref())
            .is_some_and(|c| c.sd_configs == config.sd_configs);
        if !same_sd {
            if let Some(old) = self.jobs.remove(&name) {
                self.stop_providers(&name, &old);
            }
        }
        let job = self.jobs.entry(name.clone()).or_insert_with(|| Job {
            text: String::new(),
            config: None,
            errors: Vec::new(),
            providers: Vec::new(),
            resolved: ResolvedTargets::default(),
            ownership: Ownership::default(),
        });
        job.text = text;
        job.errors.clear();
        if !same_sd {
            job.providers = config
                .sd_configs
                .iter()
                .map(|sd| {
                    let generation = self.next_generation;
                    self.next_generation += 1;
                    Provider {
                        config: sd.clone(),
                        generation,
                        groups: Vec::new(),
                        error: None,
                    }
                })
                .collect();
            for (index, p) in job.providers.iter().enumerate() {
                let provider = ProviderId {
                    job: name.clone(),
                    index,
                    generation: p.generation,
                };
                self.commands.push_back(Command::StartDiscovery {
                    provider,
                    config: p.config.clone(),
                });
            }
        }
        job.config = Some(Arc::new(config));
    }

    pub(super) fn stop_providers(&mut self, name: &str, job: &Job) {
        for (index, p) in job.providers.iter().enumerate() {
            let provider = ProviderId {
                job: name.to_string(),
                index,
                generation: p.generation,
            };
            self.commands.push_back(Command::StopDiscovery { provider });
        }
    }

    pub(super) fn on_discovery(
        &mut self,
        now: Timestamp,
        provider: ProviderId,
        result: Result<Vec<TargetGroup>, String>,
    ) {
        let Some(job) = self.jobs.get_mut(&provider.job) else {
            return;
        };
        let Some(p) = job.providers.get_mut(provider.index) else {
            return;
        };
        if p.generation != provider.generation {
            return; // a late word from a provider we already stopped
        }
        match result {
            Ok(groups) => {
                p.error = None;
                if p.groups == groups {
                    return;
                }
                p.groups = groups;
            }
            Err(error) => {
                self.stats.discovery_errors += 1;
                p.error = Some(error);
                return; // the last good result stays in force
            }
        }
        self.resolve_job(&provider.job);
        self.reconcile(now, Some(&provider.job), RebalanceCause::Discovery);
    }

    pub(super) fn resolve_job(&mut self, name: &str) {
        let Some(job) = self.jobs.get_mut(name) else {
            return;
        };
        let Some(config) = job.config.clone() else {
            job.resolved = ResolvedTargets::default();
            job.ownership = Ownership::new(&self.ring, &[]);
            return;
        };
        let groups: Vec<TargetGroup> = config
            .static_configs
            .iter()
            .cloned()
            .chain(job.providers.iter().flat_map(|p| p.groups.iter().cloned()))
            .collect();
        job.resolved = crate::targets::resolve(&config, &groups);
        let hashes: Vec<u64> = job.resolved.active.iter().map(|t| t.key.hash()).collect();
        job.ownership = Ownership::new(&self.ring, &hashes);
    }
}
