//! How the pool starts and stops environments: the [`EnvironmentLauncher`] trait and
//! [`ExecutorLauncher`], which runs each environment as a task of a hoist [`Executor`] on any
//! containerizer.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hoist_core::executor::StatusStream;
use hoist_core::scheduler::EnvironmentId;
use hoist_core::{Error, ErrorKind, Executor, TaskId, TaskSpec, TaskState, TaskStatus};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::pool::FunctionKey;

/// Starts and stops the environments of a pool.
///
/// ```
/// use async_trait::async_trait;
/// use hoist_core::scheduler::EnvironmentId;
/// use hoist_functions::launcher::EnvironmentLauncher;
/// use hoist_functions::pool::FunctionKey;
///
/// /// Environments that are ready at once and need no teardown.
/// #[derive(Debug)]
/// struct Instant;
///
/// #[async_trait]
/// impl EnvironmentLauncher for Instant {
///     async fn start(&self, _: &EnvironmentId, _: &FunctionKey) -> hoist_core::Result<()> { Ok(()) }
///     async fn stop(&self, _: &EnvironmentId) {}
/// }
/// ```
#[async_trait]
pub trait EnvironmentLauncher: Send + Sync + fmt::Debug + 'static {
    /// Launches `environment` for the function version `key` and returns once it is ready to
    /// serve. The pool bounds this with its start-up deadline (and stops a late environment).
    async fn start(&self, environment: &EnvironmentId, key: &FunctionKey)
    -> hoist_core::Result<()>;

    /// Stops `environment` and releases what it held. Must not fail; problems are logged.
    async fn stop(&self, environment: &EnvironmentId);
}

/// When an [`ExecutorLauncher`] environment counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// When its task is running (and healthy, if the task has a health check).
    Running,
    /// When [`ReadySignal::ready`] is called for it (the Lambda Runtime API does so on the
    /// environment's first `invocation/next`).
    Signalled,
}

/// An environment that ended, as the launcher saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentExit {
    /// The environment.
    pub environment: EnvironmentId,
    /// What happened, for messages (`failed: exited with code 1`).
    pub reason: String,
}

type Waiters = Arc<Mutex<HashMap<EnvironmentId, oneshot::Sender<Result<(), String>>>>>;

/// Tells an [`ExecutorLauncher`] that an environment is ready, or failed to initialise.
#[derive(Debug, Clone, Default)]
pub struct ReadySignal {
    waiters: Waiters,
}

impl ReadySignal {
    fn settle(&self, environment: &EnvironmentId, result: Result<(), String>) {
        let waiter = self
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(environment);
        if let Some(tx) = waiter {
            let _ = tx.send(result);
        }
    }

    /// The environment is ready; its start returns.
    pub fn ready(&self, environment: &EnvironmentId) {
        self.settle(environment, Ok(()));
    }

    /// The environment could not initialise; its start fails with `message`.
    pub fn failed(&self, environment: &EnvironmentId, message: impl Into<String>) {
        self.settle(environment, Err(message.into()));
    }
}

/// Builds the task of an environment from its id and its function version key.
pub type SpecFn =
    Arc<dyn Fn(&EnvironmentId, &FunctionKey) -> hoist_core::Result<TaskSpec> + Send + Sync>;

/// Runs environments as tasks of an [`Executor`]: the task id is the environment id.
pub struct ExecutorLauncher {
    executor: Executor,
    specs: SpecFn,
    readiness: Readiness,
    signal: ReadySignal,
    stop_grace: Duration,
}

impl fmt::Debug for ExecutorLauncher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorLauncher")
            .field("executor", &self.executor)
            .field("readiness", &self.readiness)
            .finish_non_exhaustive()
    }
}

fn describe(status: &TaskStatus) -> String {
    let mut text = status.state.to_string();
    if let Some(reason) = status.reason {
        text.push_str(&format!(" ({reason})"));
    }
    if let Some(message) = &status.message {
        text.push_str(&format!(": {message}"));
    }
    text
}

impl ExecutorLauncher {
    /// A launcher on `executor`, consuming its status stream on a task of `tasks` (so call it
    /// inside a tokio runtime) until the stream ends or `cancel` fires; ended environments'
    /// containers are removed on `tasks` too. Returns the stream of environments that ended.
    pub fn new(
        executor: Executor,
        mut statuses: StatusStream,
        readiness: Readiness,
        specs: SpecFn,
        tasks: &TaskTracker,
        cancel: &CancellationToken,
    ) -> (Self, mpsc::UnboundedReceiver<EnvironmentExit>) {
        let signal = ReadySignal::default();
        let (exits_tx, exits_rx) = mpsc::unbounded_channel();
        let watcher = signal.clone();
        let containerizer = executor.containerizer().clone();
        let (removals, cancel) = (tasks.clone(), cancel.clone());
        tasks.spawn(async move {
            loop {
                let status = tokio::select! {
                    status = statuses.recv() => status,
                    () = cancel.cancelled() => None,
                };
                let Some(status) = status else { break };
                let environment = EnvironmentId(status.task_id.as_str().to_owned());
                if status.state == TaskState::Running
                    && readiness == Readiness::Running
                    && status.healthy != Some(false)
                {
                    watcher.ready(&environment);
                } else if status.state.is_terminal() {
                    let reason = describe(&status);
                    // The executor stops containers; an environment is never reused, so its
                    // container is removed here.
                    if let Some(container) = &status.container_id {
                        let containerizer = containerizer.clone();
                        let container = container.clone();
                        removals.spawn(async move {
                            if let Err(e) = containerizer.remove(&container, true).await {
                                tracing::warn!(%container, error = %e, "could not remove an environment's container");
                            }
                        });
                    }
                    watcher.failed(
                        &environment,
                        format!("the environment ended before it was ready: {reason}"),
                    );
                    let _ = exits_tx.send(EnvironmentExit {
                        environment,
                        reason,
                    });
                }
            }
        });
        let launcher = ExecutorLauncher {
            executor,
            specs,
            readiness,
            signal,
            stop_grace: Duration::from_secs(5),
        };
        (launcher, exits_rx)
    }

    /// The grace between TERM and KILL when an environment stops (default 5 s, as LocalStack).
    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// The handle that marks environments ready (for [`Readiness::Signalled`]).
    pub fn ready_signal(&self) -> ReadySignal {
        self.signal.clone()
    }

    /// The executor environments run on.
    pub fn executor(&self) -> &Executor {
        &self.executor
    }
}

#[async_trait]
impl EnvironmentLauncher for ExecutorLauncher {
    async fn start(
        &self,
        environment: &EnvironmentId,
        key: &FunctionKey,
    ) -> hoist_core::Result<()> {
        let mut spec = (self.specs)(environment, key)?;
        spec.id = TaskId::new(environment.0.clone());
        let (tx, rx) = oneshot::channel();
        self.signal
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(environment.clone(), tx);
        // If this future is dropped (the pool's deadline), the waiter goes with the stop.
        if let Err(e) = self.executor.launch(spec) {
            self.signal.settle(environment, Ok(()));
            return Err(e.with_context("environment", environment));
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(Error::new(ErrorKind::Backend, message)
                .with_operation("start environment")
                .with_context("environment", environment)
                .with_context("function", key.to_string())),
            Err(_) => Err(Error::new(
                ErrorKind::Cancelled,
                "the launcher stopped watching the environment",
            )
            .with_context("environment", environment)),
        }
    }

    async fn stop(&self, environment: &EnvironmentId) {
        self.signal
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(environment);
        let task = TaskId::new(environment.0.clone());
        match self.executor.kill(&task, Some(self.stop_grace)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(%environment, error = %e, "could not stop environment"),
        }
    }
}
