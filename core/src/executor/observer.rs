//! Where the engine reports what it sees besides statuses: task events and metrics.

use std::time::Duration;

use tokio::sync::broadcast;

use crate::hook::Phase;
use crate::observe::{EngineMetrics, EventScope, TaskEvent, TaskEventKind};
use crate::status::{Reason, TaskState};
use crate::task::TaskId;

/// The executor's event channel and, when the builder was given a registry, its metrics.
#[derive(Debug)]
pub(crate) struct Observer {
    events: broadcast::Sender<TaskEvent>,
    metrics: Option<EngineMetrics>,
}

impl Observer {
    pub(crate) fn new(capacity: usize, metrics: Option<EngineMetrics>) -> Self {
        let (events, _) = broadcast::channel(capacity);
        Observer { events, metrics }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<TaskEvent> {
        self.events.subscribe()
    }

    /// Whether anyone looks: a registry, or a listener of events. Timings are taken only then.
    pub(crate) fn watched(&self) -> bool {
        self.metrics.is_some() || self.events.receiver_count() > 0
    }

    /// The event scope of `task`, for the calls its supervisor makes.
    pub(crate) fn scope(&self, task: &TaskId) -> EventScope {
        EventScope {
            task: task.clone(),
            sink: self.events.clone(),
        }
    }

    /// Sends an event made only when someone listens.
    pub(crate) fn event(&self, make: impl FnOnce() -> TaskEvent) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(make());
        }
    }

    pub(crate) fn launched(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.launched();
        }
    }

    pub(crate) fn moved(&self, from: Option<TaskState>, to: TaskState, reason: Option<Reason>) {
        if let Some(metrics) = &self.metrics {
            metrics.moved(from, to, reason);
        }
    }

    /// A launch step took `took`.
    pub(crate) fn step(&self, phase: &'static str, took: Duration) {
        if let Some(metrics) = &self.metrics {
            metrics.step(phase, took);
        }
    }

    pub(crate) fn hook_ran(
        &self,
        task: &TaskId,
        hook: &str,
        phase: Phase,
        ok: bool,
        took: Duration,
    ) {
        if let Some(metrics) = &self.metrics {
            metrics.hook(hook, phase.as_str(), ok, took);
        }
        self.event(|| {
            let outcome = if ok { "ok" } else { "failed" };
            TaskEvent::new(
                task.clone(),
                TaskEventKind::HookPhase,
                format!("hook `{hook}` {outcome} in {phase} after {took:?}"),
            )
            .with("hook", hook)
            .with("phase", phase)
            .with("duration_ms", format!("{:.3}", took.as_secs_f64() * 1000.0))
            .with("outcome", outcome)
        });
    }

    pub(crate) fn health(&self, healthy: bool) {
        if let Some(metrics) = &self.metrics {
            metrics.health(healthy);
        }
    }
}
