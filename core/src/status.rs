//! What happened to a task: [`TaskState`], [`TaskStatus`] and the [`Reason`] for a change.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::container::ContainerId;
use crate::task::TaskId;

/// The state of a task. Exactly one terminal state is ever reported per task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Being launched: hooks, create and start are under way.
    Starting,
    /// The container runs.
    Running,
    /// A kill is under way.
    Killing,
    /// Terminal: the container exited with code 0.
    Finished,
    /// Terminal: the container exited non-zero, was killed by a signal it was not asked to take,
    /// or the launch failed.
    Failed,
    /// Terminal: the task was killed on request (kill, health-check failure, shutdown).
    Killed,
    /// Terminal: the task could not be attempted (its spec is invalid or unsupported).
    Error,
    /// Terminal: the executor lost track of the container (removed behind its back, recovery failed).
    Lost,
}

impl TaskState {
    /// Whether no further state can follow.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Finished
                | TaskState::Failed
                | TaskState::Killed
                | TaskState::Error
                | TaskState::Lost
        )
    }

    /// The snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Killing => "killing",
            TaskState::Finished => "finished",
            TaskState::Failed => "failed",
            TaskState::Killed => "killed",
            TaskState::Error => "error",
            TaskState::Lost => "lost",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a status was sent. Frontends map these onto their own vocabulary (Mesos reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// The container's command exited on its own.
    CommandExited,
    /// The kernel killed the container for exceeding its memory limit.
    MemoryLimit,
    /// The health check result changed (healthy or unhealthy).
    HealthCheckStatusUpdated,
    /// The task was killed because its health check failed too many times.
    HealthCheckFailed,
    /// The task was killed on request.
    KillRequested,
    /// The executor is shutting down.
    ExecutorShutdown,
    /// A hook failed during launch; the message names it.
    HookFailed,
    /// The backend could not create or start the container.
    LaunchFailed,
    /// The task spec was rejected before anything was created.
    InvalidSpec,
    /// The container was killed or removed outside the executor.
    ContainerGone,
    /// The backend failed while the task ran (wait failed, connection lost).
    BackendFailed,
    /// The task was re-attached by a restarted executor.
    Recovered,
}

impl Reason {
    /// The snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::CommandExited => "command_exited",
            Reason::MemoryLimit => "memory_limit",
            Reason::HealthCheckStatusUpdated => "health_check_status_updated",
            Reason::HealthCheckFailed => "health_check_failed",
            Reason::KillRequested => "kill_requested",
            Reason::ExecutorShutdown => "executor_shutdown",
            Reason::HookFailed => "hook_failed",
            Reason::LaunchFailed => "launch_failed",
            Reason::InvalidSpec => "invalid_spec",
            Reason::ContainerGone => "container_gone",
            Reason::BackendFailed => "backend_failed",
            Reason::Recovered => "recovered",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One status change of one task, as it flows out of the executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// The task.
    pub task_id: TaskId,
    /// Its new state.
    pub state: TaskState,
    /// Why, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// A human-readable explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The health-check verdict, on tasks that have a check and once it is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// When the change happened.
    pub timestamp: SystemTime,
    /// The container, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<ContainerId>,
}

impl TaskStatus {
    /// A status for `task_id` in `state`, stamped now.
    pub fn new(task_id: TaskId, state: TaskState) -> Self {
        TaskStatus {
            task_id,
            state,
            reason: None,
            message: None,
            healthy: None,
            timestamp: SystemTime::now(),
            container_id: None,
        }
    }

    /// Sets the reason.
    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Sets the message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.task_id, self.state)?;
        if let Some(healthy) = self.healthy {
            f.write_str(if healthy { " healthy" } else { " unhealthy" })?;
        }
        if let Some(reason) = self.reason {
            write!(f, " ({reason})")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states() {
        let terminal: Vec<_> = [
            TaskState::Starting,
            TaskState::Running,
            TaskState::Killing,
            TaskState::Finished,
            TaskState::Failed,
            TaskState::Killed,
            TaskState::Error,
            TaskState::Lost,
        ]
        .into_iter()
        .filter(|s| s.is_terminal())
        .collect();
        assert_eq!(
            terminal,
            [
                TaskState::Finished,
                TaskState::Failed,
                TaskState::Killed,
                TaskState::Error,
                TaskState::Lost
            ]
        );
    }

    #[test]
    fn status_displays_as_one_line() {
        let mut status = TaskStatus::new("web".into(), TaskState::Running)
            .with_reason(Reason::HealthCheckStatusUpdated)
            .with_message("HTTP 200");
        status.healthy = Some(true);
        assert_eq!(
            status.to_string(),
            "web running healthy (health_check_status_updated): HTTP 200"
        );
    }
}
