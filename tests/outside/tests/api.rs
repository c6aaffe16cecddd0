//! hoist's public API as a crate outside the workspace meets it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use hoist::layer::{Layer, RetryLayer, TracingLayer};
use hoist::process::ProcessContainerizer;
use hoist::testing::{ConformanceTarget, conformance};
use hoist::{ContainerSpec, Executor, TaskSpec, TaskState};
use hoist_outside::shared_hook;

fn sh(script: &str) -> ContainerSpec {
    ContainerSpec::command(["/bin/sh", "-c", script])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapped_process_backend_passes_the_conformance_suite() {
    let state = tempfile::tempdir().unwrap();
    let backend = ProcessContainerizer::new(state.path()).unwrap();
    let wrapped = TracingLayer.layer(RetryLayer::new().layer(backend));
    let target = ConformanceTarget::posix_shell(["/bin/sh"]);
    conformance::run_all(&wrapped, &target).await.unwrap();
}

#[tokio::test]
async fn a_shared_hook_and_layers_run_a_task_to_its_end() {
    let state = tempfile::tempdir().unwrap();
    let hook = shared_hook();
    let executor = Executor::builder(std::sync::Arc::new(
        ProcessContainerizer::new(state.path()).unwrap(),
    ))
    .hook(hook.clone())
    .layer(RetryLayer::new())
    .layer(TracingLayer)
    .build()
    .unwrap();
    let ended = executor
        .run(TaskSpec::new("greet", sh("test \"$GREETING\" = 'from a hook'")))
        .await
        .unwrap();
    assert_eq!(ended.state, TaskState::Finished, "{ended}");
    assert_eq!(hook.started.load(Ordering::SeqCst), 1);
    executor.shutdown(None).await;
    // The container was removed after the task ended.
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
}
