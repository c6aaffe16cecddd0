//! The environments of functions: the task each one runs (command, code, the environment
//! AWS gives a function) and where it reaches its Runtime API endpoint.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use hoist_core::scheduler::EnvironmentId;
use hoist_core::{ContainerSpec, Error, ErrorKind, NetworkMode, TaskSpec, Volume};
use hoist_runtimes::function::FunctionSpec;

use crate::config::RuntimeCommand;
use crate::registry::FunctionVersion;

use super::{Attachment, Shared};

pub(super) fn substitute(arg: &str, spec: &FunctionSpec, code: &Path) -> String {
    arg.replace("{handler}", &spec.handler)
        .replace("{code}", &code.to_string_lossy())
}

/// The directory the function's code is served from; the executor does not provision sources.
pub(super) fn code_dir(spec: &FunctionSpec) -> hoist_core::Result<&Path> {
    spec.code.directory().ok_or_else(|| {
        Error::invalid_field(
            "code",
            "must be a directory for the function executor (unpack a source into one first)",
        )
        .with_context("function", &spec.name)
    })
}

impl Shared {
    pub(super) fn function_arn(&self, name: &str) -> String {
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
    pub(super) fn own_network(&self, runtime: &RuntimeCommand) -> bool {
        runtime.image.is_some() && self.config.runtime_api_host.is_some()
    }

    /// Where the Runtime API endpoints listen: `runtime_api_bind`, else loopback, or every
    /// interface when environments reach the executor through `runtime_api_host`.
    pub(super) fn runtime_api_bind(&self) -> IpAddr {
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
    pub(super) fn task_spec(
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
            container
                .volumes
                .extend(self.config.volumes.iter().cloned());
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
        set("AWS_LAMBDA_LOG_STREAM_NAME", log_stream_name("$LATEST"));
        set("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into());
        set("AWS_REGION", self.region().to_owned());
        set("AWS_DEFAULT_REGION", self.region().to_owned());
        set("LAMBDA_TASK_ROOT", code.to_string_lossy().into_owned());
        // Where AWS's runtimes live; hoist's runtimes are wherever the mapping says.
        set("LAMBDA_RUNTIME_DIR", "/var/runtime".into());
        set("LANG", "en_US.UTF-8".into());
        set("TZ", ":UTC".into());
        if !spec.runtime.starts_with("provided") {
            set("AWS_EXECUTION_ENV", format!("AWS_Lambda_{}", spec.runtime));
        }
        let credentials = &self.config.credentials;
        set("AWS_ACCESS_KEY_ID", credentials.access_key_id.clone());
        set(
            "AWS_SECRET_ACCESS_KEY",
            credentials.secret_access_key.clone(),
        );
        if !credentials.session_token.is_empty() {
            set("AWS_SESSION_TOKEN", credentials.session_token.clone());
        }
        if let Some(url) = &self.config.endpoint_url {
            set("AWS_ENDPOINT_URL", url.clone());
        }
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
        // Environments are Lambda's, unless the function says otherwise: the Kubernetes
        // backend picks a pod profile by it.
        container
            .labels
            .entry(hoist_core::labels::SERVICE.into())
            .or_insert_with(|| "lambda".into());
        Ok(TaskSpec::new(environment.0.clone(), container))
    }
}

/// A log stream name as Lambda gives one to each environment:
/// `YYYY/MM/DD/[<version>]<32 hex>`.
pub(super) fn log_stream_name(version: &str) -> String {
    let today = crate::invoke::rfc3339(std::time::SystemTime::now());
    let date = today.get(..10).unwrap_or_default().replace('-', "/");
    format!("{date}/[{version}]{}", crate::invoke::new_hex(32))
}

pub(super) fn unknown_runtime(runtime: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("`runtime` `{runtime}` is not in the runtime mapping"),
    )
    .with_context("field", "runtime")
}
