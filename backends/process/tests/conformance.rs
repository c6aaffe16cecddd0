//! The process backend against the whole containerizer conformance suite.

use hoist_core::testing::{ConformanceTarget, conformance};
use hoist_process::ProcessContainerizer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_backend_passes_the_conformance_suite() {
    let state = tempfile::tempdir().unwrap();
    let processes = ProcessContainerizer::new(state.path()).unwrap();
    let target = ConformanceTarget::posix_shell(["/bin/sh"]);
    conformance::run_all(&processes, &target).await.unwrap();
    let left: Vec<_> = std::fs::read_dir(state.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "the suite left container folders behind: {left:?}"
    );
}
