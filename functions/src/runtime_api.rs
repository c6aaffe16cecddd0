//! The AWS Lambda Runtime API (2018-06-01), served to each environment on its own loopback
//! port, so that off-the-shelf runtime clients (`awslambdaric`, the `lambda_runtime` crate)
//! run unmodified: they read `AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>` and call
//! `http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next`.
//!
//! An environment counts as ready on its first `invocation/next`; `init/error` fails its start.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hoist_core::Error;
use hoist_core::scheduler::EnvironmentId;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::body::{BodyError, read_capped};
use crate::invoke::new_trace_id;
use crate::launcher::ReadySignal;
use crate::relay::{ENVIRONMENT_HEADER, RUNTIME_SOCKET, RelayClient, retry_later};

/// The largest response a function may return (6291556 bytes, as on AWS).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024 + 100;

/// One invocation handed to an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInvocation {
    /// `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: String,
    /// The event.
    pub payload: Bytes,
    /// `Lambda-Runtime-Deadline-Ms`, as a point in time.
    pub deadline: SystemTime,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub function_arn: String,
    /// `Lambda-Runtime-Client-Context`, if the caller sent one.
    pub client_context: Option<String>,
}

/// What the runtime answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeReply {
    /// `invocation/{id}/response`: the result.
    Response(Bytes),
    /// `invocation/{id}/response` with more than [`MAX_RESPONSE_BYTES`]: the runtime's post is
    /// accepted (so the environment keeps serving; awslambdaric ends its process on any other
    /// answer) and the invocation fails with `Function.ResponseSizeTooLarge`.
    TooLarge {
        /// At least this many bytes were sent.
        size: usize,
    },
    /// `invocation/{id}/error`: the error type and the error document.
    Error {
        /// `Lambda-Runtime-Function-Error-Type`, or the document's `errorType`.
        error_type: String,
        /// The error document (`{errorMessage, errorType, stackTrace}`).
        body: Bytes,
    },
}

type ReplyTx = oneshot::Sender<Result<RuntimeReply, String>>;

struct Pending {
    invocation: RuntimeInvocation,
    reply: ReplyTx,
}

struct Endpoint {
    environment: EnvironmentId,
    queue: mpsc::UnboundedSender<Pending>,
    next: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    in_flight: Mutex<HashMap<String, ReplyTx>>,
    announced: AtomicBool,
    ready: ReadySignal,
    closed: CancellationToken,
    /// Fired when the executor lets its environments go ([`RuntimeApi::detach`]): a waiting
    /// `next` asks the relay to send it again (to the next executor).
    detached: CancellationToken,
}

/// The Runtime API endpoints of a pool's environments. Each endpoint serves on a task of the
/// API's tracker until it is closed; [`RuntimeApi::shutdown`] closes them all and awaits them.
///
/// With a relay ([`RuntimeApi::relayed`]), the ports are the relay's, which outlive this
/// process; the endpoints are then served on the relay's [`RUNTIME_SOCKET`], each request
/// naming its environment.
#[derive(Debug, Default)]
pub struct RuntimeApi {
    endpoints: Mutex<HashMap<EnvironmentId, Arc<Endpoint>>>,
    servers: TaskTracker,
    relay: Option<RelayLink>,
    detached: CancellationToken,
}

/// The relay behind a relayed [`RuntimeApi`], and the routes it forwards to.
#[derive(Debug)]
struct RelayLink {
    client: Arc<RelayClient>,
    routes: Arc<Mutex<HashMap<String, Router>>>,
    /// Ends the server on the runtime socket.
    stop: CancellationToken,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

impl RuntimeApi {
    /// No endpoints yet.
    pub fn new() -> Self {
        RuntimeApi::default()
    }

    /// A Runtime API whose ports `relay` holds: it serves the endpoints on the relay's
    /// [`RUNTIME_SOCKET`] (replacing a socket a predecessor left), where the relay forwards
    /// each runtime's requests. Call inside a tokio runtime.
    pub fn relayed(relay: Arc<RelayClient>) -> hoist_core::Result<Self> {
        let socket = relay.dir().join(RUNTIME_SOCKET);
        let _ = std::fs::remove_file(&socket);
        let listener = tokio::net::UnixListener::bind(&socket).map_err(|e| {
            Error::from(e)
                .with_operation("serve the runtime api to its relay")
                .with_context("socket", socket.display())
        })?;
        let routes: Arc<Mutex<HashMap<String, Router>>> = Arc::default();
        let stop = CancellationToken::new();
        let api = RuntimeApi {
            relay: Some(RelayLink {
                client: relay,
                routes: routes.clone(),
                stop: stop.clone(),
            }),
            ..RuntimeApi::default()
        };
        let detached = api.detached.clone();
        let router = Router::new().fallback(move |request: axum::extract::Request| {
            let (routes, detached) = (routes.clone(), detached.clone());
            async move { relayed_request(&routes, &detached, request).await }
        });
        api.servers.spawn(async move {
            let serve =
                axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "the runtime api socket failed");
            }
        });
        Ok(api)
    }

    /// The relay holding the ports, if the API is relayed.
    pub fn relay(&self) -> Option<&Arc<RelayClient>> {
        self.relay.as_ref().map(|r| &r.client)
    }

    fn endpoint(&self, environment: &EnvironmentId) -> Option<Arc<Endpoint>> {
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(environment)
            .cloned()
    }

    /// Opens an endpoint for `environment` on a free loopback port and returns its address
    /// (the value of `AWS_LAMBDA_RUNTIME_API`). Its first `invocation/next` calls
    /// `ready.ready`, an `init/error` calls `ready.failed`.
    pub async fn open(
        &self,
        environment: &EnvironmentId,
        ready: ReadySignal,
    ) -> hoist_core::Result<SocketAddr> {
        self.open_on(environment, Ipv4Addr::LOCALHOST.into(), ready)
            .await
    }

    /// Like [`RuntimeApi::open`], listening on a free port of `bind` (`0.0.0.0` for every
    /// interface, so that environments with their own network, such as pods, reach it).
    pub async fn open_on(
        &self,
        environment: &EnvironmentId,
        bind: IpAddr,
        ready: ReadySignal,
    ) -> hoist_core::Result<SocketAddr> {
        self.open_recorded(environment, bind, ready, String::new())
            .await
    }

    /// Like [`RuntimeApi::open_on`]; a relayed API's relay keeps `record` with the port, for
    /// the executor after a restart ([`RelayClient::environments`]).
    pub async fn open_recorded(
        &self,
        environment: &EnvironmentId,
        bind: IpAddr,
        ready: ReadySignal,
        record: String,
    ) -> hoist_core::Result<SocketAddr> {
        let fail = |e: Error| {
            e.with_operation("open runtime api")
                .with_context("environment", environment)
        };
        if let Some(relay) = &self.relay {
            let addr = relay
                .client
                .open(&environment.0, bind, record)
                .await
                .map_err(fail)?;
            let _ = self.register(environment, ready, false);
            return Ok(addr);
        }
        let listener = tokio::net::TcpListener::bind((bind, 0))
            .await
            .map_err(|e| fail(Error::from(e)))?;
        let addr = listener.local_addr()?;
        let (endpoint, router) = self.register(environment, ready, false);
        let closed = endpoint.closed.clone();
        self.servers.spawn(async move {
            let serve =
                axum::serve(listener, router).with_graceful_shutdown(closed.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "runtime api endpoint failed");
            }
        });
        Ok(addr)
    }

    /// Takes over `environment`, whose runtime already runs and calls a port of the relay
    /// (after a restart of the executor): its endpoint is ready at once. Without a relay this
    /// is [`ErrorKind::InvalidState`](hoist_core::ErrorKind::InvalidState).
    pub fn adopt(&self, environment: &EnvironmentId) -> hoist_core::Result<()> {
        if self.relay.is_none() {
            return Err(Error::new(
                hoist_core::ErrorKind::InvalidState,
                "only a relayed runtime api adopts environments",
            )
            .with_context("environment", environment));
        }
        let _ = self.register(environment, ReadySignal::default(), true);
        Ok(())
    }

    /// A new endpoint for `environment`, and its routes (also given to the relay's socket).
    fn register(
        &self,
        environment: &EnvironmentId,
        ready: ReadySignal,
        announced: bool,
    ) -> (Arc<Endpoint>, Router) {
        let (queue, next) = mpsc::unbounded_channel();
        let endpoint = Arc::new(Endpoint {
            environment: environment.clone(),
            queue,
            next: tokio::sync::Mutex::new(next),
            in_flight: Mutex::new(HashMap::new()),
            announced: AtomicBool::new(announced),
            ready,
            closed: CancellationToken::new(),
            detached: self.detached.clone(),
        });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                // Read by `response` itself, so an oversize result becomes the invocation's
                // error instead of a refusal that ends the runtime.
                post(response).layer(DefaultBodyLimit::disable()),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .layer(DefaultBodyLimit::max(MAX_RESPONSE_BYTES))
            .with_state(endpoint.clone());
        if let Some(relay) = &self.relay {
            relay
                .routes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(environment.0.clone(), router.clone());
        }
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(environment.clone(), endpoint.clone());
        (endpoint, router)
    }

    /// Hands `invocation` to `environment` and waits for the runtime's answer. An environment
    /// that ends first fails it with the reason it ended.
    pub async fn invoke(
        &self,
        environment: &EnvironmentId,
        invocation: RuntimeInvocation,
    ) -> Result<RuntimeReply, String> {
        let endpoint = self
            .endpoint(environment)
            .ok_or_else(|| format!("environment {environment} has no runtime api endpoint"))?;
        let (reply, answer) = oneshot::channel();
        endpoint
            .queue
            .send(Pending { invocation, reply })
            .map_err(|_| format!("environment {environment} is closed"))?;
        answer
            .await
            .unwrap_or_else(|_| Err(format!("environment {environment} ended")))
    }

    /// Closes `environment`'s endpoint and fails its queued and running invocations with
    /// `reason`.
    pub async fn close(&self, environment: &EnvironmentId, reason: &str) {
        let Some(endpoint) = self
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(environment)
        else {
            return;
        };
        endpoint.closed.cancel();
        if let Some(relay) = &self.relay {
            relay
                .routes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&environment.0);
            relay.client.close(&environment.0).await;
        }
        let message = format!("the environment ended: {reason}");
        let running: Vec<ReplyTx> = endpoint
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, tx)| tx)
            .collect();
        for tx in running {
            let _ = tx.send(Err(message.clone()));
        }
        let mut queue = endpoint.next.lock().await;
        queue.close();
        while let Ok(pending) = queue.try_recv() {
            let _ = pending.reply.send(Err(message.clone()));
        }
    }

    /// Closes every endpoint (failing what they still had) and waits, within a deadline, for
    /// their servers to end.
    pub async fn shutdown(&self) {
        let environments: Vec<EnvironmentId> = self
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        for environment in environments {
            self.close(&environment, "the function executor shut down")
                .await;
        }
        self.end_servers().await;
    }

    /// Lets every environment go without failing or closing anything the relay holds: each
    /// waiting `next` asks the relay to send it again (to the executor that comes next), and
    /// the server on the relay's socket ends. Without a relay this is
    /// [`RuntimeApi::shutdown`].
    pub async fn detach(&self) {
        if self.relay.is_none() {
            return self.shutdown().await;
        }
        self.detached.cancel();
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.end_servers().await;
    }

    async fn end_servers(&self) {
        if let Some(relay) = &self.relay {
            relay.stop.cancel();
        }
        self.servers.close();
        let deadline = std::time::Duration::from_secs(5);
        if tokio::time::timeout(deadline, self.servers.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                servers = self.servers.len(),
                "runtime api endpoints did not end within {deadline:?}"
            );
        }
    }

    /// How many endpoints are open.
    pub fn open_endpoints(&self) -> usize {
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

pub(crate) fn error_document(status: StatusCode, error_type: &str, message: &str) -> Response {
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message });
    (status, axum::Json(body)).into_response()
}

pub(crate) fn accepted() -> Response {
    // Answered twice per invocation: a static body, not a JSON value built each time.
    (
        StatusCode::ACCEPTED,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

// The `next` headers, parsed once at compile time rather than on every invocation.
const REQUEST_ID: HeaderName = HeaderName::from_static("lambda-runtime-aws-request-id");
const DEADLINE_MS: HeaderName = HeaderName::from_static("lambda-runtime-deadline-ms");
const FUNCTION_ARN: HeaderName = HeaderName::from_static("lambda-runtime-invoked-function-arn");
const TRACE_ID: HeaderName = HeaderName::from_static("lambda-runtime-trace-id");
const CLIENT_CONTEXT: HeaderName = HeaderName::from_static("lambda-runtime-client-context");

/// A request the relay forwarded: to the routes of the environment it names, or back to the
/// relay to be sent again (an environment not adopted yet, or an executor letting go).
async fn relayed_request(
    routes: &Mutex<HashMap<String, Router>>,
    detached: &CancellationToken,
    request: axum::extract::Request,
) -> Response {
    use tower::ServiceExt;
    let router = request
        .headers()
        .get(ENVIRONMENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|environment| {
            routes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(environment)
                .cloned()
        });
    match router {
        Some(router) if !detached.is_cancelled() => match router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        _ => retry_later(),
    }
}

async fn next_invocation(State(endpoint): State<Arc<Endpoint>>) -> Response {
    if !endpoint.announced.swap(true, Ordering::AcqRel) {
        endpoint.ready.ready(&endpoint.environment);
    }
    loop {
        let pending = {
            let mut queue = tokio::select! {
                queue = endpoint.next.lock() => queue,
                () = endpoint.closed.cancelled() => return StatusCode::GONE.into_response(),
                () = endpoint.detached.cancelled() => return retry_later(),
            };
            tokio::select! {
                pending = queue.recv() => pending,
                () = endpoint.closed.cancelled() => None,
                () = endpoint.detached.cancelled() => return retry_later(),
            }
        };
        let Some(Pending { invocation, reply }) = pending else {
            return error_document(
                StatusCode::GONE,
                "EnvironmentClosed",
                "the environment is stopping",
            );
        };
        if reply.is_closed() {
            continue; // the caller gave up while it was queued
        }
        endpoint
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(invocation.request_id.clone(), reply);
        let deadline_ms = invocation
            .deadline
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut headers = HeaderMap::with_capacity(8);
        let mut put = |name: HeaderName, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        put(REQUEST_ID, &invocation.request_id);
        put(DEADLINE_MS, &deadline_ms.to_string());
        put(FUNCTION_ARN, &invocation.function_arn);
        put(TRACE_ID, &new_trace_id());
        if let Some(context) = &invocation.client_context {
            put(CLIENT_CONTEXT, context);
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return (StatusCode::OK, headers, invocation.payload).into_response();
    }
}

fn take(endpoint: &Endpoint, id: &str) -> Option<ReplyTx> {
    endpoint
        .in_flight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(id)
}

async fn response(
    State(endpoint): State<Arc<Endpoint>>,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Response {
    let reply = match read_capped(body, MAX_RESPONSE_BYTES).await {
        Ok(body) => RuntimeReply::Response(body),
        Err(BodyError::TooLarge { size }) => RuntimeReply::TooLarge { size },
        Err(BodyError::Broken(reason)) => {
            return error_document(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                &format!("the response body broke off: {reason}"),
            );
        }
    };
    match take(&endpoint, &id) {
        Some(tx) => {
            let _ = tx.send(Ok(reply));
            accepted()
        }
        None => unknown_request(&id),
    }
}

fn unknown_request(id: &str) -> Response {
    error_document(
        StatusCode::FORBIDDEN,
        "InvalidStateTransition",
        &format!("no invocation {id} is waiting for an answer"),
    )
}

fn error_type_of(headers: &HeaderMap, body: &[u8]) -> String {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            serde_json::from_slice::<serde_json::Value>(body)
                .ok()?
                .get("errorType")?
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "Unhandled".to_owned())
}

async fn error(
    State(endpoint): State<Arc<Endpoint>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match take(&endpoint, &id) {
        Some(tx) => {
            let error_type = error_type_of(&headers, &body);
            let _ = tx.send(Ok(RuntimeReply::Error { error_type, body }));
            accepted()
        }
        None => unknown_request(&id),
    }
}

async fn init_error(
    State(endpoint): State<Arc<Endpoint>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error_type = error_type_of(&headers, &body);
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("errorMessage")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    endpoint.ready.failed(
        &endpoint.environment,
        format!("the runtime failed to initialise: {error_type}: {message}"),
    );
    accepted()
}
