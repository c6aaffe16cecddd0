//! The ordered hook chain and how each phase runs.

use std::sync::Arc;
use std::time::Duration;

use crate::container::{ContainerId, ExecutorId};
use crate::containerizer::Containerizer;
use crate::error::{Error, ErrorKind, Result};
use crate::hook::{Hook, HookContext, HookState, Phase};
use crate::task::TaskSpec;

/// Hooks in the order they run: highest priority first, ties in registration order.
#[derive(Debug, Clone, Default)]
pub(crate) struct HookChain {
    hooks: Arc<[Arc<dyn Hook>]>,
    timeout: Duration,
}

/// What the chain needs to build a [`HookContext`].
pub(crate) struct ChainEnv<'a> {
    pub executor_id: &'a ExecutorId,
    pub containerizer: &'a Arc<dyn Containerizer>,
    pub container_id: Option<&'a ContainerId>,
    pub state: &'a mut HookState,
}

impl HookChain {
    pub(crate) fn new(mut hooks: Vec<Arc<dyn Hook>>, timeout: Duration) -> Self {
        // `sort_by_key` is stable: ties keep registration order.
        hooks.sort_by_key(|h| std::cmp::Reverse(h.priority()));
        HookChain {
            hooks: hooks.into(),
            timeout,
        }
    }

    async fn bounded(
        &self,
        hook: &dyn Hook,
        phase: Phase,
        run: impl Future<Output = Result<()>>,
    ) -> Result<()> {
        match tokio::time::timeout(self.timeout, run).await {
            Ok(result) => result.map_err(|e| hook_error(hook.name(), phase, e)),
            Err(_) => Err(hook_error(
                hook.name(),
                phase,
                Error::new(
                    ErrorKind::Timeout,
                    format!("did not finish within {:?}", self.timeout),
                ),
            )),
        }
    }

    /// Runs pre-create, letting each hook change the spec; stops at the first failure.
    pub(crate) async fn pre_create(&self, env: ChainEnv<'_>, task: &mut TaskSpec) -> Result<()> {
        let ChainEnv {
            executor_id,
            containerizer,
            container_id,
            state,
        } = env;
        for hook in self.hooks.iter() {
            let mut ctx = HookContext {
                executor_id,
                containerizer,
                container_id,
                state: &mut *state,
            };
            self.bounded(&**hook, Phase::PreCreate, hook.pre_create(&mut ctx, task))
                .await?;
        }
        Ok(())
    }

    /// Runs a setup phase (pre-run, post-run); stops at the first failure.
    pub(crate) async fn setup(
        &self,
        phase: Phase,
        env: ChainEnv<'_>,
        task: &TaskSpec,
    ) -> Result<()> {
        let ChainEnv {
            executor_id,
            containerizer,
            container_id,
            state,
        } = env;
        for hook in self.hooks.iter() {
            let mut ctx = HookContext {
                executor_id,
                containerizer,
                container_id,
                state: &mut *state,
            };
            match phase {
                Phase::PreRun => {
                    self.bounded(&**hook, phase, hook.pre_run(&mut ctx, task))
                        .await?
                }
                Phase::PostRun => {
                    self.bounded(&**hook, phase, hook.post_run(&mut ctx, task))
                        .await?
                }
                _ => unreachable_phase(phase)?,
            }
        }
        Ok(())
    }

    /// Runs a teardown phase (pre-stop, post-stop) through every hook, whatever fails, and
    /// returns the failures.
    pub(crate) async fn teardown(
        &self,
        phase: Phase,
        env: ChainEnv<'_>,
        task: &TaskSpec,
    ) -> Vec<Error> {
        let ChainEnv {
            executor_id,
            containerizer,
            container_id,
            state,
        } = env;
        let mut failures = Vec::new();
        for hook in self.hooks.iter() {
            let mut ctx = HookContext {
                executor_id,
                containerizer,
                container_id,
                state: &mut *state,
            };
            let result = match phase {
                Phase::PreStop => {
                    self.bounded(&**hook, phase, hook.pre_stop(&mut ctx, task))
                        .await
                }
                Phase::PostStop => {
                    self.bounded(&**hook, phase, hook.post_stop(&mut ctx, task))
                        .await
                }
                _ => unreachable_phase(phase),
            };
            if let Err(e) = result {
                tracing::warn!(task = %task.id, error = %e, "teardown hook failed; later hooks still run");
                failures.push(e);
            }
        }
        failures
    }
}

fn unreachable_phase(phase: Phase) -> Result<()> {
    Err(Error::new(
        ErrorKind::InvalidState,
        format!("{phase} is not run by this method"),
    ))
}

fn hook_error(hook: &str, phase: Phase, err: Error) -> Error {
    Error::new(
        ErrorKind::Hook,
        format!("hook `{hook}` failed in {phase}: {err}"),
    )
    .with_operation(phase.as_str())
    .with_context("hook", hook)
    .with_source(err)
}
