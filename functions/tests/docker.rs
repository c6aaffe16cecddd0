//! The pool scenarios on the Docker backend: the `lambda_runtime` echo function runs in a
//! `FROM scratch` busybox image built by the test, with the host's C libraries mounted, on the
//! host network so that it reaches its Runtime API endpoint on loopback.
//!
//! Without a reachable Docker Engine the test returns early with a note, unless
//! `HOIST_REQUIRE_DOCKER=1`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use hoist_functions::config::RuntimeCommand;
use hoist_functions::{FunctionExecutor, FunctionSpec, Invocation};
use serde_json::Value;
use support::docker::{containers_of, kill};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_scenarios_on_docker() {
    let Some(docker) = support::docker::engine("the Docker scenarios").await else {
        return;
    };
    let tag = support::docker::busybox_image(&docker, "rust").await;

    // The code directory holds a copy of the function binary (a symlink would point outside
    // the mount).
    let code = tempfile::tempdir().unwrap();
    std::fs::copy(support::echo_lambda(), code.path().join("bootstrap")).unwrap();
    let mut runtime = RuntimeCommand::lambda(["{code}/bootstrap"]).in_image(&tag);
    runtime.volumes = support::docker::c_libraries();
    let mut config = support::config(None);
    config.runtimes.insert("provided-docker".into(), runtime);
    let functions = FunctionExecutor::start(Arc::new(docker), config).unwrap();

    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(scenarios(
        &functions,
        code.path(),
    )))
    .await;
    functions.shutdown().await;
    support::docker::wait_until_gone(&["echo-docker", "victim-docker"]).await;
    support::docker::remove_test_image(&tag).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn json_of(payload: &[u8]) -> Value {
    serde_json::from_slice(payload)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(payload)))
}

async fn scenarios(functions: &FunctionExecutor, code: &std::path::Path) {
    let mut echo = FunctionSpec::new("echo-docker", "provided-docker", "bootstrap", code);
    echo.timeout = Duration::from_secs(2);
    functions.create(echo).unwrap();

    // Cold, then warm.
    let first = functions
        .invoke("echo-docker", Invocation::new(r#"{"hello":"docker"}"#))
        .await
        .unwrap();
    assert_eq!(
        first.function_error,
        None,
        "{}",
        String::from_utf8_lossy(&first.payload)
    );
    assert!(first.cold_start);
    assert_eq!(json_of(&first.payload)["echo"]["hello"], "docker");
    let second = functions
        .invoke("echo-docker", Invocation::new("{}"))
        .await
        .unwrap();
    assert!(
        !second.cold_start,
        "sequential invocations reuse the container"
    );
    assert_eq!(containers_of("echo-docker").len(), 1);

    // A function error.
    let failed = functions
        .invoke("echo-docker", Invocation::new(r#"{"fail":true}"#))
        .await
        .unwrap();
    assert_eq!(failed.function_error.as_deref(), Some("Unhandled"));

    // Three concurrent invocations scale out to three containers.
    let calls =
        (0..3).map(|_| functions.invoke("echo-docker", Invocation::new(r#"{"sleep_ms":1000}"#)));
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap().function_error, None);
    }
    assert_eq!(functions.pool().environments().len(), 3);
    assert_eq!(containers_of("echo-docker").len(), 3);

    // A timeout fails the invocation and replaces the container.
    let slow = functions
        .invoke("echo-docker", Invocation::new(r#"{"sleep_ms":5000}"#))
        .await
        .unwrap();
    assert_eq!(json_of(&slow.payload)["errorType"], "Sandbox.Timedout");
    assert_eq!(
        functions.pool().environments().len(),
        2,
        "the timed-out environment left the pool"
    );

    // A container killed mid-invocation fails it at once and is replaced.
    let mut victim = FunctionSpec::new("victim-docker", "provided-docker", "bootstrap", code);
    victim.timeout = Duration::from_secs(30);
    functions.create(victim).unwrap();
    functions
        .invoke("victim-docker", Invocation::new("{}"))
        .await
        .unwrap();
    let invoking = {
        let functions = functions.clone();
        tokio::spawn(async move {
            functions
                .invoke("victim-docker", Invocation::new(r#"{"sleep_ms":20000}"#))
                .await
        })
    };
    support::until_placed(functions, "victim-docker").await;
    let victims = containers_of("victim-docker");
    assert_eq!(victims.len(), 1);
    kill(&victims[0]);
    let crashed = tokio::time::timeout(Duration::from_secs(15), invoking)
        .await
        .expect("nothing hangs")
        .unwrap()
        .unwrap();
    assert_eq!(json_of(&crashed.payload)["errorType"], "Runtime.ExitError");
    let next = functions
        .invoke("victim-docker", Invocation::new("{}"))
        .await
        .unwrap();
    assert!(next.cold_start);
    assert_eq!(next.function_error, None);
}
