//! The sandbox backend against the whole containerizer conformance suite, on a busybox root.

mod common;

use hoist_core::testing::{ConformanceTarget, conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_backend_passes_the_conformance_suite() {
    let state = tempfile::tempdir().unwrap();
    let images = tempfile::tempdir().unwrap();
    let rootfs = common::busybox_rootfs(images.path());
    let sandbox = common::sandbox(state.path());
    let target =
        ConformanceTarget::posix_shell(["/bin/sh"]).with_image(rootfs.display().to_string());
    conformance::run_all(&sandbox, &target).await.unwrap();
    let left: Vec<_> = std::fs::read_dir(state.path().join("containers"))
        .unwrap()
        .collect();
    assert!(
        left.is_empty(),
        "the suite left container folders behind: {left:?}"
    );
}
