//! What a backend reports about a container: ids, exit status, info, exec output, logs,
//! and ownership.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::task::{Protocol, TaskId};

/// The backend's id of a container.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContainerId(Arc<str>);

impl ContainerId {
    /// A container id from the backend's string.
    pub fn new(id: impl Into<String>) -> Self {
        ContainerId(Arc::from(id.into()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ContainerId {
    fn from(id: &str) -> Self {
        ContainerId(Arc::from(id))
    }
}

/// The id of an executor instance, written into every container it creates so a restarted
/// executor with the same id can find them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExecutorId(Arc<str>);

impl ExecutorId {
    /// An executor id from any string.
    pub fn new(id: impl Into<String>) -> Self {
        ExecutorId(Arc::from(id.into()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExecutorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ExecutorId {
    fn from(id: &str) -> Self {
        ExecutorId(Arc::from(id))
    }
}

/// Who a container belongs to: backends record this (as labels, or in a state directory) at
/// create time and report it back from `list_owned`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owner {
    /// The executor that created the container.
    pub executor_id: ExecutorId,
    /// The task it runs.
    pub task_id: TaskId,
}

/// A container found by `list_owned`.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedContainer {
    /// Its id.
    pub id: ContainerId,
    /// Its owner.
    pub owner: Owner,
    /// Its state when listed.
    pub state: ContainerState,
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code, when the process exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// The signal that ended it, when it was killed by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Whether the kernel's OOM killer ended it.
    #[serde(default)]
    pub oom_killed: bool,
}

impl ExitStatus {
    /// Exited normally with `code`.
    pub fn code(code: i32) -> Self {
        ExitStatus {
            code: Some(code),
            ..ExitStatus::default()
        }
    }

    /// Killed by `signal`.
    pub fn signal(signal: i32) -> Self {
        ExitStatus {
            signal: Some(signal),
            ..ExitStatus::default()
        }
    }

    /// Exited with code 0 and no OOM kill.
    pub fn success(&self) -> bool {
        self.code == Some(0) && self.signal.is_none() && !self.oom_killed
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (_, Some(signal)) => write!(f, "killed by signal {signal}")?,
            (Some(code), None) => write!(f, "exited with code {code}")?,
            (None, None) => f.write_str("exited")?,
        }
        if self.oom_killed {
            f.write_str(" (out of memory)")?;
        }
        Ok(())
    }
}

/// The lifecycle state of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Exited (or was stopped) and not yet removed.
    Exited,
}

/// A port as published by the backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedPort {
    /// The port inside the container.
    pub container_port: u16,
    /// The host port it is reachable on, once known.
    pub host_port: Option<u16>,
    /// The host address it is bound to.
    pub host_ip: Option<IpAddr>,
    /// The protocol.
    pub protocol: Protocol,
}

/// What `inspect` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// The container.
    pub id: ContainerId,
    /// Its state.
    pub state: ContainerState,
    /// The main process id on the host, while running.
    pub pid: Option<u32>,
    /// Addresses the container's own ports are reachable on from the host (its bridge address,
    /// or loopback for host networking).
    pub addresses: Vec<IpAddr>,
    /// Published ports.
    pub ports: Vec<MappedPort>,
    /// The network namespace to enter to reach the container's ports on its own loopback, when
    /// the backend runs one.
    pub netns: Option<PathBuf>,
    /// How it ended, once exited.
    pub exit: Option<ExitStatus>,
    /// Backend-specific facts (image digest, pod phase, node...).
    pub details: BTreeMap<String, String>,
}

impl ContainerInfo {
    /// An info record with only id and state set.
    pub fn new(id: ContainerId, state: ContainerState) -> Self {
        ContainerInfo {
            id,
            state,
            pid: None,
            addresses: Vec::new(),
            ports: Vec::new(),
            netns: None,
            exit: None,
            details: BTreeMap::new(),
        }
    }
}

/// The result of `exec`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    /// Exit code of the command (`None` if killed by a signal).
    pub exit_code: Option<i32>,
    /// Captured standard output.
    pub stdout: Bytes,
    /// Captured standard error.
    pub stderr: Bytes,
}

impl ExecOutput {
    /// Whether the command exited 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Which log stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A chunk of container output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// Which stream.
    pub stream: LogStream,
    /// The bytes, as written (not split into lines).
    pub data: Bytes,
}

/// What `logs` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogOptions {
    /// Keep streaming new output until the container exits (or the caller's deadline).
    pub follow: bool,
    /// Only the last `n` lines of what is already there.
    pub tail: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_success_and_display() {
        assert!(ExitStatus::code(0).success());
        assert!(!ExitStatus::code(3).success());
        assert!(!ExitStatus::signal(9).success());
        let oom = ExitStatus {
            code: Some(137),
            signal: None,
            oom_killed: true,
        };
        assert!(!oom.success());
        assert_eq!(oom.to_string(), "exited with code 137 (out of memory)");
        assert_eq!(ExitStatus::signal(15).to_string(), "killed by signal 15");
    }
}
