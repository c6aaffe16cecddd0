//! `hoist-proxy`: serves the function runtime contract in front of any language's HTTP server.
//!
//! Reads `FUNC_PROCESS` (the command that starts the function's server), `FUNC_PORT` (where the
//! proxy listens, default 8080), `FUNC_HOST` (default `0.0.0.0`), `FUNC_UPSTREAM_PORT` (where
//! the function's server listens, default 8090; the process gets it as its `FUNC_PORT`),
//! `FUNC_TIMEOUT` (also given to the process), `FUNC_START_TIMEOUT` and the other `FUNC_*`
//! variables. See `hoist_runtimes::proxy` for what the process may announce in its `/healthz`
//! answer (Kubeless conventions, ending a call by closing its connection).

use hoist_runtimes::contract::bind_listener;
use hoist_runtimes::proxy::{Proxy, ProxyConfig};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("hoist-proxy: {e}");
        std::process::exit(1);
    }
}

async fn run() -> hoist_core::Result<()> {
    let config = ProxyConfig::from_vars(std::env::vars())?;
    let listener = bind_listener(config.contract.host, config.contract.port).await?;
    let proxy = Proxy::start(config).await?;
    proxy.serve_with_shutdown(listener, shutdown()).await
}

async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
