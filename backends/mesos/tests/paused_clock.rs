//! The driver's timers with the agent's default periods, on tokio's paused clock: the
//! simulator and the driver share one thread, so virtual time only moves when both wait.

use std::sync::Arc;
use std::time::Duration;

use hoist_core::Executor;
use hoist_core::testing::{FakeContainerizer, Script};
use hoist_mesos::testing::{AgentSimulator, SimulatorOptions};
use hoist_mesos::wire::{
    CommandInfo, DurationInfo, KillPolicyInfo, TaskInfo, TaskInfoFields, TaskState,
};
use hoist_mesos::{AgentEnv, Exit, MesosDriver};
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(3600);

struct Running {
    agent: AgentSimulator,
    run: tokio::task::JoinHandle<hoist_core::Result<Exit>>,
    executor: Executor,
    stop: tokio_util::sync::CancellationToken,
}

async fn running_task(fake: &FakeContainerizer, env: impl FnOnce(&mut AgentEnv)) -> Running {
    let agent = AgentSimulator::start(SimulatorOptions::default())
        .await
        .unwrap();
    let executor = Executor::builder(Arc::new(fake.clone())).build().unwrap();
    let statuses = executor.statuses();
    // The agent's defaults: 15 minutes to recover, up to 2 s between attempts, 5 s to shut down.
    let mut agent_env = agent.env();
    agent_env.recovery_timeout = Duration::from_secs(15 * 60);
    agent_env.subscription_backoff_max = Duration::from_secs(2);
    agent_env.shutdown_grace_period = Duration::from_secs(5);
    env(&mut agent_env);
    let driver = MesosDriver::new(agent_env, executor.clone(), statuses);
    let stop = driver.stop_token();
    let run = tokio::spawn(driver.run());
    agent
        .wait_for("a SUBSCRIBE", WAIT, |s| s.connected)
        .await
        .unwrap();
    let mut info = TaskInfoFields::new("t", "agent-1");
    info.command = Some(CommandInfo::shell("sleep 1000"));
    info.kill_policy = Some(KillPolicyInfo {
        grace_period: Some(DurationInfo::from_duration(Duration::from_secs(60))),
    });
    agent.launch(TaskInfo::from_fields(&info));
    agent
        .wait_for("t running", WAIT, |s| {
            s.states("t").contains(&TaskState::Running)
        })
        .await
        .unwrap();
    Running {
        agent,
        run,
        executor,
        stop,
    }
}

#[tokio::test(start_paused = true)]
async fn resubscription_gives_up_exactly_at_the_recovery_timeout() {
    let fake = FakeContainerizer::new();
    let Running { agent, run, .. } = running_task(&fake, |_| {}).await;
    let lost = Instant::now();
    agent.restart(Duration::from_secs(24 * 3600));
    let exit = run.await.unwrap().unwrap();
    let took = lost.elapsed();
    assert_eq!(exit, Exit::RecoveryTimedOut);
    assert!(
        took >= Duration::from_secs(900) && took < Duration::from_secs(905),
        "{took:?}"
    );
    // Attempts came at random intervals of at most 2 s: at least 450 in 15 minutes.
    let attempts = agent.snapshot().unavailable;
    assert!(attempts >= 450, "{attempts} attempts");
    assert_eq!(fake.calls_to("stop"), 1, "the task was killed");
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_within_the_grace_period_even_when_tasks_ignore_term() {
    let fake = FakeContainerizer::new();
    fake.default_script(Script {
        ignore_term: true,
        ..Script::default()
    });
    let Running { agent, run, .. } = running_task(&fake, |_| {}).await;
    let asked = Instant::now();
    agent.shutdown();
    assert_eq!(run.await.unwrap().unwrap(), Exit::Shutdown);
    let took = asked.elapsed();
    // The kill gets 4 s of the 5 s (the rest is for the terminal update), not its 60 s policy.
    assert!(
        took >= Duration::from_secs(4) && took <= Duration::from_secs(5),
        "{took:?}"
    );
    let s = agent.snapshot();
    assert_eq!(s.states("t").last(), Some(&TaskState::Killed));
}

#[tokio::test(start_paused = true)]
async fn without_checkpointing_the_executor_does_not_wait_for_the_agent() {
    let fake = FakeContainerizer::new();
    let Running { agent, run, .. } = running_task(&fake, |env| env.checkpoint = false).await;
    let lost = Instant::now();
    agent.restart(Duration::from_secs(10));
    assert_eq!(run.await.unwrap().unwrap(), Exit::AgentLost);
    assert!(
        lost.elapsed() < Duration::from_secs(1),
        "{:?}",
        lost.elapsed()
    );
    assert_eq!(agent.snapshot().unavailable, 0, "no resubscription");
}

#[tokio::test(start_paused = true)]
async fn an_update_made_during_resubscription_is_sent_once_subscribed() {
    let fake = FakeContainerizer::new();
    let Running {
        agent,
        run,
        executor,
        ..
    } = running_task(&fake, |_| {}).await;
    agent.hold_subscribed();
    agent.drop_stream();
    agent
        .wait_for("the second SUBSCRIBE", WAIT, |s| s.subscriptions.len() == 2)
        .await
        .unwrap();
    // The task ends while the SUBSCRIBE is on its way: the SUBSCRIBE did not carry it.
    executor
        .kill(&hoist_core::TaskId::new("t"), Some(Duration::ZERO))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fake.calls_to("stop"), 1);
    let carried = &agent.snapshot().subscriptions[1].unacknowledged_updates;
    assert!(
        carried.iter().all(|u| u.status.state != TaskState::Killed),
        "{carried:?}"
    );
    assert!(!agent.snapshot().states("t").contains(&TaskState::Killed));
    let subscribed = Instant::now();
    assert!(agent.release_subscribed());
    agent
        .wait_for("TASK_KILLED", WAIT, |s| {
            s.states("t").contains(&TaskState::Killed)
        })
        .await
        .unwrap();
    let took = subscribed.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "sent {took:?} after SUBSCRIBED"
    );
    agent.shutdown();
    assert_eq!(run.await.unwrap().unwrap(), Exit::Shutdown);
    assert_eq!(agent.snapshot().terminal("t").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_stop_token_kills_every_task_and_waits_for_the_acknowledgement() {
    let fake = FakeContainerizer::new();
    let Running {
        agent, run, stop, ..
    } = running_task(&fake, |_| {}).await;
    stop.cancel();
    assert_eq!(run.await.unwrap().unwrap(), Exit::Stopped);
    let s = agent.snapshot();
    assert_eq!(s.terminal("t").len(), 1);
    assert_eq!(s.states("t").last(), Some(&TaskState::Killed));
    assert!(s.acknowledgements >= s.distinct("t").len(), "{s:?}");
    assert_eq!(fake.calls_to("stop"), 1);
}

#[tokio::test(start_paused = true)]
async fn an_agent_answering_503_for_a_while_gets_every_update_once_when_it_recovers() {
    let fake = FakeContainerizer::new();
    fake.script("t", Script::exits(0, Duration::from_secs(30)));
    let Running { agent, run, .. } = running_task(&fake, |_| {}).await;
    let before = agent.snapshot();
    assert_eq!(before.unavailable, 0);
    // For two minutes every call but SUBSCRIBE gets 503; the event stream stays open.
    let outage = Instant::now();
    agent.recover_for(Duration::from_secs(120));
    // A task launched during the outage, and one that ends during it.
    let mut info = TaskInfoFields::new("u", "agent-1");
    info.command = Some(CommandInfo::shell("sleep 1000"));
    assert!(agent.launch(TaskInfo::from_fields(&info)));
    tokio::time::sleep(Duration::from_secs(60)).await;
    let during = agent.snapshot();
    assert!(
        during.unavailable >= 3,
        "the updates were sent and refused: {during:?}"
    );
    assert_eq!(
        during.updates.len(),
        before.updates.len(),
        "nothing is accepted during the outage"
    );
    assert_eq!(fake.calls_to("create"), 2, "u was launched all the same");

    let s = agent
        .wait_for("t finished and u running", WAIT, |s| {
            s.states("t").contains(&TaskState::Finished)
                && s.states("u").contains(&TaskState::Running)
        })
        .await
        .unwrap();
    assert!(outage.elapsed() >= Duration::from_secs(120));
    assert_eq!(
        s.states("t"),
        [TaskState::Starting, TaskState::Running, TaskState::Finished]
    );
    assert_eq!(s.states("u"), [TaskState::Starting, TaskState::Running]);
    // Each update arrived once once accepted (no resend after its acknowledgement), and the
    // executor never had to subscribe again.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let s = agent.snapshot();
    assert_eq!(s.updates.len(), 5, "{:?}", s.updates);
    assert_eq!(s.acknowledgements, 5);
    assert_eq!(s.subscriptions.len(), 1);

    agent.shutdown();
    assert_eq!(run.await.unwrap().unwrap(), Exit::Shutdown);
    let s = agent.snapshot();
    assert_eq!(s.terminal("t").len(), 1);
    assert_eq!(s.terminal("u").len(), 1);
    assert_eq!(s.states("u").last(), Some(&TaskState::Killed));
    assert_eq!(fake.live_containers(), Vec::new(), "a container is left");
}
