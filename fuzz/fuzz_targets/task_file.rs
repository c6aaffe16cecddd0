//! Task files and task specs, in YAML and JSON, as `hoist run` and the library read them. A
//! spec that parses must also pass its own validation again after a JSON round trip.
#![no_main]

use hoist_core::{TaskFile, TaskSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = TaskFile::from_yaml(text);
    let _ = TaskFile::from_json(text);
    for spec in [TaskSpec::from_yaml(text), TaskSpec::from_json(text)]
        .into_iter()
        .flatten()
    {
        let json = serde_json::to_string(&spec).expect("a parsed spec serializes");
        let again = TaskSpec::from_json(&json).expect("a parsed spec reads back");
        assert_eq!(again, spec);
    }
});
