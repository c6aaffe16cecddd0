//! `exec`: a command run beside the container's process, with its environment and working
//! directory, in a process group of its own that is killed when the timeout passes.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use hoist_core::{Error, ErrorKind, ExecOutput, Result};
use nix::sys::signal::Signal;
use tokio::io::AsyncReadExt;

use crate::plan::{Plan, spawn_error};
use crate::signal::signal_group;

/// Runs `plan` to completion and returns its output, or kills it once `timeout` passes.
pub(crate) async fn run(plan: &Plan, timeout: Duration) -> Result<ExecOutput> {
    let mut cmd = plan.command();
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| spawn_error(plan, e))?;
    let pid = child.id();
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(Error::new(
            ErrorKind::Backend,
            "the command's output pipes were not opened",
        ));
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let finished = tokio::time::timeout(timeout, async {
        let (status, read_out, read_err) = tokio::join!(
            child.wait(),
            stdout.read_to_end(&mut out),
            stderr.read_to_end(&mut err)
        );
        read_out?;
        read_err?;
        status
    })
    .await;
    match finished {
        Ok(Ok(status)) => Ok(ExecOutput {
            exit_code: status.code(),
            stdout: Bytes::from(out),
            stderr: Bytes::from(err),
        }),
        Ok(Err(e)) => {
            Err(Error::new(ErrorKind::Backend, "could not run the command").with_source(e))
        }
        Err(_) => {
            if let Some(pid) = pid {
                signal_group(pid, Signal::SIGKILL);
            }
            // Reap it; KILL cannot be ignored, so this returns promptly.
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "`{}` did not finish within {timeout:?} and was killed",
                    plan.program.display()
                ),
            )
            .with_context("command", plan.program.display()))
        }
    }
}
