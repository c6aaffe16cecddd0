//! The AWS Lambda API: the whole control plane (functions, versions, aliases, concurrency,
//! account settings, tags) and the Invoke API, as one axum [`Router`] over a [`Store`] and a
//! [`FunctionHost`]. Paths, shapes, error codes and statuses are those of botocore's Lambda
//! service model; behaviour the model does not say (messages, limits, state transitions) is
//! AWS's as LocalStack records it, each cited where it is implemented.
//!
//! ```no_run
//! # async fn run(host: std::sync::Arc<dyn hoist_aws::lambda::FunctionHost>) -> Result<(), Box<dyn std::error::Error>> {
//! use hoist_aws::lambda::{LambdaConfig, LambdaService};
//!
//! let store = hoist_store::Store::open("/var/lib/hoist")?;
//! let lambda = LambdaService::start(store, host, LambdaConfig::default()).await;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4566").await?;
//! axum::serve(listener, lambda.router()).await?;
//! lambda.shutdown().await;
//! # Ok(()) }
//! ```

mod document;
pub mod errors;
mod functions;
mod host;
mod input;
mod invoke;
pub mod model;
mod names;
mod settings;
pub mod validate;
mod versions;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use hoist_store::{FunctionRecord, State, Store, UpdateStatus, VersionRecord};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use host::{
    DeployCode, Deployment, FunctionHost, HostCapabilities, InvocationType, InvokeOutput,
    InvokeRequest,
};
pub use names::{Arns, Qualifier, Target, parse_target};

use crate::protocol::AwsError;

/// The limits the API enforces, LocalStack's `LAMBDA_LIMITS_*` (localstack `config.py`), with
/// their defaults, which are AWS's quotas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `LAMBDA_LIMITS_CODE_SIZE_ZIPPED`: the largest zip archive (50 MiB).
    pub code_size_zipped: u64,
    /// `LAMBDA_LIMITS_CODE_SIZE_UNZIPPED`: the largest unpacked code (250 MiB).
    pub code_size_unzipped: u64,
    /// `LAMBDA_LIMITS_MAX_FUNCTION_ENVVAR_SIZE_BYTES`: the environment, as JSON (4 KB).
    pub env_size: usize,
    /// `LAMBDA_LIMITS_CONCURRENT_EXECUTIONS`: the account's concurrency (1000).
    pub concurrent_executions: u32,
    /// `LAMBDA_LIMITS_MINIMUM_UNRESERVED_CONCURRENCY`: what reservations must leave (100).
    pub minimum_unreserved: u32,
    /// `LAMBDA_LIMITS_TOTAL_CODE_SIZE`: the account's code storage (75 GiB).
    pub total_code_size: u64,
    /// `LAMBDA_LIMITS_CREATE_FUNCTION_REQUEST_SIZE`: the largest control-plane request body.
    pub request_size: usize,
    /// `LAMBDA_LIMITS_MAX_FUNCTION_PAYLOAD_SIZE_BYTES`: the largest Invoke request (6 MiB).
    pub payload_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            code_size_zipped: 52_428_800,
            code_size_unzipped: 262_144_000,
            env_size: 4096,
            concurrent_executions: 1000,
            minimum_unreserved: 100,
            total_code_size: 80_530_636_800,
            request_size: 70_167_211,
            payload_size: 6_291_456,
        }
    }
}

/// Where the API says functions live, and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaConfig {
    /// The region in ARNs (`us-east-1`).
    pub region: String,
    /// The account id in ARNs (`000000000000`, LocalStack's default).
    pub account_id: String,
    /// The limits.
    pub limits: Limits,
    /// How long [`LambdaService::shutdown`] waits for deployments in flight.
    pub shutdown_grace: Duration,
    /// How long the host may take to deploy a version; one that takes longer is `Failed`.
    pub deploy_timeout: Duration,
}

impl Default for LambdaConfig {
    fn default() -> Self {
        LambdaConfig {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            limits: Limits::default(),
            shutdown_grace: Duration::from_secs(10),
            deploy_timeout: Duration::from_secs(600),
        }
    }
}

impl LambdaConfig {
    /// Reads LocalStack's `LAMBDA_LIMITS_*` variables and `AWS_DEFAULT_REGION` from `vars` (a
    /// program passes its environment); unset ones keep their defaults.
    pub fn from_vars<K: AsRef<str>, V: AsRef<str>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> hoist_core::Result<Self> {
        let mut config = LambdaConfig::default();
        for (key, value) in vars {
            let (key, value) = (key.as_ref(), value.as_ref());
            let number = || {
                value.trim().parse::<u64>().map_err(|_| {
                    hoist_core::Error::invalid_field(
                        key,
                        format!("must be a whole number of bytes or executions, not {value:?}"),
                    )
                })
            };
            let limits = &mut config.limits;
            match key {
                "AWS_DEFAULT_REGION" => config.region = value.to_owned(),
                "LAMBDA_LIMITS_CODE_SIZE_ZIPPED" => limits.code_size_zipped = number()?,
                "LAMBDA_LIMITS_CODE_SIZE_UNZIPPED" => limits.code_size_unzipped = number()?,
                "LAMBDA_LIMITS_MAX_FUNCTION_ENVVAR_SIZE_BYTES" => {
                    limits.env_size = number()? as usize
                }
                "LAMBDA_LIMITS_CONCURRENT_EXECUTIONS" => {
                    limits.concurrent_executions = u32::try_from(number()?).unwrap_or(u32::MAX)
                }
                "LAMBDA_LIMITS_MINIMUM_UNRESERVED_CONCURRENCY" => {
                    limits.minimum_unreserved = u32::try_from(number()?).unwrap_or(u32::MAX)
                }
                "LAMBDA_LIMITS_TOTAL_CODE_SIZE" => limits.total_code_size = number()?,
                "LAMBDA_LIMITS_CREATE_FUNCTION_REQUEST_SIZE" => {
                    limits.request_size = number()? as usize
                }
                "LAMBDA_LIMITS_MAX_FUNCTION_PAYLOAD_SIZE_BYTES" => {
                    limits.payload_size = number()? as usize
                }
                _ => {}
            }
        }
        Ok(config)
    }
}

/// The Lambda API over a store and a host. Cheap to clone.
#[derive(Clone)]
pub struct LambdaService {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LambdaService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaService")
            .field("state_dir", &self.shared.store.dir())
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

struct Shared {
    store: Store,
    host: Arc<dyn FunctionHost>,
    config: LambdaConfig,
    arns: Arns,
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl LambdaService {
    /// Starts the API over `store`: every function and version the store holds is deployed to
    /// `host` again (so a restarted server invokes what its predecessor served); one the host
    /// refuses is marked `Failed` with the host's reason.
    pub async fn start(store: Store, host: Arc<dyn FunctionHost>, config: LambdaConfig) -> Self {
        let arns = Arns {
            region: config.region.clone(),
            account: config.account_id.clone(),
        };
        let service = LambdaService {
            shared: Arc::new(Shared {
                store,
                host,
                config,
                arns,
                locks: std::sync::Mutex::new(HashMap::new()),
                tracker: TaskTracker::new(),
                cancel: CancellationToken::new(),
            }),
        };
        service.recover().await;
        service
    }

    /// The router of the whole API. Every answer carries `x-amzn-RequestId`; every error is
    /// AWS-shaped, including those of operations hoist does not serve.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/2015-03-31/functions",
                get(functions::list).post(functions::create),
            )
            .route(
                "/2015-03-31/functions/{name}",
                get(functions::get).delete(functions::delete),
            )
            .route(
                "/2015-03-31/functions/{name}/configuration",
                get(functions::get_configuration).put(functions::update_configuration),
            )
            .route(
                "/2015-03-31/functions/{name}/code",
                put(functions::update_code),
            )
            .route(
                "/2015-03-31/functions/{name}/versions",
                get(versions::list).post(versions::publish),
            )
            .route(
                "/2015-03-31/functions/{name}/aliases",
                get(versions::list_aliases).post(versions::create_alias),
            )
            .route(
                "/2015-03-31/functions/{name}/aliases/{alias}",
                get(versions::get_alias)
                    .put(versions::update_alias)
                    .delete(versions::delete_alias),
            )
            .route(
                "/2015-03-31/functions/{name}/invocations",
                post(invoke::invoke),
            )
            .route(
                "/2017-10-31/functions/{name}/concurrency",
                put(settings::put_concurrency).delete(settings::delete_concurrency),
            )
            .route(
                "/2019-09-30/functions/{name}/concurrency",
                get(settings::get_concurrency),
            )
            .route("/2016-08-19/account-settings", get(settings::account))
            .route(
                "/2017-03-31/tags/{resource}",
                get(settings::list_tags)
                    .post(settings::tag)
                    .delete(settings::untag),
            )
            .route(document::CODE_ROUTE, get(functions::download_code))
            .fallback(unserved)
            .method_not_allowed_fallback(unserved)
            .layer(DefaultBodyLimit::disable())
            .layer(axum::middleware::from_fn(
                crate::protocol::aws_shaped_errors,
            ))
            .layer(axum::middleware::from_fn(crate::protocol::request_id_layer))
            .with_state(self.clone())
    }

    /// Stops deployments in flight (waiting up to the configured grace); a function left
    /// `Pending` is deployed again by the next [`LambdaService::start`].
    pub async fn shutdown(&self) {
        self.shared.tracker.close();
        self.shared.cancel.cancel();
        let _ = tokio::time::timeout(
            self.shared.config.shutdown_grace,
            self.shared.tracker.wait(),
        )
        .await;
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    fn config(&self) -> &LambdaConfig {
        &self.shared.config
    }

    fn arns(&self) -> &Arns {
        &self.shared.arns
    }

    fn host(&self) -> &dyn FunctionHost {
        self.shared.host.as_ref()
    }

    /// Runs a store call, off the async worker when the runtime has others.
    fn db<T>(&self, f: impl FnOnce(&Store) -> hoist_store::Result<T>) -> Result<T, AwsError> {
        let run = || f(&self.shared.store).map_err(errors::from_store);
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(run),
            _ => run(),
        }
    }

    /// Serialises control-plane calls on one function.
    async fn lock(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.shared.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(name.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    fn not_found(&self, name: &str, qualifier: Option<&str>) -> AwsError {
        let arn = match qualifier {
            Some(q) => self.arns().qualified(name, q),
            None => self.arns().function(name),
        };
        errors::not_found(format!("Function not found: {arn}"))
    }

    async fn recover(&self) {
        let functions = match self.db(|s| s.read(|tx| tx.functions(None, usize::MAX))) {
            Ok(functions) => functions,
            Err(e) => {
                tracing::error!(error = %e, "could not list the stored functions to deploy them");
                return;
            }
        };
        for function in functions {
            let versions = self
                .db(|s| s.read(|tx| tx.versions(&function.name)))
                .unwrap_or_default();
            if let Err(e) = self
                .host()
                .set_reserved_concurrency(&function.name, function.reserved_concurrency)
                .await
            {
                tracing::warn!(function = %function.name, error = %e, "could not restore the reserved concurrency");
            }
            for version in versions {
                if version.state != State::Failed {
                    let _ = self.deploy_version(version).await;
                }
            }
            if function.state != State::Failed
                || function.last_update_status == UpdateStatus::InProgress
            {
                let revision = function.revision_id.clone();
                self.deploy_latest(&function.name, &revision).await;
            }
        }
    }

    /// The host's deployment, within the configured deadline.
    async fn deploy(&self, deployment: Deployment) -> Result<(), AwsError> {
        let limit = self.config().deploy_timeout;
        let what = format!("{}:{}", deployment.function, deployment.version);
        tokio::time::timeout(limit, self.host().deploy(deployment))
            .await
            .unwrap_or_else(|_| {
                Err(errors::service(format!(
                    "the function host did not finish deploying {what} within {} s",
                    limit.as_secs_f64()
                )))
            })
    }

    /// Deploys `$LATEST` of `name` as of `revision`, then records `Active`/`Successful` or
    /// `Failed`; a function deleted or changed meanwhile is left to its newer state.
    async fn deploy_latest(&self, name: &str, revision: &str) {
        // One deployment of a function's $LATEST at a time, each checked against the newest
        // revision under this lock: the host never ends up with an older revision deployed
        // after a newer one. (Function names hold no `:`, so these keys are their own.)
        let _deploying = self.lock(&format!("deploy:{name}")).await;
        let Ok(Some(function)) = self.db(|s| s.read(|tx| tx.function(name))) else {
            return;
        };
        if function.revision_id != revision {
            return;
        }
        let deployment = document::deployment(
            self,
            name,
            "$LATEST",
            &function.configuration,
            function.code.as_ref(),
            function.reserved_concurrency,
        );
        let outcome = tokio::select! {
            outcome = self.deploy(deployment) => outcome,
            () = self.shared.cancel.cancelled() => return,
        };
        let _guard = self.lock(name).await;
        let result = self.db(|s| {
            s.write(|tx| {
                let Some(mut f) = tx.function(name)? else {
                    return Ok(false);
                };
                if f.revision_id != revision {
                    return Ok(true);
                }
                document::settle_latest(&mut f, outcome.as_ref().err());
                tx.update_function(&f)?;
                Ok(true)
            })
        });
        if let Ok(false) = result {
            // Deleted while it was being deployed: take the deployment down again.
            let _ = self.host().remove(name, None).await;
        }
    }

    /// Starts [`LambdaService::deploy_latest`] in the background, owned by the service.
    fn spawn_deploy(&self, name: String, revision: String) {
        let service = self.clone();
        self.shared.tracker.spawn(async move {
            service.deploy_latest(&name, &revision).await;
        });
    }

    /// Deploys a published version and records its state; returns it as recorded.
    async fn deploy_version(&self, version: VersionRecord) -> Result<VersionRecord, AwsError> {
        let deployment = document::deployment(
            self,
            &version.function,
            &version.version.to_string(),
            &version.configuration,
            version.code.as_ref(),
            None,
        );
        let outcome = self.deploy(deployment).await;
        let mut settled = version;
        document::settle_version(&mut settled, outcome.as_ref().err());
        self.db(|s| s.write(|tx| tx.update_version(&settled)))?;
        Ok(settled)
    }

    fn function_record(&self, name: &str) -> Result<FunctionRecord, AwsError> {
        self.db(|s| s.read(|tx| tx.function(name)))?
            .ok_or_else(|| self.not_found(name, None))
    }
}

/// Answers a request no served route took: an operation of the Lambda model hoist does not
/// serve gets 501 `InternalFailure` naming it, anything else `UnknownOperationException`.
async fn unserved(request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("");
    match model::operation_for(&method, &path, query) {
        Some(operation) => errors::not_implemented(operation).into_response(),
        None => errors::unknown_operation(&method, &path).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localstack_limits_are_read_from_variables() {
        let config = LambdaConfig::from_vars([
            ("LAMBDA_LIMITS_CODE_SIZE_ZIPPED", "1000"),
            ("LAMBDA_LIMITS_MAX_FUNCTION_ENVVAR_SIZE_BYTES", "8192"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("UNRELATED", "x"),
        ])
        .unwrap();
        assert_eq!(config.limits.code_size_zipped, 1000);
        assert_eq!(config.limits.env_size, 8192);
        assert_eq!(config.limits.code_size_unzipped, 262_144_000);
        assert_eq!(config.region, "eu-west-1");
        let err =
            LambdaConfig::from_vars([("LAMBDA_LIMITS_CONCURRENT_EXECUTIONS", "many")]).unwrap_err();
        assert_eq!(
            err.context_value("field"),
            Some("LAMBDA_LIMITS_CONCURRENT_EXECUTIONS")
        );
    }
}
