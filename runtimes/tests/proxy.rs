//! hoist-proxy in front of the Python and Node shims, as real processes on loopback.

mod support;

use std::time::Duration;

use hoist_runtimes::contract::ContractConfig;
use hoist_runtimes::proxy::{Proxy, ProxyConfig};
use support::{free_port, get, sample, send, shims};
use tokio::net::TcpListener;

struct Running {
    url: String,
    shutdown: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<hoist_core::Result<()>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.shutdown.send(());
        tokio::time::timeout(Duration::from_secs(15), self.server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// Starts a proxy serving `handler` of `module` in `dir`, through the shim of `language`.
async fn start(
    language: &str,
    dir: &std::path::Path,
    module: &str,
    handler: &str,
    timeout: &str,
) -> Running {
    let shim = match language {
        "python" => format!(
            "python3 {}",
            shims().join("python/hoist_runtime.py").display()
        ),
        _ => format!("node {}", shims().join("node/hoist_runtime.js").display()),
    };
    let mut config = ProxyConfig::from_vars([
        (
            "FUNC_PROCESS",
            format!("cd {} && exec {shim}", dir.display()),
        ),
        ("FUNC_TIMEOUT", timeout.to_owned()),
        ("FUNC_UPSTREAM_PORT", free_port().to_string()),
        ("FUNC_START_TIMEOUT", "20".to_owned()),
    ])
    .unwrap();
    config.env = vec![
        ("MOD_NAME".into(), module.into()),
        ("FUNC_HANDLER".into(), handler.into()),
    ];
    config.contract = ContractConfig {
        log: std::sync::Arc::new(|_| {}),
        ..config.contract
    };
    let proxy = Proxy::start(config).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (shutdown, signal) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(proxy.serve_with_shutdown(listener, async {
        let _ = signal.await;
    }));
    Running {
        url,
        shutdown,
        server,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_functions_get_post_and_health_through_the_proxy() {
    let dir = support::examples().join("python");
    let running = start("python", &dir, "helloget", "foo", "10").await;
    assert_eq!(get(&format!("{}/healthz", running.url)).await.status, 200);
    let reply = get(&format!("{}/", running.url)).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "hello world"));
    assert!(
        reply.content_type.starts_with("text/plain"),
        "the function's headers pass through"
    );
    let metrics = get(&format!("{}/metrics", running.url)).await.body;
    assert_eq!(
        sample(&metrics, "function_calls_total{method=\"GET\"}"),
        Some(1.0),
        "{metrics}"
    );
    running.stop().await;

    let running = start("python", &dir, "hellowithdata", "handler", "10").await;
    let headers = [
        ("content-type", "application/json"),
        ("event-id", "e1"),
        ("event-namespace", "cli.kubeless.io"),
    ];
    let reply = send(
        "POST",
        &format!("{}/", running.url),
        &headers,
        r#"{"it-s":"alive"}"#,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&reply.body).unwrap()["it-s"],
        "alive"
    );
    assert_eq!(reply.content_type, "application/json");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_python_call_is_answered_408_and_the_process_restarted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("maybe.py"),
        "import os, time\n\ndef run(event, context):\n    if event['data'] == 'hang':\n        while True:\n            time.sleep(1)\n    if event['data'] == 'raise':\n        raise ValueError('bad input')\n    return str(os.getpid())\n",
    )
    .unwrap();
    let running = start("python", dir.path(), "maybe", "run", "1").await;
    let call = |data: &'static str| send("POST", &running.url, &[], data, Duration::from_secs(20));
    let before = call("pid").await.body;
    let reply = call("raise").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (500, "bad input"),
        "the function's status passes through"
    );
    assert_eq!(
        call("pid").await.body,
        before,
        "an error does not restart the process"
    );
    let reply = call("hang").await;
    assert_eq!(reply.status, 408);
    let after = call("pid").await;
    assert_eq!(after.status, 200);
    assert_ne!(
        after.body, before,
        "the process was restarted after the timeout"
    );
    let metrics = get(&format!("{}/metrics", running.url)).await.body;
    assert_eq!(
        sample(&metrics, "function_calls_total{method=\"POST\"}"),
        Some(5.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "function_failures_total{method=\"POST\"}"),
        Some(2.0),
        "{metrics}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_functions_and_timeouts_through_the_proxy() {
    let dir = support::examples().join("node");
    let running = start("node", &dir, "helloget", "foo", "10").await;
    let reply = get(&format!("{}/any/path", running.url)).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "hello world"));
    running.stop().await;
    let running = start("node", &dir, "endless", "forever", "1").await;
    let reply = get(&format!("{}/", running.url)).await;
    assert_eq!(reply.status, 408);
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
