//! What a container uses, signals to its process, and interactive sessions beside it.
//!
//! - Usage is read from `/proc` for the container's process group (CPU time, resident memory,
//!   processes and threads, storage I/O) and, when the container has a cgroup of its own
//!   ([`ResourcePolicy::Enforce`](crate::ResourcePolicy::Enforce)), from the cgroup, whose
//!   figures win: they count processes that have already exited and the page cache.
//! - A signal goes to the container's main process, as `docker kill --signal` does.
//! - A session runs beside the container like `exec` (its environment and working directory),
//!   on pipes, or on a pseudo-terminal (`pty-process`) that makes it the leader of a session of
//!   its own. Its processes are killed if the session is dropped before they end.

use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use hoist_core::observe::{BlockIoUsage, ResourceUsage, UsageStream};
use hoist_core::session::{ExecRequest, ExecSession, ResizeFn, SessionInput, TerminalSize};
use hoist_core::{ContainerId, Error, ErrorKind, LogChunk, LogStream, Result};
use nix::sys::signal::Signal;
use nix::unistd::{Pid, SysconfVar, sysconf};
use tokio::io::AsyncWrite;
use tokio_util::io::ReaderStream;

use crate::containerizer::exit_status;
use crate::entry::{Entry, Phase};
use crate::plan::{Plan, spawn_error};
use crate::procfs::group_usage;
use crate::resources::Cgroups;
use crate::signal::signal_group;

/// The shortest interval between samples.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// One sample of process group `pid`, and of `cgroup` when the container has one (only of the
/// cgroup when it is delegated: the process group is then the runtime's, not the container's).
pub(crate) fn sample(pid: u32, cgroup: Option<(&Cgroups, &ContainerId)>) -> ResourceUsage {
    let mut usage = ResourceUsage::now();
    let delegated = cgroup.is_some_and(|(c, _)| c.is_delegated());
    let group = group_usage(pid);
    if group.processes > 0 && !delegated {
        let tick = tick_nanos();
        let time = |ticks: u64| Duration::from_nanos(ticks.saturating_mul(tick));
        usage.cpu.user = Some(time(group.user_ticks));
        usage.cpu.system = Some(time(group.system_ticks));
        usage.cpu.total = Some(time(group.user_ticks + group.system_ticks));
        usage.memory.rss = Some(group.rss_pages * page_size());
        usage.pids = Some(group.threads);
        usage.block_io = group.io.map(|(read, write)| BlockIoUsage::new(read, write));
    }
    if let Some((cgroups, id)) = cgroup {
        cgroups.read_usage(id, &mut usage);
    }
    usage
}

/// Samples every `interval` (the first at once) until the container has exited.
pub(crate) fn stats(
    entry: Arc<Entry>,
    pid: u32,
    cgroup: Option<(Cgroups, ContainerId)>,
    interval: Duration,
) -> UsageStream {
    let interval = interval.max(MIN_INTERVAL);
    futures::stream::unfold(None::<ResourceUsage>, move |previous| {
        let (entry, cgroup) = (entry.clone(), cgroup.clone());
        async move {
            if previous.is_some() {
                // The next sample after the interval, or the end as soon as it exits.
                let _ = entry.exited(Some(interval)).await;
            }
            if *entry.phase.borrow() != Phase::Pending {
                return None;
            }
            let mut usage = sample(pid, cgroup.as_ref().map(|(c, id)| (c, id)));
            if let Some(previous) = &previous {
                usage = usage.with_percent_since(previous);
            }
            Some((Ok(usage.clone()), Some(usage)))
        }
    })
    .boxed()
}

/// Sends signal `number` to the main process `pid`.
pub(crate) fn signal(pid: u32, number: i32) -> Result<()> {
    let signal = Signal::try_from(number).map_err(|_| {
        Error::invalid_field("signal", format!("{number} is not a Linux signal number"))
    })?;
    let pid = i32::try_from(pid).map_err(|_| Error::new(ErrorKind::Backend, "pid out of range"))?;
    nix::sys::signal::kill(Pid::from_raw(pid), signal).map_err(|e| match e {
        nix::errno::Errno::ESRCH => Error::new(
            ErrorKind::InvalidState,
            "the container's process has exited",
        ),
        other => Error::new(ErrorKind::Backend, format!("could not send {signal}"))
            .with_source(io::Error::from(other)),
    })
}

/// Starts `plan` as an interactive session.
pub(crate) fn session(plan: &Plan, request: &ExecRequest) -> Result<ExecSession> {
    if request.tty {
        terminal_session(plan, request)
    } else {
        pipe_session(plan, request)
    }
}

fn pipe_session(plan: &Plan, request: &ExecRequest) -> Result<ExecSession> {
    let mut cmd = plan.command();
    if request.stdin {
        cmd.stdin(Stdio::piped());
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| spawn_error(plan, e))?;
    let guard = GroupGuard(child.id());
    let input = child
        .stdin
        .take()
        .map(|stdin| Box::pin(stdin) as SessionInput);
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(Error::new(
            ErrorKind::Backend,
            "the command's output pipes were not opened",
        ));
    };
    let output = futures::stream::select(
        chunks(ReaderStream::new(stdout), LogStream::Stdout),
        chunks(ReaderStream::new(stderr), LogStream::Stderr),
    )
    .boxed();
    let exit = exit_of(child, guard);
    Ok(ExecSession::new(input, output, None, exit))
}

fn terminal_session(plan: &Plan, request: &ExecRequest) -> Result<ExecSession> {
    let pty_error = |e: pty_process::Error| {
        Error::new(ErrorKind::Backend, "could not set up a terminal").with_source(e)
    };
    let (pty, pts) = pty_process::open().map_err(pty_error)?;
    if let Some(size) = request.size {
        pty.resize(pty_size(size)).map_err(pty_error)?;
    }
    let child = pty_process::Command::new(&plan.program)
        .args(&plan.args)
        .env_clear()
        .envs(&plan.env)
        .current_dir(&plan.working_dir)
        .spawn(pts)
        .map_err(|e| match e {
            pty_process::Error::Io(io) => spawn_error(plan, io),
            other => pty_error(other),
        })?;
    // The child leads a session, and so a process group, of its own.
    let guard = GroupGuard(child.id());
    let (read, write) = pty.into_split();
    let write = Arc::new(Mutex::new(write));
    let input = request
        .stdin
        .then(|| Box::pin(SharedWriter(write.clone())) as SessionInput);
    let resize: ResizeFn = Arc::new(move |size| {
        let result = lock(&write).resize(pty_size(size)).map_err(|e| {
            Error::new(ErrorKind::Backend, "could not resize the terminal").with_source(e)
        });
        futures::future::ready(result).boxed()
    });
    // Reading the terminal's side fails with EIO once every process holding it has gone:
    // that is its end.
    let output = ReaderStream::new(read)
        .take_while(|read| {
            let eio = matches!(read, Err(e) if e.raw_os_error() == Some(libc::EIO));
            futures::future::ready(!eio)
        })
        .boxed();
    let output = chunks(output, LogStream::Stdout).boxed();
    let exit = exit_of(child, guard);
    Ok(ExecSession::new(input, output, Some(resize), exit))
}

/// The session's exit: its leader's, after which its group is left alone.
fn exit_of(
    mut child: tokio::process::Child,
    guard: GroupGuard,
) -> futures::future::BoxFuture<'static, Result<hoist_core::ExitStatus>> {
    async move {
        let status = child.wait().await;
        guard.ended();
        status.map(exit_status).map_err(|e| {
            Error::new(ErrorKind::Backend, "could not wait for the session").with_source(e)
        })
    }
    .boxed()
}

/// Reads as output chunks of `stream`.
fn chunks<S>(
    reads: S,
    stream: LogStream,
) -> impl futures::Stream<Item = Result<LogChunk>> + Send + 'static
where
    S: futures::Stream<Item = io::Result<Bytes>> + Send + 'static,
{
    reads.map(move |read| {
        read.map(|data| LogChunk { stream, data }).map_err(|e| {
            Error::new(ErrorKind::Backend, "could not read the session's output").with_source(e)
        })
    })
}

fn pty_size(size: TerminalSize) -> pty_process::Size {
    pty_process::Size::new(size.rows, size.cols)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The terminal's input, shared with the resize function.
struct SharedWriter(Arc<Mutex<pty_process::OwnedWritePty>>);

impl AsyncWrite for SharedWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *lock(&self.0)).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *lock(&self.0)).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *lock(&self.0)).poll_shutdown(cx)
    }
}

/// KILLs a session's process group unless its leader was seen to end.
struct GroupGuard(Option<u32>);

impl GroupGuard {
    fn ended(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            signal_group(pid, Signal::SIGKILL);
        }
    }
}

/// A clock tick (`USER_HZ`, the unit of `/proc`'s CPU times) in nanoseconds.
pub(crate) fn tick_nanos() -> u64 {
    let hz = sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|hz| u64::try_from(hz).ok())
        .filter(|hz| *hz > 0)
        .unwrap_or(100);
    1_000_000_000 / hz
}

fn page_size() -> u64 {
    sysconf(SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|size| u64::try_from(size).ok())
        .unwrap_or(4096)
}
