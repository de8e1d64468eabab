//! # scrapepool-core
//!
//! The deterministic decision core of scrapepool: it holds no sockets, starts no threads,
//! never reads a clock and draws no unseeded random numbers. Time is an argument; the
//! outside world's news arrives as [`Event`]s and the core's wishes leave as [`Command`]s.
//! Given the same sequence of `(time, event)` it produces the same commands, every time.
//!
//! ## The run loop
//!
//! A driver owns one [`Node`]. After every [`Node::handle`] it drains
//! [`Node::poll_command`] until `None`, carries the commands out, then sleeps until
//! [`Node::poll_timeout`] or the next event, whichever comes first:
//!
//! ```
//! use scrapepool_core::{Command, Event, Node, NodeConfig, Timestamp};
//! use scrapepool_core::member::{JobsSnapshot, MemberRecord, MemberState, MembersSnapshot};
//!
//! let config = NodeConfig::for_tests("scraper-1");
//! let mut node = Node::new(config, Timestamp(0));
//! let job = "job_name: demo\nscrape_interval: 10s\nstatic_configs:\n  - targets: ['127.0.0.1:9100']\n";
//! let me = MemberRecord {
//!     id: "scraper-1".into(), state: MemberState::Active, version: "0".into(),
//!     web: "127.0.0.1:0".into(), started_at: "1970-01-01T00:00:00Z".into(),
//! };
//! let events = vec![
//!     (Timestamp(0), Event::SessionConnected),
//!     (Timestamp(1), Event::MembersChanged(MembersSnapshot { version: 1, members: vec![me], ..Default::default() })),
//!     (Timestamp(2), Event::JobsChanged(JobsSnapshot { version: 1, jobs: vec![("demo".into(), job.into())], ..Default::default() })),
//! ];
//! let mut scrapes = 0;
//! let mut now = Timestamp(0);
//! for (at, event) in events {
//!     now = at;
//!     node.handle(now, event);
//!     while let Some(command) = node.poll_command() {
//!         if let Command::Scrape(_) = command { scrapes += 1 } // a driver would fetch here
//!     }
//! }
//! // Nothing more to do until the first scrape is due.
//! while let Some((wake, _why)) = node.poll_timeout() {
//!     if wake > Timestamp(10_000) { break }
//!     now = wake;
//!     node.handle(now, Event::Tick);
//!     while let Some(command) = node.poll_command() {
//!         if let Command::Scrape(_) = command { scrapes += 1 }
//!     }
//! }
//! assert_eq!(scrapes, 1);
//! ```
//!
//! ## Modules
//!
//! One module per concern: [`config`] (job YAML), [`relabel`], [`targets`] (groups to
//! targets), [`ring`] (ownership), [`schedule`] (scrape phase), [`exposition`] (parsing),
//! [`histogram`] (native histograms),
//! [`scrape`] (per-scrape processing and staleness), [`encode`] (bus encodings), [`member`]
//! (member records), [`coord`] (the ZooKeeper session policy), [`node`] (the state machine),
//! [`delivery`] (the delivery ledger every sink runs).

#![warn(missing_docs)]

pub mod config;
pub mod coord;
pub mod delivery;
pub mod encode;
pub mod exposition;
pub mod format;
pub mod histogram;
pub mod jobs_file;
pub mod labels;
pub mod member;
pub mod node;
pub mod protocol;
pub mod relabel;
pub mod ring;
pub mod sample;
pub mod schedule;
pub mod scrape;
pub mod spool;
pub mod targets;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;

pub use node::{Command, Event, Node, NodeConfig};
pub use time::Timestamp;
