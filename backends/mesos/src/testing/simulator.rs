//! [`AgentSimulator`]: a small HTTP server on loopback that speaks the agent's side of
//! `POST /api/v1/executor`, for tests of executors.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hoist_core::{Error, ErrorKind, Result};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::env::AgentEnv;
use crate::recordio;
use crate::wire::{
    CallType, DurationInfo, Event, EventType, KillPolicyInfo, Subscribe, TaskId, TaskInfo,
    TaskState, TaskStatus,
};

/// What the simulator does with the updates it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckMode {
    /// Acknowledge each update once.
    #[default]
    Normal,
    /// Accept updates but never acknowledge them (lost acknowledgements).
    Drop,
    /// Acknowledge each update twice.
    Duplicate,
}

/// How the simulated agent and its framework look.
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    /// The framework's id.
    pub framework_id: String,
    /// The executor's id.
    pub executor_id: String,
    /// The agent's id.
    pub agent_id: String,
    /// The framework's capabilities (`TASK_KILLING_STATE`...).
    pub capabilities: Vec<String>,
    /// Whether the framework checkpoints (the `MESOS_CHECKPOINT` of [`AgentSimulator::env`]).
    pub checkpoint: bool,
    /// The largest chunk the event stream is cut into (records are joined and split at random
    /// byte positions up to this size).
    pub max_chunk: usize,
    /// The seed of the chunking.
    pub seed: u64,
    /// When set, every call must carry `Authorization: Bearer <token>`, as with an agent run
    /// with `--authenticate_http_executors`; any other call is answered `401 Unauthorized`.
    /// [`AgentSimulator::env`] then hands the token out as
    /// `MESOS_EXECUTOR_AUTHENTICATION_TOKEN` does.
    pub authentication_token: Option<String>,
}

impl Default for SimulatorOptions {
    fn default() -> Self {
        SimulatorOptions {
            framework_id: "framework-1".into(),
            executor_id: "executor-1".into(),
            agent_id: "agent-1".into(),
            capabilities: vec!["TASK_KILLING_STATE".into()],
            checkpoint: true,
            max_chunk: 7,
            seed: 7,
            authentication_token: None,
        }
    }
}

/// What the simulator has seen so far.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every SUBSCRIBE, in order.
    pub subscriptions: Vec<Subscribe>,
    /// Every accepted update, in arrival order, duplicates included (a resent update appears
    /// once per arrival).
    pub updates: Vec<TaskStatus>,
    /// Why each call refused as invalid was refused.
    pub rejected: Vec<String>,
    /// How many calls were answered `503` while the agent was down.
    pub unavailable: usize,
    /// How many ACKNOWLEDGED events were sent.
    pub acknowledgements: usize,
    /// The data of every MESSAGE call.
    pub messages: Vec<Vec<u8>>,
    /// How many HEARTBEAT calls arrived.
    pub heartbeats: usize,
    /// The type and `Authorization` header of every call that got past authentication, in
    /// arrival order.
    pub authorizations: Vec<(CallType, Option<String>)>,
    /// How many calls were answered `401 Unauthorized`.
    pub unauthorized: usize,
    /// Whether an executor is subscribed now.
    pub connected: bool,
}

impl Snapshot {
    /// The states reported for `task`, each distinct update (by UUID) once, in order.
    pub fn states(&self, task: &str) -> Vec<TaskState> {
        self.distinct(task).iter().map(|s| s.state).collect()
    }

    /// The distinct updates of `task` (by UUID), in order.
    pub fn distinct(&self, task: &str) -> Vec<TaskStatus> {
        let mut seen = HashSet::new();
        self.updates
            .iter()
            .filter(|s| s.task_id.value == task)
            .filter(|s| seen.insert(s.uuid.as_ref().map(|u| u.0.clone())))
            .cloned()
            .collect()
    }

    /// The terminal updates of `task` (distinct by UUID).
    pub fn terminal(&self, task: &str) -> Vec<TaskStatus> {
        self.distinct(task)
            .into_iter()
            .filter(|s| s.state.is_terminal())
            .collect()
    }
}

pub(super) struct SimState {
    pub(super) seen: Snapshot,
    pub(super) ack_mode: AckMode,
    pub(super) stream: Option<mpsc::UnboundedSender<Bytes>>,
    pub(super) down_until: Option<Instant>,
    /// Until when every call but SUBSCRIBE is answered `503` ([`AgentSimulator::recover_for`]).
    pub(super) recovering_until: Option<Instant>,
    /// Whether SUBSCRIBED waits for [`AgentSimulator::release_subscribed`].
    pub(super) hold_subscribed: bool,
    /// The SUBSCRIBED event held back, and the updates its SUBSCRIBE carried (replayed, and
    /// so acknowledged, only after SUBSCRIBED).
    pub(super) held_subscribed: Option<(Bytes, Vec<TaskStatus>)>,
}

pub(super) struct Shared {
    pub(super) options: SimulatorOptions,
    pub(super) state: Mutex<SimState>,
    pub(super) changed: Notify,
}

impl Shared {
    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The agent side of the executor API on `127.0.0.1:<random port>`.
///
/// It accepts SUBSCRIBE and answers with SUBSCRIBED on a RecordIO event stream whose records
/// it joins and splits at random; it validates every UPDATE as the agent does (a 16-byte
/// version-4 UUID, source `SOURCE_EXECUTOR`, never `TASK_STAGING`, the right executor) and
/// acknowledges it; it can restart, drop or duplicate acknowledgements, and send garbage.
/// With [`SimulatorOptions::authentication_token`] it also requires the bearer token on every
/// call, answering `401 Unauthorized` without it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> hoist_core::Result<()> {
/// use hoist_mesos::testing::{AgentSimulator, SimulatorOptions};
///
/// let agent = AgentSimulator::start(SimulatorOptions::default()).await?;
/// let env = agent.env();
/// assert!(env.agent_endpoint.starts_with("127.0.0.1:"));
/// assert!(!agent.snapshot().connected);
/// # Ok(()) }
/// ```
pub struct AgentSimulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for AgentSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSimulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for AgentSimulator {
    fn drop(&mut self) {
        self.server.abort();
        self.shared.state().stream = None;
    }
}

impl AgentSimulator {
    /// Starts the simulator on a free loopback port.
    pub async fn start(options: SimulatorOptions) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            options,
            state: Mutex::new(SimState {
                seen: Snapshot::default(),
                ack_mode: AckMode::Normal,
                stream: None,
                down_until: None,
                recovering_until: None,
                hold_subscribed: false,
                held_subscribed: None,
            }),
            changed: Notify::new(),
        });
        let server = tokio::spawn(super::http::serve(listener, shared.clone()));
        Ok(AgentSimulator {
            shared,
            addr,
            server,
        })
    }

    /// The agent's `host:port`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// The environment an agent would give the executor: the ids, this endpoint, checkpointing
    /// as configured, a 1 s backoff maximum and a 5 s shutdown grace period.
    pub fn env(&self) -> AgentEnv {
        let o = &self.shared.options;
        let mut env = AgentEnv::new(&o.framework_id, &o.executor_id, self.endpoint());
        env.checkpoint = o.checkpoint;
        env.subscription_backoff_max = Duration::from_millis(200);
        env.recovery_timeout = Duration::from_secs(30);
        env.authentication_token = o.authentication_token.clone();
        env
    }

    /// What the simulator has seen.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.state().seen.clone()
    }

    /// How many updates arrived and how many acknowledgements were sent, without copying the
    /// snapshot.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.shared.state();
        (state.seen.updates.len(), state.seen.acknowledgements)
    }

    /// Waits until `ready` holds for the snapshot, for at most `timeout`; the error names
    /// `what` and shows the snapshot.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        ready: impl Fn(&Snapshot) -> bool,
    ) -> Result<Snapshot> {
        let wait = async {
            loop {
                let notified = self.shared.changed.notified();
                let snapshot = self.snapshot();
                if ready(&snapshot) {
                    return snapshot;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| {
            Error::new(
                ErrorKind::Timeout,
                format!(
                    "the agent simulator did not see {what} within {timeout:?}: {:?}",
                    self.snapshot()
                ),
            )
        })
    }

    /// Sets how updates are acknowledged from now on.
    pub fn set_ack_mode(&self, mode: AckMode) {
        self.shared.state().ack_mode = mode;
    }

    /// Sends an event on the current stream; `false` when no executor is subscribed.
    pub fn send(&self, event: &Event) -> bool {
        let json = serde_json::to_vec(event).expect("events serialize");
        self.send_raw(recordio::encode(&json))
    }

    /// Sends raw bytes on the current stream (to test garbage and malformed frames).
    pub fn send_raw(&self, bytes: impl Into<Bytes>) -> bool {
        let state = self.shared.state();
        state
            .stream
            .as_ref()
            .is_some_and(|tx| tx.send(bytes.into()).is_ok())
    }

    /// LAUNCH.
    pub fn launch(&self, task: TaskInfo) -> bool {
        self.send(&Event::launch(task))
    }

    /// LAUNCH_GROUP.
    pub fn launch_group(&self, tasks: Vec<TaskInfo>) -> bool {
        self.send(&Event::launch_group(tasks))
    }

    /// KILL, with an optional grace-period override.
    pub fn kill(&self, task: &str, grace: Option<Duration>) -> bool {
        let policy = grace.map(|g| KillPolicyInfo {
            grace_period: Some(DurationInfo::from_duration(g)),
        });
        self.send(&Event::kill(TaskId::new(task), policy))
    }

    /// SHUTDOWN.
    pub fn shutdown(&self) -> bool {
        self.send(&Event::new(EventType::Shutdown))
    }

    /// Closes the event stream, as a crashing agent would, and answers every call with
    /// `503 Service Unavailable` for `downtime`, as a recovering agent does. Acknowledgements
    /// still queued on the old stream are lost with it.
    pub fn restart(&self, downtime: Duration) {
        let mut state = self.shared.state();
        state.stream = None;
        state.seen.connected = false;
        state.down_until = Some(Instant::now() + downtime);
        drop(state);
        self.shared.changed.notify_waiters();
    }

    /// Answers every call but SUBSCRIBE with `503 Service Unavailable` for `downtime`, keeping
    /// the event stream open, as an agent still recovering does once its executors have
    /// reconnected: apache/mesos `src/slave/http.cpp` (`Http::executor`) accepts a SUBSCRIBE
    /// while the agent is `RECOVERING` but answers any other call with
    /// `ServiceUnavailable("Agent has not finished recovery")`. Updates refused so are not
    /// accepted, and so not acknowledged.
    pub fn recover_for(&self, downtime: Duration) {
        self.shared.state().recovering_until = Some(Instant::now() + downtime);
        self.shared.changed.notify_waiters();
    }

    /// From now on, answers a SUBSCRIBE with its event stream but holds the SUBSCRIBED event
    /// back until [`AgentSimulator::release_subscribed`], so that a test can act while a
    /// subscription is on its way (an agent sends SUBSCRIBED only after it has processed the
    /// call: apache/mesos `src/slave/slave.cpp`, `Slave::subscribe`).
    pub fn hold_subscribed(&self) {
        self.shared.state().hold_subscribed = true;
    }

    /// Sends the held SUBSCRIBED event (if a SUBSCRIBE came) and stops holding; `false` when
    /// none was held.
    pub fn release_subscribed(&self) -> bool {
        let mut state = self.shared.state();
        state.hold_subscribed = false;
        let Some((event, replayed)) = state.held_subscribed.take() else {
            return false;
        };
        let sent = state
            .stream
            .as_ref()
            .is_some_and(|tx| tx.send(event).is_ok());
        for status in replayed {
            super::http::accept(&mut state, status);
        }
        drop(state);
        self.shared.changed.notify_waiters();
        sent
    }

    /// Closes the event stream without refusing the next SUBSCRIBE.
    pub fn drop_stream(&self) {
        self.restart(Duration::ZERO);
    }
}
