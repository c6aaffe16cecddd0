//! End to end through the executor engine on the real Docker Engine: health checks, exits,
//! kills, OOM, containers killed or removed outside the executor, recovery after a restart.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hoist_core::health::{HealthCheck, HttpProbe, Probe, Scheme, TcpProbe};
use hoist_core::{Containerizer, Executor, PullPolicy, Reason, TaskSpec, TaskState, TaskStatus};
use hoist_docker::{DockerConfig, DockerContainerizer};

use support::{Harness, with_docker};

const DEADLINE: Duration = Duration::from_secs(30);

/// Receives statuses of `task` until one matches `until`; fails after [`DEADLINE`].
async fn next_status(
    statuses: &mut hoist_core::executor::StatusStream,
    task: &str,
    until: impl Fn(&TaskStatus) -> bool,
) -> TaskStatus {
    let find = async {
        while let Some(status) = statuses.recv().await {
            if status.task_id.as_str() == task && until(&status) {
                return status;
            }
            assert!(
                !(status.task_id.as_str() == task && status.state.is_terminal()),
                "task {task} ended before the awaited status: {status:?}"
            );
        }
        panic!("the status stream ended");
    };
    tokio::time::timeout(DEADLINE, find)
        .await
        .expect("the awaited status arrived in time")
}

async fn terminal(statuses: &mut hoist_core::executor::StatusStream, task: &str) -> TaskStatus {
    let find = async {
        while let Some(status) = statuses.recv().await {
            if status.task_id.as_str() == task && status.state.is_terminal() {
                return status;
            }
        }
        panic!("the status stream ended");
    };
    tokio::time::timeout(DEADLINE, find)
        .await
        .expect("the task ended in time")
}

fn quick_check(probe: Probe, failures: u32) -> HealthCheck {
    let mut check = HealthCheck::new(probe);
    check.delay = Duration::ZERO;
    check.interval = Duration::from_millis(200);
    check.timeout = Duration::from_secs(2);
    check.grace_period = Duration::ZERO;
    check.consecutive_failures = failures;
    check
}

fn executor(h: &Harness, name: &str) -> (Executor, hoist_core::executor::StatusStream) {
    let executor = Executor::builder(h.docker.clone())
        .executor_id(h.executor(name))
        .build()
        .unwrap();
    let statuses = executor.statuses();
    (executor, statuses)
}

/// An executor that keeps containers after their tasks end, so a test can ask the Engine how
/// they ended; the test removes them.
fn keeping_executor(h: &Harness, name: &str) -> (Executor, hoist_core::executor::StatusStream) {
    let executor = Executor::builder(h.docker.clone())
        .executor_id(h.executor(name))
        .keep_containers(true)
        .build()
        .unwrap();
    let statuses = executor.statuses();
    (executor, statuses)
}

#[tokio::test]
async fn an_http_health_check_turns_healthy_then_kill_ends_it() {
    with_docker(|h| async move {
        let (executor, mut statuses) = executor(&h, "healthy");
        let mut task = TaskSpec::new("web", h.shell("exec httpd -f -p 8080 -h /www"));
        task.health_check = Some(quick_check(
            Probe::Http(HttpProbe {
                scheme: Scheme::Http,
                port: 8080,
                path: "/index.html".into(),
                statuses: vec![],
            }),
            3,
        ));
        // Probes before the server listens fall in the grace period, which ends at the first
        // success: the first health status reported is the healthy one.
        if let Some(check) = task.health_check.as_mut() {
            check.grace_period = Duration::from_secs(20);
        }
        executor.launch(task).unwrap();
        next_status(&mut statuses, "web", |s| s.state == TaskState::Running).await;
        let healthy = next_status(&mut statuses, "web", |s| s.healthy.is_some()).await;
        assert_eq!(healthy.healthy, Some(true), "{healthy:?}");
        executor
            .kill(&"web".into(), Some(Duration::from_secs(5)))
            .unwrap();
        let end = terminal(&mut statuses, "web").await;
        assert_eq!(end.state, TaskState::Killed, "{end:?}");
        assert_eq!(end.reason, Some(Reason::KillRequested));
    })
    .await;
}

#[tokio::test]
async fn a_task_whose_check_fails_is_killed_after_the_threshold() {
    with_docker(|h| async move {
        let (executor, mut statuses) = keeping_executor(&h, "unhealthy");
        // Nothing listens on 9090: every TCP probe is refused.
        let mut task = TaskSpec::new("deaf", h.shell("exec httpd -f -p 8080 -h /www"));
        task.health_check = Some(quick_check(Probe::Tcp(TcpProbe { port: 9090 }), 2));
        task.kill_policy.grace = Duration::from_secs(2);
        executor.launch(task).unwrap();
        let unhealthy = next_status(&mut statuses, "deaf", |s| s.healthy == Some(false)).await;
        assert!(
            unhealthy
                .message
                .as_deref()
                .unwrap_or_default()
                .contains("9090"),
            "{unhealthy:?}"
        );
        let end = terminal(&mut statuses, "deaf").await;
        assert_eq!(end.state, TaskState::Killed, "{end:?}");
        assert_eq!(end.reason, Some(Reason::HealthCheckFailed));
        assert!(end.message.unwrap().contains("2 consecutive"));
        // The container was stopped with TERM, which httpd honours.
        let id = end.container_id.as_ref().unwrap();
        let info = h.docker.inspect(id).await.unwrap();
        assert_eq!(info.exit.unwrap().signal, Some(15));
        h.docker.remove(id, true).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn exit_codes_zero_and_non_zero() {
    with_docker(|h| async move {
        let (executor, mut statuses) = executor(&h, "exits");
        executor
            .launch(TaskSpec::new("ok", h.shell("exit 0")))
            .unwrap();
        executor
            .launch(TaskSpec::new("bad", h.shell("exit 3")))
            .unwrap();
        // Either may end first: collect both terminal statuses from the one stream.
        let mut ended = std::collections::HashMap::new();
        let collect = async {
            while ended.len() < 2 {
                let status = statuses.recv().await.expect("the status stream is open");
                if status.state.is_terminal() {
                    ended.insert(status.task_id.to_string(), status);
                }
            }
        };
        tokio::time::timeout(DEADLINE, collect)
            .await
            .expect("both tasks ended in time");
        let (ok, bad) = (&ended["ok"], &ended["bad"]);
        assert_eq!(ok.state, TaskState::Finished, "{ok:?}");
        assert_eq!(ok.reason, Some(Reason::CommandExited));
        assert_eq!(bad.state, TaskState::Failed, "{bad:?}");
        assert_eq!(bad.message.as_deref(), Some("exited with code 3"));
    })
    .await;
}

#[tokio::test]
async fn a_process_ignoring_term_is_killed_after_the_grace() {
    with_docker(|h| async move {
        let (executor, mut statuses) = keeping_executor(&h, "stubborn");
        let mut task = TaskSpec::new(
            "stubborn",
            h.shell("trap '' TERM; echo ready; exec sleep 600"),
        );
        task.kill_policy.grace = Duration::from_millis(1500);
        executor.launch(task).unwrap();
        let running =
            next_status(&mut statuses, "stubborn", |s| s.state == TaskState::Running).await;
        let id = running.container_id.unwrap();
        support::wait_for_output(&h, &id, "ready").await;
        let started = Instant::now();
        executor.kill(&"stubborn".into(), None).unwrap();
        let end = terminal(&mut statuses, "stubborn").await;
        let took = started.elapsed();
        assert_eq!(end.state, TaskState::Killed, "{end:?}");
        assert!(
            took >= Duration::from_millis(1500),
            "killed after {took:?}, before the grace"
        );
        assert!(took < Duration::from_secs(10), "killed after {took:?}");
        let exit = h.docker.inspect(&id).await.unwrap().exit.unwrap();
        assert_eq!(exit.signal, Some(9), "{exit:?}");
        h.docker.remove(&id, true).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_out_of_memory_kill_is_reported_as_such() {
    with_docker(|h| async move {
        let (executor, mut statuses) = keeping_executor(&h, "oom");
        // `tail` keeps the last line in memory, and /dev/zero has no line end.
        let mut task = TaskSpec::new("hog", h.shell("exec tail /dev/zero"));
        task.container.resources.memory = Some(16 << 20);
        executor.launch(task).unwrap();
        let end = terminal(&mut statuses, "hog").await;
        assert_eq!(end.state, TaskState::Failed, "{end:?}");
        assert_eq!(end.reason, Some(Reason::MemoryLimit), "{end:?}");
        let id = end.container_id.as_ref().unwrap();
        let exit = h.docker.inspect(id).await.unwrap().exit.unwrap();
        assert!(exit.oom_killed, "{exit:?}");
        assert_eq!(exit.signal, Some(9));
        h.docker.remove(id, true).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_container_killed_outside_the_executor_fails_its_task_promptly() {
    with_docker(|h| async move {
        let (executor, mut statuses) = executor(&h, "outside-kill");
        executor
            .launch(TaskSpec::new("victim", h.shell("exec sleep 600")))
            .unwrap();
        let running = next_status(&mut statuses, "victim", |s| s.state == TaskState::Running).await;
        let id = running.container_id.unwrap();
        let killed_at = Instant::now();
        docker_cli(&["kill", id.as_str()]);
        let end = terminal(&mut statuses, "victim").await;
        assert!(
            killed_at.elapsed() < Duration::from_secs(3),
            "noticed after {:?}",
            killed_at.elapsed()
        );
        assert_eq!(end.state, TaskState::Failed, "{end:?}");
        assert_eq!(end.reason, Some(Reason::CommandExited));
        assert_eq!(end.message.as_deref(), Some("killed by signal 9"));
    })
    .await;
}

#[tokio::test]
async fn a_container_removed_outside_the_executor_loses_its_task_promptly() {
    with_docker(|h| async move {
        let (executor, mut statuses) = executor(&h, "outside-rm");
        executor
            .launch(TaskSpec::new("victim", h.shell("exec sleep 600")))
            .unwrap();
        let running = next_status(&mut statuses, "victim", |s| s.state == TaskState::Running).await;
        let id = running.container_id.unwrap();
        let removed_at = Instant::now();
        docker_cli(&["rm", "-f", id.as_str()]);
        let end = terminal(&mut statuses, "victim").await;
        assert!(
            removed_at.elapsed() < Duration::from_secs(3),
            "noticed after {:?}",
            removed_at.elapsed()
        );
        assert_eq!(end.state, TaskState::Lost, "{end:?}");
        assert_eq!(end.reason, Some(Reason::ContainerGone));
    })
    .await;
}

#[tokio::test]
async fn a_restarted_executor_reattaches_to_its_running_containers() {
    with_docker(|h| async move {
        let executor_id = h.executor("restart");
        // The first executor runs on its own runtime, dropped to simulate a crash: its
        // supervisors vanish, the container keeps running.
        let first = {
            let (docker, image, executor_id) =
                (h.docker.clone(), h.image.clone(), executor_id.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Runtime::new().unwrap();
                runtime.block_on(async move {
                    let executor = Executor::builder(docker)
                        .executor_id(executor_id)
                        .build()
                        .unwrap();
                    let mut statuses = executor.statuses();
                    let mut spec =
                        hoist_core::ContainerSpec::command(["/bin/sh", "-c", "exec sleep 600"]);
                    spec.image = Some(image);
                    executor.launch(TaskSpec::new("survivor", spec)).unwrap();
                    next_status(&mut statuses, "survivor", |s| s.state == TaskState::Running).await
                })
            })
            .join()
            .unwrap()
        };
        let id = first.container_id.unwrap();

        let docker = Arc::new(
            DockerContainerizer::connect(DockerConfig::from_env())
                .await
                .unwrap(),
        );
        let executor = Executor::builder(docker)
            .executor_id(executor_id)
            .build()
            .unwrap();
        let mut statuses = executor.statuses();
        let report = executor.recover([]).await.unwrap();
        assert_eq!(report.reattached, ["survivor".into()]);
        let recovered =
            next_status(&mut statuses, "survivor", |s| s.state == TaskState::Running).await;
        assert_eq!(recovered.reason, Some(Reason::Recovered));
        assert_eq!(recovered.container_id.as_ref(), Some(&id));
        executor
            .kill(&"survivor".into(), Some(Duration::from_secs(5)))
            .unwrap();
        let end = terminal(&mut statuses, "survivor").await;
        assert_eq!(end.state, TaskState::Killed, "{end:?}");
    })
    .await;
}

#[tokio::test]
async fn a_missing_image_with_pull_policy_never_fails_the_launch() {
    with_docker(|h| async move {
        let (executor, mut statuses) = executor(&h, "missing");
        let mut task = TaskSpec::new("ghost", h.shell("true"));
        let image = format!("{}-absent:1", h.run);
        task.container.image = Some(image.clone());
        task.container.pull_policy = PullPolicy::Never;
        executor.launch(task).unwrap();
        let end = terminal(&mut statuses, "ghost").await;
        assert_eq!(end.state, TaskState::Failed, "{end:?}");
        assert_eq!(end.reason, Some(Reason::LaunchFailed));
        let message = end.message.unwrap();
        assert!(
            message.contains(&image) && message.contains("never"),
            "{message}"
        );
    })
    .await;
}

/// Runs the Docker CLI, as an operator would, outside the executor.
fn docker_cli(args: &[&str]) {
    let output = std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs");
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn an_image_pull_is_a_task_event() {
    with_docker(|h| async move {
        let (executor, _) = executor(&h, "pull-events");
        let mut events = executor.events();
        // A registry on a closed loopback port: the pull starts and cannot reach it.
        let image = "127.0.0.1:1/hoist-missing:1";
        let mut task = TaskSpec::new("pull", h.shell("true"));
        task.container.image = Some(image.into());
        task.container.pull_policy = PullPolicy::Always;
        let end = executor.run(task).await.unwrap();
        assert_eq!(end.state, TaskState::Failed, "{end}");
        assert!(end.message.unwrap().contains("could not pull"));
        let seen: Vec<_> = std::iter::from_fn(|| events.try_recv()).collect();
        let pull = seen
            .iter()
            .find(|e| e.kind == hoist_core::observe::TaskEventKind::ImagePullStarted)
            .unwrap_or_else(|| panic!("no pull event in {seen:?}"));
        assert_eq!(pull.task.as_str(), "pull");
        assert_eq!(pull.details["image"], image);
        assert!(
            !seen
                .iter()
                .any(|e| e.kind == hoist_core::observe::TaskEventKind::ImagePulled)
        );
    })
    .await;
}
