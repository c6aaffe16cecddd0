//! A Rust function on the `lambda_runtime` crate, run in environments on local processes,
//! through the Lambda Runtime API.

mod support;

use std::time::Duration;

use hoist_functions::{FunctionSpec, Invocation};
use serde_json::{Value, json};

fn json_of(payload: &[u8]) -> Value {
    serde_json::from_slice(payload)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(payload)))
}

fn echo_function(code: &std::path::Path) -> FunctionSpec {
    FunctionSpec::new("echo", "provided", "bootstrap", code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_reuse_errors_and_scale_out() {
    let code = support::rust_code_dir();
    let (functions, processes) = support::executor(support::config(None));
    functions.create(echo_function(code.path())).unwrap();

    let first = functions
        .invoke("echo", Invocation::new(r#"{"hello":"world"}"#))
        .await
        .unwrap();
    assert!(first.cold_start);
    assert_eq!(first.function_error, None, "{:?}", first);
    let body = json_of(&first.payload);
    assert_eq!(body["echo"], json!({"hello": "world"}));
    assert_eq!(
        body["request_id"],
        json!(first.request_id),
        "the runtime saw our request id"
    );

    let second = functions
        .invoke("echo", Invocation::new(r#"{"n":2}"#))
        .await
        .unwrap();
    assert!(
        !second.cold_start,
        "sequential invocations reuse the environment"
    );
    assert_eq!(json_of(&second.payload)["pid"], body["pid"], "same process");

    let failed = functions
        .invoke("echo", Invocation::new(r#"{"fail":true}"#))
        .await
        .unwrap();
    assert_eq!(failed.function_error.as_deref(), Some("Unhandled"));
    assert!(
        String::from_utf8_lossy(&failed.payload).contains("asked to fail"),
        "{failed:?}"
    );

    let calls = (0..4).map(|_| functions.invoke("echo", Invocation::new(r#"{"sleep_ms":500}"#)));
    let results = futures::future::join_all(calls).await;
    let mut pids: Vec<u64> = results
        .iter()
        .map(|r| {
            json_of(&r.as_ref().unwrap().payload)["pid"]
                .as_u64()
                .unwrap()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(
        pids.len(),
        4,
        "four concurrent invocations ran in four environments"
    );
    assert_eq!(functions.pool().environments().len(), 4);

    functions.shutdown().await;
    processes.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_fails_the_invocation_and_replaces_the_environment() {
    let code = support::rust_code_dir();
    let (functions, processes) = support::executor(support::config(None));
    let mut spec = echo_function(code.path());
    spec.timeout = Duration::from_secs(1);
    functions.create(spec).unwrap();
    let slow = functions
        .invoke("echo", Invocation::new(r#"{"sleep_ms":5000}"#))
        .await
        .unwrap();
    assert_eq!(slow.function_error.as_deref(), Some("Unhandled"));
    let body = json_of(&slow.payload);
    assert_eq!(body["errorType"], "Sandbox.Timedout");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Task timed out after 1.00 seconds")
    );
    let next = functions
        .invoke("echo", Invocation::new("{}"))
        .await
        .unwrap();
    assert!(next.cold_start, "the timed-out environment was replaced");
    assert_eq!(next.function_error, None);
    functions.shutdown().await;
    processes.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_killed_mid_invocation_fails_it_clearly_and_is_replaced() {
    let code = support::rust_code_dir();
    let (functions, processes) = support::executor(support::config(None));
    let mut spec = echo_function(code.path());
    spec.timeout = Duration::from_secs(30);
    functions.create(spec).unwrap();
    let warm = functions
        .invoke("echo", Invocation::new("{}"))
        .await
        .unwrap();
    let pid = json_of(&warm.payload)["pid"].as_u64().unwrap() as u32;
    let invoking = {
        let functions = functions.clone();
        tokio::spawn(async move {
            functions
                .invoke("echo", Invocation::new(r#"{"sleep_ms":20000}"#))
                .await
        })
    };
    // Kill it once the invocation is placed on it.
    support::until_placed(&functions, "echo").await;
    support::kill_externally(pid);
    let started = std::time::Instant::now();
    let crashed = tokio::time::timeout(Duration::from_secs(10), invoking)
        .await
        .expect("nothing hangs")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(crashed.function_error.as_deref(), Some("Unhandled"));
    let body = json_of(&crashed.payload);
    assert_eq!(body["errorType"], "Runtime.ExitError", "{body}");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Runtime exited"),
        "{body}"
    );
    let next = functions
        .invoke("echo", Invocation::new("{}"))
        .await
        .unwrap();
    assert!(next.cold_start, "a new environment replaced the killed one");
    assert_ne!(json_of(&next.payload)["pid"].as_u64().unwrap() as u32, pid);
    functions.shutdown().await;
    processes.assert_clean().await;
}
