//! hoist's function executor: the function registry, the warm pool scheduler, and the HTTP,
//! Lambda Invoke and Lambda Runtime APIs.
//!
//! - [`Registry`] holds [`FunctionSpec`]s, one version per create or update.
//! - [`pool::WarmPool`] is the main [`hoist_core::scheduler::Scheduler`]: it admits
//!   invocations (reserved concurrency, then the global limit), places them on warm
//!   environments or starts new ones, and reaps idle ones after the keepalive.
//! - [`launcher::ExecutorLauncher`] runs environments as tasks of a hoist
//!   [`Executor`](hoist_core::Executor), on any containerizer.
//! - [`relay`] keeps the Runtime API ports of warm environments across a restart of the
//!   executor's process, so a restarted executor re-attaches to them
//!   ([`FunctionExecutor::recover_environments`]).

mod body;
pub mod config;
mod executor;
pub mod http;
pub mod invoke;
#[cfg(feature = "aws")]
pub mod lambda_host;
pub mod launcher;
pub mod pool;
mod registry;
pub mod relay;
pub mod runtime_api;

pub use executor::{EnvironmentRecovery, FunctionExecutor, RecoveredEnvironments};
pub use hoist_runtimes::function::{
    Code, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, FunctionSpec, MAX_TIMEOUT, Source,
};
pub use invoke::{Invocation, InvocationType, InvokeError, InvokeResponse};
pub use registry::{FunctionVersion, Registry};
