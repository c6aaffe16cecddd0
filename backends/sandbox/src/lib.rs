//! hoist's sandboxed embedded backend: each task in namespaces and cgroups of its own, on a
//! root file system of its own, with no daemon.
//!
//! [`SandboxContainerizer`] drives [runc](https://github.com/opencontainers/runc), the OCI
//! reference runtime, as a child process of the executor: `runc run` in the foreground stays the
//! parent of the container's init, forwards signals to it and exits with its status, so the
//! process backend ([`hoist_process`]) starts, records, waits for and recovers each container
//! as it does a plain process. The first process in every container is a static
//! [tini](https://github.com/krallin/tini), mounted at `/dev/init`, so a task that sets no
//! signal handler still ends on TERM though it is pid 1 of its namespace.
//!
//! # What a spec means here
//!
//! | field | on this backend |
//! |---|---|
//! | `command`, `args` | the program and its arguments inside the container; required (a directory image has no command). |
//! | `image` | required, an absolute path: a **directory** that is the root file system, an **OCI image layout** (a directory with `oci-layout` and `index.json`: its first manifest), or a **`docker save` archive** (its first image). Layers are unpacked once each into a cache named by their digest and shared by every container that uses them; whiteouts are honoured. Nothing is pulled. The image is never written: the container sees an overlay with a writable layer of its own, dropped at `remove`. |
//! | `env` | exactly the container's environment; `PATH` defaults to [`hoist_process::DEFAULT_PATH`]. |
//! | `working_dir` | absolute, inside the container; default `/`. |
//! | `user` | `uid` or `uid:gid`, numeric (`uid` alone: the group id equals it); default root (with the Docker Engine's default capabilities). |
//! | `network` | `host` (the default) or `none` (a network namespace with loopback only). `bridge` and user networks are refused. |
//! | `ports` | with `host`, as on the process backend: the container binds the port itself; with `none`, refused. |
//! | `resources` | enforced: `memory` and `cpus` (a CFS quota, and shares on v1) on the container's cgroup (v1 or v2), which holds the container's processes and not runc; an OOM kill is reported as `oom_killed`. |
//! | `volumes` | bind mounts of existing absolute host paths, read-only when asked. |
//! | `dns` | written to a `resolv.conf` mounted read-only at `/etc/resolv.conf`; without it the host's is mounted (except with `network: none`). |
//! | `labels` | kept; [`READ_ONLY_LABEL`] set to `"true"` makes the root file system read-only. |
//!
//! Namespaces: pid, mount, ipc and uts always; network with `network: none`. Refused means
//! [`ErrorKind::Unsupported`](hoist_core::ErrorKind::Unsupported) from `create`, with the field
//! in the error's `field` context.
//!
//! # Lifecycle
//!
//! - `stop` has runc send TERM to the container's init (which passes it on), then KILL once
//!   the grace has passed; KILLing the init ends every process of the container's pid
//!   namespace. A container killed by signal `n` reports that signal (runc and tini report it
//!   as exit code `128 + n`, read back as the Docker backend reads the Engine's codes).
//! - `exec` and `exec_stream` run `runc exec`: the command enters the container's namespaces,
//!   root and cgroup, with its environment.
//! - `logs`, `wait`, `inspect`, `list_owned` and recovery after a restart are the process
//!   backend's, on the `runc run` process (its captured output is the container's).
//! - `stats` reads the container's cgroup alone, limits or not: memory usage, its peak, rss,
//!   cache and swap, CPU time (user and system) and its percentage, throttling, and the
//!   processes' threads. Every process of the container is counted, whatever its process
//!   group; runc is not.
//! - `remove` ends the container, has runc delete what it left, unmounts the root file system
//!   and deletes the folder: no mount, cgroup or state is left behind.
//!
//! # Cgroups
//!
//! Every container gets a cgroup of its own, `hoist/<id>` (in the memory and CPU controllers on
//! v1, in the unified hierarchy on v2), made by hoist at `create` with the limits and kept until
//! `remove`. runc is told (`linux.cgroupsPath`) to put the container's processes in
//! `hoist/<id>/<runc id>` below it, and removes that one when the container ends; runc itself
//! stays outside both. Limits, usage and OOM counts are hierarchical, so the container's cgroup
//! enforces and counts them for runc's. On v2 an OOM kill is its `memory.events` `oom_kill`; v1
//! counts kills only in runc's cgroup, so there it is a KILL hoist did not send after the peak
//! reached the limit.
//!
//! # The state directory
//!
//! ```text
//! <state dir>/containers/<id>/             the process backend's folder: record, logs
//! <state dir>/containers/<id>/sandbox/     the bundle, the overlay's layers, runc's state
//! <state dir>/images/sha256/<digest>/      one unpacked layer, shared; kept after remove
//! ```
//!
//! # What the machine must offer
//!
//! Root, the pid, mount, ipc, uts and network namespaces, overlayfs, a writable cgroup tree
//! (v1 with the memory and cpu controllers, or v2), runc (Debian's `runc` package) and a static
//! tini (Debian's `tini` package). [`SandboxContainerizer::new`] checks each and answers
//! [`ErrorKind::Unavailable`](hoist_core::ErrorKind::Unavailable) naming the first one missing.

mod bundle;
mod containerizer;
mod image;
mod runtime;
#[cfg(feature = "testing")]
pub mod testing;

pub use bundle::READ_ONLY_LABEL;
pub use containerizer::SandboxContainerizer;
pub use hoist_process::Cgroups;
pub use runtime::Runtime;

/// The backend's name in messages and errors.
const BACKEND: &str = "sandbox";
