//! What a caller holds of the tasks it launched: a [`TaskHandle`] per task, and the shared
//! [`StatusStream`] of every task.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::broadcast;

use super::cell::StatusCell;
use super::supervisor::{Control, KillOrder};
use crate::status::{Reason, TaskState, TaskStatus};
use crate::task::TaskId;

/// One launched task: its latest status, a stream of its changes, its terminal status, and a
/// way to kill it. Dropping the handle leaves the task running.
///
/// A handle keeps only the task's latest status: a reader slower than the task sees the newest
/// status, not every one in between (the terminal status is never missed, since it is the
/// last). [`Executor::statuses`](super::Executor::statuses) has every status of every task.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> hoist_core::Result<()> {
/// use std::time::Duration;
/// use hoist_core::testing::{FakeContainerizer, Script};
/// use hoist_core::{ContainerSpec, Executor, TaskSpec, TaskState};
///
/// let fake = FakeContainerizer::new();
/// fake.default_script(Script::exits(3, Duration::from_millis(10)));
/// let executor = Executor::builder(std::sync::Arc::new(fake)).build()?;
/// let task = executor.launch(TaskSpec::new("job", ContainerSpec::command(["job"])))?;
/// let ended = task.wait().await;
/// assert_eq!(ended.state, TaskState::Failed);
/// assert_eq!(ended.message.as_deref(), Some("exited with code 3"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TaskHandle {
    id: TaskId,
    status: Arc<StatusCell>,
    control: Arc<Control>,
}

impl TaskHandle {
    pub(super) fn new(id: TaskId, status: Arc<StatusCell>, control: Arc<Control>) -> Self {
        TaskHandle {
            id,
            status,
            control,
        }
    }

    /// The task's id.
    pub fn id(&self) -> &TaskId {
        &self.id
    }

    /// The task's latest status.
    pub fn status(&self) -> TaskStatus {
        self.status.get()
    }

    /// Waits for the first status (the current one included) that `accept` takes, and returns
    /// it. A terminal status is returned whether or not `accept` takes it, since nothing can
    /// follow it.
    pub async fn wait_for(&self, mut accept: impl FnMut(&TaskStatus) -> bool) -> TaskStatus {
        let mut version = None;
        loop {
            let seen = self.status.newer_than(version).await;
            if accept(&seen.status) || seen.status.state.is_terminal() {
                return seen.status;
            }
            if seen.closed {
                return ended_without_status(seen.status);
            }
            version = Some(seen.version);
        }
    }

    /// Waits for the task's terminal status. With the executor's default, the task's container
    /// has been removed by then.
    pub async fn wait(&self) -> TaskStatus {
        self.wait_for(|_| false).await
    }

    /// The task's statuses: the current one, then each change, ending after the terminal one.
    /// A slow reader sees the latest status rather than every one in between.
    pub fn statuses(&self) -> impl Stream<Item = TaskStatus> + Send + 'static {
        let cell = self.status.clone();
        futures::stream::unfold(
            (cell, None, false),
            |(cell, version, done): (Arc<StatusCell>, Option<u64>, bool)| async move {
                if done {
                    return None;
                }
                let seen = cell.newer_than(version).await;
                let next = if seen.closed && Some(seen.version) == version {
                    ended_without_status(seen.status)
                } else {
                    seen.status
                };
                let done = next.state.is_terminal();
                Some((next, (cell, Some(seen.version), done)))
            },
        )
    }

    /// Kills the task: pre-stop hooks, TERM, KILL after `grace` (default: the task's kill
    /// policy), post-stop hooks, then a `killed` status. Killing an ended task does nothing.
    pub fn kill(&self, grace: Option<Duration>) {
        if !self.status.read(|s| s.state.is_terminal()) {
            self.control.kill(KillOrder {
                grace,
                reason: Reason::KillRequested,
            });
        }
    }
}

/// The last status when it is terminal, or, when the task's supervisor ended without a terminal
/// status (it cannot unless it panicked), a `lost` status saying so.
fn ended_without_status(last: TaskStatus) -> TaskStatus {
    if last.state.is_terminal() {
        return last;
    }
    TaskStatus::new(last.task_id, TaskState::Lost)
        .with_reason(Reason::BackendFailed)
        .with_message("the task's supervisor ended without a terminal status")
}

/// The statuses of every task of an executor, in the order they happened, from the moment it
/// was made ([`Executor::statuses`](super::Executor::statuses)). It ends once the executor has
/// been dropped and every task has ended.
///
/// Lag policy: statuses wait in a buffer of the executor's `status_capacity` (default 1024).
/// A subscriber that falls further behind skips the oldest statuses; [`StatusStream::missed`]
/// counts them and a warning is logged. Supervisors never wait for a subscriber, and nothing
/// grows without bound. A caller that must see every task's end follows it through its
/// [`TaskHandle`].
#[derive(Debug)]
pub struct StatusStream {
    rx: broadcast::Receiver<TaskStatus>,
    missed: u64,
}

impl StatusStream {
    pub(super) fn new(rx: broadcast::Receiver<TaskStatus>) -> Self {
        StatusStream { rx, missed: 0 }
    }

    /// The next status, or `None` once the stream has ended. Cancel-safe.
    pub async fn recv(&mut self) -> Option<TaskStatus> {
        loop {
            match self.rx.recv().await {
                Ok(status) => return Some(status),
                Err(broadcast::error::RecvError::Lagged(n)) => self.lagged(n),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next status if one is already waiting.
    pub fn try_recv(&mut self) -> Option<TaskStatus> {
        loop {
            match self.rx.try_recv() {
                Ok(status) => return Some(status),
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.lagged(n),
                Err(_) => return None,
            }
        }
    }

    /// The statuses as a [`Stream`].
    pub fn into_stream(self) -> impl Stream<Item = TaskStatus> + Send + 'static {
        futures::stream::unfold(self, |mut this| async move {
            let status = this.recv().await?;
            Some((status, this))
        })
    }

    /// How many statuses this subscriber skipped because it fell too far behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    fn lagged(&mut self, n: u64) {
        self.missed += n;
        tracing::warn!(
            skipped = n,
            "a status subscriber fell behind and skipped statuses"
        );
    }
}
