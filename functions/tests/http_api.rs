//! The registry and plain invoke over HTTP, with the Rust echo function on local processes.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

struct Api {
    base: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, hyper::HeaderMap, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .expect("answered in time")
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (parts.status, parts.headers, value)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_and_plain_invoke_over_http() {
    let code = support::rust_code_dir();
    let (functions, processes) = support::executor(support::config(None));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(
        axum::serve(listener, hoist_functions::http::router(functions.clone())).into_future(),
    );
    let api = Api {
        base,
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    let code = code.path().to_string_lossy().into_owned();

    // Validation errors name the field.
    let bad = json!({"name": "echo", "runtime": "provided", "handler": "bootstrap", "code": code, "memory": 1}).to_string();
    let (status, _, body) = api.call(Method::POST, "/functions", &[], &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "memory", "{body}");
    let unknown =
        json!({"name": "echo", "runtime": "cobol", "handler": "x", "code": code}).to_string();
    let (status, _, body) = api.call(Method::POST, "/functions", &[], &unknown).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "runtime", "{body}");

    let spec = json!({"name": "echo", "runtime": "provided", "handler": "bootstrap", "code": code, "reserved_concurrency": 1});
    let (status, _, body) = api
        .call(Method::POST, "/functions", &[], &spec.to_string())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["version"], 1);
    let (status, _, _) = api
        .call(Method::POST, "/functions", &[], &spec.to_string())
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, body) = api.call(Method::GET, "/functions", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 1);

    // Plain invoke with the Kubeless event headers.
    let headers = [
        ("event-id", "ev-1"),
        ("event-type", "application/json"),
        ("event-namespace", "cli.kubeless.io"),
    ];
    let (status, out, body) = api
        .call(
            Method::POST,
            "/functions/echo",
            &headers,
            r#"{"it-s":"alive"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["echo"], json!({"it-s": "alive"}));
    assert_eq!(body["request_id"], "ev-1", "the event id is the request id");
    assert_eq!(out["event-id"], "ev-1");
    assert_eq!(out["event-namespace"], "cli.kubeless.io");
    let (status, _, body) = api
        .call(Method::POST, "/functions/echo", &[], r#"{"fail":true}"#)
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.to_string().contains("asked to fail"), "{body}");

    // The Lambda Invoke API with `X-Amz-Log-Type: Tail` returns the invocation's own log.
    let lambda = "/2015-03-31/functions/echo/invocations";
    api.call(Method::POST, lambda, &[], r#"{"log":"before"}"#)
        .await;
    let tail = [("x-amz-log-type", "Tail")];
    let (status, out, body) = api
        .call(Method::POST, lambda, &tail, r#"{"log":"marker-7"}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let log = out["x-amz-log-result"].to_str().unwrap();
    let log = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, log).unwrap();
    let log = String::from_utf8(log).unwrap();
    let request_id = out["x-amzn-requestid"].to_str().unwrap();
    assert!(
        log.starts_with(&format!("START RequestId: {request_id} Version: $LATEST\n")),
        "{log}"
    );
    assert!(log.contains("out: marker-7\n"), "{log}");
    assert!(log.contains("err: marker-7\n"), "{log}");
    assert!(
        !log.contains("before"),
        "only this invocation's output: {log}"
    );
    assert!(
        log.contains(&format!(
            "END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: "
        )),
        "{log}"
    );
    // A big log is cut to its last 4 KB.
    let long = "x".repeat(3000);
    let (_, out, _) = api
        .call(
            Method::POST,
            lambda,
            &tail,
            &json!({"log": long}).to_string(),
        )
        .await;
    let log = out["x-amz-log-result"].to_str().unwrap();
    let log = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, log).unwrap();
    assert_eq!(log.len(), 4096);
    assert!(String::from_utf8_lossy(&log).ends_with("MB\t\n"));
    // Without Tail there is no log; a bad log type is refused.
    let (_, out, _) = api.call(Method::POST, lambda, &[], "{}").await;
    assert!(out.get("x-amz-log-result").is_none());
    let (status, out, _) = api
        .call(Method::POST, lambda, &[("x-amz-log-type", "All")], "{}")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(out["x-amzn-errortype"], "InvalidParameterValueException");

    // Reserved concurrency 1: a second concurrent invocation is throttled.
    let slow = {
        let api = Api {
            base: api.base.clone(),
            client: api.client.clone(),
        };
        tokio::spawn(async move {
            api.call(Method::POST, "/functions/echo", &[], r#"{"sleep_ms":1500}"#)
                .await
        })
    };
    support::until_placed(&functions, "echo").await;
    let (status, out, body) = api.call(Method::POST, "/functions/echo", &[], "{}").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(out["retry-after"], "1");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("reserved concurrency in use"),
        "the plain front door names the limit in the scheduler's words: {body}"
    );
    assert_eq!(slow.await.unwrap().0, StatusCode::OK);

    // Update makes a new version; delete removes it; unknown is 404.
    let mut updated = spec.clone();
    updated["timeout"] = json!(1);
    let (status, _, body) = api
        .call(Method::PUT, "/functions/echo", &[], &updated.to_string())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 2);
    let (status, _, body) = api
        .call(Method::POST, "/functions/echo", &[], r#"{"sleep_ms":3000}"#)
        .await;
    assert_eq!(
        status,
        StatusCode::REQUEST_TIMEOUT,
        "the new version's 1 s timeout applies: {body}"
    );
    let (status, _, _) = api.call(Method::DELETE, "/functions/echo", &[], "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = api.call(Method::POST, "/functions/echo", &[], "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = api.call(Method::GET, "/functions/echo", &[], "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    functions.shutdown().await;
    server.abort();
    processes.assert_clean().await;
}
