//! # scrapepool-sim
//!
//! Runs a pool of scrapers — the real driver and core — over simulated ports, from one seed.
