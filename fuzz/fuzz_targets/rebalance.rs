//! Fuzzes rebalancing: a cluster of nodes driven through a sequence of operations (members
//! join, leave, drain; jobs and targets change; sessions are lost and expire; time passes)
//! keeps the ownership invariants (ARCHITECTURE.md, "Ownership and hashing") after every
//! step.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _outcome = scrapepool_core::testing::fuzz_rebalance(data);
});
