//! How the fake behaves, per task: [`Script`], and what it records of each call: [`Call`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::container::{ContainerId, ExecOutput, ExitStatus, LogStream};
use crate::error::{ErrorKind, Result};
use crate::observe::ResourceUsage;
use crate::task::{ContainerSpec, TaskId};

/// SIGTERM.
pub const SIGTERM: i32 = 15;
/// SIGKILL.
pub const SIGKILL: i32 = 9;

/// A function that answers `exec` calls.
pub type ExecFn = Arc<dyn Fn(&[String]) -> Result<ExecOutput> + Send + Sync>;

/// A function saying how long an `exec` of an argv takes.
pub type ExecDurationFn = Arc<dyn Fn(&[String]) -> Duration + Send + Sync>;

/// A function choosing the script of a container from its spec.
pub type ScriptFn = Arc<dyn Fn(&ContainerSpec) -> Option<Script> + Send + Sync>;

/// How the fake behaves for one task (or by default). Every field has a do-nothing default:
/// create, start and stop succeed at once and the container runs until stopped.
#[derive(Clone, Default)]
pub struct Script {
    /// Delay before `create` returns.
    pub create_delay: Duration,
    /// Delay before `start` returns.
    pub start_delay: Duration,
    /// Delay before `stop` acts.
    pub stop_delay: Duration,
    /// Make `create` fail with this kind and message.
    pub fail_create: Option<(ErrorKind, String)>,
    /// Make `start` fail with this kind and message.
    pub fail_start: Option<(ErrorKind, String)>,
    /// Exit on its own this long after start, with [`Script::exit`].
    pub exit_after: Option<Duration>,
    /// How it exits on its own (default code 0).
    pub exit: ExitStatus,
    /// Ignore TERM: only KILL after the grace ends it.
    pub ignore_term: bool,
    /// The pid `inspect` reports (default: a counter from 1000).
    pub pid: Option<u32>,
    /// The addresses `inspect` reports (default: loopback).
    pub addresses: Vec<IpAddr>,
    /// What `logs` returns.
    pub logs: Vec<(LogStream, Bytes)>,
    /// Answers `exec` (default: exit 0, no output).
    pub exec: Option<ExecFn>,
    /// How long an `exec` takes before it answers (default: no time). An exec that would
    /// take longer than its timeout is an [`ErrorKind::Timeout`] error once the timeout passes.
    pub exec_duration: Option<ExecDurationFn>,
    /// What `stats` reports (default: one process, nothing else measured).
    pub usage: Option<ResourceUsage>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("exit_after", &self.exit_after)
            .field("exit", &self.exit)
            .field("ignore_term", &self.ignore_term)
            .finish_non_exhaustive()
    }
}

impl Script {
    /// Exits with `code` after `after`.
    pub fn exits(code: i32, after: Duration) -> Self {
        Script {
            exit_after: Some(after),
            exit: ExitStatus::code(code),
            ..Script::default()
        }
    }
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The method (`"create"`, `"start"`, `"stop"`...).
    pub method: &'static str,
    /// The task, for calls on a known container.
    pub task: Option<TaskId>,
    /// The container, for calls that name one.
    pub container: Option<ContainerId>,
}
