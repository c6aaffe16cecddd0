//! The ordered hook chain and how each phase runs.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::time::Instant;

use super::observer::Observer;

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

/// What the chain needs to build a [`HookContext`], and where it reports hook timings.
pub(crate) struct ChainEnv<'a> {
    pub executor_id: &'a ExecutorId,
    pub containerizer: &'a Arc<dyn Containerizer>,
    pub container_id: Option<&'a ContainerId>,
    pub state: &'a mut HookState,
    pub observer: &'a Observer,
}

impl HookChain {
    /// The hooks' names, in the order they run.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.hooks.iter().map(|h| h.name())
    }

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
        // A panicking hook is a failed hook, not a lost supervisor.
        let run = std::panic::AssertUnwindSafe(run)
            .catch_unwind()
            .map(|result| result.unwrap_or_else(|panic| Err(panicked(panic))));
        // Most hooks finish on their first poll: only the others pay for a timer.
        let mut run = std::pin::pin!(run);
        if let Some(result) = futures::future::poll_immediate(&mut run).await {
            return result.map_err(|e| hook_error(hook.name(), phase, e));
        }
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

    /// Runs `phase` through the hooks in order. A setup phase (pre-create, pre-run, post-run)
    /// stops at the first failure; a teardown phase runs every hook whatever fails. Returns the
    /// failures (at most one for a setup phase). Only pre-create may change the spec.
    pub(crate) async fn run(
        &self,
        phase: Phase,
        env: ChainEnv<'_>,
        task: &mut TaskSpec,
    ) -> Vec<Error> {
        let ChainEnv {
            executor_id,
            containerizer,
            container_id,
            state,
            observer,
        } = env;
        // Hooks are timed only for someone (a metrics registry, an event listener), and the end
        // of one hook is the start of the next: one clock reading per hook.
        let mut mark = observer.watched().then(Instant::now);
        let mut failures = Vec::new();
        for (index, hook) in self.hooks.iter().enumerate() {
            let mut ctx = HookContext {
                executor_id,
                containerizer,
                container_id,
                state: &mut *state,
            };
            let call = match phase {
                Phase::PreCreate => hook.pre_create(&mut ctx, task),
                Phase::PreRun => hook.pre_run(&mut ctx, task),
                Phase::PostRun => hook.post_run(&mut ctx, task),
                Phase::PreStop => hook.pre_stop(&mut ctx, task),
                Phase::PostStop => hook.post_stop(&mut ctx, task),
            };
            let result = self.bounded(&**hook, phase, call).await;
            if let Some(started) = mark {
                let now = Instant::now();
                let took = now - started;
                observer.hook_ran(&task.id, (index, hook.name()), phase, result.is_ok(), took);
                mark = Some(now);
            }
            if let Err(e) = result {
                if phase.is_setup() {
                    return vec![e];
                }
                tracing::warn!(task = %task.id, error = %e, "teardown hook failed; later hooks still run");
                failures.push(e);
            }
        }
        failures
    }
}

fn hook_error(hook: &str, phase: Phase, err: Error) -> Error {
    Error::new(ErrorKind::Hook, format!("hook `{hook}` failed in {phase}"))
        .with_operation(phase.as_str())
        .with_context("hook", hook)
        .with_source(err)
}

/// A hook that panicked, as an error of its own: the task's teardown then runs as for any
/// other hook failure.
fn panicked(panic: Box<dyn std::any::Any + Send>) -> Error {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    Error::new(ErrorKind::Backend, format!("panicked: {what}"))
}
