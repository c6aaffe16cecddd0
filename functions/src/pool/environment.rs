//! One environment of the pool and its state machine.

use std::fmt;

use tokio::time::Instant;

/// The state of an environment.
///
/// ```text
/// starting ──ready──▶ ready ⇄ busy
///    │                  │      │
///    └──▶ failed ◀──────┴──────┘ (crash, start-up deadline, broken lease)
///                  ready ──keepalive──▶ stopping
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvironmentState {
    /// Being launched; it serves the request that started it once ready.
    Starting,
    /// Idle and reusable; the keepalive timer runs.
    Ready,
    /// Serving at least one invocation.
    Busy,
    /// Being stopped (idle past its keepalive, or the pool is shutting down).
    Stopping,
    /// Crashed, missed its start-up deadline or broke an invocation; being torn down.
    Failed,
}

impl EnvironmentState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvironmentState::Starting => "starting",
            EnvironmentState::Ready => "ready",
            EnvironmentState::Busy => "busy",
            EnvironmentState::Stopping => "stopping",
            EnvironmentState::Failed => "failed",
        }
    }

    /// Whether the state may change to `next`.
    pub fn can_become(self, next: EnvironmentState) -> bool {
        use EnvironmentState::*;
        matches!(
            (self, next),
            (Starting, Busy | Ready | Failed | Stopping)
                | (Ready, Ready | Busy | Stopping | Failed)
                | (Busy, Busy | Ready | Failed | Stopping)
                | (Stopping, Stopping | Failed)
                | (Failed, Failed)
        )
    }
}

impl fmt::Display for EnvironmentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The pool's record of one environment.
#[derive(Debug)]
pub(crate) struct Environment {
    pub key: super::FunctionKey,
    pub state: EnvironmentState,
    pub in_flight: usize,
    pub capacity: usize,
    /// When it last became idle; the keepalive counts from here.
    pub idle_since: Instant,
    /// Whether its keepalive reaper task runs (one per environment, not one per release).
    pub reaper: bool,
    /// Prewarmed environments are never reaped by the keepalive.
    pub pinned: bool,
}

impl Environment {
    pub fn set_state(&mut self, next: EnvironmentState) {
        debug_assert!(
            self.state.can_become(next),
            "environment state {} cannot become {next}",
            self.state
        );
        self.state = next;
    }

    pub fn has_room(&self) -> bool {
        matches!(self.state, EnvironmentState::Ready | EnvironmentState::Busy)
            && self.in_flight < self.capacity
    }
}
