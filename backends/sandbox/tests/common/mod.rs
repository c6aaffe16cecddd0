//! Root file systems made on the spot from the host's static busybox: no registry.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hoist_sandbox::SandboxContainerizer;

/// The host's statically linked busybox (Debian's `busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";

/// Makes `dir/rootfs`: busybox and a link for each of its applets in `/bin`, an `/etc/passwd`
/// with root and nobody, and the empty directories a container's mounts need.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
    let list = std::process::Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    for empty in ["proc", "dev", "sys", "tmp", "etc", "root"] {
        std::fs::create_dir_all(root.join(empty)).unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    root
}

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
