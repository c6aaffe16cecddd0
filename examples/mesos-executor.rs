//! A drop-in replacement for `mesos-docker-executor` (and for go-mesos-executor): install it
//! at the Docker executor's path and the agent runs it with the Docker executor's flags.
//!
//! - Reads `config.yaml` from `/etc/mesos-executor`, or from beside the binary, with
//!   go-mesos-executor's keys (`debug`, `hooks`, `proc_path`, `registering_retry`,
//!   `netns.path`, `acl.*`, `iptables.*`), plus `containerizer: docker | process`. Every key is
//!   validated at start-up; an error names the key.
//! - Accepts the flags the agent passes to the Docker executor. `--container`,
//!   `--docker_socket`, `--stop_timeout`, `--sandbox_directory`, `--mapped_directory` and
//!   `--task_environment` are used; the others are reported at start-up as not implemented.
//!   An unknown flag is an error.
//! - Reads the `MESOS_*` variables, subscribes to the agent and runs until SHUTDOWN.
//!
//! Exit codes: 0 after SHUTDOWN, 1 when the agent was lost, 2 on a configuration error.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hoist::mesos::{AgentEnv, DriverOptions, Exit, MesosDriver};
use hoist::{Containerizer, Executor, Hook};
use serde::Deserialize;

/// go-mesos-executor's configuration file, key for key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Debug logging (go-mesos-executor's default: true).
    #[serde(default = "yes")]
    debug: bool,
    /// The hooks to run, by name.
    #[serde(default)]
    hooks: Vec<String>,
    /// Where the host's `/proc` is mounted (default `/proc`).
    #[serde(default = "default_proc")]
    proc_path: PathBuf,
    /// go-mesos-executor's fixed resubscription interval; superseded by the agent's
    /// `MESOS_SUBSCRIPTION_BACKOFF_MAX`.
    #[serde(default, with = "hoist::units::option_duration")]
    registering_retry: Option<Duration>,
    /// go-mesos-executor's exec polling interval; exec here waits for the exit instead.
    #[serde(default, with = "hoist::units::option_duration")]
    docker_exec_poll_interval: Option<Duration>,
    /// `docker` (default) or `process`.
    #[serde(default)]
    containerizer: Backend,
    #[serde(default)]
    netns: NetnsConfig,
    #[serde(default)]
    acl: AclConfig,
    #[serde(default)]
    iptables: IptablesConfig,
}

fn yes() -> bool {
    true
}

fn default_proc() -> PathBuf {
    PathBuf::from("/proc")
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Backend {
    #[default]
    Docker,
    Process,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetnsConfig {
    #[serde(default = "default_netns")]
    path: PathBuf,
}

impl Default for NetnsConfig {
    fn default() -> Self {
        NetnsConfig {
            path: default_netns(),
        }
    }
}

fn default_netns() -> PathBuf {
    PathBuf::from("/var/run/netns")
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AclConfig {
    chain: Option<String>,
    external_interface: Option<String>,
    #[serde(default)]
    default_allowed_cidr: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IptablesConfig {
    container_bridge_interface: Option<String>,
    ip_forwarding: Option<bool>,
    ip_masquerading: Option<bool>,
    #[serde(default)]
    chains: IptablesChains,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IptablesChains {
    prerouting: Option<String>,
    forward: Option<String>,
    postrouting: Option<String>,
}

/// A configuration error, naming the key.
fn key_error(key: &str, problem: impl std::fmt::Display) -> String {
    format!("config.yaml: `{key}` {problem}")
}

impl Config {
    /// Reads `/etc/mesos-executor/config.yaml`, else `config.yaml` beside the binary, else
    /// the defaults.
    fn load() -> Result<(Config, Option<PathBuf>), String> {
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("config.yaml")));
        for path in [
            Some(PathBuf::from("/etc/mesos-executor/config.yaml")),
            beside,
        ]
        .into_iter()
        .flatten()
        {
            if path.exists() {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                return Config::parse(&text).map(|c| (c, Some(path)));
            }
        }
        Ok((
            Config {
                debug: true,
                proc_path: default_proc(),
                ..Config::default()
            },
            None,
        ))
    }

    fn parse(text: &str) -> Result<Config, String> {
        let config: Config =
            hoist::input::parse_yaml(text, "config.yaml").map_err(|e| e.message().to_owned())?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if !self.proc_path.is_absolute() {
            return Err(key_error("proc_path", "must be an absolute path"));
        }
        if !self.netns.path.is_absolute() {
            return Err(key_error("netns.path", "must be an absolute path"));
        }
        for (i, cidr) in self.acl.default_allowed_cidr.iter().enumerate() {
            let (ip, prefix) = match cidr.split_once('/') {
                Some((ip, prefix)) => (ip, Some(prefix)),
                None => (cidr.as_str(), None),
            };
            let ok = ip.parse::<std::net::IpAddr>().is_ok_and(|ip| {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= max))
            });
            if !ok {
                return Err(key_error(
                    &format!("acl.default_allowed_cidr[{i}]"),
                    format!("`{cidr}` is not an IP or CIDR"),
                ));
            }
        }
        let names = [
            ("acl.chain", &self.acl.chain),
            ("acl.external_interface", &self.acl.external_interface),
            (
                "iptables.container_bridge_interface",
                &self.iptables.container_bridge_interface,
            ),
            (
                "iptables.chains.prerouting",
                &self.iptables.chains.prerouting,
            ),
            ("iptables.chains.forward", &self.iptables.chains.forward),
            (
                "iptables.chains.postrouting",
                &self.iptables.chains.postrouting,
            ),
        ];
        for (key, value) in names {
            if value
                .as_deref()
                .is_some_and(|v| v.trim().is_empty() || v.contains(char::is_whitespace))
            {
                return Err(key_error(key, "must be a name without spaces"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, name) in self.hooks.iter().enumerate() {
            let key = format!("hooks[{i}]");
            let hook = HookName::parse(name).ok_or_else(|| {
                key_error(
                    &key,
                    format!(
                        "names an unknown hook `{name}` (known: {})",
                        HookName::ALL.join(", ")
                    ),
                )
            })?;
            if !seen.insert(hook) {
                return Err(key_error(&key, format!("lists `{name}` twice")));
            }
            match hook {
                HookName::Acl => {
                    let chain = self
                        .acl
                        .chain
                        .as_deref()
                        .ok_or_else(|| key_error("acl.chain", "is required by the acl hook"))?;
                    if matches!(chain, "FORWARD" | "OUTPUT") {
                        return Err(key_error(
                            "acl.chain",
                            format!("must not be {chain}: the acl hook filters input"),
                        ));
                    }
                }
                HookName::Iptables => {
                    if self.iptables.container_bridge_interface.is_none() {
                        return Err(key_error(
                            "iptables.container_bridge_interface",
                            "is required by the iptables hook",
                        ));
                    }
                }
                HookName::RemoveContainer | HookName::Netns | HookName::Network => {}
            }
        }
        Ok(())
    }

    /// Keys that are accepted for compatibility but change nothing, to report at start-up.
    fn unused_keys(&self) -> Vec<&'static str> {
        let mut unused = vec![];
        if self.registering_retry.is_some() {
            unused.push("registering_retry (the agent's MESOS_SUBSCRIPTION_BACKOFF_MAX is used)");
        }
        if self.docker_exec_poll_interval.is_some() {
            unused.push("docker_exec_poll_interval (exec waits for the command's exit)");
        }
        unused
    }
}

/// The hooks the configuration can name, with go-mesos-executor's spellings accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum HookName {
    RemoveContainer,
    Acl,
    Iptables,
    Netns,
    Network,
}

impl HookName {
    const ALL: [&'static str; 5] = ["remove-container", "acl", "iptables", "netns", "network"];

    fn parse(name: &str) -> Option<HookName> {
        Some(match name {
            "remove-container" | "removeContainer" => HookName::RemoveContainer,
            "acl" => HookName::Acl,
            "iptables" => HookName::Iptables,
            "netns" => HookName::Netns,
            "network" => HookName::Network,
            _ => return None,
        })
    }
}

/// The hook registry: builds each configured hook. This is the one place to wire hook
/// constructors; a hook this build does not have is an error naming its `hooks[i]` key.
fn build_hooks(config: &Config) -> Result<Vec<Arc<dyn Hook>>, String> {
    let mut hooks: Vec<Arc<dyn Hook>> = vec![];
    for (i, name) in config.hooks.iter().enumerate() {
        let section = match HookName::parse(name).expect("validated") {
            HookName::RemoveContainer | HookName::Network => serde_json::Value::Null,
            HookName::Netns => serde_json::json!({
                "path": config.netns.path,
                "proc_path": config.proc_path,
            }),
            HookName::Acl => without_nulls(serde_json::json!({
                "chain": config.acl.chain,
                "external_interface": config.acl.external_interface,
                "default_allowed_cidr": config.acl.default_allowed_cidr,
            })),
            HookName::Iptables => without_nulls(serde_json::json!({
                "container_bridge_interface": config.iptables.container_bridge_interface,
                "ip_forwarding": config.iptables.ip_forwarding,
                "ip_masquerading": config.iptables.ip_masquerading,
                "chains": without_nulls(serde_json::json!({
                    "prerouting": config.iptables.chains.prerouting,
                    "forward": config.iptables.chains.forward,
                    "postrouting": config.iptables.chains.postrouting,
                })),
            })),
        };
        let hook = hoist::hooks::from_config(name, &section).map_err(|e| {
            key_error(
                &format!("hooks[{i}]"),
                format!("(`{name}`): {}", e.message()),
            )
        })?;
        hooks.push(hook);
    }
    Ok(hooks)
}

/// Drops the keys left unset, so each hook applies its own defaults.
fn without_nulls(mut value: serde_json::Value) -> serde_json::Value {
    if let Some(map) = value.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    value
}

/// The Docker executor's flags.
#[derive(Debug, Default)]
struct Flags {
    container: Option<String>,
    docker_socket: Option<PathBuf>,
    stop_timeout: Option<Duration>,
    sandbox_directory: Option<PathBuf>,
    mapped_directory: Option<PathBuf>,
    task_environment: BTreeMap<String, String>,
    containerizer: Option<Backend>,
    not_implemented: Vec<String>,
}

/// The Docker executor's flags this executor accepts but does not act on.
const NOT_IMPLEMENTED: &[&str] = &[
    "docker",
    "default_container_dns",
    "launcher_dir",
    "cgroups_enable_cfs",
    "logbufsecs",
    "logging_level",
    "log_dir",
    "quiet",
    "initialize_driver_logging",
    "external_log_file",
];

impl Flags {
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Flags, String> {
        let mut flags = Flags::default();
        for arg in args {
            let body = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument `{arg}`"))?;
            let (name, value) = body
                .split_once('=')
                .map_or((body, None), |(n, v)| (n, Some(v)));
            let need = |what: &str| {
                value
                    .map(str::to_owned)
                    .ok_or_else(|| format!("--{name} needs a value ({what})"))
            };
            match name {
                "container" => flags.container = Some(need("the container name")?),
                "docker_socket" => {
                    flags.docker_socket = Some(PathBuf::from(need("a socket path")?))
                }
                "stop_timeout" => {
                    let text = need("a duration such as `10secs`")?;
                    let grace = hoist::mesos::env::parse_duration(&text)
                        .map_err(|e| format!("--stop_timeout: {e}"))?;
                    flags.stop_timeout = Some(grace);
                }
                "sandbox_directory" => {
                    flags.sandbox_directory = Some(PathBuf::from(need("a path")?))
                }
                "mapped_directory" => flags.mapped_directory = Some(PathBuf::from(need("a path")?)),
                "task_environment" => {
                    let text = need("a JSON object")?;
                    // JSON is YAML, so the YAML reader reads it.
                    flags.task_environment = serde_saphyr::from_str(&text).map_err(|e| {
                        format!("--task_environment is not a JSON object of strings: {e}")
                    })?;
                }
                "containerizer" => {
                    flags.containerizer = Some(match need("docker or process")?.as_str() {
                        "docker" => Backend::Docker,
                        "process" => Backend::Process,
                        other => {
                            return Err(format!(
                                "--containerizer is `{other}`; expected docker or process"
                            ));
                        }
                    });
                }
                "help" => return Err(Flags::usage()),
                n if NOT_IMPLEMENTED.contains(&n)
                    || n.strip_prefix("no-")
                        .is_some_and(|n| NOT_IMPLEMENTED.contains(&n)) =>
                {
                    flags.not_implemented.push(arg.clone());
                }
                _ => return Err(format!("unknown flag `{arg}`\n{}", Flags::usage())),
            }
        }
        if flags.sandbox_directory.is_some() != flags.mapped_directory.is_some() {
            return Err("--sandbox_directory and --mapped_directory go together".into());
        }
        Ok(flags)
    }

    fn usage() -> String {
        "usage: mesos-executor [--container=NAME] [--docker_socket=PATH] [--stop_timeout=DURATION] \
         [--sandbox_directory=PATH --mapped_directory=PATH] [--task_environment=JSON] \
         [--containerizer=docker|process]"
            .into()
    }
}

async fn containerizer(backend: Backend, flags: &Flags) -> Result<Arc<dyn Containerizer>, String> {
    match backend {
        Backend::Docker => docker(flags).await,
        Backend::Process => {
            let state = std::env::temp_dir().join("hoist-mesos-executor");
            let process = hoist::process::ProcessContainerizer::new(&state).map_err(|e| {
                format!(
                    "cannot start the process backend in {}: {e}",
                    state.display()
                )
            })?;
            Ok(Arc::new(process))
        }
    }
}

#[cfg(feature = "docker")]
async fn docker(flags: &Flags) -> Result<Arc<dyn Containerizer>, String> {
    let mut config = hoist::docker::DockerConfig::from_env();
    if let Some(socket) = &flags.docker_socket {
        config = config.host(format!("unix://{}", socket.display()));
    }
    let docker = hoist::docker::DockerContainerizer::connect(config)
        .await
        .map_err(|e| format!("cannot reach the Docker Engine: {e}"))?;
    Ok(Arc::new(docker))
}

#[cfg(not(feature = "docker"))]
async fn docker(_flags: &Flags) -> Result<Arc<dyn Containerizer>, String> {
    Err("`containerizer: docker`: this build of the executor has no Docker backend (feature `docker`)".into())
}

async fn run() -> Result<Exit, String> {
    let flags = Flags::parse(std::env::args().skip(1))?;
    let (config, path) = Config::load()?;
    let level = if config.debug { "debug" } else { "info" };
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match &path {
        Some(path) => tracing::info!(config = %path.display(), "configuration read"),
        None => tracing::info!(
            "no config.yaml in /etc/mesos-executor or beside the binary; using the defaults"
        ),
    }
    for key in config.unused_keys() {
        tracing::warn!("config key {key} is accepted for compatibility but has no effect");
    }
    for flag in &flags.not_implemented {
        tracing::warn!(%flag, "Docker executor flag not implemented; ignored");
    }
    let env = AgentEnv::from_env().map_err(|e| e.to_string())?;
    let backend = flags.containerizer.unwrap_or(config.containerizer);
    let containerizer = containerizer(backend, &flags).await?;
    let executor_id = flags
        .container
        .clone()
        .unwrap_or_else(|| env.executor_id.value.clone());
    let mut builder = Executor::builder(containerizer).executor_id(executor_id.as_str());
    for hook in build_hooks(&config)? {
        builder = builder.hook(hook);
    }
    let executor = builder.build().map_err(|e| e.to_string())?;
    let statuses = executor.statuses();
    let options = DriverOptions {
        default_kill_grace: flags.stop_timeout,
        sandbox_mount: flags
            .sandbox_directory
            .clone()
            .zip(flags.mapped_directory.clone()),
        task_environment: flags.task_environment.clone(),
        ..DriverOptions::default()
    };
    tracing::info!(agent = %env.agent_endpoint, executor = %env.executor_id, ?backend, "starting");
    MesosDriver::new(env, executor, statuses)
        .options(options)
        .run()
        .await
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(Exit::Shutdown) => ExitCode::SUCCESS,
        Ok(other) => {
            eprintln!("mesos-executor: {other:?}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("mesos-executor: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn go_mesos_executor_config_is_read() {
        let config = Config::parse(
            "debug: false\nhooks: [removeContainer]\nproc_path: /mnt/proc\nregistering_retry: 100ms\n\
             netns: { path: /var/run/netns }\nacl: { chain: MYCHAIN, default_allowed_cidr: [10.0.0.0/8] }\n\
             iptables: { container_bridge_interface: docker0, ip_forwarding: false, chains: { forward: F } }\n",
        )
        .unwrap();
        assert!(!config.debug);
        assert_eq!(config.proc_path, Path::new("/mnt/proc"));
        assert_eq!(config.unused_keys().len(), 1);
        let hooks = build_hooks(&config).unwrap();
        assert_eq!(hooks.len(), 1);
        assert_eq!(hooks[0].name(), "remove-container");
    }

    #[test]
    fn config_errors_name_the_key() {
        let cases = [
            ("hooks: [teleport]", "`hooks[0]`"),
            ("hooks: [acl]", "`acl.chain`"),
            ("hooks: [acl]\nacl: { chain: OUTPUT }", "`acl.chain`"),
            ("hooks: [iptables]", "`iptables.container_bridge_interface`"),
            (
                "acl: { default_allowed_cidr: [10.0.0.0/99] }",
                "`acl.default_allowed_cidr[0]`",
            ),
            ("proc_path: proc", "`proc_path`"),
            ("iptables: { chain: x }", "iptables"),
            ("colour: blue", "colour"),
        ];
        for (text, key) in cases {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        }
        let config = Config::parse("hooks: [netns, network, removeContainer]").unwrap();
        let names: Vec<_> = build_hooks(&config)
            .unwrap()
            .iter()
            .map(|h| h.name().to_owned())
            .collect();
        assert_eq!(names, ["netns", "network", "remove-container"]);
    }

    #[test]
    fn docker_executor_flags() {
        let args = [
            "--container=mesos-abc",
            "--docker=docker",
            "--docker_socket=/var/run/docker.sock",
            "--sandbox_directory=/var/lib/mesos/slaves/x",
            "--mapped_directory=/mnt/mesos/sandbox",
            "--stop_timeout=10secs",
            "--task_environment={\"A\":\"1\"}",
            "--launcher_dir=/usr/libexec/mesos",
        ];
        let flags = Flags::parse(args.iter().map(|s| s.to_string())).unwrap();
        assert_eq!(flags.container.as_deref(), Some("mesos-abc"));
        assert_eq!(flags.stop_timeout, Some(Duration::from_secs(10)));
        assert_eq!(
            flags.task_environment.get("A").map(String::as_str),
            Some("1")
        );
        assert_eq!(
            flags.not_implemented,
            ["--docker=docker", "--launcher_dir=/usr/libexec/mesos"]
        );
        assert!(
            Flags::parse(["--teleport=yes".to_string()])
                .unwrap_err()
                .contains("unknown flag")
        );
        assert!(
            Flags::parse(["--stop_timeout=10s".to_string()])
                .unwrap_err()
                .contains("stop_timeout")
        );
        assert!(
            Flags::parse(["--sandbox_directory=/x".to_string()])
                .unwrap_err()
                .contains("mapped_directory")
        );
    }
}
