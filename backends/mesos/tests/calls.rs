//! What the executor sends besides its updates: the agent's bearer token on every call, and
//! framework messages for the scheduler.

use std::sync::Arc;
use std::time::Duration;

use hoist_core::testing::FakeContainerizer;
use hoist_core::{ErrorKind, Executor};
use hoist_mesos::client::is_authentication_failure;
use hoist_mesos::testing::{AgentSimulator, SimulatorOptions};
use hoist_mesos::wire::{CallType, CommandInfo, Event, TaskInfo, TaskInfoFields, TaskState};
use hoist_mesos::{DriverOptions, Exit, MesosDriver};

/// Every wait on the driver or the simulator ends by then.
const WAIT: Duration = Duration::from_secs(10);
const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.executor.signature";

fn requiring_token() -> SimulatorOptions {
    SimulatorOptions {
        authentication_token: Some(TOKEN.into()),
        ..SimulatorOptions::default()
    }
}

fn driver(agent: &AgentSimulator) -> MesosDriver {
    let executor = Executor::builder(Arc::new(FakeContainerizer::new()))
        .build()
        .unwrap();
    let statuses = executor.statuses();
    MesosDriver::new(agent.env(), executor, statuses).options(DriverOptions {
        resend_interval: Duration::from_millis(200),
        heartbeat_interval: Some(Duration::from_millis(100)),
        ..DriverOptions::default()
    })
}

async fn run_to_shutdown(
    agent: &AgentSimulator,
    run: tokio::task::JoinHandle<hoist_core::Result<Exit>>,
) {
    assert!(agent.shutdown());
    let exit = tokio::time::timeout(WAIT, run)
        .await
        .expect("the driver exits")
        .unwrap()
        .unwrap();
    assert_eq!(exit, Exit::Shutdown);
}

#[tokio::test]
async fn the_token_rides_on_subscribe_and_on_every_call() {
    let agent = AgentSimulator::start(requiring_token()).await.unwrap();
    assert_eq!(agent.env().authentication_token.as_deref(), Some(TOKEN));
    let driver = driver(&agent);
    let messenger = driver.messenger();
    let run = tokio::spawn(driver.run());
    agent
        .wait_for("a SUBSCRIBE", WAIT, |s| s.connected)
        .await
        .unwrap();
    let mut task = TaskInfoFields::new("t", "agent-1");
    task.command = Some(CommandInfo::shell("sleep 1000"));
    assert!(agent.launch(TaskInfo::from_fields(&task)));
    messenger.send(b"hello".to_vec()).unwrap();
    agent
        .wait_for("RUNNING, a message and a heartbeat", WAIT, |s| {
            s.states("t").contains(&TaskState::Running)
                && !s.messages.is_empty()
                && s.heartbeats > 0
        })
        .await
        .unwrap();
    run_to_shutdown(&agent, run).await;

    let s = agent.snapshot();
    assert!(s.rejected.is_empty(), "{:?}", s.rejected);
    assert_eq!(s.unauthorized, 0);
    let bearer = format!("Bearer {TOKEN}");
    for kind in [
        CallType::Subscribe,
        CallType::Update,
        CallType::Message,
        CallType::Heartbeat,
    ] {
        assert!(
            s.authorizations.iter().any(|(k, _)| *k == kind),
            "no {kind:?} call: {:?}",
            s.authorizations
        );
    }
    for (kind, header) in &s.authorizations {
        assert_eq!(header.as_deref(), Some(bearer.as_str()), "{kind:?}");
    }
}

#[tokio::test]
async fn without_a_token_no_authorization_header_is_sent() {
    let agent = AgentSimulator::start(SimulatorOptions::default())
        .await
        .unwrap();
    let run = tokio::spawn(driver(&agent).run());
    agent
        .wait_for("a heartbeat", WAIT, |s| s.heartbeats > 0)
        .await
        .unwrap();
    run_to_shutdown(&agent, run).await;
    let s = agent.snapshot();
    assert!(!s.authorizations.is_empty());
    assert!(s.authorizations.iter().all(|(_, h)| h.is_none()), "{s:?}");
}

#[tokio::test]
async fn a_missing_or_wrong_token_ends_the_driver_with_an_authentication_error() {
    for token in [None, Some("forged"), Some("")] {
        let agent = AgentSimulator::start(requiring_token()).await.unwrap();
        let executor = Executor::builder(Arc::new(FakeContainerizer::new()))
            .build()
            .unwrap();
        let statuses = executor.statuses();
        let mut env = agent.env();
        env.authentication_token = token.map(str::to_owned);
        let err = tokio::time::timeout(WAIT, MesosDriver::new(env, executor, statuses).run())
            .await
            .unwrap_or_else(|_| panic!("token {token:?}: the driver did not give up"))
            .expect_err("a refused SUBSCRIBE is an error");
        assert!(is_authentication_failure(&err), "{token:?}: {err}");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let text = err.to_string();
        assert!(text.contains("authentication failed"), "{text}");
        assert!(text.contains("401 Unauthorized"), "{text}");
        assert!(
            text.contains("MESOS_EXECUTOR_AUTHENTICATION_TOKEN"),
            "{text}"
        );
        assert!(
            !text.contains(TOKEN),
            "the real token is not echoed: {text}"
        );
        let s = agent.snapshot();
        assert_eq!(s.unauthorized, 1, "{token:?}: one attempt, no retries");
        assert!(s.subscriptions.is_empty());
    }
}

#[tokio::test]
async fn framework_messages_reach_the_scheduler_in_order() {
    let agent = AgentSimulator::start(SimulatorOptions::default())
        .await
        .unwrap();
    let driver = driver(&agent);
    let messenger = driver.messenger();
    // Sent before the driver runs: held until SUBSCRIBED.
    messenger.send(b"early".to_vec()).unwrap();
    let run = tokio::spawn(driver.run());
    let binary: Vec<u8> = vec![0, 255, 10, 13, 0x80, b'"'];
    messenger.send(binary.clone()).unwrap();
    let clone = messenger.clone();
    tokio::spawn(async move { clone.send(Vec::new()) })
        .await
        .unwrap()
        .unwrap();
    let s = agent
        .wait_for("three messages", WAIT, |s| s.messages.len() == 3)
        .await
        .unwrap();
    assert_eq!(s.messages, [b"early".to_vec(), binary, Vec::new()]);
    assert!(s.rejected.is_empty(), "{:?}", s.rejected);
    run_to_shutdown(&agent, run).await;

    let err = messenger.send(b"too late".to_vec()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert!(err.to_string().contains("stopped"), "{err}");
    assert_eq!(agent.snapshot().messages.len(), 3);
}

#[tokio::test]
async fn a_messenger_of_a_driver_that_never_ran_reports_it() {
    let agent = AgentSimulator::start(SimulatorOptions::default())
        .await
        .unwrap();
    let messenger = driver(&agent).messenger();
    let err = messenger.send(b"lost".to_vec()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
}

#[tokio::test]
async fn messages_from_the_scheduler_reach_the_executor() {
    let agent = AgentSimulator::start(SimulatorOptions::default())
        .await
        .unwrap();
    let mut driver = driver(&agent);
    let mut inbox = driver.framework_messages();
    let run = tokio::spawn(driver.run());
    agent
        .wait_for("a SUBSCRIBE", WAIT, |s| s.connected)
        .await
        .unwrap();
    let binary: Vec<u8> = vec![0, 255, b'\n'];
    assert!(agent.send(&Event::message(b"first".to_vec())));
    assert!(agent.send(&Event::message(binary.clone())));
    for expected in [b"first".to_vec(), binary] {
        let got = tokio::time::timeout(WAIT, inbox.recv())
            .await
            .expect("the message arrives")
            .expect("the driver runs");
        assert_eq!(got, expected);
    }
    run_to_shutdown(&agent, run).await;
    let end = tokio::time::timeout(WAIT, inbox.recv()).await.unwrap();
    assert_eq!(end, None, "the inbox ends with the driver");
}
