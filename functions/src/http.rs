//! The HTTP front doors, as one axum [`Router`]:
//!
//! - the registry: `GET/POST /functions`, `GET/PUT/DELETE /functions/{name}`;
//! - plain invoke: `POST /functions/{name}`, with the Kubeless event headers (`event-id`,
//!   `event-type`, `event-time`, `event-namespace`);
//! - the AWS Lambda Invoke API: `POST /2015-03-31/functions/{name}/invocations`, which
//!   unmodified AWS clients (boto3) call. `X-Amz-Log-Type: Tail` on a `RequestResponse`
//!   invocation returns `X-Amz-Log-Result`: the base64 of the last 4 KB of its log.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hoist_core::ErrorKind;
use hoist_core::scheduler::ThrottleReason;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::executor::FunctionExecutor;
use crate::invoke::{
    Completion, Invocation, InvocationType, InvokeError, InvokeResponse, MAX_SYNC_PAYLOAD,
};
use crate::registry::FunctionVersion;
use hoist_runtimes::function::FunctionSpec;

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
            post(invoke_lambda),
        )
        .layer(DefaultBodyLimit::max(MAX_SYNC_PAYLOAD + 1024))
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

fn invoke_error_status(err: &InvokeError) -> (StatusCode, &'static str) {
    match err {
        InvokeError::NotFound { .. } => (StatusCode::NOT_FOUND, "ResourceNotFoundException"),
        InvokeError::Throttled { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException")
        }
        InvokeError::PayloadTooLarge { .. } => {
            (StatusCode::PAYLOAD_TOO_LARGE, "RequestTooLargeException")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "ServiceException"),
    }
}

/// The `Reason` AWS Lambda gives a `TooManyRequestsException` for a scheduler's throttle.
pub fn lambda_throttle_reason(reason: ThrottleReason) -> &'static str {
    match reason {
        ThrottleReason::ReservedConcurrency => "ReservedFunctionConcurrentInvocationLimitExceeded",
        // The queue of asynchronous invocations: Lambda's rate limit on them.
        ThrottleReason::QueueFull => "FunctionInvocationRateLimitExceeded",
        _ => "ConcurrentInvocationLimitExceeded",
    }
}

fn aws_error(status: StatusCode, code: &str, mut body: Value) -> Response {
    body["Type"] = json!("User");
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(code) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-amzn-errortype"), value);
    }
    response
}

/// Splits `name`, `name:qualifier`, `123456789012:function:name` or a full ARN.
fn function_name(raw: &str) -> (String, Option<String>) {
    let parts: Vec<&str> = raw.split(':').collect();
    match parts.as_slice() {
        ["arn", _, _, _, _, "function", name, rest @ ..] | [_, "function", name, rest @ ..] => {
            ((*name).to_owned(), rest.first().map(|q| (*q).to_owned()))
        }
        [name, qualifier] => ((*name).to_owned(), Some((*qualifier).to_owned())),
        _ => (raw.to_owned(), None),
    }
}

#[derive(Debug, Deserialize)]
struct LambdaQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

/// `POST /2015-03-31/functions/{name}/invocations`: the AWS Lambda Invoke API.
async fn invoke_lambda(
    State(functions): State<FunctionExecutor>,
    Path(raw): Path<String>,
    Query(query): Query<LambdaQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let kind = match header(&headers, "x-amz-invocation-type") {
        None => InvocationType::RequestResponse,
        Some(value) => match InvocationType::parse(&value) {
            Some(kind) => kind,
            None => {
                return aws_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameterValueException",
                    json!({ "message": format!("X-Amz-Invocation-Type must be RequestResponse, Event or DryRun, not {value}") }),
                );
            }
        },
    };
    let tail_log = match header(&headers, "x-amz-log-type").as_deref() {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                json!({ "message": format!("X-Amz-Log-Type must be None or Tail, not {other}") }),
            );
        }
    };
    let (name, path_qualifier) = function_name(&raw);
    let invocation = Invocation {
        payload: body,
        kind,
        tail_log,
        qualifier: query.qualifier.or(path_qualifier),
        client_context: header(&headers, "x-amz-client-context"),
        ..Invocation::default()
    };
    let unqualified = invocation.qualifier.is_none();
    match functions.invoke(&name, invocation).await {
        Ok(response) => {
            let status = match response.completion {
                Completion::Done => StatusCode::OK,
                Completion::Accepted => StatusCode::ACCEPTED,
                Completion::Checked => StatusCode::NO_CONTENT,
            };
            let mut out = HeaderMap::new();
            let version = if unqualified {
                "$LATEST".to_owned()
            } else {
                response.version.to_string()
            };
            let mut put = |name: &'static str, value: &str| {
                if let Ok(value) = HeaderValue::from_str(value) {
                    out.insert(HeaderName::from_static(name), value);
                }
            };
            put("x-amzn-requestid", &response.request_id);
            put("x-amz-executed-version", &version);
            put("content-type", "application/json");
            if let Some(error) = &response.function_error {
                put("x-amz-function-error", error);
            }
            if let Some(log) = &response.log {
                use base64::Engine;
                put(
                    "x-amz-log-result",
                    &base64::engine::general_purpose::STANDARD.encode(log),
                );
            }
            (status, out, response.payload).into_response()
        }
        Err(e) => {
            let (status, code) = invoke_error_status(&e);
            let mut body = json!({ "message": e.to_string() });
            if let InvokeError::Throttled {
                reason,
                retry_after,
            } = &e
            {
                let seconds = retry_after.as_secs().max(1);
                body = json!({ "message": "Rate Exceeded.", "Reason": lambda_throttle_reason(*reason), "retryAfterSeconds": seconds.to_string() });
                let mut response = aws_error(status, code, body);
                put_retry_after(response.headers_mut(), seconds);
                return response;
            }
            aws_error(status, code, body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::function_name;

    #[test]
    fn function_names_arns_and_qualifiers() {
        assert_eq!(function_name("hello"), ("hello".into(), None));
        assert_eq!(function_name("hello:3"), ("hello".into(), Some("3".into())));
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:000000000000:function:hello:$LATEST"),
            ("hello".into(), Some("$LATEST".into()))
        );
        assert_eq!(
            function_name("000000000000:function:hello"),
            ("hello".into(), None)
        );
    }
}
