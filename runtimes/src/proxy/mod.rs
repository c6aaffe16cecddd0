//! The contract proxy: gives any language's HTTP server the runtime contract.
//!
//! [`Proxy::start`] runs `FUNC_PROCESS` with `sh -c`, telling it to listen on the upstream
//! port (through its `FUNC_PORT`, with the call timeout as its `FUNC_TIMEOUT`), and waits until
//! its `/healthz` answers. The proxy then serves the contract on its own port: `GET /healthz`
//! asks the process's `/healthz`, `GET /metrics` shows the contract metrics, and every other
//! request is forwarded with its method, path, headers (the client's `Host` included, its
//! address added to `X-Forwarded-For`) and body, streamed; the function's status, headers and
//! body come back as they are.
//!
//! What the process says in its `/healthz` answer shapes the rest (the Python and Node shims
//! say both):
//!
//! - `hoist-conventions: python` or `node; module=<MOD_NAME>`: the metric labels, buckets and
//!   request-log style of that Kubeless runtime ([`Conventions`]); and a call's failure is
//!   what the process marks with `hoist-outcome: error` (an unhandled exception), not any 5xx;
//!   `hoist-outcome: not-called` marks a request it refused without calling the function.
//!   Without the header, Python's conventions apply and a 5xx answer is a failure.
//! - `hoist-cancel: disconnect`: closing a call's connection ends that call. A call past the
//!   timeout is then answered 408 and its connection closed, and the process keeps serving
//!   the others (it is restarted only if it stops answering `/healthz`). Without it, since a
//!   process cannot cancel one call, a timeout kills the process group and starts it again.
//!
//! The process is also offered a Unix socket, named in its `HOIST_UPSTREAM_SOCKET`
//! ([`SOCKET_VARIABLE`]); when it answers `/healthz` there, calls go through it instead of
//! loopback TCP. A process that exits on its own is restarted too.
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> hoist_core::Result<()> {
//! use hoist_runtimes::proxy::{Proxy, ProxyConfig};
//!
//! let config = ProxyConfig::from_vars([
//!     ("FUNC_PROCESS", "python3 shims/python/hoist_runtime.py"),
//!     ("FUNC_PORT", "8080"),
//!     ("FUNC_TIMEOUT", "30"),
//!     ("MOD_NAME", "hello"),
//!     ("FUNC_HANDLER", "foo"),
//! ])?;
//! let proxy = Proxy::start(config).await?;
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await.unwrap();
//! proxy.serve_with_shutdown(listener, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod supervisor;
mod transport;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use hoist_core::{Error, Result};
use http_body_util::{BodyExt as _, Limited};
use tokio::net::TcpListener;

use crate::contract::server::{BoxFuture, Outcome, Service, plain};
use crate::contract::{ContractConfig, Conventions, MAX_BODY, serve_router};
pub use supervisor::CANCEL_HEADER;
use supervisor::{Launch, Supervisor};
pub use transport::SOCKET_VARIABLE;

/// The response header by which a process tells how a call ended: `error` (the function
/// raised: a failure) or `not-called` (the request was refused before the function ran: not
/// a call). The proxy removes it.
pub const OUTCOME_HEADER: &str = "hoist-outcome";

/// The proxy's settings.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The contract settings (`FUNC_PORT` is where the proxy listens).
    pub contract: ContractConfig,
    /// `FUNC_PROCESS`: the command that starts the function's server, run with `sh -c`.
    pub process: String,
    /// `FUNC_UPSTREAM_PORT`: where that server listens (default 8090); it gets it as its
    /// `FUNC_PORT`.
    pub upstream_port: u16,
    /// `FUNC_START_TIMEOUT` in seconds (default 60): how long the process may take to answer
    /// `/healthz`.
    pub start_timeout: Duration,
    /// Environment for the process, added to the proxy's own.
    pub env: Vec<(String, String)>,
}

impl ProxyConfig {
    /// Reads the contract's `FUNC_*` variables and `FUNC_PROCESS`, `FUNC_UPSTREAM_PORT`,
    /// `FUNC_START_TIMEOUT` from `vars` (pass `std::env::vars()` in a binary). The process
    /// inherits the proxy's environment; `vars` are not copied into it.
    pub fn from_vars<K: AsRef<str>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.into()))
            .collect();
        let contract = ContractConfig::from_vars(vars.iter().cloned())?;
        let get = |name: &str| {
            vars.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let process = get("FUNC_PROCESS").filter(|p| !p.trim().is_empty()).ok_or_else(|| {
            Error::invalid("FUNC_PROCESS is not set: it names the command that starts the function's server")
                .with_context("variable", "FUNC_PROCESS")
        })?;
        let upstream_port = match get("FUNC_UPSTREAM_PORT") {
            Some(text) => text
                .trim()
                .parse()
                .ok()
                .filter(|p| *p != 0 && *p != contract.port)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "FUNC_UPSTREAM_PORT `{text}` is not a port other than FUNC_PORT {}",
                        contract.port
                    ))
                    .with_context("variable", "FUNC_UPSTREAM_PORT")
                })?,
            None => 8090,
        };
        let start_timeout = match get("FUNC_START_TIMEOUT") {
            Some(text) => Duration::from_secs(
                text.trim().parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    Error::invalid(format!(
                        "FUNC_START_TIMEOUT `{text}` is not a positive number of seconds"
                    ))
                    .with_context("variable", "FUNC_START_TIMEOUT")
                })?,
            ),
            None => Duration::from_secs(60),
        };
        Ok(ProxyConfig {
            contract,
            process,
            upstream_port,
            start_timeout,
            env: Vec::new(),
        })
    }
}

/// A running proxy and the function process behind it.
pub struct Proxy {
    service: Arc<Service>,
    supervisor: Arc<Supervisor>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("upstream_port", &self.supervisor.port)
            .finish_non_exhaustive()
    }
}

/// Request headers not forwarded (hop-by-hop). `Host` is forwarded: the function sees the
/// client's, as behind Kubeless's service.
const HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
    header::PROXY_AUTHENTICATE,
];

impl Proxy {
    /// Starts the function process and waits until it answers `/healthz`.
    pub async fn start(config: ProxyConfig) -> Result<Proxy> {
        let supervisor = Supervisor::start(Launch {
            command: config.process.clone(),
            env: config.env.clone(),
            port: config.upstream_port,
            socket: supervisor::socket_folder()?.join("upstream.sock"),
            timeout: config.contract.timeout,
            start_timeout: config.start_timeout,
        })
        .await?;
        let profile = supervisor.profile();
        let mut contract = config.contract;
        if let Some(conventions) = profile.conventions.clone() {
            contract.conventions = conventions;
        }
        let marks_failures = profile.conventions.is_some();
        let forward_to = supervisor.clone();
        let call = Arc::new(move |request: Request| -> BoxFuture<Response> {
            let supervisor = forward_to.clone();
            Box::pin(async move { forward(&supervisor, request, marks_failures).await })
        });
        let health_of = supervisor.clone();
        let health = Arc::new(move || -> BoxFuture<bool> {
            let supervisor = health_of.clone();
            Box::pin(async move {
                let state = supervisor.state();
                state.ready && supervisor::healthy_now(&supervisor).await
            })
        });
        Ok(Proxy {
            service: Service::new(contract, call, Some(health)),
            supervisor,
        })
    }

    /// The axum router.
    pub fn router(&self) -> Router {
        self.service.clone().router()
    }

    /// The conventions the process announced (Python's when it announced none).
    pub fn conventions(&self) -> &Conventions {
        &self.service.config.conventions
    }

    /// The metrics as `/metrics` shows them.
    pub fn metrics(&self) -> String {
        self.service.metrics.encode()
    }

    /// Serves on `listener` until `shutdown` completes, then stops the function process.
    pub async fn serve_with_shutdown(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let result = serve_router(self.router(), listener, shutdown).await;
        self.supervisor.stop().await;
        result
    }

    /// Stops the function process.
    pub async fn stop(&self) {
        self.supervisor.stop().await;
    }
}

/// Ends the call upstream if it is dropped unfinished, which the contract service does only
/// on a timeout: see [`Supervisor::abandoned`].
struct EndOnDrop<'a> {
    supervisor: &'a Supervisor,
    generation: u64,
    finished: bool,
}

impl Drop for EndOnDrop<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.supervisor.abandoned(self.generation);
        }
    }
}

fn failed(status: StatusCode, message: String) -> Response {
    let mut response = plain(status, message);
    response.extensions_mut().insert(Outcome::Failed);
    response
}

/// Forwards `request`. `marks_failures`: the process marks its failures with
/// [`OUTCOME_HEADER`]; otherwise a 5xx is one.
async fn forward(supervisor: &Supervisor, request: Request, marks_failures: bool) -> Response {
    let (parts, body) = request.into_parts();
    let Some(generation) = supervisor.ready().await else {
        return failed(
            StatusCode::SERVICE_UNAVAILABLE,
            "the function process is stopped".into(),
        );
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let uri = match format!("{}{path}", supervisor.base()).parse::<hyper::Uri>() {
        Ok(uri) => uri,
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("cannot forward path `{path}`: {e}"),
            );
        }
    };
    let remote = parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    let mut upstream = hyper::Request::new(body);
    *upstream.method_mut() = parts.method;
    *upstream.uri_mut() = uri;
    *upstream.headers_mut() = parts.headers;
    let headers = upstream.headers_mut();
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if let Some(remote) = remote {
        let forwarded = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(earlier) => format!("{earlier}, {remote}"),
            None => remote.to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&forwarded) {
            headers.insert("x-forwarded-for", value);
        }
    }
    let mut guard = EndOnDrop {
        supervisor,
        generation,
        finished: false,
    };
    let result = async {
        let response = supervisor
            .client
            .request(upstream)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let bytes: Bytes = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>(Response::from_parts(parts, Body::from(bytes)))
    }
    .await;
    guard.finished = true;
    match result {
        Ok(mut response) => {
            for name in [header::CONNECTION, header::TRANSFER_ENCODING] {
                response.headers_mut().remove(name);
            }
            let outcome = match response.headers_mut().remove(OUTCOME_HEADER) {
                Some(value) if value == "error" => Outcome::Failed,
                Some(value) if value == "not-called" => Outcome::NotCalled,
                _ if !marks_failures && response.status().is_server_error() => Outcome::Failed,
                _ => Outcome::Answered,
            };
            response.extensions_mut().insert(outcome);
            response
        }
        Err(e) => failed(
            StatusCode::BAD_GATEWAY,
            format!("the function process did not answer: {e}"),
        ),
    }
}
