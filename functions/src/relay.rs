//! The Runtime API relay: a small process that holds each environment's Runtime API port
//! across restarts of the function executor, so that warm environments survive them.
//!
//! An unmodified runtime client (`awslambdaric`) long-polls
//! `GET /2018-06-01/runtime/invocation/next` and exits when that call fails, so the port it
//! talks to must outlive the executor's process. The relay ([`run_relay`], started detached by
//! [`RelayClient::start`], in a process group of its own) listens on those ports and forwards
//! each request over the unix socket [`RUNTIME_SOCKET`] in its directory to the executor that
//! serves the Runtime API there. While no executor answers (it is restarting), a `next` waits
//! and is sent again; a result posted meanwhile is accepted and dropped (its caller has gone
//! with the old executor). The executor drives the relay through [`CONTROL_SOCKET`]: it opens
//! and closes ports and lists what the relay holds, which is how a restarted executor finds
//! the environments its predecessor left (see
//! [`FunctionExecutor::recover_environments`](crate::FunctionExecutor::recover_environments)).
//!
//! The relay exits when told to ([`RelayClient::shutdown`]), or when no executor has answered
//! on [`RUNTIME_SOCKET`] for its linger (a few seconds when it holds no port); the runtimes it
//! served then see their `next` fail and exit, so nothing is left running for good.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use hoist_core::{Error, ErrorKind};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::{UnixListener, UnixStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::runtime_api::{accepted, error_document};

/// The relay's control socket, in its directory.
pub const CONTROL_SOCKET: &str = "relay.sock";
/// The executor's Runtime API socket, in the relay's directory: the relay forwards to it.
pub const RUNTIME_SOCKET: &str = "runtime.sock";
/// The header naming the environment a forwarded Runtime API request comes from.
pub(crate) const ENVIRONMENT_HEADER: &str = "x-hoist-environment";
/// The header with which the executor asks the relay to send a request again later (it does
/// not know the environment yet, or it is going away).
pub(crate) const RETRY_HEADER: &str = "x-hoist-relay";
/// How long a relay holding no port waits for an executor to come back.
const EMPTY_LINGER: Duration = Duration::from_secs(5);
/// How often a waiting request is sent again, and how often the relay looks for its executor.
const RETRY_EVERY: Duration = Duration::from_millis(100);
/// How long [`RelayClient::start`] waits for a new relay to answer.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// A port the relay holds for an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldEnvironment {
    /// The environment (the executor's task id).
    pub environment: String,
    /// The port its runtime calls.
    pub port: u16,
    /// What the executor recorded with it when it opened the port (the function version it
    /// runs), given back to a restarted executor.
    pub record: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct OpenRequest {
    bind: IpAddr,
    record: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Opened {
    port: u16,
}

/// The answer that tells the relay to send a Runtime API request again later.
pub(crate) fn retry_later() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(RETRY_HEADER, HeaderValue::from_static("retry"))],
    )
        .into_response()
}

fn is_retry(response: &Response) -> bool {
    response.status() == StatusCode::SERVICE_UNAVAILABLE
        && response.headers().contains_key(RETRY_HEADER)
}

/// Sends `request` over the unix socket `socket` and returns the answer (its body streams
/// on; the connection is driven on `tasks`).
async fn send(socket: &Path, request: Request, tasks: &TaskTracker) -> std::io::Result<Response> {
    let stream = UnixStream::connect(socket).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tasks.spawn(async move {
        // Ends with the response (the sender is dropped below), or with the socket.
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(std::io::Error::other)?;
    Ok(response.map(Body::new))
}

/// A request to the relay or executor at `path`, with `body`.
fn request(method: Method, path: &str, body: Body) -> Request {
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"));
    request
        .headers_mut()
        .insert(header::HOST, HeaderValue::from_static("hoist"));
    request
}

struct Held {
    port: u16,
    record: String,
    closed: CancellationToken,
}

struct Relay {
    dir: PathBuf,
    held: Mutex<HashMap<String, Held>>,
    tasks: TaskTracker,
    stop: CancellationToken,
    /// Wakes the waiting requests when an executor has taken over (so they need not wait
    /// for their next retry).
    resumed: tokio::sync::Notify,
    /// Connections to the executor's socket, kept for the next request.
    connections: Mutex<Vec<hyper::client::conn::http1::SendRequest<Body>>>,
}

impl Relay {
    fn connections(
        &self,
    ) -> std::sync::MutexGuard<'_, Vec<hyper::client::conn::http1::SendRequest<Body>>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `request` to the executor on a kept connection that is free, or a new one; the
    /// connection is kept for later requests (it is free again once this answer's body has
    /// been read).
    async fn to_executor(&self, mut request: Request) -> std::io::Result<Response> {
        loop {
            let Some(mut sender) = self.connections().pop() else {
                break;
            };
            if !sender.is_ready() {
                continue; // busy with an answer, or closed: it ends on its own
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.connections().push(sender);
                    return Ok(response.map(Body::new));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(std::io::Error::other(e.into_error())),
                },
            }
        }
        let stream = UnixStream::connect(self.dir.join(RUNTIME_SOCKET)).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        self.tasks.spawn(async move {
            // Ends when the executor closes it, or once no sender is kept.
            let _ = connection.await;
        });
        let response = sender
            .send_request(request)
            .await
            .map_err(std::io::Error::other)?;
        self.connections().push(sender);
        Ok(response.map(Body::new))
    }
}

impl Relay {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs a relay in `dir` until it is told to stop, `stop` fires, or no executor has answered
/// on [`RUNTIME_SOCKET`] for `linger` ([`EMPTY_LINGER`] at most when it holds no port). A
/// relay already answering in `dir` is [`ErrorKind::AlreadyExists`].
pub async fn run_relay(
    dir: &Path,
    linger: Duration,
    stop: CancellationToken,
) -> hoist_core::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::from(e)
            .with_operation("start the runtime api relay")
            .with_context("dir", dir.display())
    })?;
    let control = dir.join(CONTROL_SOCKET);
    if UnixStream::connect(&control).await.is_ok() {
        return Err(Error::new(
            ErrorKind::AlreadyExists,
            format!("a runtime api relay already answers in {}", dir.display()),
        ));
    }
    let _ = std::fs::remove_file(&control);
    let listener = UnixListener::bind(&control).map_err(|e| {
        Error::from(e)
            .with_operation("start the runtime api relay")
            .with_context("socket", control.display())
    })?;
    let relay = Arc::new(Relay {
        dir: dir.to_path_buf(),
        held: Mutex::default(),
        tasks: TaskTracker::new(),
        stop,
        resumed: tokio::sync::Notify::new(),
        connections: Mutex::default(),
    });
    let router = Router::new()
        .route("/environments", get(list))
        .route("/environments/{id}", put(open).delete(close))
        .route("/shutdown", post(shut_down))
        .route("/resume", post(resume))
        .with_state(relay.clone());
    let server =
        axum::serve(listener, router).with_graceful_shutdown(relay.stop.clone().cancelled_owned());
    let watch = watch_executor(&relay, linger);
    let (served, ()) = tokio::join!(server, watch);
    relay.stop.cancel();
    relay.connections().clear();
    relay.tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), relay.tasks.wait()).await;
    let _ = std::fs::remove_file(&control);
    served.map_err(|e| Error::from(e).with_operation("serve the runtime api relay"))
}

/// Stops the relay once no executor has answered for its linger.
async fn watch_executor(relay: &Relay, linger: Duration) {
    let socket = relay.dir.join(RUNTIME_SOCKET);
    let mut seen = Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(RETRY_EVERY * 10) => {}
            () = relay.stop.cancelled() => return,
        }
        if UnixStream::connect(&socket).await.is_ok() {
            seen = Instant::now();
            continue;
        }
        let limit = if relay.held().is_empty() {
            linger.min(EMPTY_LINGER)
        } else {
            linger
        };
        if seen.elapsed() > limit {
            tracing::info!(
                "no function executor answered for {limit:?}: the runtime api relay exits"
            );
            relay.stop.cancel();
            return;
        }
    }
}

async fn list(State(relay): State<Arc<Relay>>) -> Response {
    let mut held: Vec<HeldEnvironment> = relay
        .held()
        .iter()
        .map(|(environment, held)| HeldEnvironment {
            environment: environment.clone(),
            port: held.port,
            record: held.record.clone(),
        })
        .collect();
    held.sort_by(|a, b| a.environment.cmp(&b.environment));
    axum::Json(held).into_response()
}

async fn open(
    State(relay): State<Arc<Relay>>,
    UrlPath(environment): UrlPath<String>,
    axum::Json(open): axum::Json<OpenRequest>,
) -> Response {
    let listener = match tokio::net::TcpListener::bind((open.bind, 0)).await {
        Ok(listener) => listener,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let port = match listener.local_addr() {
        Ok(address) => address.port(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let closed = relay.stop.child_token();
    let front = Front {
        relay: relay.clone(),
        environment: environment.clone(),
        closed: closed.clone(),
    };
    let router = Router::new().fallback(forward).with_state(front);
    let shutdown = closed.clone().cancelled_owned();
    relay.tasks.spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, "a relayed runtime api port failed");
        }
    });
    let replaced = relay.held().insert(
        environment,
        Held {
            port,
            record: open.record,
            closed,
        },
    );
    if let Some(old) = replaced {
        old.closed.cancel();
    }
    axum::Json(Opened { port }).into_response()
}

async fn close(
    State(relay): State<Arc<Relay>>,
    UrlPath(environment): UrlPath<String>,
) -> StatusCode {
    if let Some(held) = relay.held().remove(&environment) {
        held.closed.cancel();
    }
    StatusCode::NO_CONTENT
}

async fn resume(State(relay): State<Arc<Relay>>) -> StatusCode {
    relay.resumed.notify_waiters();
    StatusCode::NO_CONTENT
}

async fn shut_down(State(relay): State<Arc<Relay>>) -> StatusCode {
    relay.stop.cancel();
    StatusCode::NO_CONTENT
}

/// One relayed port.
#[derive(Clone)]
struct Front {
    relay: Arc<Relay>,
    environment: String,
    closed: CancellationToken,
}

fn gone() -> Response {
    error_document(
        StatusCode::GONE,
        "EnvironmentClosed",
        "the environment is stopping",
    )
}

/// Forwards a runtime's request to the executor. A `GET` (`next`) waits across the executor's
/// absence and is sent again; anything else is sent once, and accepted here when no executor
/// takes it.
async fn forward(State(front): State<Front>, incoming: Request) -> Response {
    let (parts, body) = incoming.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let build = |body: Body| {
        let mut forwarded = request(parts.method.clone(), &path, body);
        for (name, value) in &parts.headers {
            if name != header::HOST {
                forwarded.headers_mut().append(name, value.clone());
            }
        }
        if let Ok(value) = HeaderValue::from_str(&front.environment) {
            forwarded.headers_mut().insert(ENVIRONMENT_HEADER, value);
        }
        forwarded
    };
    if parts.method != Method::GET {
        return match front.relay.to_executor(build(body)).await {
            Ok(response) if !is_retry(&response) => response,
            _ => accepted(),
        };
    }
    loop {
        // Listening before the attempt, so that a resume during it is not missed.
        let resumed = front.relay.resumed.notified();
        tokio::pin!(resumed);
        resumed.as_mut().enable();
        let attempt = tokio::select! {
            attempt = front.relay.to_executor(build(Body::empty())) => attempt,
            () = front.closed.cancelled() => return gone(),
        };
        match attempt {
            Ok(response) if !is_retry(&response) => return response,
            _ => {}
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY_EVERY) => {}
            () = resumed => {}
            () = front.closed.cancelled() => return gone(),
        }
    }
}

/// The executor's side of a relay: opens and closes relayed ports, lists them, stops the
/// relay.
#[derive(Debug)]
pub struct RelayClient {
    dir: PathBuf,
    /// The relay process this client started, reaped after [`RelayClient::shutdown`].
    child: Mutex<Option<std::process::Child>>,
    tasks: TaskTracker,
}

impl RelayClient {
    /// The relay answering in `dir`, if one does.
    pub async fn connect(dir: impl Into<PathBuf>) -> Option<RelayClient> {
        let client = RelayClient {
            dir: dir.into(),
            child: Mutex::new(None),
            tasks: TaskTracker::new(),
        };
        client.environments().await.ok().map(|_| client)
    }

    /// The relay answering in `dir`, or a new one started with `command` (which must run
    /// [`run_relay`] on `dir`, such as a program's hidden subcommand): it runs in a process
    /// group of its own with no standard streams, so that it outlives this process.
    pub async fn start(
        dir: impl Into<PathBuf>,
        mut command: std::process::Command,
    ) -> hoist_core::Result<RelayClient> {
        use std::os::unix::process::CommandExt;
        let dir = dir.into();
        if let Some(client) = RelayClient::connect(&dir).await {
            return Ok(client);
        }
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::from(e)
                .with_operation("start the runtime api relay")
                .with_context("dir", dir.display())
        })?;
        let child = command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| Error::from(e).with_operation("start the runtime api relay"))?;
        let client = RelayClient {
            dir,
            child: Mutex::new(Some(child)),
            tasks: TaskTracker::new(),
        };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if client.environments().await.is_ok() {
                return Ok(client);
            }
            let exited = client
                .child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                return Err(Error::new(
                    ErrorKind::Backend,
                    format!("the runtime api relay exited at once ({status})"),
                ));
            }
            if Instant::now() > deadline {
                client.reap(Duration::ZERO).await;
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("the runtime api relay did not answer within {START_DEADLINE:?}"),
                ));
            }
            tokio::time::sleep(RETRY_EVERY / 2).await;
        }
    }

    /// The relay's directory (with its sockets).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> hoist_core::Result<bytes::Bytes> {
        let socket = self.dir.join(CONTROL_SOCKET);
        let mut call = request(method, path, body);
        call.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let fail = |message: String| {
            Error::new(ErrorKind::Unavailable, message).with_context("relay", self.dir.display())
        };
        let response = send(&socket, call, &self.tasks)
            .await
            .map_err(|e| fail(format!("the runtime api relay did not answer: {e}")))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(format!("the runtime api relay's answer broke off: {e}")))?
            .to_bytes();
        if status.is_success() {
            Ok(body)
        } else {
            Err(fail(format!(
                "the runtime api relay answered {status}: {}",
                String::from_utf8_lossy(&body)
            )))
        }
    }

    /// The ports the relay holds.
    pub async fn environments(&self) -> hoist_core::Result<Vec<HeldEnvironment>> {
        let body = self
            .call(Method::GET, "/environments", Body::empty())
            .await?;
        serde_json::from_slice(&body).map_err(|e| {
            Error::new(
                ErrorKind::Backend,
                format!("the runtime api relay's list is not valid: {e}"),
            )
        })
    }

    /// Opens a port on `bind` for `environment`, recording `record` with it.
    pub async fn open(
        &self,
        environment: &str,
        bind: IpAddr,
        record: String,
    ) -> hoist_core::Result<SocketAddr> {
        let body = serde_json::to_vec(&OpenRequest { bind, record })
            .map_err(|e| Error::new(ErrorKind::InvalidInput, e.to_string()))?;
        let answer = self
            .call(
                Method::PUT,
                &environment_path(environment),
                Body::from(body),
            )
            .await?;
        let opened: Opened = serde_json::from_slice(&answer).map_err(|e| {
            Error::new(
                ErrorKind::Backend,
                format!("the runtime api relay's answer is not valid: {e}"),
            )
        })?;
        Ok(SocketAddr::new(bind, opened.port))
    }

    /// Closes `environment`'s port (its runtime's waiting `next` fails).
    pub async fn close(&self, environment: &str) {
        if let Err(e) = self
            .call(
                Method::DELETE,
                &environment_path(environment),
                Body::empty(),
            )
            .await
        {
            tracing::warn!(%environment, error = %e, "could not close a relayed runtime api port");
        }
    }

    /// Tells the relay that an executor has taken its environments over: their waiting
    /// requests are sent again at once.
    pub async fn resume(&self) {
        if let Err(e) = self.call(Method::POST, "/resume", Body::empty()).await {
            tracing::warn!(error = %e, "could not resume the runtime api relay");
        }
    }

    /// Tells the relay to exit (closing every port it holds) and waits a moment for it.
    pub async fn shutdown(&self) {
        if let Err(e) = self.call(Method::POST, "/shutdown", Body::empty()).await {
            tracing::warn!(error = %e, "could not stop the runtime api relay");
        }
        self.reap(Duration::from_secs(5)).await;
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
    }

    /// Waits up to `within` for the relay this client started to exit, then kills it.
    async fn reap(&self, within: Duration) {
        let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let deadline = Instant::now() + within;
        while matches!(child.try_wait(), Ok(None)) {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            tokio::time::sleep(RETRY_EVERY / 2).await;
        }
    }
}

/// `/environments/{id}`, the id percent-encoded where it needs to be.
fn environment_path(environment: &str) -> String {
    let mut path = String::from("/environments/");
    for byte in environment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            path.push(char::from(byte));
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path
}
