//! (c) Every sample the Kafka model acknowledged was scraped, and every scraped sample reaches
//! the bus unless it is counted as not delivered. A scrape that failed before its request
//! reached the exporter (a partition) is the one exception: its `up 0` and the other
//! synthetic series are all it writes, and no exporter saw it.
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
    // Which scrapers an exporter answered for which targets, and which of them with a 200.
    let mut scraped: BTreeSet<(&str, u32)> = BTreeSet::new();
    let mut scraped_ok: BTreeSet<(&str, u32)> = BTreeSet::new();
    for (at, seen) in trace {
        match seen {
            Seen::Scrape {
                target,
                scraper,
                ok,
            } => {
                scraped.insert((scraper.as_str(), *target));
                if *ok {
                    scraped_ok.insert((scraper.as_str(), *target));
                }
            }
            Seen::Acked {
                scraper,
                target,
                samples,
                up,
            } => {
                summary.samples_delivered += u64::from(*samples);
                let key = (scraper.as_str(), *target);
                if *up == Some(true) && !scraped_ok.contains(&key) {
                    out.push(Violation { invariant: "c-delivery", at_ms: at - EPOCH_MS, detail: format!("{scraper} had {samples} samples of t{target} acknowledged with up 1 but no exporter ever answered it 200") });
                } else if up.is_none() && !scraped.contains(&key) {
                    out.push(Violation { invariant: "c-delivery", at_ms: at - EPOCH_MS, detail: format!("{scraper} had {samples} samples of t{target} acknowledged but never scraped it") });
                }
            }
            Seen::Counters {
                scraper,
                emitted,
                delivered,
                not_delivered,
                in_flight,
            } => {
                summary.samples_not_delivered += not_delivered;
                if delivered + not_delivered > *emitted
                    || (*in_flight == 0 && delivered + not_delivered != *emitted)
                {
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
        if delivered + not_delivered > *emitted
            || (*in_flight == 0 && delivered + not_delivered != *emitted)
        {
            out.push(Violation { invariant: "c-delivery", at_ms: -1, detail: format!("{scraper}: emitted {emitted} != delivered {delivered} + not delivered {not_delivered} (in flight {in_flight})") });
        }
    }
    out.truncate(20);
    out
}
