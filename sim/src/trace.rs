//! The trace of a run: what the simulated world saw, in simulated-time order. Checkers read
//! it; its hash proves that one seed gives one run.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seen {
    /// An exporter answered a scrape of `target` from `scraper` (`ok`: 200, else 503).
    Scrape {
        target: u32,
        scraper: String,
        ok: bool,
    },
    /// The Kafka model acknowledged the records of one scrape of `target` by `scraper`, holding
    /// `samples` samples; `up` is the value of its `up` sample (none: only staleness markers).
    Acked {
        scraper: String,
        target: u32,
        samples: u32,
        up: Option<bool>,
    },
    /// A staleness marker reached the bus: series `series` of `target`, sample time `at_ms`.
    Marker {
        scraper: String,
        target: u32,
        series: String,
        at_ms: i64,
    },
    /// A fault was injected or healed.
    Fault(String),
    /// A scraper process started (again): the counters of its next `Counters` entry cover
    /// what it did from here.
    Started { scraper: String },
    /// A scraper's node handed the records of one delivery of `target` to the sink, holding
    /// `samples` samples.
    Emitted {
        scraper: String,
        target: u32,
        samples: u32,
    },
    /// A scraper's node reported its counters when it stopped or at the end of the run.
    Counters {
        scraper: String,
        emitted: u64,
        delivered: u64,
        not_delivered: u64,
        in_flight: u64,
    },
}

/// The shared, append-only trace.
#[derive(Default)]
pub struct Trace {
    lines: Mutex<Vec<(i64, Seen)>>,
}

impl Trace {
    /// Appends `what` at simulated time `at_ms`.
    pub fn push(&self, at_ms: i64, what: Seen) {
        self.lines.lock().expect("trace lock").push((at_ms, what));
    }

    /// Everything so far.
    pub fn snapshot(&self) -> Vec<(i64, Seen)> {
        self.lines.lock().expect("trace lock").clone()
    }

    /// Takes the whole trace out (at the end of a run).
    pub fn take(&self) -> Vec<(i64, Seen)> {
        std::mem::take(&mut *self.lines.lock().expect("trace lock"))
    }

    /// How many entries of each kind, for the summary.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for (_, what) in self.lines.lock().expect("trace lock").iter() {
            let k = match what {
                Seen::Scrape { .. } => "scrapes",
                Seen::Acked { .. } => "acked records",
                Seen::Marker { .. } => "markers",
                Seen::Fault(_) => "faults",
                Seen::Started { .. } => "starts",
                Seen::Emitted { .. } => "emitted records",
                Seen::Counters { .. } => "counters",
            };
            *m.entry(k).or_default() += 1;
        }
        m
    }
}

/// A digest of a whole trace (FNV-1a over every entry): equal digests, equal runs.
pub fn digest(trace: &[(i64, Seen)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    for entry in trace {
        entry.hash(&mut h);
    }
    h.finish()
}

/// FNV-1a: a fixed, seedless hash, so a digest means the same in every process.
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
