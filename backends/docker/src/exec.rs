//! Running a command inside a running container, with a deadline.

use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bytes::BytesMut;
use futures::StreamExt;
use hoist_core::{ContainerId, Error, ErrorKind, ExecOutput, Result};

use crate::engine_error::{engine_error, message_of, status_of};
use crate::state::exit_status_from_code;

/// Runs `argv` in container `id` and collects its output, for at most `timeout`. On timeout
/// the command is killed (when the Engine runs on this host: the Engine API has no call to
/// end an exec) and a [`ErrorKind::Timeout`] error is returned.
pub(crate) async fn exec(
    docker: &Docker,
    id: &ContainerId,
    argv: &[String],
    timeout: Duration,
    local: bool,
) -> Result<ExecOutput> {
    if argv.is_empty() {
        return Err(Error::invalid("exec needs a command")
            .with_operation("exec")
            .with_context("container", id));
    }
    let options = ExecConfig {
        cmd: Some(argv.to_vec()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..ExecConfig::default()
    };
    let created = docker
        .create_exec(id.as_str(), options)
        .await
        .map_err(|e| {
            if status_of(&e) == Some(409) {
                Error::new(
                    ErrorKind::InvalidState,
                    format!("the container is not running: {}", message_of(&e).trim()),
                )
                .with_operation("exec")
                .with_context("container", id)
            } else {
                engine_error(e, "exec", id.as_str())
            }
        })?;
    let exec_id = created.id;

    let run = async {
        let started = docker
            .start_exec(
                &exec_id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(|e| engine_error(e, "exec", id.as_str()))?;
        let mut stdout = BytesMut::new();
        let mut stderr = BytesMut::new();
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(chunk) = output.next().await {
                match chunk.map_err(|e| engine_error(e, "exec", id.as_str()))? {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        stdout.extend_from_slice(&message)
                    }
                    LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                    LogOutput::StdIn { .. } => {}
                }
            }
        }
        let inspected = docker
            .inspect_exec(&exec_id)
            .await
            .map_err(|e| engine_error(e, "exec", id.as_str()))?;
        let exit_code = inspected
            .exit_code
            .and_then(|code| exit_status_from_code(code, false).code);
        Ok(ExecOutput {
            exit_code,
            stdout: stdout.freeze(),
            stderr: stderr.freeze(),
        })
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => result,
        Err(_) => {
            let killed = if local {
                kill_exec(docker, &exec_id).await
            } else {
                false
            };
            let what = if killed {
                "killed"
            } else {
                "left running (the Engine is remote)"
            };
            Err(Error::new(
                ErrorKind::Timeout,
                format!("the command {argv:?} did not finish within {timeout:?} and was {what}"),
            )
            .with_operation("exec")
            .with_context("container", id))
        }
    }
}

/// Kills an exec'd process through its host pid. Returns whether a kill was sent.
async fn kill_exec(docker: &Docker, exec_id: &str) -> bool {
    let Ok(inspected) = docker.inspect_exec(exec_id).await else {
        return false;
    };
    let pid = match inspected.pid {
        Some(pid) if pid > 0 && inspected.running.unwrap_or(false) => pid,
        _ => return false,
    };
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .is_ok()
}
