//! One task's supervisor: launch, watch, kill, teardown, and exactly one terminal status.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::chain::ChainEnv;
use super::{Inner, Reporter};
use crate::container::{ContainerId, ExitStatus, Owner};
use crate::error::{Error, ErrorKind};
use crate::health::{HealthEvent, HealthMonitor, ProbeTarget};
use crate::hook::{HookState, Phase};
use crate::layer::check_spec;
use crate::observe::{TaskEvent, TaskEventKind};
use crate::status::{Reason, TaskState, TaskStatus};
use crate::task::TaskSpec;

/// A supervisor ready to run, and the task it runs for.
pub(crate) struct Run {
    pub(crate) task: crate::task::TaskId,
    pub(crate) run: BoxFuture<'static, ()>,
}

/// A kill asked of a supervisor: the grace (or the task's own) and why.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KillOrder {
    pub(crate) grace: Option<Duration>,
    pub(crate) reason: Reason,
}

/// How the executor reaches a supervisor: the latest kill order and a wake-up. Lighter than a
/// channel, which matters with tens of thousands of idle tasks.
#[derive(Debug, Default)]
pub(crate) struct Control {
    pending: std::sync::Mutex<Option<KillOrder>>,
    notify: tokio::sync::Notify,
}

impl Control {
    /// Records a kill order (the newest wins) and wakes the supervisor.
    pub(crate) fn kill(&self, order: KillOrder) {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(order);
        self.notify.notify_one();
    }

    fn take(&self) -> Option<KillOrder> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Waits for the next kill order.
    async fn next(&self) -> KillOrder {
        loop {
            if let Some(order) = self.take() {
                return order;
            }
            self.notify.notified().await;
        }
    }
}

/// How a task ends: its terminal state, reason and message.
struct Ending {
    state: TaskState,
    reason: Reason,
    message: String,
}

impl Ending {
    fn new(state: TaskState, reason: Reason, message: impl Into<String>) -> Self {
        Ending {
            state,
            reason,
            message: message.into(),
        }
    }
}

/// A kill that was asked for.
#[derive(Debug, Clone, Copy)]
struct KillRequest {
    grace: Duration,
    reason: Reason,
}

pub(crate) struct Supervisor {
    inner: Arc<Inner>,
    spec: TaskSpec,
    control: Arc<Control>,
    reporter: Reporter,
    hook_state: HookState,
    container: Option<ContainerId>,
    running_reported: bool,
    killing_reported: bool,
    healthy: Option<bool>,
}

impl Supervisor {
    pub(crate) fn new(
        inner: Arc<Inner>,
        spec: TaskSpec,
        control: Arc<Control>,
        reporter: Reporter,
    ) -> Self {
        Supervisor {
            inner,
            spec,
            control,
            reporter,
            hook_state: HookState::default(),
            container: None,
            running_reported: false,
            killing_reported: false,
            healthy: None,
        }
    }

    /// Launches the task (whose `starting` status is already out) and supervises it to its end.
    pub(crate) fn run_launch(mut self) -> Run {
        let task = self.spec.id.clone();
        let run = async move {
            let ending = match self.launch().await {
                Ok(()) => self.watch().await,
                Err(Abort::Killed(kill)) => self.kill(kill, "killed during launch").await,
                Err(Abort::Failed(ending)) => {
                    let grace = self.spec.kill_policy.grace;
                    let failures = self.teardown(Some(grace)).await;
                    with_teardown_failures(ending, &failures)
                }
            };
            self.finish(ending);
        }
        .boxed();
        Run { task, run }
    }

    /// Supervises a container an earlier executor started (reported `running` already) or
    /// only created.
    pub(crate) fn run_recovered(mut self, container: ContainerId, started: bool) -> Run {
        let task = self.spec.id.clone();
        let run = async move {
            self.container = Some(container);
            let ending = if started {
                self.running_reported = true;
                let inner = &self.inner;
                inner.observer.event(|| {
                    TaskEvent::new(
                        self.spec.id.clone(),
                        TaskEventKind::Restarted,
                        "re-attached to its container after an executor restart",
                    )
                });
                self.watch().await
            } else {
                let failures = self.teardown(Some(self.spec.kill_policy.grace)).await;
                let ending = Ending::new(
                    TaskState::Lost,
                    Reason::Recovered,
                    "the container was created but never started before the executor restarted",
                );
                with_teardown_failures(ending, &failures)
            };
            self.finish(ending);
        }
        .boxed();
        Run { task, run }
    }

    /// Runs `phase` of the hook chain with disjoint borrows of the supervisor's fields, so the
    /// spec is never cloned on the way.
    async fn run_phase(&mut self, phase: Phase) -> Result<(), Vec<Error>> {
        let inner = &*self.inner;
        let env = ChainEnv {
            executor_id: &inner.id,
            containerizer: &inner.containerizer,
            container_id: self.container.as_ref(),
            state: &mut self.hook_state,
            observer: &inner.observer,
        };
        let failures = inner.chain.run(phase, env, &mut self.spec).await;
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }

    /// Runs the launch steps, checking for a kill between them. A step in flight is never
    /// cancelled, so nothing it creates can leak.
    async fn launch(&mut self) -> Result<(), Abort> {
        self.check_kill()?;
        let inner = self.inner.clone();
        // Steps are timed only when someone watches (a metrics registry, an event listener).
        let watched = inner.observer.watched();
        let timer = || watched.then(Instant::now);
        let step_done = |step: usize, started: Option<Instant>| {
            if let Some(started) = started {
                inner.observer.step(step, started.elapsed());
            }
        };
        let started = timer();
        self.setup_phase(Phase::PreCreate).await?;
        step_done(0, started); // pre_create
        self.check_kill()?;

        if let Err(e) = self.spec.validate() {
            return Err(Abort::Failed(Ending::new(
                TaskState::Error,
                Reason::InvalidSpec,
                e.to_string(),
            )));
        }
        let owner = Owner {
            executor_id: inner.id.clone(),
            task_id: self.spec.id.clone(),
        };
        if let Err(e) = check_spec(&*inner.containerizer, &owner, &self.spec.container) {
            return Err(Abort::Failed(Ending::new(
                TaskState::Error,
                Reason::InvalidSpec,
                e.to_string(),
            )));
        }
        let started = timer();
        let id = inner
            .containerizer
            .create(&owner, &self.spec.container)
            .await
            .map_err(|e| {
                let state = match e.kind() {
                    ErrorKind::Unsupported | ErrorKind::InvalidInput => TaskState::Error,
                    _ => TaskState::Failed,
                };
                let reason = if state == TaskState::Error {
                    Reason::InvalidSpec
                } else {
                    Reason::LaunchFailed
                };
                Abort::Failed(Ending::new(
                    state,
                    reason,
                    format!("could not create the container: {e}"),
                ))
            })?;
        step_done(1, started); // create
        self.container = Some(id.clone());
        inner.record_container(&self.spec.id, &id);
        inner.observer.event(|| {
            TaskEvent::new(
                self.spec.id.clone(),
                TaskEventKind::Created,
                format!("container {id} created"),
            )
            .with("container", &id)
        });
        self.check_kill()?;

        let started = timer();
        self.setup_phase(Phase::PreRun).await?;
        step_done(2, started); // pre_run
        self.check_kill()?;

        let started = timer();
        inner.containerizer.start(&id).await.map_err(|e| {
            Abort::failed(
                Reason::LaunchFailed,
                format!("could not start the container: {e}"),
            )
        })?;
        step_done(3, started); // start
        inner.observer.event(|| {
            TaskEvent::new(
                self.spec.id.clone(),
                TaskEventKind::Started,
                format!("container {id} started"),
            )
            .with("container", &id)
        });
        self.check_kill()?;

        let started = timer();
        self.setup_phase(Phase::PostRun).await?;
        step_done(4, started); // post_run
        self.check_kill()?;
        Ok(())
    }

    async fn setup_phase(&mut self, phase: Phase) -> Result<(), Abort> {
        self.run_phase(phase).await.map_err(|errors| {
            let message = errors.first().map_or_else(String::new, status_message);
            Abort::failed(Reason::HookFailed, message)
        })
    }

    fn check_kill(&mut self) -> Result<(), Abort> {
        match self.control.take() {
            Some(KillOrder { grace, reason }) => Err(Abort::Killed(KillRequest {
                grace: grace.unwrap_or(self.spec.kill_policy.grace),
                reason,
            })),
            None => Ok(()),
        }
    }

    /// Reports running, starts the health monitor, and waits for an exit, a kill or a failed
    /// health check.
    async fn watch(&mut self) -> Ending {
        let Some(id) = self.container.clone() else {
            return Ending::new(
                TaskState::Lost,
                Reason::BackendFailed,
                "no container to watch",
            );
        };
        if !self.running_reported {
            self.running_reported = true;
            self.report(TaskState::Running, None, None);
        }
        // Only tasks with a health check pay for a monitor and its cancellation token.
        let health_cancel = self
            .spec
            .health_check
            .as_ref()
            .map(|_| CancellationToken::new());
        let _stop_health = health_cancel.clone().map(CancellationToken::drop_guard);
        let mut health = match &health_cancel {
            Some(cancel) => self.start_health(&id, cancel).await,
            None => None,
        };
        let stop_health = || {
            if let Some(cancel) = &health_cancel {
                cancel.cancel();
            }
        };
        let control = self.control.clone();

        let mut wait = self.wait_future(&id);
        loop {
            tokio::select! {
                biased;
                order = control.next() => {
                    let grace = order.grace.unwrap_or(self.spec.kill_policy.grace);
                    stop_health();
                    let why = match order.reason {
                        Reason::ExecutorShutdown => "killed: the executor is shutting down",
                        _ => "killed on request",
                    };
                    return self.kill(KillRequest { grace, reason: order.reason }, why).await;
                },
                event = recv_health(&mut health) => match event {
                    Some(HealthEvent::Healthy) => {
                        self.inner.observer.health(true);
                        self.report_health(true, "health check passed".into());
                    }
                    Some(HealthEvent::Unhealthy { reason, consecutive }) => {
                        self.probe_failed(&reason, consecutive);
                        self.report_health(false, reason);
                    }
                    Some(HealthEvent::Failed { reason, consecutive }) => {
                        self.probe_failed(&reason, consecutive);
                        if self.healthy != Some(false) {
                            self.report_health(false, reason.clone());
                        }
                        let kill = KillRequest { grace: self.spec.kill_policy.grace, reason: Reason::HealthCheckFailed };
                        let why = format!("killed after {consecutive} consecutive failed health checks: {reason}");
                        return self.kill(kill, &why).await;
                    }
                    None => health = None,
                },
                exit = &mut wait => match exit {
                    Ok(status) => {
                        stop_health();
                        return self.exited(status).await;
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        stop_health();
                        let failures = self.teardown(None).await;
                        let ending = Ending::new(TaskState::Lost, Reason::ContainerGone, format!("the container disappeared: {e}"));
                        return with_teardown_failures(ending, &failures);
                    }
                    Err(e) => {
                        stop_health();
                        let failures = self.teardown(Some(self.spec.kill_policy.grace)).await;
                        let ending = Ending::new(TaskState::Lost, Reason::BackendFailed, format!("lost track of the container: {e}"));
                        return with_teardown_failures(ending, &failures);
                    }
                },
            }
        }
    }

    fn wait_future(&self, id: &ContainerId) -> BoxFuture<'static, crate::Result<ExitStatus>> {
        let containerizer = self.inner.containerizer.clone();
        let id = id.clone();
        async move { containerizer.wait(&id).await }.boxed()
    }

    async fn start_health(
        &mut self,
        id: &ContainerId,
        cancel: &CancellationToken,
    ) -> Option<mpsc::Receiver<HealthEvent>> {
        let check = self.spec.health_check.clone()?;
        let (address, netns) = match self.inner.containerizer.inspect(id).await {
            Ok(info) => (
                info.addresses
                    .first()
                    .copied()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                info.netns,
            ),
            Err(e) => {
                tracing::warn!(task = %self.spec.id, error = %e, "inspect failed; probing loopback");
                (IpAddr::V4(Ipv4Addr::LOCALHOST), None)
            }
        };
        let target = ProbeTarget {
            container_id: id.clone(),
            containerizer: self.inner.containerizer.clone(),
            address,
            netns,
        };
        let checker = (self.inner.checkers)(&check.probe);
        Some(HealthMonitor::new(check, checker, target).spawn(&self.inner.tracker, cancel.clone()))
    }

    /// A failed probe, for metrics and events.
    fn probe_failed(&self, reason: &str, consecutive: u32) {
        let observer = &self.inner.observer;
        observer.health(false);
        observer.event(|| {
            TaskEvent::new(
                self.spec.id.clone(),
                TaskEventKind::HealthProbeFailed,
                reason,
            )
            .with("consecutive", consecutive)
        });
    }

    fn report_health(&mut self, healthy: bool, message: String) {
        self.healthy = Some(healthy);
        let mut status = self.status(TaskState::Running);
        status.reason = Some(Reason::HealthCheckStatusUpdated);
        status.healthy = Some(healthy);
        status.message = Some(message);
        self.inner.emit(&self.reporter, status);
    }

    /// The container exited on its own: tear down and report how it ended.
    async fn exited(&mut self, exit: ExitStatus) -> Ending {
        let failures = self.teardown(None).await;
        let ending = if exit.success() {
            Ending::new(TaskState::Finished, Reason::CommandExited, exit.to_string())
        } else if exit.oom_killed {
            self.inner.observer.event(|| {
                TaskEvent::new(
                    self.spec.id.clone(),
                    TaskEventKind::OutOfMemory,
                    "the kernel killed the container for exceeding its memory limit",
                )
            });
            Ending::new(
                TaskState::Failed,
                Reason::MemoryLimit,
                format!("{exit}: the memory limit was exceeded"),
            )
        } else {
            Ending::new(TaskState::Failed, Reason::CommandExited, exit.to_string())
        };
        with_teardown_failures(ending, &failures)
    }

    /// Kills the task: killing, pre-stop, stop with the grace, post-stop.
    async fn kill(&mut self, kill: KillRequest, why: &str) -> Ending {
        if !self.killing_reported {
            self.killing_reported = true;
            self.report(TaskState::Killing, Some(kill.reason), None);
        }
        let failures = self.teardown(Some(kill.grace)).await;
        let ending = Ending::new(TaskState::Killed, kill.reason, why);
        with_teardown_failures(ending, &failures)
    }

    /// Pre-stop hooks, stop (when `grace` is given and there is a container), post-stop hooks,
    /// then the container's removal (unless the executor keeps containers). A second kill
    /// during the stop with a shorter grace forces the container down.
    async fn teardown(&mut self, grace: Option<Duration>) -> Vec<Error> {
        let mut failures = self
            .run_phase(Phase::PreStop)
            .await
            .err()
            .unwrap_or_default();
        if let (Some(grace), Some(id)) = (grace, self.container.clone())
            && let Err(e) = self.stop(&id, grace).await
        {
            failures.push(e);
        }
        failures.extend(
            self.run_phase(Phase::PostStop)
                .await
                .err()
                .unwrap_or_default(),
        );
        if !self.inner.keep_containers
            && let Some(id) = &self.container
        {
            match self.inner.containerizer.remove(id, true).await {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    failures.push(e.with_context("task", &self.spec.id));
                }
                _ => {}
            }
        }
        failures
    }

    async fn stop(&mut self, id: &ContainerId, grace: Duration) -> crate::Result<()> {
        let containerizer = self.inner.containerizer.clone();
        let control = self.control.clone();
        let mut stop = {
            let (c, id) = (containerizer.clone(), id.clone());
            async move { c.stop(&id, grace).await }.boxed()
        };
        loop {
            tokio::select! {
                result = &mut stop => {
                    return match result {
                        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                        other => other.map_err(|e| e.with_context("task", &self.spec.id)),
                    };
                }
                order = control.next() => {
                    let forced = order.grace.unwrap_or(grace);
                    if forced < grace {
                        tracing::info!(task = %self.spec.id, ?forced, "kill re-sent with a shorter grace; forcing");
                        if let Err(e) = containerizer.stop(id, forced).await {
                            tracing::warn!(task = %self.spec.id, error = %e, "forced stop failed");
                        }
                    }
                }
            }
        }
    }

    fn status(&self, state: TaskState) -> TaskStatus {
        let mut status = TaskStatus::new(self.spec.id.clone(), state);
        status.container_id.clone_from(&self.container);
        status
    }

    fn report(&self, state: TaskState, reason: Option<Reason>, message: Option<String>) {
        let mut status = self.status(state);
        status.reason = reason;
        status.message = message;
        self.inner.emit(&self.reporter, status);
    }

    fn finish(&self, ending: Ending) {
        debug_assert!(ending.state.is_terminal());
        self.report(ending.state, Some(ending.reason), Some(ending.message));
    }
}

async fn recv_health(health: &mut Option<mpsc::Receiver<HealthEvent>>) -> Option<HealthEvent> {
    match health {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// An error as a status message: its message, and its source's text when it has one (a hook's
/// error under "hook `x` failed in pre_run").
fn status_message(e: &Error) -> String {
    match std::error::Error::source(e) {
        Some(source) => format!("{}: {source}", e.message()),
        None => e.message().to_owned(),
    }
}

fn with_teardown_failures(mut ending: Ending, failures: &[Error]) -> Ending {
    if !failures.is_empty() {
        let list: Vec<String> = failures.iter().map(status_message).collect();
        ending.message = format!("{}; teardown: {}", ending.message, list.join("; "));
    }
    ending
}

enum Abort {
    Killed(KillRequest),
    Failed(Ending),
}

impl Abort {
    fn failed(reason: Reason, message: impl Into<String>) -> Self {
        Abort::Failed(Ending::new(TaskState::Failed, reason, message))
    }
}
