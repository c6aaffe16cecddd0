//! [`MesosDriver`]: subscribes to the agent, turns its events into engine calls and the
//! engine's statuses into acknowledged updates, and survives agent restarts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use hoist_core::executor::StatusStream;
use hoist_core::{ErrorKind, Executor, Result, TaskId};
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use crate::client::{AgentClient, ClientOptions, EventStream};
use crate::convert;
use crate::env::AgentEnv;
use crate::ledger::Ledger;
use crate::wire::{self, Base64, Call, Event, EventType, FrameworkInfo, TaskInfo};

/// How the driver behaves beyond what the agent's environment says.
#[derive(Debug, Clone)]
pub struct DriverOptions {
    /// Connection timeouts and limits.
    pub client: ClientOptions,
    /// How long an update waits for its acknowledgement before it is sent again (default 10 s).
    pub resend_interval: Duration,
    /// Send HEARTBEAT calls this often (default: never; agents older than the HEARTBEAT call
    /// refuse them).
    pub heartbeat_interval: Option<Duration>,
    /// The kill grace period of tasks whose `TaskInfo` has no kill policy (default: the
    /// engine's, 3 s). The Docker executor's `--stop_timeout` sets it.
    pub default_kill_grace: Option<Duration>,
    /// A host directory (the sandbox) and where to mount it in every task's container, as the
    /// Docker executor's `--sandbox_directory` and `--mapped_directory` do.
    pub sandbox_mount: Option<(PathBuf, PathBuf)>,
    /// Variables added to every task's environment (the task's own win), as the Docker
    /// executor's `--task_environment` does.
    pub task_environment: BTreeMap<String, String>,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            client: ClientOptions::default(),
            resend_interval: Duration::from_secs(10),
            heartbeat_interval: None,
            default_kill_grace: None,
            sandbox_mount: None,
            task_environment: BTreeMap::new(),
        }
    }
}

/// Why [`MesosDriver::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The agent sent SHUTDOWN; every task was killed.
    Shutdown,
    /// The connection broke and the framework does not checkpoint, so the executor cannot
    /// survive the agent; every task was killed.
    AgentLost,
    /// The agent did not come back within the recovery timeout; every task was killed.
    RecoveryTimedOut,
}

/// Drives an [`Executor`] from a Mesos agent.
///
/// ```no_run
/// # async fn run() -> hoist_core::Result<()> {
/// use std::sync::Arc;
/// use hoist_core::Executor;
/// use hoist_core::testing::FakeContainerizer;
/// use hoist_mesos::{AgentEnv, MesosDriver};
///
/// let env = AgentEnv::from_env()?;
/// let executor = Executor::builder(Arc::new(FakeContainerizer::new()))
///     .executor_id(env.executor_id.value.as_str())
///     .build()?;
/// let statuses = executor.statuses();
/// let exit = MesosDriver::new(env, executor, statuses).run().await?;
/// println!("executor done: {exit:?}");
/// # Ok(()) }
/// ```
pub struct MesosDriver {
    env: AgentEnv,
    executor: Executor,
    statuses: StatusStream,
    options: DriverOptions,
    messages_tx: mpsc::UnboundedSender<Vec<u8>>,
    messages_rx: mpsc::UnboundedReceiver<Vec<u8>>,
    inbox: Option<mpsc::UnboundedSender<Vec<u8>>>,
}

impl std::fmt::Debug for MesosDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MesosDriver")
            .field("env", &self.env)
            .field("options", &self.options)
            .finish()
    }
}

impl MesosDriver {
    /// A driver of `executor` (whose status stream is `statuses`) for the agent in `env`.
    pub fn new(env: AgentEnv, executor: Executor, statuses: StatusStream) -> Self {
        let (messages_tx, messages_rx) = mpsc::unbounded_channel();
        MesosDriver {
            env,
            executor,
            statuses,
            options: DriverOptions::default(),
            messages_tx,
            messages_rx,
            inbox: None,
        }
    }

    /// The data of every MESSAGE event (the scheduler's `sendFrameworkMessage`), in order;
    /// take it before [`MesosDriver::run`]. Without it the driver only logs their size. The
    /// stream ends when the driver stops; a second call replaces the first receiver.
    ///
    /// ```no_run
    /// # async fn run(mut driver: hoist_mesos::MesosDriver) {
    /// let mut inbox = driver.framework_messages();
    /// tokio::spawn(driver.run());
    /// while let Some(data) = inbox.recv().await {
    ///     println!("the scheduler says {}", String::from_utf8_lossy(&data));
    /// }
    /// # }
    /// ```
    pub fn framework_messages(&mut self) -> mpsc::UnboundedReceiver<Vec<u8>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inbox = Some(tx);
        rx
    }

    /// A handle that sends framework messages to the scheduler while the driver runs; take it
    /// before [`MesosDriver::run`].
    pub fn messenger(&self) -> Messenger {
        Messenger {
            tx: self.messages_tx.clone(),
        }
    }

    /// Replaces the options.
    pub fn options(mut self, options: DriverOptions) -> Self {
        self.options = options;
        self
    }

    /// Subscribes and serves the agent until SHUTDOWN, or until the agent is lost for good.
    /// Every task has been killed and torn down when it returns. An error means the very first
    /// SUBSCRIBE was refused as invalid (a wrong id), or the agent refused the executor's
    /// token (`401`; [`crate::client::is_authentication_failure`] tells), which no retry can
    /// fix.
    pub async fn run(self) -> Result<Exit> {
        // Only the messengers keep the channel open from now on.
        drop(self.messages_tx);
        let (calls_tx, calls_rx) = mpsc::unbounded_channel();
        let client = AgentClient::new(
            self.env.agent_endpoint.clone(),
            self.env.authentication_token.clone(),
            self.options.client.clone(),
        );
        let caller = tokio::spawn(send_calls(
            AgentClient::new(
                self.env.agent_endpoint.clone(),
                self.env.authentication_token.clone(),
                self.options.client.clone(),
            ),
            calls_rx,
        ));
        let mut state = State {
            env: self.env,
            executor: self.executor,
            options: self.options,
            calls: calls_tx,
            ledger: Ledger::default(),
            framework: None,
            agent_id: None,
            running: HashSet::new(),
            agent_ids: HashMap::new(),
            shutdown: None,
            connected: false,
            subscribed_once: false,
            carried: HashSet::new(),
            held_messages: Vec::new(),
            inbox: self.inbox,
        };
        let exit = state.serve(client, self.statuses, self.messages_rx).await;
        caller.abort();
        exit
    }
}

/// Sends framework messages (MESSAGE calls, the executor's `sendFrameworkMessage`) to the
/// scheduler through a [`MesosDriver`]; cheap to clone, usable from any task.
///
/// Like Mesos's framework messages, delivery is best effort: a message is sent once, on the
/// calls connection, in order with the status updates; one sent before the driver has
/// subscribed (or while it resubscribes) is held and sent after SUBSCRIBED; a call the agent
/// refuses is logged, not retried.
///
/// ```no_run
/// # async fn run() -> hoist_core::Result<()> {
/// use std::sync::Arc;
/// use hoist_core::Executor;
/// use hoist_core::testing::FakeContainerizer;
/// use hoist_mesos::{AgentEnv, MesosDriver};
///
/// let env = AgentEnv::from_env()?;
/// let executor = Executor::builder(Arc::new(FakeContainerizer::new())).build()?;
/// let statuses = executor.statuses();
/// let driver = MesosDriver::new(env, executor, statuses);
/// let messenger = driver.messenger();
/// let run = tokio::spawn(driver.run());
/// messenger.send(b"warm-up done".to_vec())?;   // arrives as the scheduler's frameworkMessage
/// run.await.expect("the driver does not panic")?;
/// assert!(messenger.send(b"too late".to_vec()).is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Messenger {
    tx: mpsc::UnboundedSender<Vec<u8>>,
}

impl Messenger {
    /// Queues `data` (any bytes; base64 on the wire) for the scheduler. An error of kind
    /// [`ErrorKind::InvalidState`] means the driver has stopped (or was dropped without
    /// running) and the message was not sent.
    pub fn send(&self, data: impl Into<Vec<u8>>) -> Result<()> {
        self.tx.send(data.into()).map_err(|_| {
            hoist_core::Error::new(
                ErrorKind::InvalidState,
                "the Mesos driver has stopped; the framework message was not sent",
            )
            .with_operation("send framework message")
        })
    }
}

/// Sends calls in order over the calls connection; failures are logged, and the ledger sends
/// updates again until they are acknowledged.
async fn send_calls(mut client: AgentClient, mut calls: mpsc::UnboundedReceiver<Call>) {
    while let Some(call) = calls.recv().await {
        if let Err(e) = client.call(&call).await {
            tracing::warn!(call = ?call.kind, error = %e, "call to the agent failed");
        }
    }
}

enum Link {
    Connecting(BoxFuture<'static, Result<EventStream>>),
    Connected(EventStream),
    Waiting(Pin<Box<Sleep>>),
    Closed,
}

enum Step {
    Event(Box<Event>),
    Broken(String),
    Subscribed(EventStream),
    Refused(hoist_core::Error),
    Retry,
}

impl Link {
    async fn step(&mut self) -> Step {
        match self {
            Link::Connecting(attempt) => match attempt.await {
                Ok(stream) => Step::Subscribed(stream),
                Err(e) => Step::Refused(e),
            },
            Link::Connected(stream) => match stream.next().await {
                Some(Ok(event)) => Step::Event(Box::new(event)),
                Some(Err(e)) => Step::Broken(e.to_string()),
                None => Step::Broken("the agent closed the event stream".into()),
            },
            Link::Waiting(sleep) => {
                sleep.await;
                Step::Retry
            }
            Link::Closed => std::future::pending().await,
        }
    }
}

struct Shutdown {
    done: Pin<Box<dyn Future<Output = ()> + Send>>,
    finished: bool,
    deadline: Instant,
    exit: Exit,
}

struct State {
    env: AgentEnv,
    executor: Executor,
    options: DriverOptions,
    calls: mpsc::UnboundedSender<Call>,
    ledger: Ledger,
    framework: Option<FrameworkInfo>,
    agent_id: Option<wire::AgentId>,
    running: HashSet<TaskId>,
    agent_ids: HashMap<String, wire::AgentId>,
    shutdown: Option<Shutdown>,
    connected: bool,
    subscribed_once: bool,
    /// The UUIDs of the updates the last SUBSCRIBE carried.
    carried: HashSet<Vec<u8>>,
    /// Framework messages waiting for a subscription.
    held_messages: Vec<Vec<u8>>,
    /// Where MESSAGE events go, when someone asked for them.
    inbox: Option<mpsc::UnboundedSender<Vec<u8>>>,
}

impl State {
    async fn serve(
        &mut self,
        client: AgentClient,
        mut statuses: StatusStream,
        mut messages: mpsc::UnboundedReceiver<Vec<u8>>,
    ) -> Result<Exit> {
        let client = std::sync::Arc::new(client);
        let mut link = Link::Connecting(self.subscribe(&client));
        let mut recovery_deadline: Option<Instant> = None;
        let mut resend = tokio::time::interval(self.options.resend_interval);
        resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let heartbeat_every = self
            .options
            .heartbeat_interval
            .unwrap_or(Duration::from_secs(86_400));
        let mut heartbeat =
            tokio::time::interval_at(Instant::now() + heartbeat_every, heartbeat_every);
        let mut statuses_open = true;
        let mut messages_open = true;
        loop {
            if let Some(exit) = self.shutdown_complete() {
                return Ok(exit);
            }
            let shutdown_deadline = self.shutdown.as_ref().map(|s| s.deadline);
            let shutting_down = self.shutdown.as_ref().is_some_and(|s| !s.finished);
            tokio::select! {
                biased;
                status = statuses.recv(), if statuses_open => match status {
                    Some(status) => self.on_status(status),
                    None => statuses_open = false,
                },
                () = async { self.shutdown.as_mut().expect("guarded").done.as_mut().await }, if shutting_down => {
                    if let Some(s) = self.shutdown.as_mut() {
                        s.finished = true;
                    }
                    // Every terminal status is in the channel by now.
                    while let Some(Some(status)) = statuses.recv().now_or_never() {
                        self.on_status(status);
                    }
                }
                () = sleep_until_opt(shutdown_deadline) => {
                    tracing::warn!(pending = self.ledger.pending(), "shutdown grace period over; exiting");
                    return Ok(self.shutdown.as_ref().map_or(Exit::Shutdown, |s| s.exit));
                }
                () = sleep_until_opt(recovery_deadline), if !self.connected => {
                    tracing::error!(timeout = ?self.env.recovery_timeout, "the agent did not come back; killing every task");
                    self.begin_shutdown(Exit::RecoveryTimedOut, self.env.shutdown_grace_period);
                    recovery_deadline = None;
                    link = Link::Closed;
                }
                message = messages.recv(), if messages_open => match message {
                    Some(data) => self.send_message(data),
                    None => messages_open = false,
                },
                _ = resend.tick(), if self.connected => self.resend_due(),
                _ = heartbeat.tick(), if self.connected && self.options.heartbeat_interval.is_some() => {
                    self.send(Call::heartbeat(self.env.executor_id.clone(), self.env.framework_id.clone()));
                }
                step = link.step() => match step {
                    Step::Event(event) => {
                        if let Some(reason) = self.on_event(*event) {
                            tracing::warn!(%reason, "resubscribing");
                            link = self.disconnected(&client, &mut recovery_deadline);
                        }
                    }
                    Step::Subscribed(stream) => {
                        tracing::info!(agent = %self.env.agent_endpoint, "subscribed");
                        link = Link::Connected(stream);
                    }
                    Step::Broken(why) => {
                        tracing::warn!(%why, "lost the agent");
                        link = self.disconnected(&client, &mut recovery_deadline);
                    }
                    Step::Refused(e) => {
                        if !self.subscribed_once && e.kind() == ErrorKind::InvalidInput {
                            return Err(e.with_operation("subscribe"));
                        }
                        tracing::warn!(error = %e, "SUBSCRIBE failed");
                        link = self.disconnected(&client, &mut recovery_deadline);
                    }
                    Step::Retry => link = Link::Connecting(self.subscribe(&client)),
                },
            }
        }
    }

    fn subscribe(
        &mut self,
        client: &std::sync::Arc<AgentClient>,
    ) -> BoxFuture<'static, Result<EventStream>> {
        let updates = self.ledger.unacknowledged_updates();
        self.carried = updates
            .iter()
            .filter_map(|u| u.status.uuid.as_ref().map(|u| u.0.clone()))
            .collect();
        let call = Call::subscribe(
            self.env.executor_id.clone(),
            self.env.framework_id.clone(),
            self.ledger.unacknowledged_tasks(),
            updates,
        );
        let client = client.clone();
        async move { client.subscribe(&call).await }.boxed()
    }

    /// The subscription is gone: give up at once without checkpointing, else wait a random
    /// backoff and try again until the recovery deadline (started at the first failure).
    fn disconnected(
        &mut self,
        client: &std::sync::Arc<AgentClient>,
        deadline: &mut Option<Instant>,
    ) -> Link {
        let _ = client;
        self.connected = false;
        if self.shutdown.is_some() {
            return Link::Closed;
        }
        if !self.env.checkpoint {
            tracing::error!("the framework does not checkpoint; killing every task and exiting");
            self.begin_shutdown(Exit::AgentLost, self.env.shutdown_grace_period);
            return Link::Closed;
        }
        deadline.get_or_insert_with(|| Instant::now() + self.env.recovery_timeout);
        let max = self.env.subscription_backoff_max;
        let wait = if max.is_zero() {
            Duration::ZERO
        } else {
            rand::rng().random_range(Duration::ZERO..=max)
        };
        Link::Waiting(Box::pin(tokio::time::sleep(wait)))
    }

    fn shutdown_complete(&self) -> Option<Exit> {
        let s = self.shutdown.as_ref()?;
        // After SHUTDOWN, wait for the agent to acknowledge the terminal updates (bounded by
        // the deadline); when the agent is gone there is nobody to wait for.
        let drained = self.ledger.pending() == 0 || !self.connected || s.exit != Exit::Shutdown;
        (s.finished && drained).then_some(s.exit)
    }

    fn begin_shutdown(&mut self, exit: Exit, grace: Duration) {
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

    fn send(&self, call: Call) {
        // The receiver lives as long as the driver.
        let _ = self.calls.send(call);
    }

    fn send_update(&self, status: wire::TaskStatus) {
        self.send(Call::update(
            self.env.executor_id.clone(),
            self.env.framework_id.clone(),
            status,
        ));
    }

    fn send_message(&mut self, data: Vec<u8>) {
        if self.connected {
            self.send(Call::message(
                self.env.executor_id.clone(),
                self.env.framework_id.clone(),
                data,
            ));
        } else {
            self.held_messages.push(data);
        }
    }

    fn resend_due(&mut self) {
        for status in self
            .ledger
            .due(Instant::now(), self.options.resend_interval)
        {
            self.send_update(status);
        }
    }

    /// Handles one event; returns a reason to drop the subscription and resubscribe.
    fn on_event(&mut self, event: Event) -> Option<String> {
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
                    let executor = self.executor.clone();
                    tokio::spawn(async move {
                        if let Err(e) = executor.kill(&task, grace) {
                            tracing::info!(%task, error = %e, "KILL of a task that is not running; ignored");
                        }
                    });
                }
                None => tracing::warn!("KILL without its `kill` payload; skipped"),
            },
            EventType::Acknowledged => match event.acknowledged {
                Some(ack) => {
                    if !self.ledger.acknowledge(&ack.task_id.value, &ack.uuid.0) {
                        tracing::debug!(task = %ack.task_id, "acknowledgement of no pending update");
                    }
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

    fn launch(&mut self, tasks: Vec<TaskInfo>, group: bool) {
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
    fn apply_defaults(&self, fields: &wire::TaskInfoFields, spec: &mut hoist_core::TaskSpec) {
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
    fn on_status(&mut self, status: hoist_core::TaskStatus) {
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

    fn emit(
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
        if self.connected {
            self.send_update(status);
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
