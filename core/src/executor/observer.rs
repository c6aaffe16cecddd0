//! Where the engine reports what it sees besides statuses: task events and metrics.

use std::time::Duration;

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::hook::Phase;
use crate::observe::metrics::HookSeries;
use crate::observe::{EngineMetrics, EventScope, TaskEvent, TaskEventKind};
use crate::status::{Reason, TaskState};
use crate::task::TaskId;

/// The executor's event channel and, when the builder was given a registry, its metrics.
#[derive(Debug)]
pub(crate) struct Observer {
    events: broadcast::Sender<Arc<TaskEvent>>,
    metrics: Option<EngineMetrics>,
    /// The metric series of each hook, in the chain's order.
    hooks: Vec<HookSeries>,
}

impl Observer {
    /// An observer for hooks named `hooks` (in the chain's order).
    pub(crate) fn new<'a>(
        capacity: usize,
        metrics: Option<EngineMetrics>,
        hooks: impl Iterator<Item = &'a str>,
    ) -> Self {
        let (events, _) = broadcast::channel(capacity);
        let hooks = match &metrics {
            Some(metrics) => hooks.map(|name| metrics.hook_series(name)).collect(),
            None => Vec::new(),
        };
        Observer {
            events,
            metrics,
            hooks,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<TaskEvent>> {
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
            let _ = self.events.send(Arc::new(make()));
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

    /// Launch step `index` (pre_create, create, pre_run, start, post_run) took `took`.
    pub(crate) fn step(&self, index: usize, took: Duration) {
        if let Some(metrics) = &self.metrics {
            metrics.step(index, took);
        }
    }

    /// The hook at `index` of the chain, named `hook`, ran `phase`.
    pub(crate) fn hook_ran(
        &self,
        task: &TaskId,
        (index, hook): (usize, &str),
        phase: Phase,
        ok: bool,
        took: Duration,
    ) {
        if let Some(series) = self.hooks.get(index) {
            series.observe(phase, ok, took);
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
