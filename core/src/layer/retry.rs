//! [`RetryLayer`]: retries of calls whose error says a retry can help.

use std::time::Duration;

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};

use super::method::{Method, PerMethod};
use super::{Layer, LayeredContainerizer};
use crate::container::{
    ContainerId, ContainerInfo, ExecutorId, ExitStatus, LogOptions, OwnedContainer,
};
use crate::containerizer::{Containerizer, LogChunks};
use crate::error::Result;
use crate::observe::UsageStream;

/// Retries a call that failed with a [temporary](ErrorStatus::Temporary) error, with
/// exponential backoff, and only for methods that are safe to repeat
/// ([`Method::is_idempotent`]: never `create` or `exec`). An error that outlasts the retries is
/// returned as [`ErrorStatus::Persistent`](crate::ErrorStatus::Persistent), so an outer layer does not retry it again; a
/// permanent error is returned at once.
///
/// The default: every idempotent method, 3 retries, delays from 400 ms doubling up to 10 s,
/// with jitter. The executor puts one innermost by default
/// ([`ExecutorBuilder::retry`](crate::ExecutorBuilder::retry)).
///
/// ```
/// use std::time::Duration;
/// use hoist_core::layer::{Method, RetryLayer};
///
/// let layer = RetryLayer::new().max_retries(5).min_delay(Duration::from_millis(50)).only([Method::Wait]);
/// assert!(layer.retries(Method::Wait) && !layer.retries(Method::Stop));
/// // `create` is never retried, even when asked.
/// assert!(!RetryLayer::new().only([Method::Create]).retries(Method::Create));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryLayer {
    methods: PerMethod<bool>,
    max_retries: usize,
    min_delay: Duration,
    max_delay: Duration,
    jitter: bool,
}

impl Default for RetryLayer {
    fn default() -> Self {
        RetryLayer::new()
    }
}

impl RetryLayer {
    /// The default policy (see the type's documentation).
    pub fn new() -> Self {
        let mut methods = PerMethod::new(false);
        for method in Method::ALL {
            methods.set(method, method.is_idempotent());
        }
        RetryLayer {
            methods,
            max_retries: 3,
            min_delay: Duration::from_millis(400),
            max_delay: Duration::from_secs(10),
            jitter: true,
        }
    }

    /// Retries only `methods` (those of them that are idempotent).
    pub fn only(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = PerMethod::new(false);
        for method in methods {
            self.methods.set(method, method.is_idempotent());
        }
        self
    }

    /// Retries at most `n` times after the first attempt.
    pub fn max_retries(mut self, n: usize) -> Self {
        self.max_retries = n;
        self
    }

    /// The delay before the first retry; each later one doubles it.
    pub fn min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self
    }

    /// The longest delay between two attempts.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Whether delays get a random part (default true), so many callers do not retry in step.
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Whether calls of `method` are retried.
    pub fn retries(&self, method: Method) -> bool {
        self.methods.get(method)
    }

    fn backoff(&self) -> ExponentialBuilder {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.max_retries);
        if self.jitter {
            backoff.with_jitter()
        } else {
            backoff
        }
    }
}

impl<C: Containerizer> Layer<C> for RetryLayer {
    type Service = Retrying<C>;

    fn layer(&self, inner: C) -> Retrying<C> {
        Retrying {
            inner,
            policy: *self,
        }
    }
}

/// A containerizer whose calls are retried; made by [`RetryLayer`].
#[derive(Debug)]
pub struct Retrying<C> {
    inner: C,
    policy: RetryLayer,
}

impl<C: Containerizer> Retrying<C> {
    /// Makes the call; a temporary failure of a retried method goes on to [`Retrying::again`].
    /// The retry loop is boxed, so a call in flight (a `wait` lasting hours) holds only the call
    /// itself.
    async fn retried<T, F, Fut>(
        &self,
        method: Method,
        subject: &(dyn std::fmt::Display + Sync),
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        match call().await {
            Err(e) if e.is_temporary() && self.policy.retries(method) => {
                Box::pin(self.again(method, subject, call, e)).await
            }
            other => other,
        }
    }

    /// While the call fails with a temporary error, waits the next backoff delay and makes it
    /// again; once the backoff is spent, the error is persistent.
    async fn again<T, F, Fut>(
        &self,
        method: Method,
        subject: &(dyn std::fmt::Display + Sync),
        mut call: F,
        mut error: crate::Error,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut delays = self.policy.backoff().build();
        loop {
            let Some(delay) = delays.next() else {
                return Err(error.set_persistent());
            };
            tracing::warn!(
                backend = self.inner.name(),
                method = method.as_str(),
                %subject,
                error = %error,
                ?delay,
                "retrying after a temporary error"
            );
            tokio::time::sleep(delay).await;
            match call().await {
                Err(e) if e.is_temporary() => error = e,
                other => return other,
            }
        }
    }
}

#[async_trait]
impl<C: Containerizer> LayeredContainerizer for Retrying<C> {
    type Inner = C;

    fn inner(&self) -> &C {
        &self.inner
    }

    async fn start(&self, id: &ContainerId) -> Result<()> {
        self.retried(Method::Start, id, || self.inner.start(id))
            .await
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        self.retried(Method::Wait, id, || self.inner.wait(id)).await
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        self.retried(Method::Stop, id, || self.inner.stop(id, grace))
            .await
    }

    async fn remove(&self, id: &ContainerId, force: bool) -> Result<()> {
        self.retried(Method::Remove, id, || self.inner.remove(id, force))
            .await
    }

    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        self.retried(Method::Inspect, id, || self.inner.inspect(id))
            .await
    }

    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogChunks> {
        self.retried(Method::Logs, id, || self.inner.logs(id, options))
            .await
    }

    async fn list_owned(&self, executor: &ExecutorId) -> Result<Vec<OwnedContainer>> {
        self.retried(Method::ListOwned, executor, || {
            self.inner.list_owned(executor)
        })
        .await
    }

    async fn stats(&self, id: &ContainerId, interval: Duration) -> Result<UsageStream> {
        self.retried(Method::Stats, id, || self.inner.stats(id, interval))
            .await
    }
}
