//! (c) Every scraped record reaches the sink, and every sample handed to the sink is
//! acknowledged or counted as not delivered — each counted once.
//!
//! The trace is read per *life* of a scraper process (from its `Started` to its final
//! `Counters`, or to its crash, or to a restart that finds it still draining: a crashed
//! scraper's queue dies with it, which is what a crash means, so its counters are never
//! judged).
//!
//! Soundness: every record the Kafka model acknowledged was scraped by its sender (an `up 1`
//! record needs a 200 from the exporter; a scrape cut off by a partition writes `up 0`
//! without reaching one); a node never counts more samples delivered than the broker
//! acknowledged from it, nor more settled than it emitted; each scraper host's scrapes of
//! one target reach the bus in the order they were taken, across its processes' lives (the
//! `up` timestamps the broker acknowledged from it only increase: a spool replays before
//! anything new, and the broker keeps a producer's order).
//! Completeness: every exporter answer leads to a delivery of that target handed to the sink
//! within the scrape timeout (unless the life ended first); the node's emitted count is what
//! the sink was handed; a life that ended with nothing in flight has every emitted sample
//! delivered or counted, and its delivered count is what the broker acknowledged; a scraper
//! that left gracefully left nothing unsettled unless Kafka was out of reach.

use std::collections::{BTreeMap, BTreeSet};

use super::{Run, Summary, Violation};
use crate::faults::Fault;
use crate::trace::Seen;
use crate::EPOCH_MS;

/// How long after an exporter's answer the scrape's records reach the sink, beyond the
/// scrape timeout: slow links and scheduling.
pub const EMIT_SLACK_MS: i64 = 2_000;

#[derive(Default)]
struct Life<'a> {
    scraper: &'a str,
    started: i64,
    /// `(at, emitted, delivered, not delivered, in flight)` when it ended gracefully or the
    /// run ended.
    counters: Option<(i64, u64, u64, u64, u64)>,
    /// When it crashed.
    crashed: Option<i64>,
    emitted: u64,
    /// Samples this life spilled, replayed (from any life's spool) and had refused by its
    /// spool: the ledger saw the replays, not the spills.
    spilled: u64,
    replayed: u64,
    refused: u64,
    acked: u64,
    answers: BTreeMap<u32, Vec<i64>>,
    emissions: BTreeMap<u32, Vec<i64>>,
}

/// Checks acknowledgements against scrapes, and each scraper's accounting.
pub fn check(run: &Run<'_>, summary: &mut Summary) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut lives: Vec<Life<'_>> = Vec::new();
    let mut current: BTreeMap<&str, usize> = BTreeMap::new();
    let mut crashes = run
        .faults
        .log
        .iter()
        .filter_map(|(at, f)| match f {
            // A restart of a member still draining from its leave kills that life too.
            Fault::Crash(h) | Fault::Restart(h) => Some((*at, h.as_str())),
            _ => None,
        })
        .peekable();
    // Which scrapers an exporter answered for which targets, and which of them with a 200.
    let mut scraped: BTreeSet<(&str, u32)> = BTreeSet::new();
    let mut scraped_ok: BTreeSet<(&str, u32)> = BTreeSet::new();
    // Per scraper host and target: the last acknowledged `up` timestamp.
    let mut last_up: BTreeMap<(&str, u32), i64> = BTreeMap::new();
    fn life<'a>(
        lives: &mut Vec<Life<'a>>,
        current: &mut BTreeMap<&'a str, usize>,
        scraper: &'a str,
        at: i64,
    ) -> usize {
        *current.entry(scraper).or_insert_with(|| {
            lives.push(Life {
                scraper,
                started: at,
                ..Life::default()
            });
            lives.len() - 1
        })
    }
    for (at, seen) in run.trace {
        while let Some((t, h)) = crashes.next_if(|(t, _)| t <= at) {
            if let Some(i) = current.remove(h) {
                lives[i].crashed = Some(t);
            }
        }
        match seen {
            Seen::Started { scraper } => {
                current.remove(scraper.as_str());
                life(&mut lives, &mut current, scraper, *at);
            }
            Seen::Scrape {
                target,
                scraper,
                ok,
            } => {
                scraped.insert((scraper.as_str(), *target));
                if *ok {
                    scraped_ok.insert((scraper.as_str(), *target));
                }
                // An answer to a crashed host's request belongs to no life.
                if let Some(i) = current.get(scraper.as_str()) {
                    lives[*i].answers.entry(*target).or_default().push(*at);
                }
            }
            Seen::Emitted {
                scraper,
                target,
                samples,
            } => {
                let i = life(&mut lives, &mut current, scraper, *at);
                lives[i].emitted += u64::from(*samples);
                lives[i].emissions.entry(*target).or_default().push(*at);
            }
            Seen::Acked {
                scraper,
                target,
                samples,
                up,
                up_at_ms,
            } => {
                summary.samples_delivered += u64::from(*samples);
                let i = life(&mut lives, &mut current, scraper, *at);
                lives[i].acked += u64::from(*samples);
                let key = (scraper.as_str(), *target);
                if let Some(up_at) = up_at_ms {
                    if let Some(last) = last_up.insert(key, *up_at).filter(|l| l >= up_at) {
                        out.push(Violation {
                            invariant: "c-delivery",
                            at_ms: at - EPOCH_MS,
                            detail: format!(
                                "{scraper}'s scrape of t{target} at {:.3}s reached the bus after its scrape at {:.3}s",
                                (up_at - EPOCH_MS) as f64 / 1000.0,
                                (last - EPOCH_MS) as f64 / 1000.0
                            ),
                        });
                    }
                }
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
                let i = life(&mut lives, &mut current, scraper, *at);
                lives[i].counters = Some((*at, *emitted, *delivered, *not_delivered, *in_flight));
                current.remove(scraper.as_str());
            }
            // A journaled submission went to the ledger too: the ledger counts it.
            Seen::Spilled {
                journaled: true, ..
            } => {}
            Seen::Spilled {
                scraper, samples, ..
            } => {
                let i = life(&mut lives, &mut current, scraper, *at);
                lives[i].spilled += u64::from(*samples);
            }
            Seen::Replayed { scraper, samples } => {
                let i = life(&mut lives, &mut current, scraper, *at);
                lives[i].replayed += u64::from(*samples);
            }
            Seen::SpoolRefused { scraper, samples } => {
                let i = life(&mut lives, &mut current, scraper, *at);
                lives[i].refused += u64::from(*samples);
            }
            Seen::Marker { .. } | Seen::Fault(_) => {}
        }
    }
    for (t, h) in crashes {
        if let Some(i) = current.remove(h) {
            lives[i].crashed = Some(t);
        }
    }
    let window = run.timeout_ms() + EMIT_SLACK_MS;
    let kafka_trouble = |scraper: &str, from: i64, to: i64| {
        let opens = |f: &Fault| {
            matches!(f, Fault::KafkaOutage(true))
                || matches!(f, Fault::KafkaPartition(h, true) if h == scraper)
        };
        let closes = |f: &Fault| {
            matches!(f, Fault::KafkaOutage(false))
                || matches!(f, Fault::KafkaPartition(h, false) if h == scraper)
        };
        run.faults.in_force(from, opens, closes)
            || run
                .faults
                .log
                .iter()
                .any(|(t, f)| *t >= from && *t <= to && opens(f))
    };
    for l in &lives {
        let s = l.scraper;
        let ended = l.counters.map(|c| c.0).or(l.crashed).unwrap_or(run.end_ms);
        // Every answer reached the sink: match answers to later emissions in order.
        for (target, answers) in &l.answers {
            let emissions = l.emissions.get(target).map(Vec::as_slice).unwrap_or(&[]);
            let mut e = 0;
            for &a in answers {
                if a + window >= ended {
                    break;
                }
                while e < emissions.len() && emissions[e] < a {
                    e += 1;
                }
                if e < emissions.len() && emissions[e] <= a + window {
                    e += 1;
                } else {
                    out.push(Violation {
                        invariant: "c-delivery",
                        at_ms: a - EPOCH_MS,
                        detail: format!("the exporter answered {s}'s scrape of t{target} at {:.1}s but no record of it reached the sink within {:.1}s", (a - EPOCH_MS) as f64 / 1000.0, window as f64 / 1000.0),
                    });
                }
            }
        }
        let Some((at, emitted, delivered, not_delivered, in_flight)) = l.counters else {
            continue;
        };
        let life_of = format!(
            "{s} (started at {:.1}s)",
            (l.started - EPOCH_MS) as f64 / 1000.0
        );
        let mut bad = |detail: String| {
            out.push(Violation {
                invariant: "c-delivery",
                at_ms: at - EPOCH_MS,
                detail,
            })
        };
        if delivered > l.acked {
            bad(format!("{life_of} counted {delivered} samples delivered, the broker acknowledged {} of them", l.acked));
        }
        if delivered + not_delivered > emitted {
            bad(format!("{life_of} counted {delivered} delivered + {not_delivered} not delivered of {emitted} emitted"));
        }
        // What the sink was handed went to the ledger, the spool or was refused by the
        // spool; the ledger also saw the replays.
        if emitted + l.spilled + l.refused != l.emitted + l.replayed {
            bad(format!(
                "{life_of} counted {emitted} samples emitted (with {} replayed), the sink was handed {} ({} spilled, {} refused by the spool)",
                l.replayed, l.emitted, l.spilled, l.refused
            ));
        }
        if in_flight == 0 && delivered + not_delivered != emitted {
            bad(format!("{life_of} left with emitted {emitted} != delivered {delivered} + not delivered {not_delivered}, nothing in flight"));
        }
        if in_flight == 0 && delivered != l.acked {
            bad(format!("{life_of} left with nothing in flight, counted {delivered} delivered, the broker acknowledged {}", l.acked));
        }
        let graceful = at < run.end_ms;
        let flush = scrapepool_adapters::driver::EXIT_FLUSH_TIMEOUT.as_millis() as i64;
        if graceful
            && in_flight > 0
            && !kafka_trouble(
                s,
                at - flush - crate::kafka::MESSAGE_TIMEOUT.as_millis() as i64,
                at,
            )
        {
            bad(format!(
                "{life_of} left with {in_flight} deliveries unsettled and Kafka in reach"
            ));
        }
    }
    out.sort_by_key(|v| v.at_ms);
    out.truncate(20);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{at, config, scrape};
    use crate::faults::State;

    fn emitted(s: f64, target: u32, samples: u32) -> (i64, Seen) {
        (
            at(s),
            Seen::Emitted {
                scraper: "s0".into(),
                target,
                samples,
            },
        )
    }

    fn acked(s: f64, target: u32, samples: u32, up: Option<bool>) -> (i64, Seen) {
        acked_up_at(s, target, samples, up, None)
    }

    /// As [`acked`], of the scrape whose `up` sample is stamped at `up_s`.
    fn acked_up_at(
        s: f64,
        target: u32,
        samples: u32,
        up: Option<bool>,
        up_s: Option<f64>,
    ) -> (i64, Seen) {
        (
            at(s),
            Seen::Acked {
                scraper: "s0".into(),
                target,
                samples,
                up,
                up_at_ms: up_s.map(at),
            },
        )
    }

    fn counters(s: f64, emitted: u64, delivered: u64, in_flight: u64) -> (i64, Seen) {
        (
            at(s),
            Seen::Counters {
                scraper: "s0".into(),
                emitted,
                delivered,
                not_delivered: 0,
                in_flight,
            },
        )
    }

    /// Two scrapes of t1 by s0, each emitted and acknowledged; then a graceful exit.
    fn good() -> Vec<(i64, Seen)> {
        vec![
            (
                at(0.0),
                Seen::Started {
                    scraper: "s0".into(),
                },
            ),
            scrape(10.0, 1, "s0", true),
            emitted(10.1, 1, 9),
            acked(10.2, 1, 9, Some(true)),
            scrape(25.0, 1, "s0", false),
            emitted(25.1, 1, 5),
            acked(25.2, 1, 5, Some(false)),
            counters(40.0, 14, 14, 0),
        ]
    }

    fn judge(trace: &[(i64, Seen)]) -> Vec<Violation> {
        let cfg = config();
        let faults = State::default();
        let run = Run {
            config: &cfg,
            faults: &faults,
            trace,
            end_ms: at(600.0),
            owned: &[],
            live_members: &[],
        };
        check(&run, &mut Summary::default())
    }

    #[test]
    fn every_scrape_emitted_acknowledged_and_counted_passes() {
        assert_eq!(judge(&good()), vec![]);
    }

    #[test]
    fn an_acknowledged_record_never_scraped_is_unsound() {
        let mut trace = good();
        trace.insert(3, acked(10.3, 2, 9, Some(true)));
        let v = judge(&trace);
        assert!(
            v.iter()
                .any(|v| v.detail.contains("no exporter ever answered")),
            "{v:?}"
        );
    }

    #[test]
    fn a_scrape_acknowledged_after_a_later_one_of_its_target_is_unsound() {
        let mut trace = good();
        trace[3] = acked_up_at(10.2, 1, 9, Some(true), Some(10.0));
        trace[6] = acked_up_at(25.2, 1, 5, Some(false), Some(25.0));
        assert_eq!(judge(&trace), vec![]);
        // The broker acknowledged the scrape of 25 s first.
        trace[6] = acked_up_at(25.2, 1, 5, Some(false), Some(5.0));
        let v = judge(&trace);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].detail.contains(
                "s0's scrape of t1 at 5.000s reached the bus after its scrape at 10.000s"
            ),
            "{v:?}"
        );
    }

    #[test]
    fn counting_a_retried_record_twice_is_unsound() {
        let mut trace = good();
        trace.pop();
        trace.push(counters(40.0, 14, 23, 0));
        let v = judge(&trace);
        assert!(
            v.iter().any(|v| v
                .detail
                .contains("counted 23 samples delivered, the broker acknowledged 14")),
            "{v:?}"
        );
    }

    #[test]
    fn a_scrape_whose_records_never_reach_the_sink_is_incomplete() {
        let mut trace = good();
        // The second scrape's record is dropped without being counted anywhere.
        trace.retain(|(t, _)| *t != at(25.1) && *t != at(25.2));
        trace.pop();
        trace.push(counters(40.0, 9, 9, 0));
        let v = judge(&trace);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].detail.contains("no record of it reached the sink"),
            "{v:?}"
        );
    }

    #[test]
    fn a_delivery_never_settled_is_incomplete() {
        let mut trace = good();
        trace.retain(|(t, _)| *t != at(25.2));
        trace.pop();
        trace.push(counters(40.0, 14, 9, 1));
        let v = judge(&trace);
        assert!(
            v.iter()
                .any(|v| v.detail.contains("1 deliveries unsettled")),
            "{v:?}"
        );
    }

    #[test]
    fn a_draining_life_restarted_is_judged_up_to_the_restart() {
        let cfg = config();
        let mut faults = State::default();
        faults.record(at(20.0), &Fault::Leave("s0".into()));
        faults.record(at(25.0), &Fault::Restart("s0".into()));
        // The draining life's last request reaches the exporter at the instant of the
        // restart, before the new life starts: it belongs to no life.
        let trace = vec![
            (
                at(0.0),
                Seen::Started {
                    scraper: "s0".into(),
                },
            ),
            scrape(10.0, 1, "s0", true),
            emitted(10.1, 1, 9),
            scrape(25.0, 1, "s0", true),
            (
                at(25.0),
                Seen::Started {
                    scraper: "s0".into(),
                },
            ),
        ];
        let run = Run {
            config: &cfg,
            faults: &faults,
            trace: &trace,
            end_ms: at(600.0),
            owned: &[],
            live_members: &[],
        };
        assert_eq!(check(&run, &mut Summary::default()), vec![]);
        // The same answer after the new life started is that life's to deliver.
        let mut late = trace.clone();
        late.swap(3, 4);
        let run = Run {
            trace: &late,
            ..run
        };
        let v = check(&run, &mut Summary::default());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].detail.contains("no record of it reached the sink"),
            "{v:?}"
        );
    }

    #[test]
    fn a_crashed_life_is_judged_up_to_its_crash_and_not_after() {
        let cfg = config();
        let mut faults = State::default();
        faults.record(at(26.0), &Fault::Crash("s0".into()));
        // Answered at 25 s, crashed at 26 s before the records were emitted: no violation.
        let trace = vec![
            (
                at(0.0),
                Seen::Started {
                    scraper: "s0".into(),
                },
            ),
            scrape(10.0, 1, "s0", true),
            emitted(10.1, 1, 9),
            scrape(25.0, 1, "s0", true),
        ];
        let run = Run {
            config: &cfg,
            faults: &faults,
            trace: &trace,
            end_ms: at(600.0),
            owned: &[],
            live_members: &[],
        };
        assert_eq!(check(&run, &mut Summary::default()), vec![]);
    }
}
