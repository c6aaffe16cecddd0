//! Requests per second and p50/p99 latency of the contract server, and of hoist-proxy in front
//! of the Python and Node shims, each against its baseline in the same run:
//!
//! - the contract server against a bare axum handler;
//! - hoist-proxy + a shim against the same shim called directly (the proxy's cost);
//! - the Python shim's per-call process isolation against its thread mode (the isolation's
//!   cost), both called directly.
//!
//! Two calls: `GET /` of `helloget` and a 1 KB `POST` echoed back. The shim cases run in
//! three rounds, alternating, and the best round of each counts, so outside load weighs on
//! both sides of a ratio alike.
//!
//! `cargo bench -p hoist-runtimes --bench contract` (loopback only; about two minutes);
//! `-- python` or `-- node` runs that language's cases only.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
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
const DURATION: Duration = Duration::from_secs(3);
const WARMUP: Duration = Duration::from_millis(500);
const ROUNDS: usize = 3;

#[derive(Clone, Copy)]
struct Figures {
    requests: usize,
    rps: f64,
    p50: Duration,
    p99: Duration,
}

/// A call to load: a GET, or a POST of a body.
#[derive(Clone)]
struct Call {
    url: String,
    body: Option<Bytes>,
}

/// Runs `CONNECTIONS` keep-alive clients making `call` for `DURATION`.
async fn load(call: &Call) -> Figures {
    let run = |duration: Duration| {
        let call = call.clone();
        async move {
            let started = Instant::now();
            let clients: Vec<_> = (0..CONNECTIONS)
                .map(|_| {
                    let call = call.clone();
                    tokio::spawn(async move {
                        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
                            .pool_max_idle_per_host(1)
                            .build_http();
                        let mut latencies = Vec::new();
                        while started.elapsed() < duration {
                            let begun = Instant::now();
                            let request = match &call.body {
                                None => hyper::Request::get(call.url.as_str())
                                    .body(Full::new(Bytes::new())),
                                Some(body) => hyper::Request::post(call.url.as_str())
                                    .header("content-type", "application/octet-stream")
                                    .body(Full::new(body.clone())),
                            }
                            .unwrap();
                            let response = client.request(request).await.expect("request failed");
                            assert_eq!(response.status(), 200);
                            let body = response.into_body().collect().await.unwrap().to_bytes();
                            if let Some(sent) = &call.body {
                                assert_eq!(body.len(), sent.len(), "the echo");
                            }
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
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
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

fn quiet() -> ContractConfig {
    ContractConfig {
        log: Arc::new(|_| {}),
        ..ContractConfig::default()
    }
}

/// A function behind hoist-proxy: the proxy's URL and the shim's own.
struct Served {
    proxy: Proxy,
    proxied: String,
    direct: String,
}

async fn start(
    command: &str,
    dir: &Path,
    module: &str,
    handler: &str,
    env: &[(&str, &str)],
) -> Served {
    let upstream = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = ProxyConfig::from_vars([
        (
            "FUNC_PROCESS",
            format!("cd {} && exec {command}", dir.display()),
        ),
        ("FUNC_UPSTREAM_PORT", upstream.to_string()),
    ])
    .unwrap();
    config.env = vec![
        ("MOD_NAME".into(), module.into()),
        ("FUNC_HANDLER".into(), handler.into()),
    ];
    config
        .env
        .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    config.contract = quiet();
    let proxy = Proxy::start(config)
        .await
        .unwrap_or_else(|e| panic!("{command} did not start: {e}"));
    let proxied = serve(proxy.router()).await;
    Served {
        proxy,
        proxied,
        direct: format!("http://127.0.0.1:{upstream}/"),
    }
}

/// The best round of each case, cases alternating within a round.
async fn best_of(cases: &[Call]) -> Vec<Figures> {
    let mut best: Vec<Option<Figures>> = vec![None; cases.len()];
    for _ in 0..ROUNDS {
        for (i, call) in cases.iter().enumerate() {
            let figures = load(call).await;
            if best[i].is_none_or(|b| figures.rps > b.rps) {
                best[i] = Some(figures);
            }
        }
    }
    best.into_iter().map(Option::unwrap).collect()
}

#[tokio::main]
async fn main() {
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |group: &str| only.as_deref().is_none_or(|o| group.contains(o));
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shims = crate_dir.join("shims");
    let examples = crate_dir.join("../examples/functions");
    let functions = tempfile::tempdir().unwrap();
    std::fs::write(
        functions.path().join("echo.py"),
        "def handler(event, context):\n    return event['data']\n",
    )
    .unwrap();
    std::fs::write(
        functions.path().join("echo.js"),
        "module.exports = { handler: (event, context) => event.data };\n",
    )
    .unwrap();
    let python = format!(
        "python3 {}",
        shims.join("python/hoist_runtime.py").display()
    );
    let node = format!("node {}", shims.join("node/hoist_runtime.js").display());
    let threads = [("HOIST_CALL_ISOLATION", "thread")];

    let direct = serve(Router::new().fallback(|| async { "hello world" })).await;
    let contract = serve(ContractServer::new(quiet(), hello).router()).await;

    let body = Some(Bytes::from(vec![b'x'; 1024]));
    let get = |url: &str| Call {
        url: url.to_owned(),
        body: None,
    };
    let post = |url: &str| Call {
        url: url.to_owned(),
        body: body.clone(),
    };

    println!(
        "{CONNECTIONS} keep-alive connections, {DURATION:?} per case after {WARMUP:?} of warm-up; shim cases: best of {ROUNDS} alternating rounds\n"
    );
    println!("| case | requests | req/s | p50 ms | p99 ms | req/s vs baseline |");
    println!("|---|---|---|---|---|---|");
    let baseline = load(&get(&direct)).await;
    row("axum handler, direct (baseline)", &baseline, &baseline);
    row(
        "contract server (hoist-runtimes)",
        &load(&get(&contract)).await,
        &baseline,
    );

    for (call, module, dir) in [
        ("GET helloget", "helloget", examples.join("python")),
        ("POST 1 KB echo", "echo", functions.path().to_owned()),
    ] {
        if !wanted("python") {
            break;
        }
        let handler = if module == "helloget" {
            "foo"
        } else {
            "handler"
        };
        let isolated = start(&python, &dir, module, handler, &[]).await;
        let threaded = start(&python, &dir, module, handler, &threads).await;
        let make = |url: &str| {
            if module == "helloget" {
                get(url)
            } else {
                post(url)
            }
        };
        let figures = best_of(&[
            make(&threaded.direct),
            make(&isolated.direct),
            make(&isolated.proxied),
        ])
        .await;
        row(
            &format!("Python shim, threads, direct, {call} (isolation baseline)"),
            &figures[0],
            &figures[0],
        );
        row(
            &format!("Python shim, processes, direct, {call} (proxy baseline)"),
            &figures[1],
            &figures[0],
        );
        row(
            &format!("hoist-proxy + Python shim, processes, {call}"),
            &figures[2],
            &figures[1],
        );
        isolated.proxy.stop().await;
        threaded.proxy.stop().await;
    }

    for (call, module, dir) in [
        ("GET helloget", "helloget", examples.join("node")),
        ("POST 1 KB echo", "echo", functions.path().to_owned()),
    ] {
        if !wanted("node") {
            break;
        }
        let handler = if module == "helloget" {
            "foo"
        } else {
            "handler"
        };
        let served = start(&node, &dir, module, handler, &[]).await;
        let make = |url: &str| {
            if module == "helloget" {
                get(url)
            } else {
                post(url)
            }
        };
        let figures = best_of(&[make(&served.direct), make(&served.proxied)]).await;
        row(
            &format!("Node shim, direct, {call} (baseline)"),
            &figures[0],
            &figures[0],
        );
        row(
            &format!("hoist-proxy + Node shim, {call}"),
            &figures[1],
            &figures[0],
        );
        served.proxy.stop().await;
    }
}
