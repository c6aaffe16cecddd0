//! [`FaultLayer`]: errors and delays injected into any containerizer, for tests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::method::Method;
use super::{Layer, LayeredContainerizer};
use crate::container::{
    ContainerId, ContainerInfo, ExecOutput, ExecutorId, ExitStatus, LogOptions, OwnedContainer,
    Owner,
};
use crate::containerizer::{Containerizer, LogChunks};
use crate::error::{Error, ErrorKind, ErrorStatus, Result};
use crate::observe::UsageStream;
use crate::session::{ExecRequest, ExecSession};
use crate::task::ContainerSpec;

/// What happens to one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The call fails with this error, without reaching the backend.
    Fail {
        /// The error's kind.
        kind: ErrorKind,
        /// Its message.
        message: String,
        /// Whether a retry can help.
        status: ErrorStatus,
    },
    /// The call waits this long (tokio time), then reaches the backend.
    Delay(Duration),
    /// The call never returns (until the caller gives up on it).
    Hang,
}

impl Fault {
    /// A failure of `kind`; temporary for timeouts and unreachable backends, as [`Error::new`]
    /// decides.
    pub fn fail(kind: ErrorKind, message: impl Into<String>) -> Self {
        let status = Error::new(kind, "").status();
        Fault::Fail {
            kind,
            message: message.into(),
            status,
        }
    }

    /// A temporary failure: the backend is unreachable for now.
    pub fn unavailable() -> Self {
        Fault::fail(
            ErrorKind::Unavailable,
            "injected: the backend is unreachable",
        )
    }
}

#[derive(Debug, Default)]
struct Faults {
    /// Faults for the next calls, one each, in order.
    queued: Vec<VecDeque<Fault>>,
    /// A fault for every call once the queue is empty.
    always: Vec<Option<Fault>>,
    calls: Vec<usize>,
}

/// Injects [`Fault`]s into the calls of the containerizer it wraps, per [`Method`]: queued
/// faults apply to the next calls one each, a standing fault to every call after them. The
/// layer is a handle: keep a clone to script faults while the executor runs, and to count
/// calls.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use hoist_core::layer::{Fault, FaultLayer, Layer, Method};
/// use hoist_core::testing::FakeContainerizer;
/// use hoist_core::{Containerizer, ErrorKind, ExecutorId};
///
/// let faults = FaultLayer::new();
/// let backend = faults.layer(FakeContainerizer::new());
/// faults.push(Method::ListOwned, Fault::unavailable());
/// let executor = ExecutorId::new("e");
/// assert_eq!(backend.list_owned(&executor).await.unwrap_err().kind(), ErrorKind::Unavailable);
/// assert!(backend.list_owned(&executor).await.unwrap().is_empty());
/// assert_eq!(faults.calls(Method::ListOwned), 2);
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct FaultLayer {
    faults: Arc<Mutex<Faults>>,
}

impl FaultLayer {
    /// A layer that injects nothing until told to.
    pub fn new() -> Self {
        let faults = Faults {
            queued: vec![VecDeque::new(); Method::ALL.len()],
            always: vec![None; Method::ALL.len()],
            calls: vec![0; Method::ALL.len()],
        };
        FaultLayer {
            faults: Arc::new(Mutex::new(faults)),
        }
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `fault` for the next call of `method` (after those already queued).
    pub fn push(&self, method: Method, fault: Fault) -> &Self {
        self.push_n(method, 1, fault)
    }

    /// Queues `fault` for the next `n` calls of `method`.
    pub fn push_n(&self, method: Method, n: usize, fault: Fault) -> &Self {
        let mut faults = self.faults();
        let queue = &mut faults.queued[method.index()];
        queue.extend(std::iter::repeat_n(fault, n));
        self
    }

    /// Applies `fault` to every call of `method` once its queue is empty (`None` stops it).
    pub fn always(&self, method: Method, fault: Option<Fault>) -> &Self {
        self.faults().always[method.index()] = fault;
        self
    }

    /// Forgets every fault, queued or standing.
    pub fn clear(&self) {
        let mut faults = self.faults();
        faults.queued.iter_mut().for_each(VecDeque::clear);
        faults.always.iter_mut().for_each(|f| *f = None);
    }

    /// How many calls of `method` were made through the layer.
    pub fn calls(&self, method: Method) -> usize {
        self.faults().calls[method.index()]
    }

    fn next(&self, method: Method) -> Option<Fault> {
        let mut faults = self.faults();
        let i = method.index();
        faults.calls[i] += 1;
        faults.queued[i]
            .pop_front()
            .or_else(|| faults.always[i].clone())
    }
}

impl<C: Containerizer> Layer<C> for FaultLayer {
    type Service = Faulty<C>;

    fn layer(&self, inner: C) -> Faulty<C> {
        Faulty {
            inner,
            faults: self.clone(),
        }
    }
}

/// A containerizer with injected faults; made by [`FaultLayer`].
#[derive(Debug)]
pub struct Faulty<C> {
    inner: C,
    faults: FaultLayer,
}

impl<C: Containerizer> Faulty<C> {
    /// Applies the next fault of `method`, then (unless it failed the call) makes the call.
    async fn call<T>(&self, method: Method, call: impl Future<Output = Result<T>>) -> Result<T> {
        match self.faults.next(method) {
            None => {}
            Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
            Some(Fault::Hang) => std::future::pending::<()>().await,
            Some(Fault::Fail {
                kind,
                message,
                status,
            }) => {
                return Err(Error::new(kind, message)
                    .set_status(status)
                    .with_operation(method.as_str())
                    .with_context("backend", self.inner.name()));
            }
        }
        call.await
    }
}

#[async_trait]
impl<C: Containerizer> LayeredContainerizer for Faulty<C> {
    type Inner = C;

    fn inner(&self) -> &C {
        &self.inner
    }

    async fn create(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId> {
        self.call(Method::Create, self.inner.create(owner, spec))
            .await
    }

    async fn start(&self, id: &ContainerId) -> Result<()> {
        self.call(Method::Start, self.inner.start(id)).await
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        self.call(Method::Wait, self.inner.wait(id)).await
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        self.call(Method::Stop, self.inner.stop(id, grace)).await
    }

    async fn remove(&self, id: &ContainerId, force: bool) -> Result<()> {
        self.call(Method::Remove, self.inner.remove(id, force))
            .await
    }

    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        self.call(Method::Inspect, self.inner.inspect(id)).await
    }

    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        self.call(Method::Exec, self.inner.exec(id, argv, timeout))
            .await
    }

    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogChunks> {
        self.call(Method::Logs, self.inner.logs(id, options)).await
    }

    async fn list_owned(&self, executor: &ExecutorId) -> Result<Vec<OwnedContainer>> {
        self.call(Method::ListOwned, self.inner.list_owned(executor))
            .await
    }

    async fn stats(&self, id: &ContainerId, interval: Duration) -> Result<UsageStream> {
        self.call(Method::Stats, self.inner.stats(id, interval))
            .await
    }

    async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        self.call(Method::Signal, self.inner.signal(id, signal))
            .await
    }

    async fn exec_stream(&self, id: &ContainerId, request: ExecRequest) -> Result<ExecSession> {
        self.call(Method::ExecStream, self.inner.exec_stream(id, request))
            .await
    }
}
