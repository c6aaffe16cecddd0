//! hoist: build production executors.
//!
//! An executor takes work (a Mesos task, a function invocation, a long-running instance), runs it
//! in an isolated environment (a local process, a Docker container, a Kubernetes pod), watches it
//! with hooks and health checks, and reports what happened. This crate re-exports the parts:
//!
//! - [`core`] (always): task types, the five traits, the [`Executor`] engine, health checks.
//! - [`process`] (feature `process`, default): the embedded local-process backend.
//! - `functions` (feature `functions`): the function executor, and `function_backend`, which
//!   builds the backend its configuration names (`LAMBDA_RUNTIME_EXECUTOR`).
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
//! let mut statuses = executor.statuses();
//! executor.launch(TaskSpec::new("hello", ContainerSpec::command(["echo", "hello"])))?;
//! while let Some(status) = statuses.recv().await {
//!     println!("{status}");
//!     if status.state.is_terminal() { break; }
//! }
//! # Ok(()) }
//! ```

pub use hoist_core as core;
pub use hoist_core::*;

#[cfg(feature = "process")]
pub use hoist_process as process;

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
