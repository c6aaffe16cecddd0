//! hoist-proxy in front of processes that say nothing of themselves, and its settings.

mod support;

use std::time::Duration;

use hoist_runtimes::proxy::ProxyConfig;
use support::proxied::Function;
use support::{get, sample, send};

/// A function that hangs on `hang`, raises on `raise` and answers its process id otherwise.
fn maybe(dir: &std::path::Path) {
    std::fs::write(
        dir.join("maybe.py"),
        "import os, time\n\ndef run(event, context):\n    if event['data'] == b'hang':\n        while True:\n            time.sleep(1)\n    if event['data'] == b'raise':\n        raise ValueError('bad input')\n    return str(os.getpid())\n",
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_cannot_end_one_call_is_restarted_after_a_timeout() {
    // The Python shim in thread mode does not announce `hoist-cancel`: like any process that
    // does not, a timeout restarts it.
    let dir = tempfile::tempdir().unwrap();
    maybe(dir.path());
    let running = Function::python(dir.path(), "maybe", "run")
        .timeout("1")
        .env("HOIST_CALL_ISOLATION", "thread")
        .start()
        .await;
    let call = |data: &'static str| send("POST", &running.url, &[], data, Duration::from_secs(20));
    let before = call("pid").await.body;
    let reply = call("raise").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (500, "Internal Server Error"),
        "the error's text stays in the log"
    );
    assert_eq!(
        call("pid").await.body,
        before,
        "an error does not restart the process"
    );
    let reply = call("hang").await;
    assert_eq!(reply.status, 408);
    assert_eq!(get(&running.at("/healthz")).await.status, 503, "restarting");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while get(&running.at("/healthz")).await.status != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the process was not restarted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = call("pid").await;
    assert_eq!(after.status, 200);
    assert_ne!(
        after.body, before,
        "the process was restarted after the timeout"
    );
    let metrics = get(&running.at("/metrics")).await.body;
    assert_eq!(
        sample(&metrics, "function_calls_total{method=\"POST\"}"),
        Some(5.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "function_failures_total{method=\"POST\"}"),
        Some(1.0),
        "the exception is a failure, the timeout is not: {metrics}"
    );
    running.stop().await;
}

#[test]
fn a_missing_process_is_explained() {
    let err = ProxyConfig::from_vars([("FUNC_PORT", "8080")]).unwrap_err();
    assert!(err.to_string().contains("FUNC_PROCESS is not set"), "{err}");
    let err = ProxyConfig::from_vars([("FUNC_PROCESS", "x"), ("FUNC_UPSTREAM_PORT", "8080")])
        .unwrap_err();
    assert!(
        err.to_string().contains("FUNC_UPSTREAM_PORT `8080`"),
        "{err}"
    );
}
