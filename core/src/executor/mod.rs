//! The [`Executor`] engine: drives tasks through hooks, the containerizer and the health
//! monitor, and streams their statuses.
//!
//! Every task gets one supervisor (a tokio task) that owns its whole life: launch
//! (pre-create → create → pre-run → start → post-run → health monitor → running), then either
//! the container's exit or a kill (pre-stop → stop → post-stop). Because one supervisor decides
//! everything about its task, the terminal status is sent exactly once, whatever races: a kill
//! against the container's exit, two kills, a shutdown during launch.

mod chain;
mod supervisor;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::container::{ContainerId, ContainerState, ExecutorId};
use crate::containerizer::Containerizer;
use crate::error::{Error, ErrorKind, Result};
use crate::health::{HealthChecker, Probe, checker_for};
use crate::hook::Hook;
use crate::status::{Reason, TaskState, TaskStatus};
use crate::task::{ContainerSpec, TaskId, TaskSpec};

use chain::HookChain;
use supervisor::{Control, KillOrder, Supervisor};

/// What [`Executor::recover`] does with containers an earlier executor left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Watch them again as tasks of this executor (running ones are reported `running` with
    /// reason `recovered`; exited ones are reported terminal and torn down).
    #[default]
    Reattach,
    /// Stop and remove them.
    Cleanup,
}

/// What [`Executor::recover`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Tasks now supervised again.
    pub reattached: Vec<TaskId>,
    /// Tasks whose containers were stopped and removed.
    pub cleaned_up: Vec<TaskId>,
}

type CheckerFactory = Arc<dyn Fn(&Probe) -> Arc<dyn HealthChecker> + Send + Sync>;

/// Builds an [`Executor`].
pub struct ExecutorBuilder {
    containerizer: Arc<dyn Containerizer>,
    executor_id: ExecutorId,
    hooks: Vec<Arc<dyn Hook>>,
    checkers: CheckerFactory,
    recovery: RecoveryMode,
    hook_timeout: Duration,
}

impl std::fmt::Debug for ExecutorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorBuilder")
            .field("containerizer", &self.containerizer.name())
            .field("executor_id", &self.executor_id)
            .field(
                "hooks",
                &self
                    .hooks
                    .iter()
                    .map(|h| h.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .field("recovery", &self.recovery)
            .finish()
    }
}

impl ExecutorBuilder {
    /// Sets the executor id written into every container (default `hoist`). A restarted
    /// executor must use the same id to find its containers.
    pub fn executor_id(mut self, id: impl Into<ExecutorId>) -> Self {
        self.executor_id = id.into();
        self
    }

    /// Adds a hook. Hooks run highest priority first, ties in the order they were added.
    pub fn hook(mut self, hook: impl Hook) -> Self {
        self.hooks.push(Arc::new(hook));
        self
    }

    /// Adds a shared hook.
    pub fn hook_arc(mut self, hook: Arc<dyn Hook>) -> Self {
        self.hooks.push(hook);
        self
    }

    /// Replaces how probes are turned into checkers (default [`checker_for`]).
    pub fn health_checkers(
        mut self,
        factory: impl Fn(&Probe) -> Arc<dyn HealthChecker> + Send + Sync + 'static,
    ) -> Self {
        self.checkers = Arc::new(factory);
        self
    }

    /// What [`Executor::recover`] does (default [`RecoveryMode::Reattach`]).
    pub fn recovery(mut self, mode: RecoveryMode) -> Self {
        self.recovery = mode;
        self
    }

    /// The deadline for one hook's run of one phase (default 60 s); a hook past it has failed.
    pub fn hook_timeout(mut self, timeout: Duration) -> Self {
        self.hook_timeout = timeout;
        self
    }

    /// Validates every hook's configuration and builds the executor and its status stream.
    pub fn build(self) -> Result<(Executor, StatusStream)> {
        let mut names = std::collections::HashSet::new();
        for hook in &self.hooks {
            hook.validate().map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("hook `{}` is misconfigured: {e}", hook.name()),
                )
                .with_context("hook", hook.name())
                .with_source(e)
            })?;
            if !names.insert(hook.name().to_owned()) {
                return Err(
                    Error::invalid(format!("hook `{}` is registered twice", hook.name()))
                        .with_context("hook", hook.name()),
                );
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            id: self.executor_id,
            containerizer: self.containerizer,
            chain: HookChain::new(self.hooks, self.hook_timeout),
            checkers: self.checkers,
            recovery: self.recovery,
            table: Mutex::new(Table::default()),
            statuses: tx,
            tracker: TaskTracker::new(),
        });
        Ok((Executor { inner }, StatusStream { rx }))
    }
}

/// The statuses of every task of an executor, in the order they happened. It ends once the
/// executor has been dropped and every task has ended.
#[derive(Debug)]
pub struct StatusStream {
    rx: mpsc::UnboundedReceiver<TaskStatus>,
}

impl StatusStream {
    /// The next status, or `None` once the stream has ended.
    pub async fn recv(&mut self) -> Option<TaskStatus> {
        self.rx.recv().await
    }
}

impl Stream for StatusStream {
    type Item = TaskStatus;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<TaskStatus>> {
        self.rx.poll_recv(cx)
    }
}

pub(crate) struct Inner {
    pub(crate) id: ExecutorId,
    pub(crate) containerizer: Arc<dyn Containerizer>,
    pub(crate) chain: HookChain,
    pub(crate) checkers: CheckerFactory,
    recovery: RecoveryMode,
    table: Mutex<Table>,
    statuses: mpsc::UnboundedSender<TaskStatus>,
    tracker: TaskTracker,
}

#[derive(Default)]
struct Table {
    closed: bool,
    tasks: HashMap<TaskId, Entry>,
}

struct Entry {
    control: Arc<Control>,
    state: TaskState,
    container_id: Option<ContainerId>,
}

impl Inner {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the container of a task as soon as it exists, so [`Executor::tasks`] names it
    /// before the task is reported running (its process may already be at work).
    pub(crate) fn record_container(&self, task: &TaskId, container: &ContainerId) {
        if let Some(entry) = self.table().tasks.get_mut(task) {
            entry.container_id = Some(container.clone());
        }
    }

    /// Records and sends a status; a terminal one also drops the task from the table.
    pub(crate) fn emit(&self, status: TaskStatus) {
        {
            let mut table = self.table();
            if status.state.is_terminal() {
                table.tasks.remove(&status.task_id);
            } else if let Some(entry) = table.tasks.get_mut(&status.task_id) {
                entry.state = status.state;
                if status.container_id.is_some() {
                    entry.container_id.clone_from(&status.container_id);
                }
            }
        }
        tracing::debug!(%status, "task status");
        // The receiver may be gone; statuses are then only recorded.
        let _ = self.statuses.send(status);
    }

    /// Registers a task and starts its supervisor; fails if the id is taken or the executor
    /// is shut down.
    fn admit(self: &Arc<Self>, id: &TaskId, state: TaskState) -> Result<Arc<Control>> {
        let mut table = self.table();
        if table.closed {
            return Err(
                Error::new(ErrorKind::InvalidState, "the executor is shutting down")
                    .with_operation("launch")
                    .with_context("task", id),
            );
        }
        if table.tasks.contains_key(id) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("task {id} is already running"),
            )
            .with_operation("launch")
            .with_context("task", id));
        }
        let control = Arc::new(Control::default());
        table.tasks.insert(
            id.clone(),
            Entry {
                control: control.clone(),
                state,
                container_id: None,
            },
        );
        Ok(control)
    }
}

/// The engine. Cheap to clone; every clone drives the same tasks.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> hoist_core::Result<()> {
/// use std::sync::Arc;
/// use hoist_core::{ContainerSpec, Executor, TaskSpec, TaskState};
/// use hoist_core::testing::{FakeContainerizer, Script};
///
/// let fake = Arc::new(FakeContainerizer::new());
/// // A container that exits 0 a moment after it starts.
/// fake.default_script(Script::exits(0, std::time::Duration::from_millis(10)));
/// let (executor, mut statuses) = Executor::builder(fake).build()?;
/// executor.launch(TaskSpec::new("hello", ContainerSpec::command(["echo", "hi"]))).await?;
/// let mut states = vec![];
/// while let Some(status) = statuses.recv().await {
///     states.push(status.state);
///     if status.state.is_terminal() { break; }
/// }
/// assert_eq!(states, [TaskState::Starting, TaskState::Running, TaskState::Finished]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("id", &self.inner.id)
            .field("containerizer", &self.inner.containerizer.name())
            .field("tasks", &self.inner.table().tasks.len())
            .finish()
    }
}

impl Executor {
    /// Starts building an executor on `containerizer`.
    pub fn builder(containerizer: Arc<dyn Containerizer>) -> ExecutorBuilder {
        ExecutorBuilder {
            containerizer,
            executor_id: ExecutorId::new("hoist"),
            hooks: Vec::new(),
            checkers: Arc::new(checker_for),
            recovery: RecoveryMode::default(),
            hook_timeout: Duration::from_secs(60),
        }
    }

    /// The executor's id.
    pub fn id(&self) -> &ExecutorId {
        &self.inner.id
    }

    /// The containerizer tasks run on.
    pub fn containerizer(&self) -> &Arc<dyn Containerizer> {
        &self.inner.containerizer
    }

    /// Accepts a task and launches it in the background; everything that happens to it,
    /// including a spec the backend rejects, arrives on the status stream. Fails only when the
    /// id is already running or the executor is shutting down.
    pub async fn launch(&self, spec: TaskSpec) -> Result<()> {
        let control = self.inner.admit(&spec.id, TaskState::Starting)?;
        let supervisor = Supervisor::new(self.inner.clone(), spec, control);
        self.inner.tracker.spawn(supervisor.run_launch());
        Ok(())
    }

    /// Kills a task: pre-stop hooks, TERM, KILL after `grace` (default: the task's kill
    /// policy), post-stop hooks, then a `killed` status. Killing a task that is already being
    /// killed with a shorter grace forces it. Unknown (or already ended) tasks are
    /// [`ErrorKind::NotFound`].
    pub async fn kill(&self, task: &TaskId, grace: Option<Duration>) -> Result<()> {
        let table = self.inner.table();
        let entry = table
            .tasks
            .get(task)
            .ok_or_else(|| Error::not_found("task", task).with_operation("kill"))?;
        entry.control.kill(KillOrder {
            grace,
            reason: Reason::KillRequested,
        });
        Ok(())
    }

    /// The current state of every live task, with its container once one has been created
    /// (which can be before the task is reported running).
    pub fn tasks(&self) -> Vec<(TaskId, TaskState, Option<ContainerId>)> {
        let table = self.inner.table();
        let mut tasks: Vec<_> = table
            .tasks
            .iter()
            .map(|(id, e)| (id.clone(), e.state, e.container_id.clone()))
            .collect();
        tasks.sort_by(|a, b| a.0.cmp(&b.0));
        tasks
    }

    /// The container of a live task, once one has been created (before the task is reported
    /// running).
    pub fn container_of(&self, task: &TaskId) -> Option<ContainerId> {
        self.inner.table().tasks.get(task)?.container_id.clone()
    }

    /// Kills every task (with `grace`, or each task's own kill policy) and returns once every
    /// task's teardown is done. No task can be launched afterwards.
    pub async fn shutdown(&self, grace: Option<Duration>) {
        {
            let mut table = self.inner.table();
            table.closed = true;
            for entry in table.tasks.values() {
                entry.control.kill(KillOrder {
                    grace,
                    reason: Reason::ExecutorShutdown,
                });
            }
        }
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }

    /// Finds the containers an earlier executor with the same id left behind and, by the
    /// builder's [`RecoveryMode`], supervises them again or cleans them up. `known` supplies
    /// specs for tasks the caller still knows (their health checks, kill policies and labels
    /// then apply); the others are supervised with an empty spec.
    pub async fn recover(
        &self,
        known: impl IntoIterator<Item = TaskSpec>,
    ) -> Result<RecoveryReport> {
        let mut known: HashMap<TaskId, TaskSpec> =
            known.into_iter().map(|s| (s.id.clone(), s)).collect();
        let owned = self
            .inner
            .containerizer
            .list_owned(&self.inner.id)
            .await
            .map_err(|e| e.with_operation("recover"))?;
        let mut report = RecoveryReport::default();
        for container in owned {
            let task_id = container.owner.task_id.clone();
            match self.inner.recovery {
                RecoveryMode::Cleanup => {
                    let spec = known.remove(&task_id);
                    let grace = spec.map_or(Duration::from_secs(3), |s| s.kill_policy.grace);
                    let c = &self.inner.containerizer;
                    c.stop(&container.id, grace)
                        .await
                        .map_err(|e| e.with_operation("recover"))?;
                    c.remove(&container.id, true)
                        .await
                        .map_err(|e| e.with_operation("recover"))?;
                    report.cleaned_up.push(task_id);
                }
                RecoveryMode::Reattach => {
                    let spec = known.remove(&task_id).unwrap_or_else(|| {
                        TaskSpec::new(task_id.clone(), ContainerSpec::default())
                    });
                    let control = match self.inner.admit(&task_id, TaskState::Running) {
                        Ok(rx) => rx,
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(e),
                    };
                    let supervisor = Supervisor::new(self.inner.clone(), spec, control);
                    let started = container.state != ContainerState::Created;
                    self.inner
                        .tracker
                        .spawn(supervisor.run_recovered(container.id, started));
                    report.reattached.push(task_id);
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
