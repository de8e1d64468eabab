//! The trace of a run: what the simulated world saw, in simulated-time order. Checkers read
//! it; its hash proves that one seed gives one run.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seen {
    /// An exporter answered a scrape.
    Scrape {
        /// The target scraped.
        target: u32,
        /// The scraper's host name.
        scraper: String,
        /// 200 (else 503).
        ok: bool,
    },
    /// The Kafka model acknowledged the records of one scrape.
    Acked {
        /// The scraper's host name.
        scraper: String,
        /// The target scraped.
        target: u32,
        /// Samples in the records.
        samples: u32,
        /// The value of its `up` sample; `None`: the records hold only staleness markers.
        up: Option<bool>,
        /// The timestamp of its `up` sample: the scrape's sample time.
        up_at_ms: Option<i64>,
    },
    /// A staleness marker reached the bus.
    Marker {
        /// The scraper's host name.
        scraper: String,
        /// The marker's target.
        target: u32,
        /// The series, as text.
        series: String,
        /// The marker's sample time.
        at_ms: i64,
    },
    /// A fault was injected or healed.
    Fault(String),
    /// A scraper process started (again): the counters of its next `Counters` entry cover
    /// what it did from here.
    Started {
        /// The scraper's host name.
        scraper: String,
    },
    /// The records of one delivery were handed to a scraper's sink.
    Emitted {
        /// The scraper's host name.
        scraper: String,
        /// The records' target.
        target: u32,
        /// Samples in the records.
        samples: u32,
    },
    /// A scraper's delivery counts (its ledger's), when it stopped or at the end of the run.
    Counters {
        /// The scraper's host name.
        scraper: String,
        /// Samples handed to the sink.
        emitted: u64,
        /// Samples the broker acknowledged.
        delivered: u64,
        /// Samples that will never be delivered.
        not_delivered: u64,
        /// Records handed to the sink and not yet settled.
        in_flight: u64,
    },
    /// A submission went to a scraper's spool as one entry: one its memory queue could not
    /// hold, or (`journaled`) one written through on its way to the broker.
    Spilled {
        /// The scraper's host name.
        scraper: String,
        /// The records' target.
        target: u32,
        /// Samples in the records.
        samples: u32,
        /// The timestamp of their `up` sample, if they hold one.
        up_at_ms: Option<i64>,
        /// Written through (`SimConfig::spool_write_through`): also handed to the ledger at
        /// once; else it waits on disk.
        journaled: bool,
    },
    /// A spool entry (of this process or an earlier one on the same host) went to the ledger.
    Replayed {
        /// The scraper's host name.
        scraper: String,
        /// Samples in the entry.
        samples: u32,
    },
    /// A submission the spool refused (full): counted, gone.
    SpoolRefused {
        /// The scraper's host name.
        scraper: String,
        /// Samples refused.
        samples: u32,
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
                Seen::Spilled { .. } => "spilled entries",
                Seen::Replayed { .. } => "replayed entries",
                Seen::SpoolRefused { .. } => "refused by the spool",
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
