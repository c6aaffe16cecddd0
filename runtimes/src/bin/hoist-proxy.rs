//! `hoist-proxy`: serves the function runtime contract in front of any language's HTTP server.
//!
//! Reads `FUNC_PROCESS` (the command that starts the function's server), `FUNC_PORT` (where the
//! proxy listens, default 8080), `FUNC_UPSTREAM_PORT` (where the function's server listens,
//! default 8090), `FUNC_TIMEOUT`, `FUNC_START_TIMEOUT` and the other `FUNC_*` variables.

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
    let port = config.contract.port;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|e| {
            hoist_core::Error::new(
                hoist_core::ErrorKind::Unavailable,
                format!("cannot listen on port {port}: {e}"),
            )
        })?;
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
