//! The executor driver against the agent simulator, on the fake containerizer.

use std::sync::Arc;
use std::time::Duration;

use hoist_core::testing::{FakeContainerizer, Script};
use hoist_core::{ErrorKind, ExecOutput, Executor, ExitStatus};
use hoist_mesos::testing::{AckMode, AgentSimulator, SimulatorOptions, Snapshot};
use hoist_mesos::wire::{
    CommandInfo, DurationInfo, HealthCheckInfo, HealthCheckType, KillPolicyInfo, Reason, TaskInfo,
    TaskInfoFields, TaskState,
};
use hoist_mesos::{AgentEnv, DriverOptions, Exit, MesosDriver};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);

struct Harness {
    agent: AgentSimulator,
    fake: FakeContainerizer,
    executor: Executor,
    run: JoinHandle<hoist_core::Result<Exit>>,
}

fn options() -> DriverOptions {
    DriverOptions {
        resend_interval: Duration::from_millis(200),
        ..DriverOptions::default()
    }
}

async fn start_with(
    sim: SimulatorOptions,
    env: impl FnOnce(&mut AgentEnv),
    driver: DriverOptions,
) -> Harness {
    start_measured(sim, env, driver, None).await
}

/// As [`start_with`], with the driver's metrics in `registry` when given.
async fn start_measured(
    sim: SimulatorOptions,
    env: impl FnOnce(&mut AgentEnv),
    driver: DriverOptions,
    registry: Option<&mut prometheus_client::registry::Registry>,
) -> Harness {
    let agent = AgentSimulator::start(sim).await.unwrap();
    let fake = FakeContainerizer::new();
    let executor = Executor::builder(Arc::new(fake.clone())).build().unwrap();
    let statuses = executor.statuses();
    let mut agent_env = agent.env();
    env(&mut agent_env);
    let mut mesos = MesosDriver::new(agent_env, executor.clone(), statuses).options(driver);
    if let Some(registry) = registry {
        mesos = mesos.metrics(registry);
    }
    let run = tokio::spawn(mesos.run());
    agent
        .wait_for("a SUBSCRIBE", WAIT, |s| s.connected)
        .await
        .unwrap();
    Harness {
        agent,
        fake,
        executor,
        run,
    }
}

async fn start() -> Harness {
    start_with(SimulatorOptions::default(), |_| {}, options()).await
}

fn task(id: &str) -> TaskInfoFields {
    let mut info = TaskInfoFields::new(id, "agent-1");
    info.command = Some(CommandInfo::shell("sleep 1000"));
    info
}

/// A command health check every 50 ms, with no delay and no grace period.
fn command_check(shell: &str, consecutive_failures: Option<u32>) -> HealthCheckInfo {
    HealthCheckInfo {
        kind: Some(HealthCheckType::Command),
        delay_seconds: Some(0.0),
        interval_seconds: Some(0.05),
        timeout_seconds: Some(1.0),
        consecutive_failures,
        grace_period_seconds: Some(0.0),
        command: Some(CommandInfo::shell(shell)),
        http: None,
        tcp: None,
    }
}

fn states(s: &Snapshot, task: &str) -> Vec<TaskState> {
    s.states(task)
}

async fn wait_state(agent: &AgentSimulator, task: &str, state: TaskState) -> Snapshot {
    agent
        .wait_for(&format!("{task} {state}"), WAIT, |s| {
            s.states(task).contains(&state)
        })
        .await
        .unwrap()
}

/// Every update the agent saw was valid, and every task got exactly one terminal update.
fn assert_clean(s: &Snapshot, tasks: &[&str]) {
    assert!(s.rejected.is_empty(), "rejected calls: {:?}", s.rejected);
    for status in &s.updates {
        let uuid = status.uuid.as_ref().expect("every update has a uuid");
        assert_eq!(uuid.0.len(), 16);
        assert_eq!(
            uuid::Uuid::from_slice(&uuid.0).unwrap().get_version_num(),
            4
        );
        assert_ne!(status.state, TaskState::Staging);
        assert!(status.timestamp.is_some());
    }
    for task in tasks {
        let terminal = s.terminal(task);
        assert_eq!(terminal.len(), 1, "{task}: {:?}", s.states(task));
        assert!(
            terminal[0].message.as_ref().is_some_and(|m| !m.is_empty()),
            "{task}: a terminal update says what happened: {:?}",
            terminal[0]
        );
        assert!(
            terminal[0].reason.is_some(),
            "{task}: a terminal update has a reason: {:?}",
            terminal[0]
        );
    }
}

/// The one terminal update of `task`, checked against its state, reason and a piece of its
/// message.
fn assert_terminal(s: &Snapshot, task: &str, state: TaskState, reason: Reason, message: &str) {
    let terminal = s.terminal(task);
    assert_eq!(terminal.len(), 1, "{task}: {:?}", s.states(task));
    let t = &terminal[0];
    assert_eq!((t.state, t.reason), (state, Some(reason)), "{task}: {t:?}");
    let text = t.message.as_deref().unwrap_or_default();
    assert!(text.contains(message), "{task}: {text:?} lacks {message:?}");
}

async fn shutdown(h: Harness) -> Snapshot {
    assert!(h.agent.shutdown());
    let exit = tokio::time::timeout(WAIT, h.run)
        .await
        .expect("the driver exits")
        .unwrap()
        .unwrap();
    assert_eq!(exit, Exit::Shutdown);
    assert!(h.executor.tasks().is_empty(), "every task ended");
    h.agent.snapshot()
}

#[tokio::test]
async fn happy_path_with_a_health_check() {
    let h = start().await;
    let mut info = task("web.1");
    info.health_check = Some(command_check("true", None));
    assert!(h.agent.launch(TaskInfo::from_fields(&info)));
    let s = h
        .agent
        .wait_for("a healthy update", WAIT, |s| {
            s.distinct("web.1").iter().any(|u| u.healthy == Some(true))
        })
        .await
        .unwrap();
    let updates = s.distinct("web.1");
    assert_eq!(updates[0].state, TaskState::Starting);
    assert_eq!(updates[1].state, TaskState::Running);
    let healthy = updates.iter().find(|u| u.healthy == Some(true)).unwrap();
    assert_eq!(healthy.state, TaskState::Running);
    assert_eq!(healthy.reason, Some(Reason::TaskHealthCheckStatusUpdated));
    assert_eq!(
        updates.iter().filter(|u| u.healthy.is_some()).count(),
        1,
        "only changes are reported"
    );
    assert_eq!(updates[0].agent_id.as_ref().unwrap().value, "agent-1");
    assert_eq!(updates[0].executor_id.as_ref().unwrap().value, "executor-1");
    // The spec the container got.
    let container = h.fake.container_of("web.1").unwrap();
    assert_eq!(
        h.fake.spec_of(&container).unwrap().command,
        ["/bin/sh", "-c", "sleep 1000"]
    );

    assert!(h.agent.kill("web.1", None));
    let s = wait_state(&h.agent, "web.1", TaskState::Killed).await;
    assert_eq!(
        states(&s, "web.1")[2..],
        [TaskState::Running, TaskState::Killing, TaskState::Killed]
    );
    assert_terminal(
        &s,
        "web.1",
        TaskState::Killed,
        Reason::CommandExecutorFailed,
        "killed on request",
    );
    let s = shutdown(h).await;
    assert_clean(&s, &["web.1"]);
}

#[tokio::test]
async fn agent_restart_mid_task_loses_no_update() {
    let h = start().await;
    h.fake
        .script("a", Script::exits(0, Duration::from_millis(900)));
    assert!(h.agent.launch(TaskInfo::from_fields(&task("a"))));
    wait_state(&h.agent, "a", TaskState::Running).await;
    // Updates of b reach the agent but are never acknowledged.
    h.agent.set_ack_mode(AckMode::Drop);
    assert!(h.agent.launch(TaskInfo::from_fields(&task("b"))));
    wait_state(&h.agent, "b", TaskState::Running).await;
    // The agent goes away while a finishes.
    h.agent.restart(Duration::from_millis(1500));
    h.agent.set_ack_mode(AckMode::Normal);
    let s = h
        .agent
        .wait_for("a resubscription", WAIT, |s| {
            s.subscriptions.len() == 2 && s.connected
        })
        .await
        .unwrap();
    let again = &s.subscriptions[1];
    let tasks: Vec<_> = again
        .unacknowledged_tasks
        .iter()
        .map(|t| t.task_id().value.clone())
        .collect();
    assert_eq!(tasks, ["b"], "b was never acknowledged, a was");
    assert_eq!(
        again.unacknowledged_tasks[0].raw(),
        TaskInfo::from_fields(&task("b")).raw(),
        "the TaskInfo as sent"
    );
    let replayed: Vec<_> = again
        .unacknowledged_updates
        .iter()
        .map(|u| (u.status.task_id.value.as_str(), u.status.state))
        .collect();
    assert!(
        replayed.contains(&("b", TaskState::Starting)),
        "{replayed:?}"
    );
    assert!(
        replayed.contains(&("b", TaskState::Running)),
        "{replayed:?}"
    );
    assert!(
        replayed.contains(&("a", TaskState::Finished)),
        "the exit during the downtime: {replayed:?}"
    );
    let s = wait_state(&h.agent, "a", TaskState::Finished).await;
    assert_eq!(
        states(&s, "a"),
        [TaskState::Starting, TaskState::Running, TaskState::Finished]
    );
    assert_eq!(states(&s, "b"), [TaskState::Starting, TaskState::Running]);
    let s = shutdown(h).await;
    assert_clean(&s, &["a", "b"]);
}

#[tokio::test]
async fn lost_acknowledgements_are_resent_and_duplicates_are_harmless() {
    let h = start().await;
    h.agent.set_ack_mode(AckMode::Drop);
    assert!(h.agent.launch(TaskInfo::from_fields(&task("t"))));
    // The same RUNNING update (one UUID) arrives again and again until acknowledged.
    let s = h
        .agent
        .wait_for("RUNNING resent", WAIT, |s| {
            s.updates
                .iter()
                .filter(|u| u.task_id.value == "t" && u.state == TaskState::Running)
                .count()
                >= 3
        })
        .await
        .unwrap();
    let running: Vec<_> = s
        .updates
        .iter()
        .filter(|u| u.state == TaskState::Running)
        .collect();
    assert!(running.windows(2).all(|w| w[0].uuid == w[1].uuid));
    h.agent.set_ack_mode(AckMode::Duplicate);
    // The next resend is acknowledged (twice); then the resending stops.
    h.agent
        .wait_for("an acknowledgement", WAIT, |s| s.acknowledgements >= 2)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settled = h.agent.snapshot().updates.len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        h.agent.snapshot().updates.len(),
        settled,
        "acknowledged updates are not resent"
    );
    assert!(h.agent.kill("t", None));
    wait_state(&h.agent, "t", TaskState::Killed).await;
    let s = shutdown(h).await;
    assert_eq!(
        states(&s, "t"),
        [
            TaskState::Starting,
            TaskState::Running,
            TaskState::Killing,
            TaskState::Killed
        ]
    );
    assert_clean(&s, &["t"]);
}

#[tokio::test]
async fn kill_during_launch() {
    let h = start().await;
    h.fake.script(
        "slow",
        Script {
            create_delay: Duration::from_millis(300),
            ..Script::default()
        },
    );
    assert!(h.agent.launch(TaskInfo::from_fields(&task("slow"))));
    wait_state(&h.agent, "slow", TaskState::Starting).await;
    assert!(h.agent.kill("slow", None));
    let s = wait_state(&h.agent, "slow", TaskState::Killed).await;
    assert!(!states(&s, "slow").contains(&TaskState::Running));
    assert_terminal(
        &s,
        "slow",
        TaskState::Killed,
        Reason::TaskKilledDuringLaunch,
        "killed during launch",
    );
    let s = shutdown(h).await;
    assert_clean(&s, &["slow"]);
}

#[tokio::test]
async fn kill_racing_the_tasks_own_exit_yields_one_terminal_update() {
    let h = start().await;
    let ids: Vec<String> = (0..6).map(|i| format!("race-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        h.fake.script(
            id.as_str(),
            Script::exits(1, Duration::from_millis(100 + 2 * i as u64)),
        );
        assert!(h.agent.launch(TaskInfo::from_fields(&task(id))));
    }
    for id in &ids {
        wait_state(&h.agent, id, TaskState::Running).await;
    }
    tokio::time::sleep(Duration::from_millis(90)).await;
    for id in &ids {
        h.agent.kill(id, Some(Duration::ZERO));
    }
    for id in &ids {
        h.agent
            .wait_for("a terminal update", WAIT, |s| !s.terminal(id).is_empty())
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = shutdown(h).await;
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_clean(&s, &refs);
    for id in &refs {
        // Whichever won, the one terminal update says so.
        let t = &s.terminal(id)[0];
        let text = t.message.as_deref().unwrap_or_default();
        match t.state {
            TaskState::Failed => assert!(text.contains("exited with code 1"), "{t:?}"),
            TaskState::Killed => assert!(text.contains("killed on request"), "{t:?}"),
            other => panic!("{id} ended {other}"),
        }
        assert_eq!(t.reason, Some(Reason::CommandExecutorFailed), "{t:?}");
    }
}

#[tokio::test]
async fn every_terminal_path_carries_its_reason_and_message() {
    let h = start().await;
    let soon = Duration::from_millis(50);
    h.fake.script("done", Script::exits(0, soon));
    h.fake.script("crash", Script::exits(3, soon));
    h.fake.script(
        "oom",
        Script {
            exit_after: Some(soon),
            exit: ExitStatus {
                code: Some(137),
                signal: None,
                oom_killed: true,
            },
            ..Script::default()
        },
    );
    h.fake.script(
        "broken",
        Script {
            fail_start: Some((ErrorKind::Backend, "the runtime said no".into())),
            ..Script::default()
        },
    );
    let tasks = ["done", "crash", "oom", "broken", "stopped", "gone"];
    for id in tasks {
        assert!(h.agent.launch(TaskInfo::from_fields(&task(id))));
    }
    wait_state(&h.agent, "stopped", TaskState::Running).await;
    wait_state(&h.agent, "gone", TaskState::Running).await;
    assert!(h.agent.kill("stopped", None));
    h.fake
        .remove_externally(&h.fake.container_of("gone").unwrap());
    let s = h
        .agent
        .wait_for("every terminal update", WAIT, |s| {
            tasks.iter().all(|t| !s.terminal(t).is_empty())
        })
        .await
        .unwrap();
    let expected = [
        (
            "done",
            TaskState::Finished,
            Reason::CommandExecutorFailed,
            "exited with code 0",
        ),
        (
            "crash",
            TaskState::Failed,
            Reason::CommandExecutorFailed,
            "exited with code 3",
        ),
        (
            "oom",
            TaskState::Failed,
            Reason::ContainerLimitationMemory,
            "memory limit",
        ),
        (
            "broken",
            TaskState::Failed,
            Reason::ContainerLaunchFailed,
            "the runtime said no",
        ),
        (
            "stopped",
            TaskState::Killed,
            Reason::CommandExecutorFailed,
            "killed on request",
        ),
        (
            "gone",
            TaskState::Lost,
            Reason::ContainerPreempted,
            "disappeared",
        ),
    ];
    for (task, state, reason, message) in expected {
        assert_terminal(&s, task, state, reason, message);
    }
    let s = shutdown(h).await;
    assert_clean(&s, &tasks);
}

#[tokio::test]
async fn failing_health_checks_kill_the_task() {
    let h = start().await;
    h.fake.script(
        "sick",
        Script {
            exec: Some(Arc::new(|_: &[String]| {
                Ok(ExecOutput {
                    exit_code: Some(1),
                    ..ExecOutput::default()
                })
            })),
            ..Script::default()
        },
    );
    let mut info = task("sick");
    info.health_check = Some(command_check("false", Some(2)));
    assert!(h.agent.launch(TaskInfo::from_fields(&info)));
    let s = wait_state(&h.agent, "sick", TaskState::Killed).await;
    let updates = s.distinct("sick");
    assert!(updates.iter().any(|u| u.state == TaskState::Running
        && u.healthy == Some(false)
        && u.reason == Some(Reason::TaskHealthCheckStatusUpdated)));
    let terminal = &s.terminal("sick")[0];
    assert_eq!(terminal.reason, Some(Reason::TaskHealthCheckStatusUpdated));
    assert_eq!(terminal.healthy, Some(false));
    assert!(
        terminal.message.as_ref().unwrap().contains("health"),
        "{terminal:?}"
    );
    let s = shutdown(h).await;
    assert_clean(&s, &["sick"]);
}

#[tokio::test]
async fn shutdown_kills_every_task_within_the_grace_period() {
    let h = start_with(
        SimulatorOptions::default(),
        |env| env.shutdown_grace_period = Duration::from_millis(1000),
        options(),
    )
    .await;
    h.fake.default_script(Script {
        ignore_term: true,
        ..Script::default()
    });
    for id in ["s1", "s2", "s3"] {
        let mut info = task(id);
        info.kill_policy = Some(KillPolicyInfo {
            grace_period: Some(DurationInfo::from_duration(Duration::from_secs(60))),
        });
        assert!(h.agent.launch(TaskInfo::from_fields(&info)));
        wait_state(&h.agent, id, TaskState::Running).await;
    }
    // Each task ignores TERM with a 60 s grace: ending at all within the harness's wait means
    // the 1 s shutdown grace cut them short (paused_clock.rs checks the exact instant).
    let s = shutdown(h).await;
    for id in ["s1", "s2", "s3"] {
        assert_terminal(
            &s,
            id,
            TaskState::Killed,
            Reason::ExecutorTerminated,
            "the executor is shutting down",
        );
    }
    assert_clean(&s, &["s1", "s2", "s3"]);
}

#[tokio::test]
async fn killing_is_reported_only_to_frameworks_that_understand_it() {
    let sim = SimulatorOptions {
        capabilities: vec![],
        ..SimulatorOptions::default()
    };
    let h = start_with(sim, |_| {}, options()).await;
    assert!(h.agent.launch(TaskInfo::from_fields(&task("k"))));
    wait_state(&h.agent, "k", TaskState::Running).await;
    h.agent.kill("k", None);
    let s = wait_state(&h.agent, "k", TaskState::Killed).await;
    assert_eq!(
        states(&s, "k"),
        [TaskState::Starting, TaskState::Running, TaskState::Killed]
    );
    shutdown(h).await;
}

#[tokio::test]
async fn malformed_frames_and_garbage_break_the_stream_and_resubscribe() {
    let driver = DriverOptions {
        client: hoist_mesos::ClientOptions {
            max_record: 4096,
            ..Default::default()
        },
        ..options()
    };
    let h = start_with(SimulatorOptions::default(), |_| {}, driver).await;
    assert!(h.agent.launch(TaskInfo::from_fields(&task("keep"))));
    wait_state(&h.agent, "keep", TaskState::Running).await;

    // An unknown event type is skipped; the stream goes on.
    assert!(h.agent.send_raw(hoist_mesos::recordio::encode(
        br#"{"type":"FROM_THE_FUTURE","from_the_future":{}}"#
    )));
    assert!(
        h.agent
            .launch(TaskInfo::from_fields(&task("after-unknown")))
    );
    wait_state(&h.agent, "after-unknown", TaskState::Running).await;
    assert_eq!(h.agent.snapshot().subscriptions.len(), 1);

    let cases: Vec<bytes::Bytes> = vec![
        bytes::Bytes::from_static(b"12x\n{}"),
        hoist_mesos::recordio::encode(&vec![b' '; 5000]),
        hoist_mesos::recordio::encode(b"{not json"),
    ];
    for (i, garbage) in cases.into_iter().enumerate() {
        assert!(h.agent.send_raw(garbage));
        h.agent
            .wait_for("a resubscription", WAIT, |s| {
                s.subscriptions.len() == i + 2 && s.connected
            })
            .await
            .unwrap();
    }
    // The tasks ran on through all of it.
    assert_eq!(h.executor.tasks().len(), 2);
    let s = shutdown(h).await;
    assert_clean(&s, &["keep", "after-unknown"]);
}

/// The metrics text of `registry`, once `done` holds for it (within [`WAIT`]).
async fn metrics_when(
    registry: &prometheus_client::registry::Registry,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, text) = hoist_core::observe::metrics::encode(registry, None).unwrap();
        if done(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the metrics never got there:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_driver_counts_updates_acknowledgements_and_lost_subscriptions() {
    let mut registry = prometheus_client::registry::Registry::default();
    let h = start_measured(
        SimulatorOptions::default(),
        |_| {},
        options(),
        Some(&mut registry),
    )
    .await;
    assert!(h.agent.launch(TaskInfo::from_fields(&task("m"))));
    wait_state(&h.agent, "m", TaskState::Running).await;
    // STARTING and RUNNING sent and acknowledged, none waiting.
    metrics_when(&registry, |t| {
        t.contains("hoist_mesos_updates_acknowledged_total 2\n")
            && t.contains("hoist_mesos_updates_unacknowledged 0\n")
    })
    .await;
    // Unacknowledged updates wait, and count.
    h.agent.set_ack_mode(AckMode::Drop);
    assert!(h.agent.launch(TaskInfo::from_fields(&task("n"))));
    wait_state(&h.agent, "n", TaskState::Running).await;
    metrics_when(&registry, |t| {
        t.contains("hoist_mesos_updates_unacknowledged 2\n")
    })
    .await;
    // The agent goes away and comes back: one disconnection, one resubscription.
    h.agent.restart(Duration::from_millis(300));
    h.agent.set_ack_mode(AckMode::Normal);
    h.agent
        .wait_for("a resubscription", WAIT, |s| {
            s.subscriptions.len() == 2 && s.connected
        })
        .await
        .unwrap();
    // Every SUBSCRIBE attempt while the agent was away counts; the link was lost once. The
    // two updates of n, never acknowledged before, are acknowledged after the resubscription.
    let text = metrics_when(&registry, |t| {
        t.contains("hoist_mesos_agent_disconnections_total 1\n")
            && t.contains("hoist_mesos_updates_unacknowledged 0\n")
    })
    .await;
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    assert!(value("hoist_mesos_resubscriptions_total") >= 1, "{text}");
    assert!(value("hoist_mesos_updates_sent_total") >= 4, "{text}");
    assert_eq!(value("hoist_mesos_updates_acknowledged_total"), 4, "{text}");
    // What a Prometheus server would scrape passes promtool.
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) runs");
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let s = shutdown(h).await;
    assert_clean(&s, &["m", "n"]);
}

#[tokio::test]
async fn an_error_event_resubscribes_when_checkpointing() {
    let h = start().await;
    assert!(h.agent.launch(TaskInfo::from_fields(&task("e"))));
    wait_state(&h.agent, "e", TaskState::Running).await;
    assert!(h.agent.send(&hoist_mesos::wire::Event::error("bad call")));
    h.agent
        .wait_for("a resubscription", WAIT, |s| {
            s.subscriptions.len() == 2 && s.connected
        })
        .await
        .unwrap();
    assert_eq!(h.executor.tasks().len(), 1, "the task runs on");
    shutdown(h).await;
}

#[tokio::test]
async fn without_checkpointing_a_lost_agent_ends_the_executor() {
    let sim = SimulatorOptions {
        checkpoint: false,
        ..SimulatorOptions::default()
    };
    let h = start_with(sim, |_| {}, options()).await;
    assert!(h.agent.launch(TaskInfo::from_fields(&task("n"))));
    wait_state(&h.agent, "n", TaskState::Running).await;
    h.agent.send(&hoist_mesos::wire::Event::error("go away"));
    let exit = tokio::time::timeout(WAIT, h.run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(exit, Exit::AgentLost);
    assert!(h.executor.tasks().is_empty(), "the task was killed");
    assert_eq!(h.fake.calls_to("stop"), 1);
    assert_eq!(
        h.agent.snapshot().subscriptions.len(),
        1,
        "no resubscription"
    );
}

#[tokio::test]
async fn recovery_gives_up_after_the_timeout() {
    let h = start_with(
        SimulatorOptions::default(),
        |env| env.recovery_timeout = Duration::from_millis(800),
        options(),
    )
    .await;
    assert!(h.agent.launch(TaskInfo::from_fields(&task("r"))));
    wait_state(&h.agent, "r", TaskState::Running).await;
    h.agent.restart(Duration::from_secs(60));
    let exit = tokio::time::timeout(WAIT, h.run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // The agent stays away for 60 s: giving up within the harness's wait is the 800 ms recovery
    // timeout at work (paused_clock.rs checks the exact instant).
    assert_eq!(exit, Exit::RecoveryTimedOut);
    assert!(h.executor.tasks().is_empty());
    assert!(h.agent.snapshot().unavailable >= 2, "it kept trying");
}

#[tokio::test]
async fn launch_group_runs_every_task_or_none() {
    let h = start().await;
    let group: Vec<_> = ["g1", "g2"]
        .iter()
        .map(|id| TaskInfo::from_fields(&task(id)))
        .collect();
    assert!(h.agent.launch_group(group));
    wait_state(&h.agent, "g1", TaskState::Running).await;
    wait_state(&h.agent, "g2", TaskState::Running).await;

    let mut bad = task("b2");
    bad.command.as_mut().unwrap().uris = vec![hoist_mesos::wire::Uri {
        value: "http://example/x".into(),
    }];
    assert!(h.agent.launch_group(vec![
        TaskInfo::from_fields(&task("b1")),
        TaskInfo::from_fields(&bad)
    ]));
    let s = wait_state(&h.agent, "b1", TaskState::Error).await;
    let s2 = wait_state(&h.agent, "b2", TaskState::Error).await;
    assert_terminal(
        &s,
        "b1",
        TaskState::Error,
        Reason::TaskGroupInvalid,
        "task b2 of its group is invalid",
    );
    assert_terminal(
        &s2,
        "b2",
        TaskState::Error,
        Reason::TaskGroupInvalid,
        "command.uris",
    );
    assert!(
        h.fake.container_of("b1").is_none(),
        "nothing of the bad group was created"
    );

    let mut single = task("solo");
    single.check = Some(serde_json::json!({"type": "COMMAND"}));
    assert!(h.agent.launch(TaskInfo::from_fields(&single)));
    let s = wait_state(&h.agent, "solo", TaskState::Error).await;
    assert_terminal(&s, "solo", TaskState::Error, Reason::TaskInvalid, "check");
    let s = shutdown(h).await;
    assert_clean(&s, &["g1", "g2", "b1", "b2", "solo"]);
}

#[tokio::test]
async fn a_refused_first_subscribe_is_an_error() {
    let agent = AgentSimulator::start(SimulatorOptions::default())
        .await
        .unwrap();
    let mut env = agent.env();
    env.executor_id = hoist_mesos::wire::ExecutorId::new("someone-else");
    let executor = Executor::builder(Arc::new(FakeContainerizer::new()))
        .build()
        .unwrap();
    let statuses = executor.statuses();
    let err = tokio::time::timeout(WAIT, MesosDriver::new(env, executor, statuses).run())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("400"), "{err}");
}

#[tokio::test]
async fn executor_wide_settings_reach_every_task() {
    let driver = DriverOptions {
        sandbox_mount: Some(("/var/lib/mesos/sandbox".into(), "/mnt/mesos/sandbox".into())),
        task_environment: [
            ("FROM_AGENT".to_owned(), "1".to_owned()),
            ("A".to_owned(), "agent".to_owned()),
        ]
        .into(),
        ..options()
    };
    let h = start_with(SimulatorOptions::default(), |_| {}, driver).await;
    let mut info = task("w");
    info.command.as_mut().unwrap().environment = Some(hoist_mesos::wire::Environment {
        variables: vec![hoist_mesos::wire::EnvironmentVariable {
            name: "A".into(),
            kind: None,
            value: Some("task".into()),
        }],
    });
    assert!(h.agent.launch(TaskInfo::from_fields(&info)));
    wait_state(&h.agent, "w", TaskState::Running).await;
    let spec = h.fake.spec_of(&h.fake.container_of("w").unwrap()).unwrap();
    assert_eq!(
        spec.volumes[0].container_path,
        std::path::Path::new("/mnt/mesos/sandbox")
    );
    assert_eq!(spec.env.get("FROM_AGENT").map(String::as_str), Some("1"));
    assert_eq!(
        spec.env.get("A").map(String::as_str),
        Some("task"),
        "the task's own value wins"
    );
    shutdown(h).await;
}

#[tokio::test]
async fn a_kill_policy_override_forces_a_kill_in_progress() {
    let h = start().await;
    h.fake.script(
        "stubborn",
        Script {
            ignore_term: true,
            ..Script::default()
        },
    );
    let mut info = task("stubborn");
    info.kill_policy = Some(KillPolicyInfo {
        grace_period: Some(DurationInfo::from_duration(Duration::from_secs(60))),
    });
    assert!(h.agent.launch(TaskInfo::from_fields(&info)));
    wait_state(&h.agent, "stubborn", TaskState::Running).await;
    assert!(h.agent.kill("stubborn", None));
    wait_state(&h.agent, "stubborn", TaskState::Killing).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        h.agent.snapshot().terminal("stubborn").is_empty(),
        "TERM is ignored for the 60 s grace"
    );
    // Killed within the harness's 10 s wait, not after the 60 s grace: the override forced it.
    assert!(h.agent.kill("stubborn", Some(Duration::ZERO)));
    let s = wait_state(&h.agent, "stubborn", TaskState::Killed).await;
    assert_eq!(s.terminal("stubborn").len(), 1);
    shutdown(h).await;
}
