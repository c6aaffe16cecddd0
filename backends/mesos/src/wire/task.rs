//! `mesos.TaskInfo` and the messages it holds, plus the executor, framework and agent infos of
//! the SUBSCRIBED event.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{AgentId, Base64, ExecutorId, FrameworkId, TaskId};

/// `mesos.TaskInfo`, kept as the JSON the agent sent, with a typed view ([`TaskInfo::fields`]).
///
/// Keeping the JSON means the copy re-sent in `unacknowledged_tasks` is exactly what the agent
/// sent, fields hoist does not model included.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskInfo {
    task_id: TaskId,
    raw: Value,
}

impl TaskInfo {
    /// A task info from its typed fields.
    pub fn from_fields(fields: &TaskInfoFields) -> Self {
        TaskInfo {
            task_id: fields.task_id.clone(),
            raw: serde_json::to_value(fields).unwrap_or(Value::Null),
        }
    }

    /// A task info from JSON; it needs at least `task_id.value`.
    pub fn from_json(raw: Value) -> Result<Self, String> {
        let task_id = raw
            .get("task_id")
            .and_then(|id| id.get("value"))
            .and_then(Value::as_str)
            .ok_or_else(|| "a TaskInfo needs `task_id.value`".to_owned())?;
        Ok(TaskInfo {
            task_id: TaskId::new(task_id),
            raw,
        })
    }

    /// The task's id.
    pub fn task_id(&self) -> &TaskId {
        &self.task_id
    }

    /// The JSON as the agent sent it.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// The typed fields; an error names the path of the field that does not fit.
    pub fn fields(&self) -> hoist_core::Result<TaskInfoFields> {
        serde_path_to_error::deserialize(&self.raw).map_err(|e| {
            let path = e.path().to_string();
            hoist_core::Error::invalid(format!(
                "TaskInfo of task {} at `{path}`: {}",
                self.task_id,
                e.into_inner()
            ))
            .with_context("field", path)
        })
    }
}

impl Serialize for TaskInfo {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for TaskInfo {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        TaskInfo::from_json(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// The fields of `mesos.TaskInfo` hoist reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfoFields {
    /// The task's name.
    pub name: String,
    /// The task's id.
    pub task_id: TaskId,
    /// The agent it runs on.
    pub agent_id: AgentId,
    /// Resources: `cpus` and `mem` become limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    /// The executor named for the task, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorInfo>,
    /// The command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    /// The container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
    /// The health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckInfo>,
    /// A `CheckInfo` (general check); hoist rejects tasks that carry one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Value>,
    /// The kill policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicyInfo>,
    /// Opaque data for the executor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Base64>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
}

impl TaskInfoFields {
    /// A task named after its id, with nothing else set.
    pub fn new(task_id: &str, agent_id: &str) -> Self {
        TaskInfoFields {
            name: task_id.to_owned(),
            task_id: TaskId::new(task_id),
            agent_id: AgentId::new(agent_id),
            resources: vec![],
            executor: None,
            command: None,
            container: None,
            health_check: None,
            check: None,
            kill_policy: None,
            data: None,
            labels: None,
        }
    }
}

/// `mesos.TaskGroupInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskGroupInfo {
    /// The tasks, launched together.
    #[serde(default)]
    pub tasks: Vec<TaskInfo>,
}

/// `mesos.Resource` (scalar resources only are read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// `cpus`, `mem`, `disk`, `ports`...
    pub name: String,
    /// `SCALAR`, `RANGES`, `SET` or `TEXT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The value of a scalar resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalar: Option<Scalar>,
}

impl Resource {
    /// A scalar resource.
    pub fn scalar(name: &str, value: f64) -> Self {
        Resource {
            name: name.to_owned(),
            kind: "SCALAR".to_owned(),
            scalar: Some(Scalar { value }),
        }
    }
}

/// `mesos.Value.Scalar`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scalar {
    /// The value.
    pub value: f64,
}

/// `mesos.CommandInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandInfo {
    /// URIs to fetch; hoist does not fetch and rejects tasks that carry any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<Uri>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    /// Run `value` with `/bin/sh -c` (the protobuf default is true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<bool>,
    /// The shell command, or the program when `shell` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The arguments when `shell` is false (the first is argv\[0\]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<String>,
    /// The user to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl CommandInfo {
    /// A shell command.
    pub fn shell(command: &str) -> Self {
        CommandInfo {
            uris: vec![],
            environment: None,
            shell: Some(true),
            value: Some(command.to_owned()),
            arguments: vec![],
            user: None,
        }
    }

    /// Whether `value` runs through the shell (true unless `shell` is false).
    pub fn is_shell(&self) -> bool {
        self.shell.unwrap_or(true)
    }
}

/// `mesos.CommandInfo.URI`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Uri {
    /// The URI.
    pub value: String,
}

/// `mesos.Environment`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Environment {
    /// The variables.
    #[serde(default)]
    pub variables: Vec<EnvironmentVariable>,
}

/// `mesos.Environment.Variable`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentVariable {
    /// The name.
    pub name: String,
    /// `VALUE` (the default) or `SECRET`; hoist rejects secrets.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `mesos.ContainerInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// `DOCKER` or `MESOS`.
    #[serde(rename = "type")]
    pub kind: ContainerType,
    /// Volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// The hostname; hoist rejects tasks that set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The Docker settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerInfo>,
    /// The Mesos containerizer settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesos: Option<MesosInfo>,
    /// Networks to join; the first one's name is the user network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_infos: Vec<NetworkInfo>,
}

/// `mesos.ContainerInfo.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerType {
    /// A Docker container.
    #[serde(rename = "DOCKER")]
    Docker,
    /// A Mesos-containerizer container.
    #[serde(rename = "MESOS")]
    Mesos,
}

/// `mesos.ContainerInfo.DockerInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DockerInfo {
    /// The image.
    pub image: String,
    /// The network mode (protobuf default `HOST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<DockerNetwork>,
    /// Published ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
    /// Privileged mode; hoist rejects it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// Raw `docker run` parameters; hoist rejects them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    /// Pull the image before every launch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_pull_image: Option<bool>,
}

/// `mesos.ContainerInfo.DockerInfo.Network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum DockerNetwork {
    #[serde(rename = "HOST")]
    Host,
    #[serde(rename = "BRIDGE")]
    Bridge,
    #[serde(rename = "NONE")]
    None,
    #[serde(rename = "USER")]
    User,
}

/// `mesos.ContainerInfo.DockerInfo.PortMapping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// The host port.
    pub host_port: u32,
    /// The container port.
    pub container_port: u32,
    /// `tcp` (default) or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// `mesos.Parameter`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// `mesos.Volume` (host-path volumes only are supported).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    /// `RW` or `RO`.
    pub mode: VolumeMode,
    /// The path in the container.
    pub container_path: String,
    /// The path on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    /// An image volume; hoist rejects it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Value>,
    /// A volume source; hoist rejects it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Value>,
}

/// `mesos.Volume.Mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeMode {
    /// Read-write.
    #[serde(rename = "RW")]
    Rw,
    /// Read-only.
    #[serde(rename = "RO")]
    Ro,
}

/// `mesos.ContainerInfo.MesosInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MesosInfo {
    /// The image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
}

/// `mesos.Image`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// `APPC` or `DOCKER`.
    #[serde(rename = "type")]
    pub kind: ImageType,
    /// The Docker image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<ImageDocker>,
}

/// `mesos.Image.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum ImageType {
    #[serde(rename = "APPC")]
    Appc,
    #[serde(rename = "DOCKER")]
    Docker,
}

/// `mesos.Image.Docker`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageDocker {
    /// The image reference.
    pub name: String,
}

/// `mesos.NetworkInfo` (the name is read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// The network's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `mesos.HealthCheck`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheckInfo {
    /// `COMMAND`, `HTTP` or `TCP`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<HealthCheckType>,
    /// Seconds before the first check (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<f64>,
    /// Seconds between checks (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<f64>,
    /// Seconds one check may take (default 20; 0 is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// Failures in a row that kill the task (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// Seconds during which failures are ignored (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<f64>,
    /// The command of a `COMMAND` check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    /// The settings of an `HTTP` check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheckInfo>,
    /// The settings of a `TCP` check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheckInfo>,
}

/// `mesos.HealthCheck.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum HealthCheckType {
    #[serde(rename = "UNKNOWN")]
    Unknown,
    #[serde(rename = "COMMAND")]
    Command,
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "TCP")]
    Tcp,
}

/// `mesos.HealthCheck.HTTPCheckInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpCheckInfo {
    /// `http` (default) or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// The container's port.
    pub port: u32,
    /// The path (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Statuses that count as healthy (default 200–399).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<u32>,
}

/// `mesos.HealthCheck.TCPCheckInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpCheckInfo {
    /// The container's port.
    pub port: u32,
}

/// `mesos.KillPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillPolicyInfo {
    /// Time from TERM to KILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<DurationInfo>,
}

/// `mesos.DurationInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurationInfo {
    /// The duration in nanoseconds.
    #[serde(with = "super::int64")]
    pub nanoseconds: i64,
}

impl DurationInfo {
    /// A duration, saturating at `i64::MAX` nanoseconds.
    pub fn from_duration(d: std::time::Duration) -> Self {
        DurationInfo {
            nanoseconds: i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        }
    }

    /// The duration; negative values are zero.
    pub fn to_duration(self) -> std::time::Duration {
        std::time::Duration::from_nanos(u64::try_from(self.nanoseconds).unwrap_or(0))
    }
}

/// `mesos.Labels`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Labels {
    /// The labels.
    #[serde(default)]
    pub labels: Vec<Label>,
}

/// `mesos.Label`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// The key.
    pub key: String,
    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `mesos.ExecutorInfo` (the parts hoist reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutorInfo {
    /// The executor's id.
    pub executor_id: ExecutorId,
    /// The framework.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_id: Option<FrameworkId>,
    /// The executor's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The time SHUTDOWN allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_grace_period: Option<DurationInfo>,
}

/// `mesos.FrameworkInfo` (the parts hoist reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameworkInfo {
    /// The user tasks run as by default.
    pub user: String,
    /// The framework's name.
    pub name: String,
    /// The framework's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<FrameworkId>,
    /// Whether the agent checkpoints the framework's tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<bool>,
    /// What the framework understands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<FrameworkCapability>,
}

impl FrameworkInfo {
    /// Whether the framework declared capability `name` (`TASK_KILLING_STATE`).
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities
            .iter()
            .any(|c| c.kind.as_deref() == Some(name))
    }
}

/// `mesos.FrameworkInfo.Capability`; the type is kept as a string so that capabilities newer
/// than this crate are read, not refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameworkCapability {
    /// The capability (`TASK_KILLING_STATE`, `PARTITION_AWARE`...).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `mesos.AgentInfo` (the parts hoist reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// The agent's hostname.
    pub hostname: String,
    /// The agent's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<AgentId>,
    /// The agent's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}
