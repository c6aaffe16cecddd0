//! Runs the function's process, knows when it is ready and what it announced about itself,
//! and restarts it on request (after a timeout it cannot end by itself, or when it stops
//! answering) or when it exits.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::body::Body;
use hoist_core::{Error, ErrorKind, Result};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::transport::{Connector, SOCKET_VARIABLE, UNIX_HOST};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio_util::task::TaskTracker;

use crate::contract::{CONVENTIONS_HEADER, Conventions};

/// The HTTP client to the function's process.
pub(crate) type UpstreamClient = Client<Connector, Body>;

/// The `/healthz` response header by which a process says that closing a call's connection
/// ends that call (value `disconnect`), so a timeout need not restart it.
pub const CANCEL_HEADER: &str = "hoist-cancel";

/// What the process announced in its `/healthz` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Profile {
    /// Its [`CONVENTIONS_HEADER`], when it sent one (the shims do).
    pub(crate) conventions: Option<Conventions>,
    /// Whether it sent `hoist-cancel: disconnect`.
    pub(crate) cancels_on_disconnect: bool,
    /// Whether it answered on the Unix socket.
    pub(crate) unix: bool,
}

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
    /// Whether calls go to the Unix socket (the running process answered there).
    unix: Arc<AtomicBool>,
    state: Arc<watch::Sender<State>>,
    profile: Arc<std::sync::Mutex<Profile>>,
    restarts: mpsc::UnboundedSender<Request>,
    /// The supervising task, awaited by [`Supervisor::stop`].
    task: TaskTracker,
}

enum Request {
    Restart(u64),
    /// Restart generation `.0` unless it still answers `/healthz` (after a timed-out call was
    /// ended by closing its connection: a process stuck in a loop that holds its only thread,
    /// as a Node function's `while (true) {}` does, no longer answers).
    Check(u64),
    Stop,
}

/// What the supervisor runs.
pub(crate) struct Launch {
    pub(crate) command: String,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) port: u16,
    /// The Unix socket offered to the process (`HOIST_UPSTREAM_SOCKET`), in a folder of the
    /// proxy's own, removed when it stops.
    pub(crate) socket: PathBuf,
    /// The call timeout, given to the process as `FUNC_TIMEOUT` (for its context).
    pub(crate) timeout: Duration,
    pub(crate) start_timeout: Duration,
}

impl Supervisor {
    /// Starts the process and waits until its `/healthz` answers 200, for at most the start
    /// timeout.
    pub(crate) async fn start(launch: Launch) -> Result<Arc<Supervisor>> {
        let client =
            Client::builder(TokioExecutor::new()).build(Connector::new(launch.socket.clone()));
        let unix = Arc::new(AtomicBool::new(false));
        let (state, _) = watch::channel(State {
            generation: 0,
            ready: false,
            stopped: false,
        });
        let state = Arc::new(state);
        let profile = Arc::new(std::sync::Mutex::new(Profile::default()));
        let (restarts, requests) = mpsc::unbounded_channel();
        let supervisor = Arc::new(Supervisor {
            port: launch.port,
            client: client.clone(),
            unix: unix.clone(),
            state: state.clone(),
            profile: profile.clone(),
            restarts,
            task: TaskTracker::new(),
        });
        let start_timeout = launch.start_timeout;
        let (first_tx, first) = tokio::sync::oneshot::channel();
        let channels = Channels {
            state,
            profile,
            unix,
            requests,
        };
        supervisor
            .task
            .spawn(run(launch, client, channels, first_tx));
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

    /// `http://authority` of the running process: its Unix socket or its TCP port.
    pub(crate) fn base(&self) -> String {
        if self.unix.load(Ordering::Relaxed) {
            format!("http://{UNIX_HOST}")
        } else {
            format!("http://127.0.0.1:{}", self.port)
        }
    }

    /// The current state.
    pub(crate) fn state(&self) -> State {
        *self.state.borrow()
    }

    /// What the running process announced when it became ready.
    pub(crate) fn profile(&self) -> Profile {
        self.profile
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Ends a call of generation `generation` that its caller abandoned (a timeout): when the
    /// process ends calls whose connection closes, only checks that it still answers;
    /// otherwise restarts it.
    pub(crate) fn abandoned(&self, generation: u64) {
        if self.profile().cancels_on_disconnect {
            let _ = self.restarts.send(Request::Check(generation));
        } else {
            self.restart(generation);
        }
    }

    /// Waits until a process is ready and returns its generation.
    pub(crate) async fn ready(&self) -> Option<u64> {
        let now = *self.state.borrow();
        if now.ready && !now.stopped {
            return Some(now.generation);
        }
        let mut state = self.state.subscribe();
        let ready = state.wait_for(|s| s.ready || s.stopped).await.ok()?;
        (!ready.stopped).then_some(ready.generation)
    }

    /// Kills and restarts generation `generation`, unless it was already replaced.
    pub(crate) fn restart(&self, generation: u64) {
        // Stop sending calls to the old process at once, before the supervisor kills it.
        self.state.send_if_modified(|s| {
            let current = s.ready && s.generation == generation;
            if current {
                s.ready = false;
            }
            current
        });
        let _ = self.restarts.send(Request::Restart(generation));
    }

    /// Kills the process and stops supervising: waits (at most 10 s) for the supervising task
    /// to end.
    pub(crate) async fn stop(&self) {
        let _ = self.restarts.send(Request::Stop);
        self.task.close();
        if tokio::time::timeout(Duration::from_secs(10), self.task.wait())
            .await
            .is_err()
        {
            eprintln!("hoist-proxy: the function process supervisor did not stop within 10 s");
        }
    }
}

fn spawn(launch: &Launch) -> Result<Child> {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(&launch.command)
        .envs(launch.env.iter().cloned())
        .env("FUNC_PORT", launch.port.to_string())
        .env(SOCKET_VARIABLE, &launch.socket)
        .env("FUNC_TIMEOUT", launch.timeout.as_secs_f64().to_string())
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

/// Asks the process's `/healthz` (for at most 1 s), on the Unix socket when there is one and
/// over TCP otherwise; its announcements when it answers 200.
async fn healthy(client: &UpstreamClient, port: u16, socket: &std::path::Path) -> Option<Profile> {
    if socket.exists()
        && let Some(profile) = healthy_at(client, &format!("http://{UNIX_HOST}")).await
    {
        return Some(Profile {
            unix: true,
            ..profile
        });
    }
    healthy_at(client, &format!("http://127.0.0.1:{port}")).await
}

async fn healthy_at(client: &UpstreamClient, base: &str) -> Option<Profile> {
    let uri = format!("{base}/healthz").parse::<hyper::Uri>().ok()?;
    let response = tokio::time::timeout(Duration::from_secs(1), client.get(uri))
        .await
        .ok()?
        .ok()?;
    if response.status() != hyper::StatusCode::OK {
        return None;
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    Some(Profile {
        conventions: header(CONVENTIONS_HEADER).and_then(Conventions::from_header),
        cancels_on_disconnect: header(CANCEL_HEADER) == Some("disconnect"),
        unix: false,
    })
}

/// Whether the process still answers: two tries, a second apart at most.
async fn still_answers(client: &UpstreamClient, launch: &Launch) -> bool {
    for _ in 0..2 {
        if healthy(client, launch.port, &launch.socket).await.is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// A new folder, private to this process, for the Unix socket offered to the function's
/// process.
pub(crate) fn socket_folder() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt as _;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let folder = std::env::temp_dir().join(format!(
        "hoist-proxy-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&folder)
        .map_err(|e| {
            Error::new(
                ErrorKind::Backend,
                format!("cannot create the socket folder {}: {e}", folder.display()),
            )
            .with_source(e)
        })?;
    Ok(folder)
}

/// The supervisor's side of its channels.
struct Channels {
    state: Arc<watch::Sender<State>>,
    profile: Arc<std::sync::Mutex<Profile>>,
    unix: Arc<AtomicBool>,
    requests: mpsc::UnboundedReceiver<Request>,
}

async fn run(
    launch: Launch,
    client: UpstreamClient,
    channels: Channels,
    first: tokio::sync::oneshot::Sender<Result<()>>,
) {
    let Channels {
        state,
        profile,
        unix,
        mut requests,
    } = channels;
    run_generations(
        &launch,
        &client,
        &state,
        &profile,
        &unix,
        &mut requests,
        first,
    )
    .await;
    if let Some(folder) = launch.socket.parent() {
        let _ = std::fs::remove_dir_all(folder);
    }
    state.send_modify(|s| {
        s.stopped = true;
        s.ready = false;
    });
}

async fn run_generations(
    launch: &Launch,
    client: &UpstreamClient,
    state: &watch::Sender<State>,
    profile: &std::sync::Mutex<Profile>,
    unix: &AtomicBool,
    requests: &mut mpsc::UnboundedReceiver<Request>,
    first: tokio::sync::oneshot::Sender<Result<()>>,
) {
    let mut first = Some(first);
    let mut generation = 0;
    loop {
        let mut child = match spawn(launch) {
            Ok(child) => child,
            Err(e) => {
                if let Some(first) = first.take() {
                    let _ = first.send(Err(e));
                    return;
                }
                eprintln!("hoist-proxy: {e}; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Wait until the process answers, exits, or is asked to stop.
        let became_ready = loop {
            if let Some(announced) = healthy(client, launch.port, &launch.socket).await {
                unix.store(announced.unix, Ordering::Relaxed);
                *profile.lock().unwrap_or_else(|e| e.into_inner()) = announced;
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
                        return;
                    }
                    eprintln!("hoist-proxy: {message}; restarting in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break false;
                }
                Some(Request::Stop) = requests.recv() => {
                    kill(&child);
                    let _ = child.wait().await;
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
                    Some(Request::Check(g)) if g == generation => {
                        if still_answers(client, launch).await {
                            continue;
                        }
                        eprintln!("hoist-proxy: restarting the function process: it stopped answering /healthz after a timeout");
                        break false;
                    }
                    Some(Request::Restart(_) | Request::Check(_)) => continue,
                    Some(Request::Stop) | None => break true,
                },
            }
        };
        state.send_modify(|s| s.ready = false);
        kill(&child);
        let _ = child.wait().await;
        if stop {
            return;
        }
        generation += 1;
    }
}

/// Whether the running process answers `/healthz` now.
pub(crate) async fn healthy_now(supervisor: &Supervisor) -> bool {
    let base = supervisor.base();
    healthy_at(&supervisor.client, &base).await.is_some()
}
