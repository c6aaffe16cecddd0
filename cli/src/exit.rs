//! What every program of this package does at its edges: the tracing subscriber, and errors
//! turned into one line and an exit code.

use std::process::ExitCode;

use hoist::{Error, ErrorKind};

/// Installs the subscriber: `RUST_LOG` decides (`warn` when unset), on standard error.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Prints `message` as one line and returns `code`.
pub fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("hoist: {message}");
    ExitCode::from(code)
}

/// The exit code of an error: 2 for input the user gave (a flag, a file), 3 for a backend that
/// cannot be reached or used, 1 otherwise.
pub fn code_of(error: &Error) -> u8 {
    match error.kind() {
        ErrorKind::InvalidInput | ErrorKind::NotFound | ErrorKind::AlreadyExists => 2,
        ErrorKind::Unavailable | ErrorKind::Unsupported => 3,
        _ => 1,
    }
}

/// Prints `error` as one line and returns its exit code.
pub fn error(error: &Error) -> ExitCode {
    fail(&error.to_string(), code_of(error))
}
