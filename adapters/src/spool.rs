//! The spool's store: entries on disk, in a directory of one member (`--spool-dir`/`<id>`),
//! as the policy in `scrapepool_core::spool` says (ARCHITECTURE.md, "The spool").
//!
//! # Layout
//! - `lock`: held with `flock(LOCK_EX)` while a process has the spool open; a second process
//!   on the same directory is refused. The kernel drops it when the holder dies (`kill -9`).
//! - `<first entry id, 20 digits>.seg`: segments. Each holds consecutive entries, each framed
//!   as its length (u32 LE), the CRC32 of its bytes (u32 LE) and its bytes
//!   ([`scrapepool_core::spool::encode_entry`]); an entry's id is the segment's first id plus
//!   its position. A process appends only to a segment it created, and starts a new one past
//!   [`StoreOptions::segment_bytes`].
//! - `cursor`: the last released entry (u64 LE and its CRC32), replaced by rename.
//!
//! # What survives what
//! - Appends are written with one `write` before the policy's answer is carried further, so a
//!   `kill -9` loses no entry. With [`StoreOptions::sync_appends`] (the default) each spilled
//!   entry ([`SpoolStore::append`]) is also `fdatasync`ed: a power loss loses none either. A
//!   journaled entry ([`SpoolStore::journal`], write-through: its records are produced at
//!   once) is written but not synced: a power loss may lose what the page cache held of it.
//! - The cursor is replaced by rename and not fsynced: after a power loss an older cursor may
//!   come back and entries already acknowledged are replayed again (duplicates, never loss).
//! - On open, a torn or corrupt frame (short, bad CRC, or bytes that are not an entry) ends
//!   what is read of its segment: the bytes from there to the segment's end are cut off the
//!   file, counted in [`Opened::corrupt_regions`], logged with the file and offset, and never
//!   delivered.
//! - Disk use: the policy's bound counts the frames of entries not released; a segment is
//!   deleted once all its entries are released, so released bytes of at most one partly
//!   released segment, and of the segment being written, stay on disk beyond it.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use scrapepool_core::encode::Record;
use scrapepool_core::spool::{decode_entry, EntryId, EntryMeta, SpoolCounts, FRAME_BYTES};

/// Default for [`StoreOptions::segment_bytes`].
pub const SEGMENT_BYTES_DEFAULT: u64 = 16 * 1024 * 1024;

/// How the store writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// `fdatasync` after every append (one per spilled submission).
    pub sync_appends: bool,
    /// A new segment is started when the one being written reaches this size.
    pub segment_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            sync_appends: true,
            segment_bytes: SEGMENT_BYTES_DEFAULT,
        }
    }
}

/// Why the store could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process has this spool open.
    #[error("spool directory {dir} is in use by another process (lock {lock} is held)")]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// Its lock file.
        lock: PathBuf,
    },
    /// The cursor file is not a cursor.
    #[error("spool cursor {0} is corrupt (expected 12 bytes: u64 and its CRC32)")]
    BadCursor(PathBuf),
    /// An entry was appended out of sequence.
    #[error("spool: entry {got} appended, {expected} expected next")]
    OutOfSequence {
        /// The next entry's id.
        expected: u64,
        /// The id handed in.
        got: u64,
    },
    /// The entry is not in the store (released, never written, or its append failed).
    #[error("spool: entry {0} is not in the store")]
    Missing(u64),
    /// The entry's bytes on disk do not match their CRC or are not an entry.
    #[error("spool: entry {id} in {file} at byte {offset} is corrupt: {why}")]
    Corrupt {
        /// The entry.
        id: u64,
        /// Its segment.
        file: PathBuf,
        /// Where its frame starts.
        offset: u64,
        /// What is wrong.
        why: String,
    },
    /// A file operation failed.
    #[error("spool: {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A stretch of a segment that could not be read on open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorruptRegion {
    /// The segment.
    pub file: PathBuf,
    /// Where the bad frame starts.
    pub offset: u64,
    /// Bytes skipped (to the segment's end).
    pub bytes: u64,
    /// What was wrong with the frame.
    pub why: String,
}

/// What [`SpoolStore::open`] found.
#[derive(Debug)]
pub struct Opened {
    /// Entries after the cursor, oldest first: for `scrapepool_core::spool::Spool::new`.
    pub restored: Vec<EntryMeta>,
    /// The id the next appended entry must carry.
    pub next_entry: EntryId,
    /// Torn or corrupt frames skipped.
    pub corrupt_regions: Vec<CorruptRegion>,
}

#[derive(Debug)]
struct Segment {
    first: u64,
    path: PathBuf,
    file: File,
    len: u64,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    id: u64,
    /// Its segment's first id (the segment is found by it).
    segment: u64,
    offset: u64,
    len: u32,
}

/// Segments, cursor and lock of one spool directory; see the module documentation.
#[derive(Debug)]
pub struct SpoolStore {
    dir: PathBuf,
    _lock: File,
    options: StoreOptions,
    segments: VecDeque<Segment>,
    /// Whether the last segment is one this process writes.
    writing: bool,
    slots: VecDeque<Slot>,
    cursor: u64,
    next: u64,
}

const SEGMENT_SUFFIX: &str = ".seg";

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}{SEGMENT_SUFFIX}"))
}

fn frame_check(bytes: &[u8], at: usize) -> Result<(usize, &[u8]), String> {
    let rest = &bytes[at..];
    if rest.len() < FRAME_BYTES as usize {
        return Err(format!("torn frame header ({} of 8 bytes)", rest.len()));
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    let body = &rest[FRAME_BYTES as usize..];
    if body.len() < len {
        return Err(format!("torn entry ({} of {len} bytes)", body.len()));
    }
    let body = &body[..len];
    if crc32fast::hash(body) != crc {
        return Err("CRC mismatch".into());
    }
    Ok((FRAME_BYTES as usize + len, body))
}

impl SpoolStore {
    /// Opens (creating it if needed) the spool in `dir`, takes its lock and reads what it
    /// holds; see the module documentation for what is skipped.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<(SpoolStore, Opened), StoreError> {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("opening", &lock_path))?;
        // SAFETY: flock on a file descriptor this function owns; no memory is shared.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(StoreError::Locked {
                dir: dir.to_path_buf(),
                lock: lock_path,
            });
        }
        let cursor = read_cursor(&dir.join("cursor"))?;
        let mut firsts: Vec<u64> = Vec::new();
        for e in std::fs::read_dir(dir).map_err(io("listing", dir))? {
            let e = e.map_err(io("listing", dir))?;
            let name = e.file_name();
            let Some(first) = name
                .to_str()
                .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            firsts.push(first);
        }
        firsts.sort_unstable();
        let mut store = SpoolStore {
            dir: dir.to_path_buf(),
            _lock: lock,
            options,
            segments: VecDeque::new(),
            writing: false,
            slots: VecDeque::new(),
            cursor,
            next: cursor + 1,
        };
        let mut restored = Vec::new();
        let mut corrupt_regions = Vec::new();
        for &first in &firsts {
            let path = segment_path(dir, first);
            let mut file = File::open(&path).map_err(io("opening", &path))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(io("reading", &path))?;
            let mut len = bytes.len() as u64;
            let mut at = 0usize;
            let mut id = first;
            while at < bytes.len() {
                let checked = frame_check(&bytes, at).and_then(|(n, body)| {
                    if id <= cursor {
                        return Ok((n, None));
                    }
                    decode_entry(body)
                        .map(|records| (n, Some(records)))
                        .map_err(|e| e.to_string())
                });
                match checked {
                    Ok((n, records)) => {
                        if let Some(records) = records {
                            restored.push(EntryMeta::of(EntryId(id), &records, n - 8));
                            store.slots.push_back(Slot {
                                id,
                                segment: first,
                                offset: at as u64,
                                len: (n - 8) as u32,
                            });
                        }
                        at += n;
                        id += 1;
                    }
                    Err(why) => {
                        tracing::warn!(
                            file = %path.display(),
                            offset = at,
                            bytes = bytes.len() - at,
                            "spool: {why}; the rest of the segment is skipped"
                        );
                        // Cut it there, so a later open does not meet it again.
                        OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .and_then(|f| f.set_len(at as u64))
                            .map_err(io("truncating", &path))?;
                        corrupt_regions.push(CorruptRegion {
                            file: path.clone(),
                            offset: at as u64,
                            bytes: (bytes.len() - at) as u64,
                            why,
                        });
                        len = at as u64;
                        break;
                    }
                }
            }
            // Past its last entry, and past its name even if it holds none: a new segment
            // never takes an existing one's name.
            store.next = store.next.max(id).max(first + 1);
            if id <= cursor + 1 {
                // Every entry released: the segment goes.
                std::fs::remove_file(&path).map_err(io("removing", &path))?;
                continue;
            }
            store.segments.push_back(Segment {
                first,
                path,
                file,
                len,
            });
        }
        let next_entry = EntryId(store.next);
        Ok((
            store,
            Opened {
                restored,
                next_entry,
                corrupt_regions,
            },
        ))
    }

    /// Appends entry `entry` (its [`encode_entry`](scrapepool_core::spool::encode_entry)
    /// bytes), synced if [`StoreOptions::sync_appends`]; it must be the next in sequence. On
    /// an error the entry is not in the store.
    pub fn append(&mut self, entry: EntryId, body: &[u8]) -> Result<(), StoreError> {
        self.write_entry(entry, body, self.options.sync_appends)
    }

    /// Appends a journaled entry ([`Route::Journaled`](scrapepool_core::spool::Route)) as
    /// [`SpoolStore::append`] does, but never synced: its records are in the broker's hands
    /// at once, so it only has to outlive the process, not the machine.
    pub fn journal(&mut self, entry: EntryId, body: &[u8]) -> Result<(), StoreError> {
        self.write_entry(entry, body, false)
    }

    fn write_entry(&mut self, entry: EntryId, body: &[u8], sync: bool) -> Result<(), StoreError> {
        if entry.0 != self.next {
            return Err(StoreError::OutOfSequence {
                expected: self.next,
                got: entry.0,
            });
        }
        // Its id is taken either way: the policy has numbered it.
        self.next += 1;
        let roll = !self.writing
            || self
                .segments
                .back()
                .is_none_or(|s| s.len >= self.options.segment_bytes);
        if roll {
            let path = segment_path(&self.dir, entry.0);
            let file = OpenOptions::new()
                .create_new(true)
                .read(true)
                .append(true)
                .open(&path)
                .map_err(io("creating", &path))?;
            if sync {
                File::open(&self.dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io("syncing", &self.dir))?;
            }
            self.segments.push_back(Segment {
                first: entry.0,
                path,
                file,
                len: 0,
            });
            self.writing = true;
        }
        let seg = self
            .segments
            .back_mut()
            .expect("a segment is being written");
        let mut frame = Vec::with_capacity(FRAME_BYTES as usize + body.len());
        frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        frame.extend_from_slice(body);
        if let Err(e) = seg.file.write_all(&frame) {
            // Whatever part was written is a torn frame: end the segment there.
            self.writing = false;
            return Err(io("appending to", &seg.path)(e));
        }
        if sync {
            seg.file.sync_data().map_err(io("syncing", &seg.path))?;
        }
        self.slots.push_back(Slot {
            id: entry.0,
            segment: seg.first,
            offset: seg.len,
            len: body.len() as u32,
        });
        seg.len += frame.len() as u64;
        Ok(())
    }

    /// The records of entry `entry`, read back and checked.
    pub fn read(&self, entry: EntryId) -> Result<Vec<Record>, StoreError> {
        let slot = self
            .slots
            .binary_search_by_key(&entry.0, |s| s.id)
            .map(|i| self.slots[i])
            .map_err(|_| StoreError::Missing(entry.0))?;
        let seg = self
            .segments
            .iter()
            .find(|s| s.first == slot.segment)
            .ok_or(StoreError::Missing(entry.0))?;
        let mut frame = vec![0u8; FRAME_BYTES as usize + slot.len as usize];
        seg.file
            .read_exact_at(&mut frame, slot.offset)
            .map_err(io("reading", &seg.path))?;
        let corrupt = |why: String| StoreError::Corrupt {
            id: entry.0,
            file: seg.path.clone(),
            offset: slot.offset,
            why,
        };
        let (_, body) = frame_check(&frame, 0).map_err(corrupt)?;
        decode_entry(body).map_err(|e| corrupt(e.to_string()))
    }

    /// Every entry up to `cursor` is released: persists the cursor and deletes the segments
    /// that hold nothing else.
    pub fn release(&mut self, cursor: EntryId) -> Result<(), StoreError> {
        if cursor.0 <= self.cursor {
            return Ok(());
        }
        self.cursor = cursor.0;
        while self.slots.front().is_some_and(|s| s.id <= cursor.0) {
            self.slots.pop_front();
        }
        let path = self.dir.join("cursor");
        let tmp = self.dir.join("cursor.tmp");
        let mut bytes = cursor.0.to_le_bytes().to_vec();
        bytes.extend_from_slice(&crc32fast::hash(&cursor.0.to_le_bytes()).to_le_bytes());
        std::fs::write(&tmp, &bytes).map_err(io("writing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("renaming", &tmp))?;
        // A segment is done when the next one starts at or before cursor + 1; the one being
        // written stays.
        while self.segments.len() > 1 && self.segments[1].first <= cursor.0 + 1 {
            let s = self.segments.pop_front().expect("two segments");
            std::fs::remove_file(&s.path).map_err(io("removing", &s.path))?;
        }
        Ok(())
    }

    /// The last released entry (0: none yet).
    pub fn cursor(&self) -> EntryId {
        EntryId(self.cursor)
    }

    /// Bytes on disk (frames included) of the entries it holds after the cursor.
    pub fn held_bytes(&self) -> u64 {
        self.slots.iter().map(|s| FRAME_BYTES + s.len as u64).sum()
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn read_cursor(path: &Path) -> Result<u64, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io("reading", path)(e)),
    };
    if bytes.len() != 12 {
        return Err(StoreError::BadCursor(path.to_path_buf()));
    }
    let value: [u8; 8] = bytes[..8].try_into().expect("8 bytes");
    let crc = u32::from_le_bytes(bytes[8..].try_into().expect("4 bytes"));
    if crc32fast::hash(&value) != crc {
        return Err(StoreError::BadCursor(path.to_path_buf()));
    }
    Ok(u64::from_le_bytes(value))
}

/// The spool series on `/metrics`, read from the policy's counts once per request, plus the
/// corrupt regions skipped when the store was opened.
pub struct SpoolSeries<F>(pub F, pub u64);

impl<F: Fn() -> SpoolCounts + Send + Sync + 'static> crate::web::ExtraMetrics for SpoolSeries<F> {
    fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let c = (self.0)();
        registry.register(
            "spool_bytes",
            "Bytes on disk (frames included) of spooled entries not yet released",
            ConstGauge::new(c.bytes as i64),
        );
        registry.register(
            "spool_entries",
            "Spooled entries not yet released",
            ConstGauge::new(c.entries as i64),
        );
        registry.register(
            "spool_spilled_samples",
            "Samples written to the spool because the memory queue was full",
            ConstCounter::new(c.spilled_samples),
        );
        registry.register(
            "spool_journaled_samples",
            "Samples written to the spool and handed to the broker at once (--spool-write-through)",
            ConstCounter::new(c.journaled_samples),
        );
        registry.register(
            "spool_restored_samples",
            "Samples found in the spool at start",
            ConstCounter::new(c.restored_samples),
        );
        registry.register(
            "spool_replayed_samples",
            "Samples read back from the spool and handed to the broker",
            ConstCounter::new(c.replayed_samples),
        );
        registry.register(
            "spool_refused_samples",
            "Samples refused because the spool was full (spool_full)",
            ConstCounter::new(c.refused_samples),
        );
        registry.register(
            "spool_corrupt_skipped",
            "Torn or corrupt spool regions skipped at start plus entries that could not be read back",
            ConstCounter::new(self.1 + c.unreadable_entries),
        );
    }
}

/// Two sets of series on one `/metrics` (a spooling sink's delivery and spool series).
pub struct MetricsPair(
    pub std::sync::Arc<dyn crate::web::ExtraMetrics>,
    pub std::sync::Arc<dyn crate::web::ExtraMetrics>,
);

impl crate::web::ExtraMetrics for MetricsPair {
    fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        self.0.register(registry);
        self.1.register(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scrapepool_core::spool::encode_entry;

    fn record(key: u8, seq: u32) -> Record {
        Record {
            key: [0, 0, 0, 0, 0, 0, 0, key],
            headers: vec![("encoding", "json".into()), ("job", "node".into())],
            payload: format!("sample {seq}").into_bytes(),
            samples: 1,
        }
    }

    fn entry(seq: u32) -> Vec<Record> {
        vec![record(1, seq), record(2, seq)]
    }

    fn opts(segment_bytes: u64) -> StoreOptions {
        StoreOptions {
            sync_appends: true,
            segment_bytes,
        }
    }

    fn segments(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(SEGMENT_SUFFIX))
            .collect();
        v.sort();
        v
    }

    fn ids(o: &Opened) -> Vec<u64> {
        o.restored.iter().map(|m| m.id.0).collect()
    }

    #[test]
    fn entries_round_trip_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, o) = SpoolStore::open(dir.path(), opts(1 << 20)).unwrap();
        assert_eq!((o.restored.len(), o.next_entry), (0, EntryId(1)));
        for i in 1..=3 {
            s.append(EntryId(i), &encode_entry(&entry(i as u32)))
                .unwrap();
        }
        assert_eq!(s.read(EntryId(2)).unwrap(), entry(2));
        let expected: Vec<EntryMeta> = (1..=3)
            .map(|i| {
                EntryMeta::of(
                    EntryId(i),
                    &entry(i as u32),
                    encode_entry(&entry(i as u32)).len(),
                )
            })
            .collect();
        let disk: u64 = expected.iter().map(|m| m.disk_bytes).sum();
        assert_eq!(s.held_bytes(), disk);
        let file = dir.path().join(&segments(dir.path())[0]);
        assert_eq!(
            std::fs::metadata(&file).unwrap().len(),
            disk,
            "the policy's bytes are the file's"
        );
        drop(s);
        let (s, o) = SpoolStore::open(dir.path(), opts(1 << 20)).unwrap();
        assert_eq!(o.restored, expected);
        assert_eq!(o.next_entry, EntryId(4));
        assert!(o.corrupt_regions.is_empty());
        for i in 1..=3 {
            assert_eq!(s.read(EntryId(i)).unwrap(), entry(i as u32));
        }
        assert!(matches!(s.read(EntryId(4)), Err(StoreError::Missing(4))));
    }

    #[test]
    fn released_entries_are_not_restored_and_their_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = SpoolStore::open(dir.path(), opts(1)).unwrap();
        for i in 1..=4 {
            s.append(EntryId(i), &encode_entry(&entry(i as u32)))
                .unwrap();
        }
        assert_eq!(
            segments(dir.path()).len(),
            4,
            "one entry per segment at this size"
        );
        s.release(EntryId(2)).unwrap();
        assert_eq!(
            segments(dir.path()),
            vec![format!("{:020}.seg", 3), format!("{:020}.seg", 4)]
        );
        assert!(matches!(s.read(EntryId(2)), Err(StoreError::Missing(2))));
        drop(s);
        let (mut s, o) = SpoolStore::open(dir.path(), opts(1)).unwrap();
        assert_eq!(ids(&o), vec![3, 4]);
        assert_eq!(o.next_entry, EntryId(5));
        assert_eq!(s.cursor(), EntryId(2));
        s.release(EntryId(4)).unwrap();
        drop(s);
        let (_, o) = SpoolStore::open(dir.path(), opts(1)).unwrap();
        assert!(o.restored.is_empty());
        assert_eq!(
            o.next_entry,
            EntryId(5),
            "numbering goes on past released entries"
        );
        assert!(
            segments(dir.path()).is_empty(),
            "{:?}",
            segments(dir.path())
        );
    }

    #[test]
    fn a_torn_tail_at_any_byte_is_skipped_and_cut() {
        let src = tempfile::tempdir().unwrap();
        let (mut s, _) = SpoolStore::open(src.path(), opts(1 << 20)).unwrap();
        s.append(EntryId(1), &encode_entry(&entry(1))).unwrap();
        s.append(EntryId(2), &encode_entry(&entry(2))).unwrap();
        drop(s);
        let name = segments(src.path()).remove(0);
        let bytes = std::fs::read(src.path().join(&name)).unwrap();
        let first_end = FRAME_BYTES as usize + encode_entry(&entry(1)).len();
        for cut in first_end..bytes.len() {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(&name), &bytes[..cut]).unwrap();
            let (mut s, o) = SpoolStore::open(dir.path(), opts(1 << 20)).unwrap();
            assert_eq!(ids(&o), vec![1], "cut at {cut}");
            let torn = usize::from(cut > first_end);
            assert_eq!(o.corrupt_regions.len(), torn, "cut at {cut}");
            if torn == 1 {
                let r = &o.corrupt_regions[0];
                assert_eq!(
                    (r.offset, r.bytes),
                    (first_end as u64, (cut - first_end) as u64)
                );
            }
            assert_eq!(o.next_entry, EntryId(2));
            s.append(EntryId(2), &encode_entry(&entry(9))).unwrap();
            drop(s);
            let (s, o) = SpoolStore::open(dir.path(), opts(1 << 20)).unwrap();
            assert_eq!(ids(&o), vec![1, 2], "cut at {cut}");
            assert!(
                o.corrupt_regions.is_empty(),
                "cut at {cut}: the torn bytes were cut off"
            );
            assert_eq!(s.read(EntryId(2)).unwrap(), entry(9));
        }
    }

    #[test]
    fn a_corrupt_crc_ends_the_segment_and_is_never_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = SpoolStore::open(dir.path(), opts(1 << 20)).unwrap();
        for i in 1..=3 {
            s.append(EntryId(i), &encode_entry(&entry(i as u32)))
                .unwrap();
        }
        drop(s);
        let path = dir.path().join(segments(dir.path()).remove(0));
        let mut bytes = std::fs::read(&path).unwrap();
        let frame = FRAME_BYTES as usize + encode_entry(&entry(1)).len();
        bytes[frame + 12] ^= 0x40; // inside entry 2's body
        std::fs::write(&path, &bytes).unwrap();
        let (s, o) = SpoolStore::open(dir.path(), opts(1 << 20)).unwrap();
        assert_eq!(ids(&o), vec![1]);
        assert_eq!(o.corrupt_regions.len(), 1);
        assert_eq!(o.corrupt_regions[0].why, "CRC mismatch");
        assert_eq!(o.corrupt_regions[0].offset, frame as u64);
        assert_eq!(o.corrupt_regions[0].bytes, (bytes.len() - frame) as u64);
        assert!(matches!(s.read(EntryId(2)), Err(StoreError::Missing(2))));
        assert_eq!(o.next_entry, EntryId(2));
    }

    #[test]
    fn a_second_process_is_refused_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = SpoolStore::open(dir.path(), StoreOptions::default()).unwrap();
        let err = SpoolStore::open(dir.path(), StoreOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        assert!(
            err.to_string().contains("in use by another process"),
            "{err}"
        );
        drop(s);
        SpoolStore::open(dir.path(), StoreOptions::default()).unwrap();
    }

    #[test]
    fn a_bad_cursor_or_an_out_of_sequence_append_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = SpoolStore::open(dir.path(), StoreOptions::default()).unwrap();
        assert!(matches!(
            s.append(EntryId(2), b"x"),
            Err(StoreError::OutOfSequence {
                expected: 1,
                got: 2
            })
        ));
        drop(s);
        std::fs::write(dir.path().join("cursor"), b"short").unwrap();
        let err = SpoolStore::open(dir.path(), StoreOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::BadCursor(_)), "{err}");
        assert!(err.to_string().contains("cursor"), "{err}");
    }

    #[test]
    fn policy_and_store_replay_in_order_after_a_restart() {
        use scrapepool_core::delivery::{Ledger, LedgerConfig};
        use scrapepool_core::spool::{Route, Spool, SpoolConfig};
        use scrapepool_core::Timestamp;
        let dir = tempfile::tempdir().unwrap();
        let config = SpoolConfig::overflow(1 << 20);
        let ledger_config = LedgerConfig {
            queue_len_max: 2,
            ..LedgerConfig::unbounded()
        };
        let now = Timestamp(0);
        // First life: the queue fills (never acknowledged), three entries spill, then a crash.
        {
            let (mut store, o) = SpoolStore::open(dir.path(), opts(1 << 20)).unwrap();
            let mut spool = Spool::new(config, o.restored, o.next_entry);
            let mut ledger = Ledger::new(ledger_config);
            let _ = spool.submit(&mut ledger, now, entry(0));
            for i in 1..=3 {
                match spool.submit(&mut ledger, now, entry(i)) {
                    Route::Spill { entry, bytes } => store.append(entry, &bytes).unwrap(),
                    other => panic!("{other:?}"),
                }
            }
        }
        // Second life: the same directory replays entries 1..=3 in order, one at a time.
        let (mut store, o) = SpoolStore::open(dir.path(), opts(1 << 20)).unwrap();
        let mut spool = Spool::new(config, o.restored, o.next_entry);
        let mut ledger = Ledger::new(ledger_config);
        let mut delivered = Vec::new();
        while let Some(m) = spool.next_replay(&ledger) {
            let records = store.read(m.id).unwrap();
            let produces = spool.replay(&mut ledger, now, m.id, records).unwrap();
            for p in produces {
                assert!(ledger.acked(p.id));
                delivered.push(p.record);
                if let Some(cursor) = spool.settled(p.id) {
                    store.release(cursor).unwrap();
                }
            }
        }
        let expected: Vec<Record> = (1..=3).flat_map(entry).collect();
        assert_eq!(delivered, expected);
        assert_eq!(store.cursor(), EntryId(3));
        assert_eq!(spool.counts().restored_samples, 6);
        drop(store);
        let (_, o) = SpoolStore::open(dir.path(), opts(1 << 20)).unwrap();
        assert!(o.restored.is_empty(), "a third life replays nothing");
    }

    #[test]
    fn the_spool_series_come_from_the_counts() {
        use crate::web::ExtraMetrics;
        let counts = SpoolCounts {
            spilled_samples: 7,
            restored_samples: 3,
            replayed_samples: 5,
            refused_samples: 2,
            unreadable_entries: 1,
            entries: 4,
            bytes: 900,
            ..SpoolCounts::default()
        };
        let mut registry = prometheus_client::registry::Registry::with_prefix("scrapepool");
        SpoolSeries(move || counts, 2).register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "scrapepool_spool_bytes 900",
            "scrapepool_spool_entries 4",
            "scrapepool_spool_spilled_samples_total 7",
            "scrapepool_spool_restored_samples_total 3",
            "scrapepool_spool_replayed_samples_total 5",
            "scrapepool_spool_refused_samples_total 2",
            "scrapepool_spool_corrupt_skipped_total 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
