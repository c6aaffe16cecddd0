//! Turning kube errors into hoist errors with a kind, the operation and the pod.

use hoist_core::{Error, ErrorKind};

/// Maps a kube error for `operation` on pod `name` to a hoist error: API statuses by code,
/// transport failures as [`ErrorKind::Unavailable`] (temporary).
pub(crate) fn from_kube(err: kube::Error, operation: &'static str, name: &str) -> Error {
    // An API answer's message is quoted in full; other failures keep the client's error as the
    // source, printed once after the message.
    let (kind, message) = match &err {
        kube::Error::Api(status) => {
            let kind = match status.code {
                404 => ErrorKind::NotFound,
                409 => ErrorKind::AlreadyExists,
                400 | 422 => ErrorKind::InvalidInput,
                408 | 429 | 500..=599 => ErrorKind::Unavailable,
                _ => ErrorKind::Backend,
            };
            (kind, format!("the API server refused: {}", status.message))
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => (
            ErrorKind::Unavailable,
            "the API server could not be reached".to_owned(),
        ),
        _ => (
            ErrorKind::Backend,
            "the Kubernetes client failed".to_owned(),
        ),
    };
    let error = Error::new(kind, message)
        .with_operation(operation)
        .with_context("container", name);
    match err {
        kube::Error::Api(_) => error,
        other => error.with_source(other),
    }
}

/// The timeout error of `operation` on pod `name`.
pub(crate) fn timed_out(operation: &'static str, name: &str, after: std::time::Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("the API server did not answer within {after:?}"),
    )
    .with_operation(operation)
    .with_context("container", name)
}
