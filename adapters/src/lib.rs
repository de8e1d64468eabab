//! # scrapepool-adapters
//!
//! The driver loop that feeds events into [`scrapepool_core::Node`] and carries out its
//! commands, and one thin adapter per outside system behind a port trait. Adapters hold no
//! policy: every decision is the core's.

pub mod contract;
pub mod discovery;
pub mod driver;
pub mod http;
pub mod kafka;
pub mod ports;
pub mod sink;
pub mod spool;
pub mod web;
pub mod zk;
