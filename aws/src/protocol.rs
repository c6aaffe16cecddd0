//! The AWS wire pieces every front door shares: request ids (`x-amzn-RequestId`) and errors
//! in the REST-JSON shape (`X-Amzn-ErrorType`, a JSON body with `Type` and `message`).
//!
//! botocore reads a REST-JSON error's code from the `x-amzn-errortype` header (the part
//! before any `:`), else from the body's `code` or `__type`, and its message from the body's
//! `message` or `Message` (botocore `parsers.py`, `RestJSONParser`).

use std::borrow::Cow;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// The header carrying a response's request id.
pub const REQUEST_ID_HEADER: &str = "x-amzn-RequestId";
/// The header carrying an error's code.
pub const ERROR_TYPE_HEADER: &str = "X-Amzn-ErrorType";

/// The id of one request, made by [`request_id_layer`] and readable by handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// A fresh id (a UUID, as AWS's are).
    pub fn new() -> Self {
        RequestId(uuid::Uuid::new_v4().to_string())
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId::new()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_default())
    }
}

/// Middleware (for `axum::middleware::from_fn`) giving every request a [`RequestId`] and
/// every response its `x-amzn-RequestId` header (a response that set one keeps it).
pub async fn request_id_layer(mut request: Request, next: Next) -> Response {
    let id = RequestId::new();
    request.extensions_mut().insert(id.clone());
    let mut response = next.run(request).await;
    let name = HeaderName::from_static("x-amzn-requestid");
    if !response.headers().contains_key(&name)
        && let Ok(value) = HeaderValue::from_str(&id.0)
    {
        response.headers_mut().insert(name, value);
    }
    response
}

/// Middleware (for `axum::middleware::from_fn`) that gives a framework's own rejection (a path
/// that does not decode, a body that is not what an extractor wanted) the shape of an AWS
/// error, so that no answer of a REST-JSON service is ever a plain-text default: an error
/// response without `X-Amzn-ErrorType` becomes `InvalidParameterValueException` (400, the
/// code AWS answers a malformed parameter with), `RequestEntityTooLargeException` (413),
/// `UnsupportedMediaTypeException` (415) or `ServiceException` (5xx), with the rejection's
/// text as its message.
pub async fn aws_shaped_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.headers().contains_key("x-amzn-errortype")
    {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), 4096).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let (code, status) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("RequestEntityTooLargeException", status),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("UnsupportedMediaTypeException", status),
        s if s.is_server_error() => ("ServiceException", StatusCode::INTERNAL_SERVER_ERROR),
        _ => ("InvalidParameterValueException", StatusCode::BAD_REQUEST),
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    AwsError::new(code, status, message).into_response()
}

/// Whether the caller or the service is at fault (the body's `Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request was wrong (`"Type": "User"`).
    User,
    /// The service failed (`"Type": "Service"`).
    Service,
}

/// An AWS error: a code, an HTTP status, a message, and any further members of its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsError {
    code: Cow<'static, str>,
    status: StatusCode,
    message: String,
    fault: Fault,
    message_key: &'static str,
    fields: Map<String, Value>,
    headers: Vec<(HeaderName, String)>,
}

impl AwsError {
    /// An error with `code`, `status` and `message`; the fault follows the status (5xx is the
    /// service's).
    pub fn new(
        code: impl Into<Cow<'static, str>>,
        status: StatusCode,
        message: impl Into<String>,
    ) -> Self {
        AwsError {
            code: code.into(),
            status,
            message: message.into(),
            fault: if status.is_server_error() {
                Fault::Service
            } else {
                Fault::User
            },
            message_key: "message",
            fields: Map::new(),
            headers: Vec::new(),
        }
    }

    /// The shape spells its message member `Message`: the body carries both spellings, so
    /// both the modeled member and the `message` every client reads are there.
    pub fn with_capital_message(mut self) -> Self {
        self.message_key = "Message";
        self
    }

    /// Adds a member of the error's shape to the body (`Reason`, `retryAfterSeconds`).
    pub fn with_field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a response header (`Retry-After`).
    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The error code (`ResourceNotFoundException`).
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The body's `Type`.
    pub fn fault(&self) -> Fault {
        self.fault
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = self.fields.clone();
        body.insert(
            "Type".into(),
            json!(match self.fault {
                Fault::User => "User",
                Fault::Service => "Service",
            }),
        );
        body.insert("message".into(), json!(self.message));
        if self.message_key != "message" {
            body.insert(self.message_key.into(), json!(self.message));
        }
        Value::Object(body)
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.status.as_u16(),
            self.message
        )
    }
}

impl std::error::Error for AwsError {}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(value) = HeaderValue::from_str(&self.code) {
            headers.insert(HeaderName::from_static("x-amzn-errortype"), value);
        }
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        response
    }
}

pub use hoist_core::units::utc_parts;

/// A JSON answer with `status`, as REST-JSON services send it.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Reads a request body of at most `limit` bytes; a larger one is
/// `RequestEntityTooLargeException` (413) with AWS's message naming the operation.
pub async fn read_body(
    body: axum::body::Body,
    limit: usize,
    operation: &str,
) -> Result<bytes::Bytes, AwsError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        AwsError::new(
            "RequestEntityTooLargeException",
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request must be smaller than {limit} bytes for the {operation} operation"),
        )
    })
}

/// Parses a query string into its decoded pairs, in order (repeated keys kept, as
/// `tagKeys=a&tagKeys=b` needs).
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let Some(query) = query else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_and_keep_repeated_keys() {
        let pairs = query_pairs(Some(
            "tagKeys=a%20b&tagKeys=c+d&Qualifier=%24LATEST&x=%zz&y=%4",
        ));
        assert_eq!(
            pairs,
            [
                ("tagKeys".to_string(), "a b".to_string()),
                ("tagKeys".into(), "c d".into()),
                ("Qualifier".into(), "$LATEST".into()),
                ("x".into(), "%zz".into()),
                ("y".into(), "%4".into()),
            ]
        );
    }

    #[test]
    fn errors_carry_type_both_message_spellings_and_fields() {
        let err = AwsError::new("ResourceNotFoundException", StatusCode::NOT_FOUND, "gone")
            .with_capital_message();
        assert_eq!(
            err.body(),
            json!({"Type": "User", "message": "gone", "Message": "gone"})
        );
        let err = AwsError::new(
            "ServiceException",
            StatusCode::INTERNAL_SERVER_ERROR,
            "boom",
        )
        .with_field("Reason", "x");
        assert_eq!(err.body()["Type"], "Service");
        assert_eq!(err.body()["Reason"], "x");
    }
}
