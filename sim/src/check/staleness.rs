//! (d) Staleness markers only where DESIGN.md puts them: a series gone from a successful
//! scrape, every series of a failed scrape, every series of a target removed from discovery —
//! and never for a target that merely moved to another member.

use std::collections::BTreeMap;

use super::Violation;
use crate::exporter::series_at;
use crate::faults::{Fault, State};
use crate::trace::Seen;
use crate::{World, EPOCH_MS};

/// How long after a scrape's start its request reaches the exporter, at most: on a new
/// connection the handshake and then the request each cross the link, and a slow link holds
/// each crossing for at most 800 ms; plus a step.
const REQUEST_DELAY_MS_MAX: i64 = 2 * 800 + 200;
/// How long after a job edit the scrapers may still be learning of it.
const EDIT_DELAY_MS_MAX: i64 = 5_000;

/// Checks every marker that reached the bus.
pub fn check(
    world: &World,
    state: &State,
    trace: &[(i64, Seen)],
    scrapes: &BTreeMap<u32, Vec<(i64, &str, bool)>>,
) -> Vec<Violation> {
    let cfg = &world.config;
    let mut out = Vec::new();
    for (_, seen) in trace {
        let Seen::Marker {
            scraper,
            target,
            series,
            at_ms,
        } = seen
        else {
            continue;
        };
        let at = *at_ms;
        // Removed from discovery around then.
        let removed = state.log.iter().any(|(t, f)| {
            *t <= at + 1
                && *t >= at - EDIT_DELAY_MS_MAX
                && matches!(f, Fault::SetTargets(ts) if !ts.contains(target))
        }) || !state.targets_at(at, cfg.targets).contains(target);
        if removed {
            continue;
        }
        // The scrape the marker belongs to: this scraper's request right after `at`.
        let scrape = scrapes.get(target).and_then(|v| {
            v.iter().find(|(t, s, _)| {
                *s == scraper.as_str() && *t >= at && *t <= at + REQUEST_DELAY_MS_MAX
            })
        });
        // A partition between this scraper and the target's exporter host that was in force
        // during the scrape, or began before its timeout ran out, may have swallowed the
        // answer: the scrape failed. (A slow link only delays it: three crossings of at most
        // 800 ms stay well inside the timeout, so its scrape is found above.)
        let timeout_ms = (cfg.interval.as_millis() as i64 / 3).max(1000);
        let exporter = target % cfg.exporters;
        let cut = |f: &Fault| matches!(f, Fault::ExporterPartition(h, e, true) if h == scraper && *e == exporter);
        let healed = |f: &Fault| matches!(f, Fault::ExporterPartition(h, e, false) if h == scraper && *e == exporter);
        let cut_off = state.in_force(at, cut, healed)
            || state
                .log
                .iter()
                .any(|(t, f)| *t >= at && *t <= at + timeout_ms && cut(f));
        let justified = cut_off
            || match scrape {
                Some((_, _, false)) => true, // a failed scrape ends every series
                Some((t, _, true)) => {
                    // A series gone from a successful scrape (synthetic series never go).
                    match series
                        .strip_prefix("sim_series{k=")
                        .and_then(|k| k.strip_suffix('}'))
                        .and_then(|k| k.parse::<u32>().ok())
                    {
                        Some(k) => !series_at(*target, *t / 1000).any(|j| j == k),
                        None => false,
                    }
                }
                // No request reached the exporter and nothing cut the link: no reason.
                None => false,
            };
        if !justified {
            out.push(Violation {
                invariant: "d-staleness",
                at_ms: at - EPOCH_MS,
                detail: format!("{scraper} wrote a staleness marker for {series} of t{target} at {:.1}s with no reason (target live, series present, scrape fine)", (at - EPOCH_MS) as f64 / 1000.0),
            });
        }
    }
    out.truncate(20);
    out
}
