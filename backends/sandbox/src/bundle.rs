//! One container's OCI bundle: its `config.json`, made from a [`ContainerSpec`], and its root
//! file system, an overlay of the image's read-only layers under a writable layer of its own.
//!
//! ```text
//! <container folder>/sandbox/sandbox.json      runc's id for it, the spec, the image's layers
//! <container folder>/sandbox/bundle/config.json
//! <container folder>/sandbox/bundle/rootfs/    the overlay, mounted from create to remove
//! <container folder>/sandbox/upper/, work/     the overlay's writable layer
//! <container folder>/sandbox/resolv.conf       written when the spec names DNS servers
//! <container folder>/sandbox/runc/             runc's state while the container runs
//! ```

use std::path::{Path, PathBuf};

use hoist_core::{ContainerSpec, Error, ErrorKind, NetworkMode, Result};
use nix::mount::{MntFlags, MsFlags};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// runc's state directory, relative to the container's sandbox folder.
pub(crate) const RUNC_ROOT: &str = "runc";
/// The bundle, relative to the container's sandbox folder.
pub(crate) const BUNDLE: &str = "bundle";
/// Where the init is mounted inside every container: on its own `/dev` tmpfs, so the root file
/// system is never written for it.
const INIT_PATH: &str = "/dev/init";
/// The `PATH` a container gets when its spec sets none.
const DEFAULT_PATH: &str = hoist_process::DEFAULT_PATH;

/// What hoist-sandbox keeps about a container beside the process backend's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SandboxRecord {
    /// The container's id for runc.
    pub(crate) runc_id: String,
    /// The spec as the caller gave it.
    pub(crate) spec: ContainerSpec,
    /// The image's layers, top first: the overlay's lower directories.
    pub(crate) layers: Vec<PathBuf>,
}

/// The paths of one container's sandbox folder.
#[derive(Debug, Clone)]
pub(crate) struct Bundle {
    root: PathBuf,
}

impl Bundle {
    /// The sandbox folder of the process backend's container folder `dir`.
    pub(crate) fn new(container_dir: &Path) -> Self {
        Bundle {
            root: container_dir.join("sandbox"),
        }
    }

    pub(crate) fn rootfs(&self) -> PathBuf {
        self.root.join(BUNDLE).join("rootfs")
    }

    pub(crate) fn runc_root(&self) -> PathBuf {
        self.root.join(RUNC_ROOT)
    }

    fn record_path(&self) -> PathBuf {
        self.root.join("sandbox.json")
    }

    /// Notes that hoist sent the container KILL, so its end is not taken for an OOM kill.
    pub(crate) fn mark_killed(&self) -> Result<()> {
        write(&self.root.join("killed"), b"")
    }

    /// Whether hoist sent the container KILL.
    pub(crate) fn killed(&self) -> bool {
        self.root.join("killed").exists()
    }

    /// The record, or `None` when the folder has none (it is being made or removed).
    pub(crate) fn read(&self) -> Result<Option<SandboxRecord>> {
        let path = self.record_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::new(
                    ErrorKind::Backend,
                    format!("the record {} cannot be read: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("could not read", &path, e)),
        }
    }

    /// Writes the record and `config.json` (the container's processes in cgroup `cgroup`, a
    /// path inside the hierarchy), and mounts the root file system.
    pub(crate) fn make(&self, record: &SandboxRecord, init: &Path, cgroup: &str) -> Result<()> {
        for dir in [
            self.rootfs(),
            self.root.join("upper"),
            self.root.join("work"),
        ] {
            std::fs::create_dir_all(&dir).map_err(|e| io_error("could not create", &dir, e))?;
        }
        let resolv = (!record.spec.dns.is_empty()).then(|| self.root.join("resolv.conf"));
        if let Some(path) = &resolv {
            let text: String = record
                .spec
                .dns
                .iter()
                .map(|ip| format!("nameserver {ip}\n"))
                .collect();
            write(path, text.as_bytes())?;
        }
        let config = config(record, init, resolv.as_deref(), cgroup);
        write(
            &self.root.join(BUNDLE).join("config.json"),
            config.to_string().as_bytes(),
        )?;
        write(
            &self.record_path(),
            &serde_json::to_vec(record).expect("a record serialises"),
        )?;
        self.mount(&record.layers)
    }

    fn mount(&self, layers: &[PathBuf]) -> Result<()> {
        let lower = layers
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let options = format!(
            "lowerdir={lower},upperdir={},workdir={}",
            self.root.join("upper").display(),
            self.root.join("work").display()
        );
        let rootfs = self.rootfs();
        nix::mount::mount(
            Some("overlay"),
            &rootfs,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|e| {
            Error::new(
                ErrorKind::Backend,
                format!(
                    "could not mount the root file system at {}: {e}",
                    rootfs.display()
                ),
            )
        })
    }

    /// Unmounts the root file system (and whatever is mounted under it); an unmounted one is
    /// fine.
    pub(crate) fn unmount(&self) -> Result<()> {
        let rootfs = self.rootfs();
        loop {
            match nix::mount::umount2(&rootfs, MntFlags::MNT_DETACH) {
                Ok(()) => continue,
                Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => return Ok(()),
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::Backend,
                        format!(
                            "could not unmount the root file system at {}: {e}",
                            rootfs.display()
                        ),
                    ));
                }
            }
        }
    }
}

/// The checks a spec needs beyond the capabilities: paths overlayfs and runc can take.
pub(crate) fn check(spec: &ContainerSpec) -> Result<()> {
    if let Some(dir) = &spec.working_dir
        && !dir.is_absolute()
    {
        return Err(Error::invalid_field(
            "working_dir",
            "must be an absolute path inside the container",
        ));
    }
    for (i, volume) in spec.volumes.iter().enumerate() {
        if !volume.host_path.is_absolute() || !volume.host_path.exists() {
            return Err(Error::invalid_field(
                format!("volumes[{i}].host_path"),
                format!(
                    "{} must be an existing absolute path on the host",
                    volume.host_path.display()
                ),
            ));
        }
        if !volume.container_path.is_absolute() {
            return Err(Error::invalid_field(
                format!("volumes[{i}].container_path"),
                "must be an absolute path inside the container",
            ));
        }
    }
    if let Some(user) = &spec.user {
        parse_user(user)?;
    }
    Ok(())
}

/// `uid` or `uid:gid`.
fn parse_user(user: &str) -> Result<(u32, u32)> {
    let bad = || Error::invalid_field("user", format!("`{user}` is not `uid` or `uid:gid`"));
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    Ok((
        uid.parse().map_err(|_| bad())?,
        gid.parse().map_err(|_| bad())?,
    ))
}

/// The OCI runtime configuration for `record`: its argv behind the init, environment, working
/// directory and user; pid, mount, ipc and uts namespaces always and a network namespace for
/// `network: none`; a root file system read-only when `spec.read_only` is set in its labels;
/// the default mounts, volumes, and `resolv.conf`; the processes in cgroup `cgroup` (its limits
/// are set on its parent, which hoist makes).
fn config(
    record: &SandboxRecord,
    init: &Path,
    resolv: Option<&Path>,
    cgroup: &str,
) -> serde_json::Value {
    let spec = &record.spec;
    let mut args = vec![INIT_PATH.to_owned(), "--".to_owned()];
    args.extend(spec.argv());
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !spec.env.contains_key("PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    let (uid, gid) = spec
        .user
        .as_deref()
        .and_then(|u| parse_user(u).ok())
        .unwrap_or((0, 0));
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if spec.network == Some(NetworkMode::None) {
        namespaces.push(json!({"type": "network"}));
    }
    let mut mounts = default_mounts();
    mounts.push(bind(init, Path::new(INIT_PATH), true));
    for volume in &spec.volumes {
        mounts.push(bind(
            &volume.host_path,
            &volume.container_path,
            volume.read_only,
        ));
    }
    match resolv {
        Some(file) => mounts.push(bind(file, Path::new("/etc/resolv.conf"), true)),
        None if spec.network != Some(NetworkMode::None)
            && Path::new("/etc/resolv.conf").is_file() =>
        {
            mounts.push(bind(
                Path::new("/etc/resolv.conf"),
                Path::new("/etc/resolv.conf"),
                true,
            ));
        }
        None => {}
    }
    let caps = DEFAULT_CAPABILITIES;
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid},
            "args": args,
            "env": env,
            "cwd": spec.working_dir.as_deref().unwrap_or(Path::new("/")),
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true,
        },
        "root": {"path": "rootfs", "readonly": read_only(spec)},
        "hostname": hostname(&record.runc_id),
        "mounts": mounts,
        "linux": {
            "cgroupsPath": cgroup,
            "namespaces": namespaces,
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    })
}

/// The label that asks for a read-only root file system (`"true"`).
pub const READ_ONLY_LABEL: &str = "hoist.sandbox/read-only-rootfs";

fn read_only(spec: &ContainerSpec) -> bool {
    spec.labels.get(READ_ONLY_LABEL).map(String::as_str) == Some("true")
}

/// The container's host name: runc's id without its `hoist-` prefix, at most 63 characters.
fn hostname(runc_id: &str) -> String {
    runc_id
        .trim_start_matches("hoist-")
        .chars()
        .take(63)
        .collect()
}

/// The capabilities the Docker Engine gives a container by default.
const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The mounts of runc's default specification (`runc spec`).
fn default_mounts() -> Vec<serde_json::Value> {
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
    ]
}

fn bind(source: &Path, destination: &Path, read_only: bool) -> serde_json::Value {
    let mut options = vec!["rbind", "rprivate"];
    if read_only {
        options.push("ro");
    }
    json!({"destination": destination, "type": "bind", "source": source, "options": options})
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| io_error("could not write", path, e))
}

pub(crate) fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Backend,
        format!("{what} {}: {e}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(spec: ContainerSpec) -> SandboxRecord {
        SandboxRecord {
            runc_id: "hoist-0123456789abcdef".to_owned(),
            spec,
            layers: vec![PathBuf::from("/images/root")],
        }
    }

    fn namespaces(config: &serde_json::Value) -> Vec<&str> {
        config["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn the_init_runs_the_argv_with_the_specs_environment_and_namespaces() {
        let mut spec = ContainerSpec::command(["/bin/sh", "-c", "true"]);
        spec.env.insert("A".to_owned(), "1".to_owned());
        spec.working_dir = Some("/srv".into());
        let config = config(
            &record(spec.clone()),
            Path::new("/usr/bin/tini-static"),
            None,
            "/hoist/c1/hoist-0123456789abcdef",
        );
        assert_eq!(
            config["process"]["args"],
            json!(["/dev/init", "--", "/bin/sh", "-c", "true"])
        );
        assert_eq!(
            config["process"]["env"],
            json!(["A=1", format!("PATH={DEFAULT_PATH}")])
        );
        assert_eq!(config["process"]["cwd"], "/srv");
        assert_eq!(config["process"]["user"], json!({"uid": 0, "gid": 0}));
        assert_eq!(config["root"], json!({"path": "rootfs", "readonly": false}));
        assert_eq!(config["hostname"], "0123456789abcdef");
        assert_eq!(namespaces(&config), ["pid", "ipc", "uts", "mount"]);

        spec.network = Some(NetworkMode::None);
        spec.user = Some("1000:100".to_owned());
        spec.labels
            .insert(READ_ONLY_LABEL.to_owned(), "true".to_owned());
        assert_eq!(
            config["linux"]["cgroupsPath"],
            "/hoist/c1/hoist-0123456789abcdef"
        );
        let config = super::config(&record(spec), Path::new("/tini"), None, "/hoist/c2/x");
        assert_eq!(
            namespaces(&config),
            ["pid", "ipc", "uts", "mount", "network"]
        );
        assert_eq!(config["process"]["user"], json!({"uid": 1000, "gid": 100}));
        assert_eq!(config["root"]["readonly"], true);
        let mounts = config["mounts"].as_array().unwrap();
        assert!(
            !mounts
                .iter()
                .any(|m| m["destination"] == "/etc/resolv.conf"),
            "network none gets no resolver"
        );
        assert!(mounts.iter().any(|m| m["destination"] == "/dev/init"
            && m["source"] == "/tini"
            && m["options"] == json!(["rbind", "rprivate", "ro"])));
    }

    #[test]
    fn volumes_and_a_written_resolv_conf_are_bind_mounts() {
        let mut spec = ContainerSpec::command(["true"]);
        spec.volumes = vec![hoist_core::Volume {
            host_path: "/var/data".into(),
            container_path: "/data".into(),
            read_only: false,
        }];
        let config = config(
            &record(spec),
            Path::new("/tini"),
            Some(Path::new("/state/resolv.conf")),
            "/hoist/c1/x",
        );
        let mounts = config["mounts"].as_array().unwrap();
        assert!(
            mounts.contains(&json!({"destination": "/data", "type": "bind",
            "source": "/var/data", "options": ["rbind", "rprivate"]}))
        );
        assert!(
            mounts.contains(&json!({"destination": "/etc/resolv.conf", "type": "bind",
            "source": "/state/resolv.conf", "options": ["rbind", "rprivate", "ro"]}))
        );
    }

    #[test]
    fn bad_paths_and_users_are_refused_naming_the_field() {
        let mut spec = ContainerSpec::command(["true"]);
        spec.working_dir = Some("srv".into());
        assert_eq!(
            check(&spec).unwrap_err().context_value("field"),
            Some("working_dir")
        );
        let mut spec = ContainerSpec::command(["true"]);
        spec.user = Some("1000:staff".to_owned());
        assert_eq!(
            check(&spec).unwrap_err().context_value("field"),
            Some("user")
        );
        let mut spec = ContainerSpec::command(["true"]);
        spec.volumes = vec![hoist_core::Volume {
            host_path: "/nonexistent/hoist".into(),
            container_path: "/data".into(),
            read_only: true,
        }];
        assert_eq!(
            check(&spec).unwrap_err().context_value("field"),
            Some("volumes[0].host_path")
        );
        assert_eq!(parse_user("7").unwrap(), (7, 7));
    }
}
