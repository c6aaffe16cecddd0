//! hoist's Mesos frontend: the v1 executor HTTP API driving the engine.
//!
//! A Mesos agent starts an executor with `MESOS_*` variables ([`AgentEnv`]); the executor
//! subscribes to `POST /api/v1/executor`, receives events as a RecordIO stream of JSON
//! ([`recordio`], [`wire`]), runs the tasks they launch on an [`hoist_core::Executor`], and
//! reports every change as an UPDATE that it keeps sending until the agent acknowledges it.
//! [`MesosDriver`] does all of that, including resubscribing after an agent restart with the
//! unacknowledged updates and tasks.
//!
//! With the feature `testing`, [`testing::AgentSimulator`] plays the agent for tests.
//!
//! ```no_run
//! # async fn run() -> hoist_core::Result<()> {
//! use std::sync::Arc;
//! use hoist_core::Executor;
//! use hoist_core::testing::FakeContainerizer;
//! use hoist_mesos::{AgentEnv, Exit, MesosDriver};
//!
//! let env = AgentEnv::from_env()?;
//! let executor = Executor::builder(Arc::new(FakeContainerizer::new()))
//!     .executor_id(env.executor_id.value.as_str())
//!     .build()?;
//! let statuses = executor.statuses();
//! match MesosDriver::new(env, executor, statuses).run().await? {
//!     Exit::Shutdown => println!("shut down by the agent"),
//!     other => eprintln!("gave up: {other:?}"),
//! }
//! # Ok(()) }
//! ```

pub mod client;
pub mod convert;
mod driver;
pub mod env;
mod ledger;
pub mod recordio;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wire;

pub use client::{AgentClient, ClientOptions, EventStream};
pub use driver::{DriverOptions, Exit, MesosDriver, Messenger};
pub use env::AgentEnv;
