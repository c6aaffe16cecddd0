//! `mesos.executor.Event`: what the agent streams.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{
    AgentInfo, Base64, ContainerId, ExecutorInfo, FrameworkInfo, KillPolicyInfo, TaskGroupInfo,
    TaskId, TaskInfo,
};

/// `mesos.executor.Event.Type`. Types this crate does not know are kept as
/// [`EventType::Unknown`] with their name, so a newer agent never breaks decoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventType {
    /// The first event of a subscription.
    Subscribed,
    /// Launch a task.
    Launch,
    /// Launch a group of tasks atomically.
    LaunchGroup,
    /// Kill a task.
    Kill,
    /// An update was received.
    Acknowledged,
    /// Data from the scheduler.
    Message,
    /// The executor sent something invalid.
    Error,
    /// Kill every task and exit.
    Shutdown,
    /// A keep-alive.
    Heartbeat,
    /// A type this crate does not know (its name as sent).
    Unknown(String),
}

impl EventType {
    /// The protobuf name.
    pub fn as_str(&self) -> &str {
        match self {
            EventType::Subscribed => "SUBSCRIBED",
            EventType::Launch => "LAUNCH",
            EventType::LaunchGroup => "LAUNCH_GROUP",
            EventType::Kill => "KILL",
            EventType::Acknowledged => "ACKNOWLEDGED",
            EventType::Message => "MESSAGE",
            EventType::Error => "ERROR",
            EventType::Shutdown => "SHUTDOWN",
            EventType::Heartbeat => "HEARTBEAT",
            EventType::Unknown(name) => name,
        }
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(match name.as_str() {
            "SUBSCRIBED" => EventType::Subscribed,
            "LAUNCH" => EventType::Launch,
            "LAUNCH_GROUP" => EventType::LaunchGroup,
            "KILL" => EventType::Kill,
            "ACKNOWLEDGED" => EventType::Acknowledged,
            "MESSAGE" => EventType::Message,
            "ERROR" => EventType::Error,
            "SHUTDOWN" => EventType::Shutdown,
            "HEARTBEAT" => EventType::Heartbeat,
            _ => EventType::Unknown(name),
        })
    }
}

fn unknown_type() -> EventType {
    EventType::Unknown("UNKNOWN".to_owned())
}

/// `mesos.executor.Event`.
///
/// ```
/// use hoist_mesos::wire::{Event, EventType};
///
/// let event = Event::from_slice(br#"{"type":"KILL","kill":{"task_id":{"value":"web.1"}}}"#).unwrap();
/// assert_eq!(event.kind, EventType::Kill);
/// assert_eq!(event.kill.unwrap().task_id.value, "web.1");
/// let newer = Event::from_slice(br#"{"type":"SOMETHING_NEW","something_new":{}}"#).unwrap();
/// assert_eq!(newer.kind, EventType::Unknown("SOMETHING_NEW".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Which event it is (`UNKNOWN` when absent, as protobuf reads it).
    #[serde(rename = "type", default = "unknown_type")]
    pub kind: EventType,
    /// The SUBSCRIBED payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribed: Option<Subscribed>,
    /// The ACKNOWLEDGED payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Acknowledged>,
    /// The LAUNCH payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<Launch>,
    /// The LAUNCH_GROUP payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_group: Option<LaunchGroup>,
    /// The KILL payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill: Option<Kill>,
    /// The MESSAGE payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<EventMessage>,
    /// The ERROR payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
}

impl Event {
    /// An event of `kind` with no payload.
    pub fn new(kind: EventType) -> Self {
        Event {
            kind,
            subscribed: None,
            acknowledged: None,
            launch: None,
            launch_group: None,
            kill: None,
            message: None,
            error: None,
        }
    }

    /// Decodes one event from a RecordIO record.
    pub fn from_slice(record: &[u8]) -> hoist_core::Result<Event> {
        serde_json::from_slice(record).map_err(|e| {
            let shown = String::from_utf8_lossy(&record[..record.len().min(120)]).into_owned();
            hoist_core::Error::invalid(format!("malformed executor event: {e}"))
                .with_operation("decode event")
                .with_context("record", shown)
        })
    }

    /// A LAUNCH of `task`.
    pub fn launch(task: TaskInfo) -> Self {
        Event {
            launch: Some(Launch { task }),
            ..Event::new(EventType::Launch)
        }
    }

    /// A LAUNCH_GROUP of `tasks`.
    pub fn launch_group(tasks: Vec<TaskInfo>) -> Self {
        Event {
            launch_group: Some(LaunchGroup {
                task_group: TaskGroupInfo { tasks },
            }),
            ..Event::new(EventType::LaunchGroup)
        }
    }

    /// A KILL of `task_id`, with an optional kill-policy override.
    pub fn kill(task_id: TaskId, kill_policy: Option<KillPolicyInfo>) -> Self {
        Event {
            kill: Some(Kill {
                task_id,
                kill_policy,
            }),
            ..Event::new(EventType::Kill)
        }
    }

    /// An ACKNOWLEDGED of the update `uuid` of `task_id`.
    pub fn acknowledged(task_id: TaskId, uuid: Vec<u8>) -> Self {
        Event {
            acknowledged: Some(Acknowledged {
                task_id,
                uuid: Base64(uuid),
            }),
            ..Event::new(EventType::Acknowledged)
        }
    }

    /// A MESSAGE carrying `data`.
    pub fn message(data: Vec<u8>) -> Self {
        Event {
            message: Some(EventMessage { data: Base64(data) }),
            ..Event::new(EventType::Message)
        }
    }

    /// An ERROR with `message`.
    pub fn error(message: impl Into<String>) -> Self {
        Event {
            error: Some(WireError {
                message: message.into(),
            }),
            ..Event::new(EventType::Error)
        }
    }
}

/// `mesos.executor.Event.Subscribed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    /// The executor.
    pub executor_info: ExecutorInfo,
    /// The framework, with its id and capabilities.
    pub framework_info: FrameworkInfo,
    /// The agent.
    pub agent_info: AgentInfo,
    /// The executor's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<ContainerId>,
}

/// `mesos.executor.Event.Launch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Launch {
    /// The task.
    pub task: TaskInfo,
}

/// `mesos.executor.Event.LaunchGroup`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchGroup {
    /// The tasks.
    pub task_group: TaskGroupInfo,
}

/// `mesos.executor.Event.Kill`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kill {
    /// The task.
    pub task_id: TaskId,
    /// Overrides the task's kill policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicyInfo>,
}

/// `mesos.executor.Event.Acknowledged`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acknowledged {
    /// The task.
    pub task_id: TaskId,
    /// The update's UUID.
    pub uuid: Base64,
}

/// `mesos.executor.Event.Message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMessage {
    /// The data.
    pub data: Base64,
}

/// `mesos.executor.Event.Error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    /// What the agent found wrong.
    pub message: String,
}
