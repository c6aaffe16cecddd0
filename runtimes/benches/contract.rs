//! Requests per second and p50/p99 latency of the contract server and of hoist-proxy with the
//! Python shim, each against a direct call to the same upstream in the same run.
//!
//! `cargo bench -p hoist-runtimes --bench contract` (loopback only; a few seconds per case).

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hoist_runtimes::contract::axum::{self, Router};
use hoist_runtimes::contract::{Context, ContractConfig, ContractServer, Event};
use hoist_runtimes::proxy::{Proxy, ProxyConfig};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;

const CONNECTIONS: usize = 16;
const DURATION: Duration = Duration::from_secs(4);
const WARMUP: Duration = Duration::from_millis(500);

struct Figures {
    requests: usize,
    rps: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs `CONNECTIONS` keep-alive clients against `url` for `DURATION`.
async fn load(url: &str) -> Figures {
    let run = |duration: Duration| {
        let url = url.to_owned();
        async move {
            let started = Instant::now();
            let clients: Vec<_> = (0..CONNECTIONS)
                .map(|_| {
                    let url = url.clone();
                    tokio::spawn(async move {
                        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
                            .pool_max_idle_per_host(1)
                            .build_http();
                        let mut latencies = Vec::new();
                        while started.elapsed() < duration {
                            let begun = Instant::now();
                            let request = hyper::Request::get(url.as_str())
                                .body(Full::new(Bytes::new()))
                                .unwrap();
                            let response = client.request(request).await.expect("request failed");
                            assert_eq!(response.status(), 200);
                            response.into_body().collect().await.unwrap();
                            latencies.push(begun.elapsed());
                        }
                        latencies
                    })
                })
                .collect();
            let mut all = Vec::new();
            for client in clients {
                all.extend(client.await.unwrap());
            }
            (all, started.elapsed())
        }
    };
    run(WARMUP).await;
    let (mut latencies, elapsed) = run(DURATION).await;
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Figures {
        requests: latencies.len(),
        rps: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

async fn hello(_event: Event, _context: Context) -> Result<&'static str, Infallible> {
    Ok("hello world")
}

async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

fn row(name: &str, figures: &Figures, baseline: &Figures) {
    println!(
        "| {name} | {} | {:.0} | {:.3} | {:.3} | {:.2} |",
        figures.requests,
        figures.rps,
        figures.p50.as_secs_f64() * 1e3,
        figures.p99.as_secs_f64() * 1e3,
        figures.rps / baseline.rps,
    );
}

#[tokio::main]
async fn main() {
    let quiet = ContractConfig {
        log: Arc::new(|_| {}),
        ..ContractConfig::default()
    };
    let direct = serve(Router::new().fallback(|| async { "hello world" })).await;
    let contract = serve(ContractServer::new(quiet.clone(), hello).router()).await;

    let shim = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("shims/python/hoist_runtime.py");
    let functions = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/functions/python");
    let upstream = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = ProxyConfig::from_vars([
        (
            "FUNC_PROCESS",
            format!(
                "cd {} && exec python3 {}",
                functions.display(),
                shim.display()
            ),
        ),
        ("FUNC_UPSTREAM_PORT", upstream.to_string()),
    ])
    .unwrap();
    config.env = vec![
        ("MOD_NAME".into(), "helloget".into()),
        ("FUNC_HANDLER".into(), "foo".into()),
    ];
    config.contract = quiet;
    let proxy = Proxy::start(config)
        .await
        .expect("the Python shim did not start");
    let proxied = serve(proxy.router()).await;
    let shim_direct = format!("http://127.0.0.1:{upstream}/");

    println!(
        "{CONNECTIONS} keep-alive connections, {DURATION:?} per case, after {WARMUP:?} of warm-up\n"
    );
    println!("| case | requests | req/s | p50 ms | p99 ms | req/s vs baseline |");
    println!("|---|---|---|---|---|---|");
    let baseline = load(&direct).await;
    row("axum handler, direct (baseline)", &baseline, &baseline);
    row(
        "contract server (hoist-runtimes)",
        &load(&contract).await,
        &baseline,
    );
    let baseline = load(&shim_direct).await;
    row("Python shim, direct (baseline)", &baseline, &baseline);
    row(
        "hoist-proxy + Python shim",
        &load(&proxied).await,
        &baseline,
    );
    proxy.stop().await;
}
