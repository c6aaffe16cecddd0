//! `mesos.executor.Call`: what the executor sends.

use serde::{Deserialize, Serialize};

use super::{Base64, ExecutorId, FrameworkId, TaskInfo, TaskStatus};

/// `mesos.executor.Call.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CallType {
    /// Subscribe (or resubscribe) to the agent.
    #[serde(rename = "SUBSCRIBE")]
    Subscribe,
    /// A status update.
    #[serde(rename = "UPDATE")]
    Update,
    /// Data for the scheduler.
    #[serde(rename = "MESSAGE")]
    Message,
    /// A keep-alive (newer agents only).
    #[serde(rename = "HEARTBEAT")]
    Heartbeat,
}

/// `mesos.executor.Call`.
///
/// ```
/// use hoist_mesos::wire::{Call, ExecutorId, FrameworkId};
///
/// let call = Call::subscribe(ExecutorId::new("e"), FrameworkId::new("f"), vec![], vec![]);
/// assert_eq!(
///     serde_json::to_string(&call).unwrap(),
///     r#"{"executor_id":{"value":"e"},"framework_id":{"value":"f"},"type":"SUBSCRIBE","subscribe":{"unacknowledged_tasks":[],"unacknowledged_updates":[]}}"#,
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// The executor sending it.
    pub executor_id: ExecutorId,
    /// Its framework.
    pub framework_id: FrameworkId,
    /// Which call it is.
    #[serde(rename = "type")]
    pub kind: CallType,
    /// The SUBSCRIBE payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Subscribe>,
    /// The UPDATE payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<Update>,
    /// The MESSAGE payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
}

impl Call {
    fn new(executor_id: ExecutorId, framework_id: FrameworkId, kind: CallType) -> Self {
        Call {
            executor_id,
            framework_id,
            kind,
            subscribe: None,
            update: None,
            message: None,
        }
    }

    /// A SUBSCRIBE carrying what the agent has not acknowledged.
    pub fn subscribe(
        executor_id: ExecutorId,
        framework_id: FrameworkId,
        unacknowledged_tasks: Vec<TaskInfo>,
        unacknowledged_updates: Vec<Update>,
    ) -> Self {
        Call {
            subscribe: Some(Subscribe {
                unacknowledged_tasks,
                unacknowledged_updates,
            }),
            ..Call::new(executor_id, framework_id, CallType::Subscribe)
        }
    }

    /// An UPDATE.
    pub fn update(executor_id: ExecutorId, framework_id: FrameworkId, status: TaskStatus) -> Self {
        Call {
            update: Some(Update { status }),
            ..Call::new(executor_id, framework_id, CallType::Update)
        }
    }

    /// A MESSAGE.
    pub fn message(executor_id: ExecutorId, framework_id: FrameworkId, data: Vec<u8>) -> Self {
        Call {
            message: Some(Message { data: Base64(data) }),
            ..Call::new(executor_id, framework_id, CallType::Message)
        }
    }

    /// A HEARTBEAT.
    pub fn heartbeat(executor_id: ExecutorId, framework_id: FrameworkId) -> Self {
        Call::new(executor_id, framework_id, CallType::Heartbeat)
    }
}

/// `mesos.executor.Call.Subscribe`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Subscribe {
    /// Tasks launched but with no acknowledged update yet.
    #[serde(default)]
    pub unacknowledged_tasks: Vec<TaskInfo>,
    /// Updates sent but not acknowledged.
    #[serde(default)]
    pub unacknowledged_updates: Vec<Update>,
}

/// `mesos.executor.Call.Update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    /// The status.
    pub status: TaskStatus,
}

/// `mesos.executor.Call.Message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The data.
    pub data: Base64,
}
