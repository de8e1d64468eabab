//! Ownership: rendezvous (highest random weight) hashing over the active members.
//!
//! The hash is pinned so that every version of scrapepool agrees on owners.
//!
//! # The pinned definition
//!
//! Every function below is xxh3-64 (XXH3_64bits_withSeed, the reference xxHash v0.8 algorithm)
//! with the seed [`HASH_SEED`] = `0x7363_7261_7065_706f`. A client in another language that
//! reproduces these four steps agrees with scrapepool on every owner:
//!
//! 1. `member_hash = xxh3_64(utf8 bytes of the member id, HASH_SEED)` ([`key_hash`]).
//! 2. `target_hash = xxh3_64(canonical target key bytes, HASH_SEED)` ([`key_hash`]; the key's
//!    bytes are defined in [`crate::targets`]).
//! 3. `score(member, target) = xxh3_64(target_hash.to_le_bytes() ‖ member_hash.to_le_bytes(),
//!    HASH_SEED)`: a 16-byte input, the target hash first, both as 8 little-endian bytes
//!    ([`score`]).
//! 4. The owners of a target are the `min(R, members)` distinct *active* members with the
//!    highest scores, compared as unsigned 64-bit integers; equal scores are ordered by
//!    member id ascending (byte-wise). Rank 0 is the highest score. Draining members are not
//!    in the ring at all (see [`Ring::from_records`]).
//!
//! Test vectors (asserted in `tests::pinned_test_vectors`; checked against the Python
//! `xxhash` 3.x/4.x package, `xxh3_64_intdigest(data, seed=HASH_SEED)`):
//! - `key_hash(b"scraper-1") = 0xd084_fac3_e474_744c`
//! - `key_hash(b"job\0up") = 0x1847_342a_2485_4d4e` (`\0` is one zero byte)
//! - `score(member_hash = 0xd084_fac3_e474_744c, target_hash = 0x1847_342a_2485_4d4e)
//!   = 0xaded_20be_aa48_ab4e`
//! - `score(member_hash = 0x0123_4567_89ab_cdef, target_hash = 0xfedc_ba98_7654_3210)
//!   = 0xd2e9_adac_dde1_a110`

use std::cmp::Ordering;
use std::ops::Deref;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::member::{MemberRecord, MemberState};

/// The seed of every pinned hash in scrapepool (ASCII "scrapepo"). Never change it: members
/// running different versions must agree on every owner and every scrape phase.
pub const HASH_SEED: u64 = 0x7363_7261_7065_706f;

/// The pinned hash of a target key's canonical bytes.
pub fn key_hash(bytes: &[u8]) -> u64 {
    xxh3_64_with_seed(bytes, HASH_SEED)
}

/// The rendezvous score of a member (by its [`key_hash`]) for a target (by its hash):
/// `xxh3_64(target_hash LE ‖ member_hash LE, HASH_SEED)`.
#[inline]
pub fn score(member_hash: u64, target_hash: u64) -> u64 {
    score_mixed(target_hash ^ FLIP_LO, member_hash ^ FLIP_HI)
}

// The hot loop computes one xxh3-64 of 16 bytes per (target, member). xxh3's 9–16-byte path
// (xxHash spec, "XXH3_len_9to16_64b") XORs the first and last 8 input bytes with two
// seed-dependent words of the default secret and then mixes them; the target half and the
// member half can therefore be premixed once each, leaving one 128-bit multiply and the
// avalanche per score. `tests::score_is_xxh3_of_the_16_bytes` checks this against the
// xxhash-rust crate on many inputs, and the pinned vectors were checked against the Python
// `xxhash` package, so this is xxh3 exactly and not a look-alike.

/// XXH3's default secret ("kSecret" in the xxHash spec), the little-endian 64-bit words at
/// byte offsets 24, 32, 40 and 48: the only secret bytes the 9–16-byte path reads.
const SECRET_24: u64 = 0x1f67_b3b7_a4a4_4072;
const SECRET_32: u64 = 0x78e5_c0cc_4ee6_79cb;
const SECRET_40: u64 = 0x2172_ffcc_7dd0_5a82;
const SECRET_48: u64 = 0x8e24_43f7_7446_08b8;
/// What the first 8 input bytes (the target hash) are XORed with.
const FLIP_LO: u64 = (SECRET_24 ^ SECRET_32).wrapping_add(HASH_SEED);
/// What the last 8 input bytes (the member hash) are XORed with.
const FLIP_HI: u64 = (SECRET_40 ^ SECRET_48).wrapping_sub(HASH_SEED);

/// xxh3-64 of a 16-byte input whose halves are already XORed with `FLIP_LO` / `FLIP_HI`.
#[inline(always)]
fn score_mixed(lo: u64, hi: u64) -> u64 {
    let product = u128::from(lo) * u128::from(hi);
    let fold = (product as u64) ^ ((product >> 64) as u64);
    let acc = 16u64
        .wrapping_add(lo.swap_bytes())
        .wrapping_add(hi)
        .wrapping_add(fold);
    // XXH3 avalanche.
    let acc = (acc ^ (acc >> 37)).wrapping_mul(0x1656_6791_9e37_79f9);
    acc ^ (acc >> 32)
}

/// How many owners [`Owners`] holds without allocating; larger replication factors spill to
/// the heap.
pub const OWNERS_INLINE: usize = 4;

/// Owners of targets among a set of active members, top `R` by rendezvous score.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ring {
    /// `key_hash(id) ^ FLIP_HI` of every member, in the order of `ids`: premixed for
    /// [`score_mixed`] and kept apart so the hot loop reads one dense array.
    keys: Vec<u64>,
    /// Member ids, sorted ascending and distinct: the index order is the tie-break order.
    ids: Vec<String>,
    replication_factor: usize,
}

impl Ring {
    /// A ring over `members` (any order, duplicates ignored) with replication factor `r` (≥ 1).
    pub fn new<'a>(members: impl IntoIterator<Item = &'a str>, r: usize) -> Ring {
        let mut ids: Vec<String> = members.into_iter().map(str::to_string).collect();
        ids.sort_unstable();
        ids.dedup();
        let keys = ids
            .iter()
            .map(|id| key_hash(id.as_bytes()) ^ FLIP_HI)
            .collect();
        Ring {
            keys,
            ids,
            replication_factor: r.max(1),
        }
    }

    /// A ring over the *active* members of a snapshot: draining members own nothing.
    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a MemberRecord>, r: usize) -> Ring {
        Ring::new(active_members(records), r)
    }

    /// How many owners every target has: `min(R, members)`.
    pub fn owner_count(&self) -> usize {
        self.replication_factor.min(self.ids.len())
    }

    /// The owners of the target with hash `target_hash`, highest score (rank 0) first;
    /// `min(R, members)` of them. Allocates nothing when `R ≤ OWNERS_INLINE`.
    pub fn owners(&self, target_hash: u64) -> Owners<'_> {
        let count = self.owner_count();
        if count <= OWNERS_INLINE {
            let mut top = [(0u64, 0u32); OWNERS_INLINE];
            self.select(target_hash, &mut top[..count]);
            let mut ids = [""; OWNERS_INLINE];
            for (slot, &(_, index)) in ids.iter_mut().zip(&top[..count]) {
                *slot = self.ids[index as usize].as_str();
            }
            Owners(OwnersRepr::Inline {
                len: count as u8,
                ids,
            })
        } else {
            let mut top = vec![(0u64, 0u32); count];
            self.select(target_hash, &mut top);
            Owners(OwnersRepr::Heap(
                top.iter()
                    .map(|&(_, i)| self.ids[i as usize].as_str())
                    .collect(),
            ))
        }
    }

    /// Writes the member indices (into [`Ring::member_at`]) of the target's owners, rank 0
    /// first, into `out[..owner_count()]`, and returns how many it wrote. Never allocates.
    ///
    /// Panics if `out` is shorter than [`Ring::owner_count`].
    pub fn owners_into(&self, target_hash: u64, out: &mut [u32]) -> usize {
        let count = self.owner_count();
        assert!(
            out.len() >= count,
            "owners_into: buffer of {} < {count} owners",
            out.len()
        );
        if count <= OWNERS_INLINE {
            let mut top = [(0u64, 0u32); OWNERS_INLINE];
            self.select(target_hash, &mut top[..count]);
            for (slot, &(_, index)) in out.iter_mut().zip(&top[..count]) {
                *slot = index;
            }
        } else {
            let mut top = vec![(0u64, 0u32); count];
            self.select(target_hash, &mut top);
            for (slot, &(_, index)) in out.iter_mut().zip(&top) {
                *slot = index;
            }
        }
        count
    }

    /// The owners of many targets at once (a node's full recomputation after a member or
    /// job change): one [`Assignment`] row per target hash, in the given order.
    pub fn assign(&self, target_hashes: &[u64]) -> Assignment<'_> {
        let stride = self.owner_count();
        let mut slots = vec![0u32; target_hashes.len() * stride];
        if stride > 0 {
            let mut top = vec![(0u64, 0u32); stride];
            for (row, &target_hash) in slots.chunks_exact_mut(stride).zip(target_hashes) {
                self.select(target_hash, &mut top);
                for (slot, &(_, index)) in row.iter_mut().zip(&top) {
                    *slot = index;
                }
            }
        }
        Assignment {
            ring: self,
            targets: target_hashes.len(),
            stride,
            slots,
        }
    }

    /// The replica rank of `member` for the target, if it is an owner.
    pub fn rank_of(&self, target_hash: u64, member: &str) -> Option<usize> {
        self.owners(target_hash).iter().position(|m| *m == member)
    }

    /// The member ids, sorted.
    pub fn members(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().map(String::as_str)
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the ring has no member (then no target has an owner).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The id of the member at `index` (the indices [`Ring::owners_into`] writes).
    pub fn member_at(&self, index: u32) -> &str {
        &self.ids[index as usize]
    }

    /// The replication factor.
    pub fn replication_factor(&self) -> usize {
        self.replication_factor
    }

    /// Fills `top` (length = wanted owners, ≤ members) with `(score, member index)` of the
    /// best members, best first.
    ///
    /// Why this shape: `top` is a tiny sorted array; a member enters only if it beats the
    /// current last, which after the first few members is rare, so the loop is one hash and
    /// one compare per member. Members are visited in id order and enter only on a strictly
    /// higher score, so an equal score keeps the lower id first — the pinned tie-break.
    #[inline]
    fn select(&self, target_hash: u64, top: &mut [(u64, u32)]) {
        let want = top.len();
        if want == 0 {
            return;
        }
        let lo = target_hash ^ FLIP_LO;
        // The first `want` members fill `top`; after that a member needs to beat the
        // threshold (the current last), kept in a register rather than reloaded from `top`.
        for (index, &key) in self.keys[..want].iter().enumerate() {
            insert(&mut top[..=index], score_mixed(lo, key), index as u32);
        }
        let mut threshold = top[want - 1].0;
        for (index, &key) in self.keys.iter().enumerate().skip(want) {
            let s = score_mixed(lo, key);
            if s > threshold {
                insert(top, s, index as u32);
                threshold = top[want - 1].0;
            }
        }
    }
}

/// Puts `(s, index)` into the best-first `top`, dropping its last entry: worse entries shift
/// right, and the scan stops at the first entry at least as good, so an equal score stays
/// ahead (its member id is lower — members are visited in id order).
#[inline(always)]
fn insert(top: &mut [(u64, u32)], s: u64, index: u32) {
    let mut at = top.len() - 1;
    while at > 0 && top[at - 1].0 < s {
        top[at] = top[at - 1];
        at -= 1;
    }
    top[at] = (s, index);
}

/// The ids of the active members among `records`: the members that may own targets.
pub fn active_members<'a>(
    records: impl IntoIterator<Item = &'a MemberRecord>,
) -> impl Iterator<Item = &'a str> {
    records
        .into_iter()
        .filter(|r| r.state == MemberState::Active)
        .map(|r| r.id.as_str())
}

/// The owners of one target, rank 0 first; reads like a `&[&str]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owners<'a>(OwnersRepr<'a>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum OwnersRepr<'a> {
    Inline {
        len: u8,
        ids: [&'a str; OWNERS_INLINE],
    },
    Heap(Vec<&'a str>),
}

impl<'a> Deref for Owners<'a> {
    type Target = [&'a str];
    fn deref(&self) -> &[&'a str] {
        match &self.0 {
            OwnersRepr::Inline { len, ids } => &ids[..*len as usize],
            OwnersRepr::Heap(ids) => ids,
        }
    }
}

/// The owners of many targets, computed by [`Ring::assign`]: row `i` is target `i`.
#[derive(Clone, Debug)]
pub struct Assignment<'a> {
    ring: &'a Ring,
    /// The number of targets (kept apart: with no member, `slots` is empty).
    targets: usize,
    /// Owners per target (`min(R, members)`).
    stride: usize,
    /// Member indices, `stride` per target, rank 0 first.
    slots: Vec<u32>,
}

impl<'a> Assignment<'a> {
    /// The number of targets.
    pub fn len(&self) -> usize {
        self.targets
    }

    /// Whether there are no targets.
    pub fn is_empty(&self) -> bool {
        self.targets == 0
    }

    /// The ring this assignment was computed on.
    pub fn ring(&self) -> &'a Ring {
        self.ring
    }

    /// The member indices owning target `i`, rank 0 first.
    pub fn owner_indices(&self, i: usize) -> &[u32] {
        &self.slots[i * self.stride..(i + 1) * self.stride]
    }

    /// The member ids owning target `i`, rank 0 first.
    pub fn owners(&self, i: usize) -> impl ExactSizeIterator<Item = &'a str> + '_ {
        let ring = self.ring;
        self.owner_indices(i)
            .iter()
            .map(move |&m| ring.member_at(m))
    }

    /// The rank of `member` among the owners of target `i`, if it owns it.
    pub fn rank_of(&self, i: usize, member: &str) -> Option<usize> {
        self.owners(i).position(|m| m == member)
    }

    /// How many targets each member owns (any rank), in [`Ring::members`] order.
    pub fn load(&self) -> Vec<usize> {
        let mut load = vec![0; self.ring.len()];
        for &m in &self.slots {
            load[m as usize] += 1;
        }
        load
    }

    /// The targets whose owner *set* differs between `self` and `other` (two assignments of
    /// the same target list on two rings), ascending. Rank changes within an unchanged set
    /// are not counted here; see [`Assignment::reranked`].
    ///
    /// Panics if the two assignments have different target counts.
    pub fn moved(&self, other: &Assignment<'_>) -> Vec<usize> {
        self.diff(other, same_set)
    }

    /// The targets whose ranked owner list (who is rank 0, 1, …) differs, ascending. A rank
    /// change moves a replica's scrape phase, so the node reschedules these too.
    ///
    /// Panics if the two assignments have different target counts.
    pub fn reranked(&self, other: &Assignment<'_>) -> Vec<usize> {
        self.diff(other, |a, b| a.len() == b.len() && a.iter().eq(b.iter()))
    }

    fn diff(&self, other: &Assignment<'_>, same: impl Fn(&[&str], &[&str]) -> bool) -> Vec<usize> {
        assert_eq!(
            self.len(),
            other.len(),
            "moved: assignments of different target lists"
        );
        let mut a = Vec::with_capacity(self.stride);
        let mut b = Vec::with_capacity(other.stride);
        let mut out = Vec::new();
        for i in 0..self.len() {
            a.clear();
            b.clear();
            a.extend(self.owners(i));
            b.extend(other.owners(i));
            if !same(&a, &b) {
                out.push(i);
            }
        }
        out
    }
}

/// The owners of a fixed list of targets, kept up to date one member at a time: the top-`R`
/// `(score, member)` of every target are kept, so a join scores each target once for the new
/// member (it enters where it beats the `R`-th best) and a leave rescores only the targets
/// the leaver was an owner of. After any sequence of [`Ownership::join`] and
/// [`Ownership::leave`] the owners equal [`Ring::assign`] on a ring of the current members
/// (`tests/ownership.rs` checks this). The default owns no targets.
#[derive(Clone, Debug, Default)]
pub struct Ownership {
    /// The target hashes, premixed (`^ FLIP_LO`) for [`score_mixed`].
    targets: Vec<u64>,
    replication_factor: usize,
    /// Member slots: id and premixed key (`key_hash(id) ^ FLIP_HI`); a left member's slot is
    /// `None` until a join reuses it. Slot numbers are what `top` holds.
    slots: Vec<Option<(String, u64)>>,
    /// Live members, sorted by id, each with its slot.
    members: Vec<(String, u32)>,
    /// Per target, `replication_factor` entries `(score, slot)`, best first; the first
    /// [`Ownership::owner_count`] are valid.
    top: Vec<(u64, u32)>,
}

impl Ownership {
    /// The owners of `target_hashes` (kept in this order) on `ring`, replication factor and
    /// members included: one full computation.
    pub fn new(ring: &Ring, target_hashes: &[u64]) -> Ownership {
        let r = ring.replication_factor;
        let mut ownership = Ownership {
            targets: target_hashes.iter().map(|h| h ^ FLIP_LO).collect(),
            replication_factor: r,
            slots: Vec::new(),
            members: Vec::new(),
            top: vec![(0, 0); target_hashes.len() * r],
        };
        for (id, &key) in ring.ids.iter().zip(&ring.keys) {
            ownership
                .members
                .push((id.clone(), ownership.slots.len() as u32));
            ownership.slots.push(Some((id.clone(), key)));
        }
        let count = ownership.owner_count();
        if count > 0 {
            let mut top = vec![(0u64, 0u32); count];
            for (row, &h) in ownership.top.chunks_exact_mut(r).zip(target_hashes) {
                // Slots are in id order here, as the ring's members are.
                ring.select(h, &mut top);
                row[..count].copy_from_slice(&top);
            }
        }
        ownership
    }

    /// How many owners every target has: `min(R, members)`.
    pub fn owner_count(&self) -> usize {
        self.replication_factor.min(self.members.len())
    }

    /// The number of targets.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are no targets.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The member ids, sorted.
    pub fn members(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|(id, _)| id.as_str())
    }

    /// The member ids owning target `i`, rank 0 first.
    pub fn owners(&self, i: usize) -> impl ExactSizeIterator<Item = &str> + '_ {
        let r = self.replication_factor;
        self.top[i * r..i * r + self.owner_count()]
            .iter()
            .map(|&(_, slot)| self.id(slot))
    }

    /// The rank of `member` among the owners of target `i`, if it owns it.
    pub fn rank_of(&self, i: usize, member: &str) -> Option<usize> {
        self.owners(i).position(|m| m == member)
    }

    fn id(&self, slot: u32) -> &str {
        self.slots[slot as usize]
            .as_ref()
            .map(|(id, _)| id.as_str())
            .expect("a live slot")
    }

    /// Whether `a` ranks before `b`: a higher score, or an equal score and a lower id.
    fn before(&self, a: (u64, u32), b: (u64, u32)) -> bool {
        a.0 > b.0 || (a.0 == b.0 && self.id(a.1) < self.id(b.1))
    }

    /// Adds `member` (a no-op if it is one) and returns the targets whose ranked owner list
    /// changed, ascending: those where it scores within the top `R`.
    pub fn join(&mut self, member: &str) -> Vec<usize> {
        self.join_keyed(member, key_hash(member.as_bytes()) ^ FLIP_HI)
    }

    fn join_keyed(&mut self, member: &str, key: u64) -> Vec<usize> {
        let Err(at) = self
            .members
            .binary_search_by(|(id, _)| id.as_str().cmp(member))
        else {
            return Vec::new();
        };
        let entry = Some((member.to_string(), key));
        let slot = match self.slots.iter().position(Option::is_none) {
            Some(free) => {
                self.slots[free] = entry;
                free as u32
            }
            None => {
                self.slots.push(entry);
                (self.slots.len() - 1) as u32
            }
        };
        let old_count = self.owner_count();
        self.members.insert(at, (member.to_string(), slot));
        let r = self.replication_factor;
        let grows = old_count < r;
        let mut changed = Vec::new();
        for i in 0..self.targets.len() {
            let new = (score_mixed(self.targets[i], key), slot);
            let row = i * r;
            // Where the new member enters, if it does: below every entry that ranks before it.
            let mut pos = if grows { old_count } else { r };
            while pos > 0 && self.before(new, self.top[row + pos - 1]) {
                pos -= 1;
            }
            if pos == r {
                continue;
            }
            let end = if grows { old_count } else { r - 1 };
            self.top.copy_within(row + pos..row + end, row + pos + 1);
            self.top[row + pos] = new;
            changed.push(i);
        }
        changed
    }

    /// Removes `member` (a no-op if it is none) and returns the targets whose ranked owner
    /// list changed, ascending: those it owned, rescored over the remaining members.
    pub fn leave(&mut self, member: &str) -> Vec<usize> {
        let Ok(at) = self
            .members
            .binary_search_by(|(id, _)| id.as_str().cmp(member))
        else {
            return Vec::new();
        };
        let old_count = self.owner_count();
        let (_, slot) = self.members.remove(at);
        let count = self.owner_count();
        let r = self.replication_factor;
        let mut changed = Vec::new();
        for i in 0..self.targets.len() {
            let row = i * r;
            let Some(pos) = self.top[row..row + old_count]
                .iter()
                .position(|&(_, s)| s == slot)
            else {
                continue;
            };
            self.top
                .copy_within(row + pos + 1..row + old_count, row + pos);
            changed.push(i);
            if count < old_count {
                continue; // fewer members than R: the remaining ones all own it already
            }
            // The best member not among the remaining owners takes the last rank.
            let owners = &self.top[row..row + count - 1];
            let mut best: Option<(u64, u32)> = None;
            for &(_, s) in &self.members {
                if owners.iter().any(|&(_, o)| o == s) {
                    continue;
                }
                let key = self.slots[s as usize].as_ref().expect("a live slot").1;
                let candidate = (score_mixed(self.targets[i], key), s);
                if best.is_none_or(|b| self.before(candidate, b)) {
                    best = Some(candidate);
                }
            }
            self.top[row + count - 1] = best.expect("a member outside the owners");
        }
        self.slots[slot as usize] = None;
        changed
    }
}

/// Whether two owner lists (each without duplicates) hold the same ids.
fn same_set(a: &[&str], b: &[&str]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// Ranks best first: higher score, then lower member id. Exposed for tests and for clients
/// that want to sort a whole member list by preference for one target.
pub fn preference_order(target_hash: u64, a: &str, b: &str) -> Ordering {
    let sa = score(key_hash(a.as_bytes()), target_hash);
    let sb = score(key_hash(b.as_bytes()), target_hash);
    sb.cmp(&sa).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, state: MemberState) -> MemberRecord {
        MemberRecord {
            id: id.into(),
            state,
            version: "0".into(),
            web: "127.0.0.1:0".into(),
            started_at: "1970-01-01T00:00:00Z".into(),
        }
    }

    /// The slow, obviously right definition: sort every member by preference, take R.
    fn owners_by_sorting(members: &[&str], r: usize, target_hash: u64) -> Vec<String> {
        let mut all: Vec<&str> = members.to_vec();
        all.sort_unstable();
        all.dedup();
        all.sort_by(|a, b| preference_order(target_hash, a, b));
        all.into_iter().take(r.max(1)).map(str::to_string).collect()
    }

    #[test]
    fn pinned_test_vectors() {
        // Changing any of these breaks every fleet mid-upgrade: do not "fix" the numbers.
        assert_eq!(key_hash(b"scraper-1"), 0xd084_fac3_e474_744c);
        assert_eq!(key_hash(b"job\0up"), 0x1847_342a_2485_4d4e);
        assert_eq!(key_hash(b""), 0xd113_f94b_7fef_532a);
        assert_eq!(
            score(key_hash(b"scraper-1"), key_hash(b"job\0up")),
            0xaded_20be_aa48_ab4e
        );
        assert_eq!(
            score(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210),
            0xd2e9_adac_dde1_a110
        );
    }

    #[test]
    fn score_input_is_target_then_member_little_endian() {
        let t = 0x0102_0304_0506_0708u64;
        let m = 0x1112_1314_1516_1718u64;
        let bytes = [
            8, 7, 6, 5, 4, 3, 2, 1, 0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,
        ];
        assert_eq!(score(m, t), xxh3_64_with_seed(&bytes, HASH_SEED));
        assert_ne!(score(m, t), score(t, m), "argument order matters");
    }

    #[test]
    fn score_is_xxh3_of_the_16_bytes() {
        let mut x = 0x0123_4567_89ab_cdefu64;
        for _ in 0..20_000 {
            // A splitmix-like walk: varied bits in both halves.
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let (m, t) = (
                x.wrapping_mul(0xbf58_476d_1ce4_e5b9),
                x.rotate_left(29) ^ 0x94d0_49bb_1331_11eb,
            );
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&t.to_le_bytes());
            bytes[8..].copy_from_slice(&m.to_le_bytes());
            assert_eq!(
                score(m, t),
                xxh3_64_with_seed(&bytes, HASH_SEED),
                "m={m:#x} t={t:#x}"
            );
        }
        for (m, t) in [(0, 0), (u64::MAX, 0), (0, u64::MAX), (u64::MAX, u64::MAX)] {
            let bytes: Vec<u8> = t.to_le_bytes().into_iter().chain(m.to_le_bytes()).collect();
            assert_eq!(score(m, t), xxh3_64_with_seed(&bytes, HASH_SEED));
        }
    }

    #[test]
    fn owners_match_the_sorting_definition() {
        let members: Vec<String> = (0..17).map(|i| format!("scraper-{i}")).collect();
        let ids: Vec<&str> = members.iter().map(String::as_str).collect();
        for r in [1, 2, 3, 4, 5, 7, 17, 30] {
            let ring = Ring::new(ids.iter().copied(), r);
            for t in 0..500u64 {
                let target_hash = key_hash(&t.to_le_bytes());
                let expected = owners_by_sorting(&ids, r, target_hash);
                let got: Vec<String> = ring
                    .owners(target_hash)
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                assert_eq!(got, expected, "r={r} target={t}");
                let mut buf = vec![u32::MAX; ring.owner_count()];
                let n = ring.owners_into(target_hash, &mut buf);
                let via_buf: Vec<&str> = buf[..n].iter().map(|&i| ring.member_at(i)).collect();
                assert_eq!(via_buf, expected, "owners_into r={r} target={t}");
            }
        }
    }

    #[test]
    fn assign_matches_owners_one_by_one() {
        let ring = Ring::new(["a", "b", "c", "d", "e"], 2);
        let hashes: Vec<u64> = (0..300u64).map(|t| key_hash(&t.to_be_bytes())).collect();
        let assignment = ring.assign(&hashes);
        assert_eq!(assignment.len(), 300);
        for (i, &h) in hashes.iter().enumerate() {
            let row: Vec<&str> = assignment.owners(i).collect();
            assert_eq!(row, ring.owners(h).to_vec());
            for m in ring.members() {
                assert_eq!(assignment.rank_of(i, m), ring.rank_of(h, m));
            }
        }
        assert_eq!(assignment.load().iter().sum::<usize>(), 600);
    }

    #[test]
    fn ties_go_to_the_lower_member_id() {
        // Real scores of distinct members never tie in practice, so check `select` on a ring
        // whose members share one hash (two ids forced onto the same member hash).
        let ring = Ring {
            keys: vec![42, 42, 42],
            ids: vec!["a".into(), "b".into(), "c".into()],
            replication_factor: 2,
        };
        assert_eq!(ring.owners(7).to_vec(), vec!["a", "b"]);
        let ring1 = Ring {
            replication_factor: 1,
            ..ring.clone()
        };
        assert_eq!(ring1.owners(7).to_vec(), vec!["a"]);
    }

    #[test]
    fn incremental_ties_go_to_the_lower_member_id() {
        // Three members forced onto one hash: every score ties, so the ids decide.
        let mut ownership = Ownership::new(&Ring::new([], 2), &[7, 8]);
        for id in ["c", "a", "b"] {
            ownership.join_keyed(id, 42);
        }
        assert_eq!(ownership.owners(0).collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(ownership.leave("a"), vec![0, 1]);
        assert_eq!(ownership.owners(1).collect::<Vec<_>>(), vec!["b", "c"]);
        assert!(ownership.join_keyed("a", 42) == vec![0, 1]);
        assert_eq!(ownership.owners(0).collect::<Vec<_>>(), vec!["a", "b"]);
    }

    #[test]
    fn empty_ring_has_no_owners() {
        let ring = Ring::new([], 3);
        assert!(ring.is_empty());
        assert!(ring.owners(1).is_empty());
        assert_eq!(ring.rank_of(1, "a"), None);
        let assignment = ring.assign(&[1, 2, 3]);
        assert_eq!(assignment.len(), 3);
        assert!((0..3).all(|i| assignment.owners(i).len() == 0));
        // Every target moves when the first member arrives.
        let one = Ring::new(["a"], 3);
        assert_eq!(assignment.moved(&one.assign(&[1, 2, 3])), vec![0, 1, 2]);
    }

    #[test]
    fn replication_factor_is_at_least_one_and_capped_by_members() {
        assert_eq!(Ring::new(["a", "b"], 0).owner_count(), 1);
        assert_eq!(Ring::new(["a", "b"], 5).owner_count(), 2);
        assert_eq!(Ring::new(["a", "b"], 5).owners(9).len(), 2);
    }

    #[test]
    fn draining_members_are_not_in_the_ring() {
        let records = [
            record("a", MemberState::Active),
            record("b", MemberState::Draining),
            record("c", MemberState::Active),
        ];
        let ring = Ring::from_records(&records, 3);
        assert_eq!(ring.members().collect::<Vec<_>>(), vec!["a", "c"]);
        for t in 0..100u64 {
            assert!(!ring.owners(t).contains(&"b"));
            assert_eq!(ring.owners(t).len(), 2);
        }
    }

    #[test]
    fn moved_and_reranked_count_set_and_order_changes() {
        let hashes: Vec<u64> = (0..2000u64).map(|t| key_hash(&t.to_le_bytes())).collect();
        let before = Ring::new(["a", "b", "c"], 2);
        let after = Ring::new(["a", "b", "c", "d"], 2);
        let (x, y) = (before.assign(&hashes), after.assign(&hashes));
        let moved = x.moved(&y);
        for i in 0..hashes.len() {
            let has_d = y.owners(i).any(|m| m == "d");
            assert_eq!(
                moved.binary_search(&i).is_ok(),
                has_d,
                "target {i}: only a join of d moves it"
            );
        }
        let reranked = x.reranked(&y);
        assert!(moved.iter().all(|i| reranked.contains(i)));
        assert!(x.moved(&x).is_empty() && x.reranked(&x).is_empty());
    }
}
