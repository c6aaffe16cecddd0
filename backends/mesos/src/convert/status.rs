//! A status out: the Mesos state, reason and timestamp of an engine status.

use std::time::{SystemTime, UNIX_EPOCH};

use hoist_core::{Reason, TaskState};

use crate::wire;

/// The Mesos state of an engine state.
pub fn task_state(state: TaskState) -> wire::TaskState {
    match state {
        TaskState::Starting => wire::TaskState::Starting,
        TaskState::Running => wire::TaskState::Running,
        TaskState::Killing => wire::TaskState::Killing,
        TaskState::Finished => wire::TaskState::Finished,
        TaskState::Failed => wire::TaskState::Failed,
        TaskState::Killed => wire::TaskState::Killed,
        TaskState::Error => wire::TaskState::Error,
        TaskState::Lost => wire::TaskState::Lost,
    }
}

/// The Mesos reason of an engine status in Mesos state `state`.
///
/// Every terminal state gets a reason; a non-terminal one only when Mesos has a name for why
/// it was sent (a health-check change, a kill before the task ran, a shutdown).
/// `was_running` says whether the task had been reported running: a kill before that is
/// `REASON_TASK_KILLED_DURING_LAUNCH`.
///
/// A clean exit, a failed exit, a kill after launch and a lost exit status end without a
/// reason in Mesos's own executors, and every protobuf reader then reads the enum's zero value,
/// `REASON_COMMAND_EXECUTOR_FAILED`. hoist sends that value explicitly, so the field is present
/// and reads exactly as Mesos's executors read; the message says what happened.
///
/// ```
/// use hoist_core::Reason;
/// use hoist_mesos::convert::reason;
/// use hoist_mesos::wire::{Reason as MesosReason, TaskState};
///
/// assert_eq!(
///     reason(Some(Reason::MemoryLimit), TaskState::Failed, true),
///     Some(MesosReason::ContainerLimitationMemory),
/// );
/// assert_eq!(
///     reason(Some(Reason::CommandExited), TaskState::Finished, true),
///     Some(MesosReason::CommandExecutorFailed),
/// );
/// assert_eq!(reason(None, TaskState::Running, false), None);
/// ```
pub fn reason(
    reason: Option<Reason>,
    state: wire::TaskState,
    was_running: bool,
) -> Option<wire::Reason> {
    let named = match reason {
        Some(Reason::MemoryLimit) => Some(wire::Reason::ContainerLimitationMemory),
        Some(Reason::HealthCheckStatusUpdated | Reason::HealthCheckFailed) => {
            Some(wire::Reason::TaskHealthCheckStatusUpdated)
        }
        Some(Reason::KillRequested) if !was_running => Some(wire::Reason::TaskKilledDuringLaunch),
        Some(Reason::ExecutorShutdown) => Some(wire::Reason::ExecutorTerminated),
        Some(Reason::HookFailed | Reason::LaunchFailed) => {
            Some(wire::Reason::ContainerLaunchFailed)
        }
        Some(Reason::InvalidSpec) => Some(wire::Reason::TaskInvalid),
        Some(Reason::ContainerGone) => Some(wire::Reason::ContainerPreempted),
        // A command's own exit, a kill after launch, a lost exit status, a recovered task.
        _ => None,
    };
    named.or_else(|| {
        state
            .is_terminal()
            .then_some(wire::Reason::CommandExecutorFailed)
    })
}

/// Seconds since the epoch, as `TaskStatus.timestamp` carries them.
pub fn timestamp(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_terminal_state_has_a_reason() {
        use wire::TaskState as S;
        let cases = [
            (
                Some(Reason::MemoryLimit),
                S::Failed,
                true,
                Some(wire::Reason::ContainerLimitationMemory),
            ),
            (
                Some(Reason::KillRequested),
                S::Killed,
                false,
                Some(wire::Reason::TaskKilledDuringLaunch),
            ),
            (
                Some(Reason::KillRequested),
                S::Killed,
                true,
                Some(wire::Reason::CommandExecutorFailed),
            ),
            (Some(Reason::KillRequested), S::Killing, true, None),
            (
                Some(Reason::CommandExited),
                S::Finished,
                true,
                Some(wire::Reason::CommandExecutorFailed),
            ),
            (
                Some(Reason::CommandExited),
                S::Failed,
                true,
                Some(wire::Reason::CommandExecutorFailed),
            ),
            (
                Some(Reason::BackendFailed),
                S::Lost,
                true,
                Some(wire::Reason::CommandExecutorFailed),
            ),
            (
                None,
                S::Failed,
                true,
                Some(wire::Reason::CommandExecutorFailed),
            ),
            (Some(Reason::Recovered), S::Running, true, None),
            (
                Some(Reason::HealthCheckFailed),
                S::Killed,
                true,
                Some(wire::Reason::TaskHealthCheckStatusUpdated),
            ),
            (
                Some(Reason::HealthCheckStatusUpdated),
                S::Running,
                true,
                Some(wire::Reason::TaskHealthCheckStatusUpdated),
            ),
            (
                Some(Reason::ExecutorShutdown),
                S::Killed,
                true,
                Some(wire::Reason::ExecutorTerminated),
            ),
            (
                Some(Reason::LaunchFailed),
                S::Failed,
                false,
                Some(wire::Reason::ContainerLaunchFailed),
            ),
            (
                Some(Reason::HookFailed),
                S::Failed,
                false,
                Some(wire::Reason::ContainerLaunchFailed),
            ),
            (
                Some(Reason::InvalidSpec),
                S::Error,
                false,
                Some(wire::Reason::TaskInvalid),
            ),
            (
                Some(Reason::ContainerGone),
                S::Lost,
                true,
                Some(wire::Reason::ContainerPreempted),
            ),
        ];
        for (engine, state, was_running, mesos) in cases {
            assert_eq!(
                reason(engine, state, was_running),
                mesos,
                "{engine:?} {state} (was running: {was_running})"
            );
        }
    }
}
