//! [`FakeContainerizer`]: an in-memory backend whose every call can be scripted and is recorded.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::watch;

use crate::capabilities::Capabilities;
use crate::container::{
    ContainerId, ContainerInfo, ContainerState, ExecOutput, ExecutorId, ExitStatus, LogChunk,
    LogOptions, LogStream, OwnedContainer, Owner,
};
use crate::containerizer::{Containerizer, LogChunks};
use crate::error::{Error, ErrorKind, Result};
use crate::observe::{ResourceUsage, UsageStream};
use crate::task::{ContainerSpec, TaskId};
use crate::testing::conformance::ConformanceTarget;

mod script;

pub use script::{Call, ExecDurationFn, ExecFn, SIGKILL, SIGTERM, Script, ScriptFn};

struct FakeContainer {
    owner: Owner,
    spec: ContainerSpec,
    script: Arc<Script>,
    state: ContainerState,
    pid: u32,
    exit: watch::Sender<Option<ExitStatus>>,
    removed: bool,
    /// Signals other than TERM and KILL sent to it, in order.
    signals: Vec<i32>,
}

#[derive(Default)]
struct Registry {
    containers: HashMap<ContainerId, FakeContainer>,
    scripts: HashMap<TaskId, Arc<Script>>,
    spec_scripts: Vec<ScriptFn>,
    default_script: Arc<Script>,
    calls: Vec<Call>,
    capabilities: Option<Capabilities>,
}

/// An in-memory [`Containerizer`] for tests: scriptable per task, recording every call.
///
/// It passes the conformance suite. Time in it is tokio time, so tests can pause the clock.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use hoist_core::testing::{FakeContainerizer, Script};
/// use hoist_core::{Containerizer, ContainerSpec, Owner};
///
/// let fake = FakeContainerizer::new();
/// fake.script("job", Script::exits(3, Duration::from_millis(10)));
/// let owner = Owner { executor_id: "e".into(), task_id: "job".into() };
/// let id = fake.create(&owner, &ContainerSpec::command(["job"])).await.unwrap();
/// fake.start(&id).await.unwrap();
/// assert_eq!(fake.wait(&id).await.unwrap().code, Some(3));
/// assert_eq!(fake.calls_to("start"), 1);
/// # }
/// ```
#[derive(Clone, Default)]
pub struct FakeContainerizer {
    registry: Arc<Mutex<Registry>>,
    next_id: Arc<AtomicU64>,
    next_pid: Arc<AtomicU32>,
    record: bool,
}

impl std::fmt::Debug for FakeContainerizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeContainerizer").finish_non_exhaustive()
    }
}

impl FakeContainerizer {
    /// A fake where containers run until stopped, recording every call.
    pub fn new() -> Self {
        FakeContainerizer {
            record: true,
            next_pid: Arc::new(AtomicU32::new(1000)),
            ..FakeContainerizer::default()
        }
    }

    /// A fake that records nothing (for benchmarks).
    pub fn without_recording() -> Self {
        FakeContainerizer {
            record: false,
            ..FakeContainerizer::new()
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Scripts the behaviour of the containers of task `task`.
    pub fn script(&self, task: impl Into<TaskId>, script: Script) {
        self.registry()
            .scripts
            .insert(task.into(), Arc::new(script));
    }

    /// Scripts containers by their spec: for a task without a script of its own, the first
    /// such function that returns a script decides.
    pub fn script_with(
        &self,
        choose: impl Fn(&ContainerSpec) -> Option<Script> + Send + Sync + 'static,
    ) {
        self.registry().spec_scripts.push(Arc::new(choose));
    }

    /// Scripts every task without a script of its own.
    pub fn default_script(&self, script: Script) {
        self.registry().default_script = Arc::new(script);
    }

    /// Declares other capabilities than the default (everything), to test what a backend
    /// without them gets.
    pub fn set_capabilities(&self, capabilities: Capabilities) {
        self.registry().capabilities = Some(capabilities);
    }

    /// The signals other than TERM and KILL sent to a container, in order.
    pub fn signals_of(&self, id: &ContainerId) -> Vec<i32> {
        self.registry()
            .containers
            .get(id)
            .map(|c| c.signals.clone())
            .unwrap_or_default()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.registry().calls.clone()
    }

    /// How many times `method` was called.
    pub fn calls_to(&self, method: &str) -> usize {
        self.registry()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .count()
    }

    /// The methods called for `task`, in order.
    pub fn calls_for(&self, task: &str) -> Vec<&'static str> {
        self.registry()
            .calls
            .iter()
            .filter(|c| c.task.as_ref().is_some_and(|t| t.as_str() == task))
            .map(|c| c.method)
            .collect()
    }

    /// The spec a container was created with.
    pub fn spec_of(&self, id: &ContainerId) -> Option<ContainerSpec> {
        self.registry().containers.get(id).map(|c| c.spec.clone())
    }

    /// Containers not yet removed.
    pub fn live_containers(&self) -> Vec<ContainerId> {
        let reg = self.registry();
        let mut ids: Vec<_> = reg
            .containers
            .iter()
            .filter(|(_, c)| !c.removed)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// The container of `task`, if one was created.
    pub fn container_of(&self, task: &str) -> Option<ContainerId> {
        self.registry()
            .containers
            .iter()
            .find(|(_, c)| c.owner.task_id.as_str() == task)
            .map(|(id, _)| id.clone())
    }

    /// Kills a container as if from outside the executor (`docker kill`).
    pub fn kill_externally(&self, id: &ContainerId, signal: i32) {
        let mut reg = self.registry();
        if let Some(c) = reg.containers.get_mut(id) {
            exit_now(c, ExitStatus::signal(signal));
        }
    }

    /// Removes a container as if from outside the executor: `wait` then fails with not-found.
    pub fn remove_externally(&self, id: &ContainerId) {
        let mut reg = self.registry();
        if let Some(c) = reg.containers.remove(id) {
            drop(c.exit); // wakes waiters with a closed channel
        }
    }

    fn record(&self, reg: &mut Registry, method: &'static str, container: Option<&ContainerId>) {
        if !self.record {
            return;
        }
        let task = container
            .and_then(|id| reg.containers.get(id))
            .map(|c| c.owner.task_id.clone());
        reg.calls.push(Call {
            method,
            task,
            container: container.cloned(),
        });
    }

    fn with_container<T>(
        &self,
        method: &'static str,
        id: &ContainerId,
        f: impl FnOnce(&mut FakeContainer) -> Result<T>,
    ) -> Result<T> {
        let mut reg = self.registry();
        self.record(&mut reg, method, Some(id));
        match reg.containers.get_mut(id) {
            Some(c) if !c.removed => f(c),
            _ => Err(Error::not_found("container", id).with_operation(method)),
        }
    }
}

fn exit_now(c: &mut FakeContainer, status: ExitStatus) {
    if c.exit.borrow().is_none() {
        c.state = ContainerState::Exited;
        c.exit.send_replace(Some(status));
    }
}

fn scripted_error(
    method: &'static str,
    id: impl std::fmt::Display,
    (kind, message): &(ErrorKind, String),
) -> Error {
    Error::new(*kind, message.clone())
        .with_operation(method)
        .with_context("container", id)
}

#[async_trait]
impl Containerizer for FakeContainerizer {
    fn name(&self) -> &str {
        "fake"
    }

    fn capabilities(&self) -> Capabilities {
        self.registry().capabilities.unwrap_or_else(|| {
            // Everything but interactive sessions, which an in-memory fake has no program for.
            let mut caps = Capabilities::all();
            caps.exec_stream = false;
            caps.tty = false;
            caps
        })
    }

    async fn create(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId> {
        let script = {
            let mut reg = self.registry();
            self.record(&mut reg, "create", None);
            if let Some(last) = reg.calls.last_mut() {
                last.task = Some(owner.task_id.clone());
            }
            reg.scripts
                .get(&owner.task_id)
                .cloned()
                .or_else(|| {
                    reg.spec_scripts
                        .iter()
                        .find_map(|choose| choose(spec))
                        .map(Arc::new)
                })
                .unwrap_or_else(|| reg.default_script.clone())
        };
        if !script.create_delay.is_zero() {
            tokio::time::sleep(script.create_delay).await;
        }
        if let Some(err) = &script.fail_create {
            return Err(scripted_error("create", &owner.task_id, err));
        }
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = ContainerId::new(format!("fake-{n}"));
        let pid = script
            .pid
            .unwrap_or_else(|| self.next_pid.fetch_add(1, Ordering::Relaxed));
        let (exit, _) = watch::channel(None);
        self.registry().containers.insert(
            id.clone(),
            FakeContainer {
                owner: owner.clone(),
                spec: spec.clone(),
                script,
                state: ContainerState::Created,
                pid,
                exit,
                removed: false,
                signals: Vec::new(),
            },
        );
        Ok(id)
    }

    async fn start(&self, id: &ContainerId) -> Result<()> {
        let script = self.with_container("start", id, |c| Ok(c.script.clone()))?;
        if !script.start_delay.is_zero() {
            tokio::time::sleep(script.start_delay).await;
        }
        if let Some(err) = &script.fail_start {
            return Err(scripted_error("start", id, err));
        }
        let exit_tx = {
            let mut reg = self.registry();
            let c = reg
                .containers
                .get_mut(id)
                .ok_or_else(|| Error::not_found("container", id))?;
            match c.state {
                ContainerState::Created => c.state = ContainerState::Running,
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
            c.exit.clone()
        };
        if let Some(after) = script.exit_after {
            let registry = self.registry.clone();
            let id = id.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let mut reg = registry.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(c) = reg.containers.get_mut(&id) {
                    exit_now(c, script.exit);
                }
            });
        }
        drop(exit_tx);
        Ok(())
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        let mut rx = self.with_container("wait", id, |c| Ok(c.exit.subscribe()))?;
        loop {
            if let Some(status) = *rx.borrow_and_update() {
                return Ok(status);
            }
            if rx.changed().await.is_err() {
                return Err(Error::not_found("container", id)
                    .with_operation("wait")
                    .with_context("why", "removed outside the executor"));
            }
        }
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        let (script, state) =
            self.with_container("stop", id, |c| Ok((c.script.clone(), c.state)))?;
        if state != ContainerState::Running {
            let mut reg = self.registry();
            if let Some(c) = reg.containers.get_mut(id)
                && c.state == ContainerState::Created
            {
                c.state = ContainerState::Exited;
                exit_now(c, ExitStatus::signal(SIGKILL));
            }
            return Ok(());
        }
        if !script.stop_delay.is_zero() {
            tokio::time::sleep(script.stop_delay).await;
        }
        let mut rx = {
            let mut reg = self.registry();
            let Some(c) = reg.containers.get_mut(id) else {
                return Ok(());
            };
            if !script.ignore_term {
                exit_now(c, ExitStatus::signal(SIGTERM));
            }
            c.exit.subscribe()
        };
        let exited = tokio::time::timeout(grace, rx.wait_for(Option::is_some)).await;
        if exited.is_err() {
            let mut reg = self.registry();
            if let Some(c) = reg.containers.get_mut(id) {
                exit_now(c, ExitStatus::signal(SIGKILL));
            }
        }
        Ok(())
    }

    async fn remove(&self, id: &ContainerId, force: bool) -> Result<()> {
        let mut reg = self.registry();
        self.record(&mut reg, "remove", Some(id));
        let Some(c) = reg.containers.get_mut(id) else {
            return Ok(());
        };
        if c.removed {
            return Ok(());
        }
        if c.state == ContainerState::Running {
            if !force {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "the container is running; remove it with force",
                )
                .with_operation("remove")
                .with_context("container", id));
            }
            exit_now(c, ExitStatus::signal(SIGKILL));
        }
        c.removed = true;
        Ok(())
    }

    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        self.with_container("inspect", id, |c| {
            let mut info = ContainerInfo::new(id.clone(), c.state);
            if c.state == ContainerState::Running {
                info.pid = Some(c.pid);
            }
            info.addresses = if c.script.addresses.is_empty() {
                vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
            } else {
                c.script.addresses.clone()
            };
            info.ports = c
                .spec
                .ports
                .iter()
                .map(|p| crate::container::MappedPort {
                    container_port: p.container_port,
                    host_port: p.host_port.or(Some(p.container_port)),
                    host_ip: p.host_ip,
                    protocol: p.protocol,
                })
                .collect();
            info.exit = *c.exit.borrow();
            Ok(info)
        })
    }

    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let (exec, duration) = self.with_container("exec", id, |c| {
            if c.state != ContainerState::Running {
                return Err(
                    Error::new(ErrorKind::InvalidState, "the container is not running")
                        .with_operation("exec")
                        .with_context("container", id),
                );
            }
            Ok((c.script.exec.clone(), c.script.exec_duration.clone()))
        })?;
        if argv.is_empty() {
            return Err(Error::invalid("exec needs a command")
                .with_operation("exec")
                .with_context("container", id));
        }
        let takes = duration.map_or(Duration::ZERO, |d| d(argv));
        if takes > timeout {
            tokio::time::sleep(timeout).await;
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("the command did not finish within {timeout:?}"),
            )
            .with_operation("exec")
            .with_context("container", id));
        }
        if !takes.is_zero() {
            tokio::time::sleep(takes).await;
        }
        match exec {
            Some(f) => f(argv),
            None => Ok(ExecOutput {
                exit_code: Some(0),
                ..ExecOutput::default()
            }),
        }
    }

    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogChunks> {
        let logs = self.with_container("logs", id, |c| Ok(c.script.logs.clone()))?;
        let skip = options.tail.map_or(0, |n| logs.len().saturating_sub(n));
        let chunks = logs
            .into_iter()
            .skip(skip)
            .map(|(stream, data)| Ok(LogChunk { stream, data }));
        Ok(Box::pin(futures::stream::iter(chunks)))
    }

    async fn list_owned(&self, executor: &ExecutorId) -> Result<Vec<OwnedContainer>> {
        let mut reg = self.registry();
        self.record(&mut reg, "list_owned", None);
        let mut owned: Vec<_> = reg
            .containers
            .iter()
            .filter(|(_, c)| !c.removed && &c.owner.executor_id == executor)
            .map(|(id, c)| OwnedContainer {
                id: id.clone(),
                owner: c.owner.clone(),
                state: c.state,
            })
            .collect();
        owned.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(owned)
    }

    async fn stats(&self, id: &ContainerId, interval: Duration) -> Result<UsageStream> {
        let (script, exit) =
            self.with_container("stats", id, |c| Ok((c.script.clone(), c.exit.subscribe())))?;
        let sample = script.usage.clone().unwrap_or_else(|| ResourceUsage {
            pids: Some(1),
            ..ResourceUsage::default()
        });
        // One sample at once, then one per interval, until the container has exited.
        let samples = futures::stream::unfold((exit, true), move |(mut exit, first)| {
            let sample = sample.clone();
            async move {
                if !first {
                    tokio::select! {
                        () = tokio::time::sleep(interval) => {}
                        _ = exit.wait_for(Option::is_some) => return None,
                    }
                }
                if exit.borrow().is_some() {
                    return None;
                }
                let now = ResourceUsage {
                    time: Some(std::time::SystemTime::now()),
                    ..sample
                };
                Some((Ok(now), (exit, false)))
            }
        });
        Ok(Box::pin(samples))
    }

    async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        self.with_container("signal", id, |c| {
            if c.state != ContainerState::Running {
                return Err(
                    Error::new(ErrorKind::InvalidState, "the container is not running")
                        .with_operation("signal")
                        .with_context("container", id),
                );
            }
            match signal {
                SIGKILL => exit_now(c, ExitStatus::signal(SIGKILL)),
                SIGTERM if !c.script.ignore_term => exit_now(c, ExitStatus::signal(SIGTERM)),
                SIGTERM => {}
                other => c.signals.push(other),
            }
            Ok(())
        })
    }
}

impl FakeContainerizer {
    /// Scripts this fake for the conformance suite and returns the matching target: containers
    /// run `fake forever`, `fake ignore-term`, `fake exit <code>` or `fake print <text>`, and
    /// exec answers `print <text> <code>` and hangs on `hang`.
    pub fn conformance_target(&self) -> ConformanceTarget {
        let spec = |args: &[&str]| ContainerSpec::command(["fake"].iter().chain(args).copied());
        let exec: ExecFn = Arc::new(|argv: &[String]| match argv {
            [print, text, code] if print == "print" => Ok(ExecOutput {
                exit_code: Some(
                    code.parse()
                        .map_err(|_| Error::invalid(format!("bad exit code {code}")))?,
                ),
                stdout: Bytes::from(format!("{text}\n")),
                stderr: Bytes::new(),
            }),
            _ => Err(Error::invalid(format!("the fake cannot exec {argv:?}"))),
        });
        let exec_duration: ExecDurationFn = Arc::new(|argv: &[String]| {
            if argv.first().is_some_and(|a| a == "hang") {
                Duration::MAX
            } else {
                Duration::ZERO
            }
        });
        self.script_with(move |spec| {
            let [fake, what, rest @ ..] = spec.command.as_slice() else {
                return None;
            };
            if fake != "fake" {
                return None;
            }
            match (what.as_str(), rest) {
                ("forever", []) => Some(Script {
                    exec: Some(exec.clone()),
                    exec_duration: Some(exec_duration.clone()),
                    ..Script::default()
                }),
                ("ignore-term", []) => Some(Script {
                    ignore_term: true,
                    ..Script::default()
                }),
                ("exit", [code]) => {
                    Some(Script::exits(code.parse().ok()?, Duration::from_millis(5)))
                }
                ("print", [text]) => Some(Script {
                    logs: vec![(LogStream::Stdout, Bytes::from(format!("{text}\n")))],
                    ..Script::exits(0, Duration::from_millis(5))
                }),
                _ => None,
            }
        });
        ConformanceTarget {
            runs_forever: spec(&["forever"]),
            ignores_term: spec(&["ignore-term"]),
            ignores_term_ready: None,
            exits_with: Arc::new(move |code| spec(&["exit", &code.to_string()])),
            prints: Arc::new(move |text| spec(&["print", text])),
            exec_prints: Arc::new(|text, code| {
                vec!["print".to_owned(), text.to_owned(), code.to_string()]
            }),
            exec_hangs: vec!["hang".to_owned()],
            traps_hup: None,
            interactive_shell: None,
            reports_pid: true,
            grace: Duration::from_millis(100),
            timeout: Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::conformance;

    #[tokio::test]
    async fn the_fake_passes_the_conformance_suite() {
        let fake = FakeContainerizer::new();
        let target = fake.conformance_target();
        conformance::run_all(&fake, &target).await.unwrap();
        assert!(
            fake.live_containers().is_empty(),
            "the suite left containers behind"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_suite_catches_a_container_that_ignores_term() {
        let fake = FakeContainerizer::new();
        let target = fake.conformance_target();
        fake.script(
            "term",
            Script {
                ignore_term: true,
                ..Script::default()
            },
        );
        let err = conformance::term_is_honoured(&fake, &target)
            .await
            .unwrap_err();
        assert_eq!(err.context_value("check"), Some("term_is_honoured"));
        assert!(err.message().contains("stop did not finish"), "{err}");
        assert!(
            fake.live_containers().is_empty(),
            "a failed check left containers behind"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn exec_past_its_timeout_is_a_timeout_error() {
        let fake = FakeContainerizer::new();
        let target = fake.conformance_target();
        let owner = Owner {
            executor_id: "e".into(),
            task_id: "t".into(),
        };
        let id = fake.create(&owner, &target.runs_forever).await.unwrap();
        fake.start(&id).await.unwrap();
        let started = tokio::time::Instant::now();
        let err = fake
            .exec(&id, &target.exec_hangs, Duration::from_secs(7))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert_eq!(started.elapsed(), Duration::from_secs(7));
    }
}
