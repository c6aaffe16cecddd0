//! Helpers for tests and benchmarks (feature `testing`): root file systems made on the spot
//! from the host's static busybox, no registry.

use std::path::{Path, PathBuf};

/// The host's statically linked busybox (Debian's `busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";

/// Makes `dir/rootfs` and returns it: busybox and a link for each of its applets in `/bin`,
/// an `/etc/passwd` with root and nobody, and the empty directories a container's mounts
/// need.
///
/// # Panics
///
/// When the host has no static busybox at [`BUSYBOX`] or `dir` cannot be written: it is for
/// tests.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).expect("the root's /bin can be made");
    std::fs::copy(BUSYBOX, bin.join("busybox")).expect("the host has a static busybox");
    let list = std::process::Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .expect("busybox lists its applets");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet))
                .expect("an applet's link can be made");
        }
    }
    for empty in ["proc", "dev", "sys", "tmp", "etc", "root"] {
        std::fs::create_dir_all(root.join(empty)).expect("the root's directories can be made");
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .expect("/etc/passwd can be written");
    root
}
