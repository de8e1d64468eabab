//! Members of the pool and their records in ZooKeeper.

/// A member's state: `active` members own targets, `draining` ones are handing theirs over.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Owns targets.
    Active,
    /// Shutting down: owns nothing, scrapes on for the handoff grace period.
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
    /// Every member record, any order.
    pub members: Vec<MemberRecord>,
}

/// All jobs, as one versioned snapshot: name and raw YAML of every `/jobs/<name>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobsSnapshot {
    /// The highest zxid in `/jobs` when it was read (see [`crate::coord`]): rises with every
    /// job created, changed or deleted.
    pub version: i64,
    /// `(name, yaml)` of every job, any order.
    pub jobs: Vec<(String, String)>,
}
