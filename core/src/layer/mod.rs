//! Layers: cross-cutting behaviour (deadlines, retries, tracing, capability checks, injected
//! faults) wrapped around any [`Containerizer`], the way tower layers wrap a service and
//! opendal layers wrap a storage service.
//!
//! A [`Layer`] turns a containerizer into another. Most wrappers change one or two methods and
//! pass the rest through: they implement [`LayeredContainerizer`], whose every method forwards
//! to [`LayeredContainerizer::inner`] by default, and get [`Containerizer`] from it. `Arc<T>`
//! and `Box<T>` are such wrappers too: they add nothing.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use async_trait::async_trait;
//! use hoist_core::layer::{Layer, LayeredContainerizer};
//! use hoist_core::{ContainerId, ContainerSpec, Containerizer, Owner, Result};
//!
//! /// Counts creates; everything else passes through.
//! #[derive(Debug)]
//! struct Counted<C> { inner: C, creates: Arc<AtomicUsize> }
//!
//! #[async_trait]
//! impl<C: Containerizer> LayeredContainerizer for Counted<C> {
//!     type Inner = C;
//!     fn inner(&self) -> &C { &self.inner }
//!     async fn create(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId> {
//!         self.creates.fetch_add(1, Ordering::Relaxed);
//!         self.inner.create(owner, spec).await
//!     }
//! }
//!
//! struct CountLayer(Arc<AtomicUsize>);
//!
//! impl<C: Containerizer> Layer<C> for CountLayer {
//!     type Service = Counted<C>;
//!     fn layer(&self, inner: C) -> Counted<C> {
//!         Counted { inner, creates: self.0.clone() }
//!     }
//! }
//! ```

mod capability;
mod fault;
mod method;
mod retry;
mod timeout;
mod trace;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::capabilities::Capabilities;
use crate::container::{
    ContainerId, ContainerInfo, ExecOutput, ExecutorId, ExitStatus, LogOptions, OwnedContainer,
    Owner,
};
use crate::containerizer::{Containerizer, LogChunks};
use crate::error::Result;
use crate::observe::UsageStream;
use crate::session::{ExecRequest, ExecSession};
use crate::task::ContainerSpec;

pub(crate) use capability::check_spec;
pub use capability::{CapabilityLayer, Checked};
pub use fault::{Fault, FaultLayer, Faulty};
pub use method::Method;
pub use retry::{RetryLayer, Retrying};
pub use timeout::{TimeoutLayer, Timeouts};
pub use trace::{Traced, TracingLayer};

/// Wraps a service (a [`Containerizer`], usually) in another that adds behaviour.
///
/// [`ExecutorBuilder::layer`](crate::ExecutorBuilder::layer) stacks layers on the executor's
/// containerizer: the layer added last is outermost, so it sees every call first.
pub trait Layer<S> {
    /// The wrapped service.
    type Service;

    /// Wraps `inner`.
    fn layer(&self, inner: S) -> Self::Service;
}

/// A containerizer that wraps another and forwards every method to it unless it overrides the
/// method. Implementing this trait implements [`Containerizer`].
#[async_trait]
pub trait LayeredContainerizer: Send + Sync + Debug + 'static {
    /// The wrapped containerizer.
    type Inner: Containerizer + ?Sized;

    /// The wrapped containerizer.
    fn inner(&self) -> &Self::Inner;

    /// See [`Containerizer::name`].
    fn name(&self) -> &str {
        self.inner().name()
    }

    /// See [`Containerizer::capabilities`].
    fn capabilities(&self) -> Capabilities {
        self.inner().capabilities()
    }

    /// See [`Containerizer::create`].
    async fn create(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId> {
        self.inner().create(owner, spec).await
    }

    /// See [`Containerizer::start`].
    async fn start(&self, id: &ContainerId) -> Result<()> {
        self.inner().start(id).await
    }

    /// See [`Containerizer::wait`].
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        self.inner().wait(id).await
    }

    /// See [`Containerizer::stop`].
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        self.inner().stop(id, grace).await
    }

    /// See [`Containerizer::remove`].
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<()> {
        self.inner().remove(id, force).await
    }

    /// See [`Containerizer::inspect`].
    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        self.inner().inspect(id).await
    }

    /// See [`Containerizer::exec`].
    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        self.inner().exec(id, argv, timeout).await
    }

    /// See [`Containerizer::logs`].
    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogChunks> {
        self.inner().logs(id, options).await
    }

    /// See [`Containerizer::list_owned`].
    async fn list_owned(&self, executor: &ExecutorId) -> Result<Vec<OwnedContainer>> {
        self.inner().list_owned(executor).await
    }

    /// See [`Containerizer::stats`].
    async fn stats(&self, id: &ContainerId, interval: Duration) -> Result<UsageStream> {
        self.inner().stats(id, interval).await
    }

    /// See [`Containerizer::signal`].
    async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        self.inner().signal(id, signal).await
    }

    /// See [`Containerizer::exec_stream`].
    async fn exec_stream(&self, id: &ContainerId, request: ExecRequest) -> Result<ExecSession> {
        self.inner().exec_stream(id, request).await
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<L: LayeredContainerizer> Containerizer for L {
    fn name(&self) -> &str {
        LayeredContainerizer::name(self)
    }
    fn capabilities(&self) -> Capabilities {
        LayeredContainerizer::capabilities(self)
    }
    async fn create(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId> {
        LayeredContainerizer::create(self, owner, spec).await
    }
    async fn start(&self, id: &ContainerId) -> Result<()> {
        LayeredContainerizer::start(self, id).await
    }
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        LayeredContainerizer::wait(self, id).await
    }
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        LayeredContainerizer::stop(self, id, grace).await
    }
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<()> {
        LayeredContainerizer::remove(self, id, force).await
    }
    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        LayeredContainerizer::inspect(self, id).await
    }
    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        LayeredContainerizer::exec(self, id, argv, timeout).await
    }
    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogChunks> {
        LayeredContainerizer::logs(self, id, options).await
    }
    async fn list_owned(&self, executor: &ExecutorId) -> Result<Vec<OwnedContainer>> {
        LayeredContainerizer::list_owned(self, executor).await
    }
    async fn stats(&self, id: &ContainerId, interval: Duration) -> Result<UsageStream> {
        LayeredContainerizer::stats(self, id, interval).await
    }
    async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        LayeredContainerizer::signal(self, id, signal).await
    }
    async fn exec_stream(&self, id: &ContainerId, request: ExecRequest) -> Result<ExecSession> {
        LayeredContainerizer::exec_stream(self, id, request).await
    }
}

/// `Arc<C>` is the containerizer `C`. (It implements [`Containerizer`] itself rather than
/// [`LayeredContainerizer`], so calling a method on an `Arc` is never ambiguous where both
/// traits are in scope.)
#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<C: Containerizer + ?Sized> Containerizer for Arc<C> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    async fn create(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId> {
        (**self).create(owner, spec).await
    }
    async fn start(&self, id: &ContainerId) -> Result<()> {
        (**self).start(id).await
    }
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        (**self).wait(id).await
    }
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        (**self).stop(id, grace).await
    }
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<()> {
        (**self).remove(id, force).await
    }
    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        (**self).inspect(id).await
    }
    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        (**self).exec(id, argv, timeout).await
    }
    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogChunks> {
        (**self).logs(id, options).await
    }
    async fn list_owned(&self, executor: &ExecutorId) -> Result<Vec<OwnedContainer>> {
        (**self).list_owned(executor).await
    }
    async fn stats(&self, id: &ContainerId, interval: Duration) -> Result<UsageStream> {
        (**self).stats(id, interval).await
    }
    async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        (**self).signal(id, signal).await
    }
    async fn exec_stream(&self, id: &ContainerId, request: ExecRequest) -> Result<ExecSession> {
        (**self).exec_stream(id, request).await
    }
}

/// `Box<C>` is a containerizer that adds nothing to `C`.
#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<C: Containerizer + ?Sized> LayeredContainerizer for Box<C> {
    type Inner = C;
    fn inner(&self) -> &C {
        self
    }
    fn name(&self) -> &str {
        (**self).name()
    }
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    async fn create(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId> {
        (**self).create(owner, spec).await
    }
    async fn start(&self, id: &ContainerId) -> Result<()> {
        (**self).start(id).await
    }
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        (**self).wait(id).await
    }
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        (**self).stop(id, grace).await
    }
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<()> {
        (**self).remove(id, force).await
    }
    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        (**self).inspect(id).await
    }
    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        (**self).exec(id, argv, timeout).await
    }
    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogChunks> {
        (**self).logs(id, options).await
    }
    async fn list_owned(&self, executor: &ExecutorId) -> Result<Vec<OwnedContainer>> {
        (**self).list_owned(executor).await
    }
    async fn stats(&self, id: &ContainerId, interval: Duration) -> Result<UsageStream> {
        (**self).stats(id, interval).await
    }
    async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        (**self).signal(id, signal).await
    }
    async fn exec_stream(&self, id: &ContainerId, request: ExecRequest) -> Result<ExecSession> {
        (**self).exec_stream(id, request).await
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests;
