//! EC2-style instances: long-lived definitions, each running as one container while started.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hoist_core::{
    ContainerId, ContainerInfo, ContainerSpec, ContainerState, Containerizer, Error, ErrorKind,
    ExecutorId, ExitStatus, Owner, Result, TaskId,
};

/// The id of an instance (`i-` and 17 hex digits, as EC2 writes them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(String);

impl InstanceId {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The state of an instance, as `DescribeInstances` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// Its container is created but not yet running.
    Pending,
    /// Its container runs.
    Running,
    /// Stopped (by `stop`, or its container exited): the definition stays, `start` runs it again.
    Stopped,
}

/// What `describe` reports of an instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceDescription {
    /// The instance.
    pub id: InstanceId,
    /// Its state.
    pub state: InstanceState,
    /// Its definition.
    pub spec: ContainerSpec,
    /// Its current container, while it has one.
    pub container: Option<ContainerInfo>,
    /// How its last container ended, once one has.
    pub last_exit: Option<ExitStatus>,
}

struct Instance {
    spec: ContainerSpec,
    container: Option<ContainerId>,
    last_exit: Option<ExitStatus>,
}

/// Runs EC2-style instances on any backend: `run` defines and starts, `stop` keeps the
/// definition, `start` runs it again in a new container, `terminate` stops and forgets.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> hoist_core::Result<()> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use hoist_compute::instances::{InstanceManager, InstanceState};
/// use hoist_core::ContainerSpec;
/// use hoist_core::testing::FakeContainerizer;
///
/// let instances = InstanceManager::new(Arc::new(FakeContainerizer::new()), "ec2");
/// let id = instances.run(ContainerSpec::command(["/sbin/init"])).await?;
/// instances.stop(&id, Duration::from_secs(1)).await?;
/// assert_eq!(instances.describe_one(&id).await?.state, InstanceState::Stopped);
/// instances.start(&id).await?;
/// assert_eq!(instances.describe_one(&id).await?.state, InstanceState::Running);
/// instances.terminate(&id, Duration::from_secs(1)).await?;
/// assert!(instances.describe().await?.is_empty());
/// # Ok(()) }
/// ```
pub struct InstanceManager {
    backend: Arc<dyn Containerizer>,
    executor: ExecutorId,
    instances: Mutex<BTreeMap<InstanceId, Instance>>,
    next: AtomicU64,
}

impl fmt::Debug for InstanceManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceManager")
            .field("backend", &self.backend.name())
            .field("executor", &self.executor)
            .finish_non_exhaustive()
    }
}

impl InstanceManager {
    /// A manager running instances on `backend`, owning their containers as `executor`.
    pub fn new(backend: Arc<dyn Containerizer>, executor: impl Into<ExecutorId>) -> Self {
        InstanceManager {
            backend,
            executor: executor.into(),
            instances: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(1),
        }
    }

    fn table(&self) -> MutexGuard<'_, BTreeMap<InstanceId, Instance>> {
        self.instances.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn unknown(id: &InstanceId, operation: &'static str) -> Error {
        Error::not_found("instance", id).with_operation(operation)
    }

    async fn launch(&self, id: &InstanceId, spec: &ContainerSpec) -> Result<ContainerId> {
        let owner = Owner {
            executor_id: self.executor.clone(),
            task_id: TaskId::new(id.as_str()),
        };
        let container = self.backend.create(&owner, spec).await?;
        if let Err(err) = self.backend.start(&container).await {
            let _ = self.backend.remove(&container, true).await;
            return Err(err);
        }
        Ok(container)
    }

    /// Defines an instance running `spec` and starts it (`RunInstances`).
    pub async fn run(&self, spec: ContainerSpec) -> Result<InstanceId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = InstanceId(format!("i-{n:017x}"));
        let container = self.launch(&id, &spec).await?;
        self.table().insert(
            id.clone(),
            Instance {
                spec,
                container: Some(container),
                last_exit: None,
            },
        );
        Ok(id)
    }

    /// Starts a stopped instance in a new container (`StartInstances`); a running one is left
    /// as it is.
    pub async fn start(&self, id: &InstanceId) -> Result<()> {
        let (spec, container) = {
            let table = self.table();
            let instance = table.get(id).ok_or_else(|| Self::unknown(id, "start"))?;
            (instance.spec.clone(), instance.container.clone())
        };
        if let Some(container) = container {
            match self.backend.inspect(&container).await {
                Ok(info) if info.state != ContainerState::Exited => return Ok(()),
                _ => self.release(id, &container, Duration::ZERO).await?,
            }
        }
        let container = self.launch(id, &spec).await?;
        match self.table().get_mut(id) {
            Some(instance) => {
                instance.container = Some(container);
                Ok(())
            }
            None => Err(Self::unknown(id, "start")),
        }
    }

    /// Stops the instance's container and removes it, keeping the definition (`StopInstances`).
    pub async fn stop(&self, id: &InstanceId, grace: Duration) -> Result<()> {
        let container = {
            let table = self.table();
            table
                .get(id)
                .ok_or_else(|| Self::unknown(id, "stop"))?
                .container
                .clone()
        };
        match container {
            Some(container) => self.release(id, &container, grace).await,
            None => Ok(()),
        }
    }

    /// Stops the instance and forgets it (`TerminateInstances`).
    pub async fn terminate(&self, id: &InstanceId, grace: Duration) -> Result<()> {
        self.stop(id, grace).await?;
        self.table().remove(id);
        Ok(())
    }

    async fn release(
        &self,
        id: &InstanceId,
        container: &ContainerId,
        grace: Duration,
    ) -> Result<()> {
        self.backend.stop(container, grace).await?;
        let exit = self.backend.wait(container).await.ok();
        self.backend.remove(container, true).await?;
        if let Some(instance) = self.table().get_mut(id)
            && instance.container.as_ref() == Some(container)
        {
            instance.container = None;
            instance.last_exit = exit.or(instance.last_exit);
        }
        Ok(())
    }

    /// Describes one instance.
    pub async fn describe_one(&self, id: &InstanceId) -> Result<InstanceDescription> {
        let (spec, container, last_exit) = {
            let table = self.table();
            let instance = table.get(id).ok_or_else(|| Self::unknown(id, "describe"))?;
            (
                instance.spec.clone(),
                instance.container.clone(),
                instance.last_exit,
            )
        };
        let info = match &container {
            Some(container) => match self.backend.inspect(container).await {
                Ok(info) => Some(info),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let state = match info.as_ref().map(|i| i.state) {
            Some(ContainerState::Created) => InstanceState::Pending,
            Some(ContainerState::Running) => InstanceState::Running,
            Some(ContainerState::Exited) | None => InstanceState::Stopped,
        };
        let last_exit = info.as_ref().and_then(|i| i.exit).or(last_exit);
        Ok(InstanceDescription {
            id: id.clone(),
            state,
            spec,
            container: info,
            last_exit,
        })
    }

    /// Describes every instance (`DescribeInstances`).
    pub async fn describe(&self) -> Result<Vec<InstanceDescription>> {
        let ids: Vec<InstanceId> = self.table().keys().cloned().collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.describe_one(&id).await {
                Ok(description) => out.push(description),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoist_core::testing::{FakeContainerizer, Script};

    #[tokio::test]
    async fn instances_run_stop_start_and_terminate() {
        let fake = Arc::new(FakeContainerizer::new());
        let instances = InstanceManager::new(fake.clone(), "ec2");
        let a = instances.run(ContainerSpec::command(["a"])).await.unwrap();
        let b = instances.run(ContainerSpec::command(["b"])).await.unwrap();
        assert_ne!(a, b);
        assert!(
            a.as_str().starts_with("i-") && a.as_str().len() == 19,
            "{a}"
        );
        let all = instances.describe().await.unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|d| d.state == InstanceState::Running));

        instances.stop(&a, Duration::from_secs(1)).await.unwrap();
        let stopped = instances.describe_one(&a).await.unwrap();
        assert_eq!(stopped.state, InstanceState::Stopped);
        assert!(stopped.container.is_none());
        assert!(stopped.last_exit.is_some());
        assert_eq!(stopped.spec.command, vec!["a".to_string()]);
        // Stopping again is harmless; starting runs a new container.
        instances.stop(&a, Duration::from_secs(1)).await.unwrap();
        instances.start(&a).await.unwrap();
        assert_eq!(
            instances.describe_one(&a).await.unwrap().state,
            InstanceState::Running
        );

        instances
            .terminate(&a, Duration::from_secs(1))
            .await
            .unwrap();
        instances
            .terminate(&b, Duration::from_secs(1))
            .await
            .unwrap();
        assert!(instances.describe().await.unwrap().is_empty());
        let err = instances.start(&a).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        // Nothing leaked: every container the manager created was removed.
        let owned = fake.list_owned(&ExecutorId::new("ec2")).await.unwrap();
        assert!(owned.is_empty(), "{owned:?}");
        assert_eq!(fake.calls_to("remove"), 3);
        assert!(fake.live_containers().is_empty());
    }

    #[tokio::test]
    async fn an_exited_instance_is_stopped_and_restarts() {
        let fake = Arc::new(FakeContainerizer::new());
        fake.default_script(Script::exits(4, Duration::ZERO));
        let instances = InstanceManager::new(fake.clone(), "ec2");
        let id = instances
            .run(ContainerSpec::command(["job"]))
            .await
            .unwrap();
        let container = instances.table()[&id].container.clone().unwrap();
        fake.wait(&container).await.unwrap();
        let described = instances.describe_one(&id).await.unwrap();
        assert_eq!(described.state, InstanceState::Stopped);
        assert_eq!(described.last_exit, Some(ExitStatus::code(4)));
        instances.start(&id).await.unwrap();
        assert_ne!(instances.table()[&id].container.clone().unwrap(), container);
        instances.terminate(&id, Duration::ZERO).await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_start_leaves_no_container() {
        let fake = Arc::new(FakeContainerizer::new());
        fake.default_script(Script {
            fail_start: Some((ErrorKind::Unavailable, "no capacity".into())),
            ..Script::default()
        });
        let instances = InstanceManager::new(fake.clone(), "ec2");
        let err = instances
            .run(ContainerSpec::command(["x"]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no capacity"), "{err}");
        assert!(instances.describe().await.unwrap().is_empty());
        assert!(
            fake.list_owned(&ExecutorId::new("ec2"))
                .await
                .unwrap()
                .is_empty()
        );
    }
}
