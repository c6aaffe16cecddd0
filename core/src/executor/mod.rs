//! The [`Executor`] engine: drives tasks through hooks, the containerizer and the health
//! monitor, and streams their statuses.
//!
//! Every task gets one supervisor (a tokio task) that owns its whole life: launch
//! (pre-create → create → pre-run → start → post-run → health monitor → running), then either
//! the container's exit or a kill (pre-stop → stop → post-stop). Because one supervisor decides
//! everything about its task, the terminal status is sent exactly once, whatever races: a kill
//! against the container's exit, two kills, a shutdown during launch.

mod cell;
mod chain;
mod handle;
mod observer;
mod supervisor;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::task::TaskTracker;

use crate::container::{ContainerId, ContainerState, ExecutorId};
use crate::containerizer::Containerizer;
use crate::error::{Error, ErrorKind, Result};
use crate::health::{HealthChecker, Probe, ProbeTimeoutLayer, checker_for};
use crate::hook::Hook;
use crate::layer::{Layer, RetryLayer};
use crate::observe::{EngineMetrics, EventStream};
use crate::status::{Reason, TaskState, TaskStatus};
use crate::task::{ContainerSpec, TaskId, TaskSpec};

use cell::StatusCell;
use chain::HookChain;
pub use handle::{StatusStream, TaskHandle};
use observer::Observer;
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

/// A live task, as [`Executor::tasks`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    /// The task.
    pub id: TaskId,
    /// Its current state (never terminal: ended tasks are not listed).
    pub state: TaskState,
    /// Its container, once created (which can be before the task is reported running).
    pub container: Option<ContainerId>,
    /// The latest health-check verdict, on tasks that have a check and once it is known.
    pub healthy: Option<bool>,
}

type CheckerFactory = Arc<dyn Fn(&Probe) -> Arc<dyn HealthChecker> + Send + Sync>;

type Wrap = Box<dyn FnOnce(Arc<dyn Containerizer>) -> Arc<dyn Containerizer> + Send>;

/// Builds an [`Executor`].
pub struct ExecutorBuilder {
    containerizer: Arc<dyn Containerizer>,
    executor_id: ExecutorId,
    hooks: Vec<Arc<dyn Hook>>,
    checkers: CheckerFactory,
    recovery: RecoveryMode,
    hook_timeout: Duration,
    retry: Option<RetryLayer>,
    layers: Vec<Wrap>,
    keep_containers: bool,
    status_capacity: usize,
    metrics: Option<EngineMetrics>,
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
            .field("retry", &self.retry)
            .field("layers", &self.layers.len())
            .field("keep_containers", &self.keep_containers)
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

    /// Adds a hook. Hooks run highest priority first, ties in the order they were added. A
    /// shared hook is added as an `Arc` (`builder.hook(shared.clone())`).
    pub fn hook(mut self, hook: impl Hook) -> Self {
        self.hooks.push(Arc::new(hook));
        self
    }

    /// Wraps the containerizer in `layer`. Layers stack: the one added last is outermost and
    /// sees every call first. The default retry ([`ExecutorBuilder::retry`]) is innermost.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use hoist_core::Executor;
    /// use hoist_core::layer::{TimeoutLayer, TracingLayer};
    /// use hoist_core::testing::FakeContainerizer;
    ///
    /// let executor = Executor::builder(Arc::new(FakeContainerizer::new()))
    ///     .layer(TimeoutLayer::new())
    ///     .layer(TracingLayer)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(executor.containerizer().name(), "fake");
    /// ```
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Arc<dyn Containerizer>> + Send + 'static,
        L::Service: Containerizer,
    {
        self.layers
            .push(Box::new(move |inner| Arc::new(layer.layer(inner))));
        self
    }

    /// How the containerizer's calls are retried: by default [`RetryLayer::new`] (temporary
    /// errors of idempotent calls, 3 times), innermost; `None` retries nothing.
    pub fn retry(mut self, retry: Option<RetryLayer>) -> Self {
        self.retry = retry;
        self
    }

    /// Keeps every task's container after its teardown, for debugging (default false: a
    /// container is removed after post-stop, as Nomad and LocalStack do, and the terminal status
    /// is sent once it is gone).
    pub fn keep_containers(mut self, keep: bool) -> Self {
        self.keep_containers = keep;
        self
    }

    /// Registers the engine's metrics ([`EngineMetrics`]: tasks by state, launches, launch
    /// step and hook durations, health results, terminations) in `registry`. Without a registry
    /// the engine keeps none and times nothing for them.
    pub fn metrics(mut self, registry: &mut prometheus_client::registry::Registry) -> Self {
        self.metrics = Some(EngineMetrics::register(registry));
        self
    }

    /// How many statuses (and events) a [`StatusStream`] (an [`EventStream`]) subscriber may
    /// fall behind before it skips the oldest (default 1024).
    pub fn status_capacity(mut self, capacity: usize) -> Self {
        self.status_capacity = capacity.max(1);
        self
    }

    /// Replaces how probes are turned into checkers (default [`checker_for`]). Each checker
    /// the factory makes is bounded by its check's timeout ([`ProbeTimeoutLayer`]), so it need
    /// not enforce the timeout itself.
    pub fn health_checkers(
        mut self,
        factory: impl Fn(&Probe) -> Arc<dyn HealthChecker> + Send + Sync + 'static,
    ) -> Self {
        self.checkers = Arc::new(move |probe: &Probe| ProbeTimeoutLayer.layer(factory(probe)));
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

    /// Validates every hook's configuration and builds the executor.
    pub fn build(self) -> Result<Executor> {
        let mut names = std::collections::HashSet::new();
        for hook in &self.hooks {
            hook.validate().map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("hook `{}` is misconfigured", hook.name()),
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
        let mut containerizer = self.containerizer;
        if let Some(retry) = self.retry {
            containerizer = Arc::new(retry.layer(containerizer));
        }
        for wrap in self.layers {
            containerizer = wrap(containerizer);
        }
        let (statuses, _) = broadcast::channel(self.status_capacity);
        let chain = HookChain::new(self.hooks, self.hook_timeout);
        let observer = Observer::new(self.status_capacity, self.metrics, chain.names());
        let inner = Arc::new(Inner {
            id: self.executor_id,
            containerizer,
            chain,
            checkers: self.checkers,
            recovery: self.recovery,
            keep_containers: self.keep_containers,
            observer,
            table: Mutex::new(Table::default()),
            statuses,
            tracker: TaskTracker::new(),
        });
        Ok(Executor { inner })
    }
}

pub(crate) struct Inner {
    pub(crate) id: ExecutorId,
    pub(crate) containerizer: Arc<dyn Containerizer>,
    pub(crate) chain: HookChain,
    pub(crate) checkers: CheckerFactory,
    pub(crate) keep_containers: bool,
    pub(crate) observer: Observer,
    recovery: RecoveryMode,
    table: Mutex<Table>,
    statuses: broadcast::Sender<TaskStatus>,
    pub(crate) tracker: TaskTracker,
}

#[derive(Default)]
struct Table {
    closed: bool,
    tasks: HashMap<TaskId, Entry>,
}

struct Entry {
    control: Arc<Control>,
    status: Arc<StatusCell>,
    container_id: Option<ContainerId>,
}

/// What a supervisor sends its statuses through: its task's handles, and every subscriber.
/// Dropping it (the supervisor is done) tells the handles no status will follow.
pub(crate) struct Reporter {
    status: Arc<StatusCell>,
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.status.close();
    }
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

    /// Runs a supervisor on the tracker, inside its task's `task` span and event scope.
    fn spawn(&self, supervisor: supervisor::Run) {
        let span = tracing::info_span!("task", task = %supervisor.task, executor = %self.id);
        let scope = self.observer.scope(&supervisor.task);
        self.tracker.spawn(tracing::Instrument::instrument(
            scope.run(supervisor.run),
            span,
        ));
    }

    /// Sends a status to the task's handles and to every subscriber; a terminal one also drops
    /// the task from the table. Only the table update of a terminal status takes the lock.
    pub(crate) fn emit(&self, reporter: &Reporter, status: TaskStatus) {
        if status.state.is_terminal() {
            self.table().tasks.remove(&status.task_id);
        }
        tracing::debug!(%status, "task status");
        self.broadcast(&status);
        let (to, reason) = (status.state, status.reason);
        let from = reporter.status.set(status);
        self.observer.moved(Some(from), to, reason);
    }

    /// Sends a status to every subscriber, if any.
    fn broadcast(&self, status: &TaskStatus) {
        if self.statuses.receiver_count() > 0 {
            // A subscriber may go away meanwhile; the status is then only in the handles.
            let _ = self.statuses.send(status.clone());
        }
    }

    /// Registers a task with its first status; fails if the id is taken or the executor is
    /// shut down.
    fn admit(self: &Arc<Self>, first: TaskStatus) -> Result<(Arc<Control>, Reporter, TaskHandle)> {
        let id = &first.task_id;
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
        let id = id.clone();
        let cell = Arc::new(StatusCell::new(first));
        table.tasks.insert(
            id.clone(),
            Entry {
                control: control.clone(),
                status: cell.clone(),
                container_id: None,
            },
        );
        drop(table);
        cell.read(|first| {
            self.observer.moved(None, first.state, first.reason);
            self.broadcast(first);
        });
        let handle = TaskHandle::new(id, cell.clone(), control.clone());
        Ok((control, Reporter { status: cell }, handle))
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
/// let executor = Executor::builder(fake).build()?;
///
/// // Run to completion in one call...
/// let ended = executor.run(TaskSpec::new("once", ContainerSpec::command(["true"]))).await?;
/// assert_eq!(ended.state, TaskState::Finished);
///
/// // ...or hold the task's handle and follow its statuses.
/// use futures::StreamExt;
/// let task = executor.launch(TaskSpec::new("hello", ContainerSpec::command(["echo", "hi"])))?;
/// let states: Vec<_> = task.statuses().map(|s| s.state).collect().await;
/// assert_eq!(states.last(), Some(&TaskState::Finished));
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
            retry: Some(RetryLayer::new()),
            layers: Vec::new(),
            keep_containers: false,
            status_capacity: 1024,
            metrics: None,
        }
    }

    /// The executor's id.
    pub fn id(&self) -> &ExecutorId {
        &self.inner.id
    }

    /// The containerizer tasks run on, with the builder's layers.
    pub fn containerizer(&self) -> &Arc<dyn Containerizer> {
        &self.inner.containerizer
    }

    /// Every status of every task from now on ([`StatusStream`] has the lag policy).
    pub fn statuses(&self) -> StatusStream {
        StatusStream::new(self.inner.statuses.subscribe())
    }

    /// Every task event (image pulls, hook phases with their durations, failed health probes,
    /// OOM kills...) from now on, with the same lag policy.
    pub fn events(&self) -> EventStream {
        EventStream::new(self.inner.observer.subscribe())
    }

    /// Accepts a task and launches it in the background, returning its handle at once (its
    /// first status is `starting`); everything that then happens to it, including a spec the
    /// backend rejects, arrives through the handle and [`Executor::statuses`]. Fails only when
    /// the id is already running or the executor is shutting down.
    pub fn launch(&self, spec: TaskSpec) -> Result<TaskHandle> {
        let first = TaskStatus::new(spec.id.clone(), TaskState::Starting);
        let (control, reporter, handle) = self.inner.admit(first)?;
        self.inner.observer.launched();
        let supervisor = Supervisor::new(self.inner.clone(), spec, control, reporter);
        self.inner.spawn(supervisor.run_launch());
        Ok(handle)
    }

    /// Launches a task and waits for its terminal status ("run this task and give me its
    /// result"). A task that fails is an `Ok` status saying so; the error is for a task that
    /// could not be accepted (its id is taken, the executor is shutting down).
    pub async fn run(&self, spec: TaskSpec) -> Result<TaskStatus> {
        Ok(self.launch(spec)?.wait().await)
    }

    /// A handle on a live task, to follow or kill it.
    pub fn handle(&self, task: &TaskId) -> Option<TaskHandle> {
        let table = self.inner.table();
        let entry = table.tasks.get(task)?;
        Some(TaskHandle::new(
            task.clone(),
            entry.status.clone(),
            entry.control.clone(),
        ))
    }

    /// Kills a task: pre-stop hooks, TERM, KILL after `grace` (default: the task's kill
    /// policy), post-stop hooks, then a `killed` status. Killing a task that is already being
    /// killed with a shorter grace forces it. Unknown (or already ended) tasks are
    /// [`ErrorKind::NotFound`].
    pub fn kill(&self, task: &TaskId, grace: Option<Duration>) -> Result<()> {
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

    /// Every live task, sorted by id, with its container once one has been created (which can
    /// be before the task is reported running).
    pub fn tasks(&self) -> Vec<TaskInfo> {
        let table = self.inner.table();
        let mut tasks: Vec<_> = table
            .tasks
            .iter()
            .map(|(id, e)| {
                let (state, healthy) = e.status.read(|s| (s.state, s.healthy));
                TaskInfo {
                    id: id.clone(),
                    state,
                    container: e.container_id.clone(),
                    healthy,
                }
            })
            .collect();
        tasks.sort_by(|a, b| a.id.cmp(&b.id));
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
                    let started = container.state != ContainerState::Created;
                    let mut first = TaskStatus::new(task_id.clone(), TaskState::Running);
                    first.container_id = Some(container.id.clone());
                    if started {
                        first.reason = Some(Reason::Recovered);
                        first.message = Some("re-attached after an executor restart".into());
                    } else {
                        first.state = TaskState::Starting;
                        first.reason = Some(Reason::Recovered);
                        first.message =
                            Some("re-attached to a container that was never started".into());
                    }
                    let (control, reporter, _) = match self.inner.admit(first) {
                        Ok(admitted) => admitted,
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(e),
                    };
                    self.inner.record_container(&task_id, &container.id);
                    let supervisor = Supervisor::new(self.inner.clone(), spec, control, reporter);
                    self.inner
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
