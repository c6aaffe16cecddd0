//! Engine tests on the fake containerizer, with tokio's paused clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::health::{HealthCheck, HealthChecker, ProbeOutcome, ProbeTarget, TcpProbe};
use crate::hook::HookContext;
use crate::testing::{FakeContainerizer, SIGKILL, SIGTERM, Script};
use crate::{ExitStatus, Phase};

type Log = Arc<Mutex<Vec<String>>>;

/// A hook that records every phase it runs and can be told to fail one.
#[derive(Debug)]
struct Recorder {
    name: &'static str,
    priority: i64,
    log: Log,
    fail_in: Option<Phase>,
    hang_in: Option<Phase>,
}

impl Recorder {
    fn new(name: &'static str, priority: i64, log: &Log) -> Self {
        Recorder {
            name,
            priority,
            log: log.clone(),
            fail_in: None,
            hang_in: None,
        }
    }

    fn failing(mut self, phase: Phase) -> Self {
        self.fail_in = Some(phase);
        self
    }

    async fn phase(&self, phase: Phase) -> Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}:{}", self.name, phase));
        if self.hang_in == Some(phase) {
            std::future::pending::<()>().await;
        }
        if self.fail_in == Some(phase) {
            return Err(Error::new(ErrorKind::Backend, "boom"));
        }
        Ok(())
    }
}

#[async_trait]
impl Hook for Recorder {
    fn name(&self) -> &str {
        self.name
    }
    fn priority(&self) -> i64 {
        self.priority
    }
    async fn pre_create(&self, ctx: &mut HookContext<'_>, task: &mut TaskSpec) -> Result<()> {
        assert!(ctx.container_id.is_none());
        task.container
            .env
            .insert(format!("HOOK_{}", self.name.to_uppercase()), "1".into());
        self.phase(Phase::PreCreate).await
    }
    async fn pre_run(&self, ctx: &mut HookContext<'_>, _: &TaskSpec) -> Result<()> {
        assert!(ctx.container_id.is_some());
        ctx.state
            .get_mut::<Vec<&'static str>>()
            .map(|v| v.push(self.name))
            .unwrap_or_else(|| {
                ctx.state.insert(vec![self.name]);
            });
        self.phase(Phase::PreRun).await
    }
    async fn post_run(&self, _: &mut HookContext<'_>, _: &TaskSpec) -> Result<()> {
        self.phase(Phase::PostRun).await
    }
    async fn pre_stop(&self, _: &mut HookContext<'_>, _: &TaskSpec) -> Result<()> {
        self.phase(Phase::PreStop).await
    }
    async fn post_stop(&self, ctx: &mut HookContext<'_>, _: &TaskSpec) -> Result<()> {
        // Per-task state written in pre-run is still there (shared by every hook of the task).
        if let Some(seen) = ctx.state.get::<Vec<&'static str>>() {
            assert!(seen.contains(&self.name) || self.fail_in.is_some() || seen.len() < 4);
        }
        self.phase(Phase::PostStop).await
    }
}

fn task(id: &str) -> TaskSpec {
    TaskSpec::new(id, ContainerSpec::command(["server"]))
}

fn build(fake: &FakeContainerizer) -> (Executor, StatusStream) {
    let executor = Executor::builder(Arc::new(fake.clone()))
        .status_capacity(4096)
        .build()
        .unwrap();
    let statuses = executor.statuses();
    (executor, statuses)
}

/// An executor that keeps containers after their tasks end, so a test can ask how they ended.
fn build_keeping(fake: &FakeContainerizer) -> (Executor, StatusStream) {
    let executor = Executor::builder(Arc::new(fake.clone()))
        .keep_containers(true)
        .build()
        .unwrap();
    let statuses = executor.statuses();
    (executor, statuses)
}

/// The statuses already sent, without waiting.
fn drain(statuses: &mut StatusStream) -> Vec<TaskStatus> {
    std::iter::from_fn(|| statuses.try_recv()).collect()
}

/// Collects statuses of `id` until its terminal one, then checks nothing more arrives for it.
async fn until_terminal(statuses: &mut StatusStream, id: &str) -> Vec<TaskStatus> {
    let mut seen = Vec::new();
    while let Some(status) = statuses.recv().await {
        if status.task_id.as_str() != id {
            continue;
        }
        let done = status.state.is_terminal();
        seen.push(status);
        if done {
            return seen;
        }
    }
    panic!("status stream ended before {id} was terminal: {seen:?}");
}

fn states(statuses: &[TaskStatus]) -> Vec<TaskState> {
    statuses.iter().map(|s| s.state).collect()
}

/// Drains what is already queued and asserts it holds no status for `id`.
fn assert_no_more(statuses: &mut StatusStream, id: &str) {
    for status in drain(statuses) {
        assert_ne!(
            status.task_id.as_str(),
            id,
            "unexpected extra status {status}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_task_that_exits_zero_finishes() {
    let fake = FakeContainerizer::new();
    fake.script("t", Script::exits(0, Duration::from_secs(1)));
    let (executor, mut statuses) = build(&fake);
    executor.launch(task("t")).unwrap();
    let seen = until_terminal(&mut statuses, "t").await;
    assert_eq!(
        states(&seen),
        [TaskState::Starting, TaskState::Running, TaskState::Finished]
    );
    let last = seen.last().unwrap();
    assert_eq!(last.reason, Some(Reason::CommandExited));
    assert_eq!(last.message.as_deref(), Some("exited with code 0"));
    assert!(last.container_id.is_some());
    // The container is removed after the teardown, before the terminal status.
    assert_eq!(fake.calls_for("t"), ["create", "start", "wait", "remove"]);
    assert!(fake.live_containers().is_empty());
    assert!(
        executor.tasks().is_empty(),
        "terminal tasks leave the table"
    );
}

#[tokio::test(start_paused = true)]
async fn non_zero_exit_and_oom_fail_with_their_reasons() {
    let fake = FakeContainerizer::new();
    fake.script("bad", Script::exits(3, Duration::from_secs(1)));
    let mut oom = Script::exits(137, Duration::from_secs(1));
    oom.exit.oom_killed = true;
    fake.script("oom", oom);
    let (executor, mut statuses) = build(&fake);
    executor.launch(task("bad")).unwrap();
    let seen = until_terminal(&mut statuses, "bad").await;
    let last = seen.last().unwrap();
    assert_eq!(
        (last.state, last.reason),
        (TaskState::Failed, Some(Reason::CommandExited))
    );
    assert_eq!(last.message.as_deref(), Some("exited with code 3"));

    executor.launch(task("oom")).unwrap();
    let last = until_terminal(&mut statuses, "oom").await.pop().unwrap();
    assert_eq!(
        (last.state, last.reason),
        (TaskState::Failed, Some(Reason::MemoryLimit))
    );
    assert!(last.message.unwrap().contains("memory limit"));
}

#[tokio::test(start_paused = true)]
async fn hooks_run_by_priority_then_registration_in_every_phase() {
    let log = Log::default();
    let fake = FakeContainerizer::new();
    let executor = Executor::builder(Arc::new(fake.clone()))
        .hook(Recorder::new("low", -5, &log))
        .hook(Recorder::new("first", 10, &log))
        .hook(Recorder::new("tie-a", 0, &log))
        .hook(Recorder::new("tie-b", 0, &log))
        .build()
        .unwrap();
    let mut statuses = executor.statuses();
    executor.launch(task("t")).unwrap();
    let seen = until_terminal_after_running(&executor, &mut statuses, "t").await;
    assert_eq!(seen.last().unwrap().state, TaskState::Killed);
    let log = log.lock().unwrap().clone();
    let order = ["first", "tie-a", "tie-b", "low"];
    for phase in ["pre_create", "pre_run", "post_run", "pre_stop", "post_stop"] {
        let names: Vec<_> = log
            .iter()
            .filter_map(|l| l.strip_suffix(&format!(":{phase}")))
            .collect();
        assert_eq!(names, order, "order in {phase}");
    }
    // pre-create changed the spec the container was created with.
    let spec = fake.spec_of(&fake.container_of("t").unwrap()).unwrap();
    assert_eq!(spec.env.get("HOOK_FIRST").map(String::as_str), Some("1"));
    assert_eq!(spec.env.len(), 4);
}

/// Waits for running, kills, and collects the rest.
async fn until_terminal_after_running(
    executor: &Executor,
    statuses: &mut StatusStream,
    id: &str,
) -> Vec<TaskStatus> {
    let mut seen = Vec::new();
    while let Some(status) = statuses.recv().await {
        let running = status.state == TaskState::Running;
        seen.push(status);
        if running {
            break;
        }
    }
    executor.kill(&id.into(), None).unwrap();
    seen.extend(until_terminal(statuses, id).await);
    seen
}

#[tokio::test(start_paused = true)]
async fn a_setup_hook_failure_aborts_the_launch_and_tears_down() {
    let log = Log::default();
    let fake = FakeContainerizer::new();
    let executor = Executor::builder(Arc::new(fake.clone()))
        .hook(Recorder::new("good", 1, &log))
        .hook(Recorder::new("acl", 0, &log).failing(Phase::PreRun))
        .hook(Recorder::new("never", -1, &log))
        .build()
        .unwrap();
    let mut statuses = executor.statuses();
    executor.launch(task("t")).unwrap();
    let seen = until_terminal(&mut statuses, "t").await;
    assert_eq!(states(&seen), [TaskState::Starting, TaskState::Failed]);
    let last = seen.last().unwrap();
    assert_eq!(last.reason, Some(Reason::HookFailed));
    let message = last.message.as_deref().unwrap();
    assert!(
        message.contains("hook `acl` failed in pre_run"),
        "{message}"
    );
    assert!(message.contains("boom"), "{message}");
    // Never started; stopped (the container existed) and removed; every hook's teardown ran.
    assert_eq!(fake.calls_for("t"), ["create", "stop", "remove"]);
    let log = log.lock().unwrap().clone();
    assert!(!log.contains(&"never:pre_run".to_string()));
    for hook in ["good", "acl", "never"] {
        assert!(
            log.contains(&format!("{hook}:pre_stop")),
            "{hook} pre_stop in {log:?}"
        );
        assert!(
            log.contains(&format!("{hook}:post_stop")),
            "{hook} post_stop in {log:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_pre_create_failure_fails_without_creating() {
    let log = Log::default();
    let fake = FakeContainerizer::new();
    let executor = Executor::builder(Arc::new(fake.clone()))
        .hook(Recorder::new("network", 0, &log).failing(Phase::PreCreate))
        .build()
        .unwrap();
    let mut statuses = executor.statuses();
    executor.launch(task("t")).unwrap();
    let last = until_terminal(&mut statuses, "t").await.pop().unwrap();
    assert_eq!(
        (last.state, last.reason),
        (TaskState::Failed, Some(Reason::HookFailed))
    );
    assert_eq!(fake.calls_to("create"), 0);
}

#[tokio::test(start_paused = true)]
async fn teardown_failures_are_reported_and_later_hooks_still_run() {
    let log = Log::default();
    let fake = FakeContainerizer::new();
    let executor = Executor::builder(Arc::new(fake.clone()))
        .hook(Recorder::new("flaky", 1, &log).failing(Phase::PreStop))
        .hook(Recorder::new("after", 0, &log))
        .build()
        .unwrap();
    let mut statuses = executor.statuses();
    executor.launch(task("t")).unwrap();
    let seen = until_terminal_after_running(&executor, &mut statuses, "t").await;
    let last = seen.last().unwrap();
    assert_eq!(last.state, TaskState::Killed);
    assert!(
        last.message
            .as_deref()
            .unwrap()
            .contains("teardown: hook `flaky` failed in pre_stop")
    );
    let log = log.lock().unwrap().clone();
    assert!(log.contains(&"after:pre_stop".into()) && log.contains(&"after:post_stop".into()));
    assert_eq!(
        fake.calls_to("stop"),
        1,
        "the container is stopped despite the hook failure"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hung_hook_times_out() {
    let log = Log::default();
    let fake = FakeContainerizer::new();
    let mut hung = Recorder::new("hung", 0, &log);
    hung.hang_in = Some(Phase::PostRun);
    let executor = Executor::builder(Arc::new(fake.clone()))
        .hook(hung)
        .hook_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut statuses = executor.statuses();
    let started = tokio::time::Instant::now();
    executor.launch(task("t")).unwrap();
    let last = until_terminal(&mut statuses, "t").await.pop().unwrap();
    assert_eq!(last.state, TaskState::Failed);
    assert!(last.message.unwrap().contains("did not finish within 5s"));
    assert!(started.elapsed() >= Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn tasks_name_the_container_as_soon_as_it_is_created() {
    // The container's process can be at work before the post-run hooks finish and the task
    // is reported running; `tasks` must already name its container then.
    let log = Log::default();
    let fake = FakeContainerizer::new();
    let mut slow = Recorder::new("slow", 0, &log);
    slow.hang_in = Some(Phase::PostRun);
    let executor = Executor::builder(Arc::new(fake.clone()))
        .hook(slow)
        .hook_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    executor.launch(task("t")).unwrap();
    while fake.calls_to("start") == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let tasks = executor.tasks();
    assert_eq!(tasks.len(), 1);
    let TaskInfo {
        id,
        state,
        container,
        healthy,
    } = &tasks[0];
    assert_eq!(id.as_str(), "t");
    assert_eq!(*state, TaskState::Starting);
    assert_eq!(container.as_ref(), fake.container_of("t").as_ref());
    assert!(container.is_some());
    assert_eq!(*healthy, None);
    assert_eq!(executor.container_of(&"t".into()), fake.container_of("t"));
}

#[tokio::test(start_paused = true)]
async fn kill_sends_killing_then_killed_and_honours_the_grace() {
    let fake = FakeContainerizer::new();
    fake.script(
        "stubborn",
        Script {
            ignore_term: true,
            ..Script::default()
        },
    );
    let (executor, mut statuses) = build_keeping(&fake);
    let mut spec = task("stubborn");
    spec.kill_policy.grace = Duration::from_secs(7);
    executor.launch(spec).unwrap();
    let mut seen = vec![
        statuses.recv().await.unwrap(),
        statuses.recv().await.unwrap(),
    ];
    assert_eq!(states(&seen), [TaskState::Starting, TaskState::Running]);
    let killed_at = tokio::time::Instant::now();
    executor.kill(&"stubborn".into(), None).unwrap();
    seen.extend(until_terminal(&mut statuses, "stubborn").await);
    assert_eq!(
        states(&seen),
        [
            TaskState::Starting,
            TaskState::Running,
            TaskState::Killing,
            TaskState::Killed
        ]
    );
    assert_eq!(seen[3].reason, Some(Reason::KillRequested));
    // TERM was ignored: KILL came only after the whole grace.
    assert_eq!(killed_at.elapsed(), Duration::from_secs(7));
    let id = fake.container_of("stubborn").unwrap();
    assert_eq!(fake.wait(&id).await.unwrap(), ExitStatus::signal(SIGKILL));
}

#[tokio::test(start_paused = true)]
async fn a_kill_grace_override_and_a_forcing_second_kill() {
    let fake = FakeContainerizer::new();
    fake.default_script(Script {
        ignore_term: true,
        ..Script::default()
    });
    let (executor, mut statuses) = build(&fake);
    let mut spec = task("t");
    spec.kill_policy.grace = Duration::from_secs(60);
    executor.launch(spec).unwrap();
    let _ = (statuses.recv().await, statuses.recv().await);
    let start = tokio::time::Instant::now();
    executor
        .kill(&"t".into(), Some(Duration::from_secs(30)))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A second kill with a shorter grace forces the stop in progress.
    executor.kill(&"t".into(), Some(Duration::ZERO)).unwrap();
    let seen = until_terminal(&mut statuses, "t").await;
    assert_eq!(states(&seen), [TaskState::Killing, TaskState::Killed]);
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "forced after {:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn killing_twice_and_killing_a_finished_task() {
    let fake = FakeContainerizer::new();
    let (executor, mut statuses) = build(&fake);
    executor.launch(task("t")).unwrap();
    let _ = (statuses.recv().await, statuses.recv().await);
    executor.kill(&"t".into(), None).unwrap();
    let second = executor.kill(&"t".into(), None);
    let seen = until_terminal(&mut statuses, "t").await;
    assert_eq!(states(&seen), [TaskState::Killing, TaskState::Killed]);
    // The second kill was either queued behind the first or found the task gone; either way
    // only one terminal status exists.
    if let Err(e) = second {
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_no_more(&mut statuses, "t");
    let err = executor.kill(&"t".into(), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("task t does not exist"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_kill_racing_the_tasks_exit_gives_one_terminal_status() {
    for offset_ms in [0u64, 1, 2] {
        let fake = FakeContainerizer::new();
        fake.script("t", Script::exits(0, Duration::from_millis(100)));
        let (executor, mut statuses) = build(&fake);
        executor.launch(task("t")).unwrap();
        let _ = (statuses.recv().await, statuses.recv().await);
        tokio::time::sleep(Duration::from_millis(99 + offset_ms)).await;
        let _ = executor.kill(&"t".into(), None);
        let seen = until_terminal(&mut statuses, "t").await;
        let terminal: Vec<_> = seen.iter().filter(|s| s.state.is_terminal()).collect();
        assert_eq!(terminal.len(), 1);
        assert!(matches!(
            terminal[0].state,
            TaskState::Killed | TaskState::Finished
        ));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_no_more(&mut statuses, "t");
    }
}

#[tokio::test(start_paused = true)]
async fn a_kill_during_launch_stops_after_the_step_in_flight() {
    let fake = FakeContainerizer::new();
    fake.script(
        "slow",
        Script {
            create_delay: Duration::from_secs(10),
            ..Script::default()
        },
    );
    let (executor, mut statuses) = build(&fake);
    executor.launch(task("slow")).unwrap();
    assert_eq!(statuses.recv().await.unwrap().state, TaskState::Starting);
    tokio::time::sleep(Duration::from_secs(1)).await;
    executor.kill(&"slow".into(), None).unwrap();
    let seen = until_terminal(&mut statuses, "slow").await;
    assert_eq!(states(&seen), [TaskState::Killing, TaskState::Killed]);
    // Created (the step in flight finished), never started, then stopped and removed.
    assert_eq!(fake.calls_for("slow"), ["create", "stop", "remove"]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_launch_waits_for_every_teardown() {
    let log = Log::default();
    let fake = FakeContainerizer::new();
    fake.script(
        "launching",
        Script {
            start_delay: Duration::from_secs(3),
            ..Script::default()
        },
    );
    fake.script(
        "stubborn",
        Script {
            ignore_term: true,
            ..Script::default()
        },
    );
    let executor = Executor::builder(Arc::new(fake.clone()))
        .hook(Recorder::new("rec", 0, &log))
        .build()
        .unwrap();
    let mut statuses = executor.statuses();
    executor.launch(task("running")).unwrap();
    executor.launch(task("stubborn")).unwrap();
    executor.launch(task("launching")).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = tokio::time::Instant::now();
    executor.shutdown(Some(Duration::from_secs(2))).await;
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "waited for the stubborn task's grace"
    );
    let mut terminal = Vec::new();
    for status in drain(&mut statuses) {
        if status.state.is_terminal() {
            terminal.push((status.task_id.to_string(), status.state, status.reason));
        }
    }
    terminal.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        terminal,
        [
            (
                "launching".into(),
                TaskState::Killed,
                Some(Reason::ExecutorShutdown)
            ),
            (
                "running".into(),
                TaskState::Killed,
                Some(Reason::ExecutorShutdown)
            ),
            (
                "stubborn".into(),
                TaskState::Killed,
                Some(Reason::ExecutorShutdown)
            ),
        ]
    );
    assert_eq!(
        log.lock()
            .unwrap()
            .iter()
            .filter(|l| l.ends_with("post_stop"))
            .count(),
        3
    );
    let err = executor.launch(task("late")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
}

#[tokio::test(start_paused = true)]
async fn duplicate_ids_are_refused() {
    let fake = FakeContainerizer::new();
    let (executor, _statuses) = build(&fake);
    executor.launch(task("t")).unwrap();
    let err = executor.launch(task("t")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
}

#[tokio::test(start_paused = true)]
async fn backend_refusals_end_in_error_or_failed() {
    let fake = FakeContainerizer::new();
    fake.script(
        "unsupported",
        Script {
            fail_create: Some((
                ErrorKind::Unsupported,
                "the fake backend does not support volumes".into(),
            )),
            ..Script::default()
        },
    );
    fake.script(
        "broken",
        Script {
            fail_start: Some((ErrorKind::Backend, "engine exploded".into())),
            ..Script::default()
        },
    );
    let (executor, mut statuses) = build(&fake);
    executor.launch(task("unsupported")).unwrap();
    let last = until_terminal(&mut statuses, "unsupported")
        .await
        .pop()
        .unwrap();
    assert_eq!(
        (last.state, last.reason),
        (TaskState::Error, Some(Reason::InvalidSpec))
    );
    assert!(last.message.unwrap().contains("does not support volumes"));

    executor.launch(task("broken")).unwrap();
    let last = until_terminal(&mut statuses, "broken").await.pop().unwrap();
    assert_eq!(
        (last.state, last.reason),
        (TaskState::Failed, Some(Reason::LaunchFailed))
    );
    assert!(last.message.unwrap().contains("engine exploded"));
}

#[tokio::test(start_paused = true)]
async fn an_invalid_spec_is_an_error_status() {
    let fake = FakeContainerizer::new();
    let (executor, mut statuses) = build(&fake);
    executor
        .launch(TaskSpec::new("t", ContainerSpec::default()))
        .unwrap();
    let last = until_terminal(&mut statuses, "t").await.pop().unwrap();
    assert_eq!(
        (last.state, last.reason),
        (TaskState::Error, Some(Reason::InvalidSpec))
    );
    assert!(
        last.message
            .unwrap()
            .contains("needs an `image` or a `command`")
    );
    assert_eq!(fake.calls_to("create"), 0);
}

#[tokio::test(start_paused = true)]
async fn containers_killed_or_removed_outside_the_executor() {
    let fake = FakeContainerizer::new();
    let (executor, mut statuses) = build(&fake);
    executor.launch(task("killed")).unwrap();
    executor.launch(task("removed")).unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    fake.kill_externally(&fake.container_of("killed").unwrap(), SIGKILL);
    let last = until_terminal(&mut statuses, "killed").await.pop().unwrap();
    assert_eq!(last.state, TaskState::Failed);
    assert_eq!(last.message.as_deref(), Some("killed by signal 9"));

    fake.remove_externally(&fake.container_of("removed").unwrap());
    let last = until_terminal(&mut statuses, "removed")
        .await
        .pop()
        .unwrap();
    assert_eq!(
        (last.state, last.reason),
        (TaskState::Lost, Some(Reason::ContainerGone))
    );
}

/// A checker that plays a script of outcomes, then repeats the last.
#[derive(Debug)]
struct Scripted(Mutex<Vec<ProbeOutcome>>);

#[async_trait]
impl HealthChecker for Scripted {
    async fn check(&self, _: &ProbeTarget, _: Duration) -> ProbeOutcome {
        let mut script = self.0.lock().unwrap();
        if script.len() > 1 {
            script.remove(0)
        } else {
            script[0].clone()
        }
    }
}

#[tokio::test(start_paused = true)]
async fn health_changes_are_reported_and_a_failing_check_kills_the_task() {
    let fake = FakeContainerizer::new();
    let outcomes = vec![
        ProbeOutcome::Healthy,
        ProbeOutcome::Healthy,
        ProbeOutcome::Unhealthy("HTTP 503".into()),
        ProbeOutcome::Unhealthy("HTTP 503".into()),
        ProbeOutcome::Unhealthy("HTTP 503".into()),
    ];
    let script = Arc::new(Scripted(Mutex::new(outcomes)));
    let executor = Executor::builder(Arc::new(fake.clone()))
        .health_checkers(move |_| script.clone())
        .keep_containers(true)
        .build()
        .unwrap();
    let mut statuses = executor.statuses();
    let mut spec = task("web");
    spec.health_check = Some(HealthCheck::new(crate::health::Probe::Tcp(TcpProbe {
        port: 80,
    })));
    executor.launch(spec).unwrap();
    let seen = until_terminal(&mut statuses, "web").await;
    let summary: Vec<_> = seen.iter().map(|s| (s.state, s.healthy)).collect();
    assert_eq!(
        summary,
        [
            (TaskState::Starting, None),
            (TaskState::Running, None),
            (TaskState::Running, Some(true)),
            (TaskState::Running, Some(false)),
            (TaskState::Killing, None),
            (TaskState::Killed, None),
        ]
    );
    assert_eq!(seen[3].reason, Some(Reason::HealthCheckStatusUpdated));
    assert_eq!(seen[3].message.as_deref(), Some("HTTP 503"));
    let last = seen.last().unwrap();
    assert_eq!(last.reason, Some(Reason::HealthCheckFailed));
    assert!(
        last.message
            .as_deref()
            .unwrap()
            .contains("3 consecutive failed health checks")
    );
    let id = fake.container_of("web").unwrap();
    assert_eq!(fake.wait(&id).await.unwrap(), ExitStatus::signal(SIGTERM));
}

#[tokio::test(start_paused = true)]
async fn a_restarted_executor_reattaches_to_running_containers() {
    let fake = FakeContainerizer::new();
    let first = Executor::builder(Arc::new(fake.clone()))
        .executor_id("exec-1")
        .build()
        .unwrap();
    let statuses = first.statuses();
    first.launch(task("long")).unwrap();
    let mut exiting = task("exits-later");
    exiting.kill_policy.grace = Duration::from_secs(1);
    fake.script("exits-later", Script::exits(4, Duration::from_secs(60)));
    first.launch(exiting.clone()).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop((first, statuses)); // the executor dies without tearing anything down

    // Another executor's containers are not ours.
    let other = Executor::builder(Arc::new(fake.clone()))
        .executor_id("exec-2")
        .build()
        .unwrap();
    assert_eq!(other.recover([]).await.unwrap(), RecoveryReport::default());

    let second = Executor::builder(Arc::new(fake.clone()))
        .executor_id("exec-1")
        .build()
        .unwrap();
    let mut statuses = second.statuses();
    let report = second.recover([exiting]).await.unwrap();
    let mut reattached: Vec<_> = report.reattached.iter().map(|t| t.to_string()).collect();
    reattached.sort();
    assert_eq!(reattached, ["exits-later", "long"]);
    let first_status = statuses.recv().await.unwrap();
    assert_eq!(
        (first_status.state, first_status.reason),
        (TaskState::Running, Some(Reason::Recovered))
    );
    // Its own exit is still seen...
    let last = until_terminal(&mut statuses, "exits-later")
        .await
        .pop()
        .unwrap();
    assert_eq!(last.message.as_deref(), Some("exited with code 4"));
    // ...and it can be killed.
    second.kill(&"long".into(), None).unwrap();
    let last = until_terminal(&mut statuses, "long").await.pop().unwrap();
    assert_eq!(last.state, TaskState::Killed);
}

#[tokio::test(start_paused = true)]
async fn recovery_can_clean_up_instead() {
    let fake = FakeContainerizer::new();
    let first = Executor::builder(Arc::new(fake.clone())).build().unwrap();
    first.launch(task("a")).unwrap();
    first.launch(task("b")).unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    drop(first);
    let second = Executor::builder(Arc::new(fake.clone()))
        .recovery(RecoveryMode::Cleanup)
        .build()
        .unwrap();
    let report = second.recover([]).await.unwrap();
    assert_eq!(report.cleaned_up.len(), 2);
    assert!(report.reattached.is_empty());
    assert!(
        fake.live_containers().is_empty(),
        "every container was removed"
    );
    assert!(second.tasks().is_empty());
}

#[tokio::test]
async fn hook_configuration_is_validated_at_build() {
    #[derive(Debug)]
    struct Misconfigured;
    #[async_trait]
    impl Hook for Misconfigured {
        fn name(&self) -> &str {
            "acl"
        }
        fn validate(&self) -> Result<()> {
            Err(Error::invalid("`acl.chain` must not be FORWARD"))
        }
    }
    let err = Executor::builder(Arc::new(FakeContainerizer::new()))
        .hook(Misconfigured)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("hook `acl` is misconfigured"),
        "{err}"
    );
    assert!(err.to_string().contains("acl.chain"), "{err}");

    let log = Log::default();
    let err = Executor::builder(Arc::new(FakeContainerizer::new()))
        .hook(Recorder::new("same", 0, &log))
        .hook(Recorder::new("same", 1, &log))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("registered twice"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn the_status_stream_ends_when_the_executor_is_gone() {
    let fake = FakeContainerizer::new();
    fake.script("t", Script::exits(0, Duration::from_secs(1)));
    let (executor, mut statuses) = build(&fake);
    executor.launch(task("t")).unwrap();
    drop(executor);
    let mut count = 0;
    while statuses.recv().await.is_some() {
        count += 1;
    }
    assert_eq!(count, 3, "starting, running, finished, then the end");
}

#[tokio::test(start_paused = true)]
async fn many_tasks_each_get_exactly_one_terminal_status() {
    let fake = FakeContainerizer::without_recording();
    let (executor, mut statuses) = build(&fake);
    for i in 0..500 {
        executor.launch(task(&format!("t{i}"))).unwrap();
    }
    for i in (0..500).step_by(2) {
        let _ = executor.kill(&format!("t{i}").into(), None);
    }
    executor.shutdown(None).await;
    let mut terminal = std::collections::HashMap::new();
    for status in drain(&mut statuses) {
        if status.state.is_terminal() {
            *terminal.entry(status.task_id).or_insert(0) += 1;
        }
    }
    assert_eq!(terminal.len(), 500);
    assert!(terminal.values().all(|&n| n == 1));
}

#[tokio::test(start_paused = true)]
async fn a_handle_follows_its_task_and_run_returns_the_end() {
    use futures::StreamExt;
    let fake = FakeContainerizer::new();
    fake.script("t", Script::exits(0, Duration::from_secs(1)));
    let (executor, _) = build(&fake);
    let handle = executor.launch(task("t")).unwrap();
    assert_eq!(handle.id().as_str(), "t");
    assert_eq!(handle.status().state, TaskState::Starting);
    let seen: Vec<_> = handle.statuses().collect().await;
    assert_eq!(
        states(&seen),
        [TaskState::Starting, TaskState::Running, TaskState::Finished]
    );
    assert_eq!(handle.wait().await.state, TaskState::Finished);
    assert!(
        executor.handle(&"t".into()).is_none(),
        "ended tasks have no handle"
    );

    fake.script("job", Script::exits(3, Duration::from_secs(1)));
    let ended = executor.run(task("job")).await.unwrap();
    assert_eq!(ended.state, TaskState::Failed);
    assert_eq!(ended.message.as_deref(), Some("exited with code 3"));
    let err = executor.run(task("")).await.unwrap();
    assert_eq!(
        err.state,
        TaskState::Error,
        "an invalid spec is a status, not an error"
    );
}

#[tokio::test(start_paused = true)]
async fn a_handle_kills_and_a_second_handle_sees_the_same_task() {
    let fake = FakeContainerizer::new();
    let (executor, _) = build(&fake);
    let first = executor.launch(task("web")).unwrap();
    first.wait_for(|s| s.state == TaskState::Running).await;
    let second = executor.handle(&"web".into()).unwrap();
    assert_eq!(second.status().state, TaskState::Running);
    second.kill(Some(Duration::from_secs(1)));
    let end = first.wait().await;
    assert_eq!(
        (end.state, end.reason),
        (TaskState::Killed, Some(Reason::KillRequested))
    );
    assert_eq!(second.wait().await, end);
    first.kill(None); // after the end: nothing happens
    assert!(fake.live_containers().is_empty());
}

#[tokio::test(start_paused = true)]
async fn what_the_backend_cannot_honour_is_refused_before_create() {
    let fake = FakeContainerizer::new();
    let mut caps = crate::Capabilities::all();
    caps.cpu_limit = crate::capabilities::Limit::Unsupported;
    fake.set_capabilities(caps);
    let (executor, _) = build(&fake);
    let mut spec = task("hungry");
    spec.container.resources.cpus = Some(2.0);
    let end = executor.run(spec).await.unwrap();
    assert_eq!(
        (end.state, end.reason),
        (TaskState::Error, Some(Reason::InvalidSpec))
    );
    let message = end.message.unwrap();
    assert!(message.contains("`resources.cpus`"), "{message}");
    assert!(message.contains("backend: fake"), "{message}");
    assert_eq!(fake.calls_to("create"), 0);
}

#[tokio::test(start_paused = true)]
async fn temporary_wait_failures_are_retried_then_the_task_is_lost() {
    use crate::layer::{Fault, FaultLayer, Method, RetryLayer};
    let fake = FakeContainerizer::new();
    fake.script("a", Script::exits(0, Duration::from_secs(5)));
    let faults = FaultLayer::new();
    // The faults inside the retry: what the backend itself would answer.
    let executor = Executor::builder(Arc::new(fake.clone()))
        .retry(None)
        .layer(faults.clone())
        .layer(RetryLayer::new())
        .build()
        .unwrap();
    faults.push_n(Method::Wait, 2, Fault::unavailable());
    let end = executor.run(task("a")).await.unwrap();
    assert_eq!(end.state, TaskState::Finished, "{end}");

    faults.always(Method::Wait, Some(Fault::unavailable()));
    let end = executor.run(task("b")).await.unwrap();
    assert_eq!(
        (end.state, end.reason),
        (TaskState::Lost, Some(Reason::BackendFailed))
    );
    assert!(end.message.unwrap().contains("injected"));
    // The first call and three retries.
    assert_eq!(faults.calls(Method::Wait), 3 + 4);
    // Teardown stopped and removed the container even so.
    assert!(fake.live_containers().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_hook_fails_the_launch_and_every_teardown_runs() {
    #[derive(Debug)]
    struct Panics;
    #[async_trait]
    impl Hook for Panics {
        fn name(&self) -> &str {
            "panics"
        }
        async fn pre_run(&self, _: &mut HookContext<'_>, _: &TaskSpec) -> Result<()> {
            panic!("a bug in a hook")
        }
    }
    let log = Log::default();
    let fake = FakeContainerizer::new();
    // One hook value shared through an Arc, as a program keeping a handle on it would.
    let shared = Arc::new(Recorder::new("shared", 0, &log));
    let executor = Executor::builder(Arc::new(fake.clone()))
        .hook(shared.clone())
        .hook(Panics)
        .build()
        .unwrap();
    let end = executor.run(task("t")).await.unwrap();
    assert_eq!(
        (end.state, end.reason),
        (TaskState::Failed, Some(Reason::HookFailed))
    );
    let message = end.message.unwrap();
    assert!(
        message.contains("hook `panics` failed in pre_run"),
        "{message}"
    );
    assert!(message.contains("a bug in a hook"), "{message}");
    let log = log.lock().unwrap().clone();
    assert!(log.contains(&"shared:post_stop".to_owned()), "{log:?}");
    assert!(fake.live_containers().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_lagging_subscriber_skips_but_handles_see_every_end() {
    let fake = FakeContainerizer::without_recording();
    let executor = Executor::builder(Arc::new(fake.clone()))
        .status_capacity(4)
        .build()
        .unwrap();
    let mut statuses = executor.statuses();
    let handles: Vec<_> = (0..20)
        .map(|i| executor.launch(task(&format!("t{i}"))).unwrap())
        .collect();
    for handle in &handles {
        handle.kill(None);
    }
    for handle in &handles {
        assert!(handle.wait().await.state.is_terminal());
    }
    let received = drain(&mut statuses).len();
    assert!(received <= 4, "the buffer holds at most 4: {received}");
    assert!(statuses.missed() > 0);
    // Every task sent at least starting, killing and killed.
    assert!(received as u64 + statuses.missed() >= 20 * 3);
}

#[tokio::test(start_paused = true)]
async fn events_arrive_in_order_for_a_launch_with_hooks_and_a_failing_check() {
    use crate::observe::TaskEventKind as Kind;
    let log = Log::default();
    let fake = FakeContainerizer::new();
    let script = Arc::new(Scripted(Mutex::new(vec![
        ProbeOutcome::Unhealthy("HTTP 503".into()),
        ProbeOutcome::Unhealthy("HTTP 503".into()),
    ])));
    let mut registry = prometheus_client::registry::Registry::default();
    let executor = Executor::builder(Arc::new(fake.clone()))
        .hook(Recorder::new("acl", 1, &log))
        .health_checkers(move |_| script.clone())
        .metrics(&mut registry)
        .build()
        .unwrap();
    let mut events = executor.events();
    let mut spec = task("web");
    let mut check = HealthCheck::new(crate::health::Probe::Tcp(TcpProbe { port: 80 }));
    check.delay = Duration::ZERO;
    check.grace_period = Duration::ZERO;
    check.consecutive_failures = 2;
    spec.health_check = Some(check);
    let end = executor.run(spec).await.unwrap();
    assert_eq!(end.reason, Some(Reason::HealthCheckFailed));

    let seen: Vec<_> = std::iter::from_fn(|| events.try_recv()).collect();
    let kinds: Vec<_> = seen
        .iter()
        .map(|e| match e.kind {
            Kind::HookPhase => format!("hook:{}", e.details["phase"]),
            other => other.to_string(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "hook:pre_create",
            "created",
            "hook:pre_run",
            "started",
            "hook:post_run",
            "health_probe_failed",
            "health_probe_failed",
            "hook:pre_stop",
            "hook:post_stop",
        ]
    );
    assert!(seen.iter().all(|e| e.task.as_str() == "web"));
    assert_eq!(seen[5].message, "HTTP 503");
    assert_eq!(seen[6].details["consecutive"], "2");
    assert_eq!(seen[0].details["hook"], "acl");
    assert_eq!(events.missed(), 0);

    let (_, text) = crate::observe::metrics::encode(&registry, None).unwrap();
    for line in [
        "hoist_task_launches_total 1\n",
        "hoist_tasks{state=\"running\"} 0\n",
        "hoist_task_terminations_total{state=\"killed\",reason=\"health_check_failed\"} 1\n",
        "hoist_health_checks_total{result=\"unhealthy\"} 2\n",
        "hoist_task_launch_duration_seconds_count{phase=\"create\"} 1\n",
        "hoist_hook_duration_seconds_count{hook=\"acl\",phase=\"post_stop\",outcome=\"ok\"} 1\n",
    ] {
        assert!(
            text.contains(line),
            "`{}` missing from:\n{text}",
            line.trim()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_out_of_memory_exit_is_an_event_and_a_backend_emits_in_its_calls() {
    use crate::layer::{Layer, LayeredContainerizer};
    use crate::observe::{TaskEventKind, emit};
    /// A backend that reports a pull from inside `create`.
    #[derive(Debug)]
    struct Pulls(FakeContainerizer);
    #[async_trait]
    impl LayeredContainerizer for Pulls {
        type Inner = FakeContainerizer;
        fn inner(&self) -> &FakeContainerizer {
            &self.0
        }
        async fn create(
            &self,
            owner: &crate::Owner,
            spec: &ContainerSpec,
        ) -> Result<crate::ContainerId> {
            emit(
                TaskEventKind::ImagePullStarted,
                "pulling busybox",
                &[("image", "busybox")],
            );
            emit(TaskEventKind::ImagePulled, "pulled busybox", &[]);
            self.0.create(owner, spec).await
        }
    }
    let fake = FakeContainerizer::new();
    fake.script(
        "hog",
        Script {
            exit_after: Some(Duration::from_secs(1)),
            exit: ExitStatus {
                code: Some(137),
                signal: None,
                oom_killed: true,
            },
            ..Script::default()
        },
    );
    let layered = crate::layer::TracingLayer.layer(Pulls(fake));
    let executor = Executor::builder(Arc::new(layered)).build().unwrap();
    let mut events = executor.events();
    let end = executor.run(task("hog")).await.unwrap();
    assert_eq!(end.reason, Some(Reason::MemoryLimit));
    let kinds: Vec<_> = std::iter::from_fn(|| events.try_recv())
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            TaskEventKind::ImagePullStarted,
            TaskEventKind::ImagePulled,
            TaskEventKind::Created,
            TaskEventKind::Started,
            TaskEventKind::OutOfMemory,
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_hook_hung_in_any_phase_is_ended_by_the_deadline_with_one_terminal_status() {
    // A setup hook that hangs fails the launch; a teardown hook that hangs does not change
    // how the task ended, and the message says it.
    let failed = (TaskState::Failed, Some(Reason::HookFailed));
    let finished = (TaskState::Finished, Some(Reason::CommandExited));
    // (phase the hook hangs in, the task's end, whether the container was ever created)
    let cases = [
        (Phase::PreCreate, failed, false),
        (Phase::PreRun, failed, true),
        (Phase::PostRun, failed, true),
        (Phase::PreStop, finished, true),
        (Phase::PostStop, finished, true),
    ];
    for (phase, (state, reason), created) in cases {
        let log = Log::default();
        let fake = FakeContainerizer::new();
        fake.script("t", Script::exits(0, Duration::from_secs(30)));
        let mut hung = Recorder::new("hung", 1, &log);
        hung.hang_in = Some(phase);
        let executor = Executor::builder(Arc::new(fake.clone()))
            .hook(hung)
            .hook(Recorder::new("after", 0, &log))
            .hook_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let mut statuses = executor.statuses();
        executor.launch(task("t")).unwrap();
        let seen = until_terminal(&mut statuses, "t").await;
        let last = seen.last().unwrap();
        assert_eq!(
            (last.state, last.reason),
            (state, reason),
            "{phase}: {seen:?}"
        );
        let message = last.message.clone().unwrap_or_default();
        assert!(
            message.contains(&format!("hook `hung` failed in {phase}")),
            "{phase}: {message}"
        );
        assert!(
            message.contains("did not finish within 5s"),
            "{phase}: {message}"
        );
        // Long after the deadline: no second terminal status, nothing left behind.
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_no_more(&mut statuses, "t");
        assert_eq!(
            seen.iter().filter(|s| s.state.is_terminal()).count(),
            1,
            "{phase}"
        );
        assert_eq!(fake.calls_to("create"), usize::from(created), "{phase}");
        assert!(
            fake.live_containers().is_empty(),
            "{phase}: a container is left"
        );
        assert!(
            executor.tasks().is_empty(),
            "{phase}: the task is still tracked"
        );
        let log = log.lock().unwrap().clone();
        // The later hook's teardown ran whatever hung; a setup phase stopped at the hung hook.
        if created {
            assert!(
                log.contains(&"after:post_stop".to_owned()),
                "{phase}: {log:?}"
            );
        }
        if phase.is_setup() {
            assert!(
                !log.contains(&format!("after:{phase}")),
                "{phase}: the chain went on past the hung hook: {log:?}"
            );
        }
        executor.shutdown(None).await;
    }
}

/// An HTTP server on loopback whose `n`-th request (from 1) is answered `200` after
/// `answer_after(n)`, or never when that is `None`. Returns its port, how many requests were
/// left unanswered, and how many of those the prober then closed. Dropping the `JoinSet`
/// stops the server and every connection.
fn slow_then_silent_server(
    listener: std::net::TcpListener,
    answer_after: fn(usize) -> Option<Duration>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> (u16, Arc<Mutex<(usize, usize)>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let silent = Arc::new(Mutex::new((0, 0)));
    let counts = silent.clone();
    tasks.spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        for n in 1.. {
            let (mut stream, _) = listener.accept().await.unwrap();
            let counts = counts.clone();
            connections.spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => head.extend_from_slice(&buf[..read]),
                    }
                }
                match answer_after(n) {
                    Some(delay) => {
                        tokio::time::sleep(delay).await;
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                            .await;
                    }
                    None => {
                        counts.lock().unwrap().0 += 1;
                        // Never answers; the prober's timeout must close the connection.
                        while !matches!(stream.read(&mut buf).await, Ok(0) | Err(_)) {}
                        counts.lock().unwrap().1 += 1;
                    }
                }
            });
        }
    });
    (port, silent)
}

#[tokio::test(start_paused = true)]
async fn a_probe_target_that_answers_slowly_then_not_at_all_fails_the_task_once() {
    let mut server = tokio::task::JoinSet::new();
    // 1st probe answered in 1 s, the 2nd in 8 s (past the 5 s timeout), the 3rd in 1 s again,
    // and from the 4th on, never.
    let (port, silent) = slow_then_silent_server(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        |n| match n {
            1 | 3 => Some(Duration::from_secs(1)),
            2 => Some(Duration::from_secs(8)),
            _ => None,
        },
        &mut server,
    );
    let fake = FakeContainerizer::new();
    let (executor, mut statuses) = build(&fake);
    let mut spec = task("web");
    let mut check = HealthCheck::new(crate::health::Probe::Http(crate::health::HttpProbe {
        scheme: Default::default(),
        port,
        path: "/health".into(),
        statuses: Vec::new(),
    }));
    check.delay = Duration::from_secs(1);
    check.interval = Duration::from_secs(2);
    check.timeout = Duration::from_secs(5);
    check.grace_period = Duration::ZERO;
    check.consecutive_failures = 3;
    spec.health_check = Some(check);
    executor.launch(spec).unwrap();
    let seen = until_terminal(&mut statuses, "web").await;
    use TaskState::{Killed, Killing, Running, Starting};
    let running = [Running; 4];
    assert_eq!(
        states(&seen),
        [&[Starting, Running][..], &running, &[Killing, Killed]].concat()
    );
    // Healthy, then not (the slow answer), healthy again, then not for good.
    let health: Vec<_> = seen.iter().map(|s| s.healthy).collect();
    let flips = [Some(true), Some(false), Some(true), Some(false)];
    assert_eq!(health, [&[None, None][..], &flips, &[None, None]].concat());
    let timed_out =
        format!("waiting for the answer of 127.0.0.1:{port} timed out (probe timeout 5s)");
    for unhealthy in [&seen[3], &seen[5]] {
        assert_eq!(unhealthy.reason, Some(Reason::HealthCheckStatusUpdated));
        assert_eq!(unhealthy.message.as_deref(), Some(timed_out.as_str()));
    }
    let last = seen.last().unwrap();
    assert_eq!(last.reason, Some(Reason::HealthCheckFailed));
    let message = last.message.as_deref().unwrap();
    assert!(
        message.contains("3 consecutive failed health checks"),
        "{message}"
    );
    assert!(message.contains(&timed_out), "{message}");

    // Long after: no second terminal status, no container, no probe still connected.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_no_more(&mut statuses, "web");
    assert!(fake.live_containers().is_empty());
    assert!(executor.tasks().is_empty());
    let (unanswered, closed) = *silent.lock().unwrap();
    assert_eq!(
        unanswered, 3,
        "the monitor stopped probing after the third failure"
    );
    assert_eq!(
        closed, unanswered,
        "a timed-out probe left its connection open"
    );
    server.shutdown().await;
}
