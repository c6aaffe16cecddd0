//! Durations and byte sizes as flags, config files and task files write them (`10s`, `512Mi`).
#![no_main]

use hoist_core::units::{parse_bytes, parse_duration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = parse_duration(text);
    let _ = parse_bytes(text);
    let _ = hoist_mesos::env::parse_duration(text);
});
