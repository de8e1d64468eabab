//! Per-target state and scheduling: what the node keeps of each target it scrapes, its
//! timers, starting scrapes and taking their results back, and emitting staleness markers.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::encode::{EmitSpec, Record};
use crate::protocol::ExpositionSpec;
use crate::schedule;
use crate::scrape::{HistogramSpec, Limits};

/// A target this node scrapes.
#[derive(Debug)]
pub(super) struct Scraped {
    pub(super) job: String,
    /// The job configuration `spec` was made from; a job edit makes a new `Arc`.
    pub(super) config: Arc<JobConfig>,
    pub(super) spec: Arc<ScrapeSpec>,
    pub(super) role: Role,
    /// Rank whose phase the schedule follows; the phase changes only after the pending
    /// scrape, so a rank change never stretches the gap beyond one interval.
    pub(super) rank: usize,
    /// `None` while a scrape is in flight (the task holds it) and before the first scrape
    /// (a target that was never scraped has an empty cache, made when the scrape starts).
    pub(super) cache: Option<Box<SeriesCache>>,
    pub(super) in_flight: Option<u64>,
    pub(super) next_at: Timestamp,
    /// Scrapes due before this carry `shift_ms` (see [`SHIFT_TAKEOVER_SLOTS`]): the window
    /// after we took the target over from another member.
    pub(super) shift_until: Timestamp,
    /// The takeover shift, 1 to [`SHIFT_TAKEOVER_MAX`] ms.
    pub(super) shift_ms: i64,
    /// Slots due in `[from, until)` are another member's: a target that came back to us
    /// while we were handing it off is scraped by its other owner from our handoff slot to
    /// the slot the change that brought it back gives.
    pub(super) pause: Option<(Timestamp, Timestamp)>,
    /// `None` before the first scrape finishes.
    pub(super) health: Option<Box<Health>>,
}

/// A target that left discovery and waits for its end-of-run staleness markers.
#[derive(Debug)]
pub(super) struct Ending {
    /// The markers' time: when its next scrape would have been.
    pub(super) stale_at: Timestamp,
    /// When they are written, unless the target is back by then.
    pub(super) write_at: Timestamp,
    pub(super) spec: Arc<ScrapeSpec>,
    pub(super) cache: SeriesCache,
}

/// What to do with a scrape that returns after its target left us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Orphan {
    /// It moved to another member: forget the series.
    Forget,
    /// It left discovery: staleness markers for its series (after what was scraped, which
    /// the worker handed to the sink before the node took the scrape back), at the time of
    /// its next scrape, written one interval and a tenth later unless it is back by then.
    MarkStale,
}

impl Node {
    pub(super) fn scrape_spec(&self, job: &JobConfig, target: &Target) -> ScrapeSpec {
        let caps = crate::scrape::scrape_caps(self.config.memory_budget_bytes);
        ScrapeSpec {
            url: target.url.clone(),
            target_labels: target.labels.clone(),
            interval: target.scrape_interval,
            timeout: target.scrape_timeout,
            honor_labels: job.honor_labels,
            honor_timestamps: job.honor_timestamps,
            track_timestamps_staleness: job.track_timestamps_staleness,
            extra_scrape_metrics: job.extra_scrape_metrics,
            external_labels: self.config.external_labels.clone(),
            enable_compression: job.enable_compression,
            limits: Limits {
                sample_limit: job.sample_limit,
                label_limit: job.label_limit,
                label_name_length_limit: job.label_name_length_limit,
                label_value_length_limit: job.label_value_length_limit,
                body_size_limit_bytes: match job.body_size_limit_bytes {
                    0 => caps.body_bytes,
                    set => set,
                },
                samples_max: caps.samples,
            },
            metric_relabel_configs: job.metric_relabel_configs.clone(),
            basic_auth: job.basic_auth.clone(),
            authorization: job.authorization.clone(),
            tls_config: job.tls_config.clone(),
            http_client: job.http_client.clone(),
            emit: EmitSpec {
                encoding: self.config.encoding,
                message_bytes_max: self.config.message_bytes_max,
                scraper_id: self.config.id.clone(),
                job: job.job_name.clone(),
                instance: target
                    .labels
                    .get("instance")
                    .unwrap_or_default()
                    .to_string(),
                key_hash: target.key.hash(),
            },
            exposition: ExpositionSpec::new(
                &job.scrape_protocols,
                job.metric_name_escaping_scheme,
                job.fallback_scrape_protocol,
                job.metric_name_validation_scheme,
            ),
            histograms: HistogramSpec {
                native: target.scrape_native_histograms,
                keep_classic: target.always_scrape_classic_histograms,
                bucket_limit: job.native_histogram_bucket_limit,
                max_schema: crate::histogram::max_schema_for_factor(
                    job.native_histogram_min_bucket_factor,
                ),
            },
        }
    }

    /// Stops scraping `key`. `how` says whether its series end (left discovery) or live on
    /// with another owner (moved). A scrape in flight is settled when it returns.
    pub(super) fn remove_scraped(&mut self, _now: Timestamp, key: &TargetKey, how: Orphan) {
        let Some(s) = self.scraped.remove(key) else {
            return;
        };
        self.timers.remove(&(s.next_at, Wake::Scrape(key.clone())));
        if let Role::HandingOff { until } = s.role {
            self.timers.remove(&(until, Wake::HandoffEnd(key.clone())));
        }
        match (s.in_flight, s.cache) {
            (Some(id), _) => {
                if how == Orphan::MarkStale {
                    self.orphan_stale_at.insert(id, s.next_at);
                }
                self.orphans.insert(id, (key.clone(), s.spec, how));
            }
            (None, Some(cache)) if how == Orphan::MarkStale => {
                self.end_of_run(key.clone(), s.spec, *cache, s.next_at);
            }
            _ => {}
        }
    }

    /// Prometheus's `endOfRunStaleness` for a target that left discovery: markers for its
    /// last series at `stale_at` (when its next scrape would have been), written one
    /// interval and a tenth after that unless the target is back. Never scraped: none.
    pub(super) fn end_of_run(
        &mut self,
        key: TargetKey,
        spec: Arc<ScrapeSpec>,
        cache: SeriesCache,
        stale_at: Timestamp,
    ) {
        if !cache.has_scraped() {
            return;
        }
        let write_at = stale_at + spec.interval + spec.interval / 10;
        self.timers.insert((write_at, Wake::EndOfRun(key.clone())));
        let ending = Ending {
            stale_at,
            write_at,
            spec,
            cache,
        };
        if let Some(old) = self.ending.insert(key.clone(), ending) {
            self.timers.remove(&(old.write_at, Wake::EndOfRun(key)));
        }
    }

    /// Whether `key` is one of the active targets of a job in force.
    fn in_discovery(&self, key: &TargetKey) -> bool {
        self.jobs.values().any(|job| {
            job.config.is_some()
                && job
                    .resolved
                    .active
                    .binary_search_by(|t| t.key.cmp(key))
                    .is_ok()
        })
    }

    /// The target is back before its end-of-run markers were written: no markers, and
    /// its series memory returns to it (so a series it no longer has still gets one).
    pub(super) fn take_ending(&mut self, key: &TargetKey) -> Option<SeriesCache> {
        let ending = self.ending.remove(key)?;
        self.timers
            .remove(&(ending.write_at, Wake::EndOfRun(key.clone())));
        Some(ending.cache)
    }

    /// Writes every pending end-of-run marker now (the node stops), for targets still out
    /// of discovery: at their time, or now if that is earlier.
    pub(super) fn flush_endings(&mut self, now: Timestamp) {
        for (key, ending) in std::mem::take(&mut self.ending) {
            self.timers
                .remove(&(ending.write_at, Wake::EndOfRun(key.clone())));
            if self.in_discovery(&key) {
                continue; // back, whoever owns it: its series live on
            }
            let markers = crate::scrape::stale_markers(&ending.cache, ending.stale_at.min(now));
            self.emit(crate::encode::encode(&ending.spec.emit, &markers));
        }
    }

    pub(super) fn fire_timers(&mut self, now: Timestamp) {
        while let Some((at, _)) = self.timers.first() {
            if *at > now {
                break;
            }
            let (at, timer) = self.timers.pop_first().expect("first exists");
            match timer {
                Wake::Scrape(key) => self.start_scrape(at, key),
                Wake::HandoffEnd(key) => {
                    if self
                        .scraped
                        .get(&key)
                        .is_some_and(|s| s.role == Role::HandingOff { until: at })
                    {
                        self.remove_scraped(now, &key, Orphan::Forget);
                    }
                }
                Wake::EndOfRun(key) => {
                    if self.ending.get(&key).is_some_and(|e| e.write_at == at) {
                        let ending = self.ending.remove(&key).expect("checked");
                        // Back in discovery (whoever owns it now): its series live on.
                        if !self.in_discovery(&key) {
                            let markers =
                                crate::scrape::stale_markers(&ending.cache, ending.stale_at);
                            self.emit(crate::encode::encode(&ending.spec.emit, &markers));
                        }
                    }
                }
                Wake::DrainEnd => {
                    self.end_drain(now);
                    return;
                }
            }
        }
    }

    pub(super) fn start_scrape(&mut self, due: Timestamp, key: TargetKey) {
        let Some(s) = self.scraped.get(&key) else {
            return;
        };
        if let Role::HandingOff { until } = s.role {
            if due >= until {
                // The handoff slot and every later one are the new owner's.
                self.remove_scraped(due, &key, Orphan::Forget);
                return;
            }
        }
        let sample_at = self.sample_time(s, due);
        let Some(s) = self.scraped.get_mut(&key) else {
            return;
        };
        let paused = match s.pause {
            Some((_, until)) if due >= until => {
                s.pause = None;
                false
            }
            Some((from, _)) => due >= from,
            None => false,
        };
        // The next one keeps the phase of the rank we own now; it is always within one
        // interval of this one, so a rank change never widens a gap.
        let offset = schedule::offset(key.hash(), s.rank, s.spec.interval);
        let next_at = schedule::next_at(due + Duration::from_millis(1), s.spec.interval, offset);
        s.next_at = next_at;
        self.timers.insert((next_at, Wake::Scrape(key.clone())));
        if paused {
            return;
        }
        if s.in_flight.is_some() {
            self.stats.scrapes_skipped += 1;
            return;
        }
        let cache = s.cache.take().map(|c| *c).unwrap_or_default();
        let scrape_id = self.next_scrape_id;
        self.next_scrape_id += 1;
        s.in_flight = Some(scrape_id);
        self.stats.scrapes_started += 1;
        self.commands.push_back(Command::Scrape(ScrapeTask {
            target: key,
            scrape_id,
            scheduled_at: due,
            sample_at,
            spec: s.spec.clone(),
            cache,
        }));
    }

    pub(super) fn on_scrape_finished(&mut self, now: Timestamp, finished: ScrapeFinished) {
        let ScrapeFinished { task, report } = finished;
        if !report.up {
            self.stats.scrapes_failed += 1;
        }
        self.stats.scrape_durations.observe(report.duration);
        self.stats.count_scrape(&report);
        if let Some((key, spec, how)) = self.orphans.remove(&task.scrape_id) {
            let stale_at = self.orphan_stale_at.remove(&task.scrape_id);
            if how == Orphan::MarkStale {
                if self.finishing_drain {
                    let markers = crate::scrape::stale_markers(&task.cache, now);
                    self.emit(crate::encode::encode(&spec.emit, &markers));
                } else {
                    self.end_of_run(key, spec, task.cache, stale_at.unwrap_or(now).max(now));
                }
            }
            self.on_drain_scrape_back();
            return;
        }
        let Some(s) = self.scraped.get_mut(&task.target) else {
            return;
        };
        if s.in_flight != Some(task.scrape_id) {
            return;
        }
        s.in_flight = None;
        s.cache = Some(Box::new(task.cache));
        s.health = Some(Box::new(Health {
            last_scrape: Some(task.scheduled_at),
            report: Some(report),
        }));
    }

    pub(super) fn emit(&mut self, records: Vec<Record>) {
        if !records.is_empty() {
            self.commands.push_back(Command::Emit(records));
        }
    }
}

pub(super) fn role_until(role: Role) -> Timestamp {
    match role {
        Role::HandingOff { until } => until,
        Role::Owner { .. } => Timestamp(i64::MIN),
    }
}
