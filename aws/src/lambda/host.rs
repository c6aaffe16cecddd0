//! The seam between the Lambda front door and whatever runs functions: a [`FunctionHost`]
//! deploys a version's code and configuration, removes it, and runs invocations.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;

use crate::protocol::AwsError;

/// A function version's code, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployCode {
    /// A zip archive in the state directory.
    Zip {
        /// The archive's file (content-addressed: never rewritten while named).
        path: PathBuf,
        /// Its SHA-256, lowercase hex.
        sha256: String,
        /// Its size in bytes.
        size: u64,
    },
    /// A container image.
    Image {
        /// The image (`ImageUri`).
        uri: String,
        /// `ImageConfig`'s `EntryPoint`, if given.
        entry_point: Option<Vec<String>>,
        /// `ImageConfig`'s `Command`, if given.
        command: Option<Vec<String>>,
        /// `ImageConfig`'s `WorkingDirectory`, if given.
        working_directory: Option<String>,
    },
}

/// One version of a function, to make invocable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// The function's name.
    pub function: String,
    /// `$LATEST` or a version number.
    pub version: String,
    /// The version's ARN (`arn:aws:lambda:<region>:<account>:function:<name>:<version>`).
    pub arn: String,
    /// Its code.
    pub code: DeployCode,
    /// The AWS runtime identifier (`python3.12`); `None` for an image.
    pub runtime: Option<String>,
    /// The handler (`app.handler`); `None` for an image.
    pub handler: Option<String>,
    /// The timeout in seconds.
    pub timeout: u32,
    /// The memory size in MiB.
    pub memory_size: u32,
    /// The function's own environment variables.
    pub environment: BTreeMap<String, String>,
    /// The function's reserved concurrency, if any.
    pub reserved_concurrency: Option<u32>,
    /// Its instruction set, as `Architectures` names it (`x86_64`, `arm64`).
    pub architecture: String,
}

/// How an invocation runs (`X-Amz-Invocation-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvocationType {
    /// Run and answer with the result (200).
    #[default]
    RequestResponse,
    /// Queue and answer at once (202).
    Event,
    /// Only check that it could run (204).
    DryRun,
}

/// One invocation, resolved to a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeRequest {
    /// The request id (the response's `x-amzn-RequestId`).
    pub request_id: String,
    /// The function's name.
    pub function: String,
    /// The version that runs: `$LATEST` or a number (an alias is resolved already).
    pub version: String,
    /// The ARN the caller invoked (with the alias or version it named, if any).
    pub invoked_arn: String,
    /// The event: valid JSON (an empty request body is `{}`).
    pub payload: Bytes,
    /// How it runs.
    pub invocation_type: InvocationType,
    /// `X-Amz-Log-Type: Tail`: return the last 4 KB of the log.
    pub tail_log: bool,
    /// `X-Amz-Client-Context`, decoded from base64 (JSON).
    pub client_context: Option<String>,
}

/// What an invocation answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeOutput {
    /// The result, or the error document when `function_error` is set; empty for `Event`
    /// and `DryRun`.
    pub payload: Bytes,
    /// `Unhandled` (or `Handled`) when the function failed (`X-Amz-Function-Error`).
    pub function_error: Option<String>,
    /// The log tail (raw bytes; sent base64-encoded in `X-Amz-Log-Result`).
    pub log_tail: Option<Bytes>,
}

/// What a host can do beyond zip functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct HostCapabilities {
    /// It runs container image functions (`PackageType: Image`).
    pub images: bool,
}

/// Runs the functions the control plane manages. Errors are AWS errors: the front door sends
/// them as they are (a host builds them with [`crate::lambda::errors`]).
///
/// ```
/// use hoist_aws::lambda::{Deployment, FunctionHost, InvokeOutput, InvokeRequest};
/// use hoist_aws::AwsError;
///
/// struct Echo;
///
/// #[async_trait::async_trait]
/// impl FunctionHost for Echo {
///     async fn deploy(&self, _: Deployment) -> Result<(), AwsError> { Ok(()) }
///     async fn remove(&self, _: &str, _: Option<&str>) -> Result<(), AwsError> { Ok(()) }
///     async fn invoke(&self, request: InvokeRequest) -> Result<InvokeOutput, AwsError> {
///         Ok(InvokeOutput { payload: request.payload, function_error: None, log_tail: None })
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait FunctionHost: Send + Sync + 'static {
    /// Makes a version invocable (replacing what was deployed for it before). The version is
    /// `Active` once this returns `Ok`, `Failed` with the error's message otherwise.
    async fn deploy(&self, deployment: Deployment) -> Result<(), AwsError>;

    /// Removes one version (`Some`) or the whole function (`None`) and its environments.
    async fn remove(&self, function: &str, version: Option<&str>) -> Result<(), AwsError>;

    /// Runs one invocation of a deployed version.
    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeOutput, AwsError>;

    /// Applies a function's reserved concurrency (`None`: no reservation).
    async fn set_reserved_concurrency(
        &self,
        function: &str,
        reserved: Option<u32>,
    ) -> Result<(), AwsError> {
        let _ = (function, reserved);
        Ok(())
    }

    /// What it can run beyond zip functions.
    fn capabilities(&self) -> HostCapabilities {
        HostCapabilities::default()
    }
}
