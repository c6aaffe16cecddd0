//! Commands in a pod's main container through the exec subresource.

use std::time::Duration;

use bytes::Bytes;
use hoist_core::{ContainerId, Error, ErrorKind, ExecOutput, Result};
use kube::api::AttachParams;
use tokio::io::AsyncReadExt as _;

use super::KubeContainerizer;
use crate::error::from_kube;
use crate::render::MAIN_CONTAINER;

impl KubeContainerizer {
    /// [`Containerizer::exec`]: the command through the pod's exec subresource.
    pub(super) async fn exec_in_pod(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let name = id.as_str();
        if argv.is_empty() {
            return Err(Error::invalid("exec needs a command")
                .with_operation("exec")
                .with_context("container", id));
        }
        let run = async {
            let params = AttachParams::default()
                .container(MAIN_CONTAINER)
                .stdin(false)
                .stdout(true)
                .stderr(true);
            let mut process = self
                .api
                .exec(name, argv.to_vec(), &params)
                .await
                .map_err(|e| not_running(from_kube(e, "exec", name), "exec", name))?;
            let mut stdout = process.stdout();
            let mut stderr = process.stderr();
            let status = process.take_status();
            let read_out = async {
                let mut buf = Vec::new();
                if let Some(out) = stdout.as_mut() {
                    out.read_to_end(&mut buf).await?;
                }
                Ok::<_, std::io::Error>(buf)
            };
            let read_err = async {
                let mut buf = Vec::new();
                if let Some(err) = stderr.as_mut() {
                    err.read_to_end(&mut buf).await?;
                }
                Ok::<_, std::io::Error>(buf)
            };
            let (out, err) = tokio::try_join!(read_out, read_err)?;
            let status = match status {
                Some(status) => status.await,
                None => None,
            };
            let _ = process.join().await;
            let exit_code = exec_exit_code(name, status)?;
            Ok::<_, Error>(ExecOutput {
                exit_code: Some(exit_code),
                stdout: Bytes::from(out),
                stderr: Bytes::from(err),
            })
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("the command did not finish within {timeout:?}"),
            )
            .with_operation("exec")
            .with_context("container", id)),
        }
    }
}

/// The API server refuses exec into a container that is not running with 400: that is
/// [`ErrorKind::InvalidState`].
pub(super) fn not_running(err: Error, operation: &'static str, name: &str) -> Error {
    if err.kind() != ErrorKind::InvalidInput {
        return err;
    }
    Error::new(
        ErrorKind::InvalidState,
        format!("the container is not running ({})", err.message()),
    )
    .with_operation(operation)
    .with_context("container", name)
}

/// The exit code of an exec from the status the remote-command protocol sends on its error
/// channel: `Success`, or `NonZeroExitCode` with the code in `details.causes[ExitCode]`.
pub(super) fn exec_exit_code(
    name: &str,
    status: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>,
) -> Result<i32> {
    let Some(status) = status else {
        return Err(
            Error::new(ErrorKind::Backend, "the exec ended without a status")
                .with_operation("exec")
                .with_context("container", name),
        );
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode") {
        let code = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|causes| {
                causes
                    .iter()
                    .find(|c| c.reason.as_deref() == Some("ExitCode"))
            })
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.parse().ok());
        if let Some(code) = code {
            return Ok(code);
        }
    }
    Err(Error::new(
        ErrorKind::Backend,
        format!("the exec failed: {}", status.message.unwrap_or_default()),
    )
    .with_operation("exec")
    .with_context("container", name))
}
