//! Runtime catalogs: Kubeless's runtime ConfigMap, Laser's executor providers, the image
//! mapping, handler and runtime names.
#![no_main]

use hoist_runtimes::catalog::{ImageMapping, parse_kubeless, parse_providers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = parse_kubeless(text, "fuzz");
    let _ = parse_providers(text, "fuzz");
    let _ = ImageMapping::parse(text);
    let _ = hoist_runtimes::function::Handler::parse(text);
    let _ = hoist_core::catalog::RuntimeName::parse(text);
});
