//! Turning the Engine client's errors into hoist [`Error`]s with a kind callers can match on.

use bollard::errors::Error as EngineError;
use hoist_core::{Error, ErrorKind};

/// Maps an Engine client error to a hoist error for `operation` on `container`. The message
/// carries the Engine's own text, so the client error is not attached as a source as well.
pub(crate) fn engine_error(err: EngineError, operation: &'static str, container: &str) -> Error {
    let (kind, message) = classify(&err);
    let error = Error::new(kind, message).with_operation(operation);
    if container.is_empty() {
        error
    } else {
        error.with_context("container", container)
    }
}

/// The kind and a message for an Engine client error.
pub(crate) fn classify(err: &EngineError) -> (ErrorKind, String) {
    match err {
        EngineError::DockerResponseServerError {
            status_code,
            message,
        } => {
            let kind = match status_code {
                404 => ErrorKind::NotFound,
                409 => ErrorKind::InvalidState,
                400 => ErrorKind::InvalidInput,
                _ => ErrorKind::Backend,
            };
            (
                kind,
                format!(
                    "the Docker Engine answered {status_code}: {}",
                    message.trim()
                ),
            )
        }
        EngineError::RequestTimeoutError => (
            ErrorKind::Timeout,
            "the Docker Engine did not answer in time".to_owned(),
        ),
        EngineError::IOError { .. }
        | EngineError::HyperResponseError { .. }
        | EngineError::HyperLegacyError { .. }
        | EngineError::SocketNotFoundError(_) => (
            ErrorKind::Unavailable,
            format!("the Docker Engine could not be reached: {err}"),
        ),
        other => (
            ErrorKind::Backend,
            format!("the Docker Engine request failed: {other}"),
        ),
    }
}

/// The HTTP status of an Engine error answer, if it is one.
pub(crate) fn status_of(err: &EngineError) -> Option<u16> {
    match err {
        EngineError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The message of an Engine error answer, if it is one.
pub(crate) fn message_of(err: &EngineError) -> &str {
    match err {
        EngineError::DockerResponseServerError { message, .. } => message,
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status_code: u16, message: &str) -> EngineError {
        EngineError::DockerResponseServerError {
            status_code,
            message: message.to_owned(),
        }
    }

    #[test]
    fn statuses_map_to_kinds() {
        let err = engine_error(server(404, "No such container: abc"), "start", "abc");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.operation(), Some("start"));
        assert_eq!(err.context_value("container"), Some("abc"));
        assert!(err.message().contains("No such container: abc"), "{err}");
        assert_eq!(
            classify(&server(409, "conflict")).0,
            ErrorKind::InvalidState
        );
        assert_eq!(classify(&server(400, "bad")).0, ErrorKind::InvalidInput);
        assert_eq!(classify(&server(500, "boom")).0, ErrorKind::Backend);
    }

    #[test]
    fn transport_failures_are_unavailable_and_temporary() {
        let io = EngineError::IOError {
            err: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        let err = engine_error(io, "wait", "abc");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.is_temporary());
        let err = engine_error(EngineError::RequestTimeoutError, "inspect", "abc");
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert!(err.is_temporary());
    }
}
