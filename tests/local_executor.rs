//! The README's main job, for real: the example task file on the process backend, through the
//! engine, with the web task turning healthy and the job finishing.

#![cfg(feature = "process")]

use std::sync::Arc;
use std::time::Duration;

use hoist::process::ProcessContainerizer;
use hoist::{Executor, Reason, TaskFile, TaskState};

#[tokio::test]
async fn the_demo_task_file_runs_on_the_process_backend() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/tasks/demo.yaml"
    ))
    .unwrap();
    let mut file = TaskFile::from_yaml(&text).unwrap();
    // Use a free port, so the test can run beside a demo started by hand.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let web = &mut file.tasks[0];
    for arg in web
        .container
        .command
        .iter_mut()
        .chain(web.container.args.iter_mut())
    {
        if arg == "18080" {
            *arg = port.to_string();
        }
    }
    if let Some(check) = &mut web.health_check
        && let hoist::health::Probe::Http(http) = &mut check.probe
    {
        http.port = port;
    }

    let state = tempfile::tempdir().unwrap();
    let backend = Arc::new(ProcessContainerizer::new(state.path()).unwrap());
    let executor = Executor::builder(backend).build().unwrap();
    let mut statuses = executor.statuses();
    for task in file.tasks {
        executor.launch(task).unwrap();
    }

    let mut web_healthy = false;
    let mut job_finished = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !(web_healthy && job_finished) {
        let status = tokio::time::timeout_at(deadline, statuses.recv())
            .await
            .expect("the demo tasks did not reach their states in 30 s")
            .expect("status stream ended");
        match (status.task_id.as_str(), status.state) {
            ("web", TaskState::Running) if status.healthy == Some(true) => web_healthy = true,
            ("web", state) => assert!(!state.is_terminal(), "web ended early: {status}"),
            ("job", TaskState::Finished) => job_finished = true,
            ("job", state) => assert!(!state.is_terminal(), "job failed: {status}"),
            _ => {}
        }
    }

    executor.shutdown(Some(Duration::from_secs(3))).await;
    drop(executor);
    let mut web_end = None;
    while let Ok(Some(status)) = tokio::time::timeout(Duration::from_secs(5), statuses.recv()).await
    {
        if status.task_id.as_str() == "web" && status.state.is_terminal() {
            web_end = Some(status);
        }
    }
    let web_end = web_end.expect("web got a terminal status at shutdown");
    assert_eq!(
        (web_end.state, web_end.reason),
        (TaskState::Killed, Some(Reason::ExecutorShutdown))
    );
    // The server is gone: its port refuses connections.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// The example program itself, as the README's first command runs it (for a shorter time).
#[tokio::test]
async fn the_example_program_runs_the_demo_and_stops_cleanly() {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let args = [
        "-p",
        "hoist",
        "--example",
        "local-executor",
        "--all-features",
    ];
    let example = hoist::testing::cargo_build(workspace, &args, "examples/local-executor").unwrap();
    let state = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(example)
        .current_dir(workspace)
        .args(["examples/tasks/demo.yaml", "--for", "6s", "--state-dir"])
        .arg(state.path())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the example stops after its --for")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for line in [
        "web running",
        "job finished (command_exited): exited with code 0",
        "time is up: killing every task",
        "web killed (executor_shutdown)",
    ] {
        assert!(stdout.contains(line), "no `{line}` in:\n{stdout}");
    }
}
