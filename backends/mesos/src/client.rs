//! [`AgentClient`]: HTTP to `POST /api/v1/executor`. SUBSCRIBE opens a connection of its own
//! that streams events; every other call goes over a second, reused connection.

use std::time::Duration;

use bytes::Bytes;
use hoist_core::{Error, ErrorKind, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::recordio::RecordDecoder;
use crate::wire::{Call, Event};

/// The path of the executor API.
pub const EXECUTOR_API_PATH: &str = "/api/v1/executor";

/// Timeouts and limits of the connection to the agent.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Connecting and getting the response headers (default 10 s).
    pub connect_timeout: Duration,
    /// One whole call (default 10 s).
    pub call_timeout: Duration,
    /// The longest silence on the event stream before it counts as broken (default 1 h: the
    /// agent heartbeats every 30 minutes).
    pub stream_idle_timeout: Duration,
    /// The largest event accepted (default 16 MiB).
    pub max_record: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(10),
            stream_idle_timeout: Duration::from_secs(3600),
            max_record: crate::recordio::DEFAULT_MAX_RECORD,
        }
    }
}

/// A client of one agent's executor API.
pub struct AgentClient {
    endpoint: String,
    token: Option<String>,
    options: ClientOptions,
    calls: Option<Connection>,
    tracker: TaskTracker,
}

impl std::fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentClient")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("options", &self.options)
            .field("calls", &self.calls)
            .finish()
    }
}

#[derive(Debug)]
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    task: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AgentClient {
    /// A client of the agent at `endpoint` (`host:port`), sending `token` as a bearer token.
    pub fn new(endpoint: impl Into<String>, token: Option<String>, options: ClientOptions) -> Self {
        AgentClient {
            endpoint: endpoint.into(),
            token,
            options,
            calls: None,
            tracker: TaskTracker::new(),
        }
    }

    /// Runs the tasks that drive this client's connections on `tracker` (by default a tracker
    /// of its own), so that whoever owns `tracker` can wait for them to end. A connection's
    /// task ends when the connection (the client's calls connection, or an [`EventStream`])
    /// is dropped.
    pub fn with_tracker(mut self, tracker: TaskTracker) -> Self {
        self.tracker = tracker;
        self
    }

    async fn connect(&self) -> Result<Connection> {
        let tcp = TcpStream::connect(&self.endpoint).await.map_err(|e| {
            Error::from(e)
                .with_operation("connect")
                .with_context("agent", &self.endpoint)
        })?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| unavailable("HTTP handshake failed", &self.endpoint, e))?;
        let task = self.tracker.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "agent connection closed");
            }
        });
        Ok(Connection { sender, task })
    }

    fn request(&self, call: &Call, body: Bytes) -> Result<hyper::Request<Full<Bytes>>> {
        let mut builder = hyper::Request::post(EXECUTOR_API_PATH)
            .header(http::header::HOST, &self.endpoint)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder.body(Full::new(body)).map_err(|e| {
            Error::invalid(format!("could not build the {:?} request: {e}", call.kind))
        })
    }

    /// Sends SUBSCRIBE on a new connection and returns its event stream.
    pub async fn subscribe(&self, call: &Call) -> Result<EventStream> {
        let body =
            Bytes::from(serde_json::to_vec(call).map_err(|e| Error::invalid(e.to_string()))?);
        let request = self.request(call, body)?;
        let deadline = self.options.connect_timeout;
        let (response, connection) = tokio::time::timeout(deadline, async {
            let mut connection = self.connect().await?;
            let response = connection
                .sender
                .send_request(request)
                .await
                .map_err(|e| unavailable("SUBSCRIBE failed", &self.endpoint, e))?;
            Ok::<_, Error>((response, connection))
        })
        .await
        .map_err(|_| timeout("SUBSCRIBE", &self.endpoint, deadline))??;
        if response.status() != http::StatusCode::OK {
            let status = response.status();
            let text = read_text(response.into_body(), self.options.call_timeout).await;
            return Err(rejected("SUBSCRIBE", &self.endpoint, status, &text));
        }
        Ok(EventStream {
            body: response.into_body(),
            decoder: RecordDecoder::new(self.options.max_record),
            idle_timeout: self.options.stream_idle_timeout,
            _connection: connection,
        })
    }

    /// Sends a call other than SUBSCRIBE on the calls connection; the agent answers
    /// `202 Accepted`.
    pub async fn call(&mut self, call: &Call) -> Result<()> {
        let body =
            Bytes::from(serde_json::to_vec(call).map_err(|e| Error::invalid(e.to_string()))?);
        let request = self.request(call, body)?;
        let deadline = self.options.call_timeout;
        let endpoint = self.endpoint.clone();
        let kind = call.kind;
        let result = tokio::time::timeout(deadline, async {
            let reusable = match &mut self.calls {
                Some(c) => c.sender.ready().await.is_ok(),
                None => false,
            };
            if !reusable {
                self.calls = Some(self.connect().await?);
            }
            let connection = self.calls.as_mut().expect("connected above");
            let response = connection
                .sender
                .send_request(request)
                .await
                .map_err(|e| unavailable(&format!("{kind:?} failed"), &endpoint, e))?;
            let status = response.status();
            let text = read_text(response.into_body(), deadline).await;
            if status.is_success() {
                Ok(())
            } else {
                Err(rejected(&format!("{kind:?}"), &endpoint, status, &text))
            }
        })
        .await
        .map_err(|_| timeout(&format!("{kind:?}"), &endpoint, deadline))
        .and_then(|r| r);
        if result.is_err() {
            self.calls = None;
        }
        result
    }
}

async fn read_text(body: Incoming, deadline: Duration) -> String {
    match tokio::time::timeout(deadline, body.collect()).await {
        Ok(Ok(collected)) => String::from_utf8_lossy(&collected.to_bytes())
            .trim()
            .to_owned(),
        _ => String::new(),
    }
}

fn unavailable(what: &str, endpoint: &str, e: hyper::Error) -> Error {
    Error::new(ErrorKind::Unavailable, format!("{what}: {e}")).with_context("agent", endpoint)
}

fn timeout(what: &str, endpoint: &str, after: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("{what} got no answer within {after:?}"),
    )
    .with_context("agent", endpoint)
}

fn rejected(what: &str, endpoint: &str, status: http::StatusCode, body: &str) -> Error {
    // 503 while the agent recovers is worth retrying; 4xx mean the call itself is wrong, and
    // 401 that the bearer token the agent gave the executor is: no retry helps.
    let kind = if status.is_server_error() {
        ErrorKind::Unavailable
    } else {
        ErrorKind::InvalidInput
    };
    let message = if status == http::StatusCode::UNAUTHORIZED {
        format!(
            "authentication failed: the agent answered {what} with {status} \
             (the bearer token of MESOS_EXECUTOR_AUTHENTICATION_TOKEN is missing or wrong): {body}"
        )
    } else {
        format!("the agent answered {what} with {status}: {body}")
    };
    Error::new(kind, message)
        .with_context("agent", endpoint)
        .with_context("status", status.as_u16())
}

/// Whether `error` is the agent refusing the executor's credentials (`401 Unauthorized`: a
/// missing or wrong `MESOS_EXECUTOR_AUTHENTICATION_TOKEN`). Such an error has the kind
/// [`ErrorKind::InvalidInput`] and says "authentication failed".
///
/// ```
/// use hoist_core::Error;
/// use hoist_mesos::client::is_authentication_failure;
///
/// assert!(!is_authentication_failure(&Error::invalid("a bad call")));
/// ```
pub fn is_authentication_failure(error: &Error) -> bool {
    error.context_value("status") == Some("401")
}

/// The events of one subscription.
#[derive(Debug)]
pub struct EventStream {
    body: Incoming,
    decoder: RecordDecoder,
    idle_timeout: Duration,
    _connection: Connection,
}

impl EventStream {
    /// The next event; `None` when the agent closed the stream cleanly. A malformed record,
    /// a truncated stream or a silence past the idle timeout is an error: the stream is then
    /// broken and must be dropped.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            match self.decoder.next_record() {
                Ok(Some(record)) => return Some(Event::from_slice(&record)),
                Ok(None) => {}
                Err(e) => return Some(Err(e.into())),
            }
            let frame = match tokio::time::timeout(self.idle_timeout, self.body.frame()).await {
                Err(_) => {
                    return Some(Err(Error::new(
                        ErrorKind::Timeout,
                        format!("no event from the agent for {:?}", self.idle_timeout),
                    )));
                }
                Ok(None) => {
                    return match self.decoder.finish() {
                        Ok(()) => None,
                        Err(e) => Some(Err(e.into())),
                    };
                }
                Ok(Some(Err(e))) => {
                    return Some(Err(Error::new(
                        ErrorKind::Unavailable,
                        format!("the event stream broke: {e}"),
                    )));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                self.decoder.push(&data);
            }
        }
    }
}
