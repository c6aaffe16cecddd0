//! [`FunctionExecutor`]: the registry, the warm pool and the Runtime API wired onto one
//! hoist [`Executor`], with the invoke path between them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hoist_core::scheduler::{
    EnvironmentId, PlacementRequest, Rejection, ReleaseOutcome, Scheduler,
};
use hoist_core::{
    ContainerSpec, Containerizer, Error, ErrorKind, Executor, NetworkMode, TaskSpec, Volume,
};
use serde_json::json;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::{FunctionsConfig, RuntimeCommand, RuntimeProtocol};

mod contract;
mod endpoints;
mod events;
mod logs;

use crate::invoke::{
    Completion, Invocation, InvocationType, InvokeError, InvokeResponse, MAX_EVENT_PAYLOAD,
    MAX_SYNC_PAYLOAD, new_request_id,
};
use crate::launcher::{ExecutorLauncher, Readiness, SpecFn};
use crate::pool::{FunctionLimits, WarmPool};
use crate::registry::{FunctionVersion, Registry};
use crate::runtime_api::{RuntimeApi, RuntimeInvocation, RuntimeReply};
use endpoints::EndpointLauncher;
use events::Background;
use hoist_runtimes::function::FunctionSpec;

struct Shared {
    config: FunctionsConfig,
    registry: Registry,
    runtime_api: RuntimeApi,
    /// Whether the backend can enforce memory limits (the process backend cannot).
    memory_limits: bool,
    /// Where each ready contract environment serves (`FUNC_PORT` on its address).
    contract_addresses: std::sync::Mutex<HashMap<EnvironmentId, SocketAddr>>,
    /// The client that calls contract runtimes.
    client: Client<HttpConnector, Full<Bytes>>,
}

/// How a new environment is reached: a Runtime API endpoint or a contract port.
#[derive(Debug, Clone, Copy)]
enum Attachment {
    Api(SocketAddr),
    Contract(u16),
}

type Attachments = Arc<std::sync::Mutex<BTreeMap<EnvironmentId, Attachment>>>;

/// The function executor: a registry of functions whose invocations run in warm
/// environments on a containerizer.
///
/// ```no_run
/// # async fn run(containerizer: std::sync::Arc<dyn hoist_core::Containerizer>) -> hoist_core::Result<()> {
/// use hoist_functions::{FunctionExecutor, FunctionSpec, Invocation};
/// use hoist_functions::config::{FunctionsConfig, RuntimeCommand};
///
/// let mut config = FunctionsConfig::default();
/// config.runtimes.insert(
///     "python3".into(),
///     RuntimeCommand::lambda(["python3", "-m", "awslambdaric", "{handler}"]),
/// );
/// let functions = FunctionExecutor::start(containerizer, config)?;
/// functions.create(FunctionSpec::new("hello", "python3", "app.handler", "/srv/hello"))?;
/// let response = functions.invoke("hello", Invocation::new(r#"{"name":"world"}"#)).await.unwrap();
/// println!("{}", String::from_utf8_lossy(&response.payload));
/// functions.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FunctionExecutor {
    shared: Arc<Shared>,
    pool: WarmPool,
    executor: Executor,
    events: Background,
}

impl std::fmt::Debug for FunctionExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionExecutor")
            .field("pool", &self.pool)
            .field("functions", &self.shared.registry.list().len())
            .finish_non_exhaustive()
    }
}

fn substitute(arg: &str, spec: &FunctionSpec, code: &Path) -> String {
    arg.replace("{handler}", &spec.handler)
        .replace("{code}", &code.to_string_lossy())
}

/// The directory the function's code is served from; the executor does not provision sources.
fn code_dir(spec: &FunctionSpec) -> hoist_core::Result<&Path> {
    spec.code.directory().ok_or_else(|| {
        Error::invalid_field(
            "code",
            "must be a directory for the function executor (unpack a source into one first)",
        )
        .with_context("function", &spec.name)
    })
}

impl Shared {
    fn function_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:000000000000:function:{name}",
            self.region()
        )
    }

    fn region(&self) -> &str {
        if self.config.region.is_empty() {
            "us-east-1"
        } else {
            &self.config.region
        }
    }

    /// Whether environments of `runtime` have a network of their own: containers, when the
    /// executor is reachable at `runtime_api_host`. Otherwise they share the host's.
    fn own_network(&self, runtime: &RuntimeCommand) -> bool {
        runtime.image.is_some() && self.config.runtime_api_host.is_some()
    }

    /// Where the Runtime API endpoints listen: `runtime_api_bind`, else loopback, or every
    /// interface when environments reach the executor through `runtime_api_host`.
    fn runtime_api_bind(&self) -> IpAddr {
        match (self.config.runtime_api_bind, &self.config.runtime_api_host) {
            (Some(bind), _) => bind,
            (None, Some(_)) => Ipv4Addr::UNSPECIFIED.into(),
            (None, None) => Ipv4Addr::LOCALHOST.into(),
        }
    }

    /// The `AWS_LAMBDA_RUNTIME_API` value for an endpoint listening on `listening`.
    fn runtime_api_address(&self, listening: SocketAddr) -> String {
        match self.config.runtime_api_host.as_deref() {
            // Listening everywhere with no host named: the environments share the host.
            None if listening.ip().is_unspecified() => {
                SocketAddr::from((Ipv4Addr::LOCALHOST, listening.port())).to_string()
            }
            None => listening.to_string(),
            Some(host) if host.parse::<Ipv6Addr>().is_ok() => {
                format!("[{host}]:{}", listening.port())
            }
            Some(host) => format!("{host}:{}", listening.port()),
        }
    }

    /// The task of one environment of `version`, talking to the Runtime API at `api`.
    fn task_spec(
        &self,
        environment: &EnvironmentId,
        version: &FunctionVersion,
        attachment: Attachment,
    ) -> hoist_core::Result<TaskSpec> {
        let spec = &version.spec;
        let code = code_dir(spec)?.to_path_buf();
        let runtime = self
            .config
            .runtimes
            .get(&spec.runtime)
            .ok_or_else(|| unknown_runtime(&spec.runtime))?;
        let mut container = ContainerSpec {
            image: runtime.image.clone(),
            command: runtime
                .command
                .iter()
                .map(|a| substitute(a, spec, &code))
                .collect(),
            working_dir: Some(code.clone()),
            dns: self.config.dns.clone(),
            ..ContainerSpec::default()
        };
        if runtime.image.is_some() {
            // A container reaches the executor's loopback endpoints only on the host's
            // network (with no `runtime_api_host`), and finds the code at the same path as the
            // host.
            if !self.own_network(runtime) {
                container.network = Some(NetworkMode::Host);
            }
            container.volumes.push(Volume {
                host_path: code.clone(),
                container_path: code.clone(),
                read_only: true,
            });
            container.volumes.extend(runtime.volumes.iter().cloned());
        }
        if self.memory_limits {
            container.resources.memory = Some(spec.memory_bytes());
        }
        let env = &mut container.env;
        let mut set = |k: &str, v: String| {
            env.insert(k.to_owned(), v);
        };
        match attachment {
            Attachment::Api(api) => set("AWS_LAMBDA_RUNTIME_API", self.runtime_api_address(api)),
            Attachment::Contract(port) => {
                let (module, function) =
                    spec.handler.rsplit_once('.').unwrap_or(("", &spec.handler));
                set("FUNC_PORT", port.to_string());
                set("MOD_NAME", module.to_owned());
                set("FUNC_HANDLER", function.to_owned());
                set("FUNC_TIMEOUT", spec.timeout.as_secs().to_string());
                set("FUNC_RUNTIME", spec.runtime.clone());
                set("FUNC_MEMORY_LIMIT", spec.memory_bytes().to_string());
            }
        }
        set("_HANDLER", spec.handler.clone());
        set("AWS_LAMBDA_FUNCTION_NAME", spec.name.clone());
        set("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into());
        set("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", spec.memory.to_string());
        set(
            "AWS_LAMBDA_FUNCTION_TIMEOUT",
            spec.timeout.as_secs().to_string(),
        );
        set(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", spec.name),
        );
        set("AWS_LAMBDA_LOG_STREAM_NAME", environment.0.clone());
        set("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into());
        set("AWS_REGION", self.region().to_owned());
        set("AWS_DEFAULT_REGION", self.region().to_owned());
        set("LAMBDA_TASK_ROOT", code.to_string_lossy().into_owned());
        set("TZ", ":UTC".into());
        if spec.per_environment_concurrency > 1 {
            set(
                "AWS_LAMBDA_MAX_CONCURRENCY",
                spec.per_environment_concurrency.to_string(),
            );
        }
        for (k, v) in &spec.env {
            env.insert(k.clone(), v.clone());
        }
        container.labels = self.config.labels.clone();
        container.labels.extend(spec.labels.clone());
        container
            .labels
            .insert(hoist_core::labels::FUNCTION.into(), spec.name.clone());
        Ok(TaskSpec::new(environment.0.clone(), container))
    }
}

fn unknown_runtime(runtime: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("`runtime` `{runtime}` is not in the runtime mapping"),
    )
    .with_context("field", "runtime")
}

fn error_document(error_type: &str, message: String) -> bytes::Bytes {
    bytes::Bytes::from(json!({ "errorType": error_type, "errorMessage": message }).to_string())
}

impl FunctionExecutor {
    /// Starts a function executor on `containerizer` (inside a tokio runtime).
    pub fn start(
        containerizer: Arc<dyn Containerizer>,
        config: FunctionsConfig,
    ) -> hoist_core::Result<Self> {
        if !config.dns.is_empty() && !containerizer.capabilities().dns {
            return Err(
                Error::unsupported(containerizer.name(), "DNS servers for environments")
                    .with_context("field", "LAMBDA_DOCKER_DNS"),
            );
        }
        let memory_limits =
            containerizer.capabilities().memory_limit == hoist_core::capabilities::Limit::Enforced;
        let executor = Executor::builder(containerizer)
            .executor_id("hoist-functions")
            .build()?;
        let statuses = executor.statuses();
        let shared = Arc::new(Shared {
            config,
            registry: Registry::new(),
            runtime_api: RuntimeApi::new(),
            memory_limits,
            contract_addresses: std::sync::Mutex::default(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        // The spec function runs inside `EnvironmentLauncher::start`, which is async; it only
        // needs the endpoint address, which `prepare` below opened already.
        let addresses: Attachments = Arc::default();
        let specs: SpecFn = {
            let (shared, addresses) = (shared.clone(), addresses.clone());
            Arc::new(move |environment: &EnvironmentId, key: &str| {
                let name = crate::pool::function_of(key);
                let version = shared
                    .registry
                    .get(name)
                    .filter(|v| v.key() == key)
                    .ok_or_else(|| Error::not_found("function version", key))?;
                let attachment = addresses
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(environment)
                    .ok_or_else(|| {
                        Error::new(ErrorKind::InvalidState, "no runtime endpoint was prepared")
                            .with_context("environment", environment)
                    })?;
                shared.task_spec(environment, &version, attachment)
            })
        };
        let (launcher, mut exits) =
            ExecutorLauncher::new(executor.clone(), statuses, Readiness::Signalled, specs);
        let launcher = EndpointLauncher {
            inner: launcher,
            shared: shared.clone(),
            addresses,
        };
        let events = Background::new(shared.config.events);
        let pool = WarmPool::new(shared.config.pool.clone(), Arc::new(launcher));
        let (watcher, api) = (pool.clone(), shared.clone());
        tokio::spawn(async move {
            while let Some(exit) = exits.recv().await {
                watcher.environment_exited(&exit.environment, &exit.reason);
                api.forget_contract(&exit.environment);
                api.runtime_api.close(&exit.environment, &exit.reason).await;
            }
        });
        Ok(FunctionExecutor {
            shared,
            pool,
            executor,
            events,
        })
    }

    /// The warm pool.
    pub fn pool(&self) -> &WarmPool {
        &self.pool
    }

    /// The registry (read it; change functions through [`FunctionExecutor::create`] and
    /// friends, which also update the pool).
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// The configuration.
    pub fn config(&self) -> &FunctionsConfig {
        &self.shared.config
    }

    fn check_runtime(&self, spec: &FunctionSpec) -> hoist_core::Result<()> {
        code_dir(spec)?;
        if self.shared.config.runtimes.contains_key(&spec.runtime) {
            Ok(())
        } else {
            Err(unknown_runtime(&spec.runtime))
        }
    }

    fn apply_limits(&self, spec: &FunctionSpec) -> hoist_core::Result<()> {
        self.pool.set_limits(
            &spec.name,
            FunctionLimits {
                reserved: spec.reserved_concurrency,
                per_environment: spec.per_environment_concurrency,
            },
        )
    }

    fn prewarm(&self, version: &FunctionVersion) {
        let count = self
            .shared
            .config
            .prewarm
            .get(&version.spec.runtime)
            .copied()
            .unwrap_or(0);
        if count > 0 {
            let (pool, key) = (self.pool.clone(), version.key());
            let function = key.clone();
            self.events.spawn(
                async move {
                    if let Err(e) = pool.prewarm(&key, count).await {
                        tracing::warn!(function = %key, error = %e, "prewarming failed");
                    }
                },
                move || tracing::warn!(%function, "prewarming was cut short by the shutdown"),
            );
        }
    }

    /// Registers a function.
    pub fn create(&self, spec: FunctionSpec) -> hoist_core::Result<Arc<FunctionVersion>> {
        spec.validate()?;
        self.check_runtime(&spec)?;
        self.apply_limits(&spec)?;
        let version = self.shared.registry.create(spec)?;
        self.prewarm(&version);
        Ok(version)
    }

    /// Replaces a function with a new version; idle environments of the old one stop.
    pub fn update(&self, spec: FunctionSpec) -> hoist_core::Result<Arc<FunctionVersion>> {
        spec.validate()?;
        self.check_runtime(&spec)?;
        let old = self
            .shared
            .registry
            .get(&spec.name)
            .ok_or_else(|| Error::not_found("function", &spec.name).with_operation("update"))?;
        self.apply_limits(&spec)?;
        let version = self.shared.registry.update(spec)?;
        self.pool.retire(&old.key());
        self.prewarm(&version);
        Ok(version)
    }

    /// Removes a function; its idle environments stop.
    pub fn delete(&self, name: &str) -> hoist_core::Result<Arc<FunctionVersion>> {
        let version = self.shared.registry.delete(name)?;
        self.pool.remove_function(name);
        Ok(version)
    }

    /// Invokes `name`.
    pub async fn invoke(
        &self,
        name: &str,
        invocation: Invocation,
    ) -> Result<InvokeResponse, InvokeError> {
        let not_found = || InvokeError::NotFound {
            function: match &invocation.qualifier {
                Some(q) => format!("{}:{name}:{q}", self.shared.function_arn(name)),
                None => self.shared.function_arn(name),
            },
        };
        let version = self.shared.registry.get(name).ok_or_else(not_found)?;
        if let Some(q) = invocation.qualifier.as_deref()
            && q != "$LATEST"
            && q != version.version.to_string()
        {
            return Err(not_found());
        }
        let limit = if invocation.kind == InvocationType::Event {
            MAX_EVENT_PAYLOAD
        } else {
            MAX_SYNC_PAYLOAD
        };
        if invocation.payload.len() > limit {
            return Err(InvokeError::PayloadTooLarge {
                size: invocation.payload.len(),
                limit,
            });
        }
        let request_id = invocation.request_id.clone().unwrap_or_else(new_request_id);
        let response = |completion, payload, function_error, cold_start| InvokeResponse {
            request_id: request_id.clone(),
            version: version.version,
            completion,
            payload,
            function_error,
            cold_start,
            log: None,
        };
        match invocation.kind {
            InvocationType::DryRun => Ok(response(
                Completion::Checked,
                bytes::Bytes::new(),
                None,
                false,
            )),
            InvocationType::Event => {
                let slot = self.events.admit(self.shared.config.pool.retry_after)?;
                let this = self.clone();
                let (version, request_id) = (version.clone(), request_id.clone());
                let dropped = request_id.clone();
                self.events.spawn(
                    async move {
                        let _slot = slot;
                        match this.run(&version, request_id.clone(), invocation).await {
                            Ok(r) if r.function_error.is_some() => {
                                tracing::warn!(%request_id, payload = %String::from_utf8_lossy(&r.payload), "asynchronous invocation failed");
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!(%request_id, error = %e, "asynchronous invocation was not run"),
                        }
                    },
                    move || {
                        tracing::warn!(request_id = %dropped, "asynchronous invocation dropped: the executor shut down before it finished");
                    },
                );
                Ok(response(
                    Completion::Accepted,
                    bytes::Bytes::new(),
                    None,
                    false,
                ))
            }
            InvocationType::RequestResponse => self.run(&version, request_id, invocation).await,
        }
    }

    /// Runs one invocation on a leased environment.
    async fn run(
        &self,
        version: &FunctionVersion,
        request_id: String,
        invocation: Invocation,
    ) -> Result<InvokeResponse, InvokeError> {
        let spec = &version.spec;
        let done = |payload, function_error: Option<&str>, cold_start| InvokeResponse {
            request_id: request_id.clone(),
            version: version.version,
            completion: Completion::Done,
            payload,
            function_error: function_error.map(str::to_owned),
            cold_start,
            log: None,
        };
        let lease = match self
            .pool
            .acquire(&PlacementRequest::new(version.key()))
            .await
        {
            Ok(lease) => lease,
            Err(Rejection::Throttled {
                reason,
                retry_after,
            }) => {
                return Err(InvokeError::Throttled {
                    reason,
                    retry_after,
                });
            }
            Err(Rejection::QueueTimeout { waited }) => {
                return Err(InvokeError::Throttled {
                    reason: crate::pool::CONCURRENT_LIMIT_EXCEEDED.to_owned(),
                    retry_after: waited.max(Duration::from_secs(1)),
                });
            }
            Err(Rejection::Failed(e))
                if e.kind() == ErrorKind::InvalidState || e.kind() == ErrorKind::Cancelled =>
            {
                return Err(InvokeError::Service(e));
            }
            Err(Rejection::Failed(e)) => {
                let error_type = if e.kind() == ErrorKind::Timeout {
                    "Runtime.StartupTimeout"
                } else {
                    "Runtime.InitError"
                };
                let body =
                    error_document(error_type, format!("RequestId: {request_id} Error: {e}"));
                return Ok(done(body, Some("Unhandled"), true));
            }
            Err(other) => {
                return Err(InvokeError::Service(Error::new(
                    ErrorKind::Backend,
                    other.to_string(),
                )));
            }
        };
        let cold = lease.cold_start;
        let environment = lease.environment.clone();
        // The log mark is read before the deadline is set: the function keeps its whole timeout.
        let log_mark = if invocation.tail_log && invocation.kind == InvocationType::RequestResponse
        {
            let container = logs::container_of(&self.executor, &environment);
            Some(logs::mark(self.executor.containerizer().as_ref(), container).await)
        } else {
            None
        };
        let runtime_invocation = RuntimeInvocation {
            request_id: request_id.clone(),
            payload: invocation.payload.clone(),
            deadline: SystemTime::now() + spec.timeout,
            function_arn: self.shared.function_arn(&spec.name),
            client_context: invocation.client_context.clone(),
        };
        let started = std::time::Instant::now();
        let answer = match self.shared.protocol(spec) {
            RuntimeProtocol::LambdaRuntimeApi => {
                let call = self
                    .shared
                    .runtime_api
                    .invoke(&environment, runtime_invocation);
                tokio::time::timeout(spec.timeout, call).await
            }
            RuntimeProtocol::Contract => {
                let call =
                    self.shared
                        .invoke_contract(&environment, &runtime_invocation, &invocation);
                tokio::time::timeout(spec.timeout, call).await
            }
        };
        let timed_out = format!(
            "Task timed out after {:.2} seconds",
            spec.timeout.as_secs_f64()
        );
        let log = match log_mark {
            Some(mark) => {
                let framing = logs::Framing {
                    request_id: &request_id,
                    version: "$LATEST",
                    duration: started.elapsed(),
                    memory_mb: spec.memory,
                    note: answer.is_err().then(|| format!("{request_id} {timed_out}")),
                };
                let mark = mark.or_container(logs::container_of(&self.executor, &environment));
                Some(logs::tail(self.executor.containerizer().as_ref(), &mark, framing).await)
            }
            None => None,
        };
        let mut response = match answer {
            Ok(Ok(RuntimeReply::Response(body))) => {
                self.pool.release(lease, ReleaseOutcome::Reusable).await;
                done(body, None, cold)
            }
            Ok(Ok(RuntimeReply::Error { body, .. })) => {
                self.pool.release(lease, ReleaseOutcome::Reusable).await;
                done(body, Some("Unhandled"), cold)
            }
            Ok(Err(reason)) => {
                self.pool
                    .release(lease, ReleaseOutcome::Broken(reason.clone()))
                    .await;
                let body = error_document(
                    "Runtime.ExitError",
                    format!("RequestId: {request_id} Error: Runtime exited: {reason}"),
                );
                done(body, Some("Unhandled"), cold)
            }
            Err(_) => {
                let seconds = spec.timeout.as_secs_f64();
                self.pool
                    .release(
                        lease,
                        ReleaseOutcome::Broken(format!("timed out after {seconds:.2} seconds")),
                    )
                    .await;
                let body = error_document(
                    "Sandbox.Timedout",
                    format!("RequestId: {request_id} Error: {timed_out}"),
                );
                done(body, Some("Unhandled"), cold)
            }
        };
        response.log = log;
        Ok(response)
    }

    /// How many accepted `Event` invocations are waiting or running.
    pub fn queued_events(&self) -> usize {
        self.events.queued()
    }

    /// Refuses new `Event` invocations, lets the queued ones finish within
    /// [`EventQueueConfig::drain`](crate::config::EventQueueConfig::drain) (dropping the rest,
    /// each with a warning), then stops every environment and the executor.
    pub async fn shutdown(&self) {
        self.events.shutdown().await;
        self.pool.shutdown().await;
        self.executor.shutdown(Some(Duration::from_secs(5))).await;
    }
}
