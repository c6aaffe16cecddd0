//! Reaping: idle environments stop after the keepalive (at once with a zero keepalive),
//! broken and failed ones at once. Stops and reapers run on the pool's task tracker.

use std::sync::Arc;

use hoist_core::scheduler::EnvironmentId;
use tokio::time::Instant;

use super::{EnvironmentState, Inner};

/// What a keepalive reaper does when it wakes.
enum Reap {
    Sleep(Instant),
    Stop,
    Done,
}

impl Inner {
    /// Marks an environment, forgets it and stops it in the background.
    pub(super) fn discard(self: &Arc<Self>, id: &EnvironmentId, state: EnvironmentState) {
        if let Some(mut env) = self.state().environments.remove(id) {
            env.set_state(state);
        }
        let this = self.clone();
        let id = id.clone();
        // A stop always runs to its end, even during the shutdown (which awaits it).
        self.tasks
            .spawn(async move { this.launcher.stop(&id).await });
    }

    /// An environment has no invocation left: start its keepalive, or stop it at once. Each
    /// environment has at most one reaper task, which re-reads when the environment last became
    /// idle each time it wakes, so releasing an invocation spawns nothing.
    pub(super) fn idle(self: &Arc<Self>, id: &EnvironmentId) {
        let keepalive = self.config.keepalive;
        {
            let mut state = self.state();
            let Some(env) = state.environments.get_mut(id) else {
                return;
            };
            env.set_state(EnvironmentState::Ready);
            if env.pinned {
                return;
            }
            if !keepalive.is_zero() {
                env.idle_since = Instant::now();
                if std::mem::replace(&mut env.reaper, true) {
                    return;
                }
            }
        }
        if keepalive.is_zero() {
            self.discard(id, EnvironmentState::Stopping);
            return;
        }
        let this = self.clone();
        let id = id.clone();
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = this.reap(id, Instant::now() + keepalive) => {}
                // The shutdown stops every environment itself.
                () = cancel.cancelled() => {}
            }
        });
    }

    /// The keepalive reaper of one environment: stops it once it has been idle for the whole
    /// keepalive; ends when the environment is gone or stopping.
    async fn reap(self: Arc<Self>, id: EnvironmentId, first: Instant) {
        let keepalive = self.config.keepalive;
        let mut wake = first;
        loop {
            tokio::time::sleep_until(wake).await;
            let next = {
                let mut state = self.state();
                match state.environments.get_mut(&id) {
                    None => Reap::Done,
                    Some(env) => match env.state {
                        EnvironmentState::Ready => {
                            let due = env.idle_since + keepalive;
                            if due <= Instant::now() {
                                env.reaper = false;
                                Reap::Stop
                            } else {
                                Reap::Sleep(due)
                            }
                        }
                        // Busy now: it becomes idle again no earlier than a keepalive from here.
                        EnvironmentState::Busy => Reap::Sleep(Instant::now() + keepalive),
                        _ => {
                            env.reaper = false;
                            Reap::Done
                        }
                    },
                }
            };
            match next {
                Reap::Sleep(at) => wake = at,
                Reap::Stop => {
                    tracing::debug!(environment = %id, "keepalive expired");
                    self.discard(&id, EnvironmentState::Stopping);
                    return;
                }
                Reap::Done => return,
            }
        }
    }
}
