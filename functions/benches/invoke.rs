//! Warm invoke overhead, throughput and cold starts of the function executor, against a direct
//! call to the same runtime (the `lambda_runtime` echo function behind a bare Runtime API
//! endpoint, with no registry, admission or pool in between), sequentially and at the same
//! concurrency as each throughput figure. Throughput is also measured for hoist-runtimes'
//! `function-get` on the runtime contract, against direct HTTP requests to the same runtimes.
//!
//! Environments run on the process backend (hoist-process); cold starts are also measured on
//! the Docker backend (hoist-docker), against the same container created and started through
//! the Engine API by hand, when a Docker Engine is reachable.
//!
//! With feature `aws` (module `restarts`), also the Lambda API over the executor: what the
//! control plane, the store and the Runtime API relay add to a warm invoke, and the first
//! invoke after a restart with re-attaching against without it.
//!
//! Run: `cargo bench -p hoist-functions --bench invoke` (prints markdown tables); `--features
//! aws` adds the Lambda API's tables, and `-- --only restarts` prints only those.

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

#[cfg(feature = "aws")]
#[path = "invoke/restarts.rs"]
mod restarts;

const PAYLOAD: &str = r#"{"hello":"world"}"#;

fn echo_lambda() -> PathBuf {
    release_example("hoist-functions", "echo-lambda")
}

/// hoist-runtimes' `function-get`: a trivial Rust function ("hello world") served by the
/// runtime contract on `FUNC_PORT`.
fn contract_function() -> PathBuf {
    release_example("hoist-runtimes", "function-get")
}

/// Builds example `name` of the workspace package `package`, optimised, and returns its path.
fn release_example(package: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let args = ["--release", "-p", package, "--example", name];
    hoist_core::testing::cargo_build(dir, &args, &format!("examples/{name}"))
        .expect("the example builds")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

async fn latencies<F, Fut>(n: usize, call: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let samples = sample(n, call).await;
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

/// `n` timings of `call` after 200 warm-up calls, sorted.
async fn sample<F, Fut>(n: usize, mut call: F) -> Vec<Duration>
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
    samples
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
async fn throughput(
    functions: &FunctionExecutor,
    function: &'static str,
    concurrency: usize,
    window: Duration,
) -> f64 {
    // Warm up to `concurrency` environments first (the echo function holds each for 200 ms, so
    // every caller gets its own; the contract one answers at once, and the pool scales out to
    // the callers during the first round).
    let warm = (0..concurrency)
        .map(|_| functions.invoke(function, Invocation::new(r#"{"sleep_ms":200}"#)));
    futures::future::join_all(warm).await;
    let callers = (0..concurrency).map(|_| {
        let functions = functions.clone();
        move || {
            let functions = functions.clone();
            async move {
                let r = functions
                    .invoke(function, Invocation::new(PAYLOAD))
                    .await
                    .unwrap();
                assert!(r.function_error.is_none());
            }
        }
    });
    rate(window, callers).await
}

/// Runs each caller in a loop of its own for `window` and returns the calls per second of all.
async fn rate<C, F>(window: Duration, callers: impl IntoIterator<Item = C>) -> f64
where
    C: FnMut() -> F + Send + 'static,
    F: std::future::Future<Output = ()> + Send,
{
    let count = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + window;
    let workers: Vec<_> = callers
        .into_iter()
        .map(|mut call| {
            let count = count.clone();
            tokio::spawn(async move {
                while Instant::now() < end {
                    call().await;
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

/// The baseline of [`throughput`]: `concurrency` runtimes, each behind its own bare Runtime API
/// endpoint, with one caller looping on each for `window`.
async fn direct_throughput(binary: &Path, concurrency: usize, window: Duration) -> f64 {
    let api = Arc::new(RuntimeApi::new());
    let mut children = Vec::new();
    let mut environments = Vec::new();
    for i in 0..concurrency {
        let env = EnvironmentId(format!("direct-{i}"));
        let addr = api.open(&env, ReadySignal::default()).await.unwrap();
        children.push(spawn_runtime(binary, addr));
        environments.push(env);
    }
    let ids = Arc::new(AtomicU64::new(0));
    // Warm every runtime first.
    let warm = environments
        .iter()
        .map(|env| api.invoke(env, invocation(ids.fetch_add(1, Ordering::Relaxed))));
    for answer in futures::future::join_all(warm).await {
        answer.unwrap();
    }
    let callers = environments.iter().cloned().map(|env| {
        let (api, ids) = (api.clone(), ids.clone());
        move || {
            let (api, env) = (api.clone(), env.clone());
            let id = ids.fetch_add(1, Ordering::Relaxed);
            async move {
                api.invoke(&env, invocation(id)).await.unwrap();
            }
        }
    });
    let per_second = rate(window, callers).await;
    for mut child in children {
        child.kill().await.unwrap();
    }
    for env in &environments {
        api.close(env, "done").await;
    }
    per_second
}

/// The echo runtime, polling the Runtime API at `addr`.
fn spawn_runtime(binary: &Path, addr: std::net::SocketAddr) -> tokio::process::Child {
    tokio::process::Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "echo")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The baseline of the contract rows of [`throughput`]: `concurrency` contract runtimes, each
/// with its log on a file as the process backend keeps it, and one caller looping on each with
/// the same event request the executor sends, through one shared HTTP client.
async fn direct_contract_throughput(binary: &Path, concurrency: usize, window: Duration) -> f64 {
    let logs = tempfile::tempdir().unwrap();
    let mut children = Vec::new();
    let mut ports = Vec::new();
    for i in 0..concurrency {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(logs.path().join(format!("{i}.log"))).unwrap();
        children.push(
            tokio::process::Command::new(binary)
                .env("FUNC_PORT", port.to_string())
                .env("FUNC_HANDLER", "foo")
                .env("MOD_NAME", "get")
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .unwrap(),
        );
        ports.push(port);
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    let call = move |port: u16| {
        let client = client.clone();
        async move {
            let request = hyper::Request::post(format!("http://127.0.0.1:{port}/"))
                .header("content-type", "application/json")
                .header("event-id", "bench")
                .header("event-type", "application/json")
                .header("event-time", "2026-11-22T00:00:00Z")
                .header("event-namespace", "hoist")
                .body(http_body_util::Full::new(Bytes::from_static(
                    PAYLOAD.as_bytes(),
                )))
                .unwrap();
            let response = client.request(request).await?;
            let ok = response.status().is_success();
            use http_body_util::BodyExt;
            response.into_body().collect().await?;
            Ok::<bool, Box<dyn std::error::Error + Send + Sync>>(ok)
        }
    };
    // Wait until every runtime answers.
    for &port in &ports {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !matches!(call(port).await, Ok(true)) {
            assert!(
                Instant::now() < deadline,
                "the runtime on {port} never answered"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let callers = ports.iter().map(|&port| {
        let call = call.clone();
        move || {
            let answer = call(port);
            async move { assert!(answer.await.unwrap()) }
        }
    });
    let per_second = rate(window, callers).await;
    for mut child in children {
        child.kill().await.unwrap();
    }
    per_second
}

fn config(keepalive: Duration) -> FunctionsConfig {
    let mut config = FunctionsConfig::from_vars(Vec::<(String, String)>::new()).unwrap();
    config.pool.keepalive = keepalive;
    config.runtimes.insert(
        "provided".into(),
        RuntimeCommand::lambda(["{code}/bootstrap"]),
    );
    config.runtimes.insert(
        "contract".into(),
        RuntimeCommand::contract(["{code}/function-get"]),
    );
    config
}

/// Runs `count` sequential warm invocations on one path (`direct` or `executor`).
async fn only(binary: &Path, code: &Path, path: &str, count: usize) {
    let ids = AtomicU64::new(0);
    match path {
        "direct" => {
            let api = RuntimeApi::new();
            let env = EnvironmentId("direct".into());
            let addr = api.open(&env, ReadySignal::default()).await.unwrap();
            let mut child = spawn_runtime(binary, addr);
            for _ in 0..count {
                api.invoke(&env, invocation(ids.fetch_add(1, Ordering::Relaxed)))
                    .await
                    .unwrap();
            }
            child.kill().await.unwrap();
            api.close(&env, "done").await;
        }
        "executor" => {
            let state = tempfile::tempdir().unwrap();
            let processes =
                Arc::new(hoist_process::ProcessContainerizer::new(state.path()).unwrap());
            let functions =
                FunctionExecutor::start(processes, config(Duration::from_secs(600))).unwrap();
            functions
                .create(FunctionSpec::new("echo", "provided", "bootstrap", code))
                .unwrap();
            for _ in 0..count {
                functions
                    .invoke("echo", Invocation::new(PAYLOAD))
                    .await
                    .unwrap();
            }
            functions.shutdown().await;
        }
        other => panic!("--only takes direct or executor, not {other}"),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let binary = echo_lambda();
    let code = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&binary, code.path().join("bootstrap")).unwrap();
    let contract_binary = contract_function();
    std::os::unix::fs::symlink(&contract_binary, code.path().join("function-get")).unwrap();
    let n = 5000;
    // `-- --only direct|executor N`: just N sequential warm invocations on one path, for a
    // profiler or an instruction counter (`valgrind --tool=callgrind`).
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--only") {
        #[cfg(feature = "aws")]
        if args.get(i + 1).map(String::as_str) == Some("restarts") {
            restarts::run(&binary).await;
            return;
        }
        let count = args.get(i + 2).and_then(|n| n.parse().ok()).unwrap_or(n);
        only(&binary, code.path(), &args[i + 1], count).await;
        return;
    }

    // Baseline: the same runtime behind a bare Runtime API endpoint.
    let api = RuntimeApi::new();
    let env = EnvironmentId("direct".into());
    let addr = api.open(&env, ReadySignal::default()).await.unwrap();
    let mut direct_child = spawn_runtime(&binary, addr);
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

    // Throughput, each executor figure next to its baseline at the same concurrency: rounds
    // alternate between the two, and the best round of each counts, so that load from outside
    // the benchmark (a shared machine) weighs on both alike.
    let window = Duration::from_secs(1);
    let mut rates = Vec::new();
    for concurrency in [1, 8, 64] {
        let (mut direct, mut pooled) = (0f64, 0f64);
        for _ in 0..3 {
            direct = direct.max(direct_throughput(&binary, concurrency, window).await);
            pooled = pooled.max(throughput(&functions_warm, "echo", concurrency, window).await);
        }
        rates.push((concurrency, direct, pooled));
    }
    // The same trivial Rust function on the runtime contract: one HTTP exchange per invocation
    // instead of the Runtime API's two.
    functions_warm
        .create(FunctionSpec::new("get", "contract", "get.foo", code.path()))
        .unwrap();
    let mut contract_rates = Vec::new();
    for concurrency in [1, 8, 64] {
        let (mut direct, mut pooled) = (0f64, 0f64);
        for _ in 0..3 {
            direct =
                direct.max(direct_contract_throughput(&contract_binary, concurrency, window).await);
            pooled = pooled.max(throughput(&functions_warm, "get", concurrency, window).await);
        }
        contract_rates.push((concurrency, direct, pooled));
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
    println!(
        "| concurrency | direct: bare endpoints → runtimes (baseline), /s | FunctionExecutor::invoke, warm, /s | ratio |"
    );
    println!("|---|---|---|---|");
    for (c, direct, pooled) in rates {
        println!(
            "| {c} | {direct:.0} | {pooled:.0} | {:.2} |",
            pooled / direct
        );
    }
    println!();
    println!(
        "| concurrency | contract: direct HTTP → runtimes (baseline), /s | FunctionExecutor::invoke, contract runtime, warm, /s | ratio |"
    );
    println!("|---|---|---|---|");
    for (c, direct, pooled) in contract_rates {
        println!(
            "| {c} | {direct:.0} | {pooled:.0} | {:.2} |",
            pooled / direct
        );
    }

    docker_cold_starts(&binary).await;
    #[cfg(feature = "aws")]
    restarts::run(&binary).await;
}

/// How many cold starts are measured on Docker, each way.
const DOCKER_COLD_STARTS: usize = 15;

/// Cold starts on Docker: the function executor (invoke → answer on a new container, keepalive
/// 0) against the same container created and started through the Engine API by hand, with a
/// bare Runtime API endpoint (create → answer), in the same run.
async fn docker_cold_starts(binary: &Path) {
    use hoist_core::{
        ContainerSpec, Containerizer, ExecutorId, NetworkMode, Owner, TaskId, Volume,
    };
    use hoist_docker::testing::{DEBIAN_STATIC_BUSYBOX, build_busybox_image, remove_image};
    use hoist_docker::{DockerConfig, DockerContainerizer};

    let docker = match DockerContainerizer::connect(DockerConfig::from_env()).await {
        Ok(docker) => docker,
        Err(e) => {
            println!("\nDocker cold starts not measured: {e}");
            return;
        }
    };
    let tag = format!("hoist-functions-bench-{}:1", std::process::id());
    build_busybox_image(
        docker.client(),
        DEBIAN_STATIC_BUSYBOX.as_ref(),
        &tag,
        &[("io.hoist-test.run", "functions-bench")],
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    // The code directory holds a copy of the binary (a symlink would point outside the mount).
    let code = tempfile::tempdir().unwrap();
    let bootstrap = code.path().join("bootstrap");
    std::fs::copy(binary, &bootstrap).unwrap();
    let libraries: Vec<Volume> = [
        "/lib/x86_64-linux-gnu",
        "/lib64",
        "/usr/lib/x86_64-linux-gnu",
    ]
    .iter()
    .map(Path::new)
    .filter(|p| p.exists())
    .map(|p| Volume {
        host_path: p.to_path_buf(),
        container_path: p.to_path_buf(),
        read_only: true,
    })
    .chain([Volume {
        host_path: code.path().to_path_buf(),
        container_path: code.path().to_path_buf(),
        read_only: true,
    }])
    .collect();

    // Baseline: create, start, first answer, remove, through the Engine API.
    let api = RuntimeApi::new();
    let owner = Owner {
        executor_id: ExecutorId::new("hoist-functions-bench"),
        task_id: TaskId::new("raw"),
    };
    let mut raw = Vec::new();
    for i in 0..DOCKER_COLD_STARTS {
        let env = EnvironmentId(format!("raw-{i}"));
        let addr = api.open(&env, ReadySignal::default()).await.unwrap();
        let mut spec = ContainerSpec::command([bootstrap.to_string_lossy().into_owned()]);
        spec.image = Some(tag.clone());
        spec.network = Some(NetworkMode::Host);
        spec.volumes = libraries.clone();
        spec.env
            .insert("AWS_LAMBDA_RUNTIME_API".into(), addr.to_string());
        for (k, v) in [
            ("AWS_LAMBDA_FUNCTION_NAME", "echo"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ] {
            spec.env.insert(k.into(), v.into());
        }
        let start = Instant::now();
        let id = docker.create(&owner, &spec).await.unwrap();
        docker.start(&id).await.unwrap();
        api.invoke(&env, invocation(i as u64)).await.unwrap();
        raw.push(start.elapsed());
        docker.remove(&id, true).await.unwrap();
        api.close(&env, "done").await;
    }
    raw.sort();

    // The function executor, keepalive 0: every invocation starts a new container.
    let mut config = config(Duration::ZERO);
    let mut runtime = RuntimeCommand::lambda(["{code}/bootstrap"]).in_image(&tag);
    runtime.volumes = libraries[..libraries.len() - 1].to_vec();
    config.runtimes.insert("provided-docker".into(), runtime);
    let functions = FunctionExecutor::start(Arc::new(docker), config).unwrap();
    functions
        .create(FunctionSpec::new(
            "echo",
            "provided-docker",
            "bootstrap",
            code.path(),
        ))
        .unwrap();
    let mut colds = Vec::new();
    for _ in 0..DOCKER_COLD_STARTS {
        let start = Instant::now();
        let r = functions
            .invoke("echo", Invocation::new(PAYLOAD))
            .await
            .unwrap();
        colds.push(start.elapsed());
        assert!(r.cold_start && r.function_error.is_none());
        // Let the stopped container go before the next one starts.
        while !functions.pool().environments().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    colds.sort();
    functions.shutdown().await;
    let docker = DockerContainerizer::connect(DockerConfig::from_env())
        .await
        .unwrap();
    remove_image(docker.client(), &tag).await.unwrap();

    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    println!();
    println!("| Docker cold start ({DOCKER_COLD_STARTS} each) | p50 (ms) | p99 (ms) |");
    println!("|---|---|---|");
    println!(
        "| Engine API by hand: create → start → first answer (baseline) | {} | {} |",
        ms(percentile(&raw, 0.5)),
        ms(percentile(&raw, 0.99))
    );
    println!(
        "| FunctionExecutor::invoke on a new container | {} | {} |",
        ms(percentile(&colds, 0.5)),
        ms(percentile(&colds, 0.99))
    );
    println!(
        "| ratio (p50) | {:.2} | |",
        percentile(&colds, 0.5).as_secs_f64() / percentile(&raw, 0.5).as_secs_f64()
    );
}
