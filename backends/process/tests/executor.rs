//! The process backend driven end to end by hoist-core's `Executor`.

use std::sync::Arc;
use std::time::Duration;

use hoist_core::executor::StatusStream;
use hoist_core::{
    ContainerSpec, Containerizer, Executor, Reason, TaskId, TaskSpec, TaskState, TaskStatus,
};
use hoist_process::ProcessContainerizer;

const DEADLINE: Duration = Duration::from_secs(20);

fn sh(id: &str, script: &str) -> TaskSpec {
    TaskSpec::new(id, ContainerSpec::command(["/bin/sh", "-c", script]))
}

/// The statuses of `task` up to and including its terminal one.
async fn until_terminal(statuses: &mut StatusStream, task: &str) -> Vec<TaskStatus> {
    let mut seen = Vec::new();
    loop {
        let status = tokio::time::timeout(DEADLINE, statuses.recv())
            .await
            .expect("no terminal status in time")
            .expect("the status stream ended");
        if status.task_id.as_str() != task {
            continue;
        }
        let terminal = status.state.is_terminal();
        seen.push(status);
        if terminal {
            return seen;
        }
    }
}

fn states(statuses: &[TaskStatus]) -> Vec<TaskState> {
    statuses.iter().map(|s| s.state).collect()
}

#[tokio::test]
async fn exits_become_finished_and_failed_and_a_kill_becomes_killed() {
    let state = tempfile::tempdir().unwrap();
    let backend = Arc::new(ProcessContainerizer::new(state.path()).unwrap());
    // Containers are kept so the test can ask the backend how each one ended.
    let executor = Executor::builder(backend.clone())
        .keep_containers(true)
        .build()
        .unwrap();
    let mut statuses = executor.statuses();

    executor.launch(sh("ok", "exit 0")).unwrap();
    let ok = until_terminal(&mut statuses, "ok").await;
    assert_eq!(
        states(&ok),
        [TaskState::Starting, TaskState::Running, TaskState::Finished]
    );

    executor.launch(sh("bad", "exit 3")).unwrap();
    let bad = until_terminal(&mut statuses, "bad").await;
    assert_eq!(bad.last().unwrap().state, TaskState::Failed);
    assert!(
        bad.last()
            .unwrap()
            .message
            .as_deref()
            .unwrap_or("")
            .contains("code 3"),
        "{bad:?}"
    );

    executor.launch(sh("long", "exec sleep 100")).unwrap();
    loop {
        let status = tokio::time::timeout(DEADLINE, statuses.recv())
            .await
            .unwrap()
            .unwrap();
        if status.task_id.as_str() == "long" && status.state == TaskState::Running {
            break;
        }
    }
    executor
        .kill(&TaskId::new("long"), Some(Duration::from_secs(5)))
        .unwrap();
    let killed = until_terminal(&mut statuses, "long").await;
    let last = killed.last().unwrap();
    assert_eq!(last.state, TaskState::Killed);
    assert_eq!(last.reason, Some(Reason::KillRequested));
    let container = last.container_id.clone().unwrap();
    let exit = backend.wait(&container).await.unwrap();
    assert_eq!(
        exit.signal,
        Some(15),
        "TERM ended it within the grace: {exit:?}"
    );

    executor.shutdown(None).await;
    for owned in backend.list_owned(executor.id()).await.unwrap() {
        backend.remove(&owned.id, true).await.unwrap();
    }
}

#[tokio::test]
async fn a_new_executor_reattaches_to_what_the_old_one_started() {
    let state = tempfile::tempdir().unwrap();
    let first = Arc::new(ProcessContainerizer::new(state.path()).unwrap());
    let old = Executor::builder(first)
        .executor_id("node-1")
        .build()
        .unwrap();
    let mut old_statuses = old.statuses();
    old.launch(sh("web", "exec sleep 100")).unwrap();
    loop {
        let status = tokio::time::timeout(DEADLINE, old_statuses.recv())
            .await
            .unwrap()
            .unwrap();
        if status.state == TaskState::Running {
            break;
        }
    }

    // A new executor with the same id, on a new containerizer over the same state directory.
    let second = Arc::new(
        ProcessContainerizer::new(state.path())
            .unwrap()
            .with_poll_interval(Duration::from_millis(20)),
    );
    let new = Executor::builder(second.clone())
        .executor_id("node-1")
        .build()
        .unwrap();
    let mut new_statuses = new.statuses();
    let report = new.recover([]).await.unwrap();
    assert_eq!(report.reattached, [TaskId::new("web")]);
    let recovered = tokio::time::timeout(DEADLINE, new_statuses.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (recovered.state, recovered.reason),
        (TaskState::Running, Some(Reason::Recovered))
    );

    new.kill(&TaskId::new("web"), Some(Duration::from_secs(5)))
        .unwrap();
    let killed = until_terminal(&mut new_statuses, "web").await;
    assert_eq!(killed.last().unwrap().state, TaskState::Killed);
    // The old executor saw its container end too, exactly once.
    let old_end = until_terminal(&mut old_statuses, "web").await;
    assert_eq!(old_end.iter().filter(|s| s.state.is_terminal()).count(), 1);

    new.shutdown(None).await;
    old.shutdown(None).await;
    for owned in second.list_owned(new.id()).await.unwrap() {
        second.remove(&owned.id, true).await.unwrap();
    }
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
}
