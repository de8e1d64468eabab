//! The delivery ledger: exact answers of each handler, and a proptest that its counts always
//! balance under any interleaving of submissions, acknowledgements, failures and retries.

use std::time::Duration;

use proptest::prelude::*;
use scrapepool_core::delivery::{
    size_bytes, Admission, DeliveryCounts, FailReason, FailedSamples, Ledger, LedgerConfig,
    Produce, RecordId, Retry,
};
use scrapepool_core::encode::Record;
use scrapepool_core::Timestamp;

fn record(key: u8, payload_len: usize, samples: usize) -> Record {
    Record {
        key: [0, 0, 0, 0, 0, 0, 0, key],
        headers: vec![("encoding", "remote-write".into())],
        payload: vec![7; payload_len],
        samples,
    }
}

fn config(len: usize, bytes: usize) -> LedgerConfig {
    LedgerConfig {
        queue_len_max: len,
        queue_bytes_max: bytes,
        message_timeout: Duration::from_secs(10),
        retry_backoff: Duration::from_millis(500),
    }
}

fn ids(admission: &Admission) -> Vec<RecordId> {
    match admission {
        Admission::Admitted(p) => p.iter().map(|p| p.id).collect(),
        Admission::Rejected { .. } => panic!("rejected: {admission:?}"),
    }
}

#[test]
fn a_submission_is_admitted_whole_with_ids_in_order() {
    let mut l = Ledger::new(config(10, 1 << 20));
    let (a, b) = (record(1, 10, 3), record(1, 20, 4));
    let admission = l.submit(Timestamp(0), vec![a.clone(), b.clone()]);
    assert_eq!(
        admission,
        Admission::Admitted(vec![
            Produce {
                id: RecordId(1),
                record: a.clone()
            },
            Produce {
                id: RecordId(2),
                record: b.clone()
            },
        ])
    );
    assert_eq!(
        l.counts(),
        DeliveryCounts {
            admitted_records: 2,
            admitted_samples: 7,
            in_flight_records: 2,
            in_flight_samples: 7,
            in_flight_bytes: (size_bytes(&a) + size_bytes(&b)) as u64,
            ..Default::default()
        }
    );
    assert!(!l.is_settled());
}

#[test]
fn a_submission_that_does_not_fit_is_rejected_whole_and_counted() {
    let mut l = Ledger::new(config(2, 1 << 20));
    let first = ids(&l.submit(Timestamp(0), vec![record(1, 1, 1), record(1, 1, 2)]));
    assert_eq!(first, vec![RecordId(1), RecordId(2)]);
    // Two in flight, bound 2: the next one is refused, the older ones keep their place.
    assert_eq!(
        l.submit(Timestamp(1), vec![record(2, 1, 4)]),
        Admission::Rejected {
            records: 1,
            samples: 4
        }
    );
    let c = l.counts();
    assert_eq!(
        (c.rejected_samples, c.in_flight_samples, c.emitted_samples()),
        (4, 3, 7)
    );
    assert_eq!(c.not_delivered_samples(), 4);
    // Room again after one settles: admitted, with the next id (a rejection takes none).
    assert!(l.acked(RecordId(1)));
    assert_eq!(
        ids(&l.submit(Timestamp(2), vec![record(2, 1, 4)])),
        vec![RecordId(3)]
    );
}

#[test]
fn the_byte_bound_holds_except_for_an_empty_queue() {
    let one = size_bytes(&record(1, 100, 1));
    let mut l = Ledger::new(config(100, one));
    // Larger than the byte bound, but the queue is empty: tried anyway.
    ids(&l.submit(Timestamp(0), vec![record(1, 100, 1), record(1, 100, 1)]));
    assert!(matches!(
        l.submit(Timestamp(0), vec![record(2, 1, 1)]),
        Admission::Rejected { .. }
    ));
    assert!(l.acked(RecordId(1)) && l.acked(RecordId(2)));
    ids(&l.submit(Timestamp(0), vec![record(3, 100, 1)]));
}

#[test]
fn an_empty_submission_is_admitted_and_counts_nothing() {
    let mut l = Ledger::new(config(1, 1));
    assert_eq!(
        l.submit(Timestamp(0), Vec::new()),
        Admission::Admitted(Vec::new())
    );
    assert_eq!(l.counts(), DeliveryCounts::default());
    assert!(l.is_settled());
}

#[test]
fn each_record_settles_once_and_a_second_answer_is_ignored() {
    let mut l = Ledger::new(config(10, 1 << 20));
    ids(&l.submit(
        Timestamp(0),
        vec![record(1, 1, 3), record(1, 1, 4), record(1, 1, 5)],
    ));
    assert!(l.acked(RecordId(1)));
    assert!(!l.acked(RecordId(1)));
    assert!(!l.failed(RecordId(1), FailReason::Refused));
    assert!(l.failed(RecordId(2), FailReason::Refused));
    assert!(l.failed(RecordId(3), FailReason::ClientQueueFull));
    assert!(!l.acked(RecordId(99)));
    assert_eq!(l.attempt_failed(Timestamp(0), RecordId(3)), None);
    let c = l.counts();
    assert_eq!(
        c,
        DeliveryCounts {
            admitted_records: 3,
            admitted_samples: 12,
            delivered_records: 1,
            delivered_samples: 3,
            failed_records: 2,
            failed_samples: FailedSamples {
                client_queue_full: 5,
                timed_out: 0,
                refused: 4
            },
            ..Default::default()
        }
    );
    assert_eq!(c.not_delivered_samples(), 9);
    assert!(l.is_settled());
}

#[test]
fn a_failed_attempt_is_retried_until_the_message_timeout() {
    let mut l = Ledger::new(config(10, 1 << 20));
    ids(&l.submit(Timestamp(1_000), vec![record(1, 1, 6)]));
    assert_eq!(
        l.attempt_failed(Timestamp(1_020), RecordId(1)),
        Some(Retry::At(Timestamp(1_520)))
    );
    // Exactly at the timeout: still retried; after it: given up, failed as timed out.
    assert_eq!(
        l.attempt_failed(Timestamp(11_000), RecordId(1)),
        Some(Retry::At(Timestamp(11_500)))
    );
    let c = l.counts();
    assert_eq!(
        (c.retries, c.in_flight_samples, c.failed_samples.total()),
        (2, 6, 0),
        "a retried record is still in flight, counted once"
    );
    assert_eq!(
        l.attempt_failed(Timestamp(11_001), RecordId(1)),
        Some(Retry::GaveUp)
    );
    let c = l.counts();
    assert_eq!(c.failed_samples.get(FailReason::TimedOut), 6);
    assert_eq!((c.failed_records, c.in_flight_records), (1, 0));
    assert_eq!(l.attempt_failed(Timestamp(11_002), RecordId(1)), None);
}

#[test]
fn a_retried_record_that_is_acknowledged_counts_once_as_delivered() {
    let mut l = Ledger::new(config(10, 1 << 20));
    ids(&l.submit(Timestamp(0), vec![record(1, 1, 6)]));
    for t in [20, 540, 1_060] {
        assert!(matches!(
            l.attempt_failed(Timestamp(t), RecordId(1)),
            Some(Retry::At(_))
        ));
    }
    assert!(l.acked(RecordId(1)));
    let c = l.counts();
    assert_eq!(
        (
            c.delivered_samples,
            c.failed_samples.total(),
            c.retries,
            c.emitted_samples()
        ),
        (6, 0, 3, 6)
    );
}

#[test]
fn fail_reasons_have_distinct_names() {
    let names: std::collections::BTreeSet<&str> =
        FailReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names.len(), FailReason::ALL.len());
}

#[derive(Clone, Debug)]
enum Op {
    Submit(Vec<(u8, usize)>),
    Ack(u8),
    Fail(u8, u8),
    AttemptFailed(u8),
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec((0u8..4, 0usize..50), 0..5).prop_map(Op::Submit),
        3 => any::<u8>().prop_map(Op::Ack),
        1 => (any::<u8>(), 0u8..3).prop_map(|(i, r)| Op::Fail(i, r)),
        3 => any::<u8>().prop_map(Op::AttemptFailed),
        1 => any::<u16>().prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn counts_always_balance(ops in prop::collection::vec(op(), 1..120), len in 1usize..12) {
        let mut l = Ledger::new(config(len, 400));
        let mut now = Timestamp(0);
        // Our own model: which ids are in flight, with their samples.
        let mut in_flight: Vec<(RecordId, u64)> = Vec::new();
        let mut submitted = 0u64;
        for op in ops {
            match op {
                Op::Submit(rs) => {
                    let records: Vec<Record> =
                        rs.iter().map(|&(k, s)| record(k, s * 3, s)).collect();
                    let samples: u64 = rs.iter().map(|&(_, s)| s as u64).sum();
                    submitted += samples;
                    let before = l.counts();
                    match l.submit(now, records) {
                        Admission::Admitted(p) => {
                            prop_assert_eq!(p.len(), rs.len());
                            in_flight.extend(p.iter().map(|p| (p.id, p.record.samples as u64)));
                        }
                        Admission::Rejected { samples: s, .. } => {
                            prop_assert_eq!(s, samples);
                            prop_assert!(before.in_flight_records > 0, "an empty queue takes anything");
                        }
                    }
                }
                Op::Ack(i) | Op::Fail(i, _) | Op::AttemptFailed(i) if in_flight.is_empty() => {
                    let _ = i;
                    prop_assert!(!l.acked(RecordId(u64::MAX)));
                }
                Op::Ack(i) => {
                    let (id, _) = in_flight.remove(i as usize % in_flight.len());
                    prop_assert!(l.acked(id));
                    prop_assert!(!l.acked(id), "a second answer is ignored");
                }
                Op::Fail(i, r) => {
                    let (id, _) = in_flight.remove(i as usize % in_flight.len());
                    prop_assert!(l.failed(id, FailReason::ALL[r as usize]));
                }
                Op::AttemptFailed(i) => {
                    let k = i as usize % in_flight.len();
                    match l.attempt_failed(now, in_flight[k].0) {
                        Some(Retry::At(t)) => prop_assert!(t > now),
                        Some(Retry::GaveUp) => { in_flight.remove(k); }
                        None => prop_assert!(false, "an id in flight is known"),
                    }
                }
                Op::Advance(ms) => now = now + Duration::from_millis(u64::from(ms) * 4),
            }
            let c = l.counts();
            prop_assert_eq!(c.admitted_samples, c.delivered_samples + c.failed_samples.total() + c.in_flight_samples);
            prop_assert_eq!(c.admitted_records, c.delivered_records + c.failed_records + c.in_flight_records);
            prop_assert_eq!(c.emitted_samples(), submitted);
            prop_assert_eq!(c.in_flight_records, in_flight.len() as u64);
            prop_assert_eq!(c.in_flight_samples, in_flight.iter().map(|(_, s)| s).sum::<u64>());
            prop_assert_eq!(l.is_settled(), in_flight.is_empty());
        }
    }
}
