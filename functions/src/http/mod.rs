//! The HTTP front doors, as one axum [`Router`]:
//!
//! - the registry: `GET/POST /functions`, `GET/PUT/DELETE /functions/{name}`;
//! - plain invoke: `POST /functions/{name}`, with the Kubeless event headers (`event-id`,
//!   `event-type`, `event-time`, `event-namespace`);
//! - the AWS Lambda Invoke API: `POST /2015-03-31/functions/{name}/invocations`, which
//!   unmodified AWS clients (boto3) call. `X-Amz-Log-Type: Tail` on a `RequestResponse`
//!   invocation returns `X-Amz-Log-Result`: the base64 of the last 4 KB of its log
//!   ([`lambda`]'s rules: `{}` for no payload, JSON checked, AWS error shapes everywhere).
//!
//! A request no route serves is an AWS error (`UnknownOperationException`), as is a method a
//! route does not take.

mod lambda;

pub use lambda::{aws_error, lambda_throttle_reason};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hoist_core::ErrorKind;
use serde_json::{Value, json};

use crate::executor::FunctionExecutor;
use crate::invoke::{Invocation, InvokeError, InvokeResponse, MAX_SYNC_PAYLOAD};
use crate::registry::FunctionVersion;
use hoist_runtimes::function::FunctionSpec;
use lambda::{invoke_error_status, invoke_lambda, unknown_operation};

/// The router of every front door, served by the caller (`axum::serve`).
///
/// ```no_run
/// # async fn run(functions: hoist_functions::FunctionExecutor) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
/// axum::serve(listener, hoist_functions::http::router(functions)).await
/// # }
/// ```
pub fn router(functions: FunctionExecutor) -> Router {
    Router::new()
        .route("/functions", get(list).post(create))
        .route(
            "/functions/{name}",
            get(describe).put(update).delete(delete).post(invoke_plain),
        )
        .route(
            "/2015-03-31/functions/{name}/invocations",
            // Reads its body itself, to answer an oversize one as AWS does.
            post(invoke_lambda)
                .layer(DefaultBodyLimit::disable())
                .fallback(unknown_operation),
        )
        .layer(DefaultBodyLimit::max(MAX_SYNC_PAYLOAD + 1024))
        .fallback(unknown_operation)
        .with_state(functions)
}

/// Serves [`router`] on `listener` until `shutdown` completes.
///
/// ```no_run
/// # async fn run(functions: hoist_functions::FunctionExecutor) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
/// hoist_functions::http::serve(listener, functions, async {
///     let _ = tokio::signal::ctrl_c().await;
/// })
/// .await
/// # }
/// ```
pub async fn serve(
    listener: tokio::net::TcpListener,
    functions: FunctionExecutor,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(functions))
        .with_graceful_shutdown(shutdown)
        .await
}

fn describe_version(version: &FunctionVersion) -> Value {
    let mut value = serde_json::to_value(&version.spec).unwrap_or(Value::Null);
    value["version"] = json!(version.version);
    value
}

fn registry_error(err: &hoist_core::Error) -> Response {
    let status = match err.kind() {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists => StatusCode::CONFLICT,
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut body = json!({ "error": err.to_string() });
    if let Some(field) = err.context_value("field") {
        body["field"] = json!(field);
    }
    (status, axum::Json(body)).into_response()
}

async fn list(State(functions): State<FunctionExecutor>) -> Response {
    let all: Vec<Value> = functions
        .registry()
        .list()
        .iter()
        .map(|v| describe_version(v))
        .collect();
    axum::Json(all).into_response()
}

async fn create(State(functions): State<FunctionExecutor>, body: Bytes) -> Response {
    let result = std::str::from_utf8(&body)
        .map_err(|_| hoist_core::Error::invalid("the function is not UTF-8 JSON"))
        .and_then(FunctionSpec::from_json)
        .and_then(|spec| functions.create(spec));
    match result {
        Ok(version) => {
            (StatusCode::CREATED, axum::Json(describe_version(&version))).into_response()
        }
        Err(e) => registry_error(&e),
    }
}

async fn describe(State(functions): State<FunctionExecutor>, Path(name): Path<String>) -> Response {
    match functions.registry().get(&name) {
        Some(version) => axum::Json(describe_version(&version)).into_response(),
        None => registry_error(&hoist_core::Error::not_found("function", &name)),
    }
}

async fn update(
    State(functions): State<FunctionExecutor>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let result = std::str::from_utf8(&body)
        .map_err(|_| hoist_core::Error::invalid("the function is not UTF-8 JSON"))
        .and_then(FunctionSpec::from_json)
        .and_then(|spec| {
            if spec.name == name {
                functions.update(spec)
            } else {
                Err(hoist_core::Error::invalid(format!(
                    "`name` is `{}` but the path names `{name}`",
                    spec.name
                ))
                .with_context("field", "name"))
            }
        });
    match result {
        Ok(version) => axum::Json(describe_version(&version)).into_response(),
        Err(e) => registry_error(&e),
    }
}

async fn delete(State(functions): State<FunctionExecutor>, Path(name): Path<String>) -> Response {
    match functions.delete(&name) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => registry_error(&e),
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn error_type(response: &InvokeResponse) -> Option<String> {
    serde_json::from_slice::<Value>(&response.payload)
        .ok()?
        .get("errorType")?
        .as_str()
        .map(str::to_owned)
}

/// `POST /functions/{name}`: the event is the body; the answer is the result (200), the
/// error document (500), or 408 when the function timed out, as Kubeless runtimes answer.
async fn invoke_plain(
    State(functions): State<FunctionExecutor>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let event_id = header(&headers, "event-id");
    let invocation = Invocation {
        payload: body,
        request_id: event_id,
        event_type: header(&headers, "event-type"),
        event_time: header(&headers, "event-time"),
        event_namespace: header(&headers, "event-namespace"),
        ..Invocation::default()
    };
    let mut out = HeaderMap::new();
    for name in ["event-id", "event-type", "event-time", "event-namespace"] {
        if let Some(value) = headers.get(name) {
            out.insert(HeaderName::from_static(name), value.clone());
        }
    }
    match functions.invoke(&name, invocation).await {
        Ok(response) => {
            if let Ok(id) = HeaderValue::from_str(&response.request_id) {
                out.insert(HeaderName::from_static("event-id"), id);
            }
            let status = match (&response.function_error, error_type(&response).as_deref()) {
                (None, _) => StatusCode::OK,
                (Some(_), Some("Sandbox.Timedout")) => StatusCode::REQUEST_TIMEOUT,
                (Some(_), _) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, out, response.payload).into_response()
        }
        Err(e) => {
            let (status, _) = invoke_error_status(&e);
            let mut response =
                (status, out, axum::Json(json!({ "error": e.to_string() }))).into_response();
            if let InvokeError::Throttled { retry_after, .. } = &e {
                put_retry_after(response.headers_mut(), retry_after.as_secs().max(1));
            }
            response
        }
    }
}

fn put_retry_after(headers: &mut HeaderMap, seconds: u64) {
    headers.insert(
        HeaderName::from_static("retry-after"),
        HeaderValue::from(seconds),
    );
}
