//! Fuzzes the protobuf exposition parser against an independent reading (prost and a plain
//! expansion into samples): both refuse an input or both give the same samples, labels,
//! exemplars and metadata; no panic; errors carry a byte offset within the body (its end included).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _parsed = scrapepool_core::testing::fuzz_parse_protobuf(data);
});
