//! [`LambdaHost`]: the function executor as hoist-aws's [`FunctionHost`], so the Lambda control
//! plane (and its Invoke API) runs functions in warm environments. Feature `aws`.
//!
//! A Lambda function is one function of the executor: `$LATEST` its current version, each
//! published version a version the executor retains beside it ([`FunctionExecutor::retain`]),
//! so they share the function's reserved concurrency as on AWS. Lambda's version is in each
//! one's environment (`AWS_LAMBDA_FUNCTION_VERSION`). A zip's code is unpacked once per archive, under the code
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
    /// Reserved concurrency per Lambda function.
    reserved: Mutex<HashMap<String, Option<u32>>>,
    /// The executor's version of each published Lambda version, by function and version.
    published: Mutex<HashMap<(String, String), u64>>,
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
            published: Mutex::default(),
        }
    }

    fn published(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), u64>> {
        self.published.lock().unwrap_or_else(|e| e.into_inner())
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
            architecture,
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
        let mut spec = FunctionSpec::new(
            function.as_str(),
            runtime.as_str(),
            handler.unwrap_or_default(),
            dir,
        );
        spec.timeout = Duration::from_secs(u64::from(timeout.max(1)));
        spec.memory = memory_size;
        spec.env = environment;
        // The Kubernetes backend picks a pod profile by it, in Kubernetes's words.
        let architecture = if architecture == "arm64" {
            "arm64"
        } else {
            "amd64"
        };
        spec.labels
            .insert(hoist_core::labels::ARCHITECTURE.into(), architecture.into());
        let identity = BTreeMap::from([
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
        if version == "$LATEST" {
            let result = if self.functions.registry().get(&function).is_some() {
                self.functions.update(spec)
            } else {
                self.functions.create(spec)
            };
            return result.map(|_| ()).map_err(from_core);
        }
        let retained = self.functions.retain(spec).map_err(from_core)?;
        let replaced = self
            .published()
            .insert((function.clone(), version), retained.version);
        if let Some(old) = replaced {
            self.functions.release_version(&function, old);
        }
        Ok(())
    }

    async fn remove(&self, function: &str, version: Option<&str>) -> Result<(), AwsError> {
        match version {
            Some(version) => {
                let key = (function.to_owned(), version.to_owned());
                let retained = self.published().remove(&key);
                match retained {
                    Some(n) => self.functions.release_version(function, n),
                    None if version == "$LATEST" => return self.remove(function, None).await,
                    None => {}
                }
                Ok(())
            }
            None => {
                self.reserved
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(function);
                self.published().retain(|(f, _), _| f != function);
                match self.functions.delete(function) {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(from_core(e)),
                }
            }
        }
    }

    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeOutput, AwsError> {
        let qualifier = match request.version.as_str() {
            "$LATEST" => None,
            version => {
                let key = (request.function.clone(), version.to_owned());
                let retained = self.published().get(&key).copied();
                let Some(n) = retained else {
                    return Err(errors::not_found(format!(
                        "Function not found: {}",
                        request.invoked_arn
                    )));
                };
                Some(n.to_string())
            }
        };
        let invocation = Invocation {
            qualifier,
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
            .invoke(&request.function, invocation)
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
        self.functions
            .pool()
            .set_limits(function, self.limits(function))
            .map_err(from_core)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hoist_core::testing::FakeContainerizer;

    use super::*;
    use crate::config::{FunctionsConfig, RuntimeCommand};

    #[tokio::test]
    async fn a_functions_architecture_becomes_its_label_in_kubernetes_words() {
        let mut config = FunctionsConfig::default();
        config.runtimes.insert(
            "provided.al2023".into(),
            RuntimeCommand::lambda(["{code}/bootstrap"]),
        );
        let functions =
            FunctionExecutor::start(Arc::new(FakeContainerizer::new()), config).unwrap();
        let code = tempfile::tempdir().unwrap();
        // The archive is unpacked already (as after a restart): the host uses that directory.
        std::fs::create_dir(code.path().join("0123abcd")).unwrap();
        let host = LambdaHost::new(functions.clone(), code.path());
        for (name, architecture, label) in [("arm", "arm64", "arm64"), ("x86", "x86_64", "amd64")] {
            host.deploy(Deployment {
                function: name.into(),
                version: "$LATEST".into(),
                arn: format!("arn:aws:lambda:us-east-1:000000000000:function:{name}"),
                code: DeployCode::Zip {
                    path: code.path().join("absent.zip"),
                    sha256: "0123abcd".into(),
                    size: 0,
                },
                runtime: Some("provided.al2023".into()),
                handler: Some("bootstrap".into()),
                timeout: 3,
                memory_size: 128,
                environment: BTreeMap::new(),
                reserved_concurrency: None,
                architecture: architecture.into(),
            })
            .await
            .unwrap();
            let deployed = functions.registry().get(name).unwrap();
            assert_eq!(
                deployed.spec.labels[hoist_core::labels::ARCHITECTURE],
                label
            );
        }
        functions.shutdown().await;
    }
}
