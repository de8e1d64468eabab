//! Faults from a seed: the chaos phase's schedule, and the record of what was injected
//! when, which the checkers use to decide which bound applies to a gap.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::SimConfig;

/// One fault or its repair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Kill a scraper (no drain).
    Crash(String),
    /// Start a crashed or departed scraper again.
    Restart(String),
    /// Graceful shutdown (SIGTERM): drain, then leave.
    Leave(String),
    /// A new scraper joins.
    Join,
    /// Cut (`true`) or restore a scraper's link to ZooKeeper.
    ZkPartition(String, bool),
    /// Cut or restore a scraper's link to Kafka.
    KafkaPartition(String, bool),
    /// The broker goes down (`true`) or comes back.
    KafkaOutage(bool),
    /// Cut or restore the link between a scraper and an exporter host.
    ExporterPartition(String, u32, bool),
    /// ZooKeeper expires a scraper's session.
    Expire(String),
    /// Latency between a scraper and an exporter host, in ms.
    SlowLink(String, u32, u64),
    /// A target starts (`true`) or stops answering 503.
    Flap(u32, bool),
    /// The job's targets become exactly these.
    SetTargets(Vec<u32>),
}

/// Which kinds of fault the chaos phase draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kinds {
    /// Crashes and restarts.
    pub crash: bool,
    /// Graceful leaves and rejoins.
    pub leave: bool,
    /// New members.
    pub join: bool,
    /// Scraper↔ZooKeeper, scraper↔Kafka and scraper↔exporter partitions, broker outages.
    pub partition: bool,
    /// Session expiries.
    pub expire: bool,
    /// Slow links.
    pub slow: bool,
    /// Exporter flaps.
    pub flap: bool,
    /// Job edits: targets appear and disappear.
    pub job_edit: bool,
}

impl Kinds {
    /// Every kind.
    pub fn all() -> Kinds {
        Kinds {
            crash: true,
            leave: true,
            join: true,
            partition: true,
            expire: true,
            slow: true,
            flap: true,
            job_edit: true,
        }
    }

    /// None: a calm run.
    pub fn none() -> Kinds {
        Kinds {
            crash: false,
            leave: false,
            join: false,
            partition: false,
            expire: false,
            slow: false,
            flap: false,
            job_edit: false,
        }
    }

    /// Only graceful changes (joins, draining leaves, job edits): no interval may be missed.
    pub fn graceful() -> Kinds {
        Kinds {
            leave: true,
            join: true,
            job_edit: true,
            ..Kinds::none()
        }
    }

    /// Each kind's name on the command line, with its switch.
    fn fields(&mut self) -> [(&'static str, &mut bool); 8] {
        [
            ("crash", &mut self.crash),
            ("leave", &mut self.leave),
            ("join", &mut self.join),
            ("partition", &mut self.partition),
            ("expire", &mut self.expire),
            ("slow", &mut self.slow),
            ("flap", &mut self.flap),
            ("job-edit", &mut self.job_edit),
        ]
    }
}

/// `all`, `graceful`, `none`, or the kinds on, comma-separated (`crash,flap`).
impl std::fmt::Display for Kinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == Kinds::all() {
            return f.write_str("all");
        }
        if *self == Kinds::graceful() {
            return f.write_str("graceful");
        }
        if *self == Kinds::none() {
            return f.write_str("none");
        }
        let mut copy = *self;
        let on: Vec<&str> = copy
            .fields()
            .into_iter()
            .filter(|(_, on)| **on)
            .map(|(name, _)| name)
            .collect();
        f.write_str(&on.join(","))
    }
}

/// Reads what [`Kinds`]'s `Display` writes.
impl std::str::FromStr for Kinds {
    type Err = String;

    fn from_str(s: &str) -> Result<Kinds, String> {
        match s {
            "all" => return Ok(Kinds::all()),
            "graceful" => return Ok(Kinds::graceful()),
            "none" => return Ok(Kinds::none()),
            _ => {}
        }
        let mut kinds = Kinds::none();
        for name in s.split(',') {
            let mut fields = kinds.fields();
            let Some((_, on)) = fields.iter_mut().find(|(n, _)| *n == name) else {
                return Err(format!(
                    "fault kinds are all, graceful, none or a list of crash, leave, join, partition, expire, slow, flap, job-edit; got {name:?}"
                ));
            };
            **on = true;
        }
        Ok(kinds)
    }
}

/// The faults of one run, in time order.
pub struct Schedule {
    /// `(when, what)`.
    pub faults: Vec<(Duration, Fault)>,
}

/// Most scrapers a run may have (joins stop there).
pub const SCRAPERS_MAX: usize = 12;

impl Schedule {
    /// Draws the chaos phase from the seed, then repairs everything at its end.
    pub fn generate(config: &SimConfig) -> Schedule {
        let mut rng = SmallRng::seed_from_u64(config.seed ^ 0x5eed_fa17);
        let mut out: Vec<(Duration, Fault)> = Vec::new();
        let mut up: Vec<String> = (0..config.scrapers).map(|i| format!("s{i}")).collect();
        let mut total = config.scrapers;
        let mut down: Vec<(Duration, String)> = Vec::new(); // (back at, host)
        let mut targets: Vec<u32> = (0..config.targets).collect();
        let k = config.faults;
        let mut kinds: Vec<u8> = Vec::new();
        for (on, id, weight) in [
            (k.crash, 0, 2),
            (k.leave, 1, 2),
            (k.join, 2, 1),
            (k.partition, 3, 3),
            (k.expire, 4, 1),
            (k.slow, 5, 1),
            (k.flap, 6, 1),
            (k.job_edit, 7, 2),
        ] {
            if on {
                kinds.extend(std::iter::repeat_n(id, weight));
            }
        }
        // A quiet start: the pool forms before the first fault.
        let mut t = Duration::from_secs(60);
        let every = config.fault_every.as_millis().max(1) as u64;
        while !kinds.is_empty() && t < config.chaos {
            // Members that were away long enough come back.
            down.retain(|(back, h)| {
                if *back <= t {
                    out.push((*back, Fault::Restart(h.clone())));
                    up.push(h.clone());
                    false
                } else {
                    true
                }
            });
            let kind = kinds[rng.random_range(0..kinds.len())];
            let pick =
                |rng: &mut SmallRng, up: &[String]| up[rng.random_range(0..up.len())].clone();
            let span = Duration::from_millis(rng.random_range(5_000..60_000));
            let until = (t + span).min(config.chaos);
            match kind {
                0 | 1 if up.len() > 1 => {
                    let h = pick(&mut rng, &up);
                    up.retain(|x| *x != h);
                    out.push((
                        t,
                        if kind == 0 {
                            Fault::Crash(h.clone())
                        } else {
                            Fault::Leave(h.clone())
                        },
                    ));
                    // A leaver needs its drain (one interval) to finish before it can restart.
                    let back = (t + span.max(config.interval * 2)).min(config.chaos);
                    down.push((back, h));
                }
                2 if total < SCRAPERS_MAX => {
                    out.push((t, Fault::Join));
                    up.push(format!("s{total}"));
                    total += 1;
                }
                3 => {
                    let h = pick(&mut rng, &up);
                    let (on, off) = match rng.random_range(0..4) {
                        0 => (
                            Fault::ZkPartition(h.clone(), true),
                            Fault::ZkPartition(h, false),
                        ),
                        1 => (
                            Fault::KafkaPartition(h.clone(), true),
                            Fault::KafkaPartition(h, false),
                        ),
                        2 => (Fault::KafkaOutage(true), Fault::KafkaOutage(false)),
                        _ => {
                            let e = rng.random_range(0..config.exporters);
                            (
                                Fault::ExporterPartition(h.clone(), e, true),
                                Fault::ExporterPartition(h, e, false),
                            )
                        }
                    };
                    out.push((t, on));
                    out.push((until, off));
                }
                4 => out.push((t, Fault::Expire(pick(&mut rng, &up)))),
                5 => {
                    let h = pick(&mut rng, &up);
                    let e = rng.random_range(0..config.exporters);
                    out.push((t, Fault::SlowLink(h.clone(), e, rng.random_range(50..800))));
                    out.push((until, Fault::SlowLink(h, e, 1)));
                }
                6 => {
                    let target = rng.random_range(0..config.targets);
                    out.push((t, Fault::Flap(target, true)));
                    out.push((until, Fault::Flap(target, false)));
                }
                7 => {
                    // Some targets leave, some (new or old) arrive.
                    let n = (config.targets / 20).max(1);
                    for _ in 0..n {
                        if targets.len() > 1 {
                            let i = rng.random_range(0..targets.len());
                            targets.remove(i);
                        }
                    }
                    for _ in 0..n {
                        let candidate = rng.random_range(0..config.targets + config.targets / 5);
                        if !targets.contains(&candidate) {
                            targets.push(candidate);
                        }
                    }
                    targets.sort_unstable();
                    out.push((t, Fault::SetTargets(targets.clone())));
                }
                _ => {}
            }
            t += Duration::from_millis(rng.random_range(every / 2..every * 3 / 2 + 1));
        }
        // Heal: everyone who is away comes back at the end of the chaos phase.
        for (_, h) in down {
            out.push((config.chaos, Fault::Restart(h)));
        }
        out.sort_by_key(|(at, _)| *at);
        Schedule { faults: out }
    }
}

/// What was injected when, for the checkers.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// `(ms, fault)` in order.
    pub log: Vec<(i64, Fault)>,
    /// The disruptions of `log` as `(start, end)` (end `i64::MAX`: never over), built on the
    /// first [`State::disruptive_between`] after a change.
    disruptions: std::sync::OnceLock<Vec<(i64, i64)>>,
}

impl State {
    /// Notes `fault` at `at_ms`.
    pub fn record(&mut self, at_ms: i64, fault: &Fault) {
        self.log.push((at_ms, fault.clone()));
        self.disruptions = Default::default();
    }

    /// Whether anything other than a graceful change (join, leave, job edit, restart of a
    /// leaver) happened between `from` and `to` (or up to a minute before `from`), or was
    /// still in force then.
    pub fn disruptive_between(&self, from: i64, to: i64) -> bool {
        let since = from - 60_000;
        self.disruptions()
            .iter()
            .take_while(|(start, _)| *start <= to)
            .any(|(_, end)| *end >= since)
    }

    /// When the last disruption (as [`State::disruptive_between`] counts them) that began
    /// at or before `at` began.
    pub fn last_disruption_start(&self, at: i64) -> Option<i64> {
        let d = self.disruptions();
        let n = d.partition_point(|(start, _)| *start <= at);
        n.checked_sub(1).map(|i| d[i].0)
    }

    fn disruptions(&self) -> &[(i64, i64)] {
        self.disruptions.get_or_init(|| disruptions_of(&self.log))
    }

    /// Whether a fault matching `is` was in force at `at` (opened before, not yet closed).
    pub fn in_force(
        &self,
        at: i64,
        opens: impl Fn(&Fault) -> bool,
        closes: impl Fn(&Fault) -> bool,
    ) -> bool {
        let mut open = false;
        for (t, f) in &self.log {
            if *t > at {
                break;
            }
            if opens(f) {
                open = true;
            } else if closes(f) {
                open = false;
            }
        }
        open
    }

    /// The live targets at `at`, given the initial set.
    pub fn targets_at(&self, at: i64, initial: u32) -> Vec<u32> {
        let mut live: Vec<u32> = (0..initial).collect();
        for (t, f) in &self.log {
            if *t > at {
                break;
            }
            if let Fault::SetTargets(ts) = f {
                live = ts.clone();
            }
        }
        live
    }

    /// The spans `(from, to)` in which target `target` was live up to `end`: from the start
    /// (for an initial target) or the job edit that added it, to the edit that removed it or
    /// `end`.
    pub fn live_spans(&self, target: u32, initial: u32, end: i64) -> Vec<(i64, i64)> {
        let mut spans = Vec::new();
        let mut since = (target < initial).then_some(crate::EPOCH_MS);
        for (t, f) in &self.log {
            if *t > end {
                break;
            }
            if let Fault::SetTargets(ts) = f {
                match (since, ts.contains(&target)) {
                    (None, true) => since = Some(*t),
                    (Some(from), false) => {
                        spans.push((from, *t));
                        since = None;
                    }
                    _ => {}
                }
            }
        }
        if let Some(from) = since {
            spans.push((from, end));
        }
        spans
    }

    /// When target `target` last stopped being live at or before `at`, if it is not live then.
    pub fn removed_at(&self, target: u32, at: i64, initial: u32) -> Option<i64> {
        let mut live = target < initial;
        let mut removed = None;
        for (t, f) in &self.log {
            if *t > at {
                break;
            }
            if let Fault::SetTargets(ts) = f {
                let now_live = ts.contains(&target);
                if live && !now_live {
                    removed = Some(*t);
                }
                live = now_live;
            }
        }
        removed
    }
}

/// The disruptions in `log`, sorted by start: each fault that opens (a partition, an outage,
/// a crash, a flap, a slow link) until what closes it (a crash: the host's restart), or
/// forever; a session expiry as an instant. A fault opened again before it closed counts
/// from its last opening.
fn disruptions_of(log: &[(i64, Fault)]) -> Vec<(i64, i64)> {
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum Key<'a> {
        Zk(&'a str),
        Kafka(&'a str),
        Broker,
        Exporter(&'a str, u32),
        Slow(&'a str, u32),
        Flap(u32),
        Crash(&'a str),
    }
    let mut open: std::collections::BTreeMap<Key<'_>, i64> = Default::default();
    let mut out = Vec::new();
    for (at, f) in log {
        let key = match f {
            Fault::Restart(h) => {
                if let Some(start) = open.remove(&Key::Crash(h)) {
                    out.push((start, *at));
                }
                continue;
            }
            Fault::Expire(_) => {
                out.push((*at, *at));
                continue;
            }
            Fault::ZkPartition(h, _) => Key::Zk(h),
            Fault::KafkaPartition(h, _) => Key::Kafka(h),
            Fault::KafkaOutage(_) => Key::Broker,
            Fault::ExporterPartition(h, e, _) => Key::Exporter(h, *e),
            Fault::SlowLink(h, e, _) => Key::Slow(h, *e),
            Fault::Flap(t, _) => Key::Flap(*t),
            Fault::Crash(h) => Key::Crash(h),
            _ => continue,
        };
        let opening = matches!(
            f,
            Fault::ZkPartition(_, true)
                | Fault::KafkaPartition(_, true)
                | Fault::KafkaOutage(true)
                | Fault::ExporterPartition(_, _, true)
                | Fault::Flap(_, true)
                | Fault::Crash(_)
        ) || matches!(f, Fault::SlowLink(_, _, ms) if *ms > 1);
        if opening {
            open.insert(key, *at);
        } else if let Some(start) = open.remove(&key) {
            out.push((start, *at));
        }
    }
    out.extend(open.into_values().map(|start| (start, i64::MAX)));
    out.sort_unstable();
    out
}
