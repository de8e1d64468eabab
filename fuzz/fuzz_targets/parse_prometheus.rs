//! Fuzzes the exposition parser (Prometheus format): no panic, errors with a position, and every
//! parsed body renders back to text that parses to the same samples.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scrapepool_core::exposition::Format;

fuzz_target!(|data: &[u8]| {
    let _parsed = scrapepool_core::testing::fuzz_parse(data, Format::Prometheus);
});
