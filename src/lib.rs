//! hoist: build production executors.
//!
//! An executor takes work (a Mesos task, a function invocation, a long-running instance), runs it
//! in an isolated environment (a local process, a Docker container, a Kubernetes pod), watches it
//! with hooks and health checks, and reports what happened.
//!
//! ```toml
//! [dependencies]
//! hoist = "0.1"            # the engine and the local-process backend
//! # hoist = { version = "0.1", features = ["docker", "hooks"] }
//! ```
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> hoist::Result<()> {
//! use std::sync::Arc;
//! use hoist::{ContainerSpec, Executor, TaskSpec};
//! use hoist::process::ProcessContainerizer;
//!
//! let backend = Arc::new(ProcessContainerizer::new("/tmp/hoist-state")?);
//! let executor = Executor::builder(backend).build()?;
//! let ended = executor.run(TaskSpec::new("hello", ContainerSpec::command(["echo", "hello"]))).await?;
//! println!("{ended}"); // hello finished (command_exited): exited with code 0
//! # Ok(()) }
//! ```
//!
//! # What is where
//!
//! The engine and its types are at the top of this crate: [`Executor`] and its
//! [`TaskHandle`]s, [`TaskSpec`] and [`ContainerSpec`], [`TaskStatus`], the [`Containerizer`]
//! and [`Hook`] traits, [`Error`]. Extension points and their helpers are modules:
//! [`layer`] (timeouts, retries, tracing, capability checks, fault injection around any
//! containerizer), [`capabilities`], [`health`], [`catalog`], [`scheduler`], [`input`],
//! [`labels`], [`units`], and [`backend`] (choosing a backend by name).
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `process` | yes | [`process`]: tasks as local child processes; no daemon needed |
//! | `sandbox` | | `sandbox`: tasks in namespaces and cgroups on an image's root, through runc; no daemon needed |
//! | `https` | yes | HTTPS health probes (rustls; certificates are not verified, as Mesos does) |
//! | `docker` | | `docker`: the Docker Engine API through bollard |
//! | `kube` | | `kube`: one pod per container through kube-rs (your program picks the Kubernetes version through `k8s-openapi`'s features) |
//! | `mesos` | | `mesos`: the Mesos v1 executor HTTP API driving the engine, and an agent simulator for tests |
//! | `hooks` | | `hooks`: remove-container, acl, iptables, netns and network hooks |
//! | `runtimes` | | `runtimes`: runtime catalogs, build plans, the function runtime contract and `hoist-proxy` |
//! | `functions` | | `functions`: the function executor (registry, warm pool, HTTP / Lambda Invoke / Lambda Runtime APIs) and `function_backend` |
//! | `compute` | | `compute`: EC2-style instances and ECS-style tasks with target groups, on any backend |
//! | `testing` | | `testing`: the fake containerizer, the conformance suite, mocks (with `docker`, test images; with `kube`, a fake API server) |
//!
//! The installable programs (`hoist run`, `hoist-mesos-executor`) are in the `hoist-cli`
//! package.

pub mod backend;

pub use hoist_core::executor::{
    Executor, ExecutorBuilder, RecoveryMode, RecoveryReport, StatusStream, TaskHandle, TaskInfo,
};
pub use hoist_core::{
    Capabilities, ContainerId, ContainerInfo, ContainerSpec, ContainerState, Containerizer,
    ContainerizerExt, Error, ErrorKind, ErrorStatus, ExecOutput, ExecutorId, ExitStatus, Hook,
    HookContext, HookState, KillPolicy, LogChunk, LogChunks, LogOptions, LogStream, MappedPort,
    NetworkMode, OwnedContainer, Owner, Phase, PortMapping, Protocol, PullPolicy, Reason,
    Resources, Result, TaskFile, TaskId, TaskSpec, TaskState, TaskStatus, Volume,
};
pub use hoist_core::{catalog, health, input, labels, layer, observe, scheduler, session, units};

/// What a backend can honour ([`Capabilities`], at the top of the crate) and the kinds of
/// support it declares.
pub mod capabilities {
    pub use hoist_core::capabilities::{Images, Limit, Ports, Users};
}

/// Test support: the fake containerizer, the containerizer conformance suite, mocks, and
/// `cargo_build` for tests that run the workspace's programs.
#[cfg(feature = "testing")]
pub mod testing {
    pub use hoist_core::testing::*;
}

#[cfg(feature = "process")]
pub use hoist_process as process;

#[cfg(feature = "sandbox")]
pub use hoist_sandbox as sandbox;

#[cfg(feature = "docker")]
pub use hoist_docker as docker;

#[cfg(feature = "kube")]
pub use hoist_kube as kube;

#[cfg(feature = "mesos")]
pub use hoist_mesos as mesos;

#[cfg(feature = "hooks")]
pub use hoist_hooks as hooks;

#[cfg(feature = "runtimes")]
pub use hoist_runtimes as runtimes;

#[cfg(feature = "functions")]
pub use hoist_functions as functions;

#[cfg(feature = "functions")]
pub mod function_backend;

#[cfg(feature = "compute")]
pub use hoist_compute as compute;

#[cfg(all(feature = "kube", feature = "runtimes"))]
pub mod pod_build;
