//! [`LambdaHost`]: the function executor as hoist-aws's [`FunctionHost`], so the Lambda control
//! plane (and its Invoke API) runs functions in warm environments. Feature `aws`.
//!
//! Each deployed version of a Lambda function is one function of the executor: `name` for
//! `$LATEST`, `name.<version>` for a published version (Lambda's names never hold a `.`), with
//! Lambda's own name and version in its environment (`AWS_LAMBDA_FUNCTION_NAME`,
//! `AWS_LAMBDA_FUNCTION_VERSION`). A zip's code is unpacked once per archive, under the code
//! directory named by its SHA-256, keeping its files' permission bits.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use hoist_aws::AwsError;
use hoist_aws::lambda::errors;
use hoist_aws::lambda::{
    DeployCode, Deployment, FunctionHost, InvocationType as AwsInvocationType, InvokeOutput,
    InvokeRequest,
};
use hoist_core::ErrorKind;
use hoist_runtimes::function::FunctionSpec;

use crate::executor::FunctionExecutor;
use crate::http::lambda_throttle_reason;
use crate::invoke::{Invocation, InvocationType, InvokeError};
use crate::pool::FunctionLimits;

/// The function executor behind the Lambda API.
///
/// ```no_run
/// # async fn run(functions: hoist_functions::FunctionExecutor, store: hoist_store::Store) {
/// use std::sync::Arc;
/// use hoist_aws::lambda::{LambdaConfig, LambdaService};
/// use hoist_functions::lambda_host::LambdaHost;
///
/// let host = LambdaHost::new(functions, store.dir().join("unpacked"));
/// let service = LambdaService::start(store, Arc::new(host), LambdaConfig::default()).await;
/// let router = service.router();
/// # let _ = router; }
/// ```
#[derive(Debug)]
pub struct LambdaHost {
    functions: FunctionExecutor,
    code_dir: PathBuf,
    /// Reserved concurrency per Lambda function, applied to each of its deployed versions.
    reserved: Mutex<HashMap<String, Option<u32>>>,
}

/// The executor's name for `version` of `function`.
fn internal_name(function: &str, version: &str) -> String {
    if version == "$LATEST" {
        function.to_owned()
    } else {
        format!("{function}.{version}")
    }
}

fn from_core(e: hoist_core::Error) -> AwsError {
    match e.kind() {
        ErrorKind::InvalidInput => errors::invalid_parameter(e.to_string()),
        ErrorKind::NotFound => errors::not_found(e.to_string()),
        _ => errors::service(e.to_string()),
    }
}

fn from_invoke(e: InvokeError) -> AwsError {
    match e {
        InvokeError::NotFound { function } => {
            errors::not_found(format!("Function not found: {function}"))
        }
        InvokeError::Throttled {
            reason,
            retry_after,
        } => {
            errors::too_many_requests(lambda_throttle_reason(reason), retry_after.as_secs().max(1))
        }
        e @ InvokeError::PayloadTooLarge { .. } => errors::too_large(e.to_string()),
        InvokeError::InvalidContent(message) => {
            errors::error("InvalidRequestContentException", message)
        }
        e => errors::service(e.to_string()),
    }
}

impl LambdaHost {
    /// A host running functions on `functions`, unpacking zips under `code_dir`.
    pub fn new(functions: FunctionExecutor, code_dir: impl Into<PathBuf>) -> Self {
        LambdaHost {
            functions,
            code_dir: code_dir.into(),
            reserved: Mutex::default(),
        }
    }

    /// The function executor.
    pub fn functions(&self) -> &FunctionExecutor {
        &self.functions
    }

    /// Unpacks the zip at `path` (SHA-256 `sha256`) once, into a directory of its own, and
    /// returns that directory. A crash mid-way leaves only a temporary directory behind, which
    /// the next unpack of the same archive replaces.
    fn unpack(&self, path: &Path, sha256: &str, function: &str) -> Result<PathBuf, AwsError> {
        let dir = self.code_dir.join(sha256);
        if dir.is_dir() {
            return Ok(dir);
        }
        let bytes = std::fs::read(path)
            .map_err(|e| errors::service(format!("cannot read the code of {function}: {e}")))?;
        let partial = self.code_dir.join(format!(".{sha256}.partial"));
        let _ = std::fs::remove_dir_all(&partial);
        hoist_runtimes::plan::unzip(&bytes, &partial, function).map_err(|e| {
            errors::error(
                "InvalidZipFileException",
                format!("Could not unzip uploaded file. {e}"),
            )
        })?;
        std::fs::rename(&partial, &dir)
            .or_else(|e| if dir.is_dir() { Ok(()) } else { Err(e) })
            .map_err(|e| errors::service(format!("cannot keep the code of {function}: {e}")))?;
        Ok(dir)
    }

    /// The executor's functions that are versions of `function`.
    fn versions_of(&self, function: &str) -> Vec<String> {
        let prefix = format!("{function}.");
        self.functions
            .registry()
            .list()
            .iter()
            .map(|v| v.spec.name.clone())
            .filter(|name| name == function || name.starts_with(&prefix))
            .collect()
    }

    fn limits(&self, function: &str) -> FunctionLimits {
        let reserved = self
            .reserved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(function)
            .copied()
            .flatten();
        FunctionLimits {
            reserved: reserved.map(|r| r as usize),
            per_environment: 1,
        }
    }
}

#[async_trait]
impl FunctionHost for LambdaHost {
    async fn deploy(&self, deployment: Deployment) -> Result<(), AwsError> {
        let Deployment {
            function,
            version,
            code,
            runtime,
            handler,
            timeout,
            memory_size,
            environment,
            reserved_concurrency,
            ..
        } = deployment;
        let dir = match &code {
            DeployCode::Zip { path, sha256, .. } => self.unpack(path, sha256, &function)?,
            DeployCode::Image { .. } => {
                return Err(errors::invalid_parameter(
                    "this host runs zip functions only; container images need LAMBDA_RUNTIME_EXECUTOR=docker",
                ));
            }
        };
        let runtime = runtime.ok_or_else(|| errors::invalid_parameter("Runtime is required"))?;
        let name = internal_name(&function, &version);
        let mut spec = FunctionSpec::new(
            name.as_str(),
            runtime.as_str(),
            handler.unwrap_or_default(),
            dir,
        );
        spec.timeout = Duration::from_secs(u64::from(timeout.max(1)));
        spec.memory = memory_size;
        spec.env = environment;
        let identity = BTreeMap::from([
            ("AWS_LAMBDA_FUNCTION_NAME", function.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION", version.clone()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function}"),
            ),
        ]);
        spec.env
            .extend(identity.into_iter().map(|(k, v)| (k.to_owned(), v)));
        self.reserved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(function.clone(), reserved_concurrency);
        spec.reserved_concurrency = self.limits(&function).reserved;
        let result = if self.functions.registry().get(&name).is_some() {
            self.functions.update(spec)
        } else {
            self.functions.create(spec)
        };
        result.map(|_| ()).map_err(from_core)
    }

    async fn remove(&self, function: &str, version: Option<&str>) -> Result<(), AwsError> {
        let names = match version {
            Some(version) => vec![internal_name(function, version)],
            None => {
                self.reserved
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(function);
                self.versions_of(function)
            }
        };
        for name in names {
            match self.functions.delete(&name) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(from_core(e)),
            }
        }
        Ok(())
    }

    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeOutput, AwsError> {
        let name = internal_name(&request.function, &request.version);
        let invocation = Invocation {
            payload: request.payload,
            kind: match request.invocation_type {
                AwsInvocationType::RequestResponse => InvocationType::RequestResponse,
                AwsInvocationType::Event => InvocationType::Event,
                AwsInvocationType::DryRun => InvocationType::DryRun,
            },
            request_id: Some(request.request_id),
            client_context: request.client_context,
            tail_log: request.tail_log,
            invoked_arn: Some(request.invoked_arn),
            ..Invocation::default()
        };
        let response = self
            .functions
            .invoke(&name, invocation)
            .await
            .map_err(from_invoke)?;
        Ok(InvokeOutput {
            payload: response.payload,
            function_error: response.function_error,
            log_tail: response.log,
        })
    }

    async fn set_reserved_concurrency(
        &self,
        function: &str,
        reserved: Option<u32>,
    ) -> Result<(), AwsError> {
        self.reserved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(function.to_owned(), reserved);
        let limits = self.limits(function);
        for name in self.versions_of(function) {
            self.functions
                .pool()
                .set_limits(&name, limits)
                .map_err(from_core)?;
        }
        Ok(())
    }
}
