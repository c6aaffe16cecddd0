//! The boto3 scenarios against Python functions under awslambdaric, shared by the process and
//! Docker backends: the functions they need, the client run, and the checks of its results.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hoist_functions::{FunctionExecutor, FunctionSpec};
use serde_json::{Value, json};

/// The directory of the Python functions and the boto3 client.
pub fn code_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("python")
}

/// Registers the functions the client calls, on `runtime`.
pub fn create_functions(functions: &FunctionExecutor, runtime: &str) {
    let code = code_dir();
    // Keep the source directory free of bytecode caches.
    let spec = |name: &str, handler: &str, timeout: u64| {
        let mut spec = FunctionSpec::new(name, runtime, handler, &code);
        spec.env
            .insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
        spec.timeout = Duration::from_secs(timeout);
        spec
    };
    functions
        .create(spec("py-echo", "app.handler", 10))
        .unwrap();
    let mut slow = spec("py-slow", "app.handler", 10);
    slow.reserved_concurrency = Some(1);
    functions.create(slow).unwrap();
    functions
        .create(spec("py-broken", "missing_module.handler", 10))
        .unwrap();
    functions
        .create(spec("py-short", "app.handler", 1))
        .unwrap();
    functions
        .create(spec("py-wide", "app.handler", 10))
        .unwrap();
}

/// Serves the Lambda Invoke API of `functions` on loopback, runs the boto3 client against it
/// with the venv's Python, and returns what the client printed.
pub async fn run_client(functions: &FunctionExecutor, venv: &Path) -> Value {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    run_script(listener, functions, venv, "client.py").await
}

/// Serves the Lambda Invoke API of `functions` on `listener`, runs `script` (in the Python
/// folder, given the endpoint) with the venv's Python, and returns what it printed.
pub async fn run_script(
    listener: tokio::net::TcpListener,
    functions: &FunctionExecutor,
    venv: &Path,
    script: &str,
) -> Value {
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(
        axum::serve(listener, hoist_functions::http::router(functions.clone())).into_future(),
    );
    let output = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new(venv.join("bin").join("python"))
            .arg(code_dir().join(script))
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
    server.abort();
    assert!(
        output.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Checks what the client saw.
pub fn check_results(r: &Value) {
    assert_eq!(r["first"]["status"], 200, "{r}");
    assert_eq!(r["first"]["function_error"], Value::Null, "{r}");
    assert_eq!(r["first"]["version"], "$LATEST");
    assert_eq!(r["first"]["payload"]["echo"], json!({"hello": "world"}));
    assert_eq!(r["first"]["payload"]["function"], "py-echo");
    let remaining = r["first"]["payload"]["remaining_ms"].as_i64().unwrap();
    assert!(
        remaining > 0 && remaining <= 10_000,
        "the deadline header reached the runtime: {remaining}"
    );
    assert_eq!(
        r["second"]["payload"]["environment"], r["first"]["payload"]["environment"],
        "sequential invocations reuse one environment (warm)"
    );
    assert_eq!(
        r["second"]["payload"]["pid"], r["first"]["payload"]["pid"],
        "warm reuse"
    );

    assert_eq!(r["error"]["status"], 200);
    assert_eq!(r["error"]["function_error"], "Unhandled");
    assert_eq!(r["error"]["payload"]["errorType"], "ValueError");
    assert_eq!(r["error"]["payload"]["errorMessage"], "asked to fail");

    // LogType='Tail': the invocation's own output between AWS's START and END lines.
    let log = r["tail"]["log"].as_str().unwrap_or_else(|| panic!("{r}"));
    let request_id = r["tail"]["request_id"].as_str().unwrap();
    assert!(
        log.starts_with(&format!("START RequestId: {request_id} Version: $LATEST\n")),
        "{log}"
    );
    assert!(log.contains("out: marker-42\n"), "{log}");
    assert!(log.contains("err: marker-42\n"), "{log}");
    assert!(
        log.contains(&format!("END RequestId: {request_id}\n")),
        "{log}"
    );
    assert_eq!(r["first"]["log"], Value::Null, "no log unless asked");
    let log = r["tail_error"]["log"].as_str().unwrap();
    assert_eq!(r["tail_error"]["function_error"], "Unhandled");
    assert!(log.contains("err: failing"), "{log}");
    assert!(!log.contains("marker-42"), "{log}");

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

    assert_eq!(r["timeout"]["status"], 200, "{r}");
    assert_eq!(r["timeout"]["function_error"], "Unhandled");
    assert_eq!(r["timeout"]["payload"]["errorType"], "Sandbox.Timedout");

    let wide = r["wide"].as_array().unwrap();
    let mut environments: Vec<&str> = wide
        .iter()
        .map(|w| {
            assert_eq!(w["status"], 200, "{w}");
            w["payload"]["environment"].as_str().unwrap()
        })
        .collect();
    environments.sort_unstable();
    environments.dedup();
    assert_eq!(
        environments.len(),
        3,
        "3 concurrent invocations ran in 3 environments: {wide:?}"
    );
}

/// How many environments of `function` the pool holds.
pub fn environments_of(functions: &FunctionExecutor, function: &str) -> usize {
    functions
        .pool()
        .environments()
        .iter()
        .filter(|e| e.key.function() == function)
        .count()
}
