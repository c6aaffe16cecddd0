//! The contract's HTTP service, shared by the Rust function server and the proxy: `/healthz`,
//! `/metrics`, the call with its deadline, metrics and the request log.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::{Body, HttpBody as _};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::FutureExt as _;

use super::config::ContractConfig;
use super::log::RequestLog;
use super::metrics::{ContractMetrics, MetricsFormat};

/// A boxed, sendable future.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
/// Serves one call (the function, or the forward to the upstream).
pub(crate) type CallFn = Arc<dyn Fn(Request) -> BoxFuture<Response> + Send + Sync>;
/// Answers whether the function is healthy.
pub(crate) type HealthFn = Arc<dyn Fn() -> BoxFuture<bool> + Send + Sync>;

/// The body of a 408 (`_kubeless.py`'s message).
pub const TIMEOUT_MESSAGE: &str = "Timeout while processing the function";
/// The body of the 500 that answers a function's error: its text goes to the log, never to
/// the caller (Kubeless's Python runtime answers bottle's generic 500, its Node runtime this
/// text).
pub const FAILURE_MESSAGE: &str = "Internal Server Error";

/// How a call ended, told by the call to the service through the response's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The function answered (whatever the status it chose).
    Answered,
    /// The function failed: an error, an exception, a panic, or its process failing.
    Failed,
    /// The function was not called (a request the runtime refused: bad JSON, a method it does
    /// not route, a CORS preflight): not a call in the metrics.
    NotCalled,
}

pub(crate) struct Service {
    pub(crate) config: ContractConfig,
    pub(crate) metrics: ContractMetrics,
    pub(crate) call: CallFn,
    pub(crate) health: Option<HealthFn>,
}

impl Service {
    pub(crate) fn new(
        config: ContractConfig,
        call: CallFn,
        health: Option<HealthFn>,
    ) -> Arc<Service> {
        let metrics = ContractMetrics::new(config.conventions.buckets());
        Arc::new(Service {
            config,
            metrics,
            call,
            health,
        })
    }

    pub(crate) fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self)
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn handle(State(service): State<Arc<Service>>, request: Request) -> Response {
    let time = SystemTime::now();
    let started = Instant::now();
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let method = request.method().clone();
    let version = format!("{:?}", request.version());
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".into());
    let referer = header_text(request.headers(), header::REFERER);
    let user_agent = header_text(request.headers(), header::USER_AGENT);
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => healthz(&service).await,
        (&Method::GET, "/metrics") => {
            let format = MetricsFormat::negotiate(
                request
                    .headers()
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok()),
            );
            (
                [(header::CONTENT_TYPE, format.content_type())],
                service.metrics.encode_as(format),
            )
                .into_response()
        }
        _ => call(&service, request, started).await,
    };
    let size = response.body().size_hint().exact().or_else(|| {
        response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    });
    (service.config.log)(&RequestLog {
        time,
        remote,
        method: method.to_string(),
        path,
        version,
        status: response.status().as_u16(),
        size,
        referer,
        user_agent,
        duration: started.elapsed(),
        conventions: service.config.conventions.clone(),
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
    let method = request.method().clone();
    // The call runs on this task: on a timeout it is dropped, which cancels it (and lets the
    // proxy end it upstream); a panic is caught.
    let running = std::panic::AssertUnwindSafe((service.call)(request)).catch_unwind();
    let (mut response, outcome) = match tokio::time::timeout(service.config.timeout, running).await
    {
        Ok(Ok(mut response)) => {
            let outcome = response
                .extensions_mut()
                .remove::<Outcome>()
                .unwrap_or(Outcome::Answered);
            (response, outcome)
        }
        Ok(Err(_panic)) => {
            eprintln!("function failed: the function panicked");
            (
                plain(StatusCode::INTERNAL_SERVER_ERROR, FAILURE_MESSAGE),
                Outcome::Failed,
            )
        }
        // A timeout is counted as a call, not as a failure, as `_kubeless.py` does.
        Err(_) => (
            plain(StatusCode::REQUEST_TIMEOUT, TIMEOUT_MESSAGE),
            Outcome::Answered,
        ),
    };
    response.extensions_mut().remove::<Outcome>();
    if outcome != Outcome::NotCalled {
        service.metrics.record(
            &service.config.conventions,
            method.as_str(),
            started.elapsed().as_secs_f64(),
            outcome == Outcome::Failed,
        );
    }
    response
}

/// A plain-text response of `status` with `message`.
pub(crate) fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    let mut response = Response::new(Body::from(message.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
