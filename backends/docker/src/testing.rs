//! Test support (feature `testing`): builds a small image through the Engine API, so tests run
//! without reaching a registry.
//!
//! [`build_busybox_image`] makes a `FROM scratch` image holding a static busybox at
//! `/bin/busybox` with every applet linked into `/bin` (`sh`, `sleep`, `httpd`...), an
//! `/etc/passwd` with `root` and `nobody`, a writable `/tmp` and a `/www/index.html` for
//! `busybox httpd`.

use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptionsBuilder, RemoveImageOptionsBuilder};
use bytes::Bytes;
use futures::StreamExt;
use hoist_core::{Error, ErrorKind, Result};

use crate::engine_error::{engine_error, status_of};

/// Where Debian's `busybox-static` installs the static busybox.
pub const DEBIAN_STATIC_BUSYBOX: &str = "/usr/bin/busybox";

/// The variable that makes an unreachable Engine a test failure (`1`) instead of a skip.
pub const REQUIRE_DOCKER: &str = "HOIST_REQUIRE_DOCKER";

/// Connects to the Engine the way the CLI finds it, for a test about `what`: `None` (the test
/// returns early) with a note when the Engine is unreachable, unless `HOIST_REQUIRE_DOCKER=1`,
/// which makes that a failure.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let Some(docker) = hoist_docker::testing::engine_for_test("my Docker test").await else {
///     return;
/// };
/// # let _ = docker;
/// # }
/// ```
pub async fn engine_for_test(what: &str) -> Option<crate::DockerContainerizer> {
    match crate::DockerContainerizer::connect(crate::DockerConfig::from_env()).await {
        Ok(docker) => Some(docker),
        Err(e) if std::env::var(REQUIRE_DOCKER).as_deref() == Ok("1") => {
            panic!("{REQUIRE_DOCKER}=1 but the Docker Engine is unreachable: {e}")
        }
        Err(e) => {
            eprintln!("note: skipping {what}, the Docker Engine is unreachable: {e}");
            None
        }
    }
}

/// Builds the busybox image from the static busybox at `busybox` and tags it `tag`, with the
/// image labels `labels`. Takes at most `timeout`.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> hoist_core::Result<()> {
/// use std::time::Duration;
/// use hoist_docker::{DockerConfig, DockerContainerizer};
/// use hoist_docker::testing::{DEBIAN_STATIC_BUSYBOX, build_busybox_image, remove_image};
///
/// let docker = DockerContainerizer::connect(DockerConfig::new()).await?;
/// let tag = "my-tests-busybox:1";
/// build_busybox_image(docker.client(), DEBIAN_STATIC_BUSYBOX.as_ref(), tag, &[], Duration::from_secs(60)).await?;
/// // ... run containers from `tag` ...
/// remove_image(docker.client(), tag).await?;
/// # Ok(()) }
/// ```
pub async fn build_busybox_image(
    docker: &Docker,
    busybox: &Path,
    tag: &str,
    labels: &[(&str, &str)],
    timeout: Duration,
) -> Result<()> {
    let context = busybox_context(busybox)?;
    let mut options = BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        // No build cache: a cached step would tie this image to another build's, which a
        // concurrent removal of that image could pull from under it.
        .nocache(true)
        .t(tag)
        .rm(true)
        .forcerm(true);
    let label_map: std::collections::HashMap<&str, &str> = labels.iter().copied().collect();
    if !label_map.is_empty() {
        options = options.labels(&label_map);
    }
    let mut progress = docker.build_image(
        options.build(),
        None,
        Some(bollard::body_full(Bytes::from(context))),
    );
    let building = async {
        while let Some(item) = progress.next().await {
            let info = item.map_err(|e| engine_error(e, "build", "").with_context("image", tag))?;
            if let Some(error) = info.error_detail.and_then(|d| d.message) {
                return Err(Error::new(
                    ErrorKind::Backend,
                    format!("building image `{tag}` failed: {error}"),
                )
                .with_operation("build")
                .with_context("image", tag));
            }
        }
        Ok(())
    };
    tokio::time::timeout(timeout, building).await.map_err(|_| {
        Error::new(
            ErrorKind::Timeout,
            format!("building image `{tag}` took longer than {timeout:?}"),
        )
        .with_operation("build")
        .with_context("image", tag)
    })?
}

/// Removes the image tagged `tag` (and its layers when no other tag holds them). Removing an
/// image that is not there succeeds.
pub async fn remove_image(docker: &Docker, tag: &str) -> Result<()> {
    let options = RemoveImageOptionsBuilder::new().force(true).build();
    match docker.remove_image(tag, Some(options), None).await {
        Ok(_) => Ok(()),
        Err(e) if status_of(&e) == Some(404) => Ok(()),
        Err(e) => Err(engine_error(e, "remove_image", "").with_context("image", tag)),
    }
}

/// The build context: a Dockerfile and the root filesystem to copy.
fn busybox_context(busybox: &Path) -> Result<Vec<u8>> {
    let binary = std::fs::read(busybox).map_err(|e| {
        Error::new(
            ErrorKind::NotFound,
            format!(
                "cannot read the static busybox at {} (install busybox-static): {e}",
                busybox.display()
            ),
        )
        .with_context("path", busybox.display())
    })?;
    let listed = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| {
            Error::new(
                ErrorKind::Backend,
                format!("cannot run {} --list: {e}", busybox.display()),
            )
            .with_context("path", busybox.display())
        })?;
    let applets: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
        .map(str::to_owned)
        .collect();

    let mut tar = tar::Builder::new(Vec::new());
    let io = |e: std::io::Error| {
        Error::new(
            ErrorKind::Backend,
            format!("cannot write the build context: {e}"),
        )
    };
    let dockerfile = b"FROM scratch\nCOPY rootfs/ /\nCMD [\"/bin/sh\"]\n";
    append_file(&mut tar, "Dockerfile", dockerfile, 0o644).map_err(io)?;
    append_file(&mut tar, "rootfs/bin/busybox", &binary, 0o755).map_err(io)?;
    for applet in &applets {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        tar.append_link(&mut header, format!("rootfs/bin/{applet}"), "busybox")
            .map_err(io)?;
    }
    append_file(
        &mut tar,
        "rootfs/etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    )
    .map_err(io)?;
    append_file(
        &mut tar,
        "rootfs/etc/group",
        b"root:x:0:\nnogroup:x:65534:\n",
        0o644,
    )
    .map_err(io)?;
    append_file(&mut tar, "rootfs/www/index.html", b"hoist\n", 0o644).map_err(io)?;
    for dir in ["rootfs/tmp", "rootfs/root"] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(if dir.ends_with("tmp") { 0o1777 } else { 0o700 });
        tar.append_data(&mut header, dir, std::io::empty())
            .map_err(io)?;
    }
    tar.into_inner().map_err(io)
}

fn append_file(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    data: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_holds_busybox_and_its_applets() {
        let context = busybox_context(Path::new(DEBIAN_STATIC_BUSYBOX)).unwrap();
        let mut archive = tar::Archive::new(context.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        for expected in [
            "Dockerfile",
            "rootfs/bin/busybox",
            "rootfs/bin/sh",
            "rootfs/bin/httpd",
            "rootfs/bin/sleep",
            "rootfs/tmp",
        ] {
            assert!(
                names.iter().any(|n| n.trim_end_matches('/') == expected),
                "{expected} missing from {names:?}"
            );
        }
    }

    #[test]
    fn a_missing_busybox_is_named() {
        let err = busybox_context(Path::new("/nonexistent/busybox")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.message().contains("/nonexistent/busybox"), "{err}");
    }
}
