//! The function runtime contract, served for a Rust function.
//!
//! The server listens on `FUNC_PORT`; `GET /healthz` answers 200 and `GET /metrics` the
//! Prometheus metrics of Kubeless's runtimes (`function_calls_total`, `function_failures_total`
//! and the `function_duration_seconds` histogram, by `method`, plus `process_*`), in the text
//! format 0.0.4 unless the client's `Accept` prefers OpenMetrics. Every other path and method
//! calls the function with an [`Event`] and a [`Context`], calls running in parallel. An error
//! or a panic is written to stderr and answered with a generic 500 (its text never reaches the
//! caller); the server keeps serving. A call past `FUNC_TIMEOUT` is cancelled and answered 408
//! (a call, not a failure, in the metrics). Each request is logged as one line in the Apache
//! combined format ([`RequestLog`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use hoist_runtimes::contract::{ContractConfig, ContractServer, Context, Event};
//!
//! async fn hello(_event: Event, _context: Context) -> Result<String, std::convert::Infallible> {
//!     Ok("hello world".into())
//! }
//!
//! let config = ContractConfig::from_vars([("FUNC_TIMEOUT", "3")]).unwrap().with_log(|_| {});
//! let server = ContractServer::new(config, hello);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let port = listener.local_addr().unwrap().port();
//! tokio::spawn(server.serve(listener));
//! # let _ = port;
//! # }
//! ```

mod config;
mod conventions;
mod event;
mod log;
mod metrics;
mod process;
pub(crate) mod server;

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hoist_core::{Error, ErrorKind, Result};
use tokio::net::TcpListener;

/// axum, for building responses (`Json`, status codes, headers).
pub use axum;
pub use config::ContractConfig;
pub use conventions::{CONVENTIONS_HEADER, Conventions};
pub use event::{Context, Event, EventData, Extensions};
pub use log::{LogSink, RequestLog, clf_date, rfc3339, stdout_sink};
pub use metrics::{ContractMetrics, MetricsFormat, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};
pub use server::{FAILURE_MESSAGE, TIMEOUT_MESSAGE};

use server::{BoxFuture, Outcome, Service, plain};

/// The largest request body a call accepts (16 MiB); larger ones are answered 413.
pub const MAX_BODY: usize = 16 << 20;

/// Serves one function by the runtime contract.
pub struct ContractServer {
    service: Arc<Service>,
}

impl std::fmt::Debug for ContractServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContractServer")
            .field("config", &self.service.config)
            .finish_non_exhaustive()
    }
}

impl ContractServer {
    /// A server calling `function` for every request other than `GET /healthz` and
    /// `GET /metrics`. The function's `Ok` value is the response (a `String`, JSON, a status
    /// with a body...); its `Err` is written to stderr and answered with a generic 500
    /// ([`FAILURE_MESSAGE`]), counted as a failure.
    pub fn new<F, Fut, R, E>(config: ContractConfig, function: F) -> Self
    where
        F: Fn(Event, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<R, E>> + Send + 'static,
        R: IntoResponse,
        E: Display,
    {
        let context = Context {
            function_name: config.function_name.clone(),
            timeout: config.timeout,
            runtime: config.runtime.clone(),
            memory_limit: config.memory_limit.clone(),
        };
        let function = Arc::new(function);
        let call = Arc::new(move |request: Request| -> BoxFuture<Response> {
            let function = function.clone();
            let context = context.clone();
            Box::pin(async move {
                let event = match event_of(request).await {
                    Ok(event) => event,
                    Err(response) => return response,
                };
                match function(event, context).await {
                    Ok(reply) => reply.into_response(),
                    Err(error) => {
                        eprintln!("function failed: {error}");
                        let mut response =
                            plain(StatusCode::INTERNAL_SERVER_ERROR, FAILURE_MESSAGE);
                        response.extensions_mut().insert(Outcome::Failed);
                        response
                    }
                }
            })
        });
        ContractServer {
            service: Service::new(config, call, None),
        }
    }

    /// The axum router (for serving it yourself, or calling it in tests).
    pub fn router(&self) -> Router {
        self.service.clone().router()
    }

    /// The metrics as `/metrics` shows them.
    pub fn metrics(&self) -> String {
        self.service.metrics.encode()
    }

    /// Serves on `listener` until the process ends.
    pub async fn serve(self, listener: TcpListener) -> Result<()> {
        self.serve_with_shutdown(listener, std::future::pending())
            .await
    }

    /// Serves on `listener` until `shutdown` completes, then finishes the calls in flight.
    pub async fn serve_with_shutdown(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        serve_router(self.router(), listener, shutdown).await
    }
}

/// Binds `FUNC_HOST:FUNC_PORT` (`0.0.0.0:8080` by default) and serves `function` with the settings of the process's
/// `FUNC_*` variables until SIGTERM or Ctrl-C. Meant for a function binary's `main`.
pub async fn serve_from_env<F, Fut, R, E>(function: F) -> Result<()>
where
    F: Fn(Event, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<R, E>> + Send + 'static,
    R: IntoResponse,
    E: Display,
{
    let config = ContractConfig::from_vars(std::env::vars())?;
    let listener = bind_listener(config.host, config.port).await?;
    ContractServer::new(config, function)
        .serve_with_shutdown(listener, terminated())
        .await
}

/// Listens on `host:port`; failing to is an [`ErrorKind::Unavailable`] error naming both.
pub async fn bind_listener(host: std::net::IpAddr, port: u16) -> Result<TcpListener> {
    TcpListener::bind((host, port)).await.map_err(|e| {
        Error::new(
            ErrorKind::Unavailable,
            format!("cannot listen on {host}:{port}"),
        )
        .with_context("port", port)
        .with_source(e)
    })
}

pub(crate) async fn serve_router(
    router: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(|e| Error::new(ErrorKind::Backend, "the contract server stopped").with_source(e))
}

/// Completes on Ctrl-C, or on SIGTERM where there are signals.
pub(crate) async fn terminated() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn event_of(request: Request) -> std::result::Result<Event, Response> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        let mut response = plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("cannot read the request body: {e}"),
        );
        response.extensions_mut().insert(Outcome::NotCalled);
        response
    })?;
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    let data = if is_json && !bytes.is_empty() {
        EventData::Json(serde_json::from_slice(&bytes).map_err(|e| {
            let mut response = plain(
                StatusCode::BAD_REQUEST,
                format!("the body is declared application/json but is not JSON: {e}"),
            );
            response.extensions_mut().insert(Outcome::NotCalled);
            response
        })?)
    } else {
        EventData::Raw(bytes)
    };
    Ok(Event {
        data,
        event_id: header_text(&parts.headers, "event-id"),
        event_type: header_text(&parts.headers, "event-type"),
        event_time: header_text(&parts.headers, "event-time"),
        event_namespace: header_text(&parts.headers, "event-namespace"),
        extensions: Extensions { request: parts },
    })
}

#[cfg(test)]
mod tests;
