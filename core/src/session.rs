//! Interactive commands in a container: what
//! [`Containerizer::exec_stream`](crate::Containerizer::exec_stream) takes and gives.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::io::AsyncWrite;

use crate::container::{ExitStatus, LogChunk};
use crate::error::{Error, ErrorKind, Result};

/// A command to run interactively in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Run it on a terminal (standard output and error are then one stream, and the session
    /// can be resized).
    pub tty: bool,
    /// Give it a standard input the caller writes to.
    pub stdin: bool,
    /// The terminal's size at the start, when `tty`.
    pub size: Option<TerminalSize>,
}

impl ExecRequest {
    /// `argv` without a terminal or standard input.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ExecRequest {
            argv: argv.into_iter().map(Into::into).collect(),
            tty: false,
            stdin: false,
            size: None,
        }
    }

    /// With a terminal of `size`.
    pub fn tty(mut self, size: TerminalSize) -> Self {
        self.tty = true;
        self.size = Some(size);
        self
    }

    /// With a standard input.
    pub fn stdin(mut self) -> Self {
        self.stdin = true;
        self
    }
}

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// Writes the command's standard input; dropping (or shutting down) it closes the input.
pub type SessionInput = Pin<Box<dyn AsyncWrite + Send>>;

/// Changes the size of a session's terminal.
pub type ResizeFn = Arc<dyn Fn(TerminalSize) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// A running interactive command: its input, its output, a way to resize its terminal, and its
/// exit. Each part is taken once.
pub struct ExecSession {
    input: Option<SessionInput>,
    output: Option<BoxStream<'static, Result<LogChunk>>>,
    resize: Option<ResizeFn>,
    exit: Option<BoxFuture<'static, Result<ExitStatus>>>,
}

impl fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecSession")
            .field("input", &self.input.is_some())
            .field("output", &self.output.is_some())
            .field("resize", &self.resize.is_some())
            .field("exit", &self.exit.is_some())
            .finish()
    }
}

impl ExecSession {
    /// A session from its parts, as a backend makes it. `exit` resolves once the command has
    /// ended and its output has been read to the end by the backend.
    pub fn new(
        input: Option<SessionInput>,
        output: BoxStream<'static, Result<LogChunk>>,
        resize: Option<ResizeFn>,
        exit: BoxFuture<'static, Result<ExitStatus>>,
    ) -> Self {
        ExecSession {
            input,
            output: Some(output),
            resize,
            exit: Some(exit),
        }
    }

    /// The command's standard input (when the request asked for one).
    pub fn take_input(&mut self) -> Option<SessionInput> {
        self.input.take()
    }

    /// What the command writes (one `Stdout` stream on a terminal); it ends when the command
    /// has ended.
    pub fn take_output(&mut self) -> Option<BoxStream<'static, Result<LogChunk>>> {
        self.output.take()
    }

    /// Resizes the terminal. A session without one is [`ErrorKind::Unsupported`].
    pub async fn resize(&self, size: TerminalSize) -> Result<()> {
        match &self.resize {
            Some(resize) => resize(size).await,
            None => Err(Error::new(
                ErrorKind::Unsupported,
                "the session has no terminal to resize",
            )
            .with_operation("resize")),
        }
    }

    /// Waits for the command to end. Called a second time, it is [`ErrorKind::InvalidState`].
    pub async fn wait(&mut self) -> Result<ExitStatus> {
        match self.exit.take() {
            Some(exit) => exit.await,
            None => Err(Error::new(
                ErrorKind::InvalidState,
                "the session's exit was already taken",
            )
            .with_operation("wait")),
        }
    }
}
