//! The executor's state: the tasks the agent launched, their updates, the shutdown.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use hoist_core::{ErrorKind, Executor, TaskId};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::metrics::DriverMetrics;
use super::{DriverOptions, Exit};
use crate::convert;
use crate::env::AgentEnv;
use crate::ledger::Ledger;
use crate::wire::{self, Base64, Call, Event, EventType, FrameworkInfo, TaskInfo};

/// A shutdown under way: every task is being killed.
pub(super) struct Shutdown {
    pub(super) done: Pin<Box<dyn Future<Output = ()> + Send>>,
    pub(super) finished: bool,
    pub(super) deadline: Instant,
    pub(super) exit: Exit,
}

/// Everything the driver knows.
pub(super) struct State {
    pub(super) env: AgentEnv,
    pub(super) executor: Executor,
    pub(super) options: DriverOptions,
    pub(super) calls: mpsc::UnboundedSender<Call>,
    pub(super) ledger: Ledger,
    pub(super) framework: Option<FrameworkInfo>,
    pub(super) agent_id: Option<wire::AgentId>,
    pub(super) running: HashSet<TaskId>,
    pub(super) agent_ids: HashMap<String, wire::AgentId>,
    pub(super) shutdown: Option<Shutdown>,
    pub(super) connected: bool,
    pub(super) subscribed_once: bool,
    /// The driver's metrics, when it was given a registry.
    pub(super) metrics: Option<DriverMetrics>,
    /// The UUIDs of the updates the last SUBSCRIBE carried.
    pub(super) carried: HashSet<Vec<u8>>,
    /// Framework messages waiting for a subscription.
    pub(super) held_messages: Vec<Vec<u8>>,
    /// Where MESSAGE events go, when someone asked for them.
    pub(super) inbox: Option<mpsc::UnboundedSender<Vec<u8>>>,
}

impl State {
    /// Sets the gauge of updates waiting for their acknowledgement.
    pub(super) fn record_pending(&self) {
        if let Some(metrics) = &self.metrics {
            metrics
                .updates_unacknowledged
                .set(i64::try_from(self.ledger.pending()).unwrap_or(i64::MAX));
        }
    }

    pub(super) fn shutdown_complete(&self) -> Option<Exit> {
        let s = self.shutdown.as_ref()?;
        // After SHUTDOWN, wait for the agent to acknowledge the terminal updates (bounded by
        // the deadline); when the agent is gone there is nobody to wait for.
        let drained = self.ledger.pending() == 0
            || !self.connected
            || !matches!(s.exit, Exit::Shutdown | Exit::Stopped);
        (s.finished && drained).then_some(s.exit)
    }

    pub(super) fn begin_shutdown(&mut self, exit: Exit, grace: Duration) {
        if self.shutdown.is_some() {
            return;
        }
        // Leave a fifth of the period (at most 1 s) to send the terminal updates.
        let margin = (grace / 5).min(Duration::from_secs(1));
        let kill_grace = grace.saturating_sub(margin);
        let executor = self.executor.clone();
        self.shutdown = Some(Shutdown {
            done: Box::pin(async move { executor.shutdown(Some(kill_grace)).await }),
            finished: false,
            deadline: Instant::now() + grace,
            exit,
        });
    }

    /// Handles one event; returns a reason to drop the subscription and resubscribe.
    pub(super) fn on_event(&mut self, event: Event) -> Option<String> {
        match event.kind {
            EventType::Subscribed => {
                let Some(subscribed) = event.subscribed else {
                    return Some("SUBSCRIBED without its `subscribed` payload".into());
                };
                self.connected = true;
                self.subscribed_once = true;
                self.agent_id = subscribed.agent_info.id.clone();
                if let Some(grace) = subscribed.executor_info.shutdown_grace_period {
                    self.env.shutdown_grace_period = grace.to_duration();
                }
                self.framework = Some(subscribed.framework_info);
                // The agent replays the updates the SUBSCRIBE carried; the ones made since it
                // was built go out now.
                self.ledger.mark_sent(&self.carried, Instant::now());
                self.resend_due();
                for data in std::mem::take(&mut self.held_messages) {
                    self.send_message(data);
                }
            }
            EventType::Launch => match event.launch {
                Some(launch) => self.launch(vec![launch.task], false),
                None => tracing::warn!("LAUNCH without its `launch` payload; skipped"),
            },
            EventType::LaunchGroup => match event.launch_group {
                Some(group) => self.launch(group.task_group.tasks, true),
                None => tracing::warn!("LAUNCH_GROUP without its `launch_group` payload; skipped"),
            },
            EventType::Kill => match event.kill {
                Some(kill) => {
                    let grace = kill
                        .kill_policy
                        .and_then(|k| k.grace_period)
                        .map(wire::DurationInfo::to_duration);
                    let task = TaskId::new(kill.task_id.value.as_str());
                    if let Err(e) = self.executor.kill(&task, grace) {
                        tracing::info!(%task, error = %e, "KILL of a task that is not running; ignored");
                    }
                }
                None => tracing::warn!("KILL without its `kill` payload; skipped"),
            },
            EventType::Acknowledged => match event.acknowledged {
                Some(ack) => {
                    if self.ledger.acknowledge(&ack.task_id.value, &ack.uuid.0) {
                        if let Some(metrics) = &self.metrics {
                            metrics.updates_acknowledged.inc();
                        }
                    } else {
                        tracing::debug!(task = %ack.task_id, "acknowledgement of no pending update");
                    }
                    self.record_pending();
                }
                None => tracing::warn!("ACKNOWLEDGED without its payload; skipped"),
            },
            EventType::Message => match event.message {
                Some(message) => {
                    tracing::info!(bytes = message.data.0.len(), "message from the scheduler");
                    if let Some(inbox) = &self.inbox
                        && inbox.send(message.data.0).is_err()
                    {
                        tracing::debug!("nobody reads framework messages any more");
                    }
                }
                None => tracing::warn!("MESSAGE without its `message` payload; skipped"),
            },
            EventType::Shutdown => {
                tracing::info!(grace = ?self.env.shutdown_grace_period, "SHUTDOWN: killing every task");
                self.begin_shutdown(Exit::Shutdown, self.env.shutdown_grace_period);
            }
            EventType::Error => {
                let message = event.error.map(|e| e.message).unwrap_or_default();
                return Some(format!("the agent sent ERROR: {message}"));
            }
            EventType::Heartbeat => tracing::trace!("heartbeat"),
            EventType::Unknown(name) => {
                tracing::warn!(event = %name, "unknown event type; skipped")
            }
        }
        None
    }

    pub(super) fn launch(&mut self, tasks: Vec<TaskInfo>, group: bool) {
        let mut specs = Vec::with_capacity(tasks.len());
        let mut first_error = None;
        for task in &tasks {
            let spec = task.fields().and_then(|fields| {
                self.agent_ids
                    .insert(task.task_id().value.clone(), fields.agent_id.clone());
                let mut spec = convert::task_spec(&fields)?;
                self.apply_defaults(&fields, &mut spec);
                Ok(spec)
            });
            match spec {
                Ok(spec) => specs.push(spec),
                Err(e) => {
                    first_error
                        .get_or_insert_with(|| (task.task_id().value.clone(), e.to_string()));
                }
            }
        }
        if let Some((bad, message)) = first_error {
            // A group is launched atomically: one bad task fails all of them.
            for task in tasks {
                let id = TaskId::new(task.task_id().value.as_str());
                let (reason, text) = match (group, task.task_id().value == bad) {
                    (false, _) => (wire::Reason::TaskInvalid, message.clone()),
                    (true, true) => (wire::Reason::TaskGroupInvalid, message.clone()),
                    (true, false) => (
                        wire::Reason::TaskGroupInvalid,
                        format!("task {bad} of its group is invalid: {message}"),
                    ),
                };
                self.ledger.add_task(task);
                self.emit(&id, wire::TaskState::Error, Some(reason), Some(text), None);
            }
            return;
        }
        for (task, spec) in tasks.into_iter().zip(specs) {
            if self.ledger.has_terminal(&task.task_id().value) {
                continue;
            }
            self.ledger.add_task(task);
            let executor = self.executor.clone();
            let id = spec.id.clone();
            match executor.launch(spec) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    tracing::warn!(task = %id, "LAUNCH of a task that is already running; ignored");
                }
                Err(e) => {
                    let reason = Some(wire::Reason::TaskInvalid);
                    self.emit(
                        &id,
                        wire::TaskState::Error,
                        reason,
                        Some(format!("not launched: {e}")),
                        None,
                    );
                }
            }
        }
    }

    /// Applies the executor-wide settings of the options to a task.
    pub(super) fn apply_defaults(
        &self,
        fields: &wire::TaskInfoFields,
        spec: &mut hoist_core::TaskSpec,
    ) {
        if let (None, Some(grace)) = (fields.kill_policy, self.options.default_kill_grace) {
            spec.kill_policy.grace = grace;
        }
        if let Some(framework) = &self.framework {
            spec.labels
                .entry(hoist_core::labels::FRAMEWORK_NAME.to_owned())
                .or_insert_with(|| framework.name.clone());
        }
        if let Some((host, mapped)) = &self.options.sandbox_mount {
            spec.container.volumes.push(hoist_core::Volume {
                host_path: host.clone(),
                container_path: mapped.clone(),
                read_only: false,
            });
        }
        for (name, value) in &self.options.task_environment {
            spec.container
                .env
                .entry(name.clone())
                .or_insert_with(|| value.clone());
        }
    }

    /// Turns an engine status into an update.
    pub(super) fn on_status(&mut self, status: hoist_core::TaskStatus) {
        let state = convert::task_state(status.state);
        let killing_allowed = self
            .framework
            .as_ref()
            .is_some_and(|f| f.has_capability("TASK_KILLING_STATE"));
        if state == wire::TaskState::Killing && !killing_allowed {
            return;
        }
        let was_running = self.running.contains(&status.task_id);
        if state == wire::TaskState::Running {
            self.running.insert(status.task_id.clone());
        }
        let reason = convert::reason(status.reason, state, was_running);
        let mut message = status.message.clone();
        if state.is_terminal() {
            self.running.remove(&status.task_id);
            if message.is_none() {
                message = Some(status.state.to_string());
            }
        }
        let healthy = status.healthy.or_else(|| {
            // A kill for failing health checks carries the verdict that caused it.
            (status.reason == Some(hoist_core::Reason::HealthCheckFailed) && state.is_terminal())
                .then_some(false)
        });
        self.emit(&status.task_id, state, reason, message, healthy);
    }

    pub(super) fn emit(
        &mut self,
        task: &TaskId,
        state: wire::TaskState,
        reason: Option<wire::Reason>,
        message: Option<String>,
        healthy: Option<bool>,
    ) {
        let mut status = wire::TaskStatus::new(wire::TaskId::new(task.as_str()), state);
        status.source = Some(wire::Source::Executor);
        status.reason = reason;
        status.message = message;
        status.healthy = healthy;
        status.executor_id = Some(self.env.executor_id.clone());
        status.agent_id = self
            .agent_ids
            .get(task.as_str())
            .cloned()
            .or_else(|| self.agent_id.clone());
        status.timestamp = Some(convert::timestamp(std::time::SystemTime::now()));
        status.uuid = Some(Base64(uuid::Uuid::new_v4().as_bytes().to_vec()));
        let sent_at = self.connected.then(Instant::now);
        if !self.ledger.push(status.clone(), sent_at) {
            tracing::warn!(%task, %state, "a second terminal update was suppressed");
            return;
        }
        self.record_pending();
        if self.connected {
            self.send_update(status);
        }
    }
}
