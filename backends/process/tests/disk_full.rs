//! The process backend's state directory fills up: before a launch (the container's record
//! cannot be written) and during one (the record naming the started process cannot be
//! written). Each task ends once, and no container folder and no process is left. The disk is
//! a small tmpfs the test mounts (it runs as root).

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hoist_core::testing::SmallDisk;
use hoist_core::{
    ContainerSpec, Executor, Hook, HookContext, Result, TaskSpec, TaskState, TaskStatus,
};
use hoist_process::ProcessContainerizer;
use support::{entries, processes_with};

const DEADLINE: Duration = Duration::from_secs(20);

/// Every status of `task`, through its terminal one and for a moment after it.
async fn statuses_of(executor: &Executor, task: TaskSpec) -> Vec<TaskStatus> {
    let id = task.id.clone();
    let mut statuses = executor.statuses();
    executor.launch(task).unwrap();
    let mut seen = Vec::new();
    let ended = tokio::time::timeout(DEADLINE, async {
        while let Some(status) = statuses.recv().await {
            if status.task_id == id {
                let terminal = status.state.is_terminal();
                seen.push(status);
                if terminal {
                    return;
                }
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "no terminal status for {id}: {seen:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    seen.extend(std::iter::from_fn(|| statuses.try_recv()).filter(|s| s.task_id == id));
    seen
}

/// The task failed once because its record could not be written, and left nothing.
fn failed_once_leaving_nothing(seen: &[TaskStatus], state: &std::path::Path, marker: &str) {
    let terminal: Vec<_> = seen.iter().filter(|s| s.state.is_terminal()).collect();
    assert_eq!(terminal.len(), 1, "{seen:?}");
    assert_eq!(terminal[0].state, TaskState::Failed, "{seen:?}");
    let message = terminal[0].message.as_deref().unwrap_or_default();
    assert!(
        message.contains("could not write the container record"),
        "{message}"
    );
    assert_eq!(entries(state), Vec::<String>::new());
    assert_eq!(processes_with(marker), Vec::<i32>::new());
}

/// A command no other process has: `sh` running `sleep` for a duration unique to this test.
fn marked_sleep(id: &str, marker: &str) -> TaskSpec {
    TaskSpec::new(
        id,
        ContainerSpec::command(["/bin/sh", "-c", &format!("sleep {marker}; echo done")]),
    )
}

/// Fills the disk in pre-run: after the container's folder and record exist, before start.
#[derive(Debug)]
struct FillsTheDisk(Arc<SmallDisk>);

#[async_trait]
impl Hook for FillsTheDisk {
    fn name(&self) -> &str {
        "fill-disk"
    }
    async fn pre_run(&self, _: &mut HookContext<'_>, _: &TaskSpec) -> Result<()> {
        self.0.fill().map(drop)
    }
}

#[tokio::test]
async fn a_full_state_disk_fails_the_launch_once_and_leaves_nothing() {
    let mount_point = tempfile::tempdir().unwrap();
    let disk = Arc::new(SmallDisk::mount(mount_point.path(), 1 << 20).unwrap());
    let state = disk.path().join("state");
    let backend = Arc::new(ProcessContainerizer::new(&state).unwrap());
    let executor = Executor::builder(backend).build().unwrap();
    let marker = format!("999.{}1", std::process::id());

    // Full before the launch: the container's record cannot be written.
    let filler = disk.fill().unwrap();
    let seen = statuses_of(&executor, marked_sleep("before", &marker)).await;
    failed_once_leaving_nothing(&seen, &state, &marker);
    std::fs::remove_file(filler).unwrap();

    // Full once the container exists: the process starts, but the record naming it cannot
    // be written, so it is killed and the launch fails.
    let hooked = Executor::builder(Arc::new(ProcessContainerizer::new(&state).unwrap()))
        .hook(FillsTheDisk(disk.clone()))
        .build()
        .unwrap();
    let seen = statuses_of(&hooked, marked_sleep("during", &marker)).await;
    failed_once_leaving_nothing(&seen, &state, &marker);
    std::fs::remove_file(disk.path().join("filler")).unwrap();

    // Space again: a task runs to its end and leaves nothing either.
    let seen = statuses_of(
        &executor,
        TaskSpec::new("after", ContainerSpec::command(["/bin/sh", "-c", "exit 0"])),
    )
    .await;
    assert_eq!(
        seen.iter().map(|s| s.state).collect::<Vec<_>>(),
        [TaskState::Starting, TaskState::Running, TaskState::Finished]
    );
    executor.shutdown(None).await;
    hooked.shutdown(None).await;
    assert_eq!(entries(&state), Vec::<String>::new());
}
