//! The [`Hook`] trait: code that runs around a task's launch and kill.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::container::{ContainerId, ExecutorId};
use crate::containerizer::Containerizer;
use crate::error::Result;
use crate::task::TaskSpec;

/// The phase a hook runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Before the container is created; may change the task spec.
    PreCreate,
    /// After create, before start.
    PreRun,
    /// After start, before the task is reported running.
    PostRun,
    /// Before the container is stopped.
    PreStop,
    /// After the container has stopped.
    PostStop,
}

impl Phase {
    /// The snake-case name (`pre_create`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::PreCreate => "pre_create",
            Phase::PreRun => "pre_run",
            Phase::PostRun => "post_run",
            Phase::PreStop => "pre_stop",
            Phase::PostStop => "post_stop",
        }
    }

    /// Whether a failure in this phase aborts the launch (pre-create, pre-run, post-run).
    pub fn is_setup(self) -> bool {
        matches!(self, Phase::PreCreate | Phase::PreRun | Phase::PostRun)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-task state for hooks: one typed slot per type, kept from pre-create to post-stop.
///
/// A hook keeps what it must undo (rules it added, links it made) here, under a type of its
/// own, never in globals.
#[derive(Default)]
pub struct HookState {
    slots: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl HookState {
    /// Stores `value`, returning the previous value of that type.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) -> Option<T> {
        self.slots
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| old.downcast().ok().map(|b| *b))
    }

    /// The value of type `T`, if stored.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.slots
            .get(&TypeId::of::<T>())
            .and_then(|b| b.downcast_ref())
    }

    /// The value of type `T`, mutably, if stored.
    pub fn get_mut<T: Any + Send + Sync>(&mut self) -> Option<&mut T> {
        self.slots
            .get_mut(&TypeId::of::<T>())
            .and_then(|b| b.downcast_mut())
    }

    /// Takes the value of type `T` out.
    pub fn remove<T: Any + Send + Sync>(&mut self) -> Option<T> {
        self.slots
            .remove(&TypeId::of::<T>())
            .and_then(|b| b.downcast().ok().map(|b| *b))
    }
}

impl std::fmt::Debug for HookState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookState")
            .field("slots", &self.slots.len())
            .finish()
    }
}

/// What a hook sees of the executor and the task it runs for.
pub struct HookContext<'a> {
    /// The executor running the task.
    pub executor_id: &'a ExecutorId,
    /// The containerizer, for hooks that act on the container (remove, inspect, exec).
    pub containerizer: &'a Arc<dyn Containerizer>,
    /// The container, once created (not set in pre-create, nor in teardown of a launch that
    /// failed before create).
    pub container_id: Option<&'a ContainerId>,
    /// Per-task state shared by all hooks, one slot per type.
    pub state: &'a mut HookState,
}

/// Code that runs around a task's launch and kill.
///
/// Hooks run one at a time, highest [`Hook::priority`] first, ties in registration order. A
/// failure in a setup phase ([`Phase::is_setup`]) aborts the launch: the engine tears down what
/// was created (running pre-stop and post-stop of every hook) and the task ends `failed` with the
/// hook's name and error. A failure in pre-stop or post-stop is reported and later hooks still
/// run. Every phase has a default that does nothing.
///
/// `Arc<H>` and `Box<H>` are hooks too, so one hook value can be shared
/// (`builder.hook(shared.clone())`).
///
/// ```
/// use async_trait::async_trait;
/// use hoist_core::{Hook, HookContext, Result, TaskSpec};
///
/// /// Adds an environment variable to every task.
/// #[derive(Debug)]
/// struct InjectEnv;
///
/// #[async_trait]
/// impl Hook for InjectEnv {
///     fn name(&self) -> &str { "inject-env" }
///     async fn pre_create(&self, _ctx: &mut HookContext<'_>, task: &mut TaskSpec) -> Result<()> {
///         task.container.env.insert("DEPLOYED_BY".into(), "hoist".into());
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Hook: Send + Sync + std::fmt::Debug + 'static {
    /// The hook's name, used in errors and logs.
    fn name(&self) -> &str;

    /// Higher runs first. Default 0.
    fn priority(&self) -> i64 {
        0
    }

    /// Checks the hook's configuration; called when the executor is built, so a bad key fails
    /// there and not at the first launch.
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// Before create. May change the task spec.
    async fn pre_create(&self, ctx: &mut HookContext<'_>, task: &mut TaskSpec) -> Result<()> {
        let _ = (ctx, task);
        Ok(())
    }

    /// After create, before start.
    async fn pre_run(&self, ctx: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
        let _ = (ctx, task);
        Ok(())
    }

    /// After start, before the task is reported running.
    async fn post_run(&self, ctx: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
        let _ = (ctx, task);
        Ok(())
    }

    /// Before stop.
    async fn pre_stop(&self, ctx: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
        let _ = (ctx, task);
        Ok(())
    }

    /// After the container has stopped.
    async fn post_stop(&self, ctx: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
        let _ = (ctx, task);
        Ok(())
    }
}

/// `Arc<H>` and `Box<H>` are the hook `H`.
macro_rules! pointer_forwards {
    ($pointer:ident) => {
        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<H: Hook + ?Sized> Hook for $pointer<H> {
            fn name(&self) -> &str {
                (**self).name()
            }
            fn priority(&self) -> i64 {
                (**self).priority()
            }
            fn validate(&self) -> Result<()> {
                (**self).validate()
            }
            async fn pre_create(
                &self,
                ctx: &mut HookContext<'_>,
                task: &mut TaskSpec,
            ) -> Result<()> {
                (**self).pre_create(ctx, task).await
            }
            async fn pre_run(&self, ctx: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
                (**self).pre_run(ctx, task).await
            }
            async fn post_run(&self, ctx: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
                (**self).post_run(ctx, task).await
            }
            async fn pre_stop(&self, ctx: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
                (**self).pre_stop(ctx, task).await
            }
            async fn post_stop(&self, ctx: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
                (**self).post_stop(ctx, task).await
            }
        }
    };
}

pointer_forwards!(Arc);
pointer_forwards!(Box);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_state_keeps_one_slot_per_type() {
        #[derive(Debug, PartialEq)]
        struct Rules(Vec<String>);
        let mut state = HookState::default();
        assert!(state.insert(Rules(vec!["a".into()])).is_none());
        assert!(state.insert(7u32).is_none());
        state.get_mut::<Rules>().unwrap().0.push("b".into());
        assert_eq!(
            state.get::<Rules>(),
            Some(&Rules(vec!["a".into(), "b".into()]))
        );
        assert_eq!(state.remove::<u32>(), Some(7));
        assert_eq!(state.get::<u32>(), None);
    }
}
