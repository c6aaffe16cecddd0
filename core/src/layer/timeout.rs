//! [`TimeoutLayer`]: a deadline on every containerizer call.

use std::fmt::Display;
use std::time::Duration;

use async_trait::async_trait;

use super::method::{Method, PerMethod};
use super::{Layer, LayeredContainerizer};
use crate::container::{
    ContainerId, ContainerInfo, ExecOutput, ExecutorId, ExitStatus, LogOptions, OwnedContainer,
    Owner,
};
use crate::containerizer::{Containerizer, LogChunks};
use crate::error::{Error, ErrorKind, Result};
use crate::observe::UsageStream;
use crate::session::{ExecRequest, ExecSession};
use crate::task::ContainerSpec;

/// Puts a deadline on each containerizer call, configurable per [`Method`]. A call past its
/// deadline is abandoned and fails with [`ErrorKind::Timeout`] (temporary, so a
/// [`RetryLayer`](super::RetryLayer) outside this layer retries it where that is safe).
///
/// `stop` and `exec` take a time of their own (the grace, the command's timeout); their
/// deadline is that time plus the configured margin. The defaults: `create` 5 min (image pulls),
/// `start` 2 min, `wait` none (a container runs as long as it runs), `stop` grace + 60 s,
/// `remove` 60 s, `inspect` 30 s, `exec` timeout + 30 s, `logs` 30 s (to open the stream; the
/// stream itself is the caller's), `list_owned` 60 s, `stats` 30 s and `exec_stream` 60 s (to
/// open them), `signal` 30 s.
///
/// A `create` abandoned at its deadline may still finish in the backend: the container it makes
/// is owned by the executor and found by `list_owned`, so `Executor::recover` cleans it up.
///
/// ```
/// use std::time::Duration;
/// use hoist_core::layer::{Method, TimeoutLayer};
///
/// let layer = TimeoutLayer::new()
///     .deadline(Method::Start, Some(Duration::from_secs(10)))
///     .deadline(Method::Wait, None);
/// assert_eq!(layer.deadline_of(Method::Start), Some(Duration::from_secs(10)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutLayer {
    deadlines: PerMethod<Option<Duration>>,
}

impl Default for TimeoutLayer {
    fn default() -> Self {
        TimeoutLayer::new()
    }
}

impl TimeoutLayer {
    /// The default deadlines (see the type's documentation).
    pub fn new() -> Self {
        let mut deadlines = PerMethod::new(None);
        let secs = |s| Some(Duration::from_secs(s));
        deadlines.set(Method::Create, secs(300));
        deadlines.set(Method::Start, secs(120));
        deadlines.set(Method::Stop, secs(60));
        deadlines.set(Method::Remove, secs(60));
        deadlines.set(Method::Inspect, secs(30));
        deadlines.set(Method::Exec, secs(30));
        deadlines.set(Method::Logs, secs(30));
        deadlines.set(Method::ListOwned, secs(60));
        deadlines.set(Method::Stats, secs(30));
        deadlines.set(Method::Signal, secs(30));
        deadlines.set(Method::ExecStream, secs(60));
        TimeoutLayer { deadlines }
    }

    /// Sets the deadline of `method` (the margin over the grace or timeout for `stop` and
    /// `exec`); `None` sets none.
    pub fn deadline(mut self, method: Method, deadline: Option<Duration>) -> Self {
        self.deadlines.set(method, deadline);
        self
    }

    /// The deadline of `method`.
    pub fn deadline_of(&self, method: Method) -> Option<Duration> {
        self.deadlines.get(method)
    }
}

impl<C: Containerizer> Layer<C> for TimeoutLayer {
    type Service = Timeouts<C>;

    fn layer(&self, inner: C) -> Timeouts<C> {
        Timeouts {
            inner,
            deadlines: self.deadlines,
        }
    }
}

/// A containerizer whose calls have deadlines; made by [`TimeoutLayer`].
#[derive(Debug)]
pub struct Timeouts<C> {
    inner: C,
    deadlines: PerMethod<Option<Duration>>,
}

impl<C: Containerizer> Timeouts<C> {
    async fn bounded<T>(
        &self,
        method: Method,
        extra: Duration,
        subject: (&'static str, &(dyn Display + Sync)),
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(deadline) = self.deadlines.get(method) else {
            return call.await;
        };
        let deadline = deadline.saturating_add(extra);
        match tokio::time::timeout(deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "the {} backend did not finish `{method}` within {deadline:?}",
                    self.inner.name()
                ),
            )
            .with_operation(method.as_str())
            .with_context(subject.0, subject.1)),
        }
    }
}

#[async_trait]
impl<C: Containerizer> LayeredContainerizer for Timeouts<C> {
    type Inner = C;

    fn inner(&self) -> &C {
        &self.inner
    }

    async fn create(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId> {
        let call = self.inner.create(owner, spec);
        self.bounded(
            Method::Create,
            Duration::ZERO,
            ("task", &owner.task_id),
            call,
        )
        .await
    }

    async fn start(&self, id: &ContainerId) -> Result<()> {
        let call = self.inner.start(id);
        self.bounded(Method::Start, Duration::ZERO, ("container", id), call)
            .await
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        let call = self.inner.wait(id);
        self.bounded(Method::Wait, Duration::ZERO, ("container", id), call)
            .await
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        let call = self.inner.stop(id, grace);
        self.bounded(Method::Stop, grace, ("container", id), call)
            .await
    }

    async fn remove(&self, id: &ContainerId, force: bool) -> Result<()> {
        let call = self.inner.remove(id, force);
        self.bounded(Method::Remove, Duration::ZERO, ("container", id), call)
            .await
    }

    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        let call = self.inner.inspect(id);
        self.bounded(Method::Inspect, Duration::ZERO, ("container", id), call)
            .await
    }

    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let call = self.inner.exec(id, argv, timeout);
        self.bounded(Method::Exec, timeout, ("container", id), call)
            .await
    }

    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogChunks> {
        let call = self.inner.logs(id, options);
        self.bounded(Method::Logs, Duration::ZERO, ("container", id), call)
            .await
    }

    async fn list_owned(&self, executor: &ExecutorId) -> Result<Vec<OwnedContainer>> {
        let call = self.inner.list_owned(executor);
        self.bounded(
            Method::ListOwned,
            Duration::ZERO,
            ("executor", executor),
            call,
        )
        .await
    }

    async fn stats(&self, id: &ContainerId, interval: Duration) -> Result<UsageStream> {
        let call = self.inner.stats(id, interval);
        self.bounded(Method::Stats, Duration::ZERO, ("container", id), call)
            .await
    }

    async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        let call = self.inner.signal(id, signal);
        self.bounded(Method::Signal, Duration::ZERO, ("container", id), call)
            .await
    }

    async fn exec_stream(&self, id: &ContainerId, request: ExecRequest) -> Result<ExecSession> {
        let call = self.inner.exec_stream(id, request);
        self.bounded(Method::ExecStream, Duration::ZERO, ("container", id), call)
            .await
    }
}
