//! The one error type of hoist-core and of every backend built on it.
//!
//! An [`Error`] carries a [`ErrorKind`] that callers match on, the operation that failed (and
//! the operations it was called from, as `called` context), context pairs naming what it was
//! done to (a task id, a container id, a field), an optional source, and an [`ErrorStatus`]
//! saying whether retrying can help.
//!
//! A source's text is printed once: [`Error`]'s `Display` appends it, so a message never
//! repeats it.

use std::fmt;

/// What went wrong, in a form callers can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The task, container or resource named in the context does not exist.
    NotFound,
    /// Something with that id already exists.
    AlreadyExists,
    /// The backend does not support this operation or this part of the spec.
    Unsupported,
    /// Input (a task spec, a catalog, a config file, a label, a wire frame) is malformed.
    InvalidInput,
    /// The operation is not allowed in the current state (for example starting a removed container).
    InvalidState,
    /// A deadline passed before the operation finished.
    Timeout,
    /// The backend or a remote peer could not be reached.
    Unavailable,
    /// A hook failed; the context names the hook and the phase.
    Hook,
    /// The operation was cancelled, usually because the executor is shutting down.
    Cancelled,
    /// The backend reported a failure that fits no other kind.
    Backend,
}

impl ErrorKind {
    /// A short lowercase name, used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::InvalidState => "invalid state",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Hook => "hook failed",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Backend => "backend error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether retrying the operation that failed can help.
///
/// A [`RetryLayer`](crate::layer::RetryLayer) retries only [`ErrorStatus::Temporary`] errors;
/// once it gives up, the error it returns is [`ErrorStatus::Persistent`]: it was temporary, and
/// retrying did not help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorStatus {
    /// Retrying the same operation will fail the same way.
    Permanent,
    /// Retrying may succeed (a timeout, an unreachable peer, a busy backend).
    Temporary,
    /// The error was temporary, but retries did not help; do not retry again.
    Persistent,
}

impl ErrorStatus {
    /// A short lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorStatus::Permanent => "permanent",
            ErrorStatus::Temporary => "temporary",
            ErrorStatus::Persistent => "persistent",
        }
    }
}

impl fmt::Display for ErrorStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from hoist: a kind, a message, the operation, context pairs and an optional source.
///
/// ```
/// use hoist_core::{Error, ErrorKind};
///
/// let err = Error::new(ErrorKind::NotFound, "no such container")
///     .with_operation("stop")
///     .with_context("container", "c-42");
/// assert_eq!(err.kind(), ErrorKind::NotFound);
/// assert_eq!(err.to_string(), "not found: no such container (during stop, container: c-42)");
/// ```
pub struct Error {
    kind: ErrorKind,
    message: String,
    operation: Option<&'static str>,
    context: Vec<(&'static str, String)>,
    status: ErrorStatus,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// The result type of hoist-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message saying what went wrong.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            operation: None,
            context: Vec::new(),
            status: if matches!(kind, ErrorKind::Timeout | ErrorKind::Unavailable) {
                ErrorStatus::Temporary
            } else {
                ErrorStatus::Permanent
            },
            source: None,
        }
    }

    /// Shorthand for an [`ErrorKind::NotFound`] error naming `what` and its `id`.
    pub fn not_found(what: &'static str, id: impl fmt::Display) -> Self {
        Error::new(ErrorKind::NotFound, format!("{what} {id} does not exist"))
            .with_context(what, id)
    }

    /// Shorthand for an [`ErrorKind::Unsupported`] error naming the backend and what it lacks.
    pub fn unsupported(backend: &str, what: impl fmt::Display) -> Self {
        Error::new(
            ErrorKind::Unsupported,
            format!("the {backend} backend does not support {what}"),
        )
        .with_context("backend", backend)
    }

    /// Shorthand for an [`ErrorKind::InvalidInput`] error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, message)
    }

    /// An [`ErrorKind::InvalidInput`] error about one field of some input, named by its path as
    /// the user wrote it (`tasks[1].container.ports[0].container_port`, `acl.chain`): the
    /// message is ``"`field` problem"`` and the context holds `field`.
    ///
    /// ```
    /// use hoist_core::Error;
    ///
    /// let err = Error::invalid_field("container.user", "must be `uid` or `uid:gid`");
    /// assert_eq!(err.to_string(), "invalid input: `container.user` must be `uid` or `uid:gid` (field: container.user)");
    /// assert_eq!(err.context_value("field"), Some("container.user"));
    /// ```
    pub fn invalid_field(field: impl Into<String>, problem: impl fmt::Display) -> Self {
        let field = field.into();
        Error::new(ErrorKind::InvalidInput, format!("`{field}` {problem}"))
            .with_context("field", field)
    }

    /// Names the operation that failed (`"create"`, `"stop"`, `"pre_run"`...). An operation
    /// named earlier is kept as a `called` context pair, so the error remembers its path:
    ///
    /// ```
    /// use hoist_core::{Error, ErrorKind};
    ///
    /// let err = Error::new(ErrorKind::Timeout, "no answer").with_operation("inspect").with_operation("recover");
    /// assert_eq!(err.operation(), Some("recover"));
    /// assert_eq!(err.context_value("called"), Some("inspect"));
    /// ```
    pub fn with_operation(mut self, operation: &'static str) -> Self {
        if let Some(earlier) = self.operation.replace(operation)
            && earlier != operation
        {
            self.context.push(("called", earlier.to_owned()));
        }
        self
    }

    /// Adds a context pair such as `("task", "web.1")`.
    pub fn with_context(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        self.context.push((key, value.to_string()));
        self
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Marks whether retrying the same operation can succeed: [`ErrorStatus::Temporary`] when
    /// `temporary`, [`ErrorStatus::Permanent`] otherwise.
    pub fn set_temporary(self, temporary: bool) -> Self {
        self.set_status(if temporary {
            ErrorStatus::Temporary
        } else {
            ErrorStatus::Permanent
        })
    }

    /// Marks a temporary error as one that retries did not cure ([`ErrorStatus::Persistent`]);
    /// a permanent error stays permanent.
    pub fn set_persistent(self) -> Self {
        match self.status {
            ErrorStatus::Permanent => self,
            _ => self.set_status(ErrorStatus::Persistent),
        }
    }

    /// Sets whether a retry can help.
    pub fn set_status(mut self, status: ErrorStatus) -> Self {
        self.status = status;
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without kind or context.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The operation that failed, when known.
    pub fn operation(&self) -> Option<&'static str> {
        self.operation
    }

    /// The context pairs, in the order they were added.
    pub fn context(&self) -> &[(&'static str, String)] {
        &self.context
    }

    /// The value of the first context pair with `key`.
    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether retrying the same operation can help.
    pub fn status(&self) -> ErrorStatus {
        self.status
    }

    /// Whether retrying the same operation can succeed ([`ErrorStatus::Temporary`]: timeouts and
    /// unreachable peers, by default).
    pub fn is_temporary(&self) -> bool {
        self.status == ErrorStatus::Temporary
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if self.operation.is_some() || !self.context.is_empty() {
            f.write_str(" (")?;
            let mut first = true;
            if let Some(op) = self.operation {
                write!(f, "during {op}")?;
                first = false;
            }
            for (k, v) in &self.context {
                if !first {
                    f.write_str(", ")?;
                }
                write!(f, "{k}: {v}")?;
                first = false;
            }
            f.write_str(")")?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(op) = self.operation {
            d.field("operation", &op);
        }
        if !self.context.is_empty() {
            d.field("context", &self.context);
        }
        if self.status != ErrorStatus::Permanent {
            d.field("status", &self.status);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
                ErrorKind::InvalidInput
            }
            std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::NotConnected => ErrorKind::Unavailable,
            _ => ErrorKind::Backend,
        };
        Error::new(kind, "I/O error").with_source(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_operation_context_and_source() {
        let io = std::io::Error::other("disk on fire");
        let err = Error::new(ErrorKind::Backend, "could not write state")
            .with_operation("create")
            .with_context("task", "t1")
            .with_source(io);
        assert_eq!(
            err.to_string(),
            "backend error: could not write state (during create, task: t1): disk on fire"
        );
        assert_eq!(err.context_value("task"), Some("t1"));
        assert!(!err.is_temporary());
    }

    #[test]
    fn timeouts_are_temporary_by_default() {
        assert!(Error::new(ErrorKind::Timeout, "slow").is_temporary());
        assert!(!Error::new(ErrorKind::InvalidInput, "bad").is_temporary());
        assert!(
            !Error::new(ErrorKind::Timeout, "slow")
                .set_temporary(false)
                .is_temporary()
        );
    }

    #[test]
    fn persistent_is_not_temporary_and_permanent_stays_permanent() {
        let err = Error::new(ErrorKind::Unavailable, "down").set_persistent();
        assert_eq!(err.status(), ErrorStatus::Persistent);
        assert!(!err.is_temporary());
        let err = Error::new(ErrorKind::InvalidInput, "bad").set_persistent();
        assert_eq!(err.status(), ErrorStatus::Permanent);
    }

    #[test]
    fn a_new_operation_keeps_the_earlier_one_as_called() {
        let err = Error::new(ErrorKind::NotFound, "gone")
            .with_operation("inspect")
            .with_operation("inspect")
            .with_operation("recover");
        assert_eq!(err.operation(), Some("recover"));
        assert_eq!(err.context(), &[("called", "inspect".to_owned())]);
        assert_eq!(
            err.to_string(),
            "not found: gone (during recover, called: inspect)"
        );
    }

    #[test]
    fn io_errors_map_to_kinds() {
        let err: Error = std::io::Error::from(std::io::ErrorKind::NotFound).into();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let err: Error = std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.is_temporary());
    }
}
