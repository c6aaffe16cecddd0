//! The Lambda records the store keeps: functions (their `$LATEST`), published versions and
//! aliases, with the states AWS reports.
//!
//! A record's `configuration` is the JSON document AWS returns for it (`FunctionConfiguration`
//! or `AliasConfiguration`); the store keeps it as given. The fields the store indexes — the
//! code, the state, the revision id — live in columns of their own and are the authority for
//! those values.

use serde_json::Value;

use crate::code::CodeRef;

/// A function's (or version's) state (`State` in AWS's `FunctionConfiguration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Being created: not yet invocable.
    Pending,
    /// Ready for invocations.
    Active,
    /// Idle long enough that its resources were reclaimed.
    Inactive,
    /// Creating it failed.
    Failed,
}

impl State {
    /// The name AWS uses.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "Pending",
            State::Active => "Active",
            State::Inactive => "Inactive",
            State::Failed => "Failed",
        }
    }

    /// Parses the name AWS uses.
    pub fn parse(text: &str) -> Option<State> {
        Some(match text {
            "Pending" => State::Pending,
            "Active" => State::Active,
            "Inactive" => State::Inactive,
            "Failed" => State::Failed,
            _ => return None,
        })
    }
}

/// The status of a function's last update (`LastUpdateStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UpdateStatus {
    /// The update finished.
    Successful,
    /// The update failed.
    Failed,
    /// The update is still being applied.
    InProgress,
}

impl UpdateStatus {
    /// The name AWS uses.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateStatus::Successful => "Successful",
            UpdateStatus::Failed => "Failed",
            UpdateStatus::InProgress => "InProgress",
        }
    }

    /// Parses the name AWS uses.
    pub fn parse(text: &str) -> Option<UpdateStatus> {
        Some(match text {
            "Successful" => UpdateStatus::Successful,
            "Failed" => UpdateStatus::Failed,
            "InProgress" => UpdateStatus::InProgress,
            _ => return None,
        })
    }
}

/// A function: its unpublished version (`$LATEST`) and what belongs to the function as a whole.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionRecord {
    /// The function's name.
    pub name: String,
    /// `$LATEST`'s `FunctionConfiguration`, as AWS returns it.
    pub configuration: Value,
    /// Its code archive (`None` for a container image function).
    pub code: Option<CodeRef>,
    /// `$LATEST`'s state.
    pub state: State,
    /// The status of `$LATEST`'s last update.
    pub last_update_status: UpdateStatus,
    /// Changes with every change to the function.
    pub revision_id: String,
    /// The reserved concurrency (`PutFunctionConcurrency`), if any.
    pub reserved_concurrency: Option<u32>,
    /// The number of the last published version (0 before any).
    pub last_version: u64,
}

impl FunctionRecord {
    /// A new function in the `Pending` state, with no code, no versions and an empty revision.
    pub fn new(name: impl Into<String>, configuration: Value) -> Self {
        FunctionRecord {
            name: name.into(),
            configuration,
            code: None,
            state: State::Pending,
            last_update_status: UpdateStatus::Successful,
            revision_id: String::new(),
            reserved_concurrency: None,
            last_version: 0,
        }
    }
}

/// A published, immutable version of a function.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRecord {
    /// The function's name.
    pub function: String,
    /// The version number (1, 2, ...).
    pub version: u64,
    /// Its `FunctionConfiguration`, as AWS returns it.
    pub configuration: Value,
    /// Its code archive (`None` for a container image function).
    pub code: Option<CodeRef>,
    /// Its state.
    pub state: State,
    /// Changes with every change to the version (its state).
    pub revision_id: String,
}

/// An alias: a name for a version of a function.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasRecord {
    /// The function's name.
    pub function: String,
    /// The alias's name.
    pub name: String,
    /// Its `AliasConfiguration`, as AWS returns it.
    pub configuration: Value,
    /// Changes with every change to the alias.
    pub revision_id: String,
}
