//! Host volumes copied into ConfigMaps ([`HostVolumes::Copy`](crate::HostVolumes::Copy)): the
//! files under a host path are read at `create`, stored in an immutable ConfigMap owned by the
//! pod when it starts, and mounted from it with their paths and permission bits.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hoist_core::{ContainerSpec, Error, ErrorKind, Result, Volume};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, ConfigMapVolumeSource, KeyToPath};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The most bytes of file content one copied volume holds. Kubernetes keeps a ConfigMap as one
/// object of at most 1 MiB; 64 KiB of that are left for its metadata and the file names.
pub const COPY_LIMIT: u64 = 1024 * 1024 - 64 * 1024;

/// The files of one volume, read from the host, ready to become a ConfigMap.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CopiedVolume {
    /// The ConfigMap's name, `<pod>-volume-<index>`.
    pub(crate) name: String,
    /// The files' contents under the keys `f0`, `f1`… (paths may not be keys).
    data: BTreeMap<String, ByteString>,
    /// Each key's path in the volume and permission bits.
    items: Vec<KeyToPath>,
    /// When the host path is a single file: its name, mounted with `subPath`.
    pub(crate) sub_path: Option<String>,
}

impl CopiedVolume {
    /// The pod's volume source.
    pub(crate) fn source(&self) -> ConfigMapVolumeSource {
        ConfigMapVolumeSource {
            name: self.name.clone(),
            items: (!self.items.is_empty()).then(|| self.items.clone()),
            ..ConfigMapVolumeSource::default()
        }
    }

    /// The ConfigMap, owned by the pod so Kubernetes deletes it with the pod; the files move
    /// into it.
    pub(crate) fn into_config_map(
        self,
        namespace: &str,
        labels: BTreeMap<String, String>,
        owner: OwnerReference,
    ) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name),
                namespace: Some(namespace.to_owned()),
                labels: Some(labels),
                owner_references: Some(vec![owner]),
                ..ObjectMeta::default()
            },
            binary_data: Some(self.data),
            immutable: Some(true),
            ..ConfigMap::default()
        }
    }
}

/// A refusal of volume `index`, naming the field at fault.
fn refuse(kind: ErrorKind, field: String, problem: String) -> Error {
    Error::new(kind, format!("{field}: {problem}"))
        .with_operation("create")
        .with_context("field", field)
}

/// Reads the files of volume `index` of a pod called `pod`.
pub(crate) fn read_volume(pod: &str, index: usize, volume: &Volume) -> Result<CopiedVolume> {
    let host = &volume.host_path;
    let host_field = || format!("container.volumes[{index}].host_path");
    if !volume.read_only {
        return Err(refuse(
            ErrorKind::Unsupported,
            format!("container.volumes[{index}]"),
            format!(
                "`{}` is writable, but copied host volumes are read-only ConfigMaps: mount it \
                 read-only, or use `HostVolumes::HostPath`",
                host.display()
            ),
        ));
    }
    let unreadable = |path: &Path, e: std::io::Error| {
        refuse(
            ErrorKind::InvalidInput,
            host_field(),
            format!(
                "cannot read `{}` to copy it into a ConfigMap: {e}",
                path.display()
            ),
        )
    };
    let special = |path: &Path| {
        refuse(
            ErrorKind::Unsupported,
            host_field(),
            format!(
                "`{}` is neither a file nor a directory, and only those can be copied into a \
                 ConfigMap",
                path.display()
            ),
        )
    };
    let mut files = Vec::new();
    let metadata = std::fs::metadata(host).map_err(|e| unreadable(host, e))?;
    let sub_path = if metadata.is_dir() {
        walk(host, PathBuf::new(), &mut Vec::new(), &mut files).map_err(|(path, e)| match e {
            Walk::Io(e) => unreadable(&path, e),
            Walk::Special => special(&path),
        })?;
        None
    } else if metadata.is_file() {
        let name = host
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        files.push((PathBuf::from(&name), host.clone(), metadata));
        Some(name)
    } else {
        return Err(special(host));
    };

    let total: u64 = files.iter().map(|(_, _, m)| m.len()).sum();
    if total > COPY_LIMIT {
        return Err(refuse(
            ErrorKind::InvalidInput,
            host_field(),
            format!(
                "`{}` holds {total} bytes, more than the {COPY_LIMIT} a copied volume can hold \
                 (a ConfigMap is at most 1 MiB): build the files into the image, or use \
                 `HostVolumes::HostPath`",
                host.display()
            ),
        ));
    }
    let mut data = BTreeMap::new();
    let mut items = Vec::with_capacity(files.len());
    for (i, (relative, path, metadata)) in files.into_iter().enumerate() {
        let content = std::fs::read(&path).map_err(|e| unreadable(&path, e))?;
        let key = format!("f{i}");
        items.push(KeyToPath {
            key: key.clone(),
            path: relative.to_string_lossy().into_owned(),
            mode: Some((metadata.permissions().mode() & 0o777) as i32),
            ..KeyToPath::default()
        });
        data.insert(key, ByteString(content));
    }
    Ok(CopiedVolume {
        name: format!("{pod}-volume-{index}"),
        data,
        items,
        sub_path,
    })
}

/// Reads every host volume of `spec` for a pod called `pod`, off the async threads.
pub(crate) async fn read_volumes(pod: &str, spec: &ContainerSpec) -> Result<Vec<CopiedVolume>> {
    let (pod, volumes) = (pod.to_owned(), spec.volumes.clone());
    let read = tokio::task::spawn_blocking(move || {
        volumes
            .iter()
            .enumerate()
            .map(|(i, volume)| read_volume(&pod, i, volume))
            .collect()
    });
    read.await.map_err(|e| {
        Error::new(
            ErrorKind::Backend,
            format!("reading the host volumes failed: {e}"),
        )
        .with_operation("create")
    })?
}

enum Walk {
    Io(std::io::Error),
    Special,
}

type Found = Vec<(PathBuf, PathBuf, std::fs::Metadata)>;

/// Collects the files under `dir` (following symbolic links), in name order, with their
/// paths relative to the volume's root. `ancestors` holds the directories being walked, so a
/// link back up one of them (a loop) is not followed; a directory reached by two links that are
/// not a loop is copied under both names.
fn walk(
    dir: &Path,
    relative: PathBuf,
    ancestors: &mut Vec<PathBuf>,
    files: &mut Found,
) -> std::result::Result<(), (PathBuf, Walk)> {
    let canonical = dir
        .canonicalize()
        .map_err(|e| (dir.to_path_buf(), Walk::Io(e)))?;
    if ancestors.contains(&canonical) {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| (dir.to_path_buf(), Walk::Io(e)))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| (dir.to_path_buf(), Walk::Io(e)))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    ancestors.push(canonical);
    for entry in entries {
        let path = entry.path();
        let metadata = std::fs::metadata(&path).map_err(|e| (path.clone(), Walk::Io(e)))?;
        let inside = relative.join(entry.file_name());
        if metadata.is_dir() {
            walk(&path, inside, ancestors, files)?;
        } else if metadata.is_file() {
            files.push((inside, path, metadata));
        } else {
            // `metadata` follows links: what is left is a pipe, a socket or a device.
            return Err((path, Walk::Special));
        }
    }
    ancestors.pop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(host: &Path, read_only: bool) -> Volume {
        Volume {
            host_path: host.to_path_buf(),
            container_path: "/var/task".into(),
            read_only,
        }
    }

    #[test]
    fn a_directory_becomes_keys_with_paths_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bootstrap"), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            dir.path().join("bootstrap"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib").join("util.py"), b"x = 1\n").unwrap();
        std::fs::set_permissions(
            dir.path().join("lib").join("util.py"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        // A link to a file is copied as the file; a link back up is not copied twice.
        std::os::unix::fs::symlink(dir.path().join("bootstrap"), dir.path().join("run")).unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("lib").join("up")).unwrap();

        let copied = read_volume("pod-a", 2, &volume(dir.path(), true)).unwrap();
        assert_eq!(copied.name, "pod-a-volume-2");
        assert_eq!(copied.sub_path, None);
        let paths: Vec<_> = copied
            .items
            .iter()
            .map(|i| (i.key.as_str(), i.path.as_str(), i.mode))
            .collect();
        assert_eq!(
            paths,
            [
                ("f0", "bootstrap", Some(0o755)),
                ("f1", "lib/util.py", Some(0o640)),
                ("f2", "run", Some(0o755)),
            ]
        );
        assert_eq!(copied.data["f1"].0, b"x = 1\n");
        assert_eq!(copied.source().items.unwrap().len(), 3);
    }

    #[test]
    fn a_directory_linked_twice_is_copied_under_both_names() {
        // As pnpm lays out node_modules: a link into a store directory read earlier.
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join(".store").join("foo");
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(store.join("index.js"), b"module.exports = 1\n").unwrap();
        std::fs::create_dir(dir.path().join("node_modules")).unwrap();
        std::os::unix::fs::symlink(&store, dir.path().join("node_modules").join("foo")).unwrap();
        let copied = read_volume("p", 0, &volume(dir.path(), true)).unwrap();
        let paths: Vec<_> = copied.items.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, [".store/foo/index.js", "node_modules/foo/index.js"]);
    }

    #[test]
    fn a_single_file_is_mounted_by_sub_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("handler.py");
        std::fs::write(&file, b"def handler(e, c): return e\n").unwrap();
        let copied = read_volume("p", 0, &volume(&file, true)).unwrap();
        assert_eq!(copied.sub_path.as_deref(), Some("handler.py"));
        assert_eq!(copied.items[0].path, "handler.py");
    }

    #[test]
    fn refusals_name_the_volume() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_volume("p", 1, &volume(dir.path(), false)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.to_string().contains("container.volumes[1]"), "{err}");
        assert!(err.to_string().contains("writable"), "{err}");

        let missing = dir.path().join("missing");
        let err = read_volume("p", 0, &volume(&missing, true)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(
            err.context_value("field"),
            Some("container.volumes[0].host_path")
        );

        let big = dir.path().join("big");
        std::fs::write(&big, vec![0u8; COPY_LIMIT as usize + 1]).unwrap();
        let err = read_volume("p", 0, &volume(dir.path(), true)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("1 MiB"), "{err}");

        std::fs::remove_file(&big).unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = read_volume("p", 0, &volume(dir.path(), true)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.to_string().contains("pipe"), "{err}");
    }
}
