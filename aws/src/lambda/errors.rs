//! Lambda's errors, with the HTTP status and message spelling botocore's model gives each code
//! ([`super::model::ERRORS`]).

use axum::http::{HeaderName, StatusCode};
use hoist_store::StoreError;

use super::model::ERRORS;
use crate::protocol::AwsError;

/// An error with a code of the Lambda model (its status and message spelling from the model);
/// a code the model does not declare is a 400 sender fault (`ValidationException`).
pub fn error(code: &'static str, message: impl Into<String>) -> AwsError {
    match ERRORS.iter().find(|(c, _, _)| *c == code) {
        Some((_, status, key)) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST);
            let err = AwsError::new(code, status, message);
            if *key == "Message" {
                err.with_capital_message()
            } else {
                err
            }
        }
        None => AwsError::new(code, StatusCode::BAD_REQUEST, message),
    }
}

/// `ResourceNotFoundException` (404).
pub fn not_found(message: impl Into<String>) -> AwsError {
    error("ResourceNotFoundException", message)
}

/// `InvalidParameterValueException` (400).
pub fn invalid_parameter(message: impl Into<String>) -> AwsError {
    error("InvalidParameterValueException", message)
}

/// `ResourceConflictException` (409).
pub fn conflict(message: impl Into<String>) -> AwsError {
    error("ResourceConflictException", message)
}

/// `ValidationException` (400): a value outside its shape's constraints, in AWS's words
/// (`1 validation error detected: Value '0' at 'timeout' failed to satisfy constraint: ...`).
pub fn validation(value: impl std::fmt::Display, member: &str, constraint: &str) -> AwsError {
    error(
        "ValidationException",
        format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
        ),
    )
}

/// `PreconditionFailedException` (412): the `RevisionId` given is not the current one.
pub fn revision_mismatch(what: &str) -> AwsError {
    error(
        "PreconditionFailedException",
        format!(
            "The Revision Id provided does not match the latest Revision Id. Call the {what} API to retrieve the latest Revision Id"
        ),
    )
}

/// `TooManyRequestsException` (429) with its `Reason`, `retryAfterSeconds` and `Retry-After`.
pub fn too_many_requests(reason: &str, retry_after_seconds: u64) -> AwsError {
    error("TooManyRequestsException", "Rate Exceeded.")
        .with_field("Reason", reason)
        .with_field("retryAfterSeconds", retry_after_seconds.to_string())
        .with_header(
            HeaderName::from_static("retry-after"),
            retry_after_seconds.to_string(),
        )
}

/// `ServiceException` (500).
pub fn service(message: impl Into<String>) -> AwsError {
    error("ServiceException", message)
}

/// `RequestEntityTooLargeException` (413), AWS's answer to code or requests over a limit.
pub fn too_large(message: impl Into<String>) -> AwsError {
    AwsError::new(
        "RequestEntityTooLargeException",
        StatusCode::PAYLOAD_TOO_LARGE,
        message,
    )
}

/// An operation of the Lambda API that hoist does not serve: 501 `InternalFailure` naming it,
/// as LocalStack answers operations it has no handler for (localstack
/// `aws/handlers/service.py`, `create_not_implemented_response`).
pub fn not_implemented(operation: &str) -> AwsError {
    AwsError::new(
        "InternalFailure",
        StatusCode::NOT_IMPLEMENTED,
        format!("hoist does not implement the Lambda operation {operation}"),
    )
}

/// A request that matches no operation of the Lambda API.
pub fn unknown_operation(method: &str, path: &str) -> AwsError {
    AwsError::new(
        "UnknownOperationException",
        StatusCode::NOT_FOUND,
        format!("no Lambda operation is served at {method} {path}"),
    )
}

/// A request body that is not the JSON its operation takes.
pub fn serialization(problem: impl std::fmt::Display) -> AwsError {
    AwsError::new(
        "SerializationException",
        StatusCode::BAD_REQUEST,
        format!("the request body could not be read: {problem}"),
    )
}

/// The store failed: a `ServiceException` naming what failed (a missing record the handlers
/// did not expect is one too).
pub fn from_store(err: StoreError) -> AwsError {
    service(format!("the function store failed: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_spellings_come_from_the_model() {
        let e = not_found("x");
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert_eq!(e.body()["Message"], "x");
        assert_eq!(conflict("x").status(), StatusCode::CONFLICT);
        assert_eq!(invalid_parameter("x").status(), StatusCode::BAD_REQUEST);
        assert!(invalid_parameter("x").body().get("Message").is_none());
        let t = too_many_requests("ReservedFunctionConcurrentInvocationLimitExceeded", 1);
        assert_eq!(t.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            t.body()["Reason"],
            "ReservedFunctionConcurrentInvocationLimitExceeded"
        );
        assert_eq!(service("x").status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            error("PreconditionFailedException", "x").status().as_u16(),
            412
        );
    }
}
