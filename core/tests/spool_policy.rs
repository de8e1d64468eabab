//! The spool policy: exact routes (admit, spill, refuse), replay order, release cursors,
//! a restart, the entry codec, and a proptest that per-key order and every sample's fate
//! hold under any interleaving of submissions, replays and answers.

use std::time::Duration;

use proptest::prelude::*;
use scrapepool_core::delivery::{size_bytes, Ledger, LedgerConfig, RecordId};
use scrapepool_core::encode::Record;
use scrapepool_core::spool::{
    decode_entry, encode_entry, DecodeError, EntryId, EntryMeta, OutOfOrder, Route, Spool,
    SpoolConfig, FRAME_BYTES,
};
use scrapepool_core::Timestamp;

fn record(key: u8, seq: u32, samples: usize) -> Record {
    Record {
        key: [0, 0, 0, 0, 0, 0, 0, key],
        headers: vec![("encoding", "remote-write".into()), ("job", "node".into())],
        payload: seq.to_le_bytes().to_vec(),
        samples,
    }
}

fn ledger(len: usize) -> Ledger {
    Ledger::new(LedgerConfig {
        queue_len_max: len,
        queue_bytes_max: usize::MAX,
        message_timeout: Duration::from_secs(10),
        retry_backoff: Duration::from_millis(500),
    })
}

fn disk(records: &[Record]) -> u64 {
    FRAME_BYTES + encode_entry(records).len() as u64
}

const T: Timestamp = Timestamp(1_000);

#[test]
fn with_room_a_submission_goes_to_the_ledger() {
    let mut l = ledger(2);
    let mut s = Spool::new(SpoolConfig::overflow(1 << 20), vec![], EntryId(1));
    let Route::Admitted(p) = s.submit(&mut l, T, vec![record(1, 1, 3)]) else {
        panic!("not admitted")
    };
    assert_eq!(p.len(), 1);
    assert_eq!(l.counts().admitted_samples, 3);
    assert_eq!(s.counts().spilled_samples, 0);
    assert!(s.is_empty());
}

#[test]
fn a_full_queue_spills_and_everything_after_goes_behind() {
    let mut l = ledger(1);
    let mut s = Spool::new(SpoolConfig::overflow(1 << 20), vec![], EntryId(7));
    let Route::Admitted(first) = s.submit(&mut l, T, vec![record(1, 1, 1)]) else {
        panic!()
    };
    let batch = vec![record(1, 2, 2), record(2, 2, 1)];
    match s.submit(&mut l, T, batch.clone()) {
        Route::Spill { entry, bytes } => {
            assert_eq!(entry, EntryId(7));
            assert_eq!(decode_entry(&bytes).unwrap(), batch);
        }
        other => panic!("{other:?}"),
    }
    // The queue empties: the ledger fits anything, but the spool waits, so this goes behind.
    assert!(l.acked(first[0].id));
    match s.submit(&mut l, T, vec![record(1, 3, 1)]) {
        Route::Spill { entry, .. } => assert_eq!(entry, EntryId(8)),
        other => panic!("{other:?}"),
    }
    let c = s.counts();
    assert_eq!((c.spilled_samples, c.spilled_records, c.entries), (4, 3, 2));
    assert_eq!(
        c.bytes,
        disk(&batch) + disk(&[record(1, 3, 1)]),
        "the bound counts frames and encodings"
    );
    assert_eq!(l.counts().rejected_samples, 0);
}

#[test]
fn replay_is_oldest_first_only_when_the_ledger_fits() {
    let mut l = ledger(2);
    let mut s = Spool::new(SpoolConfig::overflow(1 << 20), vec![], EntryId(1));
    let Route::Admitted(a) = s.submit(&mut l, T, vec![record(1, 1, 1), record(1, 2, 1)]) else {
        panic!()
    };
    let e1 = vec![record(1, 3, 1)];
    let e2 = vec![record(1, 4, 1), record(1, 5, 1)];
    let Route::Spill { bytes: b1, .. } = s.submit(&mut l, T, e1.clone()) else {
        panic!()
    };
    let Route::Spill { bytes: b2, .. } = s.submit(&mut l, T, e2.clone()) else {
        panic!()
    };
    assert_eq!(s.next_replay(&l), None, "the queue is full");
    assert!(l.acked(a[0].id));
    let m = s.next_replay(&l).expect("one slot is free");
    assert_eq!(m, EntryMeta::of(EntryId(1), &e1, b1.len()));
    // Handing back the wrong entry is an error, and changes nothing.
    assert_eq!(
        s.replay(&mut l, T, EntryId(2), e2.clone()),
        Err(OutOfOrder {
            expected: Some(EntryId(1)),
            got: EntryId(2)
        })
    );
    let p1 = s
        .replay(&mut l, T, EntryId(1), decode_entry(&b1).unwrap())
        .unwrap();
    assert_eq!(
        p1.iter().map(|p| &p.record).collect::<Vec<_>>(),
        vec![&e1[0]]
    );
    assert_eq!(
        s.next_replay(&l),
        None,
        "two in flight, entry 2 holds two more"
    );
    assert!(l.acked(a[1].id));
    assert_eq!(s.settled(a[1].id), None, "not from the spool");
    assert_eq!(s.next_replay(&l), None, "one in flight + two > 2");
    assert!(l.acked(p1[0].id));
    assert_eq!(s.settled(p1[0].id), Some(EntryId(1)), "entry 1 released");
    assert_eq!(s.next_replay(&l).map(|m| m.id), Some(EntryId(2)));
    let p2 = s
        .replay(&mut l, T, EntryId(2), decode_entry(&b2).unwrap())
        .unwrap();
    assert!(!s.waiting());
    // With nothing waiting, a new submission that fits goes straight to the ledger again
    // (after the replayed records, which were produced first).
    assert!(l.acked(p2[0].id));
    assert_eq!(s.settled(p2[0].id), None, "entry 2 still has a record out");
    assert!(matches!(
        s.submit(&mut l, T, vec![record(1, 6, 1)]),
        Route::Admitted(_)
    ));
    assert!(l.failed(p2[1].id, scrapepool_core::delivery::FailReason::TimedOut));
    assert_eq!(
        s.settled(p2[1].id),
        Some(EntryId(2)),
        "a failed record settles too"
    );
    let c = s.counts();
    assert_eq!(
        (c.replayed_samples, c.released_entries, c.entries, c.bytes),
        (3, 2, 0, 0)
    );
    assert!(s.is_empty());
}

#[test]
fn release_waits_for_every_earlier_entry() {
    let mut l = ledger(1);
    let mut s = Spool::new(SpoolConfig::overflow(1 << 20), vec![], EntryId(1));
    let Route::Admitted(a) = s.submit(&mut l, T, vec![record(1, 1, 1)]) else {
        panic!()
    };
    let _ = s.submit(&mut l, T, vec![record(1, 2, 1)]);
    let _ = s.submit(&mut l, T, vec![record(1, 3, 1)]);
    assert!(l.acked(a[0].id));
    let p1 = s
        .replay(&mut l, T, EntryId(1), vec![record(1, 2, 1)])
        .unwrap();
    // The ledger is full (1 in flight), but the ledger admits anything when empty only; the
    // policy never asks for entry 2 here.
    assert_eq!(s.next_replay(&l), None);
    assert!(l.acked(p1[0].id));
    assert_eq!(s.settled(p1[0].id), Some(EntryId(1)));
    let p2 = s
        .replay(&mut l, T, EntryId(2), vec![record(1, 3, 1)])
        .unwrap();
    assert!(l.acked(p2[0].id));
    assert_eq!(s.settled(p2[0].id), Some(EntryId(2)));
}

#[test]
fn a_full_spool_refuses_the_newest_submission() {
    let mut l = ledger(1);
    let one = disk(&[record(1, 2, 1)]);
    let mut s = Spool::new(SpoolConfig::overflow(2 * one), vec![], EntryId(1));
    let _ = s.submit(&mut l, T, vec![record(1, 1, 1)]);
    assert!(matches!(
        s.submit(&mut l, T, vec![record(1, 2, 1)]),
        Route::Spill { .. }
    ));
    assert!(matches!(
        s.submit(&mut l, T, vec![record(1, 3, 1)]),
        Route::Spill { .. }
    ));
    assert_eq!(
        s.submit(&mut l, T, vec![record(1, 4, 5)]),
        Route::Refused {
            records: 1,
            samples: 5
        }
    );
    let c = s.counts();
    assert_eq!((c.refused_samples, c.entries, c.bytes), (5, 2, 2 * one));
    assert_eq!(l.counts().rejected_samples, 0, "the ledger did not see it");
}

#[test]
fn a_restart_replays_what_was_on_disk_first_and_numbers_past_it() {
    let e5 = vec![record(1, 1, 2)];
    let e6 = vec![record(1, 2, 3)];
    let restored = vec![
        EntryMeta::of(EntryId(5), &e5, encode_entry(&e5).len()),
        EntryMeta::of(EntryId(6), &e6, encode_entry(&e6).len()),
    ];
    let mut l = ledger(10);
    let mut s = Spool::new(SpoolConfig::overflow(1 << 20), restored, EntryId(1));
    assert_eq!(s.counts().restored_samples, 5);
    assert_eq!(s.counts().bytes, disk(&e5) + disk(&e6));
    // Something waits: a fresh submission goes behind it even with room in the ledger.
    match s.submit(&mut l, T, vec![record(1, 3, 1)]) {
        Route::Spill { entry, .. } => assert_eq!(entry, EntryId(7)),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.next_replay(&l).map(|m| m.id), Some(EntryId(5)));
    let p = s.replay(&mut l, T, EntryId(5), e5).unwrap();
    assert_eq!(s.next_replay(&l).map(|m| m.id), Some(EntryId(6)));
    assert!(l.acked(p[0].id));
    assert_eq!(s.settled(p[0].id), Some(EntryId(5)));
}

#[test]
fn write_through_journals_an_admitted_submission_until_it_is_settled() {
    let mut l = ledger(10);
    let mut s = Spool::new(SpoolConfig::write_through(1 << 20), vec![], EntryId(4));
    let batch = vec![record(1, 1, 2), record(2, 1, 3)];
    let Route::Journaled {
        entry,
        bytes,
        produces,
    } = s.submit(&mut l, T, batch.clone())
    else {
        panic!("not journaled")
    };
    assert_eq!(entry, EntryId(4));
    assert_eq!(decode_entry(&bytes).unwrap(), batch);
    assert_eq!(
        produces
            .iter()
            .map(|p| p.record.clone())
            .collect::<Vec<_>>(),
        batch
    );
    let c = s.counts();
    assert_eq!(
        (c.journaled_samples, c.spilled_samples, c.entries, c.bytes),
        (5, 0, 1, disk(&batch))
    );
    assert_eq!(l.counts().admitted_samples, 5, "admitted at once");
    // Nothing waits: the entry is never offered for replay in this life.
    assert_eq!(s.next_replay(&l), None);
    assert!(l.acked(produces[1].id));
    assert_eq!(s.settled(produces[1].id), None, "one record still out");
    assert!(l.acked(produces[0].id));
    assert_eq!(s.settled(produces[0].id), Some(EntryId(4)));
    assert!(s.is_empty());
}

#[test]
fn write_through_releases_in_entry_order_and_spills_behind_a_full_queue() {
    let mut l = ledger(2);
    let mut s = Spool::new(SpoolConfig::write_through(1 << 20), vec![], EntryId(1));
    let Route::Journaled { produces: a, .. } = s.submit(&mut l, T, vec![record(1, 1, 1)]) else {
        panic!()
    };
    let Route::Journaled { produces: b, .. } = s.submit(&mut l, T, vec![record(1, 2, 1)]) else {
        panic!()
    };
    // The queue is full: the next one waits on disk, and so does everything after it.
    let Route::Spill { entry: c, bytes } = s.submit(&mut l, T, vec![record(1, 3, 1)]) else {
        panic!()
    };
    assert_eq!(c, EntryId(3));
    assert!(l.acked(b[0].id));
    assert_eq!(s.settled(b[0].id), None, "entry 1 is still out");
    assert!(matches!(
        s.submit(&mut l, T, vec![record(1, 4, 1)]),
        Route::Spill { .. }
    ));
    assert!(l.acked(a[0].id));
    assert_eq!(s.settled(a[0].id), Some(EntryId(2)));
    assert_eq!(s.next_replay(&l).map(|m| m.id), Some(EntryId(3)));
    let p = s
        .replay(&mut l, T, EntryId(3), decode_entry(&bytes).unwrap())
        .unwrap();
    assert_eq!(p[0].record, record(1, 3, 1));
    let counts = s.counts();
    assert_eq!((counts.journaled_samples, counts.spilled_samples), (2, 2));
}

#[test]
fn write_through_a_journaled_entry_unsettled_at_a_crash_is_restored() {
    let mut l = ledger(10);
    let mut s = Spool::new(SpoolConfig::write_through(1 << 20), vec![], EntryId(1));
    let mut disk_entries: Vec<(EntryId, Vec<u8>)> = Vec::new();
    for seq in 1..=3 {
        let Route::Journaled { entry, bytes, .. } = s.submit(&mut l, T, vec![record(1, seq, 1)])
        else {
            panic!()
        };
        disk_entries.push((entry, bytes));
    }
    // The process dies before any answer: the next one finds all three, in order.
    let restored: Vec<EntryMeta> = disk_entries
        .iter()
        .map(|(id, b)| EntryMeta::of(*id, &decode_entry(b).unwrap(), b.len()))
        .collect();
    let mut l = ledger(10);
    let mut s = Spool::new(SpoolConfig::write_through(1 << 20), restored, EntryId(4));
    assert_eq!(s.counts().restored_samples, 3);
    // A new scrape goes behind them, on disk.
    assert!(matches!(
        s.submit(&mut l, T, vec![record(1, 4, 1)]),
        Route::Spill {
            entry: EntryId(4),
            ..
        }
    ));
    for (id, bytes) in &disk_entries {
        assert_eq!(s.next_replay(&l).map(|m| m.id), Some(*id));
        let p = s
            .replay(&mut l, T, *id, decode_entry(bytes).unwrap())
            .unwrap();
        assert!(l.acked(p[0].id));
        assert_eq!(s.settled(p[0].id), Some(*id));
    }
    assert_eq!(s.next_replay(&l).map(|m| m.id), Some(EntryId(4)));
}

#[test]
fn write_through_refuses_what_the_spool_cannot_hold() {
    let mut l = ledger(10);
    let one = disk(&[record(1, 1, 1)]);
    let mut s = Spool::new(SpoolConfig::write_through(one), vec![], EntryId(1));
    assert!(matches!(
        s.submit(&mut l, T, vec![record(1, 1, 1)]),
        Route::Journaled { .. }
    ));
    assert_eq!(
        s.submit(&mut l, T, vec![record(1, 2, 1)]),
        Route::Refused {
            records: 1,
            samples: 1
        }
    );
    assert_eq!(
        l.counts().admitted_samples,
        1,
        "the ledger saw only the first"
    );
}

#[test]
fn an_unreadable_entry_is_skipped_counted_and_released() {
    let mut l = ledger(10);
    let e = vec![record(1, 1, 2)];
    let restored = vec![EntryMeta::of(EntryId(3), &e, encode_entry(&e).len())];
    let mut s = Spool::new(SpoolConfig::overflow(1 << 20), restored, EntryId(1));
    assert_eq!(
        s.unreadable(EntryId(4)).unwrap_err().expected,
        Some(EntryId(3))
    );
    assert_eq!(s.unreadable(EntryId(3)), Ok(Some(EntryId(3))));
    assert_eq!(s.counts().unreadable_entries, 1);
    assert!(s.is_empty());
    assert_eq!(
        l.counts().admitted_samples,
        0,
        "nothing of it was delivered"
    );
    assert!(matches!(
        s.submit(&mut l, T, vec![record(1, 2, 1)]),
        Route::Admitted(_)
    ));
}

#[test]
fn the_entry_codec_round_trips_and_refuses_garbage() {
    let records = vec![record(1, 1, 3), record(9, 2, 0)];
    let bytes = encode_entry(&records);
    assert_eq!(decode_entry(&bytes).unwrap(), records);
    assert_eq!(decode_entry(&encode_entry(&[])).unwrap(), vec![]);
    for cut in 0..bytes.len() {
        assert!(
            matches!(decode_entry(&bytes[..cut]), Err(DecodeError::Truncated(_))),
            "cut at {cut}"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(decode_entry(&long), Err(DecodeError::Trailing(1)));
    let odd = Record {
        headers: vec![("bogus", "x".into())],
        ..record(1, 1, 1)
    };
    assert_eq!(
        decode_entry(&encode_entry(&[odd])),
        Err(DecodeError::UnknownHeader("bogus".into()))
    );
    assert!(size_bytes(&records[0]) < bytes.len());
}

#[derive(Clone, Debug)]
enum Op {
    Submit(u8, u8),
    Replay,
    Ack(usize),
    Fail(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3, 1u8..4).prop_map(|(k, n)| Op::Submit(k, n)),
        Just(Op::Replay),
        (0usize..8).prop_map(Op::Ack),
        (0usize..8).prop_map(Op::Fail),
    ]
}

proptest! {
    /// Under any interleaving: records reach the broker in submission order per key; every
    /// sample is produced, waiting in the spool, or refused; and the spool's bytes are those
    /// of its unreleased entries.
    #[test]
    fn order_per_key_and_every_sample_accounted(ops in proptest::collection::vec(op(), 1..120), len in 1usize..5, cap in 1u64..6, write_through: bool) {
        let mut l = ledger(len);
        let one = disk(&[record(0, 0, 1)]);
        let config = if write_through { SpoolConfig::write_through(cap * one * 2) } else { SpoolConfig::overflow(cap * one * 2) };
        let mut s = Spool::new(config, vec![], EntryId(1));
        // Journaled entries with records not yet settled: what a crash now would restore.
        let mut journaled: Vec<(EntryId, Vec<RecordId>)> = Vec::new();
        let mut store: Vec<(EntryId, Vec<u8>)> = Vec::new();
        let mut in_flight: Vec<RecordId> = Vec::new();
        let mut produced: Vec<Record> = Vec::new();
        let mut submitted = 0u64;
        let mut seq = 0u32;
        let mut accepted: Vec<Record> = Vec::new();
        for op in ops {
            match op {
                Op::Submit(key, n) => {
                    let batch: Vec<Record> = (0..n).map(|_| { seq += 1; record(key, seq, 1) }).collect();
                    submitted += n as u64;
                    match s.submit(&mut l, T, batch.clone()) {
                        Route::Admitted(p) => {
                            accepted.extend(batch);
                            for p in p { in_flight.push(p.id); produced.push(p.record); }
                        }
                        Route::Journaled { entry, produces, .. } => {
                            prop_assert!(write_through);
                            accepted.extend(batch);
                            journaled.push((entry, produces.iter().map(|p| p.id).collect()));
                            for p in produces { in_flight.push(p.id); produced.push(p.record); }
                        }
                        Route::Spill { entry, bytes } => { accepted.extend(batch); store.push((entry, bytes)); }
                        Route::Refused { samples, .. } => prop_assert_eq!(samples, n as u64),
                    }
                }
                Op::Replay => {
                    if let Some(m) = s.next_replay(&l) {
                        let (entry, bytes) = store.remove(0);
                        prop_assert_eq!(entry, m.id);
                        let p = s.replay(&mut l, T, entry, decode_entry(&bytes).unwrap()).unwrap();
                        for p in p { in_flight.push(p.id); produced.push(p.record); }
                    }
                }
                Op::Ack(i) | Op::Fail(i) => {
                    if !in_flight.is_empty() {
                        let id = in_flight.remove(i % in_flight.len());
                        if matches!(op, Op::Ack(_)) { l.acked(id); } else { l.failed(id, scrapepool_core::delivery::FailReason::Refused); }
                        let _ = s.settled(id);
                        for (_, ids) in &mut journaled { ids.retain(|r| *r != id); }
                    }
                }
            }
        }
        // Produced order is the accepted order (refused submissions drop out whole).
        prop_assert_eq!(&produced[..], &accepted[..produced.len()]);
        let c = s.counts();
        let waiting: u64 = store.iter().map(|(_, b)| decode_entry(b).unwrap().iter().map(|r| r.samples as u64).sum::<u64>()).sum();
        prop_assert_eq!(produced.len() as u64 + waiting + c.refused_samples, submitted);
        prop_assert!(c.bytes <= s.config().bytes_max);
        prop_assert_eq!(c.entries as usize >= store.len(), true);
        // Every journaled entry with a record still out is held (on disk, not released).
        let unsettled = journaled.iter().filter(|(_, ids)| !ids.is_empty()).count();
        prop_assert!(c.entries as usize >= store.len() + unsettled);
        if !write_through { prop_assert_eq!(c.journaled_samples, 0); }
    }
}
