//! [`ProcessContainerizer`]: containers as local child processes, remembered in a state
//! directory.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hoist_core::observe::UsageStream;
use hoist_core::session::{ExecRequest, ExecSession};
use hoist_core::{
    Capabilities, ContainerId, ContainerInfo, ContainerSpec, ContainerState, Containerizer, Error,
    ErrorKind, ExecOutput, ExecutorId, ExitStatus, LogChunks, LogOptions, MappedPort,
    OwnedContainer, Owner, Resources, Result,
};
use nix::sys::signal::Signal;
use tokio_util::task::TaskTracker;

use crate::BACKEND;

mod known;
use crate::entry::{Entry, Phase};
use crate::observe;
use crate::plan::{self, Plan};
use crate::procfs::{Liveness, ProcessIdentity};
use crate::record::{ContainerDir, Record, io_error};
use crate::resources::{self, Cgroups, ResourcePolicy};
use crate::signal::signal_group;

/// How long `remove` waits for a cgroup to empty (its KILLed processes to go) before it gives
/// up on removing it.
const CGROUP_EMPTY_WAIT: Duration = Duration::from_secs(2);
/// How long a stop waits for a KILLed process to be reaped before it reports a timeout.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Runs each container as a child process of this program. See the [crate docs](crate) for
/// what each part of a spec means here.
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> hoist_core::Result<()> {
/// use hoist_core::{ContainerSpec, Containerizer, ContainerizerExt, Owner};
/// use hoist_process::ProcessContainerizer;
///
/// let state = std::env::temp_dir().join(format!("hoist-doc-{}", std::process::id()));
/// let processes = ProcessContainerizer::new(&state)?;
/// let owner = Owner { executor_id: "my-executor".into(), task_id: "hello".into() };
/// let spec = ContainerSpec::command(["/bin/sh", "-c", "echo hello; exit 3"]);
/// let status = processes
///     .run_to_completion(&owner, &spec, std::time::Duration::from_secs(10))
///     .await?;
/// assert_eq!(status.code, Some(3));
/// # std::fs::remove_dir_all(&state).unwrap();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ProcessContainerizer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state_dir: PathBuf,
    poll_interval: Duration,
    resources: ResourcePolicy,
    containers: Mutex<HashMap<ContainerId, Arc<Entry>>>,
    /// The reapers of the children it started and the watchers of the processes it adopted.
    /// A reaper outlives the containerizer, as long as the executor's process lives, so that
    /// the exit it records is there for the next containerizer on the same directory; a
    /// watcher ends within a poll once its container's entry has gone.
    tasks: TaskTracker,
}

impl ProcessContainerizer {
    /// A containerizer keeping its containers' records and logs under `state_dir` (created if
    /// missing). A restarted executor using the same directory finds its containers again.
    pub fn new(state_dir: impl Into<PathBuf>) -> Result<Self> {
        let state_dir = state_dir.into();
        std::fs::create_dir_all(&state_dir)
            .map_err(|e| io_error("could not create the state directory", &state_dir, e))?;
        Ok(ProcessContainerizer {
            inner: Arc::new(Inner {
                state_dir,
                poll_interval: Duration::from_millis(100),
                resources: ResourcePolicy::Refuse,
                containers: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
            }),
        })
    }

    /// How often a process this containerizer did not start (found after a restart) is
    /// checked for its exit, and how often followed logs look for new output (default 100 ms).
    pub fn with_poll_interval(self, interval: Duration) -> Self {
        self.rebuilt(|inner| inner.poll_interval = interval)
    }

    /// What to do with `resources.cpus` and `resources.memory` (default
    /// [`ResourcePolicy::Refuse`]); [`Containerizer::capabilities`] follows it.
    ///
    /// ```no_run
    /// use hoist_process::{ProcessContainerizer, ResourcePolicy};
    ///
    /// let processes = ProcessContainerizer::new("/var/lib/my-executor")?
    ///     .with_resources(ResourcePolicy::Advisory);
    /// # Ok::<(), hoist_core::Error>(())
    /// ```
    pub fn with_resources(self, policy: ResourcePolicy) -> Self {
        self.rebuilt(|inner| inner.resources = policy)
    }

    /// The resources policy.
    pub fn resources(&self) -> &ResourcePolicy {
        &self.inner.resources
    }

    fn rebuilt(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner {
            state_dir: self.inner.state_dir.clone(),
            poll_interval: self.inner.poll_interval,
            resources: self.inner.resources.clone(),
            containers: Mutex::new(std::mem::take(&mut *self.inner.containers())),
            tasks: self.inner.tasks.clone(),
        };
        change(&mut inner);
        ProcessContainerizer {
            inner: Arc::new(inner),
        }
    }

    /// The cgroups that enforce `spec`'s limits, when the policy enforces and it has some (or
    /// always, when they are delegated to an OCI runtime).
    fn cgroups(&self, spec: &ContainerSpec) -> Option<&Cgroups> {
        match &self.inner.resources {
            ResourcePolicy::Enforce(cgroups)
                if cgroups.is_delegated() || spec.resources != Resources::default() =>
            {
                Some(cgroups)
            }
            _ => None,
        }
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.inner.state_dir
    }

    /// The running container `id`, its record and its pid, or [`ErrorKind::InvalidState`]
    /// naming `operation`.
    fn running(
        &self,
        id: &ContainerId,
        operation: &'static str,
    ) -> Result<(Arc<Entry>, Record, u32)> {
        let entry = self.entry(id, operation)?;
        let record = entry.snapshot();
        match (record.state, record.pid) {
            (ContainerState::Running, Some(pid)) => Ok((entry, record, pid)),
            _ => Err(
                Error::new(ErrorKind::InvalidState, "the container is not running")
                    .with_operation(operation)
                    .with_context("container", id),
            ),
        }
    }

    /// The known container `id`, or [`ErrorKind::NotFound`] naming `operation`.
    fn entry(&self, id: &ContainerId, operation: &'static str) -> Result<Arc<Entry>> {
        match self.inner.lookup(id) {
            Ok(Some(entry)) => Ok(entry),
            Ok(None) => Err(Error::not_found("container", id).with_operation(operation)),
            Err(e) => Err(e.with_operation(operation).with_context("container", id)),
        }
    }

    async fn terminate(&self, entry: &Arc<Entry>, grace: Duration) -> Result<()> {
        let record = entry.snapshot();
        match record.state {
            ContainerState::Exited => return Ok(()),
            // It never ran: it is now exited, as if killed before its first instruction.
            ContainerState::Created => {
                entry.finish(ExitStatus::signal(Signal::SIGKILL as i32));
                return Ok(());
            }
            ContainerState::Running => {}
        }
        let Some(pid) = record.pid else {
            entry.finish(ExitStatus::default());
            return Ok(());
        };
        // Signal only the process we started, never a later one that reuses its pid.
        let ours = || {
            record
                .process()
                .is_none_or(|p| p.liveness() == Liveness::Alive)
        };
        if !grace.is_zero() && ours() {
            signal_group(pid, Signal::SIGTERM);
        }
        if entry.exited(Some(grace)).await.is_none() {
            if ours() {
                signal_group(pid, Signal::SIGKILL);
            }
            if entry
                .exited(Some(KILL_WAIT + self.inner.poll_interval))
                .await
                .is_none()
            {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("the process {pid} did not exit within {KILL_WAIT:?} of KILL"),
                )
                .with_context("container", &record.id));
            }
        }
        // The leader has just gone; anything it left in its group goes too.
        signal_group(pid, Signal::SIGKILL);
        Ok(())
    }
}

/// A fresh container id: the task id made safe for a folder name, and a random suffix.
fn new_id(owner: &Owner) -> ContainerId {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    let task: String = owner
        .task_id
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    let task = task.trim_start_matches('.');
    ContainerId::new(format!("{task}-{:016x}", hasher.finish()))
}

/// The exit of a reaped child: its code, or the signal that ended it.
pub(crate) fn exit_status(status: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (_, Some(signal)) => ExitStatus::signal(signal),
        (Some(code), None) => ExitStatus::code(code),
        (None, None) => ExitStatus::default(),
    }
}

#[async_trait]
impl Containerizer for ProcessContainerizer {
    fn name(&self) -> &str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        plan::capabilities(self.inner.resources.limit())
    }

    async fn create(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId> {
        self.capabilities().check(spec).map_err(|e| {
            e.with_operation("create")
                .with_context("backend", BACKEND)
                .with_context("task", &owner.task_id)
        })?;
        let (id, dir) = loop {
            let id = new_id(owner);
            let dir = ContainerDir::new(&self.inner.state_dir, &id).ok_or_else(|| {
                Error::new(
                    ErrorKind::Backend,
                    format!("{id} is not a usable container id"),
                )
            })?;
            match dir.create() {
                Ok(()) => break (id, dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    let _ = dir.delete();
                    return Err(
                        io_error("could not create the container folder", dir.root(), e)
                            .with_operation("create"),
                    );
                }
            }
        };
        let record = Record {
            id: id.clone(),
            owner: owner.clone(),
            spec: spec.clone(),
            state: ContainerState::Created,
            pid: None,
            start_ticks: None,
            exit: None,
        };
        if let Err(e) = dir.write(&record) {
            let _ = dir.delete();
            return Err(e.with_operation("create"));
        }
        if let Some(cgroups) = self.cgroups(spec)
            && let Err(e) = cgroups.create(&id, &spec.resources)
        {
            let _ = dir.delete();
            return Err(e
                .with_operation("create")
                .with_context("task", &owner.task_id));
        }
        if let (ResourcePolicy::Advisory, Some(limits)) = (
            &self.inner.resources,
            resources::describe(&spec.resources, &self.inner.resources),
        ) {
            tracing::warn!(task = %owner.task_id, container = %id, "resource limits {limits} (resources policy: advisory)");
        }
        self.inner
            .containers()
            .insert(id.clone(), Arc::new(Entry::new(dir, record)));
        Ok(id)
    }

    async fn start(&self, id: &ContainerId) -> Result<()> {
        let entry = self.entry(id, "start")?;
        let _busy = entry.busy.lock().await;
        let record = entry.snapshot();
        match record.state {
            ContainerState::Created => {}
            ContainerState::Running => return Ok(()),
            ContainerState::Exited => {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "the container has already exited",
                )
                .with_operation("start")
                .with_context("container", id));
            }
        }
        let fail = |e: Error| e.with_operation("start").with_context("container", id);
        let open = |path: PathBuf| {
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| fail(io_error("could not open a log file", &path, e)))
        };
        let plan = Plan::new(&record.spec, &entry.dir.sandbox(), &record.spec.argv());
        let mut command = plan.command();
        command
            .stdout(open(entry.dir.stdout())?)
            .stderr(open(entry.dir.stderr())?);
        let cgroups = self.cgroups(&record.spec).cloned();
        if let Some(cgroups) = cgroups.as_ref().filter(|c| !c.is_delegated()) {
            resources::join_before_exec(&mut command, cgroups.join_files(id).map_err(fail)?);
        }
        let mut child = command
            .spawn()
            .map_err(|e| fail(plan::spawn_error(&plan, e)))?;
        // Until it is reaped below the process stays in /proc (as a zombie at worst).
        let process = child.id().and_then(ProcessIdentity::of);
        let started = {
            let mut record = entry.record();
            record.state = ContainerState::Running;
            record.pid = process.map(|p| p.pid);
            record.start_ticks = process.map(|p| p.start_ticks);
            record.clone()
        };
        if let Err(e) = entry.dir.write(&started) {
            if let Some(pid) = child.id() {
                signal_group(pid, Signal::SIGKILL);
            }
            let _ = child.wait().await;
            entry.finish(ExitStatus::signal(Signal::SIGKILL as i32));
            return Err(fail(e));
        }
        drop(command);
        let reaped = entry.clone();
        let container = id.clone();
        self.inner.tasks.spawn(async move {
            let mut status = match child.wait().await {
                Ok(status) => exit_status(status),
                Err(e) => {
                    tracing::warn!(container = %reaped.dir.root().display(), error = %e, "could not reap the process");
                    ExitStatus::default()
                }
            };
            // The leader has just gone; anything it left in its group goes too.
            if let Some(pid) = process.map(|p| p.pid) {
                signal_group(pid, Signal::SIGKILL);
            }
            if let Some(cgroups) = &cgroups {
                status.oom_killed = cgroups.oom_killed(&container);
            }
            reaped.finish(status);
        });
        Ok(())
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        let entry = self.entry(id, "wait")?;
        match entry.exited(None).await {
            Some(Phase::Exited(status)) => Ok(status),
            _ => Err(Error::not_found("container", id)
                .with_operation("wait")
                .with_context("why", "removed before it ran")),
        }
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        let entry = self.entry(id, "stop")?;
        // Let a start in flight finish, but do not hold the lock through the grace: a second
        // stop with a shorter grace must be able to force the container down meanwhile.
        drop(entry.busy.lock().await);
        self.terminate(&entry, grace)
            .await
            .map_err(|e| e.with_operation("stop"))
    }

    async fn remove(&self, id: &ContainerId, force: bool) -> Result<()> {
        let entry = match self.inner.lookup(id) {
            Ok(Some(entry)) => entry,
            Ok(None) => return Ok(()),
            // A folder whose record cannot be read is still ours to delete.
            Err(_) => {
                return match ContainerDir::new(&self.inner.state_dir, id) {
                    Some(dir) => dir.delete().map_err(|e| e.with_operation("remove")),
                    None => Ok(()),
                };
            }
        };
        let _busy = entry.busy.lock().await;
        if entry.snapshot().state == ContainerState::Running {
            if !force {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "the container is running; remove it with force",
                )
                .with_operation("remove")
                .with_context("container", id));
            }
            self.terminate(&entry, Duration::ZERO)
                .await
                .map_err(|e| e.with_operation("remove"))?;
        }
        entry
            .dir
            .delete()
            .map_err(|e| e.with_operation("remove").with_context("container", id))?;
        if let Some(cgroups) = self.cgroups(&entry.snapshot().spec) {
            // Processes KILLed with the main one may still be leaving the cgroup.
            let deadline = tokio::time::Instant::now() + CGROUP_EMPTY_WAIT;
            let mut removed = cgroups.try_remove(id);
            while !removed && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
                removed = cgroups.try_remove(id);
            }
            if !removed {
                // Once more, saying what is left.
                cgroups.remove(id);
            }
        }
        self.inner.containers().remove(id);
        entry.phase.send_if_modified(|phase| {
            let pending = *phase == Phase::Pending;
            if pending {
                *phase = Phase::Removed;
            }
            pending
        });
        Ok(())
    }

    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        let record = self.entry(id, "inspect")?.snapshot();
        let mut info = ContainerInfo::new(id.clone(), record.state);
        if record.state == ContainerState::Running {
            info.pid = record.pid;
        }
        info.addresses = vec![plan::loopback()];
        info.ports = record
            .spec
            .ports
            .iter()
            .map(|p| MappedPort {
                container_port: p.container_port,
                host_port: Some(p.container_port),
                host_ip: p.host_ip,
                protocol: p.protocol,
            })
            .collect();
        info.exit = record.exit;
        let dir =
            ContainerDir::new(&self.inner.state_dir, id).map(|d| d.root().display().to_string());
        info.details = BTreeMap::from([
            ("command".to_owned(), record.spec.argv().join(" ")),
            ("directory".to_owned(), dir.unwrap_or_default()),
        ]);
        if let Some(limits) = resources::describe(&record.spec.resources, &self.inner.resources) {
            info.details.insert("resources".to_owned(), limits);
        }
        if record
            .exit
            .is_some_and(|e| e.code.is_none() && e.signal.is_none())
        {
            info.details.insert(
                "exit".to_owned(),
                "unknown: the process ended after a restart".to_owned(),
            );
        }
        Ok(info)
    }

    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let (entry, record, _) = self.running(id, "exec")?;
        let fail = |e: Error| e.with_operation("exec").with_context("container", id);
        if argv.is_empty() {
            return Err(fail(Error::invalid("exec needs a command")));
        }
        let plan = Plan::new(&record.spec, &entry.dir.sandbox(), argv);
        crate::exec::run(&plan, timeout).await.map_err(fail)
    }

    async fn stats(&self, id: &ContainerId, interval: Duration) -> Result<UsageStream> {
        let (entry, record, pid) = self.running(id, "stats")?;
        let cgroup = self
            .cgroups(&record.spec)
            .map(|cgroups| (cgroups.clone(), id.clone()));
        Ok(observe::stats(entry, pid, cgroup, interval))
    }

    async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        let (_, _, pid) = self.running(id, "signal")?;
        observe::signal(pid, signal)
            .map_err(|e| e.with_operation("signal").with_context("container", id))
    }

    async fn exec_stream(&self, id: &ContainerId, request: ExecRequest) -> Result<ExecSession> {
        let (entry, record, _) = self.running(id, "exec_stream")?;
        let fail = |e: Error| {
            e.with_operation("exec_stream")
                .with_context("container", id)
        };
        if request.argv.is_empty() {
            return Err(fail(Error::invalid("exec_stream needs a command")));
        }
        let plan = Plan::new(&record.spec, &entry.dir.sandbox(), &request.argv);
        observe::session(&plan, &request).map_err(fail)
    }

    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogChunks> {
        let entry = self.entry(id, "logs")?;
        crate::logs::read(
            &entry.dir,
            entry.phase.subscribe(),
            options,
            self.inner.poll_interval,
        )
        .await
        .map_err(|e| e.with_operation("logs").with_context("container", id))
    }

    async fn list_owned(&self, executor: &ExecutorId) -> Result<Vec<OwnedContainer>> {
        let state_dir = &self.inner.state_dir;
        let folders = std::fs::read_dir(state_dir).map_err(|e| {
            io_error("could not list the state directory", state_dir, e)
                .with_operation("list_owned")
        })?;
        let mut owned = Vec::new();
        for folder in folders.flatten() {
            let Some(name) = folder.file_name().to_str().map(ContainerId::new) else {
                continue;
            };
            // Another executor's containers are left alone: not loaded, not watched.
            let known = self.inner.containers().get(&name).cloned();
            if known.is_none() {
                let record = ContainerDir::new(state_dir, &name).map(|dir| dir.read());
                if let Some(Ok(Some(record))) = record
                    && record.owner.executor_id != *executor
                {
                    continue;
                }
            }
            let entry = match known.map_or_else(|| self.inner.lookup(&name), |e| Ok(Some(e))) {
                Ok(Some(entry)) => entry,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(folder = %folder.path().display(), error = %e, "skipping an unreadable container folder");
                    continue;
                }
            };
            let record = entry.snapshot();
            if record.owner.executor_id == *executor {
                owned.push(OwnedContainer {
                    id: record.id,
                    owner: record.owner,
                    state: record.state,
                });
            }
        }
        owned.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(owned)
    }
}
