//! (c) Every sample the Kafka model acknowledged was scraped, and every scraped sample reaches
//! the bus unless it is counted as not delivered.
//!
//! A crashed scraper's queue dies with it; those samples are neither acknowledged nor counted,
//! which is what a crash means. The accounting is therefore checked for every scraper that
//! left gracefully (its final counters are in the trace) and every one alive at the end.

use std::collections::BTreeSet;

use super::{Answers, Summary, Violation};
use crate::trace::Seen;
use crate::EPOCH_MS;

/// Checks acknowledgements against scrapes, and each scraper's accounting.
pub fn check(trace: &[(i64, Seen)], answers: &Answers, summary: &mut Summary) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut scraped: BTreeSet<(&str, u32)> = BTreeSet::new();
    for (at, seen) in trace {
        match seen {
            Seen::Scrape { target, scraper, ok: _ } => {
                scraped.insert((scraper.as_str(), *target));
            }
            Seen::Acked { scraper, target, samples } => {
                summary.samples_delivered += u64::from(*samples);
                if !scraped.contains(&(scraper.as_str(), *target)) {
                    out.push(Violation { invariant: "c-delivery", at_ms: at - EPOCH_MS, detail: format!("{scraper} had {samples} samples of t{target} acknowledged but never scraped it") });
                }
            }
            Seen::Counters { scraper, emitted, delivered, not_delivered, in_flight } => {
                summary.samples_not_delivered += not_delivered;
                if delivered + not_delivered > *emitted || (*in_flight == 0 && delivered + not_delivered != *emitted) {
                    out.push(Violation {
                        invariant: "c-delivery",
                        at_ms: at - EPOCH_MS,
                        detail: format!("{scraper} left with emitted {emitted} != delivered {delivered} + not delivered {not_delivered} (in flight {in_flight})"),
                    });
                }
            }
            _ => {}
        }
    }
    for (scraper, (emitted, delivered, not_delivered, in_flight), _) in answers {
        summary.samples_not_delivered += not_delivered;
        if delivered + not_delivered > *emitted || (*in_flight == 0 && delivered + not_delivered != *emitted) {
            out.push(Violation { invariant: "c-delivery", at_ms: -1, detail: format!("{scraper}: emitted {emitted} != delivered {delivered} + not delivered {not_delivered} (in flight {in_flight})") });
        }
    }
    out.truncate(20);
    out
}
