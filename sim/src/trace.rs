//! The trace of a run: what the simulated world saw, in simulated-time order. Checkers read
//! it; its hash proves that one seed gives one run.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// An exporter answered a scrape of `target` from `scraper` (`ok`: 200, else 503).
    Scrape { target: u32, scraper: String, ok: bool },
    /// The Kafka model acknowledged a record of `scraper` holding `samples` samples of `target`.
    Acked { scraper: String, target: u32, samples: u32 },
    /// A staleness marker reached the bus: series `series` of `target`, sample time `at_ms`.
    Marker { scraper: String, target: u32, series: String, at_ms: i64 },
    /// A fault was injected or healed.
    Fault(String),
    /// A scraper's node reported its counters when it stopped or at the end.
    Counters { scraper: String, emitted: u64, delivered: u64, not_delivered: u64, in_flight: u64 },
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

    /// A digest of the whole trace (FNV-1a over its debug rendering): equal digests, equal runs.
    pub fn digest(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (at, what) in self.lines.lock().expect("trace lock").iter() {
            for b in format!("{at} {what:?}\n").bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
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
                Seen::Counters { .. } => "counters",
            };
            *m.entry(k).or_default() += 1;
        }
        m
    }
}
