//! Configuration of the pool and the function executor, mirroring LocalStack's variables
//! (`LAMBDA_KEEPALIVE_MS`, `LAMBDA_LIMITS_CONCURRENT_EXECUTIONS`,
//! `LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT`, `LAMBDA_RUNTIME_IMAGE_MAPPING`, `LAMBDA_K8S_LABELS`,
//! `LAMBDA_DOCKER_DNS`, `LAMBDA_DOCKER_FLAGS` (its volumes), `LAMBDA_RUNTIME_EXECUTOR`,
//! `HOSTNAME_FROM_LAMBDA`).
//! [`FunctionsConfig::from_vars`] reads them from a map the caller supplies; the library never
//! reads the process environment itself.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use hoist_core::{Error, ErrorKind};

/// A bounded queue for requests beyond the concurrency limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// How many requests may wait at once; more are throttled at once.
    pub capacity: usize,
    /// How long one request may wait before it fails with a queue timeout.
    pub deadline: Duration,
}

/// How the warm pool admits and places invocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// An environment idle this long stops (default 10 minutes; zero stops it at once).
    pub keepalive: Duration,
    /// The global limit on concurrent invocations (default 1000).
    pub concurrency_limit: usize,
    /// The deadline for a new environment to become ready (default 20 s).
    pub startup_timeout: Duration,
    /// How many environments may be starting at once (default 16).
    pub max_concurrent_starts: usize,
    /// Queue requests beyond the limits instead of throttling them at once (default: throttle).
    pub queue: Option<QueueConfig>,
    /// The retry-after a throttled caller is given (default 1 s).
    pub retry_after: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            keepalive: Duration::from_secs(600),
            concurrency_limit: 1000,
            startup_timeout: Duration::from_secs(20),
            max_concurrent_starts: 16,
            queue: None,
            retry_after: Duration::from_secs(1),
        }
    }
}

/// The queue of asynchronous (`Event`) invocations: accepted with 202, then run in the
/// background.
///
/// ```
/// use std::time::Duration;
/// use hoist_functions::config::{EventQueueConfig, FunctionsConfig};
///
/// let mut config = FunctionsConfig::default();
/// config.events = EventQueueConfig { capacity: 100, drain: Duration::from_secs(5) };
/// assert_eq!(EventQueueConfig::default().capacity, 1000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventQueueConfig {
    /// How many accepted `Event` invocations may be waiting or running at once (default
    /// 1000); beyond it an `Event` invocation is throttled (429 `TooManyRequestsException`,
    /// reason `FunctionInvocationRateLimitExceeded`).
    pub capacity: usize,
    /// How long [`shutdown`](crate::FunctionExecutor::shutdown) lets queued `Event`
    /// invocations finish (default 30 s); those still waiting or running then are dropped,
    /// each with a warning naming its request id.
    pub drain: Duration,
}

impl Default for EventQueueConfig {
    fn default() -> Self {
        EventQueueConfig {
            capacity: 1000,
            drain: Duration::from_secs(30),
        }
    }
}

/// The backend environments run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Local processes (the default).
    #[default]
    Process,
    /// Docker containers.
    Docker,
    /// Kubernetes pods.
    Kubernetes,
}

impl Backend {
    /// The backend's name as `LAMBDA_RUNTIME_EXECUTOR` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Process => "process",
            Backend::Docker => "docker",
            Backend::Kubernetes => "kubernetes",
        }
    }
}

/// How the executor talks to a runtime's environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeProtocol {
    /// The AWS Lambda Runtime API: the runtime polls `AWS_LAMBDA_RUNTIME_API` (awslambdaric,
    /// the `lambda_runtime` crate, any custom runtime).
    #[default]
    LambdaRuntimeApi,
    /// The Kubeless-style runtime contract: the runtime serves HTTP on `FUNC_PORT`, answers
    /// `GET /healthz`, and takes each event as a request with the event headers.
    Contract,
}

/// How one runtime is started: an image (for container backends), a command whose arguments
/// may hold `{handler}` and `{code}` (the function's code directory), and its protocol.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuntimeCommand {
    /// The image, for container backends.
    pub image: Option<String>,
    /// The argv; `{handler}` and `{code}` are replaced.
    pub command: Vec<String>,
    /// How the executor talks to it.
    pub protocol: RuntimeProtocol,
    /// Host paths mounted into its environments (container backends), for example a runtime's
    /// libraries.
    pub volumes: Vec<hoist_core::Volume>,
}

impl RuntimeCommand {
    /// A runtime on the Lambda Runtime API that runs `argv`.
    pub fn lambda<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        RuntimeCommand {
            image: None,
            command: argv.into_iter().map(Into::into).collect(),
            protocol: RuntimeProtocol::LambdaRuntimeApi,
            volumes: Vec::new(),
        }
    }

    /// A runtime on the runtime contract that runs `argv`.
    pub fn contract<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        RuntimeCommand {
            protocol: RuntimeProtocol::Contract,
            ..RuntimeCommand::lambda(argv)
        }
    }

    /// Runs in `image` (container backends); see [`RuntimeCommand::image`].
    pub fn in_image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }
}

/// The AWS credentials functions get in their environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), for their own calls back to the endpoint;
/// LocalStack's test values by default.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AWS_ACCESS_KEY_ID` (default `test`).
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY` (default `test`).
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN` (default `test`; empty leaves it unset).
    pub session_token: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials {
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
            session_token: "test".into(),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Everything the function executor is configured with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FunctionsConfig {
    /// The pool's limits and timers.
    pub pool: PoolConfig,
    /// The backend (`LAMBDA_RUNTIME_EXECUTOR`).
    pub backend: Backend,
    /// How each runtime starts (`LAMBDA_RUNTIME_IMAGE_MAPPING` gives the images).
    pub runtimes: BTreeMap<String, RuntimeCommand>,
    /// Labels put on every environment (`LAMBDA_K8S_LABELS`).
    pub labels: BTreeMap<String, String>,
    /// DNS servers of every environment (`LAMBDA_DOCKER_DNS`).
    pub dns: Vec<IpAddr>,
    /// Environments started ahead of demand, per runtime.
    pub prewarm: BTreeMap<String, usize>,
    /// The region in ARNs and functions' `AWS_REGION` (default `us-east-1`).
    pub region: String,
    /// The credentials functions get.
    pub credentials: Credentials,
    /// `AWS_ENDPOINT_URL` in functions' environment: the endpoint that serves them (`hoist
    /// serve` sets its own), so a function's AWS SDK calls come back to it, as on LocalStack.
    pub endpoint_url: Option<String>,
    /// The queue of `Event` invocations.
    pub events: EventQueueConfig,
    /// The host environments reach the executor's Runtime API endpoints at
    /// (`HOSTNAME_FROM_LAMBDA`): an IP address or a name they resolve, such as the executor's pod
    /// IP or a Service in front of it. Unset, the endpoints are on the executor's loopback and
    /// image environments share the host's network; set, each environment gets
    /// `AWS_LAMBDA_RUNTIME_API=<host>:<port>` and keeps its own network, as pods on other nodes
    /// need.
    pub runtime_api_host: Option<String>,
    /// The address the Runtime API endpoints listen on. Default: loopback, or every interface
    /// (`0.0.0.0`) when [`FunctionsConfig::runtime_api_host`] is set.
    pub runtime_api_bind: Option<IpAddr>,
    /// Host paths mounted into every environment of a runtime with an image
    /// (`LAMBDA_DOCKER_FLAGS`' `-v HOST:CONTAINER[:ro]`), beside each runtime's own volumes.
    pub volumes: Vec<hoist_core::Volume>,
}

/// The volumes of `LAMBDA_DOCKER_FLAGS` (`-v`/`--volume HOST:CONTAINER[:ro|:rw]`); any other
/// flag is refused, naming it.
fn docker_flags(var: &str, value: &str) -> hoist_core::Result<Vec<hoist_core::Volume>> {
    let mut volumes = Vec::new();
    let mut words = value.split_whitespace();
    while let Some(flag) = words.next() {
        let spec = match flag {
            "-v" | "--volume" => words
                .next()
                .ok_or_else(|| var_error(var, format!("has `{flag}` without a volume")))?,
            other => match other.strip_prefix("--volume=") {
                Some(spec) => spec,
                None => {
                    return Err(var_error(
                        var,
                        format!("has `{other}`: hoist supports only -v HOST:CONTAINER[:ro] there"),
                    ));
                }
            },
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, container, read_only) = match parts.as_slice() {
            [host, container] => (*host, *container, false),
            [host, container, "ro"] => (*host, *container, true),
            [host, container, "rw"] => (*host, *container, false),
            _ => {
                return Err(var_error(
                    var,
                    format!("has the volume `{spec}`, not HOST:CONTAINER[:ro|:rw]"),
                ));
            }
        };
        if !host.starts_with('/') || !container.starts_with('/') {
            return Err(var_error(
                var,
                format!("has the volume `{spec}`: both paths must be absolute"),
            ));
        }
        volumes.push(hoist_core::Volume {
            host_path: host.into(),
            container_path: container.into(),
            read_only,
        });
    }
    Ok(volumes)
}

fn var_error(var: &str, problem: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidInput, format!("`{var}` {problem}")).with_context("field", var)
}

fn parse_number<T: std::str::FromStr>(var: &str, value: &str) -> hoist_core::Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| var_error(var, format!("must be a whole number, not `{value}`")))
}

impl FunctionsConfig {
    /// Reads LocalStack's variables from `vars` (for example `std::env::vars()` in a binary);
    /// unknown variables are ignored, malformed ones are an error naming the variable.
    ///
    /// ```
    /// use std::time::Duration;
    /// use hoist_functions::config::FunctionsConfig;
    ///
    /// let config = FunctionsConfig::from_vars([
    ///     ("LAMBDA_KEEPALIVE_MS", "0"),
    ///     ("LAMBDA_K8S_LABELS", "team=web,tier=fn"),
    /// ]).unwrap();
    /// assert_eq!(config.pool.keepalive, Duration::ZERO);
    /// assert_eq!(config.labels["tier"], "fn");
    /// ```
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> hoist_core::Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut config = FunctionsConfig {
            region: "us-east-1".into(),
            ..FunctionsConfig::default()
        };
        for (key, value) in vars {
            let (key, value) = (key.as_ref(), value.as_ref());
            match key {
                "LAMBDA_KEEPALIVE_MS" => {
                    config.pool.keepalive = Duration::from_millis(parse_number(key, value)?);
                }
                "LAMBDA_LIMITS_CONCURRENT_EXECUTIONS" => {
                    config.pool.concurrency_limit = parse_number(key, value)?;
                }
                "LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT" => {
                    config.pool.startup_timeout = Duration::from_secs(parse_number(key, value)?);
                }
                "LAMBDA_RUNTIME_EXECUTOR" => {
                    config.backend = match value.trim() {
                        "" | "process" | "local" => Backend::Process,
                        "docker" => Backend::Docker,
                        "kubernetes" => Backend::Kubernetes,
                        other => {
                            return Err(var_error(
                                key,
                                format!("must be process, docker or kubernetes, not `{other}`"),
                            ));
                        }
                    }
                }
                "LAMBDA_RUNTIME_IMAGE_MAPPING" => {
                    let map: BTreeMap<String, String> =
                        serde_json::from_str(value).map_err(|e| {
                            var_error(
                                key,
                                format!("must be a JSON object of runtime to image: {e}"),
                            )
                        })?;
                    for (runtime, image) in map {
                        config.runtimes.entry(runtime).or_default().image = Some(image);
                    }
                }
                "LAMBDA_K8S_LABELS" | "LOCALSTACK_K8S_LABELS" => {
                    for pair in value.split(',').filter(|p| !p.trim().is_empty()) {
                        let (k, v) = pair.split_once('=').ok_or_else(|| {
                            var_error(key, format!("has `{pair}`, not `key=value`"))
                        })?;
                        config
                            .labels
                            .insert(k.trim().to_owned(), v.trim().to_owned());
                    }
                }
                "LAMBDA_DOCKER_FLAGS" => config.volumes = docker_flags(key, value)?,
                "LAMBDA_DOCKER_DNS" => {
                    for server in value.split(',').filter(|s| !s.trim().is_empty()) {
                        let ip = server.trim().parse().map_err(|_| {
                            var_error(key, format!("has `{server}`, not an IP address"))
                        })?;
                        config.dns.push(ip);
                    }
                }
                "HOSTNAME_FROM_LAMBDA" => {
                    let host = value.trim();
                    if host.is_empty() || host.contains(['/', ' ']) {
                        return Err(var_error(
                            key,
                            format!("must be a host name or IP address, not `{value}`"),
                        ));
                    }
                    config.runtime_api_host = Some(host.to_owned());
                }
                _ => {}
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_variables_are_named() {
        let err = FunctionsConfig::from_vars([("LAMBDA_KEEPALIVE_MS", "soon")]).unwrap_err();
        assert_eq!(err.context_value("field"), Some("LAMBDA_KEEPALIVE_MS"));
        let err = FunctionsConfig::from_vars([("LAMBDA_DOCKER_DNS", "8.8.8.8,nope")]).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let err = FunctionsConfig::from_vars([("LAMBDA_RUNTIME_EXECUTOR", "lxc")]).unwrap_err();
        assert!(err.to_string().contains("lxc"), "{err}");
        let err = FunctionsConfig::from_vars([("HOSTNAME_FROM_LAMBDA", "http://x/")]).unwrap_err();
        assert_eq!(err.context_value("field"), Some("HOSTNAME_FROM_LAMBDA"));
        let err =
            FunctionsConfig::from_vars([("LAMBDA_DOCKER_FLAGS", "--privileged")]).unwrap_err();
        assert!(err.to_string().contains("--privileged"), "{err}");
        let err = FunctionsConfig::from_vars([("LAMBDA_DOCKER_FLAGS", "-v rel:/x")]).unwrap_err();
        assert!(err.to_string().contains("absolute"), "{err}");
    }

    #[test]
    fn docker_flags_give_volumes() {
        let config = FunctionsConfig::from_vars([(
            "LAMBDA_DOCKER_FLAGS",
            "-v /opt/py:/opt/py:ro --volume=/data:/mnt/data",
        )])
        .unwrap();
        let volumes: Vec<_> = config
            .volumes
            .iter()
            .map(|v| {
                (
                    v.host_path.to_str().unwrap(),
                    v.container_path.to_str().unwrap(),
                    v.read_only,
                )
            })
            .collect();
        assert_eq!(
            volumes,
            [("/opt/py", "/opt/py", true), ("/data", "/mnt/data", false)]
        );
    }

    #[test]
    fn localstack_variables_map_onto_the_config() {
        let config = FunctionsConfig::from_vars([
            ("LAMBDA_LIMITS_CONCURRENT_EXECUTIONS", "50"),
            ("LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT", "5"),
            ("LAMBDA_RUNTIME_EXECUTOR", "docker"),
            (
                "LAMBDA_RUNTIME_IMAGE_MAPPING",
                r#"{"python3.12":"my/python:3.12"}"#,
            ),
            ("LAMBDA_DOCKER_DNS", "10.0.0.2"),
            ("HOSTNAME_FROM_LAMBDA", "hoist.functions.svc"),
        ])
        .unwrap();
        assert_eq!(config.pool.concurrency_limit, 50);
        assert_eq!(config.pool.startup_timeout, Duration::from_secs(5));
        assert_eq!(config.backend, Backend::Docker);
        assert_eq!(
            config.runtimes["python3.12"].image.as_deref(),
            Some("my/python:3.12")
        );
        assert_eq!(config.dns, vec!["10.0.0.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(config.pool.keepalive, Duration::from_secs(600));
        assert_eq!(
            config.runtime_api_host.as_deref(),
            Some("hoist.functions.svc")
        );
    }
}
