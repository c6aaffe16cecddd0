//! Task events: what happened to a task besides its state changes (image pulls, each hook
//! phase and how long it took, failed health probes, OOM kills), as Nomad's TaskEvents tell it.
//!
//! The engine sends them on [`Executor::events`](crate::Executor::events). A backend sends its
//! own (image pull progress) with [`emit`] while it serves an engine call: the engine runs each
//! call of a task inside that task's event scope, so the backend needs no handle of its own.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::task::TaskId;

/// What kind of thing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskEventKind {
    /// The backend began pulling the task's image.
    ImagePullStarted,
    /// A pull made progress (`details`: `layer`, `status`, `current`, `total` where known).
    ImagePullProgress,
    /// The image is present.
    ImagePulled,
    /// The container was created (`details`: `container`).
    Created,
    /// The container was started.
    Started,
    /// A hook ran one phase (`details`: `hook`, `phase`, `duration_ms`, `outcome`).
    HookPhase,
    /// A health probe failed (`details`: `consecutive`; the message is the reason).
    HealthProbeFailed,
    /// A task was taken over from an earlier executor after a restart.
    Restarted,
    /// The kernel killed the container for exceeding its memory limit.
    OutOfMemory,
}

impl TaskEventKind {
    /// The snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskEventKind::ImagePullStarted => "image_pull_started",
            TaskEventKind::ImagePullProgress => "image_pull_progress",
            TaskEventKind::ImagePulled => "image_pulled",
            TaskEventKind::Created => "created",
            TaskEventKind::Started => "started",
            TaskEventKind::HookPhase => "hook_phase",
            TaskEventKind::HealthProbeFailed => "health_probe_failed",
            TaskEventKind::Restarted => "restarted",
            TaskEventKind::OutOfMemory => "out_of_memory",
        }
    }
}

impl fmt::Display for TaskEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEvent {
    /// The task.
    pub task: TaskId,
    /// When it happened.
    pub time: SystemTime,
    /// What happened.
    pub kind: TaskEventKind,
    /// A line a person can read.
    pub message: String,
    /// Facts by name (see each kind).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

impl TaskEvent {
    /// An event of `kind` for `task`, now.
    pub fn new(task: TaskId, kind: TaskEventKind, message: impl Into<String>) -> Self {
        TaskEvent {
            task,
            time: SystemTime::now(),
            kind,
            message: message.into(),
            details: BTreeMap::new(),
        }
    }

    /// Adds a detail.
    pub fn with(mut self, key: &str, value: impl fmt::Display) -> Self {
        self.details.insert(key.to_owned(), value.to_string());
        self
    }
}

impl fmt::Display for TaskEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.task, self.kind, self.message)
    }
}

/// Every event of every task of an executor from the moment it was made. The lag policy is the
/// status stream's: a subscriber that falls more than the executor's `status_capacity` behind
/// skips the oldest events and [`EventStream::missed`] counts them.
/// Events are shared between subscribers (`Arc`), so each costs one allocation however many
/// listen.
#[derive(Debug)]
pub struct EventStream {
    rx: broadcast::Receiver<Arc<TaskEvent>>,
    missed: u64,
}

impl EventStream {
    pub(crate) fn new(rx: broadcast::Receiver<Arc<TaskEvent>>) -> Self {
        EventStream { rx, missed: 0 }
    }

    /// The next event, or `None` once the executor is gone. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Arc<TaskEvent>> {
        loop {
            match self.rx.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(n)) => self.missed += n,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next event if one is already waiting.
    pub fn try_recv(&mut self) -> Option<Arc<TaskEvent>> {
        loop {
            match self.rx.try_recv() {
                Ok(event) => return Some(event),
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.missed += n,
                Err(_) => return None,
            }
        }
    }

    /// How many events this subscriber skipped because it fell too far behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

/// Where the events of the task whose call is being served go.
#[derive(Debug, Clone)]
pub(crate) struct EventScope {
    pub(crate) task: TaskId,
    pub(crate) sink: broadcast::Sender<Arc<TaskEvent>>,
}

tokio::task_local! {
    static SCOPE: EventScope;
}

impl EventScope {
    /// Sends `event` if anyone listens.
    pub(crate) fn send(&self, event: TaskEvent) {
        if self.sink.receiver_count() > 0 {
            let _ = self.sink.send(Arc::new(event));
        }
    }

    /// Runs `fut` with this scope, so [`emit`] inside it reaches this task's listeners.
    pub(crate) async fn run<F: Future>(self, fut: F) -> F::Output {
        SCOPE.scope(self, fut).await
    }
}

/// Sends an event for the task whose engine call is being served (a backend's image pull
/// inside `create`, say); does nothing outside such a call or when nobody listens.
///
/// ```
/// use hoist_core::observe::{TaskEventKind, emit};
///
/// // Inside a backend's `create`:
/// emit(TaskEventKind::ImagePullStarted, "pulling busybox:1.36", &[("image", "busybox:1.36")]);
/// ```
pub fn emit(kind: TaskEventKind, message: impl Into<String>, details: &[(&str, &str)]) {
    let _ = SCOPE.try_with(|scope| {
        if scope.sink.receiver_count() == 0 {
            return;
        }
        let mut event = TaskEvent::new(scope.task.clone(), kind, message);
        for (key, value) in details {
            event.details.insert((*key).to_owned(), (*value).to_owned());
        }
        scope.send(event);
    });
}

/// Whether anyone listens to the events of the call being served: a backend checks before doing
/// work only events need (reading pull progress).
pub fn listening() -> bool {
    SCOPE
        .try_with(|scope| scope.sink.receiver_count() > 0)
        .unwrap_or(false)
}
