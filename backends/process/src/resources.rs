//! What the process backend does with `resources.cpus` and `resources.memory`: a
//! [`ResourcePolicy`], and the cgroups (v1 or v2) that enforce them.
//!
//! Under [`ResourcePolicy::Enforce`] each container with a limit gets a cgroup of its own,
//! `<parent>/<container id>`, in the memory and CPU hierarchies (v1) or in the unified one (v2).
//! The child joins it before it runs its program (it writes `0` to `cgroup.procs` between fork
//! and exec), so every process of its group is counted from the first byte. The limits are the
//! ones Mesos's cgroups isolators set: memory `memory.limit_in_bytes` (v1) or `memory.max` with
//! no swap (v2); CPU a CFS quota of `cpus` × 100 ms per 100 ms period (`cpu.cfs_quota_us`, v1, or
//! `cpu.max`, v2) and shares of `cpus` × 1024 (`cpu.shares`, v1, or that on `cpu.weight`'s
//! scale, v2, as OCI runtimes convert it) (apache/mesos
//! `src/slave/containerizer/mesos/isolators/cgroups/subsystems/{memory,cpu}.cpp`). An exit by
//! the kernel's OOM killer (the cgroup's `oom_kill` count, in `memory.oom_control` or
//! `memory.events`) is reported as `oom_killed`, which the engine turns into the reason
//! `memory_limit`.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hoist_core::capabilities::Limit;
use hoist_core::observe::ResourceUsage;
use hoist_core::{ContainerId, Error, ErrorKind, Resources, Result};

use crate::record::io_error;

/// The CFS period hoist uses, in microseconds (Mesos's and the kernel's default, 100 ms).
const CFS_PERIOD_US: u64 = 100_000;
/// The smallest CFS quota the kernel accepts, in microseconds.
const MIN_CFS_QUOTA_US: u64 = 1_000;

/// What the process backend does with a spec's `resources`.
#[derive(Debug, Clone, Default)]
pub enum ResourcePolicy {
    /// A spec with `resources.cpus` or `resources.memory` is refused as unsupported (the
    /// default).
    #[default]
    Refuse,
    /// Limits are accepted and recorded but not enforced, as Mesos's agent does without cgroup
    /// isolation. Each container with a limit logs one warning at `create`, and `inspect`
    /// reports the limits as not enforced.
    Advisory,
    /// Limits are enforced with cgroups; exceeding the memory limit is an OOM kill.
    Enforce(Cgroups),
}

impl ResourcePolicy {
    /// Enforcement where the cgroup tree under `/sys/fs/cgroup` can be written (see
    /// [`Cgroups::detect`]), advisory otherwise; the error says why enforcement is not possible.
    ///
    /// ```no_run
    /// use hoist_process::ResourcePolicy;
    ///
    /// let (policy, why_not) = ResourcePolicy::enforce_or_advisory();
    /// if let Some(e) = why_not {
    ///     eprintln!("resource limits are advisory: {e}");
    /// }
    /// # let _ = policy;
    /// ```
    pub fn enforce_or_advisory() -> (ResourcePolicy, Option<Error>) {
        match Cgroups::detect() {
            Ok(cgroups) => (ResourcePolicy::Enforce(cgroups), None),
            Err(e) => (ResourcePolicy::Advisory, Some(e)),
        }
    }

    /// The policy's name: `refuse`, `advisory` or `enforce`.
    pub fn name(&self) -> &'static str {
        match self {
            ResourcePolicy::Refuse => "refuse",
            ResourcePolicy::Advisory => "advisory",
            ResourcePolicy::Enforce(_) => "enforce",
        }
    }

    /// What [`Capabilities`](hoist_core::Capabilities) say about CPU and memory limits.
    pub(crate) fn limit(&self) -> Limit {
        match self {
            ResourcePolicy::Refuse => Limit::Unsupported,
            ResourcePolicy::Advisory => Limit::Advisory,
            ResourcePolicy::Enforce(_) => Limit::Enforced,
        }
    }
}

/// Which cgroup hierarchy hoist writes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hierarchy {
    /// cgroup v1: one directory per controller.
    V1 { memory: PathBuf, cpu: PathBuf },
    /// cgroup v2: the unified hierarchy.
    V2 { root: PathBuf },
}

/// The cgroup directory hoist creates its containers' cgroups under, in the hierarchy the
/// machine uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroups {
    hierarchy: Hierarchy,
    /// Where the hierarchy is mounted (v1: the directory of the controllers' mounts).
    mount: PathBuf,
    /// hoist's cgroup, relative to the hierarchy's root.
    parent: String,
    /// Whether the program started is an OCI runtime that puts the container's processes in a
    /// cgroup of its own under the container's (see [`Cgroups::delegated`]).
    delegated: bool,
}

impl Cgroups {
    /// The hierarchy mounted at `/sys/fs/cgroup`, with hoist's cgroups under `hoist/`.
    pub fn detect() -> Result<Cgroups> {
        Cgroups::detect_at(Path::new("/sys/fs/cgroup"), "hoist")
    }

    /// The hierarchy mounted at `mount` (v2 when `mount/cgroup.controllers` exists and names
    /// `memory` and `cpu`; else v1, with the controllers at `mount/memory` and `mount/cpu`
    /// or `mount/cpu,cpuacct`), with hoist's cgroups under `parent`, which is created (and, on
    /// v2, given the memory and CPU controllers). The error says what is missing or cannot be
    /// written.
    pub fn detect_at(mount: &Path, parent: &str) -> Result<Cgroups> {
        let fail = |e: Error| e.with_operation("set up cgroups");
        let controllers = mount.join("cgroup.controllers");
        let hierarchy = if let Ok(text) = std::fs::read_to_string(&controllers) {
            let missing: Vec<&str> = ["memory", "cpu"]
                .into_iter()
                .filter(|c| !text.split_whitespace().any(|w| w == *c))
                .collect();
            if !missing.is_empty() {
                return Err(fail(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "the unified cgroup hierarchy at {} lacks the `{}` controller{}, which limits need (it offers `{}`)",
                        mount.display(),
                        missing.join("` and `"),
                        if missing.len() > 1 { "s" } else { "" },
                        text.trim()
                    ),
                )));
            }
            let root = mount.join(parent);
            create_dir(&root).map_err(fail)?;
            for dir in [mount, root.as_path()] {
                write(&dir.join("cgroup.subtree_control"), "+memory +cpu").map_err(fail)?;
            }
            Hierarchy::V2 { root }
        } else {
            let memory = mount.join("memory");
            let cpu = ["cpu", "cpu,cpuacct"]
                .iter()
                .map(|name| mount.join(name))
                .find(|dir| dir.join("cpu.cfs_quota_us").exists());
            let (true, Some(cpu)) = (memory.join("memory.limit_in_bytes").exists(), cpu) else {
                return Err(fail(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "no cgroup v2 hierarchy and no v1 memory and cpu controllers under {}",
                        mount.display()
                    ),
                )));
            };
            let (memory, cpu) = (memory.join(parent), cpu.join(parent));
            create_dir(&memory).map_err(fail)?;
            create_dir(&cpu).map_err(fail)?;
            Hierarchy::V1 { memory, cpu }
        };
        Ok(Cgroups {
            hierarchy,
            mount: mount.to_owned(),
            parent: parent.trim_matches('/').to_owned(),
            delegated: false,
        })
    }

    /// The same cgroups for containers whose program is an OCI runtime (runc) told to put the
    /// container's processes in a cgroup under the container's ([`Cgroups::path`]): every
    /// container gets a cgroup, limits or not, with its limits; the runtime itself joins none,
    /// so the cgroup counts the container's processes alone and `stats` reads only the cgroup
    /// (the runtime's process group is not the container's). On v1 the runtime also makes the
    /// container's directory in the controllers hoist does not manage; they go at removal too.
    pub fn delegated(mut self) -> Cgroups {
        self.delegated = true;
        self
    }

    /// Whether containers' cgroups are [delegated](Cgroups::delegated) to an OCI runtime.
    pub fn is_delegated(&self) -> bool {
        self.delegated
    }

    /// `id`'s cgroup as a path inside the hierarchy (`/<parent>/<id>`), the form an OCI
    /// runtime configuration's `linux.cgroupsPath` takes.
    pub fn path(&self, id: &ContainerId) -> String {
        format!("/{}/{}", self.parent, id.as_str())
    }

    /// 1 or 2.
    pub fn version(&self) -> u8 {
        match self.hierarchy {
            Hierarchy::V1 { .. } => 1,
            Hierarchy::V2 { .. } => 2,
        }
    }

    /// The directories of `id`'s cgroup: memory then CPU on v1, the one cgroup on v2.
    pub(crate) fn dirs(&self, id: &ContainerId) -> Vec<PathBuf> {
        match &self.hierarchy {
            Hierarchy::V1 { memory, cpu } => vec![memory.join(id.as_str()), cpu.join(id.as_str())],
            Hierarchy::V2 { root } => vec![root.join(id.as_str())],
        }
    }

    /// Creates `id`'s cgroup with `limits`. On failure nothing is left behind.
    pub(crate) fn create(&self, id: &ContainerId, limits: &Resources) -> Result<()> {
        let result = self.try_create(id, limits);
        if result.is_err() {
            self.remove(id);
        }
        result.map_err(|e| e.with_operation("create a cgroup"))
    }

    fn try_create(&self, id: &ContainerId, limits: &Resources) -> Result<()> {
        let quota = limits
            .cpus
            .map(|cpus| ((cpus * CFS_PERIOD_US as f64) as u64).max(MIN_CFS_QUOTA_US));
        match &self.hierarchy {
            Hierarchy::V1 { .. } => {
                let dirs = self.dirs(id);
                let (memory, cpu) = (&dirs[0], &dirs[1]);
                create_dir(memory)?;
                create_dir(cpu)?;
                if let Some(bytes) = limits.memory {
                    write(&memory.join("memory.limit_in_bytes"), &bytes.to_string())?;
                    // With swap accounting, swap counts too (the task gets no more than asked).
                    let memsw = memory.join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        write(&memsw, &bytes.to_string())?;
                    }
                }
                if let (Some(cpus), Some(quota)) = (limits.cpus, quota) {
                    let shares = ((cpus * 1024.0) as u64).max(2);
                    write(&cpu.join("cpu.shares"), &shares.to_string())?;
                    write(&cpu.join("cpu.cfs_period_us"), &CFS_PERIOD_US.to_string())?;
                    write(&cpu.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
            }
            Hierarchy::V2 { root } => {
                let dir = root.join(id.as_str());
                create_dir(&dir)?;
                if let Some(bytes) = limits.memory {
                    write(&dir.join("memory.max"), &bytes.to_string())?;
                    let swap = dir.join("memory.swap.max");
                    if swap.exists() {
                        write(&swap, "0")?;
                    }
                }
                if let (Some(cpus), Some(quota)) = (limits.cpus, quota) {
                    write(&dir.join("cpu.max"), &format!("{quota} {CFS_PERIOD_US}"))?;
                    // v1's shares on v2's weight scale, as OCI runtimes convert them (runc's
                    // ConvertCPUSharesToCgroupV2Value): 2..262144 onto 1..10000.
                    let shares = ((cpus * 1024.0) as u64).clamp(2, 262_144);
                    let weight = 1 + ((shares - 2) * 9_999) / 262_142;
                    write(&dir.join("cpu.weight"), &weight.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// Opens the `cgroup.procs` files of `id`'s cgroup, for the child to join them.
    pub(crate) fn join_files(&self, id: &ContainerId) -> Result<Vec<OwnedFd>> {
        self.dirs(id)
            .into_iter()
            .map(|dir| {
                let path = dir.join("cgroup.procs");
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map(OwnedFd::from)
                    .map_err(|e| io_error("could not open a cgroup", &path, e))
            })
            .collect()
    }

    /// Whether the kernel's OOM killer killed a process of `id`'s cgroup (on v2, or on v1 of
    /// that cgroup itself: v1 does not count kills in child cgroups).
    pub fn oom_killed(&self, id: &ContainerId) -> bool {
        let file = match &self.hierarchy {
            Hierarchy::V1 { .. } => self.dirs(id)[0].join("memory.oom_control"),
            Hierarchy::V2 { root } => root.join(id.as_str()).join("memory.events"),
        };
        std::fs::read_to_string(file).is_ok_and(|text| {
            text.lines().any(|line| {
                line.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
        })
    }

    /// Fills `usage` with what `id`'s cgroup counts: memory usage, its peak, rss, cache and
    /// swap, CPU time and throttling, and (v2) processes. A file the kernel does not offer
    /// (`memory.peak` before Linux 5.19) leaves its figure unset.
    /// On v1 the user and system split comes from `cpuacct.stat` and, when `usage` has no
    /// process count, the threads of the cgroup and its children are counted.
    pub fn read_usage(&self, id: &ContainerId, usage: &mut ResourceUsage) {
        let number = |path: PathBuf| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
        };
        match &self.hierarchy {
            Hierarchy::V1 { .. } => {
                let dirs = self.dirs(id);
                let (memory, cpu) = (&dirs[0], &dirs[1]);
                usage.memory.usage = number(memory.join("memory.usage_in_bytes"));
                usage.memory.max_usage = number(memory.join("memory.max_usage_in_bytes"));
                let stat = keyed(&memory.join("memory.stat"));
                usage.memory.rss = stat.get("total_rss").or(stat.get("rss")).copied();
                usage.memory.cache = stat.get("total_cache").or(stat.get("cache")).copied();
                usage.memory.swap = stat.get("total_swap").or(stat.get("swap")).copied();
                // cpuacct shares the CPU controller's directory where they are mounted together;
                // apart, a runtime's cgroups reach it (hoist's own processes join only memory
                // and CPU).
                let cpuacct = if cpu.join("cpuacct.usage").exists() {
                    cpu.clone()
                } else {
                    self.beside(id, "cpuacct")
                };
                if let Some(ns) = number(cpuacct.join("cpuacct.usage")) {
                    usage.cpu.total = Some(Duration::from_nanos(ns));
                }
                let ticks = keyed(&cpuacct.join("cpuacct.stat"));
                let tick = crate::observe::tick_nanos();
                let time = |key: &str| {
                    ticks
                        .get(key)
                        .map(|t| Duration::from_nanos(t.saturating_mul(tick)))
                };
                usage.cpu.user = time("user").or(usage.cpu.user);
                usage.cpu.system = time("system").or(usage.cpu.system);
                if usage.pids.is_none() {
                    usage.pids = number(self.beside(id, "pids").join("pids.current"))
                        .or_else(|| threads_under(memory));
                }
                let throttling = keyed(&cpu.join("cpu.stat"));
                usage.cpu.throttled_periods = throttling.get("nr_throttled").copied();
                usage.cpu.throttled_time = throttling
                    .get("throttled_time")
                    .map(|ns| Duration::from_nanos(*ns));
            }
            Hierarchy::V2 { root } => {
                let dir = root.join(id.as_str());
                usage.memory.usage = number(dir.join("memory.current"));
                usage.memory.max_usage = number(dir.join("memory.peak"));
                usage.memory.swap = number(dir.join("memory.swap.current"));
                let stat = keyed(&dir.join("memory.stat"));
                usage.memory.rss = stat.get("anon").copied();
                usage.memory.cache = stat.get("file").copied();
                let cpu = keyed(&dir.join("cpu.stat"));
                let micros = |key: &str| cpu.get(key).map(|us| Duration::from_micros(*us));
                usage.cpu.total = micros("usage_usec");
                usage.cpu.user = micros("user_usec");
                usage.cpu.system = micros("system_usec");
                usage.cpu.throttled_periods = cpu.get("nr_throttled").copied();
                usage.cpu.throttled_time = micros("throttled_usec");
                usage.pids = number(dir.join("pids.current")).or(usage.pids);
            }
        }
    }

    /// `id`'s directory in v1 controller `controller`, which hoist does not manage.
    fn beside(&self, id: &ContainerId, controller: &str) -> PathBuf {
        self.mount
            .join(controller)
            .join(&self.parent)
            .join(id.as_str())
    }

    /// Removes `id`'s cgroup (a cgroup that is not there is fine), and, when
    /// [delegated](Cgroups::delegated) on v1, its directory in every other controller. A cgroup
    /// still holding a process cannot be removed; that is logged.
    pub fn remove(&self, id: &ContainerId) {
        self.remove_dirs(id, true);
    }

    /// Removes what [`Cgroups::remove`] does, quietly: whether nothing is left.
    pub(crate) fn try_remove(&self, id: &ContainerId) -> bool {
        self.remove_dirs(id, false)
    }

    fn remove_dirs(&self, id: &ContainerId, warn: bool) -> bool {
        let mut left = false;
        let mut dirs = self.dirs(id);
        if self.delegated && self.version() == 1 {
            let controllers = std::fs::read_dir(&self.mount)
                .into_iter()
                .flatten()
                .flatten();
            for controller in controllers {
                let name = controller.file_name();
                let dir = self.beside(id, &name.to_string_lossy());
                // `cpu` and `cpuacct` may be links to `cpu,cpuacct`: one directory, once.
                if dir.is_dir() && !dirs.iter().any(|d| same_file(d, &dir)) {
                    dirs.push(dir);
                }
            }
        }
        for dir in dirs {
            match std::fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    left = true;
                    if warn {
                        tracing::warn!(cgroup = %dir.display(), error = %e, "could not remove a cgroup");
                    }
                }
            }
        }
        !left
    }
}

/// Whether `a` and `b` are the same directory (through links).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The threads in v1 cgroup `dir` and its children (`tasks` lists threads), or `None` when
/// there is no `tasks` file to read.
fn threads_under(dir: &Path) -> Option<u64> {
    let mut count = std::fs::read_to_string(dir.join("tasks"))
        .ok()?
        .lines()
        .count() as u64;
    for child in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if child.file_type().is_ok_and(|t| t.is_dir()) {
            count += threads_under(&child.path()).unwrap_or(0);
        }
    }
    Some(count)
}

/// A cgroup file of `key value` lines (`memory.stat`, `cpu.stat`); an unreadable file is empty.
fn keyed(path: &Path) -> HashMap<String, u64> {
    std::fs::read_to_string(path)
        .map(|text| {
            text.lines()
                .filter_map(|line| {
                    let (key, value) = line.split_once(' ')?;
                    Some((key.to_owned(), value.trim().parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A cgroup's limits as `inspect` reports them.
pub(crate) fn describe(limits: &Resources, policy: &ResourcePolicy) -> Option<String> {
    let mut parts = vec![];
    if let Some(cpus) = limits.cpus {
        parts.push(format!("cpus {cpus}"));
    }
    if let Some(bytes) = limits.memory {
        parts.push(format!("memory {bytes} bytes"));
    }
    if parts.is_empty() {
        return None;
    }
    let how = match policy {
        ResourcePolicy::Enforce(cgroups) => format!("enforced (cgroup v{})", cgroups.version()),
        _ => "not enforced".to_owned(),
    };
    Some(format!("{}: {how}", parts.join(", ")))
}

/// Makes the child join the cgroups whose `cgroup.procs` files are `files` before it runs its
/// program.
pub(crate) fn join_before_exec(command: &mut tokio::process::Command, files: Vec<OwnedFd>) {
    let fds: Vec<RawFd> = files.iter().map(AsRawFd::as_raw_fd).collect();
    let join = move || {
        // The descriptors stay open as long as the closure (the command) lives.
        let _keep = &files;
        for fd in &fds {
            // "0" is the writing process itself.
            // SAFETY: `fd` is open for writing, and the buffer is one valid byte.
            if unsafe { libc::write(*fd, b"0".as_ptr().cast(), 1) } != 1 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: between fork and exec `join` only calls write(2), which is async-signal-safe,
    // and does not allocate.
    unsafe {
        command.pre_exec(join);
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_error("could not create a cgroup", dir, e)),
    }
}

fn write(file: &Path, value: &str) -> Result<()> {
    std::fs::write(file, value)
        .map_err(|e| io_error(&format!("could not write `{value}` to"), file, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Resources {
        Resources {
            cpus: Some(0.1),
            memory: Some(32 << 20),
        }
    }

    fn read(path: PathBuf) -> String {
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn v2_is_chosen_where_the_unified_hierarchy_has_the_controllers() {
        let mount = tempfile::tempdir().unwrap();
        std::fs::write(
            mount.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        let cgroups = Cgroups::detect_at(mount.path(), "hoist").unwrap();
        assert_eq!(cgroups.version(), 2);
        assert_eq!(
            read(mount.path().join("cgroup.subtree_control")),
            "+memory +cpu"
        );
        assert_eq!(
            read(mount.path().join("hoist/cgroup.subtree_control")),
            "+memory +cpu"
        );
        let id = ContainerId::new("c1");
        std::fs::create_dir_all(mount.path().join("hoist/c1")).unwrap();
        std::fs::write(mount.path().join("hoist/c1/memory.swap.max"), "max").unwrap();
        cgroups.create(&id, &limits()).unwrap();
        let dir = mount.path().join("hoist/c1");
        assert_eq!(read(dir.join("memory.max")), (32u64 << 20).to_string());
        assert_eq!(read(dir.join("memory.swap.max")), "0");
        assert_eq!(read(dir.join("cpu.max")), "10000 100000");
        // 102 shares on the weight scale.
        assert_eq!(read(dir.join("cpu.weight")), "4");
        assert!(!cgroups.oom_killed(&id));
        std::fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert!(cgroups.oom_killed(&id));

        // Usage as the v2 files give it (cgroup-v2.rst: memory.current, memory.peak,
        // memory.stat's anon and file, cpu.stat in microseconds, pids.current).
        for (file, text) in [
            ("memory.current", "3145728\n"),
            ("memory.peak", "4194304\n"),
            ("memory.stat", "anon 2097152\nfile 1048576\nkernel 8192\n"),
            (
                "cpu.stat",
                "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\nnr_periods 9\nnr_throttled 4\nthrottled_usec 250000\n",
            ),
            ("pids.current", "2\n"),
        ] {
            std::fs::write(dir.join(file), text).unwrap();
        }
        let mut usage = ResourceUsage::now();
        cgroups.read_usage(&id, &mut usage);
        assert_eq!(usage.memory.usage, Some(3 << 20));
        assert_eq!(usage.memory.max_usage, Some(4 << 20));
        assert_eq!(usage.memory.rss, Some(2 << 20));
        assert_eq!(usage.memory.cache, Some(1 << 20));
        assert_eq!(usage.cpu.total, Some(Duration::from_millis(1500)));
        assert_eq!(usage.cpu.user, Some(Duration::from_secs(1)));
        assert_eq!(usage.cpu.system, Some(Duration::from_millis(500)));
        assert_eq!(usage.cpu.throttled_periods, Some(4));
        assert_eq!(usage.cpu.throttled_time, Some(Duration::from_millis(250)));
        assert_eq!(usage.pids, Some(2));
        assert_eq!(usage.memory.swap, None, "no memory.swap.current, no figure");
    }

    #[test]
    fn v1_writes_the_memory_and_cpu_controllers() {
        let mount = tempfile::tempdir().unwrap();
        let memory = mount.path().join("memory");
        let cpu = mount.path().join("cpu,cpuacct");
        std::fs::create_dir_all(&memory).unwrap();
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::write(memory.join("memory.limit_in_bytes"), "max").unwrap();
        std::fs::write(cpu.join("cpu.cfs_quota_us"), "-1").unwrap();
        let cgroups = Cgroups::detect_at(mount.path(), "hoist").unwrap();
        assert_eq!(cgroups.version(), 1);
        let id = ContainerId::new("c1");
        cgroups.create(&id, &limits()).unwrap();
        assert_eq!(
            read(memory.join("hoist/c1/memory.limit_in_bytes")),
            (32u64 << 20).to_string()
        );
        assert_eq!(read(cpu.join("hoist/c1/cpu.cfs_quota_us")), "10000");
        assert_eq!(read(cpu.join("hoist/c1/cpu.cfs_period_us")), "100000");
        assert_eq!(read(cpu.join("hoist/c1/cpu.shares")), "102");
        std::fs::write(
            memory.join("hoist/c1/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        assert!(cgroups.oom_killed(&id));
    }

    #[test]
    fn delegated_v1_reads_cpuacct_and_pids_beside_and_removes_every_controllers_directory() {
        let mount = tempfile::tempdir().unwrap();
        for controller in ["memory", "cpu", "cpuacct", "pids", "devices"] {
            std::fs::create_dir_all(mount.path().join(controller)).unwrap();
        }
        std::fs::write(mount.path().join("memory/memory.limit_in_bytes"), "max").unwrap();
        std::fs::write(mount.path().join("cpu/cpu.cfs_quota_us"), "-1").unwrap();
        let cgroups = Cgroups::detect_at(mount.path(), "hoist")
            .unwrap()
            .delegated();
        assert!(cgroups.is_delegated());
        let id = ContainerId::new("c1");
        assert_eq!(cgroups.path(&id), "/hoist/c1");
        cgroups.create(&id, &Resources::default()).unwrap();
        // What the runtime makes in the controllers hoist does not manage, and the kernel's
        // figures there (cpuacct mounted apart from cpu).
        for controller in ["cpuacct", "pids", "devices"] {
            std::fs::create_dir_all(mount.path().join(controller).join("hoist/c1")).unwrap();
        }
        let beside = |file: &str, text: &str| {
            std::fs::write(mount.path().join(file), text).unwrap();
        };
        beside("cpuacct/hoist/c1/cpuacct.usage", "1500000000\n");
        beside("cpuacct/hoist/c1/cpuacct.stat", "user 100\nsystem 50\n");
        beside("pids/hoist/c1/pids.current", "4\n");
        beside("memory/hoist/c1/memory.usage_in_bytes", "1048576\n");
        let mut usage = ResourceUsage::now();
        cgroups.read_usage(&id, &mut usage);
        let tick = crate::observe::tick_nanos();
        assert_eq!(usage.memory.usage, Some(1 << 20));
        assert_eq!(usage.cpu.total, Some(Duration::from_millis(1500)));
        assert_eq!(usage.cpu.user, Some(Duration::from_nanos(100 * tick)));
        assert_eq!(usage.cpu.system, Some(Duration::from_nanos(50 * tick)));
        assert_eq!(usage.pids, Some(4));

        for file in [
            "cpuacct/hoist/c1/cpuacct.usage",
            "cpuacct/hoist/c1/cpuacct.stat",
            "pids/hoist/c1/pids.current",
            "memory/hoist/c1/memory.usage_in_bytes",
        ] {
            std::fs::remove_file(mount.path().join(file)).unwrap();
        }
        cgroups.remove(&id);
        for controller in ["memory", "cpu", "cpuacct", "pids", "devices"] {
            let dir = mount.path().join(controller).join("hoist/c1");
            assert!(!dir.exists(), "{} is left", dir.display());
        }
    }

    #[test]
    fn a_tree_without_the_controllers_is_refused_saying_why() {
        let mount = tempfile::tempdir().unwrap();
        let err = Cgroups::detect_at(mount.path(), "hoist").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.to_string().contains("memory and cpu"), "{err}");
        std::fs::write(mount.path().join("cgroup.controllers"), "pids\n").unwrap();
        let err = Cgroups::detect_at(mount.path(), "hoist").unwrap_err();
        assert!(
            err.to_string()
                .contains("lacks the `memory` and `cpu` controllers"),
            "{err}"
        );
    }

    #[test]
    fn inspect_says_whether_limits_are_enforced() {
        assert_eq!(
            describe(&limits(), &ResourcePolicy::Advisory).as_deref(),
            Some("cpus 0.1, memory 33554432 bytes: not enforced")
        );
        assert_eq!(
            describe(&Resources::default(), &ResourcePolicy::Advisory),
            None
        );
    }
}
