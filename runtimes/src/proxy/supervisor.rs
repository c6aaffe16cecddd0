//! Runs the function's process, knows when it is ready, and restarts it on request (after a
//! timeout) or when it exits.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hoist_core::{Error, ErrorKind, Result};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};

/// The HTTP client to the function's process.
pub(crate) type UpstreamClient = Client<HttpConnector, Full<Bytes>>;

/// Which process generation runs, and whether it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) generation: u64,
    pub(crate) ready: bool,
    pub(crate) stopped: bool,
}

pub(crate) struct Supervisor {
    pub(crate) port: u16,
    pub(crate) client: UpstreamClient,
    state: watch::Receiver<State>,
    restarts: mpsc::UnboundedSender<Request>,
}

enum Request {
    Restart(u64),
    Stop,
}

/// What the supervisor runs.
pub(crate) struct Launch {
    pub(crate) command: String,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) port: u16,
    pub(crate) start_timeout: Duration,
}

impl Supervisor {
    /// Starts the process and waits until its `/healthz` answers 200, for at most the start
    /// timeout.
    pub(crate) async fn start(launch: Launch) -> Result<Arc<Supervisor>> {
        let client = Client::builder(TokioExecutor::new()).build_http();
        let (state_tx, state) = watch::channel(State {
            generation: 0,
            ready: false,
            stopped: false,
        });
        let (restarts, requests) = mpsc::unbounded_channel();
        let supervisor = Arc::new(Supervisor {
            port: launch.port,
            client: client.clone(),
            state,
            restarts,
        });
        let start_timeout = launch.start_timeout;
        let (first_tx, first) = tokio::sync::oneshot::channel();
        tokio::spawn(run(launch, client, state_tx, requests, first_tx));
        match tokio::time::timeout(start_timeout, first).await {
            Ok(Ok(Ok(()))) => Ok(supervisor),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(Error::new(
                ErrorKind::Backend,
                "the function process supervisor stopped",
            )),
            Err(_) => {
                supervisor.stop().await;
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the function process did not answer /healthz within {start_timeout:?}"
                    ),
                ))
            }
        }
    }

    /// The current state.
    pub(crate) fn state(&self) -> State {
        *self.state.borrow()
    }

    /// Waits until a process is ready and returns its generation.
    pub(crate) async fn ready(&self) -> Option<u64> {
        let mut state = self.state.clone();
        let ready = state.wait_for(|s| s.ready || s.stopped).await.ok()?;
        (!ready.stopped).then_some(ready.generation)
    }

    /// Kills and restarts generation `generation`, unless it was already replaced.
    pub(crate) fn restart(&self, generation: u64) {
        let _ = self.restarts.send(Request::Restart(generation));
    }

    /// Kills the process and stops supervising.
    pub(crate) async fn stop(&self) {
        let _ = self.restarts.send(Request::Stop);
        let mut state = self.state.clone();
        let _ = tokio::time::timeout(Duration::from_secs(10), state.wait_for(|s| s.stopped)).await;
    }
}

fn spawn(launch: &Launch) -> Result<Child> {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(&launch.command)
        .envs(launch.env.iter().cloned())
        .env("FUNC_PORT", launch.port.to_string())
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    command.spawn().map_err(|e| {
        Error::new(
            ErrorKind::Backend,
            format!(
                "cannot start the function process `{}`: {e}",
                launch.command
            ),
        )
        .with_source(e)
    })
}

fn kill(child: &Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

async fn healthy(client: &UpstreamClient, port: u16) -> bool {
    let Ok(uri) = format!("http://127.0.0.1:{port}/healthz").parse::<hyper::Uri>() else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), client.get(uri)).await,
        Ok(Ok(response)) if response.status() == hyper::StatusCode::OK
    )
}

async fn run(
    launch: Launch,
    client: UpstreamClient,
    state: watch::Sender<State>,
    mut requests: mpsc::UnboundedReceiver<Request>,
    first: tokio::sync::oneshot::Sender<Result<()>>,
) {
    let mut first = Some(first);
    let mut generation = 0;
    loop {
        let mut child = match spawn(&launch) {
            Ok(child) => child,
            Err(e) => {
                if let Some(first) = first.take() {
                    let _ = first.send(Err(e));
                    state.send_modify(|s| s.stopped = true);
                    return;
                }
                eprintln!("hoist-proxy: {e}; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Wait until the process answers, exits, or is asked to stop.
        let became_ready = loop {
            if healthy(&client, launch.port).await {
                break true;
            }
            tokio::select! {
                status = child.wait() => {
                    let message = match status {
                        Ok(status) => format!("the function process exited before answering ({status})"),
                        Err(e) => format!("the function process could not be waited for: {e}"),
                    };
                    if let Some(first) = first.take() {
                        let _ = first.send(Err(Error::new(ErrorKind::Backend, message)));
                        state.send_modify(|s| s.stopped = true);
                        return;
                    }
                    eprintln!("hoist-proxy: {message}; restarting in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break false;
                }
                Some(Request::Stop) = requests.recv() => {
                    kill(&child);
                    let _ = child.wait().await;
                    state.send_modify(|s| { s.stopped = true; s.ready = false; });
                    return;
                }
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        };
        if !became_ready {
            continue;
        }
        state.send_modify(|s| {
            s.generation = generation;
            s.ready = true;
        });
        if let Some(first) = first.take() {
            let _ = first.send(Ok(()));
        }
        // Serve until the process exits or a restart or stop is asked for.
        let stop = loop {
            tokio::select! {
                status = child.wait() => {
                    eprintln!("hoist-proxy: the function process exited ({}); restarting", match status {
                        Ok(status) => status.to_string(),
                        Err(e) => e.to_string(),
                    });
                    break false;
                }
                request = requests.recv() => match request {
                    Some(Request::Restart(g)) if g == generation => {
                        eprintln!("hoist-proxy: restarting the function process after a timeout");
                        break false;
                    }
                    Some(Request::Restart(_)) => continue,
                    Some(Request::Stop) | None => break true,
                },
            }
        };
        state.send_modify(|s| s.ready = false);
        kill(&child);
        let _ = child.wait().await;
        if stop {
            state.send_modify(|s| s.stopped = true);
            return;
        }
        generation += 1;
    }
}

/// Whether the running process answers `/healthz` now.
pub(crate) async fn healthy_now(supervisor: &Supervisor) -> bool {
    healthy(&supervisor.client, supervisor.port).await
}
