//! A user's hook and a user's executor, written against the `hoist` crate alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use hoist::{Hook, HookContext, Result, TaskSpec};

/// Counts the tasks it saw start, and sets a variable in each one.
#[derive(Debug, Default)]
pub struct CountStarts {
    /// Tasks seen in post-run.
    pub started: AtomicUsize,
}

#[async_trait]
impl Hook for CountStarts {
    fn name(&self) -> &str {
        "count-starts"
    }

    async fn pre_create(&self, _ctx: &mut HookContext<'_>, task: &mut TaskSpec) -> Result<()> {
        task.container
            .env
            .insert("GREETING".into(), "from a hook".into());
        Ok(())
    }

    async fn post_run(&self, ctx: &mut HookContext<'_>, _task: &TaskSpec) -> Result<()> {
        assert!(ctx.container_id.is_some());
        self.started.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The hook, shared: the caller keeps a clone to read the count.
pub fn shared_hook() -> Arc<CountStarts> {
    Arc::new(CountStarts::default())
}
