//! Behaviour of the process backend beyond the conformance suite: spec handling, logs,
//! recovery after a restart.

use std::time::Duration;

use futures::StreamExt;
use hoist_core::{
    ContainerId, ContainerSpec, ContainerState, Containerizer, ContainerizerExt, ErrorKind,
    LogOptions, LogStream, NetworkMode, Owner,
};
use hoist_process::ProcessContainerizer;

const DEADLINE: Duration = Duration::from_secs(20);

fn owner(executor: &str, task: &str) -> Owner {
    Owner {
        executor_id: executor.into(),
        task_id: task.into(),
    }
}

fn sh(script: &str) -> ContainerSpec {
    ContainerSpec::command(["/bin/sh", "-c", script])
}

async fn stdout_of(
    c: &ProcessContainerizer,
    id: &hoist_core::ContainerId,
    options: LogOptions,
) -> String {
    let mut chunks = c.logs(id, options).await.unwrap();
    let mut out = String::new();
    while let Some(chunk) = tokio::time::timeout(DEADLINE, chunks.next()).await.unwrap() {
        let chunk = chunk.unwrap();
        if chunk.stream == LogStream::Stdout {
            out.push_str(&String::from_utf8_lossy(&chunk.data));
        }
    }
    out
}

#[tokio::test]
async fn env_working_dir_and_image_directory_are_honoured() {
    let state = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    std::fs::create_dir(image.path().join("bin")).unwrap();
    std::fs::create_dir(image.path().join("data")).unwrap();
    let script = image.path().join("bin/show");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"$GREETING from $(pwd) home=${HOME:-unset}\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let c = ProcessContainerizer::new(state.path()).unwrap();
    let mut spec = ContainerSpec::command(["bin/show"]);
    spec.image = Some(image.path().display().to_string());
    spec.working_dir = Some("data".into());
    spec.env.insert("GREETING".into(), "hello".into());
    spec.network = Some(NetworkMode::Host);
    let id = c.create(&owner("e", "show"), &spec).await.unwrap();
    c.start(&id).await.unwrap();
    assert!(c.wait_timeout(&id, DEADLINE).await.unwrap().success());
    let out = stdout_of(&c, &id, LogOptions::default()).await;
    let data = image.path().join("data").canonicalize().unwrap();
    // Nothing is inherited from the executor's environment (HOME included).
    assert_eq!(out, format!("hello from {} home=unset\n", data.display()));

    let exec = c
        .exec(&id, &["/bin/true".to_owned()], DEADLINE)
        .await
        .unwrap_err();
    assert_eq!(
        exec.kind(),
        ErrorKind::InvalidState,
        "exec into an exited container"
    );
    c.remove(&id, false).await.unwrap();
}

#[tokio::test]
async fn exec_sees_the_containers_env_and_working_dir() {
    let state = tempfile::tempdir().unwrap();
    let c = ProcessContainerizer::new(state.path()).unwrap();
    let mut spec = ContainerSpec::command(["sleep", "100"]);
    spec.env.insert("ANSWER".into(), "42".into());
    let id = c.create(&owner("e", "exec"), &spec).await.unwrap();
    c.start(&id).await.unwrap();
    let argv: Vec<String> = ["/bin/sh", "-c", "echo $ANSWER; pwd; echo oops >&2; exit 7"]
        .map(String::from)
        .into();
    let out = c.exec(&id, &argv, DEADLINE).await.unwrap();
    assert_eq!(out.exit_code, Some(7));
    let sandbox = state
        .path()
        .join(id.as_str())
        .join("sandbox")
        .canonicalize()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("42\n{}\n", sandbox.display())
    );
    assert_eq!(&out.stderr[..], b"oops\n");
    let missing = c
        .exec(&id, &["/no/such/program".to_owned()], DEADLINE)
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::InvalidInput, "{missing}");
    c.remove(&id, true).await.unwrap();
}

#[tokio::test]
async fn logs_tail_and_follow_until_exit() {
    let state = tempfile::tempdir().unwrap();
    let c = ProcessContainerizer::new(state.path())
        .unwrap()
        .with_poll_interval(Duration::from_millis(20));
    let id = c
        .create(
            &owner("e", "logs"),
            &sh("echo one; echo two; echo err >&2; sleep 0.3; echo three"),
        )
        .await
        .unwrap();
    c.start(&id).await.unwrap();
    // Follow from the start: everything, including what comes after the sleep, then the end.
    let followed = stdout_of(
        &c,
        &id,
        LogOptions {
            follow: true,
            tail: None,
        },
    )
    .await;
    assert_eq!(followed, "one\ntwo\nthree\n");
    let tail = stdout_of(
        &c,
        &id,
        LogOptions {
            follow: false,
            tail: Some(2),
        },
    )
    .await;
    assert_eq!(tail, "two\nthree\n");
    let chunks: Vec<_> = c
        .logs(&id, LogOptions::default())
        .await
        .unwrap()
        .collect()
        .await;
    let stderr: Vec<_> = chunks
        .into_iter()
        .map(Result::unwrap)
        .filter(|c| c.stream == LogStream::Stderr)
        .collect();
    assert_eq!(stderr.len(), 1);
    assert_eq!(&stderr[0].data[..], b"err\n");
    c.remove(&id, false).await.unwrap();
}

#[tokio::test]
async fn unsupported_parts_fail_create_and_leave_nothing() {
    let state = tempfile::tempdir().unwrap();
    let c = ProcessContainerizer::new(state.path()).unwrap();
    let mut spec = sh("true");
    spec.resources.memory = Some(64 << 20);
    let err = c.create(&owner("e", "big"), &spec).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(err.context_value("field"), Some("resources.memory"));
    assert!(err.to_string().contains("memory"), "{err}");
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
    assert!(!c.capabilities().memory_limit.accepted() && c.capabilities().recovery);
}

#[tokio::test]
async fn a_missing_program_fails_start_with_invalid_input() {
    let state = tempfile::tempdir().unwrap();
    let c = ProcessContainerizer::new(state.path()).unwrap();
    let id = c
        .create(
            &owner("e", "missing"),
            &ContainerSpec::command(["no-such-program-here"]),
        )
        .await
        .unwrap();
    let err = c.start(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("no-such-program-here"), "{err}");
    assert_eq!(c.inspect(&id).await.unwrap().state, ContainerState::Created);
    c.remove(&id, false).await.unwrap();
}

#[tokio::test]
async fn stop_reaches_the_whole_process_group() {
    let state = tempfile::tempdir().unwrap();
    let c = ProcessContainerizer::new(state.path()).unwrap();
    // The shell starts a background sleep and waits; TERM to the group ends both.
    let id = c
        .create(&owner("e", "group"), &sh("sleep 100 & echo $! ; wait"))
        .await
        .unwrap();
    c.start(&id).await.unwrap();
    let child_pid = loop {
        let out = stdout_of(&c, &id, LogOptions::default()).await;
        if let Ok(pid) = out.trim().parse::<i32>() {
            break pid;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    c.stop(&id, DEADLINE).await.unwrap();
    let gone = async {
        while std::path::Path::new(&format!("/proc/{child_pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{child_pid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(DEADLINE, gone)
        .await
        .expect("the background process outlived the stop");
    c.remove(&id, false).await.unwrap();
}

#[tokio::test]
async fn a_restarted_containerizer_finds_and_waits_for_what_the_first_started() {
    let state = tempfile::tempdir().unwrap();
    let first = ProcessContainerizer::new(state.path()).unwrap();
    let running = first
        .create(
            &owner("e", "long"),
            &ContainerSpec::command(["sleep", "100"]),
        )
        .await
        .unwrap();
    first.start(&running).await.unwrap();
    let exited = first
        .create(&owner("e", "done"), &sh("exit 5"))
        .await
        .unwrap();
    first.start(&exited).await.unwrap();
    assert_eq!(
        first.wait_timeout(&exited, DEADLINE).await.unwrap().code,
        Some(5)
    );
    let pid = first.inspect(&running).await.unwrap().pid.unwrap();

    let second = ProcessContainerizer::new(state.path())
        .unwrap()
        .with_poll_interval(Duration::from_millis(20));
    let owned = second.list_owned(&"e".into()).await.unwrap();
    let mut states: Vec<_> = owned
        .iter()
        .map(|o| (o.owner.task_id.as_str(), o.state))
        .collect();
    states.sort_by_key(|(task, _)| *task);
    assert_eq!(
        states,
        [
            ("done", ContainerState::Exited),
            ("long", ContainerState::Running)
        ]
    );
    assert_eq!(
        second.wait_timeout(&exited, DEADLINE).await.unwrap().code,
        Some(5)
    );
    assert_eq!(second.inspect(&running).await.unwrap().pid, Some(pid));

    // The second containerizer stops the process the first started and sees it end.
    let waiting = tokio::spawn({
        let second = second.clone();
        let running = running.clone();
        async move { second.wait_timeout(&running, DEADLINE).await }
    });
    second.stop(&running, DEADLINE).await.unwrap();
    let status = waiting.await.unwrap().unwrap();
    // Its starter is alive here and records the real status; the second takes it from the record.
    assert_eq!(status.signal, Some(15), "{status:?}");
    assert_eq!(
        first.wait_timeout(&running, DEADLINE).await.unwrap().signal,
        Some(15)
    );
    second.remove(&running, false).await.unwrap();
    second.remove(&exited, false).await.unwrap();
    assert!(second.list_owned(&"e".into()).await.unwrap().is_empty());
}

/// Marks container `id` as running process `pid` started at `start_ticks`, as an executor
/// that has since died would have left it.
fn mark_running(state: &std::path::Path, id: &ContainerId, pid: u32, start_ticks: u64) {
    let path = state.join(id.as_str()).join("record.json");
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    record["state"] = "running".into();
    record["pid"] = pid.into();
    record["start_ticks"] = start_ticks.into();
    std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
}

#[tokio::test]
async fn a_process_that_ends_with_no_starter_has_an_unknown_exit() {
    let state = tempfile::tempdir().unwrap();
    let c = ProcessContainerizer::new(state.path()).unwrap();
    let id = c
        .create(
            &owner("e", "orphan"),
            &ContainerSpec::command(["sleep", "0.3"]),
        )
        .await
        .unwrap();
    // The process is this test's child, so no containerizer can reap it or know its status.
    let mut child = std::process::Command::new("sleep")
        .arg("0.3")
        .spawn()
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
    let ticks: u64 = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    mark_running(state.path(), &id, child.id(), ticks);

    let fresh = ProcessContainerizer::new(state.path())
        .unwrap()
        .with_poll_interval(Duration::from_millis(20));
    assert_eq!(
        fresh.inspect(&id).await.unwrap().state,
        ContainerState::Running
    );
    let reaper = std::thread::spawn(move || child.wait());
    let status = fresh.wait_timeout(&id, DEADLINE).await.unwrap();
    assert_eq!((status.code, status.signal), (None, None), "{status:?}");
    let info = fresh.inspect(&id).await.unwrap();
    assert_eq!(info.state, ContainerState::Exited);
    assert!(
        info.details["exit"].contains("unknown"),
        "{:?}",
        info.details
    );
    reaper.join().unwrap().unwrap();
    fresh.remove(&id, false).await.unwrap();
}

#[tokio::test]
async fn a_reused_pid_is_not_taken_for_the_container() {
    let state = tempfile::tempdir().unwrap();
    let c = ProcessContainerizer::new(state.path()).unwrap();
    let id = c
        .create(
            &owner("e", "ghost"),
            &ContainerSpec::command(["sleep", "1"]),
        )
        .await
        .unwrap();
    // Our own pid, with a start time that is not ours: the recorded process is gone.
    mark_running(state.path(), &id, std::process::id(), 1);

    let fresh = ProcessContainerizer::new(state.path()).unwrap();
    let status = fresh.wait_timeout(&id, DEADLINE).await.unwrap();
    assert_eq!((status.code, status.signal), (None, None));
    // It has exited: stopping it must not signal the process that now holds the pid (this
    // test, which would die).
    fresh.stop(&id, Duration::ZERO).await.unwrap();
    fresh.remove(&id, true).await.unwrap();
}

#[tokio::test]
async fn a_malformed_record_is_a_typed_error_naming_the_file() {
    let state = tempfile::tempdir().unwrap();
    let c = ProcessContainerizer::new(state.path()).unwrap();
    std::fs::create_dir(state.path().join("broken-1")).unwrap();
    std::fs::write(state.path().join("broken-1/record.json"), "{ not json").unwrap();
    let err = c.inspect(&"broken-1".into()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("record.json"), "{err}");
    assert!(c.list_owned(&"e".into()).await.unwrap().is_empty());
    c.remove(&"broken-1".into(), true).await.unwrap();
    assert!(!state.path().join("broken-1").exists());
    let traversal = c.inspect(&"../etc".into()).await.unwrap_err();
    assert_eq!(traversal.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn a_second_stop_with_a_shorter_grace_forces_the_first() {
    let state = tempfile::tempdir().unwrap();
    let c = ProcessContainerizer::new(state.path()).unwrap();
    let id = c
        .create(
            &owner("e", "stubborn"),
            &sh("trap '' TERM; echo ready; exec sleep 100"),
        )
        .await
        .unwrap();
    c.start(&id).await.unwrap();
    while !stdout_of(&c, &id, LogOptions::default())
        .await
        .contains("ready")
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let patient = tokio::spawn({
        let (c, id) = (c.clone(), id.clone());
        async move { c.stop(&id, Duration::from_secs(600)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(DEADLINE, c.stop(&id, Duration::from_millis(100)))
        .await
        .expect("the forcing stop waited for the first one")
        .unwrap();
    tokio::time::timeout(DEADLINE, patient)
        .await
        .expect("the first stop did not see the exit")
        .unwrap()
        .unwrap();
    assert_eq!(c.wait(&id).await.unwrap().signal, Some(9));
    c.remove(&id, false).await.unwrap();
}
