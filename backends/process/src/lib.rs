//! hoist's embedded backend: tasks as local child processes, no daemon needed.
//!
//! [`ProcessContainerizer`] runs each container as a child process of the executor, in a
//! process group of its own, and keeps one folder per container under a state directory:
//! a JSON record (owner, spec, pid and the process's start time, state, exit status), the
//! captured `stdout.log` and `stderr.log`, and a `sandbox/` folder that is the default working
//! directory.
//!
//! # What a spec means here
//!
//! | field | on this backend |
//! |---|---|
//! | `command`, `args` | the program and its arguments; required (there is no image default). A bare name is looked up on the container's `PATH`. |
//! | `image` | optional: an **absolute directory** that a relative program path (`bin/server`) and a relative or absent `working_dir` resolve against. It is not a root file system: nothing is pulled, mounted or `chroot`ed, and `pull_policy: always` is refused. |
//! | `env` | exactly the container's environment: nothing is inherited from the executor. `PATH` defaults to `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` ([`DEFAULT_PATH`]). |
//! | `working_dir` | absolute, or relative to the image directory (or the sandbox); default the image directory (or the sandbox). |
//! | `network` | host only (`None` means host). `bridge`, `none` and user networks are refused. |
//! | `ports` | accepted when the host port is unset or equal to the container port (the process binds it itself), and reported by `inspect`; any other mapping is refused. |
//! | `resources` | as the [`ResourcePolicy`] says: refused (the default), accepted and recorded but not enforced (advisory), or enforced with cgroups v1 or v2 (an OOM kill is reported as `oom_killed`). |
//! | `volumes`, `dns`, `user` | refused. |
//! | `labels` | kept in the record. |
//!
//! Refused means [`ErrorKind::Unsupported`](hoist_core::ErrorKind::Unsupported) from `create`,
//! with the field in the error's `field` context: nothing is silently ignored.
//! [`Containerizer::capabilities`](hoist_core::Containerizer::capabilities) says the same.
//!
//! # Lifecycle
//!
//! - `stop` sends TERM to the process group, then KILL once the grace has passed, and returns
//!   once the process has exited. When the main process exits, whatever it left running in its
//!   group is KILLed too.
//! - `wait` may be called any number of times, concurrently, and is cancel-safe: every waiter
//!   watches the same exit.
//! - `exec` runs an argv with the container's environment and working directory, in a process
//!   group of its own that is KILLed when the timeout passes
//!   ([`ErrorKind::Timeout`](hoist_core::ErrorKind::Timeout)).
//! - `logs` reads the captured files; with `follow` it streams new output until the container
//!   has exited. The files do not keep the order between stdout and stderr: a read returns
//!   stdout's output first.
//! - `inspect` reports the pid while running and the loopback address (the process shares the
//!   host network).
//! - `remove` deletes the folder; removing a removed container succeeds.
//! - `stats` samples the container's process group from `/proc` (CPU user and system time
//!   and its percentage, resident memory, processes and threads, storage I/O) and, when the
//!   [`ResourcePolicy`] enforces its limits, its cgroup (memory usage and peak, cache, swap,
//!   CPU time and throttling), until the container exits. There is no network figure: the
//!   process shares the host's network.
//! - `signal` sends any signal to the main process.
//! - `exec_stream` runs a command beside the container, like `exec`, with a standard input
//!   and on pipes or on a pseudo-terminal that can be resized; its processes are KILLed if the
//!   session is dropped before they end.
//!
//! # After a restart
//!
//! Containers outlive the containerizer that started them. A new [`ProcessContainerizer`] on
//! the same state directory finds them through `list_owned` (and by id). It cannot `waitpid` a
//! process it did not start, so it polls `/proc` (every
//! [`ProcessContainerizer::with_poll_interval`], 100 ms by default), recognising the process by
//! its pid *and* its start time, so a later process that reuses the pid is never taken for it.
//! When the process has gone, its exit status is the one its own parent recorded if that parent
//! is still alive to record it, and otherwise **unknown**: an [`ExitStatus`](hoist_core::ExitStatus)
//! with neither code nor signal, which `inspect` flags in its `exit` detail. A process whose
//! starter died is reaped by the system (init or the nearest subreaper), not by hoist.

mod containerizer;
mod entry;
mod exec;
mod logs;
mod observe;
mod plan;
mod procfs;
mod record;
mod resources;
mod signal;

pub use containerizer::ProcessContainerizer;
pub use plan::DEFAULT_PATH;
pub use resources::{Cgroups, ResourcePolicy};

/// The backend's name in messages and errors.
const BACKEND: &str = "process";
