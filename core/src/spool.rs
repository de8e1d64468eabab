//! The spool policy: where a submission goes when the delivery ledger's memory queue is full.
//!
//! Pure: the shell (`adapters::spool` for the store, the sink for the ledger) carries out
//! what [`Spool`] says — append these bytes, read that entry, release up to this entry — and
//! feeds it the answers. The policy is one FIFO in front of the ledger
//! (ARCHITECTURE.md, "The spool"):
//!
//! - **Spill**: a submission the ledger cannot admit becomes one spool *entry* (its records,
//!   encoded by [`encode_entry`]) instead of being rejected. Once the spool holds an entry not
//!   yet replayed, every later submission goes behind it, admitted or not: one queue, so the
//!   records of one target key keep their order.
//! - **Journal** ([`SpoolMode::WriteThrough`]): a submission the ledger admits becomes an
//!   entry too, written before its records are produced and held as if replayed, so that a
//!   process killed before the broker's answer finds it on disk at the next start. Without
//!   it ([`SpoolMode::Overflow`]) only what the ledger cannot admit reaches the disk.
//! - **Refuse**: an entry that would take the spool past [`SpoolConfig::bytes_max`] is
//!   refused whole and counted in [`SpoolCounts::refused_samples`] (`spool_full`): the older
//!   records keep their place, the ledger's own rule.
//! - **Replay**: when the ledger fits the oldest waiting entry ([`Spool::next_replay`]), the
//!   shell reads it and hands its records to [`Spool::replay`], which admits them in the
//!   ledger; their answers go to the ledger as usual and to [`Spool::settled`].
//! - **Release**: an entry is released when every record of it is settled (acknowledged or
//!   failed) and every entry before it is released; [`Spool::settled`] then returns the new
//!   *cursor* (the last released entry), which the store persists, so a restart replays only
//!   entries after it.
//!
//! Sizes: an entry takes [`FRAME_BYTES`] plus its encoding on disk; the bound counts exactly
//! that, for every entry not released (waiting, or replayed and not yet settled).

use std::collections::{BTreeMap, VecDeque};

use crate::delivery::{size_bytes, Ledger, Produce, RecordId};
use crate::encode::Record;
use crate::time::Timestamp;

/// Bytes the store adds to each entry on disk: its length and its CRC32, 4 bytes each.
pub const FRAME_BYTES: u64 = 8;

/// An entry's number in its spool: unique, increasing, kept across restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId(pub u64);

/// What goes to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpoolMode {
    /// Only submissions the ledger cannot admit (and everything behind them).
    Overflow,
    /// Every submission, before its records are produced ([`Route::Journaled`]).
    WriteThrough,
}

/// The spool's bound and mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Most bytes on disk (frames included) of entries not released.
    pub bytes_max: u64,
    /// What goes to disk.
    pub mode: SpoolMode,
}

impl SpoolConfig {
    /// A spool of at most `bytes_max` bytes for what the ledger cannot admit.
    pub fn overflow(bytes_max: u64) -> SpoolConfig {
        SpoolConfig {
            bytes_max,
            mode: SpoolMode::Overflow,
        }
    }

    /// A spool of at most `bytes_max` bytes that every submission goes through.
    pub fn write_through(bytes_max: u64) -> SpoolConfig {
        SpoolConfig {
            bytes_max,
            mode: SpoolMode::WriteThrough,
        }
    }
}

/// What the policy knows of one entry (the shell keeps its bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    /// Its number.
    pub id: EntryId,
    /// Records it holds.
    pub records: usize,
    /// Samples it holds.
    pub samples: u64,
    /// Bytes its records take in the ledger's queue ([`size_bytes`]).
    pub queue_bytes: u64,
    /// Bytes it takes on disk: [`FRAME_BYTES`] plus its encoding.
    pub disk_bytes: u64,
}

impl EntryMeta {
    /// The meta of entry `id` holding `records`, encoded as `encoded_len` bytes.
    pub fn of(id: EntryId, records: &[Record], encoded_len: usize) -> EntryMeta {
        EntryMeta {
            id,
            records: records.len(),
            samples: records.iter().map(|r| r.samples as u64).sum(),
            queue_bytes: records.iter().map(|r| size_bytes(r) as u64).sum(),
            disk_bytes: FRAME_BYTES + encoded_len as u64,
        }
    }
}

/// What the spool has counted. Counters only grow; `entries` and `bytes` go up and down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolCounts {
    /// Samples written to the spool to wait there (the ledger could not admit them).
    pub spilled_samples: u64,
    /// Records written to the spool to wait there.
    pub spilled_records: u64,
    /// Samples written to the spool and admitted in the ledger at once
    /// ([`SpoolMode::WriteThrough`]).
    pub journaled_samples: u64,
    /// Samples found on disk at start (entries after the cursor).
    pub restored_samples: u64,
    /// Samples read back from the spool and admitted in the ledger.
    pub replayed_samples: u64,
    /// Samples refused because the spool was full (`spool_full`).
    pub refused_samples: u64,
    /// Entries the store could not read back (skipped, never delivered).
    pub unreadable_entries: u64,
    /// Entries released.
    pub released_entries: u64,
    /// Entries not released.
    pub entries: u64,
    /// Bytes on disk of entries not released.
    pub bytes: u64,
}

/// Where a submission went.
#[derive(Debug, PartialEq)]
#[must_use]
pub enum Route {
    /// Admitted in the ledger: produce each record, in this order.
    Admitted(Vec<Produce>),
    /// Admitted in the ledger and journaled ([`SpoolMode::WriteThrough`]): append `bytes` to
    /// the store as entry `entry`, then produce each record, in this order.
    Journaled {
        /// The entry's number.
        entry: EntryId,
        /// Its encoding ([`encode_entry`]), without the frame.
        bytes: Vec<u8>,
        /// The records to produce once the entry is written.
        produces: Vec<Produce>,
    },
    /// Spilled: append `bytes` to the store as entry `entry`.
    Spill {
        /// The entry's number.
        entry: EntryId,
        /// Its encoding ([`encode_entry`]), without the frame.
        bytes: Vec<u8>,
    },
    /// Refused: the spool is full; counted, nothing to write.
    Refused {
        /// Records refused.
        records: usize,
        /// Samples refused.
        samples: u64,
    },
}

/// A spool entry the policy asked for was not the one handed back.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("spool: entry {got:?} handed back, {expected:?} expected next")]
pub struct OutOfOrder {
    /// The entry [`Spool::next_replay`] named (none if nothing waits).
    pub expected: Option<EntryId>,
    /// The entry handed back.
    pub got: EntryId,
}

#[derive(Debug)]
struct Held {
    meta: EntryMeta,
    /// Records replayed and not settled; `None` while the entry waits.
    outstanding: Option<usize>,
}

/// Spill, refuse, replay, release; see the module documentation.
#[derive(Debug)]
pub struct Spool {
    config: SpoolConfig,
    next_entry: u64,
    /// Entries not released, oldest first; the replayed ones are a prefix.
    held: VecDeque<Held>,
    /// How many of `held` are replayed.
    replayed: usize,
    /// The entry each replayed, unsettled record came from.
    owner: BTreeMap<RecordId, EntryId>,
    counts: SpoolCounts,
}

impl Spool {
    /// A spool holding `restored` (entries found on disk after the cursor, oldest first, all
    /// waiting); new entries are numbered from `next_entry`, past every restored one.
    pub fn new(config: SpoolConfig, restored: Vec<EntryMeta>, next_entry: EntryId) -> Spool {
        let mut counts = SpoolCounts::default();
        let mut next = next_entry.0;
        for m in &restored {
            counts.restored_samples += m.samples;
            counts.entries += 1;
            counts.bytes += m.disk_bytes;
            next = next.max(m.id.0 + 1);
        }
        Spool {
            config,
            next_entry: next,
            held: restored
                .into_iter()
                .map(|meta| Held {
                    meta,
                    outstanding: None,
                })
                .collect(),
            replayed: 0,
            owner: BTreeMap::new(),
            counts,
        }
    }

    /// Routes a submission at `now`: to the ledger if nothing waits in the spool and the
    /// ledger fits it (journaled too in [`SpoolMode::WriteThrough`], if the spool fits it),
    /// else to the spool if it fits there, else refused.
    pub fn submit(&mut self, ledger: &mut Ledger, now: Timestamp, records: Vec<Record>) -> Route {
        if records.is_empty() {
            return Route::Admitted(Vec::new());
        }
        let queue_bytes: u64 = records.iter().map(|r| size_bytes(r) as u64).sum();
        let admit = !self.waiting() && ledger.fits(records.len(), queue_bytes);
        if admit && self.config.mode == SpoolMode::Overflow {
            return Route::Admitted(ledger.admit(now, records));
        }
        let bytes = encode_entry(&records);
        let meta = EntryMeta::of(EntryId(self.next_entry), &records, bytes.len());
        if self.counts.bytes.saturating_add(meta.disk_bytes) > self.config.bytes_max {
            self.counts.refused_samples += meta.samples;
            return Route::Refused {
                records: meta.records,
                samples: meta.samples,
            };
        }
        self.next_entry += 1;
        self.counts.entries += 1;
        self.counts.bytes += meta.disk_bytes;
        self.held.push_back(Held {
            meta,
            outstanding: None,
        });
        if admit {
            // Nothing else waits: the new entry is the next to replay, and goes at once.
            self.counts.journaled_samples += meta.samples;
            return Route::Journaled {
                entry: meta.id,
                bytes,
                produces: self.start_next(ledger, now, records),
            };
        }
        self.counts.spilled_samples += meta.samples;
        self.counts.spilled_records += meta.records as u64;
        Route::Spill {
            entry: meta.id,
            bytes,
        }
    }

    /// The oldest waiting entry, if the ledger has room for it now: the shell reads it and
    /// hands it to [`Spool::replay`].
    pub fn next_replay(&self, ledger: &Ledger) -> Option<EntryMeta> {
        let h = self.held.get(self.replayed)?;
        ledger
            .fits(h.meta.records, h.meta.queue_bytes)
            .then_some(h.meta)
    }

    /// Entry `entry`, read back as `records`, goes to the ledger at `now`: produce each
    /// record, in this order. It must be the entry [`Spool::next_replay`] named.
    pub fn replay(
        &mut self,
        ledger: &mut Ledger,
        now: Timestamp,
        entry: EntryId,
        records: Vec<Record>,
    ) -> Result<Vec<Produce>, OutOfOrder> {
        let expected = self.held.get(self.replayed).map(|h| h.meta.id);
        if expected != Some(entry) {
            return Err(OutOfOrder {
                expected,
                got: entry,
            });
        }
        let produces = self.start_next(ledger, now, records);
        self.counts.replayed_samples += produces
            .iter()
            .map(|p| p.record.samples as u64)
            .sum::<u64>();
        Ok(produces)
    }

    /// Admits `records`, the next waiting entry's, in the ledger; the entry joins the
    /// replayed prefix until they settle.
    fn start_next(
        &mut self,
        ledger: &mut Ledger,
        now: Timestamp,
        records: Vec<Record>,
    ) -> Vec<Produce> {
        let produces = ledger.admit(now, records);
        let h = &mut self.held[self.replayed];
        for p in &produces {
            self.owner.insert(p.id, h.meta.id);
        }
        h.outstanding = Some(produces.len());
        self.replayed += 1;
        produces
    }

    /// Entry `entry` could not be read back (the store found it corrupt): it is skipped,
    /// counted, and released like a settled one. Returns the new cursor, if it moved.
    pub fn unreadable(&mut self, entry: EntryId) -> Result<Option<EntryId>, OutOfOrder> {
        let expected = self.held.get(self.replayed).map(|h| h.meta.id);
        if expected != Some(entry) {
            return Err(OutOfOrder {
                expected,
                got: entry,
            });
        }
        self.counts.unreadable_entries += 1;
        self.held[self.replayed].outstanding = Some(0);
        self.replayed += 1;
        Ok(self.release())
    }

    /// Record `id` was settled in the ledger (acknowledged or failed). Returns the new
    /// cursor — the last released entry — if it moved; `None` also for a record that did not
    /// come from the spool.
    pub fn settled(&mut self, id: RecordId) -> Option<EntryId> {
        let entry = self.owner.remove(&id)?;
        let h = self
            .held
            .iter_mut()
            .take(self.replayed)
            .find(|h| h.meta.id == entry)?;
        if let Some(n) = h.outstanding.as_mut() {
            *n = n.saturating_sub(1);
        }
        self.release()
    }

    fn release(&mut self) -> Option<EntryId> {
        let mut cursor = None;
        while self.replayed > 0 && self.held.front().is_some_and(|h| h.outstanding == Some(0)) {
            let h = self.held.pop_front()?;
            self.replayed -= 1;
            self.counts.entries -= 1;
            self.counts.bytes -= h.meta.disk_bytes;
            self.counts.released_entries += 1;
            cursor = Some(h.meta.id);
        }
        cursor
    }

    /// Whether an entry waits to be replayed (then every submission goes behind it).
    pub fn waiting(&self) -> bool {
        self.held.len() > self.replayed
    }

    /// Whether nothing is held (every entry released).
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Everything counted so far.
    pub fn counts(&self) -> SpoolCounts {
        self.counts
    }

    /// Its bound.
    pub fn config(&self) -> &SpoolConfig {
        &self.config
    }
}

/// Header names a record may carry (those `crate::encode` writes); a spooled record's
/// header names are read back as these.
const HEADER_NAMES: [&str; 5] = ["encoding", "job", "instance", "scraper", "content-type"];

/// The bytes of one entry: records in order, each as key (8 bytes), samples (u32), header
/// count (u16), headers (name and value, each a u32 length and its bytes), payload (u32
/// length and its bytes); all integers little-endian, after a u32 record count.
pub fn encode_entry(records: &[Record]) -> Vec<u8> {
    let len: usize = records
        .iter()
        .map(|r| {
            8 + 4
                + 2
                + 4
                + r.payload.len()
                + r.headers
                    .iter()
                    .map(|(k, v)| 8 + k.len() + v.len())
                    .sum::<usize>()
        })
        .sum();
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for r in records {
        out.extend_from_slice(&r.key);
        out.extend_from_slice(&(r.samples as u32).to_le_bytes());
        out.extend_from_slice(&(r.headers.len() as u16).to_le_bytes());
        for (k, v) in &r.headers {
            put_bytes(&mut out, k.as_bytes());
            put_bytes(&mut out, v.as_bytes());
        }
        put_bytes(&mut out, &r.payload);
    }
    out
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Why an entry's bytes are not an entry.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// It ends inside a field.
    #[error("spool entry truncated at byte {0}")]
    Truncated(usize),
    /// A header name the encoder never writes.
    #[error("spool entry: unknown header name {0:?}")]
    UnknownHeader(String),
    /// A header value is not UTF-8.
    #[error("spool entry: header value at byte {0} is not UTF-8")]
    NotUtf8(usize),
    /// Bytes are left after the last record.
    #[error("spool entry: {0} bytes after the last record")]
    Trailing(usize),
}

/// The records of one entry ([`encode_entry`]'s inverse).
pub fn decode_entry(bytes: &[u8]) -> Result<Vec<Record>, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    let n = r.u32()? as usize;
    let mut records = Vec::with_capacity(n.min(bytes.len() / 18 + 1));
    for _ in 0..n {
        let key: [u8; 8] = r
            .take(8)?
            .try_into()
            .map_err(|_| DecodeError::Truncated(r.at))?;
        let samples = r.u32()? as usize;
        let h = u16::from_le_bytes(
            r.take(2)?
                .try_into()
                .map_err(|_| DecodeError::Truncated(r.at))?,
        );
        let mut headers = Vec::with_capacity(h as usize);
        for _ in 0..h {
            let name = r.field()?;
            let name = HEADER_NAMES
                .iter()
                .find(|n| n.as_bytes() == name)
                .ok_or_else(|| {
                    DecodeError::UnknownHeader(String::from_utf8_lossy(name).into_owned())
                })?;
            let at = r.at;
            let value = std::str::from_utf8(r.field()?).map_err(|_| DecodeError::NotUtf8(at))?;
            headers.push((*name, value.to_string()));
        }
        let payload = r.field()?.to_vec();
        records.push(Record {
            key,
            headers,
            payload,
            samples,
        });
    }
    if r.at != bytes.len() {
        return Err(DecodeError::Trailing(bytes.len() - r.at));
    }
    Ok(records)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(DecodeError::Truncated(self.at))?;
        let b = &self.bytes[self.at..end];
        self.at = end;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn field(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}
