//! Signals and interactive sessions, both through the pod's exec subresource: Kubernetes has
//! no API to signal a container, so a signal is `kill -N 1` run in the main container (its
//! image must have a `kill`, as every image with a shell does); a session is an exec with a
//! standard input and, when asked, a terminal, over the remote-command websocket (channel 4
//! resizes the terminal).

use futures::future::FutureExt as _;
use futures::{SinkExt as _, StreamExt as _};
use hoist_core::session::{ExecRequest, ExecSession, ResizeFn, SessionInput};
use hoist_core::{ContainerId, Error, ErrorKind, ExitStatus, LogChunk, LogStream, Result};
use kube::api::{AttachParams, AttachedProcess, TerminalSize};
use tokio_util::io::ReaderStream;

use super::KubeContainerizer;
use super::exec::{exec_exit_code, not_running};
use crate::render::MAIN_CONTAINER;

impl KubeContainerizer {
    /// [`Containerizer::signal`](hoist_core::Containerizer::signal): `kill -N 1` in the main
    /// container. As for any container's init process, a signal it has no handler for is
    /// ignored (KILL aside).
    pub(super) async fn signal_pod(&self, id: &ContainerId, signal: i32) -> Result<()> {
        if !(1..=64).contains(&signal) {
            return Err(Error::invalid_field(
                "signal",
                format!("{signal} is not a Linux signal number (1 to 64)"),
            )
            .with_operation("signal")
            .with_context("container", id));
        }
        if self.local().ended.contains_key(id.as_str()) {
            return Err(
                Error::new(ErrorKind::InvalidState, "the container has exited")
                    .with_operation("signal")
                    .with_context("container", id),
            );
        }
        let argv = ["kill".to_owned(), format!("-{signal}"), "1".to_owned()];
        let output = self
            .exec_in_pod(id, &argv, self.config.request_timeout)
            .await
            .map_err(|e| e.with_operation("signal"))?;
        if output.exit_code == Some(0) {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Backend,
            format!(
                "`kill -{signal} 1` in the container failed ({}): {}",
                output
                    .exit_code
                    .map_or("no exit code".to_owned(), |c| format!("exit code {c}")),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        )
        .with_operation("signal")
        .with_context("container", id))
    }

    /// [`Containerizer::exec_stream`](hoist_core::Containerizer::exec_stream) through the
    /// exec subresource.
    pub(super) async fn exec_session(
        &self,
        id: &ContainerId,
        request: ExecRequest,
    ) -> Result<ExecSession> {
        let name = id.as_str().to_owned();
        if request.argv.is_empty() {
            return Err(Error::invalid("exec_stream needs a command")
                .with_operation("exec_stream")
                .with_context("container", id));
        }
        let params = AttachParams::default()
            .container(MAIN_CONTAINER)
            .stdin(request.stdin)
            .stdout(true)
            // On a terminal the command's outputs are one stream.
            .stderr(!request.tty)
            .tty(request.tty);
        let mut process = self
            .request(
                "exec_stream",
                &name,
                self.api.exec(&name, request.argv.clone(), &params),
            )
            .await
            .map_err(|e| not_running(e, "exec_stream", &name))?;
        let input = process.stdin().map(|stdin| Box::pin(stdin) as SessionInput);
        let output = outputs(&mut process);
        let resize = match process.terminal_size() {
            Some(mut sizes) => {
                if let Some(size) = request.size {
                    let first = TerminalSize {
                        width: size.cols,
                        height: size.rows,
                    };
                    sizes.send(first).await.map_err(|e| {
                        Error::new(ErrorKind::Backend, "cannot size the terminal")
                            .with_operation("exec_stream")
                            .with_context("container", &name)
                            .with_source(e)
                    })?;
                }
                let container = name.clone();
                let resize: ResizeFn = std::sync::Arc::new(move |size| {
                    let (mut sizes, container) = (sizes.clone(), container.clone());
                    async move {
                        let size = TerminalSize {
                            width: size.cols,
                            height: size.rows,
                        };
                        sizes.send(size).await.map_err(|e| {
                            Error::new(ErrorKind::InvalidState, "the session has ended")
                                .with_operation("resize")
                                .with_context("container", container)
                                .with_source(e)
                        })
                    }
                    .boxed()
                });
                Some(resize)
            }
            None => None,
        };
        let status = process.take_status();
        let exit = async move {
            let status = match status {
                Some(status) => status.await,
                None => None,
            };
            if let Err(e) = process.join().await {
                return Err(from_kube_session(e, &name));
            }
            exec_exit_code(&name, status).map(ExitStatus::code)
        }
        .boxed();
        Ok(ExecSession::new(input, output, resize, exit))
    }
}

/// The session's output: its standard output, and its standard error when it has no terminal.
fn outputs(process: &mut AttachedProcess) -> futures::stream::BoxStream<'static, Result<LogChunk>> {
    let chunks = |reader, stream: LogStream| {
        ReaderStream::new(reader).map(move |read| {
            read.map(|data| LogChunk { stream, data }).map_err(|e| {
                Error::new(ErrorKind::Backend, "cannot read the session's output")
                    .with_operation("exec_stream")
                    .with_source(e)
            })
        })
    };
    let stdout = process
        .stdout()
        .map(|r| chunks(r, LogStream::Stdout).boxed());
    let stderr = process
        .stderr()
        .map(|r| chunks(r, LogStream::Stderr).boxed());
    match (stdout, stderr) {
        (Some(out), Some(err)) => futures::stream::select(out, err).boxed(),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => futures::stream::empty().boxed(),
    }
}

fn from_kube_session(err: impl std::error::Error + Send + Sync + 'static, name: &str) -> Error {
    Error::new(ErrorKind::Backend, "the session's connection failed")
        .with_operation("exec_stream")
        .with_context("container", name)
        .with_source(err)
}
