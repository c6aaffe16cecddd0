//! The `remove-container` hook: removes the stopped container in post-stop.

use async_trait::async_trait;
use hoist_core::{ErrorKind, Hook, HookContext, Result, TaskSpec};
use serde::Deserialize;

/// The configuration of [`RemoveContainerHook`] (section `remove-container:`; every key optional).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveContainerConfig {
    /// Remove even if the container still runs (it is then killed). Default `true`: post-stop
    /// runs after the stop, so this only matters when the stop itself failed.
    #[serde(default = "crate::config::yes")]
    pub force: bool,
    /// The hook's priority (default `-100`: after the other hooks' post-stop).
    #[serde(default = "RemoveContainerConfig::default_priority")]
    pub priority: i64,
}

impl RemoveContainerConfig {
    fn default_priority() -> i64 {
        -100
    }
}

impl Default for RemoveContainerConfig {
    fn default() -> Self {
        RemoveContainerConfig {
            force: true,
            priority: RemoveContainerConfig::default_priority(),
        }
    }
}

/// Removes the task's container once it has stopped, so nothing is left behind. Without it, the
/// stopped containers stay for inspection (`docker ps -a`).
///
/// It works on any backend through [`hoist_core::Containerizer::remove`], which is idempotent:
/// a container already gone is not an error.
///
/// ```
/// use hoist_core::Executor;
/// use hoist_core::testing::FakeContainerizer;
/// use hoist_hooks::RemoveContainerHook;
/// use std::sync::Arc;
///
/// let executor = Executor::builder(Arc::new(FakeContainerizer::new()))
///     .hook(RemoveContainerHook::new())
///     .build()
///     .unwrap();
/// # drop(executor);
/// ```
#[derive(Debug, Clone, Default)]
pub struct RemoveContainerHook {
    config: RemoveContainerConfig,
}

impl RemoveContainerHook {
    /// The name it registers under.
    pub const NAME: &'static str = "remove-container";

    /// A hook with the default configuration.
    pub fn new() -> Self {
        RemoveContainerHook::default()
    }

    /// A hook with `config`.
    pub fn with_config(config: RemoveContainerConfig) -> Self {
        RemoveContainerHook { config }
    }
}

#[async_trait]
impl Hook for RemoveContainerHook {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn priority(&self) -> i64 {
        self.config.priority
    }

    async fn post_stop(&self, ctx: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
        let Some(id) = ctx.container_id else {
            return Ok(());
        };
        match ctx.containerizer.remove(id, self.config.force).await {
            Ok(()) => {
                tracing::debug!(task = %task.id, container = %id, "removed the container");
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.with_context("container", id)),
        }
    }
}
