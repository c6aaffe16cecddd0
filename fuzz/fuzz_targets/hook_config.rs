//! Hook configuration sections, as the mesos-executor's config file gives them: any JSON for
//! any hook name builds a hook or is refused with an error, never a panic.
#![no_main]

use std::sync::Arc;

use hoist_hooks::firewall::RecordingFirewall;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 6] = [
    "remove-container",
    "acl",
    "iptables",
    "netns",
    "network",
    "unknown",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(section) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let name = NAMES[usize::from(pick) % NAMES.len()];
    let _ = hoist_hooks::from_config_with(name, &section, Arc::new(RecordingFirewall::new()));
});
