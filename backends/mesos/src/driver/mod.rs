//! [`MesosDriver`]: subscribes to the agent, turns its events into engine calls and the
//! engine's statuses into acknowledged updates, and survives agent restarts.

mod link;
mod metrics;
mod state;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use hoist_core::executor::StatusStream;
use hoist_core::{ErrorKind, Executor, Result};
use metrics::DriverMetrics;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::{AgentClient, ClientOptions};
use crate::env::AgentEnv;
use crate::ledger::Ledger;
use crate::wire::Call;
use link::{Link, Step};
use state::State;

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
    /// The driver's [`MesosDriver::stop_token`] was cancelled (the executor got SIGTERM, say);
    /// every task was killed and its terminal update sent, as after SHUTDOWN.
    Stopped,
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
    stop: CancellationToken,
    metrics: Option<DriverMetrics>,
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
            stop: CancellationToken::new(),
            metrics: None,
        }
    }

    /// Registers the driver's metrics in `registry`: `hoist_mesos_updates_sent_total` (UPDATE
    /// calls, resends included), `hoist_mesos_updates_acknowledged_total`,
    /// `hoist_mesos_updates_unacknowledged` (a gauge), `hoist_mesos_resubscriptions_total` and
    /// `hoist_mesos_agent_disconnections_total`.
    ///
    /// ```no_run
    /// # async fn run(driver: hoist_mesos::MesosDriver) {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let driver = driver.metrics(&mut registry);
    /// # let _ = driver.run().await;
    /// # }
    /// ```
    pub fn metrics(mut self, registry: &mut prometheus_client::registry::Registry) -> Self {
        self.metrics = Some(DriverMetrics::register(registry));
        self
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

    /// A token that stops the driver when cancelled: it kills every task within the agent's
    /// shutdown grace period, waits (within it) for the agent to acknowledge their terminal
    /// updates, and [`MesosDriver::run`] returns [`Exit::Stopped`]. Take it before `run`.
    ///
    /// ```no_run
    /// # async fn run(driver: hoist_mesos::MesosDriver) -> hoist_core::Result<()> {
    /// let stop = driver.stop_token();
    /// let run = driver.run();
    /// tokio::pin!(run);
    /// tokio::select! {
    ///     exit = &mut run => println!("{:?}", exit?),
    ///     _ = tokio::signal::ctrl_c() => {
    ///         stop.cancel();
    ///         println!("{:?}", run.await?);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
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
        // The background work (the calls sender, the connections' tasks) is owned here and
        // ended before `run` returns.
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let client = |options: &DriverOptions, env: &AgentEnv| {
            AgentClient::new(
                env.agent_endpoint.clone(),
                env.authentication_token.clone(),
                options.client.clone(),
            )
            .with_tracker(tracker.clone())
        };
        let (calls_tx, calls_rx) = mpsc::unbounded_channel();
        let events = client(&self.options, &self.env);
        tracker.spawn(link::send_calls(
            client(&self.options, &self.env),
            calls_rx,
            cancel.clone(),
        ));
        let drain = self.options.client.call_timeout;
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
            metrics: self.metrics,
            carried: HashSet::new(),
            held_messages: Vec::new(),
            inbox: self.inbox,
        };
        let exit = state
            .serve(events, self.statuses, self.messages_rx, self.stop)
            .await;
        // Dropping the state closes the calls channel: the sender sends what is queued (one
        // call timeout at most), then everything still running is cancelled and awaited.
        drop(state);
        tracker.close();
        if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
            tracing::warn!("calls still queued for the agent were dropped");
        }
        cancel.cancel();
        tracker.wait().await;
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

impl State {
    async fn serve(
        &mut self,
        client: AgentClient,
        mut statuses: StatusStream,
        mut messages: mpsc::UnboundedReceiver<Vec<u8>>,
        stop: CancellationToken,
    ) -> Result<Exit> {
        let client = Arc::new(client);
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
                () = stop.cancelled(), if self.shutdown.is_none() => {
                    tracing::info!(grace = ?self.env.shutdown_grace_period, "stopped: killing every task");
                    self.begin_shutdown(Exit::Stopped, self.env.shutdown_grace_period);
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
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
