//! boto3 against the Lambda Invoke API, invoking Python functions that run under awslambdaric
//! inside environments on local processes. Needs the venv of `setup-python.sh`.

mod support;

use std::path::Path;
use std::time::Duration;

use hoist_functions::FunctionSpec;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_invokes_python_functions_running_under_awslambdaric() {
    let venv = support::venv();
    let (functions, processes) = support::executor(support::config(Some(&venv)));
    let code = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("python");
    // Keep the source directory free of bytecode caches.
    let spec = |name: &str, handler: &str| {
        let mut spec = FunctionSpec::new(name, "python3", handler, &code);
        spec.env
            .insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
        spec
    };
    let mut echo = spec("py-echo", "app.handler");
    echo.timeout = Duration::from_secs(10);
    functions.create(echo).unwrap();
    let mut slow = spec("py-slow", "app.handler");
    slow.timeout = Duration::from_secs(10);
    slow.reserved_concurrency = Some(1);
    functions.create(slow).unwrap();
    functions
        .create(spec("py-broken", "missing_module.handler"))
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(
        axum::serve(listener, hoist_functions::http::router(functions.clone())).into_future(),
    );

    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(venv.join("bin").join("python"))
            .arg(code.join("client.py"))
            .arg(&endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the boto3 client finished in time")
    .unwrap();
    assert!(
        output.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let r: Value = serde_json::from_slice(&output.stdout).unwrap();

    assert_eq!(r["first"]["status"], 200, "{r}");
    assert_eq!(r["first"]["function_error"], Value::Null);
    assert_eq!(r["first"]["version"], "$LATEST");
    assert_eq!(r["first"]["payload"]["echo"], json!({"hello": "world"}));
    assert_eq!(r["first"]["payload"]["function"], "py-echo");
    let remaining = r["first"]["payload"]["remaining_ms"].as_i64().unwrap();
    assert!(
        remaining > 0 && remaining <= 10_000,
        "the deadline header reached the runtime: {remaining}"
    );
    assert_eq!(
        r["second"]["payload"]["pid"], r["first"]["payload"]["pid"],
        "warm reuse"
    );

    assert_eq!(r["error"]["status"], 200);
    assert_eq!(r["error"]["function_error"], "Unhandled");
    assert_eq!(r["error"]["payload"]["errorType"], "ValueError");
    assert_eq!(r["error"]["payload"]["errorMessage"], "asked to fail");

    assert_eq!(r["event"]["status"], 202);
    assert_eq!(r["dry_run"]["status"], 204);

    assert_eq!(r["missing"]["status"], 404);
    assert_eq!(r["missing"]["code"], "ResourceNotFoundException");

    assert_eq!(r["broken"]["status"], 200, "{r}");
    assert_eq!(r["broken"]["function_error"], "Unhandled");
    assert_eq!(r["broken"]["payload"]["errorType"], "Runtime.InitError");
    let message = r["broken"]["payload"]["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("Unable to import module 'missing_module'"),
        "{message}"
    );

    assert_eq!(r["throttled"]["status"], 429, "{r}");
    assert_eq!(r["throttled"]["code"], "TooManyRequestsException");
    assert_eq!(
        r["throttled"]["reason"],
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    );
    assert_eq!(r["slow"]["status"], 200);
    assert_eq!(r["slow"]["function_error"], Value::Null);

    functions.shutdown().await;
    server.abort();
    processes.assert_clean().await;
}
