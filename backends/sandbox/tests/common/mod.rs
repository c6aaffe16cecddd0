//! Root file systems made on the spot from the host's static busybox: no registry.

#![allow(dead_code)]

use std::path::Path;

use hoist_sandbox::SandboxContainerizer;

pub use hoist_sandbox::testing::busybox_rootfs;

/// A sandbox containerizer on `state`, which the machine must be able to run.
pub fn sandbox(state: &Path) -> SandboxContainerizer {
    SandboxContainerizer::new(state).expect("this machine runs sandboxed containers")
}

/// Builds the directory `context` (with a root file system in `context/rootfs`) as a local
/// Docker image tagged `tag`, from a Dockerfile of the given lines after `FROM scratch` and
/// `COPY rootfs /`.
pub fn docker_build(context: &Path, tag: &str, lines: &str) {
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM scratch\nCOPY rootfs /\n{lines}"),
    )
    .unwrap();
    let built = std::process::Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(context)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
}
