//! The executor process is killed with SIGKILL in the middle of a launch (its container created,
//! not started) and in the middle of a kill (its task ignoring SIGTERM through a long grace),
//! and a new executor over the same state directory recovers: each task ends exactly once and
//! no container folder and no process is left.
//!
//! The executor that gets killed is this test binary run again, with `EXECUTOR_ENV` telling it
//! what to do.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hoist_core::executor::StatusStream;
use hoist_core::{
    ContainerSpec, Executor, Hook, HookContext, Reason, Result, TaskId, TaskSpec, TaskState,
    TaskStatus,
};
use hoist_process::ProcessContainerizer;
use support::{entries, processes_with};

const EXECUTOR_ENV: &str = "HOIST_TEST_EXECUTOR_TO_KILL";
const DEADLINE: Duration = Duration::from_secs(20);
const EXECUTOR_ID: &str = "node-killed";

/// A command line no other process has: `sh` running `sleep` for a duration unique to this run,
/// with SIGTERM ignored (an ignored signal stays ignored in the `sleep` it starts).
fn stubborn(id: &str, marker: &str) -> TaskSpec {
    let script = format!("trap '' TERM; sleep {marker}; echo done");
    TaskSpec::new(id, ContainerSpec::command(["/bin/sh", "-c", &script]))
}

/// Kills what a failing run left: the executor it started and the task processes.
struct Leftovers {
    marker: String,
    executor: Option<std::process::Child>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        if let Some(child) = self.executor.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for pid in processes_with(&self.marker) {
            // SAFETY: a plain kill(2) of a process this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Holds the launch in pre-run, after telling the test the container exists.
#[derive(Debug)]
struct Parks(PathBuf);

#[async_trait]
impl Hook for Parks {
    fn name(&self) -> &str {
        "parks"
    }
    async fn pre_run(&self, _: &mut HookContext<'_>, _: &TaskSpec) -> Result<()> {
        std::fs::write(&self.0, b"created").unwrap();
        std::future::pending().await
    }
}

/// The executor that gets killed: `mode` is `launch` or `kill`.
async fn executor_to_kill(setting: &str) {
    let mut parts = setting.splitn(4, '|');
    let (mode, state, ready, marker) = (
        parts.next().unwrap(),
        PathBuf::from(parts.next().unwrap()),
        PathBuf::from(parts.next().unwrap()),
        parts.next().unwrap(),
    );
    let backend = Arc::new(ProcessContainerizer::new(&state).unwrap());
    let mut builder = Executor::builder(backend)
        .executor_id(EXECUTOR_ID)
        .hook_timeout(Duration::from_secs(600));
    if mode == "launch" {
        builder = builder.hook(Parks(ready.clone()));
    }
    let executor = builder.build().unwrap();
    let mut statuses = executor.statuses();
    executor.launch(stubborn("t", marker)).unwrap();
    if mode == "kill" {
        until(&mut statuses, TaskState::Running).await;
        // `sh` and the `sleep` it started: the trap is set, SIGTERM will be ignored.
        while processes_with(marker).len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        executor
            .kill(&TaskId::new("t"), Some(Duration::from_secs(600)))
            .unwrap();
        until(&mut statuses, TaskState::Killing).await;
        std::fs::write(&ready, b"killing").unwrap();
    }
    // Killed long before this ends, unless the test is gone.
    tokio::time::sleep(Duration::from_secs(120)).await;
}

async fn until(statuses: &mut StatusStream, state: TaskState) -> TaskStatus {
    loop {
        let status = tokio::time::timeout(DEADLINE, statuses.recv())
            .await
            .expect("no status in time")
            .expect("the status stream ended");
        if status.state == state || status.state.is_terminal() {
            assert_eq!(status.state, state, "{status}");
            return status;
        }
    }
}

/// Runs the executor to kill until it writes `ready`, then kills it with SIGKILL.
async fn start_and_kill_executor(leftovers: &mut Leftovers, mode: &str, state: &Path) {
    let ready = state.with_extension(format!("{mode}.ready"));
    let setting = format!(
        "{mode}|{}|{}|{}",
        state.display(),
        ready.display(),
        leftovers.marker
    );
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "an_executor_killed_mid_launch_or_mid_kill_is_recovered_by_a_new_one",
            "--exact",
            "--nocapture",
        ])
        .env(EXECUTOR_ENV, setting)
        .spawn()
        .unwrap();
    leftovers.executor = Some(child);
    let waited = tokio::time::timeout(DEADLINE, async {
        while !ready.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the executor never got to the {mode}");
    let mut child = leftovers.executor.take().unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// A new executor over `state` recovers `t`; returns its statuses through the terminal one
/// (killing it if it is running) and a moment after.
async fn recover(state: &Path) -> Vec<TaskStatus> {
    let backend = ProcessContainerizer::new(state)
        .unwrap()
        .with_poll_interval(Duration::from_millis(20));
    let executor = Executor::builder(Arc::new(backend))
        .executor_id(EXECUTOR_ID)
        .build()
        .unwrap();
    let mut statuses = executor.statuses();
    let report = executor.recover([]).await.unwrap();
    assert_eq!(report.reattached, [TaskId::new("t")]);
    let mut seen = vec![until_any(&mut statuses).await];
    if seen[0].state == TaskState::Running {
        executor
            .kill(&TaskId::new("t"), Some(Duration::ZERO))
            .unwrap();
    }
    while !seen.last().unwrap().state.is_terminal() {
        seen.push(until_any(&mut statuses).await);
    }
    executor.shutdown(None).await;
    seen.extend(std::iter::from_fn(|| statuses.try_recv()));
    seen
}

async fn until_any(statuses: &mut StatusStream) -> TaskStatus {
    tokio::time::timeout(DEADLINE, statuses.recv())
        .await
        .expect("no status in time")
        .expect("the status stream ended")
}

#[tokio::test]
async fn an_executor_killed_mid_launch_or_mid_kill_is_recovered_by_a_new_one() {
    if let Ok(setting) = std::env::var(EXECUTOR_ENV) {
        return executor_to_kill(&setting).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut leftovers = Leftovers {
        marker: format!("999.{}7", std::process::id()),
        executor: None,
    };

    // Mid-launch: the container exists, its process was never started.
    let state = dir.path().join("launch");
    start_and_kill_executor(&mut leftovers, "launch", &state).await;
    assert_eq!(entries(&state).len(), 1, "the container's folder");
    assert_eq!(processes_with(&leftovers.marker), Vec::<i32>::new());
    let seen = recover(&state).await;
    let states: Vec<_> = seen.iter().map(|s| (s.state, s.reason)).collect();
    assert_eq!(
        states,
        [
            (TaskState::Starting, Some(Reason::Recovered)),
            (TaskState::Lost, Some(Reason::Recovered)),
        ]
    );
    assert_eq!(entries(&state), Vec::<String>::new());

    // Mid-kill: SIGTERM sent, ignored, the grace running.
    let state = dir.path().join("kill");
    start_and_kill_executor(&mut leftovers, "kill", &state).await;
    assert!(
        !processes_with(&leftovers.marker).is_empty(),
        "the task outlives its executor"
    );
    let seen = recover(&state).await;
    let states: Vec<_> = seen.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [TaskState::Running, TaskState::Killing, TaskState::Killed],
        "{seen:?}"
    );
    assert_eq!(seen[0].reason, Some(Reason::Recovered));
    assert_eq!(entries(&state), Vec::<String>::new());
    assert_eq!(processes_with(&leftovers.marker), Vec::<i32>::new());
}
