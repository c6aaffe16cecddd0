use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request as HttpRequest;
use serde_json::json;
use tower::ServiceExt as _;

use super::*;

fn config(logs: Arc<Mutex<Vec<RequestLog>>>) -> ContractConfig {
    ContractConfig::from_vars([
        ("FUNC_TIMEOUT", "3"),
        ("FUNC_HANDLER", "echo"),
        ("FUNC_RUNTIME", "rust1"),
    ])
    .unwrap()
    .with_log(move |entry| logs.lock().unwrap().push(entry.clone()))
}

async fn echo(
    event: Event,
    context: Context,
) -> std::result::Result<axum::Json<serde_json::Value>, String> {
    if event.extensions.request.uri.path() == "/fail" {
        return Err("the function failed on purpose".into());
    }
    if event.extensions.request.uri.path() == "/panic" {
        panic!("boom");
    }
    if event.extensions.request.uri.path() == "/forever" {
        std::future::pending::<()>().await;
    }
    let mut value = event.to_json();
    value["context"] = json!({
        "function-name": context.function_name,
        "timeout": context.timeout.as_secs(),
        "runtime": context.runtime,
        "path": event.extensions.request.uri.path(),
    });
    Ok(axum::Json(value))
}

async fn send(router: &Router, request: HttpRequest<Body>) -> (u16, String) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn server_metrics(router: &Router) -> String {
    send(router, get("/metrics")).await.1
}

fn get(path: &str) -> HttpRequest<Body> {
    HttpRequest::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn events_carry_json_data_headers_and_context() {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let router = ContractServer::new(config(logs.clone()), echo).router();
    let request = HttpRequest::post("/any/path?q=1")
        .header("content-type", "application/json")
        .header("event-id", "abc123")
        .header("event-type", "application/json")
        .header("event-time", "2026-11-22T18:00:00Z")
        .header("event-namespace", "cli.kubeless.io")
        .body(Body::from(r#"{"it-s":"alive"}"#))
        .unwrap();
    let (status, body) = send(&router, request).await;
    assert_eq!(status, 200);
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(value["data"], json!({"it-s": "alive"}));
    assert_eq!(value["event-id"], "abc123");
    assert_eq!(value["event-namespace"], "cli.kubeless.io");
    assert_eq!(value["event-time"], "2026-11-22T18:00:00Z");
    assert_eq!(value["context"]["function-name"], "echo");
    assert_eq!(value["context"]["timeout"], 3);
    assert_eq!(value["context"]["path"], "/any/path");

    let raw = HttpRequest::put("/")
        .header("content-type", "text/plain")
        .body(Body::from("plain"))
        .unwrap();
    let (_, body) = send(&router, raw).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["data"],
        "plain"
    );
    let bad = HttpRequest::post("/")
        .header("content-type", "application/json")
        .body(Body::from("{"))
        .unwrap();
    assert_eq!(send(&router, bad).await.0, 400);
    let metrics = server_metrics(&router).await;
    assert!(
        metrics.contains("function_calls_total{method=\"POST\"} 1\n"),
        "a request refused before the call is not counted: {metrics}"
    );

    let logs = logs.lock().unwrap();
    assert_eq!(logs[0].method, "POST");
    assert_eq!(logs[0].path, "/any/path?q=1");
    assert_eq!(logs[0].status, 200);
}

#[tokio::test]
async fn health_errors_and_panics_keep_the_server_serving() {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let server = ContractServer::new(config(logs.clone()), echo);
    let router = server.router();
    assert_eq!(send(&router, get("/healthz")).await, (200, "OK".into()));
    let (status, body) = send(&router, get("/fail")).await;
    assert_eq!(
        (status, body.as_str()),
        (500, FAILURE_MESSAGE),
        "the error's text is logged, not sent"
    );
    assert_eq!(send(&router, get("/panic")).await.0, 500);
    assert_eq!(send(&router, get("/")).await.0, 200);
    let metrics = server.metrics();
    assert!(
        metrics.contains("function_calls_total{method=\"GET\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("function_failures_total{method=\"GET\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("function_duration_seconds_count{method=\"GET\"} 3"),
        "{metrics}"
    );
    assert_eq!(
        logs.lock().unwrap().len(),
        4,
        "one line per request, /healthz included"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_past_the_timeout_is_cancelled_and_answered_408() {
    struct Dropped(Arc<Mutex<bool>>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = true;
        }
    }
    let cancelled = Arc::new(Mutex::new(false));
    let flag = cancelled.clone();
    let server = ContractServer::new(
        config(Arc::default()),
        move |_event: Event, _context: Context| {
            let guard = Dropped(flag.clone());
            async move {
                let _guard = guard;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<_, String>("never")
            }
        },
    );
    let router = server.router();
    let started = tokio::time::Instant::now();
    let (status, body) = send(&router, get("/")).await;
    assert_eq!((status, body.as_str()), (408, TIMEOUT_MESSAGE));
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    tokio::task::yield_now().await;
    assert!(*cancelled.lock().unwrap(), "the call was cancelled");
    let metrics = server.metrics();
    assert!(
        metrics.contains("function_calls_total{method=\"GET\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("function_failures_total{method=\"GET\"} 0\n"),
        "a timeout is not a failure: {metrics}"
    );
}

#[tokio::test]
async fn calls_run_in_parallel() {
    let barrier = Arc::new(tokio::sync::Barrier::new(4));
    let server = ContractServer::new(
        config(Arc::default()),
        move |_event: Event, _context: Context| {
            let barrier = barrier.clone();
            async move {
                barrier.wait().await;
                Ok::<_, String>("together")
            }
        },
    );
    let router = server.router();
    let calls = (0..4).map(|_| send(&router, get("/")));
    let results = tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(calls))
        .await
        .unwrap();
    assert!(results.iter().all(|(status, _)| *status == 200));
}
