//! One task's supervisor: launch, watch, kill, teardown, and exactly one terminal status.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Inner;
use super::chain::ChainEnv;
use crate::container::{ContainerId, ExitStatus, Owner};
use crate::error::{Error, ErrorKind};
use crate::health::{HealthEvent, HealthMonitor, ProbeTarget};
use crate::hook::{HookState, Phase};
use crate::status::{Reason, TaskState, TaskStatus};
use crate::task::TaskSpec;

/// A request to a supervisor.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    Kill {
        grace: Option<Duration>,
        reason: Reason,
    },
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
    commands: mpsc::UnboundedReceiver<Command>,
    hook_state: HookState,
    container: Option<ContainerId>,
    running_reported: bool,
    killing_reported: bool,
}

/// Attempts at `wait` after a temporary backend error before the task is declared lost.
const WAIT_RETRIES: u32 = 3;

impl Supervisor {
    pub(crate) fn new(
        inner: Arc<Inner>,
        spec: TaskSpec,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Self {
        Supervisor {
            inner,
            spec,
            commands,
            hook_state: HookState::default(),
            container: None,
            running_reported: false,
            killing_reported: false,
        }
    }

    /// Launches the task and supervises it to its end.
    pub(crate) fn run_launch(mut self) -> BoxFuture<'static, ()> {
        async move {
            self.report(TaskState::Starting, None, None);
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
        .boxed()
    }

    /// Supervises a container an earlier executor started (or only created).
    pub(crate) fn run_recovered(
        mut self,
        container: ContainerId,
        started: bool,
    ) -> BoxFuture<'static, ()> {
        async move {
            self.container = Some(container);
            let ending = if started {
                self.report(
                    TaskState::Running,
                    Some(Reason::Recovered),
                    Some("re-attached after an executor restart".into()),
                );
                self.running_reported = true;
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
        .boxed()
    }

    fn env(&mut self) -> ChainEnv<'_> {
        ChainEnv {
            executor_id: &self.inner.id,
            containerizer: &self.inner.containerizer,
            container_id: self.container.as_ref(),
            state: &mut self.hook_state,
        }
    }

    /// Runs the launch steps, checking for a kill between them. A step in flight is never
    /// cancelled, so nothing it creates can leak.
    async fn launch(&mut self) -> Result<(), Abort> {
        self.check_kill()?;
        let inner = self.inner.clone();
        let mut spec = self.spec.clone();
        let pre_create = inner.chain.pre_create(self.env(), &mut spec).await;
        self.spec = spec;
        pre_create.map_err(|e| Abort::failed(Reason::HookFailed, e.message()))?;
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
        self.container = Some(id.clone());
        self.check_kill()?;

        let spec = self.spec.clone();
        inner
            .chain
            .setup(Phase::PreRun, self.env(), &spec)
            .await
            .map_err(|e| Abort::failed(Reason::HookFailed, e.message()))?;
        self.check_kill()?;

        inner.containerizer.start(&id).await.map_err(|e| {
            Abort::failed(
                Reason::LaunchFailed,
                format!("could not start the container: {e}"),
            )
        })?;
        self.check_kill()?;

        inner
            .chain
            .setup(Phase::PostRun, self.env(), &spec)
            .await
            .map_err(|e| Abort::failed(Reason::HookFailed, e.message()))?;
        self.check_kill()?;
        Ok(())
    }

    fn check_kill(&mut self) -> Result<(), Abort> {
        match self.commands.try_recv() {
            Ok(Command::Kill { grace, reason }) => Err(Abort::Killed(KillRequest {
                grace: grace.unwrap_or(self.spec.kill_policy.grace),
                reason,
            })),
            Err(_) => Ok(()),
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
        let health_cancel = CancellationToken::new();
        let _stop_health = health_cancel.clone().drop_guard();
        if !self.running_reported {
            self.running_reported = true;
            self.report(TaskState::Running, None, None);
        }
        let mut health = self.start_health(&id, &health_cancel).await;

        let mut retries = 0;
        let mut wait = self.wait_future(&id);
        loop {
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(Command::Kill { grace, reason }) => {
                        let grace = grace.unwrap_or(self.spec.kill_policy.grace);
                        health_cancel.cancel();
                        return self.kill(KillRequest { grace, reason }, "killed on request").await;
                    }
                    // Every sender is gone only while the executor is dropped; keep watching.
                    None => std::future::pending::<()>().await,
                },
                event = recv_health(&mut health) => match event {
                    Some(HealthEvent::Healthy) => self.report_health(true, "health check passed".into()),
                    Some(HealthEvent::Unhealthy { reason, .. }) => self.report_health(false, reason),
                    Some(HealthEvent::Failed { reason, consecutive }) => {
                        self.report_health(false, reason.clone());
                        let kill = KillRequest { grace: self.spec.kill_policy.grace, reason: Reason::HealthCheckFailed };
                        let why = format!("killed after {consecutive} consecutive failed health checks: {reason}");
                        return self.kill(kill, &why).await;
                    }
                    None => health = None,
                },
                exit = &mut wait => match exit {
                    Ok(status) => {
                        health_cancel.cancel();
                        return self.exited(status).await;
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        health_cancel.cancel();
                        let failures = self.teardown(None).await;
                        let ending = Ending::new(TaskState::Lost, Reason::ContainerGone, format!("the container disappeared: {e}"));
                        return with_teardown_failures(ending, &failures);
                    }
                    Err(e) if e.is_temporary() && retries < WAIT_RETRIES => {
                        retries += 1;
                        tracing::warn!(task = %self.spec.id, error = %e, retries, "wait failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200 << retries)).await;
                        wait = self.wait_future(&id);
                    }
                    Err(e) => {
                        health_cancel.cancel();
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
        Some(HealthMonitor::new(check, checker, target).spawn(cancel.clone()))
    }

    fn report_health(&mut self, healthy: bool, message: String) {
        let mut status = self.status(TaskState::Running);
        status.reason = Some(Reason::HealthCheckStatusUpdated);
        status.healthy = Some(healthy);
        status.message = Some(message);
        self.inner.emit(status);
    }

    /// The container exited on its own: tear down and report how it ended.
    async fn exited(&mut self, exit: ExitStatus) -> Ending {
        let failures = self.teardown(None).await;
        let ending = if exit.success() {
            Ending::new(TaskState::Finished, Reason::CommandExited, exit.to_string())
        } else if exit.oom_killed {
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

    /// Pre-stop hooks, stop (when `grace` is given and there is a container), post-stop hooks.
    /// A second kill during the stop with a shorter grace forces the container down.
    async fn teardown(&mut self, grace: Option<Duration>) -> Vec<Error> {
        let inner = self.inner.clone();
        let spec = self.spec.clone();
        let mut failures = inner
            .chain
            .teardown(Phase::PreStop, self.env(), &spec)
            .await;
        if let (Some(grace), Some(id)) = (grace, self.container.clone()) {
            if let Err(e) = self.stop(&id, grace).await {
                failures.push(e);
            }
        }
        failures.extend(
            inner
                .chain
                .teardown(Phase::PostStop, self.env(), &spec)
                .await,
        );
        failures
    }

    async fn stop(&mut self, id: &ContainerId, grace: Duration) -> crate::Result<()> {
        let containerizer = self.inner.containerizer.clone();
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
                Some(Command::Kill { grace: Some(forced), .. }) = self.commands.recv() => {
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
        self.inner.emit(status);
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

fn with_teardown_failures(mut ending: Ending, failures: &[Error]) -> Ending {
    if !failures.is_empty() {
        let list: Vec<String> = failures.iter().map(|e| e.message().to_owned()).collect();
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
