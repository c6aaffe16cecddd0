//! [`FunctionExecutor`]: the registry, the warm pool and the Runtime API wired onto one
//! hoist [`Executor`], with the invoke path between them.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hoist_core::scheduler::EnvironmentId;
use hoist_core::{Containerizer, Error, ErrorKind, Executor};
use hoist_runtimes::function::FunctionSpec;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::FunctionsConfig;
use crate::launcher::{ExecutorLauncher, Readiness, SpecFn};
use crate::pool::{FunctionKey, FunctionLimits, WarmPool};
use crate::registry::{FunctionVersion, Registry};
use crate::runtime_api::RuntimeApi;

mod contract;
mod endpoints;
mod environment;
mod events;
mod invoke;
mod logs;
mod recovery;

pub use recovery::{EnvironmentRecovery, RecoveredEnvironments};

use endpoints::EndpointLauncher;
use environment::{code_dir, unknown_runtime};
use events::Background;

/// How long the shutdown waits for the executor's own background work (the exit watcher,
/// container removals) once the environments are stopped.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

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
    /// The exit watcher and container removals.
    tasks: TaskTracker,
    /// Ends the exit watcher at the shutdown.
    cancel: CancellationToken,
}

impl std::fmt::Debug for FunctionExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionExecutor")
            .field("pool", &self.pool)
            .field("functions", &self.shared.registry.list().len())
            .finish_non_exhaustive()
    }
}

impl FunctionExecutor {
    /// Starts a function executor on `containerizer` (inside a tokio runtime).
    pub fn start(
        containerizer: Arc<dyn Containerizer>,
        config: FunctionsConfig,
    ) -> hoist_core::Result<Self> {
        Self::start_with(containerizer, config, RuntimeApi::new())
    }

    /// Starts a function executor whose environments' Runtime API ports `relay` holds, so
    /// that they outlive this process: [`FunctionExecutor::detach`] lets them go, and the next
    /// executor on the same backend state and relay takes them over with
    /// [`FunctionExecutor::recover_environments`]. Each request of a runtime then takes one
    /// more local hop (through the relay).
    pub fn start_relayed(
        containerizer: Arc<dyn Containerizer>,
        config: FunctionsConfig,
        relay: Arc<crate::relay::RelayClient>,
    ) -> hoist_core::Result<Self> {
        Self::start_with(containerizer, config, RuntimeApi::relayed(relay)?)
    }

    fn start_with(
        containerizer: Arc<dyn Containerizer>,
        config: FunctionsConfig,
        runtime_api: RuntimeApi,
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
            runtime_api,
            memory_limits,
            contract_addresses: std::sync::Mutex::default(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        // The spec function runs inside `EnvironmentLauncher::start`, which is async; it only
        // needs the endpoint address, which `prepare` below opened already.
        let addresses: Attachments = Arc::default();
        let specs: SpecFn = {
            let (shared, addresses) = (shared.clone(), addresses.clone());
            Arc::new(move |environment: &EnvironmentId, key: &FunctionKey| {
                let version = shared
                    .registry
                    .version(key.function(), key.version())
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
        let (tasks, cancel) = (TaskTracker::new(), CancellationToken::new());
        let (launcher, mut exits) = ExecutorLauncher::new(
            executor.clone(),
            statuses,
            Readiness::Signalled,
            specs,
            &tasks,
            &cancel,
        );
        let launcher = EndpointLauncher {
            inner: launcher,
            shared: shared.clone(),
            addresses,
        };
        let events = Background::new(shared.config.events);
        let pool = WarmPool::new(shared.config.pool.clone(), Arc::new(launcher));
        let (watcher, api, stop) = (pool.clone(), shared.clone(), cancel.clone());
        tasks.spawn(async move {
            loop {
                let exit = tokio::select! {
                    exit = exits.recv() => exit,
                    () = stop.cancelled() => None,
                };
                let Some(exit) = exit else { break };
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
            tasks,
            cancel,
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

    /// Keeps `spec` invocable as a version of its own (a published version), beside the
    /// current one and without replacing it: invoke it with its number as the qualifier. It
    /// shares the function's limits (one reservation for every version, as on AWS).
    pub fn retain(&self, spec: FunctionSpec) -> hoist_core::Result<Arc<FunctionVersion>> {
        spec.validate()?;
        self.check_runtime(&spec)?;
        self.apply_limits(&spec)?;
        self.shared.registry.retain(spec)
    }

    /// Forgets a retained version; its idle environments stop.
    pub fn release_version(&self, name: &str, version: u64) {
        if let Some(released) = self.shared.registry.release(name, version) {
            self.pool.retire(&released.key());
        }
    }

    /// Removes a function and its retained versions; its idle environments stop.
    pub fn delete(&self, name: &str) -> hoist_core::Result<Arc<FunctionVersion>> {
        let version = self.shared.registry.delete(name)?;
        self.pool.remove_function(name);
        Ok(version)
    }

    /// How many accepted `Event` invocations are waiting or running.
    pub fn queued_events(&self) -> usize {
        self.events.queued()
    }

    /// Refuses new `Event` invocations, lets the queued ones finish within
    /// [`EventQueueConfig::drain`](crate::config::EventQueueConfig::drain) (dropping the rest,
    /// each with a warning), then stops every environment and the executor, and awaits the
    /// executor's own background work and the Runtime API endpoints (each within a deadline).
    pub async fn shutdown(&self) {
        self.events.shutdown().await;
        self.pool.shutdown().await;
        self.executor.shutdown(Some(Duration::from_secs(5))).await;
        self.cancel.cancel();
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_DEADLINE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = self.tasks.len(),
                "the function executor's background work did not end within {SHUTDOWN_DEADLINE:?}"
            );
        }
        self.shared.runtime_api.shutdown().await;
        if let Some(relay) = self.shared.runtime_api.relay() {
            relay.shutdown().await;
        }
    }
}
