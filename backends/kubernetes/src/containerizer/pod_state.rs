//! What a pod's status says about its container: how it ended, its phase, its owner.

use hoist_core::{ContainerState, ExecutorId, ExitStatus, Owner, TaskId};
use k8s_openapi::api::core::v1::Pod;

use crate::render::MAIN_CONTAINER;

/// How the main container ended, from its terminated state. When the backend stopped it, exit
/// codes above 128 are read as the signal that ended it (`143` is TERM, `137` KILL).
pub(super) fn exit_status(pod: &Pod, stopped: bool) -> Option<ExitStatus> {
    let status = pod.status.as_ref()?;
    let main = status
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == MAIN_CONTAINER)?;
    let ended = main.state.as_ref()?.terminated.as_ref()?;
    let oom_killed = ended.reason.as_deref() == Some("OOMKilled");
    let mut exit = match ended.signal {
        Some(signal) if signal > 0 => ExitStatus::signal(signal),
        _ if stopped && (129..=128 + 64).contains(&ended.exit_code) => {
            ExitStatus::signal(ended.exit_code - 128)
        }
        _ => ExitStatus::code(ended.exit_code),
    };
    exit.oom_killed = oom_killed;
    Some(exit)
}

pub(super) fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

pub(super) fn owner_of(pod: &Pod) -> Option<Owner> {
    let annotations = pod.metadata.annotations.as_ref()?;
    Some(Owner {
        executor_id: ExecutorId::new(annotations.get(hoist_core::labels::EXECUTOR_ID)?.clone()),
        task_id: TaskId::new(annotations.get(hoist_core::labels::TASK_ID)?.clone()),
    })
}

pub(super) fn state_of(pod: &Pod) -> ContainerState {
    match phase(pod) {
        "Succeeded" | "Failed" => ContainerState::Exited,
        _ => ContainerState::Running,
    }
}
