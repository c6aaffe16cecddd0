//! hoist-core: the types, traits and engine of hoist.
//!
//! - [`TaskSpec`] says what to run; [`TaskStatus`] says what happened.
//! - [`Containerizer`] runs containers; [`Hook`] runs code around launch and kill;
//!   [`health::HealthChecker`] probes; [`catalog::RuntimeCatalog`] resolves function runtimes;
//!   [`scheduler::Scheduler`] places requests.
//! - [`Executor`] drives tasks through hooks, the containerizer and the health monitor, and
//!   streams their statuses.
//!
//! The feature `testing` adds [`testing::FakeContainerizer`], the containerizer conformance
//! suite and mockall mocks of the traits.

pub mod capabilities;
pub mod catalog;
pub mod container;
pub mod containerizer;
pub mod error;
pub mod executor;
pub mod health;
pub mod hook;
pub mod input;
pub mod labels;
pub mod layer;
pub mod observe;
pub mod scheduler;
pub mod session;
pub mod status;
pub mod task;
#[cfg(feature = "testing")]
pub mod testing;
pub mod units;

pub use capabilities::Capabilities;
pub use container::{
    ContainerId, ContainerInfo, ContainerState, ExecOutput, ExecutorId, ExitStatus, LogChunk,
    LogOptions, LogStream, MappedPort, OwnedContainer, Owner,
};
pub use containerizer::{Containerizer, ContainerizerExt, LogChunks};
pub use error::{Error, ErrorKind, ErrorStatus, Result};
pub use executor::{Executor, ExecutorBuilder, RecoveryMode};
pub use hook::{Hook, HookContext, HookState, Phase};
pub use status::{Reason, TaskState, TaskStatus};
pub use task::{
    ContainerSpec, KillPolicy, NetworkMode, PortMapping, Protocol, PullPolicy, Resources, TaskFile,
    TaskId, TaskSpec, Volume,
};
