//! Images as OCI image layouts and `docker save` archives: layers unpacked once into the
//! cache, shared between containers, whiteouts honoured.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hoist_core::{ContainerId, ContainerSpec, Containerizer, ExitStatus, Owner};
use hoist_sandbox::SandboxContainerizer;
use sha2::{Digest, Sha256};

const DEADLINE: Duration = Duration::from_secs(30);

/// A tar of `dir`'s contents (paths relative to it), then `files` with their text.
fn layer_tar(dir: Option<&Path>, files: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    if let Some(dir) = dir {
        builder.append_dir_all(".", dir).unwrap();
    }
    for (path, text) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, path, text.as_bytes())
            .unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Writes `bytes` as a blob of the layout at `dir`; its digest.
fn blob(dir: &Path, bytes: &[u8]) -> String {
    let hex = format!("{:x}", Sha256::digest(bytes));
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(&hex), bytes).unwrap();
    format!("sha256:{hex}")
}

/// An OCI image layout of two layers: busybox with `/etc/gone` and `/etc/dir/{a,b}`, then a
/// gzipped layer that whites out `/etc/gone`, makes `/etc/dir` opaque and adds `/etc/dir/c`.
fn oci_layout(dir: &Path, rootfs: &Path) -> PathBuf {
    let layout = dir.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    let base = layer_tar(
        Some(rootfs),
        &[("etc/gone", "x"), ("etc/dir/a", "a"), ("etc/dir/b", "b")],
    );
    let top = gzip(&layer_tar(
        None,
        &[
            ("etc/.wh.gone", ""),
            ("etc/dir/.wh..wh..opq", ""),
            ("etc/dir/c", "c"),
        ],
    ));
    let layers: Vec<_> = [(&base, "tar"), (&top, "tar+gzip")]
        .iter()
        .map(|(bytes, kind)| {
            serde_json::json!({
                "mediaType": format!("application/vnd.oci.image.layer.v1.{kind}"),
                "digest": blob(&layout, bytes),
                "size": bytes.len(),
            })
        })
        .collect();
    let config = blob(&layout, br#"{"architecture":"amd64","os":"linux"}"#);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 37},
        "layers": layers,
    });
    let manifest = blob(&layout, manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest, "size": 0}],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    layout
}

async fn start(sandbox: &SandboxContainerizer, image: &Path, script: &str) -> ContainerId {
    let mut spec = ContainerSpec::command(["/bin/sh", "-c", script]);
    spec.image = Some(image.display().to_string());
    let owner = Owner {
        executor_id: "images".into(),
        task_id: "task".into(),
    };
    let id = sandbox.create(&owner, &spec).await.unwrap();
    sandbox.start(&id).await.unwrap();
    id
}

async fn output(sandbox: &SandboxContainerizer, id: &ContainerId) -> (ExitStatus, String) {
    let status = tokio::time::timeout(DEADLINE, sandbox.wait(id))
        .await
        .unwrap()
        .unwrap();
    let dir = sandbox.containers_dir().join(id.as_str());
    let text = ["stdout.log", "stderr.log"]
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
        .concat();
    (status, text)
}

/// The overlay's `lowerdir` of the container's root, from the mount table.
fn lowerdir(sandbox: &SandboxContainerizer, id: &ContainerId) -> String {
    let rootfs = sandbox
        .containers_dir()
        .join(id.as_str())
        .join("sandbox/bundle/rootfs");
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = table
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(rootfs.to_str().unwrap()))
        .expect("the root is mounted");
    let options = line.rsplit(' ').next().unwrap();
    options
        .split(',')
        .find_map(|o| o.strip_prefix("lowerdir="))
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oci_layout_is_unpacked_once_shared_and_its_whiteouts_honoured() {
    let state = tempfile::tempdir().unwrap();
    let images = tempfile::tempdir().unwrap();
    let rootfs = common::busybox_rootfs(images.path());
    let layout = oci_layout(images.path(), &rootfs);
    let sandbox = common::sandbox(state.path());

    let script = "test -e /etc/gone && echo gone-is-there; ls /etc/dir; exec sleep 1000";
    let first = start(&sandbox, &layout, script).await;
    let second = start(&sandbox, &layout, script).await;
    let cached: Vec<_> = std::fs::read_dir(state.path().join("images/sha256"))
        .unwrap()
        .collect();
    assert_eq!(cached.len(), 2, "two layers, unpacked once: {cached:?}");
    assert_eq!(lowerdir(&sandbox, &first), lowerdir(&sandbox, &second));
    assert_eq!(lowerdir(&sandbox, &first).split(':').count(), 2);

    for id in [&first, &second] {
        sandbox.stop(id, Duration::ZERO).await.unwrap();
        let (_, text) = output(&sandbox, id).await;
        assert_eq!(text, "c\n", "the whiteouts were not honoured");
        sandbox.remove(id, false).await.unwrap();
    }
    // The cache outlives the containers; the next one reuses it.
    let third = start(&sandbox, &layout, "cat /etc/dir/c").await;
    let (status, text) = output(&sandbox, &third).await;
    assert_eq!((status, text.as_str()), (ExitStatus::code(0), "c"));
    sandbox.remove(&third, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_save_archive_runs_with_its_deletions() {
    let docker_ok = std::process::Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !docker_ok {
        assert_ne!(
            std::env::var("HOIST_REQUIRE_DOCKER").as_deref(),
            Ok("1"),
            "Docker is required but unreachable"
        );
        eprintln!("skipped: the Docker Engine is unreachable");
        return;
    }
    let images = tempfile::tempdir().unwrap();
    let context = images.path().join("context");
    std::fs::create_dir_all(&context).unwrap();
    common::busybox_rootfs(&context);
    let tag = format!("hoist-sandbox-test:{}", std::process::id());
    common::docker_build(
        &context,
        &tag,
        "RUN echo added > /etc/added && rm /etc/passwd\n",
    );
    let archive = images.path().join("image.tar");
    let saved = std::process::Command::new("docker")
        .args(["save", "-o"])
        .arg(&archive)
        .arg(&tag)
        .status()
        .unwrap();
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", &tag])
        .output();
    assert!(saved.success());

    let state = tempfile::tempdir().unwrap();
    let sandbox = common::sandbox(state.path());
    let id = start(
        &sandbox,
        &archive,
        "cat /etc/added; test -e /etc/passwd || echo no-passwd",
    )
    .await;
    let (status, text) = output(&sandbox, &id).await;
    assert_eq!(status, ExitStatus::code(0), "{text}");
    assert_eq!(text, "added\nno-passwd\n");
    sandbox.remove(&id, false).await.unwrap();
}
