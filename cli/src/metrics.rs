//! `/metrics` for the programs: the registry they fill, served on the address they are given
//! (Prometheus text 0.0.4 by default, OpenMetrics when the scraper's `Accept` asks for it).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hoist::{Error, ErrorKind};
use prometheus_client::registry::Registry;

/// A `/metrics` endpoint serving `registry` until `shutdown` resolves.
pub struct MetricsServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `addr` and serves `registry` on it in the background.
    pub async fn start(addr: SocketAddr, registry: Arc<Registry>) -> Result<Self, Error> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot serve metrics on {addr}"),
            )
            .with_source(e)
        })?;
        let addr = listener.local_addr().unwrap_or(addr);
        let app = Router::new()
            .route("/metrics", get(metrics))
            .with_state(registry);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the metrics endpoint stopped");
            }
        });
        Ok(MetricsServer { addr, task })
    }

    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn metrics(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    match hoist::observe::metrics::encode(&registry, accept) {
        Ok((content_type, body)) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
