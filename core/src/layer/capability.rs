//! [`CapabilityLayer`]: the capability check, for callers that drive a containerizer without
//! the engine.

use async_trait::async_trait;

use super::{Layer, LayeredContainerizer};
use crate::container::{ContainerId, ExecOutput, LogOptions, Owner};
use crate::containerizer::{Containerizer, LogChunks};
use crate::error::{Error, Result};
use crate::observe::UsageStream;
use crate::session::{ExecRequest, ExecSession};
use crate::task::ContainerSpec;

/// Refuses, before the backend sees them, a spec the backend cannot honour
/// ([`Capabilities::check`](crate::Capabilities::check)), and `exec`, `logs`, `stats`, `signal`
/// or `exec_stream` (with a terminal) on a backend without them. The executor runs the same check itself; this layer is for code that calls a
/// containerizer directly (hoist-compute's managers, a program of your own).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::sync::Arc;
/// use hoist_core::layer::{CapabilityLayer, Layer};
/// use hoist_core::testing::FakeContainerizer;
/// use hoist_core::{Capabilities, ContainerSpec, Containerizer, ErrorKind, Owner};
///
/// let fake = FakeContainerizer::new();
/// fake.set_capabilities(Capabilities::default()); // supports nothing
/// let checked = CapabilityLayer.layer(fake);
/// let mut spec = ContainerSpec::command(["server"]);
/// spec.resources.cpus = Some(1.0);
/// let owner = Owner { executor_id: "e".into(), task_id: "t".into() };
/// let err = checked.create(&owner, &spec).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Unsupported);
/// assert_eq!(err.context_value("field"), Some("resources.cpus"));
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CapabilityLayer;

impl<C: Containerizer> Layer<C> for CapabilityLayer {
    type Service = Checked<C>;

    fn layer(&self, inner: C) -> Checked<C> {
        Checked { inner }
    }
}

/// A containerizer that refuses what it cannot honour before calling the backend; made by
/// [`CapabilityLayer`].
#[derive(Debug)]
pub struct Checked<C> {
    inner: C,
}

/// Checks `spec` against `containerizer`'s capabilities, naming the backend and task in the
/// error: what the engine and [`CapabilityLayer`] run before `create`.
pub(crate) fn check_spec(
    containerizer: &(impl Containerizer + ?Sized),
    owner: &Owner,
    spec: &ContainerSpec,
) -> Result<()> {
    containerizer.capabilities().check(spec).map_err(|e| {
        e.with_operation("create")
            .with_context("backend", containerizer.name())
            .with_context("task", &owner.task_id)
    })
}

#[async_trait]
impl<C: Containerizer> LayeredContainerizer for Checked<C> {
    type Inner = C;

    fn inner(&self) -> &C {
        &self.inner
    }

    async fn create(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId> {
        check_spec(&self.inner, owner, spec)?;
        self.inner.create(owner, spec).await
    }

    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: std::time::Duration,
    ) -> Result<ExecOutput> {
        self.require(self.inner.capabilities().exec, "exec", id)?;
        self.inner.exec(id, argv, timeout).await
    }

    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogChunks> {
        self.require(self.inner.capabilities().logs, "logs", id)?;
        self.inner.logs(id, options).await
    }

    async fn stats(&self, id: &ContainerId, interval: std::time::Duration) -> Result<UsageStream> {
        self.require(self.inner.capabilities().stats, "stats", id)?;
        self.inner.stats(id, interval).await
    }

    async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        self.require(self.inner.capabilities().signal, "signal", id)?;
        self.inner.signal(id, signal).await
    }

    async fn exec_stream(&self, id: &ContainerId, request: ExecRequest) -> Result<ExecSession> {
        let caps = self.inner.capabilities();
        self.require(caps.exec_stream, "exec_stream", id)?;
        if request.tty {
            self.require(caps.tty, "exec_stream", id)?;
        }
        self.inner.exec_stream(id, request).await
    }
}

impl<C: Containerizer> Checked<C> {
    /// An [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) error unless `supported`.
    fn require(&self, supported: bool, what: &'static str, id: &ContainerId) -> Result<()> {
        if supported {
            Ok(())
        } else {
            Err(Error::unsupported(self.inner.name(), what)
                .with_operation(what)
                .with_context("container", id))
        }
    }
}
