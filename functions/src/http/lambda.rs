//! The AWS Lambda Invoke API as AWS's own clients see it: `POST
//! /2015-03-31/functions/{name}/invocations`. No payload is the event `{}`; a payload that is
//! not JSON, or a client context that is not base64 JSON, is 400
//! `InvalidRequestContentException` (for `Event` too); a request over 6291456 bytes is 413
//! `RequestEntityTooLargeException`. Every error answer, on every route of the router, carries
//! `X-Amzn-ErrorType`, `x-amzn-RequestId` and a JSON body with `Type` and `message`.

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hoist_core::scheduler::ThrottleReason;
use serde::Deserialize;
use serde_json::json;

use crate::body::{BodyError, read_capped};
use crate::executor::FunctionExecutor;
use crate::invoke::{
    Completion, Invocation, InvocationType, InvokeError, MAX_SYNC_PAYLOAD, decode_client_context,
    lambda_payload, new_request_id,
};

use super::{header, put_retry_after};

/// The HTTP status and AWS error code of an invocation that was not run.
pub(super) fn invoke_error_status(err: &InvokeError) -> (StatusCode, &'static str) {
    match err {
        InvokeError::NotFound { .. } => (StatusCode::NOT_FOUND, "ResourceNotFoundException"),
        InvokeError::Throttled { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException")
        }
        InvokeError::PayloadTooLarge { .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
        ),
        InvokeError::InvalidContent(_) => {
            (StatusCode::BAD_REQUEST, "InvalidRequestContentException")
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

/// An AWS error answer (botocore's REST-JSON error shape): the code in `X-Amzn-ErrorType`
/// (and `__type`, as LocalStack sends it), `Type` (`User`, or `Service` for a 5xx) and
/// `message` in the body, the request id in `x-amzn-RequestId`. `extra` adds fields
/// (`Reason`...).
pub fn aws_error(
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Response {
    let kind = if status.is_server_error() {
        "Service"
    } else {
        "User"
    };
    let mut body = json!({ "Type": kind, "message": message, "__type": code });
    if let Some(object) = body.as_object_mut() {
        object.extend(extra);
    }
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    for (name, value) in [("x-amzn-errortype", code), ("x-amzn-requestid", request_id)] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

/// The AWS answer to an invocation that was not run.
fn invoke_error(e: &InvokeError, request_id: &str) -> Response {
    let (status, code) = invoke_error_status(e);
    let mut extra = serde_json::Map::new();
    let message = match e {
        InvokeError::Throttled {
            reason,
            retry_after,
        } => {
            let seconds = retry_after.as_secs().max(1);
            extra.insert("Reason".into(), json!(lambda_throttle_reason(*reason)));
            extra.insert("retryAfterSeconds".into(), json!(seconds.to_string()));
            let mut response = aws_error(status, code, "Rate Exceeded.", request_id, extra);
            put_retry_after(response.headers_mut(), seconds);
            return response;
        }
        other => other.to_string(),
    };
    aws_error(status, code, &message, request_id, extra)
}

/// Any request no route serves: an AWS error naming it, never a bare 404.
pub(super) async fn unknown_operation(method: Method, uri: Uri) -> Response {
    aws_error(
        StatusCode::NOT_FOUND,
        "UnknownOperationException",
        &format!("hoist does not serve {method} {}", uri.path()),
        &new_request_id(),
        serde_json::Map::new(),
    )
}

/// Splits `name`, `name:qualifier`, `123456789012:function:name` or a full ARN.
pub(super) fn function_name(raw: &str) -> (String, Option<String>) {
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
pub(super) struct LambdaQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

fn invalid_parameter(message: String, request_id: &str) -> Response {
    aws_error(
        StatusCode::BAD_REQUEST,
        "InvalidParameterValueException",
        &message,
        request_id,
        serde_json::Map::new(),
    )
}

fn boxed_invalid_parameter(message: String, request_id: &str) -> Box<Response> {
    Box::new(invalid_parameter(message, request_id))
}

/// What the request asks for, before the function is looked up.
fn invocation_of(
    headers: &HeaderMap,
    body: axum::body::Bytes,
    request_id: &str,
) -> Result<Invocation, Box<Response>> {
    let kind = match header(headers, "x-amz-invocation-type") {
        None => InvocationType::RequestResponse,
        Some(value) => InvocationType::parse(&value).ok_or_else(|| {
            boxed_invalid_parameter(
                format!(
                    "X-Amz-Invocation-Type must be RequestResponse, Event or DryRun, not {value}"
                ),
                request_id,
            )
        })?,
    };
    let tail_log = match header(headers, "x-amz-log-type").as_deref() {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(boxed_invalid_parameter(
                format!("X-Amz-Log-Type must be None or Tail, not {other}"),
                request_id,
            ));
        }
    };
    let client_context = header(headers, "x-amz-client-context")
        .map(|raw| decode_client_context(&raw))
        .transpose()
        .map_err(|e| Box::new(invoke_error(&e, request_id)))?;
    let payload = lambda_payload(body).map_err(|e| Box::new(invoke_error(&e, request_id)))?;
    Ok(Invocation {
        payload,
        kind,
        tail_log,
        client_context,
        request_id: Some(request_id.to_owned()),
        ..Invocation::default()
    })
}

/// `POST /2015-03-31/functions/{name}/invocations`: the AWS Lambda Invoke API.
pub(super) async fn invoke_lambda(
    State(functions): State<FunctionExecutor>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<LambdaQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = new_request_id();
    let body = match read_capped(body, MAX_SYNC_PAYLOAD).await {
        Ok(body) => body,
        Err(BodyError::TooLarge { size }) => {
            let e = InvokeError::PayloadTooLarge {
                size,
                limit: MAX_SYNC_PAYLOAD,
            };
            return invoke_error(&e, &request_id);
        }
        Err(BodyError::Broken(reason)) => {
            let e = InvokeError::InvalidContent(format!("the request body broke off: {reason}"));
            return invoke_error(&e, &request_id);
        }
    };
    let (raw, query) = match (path, query) {
        (Ok(Path(raw)), Ok(Query(query))) => (raw, query),
        (Err(e), _) => return invalid_parameter(e.body_text(), &request_id),
        (_, Err(e)) => return invalid_parameter(e.body_text(), &request_id),
    };
    let mut invocation = match invocation_of(&headers, body, &request_id) {
        Ok(invocation) => invocation,
        Err(answer) => return *answer,
    };
    let (name, path_qualifier) = function_name(&raw);
    invocation.qualifier = query.qualifier.or(path_qualifier);
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
        Err(e) => invoke_error(&e, &request_id),
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
