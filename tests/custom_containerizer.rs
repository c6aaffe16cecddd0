//! The containerizer of `examples/custom-containerizer.rs`, alone and wrapped in hoist's
//! tracing and retry layers, against the conformance suite; and the example's executor run.

#[path = "../examples/custom-containerizer.rs"]
#[allow(dead_code)]
mod example;

use std::sync::Arc;
use std::time::Duration;

use example::TaskContainerizer;
use hoist::layer::{Layer, RetryLayer, TracingLayer};
use hoist::testing::{ConformanceTarget, conformance};
use hoist::{ContainerSpec, Containerizer, ErrorKind, Owner, TaskState};

/// How the suite's containers are written for the task containerizer's built-in programs.
fn target() -> ConformanceTarget {
    let spec = |argv: Vec<String>| ContainerSpec::command(argv);
    ConformanceTarget {
        runs_forever: ContainerSpec::command(["sleep", "1000"]),
        ignores_term: ContainerSpec::command(["ignore-term"]),
        ignores_term_ready: Some("ignoring".to_owned()),
        exits_with: Arc::new(move |code| spec(vec!["exit".to_owned(), code.to_string()])),
        prints: Arc::new(|text| ContainerSpec::command(["echo", text])),
        exec_prints: Arc::new(|text, code| {
            vec!["say".to_owned(), text.to_owned(), code.to_string()]
        }),
        exec_hangs: vec!["sleep".to_owned(), "1000".to_owned()],
        traps_hup: None,
        interactive_shell: None,
        reports_pid: false,
        grace: Duration::from_millis(200),
        timeout: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn the_task_containerizer_passes_the_conformance_suite() {
    let tasks = TaskContainerizer::with_builtins();
    conformance::run_all(&tasks, &target()).await.unwrap();
}

#[tokio::test]
async fn wrapped_in_layers_it_still_passes() {
    let wrapped = TracingLayer.layer(RetryLayer::new().layer(TaskContainerizer::with_builtins()));
    conformance::run_all(&wrapped, &target()).await.unwrap();
}

#[tokio::test]
async fn unknown_programs_and_unsupported_fields_are_refused_at_create() {
    let tasks = TaskContainerizer::with_builtins();
    let owner = Owner {
        executor_id: "e".into(),
        task_id: "t".into(),
    };
    let err = tasks
        .create(&owner, &ContainerSpec::command(["nope"]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.context_value("program"), Some("nope"));
    let mut spec = ContainerSpec::command(["echo"]);
    spec.image = Some("busybox".into());
    let err = tasks.create(&owner, &spec).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(err.context_value("field"), Some("image"));
}

#[tokio::test]
async fn the_example_runs_its_tasks_through_the_executor() {
    let statuses = example::run().await.unwrap();
    let end = |task: &str| {
        statuses
            .iter()
            .find(|s| s.task_id.as_str() == task && s.state.is_terminal())
            .map(|s| s.state)
    };
    assert_eq!(end("greet"), Some(TaskState::Finished));
    assert_eq!(end("fail"), Some(TaskState::Failed));
}
