//! The JSON wire types of the Mesos v1 executor API.
//!
//! Field names are the snake-case names of `mesos/v1/executor/executor.proto` and
//! `mesos/v1/mesos.proto`, enums are their value names as strings, and `bytes` fields are
//! base64 ([`Base64`]), exactly as the agent's JSON parser reads and writes them. Only the
//! fields hoist uses are modelled; a [`TaskInfo`] keeps the whole JSON the agent sent, so
//! re-sending it on resubscription loses nothing.
//!
//! The crate's tests check every field and enum name these types emit against the protobuf
//! definitions.

mod call;
mod event;
mod status;
mod task;

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use call::{Call, CallType, Message, Subscribe, Update};
pub use event::{
    Acknowledged, Event, EventMessage, EventType, Kill, Launch, LaunchGroup, Subscribed, WireError,
};
pub use status::{Reason, Source, TaskState, TaskStatus};
pub use task::{
    AgentInfo, CommandInfo, ContainerInfo, ContainerType, DockerInfo, DockerNetwork, DurationInfo,
    Environment, EnvironmentVariable, ExecutorInfo, FrameworkCapability, FrameworkInfo,
    HealthCheckInfo, HealthCheckType, HttpCheckInfo, Image, ImageDocker, ImageType, KillPolicyInfo,
    Label, Labels, MesosInfo, NetworkInfo, Parameter, PortMapping, Resource, Scalar, TaskGroupInfo,
    TaskInfo, TaskInfoFields, TcpCheckInfo, Uri, Volume, VolumeMode,
};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name {
            /// The id.
            pub value: String,
        }

        impl $name {
            /// An id with `value`.
            pub fn new(value: impl Into<String>) -> Self {
                $name { value: value.into() }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.value)
            }
        }
    };
}

id_type!(
    /// `mesos.FrameworkID`.
    FrameworkId
);
id_type!(
    /// `mesos.ExecutorID`.
    ExecutorId
);
id_type!(
    /// `mesos.TaskID`.
    TaskId
);
id_type!(
    /// `mesos.AgentID`.
    AgentId
);

/// `mesos.ContainerID`: an id and, for nested containers, its parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerId {
    /// The id.
    pub value: String,
    /// The parent container of a nested container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Box<ContainerId>>,
}

/// A protobuf `bytes` field: raw bytes, base64 (standard alphabet, padded) in JSON.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Base64(pub Vec<u8>);

impl fmt::Debug for Base64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64({})", STANDARD.encode(&self.0))
    }
}

impl Serialize for Base64 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map(Base64)
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not base64: {e}")))
    }
}

/// Serde helpers for protobuf 64-bit integers, which JSON may carry as numbers or strings.
pub(crate) mod int64 {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Int(i64),
        Float(f64),
        Text(String),
    }

    pub(crate) fn serialize<S: Serializer>(value: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(*value)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        match NumberOrText::deserialize(deserializer)? {
            NumberOrText::Int(n) => Ok(n),
            NumberOrText::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(f as i64),
            NumberOrText::Float(f) => {
                Err(serde::de::Error::custom(format!("{f} is not an integer")))
            }
            NumberOrText::Text(t) => t
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("`{t}` is not an integer"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_base64() {
        let json = serde_json::to_string(&Base64(vec![0xff, 0, 1])).unwrap();
        assert_eq!(json, "\"/wAB\"");
        let back: Base64 = serde_json::from_str(&json).unwrap();
        assert_eq!(back.0, [0xff, 0, 1]);
        let err = serde_json::from_str::<Base64>("\"not base64!\"").unwrap_err();
        assert!(err.to_string().contains("not base64"), "{err}");
    }
}
