//! [`AgentSimulator`]: a small HTTP server on loopback that speaks the agent's side of
//! `POST /api/v1/executor`, for tests of executors.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hoist_core::{Error, ErrorKind, Result};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::EXECUTOR_API_PATH;
use crate::env::AgentEnv;
use crate::recordio;
use crate::wire::{
    AgentId, AgentInfo, Call, CallType, DurationInfo, Event, EventType, ExecutorId, ExecutorInfo,
    FrameworkCapability, FrameworkId, FrameworkInfo, KillPolicyInfo, Subscribe, Subscribed, TaskId,
    TaskInfo, TaskState, TaskStatus,
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

struct SimState {
    seen: Snapshot,
    ack_mode: AckMode,
    stream: Option<mpsc::UnboundedSender<Bytes>>,
    down_until: Option<Instant>,
    /// Whether SUBSCRIBED waits for [`AgentSimulator::release_subscribed`].
    hold_subscribed: bool,
    /// The SUBSCRIBED event held back, and the updates its SUBSCRIBE carried (replayed, and
    /// so acknowledged, only after SUBSCRIBED).
    held_subscribed: Option<(Bytes, Vec<TaskStatus>)>,
}

struct Shared {
    options: SimulatorOptions,
    state: Mutex<SimState>,
    changed: Notify,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, SimState> {
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
                hold_subscribed: false,
                held_subscribed: None,
            }),
            changed: Notify::new(),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
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
            accept(&mut state, status);
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

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(shared.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn reply(status: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(text.into())).boxed());
    *response.status_mut() = status;
    response
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> std::result::Result<Response<Body>, Infallible> {
    Ok(handle_call(&shared, req)
        .await
        .unwrap_or_else(|(status, why)| {
            let mut state = shared.state();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                state.seen.unavailable += 1;
            } else {
                state.seen.unauthorized += usize::from(status == StatusCode::UNAUTHORIZED);
                state.seen.rejected.push(format!("{status}: {why}"));
            }
            drop(state);
            shared.changed.notify_waiters();
            let mut response = reply(status, why);
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static(r#"Bearer realm="mesos-agent-executor""#),
                );
            }
            response
        }))
}

async fn handle_call(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
) -> std::result::Result<Response<Body>, (StatusCode, String)> {
    if req.method() != Method::POST || req.uri().path() != EXECUTOR_API_PATH {
        return Err((
            StatusCode::NOT_FOUND,
            format!("no endpoint {} {}", req.method(), req.uri().path()),
        ));
    }
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if let Some(token) = &shared.options.authentication_token {
        // The agent authenticates before it looks at the call.
        let expected = format!("Bearer {token}");
        match &authorization {
            Some(given) if *given == expected => {}
            Some(_) => {
                return Err((
                    StatusCode::UNAUTHORIZED,
                    "Failed to verify the bearer token".into(),
                ));
            }
            None => {
                return Err((
                    StatusCode::UNAUTHORIZED,
                    "Expecting 'Authorization' to be present".into(),
                ));
            }
        }
    }
    if shared
        .state()
        .down_until
        .is_some_and(|t| Instant::now() < t)
    {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "Agent has not finished recovery".into(),
        ));
    }
    match req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or(""))
    {
        None => {
            return Err((
                StatusCode::BAD_REQUEST,
                "Expecting 'Content-Type' to be present".into(),
            ));
        }
        Some("application/json") => {}
        Some(other) => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Unsupported 'Content-Type': {other}"),
            ));
        }
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?
        .to_bytes();
    let call: Call = serde_json::from_slice(&body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("Failed to parse body into Call: {e}"),
        )
    })?;
    shared
        .state()
        .seen
        .authorizations
        .push((call.kind, authorization));
    let o = &shared.options;
    if call.executor_id.value != o.executor_id || call.framework_id.value != o.framework_id {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "unknown executor {} of framework {}",
                call.executor_id, call.framework_id
            ),
        ));
    }
    match call.kind {
        CallType::Subscribe => {
            let subscribe = call.subscribe.ok_or((
                StatusCode::BAD_REQUEST,
                "Expecting 'subscribe' to be present".into(),
            ))?;
            for update in &subscribe.unacknowledged_updates {
                validate_update(&call.executor_id, &update.status)
                    .map_err(|e| (StatusCode::BAD_REQUEST, e))?;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let subscribed = recordio::encode(
                &serde_json::to_vec(&subscribed_event(o)).expect("events serialize"),
            );
            {
                let mut state = shared.state();
                state.stream = Some(tx.clone());
                state.seen.connected = true;
                state.seen.subscriptions.push(subscribe.clone());
                // The agent replays the updates the executor did not see acknowledged.
                let replayed = subscribe
                    .unacknowledged_updates
                    .into_iter()
                    .map(|u| u.status)
                    .collect();
                if state.hold_subscribed {
                    state.held_subscribed = Some((subscribed, replayed));
                } else {
                    tx.send(subscribed).expect("receiver held");
                    for status in replayed {
                        accept(&mut state, status);
                    }
                }
            }
            shared.changed.notify_waiters();
            let rng =
                StdRng::seed_from_u64(o.seed ^ shared.state().seen.subscriptions.len() as u64);
            let body = StreamBody::new(rechunk(rx, rng, o.max_chunk.max(1)));
            let mut response = Response::new(BodyExt::boxed(body));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
        kind => {
            let mut state = shared.state();
            if state.stream.is_none() {
                return Err((StatusCode::FORBIDDEN, "Executor is not subscribed".into()));
            }
            match kind {
                CallType::Update => {
                    let update = call.update.ok_or((
                        StatusCode::BAD_REQUEST,
                        "Expecting 'update' to be present".into(),
                    ))?;
                    validate_update(&call.executor_id, &update.status)
                        .map_err(|e| (StatusCode::BAD_REQUEST, e))?;
                    accept(&mut state, update.status);
                }
                CallType::Message => {
                    let message = call.message.ok_or((
                        StatusCode::BAD_REQUEST,
                        "Expecting 'message' to be present".into(),
                    ))?;
                    state.seen.messages.push(message.data.0);
                }
                CallType::Heartbeat => state.seen.heartbeats += 1,
                CallType::Subscribe => unreachable!("handled above"),
            }
            drop(state);
            shared.changed.notify_waiters();
            Ok(reply(StatusCode::ACCEPTED, ""))
        }
    }
}

fn subscribed_event(o: &SimulatorOptions) -> Event {
    let framework_id = FrameworkId::new(&o.framework_id);
    Event {
        subscribed: Some(Subscribed {
            executor_info: ExecutorInfo {
                executor_id: ExecutorId::new(&o.executor_id),
                framework_id: Some(framework_id.clone()),
                name: Some("simulated executor".into()),
                shutdown_grace_period: None,
            },
            framework_info: FrameworkInfo {
                user: "root".into(),
                name: "simulated framework".into(),
                id: Some(framework_id),
                checkpoint: Some(o.checkpoint),
                capabilities: o
                    .capabilities
                    .iter()
                    .map(|c| FrameworkCapability {
                        kind: Some(c.clone()),
                    })
                    .collect(),
            },
            agent_info: AgentInfo {
                hostname: "localhost".into(),
                id: Some(AgentId::new(&o.agent_id)),
                port: Some(5051),
            },
            container_id: None,
        }),
        ..Event::new(EventType::Subscribed)
    }
}

/// Checks an update as the agent's call validation does.
fn validate_update(executor: &ExecutorId, status: &TaskStatus) -> std::result::Result<(), String> {
    let uuid = status
        .uuid
        .as_ref()
        .ok_or("Expecting 'uuid' to be present")?;
    let uuid = uuid::Uuid::from_slice(&uuid.0)
        .map_err(|_| format!("Invalid UUID: {} bytes, expected 16", uuid.0.len()))?;
    if uuid.get_version_num() == 0 || uuid.get_version_num() > 5 {
        return Err(format!("Invalid UUID version {}", uuid.get_version_num()));
    }
    if status.source != Some(crate::wire::Source::Executor) {
        return Err(format!(
            "Received Call from executor with invalid source: {:?}",
            status.source
        ));
    }
    if status.state == TaskState::Staging {
        return Err("Received TASK_STAGING from executor".into());
    }
    if let Some(id) = status.executor_id.as_ref().filter(|id| *id != executor) {
        return Err(format!(
            "ExecutorID in Call: {executor} does not match ExecutorID in TaskStatus: {id}"
        ));
    }
    Ok(())
}

fn accept(state: &mut SimState, status: TaskStatus) {
    let uuid = status.uuid.clone().map(|u| u.0).unwrap_or_default();
    let task = status.task_id.clone();
    state.seen.updates.push(status);
    let times = match state.ack_mode {
        AckMode::Normal => 1,
        AckMode::Drop => 0,
        AckMode::Duplicate => 2,
    };
    for _ in 0..times {
        let ack = Event::acknowledged(task.clone(), uuid.clone());
        let json = serde_json::to_vec(&ack).expect("events serialize");
        if let Some(tx) = &state.stream {
            let _ = tx.send(recordio::encode(&json));
            state.seen.acknowledgements += 1;
        }
    }
}

/// Joins whatever records are queued and cuts them at random byte positions.
fn rechunk(
    rx: mpsc::UnboundedReceiver<Bytes>,
    rng: StdRng,
    max_chunk: usize,
) -> impl futures::Stream<Item = std::result::Result<Frame<Bytes>, Infallible>> {
    futures::stream::unfold(
        (rx, rng, BytesMut::new()),
        move |(mut rx, mut rng, mut buf)| async move {
            if buf.is_empty() {
                let first = rx.recv().await?;
                buf.extend_from_slice(&first);
                while let Ok(more) = rx.try_recv() {
                    buf.extend_from_slice(&more);
                }
            }
            let n = rng.random_range(1..=max_chunk).min(buf.len());
            let chunk = buf.split_to(n).freeze();
            Some((Ok(Frame::data(chunk)), (rx, rng, buf)))
        },
    )
}
