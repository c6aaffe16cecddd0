//! [`TracingLayer`]: one span per containerizer call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::Instrument;

use super::method::Method;
use super::{Layer, LayeredContainerizer};
use crate::container::{
    ContainerId, ContainerInfo, ExecOutput, ExecutorId, ExitStatus, LogOptions, OwnedContainer,
    Owner,
};
use crate::containerizer::{Containerizer, LogChunks};
use crate::error::Result;
use crate::observe::UsageStream;
use crate::session::{ExecRequest, ExecSession};
use crate::task::{ContainerSpec, TaskId};

/// Wraps every containerizer call in a `containerizer` span (at debug level) with the fields
/// `backend`, `method`, `task` and `container`, and ends it with one event: `ok` with the time
/// taken, or `failed` with the error (at warn level, but for `not found` on `wait`, `stop` and
/// `remove`, which callers expect). The task of a container is remembered from its `create`
/// (and from `list_owned`) until its `remove`.
///
/// ```
/// use std::sync::Arc;
/// use hoist_core::layer::{Layer, TracingLayer};
/// use hoist_core::testing::FakeContainerizer;
/// use hoist_core::Containerizer;
///
/// let traced = TracingLayer.layer(Arc::new(FakeContainerizer::new()));
/// assert_eq!(traced.name(), "fake");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingLayer;

impl<C: Containerizer> Layer<C> for TracingLayer {
    type Service = Traced<C>;

    fn layer(&self, inner: C) -> Traced<C> {
        Traced {
            inner,
            tasks: Mutex::default(),
        }
    }
}

/// A containerizer whose calls are traced; made by [`TracingLayer`].
#[derive(Debug)]
pub struct Traced<C> {
    inner: C,
    tasks: Mutex<HashMap<ContainerId, TaskId>>,
}

impl<C: Containerizer> Traced<C> {
    fn tasks(&self) -> std::sync::MutexGuard<'_, HashMap<ContainerId, TaskId>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn task_of(&self, id: &ContainerId) -> String {
        self.tasks()
            .get(id)
            .map_or_else(String::new, ToString::to_string)
    }

    async fn traced<T>(
        &self,
        method: Method,
        task: String,
        container: Option<&ContainerId>,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let span = tracing::debug_span!(
            "containerizer",
            backend = self.inner.name(),
            method = method.as_str(),
            task,
            container = container.map(ContainerId::as_str),
        );
        let started = Instant::now();
        let result = call.instrument(span.clone()).await;
        let elapsed: Duration = started.elapsed();
        let _entered = span.enter();
        match &result {
            Ok(_) => tracing::debug!(?elapsed, "ok"),
            Err(e)
                if e.kind() == crate::ErrorKind::NotFound
                    && matches!(method, Method::Wait | Method::Stop | Method::Remove) =>
            {
                tracing::debug!(?elapsed, error = %e, "failed")
            }
            Err(e) => tracing::warn!(?elapsed, error = %e, "failed"),
        }
        result
    }
}

#[async_trait]
impl<C: Containerizer> LayeredContainerizer for Traced<C> {
    type Inner = C;

    fn inner(&self) -> &C {
        &self.inner
    }

    async fn create(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId> {
        let call = self.inner.create(owner, spec);
        let id = self
            .traced(Method::Create, owner.task_id.to_string(), None, call)
            .await?;
        self.tasks().insert(id.clone(), owner.task_id.clone());
        Ok(id)
    }

    async fn start(&self, id: &ContainerId) -> Result<()> {
        let call = self.inner.start(id);
        self.traced(Method::Start, self.task_of(id), Some(id), call)
            .await
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        let call = self.inner.wait(id);
        self.traced(Method::Wait, self.task_of(id), Some(id), call)
            .await
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        let call = self.inner.stop(id, grace);
        self.traced(Method::Stop, self.task_of(id), Some(id), call)
            .await
    }

    async fn remove(&self, id: &ContainerId, force: bool) -> Result<()> {
        let call = self.inner.remove(id, force);
        let result = self
            .traced(Method::Remove, self.task_of(id), Some(id), call)
            .await;
        if result.is_ok() {
            self.tasks().remove(id);
        }
        result
    }

    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        let call = self.inner.inspect(id);
        self.traced(Method::Inspect, self.task_of(id), Some(id), call)
            .await
    }

    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let call = self.inner.exec(id, argv, timeout);
        self.traced(Method::Exec, self.task_of(id), Some(id), call)
            .await
    }

    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogChunks> {
        let call = self.inner.logs(id, options);
        self.traced(Method::Logs, self.task_of(id), Some(id), call)
            .await
    }

    async fn list_owned(&self, executor: &ExecutorId) -> Result<Vec<OwnedContainer>> {
        let call = self.inner.list_owned(executor);
        let owned = self
            .traced(Method::ListOwned, String::new(), None, call)
            .await?;
        let mut tasks = self.tasks();
        for container in &owned {
            tasks.insert(container.id.clone(), container.owner.task_id.clone());
        }
        Ok(owned)
    }

    async fn stats(&self, id: &ContainerId, interval: Duration) -> Result<UsageStream> {
        let call = self.inner.stats(id, interval);
        self.traced(Method::Stats, self.task_of(id), Some(id), call)
            .await
    }

    async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        let call = self.inner.signal(id, signal);
        self.traced(Method::Signal, self.task_of(id), Some(id), call)
            .await
    }

    async fn exec_stream(&self, id: &ContainerId, request: ExecRequest) -> Result<ExecSession> {
        let call = self.inner.exec_stream(id, request);
        self.traced(Method::ExecStream, self.task_of(id), Some(id), call)
            .await
    }
}
