//! The Lambda API over the function executor (feature `aws`), in the same run as a direct call:
//! what the control plane, the store and the Runtime API relay add to a warm invoke, and the
//! first invoke after a restart with re-attaching against without it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use base64::Engine as _;
use hoist_aws::lambda::{LambdaConfig, LambdaService};
use hoist_core::scheduler::EnvironmentId;
use hoist_functions::config::RuntimeCommand;
use hoist_functions::lambda_host::LambdaHost;
use hoist_functions::launcher::ReadySignal;
use hoist_functions::relay::{RelayClient, run_relay};
use hoist_functions::runtime_api::RuntimeApi;
use hoist_functions::{EnvironmentRecovery, FunctionExecutor};
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::{PAYLOAD, config, invocation, micros, percentile, sample, spawn_runtime};

/// Restarts measured each way.
const RESTARTS: usize = 20;
/// Warm invocations measured on each path.
const WARM: usize = 2000;

/// One server: the executor (relayed or not), the store and the Lambda API over them.
struct Server {
    functions: FunctionExecutor,
    service: LambdaService,
    router: axum::Router,
}

async fn call(router: &axum::Router, method: &str, uri: &str, body: String) -> Vec<u8> {
    let request = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        status.is_success(),
        "{method} {uri}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    body.to_vec()
}

async fn invoke(router: &axum::Router) {
    call(
        router,
        "POST",
        "/2015-03-31/functions/echo/invocations",
        PAYLOAD.into(),
    )
    .await;
}

/// Starts a server on `state` (the relay in `relay`, when given), recovering the environments
/// a predecessor left by `recovery`.
async fn start(state: &Path, relay: Option<&Path>, recovery: EnvironmentRecovery) -> Server {
    let backend =
        Arc::new(hoist_process::ProcessContainerizer::new(state.join("backend")).unwrap());
    let mut config = config(Duration::from_secs(600));
    config.runtimes.insert(
        "provided.al2023".into(),
        RuntimeCommand::lambda(["{code}/bootstrap"]),
    );
    let functions = match relay {
        Some(dir) => {
            let client = RelayClient::connect(dir).await.expect("the relay answers");
            FunctionExecutor::start_relayed(backend, config, Arc::new(client)).unwrap()
        }
        None => FunctionExecutor::start(backend, config).unwrap(),
    };
    let store = hoist_store::Store::open(state.join("lambda")).unwrap();
    let host = LambdaHost::new(functions.clone(), state.join("unpacked"));
    let service = LambdaService::start(store, Arc::new(host), LambdaConfig::default()).await;
    functions.recover_environments(recovery).await.unwrap();
    let router = service.router();
    Server {
        functions,
        service,
        router,
    }
}

/// Creates `echo` (a `provided` function whose `bootstrap` is `binary`) and waits until it is
/// active.
async fn create(router: &axum::Router, binary: &Path) {
    let zip = {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        zip.start_file("bootstrap", options).unwrap();
        zip.write_all(&std::fs::read(binary).unwrap()).unwrap();
        zip.finish().unwrap().into_inner()
    };
    let create = serde_json::json!({
        "FunctionName": "echo",
        "Runtime": "provided.al2023",
        "Role": "arn:aws:iam::000000000000:role/r",
        "Handler": "bootstrap",
        "Code": {"ZipFile": base64::engine::general_purpose::STANDARD.encode(zip)},
    });
    call(router, "POST", "/2015-03-31/functions", create.to_string()).await;
    for _ in 0..1000 {
        let conf = call(
            router,
            "GET",
            "/2015-03-31/functions/echo/configuration",
            String::new(),
        )
        .await;
        let conf = String::from_utf8_lossy(&conf);
        assert!(!conf.contains("\"State\":\"Failed\""), "{conf}");
        if conf.contains("\"State\":\"Active\"") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("echo never became active");
}

/// `RESTARTS` restarts of a server that served one invoke: the restart (stop → the new
/// server's recovery done) and its first invoke.
async fn restarts(binary: &Path, reattach: bool) -> (Vec<Duration>, Vec<Duration>) {
    let state = tempfile::tempdir().unwrap();
    let relay_dir = state.path().join("relay");
    let stop = CancellationToken::new();
    let relay = {
        let (dir, stop) = (relay_dir.clone(), stop.clone());
        tokio::spawn(async move { run_relay(&dir, Duration::from_secs(600), stop).await })
    };
    while RelayClient::connect(&relay_dir).await.is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (relayed, recovery) = if reattach {
        (Some(relay_dir.as_path()), EnvironmentRecovery::Reattach)
    } else {
        (None, EnvironmentRecovery::Cleanup)
    };
    let mut server = start(state.path(), relayed, recovery).await;
    create(&server.router, binary).await;
    invoke(&server.router).await;
    let (mut restart_times, mut firsts) = (Vec::new(), Vec::new());
    for _ in 0..RESTARTS {
        let begin = Instant::now();
        server.service.shutdown().await;
        if reattach {
            server.functions.detach().await;
        } else {
            server.functions.shutdown().await;
        }
        server = start(state.path(), relayed, recovery).await;
        restart_times.push(begin.elapsed());
        let first = Instant::now();
        invoke(&server.router).await;
        firsts.push(first.elapsed());
    }
    server.service.shutdown().await;
    server.functions.shutdown().await;
    stop.cancel();
    let _ = relay.await;
    restart_times.sort();
    firsts.sort();
    (restart_times, firsts)
}

/// Prints the tables of this module.
pub async fn run(binary: &Path) {
    // Warm: the direct call, then the Lambda API over the executor, without and with the relay.
    let api = RuntimeApi::new();
    let env = EnvironmentId("direct".into());
    let addr = api.open(&env, ReadySignal::default()).await.unwrap();
    let mut child = spawn_runtime(binary, addr);
    let ids = std::sync::atomic::AtomicU64::new(0);
    let direct = sample(WARM, || async {
        let id = ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        api.invoke(&env, invocation(id)).await.unwrap();
    })
    .await;
    child.kill().await.unwrap();
    api.close(&env, "done").await;
    let mut warm = vec![("direct: Runtime API endpoint → runtime (baseline)", direct)];
    for (label, relayed) in [
        ("Lambda API → store → executor, warm", false),
        ("Lambda API → store → executor → relay, warm", true),
    ] {
        let state = tempfile::tempdir().unwrap();
        let relay_dir = state.path().join("relay");
        let stop = CancellationToken::new();
        let relay = {
            let (dir, stop) = (relay_dir.clone(), stop.clone());
            tokio::spawn(async move { run_relay(&dir, Duration::from_secs(600), stop).await })
        };
        while RelayClient::connect(&relay_dir).await.is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let server = start(
            state.path(),
            relayed.then_some(relay_dir.as_path()),
            EnvironmentRecovery::Reattach,
        )
        .await;
        create(&server.router, binary).await;
        let samples = sample(WARM, || invoke(&server.router)).await;
        server.service.shutdown().await;
        server.functions.shutdown().await;
        stop.cancel();
        let _ = relay.await;
        warm.push((label, samples));
    }
    let base = percentile(&warm[0].1, 0.5);
    println!("| warm invoke ({WARM} sequential) | p50 (µs) | p95 (µs) | ratio to direct (p50) |");
    println!("|---|---|---|---|");
    for (label, samples) in &warm {
        let p50 = percentile(samples, 0.5);
        println!(
            "| {label} | {} | {} | {:.2} |",
            micros(p50),
            micros(percentile(samples, 0.95)),
            p50.as_secs_f64() / base.as_secs_f64()
        );
    }

    let (cleanup_restart, cleanup_first) = restarts(binary, false).await;
    let (reattach_restart, reattach_first) = restarts(binary, true).await;
    println!();
    println!("| after a restart ({RESTARTS} each) | p50 (µs) | p95 (µs) |");
    println!("|---|---|---|");
    for (label, samples) in [
        ("first invoke, cleanup (a cold start)", &cleanup_first),
        ("first invoke, re-attached", &reattach_first),
        ("restart (stop → recovered), cleanup", &cleanup_restart),
        ("restart (stop → recovered), re-attach", &reattach_restart),
    ] {
        println!(
            "| {label} | {} | {} |",
            micros(percentile(samples, 0.5)),
            micros(percentile(samples, 0.95))
        );
    }
    println!(
        "| ratio of first invokes, re-attached / cleanup (p50) | {:.3} | |",
        percentile(&reattach_first, 0.5).as_secs_f64()
            / percentile(&cleanup_first, 0.5).as_secs_f64()
    );
}
