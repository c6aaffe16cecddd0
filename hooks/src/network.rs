//! The `network` hook: puts every task on a named user network in pre-create.

use async_trait::async_trait;
use hoist_core::{Error, Hook, HookContext, NetworkMode, Result, TaskSpec};
use serde::Deserialize;

/// The configuration of [`NetworkHook`] (section `network:`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// The network every task joins. When unset, the value of the task label [`label`] is used.
    ///
    /// [`label`]: NetworkConfig::label
    #[serde(default)]
    pub name: Option<String>,
    /// The task label naming the network when `name` is unset (default
    /// [`hoist_core::labels::FRAMEWORK_NAME`], so each framework's tasks share the framework's network).
    #[serde(default = "NetworkConfig::default_label")]
    pub label: String,
    /// The hook's priority (default 0).
    #[serde(default)]
    pub priority: i64,
}

impl NetworkConfig {
    fn default_label() -> String {
        hoist_core::labels::FRAMEWORK_NAME.to_owned()
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            name: None,
            label: NetworkConfig::default_label(),
            priority: 0,
        }
    }
}

/// Sets every task's network to a named user network before its container is created.
///
/// It creates nothing: the network must exist in the backend (`docker network create ...`), and
/// a backend without user networks rejects the task. The network is `name` when configured,
/// otherwise the value of the task's `label` (by default [`hoist_core::labels::FRAMEWORK_NAME`]); a task with
/// neither fails to launch with a message saying so.
#[derive(Debug, Clone, Default)]
pub struct NetworkHook {
    config: NetworkConfig,
}

impl NetworkHook {
    /// The name it registers under.
    pub const NAME: &'static str = "network";

    /// A hook that reads the network's name from each task's [`hoist_core::labels::FRAMEWORK_NAME`].
    pub fn new() -> Self {
        NetworkHook::default()
    }

    /// A hook that puts every task on `network`.
    pub fn named(network: impl Into<String>) -> Self {
        NetworkHook::with_config(NetworkConfig {
            name: Some(network.into()),
            ..NetworkConfig::default()
        })
    }

    /// A hook with `config` (checked by [`Hook::validate`]).
    pub fn with_config(config: NetworkConfig) -> Self {
        NetworkHook { config }
    }
}

/// Checks a network name as Docker takes it: a letter or digit, then letters, digits, `_`, `.`
/// or `-`.
fn check_network_name(name: &str) -> std::result::Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if first_ok
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= 255
    {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid network name (a letter or digit, then letters, digits, `_`, `.` or `-`)"
        ))
    }
}

#[async_trait]
impl Hook for NetworkHook {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn priority(&self) -> i64 {
        self.config.priority
    }

    fn validate(&self) -> Result<()> {
        if let Some(name) = &self.config.name {
            check_network_name(name)
                .map_err(|problem| Error::invalid_field("network.name", problem))?;
        }
        if self.config.label.trim().is_empty() {
            return Err(Error::invalid_field(
                "network.label",
                "must name a task label",
            ));
        }
        Ok(())
    }

    async fn pre_create(&self, _ctx: &mut HookContext<'_>, task: &mut TaskSpec) -> Result<()> {
        let name = match &self.config.name {
            Some(name) => name.clone(),
            None => {
                let label = &self.config.label;
                let name = task.labels.get(label).ok_or_else(|| {
                    Error::invalid(format!(
                        "no network to join: `network.name` is not configured and the task has no `{label}` label"
                    ))
                    .with_context("label", label)
                })?;
                check_network_name(name).map_err(|problem| {
                    Error::invalid(format!("label `{label}`: {problem}"))
                        .with_context("label", label)
                })?;
                name.clone()
            }
        };
        if let Some(previous) = task
            .container
            .network
            .as_ref()
            .filter(|p| **p != NetworkMode::User(name.clone()))
        {
            tracing::info!(task = %task.id, ?previous, network = %name, "replacing the task's network mode");
        }
        task.container.network = Some(NetworkMode::User(name));
        Ok(())
    }
}
