//! Kubeless-style Node functions through hoist-proxy and the Node shim, checked against what
//! Kubeless's own tooling expects: its runtimes Makefile's verify targets (kubeless/runtimes
//! `stable/nodejs/Makefile`), `kubeless function call` and `top`, promtool and
//! prometheus_client's parsers.

mod support;

use std::time::Duration;

use support::prometheus::{checked_samples, value};
use support::proxied::Function;
use support::{examples, function_dir, get, kubeless_call, multipart, request, send};

const TEN_SECONDS: Duration = Duration::from_secs(10);

fn node_examples() -> std::path::PathBuf {
    examples().join("node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_cors_and_what_kubeless_tooling_sees() {
    let running = Function::node(node_examples(), "helloget", "foo")
        .start()
        .await;
    // get-nodejs-verify: `kubeless function call get-nodejs | egrep hello.world`.
    let reply = get(&running.at("/?a=1")).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "hello world"));
    assert_eq!(
        reply.header("content-type"),
        None,
        "res.end(string) sets none"
    );
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    let log = running.request_log();
    assert!(
        log.iter()
            .any(|l| l.contains(r#""GET /?a=1 HTTP/1.1" 200 11 "-" "-""#)),
        "morgan's combined line: {log:?}"
    );
    // A CORS preflight allows what it asks for and does not call the function.
    let reply = send(
        "OPTIONS",
        &running.at("/"),
        &[
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-token"),
            ("origin", "https://app.example"),
        ],
        "",
        TEN_SECONDS,
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("access-control-allow-methods"), Some("PUT"));
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("x-token")
    );
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    let samples = checked_samples(&running).await;
    assert_eq!(
        value(&samples, "function_calls_total", "helloget-GET"),
        Some(1.0),
        "the label is <MOD_NAME>-<METHOD>"
    );
    assert_eq!(
        value(&samples, "function_calls_total", "helloget-OPTIONS"),
        None
    );
    let bounds: Vec<&str> = samples
        .iter()
        .filter(|(n, l, _)| {
            n == "function_duration_seconds_bucket" && l["method"] == "helloget-GET"
        })
        .map(|(_, l, _)| l["le"].as_str())
        .collect();
    assert_eq!(
        bounds,
        [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0",
            "+Inf"
        ],
        "prom-client's default buckets"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_data_binary_and_the_log() {
    let running = Function::node(node_examples(), "hellowithdata", "handler")
        .start()
        .await;
    // post-nodejs-verify.
    let reply = kubeless_call(&running.at("/")).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, r#"{"it-s":"alive"}"#)
    );
    assert_eq!(reply.content_type, "application/json; charset=utf-8");
    running
        .expect_output(&[
            r#""event-time":"2026-11-22T18:00:00Z""#,
            r#""event-type":"application/json""#,
            r#""event-namespace":"cli.kubeless.io""#,
            r#""event-id":"Xk3nQ9pLm2a""#,
        ])
        .await;
    // GET's data is {} (body-parser's empty body); text is a string.
    assert_eq!(get(&running.at("/")).await.body, "{}");
    let reply = send(
        "POST",
        &running.at("/"),
        &[("content-type", "text/plain")],
        "plain",
        TEN_SECONDS,
    )
    .await;
    assert_eq!(reply.body, "plain");
    running.stop().await;

    // The body's bytes, sent back through `extensions.response`.
    let running = Function::node(node_examples(), "echo", "handler")
        .env("REQ_MB_LIMIT", "1")
        .start()
        .await;
    let bytes: Vec<u8> = (0..=255).collect();
    let reply = request(
        "POST",
        &running.at("/"),
        &[("content-type", "application/octet-stream")],
        bytes.clone(),
        TEN_SECONDS,
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.bytes.as_ref(), bytes.as_slice());
    assert_eq!(reply.content_type, "application/octet-stream");
    let reply = request(
        "POST",
        &running.at("/"),
        &[],
        vec![b'x'; 1024 * 1024 + 1],
        TEN_SECONDS,
    )
    .await;
    assert_eq!(reply.status, 413, "past REQ_MB_LIMIT");
    running.stop().await;
}

const VALUES: &str = r#"
module.exports = {
  run: (event, context) => {
    const { request } = event.extensions;
    switch (request.query.kind) {
      case 'buffer': return Buffer.from([1, 2, 3]);
      case 'null': return null;
      case 'number': return 42;
      case 'throw': throw new Error('token=s3cr3t-123');
      case 'reject': return Promise.reject(new Error('rejected'));
      case 'never': return new Promise(() => {});
      case 'spin': while (true) {} // eslint-disable-line no-empty
      case 'pid': return String(process.pid);
      default:
        return {
          timeout: context.timeout,
          name: context['function-name'],
          host: request.get('host'),
          ip: request.ip,
          path: request.path,
          json: request.is('json'),
        };
    }
  },
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_errors_and_the_context() {
    let dir = function_dir("values.js", VALUES);
    let running = Function::node(dir.path(), "values", "run")
        .timeout("3")
        .start()
        .await;
    let reply = get(&running.at("/?kind=buffer")).await;
    assert_eq!(reply.body, r#"{"type":"Buffer","data":[1,2,3]}"#);
    let reply = get(&running.at("/?kind=null")).await;
    assert_eq!(
        (reply.body.as_str(), reply.content_type.as_str()),
        ("null", "application/json; charset=utf-8")
    );
    let reply = get(&running.at("/?kind=number")).await;
    assert_eq!(
        (reply.body.as_str(), reply.header("content-type")),
        ("42", None)
    );
    let reply = send(
        "POST",
        &running.at("/x/y?kind=context"),
        &[
            ("host", "fn.example:8080"),
            ("content-type", "application/json"),
        ],
        "{}",
        TEN_SECONDS,
    )
    .await;
    let seen: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(
        seen,
        serde_json::json!({
            "timeout": 3, "name": "run", "host": "fn.example:8080", "ip": "127.0.0.1",
            "path": "/x/y", "json": "json",
        })
    );
    for kind in ["throw", "reject"] {
        let reply = get(&running.at(&format!("/?kind={kind}"))).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (500, "Internal Server Error")
        );
    }
    running
        .expect_output(&[
            "Function failed to execute: Error: token=s3cr3t-123",
            "rejected",
        ])
        .await;
    let samples = checked_samples(&running).await;
    assert_eq!(
        value(&samples, "function_calls_total", "values-GET"),
        Some(5.0)
    );
    assert_eq!(
        value(&samples, "function_failures_total", "values-GET"),
        Some(2.0)
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_keep_the_process_unless_it_stops_answering() {
    let dir = function_dir("values.js", VALUES);
    let running = Function::node(dir.path(), "values", "run")
        .timeout("2")
        .start()
        .await;
    let pid = get(&running.at("/?kind=pid")).await.body;
    // A promise that never settles: 408, and the process goes on (Kubeless never answers).
    let reply = get(&running.at("/?kind=never")).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (408, "Timeout while processing the function")
    );
    assert_eq!(
        get(&running.at("/?kind=pid")).await.body,
        pid,
        "the same process"
    );
    // A loop holding Node's only thread: 408, then the process no longer answers /healthz and
    // is restarted (Kubeless exits after its 408).
    assert_eq!(get(&running.at("/?kind=spin")).await.status, 408);
    let samples = checked_samples(&running).await;
    assert_eq!(
        value(&samples, "function_calls_total", "values-GET"),
        Some(4.0)
    );
    assert_eq!(
        value(&samples, "function_failures_total", "values-GET"),
        Some(0.0),
        "timeouts are no failures"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reply = send(
            "GET",
            &running.at("/?kind=pid"),
            &[],
            "",
            Duration::from_secs(30),
        )
        .await;
        if reply.status == 200 && reply.body != pid {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not restarted: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.stop().await;

    // timeout-nodejs-verify: Kubeless's `while(true) {}` with a short timeout.
    let running = Function::node(node_examples(), "loop", "foo")
        .timeout("1")
        .start()
        .await;
    assert_eq!(get(&running.url).await.status, 408);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_status_and_multipart_through_the_request_and_response() {
    // get-nodejs-stream-verify: the function pipes a stream into `extensions.response`.
    let running = Function::node(node_examples(), "hellostream", "foo")
        .start()
        .await;
    let reply = get(&running.url).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "hello world!"));
    assert_eq!(reply.content_type, "text/event-stream; charset=utf-8");
    running.stop().await;

    let running = Function::node(node_examples(), "status", "handler")
        .start()
        .await;
    let reply = send("POST", &running.url, &[], "", TEN_SECONDS).await;
    assert_eq!((reply.status, reply.body.as_str()), (201, "created"));
    assert_eq!(reply.header("x-greeting"), Some("made"));
    let reply = get(&running.at("/?missing=1")).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (404, "no such greeting")
    );
    running.stop().await;

    // nodejs-multipart-verify: the form's stream is left for the function to read.
    let running = Function::node(node_examples(), "upload", "handler")
        .start()
        .await;
    let body = multipart(
        "b0undary",
        &[
            ("prop", None, b"This is a normal prop"),
            ("file", Some("input.txt"), b"hello world"),
        ],
    );
    let reply = request(
        "POST",
        &running.url,
        &[("content-type", "multipart/form-data; boundary=b0undary")],
        body,
        TEN_SECONDS,
    )
    .await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "This is a normal prop: hello world")
    );
    running.stop().await;
}
