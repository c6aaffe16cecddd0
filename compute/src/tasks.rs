//! ECS-style tasks: containers that join a load-balancer target group while they run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use hoist_core::{
    ContainerId, ContainerSpec, ContainerState, Containerizer, Error, ErrorKind, ExecutorId,
    ExitStatus, Owner, Result, TaskId,
};

/// A registered target: an address and port that serves a task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// The task behind it.
    pub task: TaskId,
    /// Where it is reachable.
    pub address: IpAddr,
    /// The port it serves on.
    pub port: u16,
}

/// A load balancer's target group: where running tasks are registered.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> hoist_core::Result<()> {
/// use hoist_compute::tasks::{InMemoryTargetGroup, Target, TargetGroup};
///
/// let group = InMemoryTargetGroup::default();
/// let target = Target { task: "web-1".into(), address: "10.0.0.5".parse().unwrap(), port: 80 };
/// group.register(&target).await?;
/// assert_eq!(group.targets(), vec![target.clone()]);
/// group.deregister(&target).await?;
/// assert!(group.targets().is_empty());
/// # Ok(()) }
/// ```
#[async_trait]
pub trait TargetGroup: Send + Sync + fmt::Debug + 'static {
    /// Adds `target`; registering a registered target succeeds.
    async fn register(&self, target: &Target) -> Result<()>;
    /// Removes `target`; deregistering an unknown target succeeds.
    async fn deregister(&self, target: &Target) -> Result<()>;
}

/// A target group held in memory.
#[derive(Debug, Default)]
pub struct InMemoryTargetGroup {
    targets: Mutex<BTreeSet<Target>>,
}

impl InMemoryTargetGroup {
    /// The registered targets, sorted.
    pub fn targets(&self) -> Vec<Target> {
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

#[async_trait]
impl TargetGroup for InMemoryTargetGroup {
    async fn register(&self, target: &Target) -> Result<()> {
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(target.clone());
        Ok(())
    }

    async fn deregister(&self, target: &Target) -> Result<()> {
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(target);
        Ok(())
    }
}

/// What `describe` reports of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDescription {
    /// The task.
    pub id: TaskId,
    /// Its container's state.
    pub state: ContainerState,
    /// Its target, while registered.
    pub target: Option<Target>,
    /// How it ended, once it has.
    pub exit: Option<ExitStatus>,
}

struct RunningTask {
    container: ContainerId,
    target: Option<Target>,
}

/// Runs ECS-style tasks on any backend, registering each running container with a target group
/// on the task's port, and deregistering it before stopping it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> hoist_core::Result<()> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use hoist_compute::tasks::{InMemoryTargetGroup, TaskRunner};
/// use hoist_core::{ContainerSpec, PortMapping};
/// use hoist_core::testing::FakeContainerizer;
///
/// let group = Arc::new(InMemoryTargetGroup::default());
/// let runner = TaskRunner::new(Arc::new(FakeContainerizer::new()), "ecs", group.clone());
/// let mut spec = ContainerSpec::command(["/srv/web"]);
/// spec.ports.push(PortMapping::tcp(8080, None));
/// let task = runner.run(spec).await?;
/// assert_eq!(group.targets()[0].port, 8080);
/// runner.stop(&task, Duration::from_secs(1)).await?;
/// assert!(group.targets().is_empty());
/// # Ok(()) }
/// ```
pub struct TaskRunner {
    backend: Arc<dyn Containerizer>,
    executor: ExecutorId,
    group: Arc<dyn TargetGroup>,
    tasks: Mutex<BTreeMap<TaskId, RunningTask>>,
    next: AtomicU64,
    address_timeout: Duration,
}

impl fmt::Debug for TaskRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskRunner")
            .field("backend", &self.backend.name())
            .field("executor", &self.executor)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl TaskRunner {
    /// A runner starting tasks on `backend` (owned as `executor`) and registering them with
    /// `group`.
    pub fn new(
        backend: Arc<dyn Containerizer>,
        executor: impl Into<ExecutorId>,
        group: Arc<dyn TargetGroup>,
    ) -> Self {
        TaskRunner {
            backend,
            executor: executor.into(),
            group,
            tasks: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(1),
            address_timeout: Duration::from_secs(60),
        }
    }

    /// How long `run` waits for a started container to get an address (a pod's IP comes once
    /// it is scheduled). Default 60 s.
    pub fn with_address_timeout(mut self, timeout: Duration) -> Self {
        self.address_timeout = timeout;
        self
    }

    /// Polls `inspect` until the container has an address, backing off from 50 ms to 1 s.
    async fn address_of(
        &self,
        id: &TaskId,
        container: &ContainerId,
    ) -> Result<(hoist_core::ContainerInfo, IpAddr)> {
        let deadline = tokio::time::Instant::now() + self.address_timeout;
        let mut pause = Duration::from_millis(50);
        loop {
            let info = self.backend.inspect(container).await?;
            if let Some(address) = info.addresses.first().copied() {
                return Ok((info, address));
            }
            let problem = if info.state == ContainerState::Exited {
                "the task's container exited before it had an address to register".to_owned()
            } else if tokio::time::Instant::now() + pause > deadline {
                format!(
                    "the task's container had no address to register within {:?}",
                    self.address_timeout
                )
            } else {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
                continue;
            };
            let kind = if info.state == ContainerState::Exited {
                ErrorKind::InvalidState
            } else {
                ErrorKind::Timeout
            };
            return Err(Error::new(kind, problem)
                .with_operation("run")
                .with_context("task", id));
        }
    }

    fn table(&self) -> MutexGuard<'_, BTreeMap<TaskId, RunningTask>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a task running `spec`. Once its container has an address (see
    /// [`TaskRunner::with_address_timeout`]), its first port on that address is registered with
    /// the target group; a spec without ports registers nothing. If registration fails the
    /// container is removed and the error returned.
    pub async fn run(&self, spec: ContainerSpec) -> Result<TaskId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = TaskId::new(format!("task-{n:08x}"));
        let owner = Owner {
            executor_id: self.executor.clone(),
            task_id: id.clone(),
        };
        let container = self.backend.create(&owner, &spec).await?;
        let registered = async {
            self.backend.start(&container).await?;
            let Some(port) = spec.ports.first() else {
                return Ok(None);
            };
            let (info, address) = self.address_of(&id, &container).await?;
            let port = info
                .ports
                .iter()
                .find(|p| p.container_port == port.container_port)
                .and_then(|p| p.host_port)
                .unwrap_or(port.container_port);
            let target = Target {
                task: id.clone(),
                address,
                port,
            };
            self.group.register(&target).await?;
            Ok::<_, Error>(Some(target))
        }
        .await;
        match registered {
            Ok(target) => {
                self.table()
                    .insert(id.clone(), RunningTask { container, target });
                Ok(id)
            }
            Err(err) => {
                let _ = self.backend.remove(&container, true).await;
                Err(err)
            }
        }
    }

    /// Deregisters the task's target, then stops and removes its container.
    pub async fn stop(&self, id: &TaskId, grace: Duration) -> Result<ExitStatus> {
        let (container, target) = {
            let table = self.table();
            let task = table
                .get(id)
                .ok_or_else(|| Error::not_found("task", id).with_operation("stop"))?;
            (task.container.clone(), task.target.clone())
        };
        if let Some(target) = &target {
            self.group.deregister(target).await?;
            if let Some(task) = self.table().get_mut(id) {
                task.target = None;
            }
        }
        self.backend.stop(&container, grace).await?;
        let exit = self.backend.wait(&container).await?;
        self.backend.remove(&container, true).await?;
        self.table().remove(id);
        Ok(exit)
    }

    /// Describes every task the runner holds. A task whose container exited on its own is
    /// deregistered here (it no longer serves).
    pub async fn describe(&self) -> Result<Vec<TaskDescription>> {
        let tasks: Vec<(TaskId, ContainerId, Option<Target>)> = self
            .table()
            .iter()
            .map(|(id, t)| (id.clone(), t.container.clone(), t.target.clone()))
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for (id, container, mut target) in tasks {
            let info = self.backend.inspect(&container).await?;
            if info.state == ContainerState::Exited
                && let Some(t) = target.take()
            {
                self.group.deregister(&t).await?;
                if let Some(task) = self.table().get_mut(&id) {
                    task.target = None;
                }
            }
            out.push(TaskDescription {
                id,
                state: info.state,
                target,
                exit: info.exit,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoist_core::PortMapping;
    use hoist_core::layer::LayeredContainerizer;
    use hoist_core::testing::{FakeContainerizer, Script};

    /// A target group that records the order of calls against the backend's.
    #[derive(Debug)]
    struct Recording {
        inner: InMemoryTargetGroup,
        fake: FakeContainerizer,
        seen: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl TargetGroup for Recording {
        async fn register(&self, target: &Target) -> Result<()> {
            self.seen.lock().unwrap().push(format!(
                "register after {} starts",
                self.fake.calls_to("start")
            ));
            self.inner.register(target).await
        }
        async fn deregister(&self, target: &Target) -> Result<()> {
            self.seen.lock().unwrap().push(format!(
                "deregister after {} stops",
                self.fake.calls_to("stop")
            ));
            self.inner.deregister(target).await
        }
    }

    fn web() -> ContainerSpec {
        let mut spec = ContainerSpec::command(["/srv/web"]);
        spec.ports.push(PortMapping::tcp(8080, Some(31080)));
        spec
    }

    #[tokio::test]
    async fn targets_register_after_start_and_deregister_before_stop() {
        let fake = FakeContainerizer::new();
        let group = Arc::new(Recording {
            inner: InMemoryTargetGroup::default(),
            fake: fake.clone(),
            seen: Mutex::new(Vec::new()),
        });
        let runner = TaskRunner::new(Arc::new(fake.clone()), "ecs", group.clone());
        let a = runner.run(web()).await.unwrap();
        let b = runner.run(web()).await.unwrap();
        let targets = group.inner.targets();
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].port, 31080);
        assert_eq!(targets[0].address, IpAddr::from([127, 0, 0, 1]));
        let exit = runner.stop(&a, Duration::from_secs(1)).await.unwrap();
        assert!(!exit.success());
        assert_eq!(group.inner.targets().len(), 1);
        runner.stop(&b, Duration::from_secs(1)).await.unwrap();
        assert_eq!(
            *group.seen.lock().unwrap(),
            vec![
                "register after 1 starts",
                "register after 2 starts",
                "deregister after 0 stops",
                "deregister after 1 stops",
            ]
        );
        assert!(fake.live_containers().is_empty());
        assert_eq!(
            runner.stop(&a, Duration::ZERO).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }

    #[tokio::test]
    async fn exited_tasks_leave_the_group() {
        let fake = FakeContainerizer::new();
        fake.default_script(Script::exits(0, Duration::ZERO));
        let group = Arc::new(InMemoryTargetGroup::default());
        let runner = TaskRunner::new(Arc::new(fake.clone()), "ecs", group.clone());
        let id = runner.run(web()).await.unwrap();
        let container = fake.container_of(id.as_str()).unwrap();
        fake.wait(&container).await.unwrap();
        let described = runner.describe().await.unwrap();
        assert_eq!(described[0].state, ContainerState::Exited);
        assert_eq!(described[0].target, None);
        assert!(group.targets().is_empty());
        runner.stop(&id, Duration::ZERO).await.unwrap();
        assert!(fake.live_containers().is_empty());
    }

    /// A backend whose containers get their address only after `blank` inspects, as a pod
    /// gets its IP once scheduled.
    #[derive(Debug)]
    struct LateAddress {
        inner: FakeContainerizer,
        blank: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl LayeredContainerizer for LateAddress {
        type Inner = FakeContainerizer;
        fn inner(&self) -> &FakeContainerizer {
            &self.inner
        }
        async fn inspect(&self, id: &ContainerId) -> Result<hoist_core::ContainerInfo> {
            let mut info = self.inner.inspect(id).await?;
            let blank = self.blank.load(Ordering::SeqCst);
            if blank > 0 {
                self.blank.store(blank - 1, Ordering::SeqCst);
                info.addresses.clear();
            }
            Ok(info)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn run_waits_for_an_address_within_its_deadline() {
        let fake = FakeContainerizer::new();
        let late = Arc::new(LateAddress {
            inner: fake.clone(),
            blank: 3.into(),
        });
        let group = Arc::new(InMemoryTargetGroup::default());
        let runner = TaskRunner::new(late.clone(), "ecs", group.clone());
        let started = tokio::time::Instant::now();
        let task = runner.run(web()).await.unwrap();
        // Three blank inspects: 50 + 100 + 200 ms of backoff before the fourth.
        assert_eq!(started.elapsed(), Duration::from_millis(350));
        assert_eq!(group.targets().len(), 1);
        runner.stop(&task, Duration::ZERO).await.unwrap();

        late.blank.store(usize::MAX, Ordering::SeqCst);
        let runner = runner.with_address_timeout(Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        let err = runner.run(web()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(4) && waited <= Duration::from_secs(5),
            "{waited:?}"
        );
        assert!(fake.live_containers().is_empty());
        assert!(group.targets().is_empty());
    }

    #[tokio::test]
    async fn a_failed_registration_removes_the_container() {
        #[derive(Debug)]
        struct Refusing;
        #[async_trait]
        impl TargetGroup for Refusing {
            async fn register(&self, _: &Target) -> Result<()> {
                Err(Error::new(ErrorKind::Unavailable, "target group is full"))
            }
            async fn deregister(&self, _: &Target) -> Result<()> {
                Ok(())
            }
        }
        let fake = FakeContainerizer::new();
        let runner = TaskRunner::new(Arc::new(fake.clone()), "ecs", Arc::new(Refusing));
        let err = runner.run(web()).await.unwrap_err();
        assert!(err.to_string().contains("full"), "{err}");
        assert!(fake.live_containers().is_empty());
        assert!(runner.describe().await.unwrap().is_empty());
    }
}
