//! The [`Containerizer`] trait: the seam between the engine and a runtime (process, Docker, pod).

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::capabilities::Capabilities;
use crate::container::{
    ContainerId, ContainerInfo, ExecOutput, ExecutorId, ExitStatus, LogChunk, LogOptions,
    OwnedContainer, Owner,
};
use crate::error::{Error, ErrorKind, Result};
use crate::observe::UsageStream;
use crate::session::{ExecRequest, ExecSession};
use crate::task::ContainerSpec;

/// A stream of container output.
pub type LogChunks = BoxStream<'static, Result<LogChunk>>;

/// Runs containers. Implementations are used as `Arc<dyn Containerizer>`.
///
/// What the backend can honour is declared by [`Containerizer::capabilities`]; the engine checks
/// every spec against it ([`Capabilities::check`]) before `create`, so a backend need not
/// refuse fields itself. Wrappers that add behaviour (deadlines, retries, tracing) are
/// [layers](crate::layer).
///
/// Every method names the container by the id `create` returned. Unknown ids are
/// [`ErrorKind::NotFound`]; what the backend does not support is [`ErrorKind::Unsupported`]
/// (see [`Containerizer::capabilities`]). `stop` and `remove` are idempotent; `wait` may be
/// called any number of times, concurrently, and returns at once once the container has exited.
/// Every backend runs the conformance suite in `hoist_core::testing::conformance`.
///
/// ```
/// use std::time::Duration;
/// use async_trait::async_trait;
/// use hoist_core::{
///     Capabilities, ContainerId, ContainerInfo, ContainerSpec, ContainerState, Containerizer,
///     Error, ExecOutput, ExecutorId, ExitStatus, LogChunks, LogOptions, OwnedContainer, Owner,
///     Result,
/// };
///
/// /// A backend whose containers exit 0 as soon as they start.
/// #[derive(Debug)]
/// struct Instant;
///
/// #[async_trait]
/// impl Containerizer for Instant {
///     fn name(&self) -> &str { "instant" }
///     fn capabilities(&self) -> Capabilities { Capabilities::default() }
///     async fn create(&self, owner: &Owner, _: &ContainerSpec) -> Result<ContainerId> {
///         Ok(ContainerId::new(owner.task_id.as_str()))
///     }
///     async fn start(&self, _: &ContainerId) -> Result<()> { Ok(()) }
///     async fn wait(&self, _: &ContainerId) -> Result<ExitStatus> { Ok(ExitStatus::code(0)) }
///     async fn stop(&self, _: &ContainerId, _: Duration) -> Result<()> { Ok(()) }
///     async fn remove(&self, _: &ContainerId, _: bool) -> Result<()> { Ok(()) }
///     async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
///         Ok(ContainerInfo::new(id.clone(), ContainerState::Exited))
///     }
///     async fn exec(&self, _: &ContainerId, _: &[String], _: Duration) -> Result<ExecOutput> {
///         Err(Error::unsupported("instant", "exec"))
///     }
///     async fn logs(&self, _: &ContainerId, _: LogOptions) -> Result<LogChunks> {
///         Err(Error::unsupported("instant", "logs"))
///     }
///     async fn list_owned(&self, _: &ExecutorId) -> Result<Vec<OwnedContainer>> { Ok(vec![]) }
/// }
/// ```
#[async_trait]
pub trait Containerizer: Send + Sync + Debug + 'static {
    /// A short name for messages (`"process"`, `"docker"`).
    fn name(&self) -> &str;

    /// What this backend supports.
    fn capabilities(&self) -> Capabilities;

    /// Creates (but does not start) a container for `spec`, recording `owner` so that
    /// [`Containerizer::list_owned`] finds it later. Parts of the spec the backend cannot honour
    /// are an [`ErrorKind::Unsupported`] error, never silently dropped.
    async fn create(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId>;

    /// Starts a created container.
    async fn start(&self, id: &ContainerId) -> Result<()>;

    /// Waits for the container to exit and reports how. Returns at once if it already has.
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus>;

    /// Sends TERM, then KILL once `grace` has passed, and returns when the container has exited.
    /// Stopping an exited container succeeds.
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()>;

    /// Removes the container and what the backend kept for it. A running container needs
    /// `force` (which kills it). Removing a removed container succeeds.
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<()>;

    /// Reports state, pid, addresses and ports.
    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo>;

    /// Runs `argv` inside the running container and returns its output; it is killed and an
    /// [`ErrorKind::Timeout`] error returned once `timeout` passes.
    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput>;

    /// The container's output so far, and with `follow` what it writes until it exits.
    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogChunks>;

    /// Every container created by `executor`, running or exited, not yet removed.
    async fn list_owned(&self, executor: &ExecutorId) -> Result<Vec<OwnedContainer>>;

    /// The container's resource usage, one sample every `interval`, until it exits
    /// ([`Capabilities::stats`]). Figures the backend does not measure are `None`.
    async fn stats(&self, id: &ContainerId, interval: Duration) -> Result<UsageStream> {
        let _ = interval;
        Err(Error::unsupported(self.name(), "resource usage (stats)")
            .with_operation("stats")
            .with_context("container", id))
    }

    /// Sends `signal` (a Linux signal number: 1 is HUP) to the container's main process
    /// ([`Capabilities::signal`]). A container that has exited is [`ErrorKind::InvalidState`].
    async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        let _ = signal;
        Err(Error::unsupported(self.name(), "signals")
            .with_operation("signal")
            .with_context("container", id))
    }

    /// Runs a command interactively in the running container, with a standard input, a
    /// terminal and resizes where asked ([`Capabilities::exec_stream`], [`Capabilities::tty`]).
    async fn exec_stream(&self, id: &ContainerId, request: ExecRequest) -> Result<ExecSession> {
        let _ = request;
        Err(Error::unsupported(self.name(), "interactive exec")
            .with_operation("exec_stream")
            .with_context("container", id))
    }
}

/// Conveniences built on [`Containerizer`]'s primitives, for every containerizer.
#[async_trait]
pub trait ContainerizerExt: Containerizer {
    /// Waits for the container to exit, for at most `timeout`.
    async fn wait_timeout(&self, id: &ContainerId, timeout: Duration) -> Result<ExitStatus> {
        match tokio::time::timeout(timeout, self.wait(id)).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("container did not exit within {timeout:?}"),
            )
            .with_operation("wait")
            .with_context("container", id)),
        }
    }

    /// Creates, starts and waits for a container, for at most `timeout`, then removes it
    /// whatever happened.
    async fn run_to_completion(
        &self,
        owner: &Owner,
        spec: &ContainerSpec,
        timeout: Duration,
    ) -> Result<ExitStatus> {
        let id = self.create(owner, spec).await?;
        let result = async {
            self.start(&id).await?;
            self.wait_timeout(&id, timeout).await
        }
        .await;
        let removed = self.remove(&id, true).await;
        let status = result?;
        removed?;
        Ok(status)
    }
}

impl<T: Containerizer + ?Sized> ContainerizerExt for T {}
