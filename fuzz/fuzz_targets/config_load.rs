//! Fuzzes the job config loader: no panic, and every error has a line and a column.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _errors = scrapepool_core::testing::fuzz_config(data);
});
