//! The layers on the fake containerizer, with tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

// Not `super::*`: with `LayeredContainerizer` in scope too, a call on a layered value would be
// ambiguous between it and `Containerizer`.
use super::{
    CapabilityLayer, Fault, FaultLayer, Layer, Method, RetryLayer, TimeoutLayer, TracingLayer,
};
use crate::ErrorKind;
use crate::capabilities::Limit;
use crate::container::{ContainerId, Owner};
use crate::containerizer::Containerizer;
use crate::error::ErrorStatus;
use crate::task::ContainerSpec;
use crate::testing::FakeContainerizer;

fn owner(task: &str) -> Owner {
    Owner {
        executor_id: "e".into(),
        task_id: task.into(),
    }
}

async fn started(c: &impl Containerizer, task: &str) -> ContainerId {
    let id = c
        .create(&owner(task), &ContainerSpec::command(["server"]))
        .await
        .unwrap();
    c.start(&id).await.unwrap();
    id
}

#[tokio::test(start_paused = true)]
async fn retries_cure_temporary_failures_and_give_up_as_persistent() {
    let fake = FakeContainerizer::new();
    let faults = FaultLayer::new();
    let retried = RetryLayer::new()
        .jitter(false)
        .layer(faults.layer(fake.clone()));
    let id = started(&retried, "t").await;

    // Two temporary failures, then the backend answers: one call succeeds, after 400 + 800 ms.
    faults.push_n(Method::Inspect, 2, Fault::unavailable());
    let before = tokio::time::Instant::now();
    retried.inspect(&id).await.unwrap();
    let waited = before.elapsed();
    assert!(
        waited >= Duration::from_millis(1200) && waited < Duration::from_millis(1210),
        "{waited:?}"
    );
    assert_eq!(faults.calls(Method::Inspect), 3);

    // Always failing: the first call and three retries, then a persistent error.
    faults.always(Method::Inspect, Some(Fault::unavailable()));
    let err = retried.inspect(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.status(), ErrorStatus::Persistent);
    assert_eq!(faults.calls(Method::Inspect), 3 + 4);

    // A permanent failure is returned at once.
    faults.always(
        Method::Inspect,
        Some(Fault::fail(ErrorKind::InvalidState, "no")),
    );
    let err = retried.inspect(&id).await.unwrap_err();
    assert_eq!(err.status(), ErrorStatus::Permanent);
    assert_eq!(faults.calls(Method::Inspect), 3 + 4 + 1);
}

#[tokio::test(start_paused = true)]
async fn create_and_exec_are_never_retried() {
    let fake = FakeContainerizer::new();
    let faults = FaultLayer::new();
    let retried = RetryLayer::new().layer(faults.layer(fake.clone()));
    faults.push(Method::Create, Fault::unavailable());
    let err = retried
        .create(&owner("t"), &ContainerSpec::command(["x"]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), ErrorStatus::Temporary, "left as it was");
    assert_eq!(faults.calls(Method::Create), 1);
    let id = started(&retried, "u").await;
    faults.push(Method::Exec, Fault::unavailable());
    retried
        .exec(&id, &["true".into()], Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(faults.calls(Method::Exec), 1);
}

#[tokio::test(start_paused = true)]
async fn timeouts_bound_each_method_and_stop_by_its_grace() {
    let fake = FakeContainerizer::new();
    let faults = FaultLayer::new();
    let bounded = TimeoutLayer::new()
        .deadline(Method::Start, Some(Duration::from_secs(2)))
        .layer(faults.layer(fake.clone()));
    let id = bounded
        .create(&owner("t"), &ContainerSpec::command(["x"]))
        .await
        .unwrap();
    faults.push(Method::Start, Fault::Hang);
    let before = tokio::time::Instant::now();
    let err = bounded.start(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.is_temporary());
    assert_eq!(err.operation(), Some("start"));
    let waited = before.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_millis(2010),
        "{waited:?}"
    );

    // stop's deadline is its grace plus the margin (60 s): a 10 s delay passes.
    bounded.start(&id).await.unwrap();
    faults.push(Method::Stop, Fault::Delay(Duration::from_secs(65)));
    bounded.stop(&id, Duration::from_secs(10)).await.unwrap();
    faults.push(Method::Stop, Fault::Hang);
    let before = tokio::time::Instant::now();
    bounded
        .stop(&id, Duration::from_secs(10))
        .await
        .unwrap_err();
    let waited = before.elapsed();
    assert!(
        waited >= Duration::from_secs(70) && waited < Duration::from_millis(70_010),
        "{waited:?}"
    );
    // wait has no deadline by default.
    assert_eq!(TimeoutLayer::new().deadline_of(Method::Wait), None);
}

#[tokio::test]
async fn the_capability_layer_refuses_by_field_before_the_backend_sees_it() {
    let fake = FakeContainerizer::new();
    let mut caps = crate::Capabilities::all();
    caps.memory_limit = Limit::Unsupported;
    caps.exec = false;
    fake.set_capabilities(caps);
    let checked = CapabilityLayer.layer(fake.clone());
    let mut spec = ContainerSpec::command(["x"]);
    spec.resources.memory = Some(1 << 20);
    let err = checked.create(&owner("t"), &spec).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(err.context_value("field"), Some("resources.memory"));
    assert_eq!(err.context_value("backend"), Some("fake"));
    assert_eq!(fake.calls_to("create"), 0);
    let id = started(&checked, "u").await;
    let err = checked
        .exec(&id, &["true".into()], Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(fake.calls_to("exec"), 0);
}

#[tokio::test]
async fn tracing_passes_everything_through_and_remembers_tasks() {
    let fake = FakeContainerizer::new();
    let traced = TracingLayer.layer(fake.clone());
    let id = started(&traced, "web").await;
    assert_eq!(traced.task_of(&id), "web");
    traced.stop(&id, Duration::from_secs(1)).await.unwrap();
    traced.remove(&id, true).await.unwrap();
    assert_eq!(traced.task_of(&id), "");
    assert_eq!(fake.calls_for("web"), ["create", "start", "stop", "remove"]);
    let err = traced.inspect(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn box_and_arc_forward_and_layers_stack() {
    let fake = FakeContainerizer::new();
    let boxed: Box<dyn Containerizer> = Box::new(fake.clone());
    let stacked: Arc<dyn Containerizer> =
        Arc::new(TracingLayer.layer(RetryLayer::new().layer(CapabilityLayer.layer(boxed))));
    assert_eq!(stacked.name(), "fake");
    let id = started(&stacked, "t").await;
    assert_eq!(stacked.inspect(&id).await.unwrap().id, id);
    assert_eq!(fake.calls_to("inspect"), 1);
}
