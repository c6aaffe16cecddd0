//! One check's scratch space.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;

use super::ConformanceTarget;
use crate::container::{ContainerId, ExecutorId, LogOptions, LogStream, Owner};
use crate::containerizer::Containerizer;
use crate::error::{Error, ErrorKind, Result};
use crate::task::{ContainerSpec, TaskId};

pub(super) fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// One check's scratch space: a fresh executor id, the containers it created (removed at the
/// end whatever happened) and the methods that turn surprises into errors naming the check.
pub(super) struct Scratch<'a> {
    pub(super) c: &'a dyn Containerizer,
    pub(super) t: &'a ConformanceTarget,
    pub(super) check: &'static str,
    pub(super) executor: ExecutorId,
    pub(super) created: Mutex<Vec<ContainerId>>,
}

impl<'a> Scratch<'a> {
    pub(super) fn new(
        c: &'a dyn Containerizer,
        t: &'a ConformanceTarget,
        check: &'static str,
    ) -> Self {
        Scratch {
            c,
            t,
            check,
            executor: ExecutorId::new(format!("conformance-{}", unique())),
            created: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn fail(&self, message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Backend, message)
            .with_operation("conformance")
            .with_context("check", self.check)
            .with_context("backend", self.c.name())
    }

    pub(super) fn ensure(&self, condition: bool, message: impl Into<String>) -> Result<()> {
        if condition {
            Ok(())
        } else {
            Err(self.fail(message))
        }
    }

    /// Runs `fut` under the target's deadline; its error gains the check's name.
    pub(super) async fn within<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.t.timeout, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(e
                .with_context("check", self.check)
                .with_context("step", what)),
            Err(_) => Err(self.fail(format!("{what} did not finish within {:?}", self.t.timeout))),
        }
    }

    pub(super) async fn create(&self, task: &str, spec: &ContainerSpec) -> Result<ContainerId> {
        let owner = Owner {
            executor_id: self.executor.clone(),
            task_id: TaskId::new(task),
        };
        self.create_as(&owner, spec).await
    }

    pub(super) async fn create_as(
        &self,
        owner: &Owner,
        spec: &ContainerSpec,
    ) -> Result<ContainerId> {
        let id = self.within("create", self.c.create(owner, spec)).await?;
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id.clone());
        Ok(id)
    }

    /// Everything the container wrote on stdout, read with `options`.
    pub(super) async fn read_stdout(
        &self,
        id: &ContainerId,
        options: LogOptions,
    ) -> Result<String> {
        let mut chunks = self.c.logs(id, options).await?;
        let mut out = Vec::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            if chunk.stream == LogStream::Stdout {
                out.extend_from_slice(&chunk.data);
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Polls the logs until `marker` shows on stdout.
    pub(super) async fn wait_for_output(&self, id: &ContainerId, marker: &str) -> Result<()> {
        let deadline = Instant::now() + self.t.timeout;
        loop {
            let stdout = self
                .within("logs", self.read_stdout(id, LogOptions::default()))
                .await?;
            if stdout.contains(marker) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.fail(format!("the container never printed {marker:?}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Removes every container the check created, then returns the check's result (or the
    /// first cleanup failure when the check itself passed).
    pub(super) async fn finish(self, result: Result<()>) -> Result<()> {
        let created = std::mem::take(&mut *self.created.lock().unwrap_or_else(|e| e.into_inner()));
        let mut cleanup = Ok(());
        for id in created {
            let removed = tokio::time::timeout(self.t.timeout, self.c.remove(&id, true)).await;
            let removed = match removed {
                Ok(r) => r,
                Err(_) => Err(self.fail(format!(
                    "remove of {id} did not finish within {:?}",
                    self.t.timeout
                ))),
            };
            if let (Err(e), Ok(())) = (removed, &cleanup) {
                cleanup = Err(e
                    .with_context("check", self.check)
                    .with_context("step", "cleanup"));
            }
        }
        result.and(cleanup)
    }
}
