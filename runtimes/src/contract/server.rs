//! The contract's HTTP service, shared by the Rust function server and the proxy: `/healthz`,
//! `/metrics`, the call with its deadline, metrics and the request log.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::config::ContractConfig;
use super::log::RequestLog;
use super::metrics::{ContractMetrics, METRICS_CONTENT_TYPE};

/// A boxed, sendable future.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
/// Serves one call (the function, or the forward to the upstream).
pub(crate) type CallFn = Arc<dyn Fn(Request) -> BoxFuture<Response> + Send + Sync>;
/// Answers whether the function is healthy.
pub(crate) type HealthFn = Arc<dyn Fn() -> BoxFuture<bool> + Send + Sync>;
/// Told when a call timed out.
pub(crate) type TimeoutFn = Arc<dyn Fn() + Send + Sync>;

/// The body of a 408.
pub const TIMEOUT_MESSAGE: &str = "Timeout while processing the function";

pub(crate) struct Service {
    pub(crate) config: ContractConfig,
    pub(crate) metrics: ContractMetrics,
    pub(crate) call: CallFn,
    pub(crate) health: Option<HealthFn>,
    pub(crate) on_timeout: Option<TimeoutFn>,
}

impl Service {
    pub(crate) fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self)
    }
}

async fn handle(State(service): State<Arc<Service>>, request: Request) -> Response {
    let time = SystemTime::now();
    let started = Instant::now();
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".into());
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => healthz(&service).await,
        (&Method::GET, "/metrics") => (
            [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
            service.metrics.encode(),
        )
            .into_response(),
        _ => call(&service, request, started).await,
    };
    (service.config.log)(&RequestLog {
        time,
        method: method.to_string(),
        path,
        status: response.status().as_u16(),
        duration: started.elapsed(),
    });
    response
}

async fn healthz(service: &Service) -> Response {
    let healthy = match &service.health {
        Some(health) => health().await,
        None => true,
    };
    if healthy {
        (StatusCode::OK, "OK").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "the function is not ready").into_response()
    }
}

async fn call(service: &Service, request: Request, started: Instant) -> Response {
    let method = request.method().to_string();
    let mut task = tokio::spawn((service.call)(request));
    let (response, failed) = match tokio::time::timeout(service.config.timeout, &mut task).await {
        Ok(Ok(response)) => {
            let failed = response.status().is_server_error();
            (response, failed)
        }
        Ok(Err(join)) => {
            let message = if join.is_panic() {
                "the function panicked"
            } else {
                "the function was cancelled"
            };
            (
                (StatusCode::INTERNAL_SERVER_ERROR, message).into_response(),
                true,
            )
        }
        Err(_) => {
            task.abort();
            if let Some(on_timeout) = &service.on_timeout {
                on_timeout();
            }
            (
                (StatusCode::REQUEST_TIMEOUT, TIMEOUT_MESSAGE).into_response(),
                true,
            )
        }
    };
    service
        .metrics
        .record(&method, started.elapsed().as_secs_f64(), failed);
    response
}

/// An empty-bodied response of `status` with `message`.
pub(crate) fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    let mut response = Response::new(Body::from(message.into()));
    *response.status_mut() = status;
    response
}
