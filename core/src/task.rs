//! What to run: [`TaskSpec`], its [`ContainerSpec`], health check and kill policy.
//!
//! A task spec reads from YAML or JSON ([`TaskSpec::from_yaml`], [`TaskSpec::from_json`],
//! [`TaskFile`]); unknown fields are rejected and every error names the path of the bad field.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::health::HealthCheck;
use crate::input::{parse_json, parse_yaml};
use crate::units;

/// The id of a task, unique within one executor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(Arc<str>);

impl TaskId {
    /// A task id from any string. Empty ids are rejected by [`TaskSpec::validate`].
    pub fn new(id: impl Into<String>) -> Self {
        TaskId(Arc::from(id.into()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TaskId {
    fn from(id: &str) -> Self {
        TaskId(Arc::from(id))
    }
}

impl From<String> for TaskId {
    fn from(id: String) -> Self {
        TaskId(Arc::from(id))
    }
}

/// One unit of work: a container to run, how to check its health and how to kill it.
///
/// ```
/// use hoist_core::TaskSpec;
///
/// let task = TaskSpec::from_yaml(r#"
/// id: web.1
/// container:
///   command: ["/bin/sleep", "30"]
///   env: { GREETING: hello }
/// kill_policy: { grace: 5s }
/// "#).unwrap();
/// assert_eq!(task.id.as_str(), "web.1");
/// assert_eq!(task.kill_policy.grace.as_secs(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Unique id of the task within its executor.
    pub id: TaskId,
    /// Human-readable name; defaults to the id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The container to run.
    pub container: ContainerSpec,
    /// An optional health check, with Mesos's semantics and defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// How the task is killed.
    #[serde(default)]
    pub kill_policy: KillPolicy,
    /// Task labels, read by hooks (for example `EXECUTOR_0_ACL`). Not passed to the container;
    /// container labels are [`ContainerSpec::labels`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl TaskSpec {
    /// A task with `id` that runs `container`, no health check and the default kill policy.
    pub fn new(id: impl Into<TaskId>, container: ContainerSpec) -> Self {
        TaskSpec {
            id: id.into(),
            name: String::new(),
            container,
            health_check: None,
            kill_policy: KillPolicy::default(),
            labels: BTreeMap::new(),
        }
    }

    /// The name, or the id when no name is set.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            self.id.as_str()
        } else {
            &self.name
        }
    }

    /// Parses and validates a task spec from YAML.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let spec: TaskSpec = parse_yaml(text, "task spec")?;
        spec.validate()?;
        Ok(spec)
    }

    /// Parses and validates a task spec from JSON.
    pub fn from_json(text: &str) -> Result<Self> {
        let spec: TaskSpec = parse_json(text, "task spec")?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks what serde cannot: a non-empty id, a command or image, sane ports, resources and
    /// health-check settings. Errors name the field.
    pub fn validate(&self) -> Result<()> {
        if self.id.as_str().trim().is_empty() {
            return Err(Error::invalid_field("id", "must not be empty"));
        }
        self.container.validate("container")?;
        if let Some(check) = &self.health_check {
            check.validate("health_check")?;
        }
        Ok(())
    }
}

/// A file holding several tasks: `tasks: [ ... ]`, as the local executor example reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    /// The tasks, launched in order.
    pub tasks: Vec<TaskSpec>,
}

impl TaskFile {
    /// Parses and validates a task file from YAML; errors name the bad field (`tasks[1].container.ports[0]`).
    pub fn from_yaml(text: &str) -> Result<Self> {
        let file: TaskFile = parse_yaml(text, "task file")?;
        file.validate()?;
        Ok(file)
    }

    /// Parses and validates a task file from JSON.
    pub fn from_json(text: &str) -> Result<Self> {
        let file: TaskFile = parse_json(text, "task file")?;
        file.validate()?;
        Ok(file)
    }

    fn validate(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for (i, task) in self.tasks.iter().enumerate() {
            task.validate()
                .map_err(|e| prefix_field(e, &format!("tasks[{i}]")))?;
            if !seen.insert(&task.id) {
                return Err(Error::invalid_field(
                    format!("tasks[{i}].id"),
                    format!("duplicate task id `{}`", task.id),
                ));
            }
        }
        Ok(())
    }
}

fn prefix_field(err: Error, prefix: &str) -> Error {
    match err.context_value("field") {
        Some(field) => {
            let full = format!("{prefix}.{field}");
            let message = err
                .message()
                .replacen(&format!("`{field}`"), &format!("`{full}`"), 1);
            Error::new(err.kind(), message).with_context("field", full)
        }
        None => err,
    }
}

/// The container a task runs in, backend-neutral.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    /// The image. Docker and Kubernetes pull it; the process backend reads it as an optional
    /// root directory for relative commands (see hoist-process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// When to pull the image.
    #[serde(default)]
    pub pull_policy: PullPolicy,
    /// The program and its leading arguments (Docker's entrypoint). Empty means the image's default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Further arguments (Docker's cmd).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<PathBuf>,
    /// User to run as (`name`, `uid` or `uid:gid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Ports to publish.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    /// The network mode; `None` is the backend's default (bridge for Docker, host for processes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkMode>,
    /// CPU and memory limits.
    #[serde(default)]
    pub resources: Resources,
    /// Host paths mounted into the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// DNS servers for the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<IpAddr>,
    /// Container labels (Docker labels, pod labels). Backends add their ownership labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl ContainerSpec {
    /// A spec that runs `argv` (program first).
    pub fn command<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ContainerSpec {
            command: argv.into_iter().map(Into::into).collect(),
            ..ContainerSpec::default()
        }
    }

    /// The full argv: `command` followed by `args`.
    pub fn argv(&self) -> Vec<String> {
        self.command.iter().chain(&self.args).cloned().collect()
    }

    fn validate(&self, at: &str) -> Result<()> {
        if self.image.is_none() && self.command.is_empty() {
            return Err(Error::invalid_field(at, "needs an `image` or a `command`"));
        }
        if let Some(image) = &self.image
            && (image.trim().is_empty() || image.chars().any(char::is_whitespace))
        {
            return Err(Error::invalid_field(
                format!("{at}.image"),
                "must be a non-empty image reference without spaces",
            ));
        }
        for key in self.env.keys() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(Error::invalid_field(
                    format!("{at}.env"),
                    format!("has an invalid variable name `{key}`"),
                ));
            }
        }
        for (i, port) in self.ports.iter().enumerate() {
            if port.container_port == 0 {
                return Err(Error::invalid_field(
                    format!("{at}.ports[{i}].container_port"),
                    "must be between 1 and 65535",
                ));
            }
        }
        if let Some(cpus) = self.resources.cpus
            && !(cpus.is_finite() && cpus > 0.0)
        {
            return Err(Error::invalid_field(
                format!("{at}.resources.cpus"),
                "must be a positive number",
            ));
        }
        if self.resources.memory == Some(0) {
            return Err(Error::invalid_field(
                format!("{at}.resources.memory"),
                "must be positive",
            ));
        }
        if let Some(NetworkMode::User(name)) = &self.network
            && name.trim().is_empty()
        {
            return Err(Error::invalid_field(
                format!("{at}.network.user"),
                "must name a network",
            ));
        }
        for (i, volume) in self.volumes.iter().enumerate() {
            if !volume.container_path.is_absolute() {
                return Err(Error::invalid_field(
                    format!("{at}.volumes[{i}].container_path"),
                    "must be an absolute path",
                ));
            }
        }
        Ok(())
    }
}

/// When a backend pulls the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    /// Pull only when the image is not present locally.
    #[default]
    IfNotPresent,
    /// Pull before every create.
    Always,
    /// Never pull; a missing image is an error.
    Never,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    /// The port the process listens on inside the container.
    pub container_port: u16,
    /// The host port; `None` lets the backend choose one (reported by `inspect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// TCP or UDP.
    #[serde(default)]
    pub protocol: Protocol,
    /// The host address to bind; all addresses when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
}

impl PortMapping {
    /// A TCP mapping from `host_port` (or an engine-chosen port) to `container_port`.
    pub fn tcp(container_port: u16, host_port: Option<u16>) -> Self {
        PortMapping {
            container_port,
            host_port,
            protocol: Protocol::Tcp,
            host_ip: None,
        }
    }
}

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `"tcp"` or `"udp"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the container is networked. In YAML: `host`, `bridge`, `none` or `{ user: name }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Share the host's network namespace.
    Host,
    /// The backend's default bridge network.
    Bridge,
    /// A named user network.
    User(String),
    /// No network except loopback.
    None,
}

/// CPU and memory limits.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU limit in cores (fractions allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory limit in bytes; YAML accepts units (`64Mi`).
    #[serde(
        default,
        with = "units::option_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory: Option<u64>,
}

/// A host path mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// The path on the host.
    pub host_path: PathBuf,
    /// The path inside the container.
    pub container_path: PathBuf,
    /// Mount read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// How a task is killed: TERM, then KILL after the grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillPolicy {
    /// Time between TERM and KILL. Default 3 s, as Mesos's executors use.
    #[serde(with = "units::duration", default = "KillPolicy::default_grace")]
    pub grace: Duration,
}

impl KillPolicy {
    fn default_grace() -> Duration {
        Duration::from_secs(3)
    }
}

impl Default for KillPolicy {
    fn default() -> Self {
        KillPolicy {
            grace: KillPolicy::default_grace(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn yaml_round_trip_with_every_field() {
        let text = r#"
id: web.1
name: web
container:
  image: busybox:latest
  pull_policy: never
  command: [/bin/busybox, httpd]
  args: ["-f", "-p", "8080"]
  env: { A: "1" }
  working_dir: /srv
  user: "1000:1000"
  ports:
    - { container_port: 8080, host_port: 31000 }
    - { container_port: 53, protocol: udp }
  network: { user: frontends }
  resources: { cpus: 0.5, memory: 64Mi }
  volumes: [{ host_path: /data, container_path: /data, read_only: true }]
  dns: [10.0.0.2]
  labels: { team: web }
health_check:
  http: { port: 8080, path: /health }
  delay: 1s
kill_policy: { grace: 500ms }
labels: { EXECUTOR_0_ACL: "10.0.0.0/8" }
"#;
        let spec = TaskSpec::from_yaml(text).unwrap();
        assert_eq!(spec.container.resources.memory, Some(64 << 20));
        assert_eq!(
            spec.container.network,
            Some(NetworkMode::User("frontends".into()))
        );
        assert_eq!(spec.container.ports[1].protocol, Protocol::Udp);
        assert_eq!(spec.kill_policy.grace, Duration::from_millis(500));
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(TaskSpec::from_json(&json).unwrap(), spec);
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let err = TaskSpec::from_yaml(
            "id: a\ncontainer:\n  command: [x]\n  ports: [{ container_port: 80, hostport: 1 }]\n",
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("container.ports[0]"), "{err}");
        assert!(err.to_string().contains("hostport"), "{err}");
    }

    #[test]
    fn wrong_type_is_named_with_its_path() {
        let err = TaskSpec::from_json(
            r#"{"id":"a","container":{"command":["x"],"resources":{"cpus":"many"}}}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("container.resources.cpus"),
            "{err}"
        );
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let err = TaskSpec::from_yaml("id: a\ncontainer: {}\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("`container` needs an `image` or a `command`"),
            "{err}"
        );
        let err = TaskSpec::from_yaml(
            "id: a\ncontainer: { command: [x], ports: [{container_port: 0}] }\n",
        )
        .unwrap_err();
        assert_eq!(
            err.context_value("field"),
            Some("container.ports[0].container_port")
        );
        let err = TaskSpec::from_yaml("id: ''\ncontainer: { command: [x] }\n").unwrap_err();
        assert_eq!(err.context_value("field"), Some("id"));
    }

    #[test]
    fn task_file_rejects_duplicates_and_prefixes_paths() {
        let err = TaskFile::from_yaml("tasks:\n  - { id: a, container: { command: [one] } }\n  - { id: a, container: { command: [two] } }\n")
            .unwrap_err();
        assert_eq!(err.context_value("field"), Some("tasks[1].id"));
        let err = TaskFile::from_yaml(
            "tasks:\n  - { id: a, container: { command: [x], resources: { cpus: -1 } } }\n",
        )
        .unwrap_err();
        assert_eq!(
            err.context_value("field"),
            Some("tasks[0].container.resources.cpus")
        );
    }

    #[test]
    fn invalid_yaml_is_a_typed_error() {
        let err = TaskSpec::from_yaml("id: [unclosed").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("not valid YAML"));
    }
}
