//! Members of the pool and their records in ZooKeeper.

use std::collections::BTreeMap;

use crate::time::Timestamp;

/// A member's state: `active` members own targets, `draining` ones are handing theirs over.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Owns targets.
    Active,
    /// Shutting down: owns nothing, scrapes on until its targets' handoff slots
    /// (ARCHITECTURE.md, "Membership and handoff").
    Draining,
}

/// The JSON data of `/members/<id>` (ARCHITECTURE.md, "Coordination").
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct MemberRecord {
    /// The member id (also the znode's name).
    pub id: String,
    /// Active or draining.
    pub state: MemberState,
    /// scrapepool's version.
    pub version: String,
    /// `host:port` of its web server.
    pub web: String,
    /// When it started, RFC 3339.
    pub started_at: String,
}

/// All members, as one versioned snapshot (never a delta).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembersSnapshot {
    /// The highest zxid in `/members` when it was read (see [`crate::coord`]): rises with
    /// every join, leave and record update.
    pub version: i64,
    /// `/members`' child version when it was read: how many member znodes have been created
    /// and deleted. Every join and every leave raises it by one, so a member that reads a
    /// snapshot without some member in it reads a higher one than that member last read.
    pub cversion: i32,
    /// The ZooKeeper server's time of the latest record change the snapshot reflects: the
    /// highest `ctime`/`mtime` of the member znodes (a deletion has no time of its own).
    pub changed_at: Timestamp,
    /// Every member record, any order.
    pub members: Vec<MemberRecord>,
    /// Per member id: the server's time of its record's last change (its znode's `mtime`:
    /// the join for an active member, the update to `draining` for a draining one). The
    /// handoff slot of a target that moves is computed from these times, so that the old and
    /// the new owner agree whatever other changes the snapshots they read also reflect. A
    /// member missing here has an unknown time, taken as long past.
    pub changed: BTreeMap<String, Timestamp>,
    /// Per member id: the server's time of its record's creation (`ctime`: its join). A
    /// member missing here joined when its record last changed.
    pub joined: BTreeMap<String, Timestamp>,
}

impl MembersSnapshot {
    /// When `id` joined: its record's creation, else its last change.
    pub fn joined_at_of(&self, id: &str) -> Option<Timestamp> {
        self.joined
            .get(id)
            .copied()
            .or_else(|| self.changed_at_of(id))
    }

    /// The time of `id`'s record's last change, if the snapshot has it.
    pub fn changed_at_of(&self, id: &str) -> Option<Timestamp> {
        self.changed.get(id).copied()
    }
}

/// All jobs, as one versioned snapshot: name and raw YAML of every `/jobs/<name>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobsSnapshot {
    /// The highest zxid in `/jobs` when it was read (see [`crate::coord`]): rises with every
    /// job created, changed or deleted.
    pub version: i64,
    /// The ZooKeeper server's time of the latest job change the snapshot reflects: the
    /// highest `ctime`/`mtime` of the job znodes.
    pub changed_at: Timestamp,
    /// `(name, yaml)` of every job, any order.
    pub jobs: Vec<(String, String)>,
}
