//! [`SandboxContainerizer`]: each container is `runc run` in the foreground, a child process
//! of the executor that the process backend starts, records, waits for and recovers.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hoist_core::capabilities::{Images, Limit, Ports, Users};
use hoist_core::observe::UsageStream;
use hoist_core::session::{ExecRequest, ExecSession};
use hoist_core::{
    Capabilities, ContainerId, ContainerInfo, ContainerSpec, ContainerState, Containerizer, Error,
    ErrorKind, ExecOutput, ExecutorId, ExitStatus, LogChunks, LogOptions, OwnedContainer, Owner,
    Result,
};
use hoist_process::{Cgroups, ProcessContainerizer, ResourcePolicy};

use crate::BACKEND;
use crate::bundle::{self, Bundle, SandboxRecord};
use crate::image::LayerCache;
use crate::runtime::{Runtime, unavailable};

/// How long a stop waits for a KILLed container to end before it reports a timeout.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How often a signal is tried again while runc is still creating the container.
const SIGNAL_RETRY: Duration = Duration::from_millis(10);
/// How long a signal waits, at most, for a new container's init to set up its own signals.
const INIT_SETUP_WAIT: Duration = Duration::from_secs(1);

/// Runs each container in its own pid, mount, ipc and uts namespaces (and network namespace
/// for `network: none`), on an overlay of its image, with its limits in a cgroup, through runc.
/// See the [crate docs](crate) for what each part of a spec means here.
#[derive(Debug, Clone)]
pub struct SandboxContainerizer {
    processes: ProcessContainerizer,
    runtime: Runtime,
    /// The containers' cgroups, delegated to runc: hoist makes `<parent>/<id>` with the limits
    /// and keeps it until `remove`; runc puts the container in `<parent>/<id>/<runc id>`.
    cgroups: Cgroups,
    /// On cgroup v1, the memory controller's directory of hoist's cgroups: the kernel counts an
    /// OOM kill only in the container's own cgroup, which runc removes as the container ends.
    memory_v1: Option<PathBuf>,
    images: LayerCache,
    /// The image of a spec that names none.
    default_image: Option<String>,
}

impl SandboxContainerizer {
    /// A containerizer keeping its containers under `state_dir` (created if missing), with
    /// runc and tini found in their usual places ([`Runtime::detect`]) and the cgroups at
    /// `/sys/fs/cgroup` ([`Cgroups::detect`]). What the machine lacks is an
    /// [`ErrorKind::Unavailable`] error naming it: no half-isolated containers.
    pub fn new(state_dir: impl Into<PathBuf>) -> Result<Self> {
        SandboxContainerizer::with_parts(
            state_dir,
            Runtime::detect()?,
            Path::new("/sys/fs/cgroup"),
            "hoist",
        )
    }

    /// A containerizer with the given runtime, and its containers' cgroups under `parent` in
    /// the hierarchy mounted at `cgroup_mount` (see [`Cgroups::detect_at`]).
    pub fn with_parts(
        state_dir: impl Into<PathBuf>,
        runtime: Runtime,
        cgroup_mount: &Path,
        parent: &str,
    ) -> Result<Self> {
        let cgroups = Cgroups::detect_at(cgroup_mount, parent)
            .map_err(|e| {
                unavailable(format!(
                    "resource limits cannot be enforced: {}",
                    e.message()
                ))
            })?
            .delegated();
        let memory_v1 = (cgroups.version() == 1).then(|| cgroup_mount.join("memory").join(parent));
        let state_dir = state_dir.into();
        let images = LayerCache::new(state_dir.join("images"));
        let processes = ProcessContainerizer::new(state_dir.join("containers"))?
            .with_resources(ResourcePolicy::Enforce(cgroups.clone()))
            .with_poll_interval(Duration::from_millis(50));
        Ok(SandboxContainerizer {
            processes,
            runtime,
            cgroups,
            memory_v1,
            images,
            default_image: None,
        })
    }

    /// Runs a spec without `image` on `image` (an absolute path, as a spec's `image`): a
    /// directory, an OCI image layout or a `docker save` archive. Without it such a spec is
    /// refused.
    pub fn with_default_image(mut self, image: impl Into<String>) -> Self {
        self.default_image = Some(image.into());
        self
    }

    /// The image's layers, top first, unpacked off the async workers.
    async fn layers(&self, spec: &ContainerSpec) -> Result<Vec<PathBuf>> {
        let Some(image) = spec.image.clone() else {
            return Err(Error::invalid_field(
                "image",
                "a sandboxed container needs a root file system: a directory, an OCI image layout or a `docker save` archive",
            ));
        };
        let images = self.images.clone();
        tokio::task::spawn_blocking(move || images.layers(&image))
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Backend,
                    format!("unpacking the image failed: {e}"),
                )
            })?
    }

    /// `status` with `oom_killed` set from the container's cgroup, which outlives runc's: on v2
    /// its `memory.events` counts the kills in runc's cgroup below it; on v1, which counts
    /// them only in runc's (gone with the container), the container ended by KILL that hoist
    /// did not send, after its cgroup's memory use reached the limit.
    fn with_oom(
        &self,
        id: &ContainerId,
        record: &SandboxRecord,
        mut status: ExitStatus,
    ) -> ExitStatus {
        if self.cgroups.version() == 2 {
            status.oom_killed |= self.cgroups.oom_killed(id);
        }
        if let Some(memory) = &self.memory_v1
            && !status.oom_killed
            && status.signal == Some(9)
            && record.spec.resources.memory.is_some()
            && !self.bundle(id).killed()
        {
            // The kernel's failure counters stay at 0 when the limit is hit through a child
            // cgroup, but the peak reaches the limit (with swap accounting, of memory and swap).
            let dir = memory.join(id.as_str());
            let number = |file: &str| {
                std::fs::read_to_string(dir.join(file))
                    .ok()
                    .and_then(|n| n.trim().parse::<u64>().ok())
            };
            status.oom_killed = ["memory", "memory.memsw"].iter().any(|prefix| {
                let peak = number(&format!("{prefix}.max_usage_in_bytes"));
                let limit = number(&format!("{prefix}.limit_in_bytes"));
                peak.zip(limit).is_some_and(|(peak, limit)| peak >= limit)
            });
        }
        status
    }

    /// The directory of the containers' folders (`containers/` in the state directory).
    pub fn containers_dir(&self) -> &Path {
        self.processes.state_dir()
    }

    /// The containers' cgroups.
    pub fn cgroups(&self) -> &Cgroups {
        &self.cgroups
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    fn bundle(&self, id: &ContainerId) -> Bundle {
        Bundle::new(&self.containers_dir().join(id.as_str()))
    }

    /// The sandbox record of a container the process backend knows, or NotFound.
    fn record(&self, id: &ContainerId, operation: &'static str) -> Result<(Bundle, SandboxRecord)> {
        let bundle = self.bundle(id);
        match bundle.read() {
            Ok(Some(record)) => Ok((bundle, record)),
            Ok(None) => Err(Error::not_found("container", id).with_operation(operation)),
            Err(e) => Err(e.with_operation(operation).with_context("container", id)),
        }
    }

    /// Sends `signal` to the container's init, which passes it on to the container's process.
    /// While runc is still creating the container there is nothing to signal: it tries again
    /// until the container exists or has ended.
    async fn kill(
        &self,
        id: &ContainerId,
        bundle: &Bundle,
        runc_id: &str,
        signal: &str,
    ) -> Result<()> {
        match self.made(id, bundle, runc_id).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::InvalidState => return Ok(()),
            Err(e) => return Err(e),
        }
        let root = bundle.runc_root();
        let deadline = tokio::time::Instant::now() + KILL_WAIT;
        loop {
            match self
                .runtime
                .command(&root, &["kill", runc_id, signal])
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => {
                    if self.processes.inspect(id).await?.state != ContainerState::Running {
                        return Ok(());
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(e.with_context("container", id));
                    }
                    tokio::time::sleep(SIGNAL_RETRY).await;
                }
            }
        }
    }

    /// Waits until runc has made and started the container (its state file exists and its
    /// start FIFO is gone) and its init has set up its signals, so `runc exec` finds it and a
    /// signal reaches the container's init, not runc's own, and is not lost: the kernel drops
    /// a signal to a namespace's pid 1 that neither handles nor blocks it, as the init does
    /// for a moment after it starts. A container just started may still be being set up.
    async fn made(&self, id: &ContainerId, bundle: &Bundle, runc_id: &str) -> Result<()> {
        let dir = bundle.runc_root().join(runc_id);
        let deadline = tokio::time::Instant::now() + KILL_WAIT;
        while !dir.join("state.json").exists() || dir.join("exec.fifo").exists() {
            if self.processes.inspect(id).await?.state != ContainerState::Running {
                return Err(
                    Error::new(ErrorKind::InvalidState, "the container is not running")
                        .with_context("container", id),
                );
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("runc did not make the container within {KILL_WAIT:?}"),
                )
                .with_context("container", id));
            }
            tokio::time::sleep(SIGNAL_RETRY).await;
        }
        // An init that never sets up its signals (another than tini, given to `Runtime::new`)
        // is waited for only so long.
        let set_up_by = tokio::time::Instant::now() + INIT_SETUP_WAIT;
        while !init_ready(&dir.join("state.json")) && tokio::time::Instant::now() < set_up_by {
            tokio::time::sleep(SIGNAL_RETRY).await;
        }
        Ok(())
    }

    async fn exited_within(&self, id: &ContainerId, within: Duration) -> Result<bool> {
        match tokio::time::timeout(within, self.processes.wait(id)).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(false),
        }
    }

    async fn terminate(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        let (bundle, record) = self.record(id, "stop")?;
        match self.processes.inspect(id).await?.state {
            ContainerState::Exited => return Ok(()),
            // Never started: the process backend marks it ended.
            ContainerState::Created => return self.processes.stop(id, grace).await,
            ContainerState::Running => {}
        }
        if !grace.is_zero() {
            self.kill(id, &bundle, &record.runc_id, "TERM").await?;
            if self.exited_within(id, grace).await? {
                return Ok(());
            }
        }
        bundle.mark_killed()?;
        self.kill(id, &bundle, &record.runc_id, "KILL").await?;
        if self.exited_within(id, KILL_WAIT).await? {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Timeout,
            format!("the container did not end within {KILL_WAIT:?} of KILL"),
        )
        .with_context("container", id))
    }
}

/// Whether the init of the container whose runc state is `state` has set up its signals, as
/// `/proc/<pid>/status` shows: TERM blocked or caught (a handler), or, for tini, which blocks
/// the signals it passes on and then ignores `SIGTTOU`, that ignored (tini waits in
/// `sigtimedwait`, during which its blocked set reads empty). An init that has gone is ready:
/// there is nothing left to wait for.
fn init_ready(state: &Path) -> bool {
    let Some(pid) = std::fs::read(state)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|state| state["init_process_pid"].as_u64())
    else {
        return false;
    };
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    let mask = |field: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .unwrap_or(0)
    };
    let bit = |signal: i32| 1u64 << (signal - 1);
    (mask("SigBlk:") | mask("SigCgt:")) & bit(libc::SIGTERM) != 0
        || mask("SigIgn:") & bit(libc::SIGTTOU) != 0
}

/// runc reports a container killed by signal `n` as exit code `128 + n`, as the Docker Engine
/// does; the container's init (tini) does the same for its child. Codes above 128 are read
/// back as signals.
fn from_runc(mut status: ExitStatus) -> ExitStatus {
    if let Some(signal) = status.code.and_then(signal_of) {
        status.code = None;
        status.signal = Some(signal);
    }
    status
}

/// The signal an exit code above 128 stands for.
fn signal_of(code: i32) -> Option<i32> {
    (129..=128 + 64).contains(&code).then(|| code - 128)
}

/// A fresh id for runc: `hoist-` and 16 random hex digits.
fn runc_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    format!("hoist-{:016x}", hasher.finish())
}

#[async_trait]
impl Containerizer for SandboxContainerizer {
    fn name(&self) -> &str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.images = Images::Directory;
        caps.cpu_limit = Limit::Enforced;
        caps.memory_limit = Limit::Enforced;
        caps.exec = true;
        caps.logs = true;
        caps.network_host = true;
        caps.network_none = true;
        caps.ports = Ports::SamePort;
        caps.volumes = true;
        caps.user = Users::Numeric;
        caps.dns = true;
        caps.recovery = true;
        caps.stats = true;
        caps.signal = true;
        caps.exec_stream = true;
        caps.tty = true;
        caps
    }

    async fn create(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId> {
        let fail = |e: Error| {
            e.with_operation("create")
                .with_context("backend", BACKEND)
                .with_context("task", &owner.task_id)
        };
        let mut spec = spec.clone();
        if spec.image.is_none() {
            spec.image.clone_from(&self.default_image);
        }
        let spec = &spec;
        self.capabilities().check(spec).map_err(fail)?;
        if spec.network == Some(hoist_core::NetworkMode::None) && !spec.ports.is_empty() {
            return Err(fail(Error::invalid_field(
                "ports",
                "a container with `network: none` has no port to publish",
            )));
        }
        bundle::check(spec).map_err(fail)?;
        let record = SandboxRecord {
            runc_id: runc_id(),
            spec: spec.clone(),
            layers: self.layers(spec).await.map_err(fail)?,
        };
        let mut runs = ContainerSpec::command(self.runtime.run_argv(&record.runc_id));
        runs.resources = spec.resources;
        runs.labels = spec.labels.clone();
        let id = self.processes.create(owner, &runs).await.map_err(fail)?;
        let bundle = self.bundle(&id);
        let cgroup = format!("{}/{}", self.cgroups.path(&id), record.runc_id);
        if let Err(e) = bundle.make(&record, self.runtime.init(), &cgroup) {
            let _ = bundle.unmount();
            let _ = self.processes.remove(&id, true).await;
            return Err(fail(e));
        }
        Ok(id)
    }

    async fn start(&self, id: &ContainerId) -> Result<()> {
        self.record(id, "start")?;
        self.processes.start(id).await
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        let status = self.processes.wait(id).await.map(from_runc)?;
        Ok(match self.bundle(id).read() {
            Ok(Some(record)) => self.with_oom(id, &record, status),
            _ => status,
        })
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        self.terminate(id, grace)
            .await
            .map_err(|e| e.with_operation("stop"))
    }

    async fn remove(&self, id: &ContainerId, force: bool) -> Result<()> {
        let Ok((bundle, record)) = self.record(id, "remove") else {
            // Nothing of ours (or a folder being made): the process backend decides.
            return self.processes.remove(id, force).await;
        };
        match self.processes.inspect(id).await {
            Ok(info) if info.state == ContainerState::Running => {
                if !force {
                    return Err(Error::new(
                        ErrorKind::InvalidState,
                        "the container is running; remove it with force",
                    )
                    .with_operation("remove")
                    .with_context("container", id));
                }
                self.terminate(id, Duration::ZERO)
                    .await
                    .map_err(|e| e.with_operation("remove"))?;
            }
            _ => {}
        }
        // runc removes its state when `run` ends; one left by a runc that was killed goes here.
        let runc_root = bundle.runc_root();
        if runc_root.join(&record.runc_id).exists() {
            self.runtime
                .command(&runc_root, &["delete", "--force", &record.runc_id])
                .await
                .map_err(|e| e.with_operation("remove").with_context("container", id))?;
        }
        bundle
            .unmount()
            .map_err(|e| e.with_operation("remove").with_context("container", id))?;
        self.processes.remove(id, force).await
    }

    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        let mut info = self.processes.inspect(id).await?;
        let (bundle, record) = self.record(id, "inspect")?;
        info.exit = info.exit.map(|e| self.with_oom(id, &record, from_runc(e)));
        info.details
            .insert("command".to_owned(), record.spec.argv().join(" "));
        info.details
            .insert("runc_id".to_owned(), record.runc_id.clone());
        info.details
            .insert("rootfs".to_owned(), bundle.rootfs().display().to_string());
        Ok(info)
    }

    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let (bundle, record) = self.record(id, "exec")?;
        if argv.is_empty() {
            return Err(Error::invalid("exec needs a command")
                .with_operation("exec")
                .with_context("container", id));
        }
        self.made(id, &bundle, &record.runc_id)
            .await
            .map_err(|e| e.with_operation("exec"))?;
        let argv = self.runtime.exec_argv(&record.runc_id, false, argv);
        let mut output = self.processes.exec(id, &argv, timeout).await?;
        output.exit_code = output.exit_code.filter(|code| signal_of(*code).is_none());
        Ok(output)
    }

    async fn stats(&self, id: &ContainerId, interval: Duration) -> Result<UsageStream> {
        self.processes.stats(id, interval).await
    }

    async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        let (bundle, record) = self.record(id, "signal")?;
        if signal == 9 {
            bundle.mark_killed()?;
        }
        // Not before the init can take it (an ended container is the process backend's answer).
        match self.made(id, &bundle, &record.runc_id).await {
            Err(e) if e.kind() != ErrorKind::InvalidState => {
                return Err(e.with_operation("signal"));
            }
            _ => {}
        }
        // runc passes every signal it gets on to the container's init, and tini to its child.
        self.processes.signal(id, signal).await
    }

    async fn exec_stream(&self, id: &ContainerId, mut request: ExecRequest) -> Result<ExecSession> {
        let (bundle, record) = self.record(id, "exec_stream")?;
        if request.argv.is_empty() {
            return Err(Error::invalid("exec_stream needs a command")
                .with_operation("exec_stream")
                .with_context("container", id));
        }
        self.made(id, &bundle, &record.runc_id)
            .await
            .map_err(|e| e.with_operation("exec_stream"))?;
        request.argv = self
            .runtime
            .exec_argv(&record.runc_id, request.tty, &request.argv);
        self.processes.exec_stream(id, request).await
    }

    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogChunks> {
        self.processes.logs(id, options).await
    }

    async fn list_owned(&self, executor: &ExecutorId) -> Result<Vec<OwnedContainer>> {
        self.processes.list_owned(executor).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runc state file naming `pid` as the container's init.
    fn state(dir: &Path, pid: u32) -> PathBuf {
        let path = dir.join(format!("state-{pid}.json"));
        std::fs::write(&path, format!("{{\"init_process_pid\": {pid}}}")).unwrap();
        path
    }

    #[test]
    fn an_init_is_ready_once_it_has_set_up_its_signals() {
        let dir = tempfile::tempdir().unwrap();
        let init = Runtime::detect().unwrap().init().to_owned();
        // A plain process takes TERM by default: not set up. tini sets up at once.
        let mut plain = std::process::Command::new("sleep")
            .arg("30")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut tini = std::process::Command::new(init)
            .args(["-s", "--", "sleep", "30"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let tini_state = state(dir.path(), tini.id());
        while !init_ready(&tini_state) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let (plain_ready, tini_ready) = (
            init_ready(&state(dir.path(), plain.id())),
            init_ready(&tini_state),
        );
        // tini passes TERM on to its child (in a process group of its own) and ends with it.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &tini.id().to_string()])
            .status();
        let _ = tini.wait();
        for child in [&mut plain, &mut tini] {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert!(!plain_ready, "a process with TERM's default disposition");
        assert!(tini_ready, "tini after it set up its signals");
        // Gone: nothing to wait for. No state yet: not made.
        assert!(init_ready(&state(dir.path(), plain.id())));
        assert!(!init_ready(&dir.path().join("missing.json")));
    }
}
