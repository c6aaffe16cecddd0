//! Warm invoke overhead, throughput and cold starts of the function executor, against a direct
//! call to the same runtime (the `lambda_runtime` echo function behind a bare Runtime API
//! endpoint, with no registry, admission or pool in between).
//!
//! Environments run on the process backend (hoist-process).
//!
//! Run: `cargo bench -p hoist-functions --bench invoke` (prints a markdown table).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hoist_core::scheduler::EnvironmentId;
use hoist_functions::config::{FunctionsConfig, RuntimeCommand};
use hoist_functions::launcher::ReadySignal;
use hoist_functions::runtime_api::{RuntimeApi, RuntimeInvocation};
use hoist_functions::{FunctionExecutor, FunctionSpec, Invocation};

const PAYLOAD: &str = r#"{"hello":"world"}"#;

fn echo_lambda() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--release",
            "--example",
            "echo-lambda",
            "--manifest-path",
        ])
        .arg(&manifest)
        .status()
        .expect("cargo runs");
    assert!(status.success());
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("echo-lambda")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

async fn latencies<F, Fut>(n: usize, mut call: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..200 {
        call().await;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        call().await;
        samples.push(start.elapsed());
    }
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

fn invocation(id: u64) -> RuntimeInvocation {
    RuntimeInvocation {
        request_id: format!("bench-{id}"),
        payload: Bytes::from_static(PAYLOAD.as_bytes()),
        deadline: SystemTime::now() + Duration::from_secs(30),
        function_arn: "arn:aws:lambda:us-east-1:000000000000:function:echo".into(),
        client_context: None,
    }
}

/// Invocations per second with `concurrency` callers for `window`.
async fn throughput(functions: &FunctionExecutor, concurrency: usize, window: Duration) -> f64 {
    // Warm `concurrency` environments first.
    let warm =
        (0..concurrency).map(|_| functions.invoke("echo", Invocation::new(r#"{"sleep_ms":200}"#)));
    futures::future::join_all(warm).await;
    let count = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + window;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (functions, count) = (functions.clone(), count.clone());
            tokio::spawn(async move {
                while Instant::now() < end {
                    let r = functions
                        .invoke("echo", Invocation::new(PAYLOAD))
                        .await
                        .unwrap();
                    assert!(r.function_error.is_none());
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / window.as_secs_f64()
}

fn config(keepalive: Duration) -> FunctionsConfig {
    let mut config = FunctionsConfig::from_vars(Vec::<(String, String)>::new()).unwrap();
    config.pool.keepalive = keepalive;
    config.runtimes.insert(
        "provided".into(),
        RuntimeCommand::lambda(["{code}/bootstrap"]),
    );
    config
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let binary = echo_lambda();
    let code = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&binary, code.path().join("bootstrap")).unwrap();
    let n = 5000;

    // Baseline: the same runtime behind a bare Runtime API endpoint.
    let api = RuntimeApi::new();
    let env = EnvironmentId("direct".into());
    let addr = api.open(&env, ReadySignal::default()).await.unwrap();
    let mut direct_child = tokio::process::Command::new(&binary)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "echo")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ids = AtomicU64::new(0);
    let (direct_p50, direct_p99) = latencies(n, || async {
        api.invoke(&env, invocation(ids.fetch_add(1, Ordering::Relaxed)))
            .await
            .unwrap();
    })
    .await;
    direct_child.kill().await.unwrap();
    api.close(&env, "done").await;

    // The function executor, warm.
    // Environments run on the process backend.
    let state = tempfile::tempdir().unwrap();
    let processes = Arc::new(hoist_process::ProcessContainerizer::new(state.path()).unwrap());
    let functions_warm =
        FunctionExecutor::start(processes.clone(), config(Duration::from_secs(600))).unwrap();
    functions_warm
        .create(FunctionSpec::new(
            "echo",
            "provided",
            "bootstrap",
            code.path(),
        ))
        .unwrap();
    let (warm_p50, warm_p99) = latencies(n, || async {
        functions_warm
            .invoke("echo", Invocation::new(PAYLOAD))
            .await
            .unwrap();
    })
    .await;

    // Through the Lambda Invoke API over HTTP.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!(
        "http://{}/2015-03-31/functions/echo/invocations",
        listener.local_addr().unwrap()
    );
    let server = tokio::spawn(
        axum::serve(
            listener,
            hoist_functions::http::router(functions_warm.clone()),
        )
        .into_future(),
    );
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    let (http_p50, http_p99) = latencies(n, || async {
        let request = hyper::Request::post(&base)
            .body(http_body_util::Full::new(Bytes::from_static(
                PAYLOAD.as_bytes(),
            )))
            .unwrap();
        let response = client.request(request).await.unwrap();
        use http_body_util::BodyExt;
        response.into_body().collect().await.unwrap();
    })
    .await;
    server.abort();

    let mut rates = Vec::new();
    for concurrency in [1, 8, 64] {
        rates.push((
            concurrency,
            throughput(&functions_warm, concurrency, Duration::from_secs(3)).await,
        ));
    }
    functions_warm.shutdown().await;

    // Cold starts: keepalive 0 stops every environment after its invocation.
    let cold = FunctionExecutor::start(processes.clone(), config(Duration::ZERO)).unwrap();
    cold.create(FunctionSpec::new(
        "echo",
        "provided",
        "bootstrap",
        code.path(),
    ))
    .unwrap();
    let mut colds = Vec::new();
    for _ in 0..30 {
        let start = Instant::now();
        let r = cold.invoke("echo", Invocation::new(PAYLOAD)).await.unwrap();
        assert!(r.cold_start);
        colds.push(start.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    colds.sort();
    cold.shutdown().await;

    println!("| measurement | p50 (µs) | p99 (µs) |");
    println!("|---|---|---|");
    println!(
        "| direct: Runtime API endpoint → runtime (baseline) | {} | {} |",
        micros(direct_p50),
        micros(direct_p99)
    );
    println!(
        "| FunctionExecutor::invoke, warm | {} | {} |",
        micros(warm_p50),
        micros(warm_p99)
    );
    println!(
        "| Lambda Invoke API over HTTP, warm | {} | {} |",
        micros(http_p50),
        micros(http_p99)
    );
    println!(
        "| overhead of registry + admission + pool (p50) | {} | ratio {:.2} |",
        micros(warm_p50.saturating_sub(direct_p50)),
        warm_p50.as_secs_f64() / direct_p50.as_secs_f64()
    );
    println!(
        "| cold start, process backend (invoke → answer) | {} | {} |",
        micros(percentile(&colds, 0.5)),
        micros(percentile(&colds, 0.99))
    );
    println!();
    println!("| concurrency | warm invocations/s |");
    println!("|---|---|");
    for (c, rate) in rates {
        println!("| {c} | {rate:.0} |");
    }
}
